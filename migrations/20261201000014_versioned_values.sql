-- Values bound to their version (issue 11 §3, docs/adr/0016-values-bound-to-their-version.md).
--
-- The associated data of an encrypted value names its row, table and column; from ciphertext
-- format 2 on it also names what makes the value the current one:
--   entries.body_enc, entries.vitals_enc          the entry's version number (entries.version)
--   entry_versions.body_enc, .vitals_enc          their own (entry_id, version)
--   patients.name_enc, .kana_enc, .profile_enc    the row's revision, counted here (below)
--   every other encrypted column                  nothing (0): written once, never replaced
-- so an earlier ciphertext put back into the row no longer decrypts. Values written in format 1
-- are re-encrypted by `renrakucho keys bind-versions`, which, once none is left, records here
-- that format 1 is refused from then on; a new database starts that way.

-- The revision of a patient's encrypted fields: 1 at registration, one more at every change of
-- any of them, counted by the database (whatever the statement says) so that the application
-- cannot bind a correction to an earlier revision. Re-encryption (same plaintext, a newer key or
-- format) keeps it.
ALTER TABLE patients ADD COLUMN revision bigint NOT NULL DEFAULT 1 CHECK (revision >= 1);

CREATE FUNCTION public.patients_revision() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            NEW.revision := 1;
        ELSIF public.reencrypting(NEW.id) THEN
            NEW.revision := OLD.revision;
        ELSIF NEW.name_enc IS DISTINCT FROM OLD.name_enc
              OR NEW.kana_enc IS DISTINCT FROM OLD.kana_enc
              OR NEW.profile_enc IS DISTINCT FROM OLD.profile_enc THEN
            NEW.revision := OLD.revision + 1;
        ELSE
            NEW.revision := OLD.revision;
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER patients_revision BEFORE INSERT OR UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION public.patients_revision();

-- Which column's UUID the associated data names as the row, and which column holds the
-- version it names (NULL: a value written once, version 0). The application's
-- ENCRYPTED_COLUMNS and HISTORY_COLUMNS say the same (the catalog test compares them).
CREATE FUNCTION public.encrypted_column_binding(p_table text, p_column text) RETURNS text[]
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
        END;
    END;

-- Key maintenance now reaches an entry's history too, for one change only (the guard below):
-- a value of format 1 re-encrypted in format 2, bound to its version. Data-key rotation still
-- leaves history alone (the application's HISTORY_COLUMNS).
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
        END;
    END;

-- A patient's values in one column: the row's ID (where the value is replaced), the row and
-- version its associated data names, and the value. Key maintenance only.
DROP FUNCTION public.encrypted_values(text, text, uuid);
CREATE FUNCTION public.encrypted_values(p_table text, p_column text, p_patient uuid)
    RETURNS TABLE (row_id uuid, bound_row uuid, version bigint, value bytea)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        owner_column text := public.encrypted_column_owner(p_table, p_column);
        binding text[] := public.encrypted_column_binding(p_table, p_column);
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF owner_column IS NULL OR binding IS NULL OR p_patient IS NULL THEN
            RAISE EXCEPTION 'no such encrypted column' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        RETURN QUERY EXECUTE format(
            'SELECT id, %I, %s, %I FROM public.%I WHERE %I = $1 AND %I IS NOT NULL ORDER BY id',
            binding[1],
            CASE WHEN binding[2] IS NULL THEN '0::bigint' ELSE quote_ident(binding[2]) || '::bigint' END,
            p_column, p_table, owner_column, p_column) USING p_patient;
        PERFORM set_config('renrakucho.reencrypt_patient', '', true);
    END
    $$;
REVOKE ALL ON FUNCTION public.encrypted_values(text, text, uuid) FROM PUBLIC, renrakucho_runtime;
GRANT EXECUTE ON FUNCTION public.encrypted_values(text, text, uuid) TO renrakucho_key_maintenance;

-- History never changes (第31条), with one exception: key maintenance binding a value written
-- in format 1 to its version (format 2). Nothing else of the row may change with it.
CREATE OR REPLACE FUNCTION public.entry_versions_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF public.reencrypting(OLD.patient_id)
           AND (NEW.id, NEW.entry_id, NEW.version, NEW.patient_id, NEW.facility_id, NEW.edited_by,
                NEW.edited_by_name, NEW.edited_at, NEW.category, NEW.priority)
               IS NOT DISTINCT FROM
               (OLD.id, OLD.entry_id, OLD.version, OLD.patient_id, OLD.facility_id, OLD.edited_by,
                OLD.edited_by_name, OLD.edited_at, OLD.category, OLD.priority)
           AND (NEW.body_enc = OLD.body_enc
                OR (get_byte(OLD.body_enc, 0) = 1 AND get_byte(NEW.body_enc, 0) = 2))
           AND (NEW.vitals_enc IS NOT DISTINCT FROM OLD.vitals_enc
                OR (OLD.vitals_enc IS NOT NULL AND NEW.vitals_enc IS NOT NULL
                    AND get_byte(OLD.vitals_enc, 0) = 1 AND get_byte(NEW.vitals_enc, 0) = 2)) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'an entry''s earlier versions do not change' USING ERRCODE = '42501';
    END
    $$;
CREATE POLICY entry_versions_reencrypt ON entry_versions TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

-- Whether values of format 1 may still be read, and where `keys bind-versions` stands. One row;
-- reached only through the functions below.
CREATE TABLE private.value_binding (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    legacy_readable  boolean NOT NULL,
    -- The last patient (by ID) whose values the command re-encrypted: where --resume goes on.
    done_through     uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    completed_at     timestamptz,
    CHECK (legacy_readable = (completed_at IS NULL))
);

-- The owner's completion check reads every encrypted table (first bytes only), with this flag.
-- The list of migration 8, 'alerting' of migration 9 (platform alerts), and 'value_check'.
CREATE OR REPLACE FUNCTION private.definer_flags(p_on text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        flag text;
    BEGIN
        FOREACH flag IN ARRAY ARRAY['access_maintenance', 'erasure_patient', 'reencrypt_patient',
                                    'directory', 'session_store', 'announcing', 'alerting',
                                    'value_check'] LOOP
            PERFORM set_config('renrakucho.' || flag, CASE WHEN flag = p_on THEN 'on' ELSE '' END, true);
        END LOOP;
    END
    $$;
CREATE POLICY patients_value_check ON patients FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE POLICY consents_value_check ON consents FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE POLICY emergency_grants_value_check ON emergency_grants FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE POLICY entries_value_check ON entries FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE POLICY entry_versions_value_check ON entry_versions FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE POLICY attachments_value_check ON attachments FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));
CREATE POLICY support_requests_value_check ON support_requests FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('value_check')));

