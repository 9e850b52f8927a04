-- Consent-gated sharing across facilities (第3条(1), 第11条, 第12条): a facility sees a patient
-- when it registered the patient, or is an active member of the patient's care team while the
-- patient's consent is on file, or holds an unexpired emergency (break-glass) grant, read only.
-- Casbin (policies/) says the same in the application; tests/integration/sharing.rs proves the
-- two agree, cell by cell.
--
-- The relation itself lives in one derived table, patient_access: one row per (facility,
-- patient, relation). Every patient-data policy asks it ("does the transaction's facility hold
-- relation R to this row's patient?"), so the policies never query the tables they protect
-- (no recursion), a lookup is one index probe, and the server's Casbin loader reads the very
-- same rows. It is written only by refresh_patient_access(), which triggers call whenever a
-- membership, a consent or an emergency grant changes; the runtime role can read its own
-- facility's rows and can write none.
--
-- Relations:
--   registering  the facility that registered the patient
--   member       an active member of the care team other than the registering facility
--   invited      invited into the care team, not yet accepted
--   sharing      may see and write the patient's data: registering, or an active member while
--                consent is on file
--   emergency    an unexpired emergency grant (expires_at), read only

-- Access maintenance: set only inside the SECURITY DEFINER functions below, and honoured only
-- by policies granted to the owner role; the runtime role has no write privilege on
-- patient_access at all.
CREATE FUNCTION in_access_maintenance() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renrakucho.access_maintenance', true), '') = 'on' $$;

-- Access sync: the server's Casbin loader reads every facility's relation rows (IDs and relation
-- names, nothing of the patients).
CREATE FUNCTION in_access_sync() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renrakucho.access_sync', true), '') = 'on' $$;

-- The patient being erased by erase_patient() (owner-only policies honour it).
CREATE FUNCTION erasure_target() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('renrakucho.erasure_patient', true), '')::uuid $$;

CREATE TABLE patient_access (
    facility_id uuid NOT NULL REFERENCES facilities (id),
    patient_id  uuid NOT NULL,
    relation    text NOT NULL
                CHECK (relation IN ('registering', 'member', 'invited', 'sharing', 'emergency')),
    -- Emergency grants only: the latest expiry of the facility's open grants.
    expires_at  timestamptz,
    PRIMARY KEY (facility_id, patient_id, relation),
    CHECK ((relation = 'emergency') = (expires_at IS NOT NULL))
);
CREATE INDEX patient_access_patient ON patient_access (patient_id);
ALTER TABLE patient_access ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_access FORCE ROW LEVEL SECURITY;
CREATE POLICY patient_access_own ON patient_access FOR SELECT
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY patient_access_sync ON patient_access FOR SELECT
    USING ((SELECT in_access_sync()));
CREATE POLICY patient_access_maintenance ON patient_access TO CURRENT_USER
    USING ((SELECT in_access_maintenance()))
    WITH CHECK ((SELECT in_access_maintenance()));
GRANT SELECT ON patient_access TO renrakucho_runtime;

