-- Withdrawal of consent sticks (第12条; issue 11 §1, docs/adr/0014-consent-renewal.md).
--
-- A patient's consent state is one of: none (never recorded), on file, withdrawn (a withdrawal
-- on file and no consent after it), renewed (a consent recorded after a withdrawal). The rules,
-- enforced here whatever the application does:
--
--   * A consent's signing date lies neither in the future nor before the latest withdrawal on
--     file (dates in Japan time).
--   * While the state is "withdrawn", a consent is a renewal: only the registering facility may
--     record it, and only with the scan of the newly signed form. `renewal` says so on the row;
--     it is set here, not by the caller.
--   * Every change (recorded, renewed, withdrawn) is logged in consent_changes — IDs, kind and
--     time, never content — which every facility of the care team reads (notifications), and
--     announced live on renrakucho_events.
--
-- The relations derived for both layers gain two: `collecting` (an active facility of the care
-- team, registering or member, while the state is not "withdrawn": it may record a consent) and
-- `withdrawn` (the same facilities while it is). Casbin's consent.record goes through
-- `collecting`, consent.renew through `registering` (policies/policy.csv).

ALTER TABLE consents ADD COLUMN renewal boolean NOT NULL DEFAULT false;

ALTER TABLE patient_access DROP CONSTRAINT patient_access_relation_check;
ALTER TABLE patient_access ADD CONSTRAINT patient_access_relation_check
    CHECK (relation IN ('registering', 'member', 'invited', 'sharing', 'consented', 'emergency',
                        'support', 'collecting', 'withdrawn'));

-- Consent changes, for the care team's notifications. Written only by the trigger below.
CREATE TABLE consent_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id   uuid NOT NULL,
    -- Erasure deletes the consents, and with them (cascade) their changes.
    consent_id   uuid NOT NULL REFERENCES consents (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('recorded', 'renewed', 'withdrawn')),
    -- The facility that made the change.
    facility_id  uuid NOT NULL REFERENCES facilities (id),
    changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_changes_patient ON consent_changes (patient_id, changed_at);
CREATE INDEX consent_changes_consent ON consent_changes (consent_id);
CREATE INDEX consent_changes_facility ON consent_changes (facility_id);
ALTER TABLE consent_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_changes FORCE ROW LEVEL SECURITY;
GRANT SELECT ON consent_changes TO renrakucho_runtime;
-- Read by the registering facility and the active members (with or without consent on file).
CREATE POLICY consent_changes_team ON consent_changes FOR SELECT TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = consent_changes.patient_id
                      AND a.relation = ANY ('{registering,member}') OFFSET 0));
CREATE POLICY consent_changes_log ON consent_changes FOR INSERT TO CURRENT_USER
    WITH CHECK ((SELECT public.owner_flag('announcing')));

-- A consent about to be recorded: the rules above. SECURITY DEFINER to see every consent of the
-- patient (a member sees none while consent is withdrawn); it reads and decides, nothing else.
CREATE FUNCTION public.consents_admission() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        today date := (now() AT TIME ZONE 'Asia/Tokyo')::date;
        latest_withdrawal timestamptz;
        on_file boolean;
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
        -- One consent change of a patient at a time (withdrawal takes the same lock).
        PERFORM pg_advisory_xact_lock(hashtextextended('renrakucho.consent.' || NEW.patient_id, 0));
        PERFORM private.definer_flags('access_maintenance');
        SELECT max(c.withdrawn_at), bool_or(c.withdrawn_at IS NULL)
          INTO latest_withdrawal, on_file
          FROM public.consents c WHERE c.patient_id = NEW.patient_id;
        PERFORM private.definer_flags(NULL);
        IF NEW.signed_on > today THEN
            RAISE EXCEPTION 'the signing date lies in the future' USING ERRCODE = '23514',
                CONSTRAINT = 'consents_signed_on';
        END IF;
        IF latest_withdrawal IS NOT NULL
           AND NEW.signed_on < (latest_withdrawal AT TIME ZONE 'Asia/Tokyo')::date THEN
            RAISE EXCEPTION 'the signing date precedes the latest withdrawal' USING ERRCODE = '23514',
                CONSTRAINT = 'consents_signed_on';
        END IF;
        NEW.renewal := latest_withdrawal IS NOT NULL AND NOT coalesce(on_file, false);
        IF NEW.renewal THEN
            IF NEW.facility_id IS DISTINCT FROM NEW.registering_facility_id THEN
                RAISE EXCEPTION 'only the registering facility renews a withdrawn consent'
                    USING ERRCODE = '42501';
            END IF;
            IF NEW.scan_object IS NULL THEN
                RAISE EXCEPTION 'a renewal needs the scan of the signed form'
                    USING ERRCODE = '23514', CONSTRAINT = 'consents_renewal_scan';
            END IF;
        END IF;
        RETURN NEW;
    END
    $$;