-- How many stored values are still in format 1, in every encrypted column.
CREATE FUNCTION private.legacy_value_count() RETURNS bigint
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
    $$;
REVOKE ALL ON FUNCTION private.legacy_value_count() FROM PUBLIC;

-- A database with no patient yet holds no value of format 1: it refuses them from the start.
-- One with patients reads them until `keys bind-versions` completes.
SELECT set_config('renrakucho.value_check', 'on', true);
INSERT INTO private.value_binding (legacy_readable, completed_at)
SELECT has_values, CASE WHEN has_values THEN NULL ELSE now() END
  FROM (SELECT EXISTS (SELECT FROM public.patients) AS has_values) v;
SELECT set_config('renrakucho.value_check', '', true);

-- Whether values of format 1 may still be read (every server process asks).
CREATE FUNCTION public.legacy_values_readable() RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        RETURN (SELECT b.legacy_readable FROM private.value_binding b);
    END
    $$;
REVOKE ALL ON FUNCTION public.legacy_values_readable() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.legacy_values_readable()
    TO renrakucho_runtime, renrakucho_key_maintenance;

-- Where `keys bind-versions` stands, the row locked until the transaction ends (one run at a
-- time); `p_restart` starts again from the first patient. Key maintenance only (the grant below:
-- inside a SECURITY DEFINER function the current user is the owner).
CREATE FUNCTION public.value_binding_state(p_restart boolean)
    RETURNS TABLE (legacy_readable boolean, done_through uuid)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF p_restart THEN
            UPDATE private.value_binding b
               SET done_through = '00000000-0000-0000-0000-000000000000'
             WHERE b.legacy_readable;
        END IF;
        RETURN QUERY SELECT b.legacy_readable, b.done_through FROM private.value_binding b
                        FOR UPDATE;
    END
    $$;

-- Records that every patient up to `p_through` was done (in the batch's transaction).
CREATE FUNCTION public.value_binding_advance(p_through uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF p_through IS NULL THEN
            RAISE EXCEPTION 'no patient named' USING ERRCODE = '22004';
        END IF;
        UPDATE private.value_binding SET done_through = greatest(done_through, p_through)
         WHERE legacy_readable;
    END
    $$;

-- Completes the migration when no value of format 1 is left anywhere: from then on format 1 is
-- refused, for good. Returns how many are left (0: completed, or completed before).
CREATE FUNCTION public.value_binding_complete() RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        remaining bigint;
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM 1 FROM private.value_binding FOR UPDATE;
        PERFORM private.definer_flags('value_check');
        remaining := private.legacy_value_count();
        PERFORM private.definer_flags(NULL);
        IF remaining = 0 THEN
            UPDATE private.value_binding SET legacy_readable = false, completed_at = now()
             WHERE legacy_readable;
        END IF;
        RETURN remaining;
    END
    $$;
REVOKE ALL ON FUNCTION public.value_binding_state(boolean), public.value_binding_advance(uuid),
    public.value_binding_complete() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.value_binding_state(boolean), public.value_binding_advance(uuid),
    public.value_binding_complete() TO renrakucho_key_maintenance;

-- Once refused, format 1 stays refused: nothing turns the state back.
CREATE FUNCTION private.value_binding_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF OLD.legacy_readable = false AND NEW.legacy_readable THEN
            RAISE EXCEPTION 'values of format 1 stay refused' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;
REVOKE ALL ON FUNCTION private.value_binding_guard() FROM PUBLIC;
CREATE TRIGGER value_binding_guard BEFORE UPDATE ON private.value_binding
    FOR EACH ROW EXECUTE FUNCTION private.value_binding_guard();
