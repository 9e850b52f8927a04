-- Issue 11 brought three migrations written side by side: break-glass identification (11),
-- master key epochs (13) and values bound to their version (14). This one makes them one
-- schema: the card number of migration 11 is bound to its revision like every other value that
-- is replaced in place (ADR 0016), and the owner-only flags of 11 and 14 are one list.

-- The revision of a card's number: 1 when issued, one more at every re-issue, counted by the
-- database; re-encryption keeps it. The number's associated data names it, so the number of an
-- earlier card put back into the row no longer decrypts.
ALTER TABLE patient_cards ADD COLUMN revision bigint NOT NULL DEFAULT 1 CHECK (revision >= 1);

CREATE FUNCTION public.patient_cards_revision() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            NEW.revision := 1;
        ELSIF public.reencrypting(NEW.patient_id) THEN
            NEW.revision := OLD.revision;
        ELSIF NEW.number_enc IS DISTINCT FROM OLD.number_enc THEN
            NEW.revision := OLD.revision + 1;
        ELSE
            NEW.revision := OLD.revision;
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER patient_cards_revision BEFORE INSERT OR UPDATE ON patient_cards
    FOR EACH ROW EXECUTE FUNCTION public.patient_cards_revision();

CREATE OR REPLACE FUNCTION public.encrypted_column_binding(p_table text, p_column text) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC
        SELECT CASE p_table || '.' || p_column
            WHEN 'patients.name_enc' THEN ARRAY['id', 'revision']
            WHEN 'patients.kana_enc' THEN ARRAY['id', 'revision']
            WHEN 'patients.profile_enc' THEN ARRAY['id', 'revision']
            WHEN 'consents.details_enc' THEN ARRAY['id', NULL]
            WHEN 'emergency_grants.reason_enc' THEN ARRAY['id', NULL]
            WHEN 'entries.body_enc' THEN ARRAY['id', 'version']
            WHEN 'entries.vitals_enc' THEN ARRAY['id', 'version']
            WHEN 'entries.withdrawal_reason_enc' THEN ARRAY['id', NULL]
            WHEN 'entry_versions.body_enc' THEN ARRAY['entry_id', 'version']
            WHEN 'entry_versions.vitals_enc' THEN ARRAY['entry_id', 'version']
            WHEN 'attachments.file_name_enc' THEN ARRAY['id', NULL]
            WHEN 'support_requests.question_enc' THEN ARRAY['id', NULL]
            WHEN 'support_requests.summary_enc' THEN ARRAY['id', NULL]
            WHEN 'support_requests.answer_enc' THEN ARRAY['id', NULL]
            WHEN 'patient_cards.number_enc' THEN ARRAY['id', 'revision']
        END;
    END;

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
            WHEN 'entry_versions.body_enc' THEN 'patient_id'
            WHEN 'entry_versions.vitals_enc' THEN 'patient_id'
            WHEN 'attachments.file_name_enc' THEN 'patient_id'
            WHEN 'support_requests.question_enc' THEN 'patient_id'
            WHEN 'support_requests.summary_enc' THEN 'patient_id'
            WHEN 'support_requests.answer_enc' THEN 'patient_id'
            WHEN 'patient_cards.number_enc' THEN 'patient_id'
        END;
    END;

-- The completion check of `keys bind-versions` counts card numbers too.
CREATE POLICY patient_cards_value_check ON patient_cards FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE OR REPLACE FUNCTION private.legacy_value_count() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT (SELECT count(*) FROM public.patients
                 WHERE get_byte(name_enc, 0) = 1 OR get_byte(kana_enc, 0) = 1
                    OR get_byte(profile_enc, 0) = 1)
             + (SELECT count(*) FROM public.consents WHERE get_byte(details_enc, 0) = 1)
             + (SELECT count(*) FROM public.emergency_grants
                 WHERE reason_enc IS NOT NULL AND get_byte(reason_enc, 0) = 1)
             + (SELECT count(*) FROM public.entries
                 WHERE get_byte(body_enc, 0) = 1
                    OR (vitals_enc IS NOT NULL AND get_byte(vitals_enc, 0) = 1)
                    OR (withdrawal_reason_enc IS NOT NULL AND get_byte(withdrawal_reason_enc, 0) = 1))
             + (SELECT count(*) FROM public.entry_versions
                 WHERE get_byte(body_enc, 0) = 1
                    OR (vitals_enc IS NOT NULL AND get_byte(vitals_enc, 0) = 1))
             + (SELECT count(*) FROM public.attachments WHERE get_byte(file_name_enc, 0) = 1)
             + (SELECT count(*) FROM public.support_requests
                 WHERE get_byte(question_enc, 0) = 1 OR get_byte(summary_enc, 0) = 1
                    OR (answer_enc IS NOT NULL AND get_byte(answer_enc, 0) = 1))
             + (SELECT count(*) FROM public.patient_cards WHERE get_byte(number_enc, 0) = 1)
    $$;
REVOKE ALL ON FUNCTION private.legacy_value_count() FROM PUBLIC;

-- Every owner-only flag: those of migration 8, 'alerting' (9), 'card_lookup' (11) and
-- 'value_check' (14).
CREATE OR REPLACE FUNCTION private.definer_flags(p_on text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        flag text;
    BEGIN
        FOREACH flag IN ARRAY ARRAY['access_maintenance', 'erasure_patient', 'reencrypt_patient',
                                    'directory', 'session_store', 'announcing', 'alerting',
                                    'card_lookup', 'value_check'] LOOP
            PERFORM set_config('renrakucho.' || flag, CASE WHEN flag = p_on THEN 'on' ELSE '' END, true);
        END LOOP;
    END
    $$;
REVOKE ALL ON FUNCTION private.definer_flags(text) FROM PUBLIC;
