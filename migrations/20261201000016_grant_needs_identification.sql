-- An emergency grant needs an identification the database has seen (issue 11 §5;
-- docs/adr/0018-break-glass-identification.md, "Both layers").
--
-- Until now the web role (an injection) could insert an emergency_grants row for any patient ID
-- it knew, without the card number or the date of birth: only the lock was enforced. Now a
-- grant is accepted only in a transaction that identified that patient for that facility:
--
--   * emergency_identified(lookup, birth_check), called by the server after its own
--     constant-time comparison succeeded, finds the card by its lookup, confirms the birth check,
--     refuses while the facility or the card is locked, and records the identification for this
--     transaction, facility and staff member. Both values are keyed hashes under the network's
--     blind-index key, which the database does not hold (it is a data key wrapped by the master
--     key): a caller without the key cannot produce the pair for a patient, and the card rows
--     that hold them are readable only by the registering facility (which sees the patient
--     anyway and cannot act as another facility, migration 8).
--   * The trigger emergency_grants_identified takes that record (one grant per identification)
--     or refuses the grant, whoever inserts it.

-- No role but the owner has a privilege on it (nor USAGE on schema private); its rows open
-- only inside the two functions below, under the flag `card_lookup`.
CREATE TABLE private.emergency_identifications (
    facility_id   uuid NOT NULL REFERENCES facilities (id),
    xact          xid8 NOT NULL,
    patient_id    uuid NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    staff_id      uuid NOT NULL REFERENCES staff_accounts (id),
    identified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (facility_id, xact, patient_id)
);
CREATE INDEX emergency_identifications_patient ON private.emergency_identifications (patient_id);
REVOKE ALL ON private.emergency_identifications FROM PUBLIC;
ALTER TABLE private.emergency_identifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE private.emergency_identifications FORCE ROW LEVEL SECURITY;
CREATE POLICY emergency_identifications_confirm ON private.emergency_identifications
    TO CURRENT_USER
    USING ((SELECT owner_flag('card_lookup')))
    WITH CHECK ((SELECT owner_flag('card_lookup')));

-- Step 3 of an identification (after emergency_identify and the server's comparison): the
-- database's own confirmation. Returns the patient. A mismatch is refused (42501) without
-- saying which part did not match; the server never calls this after a failed comparison, so
-- a refusal here means a caller without the key.
CREATE FUNCTION public.emergency_identified(p_lookup bytea, p_birth_check bytea)
    RETURNS uuid
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        me      uuid := public.current_facility_id();
        staff   uuid := public.current_staff_id();
        v_card  uuid;
        v_check bytea;
        v_since timestamptz;
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.card_lookup', 'on', true);
        IF me IS NULL OR staff IS NULL OR p_lookup IS NULL OR p_birth_check IS NULL THEN
            RAISE EXCEPTION 'identification needs a staff member''s context' USING ERRCODE = '42501';
        END IF;
        SELECT c.patient_id, c.birth_check, c.issued_at INTO v_card, v_check, v_since
          FROM public.patient_cards c WHERE c.lookup = p_lookup;
        IF v_card IS NULL OR v_check IS DISTINCT FROM p_birth_check
           OR private.identification_locked_until(me, v_card, v_since) IS NOT NULL THEN
            PERFORM private.definer_flags(NULL);
            RAISE EXCEPTION 'not identified' USING ERRCODE = '42501';
        END IF;
        INSERT INTO private.emergency_identifications (xact, facility_id, patient_id, staff_id)
        VALUES (pg_current_xact_id(), me, v_card, staff)
        ON CONFLICT DO NOTHING;
        PERFORM private.definer_flags(NULL);
        RETURN v_card;
    END
    $$;
REVOKE ALL ON FUNCTION public.emergency_identified(bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.emergency_identified(bytea, bytea) TO renrakucho_runtime;

-- No grant without an identification of its patient, for its facility, in its transaction.
-- The record is used up: a second grant needs a second identification.
CREATE FUNCTION public.emergency_grants_identified() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.card_lookup', 'on', true);
        DELETE FROM private.emergency_identifications i
         WHERE i.xact = pg_current_xact_id() AND i.facility_id = NEW.facility_id
           AND i.patient_id = NEW.patient_id AND i.staff_id = NEW.opened_by;
        IF NOT FOUND THEN
            PERFORM private.definer_flags(NULL);
            RAISE EXCEPTION 'an emergency grant needs the patient identified by card number and date of birth in the same transaction'
                USING ERRCODE = '42501';
        END IF;
        -- Leftovers of transactions that identified without opening a grant (the server's
        -- never commit, see above): kept no longer than a day.
        DELETE FROM private.emergency_identifications i
         WHERE i.identified_at < now() - interval '1 day';
        PERFORM private.definer_flags(NULL);
        RETURN NULL;
    END
    $$;
REVOKE ALL ON FUNCTION public.emergency_grants_identified() FROM PUBLIC;
-- AFTER the row passed row-level security: who may write a grant at all stays the policy's
-- decision (and its refusal), this is a further condition.
CREATE TRIGGER emergency_grants_identified AFTER INSERT ON emergency_grants
    FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_identified();