-- Whether the transaction's facility holds `p_relation` to the patient now. Inlined by the
-- planner into the policies that call it: one probe of patient_access's primary key.
CREATE FUNCTION has_access(p_patient uuid, p_relation text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT EXISTS (
            SELECT FROM public.patient_access a
             WHERE a.facility_id = (SELECT public.current_facility_id())
               AND a.patient_id = p_patient
               AND a.relation = p_relation
               AND (a.expires_at IS NULL OR a.expires_at > now()))
    $$;

-- The care team, the registering facility included (role 'registering', always active).
CREATE TABLE care_team_members (
    patient_id              uuid NOT NULL,
    registering_facility_id uuid NOT NULL,
    facility_id             uuid NOT NULL REFERENCES facilities (id),
    role                    text NOT NULL CHECK (role IN ('registering', 'member')),
    status                  text NOT NULL
                            CHECK (status IN ('invited', 'active', 'declined', 'left', 'removed')),
    invited_by              uuid,
    invited_at              timestamptz NOT NULL DEFAULT now(),
    joined_at               timestamptz,
    ended_at                timestamptz,
    PRIMARY KEY (patient_id, facility_id),
    FOREIGN KEY (registering_facility_id, patient_id) REFERENCES patients (facility_id, id),
    CHECK (role <> 'registering' OR (status = 'active' AND facility_id = registering_facility_id))
);
CREATE INDEX care_team_members_facility ON care_team_members (facility_id, status);
CREATE INDEX care_team_members_registering ON care_team_members (registering_facility_id);
ALTER TABLE care_team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE care_team_members FORCE ROW LEVEL SECURITY;
-- A facility sees its own memberships and invitations; a facility sharing the patient (or
-- holding an emergency grant) sees the whole team, to know whom to contact.
CREATE POLICY care_team_members_read ON care_team_members FOR SELECT
    USING (facility_id = (SELECT current_facility_id())
           OR has_access(patient_id, 'sharing')
           OR has_access(patient_id, 'emergency'));
-- The registering facility writes its own row with the patient; a sharing facility invites.
CREATE POLICY care_team_members_insert ON care_team_members FOR INSERT
    WITH CHECK ((role = 'registering' AND facility_id = (SELECT current_facility_id()))
                OR (role = 'member' AND status = 'invited'
                    AND facility_id <> (SELECT current_facility_id())
                    AND has_access(patient_id, 'sharing')));
-- Its own membership (accept, decline, leave), or, for the registering facility, the others'
-- (remove, cancel, invite again). Which transitions are allowed to whom: the trigger below.
CREATE POLICY care_team_members_update ON care_team_members FOR UPDATE
    USING (facility_id = (SELECT current_facility_id())
           OR has_access(patient_id, 'registering'))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR has_access(patient_id, 'registering'));
CREATE POLICY care_team_members_maintenance ON care_team_members FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY care_team_members_erasure ON care_team_members FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
GRANT SELECT, INSERT ON care_team_members TO renrakucho_runtime;
GRANT UPDATE (status, invited_by, invited_at, joined_at, ended_at)
    ON care_team_members TO renrakucho_runtime;

-- Who may move a membership from which state to which. A facility accepts, declines or leaves
-- for itself; the registering facility removes members, cancels invitations and invites former
-- members again. Nobody re-activates a membership except by accepting a new invitation.
CREATE FUNCTION care_team_members_transition() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        me   uuid := current_facility_id();
        own  boolean := NEW.facility_id = me;
        step text := OLD.status || '>' || NEW.status;
    BEGIN
        IF OLD.role = 'registering' THEN
            RAISE EXCEPTION 'the registering facility stays in the care team' USING ERRCODE = '42501';
        END IF;
        IF own AND step IN ('invited>active', 'invited>declined', 'active>left') THEN
            RETURN NEW;
        END IF;
        IF NOT own AND NEW.registering_facility_id = me
           AND step IN ('active>removed', 'invited>removed', 'left>invited', 'removed>invited',
                        'declined>invited') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'care-team membership cannot move from % to % here', OLD.status, NEW.status
            USING ERRCODE = '42501';
    END
    $$;
CREATE TRIGGER care_team_members_transition BEFORE UPDATE ON care_team_members
    FOR EACH ROW EXECUTE FUNCTION care_team_members_transition();

