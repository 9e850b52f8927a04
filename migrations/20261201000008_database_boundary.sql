-- The database boundary holds against the server's own role (docs/adr/0013-database-boundary.md).
--
-- Threat model: an attacker who runs arbitrary SQL as the web server's login role (after an
-- injection, or with a leaked runtime URL) but cannot read the server process's memory or
-- files. Until now the tenant context and every privileged scope were settings that role could
-- set itself. From here on:
--
--   1. The tenant context is accepted only from renrakucho_enter(), with a MAC the server makes
--      with a key the web role cannot read (private.server_keys), bound to the backend and to a
--      per-connection chain value that no other transaction can match. The policies read it
--      through current_facility_id(), which checks a second MAC, made by the database, bound to
--      the chain value and the transaction's start.
--   2. Platform, key maintenance, access sync, digest and announcement reading run as NOLOGIN
--      roles of their own. The server's privileged pools log in as the owner and SET ROLE to
--      one of them; the web role is granted none. Their policies ask for the role itself.
--   3. SECURITY DEFINER functions are few; each checks its caller and arguments and switches
--      off, for its duration, every owner-only flag it does not use. Re-encryption is for key
--      maintenance only; entry_versions never change (erasure deletes them).
--   4. A data key is destroyed only by erasure in the transaction that recorded the deletion
--      request, and re-wrapped only by key maintenance, `wrapped` and `master_key_id` together.
--   5. Sessions live in private.sessions under the SHA-256 of the cookie value, reached only
--      through functions that take the cookie value.
--   7. Every function pins search_path with pg_temp last, or is parsed at creation (BEGIN
--      ATOMIC), so no temporary object can stand in for a table it uses.
--   9. NOTIFY carries an announcement number only; what happened is read from
--      private.announcements by the listener role.
--
-- Every row-level security policy of the schema is stated again below, table by table, for the
-- role it serves: renrakucho_runtime (the web role's group), a privileged role, or the owner
-- (CURRENT_USER here: the role running the migrations), whose policies only ever apply inside
-- the SECURITY DEFINER functions that switch them on.

-- Roles ------------------------------------------------------------------------------------------

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['renrakucho_platform', 'renrakucho_key_maintenance',
                             'renrakucho_access_sync', 'renrakucho_digest',
                             'renrakucho_listener'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', r);
        END IF;
        -- The owner's privileged pools SET ROLE to these; nobody else is a member.
        EXECUTE format('GRANT %I TO %I', r, current_user);
    END LOOP;
END
$$;
GRANT USAGE ON SCHEMA public TO renrakucho_platform, renrakucho_key_maintenance,
    renrakucho_access_sync, renrakucho_digest, renrakucho_listener;

-- Whether the statement runs as one of the privileged roles. The owner is a member of each (to
-- SET ROLE), so a policy granted TO the role would also apply to the owner's SECURITY DEFINER
-- functions; asking for current_user itself keeps those out.
CREATE OR REPLACE FUNCTION public.in_platform_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT CURRENT_USER = 'renrakucho_platform'::name;
    END;
CREATE OR REPLACE FUNCTION public.in_key_maintenance() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT CURRENT_USER = 'renrakucho_key_maintenance'::name;
    END;
CREATE OR REPLACE FUNCTION public.in_access_sync() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT CURRENT_USER = 'renrakucho_access_sync'::name;
    END;
CREATE OR REPLACE FUNCTION public.in_digest_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT CURRENT_USER = 'renrakucho_digest'::name;
    END;

-- Owner-only flags: set only inside the SECURITY DEFINER functions that use them (a SET clause
-- or set_config), honoured only by policies granted to the owner.
CREATE OR REPLACE FUNCTION public.in_access_maintenance() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT coalesce(current_setting('renrakucho.access_maintenance', true), '') = 'on';
    END;
CREATE OR REPLACE FUNCTION public.erasure_target() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT nullif(current_setting('renrakucho.erasure_patient', true), '')::uuid;
    END;
CREATE OR REPLACE FUNCTION public.reencrypt_target() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT nullif(current_setting('renrakucho.reencrypt_patient', true), '')::uuid;
    END;
CREATE FUNCTION public.owner_flag(p_name text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT coalesce(current_setting('renrakucho.' || p_name, true), '') = 'on';
    END;

-- Every policy is restated below: drop them all first.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT policyname, tablename FROM pg_policies WHERE schemaname = 'public' LOOP
        EXECUTE format('DROP POLICY %I ON public.%I', p.policyname, p.tablename);
    END LOOP;
END
$$;

-- The unforgeable tenant context ---------------------------------------------------------------

CREATE SCHEMA private;
REVOKE ALL ON SCHEMA private FROM PUBLIC;

-- The owner-only flags switched for the SECURITY DEFINER function that calls this: all off, then
-- `p_on` on (NULL: none). Each such function calls it first, so a flag the caller set (the web
-- role can set any of them; they only matter to the owner's policies) never reaches in. They
-- are transaction-local; the function clears them again before it returns.
CREATE FUNCTION private.definer_flags(p_on text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        flag text;
    BEGIN
        FOREACH flag IN ARRAY ARRAY['access_maintenance', 'erasure_patient', 'reencrypt_patient',
                                    'directory', 'session_store', 'announcing'] LOOP
            PERFORM set_config('renrakucho.' || flag, CASE WHEN flag = p_on THEN 'on' ELSE '' END, true);
        END LOOP;
    END
    $$;
REVOKE ALL ON FUNCTION private.definer_flags(text) FROM PUBLIC;

-- Keys the server holds and the web role never reads: 'context' makes and checks tenant
-- contexts (the database needs its HMAC pads for that), 'session' seals session records (only
-- the server uses it). Created by the server at its first start, read by it at every start
-- through the owner's connection.
CREATE TABLE private.server_keys (
    purpose     text PRIMARY KEY CHECK (purpose IN ('context', 'session')),
    key         bytea NOT NULL CHECK (length(key) = 32),
    inner_pad   bytea NOT NULL CHECK (length(inner_pad) = 64),
    outer_pad   bytea NOT NULL CHECK (length(outer_pad) = 64),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each connection's chain: every accepted context draws the next value, and a context is good
-- only while it is the connection's latest (currval, which only nextval in these functions
-- moves, and which a rollback does not undo).
CREATE SEQUENCE private.context_chain;

-- The MACs below are HMAC-SHA-256 with the context key (RFC 2104, the pads precomputed by the
-- server): sha256(outer_pad || sha256(inner_pad || message)). Each message is a label, the chain
-- value (int8send), the facility and the staff member (uuid_send, zeros for none): 'ctx1' with the
-- backend's process ID first, from the server; 'ctx2' with the transaction's start last, from
-- the database. Written out in each function rather than in helpers: a SQL helper is planned
-- anew at each statement's first call, which these functions pay on every request.

-- The transaction's context, if it is genuine: `chain:facility:staff:proof` in the setting
-- renrakucho.context (written by renrakucho_enter), its chain value still the connection's
-- latest and its proof made with the context key over the chain value, facility, staff and
-- the transaction's start (now()), so that it is good in this transaction only. Anything else
-- is no context at all (NULL); a value not even shaped like one fails the statement.
CREATE FUNCTION private.context_parts() RETURNS text[]
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        c text := current_setting('renrakucho.context', true);
        p text[];
        k record;
    BEGIN
        IF c IS NULL OR c = '' THEN
            RETURN NULL;
        END IF;
        p := string_to_array(c, ':');
        IF cardinality(p) <> 4 OR p[1]::bigint <> currval('private.context_chain') THEN
            RETURN NULL;
        END IF;
        SELECT s.inner_pad, s.outer_pad INTO k FROM private.server_keys s WHERE s.purpose = 'context';
        IF sha256(k.outer_pad || sha256(k.inner_pad || '\x63747832'::bytea
                  || int8send(p[1]::bigint) || uuid_send(p[2]::uuid)
                  || uuid_send(coalesce(nullif(p[3], '')::uuid,
                                        '00000000-0000-0000-0000-000000000000'::uuid))
                  || timestamptz_send(now())))
           IS DISTINCT FROM decode(p[4], 'hex') THEN
            RETURN NULL;
        END IF;
        RETURN p;
    END
    $$;
REVOKE ALL ON FUNCTION private.context_parts() FROM PUBLIC;

-- The facility (tenant) of the transaction, or NULL. Policies call it once per statement:
-- `(SELECT current_facility_id())`.
CREATE OR REPLACE FUNCTION public.current_facility_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        RETURN (private.context_parts())[2]::uuid;
    END
    $$;

-- The staff member the server acts for in this transaction, or NULL (sign-in, system work).
CREATE FUNCTION public.current_staff_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        RETURN nullif((private.context_parts())[3], '')::uuid;
    END
    $$;

-- Called once when the server opens a connection: the backend's process ID and the chain's
-- first value, which the server's first context on this connection must name.
CREATE FUNCTION public.renrakucho_connection(OUT pid integer, OUT chain bigint)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    BEGIN ATOMIC
        SELECT pg_backend_pid(), nextval('private.context_chain');
    END;

-- Establishes the transaction's tenant context, in the same statement as BEGIN. Accepted only
-- with the server's MAC over (backend, the connection's current chain value, facility, staff):
-- a MAC seen elsewhere names another backend or a chain value already used. Returns the new
-- chain value, which the connection's next context must name.
CREATE FUNCTION public.renrakucho_enter(p_pid integer, p_chain bigint, p_facility uuid,
                                        p_staff uuid, p_mac bytea) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        nobody constant uuid := '00000000-0000-0000-0000-000000000000';
        link   bigint;
        k      record;
    BEGIN
        IF private.context_parts() IS NOT NULL THEN
            -- A BEGIN that did not start a transaction: the connection still holds an earlier
            -- one. Refuse rather than inherit it.
            RAISE EXCEPTION 'this transaction already has a tenant context' USING ERRCODE = '25001';
        END IF;
        SELECT s.inner_pad, s.outer_pad INTO k FROM private.server_keys s WHERE s.purpose = 'context';
        IF p_pid IS DISTINCT FROM pg_backend_pid()
           OR p_facility IS NULL
           OR p_chain IS DISTINCT FROM currval('private.context_chain')
           OR p_mac IS DISTINCT FROM sha256(k.outer_pad || sha256(k.inner_pad
                  || '\x63747831'::bytea || int4send(p_pid) || int8send(p_chain)
                  || uuid_send(p_facility) || uuid_send(coalesce(p_staff, nobody)))) THEN
            RAISE EXCEPTION 'tenant context refused' USING ERRCODE = '42501';
        END IF;
        link := nextval('private.context_chain');
        PERFORM set_config('renrakucho.context',
            concat_ws(':', link, p_facility, coalesce(p_staff::text, ''),
                      encode(sha256(k.outer_pad || sha256(k.inner_pad
                          || '\x63747832'::bytea || int8send(link) || uuid_send(p_facility)
                          || uuid_send(coalesce(p_staff, nobody)) || timestamptz_send(now()))),
                             'hex')),
            true);
        RETURN link;
    END
    $$;

REVOKE ALL ON FUNCTION public.current_facility_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.current_staff_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.renrakucho_connection() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.renrakucho_enter(integer, bigint, uuid, uuid, bytea) FROM PUBLIC;
-- Trigger functions read the context whichever role writes (the web role or a privileged one).
GRANT EXECUTE ON FUNCTION public.current_facility_id(), public.current_staff_id()
    TO renrakucho_runtime, renrakucho_platform, renrakucho_key_maintenance,
       renrakucho_access_sync, renrakucho_digest;
GRANT EXECUTE ON FUNCTION public.renrakucho_connection() TO renrakucho_runtime;
GRANT EXECUTE ON FUNCTION public.renrakucho_enter(integer, bigint, uuid, uuid, bytea)
    TO renrakucho_runtime;

-- Whether the facility holds one of the relations to the patient now, for the SECURITY DEFINER
-- functions (the policies write the same probe out: see "Row-level security" below).
CREATE FUNCTION public.has_access(p_facility uuid, p_patient uuid, p_relations text[])
    RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
        SELECT EXISTS (
            SELECT FROM public.patient_access a
             WHERE a.facility_id = p_facility
               AND a.patient_id = p_patient
               AND a.relation = ANY (p_relations)
               AND (a.expires_at IS NULL OR a.expires_at > now()));
    END;

-- Whether the facility is carrying out a deletion request for the patient now: recorded in
-- this very transaction (its xmin) and not completed.
CREATE FUNCTION public.erasing(p_facility uuid, p_patient uuid) RETURNS boolean
    LANGUAGE sql STABLE
    BEGIN ATOMIC
        SELECT EXISTS (SELECT FROM public.deletion_requests d
                        WHERE d.patient_id = p_patient
                          AND d.facility_id = p_facility
                          AND d.completed_at IS NULL
                          AND d.xmin = pg_current_xact_id()::xid);
    END;

-- True inside reencrypt_value() for this patient: the setting names the patient and the
-- current user is the tables' owner (reencrypt_value runs SECURITY DEFINER).
CREATE OR REPLACE FUNCTION public.reencrypting(p_patient uuid) RETURNS boolean
    LANGUAGE sql STABLE
    BEGIN ATOMIC
        SELECT public.reencrypt_target() = p_patient
           AND CURRENT_USER = (SELECT r.rolname FROM pg_catalog.pg_class c
                                 JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                                WHERE c.oid = 'public.patients'::regclass);
    END;

-- Which encrypted columns re-encryption reaches. entry_versions is not among them: history
-- never changes (each version stays readable with the key version it was written with).
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
        END;
    END;

CREATE OR REPLACE FUNCTION public.audit_record_hash(r audit_log) RETURNS bytea
    LANGUAGE sql STABLE
    BEGIN ATOMIC
        SELECT sha256(r.prev_hash || convert_to(jsonb_build_array(
            r.seq, r.facility_id,
            to_char(r.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            r.actor_kind, r.actor_id, r.action, r.outcome, r.target_kind, r.target_id,
            host(r.client_addr), r.request_id, r.details)::text, 'UTF8'));
    END;

-- Announcements (LISTEN/NOTIFY) --------------------------------------------------------------------
-- Any role may LISTEN on any channel (PostgreSQL has no privilege for it), so a payload is
-- public. It carries only the number of a row here; the listener role reads the row.
CREATE TABLE private.announcements (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel       text NOT NULL CHECK (channel IN ('renrakucho_events',
                      'renrakucho_access_changes', 'renrakucho_key_changes')),
    payload       jsonb NOT NULL,
    announced_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX announcements_at ON private.announcements (announced_at);
GRANT USAGE ON SCHEMA private TO renrakucho_listener;
GRANT SELECT, DELETE ON private.announcements TO renrakucho_listener;

CREATE FUNCTION private.announce(p_channel text, p_payload jsonb) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n bigint;
    BEGIN
        INSERT INTO private.announcements (channel, payload) VALUES (p_channel, p_payload)
            RETURNING id INTO n;
        PERFORM pg_notify(p_channel, n::text);
    END
    $$;
REVOKE ALL ON FUNCTION private.announce(text, jsonb) FROM PUBLIC;

-- Sessions ---------------------------------------------------------------------------------------
-- tower-sessions records, stored under the SHA-256 of the cookie value: a copy of this table
-- holds no working cookie. The record itself is sealed by the server (a MAC with the session
-- key), so a record written by anyone else is refused when loaded. The web role reaches the
-- table only through the functions below, each for the one cookie it presents.
DROP SCHEMA tower_sessions CASCADE;
CREATE TABLE private.sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    data         bytea NOT NULL,
    expiry_date  timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON private.sessions (expiry_date);
ALTER TABLE private.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE private.sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_store ON private.sessions TO CURRENT_USER
    USING ((SELECT public.owner_flag('session_store')))
    WITH CHECK ((SELECT public.owner_flag('session_store')));

CREATE FUNCTION public.session_load(p_id text)
    RETURNS TABLE (data bytea, expiry_date timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('session_store');
        RETURN QUERY
            SELECT s.data, s.expiry_date FROM private.sessions s
             WHERE s.id_hash = sha256(convert_to(p_id, 'UTF8')) AND s.expiry_date > now();
        PERFORM private.definer_flags(NULL);
    END
    $$;

-- Inserts a new record; false when the ID is taken (the caller draws another).
CREATE FUNCTION public.session_create(p_id text, p_data bytea, p_expiry timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        created boolean;
    BEGIN
        PERFORM private.definer_flags('session_store');
        INSERT INTO private.sessions (id_hash, data, expiry_date)
        VALUES (sha256(convert_to(p_id, 'UTF8')), p_data, p_expiry)
        ON CONFLICT (id_hash) DO NOTHING;
        created := FOUND;
        PERFORM private.definer_flags(NULL);
        RETURN created;
    END
    $$;

CREATE FUNCTION public.session_save(p_id text, p_data bytea, p_expiry timestamptz) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('session_store');
        INSERT INTO private.sessions (id_hash, data, expiry_date)
        VALUES (sha256(convert_to(p_id, 'UTF8')), p_data, p_expiry)
        ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date;
        PERFORM private.definer_flags(NULL);
    END
    $$;

CREATE FUNCTION public.session_delete(p_id text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('session_store');
        DELETE FROM private.sessions WHERE id_hash = sha256(convert_to(p_id, 'UTF8'));
        PERFORM private.definer_flags(NULL);
    END
    $$;

-- Housekeeping: removes expired records (none of which can be used any more); the count only.
CREATE FUNCTION public.session_delete_expired() RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        n bigint;
    BEGIN
        PERFORM private.definer_flags('session_store');
        DELETE FROM private.sessions WHERE expiry_date <= now();
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM private.definer_flags(NULL);
        RETURN n;
    END
    $$;

REVOKE ALL ON FUNCTION public.session_load(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.session_create(text, bytea, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.session_save(text, bytea, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.session_delete(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.session_delete_expired() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.session_load(text), public.session_create(text, bytea, timestamptz),
    public.session_save(text, bytea, timestamptz), public.session_delete(text),
    public.session_delete_expired() TO renrakucho_runtime;

-- SECURITY DEFINER functions of earlier migrations, restated ---------------------------------------

-- Sign-in names a facility by its public code before any tenant context exists: which facility
-- has this code, and its status. Nothing else.
CREATE OR REPLACE FUNCTION public.facility_for_sign_in(p_code text)
    RETURNS TABLE (facility_id uuid, status text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('directory');
        RETURN QUERY SELECT f.id, f.status FROM public.facilities f WHERE f.code = upper(p_code);
        PERFORM private.definer_flags(NULL);
    END
    $$;

-- The public directory (第16条): code, name and kind of active facilities.
CREATE OR REPLACE FUNCTION public.facility_directory(p_ids uuid[], p_code text)
    RETURNS TABLE (id uuid, code text, name text, kind text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('directory');
        RETURN QUERY
            SELECT f.id, f.code, f.name, f.kind FROM public.facilities f
             WHERE f.status = 'active'
               AND (p_ids IS NULL OR f.id = ANY (p_ids))
               AND (p_code IS NULL OR f.code = upper(p_code))
             ORDER BY f.kind, f.code;
        PERFORM private.definer_flags(NULL);
    END
    $$;

-- Recomputes one patient's relation rows and announces the change. Reached only through the
-- trigger below (no role may execute it).
CREATE OR REPLACE FUNCTION public.refresh_patient_access(p_patient uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('access_maintenance');
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
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_access_changes',
                                 jsonb_build_object('patient', p_patient));
    END
    $$;
REVOKE ALL ON FUNCTION public.refresh_patient_access(uuid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION public.patient_access_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM public.refresh_patient_access(NEW.patient_id);
        RETURN NULL;
    END
    $$;
REVOKE ALL ON FUNCTION public.patient_access_changed() FROM PUBLIC;

-- Carries out the deletion request the caller's facility recorded in this very transaction:
-- removes everything stored about the patient, in every facility. The caller then destroys the
-- patient's data keys and completes the request.
CREATE OR REPLACE FUNCTION public.erase_patient(p_patient uuid) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        me     uuid := public.current_facility_id();
        counts jsonb := '{}'::jsonb;
        n      bigint;
    BEGIN
        -- The caller's relation and pending request, read as the owner (access maintenance
        -- shows every relation row and request; the checks name the caller's facility).
        PERFORM private.definer_flags('access_maintenance');
        IF me IS NULL OR NOT (public.has_access(me, p_patient, '{sharing}')
                              AND public.erasing(me, p_patient)) THEN
            RAISE EXCEPTION 'no deletion request to carry out' USING ERRCODE = 'P0002';
        END IF;
        PERFORM private.definer_flags(NULL);
        PERFORM set_config('renrakucho.erasure_patient', p_patient::text, true);
        DELETE FROM public.support_request_items WHERE patient_id = p_patient;
        DELETE FROM public.support_requests WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('support_requests', n);
        DELETE FROM public.entry_reads WHERE patient_id = p_patient;
        DELETE FROM public.patient_mutes WHERE patient_id = p_patient;
        DELETE FROM public.attachments WHERE patient_id = p_patient;
        GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('attachments', n);
        DELETE FROM public.entry_versions WHERE patient_id = p_patient;
        -- Replies refer to the entries they answer: one statement removes both.
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
        PERFORM set_config('renrakucho.erasure_patient', '', true);
        -- The relation goes too; the data keys stay readable to this transaction (through the
        -- pending request) until the caller destroys them.
        PERFORM public.refresh_patient_access(p_patient);
        RETURN counts;
    END
    $$;
REVOKE ALL ON FUNCTION public.erase_patient(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.erase_patient(uuid) TO renrakucho_runtime;

-- Re-encryption (`renrakucho keys reencrypt`): key maintenance only. A patient's values in one
-- column, (row ID, value).
CREATE OR REPLACE FUNCTION public.encrypted_values(p_table text, p_column text, p_patient uuid)
    RETURNS TABLE (row_id uuid, value bytea)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        owner_column text := public.encrypted_column_owner(p_table, p_column);
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF owner_column IS NULL OR p_patient IS NULL THEN
            RAISE EXCEPTION 'no such encrypted column' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        RETURN QUERY EXECUTE format(
            'SELECT id, %I FROM public.%I WHERE %I = $1 AND %I IS NOT NULL ORDER BY id',
            p_column, p_table, owner_column, p_column) USING p_patient;
        PERFORM set_config('renrakucho.reencrypt_patient', '', true);
    END
    $$;
-- CREATE OR REPLACE keeps earlier grants: migration 5 granted it to the web role.
REVOKE ALL ON FUNCTION public.encrypted_values(text, text, uuid) FROM PUBLIC, renrakucho_runtime;
GRANT EXECUTE ON FUNCTION public.encrypted_values(text, text, uuid) TO renrakucho_key_maintenance;

-- Replaces one value if it is still `p_old`; true when replaced.
CREATE OR REPLACE FUNCTION public.reencrypt_value(p_table text, p_column text, p_patient uuid,
                                                  p_row uuid, p_old bytea, p_new bytea)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        owner_column text := public.encrypted_column_owner(p_table, p_column);
        n bigint;
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF owner_column IS NULL OR p_patient IS NULL OR p_new IS NULL THEN
            RAISE EXCEPTION 'no such encrypted column' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        EXECUTE format('UPDATE public.%I SET %I = $1 WHERE id = $2 AND %I = $3 AND %I = $4',
                       p_table, p_column, owner_column, p_column)
            USING p_new, p_row, p_patient, p_old;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('renrakucho.reencrypt_patient', '', true);
        RETURN n = 1;
    END
    $$;
REVOKE ALL ON FUNCTION public.reencrypt_value(text, text, uuid, uuid, bytea, bytea)
    FROM PUBLIC, renrakucho_runtime;
GRANT EXECUTE ON FUNCTION public.reencrypt_value(text, text, uuid, uuid, bytea, bytea)
    TO renrakucho_key_maintenance;

-- The old relation check (the facility read per call) gives way to has_access(facility, …).
DROP FUNCTION public.has_access(uuid, text);
DROP FUNCTION public.erasing(uuid);
DROP FUNCTION public.support_shares(uuid, uuid);

-- Trigger functions, restated with a pinned search_path -------------------------------------------

-- Links each new record to the last one of its chain (advisory lock per chain). A record in the
-- name of a staff member must name the one the transaction's context is for.
CREATE OR REPLACE FUNCTION public.audit_log_link() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    DECLARE
        last_seq  bigint;
        last_hash bytea;
        acting    uuid;
    BEGIN
        IF NEW.actor_kind = 'staff' THEN
            acting := public.current_staff_id();
            IF acting IS NOT NULL AND NEW.actor_id IS DISTINCT FROM acting THEN
                RAISE EXCEPTION 'an audit record names the staff member the transaction acts for'
                    USING ERRCODE = '42501';
            END IF;
        END IF;
        PERFORM pg_advisory_xact_lock(
            hashtextextended('renrakucho.audit.' || coalesce(NEW.facility_id::text, 'platform'), 0));
        IF NEW.facility_id IS NULL THEN
            SELECT a.seq, a.hash INTO last_seq, last_hash
              FROM public.audit_log a
             WHERE a.facility_id IS NULL
             ORDER BY a.seq DESC
             LIMIT 1;
        ELSE
            SELECT a.seq, a.hash INTO last_seq, last_hash
              FROM public.audit_log a
             WHERE a.facility_id = NEW.facility_id
             ORDER BY a.seq DESC
             LIMIT 1;
        END IF;
        NEW.seq := coalesce(last_seq, 0) + 1;
        NEW.prev_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
        NEW.occurred_at := statement_timestamp();
        NEW.hash := public.audit_record_hash(NEW);
        RETURN NEW;
    END
    $$;

-- A key's identity never changes and a destroyed key never comes back. Key maintenance
-- re-wraps (a new `wrapped` always with a new `master_key_id`) and does nothing else; everyone
-- else may only destroy, which the policy allows only while erasing.
CREATE OR REPLACE FUNCTION public.data_keys_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF NEW.owner_kind IS DISTINCT FROM OLD.owner_kind
           OR NEW.owner_id IS DISTINCT FROM OLD.owner_id
           OR NEW.version IS DISTINCT FROM OLD.version
           OR NEW.facility_id IS DISTINCT FROM OLD.facility_id
           OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
            RAISE EXCEPTION 'a data key''s identity cannot change' USING ERRCODE = '23514';
        END IF;
        IF OLD.wrapped IS NULL THEN
            RAISE EXCEPTION 'a destroyed data key does not change' USING ERRCODE = '23514';
        END IF;
        IF public.in_key_maintenance() THEN
            IF NEW.wrapped IS NULL OR NEW.destroyed_at IS NOT NULL THEN
                RAISE EXCEPTION 'key maintenance re-wraps keys; it does not destroy them'
                    USING ERRCODE = '42501';
            END IF;
            IF (NEW.wrapped IS DISTINCT FROM OLD.wrapped)
               <> (NEW.master_key_id IS DISTINCT FROM OLD.master_key_id) THEN
                RAISE EXCEPTION 'a data key is re-wrapped under another master key, both together'
                    USING ERRCODE = '42501';
            END IF;
            RETURN NEW;
        END IF;
        IF NEW.wrapped IS NOT NULL OR NEW.destroyed_at IS NULL
           OR NEW.master_key_id IS DISTINCT FROM OLD.master_key_id
           OR NEW.rewrapped_at IS DISTINCT FROM OLD.rewrapped_at THEN
            RAISE EXCEPTION 'a data key is only destroyed, by erasure' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;

CREATE OR REPLACE FUNCTION public.data_keys_no_maintenance_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF public.in_key_maintenance() AND NEW.owner_kind <> 'blind_index' THEN
            RAISE EXCEPTION 'key maintenance re-wraps keys; it does not create them'
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;

-- Key caches of every server process follow a new key version or a destroyed key.
CREATE FUNCTION public.data_keys_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF (TG_OP = 'INSERT' AND NEW.version > 1)
           OR (TG_OP = 'UPDATE' AND NEW.wrapped IS NULL) THEN
            PERFORM private.announce('renrakucho_key_changes', jsonb_build_object(
                'kind', NEW.owner_kind, 'owner', NEW.owner_id));
        END IF;
        RETURN NULL;
    END
    $$;
REVOKE ALL ON FUNCTION public.data_keys_announce() FROM PUBLIC;
CREATE TRIGGER data_keys_announce AFTER INSERT OR UPDATE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION public.data_keys_announce();

CREATE OR REPLACE FUNCTION public.care_team_members_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    DECLARE
        me   uuid := public.current_facility_id();
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
        RETURN NEW;
    END
    $$;

CREATE OR REPLACE FUNCTION public.emergency_grants_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    DECLARE
        me uuid := public.current_facility_id();
    BEGIN
        IF public.reencrypting(NEW.patient_id) THEN
            RETURN NEW;
        END IF;
        IF NEW.reason_enc IS DISTINCT FROM OLD.reason_enc
           AND (OLD.reason_enc IS NOT NULL OR NEW.facility_id IS DISTINCT FROM me) THEN
            RAISE EXCEPTION 'the reason is given once, by the opening facility' USING ERRCODE = '42501';
        END IF;
        IF NEW.ended_at IS DISTINCT FROM OLD.ended_at
           AND (OLD.ended_at IS NOT NULL OR NEW.facility_id IS DISTINCT FROM me) THEN
            RAISE EXCEPTION 'only the opening facility ends its grant, once' USING ERRCODE = '42501';
        END IF;
        IF NEW.reviewed_at IS DISTINCT FROM OLD.reviewed_at
           AND (OLD.reviewed_at IS NOT NULL OR NEW.facility_id = me OR me IS NULL) THEN
            RAISE EXCEPTION 'a grant is reviewed once, by the care team' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;

CREATE OR REPLACE FUNCTION public.emergency_grants_reason_given() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        IF EXISTS (SELECT FROM public.emergency_grants g
                    WHERE g.id = NEW.id AND g.reason_enc IS NULL) THEN
            RAISE EXCEPTION 'an emergency grant needs its reason' USING ERRCODE = '23502';
        END IF;
        RETURN NULL;
    END
    $$;

CREATE OR REPLACE FUNCTION public.entries_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
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

-- History never changes (第31条): a version is written once and only erasure removes it.
CREATE FUNCTION public.entry_versions_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    BEGIN
        RAISE EXCEPTION 'an entry''s earlier versions do not change' USING ERRCODE = '42501';
    END
    $$;
CREATE TRIGGER entry_versions_immutable BEFORE UPDATE ON entry_versions
    FOR EACH ROW EXECUTE FUNCTION public.entry_versions_immutable();

CREATE OR REPLACE FUNCTION public.support_requests_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    AS $$
    DECLARE
        me   uuid := public.current_facility_id();
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

-- Live notifications: what happened (IDs and kinds, never content) goes to the announcements;
-- the payload is built from the row itself, so nobody can announce what did not happen.
CREATE OR REPLACE FUNCTION public.entries_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags('announcing');
        PERFORM private.announce('renrakucho_events', jsonb_build_object(
            'kind', 'entry', 'patient', NEW.patient_id, 'entry', NEW.id,
            'facility', NEW.facility_id, 'author', NEW.author_id, 'priority', NEW.priority,
            'reply_to', NEW.reply_to,
            'reply_to_author', (SELECT p.author_id FROM public.entries p WHERE p.id = NEW.reply_to),
            'mentions', to_jsonb(NEW.mentions)));
        PERFORM private.definer_flags(NULL);
        RETURN NULL;
    END
    $$;

CREATE OR REPLACE FUNCTION public.support_requests_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_events', jsonb_build_object(
            'kind', 'support', 'patient', NEW.patient_id, 'request', NEW.id,
            'facility', NEW.facility_id, 'to', NEW.to_facility_id, 'status', NEW.status));
        RETURN NULL;
    END
    $$;

CREATE OR REPLACE FUNCTION public.invitations_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF NEW.status = 'invited' THEN
            PERFORM private.announce('renrakucho_events', jsonb_build_object(
                'kind', 'invitation', 'patient', NEW.patient_id, 'to', NEW.facility_id));
        END IF;
        RETURN NULL;
    END
    $$;

CREATE OR REPLACE FUNCTION public.emergency_grants_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_events', jsonb_build_object(
            'kind', 'emergency', 'patient', NEW.patient_id, 'facility', NEW.facility_id));
        RETURN NULL;
    END
    $$;

REVOKE ALL ON FUNCTION public.entries_announce(), public.support_requests_announce(),
    public.invitations_announce(), public.emergency_grants_announce() FROM PUBLIC;

-- Privileges -----------------------------------------------------------------------------------------
-- The web role's group keeps what a request needs; each privileged role gets what its work needs.

REVOKE ALL ON facilities, platform_operators, audit_log, data_keys FROM renrakucho_runtime;
GRANT SELECT ON facilities TO renrakucho_runtime;
-- Identity columns never change: only what a correction or a personnel change touches.
REVOKE UPDATE ON patients, staff_accounts FROM renrakucho_runtime;
GRANT UPDATE (name_enc, kana_enc, profile_enc, updated_at) ON patients TO renrakucho_runtime;
GRANT UPDATE (display_name, role, profession, status, password_hash, password_changed_at,
              may_accept_invitations, updated_at) ON staff_accounts TO renrakucho_runtime;
GRANT SELECT, INSERT ON audit_log TO renrakucho_runtime;
GRANT SELECT, INSERT ON data_keys TO renrakucho_runtime;
GRANT UPDATE (wrapped, destroyed_at) ON data_keys TO renrakucho_runtime;

GRANT SELECT, INSERT, UPDATE ON facilities, platform_operators TO renrakucho_platform;
GRANT SELECT, INSERT ON audit_log TO renrakucho_platform, renrakucho_key_maintenance;
GRANT SELECT, INSERT ON data_keys TO renrakucho_key_maintenance;
GRANT UPDATE (wrapped, master_key_id, rewrapped_at) ON data_keys TO renrakucho_key_maintenance;
GRANT SELECT ON patient_access TO renrakucho_access_sync;
GRANT SELECT ON notification_settings TO renrakucho_digest;

-- Row-level security, every policy ----------------------------------------------------------------
-- `(SELECT current_facility_id())` is the genuine tenant context, computed once per statement (an
-- initplan). A relation is checked with an EXISTS on patient_access, not has_access(): inside a
-- function the probe re-runs patient_access's own policy, and so the context's verification, for
-- every row; written out, each row costs one index probe and the verification runs once.
-- `OFFSET 0` keeps the planner from turning the EXISTS into a hash of every relation row of the
-- facility (thousands, to check fifty entries); measured in docs/performance.md.

-- facilities: a facility reads its own row; the platform manages them all; the owner's directory
-- functions read the public fields.
CREATE POLICY facilities_own ON facilities FOR SELECT TO renrakucho_runtime
    USING (id = (SELECT current_facility_id()));
CREATE POLICY facilities_platform ON facilities TO renrakucho_platform
    USING ((SELECT in_platform_scope())) WITH CHECK ((SELECT in_platform_scope()));
CREATE POLICY facilities_directory ON facilities FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('directory')));

CREATE POLICY staff_accounts_own ON staff_accounts TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));

CREATE POLICY platform_operators_platform ON platform_operators TO renrakucho_platform
    USING ((SELECT in_platform_scope())) WITH CHECK ((SELECT in_platform_scope()));

-- audit_log: each facility its own chain; the platform's chain (facility_id NULL) for the
-- platform and key maintenance.
CREATE POLICY audit_log_facility ON audit_log TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY audit_log_platform ON audit_log TO renrakucho_platform, renrakucho_key_maintenance
    USING (facility_id IS NULL AND ((SELECT in_platform_scope()) OR (SELECT in_key_maintenance())))
    WITH CHECK (facility_id IS NULL
                AND ((SELECT in_platform_scope()) OR (SELECT in_key_maintenance())));

-- data_keys: read by the facilities that may decrypt; created by the registering facility (a
-- patient's later versions) or the facility itself; destroyed only while erasing; re-wrapped
-- only by key maintenance (the guard trigger says what may change).
CREATE POLICY data_keys_read ON data_keys FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR (owner_kind = 'blind_index' AND (SELECT current_facility_id()) IS NOT NULL)
           OR (owner_kind = 'patient'
               AND (EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = data_keys.owner_id
                               AND a.relation = ANY ('{sharing,member,emergency,support}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
                    OR EXISTS (SELECT FROM deletion_requests d
                                WHERE d.patient_id = data_keys.owner_id
                                  AND d.facility_id = (SELECT current_facility_id())
                                  AND d.completed_at IS NULL AND d.xmin = pg_current_xact_id()::xid OFFSET 0))));
CREATE POLICY data_keys_create ON data_keys FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND wrapped IS NOT NULL AND destroyed_at IS NULL
                AND (owner_kind <> 'patient' OR version = 1
                     OR EXISTS (SELECT FROM patient_access a
                                 WHERE a.facility_id = (SELECT current_facility_id())
                                   AND a.patient_id = data_keys.owner_id
                                   AND a.relation = ANY ('{registering}')
                                   AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)));
CREATE POLICY data_keys_erasure ON data_keys FOR UPDATE TO renrakucho_runtime
    USING (owner_kind = 'patient' AND EXISTS (SELECT FROM deletion_requests d
                                               WHERE d.patient_id = data_keys.owner_id
                                                 AND d.facility_id = (SELECT current_facility_id())
                                                 AND d.completed_at IS NULL AND d.xmin = pg_current_xact_id()::xid OFFSET 0))
    WITH CHECK (owner_kind = 'patient' AND EXISTS (SELECT FROM deletion_requests d
                                                    WHERE d.patient_id = data_keys.owner_id
                                                      AND d.facility_id = (SELECT current_facility_id())
                                                      AND d.completed_at IS NULL AND d.xmin = pg_current_xact_id()::xid OFFSET 0)
                AND wrapped IS NULL AND destroyed_at IS NOT NULL);
CREATE POLICY data_keys_maintenance ON data_keys TO renrakucho_key_maintenance
    USING ((SELECT in_key_maintenance()))
    WITH CHECK ((SELECT in_key_maintenance()) AND wrapped IS NOT NULL);

-- patients and their name terms: read by the facilities sharing the patient (and an emergency
-- grant); registered and corrected by the registering facility.
CREATE POLICY patients_read ON patients FOR SELECT TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = patients.id
                      AND a.relation = ANY ('{sharing,emergency}')
                      AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY patients_register ON patients FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY patients_update ON patients FOR UPDATE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY patients_erasure_read ON patients FOR SELECT TO CURRENT_USER
    USING (id = (SELECT erasure_target()));
CREATE POLICY patients_erasure ON patients FOR DELETE TO CURRENT_USER
    USING (id = (SELECT erasure_target()));
CREATE POLICY patients_reencrypt ON patients TO CURRENT_USER
    USING (id = (SELECT reencrypt_target())) WITH CHECK (id = (SELECT reencrypt_target()));

CREATE POLICY patient_name_terms_read ON patient_name_terms FOR SELECT TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = patient_name_terms.patient_id
                      AND a.relation = ANY ('{sharing}')
                      AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY patient_name_terms_write ON patient_name_terms FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY patient_name_terms_replace ON patient_name_terms FOR DELETE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY patient_name_terms_erasure_read ON patient_name_terms FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY patient_name_terms_erasure ON patient_name_terms FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

-- patient_access: a facility reads its own relations; the access loader reads them all;
-- refresh_patient_access (owner) writes them.
CREATE POLICY patient_access_own ON patient_access FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY patient_access_sync ON patient_access FOR SELECT TO renrakucho_access_sync
    USING ((SELECT in_access_sync()));
CREATE POLICY patient_access_maintenance ON patient_access TO CURRENT_USER
    USING ((SELECT in_access_maintenance())) WITH CHECK ((SELECT in_access_maintenance()));

-- care_team_members: see migration 4 for who moves a membership where (the trigger).
CREATE POLICY care_team_members_read ON care_team_members FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM patient_access a
                       WHERE a.facility_id = (SELECT current_facility_id())
                         AND a.patient_id = care_team_members.patient_id
                         AND a.relation = ANY ('{sharing,emergency}')
                         AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY care_team_members_insert ON care_team_members FOR INSERT TO renrakucho_runtime
    WITH CHECK ((role = 'registering' AND facility_id = (SELECT current_facility_id()))
                OR (role = 'member' AND status = 'invited'
                    AND facility_id <> (SELECT current_facility_id())
                    AND EXISTS (SELECT FROM patient_access a
                                 WHERE a.facility_id = (SELECT current_facility_id())
                                   AND a.patient_id = care_team_members.patient_id
                                   AND a.relation = ANY ('{sharing}')
                                   AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)));
CREATE POLICY care_team_members_update ON care_team_members FOR UPDATE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM patient_access a
                       WHERE a.facility_id = (SELECT current_facility_id())
                         AND a.patient_id = care_team_members.patient_id
                         AND a.relation = ANY ('{registering}')
                         AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR EXISTS (SELECT FROM patient_access a
                            WHERE a.facility_id = (SELECT current_facility_id())
                              AND a.patient_id = care_team_members.patient_id
                              AND a.relation = ANY ('{registering}')
                              AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY care_team_members_maintenance ON care_team_members FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY care_team_members_erasure ON care_team_members FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

CREATE POLICY consents_read ON consents FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM patient_access a
                       WHERE a.facility_id = (SELECT current_facility_id())
                         AND a.patient_id = consents.patient_id
                         AND a.relation = ANY ('{sharing}')
                         AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY consents_insert ON consents FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = consents.patient_id
                               AND a.relation = ANY ('{registering,member}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY consents_withdraw ON consents FOR UPDATE TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = consents.patient_id
                      AND a.relation = ANY ('{sharing}')
                      AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
    WITH CHECK (withdrawn_by_facility = (SELECT current_facility_id()));
CREATE POLICY consents_maintenance ON consents FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY consents_erasure ON consents FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY consents_reencrypt ON consents TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

CREATE POLICY emergency_grants_read ON emergency_grants FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM patient_access a
                       WHERE a.facility_id = (SELECT current_facility_id())
                         AND a.patient_id = emergency_grants.patient_id
                         AND a.relation = ANY ('{sharing}')
                         AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY emergency_grants_open ON emergency_grants FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id()) AND ended_at IS NULL
                AND reviewed_at IS NULL);
CREATE POLICY emergency_grants_update ON emergency_grants FOR UPDATE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM patient_access a
                       WHERE a.facility_id = (SELECT current_facility_id())
                         AND a.patient_id = emergency_grants.patient_id
                         AND a.relation = ANY ('{sharing}')
                         AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR (EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = emergency_grants.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
                    AND reviewed_by_facility = (SELECT current_facility_id())));
CREATE POLICY emergency_grants_maintenance ON emergency_grants FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY emergency_grants_erasure ON emergency_grants FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY emergency_grants_reencrypt ON emergency_grants TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

CREATE POLICY deletion_requests_own ON deletion_requests FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()));
CREATE POLICY deletion_requests_record ON deletion_requests FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = deletion_requests.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
                AND completed_at IS NULL);
CREATE POLICY deletion_requests_complete ON deletion_requests FOR UPDATE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()) AND completed_at IS NULL)
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY deletion_requests_maintenance ON deletion_requests FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()));

-- The notebook.
CREATE POLICY entries_read ON entries FOR SELECT TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = entries.patient_id
                      AND a.relation = ANY ('{sharing,emergency}')
                      AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
           OR (EXISTS (SELECT FROM patient_access a
                        WHERE a.facility_id = (SELECT current_facility_id())
                          AND a.patient_id = entries.patient_id
                          AND a.relation = ANY ('{support}')
                          AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
               AND EXISTS (SELECT FROM support_request_items i
                              JOIN support_requests r ON r.id = i.request_id
                            WHERE i.entry_id = entries.id
                              AND r.to_facility_id = (SELECT current_facility_id())
                              AND r.status IN ('requested', 'accepted', 'answered') OFFSET 0)));
CREATE POLICY entries_post ON entries FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = entries.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY entries_edit ON entries FOR UPDATE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           AND EXISTS (SELECT FROM patient_access a
                        WHERE a.facility_id = (SELECT current_facility_id())
                          AND a.patient_id = entries.patient_id
                          AND a.relation = ANY ('{sharing}')
                          AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = entries.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY entries_announce_read ON entries FOR SELECT TO CURRENT_USER
    USING ((SELECT owner_flag('announcing')));
CREATE POLICY entries_erasure_read ON entries FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entries_erasure ON entries FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entries_reencrypt ON entries TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

CREATE POLICY entry_versions_read ON entry_versions FOR SELECT TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = entry_versions.patient_id
                      AND a.relation = ANY ('{sharing,emergency}')
                      AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY entry_versions_write ON entry_versions FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = entry_versions.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY entry_versions_erasure_read ON entry_versions FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entry_versions_erasure ON entry_versions FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

CREATE POLICY attachments_read ON attachments FOR SELECT TO renrakucho_runtime
    USING ((entry_id IS NOT NULL
            AND EXISTS (SELECT FROM patient_access a
                         WHERE a.facility_id = (SELECT current_facility_id())
                           AND a.patient_id = attachments.patient_id
                           AND a.relation = ANY ('{sharing,emergency}')
                           AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
           OR (entry_id IS NULL AND facility_id = (SELECT current_facility_id())
               AND EXISTS (SELECT FROM patient_access a
                            WHERE a.facility_id = (SELECT current_facility_id())
                              AND a.patient_id = attachments.patient_id
                              AND a.relation = ANY ('{sharing}')
                              AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
           OR (EXISTS (SELECT FROM patient_access a
                        WHERE a.facility_id = (SELECT current_facility_id())
                          AND a.patient_id = attachments.patient_id
                          AND a.relation = ANY ('{support}')
                          AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
               AND EXISTS (SELECT FROM support_request_items i
                              JOIN support_requests r ON r.id = i.request_id
                            WHERE i.attachment_id = attachments.id
                              AND r.to_facility_id = (SELECT current_facility_id())
                              AND r.status IN ('requested', 'accepted', 'answered') OFFSET 0)));
CREATE POLICY attachments_upload ON attachments FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id()) AND entry_id IS NULL
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = attachments.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY attachments_attach ON attachments FOR UPDATE TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()) AND entry_id IS NULL
           AND EXISTS (SELECT FROM patient_access a
                        WHERE a.facility_id = (SELECT current_facility_id())
                          AND a.patient_id = attachments.patient_id
                          AND a.relation = ANY ('{sharing}')
                          AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = attachments.patient_id
                               AND a.relation = ANY ('{sharing}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY attachments_erasure_read ON attachments FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY attachments_erasure ON attachments FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY attachments_reencrypt ON attachments TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

CREATE POLICY entry_reads_read ON entry_reads FOR SELECT TO renrakucho_runtime
    USING (EXISTS (SELECT FROM patient_access a
                    WHERE a.facility_id = (SELECT current_facility_id())
                      AND a.patient_id = entry_reads.patient_id
                      AND a.relation = ANY ('{sharing,emergency}')
                      AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY entry_reads_mark ON entry_reads FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = entry_reads.patient_id
                               AND a.relation = ANY ('{sharing,emergency}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY entry_reads_erasure_read ON entry_reads FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY entry_reads_erasure ON entry_reads FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

CREATE POLICY support_requests_read ON support_requests FOR SELECT TO renrakucho_runtime
    USING ((SELECT current_facility_id()) IN (facility_id, to_facility_id));
CREATE POLICY support_requests_send ON support_requests FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = support_requests.patient_id
                               AND a.relation = ANY ('{consented}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
                AND status = 'requested');
CREATE POLICY support_requests_move ON support_requests FOR UPDATE TO renrakucho_runtime
    USING ((SELECT current_facility_id()) IN (facility_id, to_facility_id))
    WITH CHECK ((SELECT current_facility_id()) IN (facility_id, to_facility_id));
CREATE POLICY support_requests_maintenance ON support_requests FOR SELECT TO CURRENT_USER
    USING ((SELECT in_access_maintenance()) OR patient_id = (SELECT erasure_target()));
CREATE POLICY support_requests_erasure ON support_requests FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY support_requests_reencrypt ON support_requests TO CURRENT_USER
    USING (patient_id = (SELECT reencrypt_target()))
    WITH CHECK (patient_id = (SELECT reencrypt_target()));

CREATE POLICY support_request_items_read ON support_request_items FOR SELECT TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id())
           OR EXISTS (SELECT FROM support_requests r
                       WHERE r.id = support_request_items.request_id
                         AND r.to_facility_id = (SELECT current_facility_id())));
CREATE POLICY support_request_items_add ON support_request_items FOR INSERT TO renrakucho_runtime
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = support_request_items.patient_id
                               AND a.relation = ANY ('{consented}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0)
                AND EXISTS (SELECT FROM support_requests r
                             WHERE r.id = support_request_items.request_id
                               AND r.facility_id = (SELECT current_facility_id())
                               AND r.patient_id = support_request_items.patient_id));
CREATE POLICY support_request_items_erasure_read ON support_request_items FOR SELECT
    TO CURRENT_USER USING (patient_id = (SELECT erasure_target()));
CREATE POLICY support_request_items_erasure ON support_request_items FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));

CREATE POLICY notification_settings_own ON notification_settings TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY notification_settings_digest ON notification_settings FOR SELECT
    TO renrakucho_digest USING ((SELECT in_digest_scope()));

CREATE POLICY patient_mutes_own ON patient_mutes TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                AND EXISTS (SELECT FROM patient_access a
                             WHERE a.facility_id = (SELECT current_facility_id())
                               AND a.patient_id = patient_mutes.patient_id
                               AND a.relation = ANY ('{sharing,emergency}')
                               AND (a.expires_at IS NULL OR a.expires_at > now()) OFFSET 0));
CREATE POLICY patient_mutes_erasure_read ON patient_mutes FOR SELECT TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
CREATE POLICY patient_mutes_erasure ON patient_mutes FOR DELETE TO CURRENT_USER
    USING (patient_id = (SELECT erasure_target()));
