-- Patients (対象者), registered by one facility. Every personal field is encrypted in the
-- application with the patient's own data key (docs/adr/0006); the database holds bytes.
-- Names are found through blind-index terms (keyed HMACs of normalised names).
--
-- Visibility: for now the registering facility; the consent-gated care team widens it.

CREATE TABLE patients (
    id             uuid PRIMARY KEY,
    -- The registering facility.
    facility_id    uuid NOT NULL REFERENCES facilities (id),
    name_enc       bytea NOT NULL,
    kana_enc       bytea NOT NULL,
    -- Date of birth, sex, care level, address, phone, primary doctor (JSON, encrypted).
    profile_enc    bytea NOT NULL,
    registered_by  uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (facility_id, registered_by) REFERENCES staff_accounts (facility_id, id),
    UNIQUE (facility_id, id)
);
CREATE INDEX patients_facility ON patients (facility_id, created_at);
ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY patients_registering ON patients
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
-- No DELETE: a deletion request destroys the patient's key (crypto-shredding) instead.
GRANT SELECT, INSERT, UPDATE ON patients TO renrakucho_runtime;

-- Blind-index terms of a patient's name and reading: one row per term. Derived data: replaced
-- (deleted and inserted) when the name changes.
CREATE TABLE patient_name_terms (
    patient_id  uuid NOT NULL,
    facility_id uuid NOT NULL,
    term        bytea NOT NULL CHECK (length(term) = 32),
    PRIMARY KEY (patient_id, term),
    FOREIGN KEY (facility_id, patient_id) REFERENCES patients (facility_id, id)
);
CREATE INDEX patient_name_terms_lookup ON patient_name_terms (facility_id, term);
ALTER TABLE patient_name_terms ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_name_terms FORCE ROW LEVEL SECURITY;
CREATE POLICY patient_name_terms_registering ON patient_name_terms
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
GRANT SELECT, INSERT, DELETE ON patient_name_terms TO renrakucho_runtime;