-- Consent (同意書, 第12条): who signed, when, which facility collected it; the signer's details
-- and the scope are encrypted with the patient's key, and so is the scan of the signed form
-- (stored as an object, named here). Withdrawal is recorded, never deleted.
CREATE TABLE consents (
    id                      uuid PRIMARY KEY,
    patient_id              uuid NOT NULL,
    registering_facility_id uuid NOT NULL,
    facility_id             uuid NOT NULL REFERENCES facilities (id),
    signer                  text NOT NULL CHECK (signer IN ('patient', 'family')),
    details_enc             bytea NOT NULL,
    signed_on               date NOT NULL,
    scan_object             text CHECK (char_length(scan_object) BETWEEN 1 AND 200),
    scan_media_type         text CHECK (scan_media_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    scan_size               bigint CHECK (scan_size > 0),
    recorded_by             uuid NOT NULL,
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    withdrawn_at            timestamptz,
    withdrawn_by            uuid,
    withdrawn_by_facility   uuid,
    FOREIGN KEY (registering_facility_id, patient_id) REFERENCES patients (facility_id, id),
    FOREIGN KEY (facility_id, recorded_by) REFERENCES staff_accounts (facility_id, id),
    CHECK ((scan_object IS NULL) = (scan_media_type IS NULL)
           AND (scan_object IS NULL) = (scan_size IS NULL)),
    CHECK ((withdrawn_at IS NULL) = (withdrawn_by IS NULL)
           AND (withdrawn_at IS NULL) = (withdrawn_by_facility IS NULL))
);
CREATE INDEX consents_patient ON consents (patient_id) WHERE withdrawn_at IS NULL;
CREATE INDEX consents_facility ON consents (facility_id);
CREATE INDEX consents_registering ON consents (registering_facility_id);
ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;
-- Read by the facilities sharing the patient, and by the facility that collected the form.
CREATE POLICY consents_read ON consents FOR SELECT
    USING (facility_id = (SELECT current_facility_id())
           OR has_access(patient_id, 'sharing'));
-- Recorded by the registering facility or an active member (a consent collected before the
-- member can see the patient is what opens the notebook to it).
CREATE POLICY consents_insert ON consents FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND (has_access(patient_id, 'registering') OR has_access(patient_id, 'member')));
-- Withdrawn by a facility sharing the patient; only the withdrawal columns can change, once.
CREATE POLICY consents_withdraw ON consents FOR UPDATE
    USING (has_access(patient_id, 'sharing'))
    WITH CHECK (withdrawn_by_facility = (SELECT current_facility_id()));
CREATE POLICY consents_maintenance ON consents FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY consents_erasure ON consents FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
GRANT SELECT, INSERT ON consents TO renrakucho_runtime;
GRANT UPDATE (withdrawn_at, withdrawn_by, withdrawn_by_facility) ON consents TO renrakucho_runtime;

CREATE FUNCTION consents_withdraw_once() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF OLD.withdrawn_at IS NOT NULL THEN
            RAISE EXCEPTION 'a withdrawn consent stays withdrawn' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER consents_withdraw_once BEFORE UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION consents_withdraw_once();

-- Emergency access (break-glass): a doctor or nurse outside the care team opens a patient's
-- notebook read-only for a limited time after stating a reason (encrypted with the patient's
-- key). The care team sees every grant on its patients, to review it.
CREATE TABLE emergency_grants (
    id                   uuid PRIMARY KEY,
    facility_id          uuid NOT NULL REFERENCES facilities (id),
    patient_id           uuid NOT NULL REFERENCES patients (id),
    opened_by            uuid NOT NULL,
    -- Set in the same transaction as the insert: the patient's key becomes readable to the
    -- opening facility only once the grant exists. A deferred check refuses a commit without.
    reason_enc           bytea,
    opened_at            timestamptz NOT NULL DEFAULT now(),
    expires_at           timestamptz NOT NULL,
    ended_at             timestamptz,
    reviewed_at          timestamptz,
    reviewed_by          uuid,
    reviewed_by_facility uuid,
    FOREIGN KEY (facility_id, opened_by) REFERENCES staff_accounts (facility_id, id),
    CHECK (expires_at > opened_at AND expires_at <= opened_at + interval '72 hours'),
    CHECK ((reviewed_at IS NULL) = (reviewed_by IS NULL)
           AND (reviewed_at IS NULL) = (reviewed_by_facility IS NULL))
);
CREATE INDEX emergency_grants_facility ON emergency_grants (facility_id, opened_at);
CREATE INDEX emergency_grants_patient ON emergency_grants (patient_id, opened_at);
ALTER TABLE emergency_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE emergency_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY emergency_grants_read ON emergency_grants FOR SELECT
    USING (facility_id = (SELECT current_facility_id())
           OR has_access(patient_id, 'sharing'));
CREATE POLICY emergency_grants_open ON emergency_grants FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id()) AND ended_at IS NULL
                AND reviewed_at IS NULL);
