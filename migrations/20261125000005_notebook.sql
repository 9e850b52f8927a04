-- The contact notebook (連絡帳, 第3条(1), 第13–15条): entries with their history, attachments,
-- read receipts, support requests between facilities, and each person's notification settings.
-- Everything here is patient data, visible through the same relation as the patient
-- (patient_access, migration 4): a facility sharing the patient reads and writes; an emergency
-- grant reads; a facility asked for support reads only what the request names.

-- Two more relations:
--   consented  sharing while the patient's consent is on file: what sending the patient's data
--              to another facility (a support request) needs
--   support    a facility asked for a remote diagnosis, a second opinion or information, while
--              the request is open and the patient's consent is on file: it reads what the
--              request names, nothing else
ALTER TABLE patient_access DROP CONSTRAINT patient_access_relation_check;
ALTER TABLE patient_access ADD CONSTRAINT patient_access_relation_check
    CHECK (relation IN ('registering', 'member', 'invited', 'sharing', 'consented', 'emergency',
                        'support'));

-- Entries: the current state of each (body and vitals encrypted with the patient's key), so a
-- page of the timeline is one indexed read. Every version, the first included, is also kept in
-- entry_versions: editing never destroys (第31条(8)).
CREATE TABLE entries (
    id                     uuid PRIMARY KEY,
    patient_id             uuid NOT NULL REFERENCES patients (id),
    -- The author's facility.
    facility_id            uuid NOT NULL REFERENCES facilities (id),
    author_id              uuid NOT NULL,
    author_name            text NOT NULL CHECK (char_length(author_name) BETWEEN 1 AND 100),
    author_profession      text NOT NULL,
    category               text NOT NULL CHECK (category IN ('instruction', 'treatment', 'support',
                               'complaint', 'vitals', 'medication', 'notice', 'other')),
    -- 至急 / 要返信 / 参考
    priority               text NOT NULL CHECK (priority IN ('urgent', 'reply_requested', 'info')),
    reply_to               uuid,
    -- Care-team facilities mentioned (called to attention).
    mentions               uuid[] NOT NULL DEFAULT '{}',
    body_enc               bytea NOT NULL,
    vitals_enc             bytea,
    version                integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    withdrawn_at           timestamptz,
    withdrawn_by           uuid,
    withdrawal_reason_enc  bytea,
    UNIQUE (patient_id, id),
    UNIQUE (id, facility_id),
    FOREIGN KEY (patient_id, reply_to) REFERENCES entries (patient_id, id),
    FOREIGN KEY (facility_id, author_id) REFERENCES staff_accounts (facility_id, id),
    CHECK ((withdrawn_at IS NULL) = (withdrawal_reason_enc IS NULL)
           AND (withdrawn_at IS NULL) = (withdrawn_by IS NULL)),
    CHECK (cardinality(mentions) <= 20)
);
-- The timeline: newest first, keyset by (created_at, id).
CREATE INDEX entries_timeline ON entries (patient_id, created_at DESC, id DESC);
CREATE INDEX entries_facility ON entries (facility_id, created_at);
CREATE INDEX entries_replies ON entries (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX entries_mentions ON entries USING gin (mentions);

CREATE TABLE entry_versions (
    -- The version's own ID: its encrypted values are bound to it.
    id           uuid NOT NULL UNIQUE,
    entry_id     uuid NOT NULL,
    version      integer NOT NULL CHECK (version >= 1),
    patient_id   uuid NOT NULL,
    -- The editor's facility.
    facility_id  uuid NOT NULL REFERENCES facilities (id),
    edited_by    uuid NOT NULL,
    edited_by_name text NOT NULL CHECK (char_length(edited_by_name) BETWEEN 1 AND 100),
    edited_at    timestamptz NOT NULL DEFAULT now(),
    category     text NOT NULL,
    priority     text NOT NULL,
    body_enc     bytea NOT NULL,
    vitals_enc   bytea,
    PRIMARY KEY (entry_id, version),
    FOREIGN KEY (patient_id, entry_id) REFERENCES entries (patient_id, id),
    -- A version is written by the entry's own facility (only it edits the entry).
    FOREIGN KEY (entry_id, facility_id) REFERENCES entries (id, facility_id),
    FOREIGN KEY (facility_id, edited_by) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX entry_versions_facility ON entry_versions (facility_id);
CREATE INDEX entry_versions_patient ON entry_versions (patient_id);

-- Files attached to entries (photos, PDFs): the content lives in the file store, encrypted with
-- the patient's key; here its name (encrypted), type, size and where it is. Uploaded first
-- (entry_id NULL, visible to the uploading facility only), attached when the entry is posted.
CREATE TABLE attachments (
    id             uuid PRIMARY KEY,
    patient_id     uuid NOT NULL REFERENCES patients (id),
    entry_id       uuid,
    -- The uploader's facility.
    facility_id    uuid NOT NULL REFERENCES facilities (id),
    uploaded_by    uuid NOT NULL,
    media_type     text NOT NULL CHECK (media_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    size           bigint NOT NULL CHECK (size > 0),
    file_name_enc  bytea NOT NULL,
    object         text NOT NULL CHECK (char_length(object) BETWEEN 1 AND 200),
    thumbnail      text CHECK (char_length(thumbnail) BETWEEN 1 AND 200),
    width          integer,
    height         integer,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (patient_id, id),
    FOREIGN KEY (patient_id, entry_id) REFERENCES entries (patient_id, id),
    FOREIGN KEY (facility_id, uploaded_by) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX attachments_facility ON attachments (facility_id, created_at);
CREATE INDEX attachments_entry ON attachments (entry_id) WHERE entry_id IS NOT NULL;
CREATE INDEX attachments_patient ON attachments (patient_id);

-- Who has read which entry (read receipts, unread counts). The reader's name and profession
-- are kept as they were, so the care team sees "read by" without seeing other facilities'
-- staff records.
CREATE TABLE entry_reads (
    entry_id          uuid NOT NULL,
    patient_id        uuid NOT NULL,
    staff_id          uuid NOT NULL,
    facility_id       uuid NOT NULL REFERENCES facilities (id),
    reader_name       text NOT NULL CHECK (char_length(reader_name) BETWEEN 1 AND 100),
    reader_profession text NOT NULL,
    read_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entry_id, staff_id),
    FOREIGN KEY (patient_id, entry_id) REFERENCES entries (patient_id, id),
    FOREIGN KEY (facility_id, staff_id) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX entry_reads_facility ON entry_reads (facility_id, staff_id);
CREATE INDEX entry_reads_patient ON entry_reads (patient_id, staff_id);

-- Support requests (支援依頼, 第13–14条): a facility asks another (in the care team or not) for
-- a remote diagnosis, a second opinion or information, sending the entries and files it
-- chooses and a summary of the patient it writes itself (the asked facility sees nothing else).
CREATE TABLE support_requests (
    id                uuid PRIMARY KEY,
    patient_id        uuid NOT NULL REFERENCES patients (id),
    -- The asking facility.
    facility_id       uuid NOT NULL REFERENCES facilities (id),
    to_facility_id    uuid NOT NULL REFERENCES facilities (id),
    kind              text NOT NULL CHECK (kind IN ('remote_diagnosis', 'second_opinion', 'information')),
    status            text NOT NULL DEFAULT 'requested'
                      CHECK (status IN ('requested', 'accepted', 'declined', 'answered', 'closed')),
    requested_by      uuid NOT NULL,
    -- The question and the patient summary (encrypted with the patient's key).
    question_enc      bytea NOT NULL,
    summary_enc       bytea NOT NULL,
    answer_enc        bytea,
    answered_by       uuid,
    answered_by_name  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (facility_id <> to_facility_id),
    CHECK ((answer_enc IS NULL) = (answered_by IS NULL)),
    FOREIGN KEY (facility_id, requested_by) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX support_requests_facility ON support_requests (facility_id, created_at);
CREATE INDEX support_requests_to ON support_requests (to_facility_id, status);
CREATE INDEX support_requests_patient ON support_requests (patient_id);

CREATE TABLE support_request_items (
    request_id    uuid NOT NULL REFERENCES support_requests (id),
    patient_id    uuid NOT NULL,
    -- The asking facility.
    facility_id   uuid NOT NULL REFERENCES facilities (id),
    entry_id      uuid,
    attachment_id uuid,
    CHECK ((entry_id IS NULL) <> (attachment_id IS NULL)),
    FOREIGN KEY (patient_id, entry_id) REFERENCES entries (patient_id, id),
    FOREIGN KEY (patient_id, attachment_id) REFERENCES attachments (patient_id, id),
    UNIQUE (request_id, entry_id),
    UNIQUE (request_id, attachment_id)
);
CREATE INDEX support_request_items_facility ON support_request_items (facility_id);
CREATE INDEX support_request_items_entry ON support_request_items (entry_id) WHERE entry_id IS NOT NULL;
CREATE INDEX support_request_items_attachment ON support_request_items (attachment_id)
    WHERE attachment_id IS NOT NULL;

-- Whether the transaction's facility was asked, in an open request, to look at this entry or
-- file. plpgsql: evaluated at run time, never inlined into the policies it serves.
CREATE FUNCTION support_shares(p_entry uuid, p_attachment uuid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, public
    AS $$
    BEGIN
        RETURN EXISTS (
            SELECT FROM public.support_request_items i
              JOIN public.support_requests r ON r.id = i.request_id
             WHERE (i.entry_id = p_entry OR i.attachment_id = p_attachment)
               AND r.to_facility_id = (SELECT public.current_facility_id())
               AND r.status IN ('requested', 'accepted', 'answered'));
    END
    $$;

-- Each person's notification settings (per staff account; the account's facility owns them).
CREATE TABLE notification_settings (
    staff_id        uuid PRIMARY KEY,
    facility_id     uuid NOT NULL REFERENCES facilities (id),
    email           text CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' AND char_length(email) <= 254),
    -- Live notifications from this level up: urgent only, reply requested and up, or all.
    live_level      text NOT NULL DEFAULT 'info' CHECK (live_level IN ('urgent', 'reply_requested', 'info')),
    -- Quiet hours (Japan time, hours 0–23; start = end: none). Urgent ones come through.
    quiet_start     smallint NOT NULL DEFAULT 0 CHECK (quiet_start BETWEEN 0 AND 23),
    quiet_end       smallint NOT NULL DEFAULT 0 CHECK (quiet_end BETWEEN 0 AND 23),
    -- A daily e-mail digest at this hour (Japan time): counts and a link, never patient data.
    digest_enabled  boolean NOT NULL DEFAULT false,
    digest_hour     smallint NOT NULL DEFAULT 7 CHECK (digest_hour BETWEEN 0 AND 23),
    last_digest_at  timestamptz,
    FOREIGN KEY (facility_id, staff_id) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX notification_settings_facility ON notification_settings (facility_id);

-- Patients a person has muted (urgent entries still come through).
CREATE TABLE patient_mutes (
    staff_id    uuid NOT NULL,
    patient_id  uuid NOT NULL REFERENCES patients (id),
    facility_id uuid NOT NULL REFERENCES facilities (id),
    muted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staff_id, patient_id),
    FOREIGN KEY (facility_id, staff_id) REFERENCES staff_accounts (facility_id, id)
);
CREATE INDEX patient_mutes_facility ON patient_mutes (facility_id, staff_id);

-- Re-encryption under a patient's newest data key (`renrakucho keys reencrypt`, issue 4) must
-- reach every encrypted column, including rows the registering facility may read but not
-- change (another facility's consent, entry or request) and rows guarded by triggers. It goes
-- through two SECURITY DEFINER functions, for the registering facility only (it holds the
-- patient's keys), over a fixed list of columns; they switch on owner-only policies for the
-- one patient, and the guards step aside only for the owner acting inside them.
CREATE FUNCTION reencrypt_target() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('renrakucho.reencrypt_patient', true), '')::uuid $$;

-- True inside reencrypt_value() for this patient: the tables' owner is the current user (it
-- runs SECURITY DEFINER) and the setting names the patient. The runtime role can set the
-- setting, and SET ROLE to its group, but never become the owner.
CREATE FUNCTION reencrypting(p_patient uuid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
        SELECT public.reencrypt_target() = p_patient
           AND current_user::regrole::oid = (SELECT c.relowner FROM pg_catalog.pg_class c
                                              WHERE c.oid = 'public.patients'::regclass)
    $$;

CREATE FUNCTION encrypted_column_owner(p_table text, p_column text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
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
        END
    $$;

-- A patient's values in one column (row ID, value), for the registering facility.
CREATE FUNCTION encrypted_values(p_table text, p_column text, p_patient uuid)
    RETURNS TABLE (row_id uuid, value bytea)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        owner_column text := public.encrypted_column_owner(p_table, p_column);
        previous text := coalesce(current_setting('renrakucho.reencrypt_patient', true), '');
    BEGIN
        IF owner_column IS NULL OR NOT public.has_access(p_patient, 'registering') THEN
            RAISE EXCEPTION 'no such encrypted column of a patient of yours' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        RETURN QUERY EXECUTE format(
            'SELECT id, %I FROM public.%I WHERE %I = $1 AND %I IS NOT NULL ORDER BY id',
            p_column, p_table, owner_column, p_column) USING p_patient;
        PERFORM set_config('renrakucho.reencrypt_patient', previous, true);
    END
    $$;
REVOKE ALL ON FUNCTION encrypted_values(text, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION encrypted_values(text, text, uuid) TO renrakucho_runtime;

-- Replaces one value if it is still `p_old`; true when replaced.
CREATE FUNCTION reencrypt_value(p_table text, p_column text, p_patient uuid, p_row uuid,
                                p_old bytea, p_new bytea) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        owner_column text := public.encrypted_column_owner(p_table, p_column);
        previous text := coalesce(current_setting('renrakucho.reencrypt_patient', true), '');
        n bigint;
    BEGIN
        IF owner_column IS NULL OR NOT public.has_access(p_patient, 'registering') THEN
            RAISE EXCEPTION 'no such encrypted column of a patient of yours' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        EXECUTE format('UPDATE public.%I SET %I = $1 WHERE id = $2 AND %I = $3 AND %I = $4',
                       p_table, p_column, owner_column, p_column)
            USING p_new, p_row, p_patient, p_old;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('renrakucho.reencrypt_patient', previous, true);
        RETURN n = 1;
    END
    $$;
REVOKE ALL ON FUNCTION reencrypt_value(text, text, uuid, uuid, bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reencrypt_value(text, text, uuid, uuid, bytea, bytea) TO renrakucho_runtime;

-- Row-level security ---------------------------------------------------------------------------

ALTER TABLE entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE entries FORCE ROW LEVEL SECURITY;
CREATE POLICY entries_read ON entries FOR SELECT
    USING (has_access(patient_id, 'sharing')
           OR has_access(patient_id, 'emergency')
           OR (has_access(patient_id, 'support') AND support_shares(id, NULL)));
CREATE POLICY entries_post ON entries FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND has_access(patient_id, 'sharing'));
-- Edited and withdrawn by the author's facility (the author or its administrator: the
-- application decides which person), while it shares the patient.
CREATE POLICY entries_edit ON entries FOR UPDATE
    USING (facility_id = (SELECT current_facility_id()) AND has_access(patient_id, 'sharing'))
    WITH CHECK (facility_id = (SELECT current_facility_id()) AND has_access(patient_id, 'sharing'));
GRANT SELECT, INSERT ON entries TO renrakucho_runtime;
GRANT UPDATE (category, priority, mentions, body_enc, vitals_enc, version, updated_at,
              withdrawn_at, withdrawn_by, withdrawal_reason_enc)
    ON entries TO renrakucho_runtime;

-- An edit moves the version forward by one, keeps the identity, and never touches a withdrawn
-- entry; a withdrawal happens once.
CREATE FUNCTION entries_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
        IF OLD.withdrawn_at IS NOT NULL THEN
            RAISE EXCEPTION 'a withdrawn entry does not change' USING ERRCODE = '42501';
        END IF;
        IF NEW.withdrawn_at IS NULL AND NEW.version <> OLD.version + 1 THEN
            RAISE EXCEPTION 'an edit is the next version' USING ERRCODE = '23514';
        END IF;
        IF NEW.withdrawn_at IS NOT NULL AND (NEW.version <> OLD.version
                                              OR NEW.body_enc IS DISTINCT FROM OLD.body_enc) THEN
            RAISE EXCEPTION 'a withdrawal does not edit' USING ERRCODE = '23514';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER entries_guard BEFORE UPDATE ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_guard();

ALTER TABLE entry_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE entry_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY entry_versions_read ON entry_versions FOR SELECT
    USING (has_access(patient_id, 'sharing') OR has_access(patient_id, 'emergency'));
CREATE POLICY entry_versions_write ON entry_versions FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND has_access(patient_id, 'sharing'));
GRANT SELECT, INSERT ON entry_versions TO renrakucho_runtime;

ALTER TABLE attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY attachments_read ON attachments FOR SELECT
    USING ((entry_id IS NOT NULL
            AND (has_access(patient_id, 'sharing') OR has_access(patient_id, 'emergency')))
           OR (entry_id IS NULL AND facility_id = (SELECT current_facility_id())
               AND has_access(patient_id, 'sharing'))
           OR (has_access(patient_id, 'support') AND support_shares(NULL, id)));
CREATE POLICY attachments_upload ON attachments FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id()) AND entry_id IS NULL
                AND has_access(patient_id, 'sharing'));
-- Attached to an entry once, by the uploading facility.
CREATE POLICY attachments_attach ON attachments FOR UPDATE
    USING (facility_id = (SELECT current_facility_id()) AND entry_id IS NULL
           AND has_access(patient_id, 'sharing'))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND has_access(patient_id, 'sharing'));
GRANT SELECT, INSERT ON attachments TO renrakucho_runtime;
GRANT UPDATE (entry_id) ON attachments TO renrakucho_runtime;

ALTER TABLE entry_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE entry_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY entry_reads_read ON entry_reads FOR SELECT
    USING (has_access(patient_id, 'sharing') OR has_access(patient_id, 'emergency'));
CREATE POLICY entry_reads_mark ON entry_reads FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND (has_access(patient_id, 'sharing') OR has_access(patient_id, 'emergency')));
GRANT SELECT, INSERT ON entry_reads TO renrakucho_runtime;

ALTER TABLE support_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE support_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY support_requests_read ON support_requests FOR SELECT
    USING (facility_id = (SELECT current_facility_id())
           OR to_facility_id = (SELECT current_facility_id()));
-- Sent by a facility sharing the patient; to a facility outside the care team only with
-- consent on file.
CREATE POLICY support_requests_send ON support_requests FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND has_access(patient_id, 'consented')
                AND status = 'requested');
-- Answered by the asked facility; closed by either. Which moves: the trigger below.
CREATE POLICY support_requests_move ON support_requests FOR UPDATE
    USING (facility_id = (SELECT current_facility_id())
           OR to_facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR to_facility_id = (SELECT current_facility_id()));
GRANT SELECT, INSERT ON support_requests TO renrakucho_runtime;
GRANT UPDATE (status, answer_enc, answered_by, answered_by_name, updated_at)
    ON support_requests TO renrakucho_runtime;

CREATE FUNCTION support_requests_transition() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        me   uuid := current_facility_id();
        step text := OLD.status || '>' || NEW.status;
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
        IF NEW.to_facility_id = me
           AND step IN ('requested>accepted', 'requested>declined', 'accepted>answered') THEN
            RETURN NEW;
        END IF;
        IF NEW.facility_id = me
           AND step IN ('requested>closed', 'accepted>closed', 'answered>closed') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'a support request cannot move from % to % here', OLD.status, NEW.status
            USING ERRCODE = '42501';
    END
    $$;
CREATE TRIGGER support_requests_transition BEFORE UPDATE ON support_requests
    FOR EACH ROW EXECUTE FUNCTION support_requests_transition();

ALTER TABLE support_request_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE support_request_items FORCE ROW LEVEL SECURITY;
CREATE POLICY support_request_items_read ON support_request_items FOR SELECT
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM support_requests r
                       WHERE r.id = support_request_items.request_id
                         AND r.to_facility_id = (SELECT current_facility_id())));
CREATE POLICY support_request_items_add ON support_request_items FOR INSERT
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND has_access(patient_id, 'consented')
                AND EXISTS (SELECT FROM support_requests r
                             WHERE r.id = support_request_items.request_id
                               AND r.facility_id = (SELECT current_facility_id())
                               AND r.patient_id = support_request_items.patient_id));
