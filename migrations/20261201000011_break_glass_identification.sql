-- Break-glass identification cannot be guessed (issue 11 §5; docs/adr/0018-break-glass-identification.md).
--
--   * The number on the patient's card is a random number of its own (patient_cards), looked up
--     by a keyed hash (`lookup`); the number itself is kept encrypted with the patient's key for
--     the registering facility to print. What confirms it is a keyed hash of the patient and
--     the date of birth (`birth_check`), compared by the server in constant time.
--   * Every failed identification is a row of emergency_identification_failures, written only
--     by emergency_identification_failed(): the card it named (if any) is resolved here, never
--     taken from the caller. Five failures within an hour lock the requesting facility (for
--     everything) and the card (until the hour has passed or the card is re-issued); an
--     emergency grant cannot be opened while either is locked (trigger on emergency_grants).
--   * Each failure is recorded in the registering facility's audit chain (an unknown number: in
--     the platform's), and the fifth failure on a card is announced to the registering facility.
--
-- Existing patients get their card from the server (it holds the key): at start and on first
-- use (renrakucho_care::ensure_cards). The old card IDs (the patient's UUID) stop working.

-- Owner-only flag of the functions below: `card_lookup` (every other definer function switches
-- it off again, like the earlier flags). The functions below switch every listed flag off and
-- then set `card_lookup` themselves, so they keep working if a later migration restates this
-- list without it (a later restatement must still name it, for the other functions to clear it).
CREATE OR REPLACE FUNCTION private.definer_flags(p_on text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        flag text;
    BEGIN
        FOREACH flag IN ARRAY ARRAY['access_maintenance', 'erasure_patient', 'reencrypt_patient',
                                    'directory', 'session_store', 'announcing', 'alerting',
                                    'card_lookup'] LOOP
            PERFORM set_config('renrakucho.' || flag, CASE WHEN flag = p_on THEN 'on' ELSE '' END, true);
        END LOOP;
    END
    $$;
REVOKE ALL ON FUNCTION private.definer_flags(text) FROM PUBLIC;

-- Cards ---------------------------------------------------------------------------------------------

CREATE TABLE patient_cards (
    patient_id   uuid PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    -- The row's ID, as re-encryption and the number's associated data name it.
    id           uuid NOT NULL GENERATED ALWAYS AS (patient_id) STORED,
    -- The registering facility: the only one that reads, issues and re-issues the card.
    facility_id  uuid NOT NULL REFERENCES facilities (id),
    lookup       bytea NOT NULL UNIQUE CHECK (length(lookup) = 32),
    birth_check  bytea NOT NULL CHECK (length(birth_check) = 32),
    number_enc   bytea NOT NULL,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    -- NULL: issued by the server itself (existing patients, at start).
    issued_by    uuid REFERENCES staff_accounts (id)
);
CREATE INDEX patient_cards_facility ON patient_cards (facility_id);
ALTER TABLE patient_cards ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_cards FORCE ROW LEVEL SECURITY;

CREATE POLICY patient_cards_registering ON patient_cards TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           AND EXISTS (SELECT FROM patient_access a
                        WHERE a.facility_id = (SELECT current_facility_id())
                          AND a.patient_id = patient_cards.patient_id
                          AND a.relation = ANY ('{registering}')
                          AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND issued_by IS NOT DISTINCT FROM (SELECT current_staff_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = patient_cards.patient_id
                               AND a.relation = ANY ('{registering}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY patient_cards_identify ON patient_cards FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('card_lookup')));
CREATE POLICY patient_cards_reencrypt ON patient_cards TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

GRANT SELECT, INSERT ON patient_cards TO renrakucho_runtime;
-- A re-issue replaces the number; the patient and the facility never change.
GRANT UPDATE (lookup, birth_check, number_enc, issued_at, issued_by) ON patient_cards
    TO renrakucho_runtime;

-- The number is encrypted with the patient's key: re-encryption reaches it like every other
-- patient column.
CREATE OR REPLACE FUNCTION public.encrypted_column_owner(p_table text, p_column text) RETURNS text
    LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC
        SELECT CASE p_table || '.' || p_column
            WHEN 'patients.name_enc' THEN 'id'
            WHEN 'patients.kana_enc' THEN 'id'
            WHEN 'patients.profile_enc' THEN 'id'
            WHEN 'consents.details_enc' THEN 'patient_id'
            WHEN 'emergency_grants.reason_enc' THEN 'patient_id'
            WHEN 'entries.body_enc' THEN 'patient_id'
            WHEN 'entries.vitals_enc' THEN 'patient_id'
            WHEN 'entries.withdrawal_reason_enc' THEN 'patient_id'
            WHEN 'attachments.file_name_enc' THEN 'patient_id'
            WHEN 'support_requests.question_enc' THEN 'patient_id'
            WHEN 'support_requests.summary_enc' THEN 'patient_id'
            WHEN 'support_requests.answer_enc' THEN 'patient_id'
            WHEN 'patient_cards.number_enc' THEN 'patient_id'
        END;
    END;

-- Failed identifications ----------------------------------------------------------------------------

CREATE TABLE emergency_identification_failures (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The card the number named, when it named one, and its registering facility: the
    -- facility the record is about and for (NULL: the number named no card).
    facility_id              uuid REFERENCES facilities (id),
    patient_id               uuid REFERENCES patients (id) ON DELETE CASCADE,
    -- Who tried.
    requesting_facility_id   uuid NOT NULL REFERENCES facilities (id),
    staff_id                 uuid NOT NULL REFERENCES staff_accounts (id),
    attempted_at             timestamptz NOT NULL DEFAULT now(),
    CHECK ((patient_id IS NULL) = (facility_id IS NULL))
);
CREATE INDEX emergency_identification_failures_requesting
    ON emergency_identification_failures (requesting_facility_id, attempted_at);
CREATE INDEX emergency_identification_failures_patient
    ON emergency_identification_failures (patient_id, attempted_at);
CREATE INDEX emergency_identification_failures_registering
    ON emergency_identification_failures (facility_id, attempted_at);
ALTER TABLE emergency_identification_failures ENABLE ROW LEVEL SECURITY;
ALTER TABLE emergency_identification_failures FORCE ROW LEVEL SECURITY;

-- The registering facility sees the failures on its patients' cards (and who tried). The
-- trying facility does not read rows (they would name the patient a number belonged to): it
-- sees its own count and lockout through emergency_identification_status(). Rows of a number
-- that named no card belong to no facility.
CREATE POLICY emergency_identification_failures_registering
    ON emergency_identification_failures FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY emergency_identification_failures_record
    ON emergency_identification_failures TO CURRENT_USER
    USING ((SELECT owner_flag('card_lookup')))
    WITH CHECK ((SELECT owner_flag('card_lookup')));
GRANT SELECT ON emergency_identification_failures TO renrakucho_runtime;

-- The failure is written into the registering facility's chain (an unknown number: the
-- platform's) by emergency_identification_failed(), and only that record.
CREATE POLICY audit_log_identification ON audit_log TO CURRENT_USER
    USING ((SELECT owner_flag('card_lookup')))
    WITH CHECK ((SELECT owner_flag('card_lookup')) AND action = 'emergency.identify'
                AND outcome = 'denied');

-- The rule: at most five failed identifications within an hour, for a requesting facility and
-- for a card (counted since it was issued). Returns until when the fifth most recent failure
-- locks, or NULL. Called by the functions below with `card_lookup` switched on.
CREATE FUNCTION private.identification_locked_until(p_facility uuid, p_patient uuid,
                                                    p_since timestamptz)
    RETURNS timestamptz
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT max(t) FROM (
            (SELECT f.attempted_at + interval '1 hour' AS t
               FROM public.emergency_identification_failures f
              WHERE p_facility IS NOT NULL AND f.requesting_facility_id = p_facility
                AND f.attempted_at > now() - interval '1 hour'
              ORDER BY f.attempted_at DESC OFFSET 4 LIMIT 1)
            UNION ALL
            (SELECT f.attempted_at + interval '1 hour'
               FROM public.emergency_identification_failures f
              WHERE p_patient IS NOT NULL AND f.patient_id = p_patient
                AND f.attempted_at > greatest(now() - interval '1 hour', p_since)
              ORDER BY f.attempted_at DESC OFFSET 4 LIMIT 1)) locks;
    $$;
REVOKE ALL ON FUNCTION private.identification_locked_until(uuid, uuid, timestamptz) FROM PUBLIC;

-- Step 1 of an emergency identification, for a staff member's request: whether the caller's
-- facility is locked out, and otherwise the card the lookup names (its patient and birth
-- check) unless the card is locked. The caller compares the birth check itself (in constant
-- time, with the same work for a number that names nothing).
CREATE FUNCTION public.emergency_identify(p_lookup bytea)
    RETURNS TABLE (patient_id uuid, birth_check bytea, facility_locked_until timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        nobody  constant uuid := '00000000-0000-0000-0000-000000000000';
        me      uuid := public.current_facility_id();
        staff   uuid := public.current_staff_id();
        v_card  uuid;
        v_check bytea;
        v_since timestamptz;
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.card_lookup', 'on', true);
        IF me IS NULL OR staff IS NULL OR p_lookup IS NULL THEN
            RAISE EXCEPTION 'identification needs a staff member''s context' USING ERRCODE = '42501';
        END IF;
        facility_locked_until := private.identification_locked_until(me, NULL, NULL);
        IF facility_locked_until IS NULL THEN
            SELECT c.patient_id, c.birth_check, c.issued_at INTO v_card, v_check, v_since
              FROM public.patient_cards c WHERE c.lookup = p_lookup;
            -- The lock is looked up for a number that names no card too (under a patient ID no
            -- card has): the same statements either way.
            IF private.identification_locked_until(
                   NULL, coalesce(v_card, nobody), coalesce(v_since, now())) IS NULL
               AND v_card IS NOT NULL THEN
                patient_id := v_card;
                birth_check := v_check;
            END IF;
        END IF;
        PERFORM private.definer_flags(NULL);
        RETURN NEXT;
    END
    $$;

-- Step 2, when the number and the date of birth did not name a patient together: records the
-- failure (the card is resolved from the lookup here), writes it into the registering
-- facility's audit chain (an unknown number: the platform's), announces the fifth failure on a
-- card to the registering facility, and returns the counts within the hour.
CREATE FUNCTION public.emergency_identification_failed(p_lookup bytea)
    RETURNS TABLE (failure_id bigint, patient_id uuid, registering_facility_id uuid,
                   card_failures integer, facility_failures integer)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        me         uuid := public.current_facility_id();
        staff      uuid := public.current_staff_id();
        v_card     uuid;
        v_facility uuid;
        v_since    timestamptz;
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.card_lookup', 'on', true);
        IF me IS NULL OR staff IS NULL OR p_lookup IS NULL THEN
            RAISE EXCEPTION 'identification needs a staff member''s context' USING ERRCODE = '42501';
        END IF;
        SELECT c.patient_id, c.facility_id, c.issued_at INTO v_card, v_facility, v_since
          FROM public.patient_cards c WHERE c.lookup = p_lookup;
        INSERT INTO public.emergency_identification_failures
               (facility_id, patient_id, requesting_facility_id, staff_id)
        VALUES (v_facility, v_card, me, staff)
        RETURNING id INTO failure_id;
        patient_id := v_card;
        registering_facility_id := v_facility;
        SELECT count(*) INTO facility_failures FROM public.emergency_identification_failures f
         WHERE f.requesting_facility_id = me AND f.attempted_at > now() - interval '1 hour';
        -- Counted for a number that names no card too (no row has the nil patient ID).
        SELECT count(*) INTO card_failures FROM public.emergency_identification_failures f
         WHERE f.patient_id = coalesce(v_card, '00000000-0000-0000-0000-000000000000'::uuid)
           AND f.attempted_at > greatest(now() - interval '1 hour', coalesce(v_since, now()));
        -- The same record either way (the chain differs), so a known and an unknown number
        -- cost the caller the same.
        INSERT INTO public.audit_log (facility_id, seq, actor_kind, actor_id, action, outcome,
                                      target_kind, target_id, details, prev_hash, hash)
        VALUES (v_facility, 0, 'staff', staff, 'emergency.identify', 'denied',
                CASE WHEN v_card IS NOT NULL THEN 'patient' END, v_card,
                jsonb_build_object('requesting_facility', me,
                                   'failures_within_hour', card_failures,
                                   'locked', card_failures >= 5),
                '', '');
        IF v_card IS NOT NULL AND card_failures = 5 THEN
            PERFORM private.announce('renrakucho_events', jsonb_build_object(
                'kind', 'card_locked', 'patient', v_card, 'to', v_facility,
                'facility', me));
        END IF;
        PERFORM private.definer_flags(NULL);
        RETURN NEXT;
    END
    $$;

-- The caller's facility: failed identifications within the hour and until when it is locked.
CREATE FUNCTION public.emergency_identification_status()
    RETURNS TABLE (failures integer, locked_until timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        me uuid := public.current_facility_id();
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.card_lookup', 'on', true);
        IF me IS NULL THEN
            RAISE EXCEPTION 'no facility context' USING ERRCODE = '42501';
        END IF;
        SELECT count(*) INTO failures FROM public.emergency_identification_failures f
         WHERE f.requesting_facility_id = me AND f.attempted_at > now() - interval '1 hour';
        locked_until := private.identification_locked_until(me, NULL, NULL);
        PERFORM private.definer_flags(NULL);
        RETURN NEXT;
    END
    $$;

REVOKE ALL ON FUNCTION public.emergency_identify(bytea),
    public.emergency_identification_failed(bytea),
    public.emergency_identification_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.emergency_identify(bytea),
    public.emergency_identification_failed(bytea),
    public.emergency_identification_status() TO renrakucho_runtime;

-- No grant while the opening facility or the patient's card is locked, whoever inserts it.
CREATE FUNCTION public.emergency_grants_unlocked() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        issued timestamptz;
        locked timestamptz;
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.card_lookup', 'on', true);
        SELECT c.issued_at INTO issued FROM public.patient_cards c WHERE c.patient_id = NEW.patient_id;
        locked := private.identification_locked_until(
            NEW.facility_id, CASE WHEN issued IS NOT NULL THEN NEW.patient_id END, issued);
        PERFORM private.definer_flags(NULL);
        IF locked IS NOT NULL THEN
            RAISE EXCEPTION 'emergency identification is locked until %', locked
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;
REVOKE ALL ON FUNCTION public.emergency_grants_unlocked() FROM PUBLIC;
CREATE TRIGGER emergency_grants_unlocked BEFORE INSERT ON emergency_grants
    FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_unlocked();