-- The opening facility ends its grant early; a sharing facility marks it reviewed.
CREATE POLICY emergency_grants_update ON emergency_grants FOR UPDATE
    USING (facility_id = (SELECT current_facility_id()) OR has_access(patient_id, 'sharing'))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR (has_access(patient_id, 'sharing')
                    AND reviewed_by_facility = (SELECT current_facility_id())));
CREATE POLICY emergency_grants_maintenance ON emergency_grants FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY emergency_grants_erasure ON emergency_grants FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
GRANT SELECT, INSERT ON emergency_grants TO renrakucho_runtime;
GRANT UPDATE (reason_enc, ended_at, reviewed_at, reviewed_by, reviewed_by_facility)
    ON emergency_grants TO renrakucho_runtime;

CREATE FUNCTION emergency_grants_reason_given() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF EXISTS (SELECT FROM public.emergency_grants g
                    WHERE g.id = NEW.id AND g.reason_enc IS NULL) THEN
            RAISE EXCEPTION 'an emergency grant needs its reason' USING ERRCODE = '23502';
        END IF;
        RETURN NULL;
    END
    $$;
CREATE CONSTRAINT TRIGGER emergency_grants_reason_given AFTER INSERT ON emergency_grants
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION emergency_grants_reason_given();

-- Ending a grant or reviewing it happens once; reviewing is for the care team, ending for the
-- facility that opened it.
CREATE FUNCTION emergency_grants_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        me uuid := current_facility_id();
    BEGIN
        IF NEW.reason_enc IS DISTINCT FROM OLD.reason_enc
           AND (OLD.reason_enc IS NOT NULL OR NEW.facility_id <> me) THEN
            RAISE EXCEPTION 'the reason is given once, by the opening facility' USING ERRCODE = '42501';
        END IF;
        IF NEW.ended_at IS DISTINCT FROM OLD.ended_at
           AND (OLD.ended_at IS NOT NULL OR NEW.facility_id <> me) THEN
            RAISE EXCEPTION 'only the opening facility ends its grant, once' USING ERRCODE = '42501';
        END IF;
        IF NEW.reviewed_at IS DISTINCT FROM OLD.reviewed_at
           AND (OLD.reviewed_at IS NOT NULL OR NEW.facility_id = me) THEN
            RAISE EXCEPTION 'a grant is reviewed once, by the care team' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER emergency_grants_guard BEFORE UPDATE ON emergency_grants
    FOR EACH ROW EXECUTE FUNCTION emergency_grants_guard();