GRANT SELECT, INSERT ON support_request_items TO renrakucho_runtime;

ALTER TABLE notification_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY notification_settings_own ON notification_settings
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
-- The digest job reads every facility's settings in its own scope (see in_digest_scope).
CREATE FUNCTION in_digest_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renrakucho.digest', true), '') = 'on' $$;
CREATE POLICY notification_settings_digest ON notification_settings FOR SELECT
    USING ((SELECT in_digest_scope()));
GRANT SELECT, INSERT, UPDATE ON notification_settings TO renrakucho_runtime;

ALTER TABLE patient_mutes ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_mutes FORCE ROW LEVEL SECURITY;
CREATE POLICY patient_mutes_own ON patient_mutes
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND (has_access(patient_id, 'sharing') OR has_access(patient_id, 'emergency')));
-- Unmuting removes the row: preference, not record.
GRANT SELECT, INSERT, DELETE ON patient_mutes TO renrakucho_runtime;

-- The derived relation learns `support`, and patient-data reads follow it where it applies.
CREATE OR REPLACE FUNCTION refresh_patient_access(p_patient uuid) RETURNS void
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
                    THEN 'sharing' END),
              (CASE WHEN m.status = 'active'
                         AND EXISTS (SELECT FROM public.consents c
                                      WHERE c.patient_id = m.patient_id
                                        AND c.withdrawn_at IS NULL)
                    THEN 'consented' END)) AS r(relation)
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
           AND EXISTS (SELECT FROM public.consents c
                        WHERE c.patient_id = s.patient_id AND c.withdrawn_at IS NULL);
        PERFORM pg_notify('renrakucho_access_changes', p_patient::text);
        PERFORM set_config('renrakucho.access_maintenance', previous, true);
    END
    $$;
