-- Consent-gated sharing (第3条(1), 第11条, 第12条): a facility sees a patient when it is the
-- registering facility, or an active member of the patient's care team while the patient's
-- consent is on file. Casbin (policies/) says the same in the application; the tests prove the
-- two agree.

-- Access sync: each server process loads who may see which patient into Casbin, and reloads
-- one patient when NOTIFY says it changed. It reads the relation (IDs and statuses), nothing
-- of the patient.
CREATE FUNCTION in_access_sync() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renrakucho.access_sync', true), '') = 'on' $$;

-- The care team, the registering facility included (role 'registering', always active).
CREATE TABLE care_team_members (
    patient_id              uuid NOT NULL,
    registering_facility_id uuid NOT NULL,
    facility_id             uuid NOT NULL REFERENCES facilities (id),
    role                    text NOT NULL CHECK (role IN ('registering', 'member')),
    status                  text NOT NULL CHECK (status IN ('invited', 'active', 'left', 'removed')),
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
-- A facility sees its own memberships (and invitations), the registering facility sees the
-- whole team. Members see each other through care_team_of() below.
-- Whether the transaction's facility is an active member of the patient's care team (its own
-- membership row is visible to it). plpgsql, so that it is never inlined into the policies of
-- care_team_members itself.
CREATE FUNCTION is_active_member(p_patient uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public
    AS $$
    BEGIN
        RETURN EXISTS (SELECT FROM public.care_team_members m
                        WHERE m.patient_id = p_patient
                          AND m.facility_id = (SELECT public.current_facility_id())
                          AND m.status = 'active');
    END
    $$;

CREATE POLICY care_team_members_own ON care_team_members
    USING (facility_id = (SELECT current_facility_id())
           OR registering_facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR registering_facility_id = (SELECT current_facility_id())
                OR (status = 'invited' AND role = 'member' AND is_active_member(patient_id)));
CREATE POLICY care_team_members_sync ON care_team_members FOR SELECT
    USING ((SELECT in_access_sync()));
GRANT SELECT, INSERT, UPDATE ON care_team_members TO renrakucho_runtime;

-- Consent (同意書): who signed, when, collected by which facility; the signer's details and
-- the scope are encrypted with the patient's key. Withdrawal is recorded, never deleted.
CREATE TABLE consents (
    id                      uuid PRIMARY KEY,
    patient_id              uuid NOT NULL,
    registering_facility_id uuid NOT NULL,
    facility_id             uuid NOT NULL REFERENCES facilities (id),
    signer                  text NOT NULL CHECK (signer IN ('patient', 'family')),
    details_enc             bytea NOT NULL,
    signed_on               date NOT NULL,
    recorded_by             uuid NOT NULL,
    recorded_at             timestamptz NOT NULL DEFAULT now(),
    withdrawn_at            timestamptz,
    withdrawn_by            uuid,
    FOREIGN KEY (registering_facility_id, patient_id) REFERENCES patients (facility_id, id)
);
CREATE INDEX consents_patient ON consents (patient_id) WHERE withdrawn_at IS NULL;
CREATE INDEX consents_facility ON consents (facility_id);
CREATE INDEX consents_registering ON consents (registering_facility_id);
ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE consents FORCE ROW LEVEL SECURITY;

CREATE POLICY consents_team ON consents
    USING (registering_facility_id = (SELECT current_facility_id())
           OR facility_id = (SELECT current_facility_id())
           OR is_active_member(patient_id))
    WITH CHECK (registering_facility_id = (SELECT current_facility_id())
                OR (facility_id = (SELECT current_facility_id()) AND is_active_member(patient_id)));
CREATE POLICY consents_sync ON consents FOR SELECT
    USING ((SELECT in_access_sync()));
GRANT SELECT, INSERT, UPDATE ON consents TO renrakucho_runtime;

-- The rule itself: the registering facility, or an active member while consent is on file.
CREATE FUNCTION may_see_patient(p_patient uuid, p_registering uuid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT p_registering = (SELECT current_facility_id())
            OR (is_active_member(p_patient)
                AND EXISTS (SELECT FROM consents c
                             WHERE c.patient_id = p_patient AND c.withdrawn_at IS NULL))
    $$;

ALTER POLICY patients_registering ON patients
    USING (may_see_patient(id, facility_id))
    WITH CHECK (facility_id = (SELECT current_facility_id()));

ALTER POLICY patient_name_terms_registering ON patient_name_terms
    USING (may_see_patient(patient_id, facility_id))
    WITH CHECK (facility_id = (SELECT current_facility_id()));

-- A care-team member reads the patient's data keys (to read the notebook); only the
-- registering facility creates, rotates or destroys them.
ALTER POLICY data_keys_facility ON data_keys
    USING (facility_id = (SELECT current_facility_id())
           OR (owner_kind = 'patient'
               AND EXISTS (SELECT FROM patients p WHERE p.id = data_keys.owner_id)))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