-- Recomputes one patient's relation rows from the care team, the consents and the emergency
-- grants, and announces the change to every server process (Casbin follows). SECURITY
-- DEFINER: it reads every facility's rows through the owner-only maintenance policies, which
-- it switches on for its own statements only.
CREATE FUNCTION refresh_patient_access(p_patient uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        previous text := coalesce(current_setting('renrakucho.access_maintenance', true), '');
    BEGIN
        PERFORM set_config('renrakucho.access_maintenance', 'on', true);
        DELETE FROM public.patient_access WHERE patient_id = p_patient;
        INSERT INTO public.patient_access (facility_id, patient_id, relation, expires_at)
        SELECT m.facility_id, m.patient_id, r.relation, NULL
          FROM public.care_team_members m
          CROSS JOIN LATERAL (VALUES
              (CASE WHEN m.role = 'registering' THEN 'registering' END),
              (CASE WHEN m.role = 'member' AND m.status = 'active' THEN 'member' END),
              (CASE WHEN m.status = 'invited' THEN 'invited' END),
              (CASE WHEN m.status = 'active'
                         AND (m.role = 'registering'
                              OR EXISTS (SELECT FROM public.consents c
                                          WHERE c.patient_id = m.patient_id
                                            AND c.withdrawn_at IS NULL))
                    THEN 'sharing' END)) AS r(relation)
         WHERE m.patient_id = p_patient AND r.relation IS NOT NULL
        UNION ALL
        SELECT g.facility_id, g.patient_id, 'emergency', max(g.expires_at)
          FROM public.emergency_grants g
         WHERE g.patient_id = p_patient AND g.ended_at IS NULL AND g.expires_at > now()
         GROUP BY g.facility_id, g.patient_id;
        PERFORM pg_notify('renrakucho_access_changes', p_patient::text);
        PERFORM set_config('renrakucho.access_maintenance', previous, true);
    END
    $$;
REVOKE ALL ON FUNCTION refresh_patient_access(uuid) FROM PUBLIC;

CREATE FUNCTION patient_access_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    BEGIN
        PERFORM public.refresh_patient_access(NEW.patient_id);
        RETURN NULL;
    END
    $$;
REVOKE ALL ON FUNCTION patient_access_changed() FROM PUBLIC;
CREATE TRIGGER care_team_members_access AFTER INSERT OR UPDATE ON care_team_members
    FOR EACH ROW EXECUTE FUNCTION patient_access_changed();
CREATE TRIGGER consents_access AFTER INSERT OR UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION patient_access_changed();
CREATE TRIGGER emergency_grants_access AFTER INSERT OR UPDATE ON emergency_grants
    FOR EACH ROW EXECUTE FUNCTION patient_access_changed();

-- Deletion requests (第12条2–3): recorded by a facility sharing the patient, carried out at once
-- by erase_patient(). What remains afterwards is this row (IDs, times, counts) and the audit
-- records: no personal data.
CREATE TABLE deletion_requests (
    id           uuid PRIMARY KEY,
    facility_id  uuid NOT NULL REFERENCES facilities (id),
    patient_id   uuid NOT NULL,
    requested_by uuid NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    erased       jsonb NOT NULL DEFAULT '{}'::jsonb,
    FOREIGN KEY (facility_id, requested_by) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX deletion_requests_facility ON deletion_requests (facility_id, requested_at);
CREATE INDEX deletion_requests_patient ON deletion_requests (patient_id);
ALTER TABLE deletion_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE deletion_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY deletion_requests_own ON deletion_requests FOR SELECT
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY deletion_requests_record ON deletion_requests FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND has_access(patient_id, 'sharing') AND completed_at IS NULL);
CREATE POLICY deletion_requests_complete ON deletion_requests FOR UPDATE
    USING (facility_id = (SELECT current_facility_id()) AND completed_at IS NULL)
    WITH CHECK (facility_id = (SELECT current_facility_id()));
GRANT SELECT, INSERT ON deletion_requests TO renrakucho_runtime;
GRANT UPDATE (completed_at, erased) ON deletion_requests TO renrakucho_runtime;

-- Whether the transaction's facility is carrying out a deletion request for the patient now:
-- recorded in this very transaction (its xmin) and not completed. A request left behind by an
-- earlier transaction gives no power over the patient's keys later.
CREATE FUNCTION erasing(p_patient uuid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT EXISTS (SELECT FROM public.deletion_requests d
                        WHERE d.patient_id = p_patient
                          AND d.facility_id = (SELECT public.current_facility_id())
                          AND d.completed_at IS NULL
                          AND d.xmin = pg_current_xact_id()::xid)
    $$;

-- Visibility of the patient's own rows follows the relation.
DROP POLICY patients_registering ON patients;
CREATE POLICY patients_read ON patients FOR SELECT
    USING (has_access(id, 'sharing') OR has_access(id, 'emergency'));
CREATE POLICY patients_register ON patients FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id()));
-- Only the registering facility corrects the registration.
CREATE POLICY patients_update ON patients FOR UPDATE
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY patients_erasure_read ON patients FOR SELECT TO CURRENT_USER
    USING (id = (SELECT erasure_target()));
CREATE POLICY patients_erasure ON patients FOR DELETE TO CURRENT_USER
    USING (id = (SELECT erasure_target()));

DROP POLICY patient_name_terms_registering ON patient_name_terms;
CREATE POLICY patient_name_terms_read ON patient_name_terms FOR SELECT
    USING (has_access(patient_id, 'sharing'));