CREATE POLICY support_requests_maintenance ON support_requests FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE TRIGGER support_requests_access AFTER INSERT OR UPDATE ON support_requests
    FOR EACH ROW EXECUTE FUNCTION patient_access_changed();

-- The asked facility decrypts what it was sent with the patient's key.
ALTER POLICY data_keys_facility ON data_keys
    USING (facility_id = (SELECT current_facility_id())
           OR (owner_kind = 'patient'
               AND (has_access(owner_id, 'sharing') OR has_access(owner_id, 'member')
                    OR has_access(owner_id, 'emergency') OR has_access(owner_id, 'support'))))
    WITH CHECK (facility_id = (SELECT current_facility_id()));

-- Live notifications: every server process hears of new entries and requests (IDs and kinds
-- only, never content) and tells the people concerned.
CREATE FUNCTION entries_announce() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('renrakucho_events', json_build_object(
            'kind', 'entry', 'patient', NEW.patient_id, 'entry', NEW.id,
            'facility', NEW.facility_id, 'author', NEW.author_id, 'priority', NEW.priority,
            'reply_to', NEW.reply_to,
            'reply_to_author', (SELECT p.author_id FROM public.entries p WHERE p.id = NEW.reply_to),
            'mentions', NEW.mentions)::text);
        RETURN NULL;
    END
    $$;