REVOKE ALL ON FUNCTION public.consents_admission() FROM PUBLIC;
CREATE TRIGGER consents_admission BEFORE INSERT ON consents
    FOR EACH ROW EXECUTE FUNCTION public.consents_admission();

-- Withdrawal: once, and under the patient's consent lock.
CREATE OR REPLACE FUNCTION public.consents_withdraw_once() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
        IF OLD.withdrawn_at IS NOT NULL THEN
            RAISE EXCEPTION 'a withdrawn consent stays withdrawn' USING ERRCODE = '42501';
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('renrakucho.consent.' || NEW.patient_id, 0));
        RETURN NEW;
    END
    $$;

-- Logs and announces each change, built from the row itself.
CREATE FUNCTION public.consents_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        change text;
        by_facility uuid;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            change := CASE WHEN NEW.renewal THEN 'renewed' ELSE 'recorded' END;
            by_facility := NEW.facility_id;
        ELSIF OLD.withdrawn_at IS NULL AND NEW.withdrawn_at IS NOT NULL THEN
            change := 'withdrawn';
            by_facility := NEW.withdrawn_by_facility;
        ELSE
            RETURN NULL;
        END IF;
        PERFORM private.definer_flags('announcing');
        INSERT INTO public.consent_changes (patient_id, consent_id, kind, facility_id)
        VALUES (NEW.patient_id, NEW.id, change, by_facility);
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_events', jsonb_build_object(
            'kind', 'consent', 'patient', NEW.patient_id, 'facility', by_facility,
            'status', change));
        RETURN NULL;
    END
    $$;
REVOKE ALL ON FUNCTION public.consents_announce() FROM PUBLIC;
CREATE TRIGGER consents_announce AFTER INSERT OR UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION public.consents_announce();

-- The relations, with `collecting` and `withdrawn` (see the head of this file).
CREATE OR REPLACE FUNCTION public.refresh_patient_access(p_patient uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        on_file boolean;
        withdrawn boolean;
    BEGIN
        PERFORM private.definer_flags('access_maintenance');
        SELECT coalesce(bool_or(c.withdrawn_at IS NULL), false),
               coalesce(bool_or(c.withdrawn_at IS NOT NULL), false)
          INTO on_file, withdrawn
          FROM public.consents c WHERE c.patient_id = p_patient;
        withdrawn := withdrawn AND NOT on_file;
        DELETE FROM public.patient_access WHERE patient_id = p_patient;
        INSERT INTO public.patient_access (facility_id, patient_id, relation, expires_at)
        SELECT m.facility_id, m.patient_id, r.relation, NULL
          FROM public.care_team_members m
          CROSS JOIN LATERAL (VALUES
              (CASE WHEN m.role = 'registering' THEN 'registering' END),
              (CASE WHEN m.role = 'member' AND m.status = 'active' THEN 'member' END),
              (CASE WHEN m.status = 'invited' THEN 'invited' END),
              (CASE WHEN m.status = 'active' AND (m.role = 'registering' OR on_file)
                    THEN 'sharing' END),
              (CASE WHEN m.status = 'active' AND on_file THEN 'consented' END),
              (CASE WHEN m.status = 'active' AND NOT withdrawn THEN 'collecting' END),
              (CASE WHEN m.status = 'active' AND withdrawn THEN 'withdrawn' END)) AS r(relation)
         WHERE m.patient_id = p_patient AND r.relation IS NOT NULL
        UNION ALL
        SELECT g.facility_id, g.patient_id, 'emergency', max(g.expires_at)
          FROM public.emergency_grants g
         WHERE g.patient_id = p_patient AND g.ended_at IS NULL AND g.expires_at > now()
         GROUP BY g.facility_id, g.patient_id
        UNION ALL
        SELECT DISTINCT s.to_facility_id, s.patient_id, 'support', NULL::timestamptz
          FROM public.support_requests s
         WHERE s.patient_id = p_patient
           AND s.status IN ('requested', 'accepted', 'answered')
           AND on_file;
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_access_changes',
                                 jsonb_build_object('patient', p_patient));
    END
    $$;
REVOKE ALL ON FUNCTION public.refresh_patient_access(uuid) FROM PUBLIC;

-- Every existing patient's relations, with the new ones.
DO $$
DECLARE
    patients uuid[];
    p uuid;
BEGIN
    PERFORM private.definer_flags('access_maintenance');
    SELECT coalesce(array_agg(DISTINCT patient_id), '{}') INTO patients FROM care_team_members;
    PERFORM private.definer_flags(NULL);
    FOREACH p IN ARRAY patients LOOP
        PERFORM public.refresh_patient_access(p);
    END LOOP;
END
$$;

-- A consent is recorded by a facility holding `collecting`, or (a renewal) by the registering
-- facility; the trigger above decides which it is and what a renewal needs.
DROP POLICY consents_insert ON consents;
CREATE POLICY consents_insert ON consents FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = consents.patient_id
                               AND a.relation = ANY ('{registering,collecting}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