-- Written (replaced) by the registering facility, with the name.
CREATE POLICY patient_name_terms_write ON patient_name_terms FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY patient_name_terms_replace ON patient_name_terms FOR DELETE
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY patient_name_terms_erasure_read ON patient_name_terms FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY patient_name_terms_erasure ON patient_name_terms FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

-- A facility that may read the patient reads the patient's data keys (to decrypt), and so does
-- an active member (to encrypt a consent form it collected: the values themselves stay hidden
-- from it until consent is on file); only the registering facility creates or rotates them;
-- the facility carrying out a deletion request destroys them (crypto-shredding).
ALTER POLICY data_keys_facility ON data_keys
    USING (facility_id = (SELECT current_facility_id())
           OR (owner_kind = 'patient'
               AND (has_access(owner_id, 'sharing') OR has_access(owner_id, 'member')
                    OR has_access(owner_id, 'emergency'))))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY data_keys_erasure ON data_keys FOR UPDATE
    USING (owner_kind = 'patient' AND erasing(owner_id))
    WITH CHECK (owner_kind = 'patient' AND erasing(owner_id) AND wrapped IS NULL);

-- Carries out a recorded deletion request: removes everything stored about the patient, in
-- every facility, in the caller's transaction. The caller then destroys the patient's data keys
-- (crypto-shredding) and completes the request. Refuses unless the caller's facility shares
-- the patient and has a pending request for it.
CREATE FUNCTION erase_patient(p_patient uuid) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        previous text := coalesce(current_setting('renrakucho.erasure_patient', true), '');
        counts   jsonb := '{}'::jsonb;
        n        bigint;
    BEGIN
        IF NOT (public.has_access(p_patient, 'sharing') AND public.erasing(p_patient)) THEN
            RAISE EXCEPTION 'no deletion request to carry out' USING ERRCODE = 'P0002';
        END IF;
        PERFORM set_config('renrakucho.erasure_patient', p_patient::text, true);
        DELETE FROM public.emergency_grants WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('emergency_grants', n);
        DELETE FROM public.consents WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('consents', n);
        DELETE FROM public.care_team_members WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('care_team_members', n);
        DELETE FROM public.patient_name_terms WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('name_terms', n);
        DELETE FROM public.patients WHERE id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('patients', n);
        PERFORM set_config('renrakucho.erasure_patient', previous, true);
        -- The relation goes too; the data keys stay readable to this transaction (through the
        -- pending request) until the caller destroys them.
        PERFORM public.refresh_patient_access(p_patient);
        RETURN counts;
    END
    $$;
REVOKE ALL ON FUNCTION erase_patient(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erase_patient(uuid) TO renrakucho_runtime;

-- data_keys readable while erasing, so that the caller can destroy them after the relation is
-- gone.
CREATE POLICY data_keys_erasure_read ON data_keys FOR SELECT
    USING (owner_kind = 'patient' AND erasing(owner_id));

-- Staff a facility administrator allows to accept care-team invitations for the facility.
ALTER TABLE staff_accounts
    ADD COLUMN may_accept_invitations boolean NOT NULL DEFAULT false;

-- The directory of participating facilities (第16条: public by default): code, name and kind of
-- active facilities, for choosing whom to invite and for naming the members of a care team.
-- Like facility_for_sign_in, it enters platform scope for its one query and restores the
-- caller's setting; it returns nothing but these public fields.
CREATE FUNCTION facility_directory(p_ids uuid[], p_code text)
    RETURNS TABLE (id uuid, code text, name text, kind text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        previous text := coalesce(current_setting('renrakucho.platform', true), '');
    BEGIN
        PERFORM set_config('renrakucho.platform', 'on', true);
        RETURN QUERY
            SELECT f.id, f.code, f.name, f.kind FROM public.facilities f
             WHERE f.status = 'active'
               AND (p_ids IS NULL OR f.id = ANY (p_ids))
               AND (p_code IS NULL OR f.code = upper(p_code))
             ORDER BY f.kind, f.code;
        PERFORM set_config('renrakucho.platform', previous, true);
    END
    $$;
REVOKE ALL ON FUNCTION facility_directory(uuid[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION facility_directory(uuid[], text) TO renrakucho_runtime;