CREATE TRIGGER entries_announce AFTER INSERT ON entries
    FOR EACH ROW EXECUTE FUNCTION entries_announce();

CREATE FUNCTION support_requests_announce() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('renrakucho_events', json_build_object(
            'kind', 'support', 'patient', NEW.patient_id, 'request', NEW.id,
            'facility', NEW.facility_id, 'to', NEW.to_facility_id, 'status', NEW.status)::text);
        RETURN NULL;
    END
    $$;
CREATE TRIGGER support_requests_announce AFTER INSERT OR UPDATE ON support_requests
    FOR EACH ROW EXECUTE FUNCTION support_requests_announce();

CREATE FUNCTION invitations_announce() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF NEW.status = 'invited' THEN
            PERFORM pg_notify('renrakucho_events', json_build_object(
                'kind', 'invitation', 'patient', NEW.patient_id, 'to', NEW.facility_id)::text);
        END IF;
        RETURN NULL;
    END
    $$;
CREATE TRIGGER care_team_members_announce AFTER INSERT OR UPDATE OF status ON care_team_members
    FOR EACH ROW EXECUTE FUNCTION invitations_announce();

-- Erasure (ADR 0009) reaches the notebook too.
CREATE POLICY entries_erasure_read ON entries FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entries_erasure ON entries FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entry_versions_erasure_read ON entry_versions FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entry_versions_erasure ON entry_versions FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY attachments_erasure_read ON attachments FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY attachments_erasure ON attachments FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entry_reads_erasure_read ON entry_reads FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entry_reads_erasure ON entry_reads FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY support_request_items_erasure_read ON support_request_items FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY support_request_items_erasure ON support_request_items FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY support_requests_erasure ON support_requests FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY patient_mutes_erasure_read ON patient_mutes FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY patient_mutes_erasure ON patient_mutes FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

CREATE OR REPLACE FUNCTION erase_patient(p_patient uuid) RETURNS jsonb
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
        DELETE FROM public.support_request_items WHERE patient_id = p_patient;
        DELETE FROM public.support_requests WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('support_requests', n);
        DELETE FROM public.entry_reads WHERE patient_id = p_patient;
        DELETE FROM public.patient_mutes WHERE patient_id = p_patient;
        DELETE FROM public.attachments WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('attachments', n);
        DELETE FROM public.entry_versions WHERE patient_id = p_patient;
        -- Replies refer to the entries they answer: one statement removes both (the foreign
        -- key is checked at its end).
        DELETE FROM public.entries WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('entries', n);
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
        PERFORM public.refresh_patient_access(p_patient);
        RETURN counts;
    END
    $$;

-- Re-encryption's owner-only policies (see reencrypt_value above).
CREATE POLICY patients_reencrypt ON patients TO CURRENT_USER
    USING (id = (SELECT reencrypt_target())) WITH CHECK (id = (SELECT reencrypt_target()));
CREATE POLICY consents_reencrypt ON consents TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));
CREATE POLICY emergency_grants_reencrypt ON emergency_grants TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));
CREATE POLICY entries_reencrypt ON entries TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));
CREATE POLICY entry_versions_reencrypt ON entry_versions TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));
CREATE POLICY attachments_reencrypt ON attachments TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));
CREATE POLICY support_requests_reencrypt ON support_requests TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

-- The guards of migration 4 step aside for re-encryption too.
CREATE OR REPLACE FUNCTION consents_withdraw_once() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
        IF OLD.withdrawn_at IS NOT NULL THEN
            RAISE EXCEPTION 'a withdrawn consent stays withdrawn' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;

CREATE OR REPLACE FUNCTION emergency_grants_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        me uuid := current_facility_id();
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
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

-- Data keys: a patient's key is created (version 1) at registration; a later version only by the
-- registering facility, which holds the keys; a key is never inserted already destroyed; key
-- maintenance (re-wrapping under a new master key) re-wraps and does nothing else.
CREATE POLICY data_keys_creation ON data_keys AS RESTRICTIVE FOR INSERT
    WITH CHECK (wrapped IS NOT NULL
                AND (owner_kind <> 'patient' OR version = 1
                     OR has_access(owner_id, 'registering')));

CREATE OR REPLACE FUNCTION data_keys_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF NEW.owner_kind IS DISTINCT FROM OLD.owner_kind
           OR NEW.owner_id IS DISTINCT FROM OLD.owner_id
           OR NEW.version IS DISTINCT FROM OLD.version
           OR NEW.facility_id IS DISTINCT FROM OLD.facility_id
           OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
            RAISE EXCEPTION 'a data key''s identity cannot change' USING ERRCODE = '23514';
        END IF;
        IF OLD.wrapped IS NULL AND NEW.wrapped IS NOT NULL THEN
            RAISE EXCEPTION 'a destroyed data key cannot be restored' USING ERRCODE = '23514';
        END IF;
        IF public.in_key_maintenance() AND NEW.wrapped IS NULL THEN
            RAISE EXCEPTION 'key maintenance re-wraps keys; it does not destroy them'
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;

CREATE FUNCTION data_keys_no_maintenance_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF public.in_key_maintenance() AND NEW.owner_kind <> 'blind_index' THEN
            RAISE EXCEPTION 'key maintenance re-wraps keys; it does not create them'
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;
CREATE TRIGGER data_keys_no_maintenance_insert BEFORE INSERT ON data_keys
    FOR EACH ROW EXECUTE FUNCTION data_keys_no_maintenance_insert();
