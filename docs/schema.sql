-- The database schema as the migrations in migrations/ leave it (generated: do not edit).
-- `pg_dump --schema-only` of a freshly migrated database, checked by the integration test
-- `schema::docs_schema_sql_is_a_fresh_dump`; regenerate with
--   RENRAKUCHO_BLESS=1 cargo test -p renrakucho-tests --test integration -- schema::
-- Only the PostgreSQL versions below are shortened to their major version.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15
-- Dumped by pg_dump version 15

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: private; Type: SCHEMA; Schema: -; Owner: renrakucho_owner
--

CREATE SCHEMA private;


ALTER SCHEMA private OWNER TO renrakucho_owner;

--
-- Name: announce(text, jsonb); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.announce(p_channel text, p_payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    DECLARE
        n bigint;
    BEGIN
        INSERT INTO private.announcements (channel, payload) VALUES (p_channel, p_payload)
            RETURNING id INTO n;
        PERFORM pg_notify(p_channel, n::text);
    END
    $$;


ALTER FUNCTION private.announce(p_channel text, p_payload jsonb) OWNER TO renrakucho_owner;

--
-- Name: context_parts(); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.context_parts() RETURNS text[]
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION private.context_parts() OWNER TO renrakucho_owner;

--
-- Name: definer_flags(text); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.definer_flags(p_on text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION private.definer_flags(p_on text) OWNER TO renrakucho_owner;

--
-- Name: identification_locked_until(uuid, uuid, timestamp with time zone); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.identification_locked_until(p_facility uuid, p_patient uuid, p_since timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION private.identification_locked_until(p_facility uuid, p_patient uuid, p_since timestamp with time zone) OWNER TO renrakucho_owner;

--
-- Name: legacy_value_count(); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.legacy_value_count() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION private.legacy_value_count() OWNER TO renrakucho_owner;

--
-- Name: principal_changed(); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.principal_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF TG_TABLE_NAME = 'staff_accounts' THEN
            PERFORM private.announce('renrakucho_principal_changes',
                jsonb_build_object('staff', OLD.id, 'facility', OLD.facility_id));
        ELSIF TG_TABLE_NAME = 'facilities' THEN
            PERFORM private.announce('renrakucho_principal_changes',
                jsonb_build_object('facility', OLD.id));
        ELSE
            PERFORM private.announce('renrakucho_principal_changes',
                jsonb_build_object('operator', OLD.id));
        END IF;
        RETURN NULL;
    END
    $$;


ALTER FUNCTION private.principal_changed() OWNER TO renrakucho_owner;

--
-- Name: sessions_changed(); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.sessions_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.announce('renrakucho_principal_changes',
            jsonb_build_object('session', encode(OLD.id_hash, 'hex')));
        RETURN NULL;
    END
    $$;


ALTER FUNCTION private.sessions_changed() OWNER TO renrakucho_owner;

--
-- Name: value_binding_guard(); Type: FUNCTION; Schema: private; Owner: renrakucho_owner
--

CREATE FUNCTION private.value_binding_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        IF OLD.legacy_readable = false AND NEW.legacy_readable THEN
            RAISE EXCEPTION 'values of format 1 stay refused' USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;


ALTER FUNCTION private.value_binding_guard() OWNER TO renrakucho_owner;

--
-- Name: audit_log_link(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.audit_log_link() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.audit_log_link() OWNER TO renrakucho_owner;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    facility_id uuid,
    seq bigint NOT NULL,
    occurred_at timestamp with time zone DEFAULT now() NOT NULL,
    actor_kind text NOT NULL,
    actor_id uuid,
    action text NOT NULL,
    outcome text NOT NULL,
    target_kind text,
    target_id uuid,
    client_addr inet,
    request_id text,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT audit_log_action_check CHECK ((action ~ '^[a-z_.]{3,64}$'::text)),
    CONSTRAINT audit_log_actor_kind_check CHECK ((actor_kind = ANY (ARRAY['staff'::text, 'operator'::text, 'system'::text, 'anonymous'::text]))),
    CONSTRAINT audit_log_outcome_check CHECK ((outcome = ANY (ARRAY['success'::text, 'denied'::text, 'failure'::text]))),
    CONSTRAINT audit_log_request_id_check CHECK ((char_length(request_id) <= 100))
);

ALTER TABLE ONLY public.audit_log FORCE ROW LEVEL SECURITY;


ALTER TABLE public.audit_log OWNER TO renrakucho_owner;

--
-- Name: audit_record_hash(public.audit_log); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.audit_record_hash(r public.audit_log) RETURNS bytea
    LANGUAGE sql STABLE
    BEGIN ATOMIC
 SELECT sha256(((r).prev_hash || convert_to((jsonb_build_array((r).seq, (r).facility_id, to_char(((r).occurred_at AT TIME ZONE 'UTC'::text), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'::text), (r).actor_kind, (r).actor_id, (r).action, (r).outcome, (r).target_kind, (r).target_id, host((r).client_addr), (r).request_id, (r).details))::text, 'UTF8'::name))) AS sha256;
END;


ALTER FUNCTION public.audit_record_hash(r public.audit_log) OWNER TO renrakucho_owner;

--
-- Name: care_team_members_transition(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.care_team_members_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.care_team_members_transition() OWNER TO renrakucho_owner;

--
-- Name: consents_admission(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.consents_admission() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.consents_admission() OWNER TO renrakucho_owner;

--
-- Name: consents_announce(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.consents_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.consents_announce() OWNER TO renrakucho_owner;

--
-- Name: consents_withdraw_once(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.consents_withdraw_once() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.consents_withdraw_once() OWNER TO renrakucho_owner;

--
-- Name: current_facility_id(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.current_facility_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        RETURN (private.context_parts())[2]::uuid;
    END
    $$;


ALTER FUNCTION public.current_facility_id() OWNER TO renrakucho_owner;

--
-- Name: current_staff_id(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.current_staff_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        RETURN nullif((private.context_parts())[3], '')::uuid;
    END
    $$;


ALTER FUNCTION public.current_staff_id() OWNER TO renrakucho_owner;

--
-- Name: data_keys_announce(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.data_keys_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.data_keys_announce() OWNER TO renrakucho_owner;

--
-- Name: data_keys_epoch_open(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.data_keys_epoch_open() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    BEGIN
        IF NEW.wrapped IS NULL
           OR (TG_OP = 'UPDATE' AND NEW.master_key_id IS NOT DISTINCT FROM OLD.master_key_id) THEN
            RETURN NEW;
        END IF;
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('renrakucho.master_key_epoch.' || NEW.master_key_id, 0));
        IF EXISTS (SELECT FROM public.master_key_epochs e
                    WHERE e.master_key_id = NEW.master_key_id AND e.state <> 'active') THEN
            RAISE EXCEPTION 'master key % is being retired: data keys are wrapped under the current one',
                NEW.master_key_id USING ERRCODE = '55000';
        END IF;
        RETURN NEW;
    END
    $$;


ALTER FUNCTION public.data_keys_epoch_open() OWNER TO renrakucho_owner;

--
-- Name: data_keys_guard(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.data_keys_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.data_keys_guard() OWNER TO renrakucho_owner;

--
-- Name: data_keys_no_maintenance_insert(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.data_keys_no_maintenance_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    BEGIN
        IF public.in_key_maintenance() AND NEW.owner_kind <> 'blind_index' THEN
            RAISE EXCEPTION 'key maintenance re-wraps keys; it does not create them'
                USING ERRCODE = '42501';
        END IF;
        RETURN NEW;
    END
    $$;


ALTER FUNCTION public.data_keys_no_maintenance_insert() OWNER TO renrakucho_owner;

--
-- Name: emergency_grants_announce(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_grants_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_events', jsonb_build_object(
            'kind', 'emergency', 'patient', NEW.patient_id, 'facility', NEW.facility_id));
        RETURN NULL;
    END
    $$;


ALTER FUNCTION public.emergency_grants_announce() OWNER TO renrakucho_owner;

--
-- Name: emergency_grants_guard(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_grants_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.emergency_grants_guard() OWNER TO renrakucho_owner;

--
-- Name: emergency_grants_identified(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_grants_identified() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.emergency_grants_identified() OWNER TO renrakucho_owner;

--
-- Name: emergency_grants_reason_given(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_grants_reason_given() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    BEGIN
        IF EXISTS (SELECT FROM public.emergency_grants g
                    WHERE g.id = NEW.id AND g.reason_enc IS NULL) THEN
            RAISE EXCEPTION 'an emergency grant needs its reason' USING ERRCODE = '23502';
        END IF;
        RETURN NULL;
    END
    $$;


ALTER FUNCTION public.emergency_grants_reason_given() OWNER TO renrakucho_owner;

--
-- Name: emergency_grants_unlocked(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_grants_unlocked() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.emergency_grants_unlocked() OWNER TO renrakucho_owner;

--
-- Name: emergency_identification_failed(bytea); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_identification_failed(p_lookup bytea) RETURNS TABLE(failure_id bigint, patient_id uuid, registering_facility_id uuid, card_failures integer, facility_failures integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.emergency_identification_failed(p_lookup bytea) OWNER TO renrakucho_owner;

--
-- Name: emergency_identification_status(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_identification_status() RETURNS TABLE(failures integer, locked_until timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.emergency_identification_status() OWNER TO renrakucho_owner;

--
-- Name: emergency_identified(bytea, bytea); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_identified(p_lookup bytea, p_birth_check bytea) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.emergency_identified(p_lookup bytea, p_birth_check bytea) OWNER TO renrakucho_owner;

--
-- Name: emergency_identify(bytea); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.emergency_identify(p_lookup bytea) RETURNS TABLE(patient_id uuid, birth_check bytea, facility_locked_until timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.emergency_identify(p_lookup bytea) OWNER TO renrakucho_owner;

--
-- Name: encrypted_column_binding(text, text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.encrypted_column_binding(p_table text, p_column text) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC
 SELECT
         CASE ((p_table || '.'::text) || p_column)
             WHEN 'patients.name_enc'::text THEN ARRAY['id'::text, 'revision'::text]
             WHEN 'patients.kana_enc'::text THEN ARRAY['id'::text, 'revision'::text]
             WHEN 'patients.profile_enc'::text THEN ARRAY['id'::text, 'revision'::text]
             WHEN 'consents.details_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'emergency_grants.reason_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'entries.body_enc'::text THEN ARRAY['id'::text, 'version'::text]
             WHEN 'entries.vitals_enc'::text THEN ARRAY['id'::text, 'version'::text]
             WHEN 'entries.withdrawal_reason_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'entry_versions.body_enc'::text THEN ARRAY['entry_id'::text, 'version'::text]
             WHEN 'entry_versions.vitals_enc'::text THEN ARRAY['entry_id'::text, 'version'::text]
             WHEN 'attachments.file_name_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'support_requests.question_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'support_requests.summary_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'support_requests.answer_enc'::text THEN ARRAY['id'::text, NULL::text]
             WHEN 'patient_cards.number_enc'::text THEN ARRAY['id'::text, 'revision'::text]
             ELSE NULL::text[]
         END AS "case";
END;


ALTER FUNCTION public.encrypted_column_binding(p_table text, p_column text) OWNER TO renrakucho_owner;

--
-- Name: encrypted_column_owner(text, text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.encrypted_column_owner(p_table text, p_column text) RETURNS text
    LANGUAGE sql IMMUTABLE
    BEGIN ATOMIC
 SELECT
         CASE ((p_table || '.'::text) || p_column)
             WHEN 'patients.name_enc'::text THEN 'id'::text
             WHEN 'patients.kana_enc'::text THEN 'id'::text
             WHEN 'patients.profile_enc'::text THEN 'id'::text
             WHEN 'consents.details_enc'::text THEN 'patient_id'::text
             WHEN 'emergency_grants.reason_enc'::text THEN 'patient_id'::text
             WHEN 'entries.body_enc'::text THEN 'patient_id'::text
             WHEN 'entries.vitals_enc'::text THEN 'patient_id'::text
             WHEN 'entries.withdrawal_reason_enc'::text THEN 'patient_id'::text
             WHEN 'entry_versions.body_enc'::text THEN 'patient_id'::text
             WHEN 'entry_versions.vitals_enc'::text THEN 'patient_id'::text
             WHEN 'attachments.file_name_enc'::text THEN 'patient_id'::text
             WHEN 'support_requests.question_enc'::text THEN 'patient_id'::text
             WHEN 'support_requests.summary_enc'::text THEN 'patient_id'::text
             WHEN 'support_requests.answer_enc'::text THEN 'patient_id'::text
             WHEN 'patient_cards.number_enc'::text THEN 'patient_id'::text
             ELSE NULL::text
         END AS "case";
END;


ALTER FUNCTION public.encrypted_column_owner(p_table text, p_column text) OWNER TO renrakucho_owner;

--
-- Name: encrypted_values(text, text, uuid); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.encrypted_values(p_table text, p_column text, p_patient uuid) RETURNS TABLE(row_id uuid, bound_row uuid, version bigint, value bytea)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
    $_$;


ALTER FUNCTION public.encrypted_values(p_table text, p_column text, p_patient uuid) OWNER TO renrakucho_owner;

--
-- Name: entries_announce(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.entries_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.entries_announce() OWNER TO renrakucho_owner;

--
-- Name: entries_guard(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.entries_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.entries_guard() OWNER TO renrakucho_owner;

--
-- Name: entry_versions_immutable(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.entry_versions_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.entry_versions_immutable() OWNER TO renrakucho_owner;

--
-- Name: erase_patient(uuid); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.erase_patient(p_patient uuid) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.erase_patient(p_patient uuid) OWNER TO renrakucho_owner;

--
-- Name: deletion_requests; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.deletion_requests (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    requested_by uuid NOT NULL,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    erased jsonb DEFAULT '{}'::jsonb NOT NULL
);

ALTER TABLE ONLY public.deletion_requests FORCE ROW LEVEL SECURITY;


ALTER TABLE public.deletion_requests OWNER TO renrakucho_owner;

--
-- Name: erasing(uuid, uuid); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.erasing(p_facility uuid, p_patient uuid) RETURNS boolean
    LANGUAGE sql STABLE
    BEGIN ATOMIC
 SELECT (EXISTS ( SELECT
            FROM public.deletion_requests d
           WHERE ((d.patient_id = erasing.p_patient) AND (d.facility_id = erasing.p_facility) AND (d.completed_at IS NULL) AND (d.xmin = (pg_current_xact_id())::xid)))) AS "exists";
END;


ALTER FUNCTION public.erasing(p_facility uuid, p_patient uuid) OWNER TO renrakucho_owner;

--
-- Name: erasure_target(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.erasure_target() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (NULLIF(current_setting('renrakucho.erasure_patient'::text, true), ''::text))::uuid AS "nullif";
END;


ALTER FUNCTION public.erasure_target() OWNER TO renrakucho_owner;

--
-- Name: facility_directory(uuid[], text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.facility_directory(p_ids uuid[], p_code text) RETURNS TABLE(id uuid, code text, name text, kind text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.facility_directory(p_ids uuid[], p_code text) OWNER TO renrakucho_owner;

--
-- Name: facility_for_sign_in(text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.facility_for_sign_in(p_code text) RETURNS TABLE(facility_id uuid, status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags('directory');
        RETURN QUERY SELECT f.id, f.status FROM public.facilities f WHERE f.code = upper(p_code);
        PERFORM private.definer_flags(NULL);
    END
    $$;


ALTER FUNCTION public.facility_for_sign_in(p_code text) OWNER TO renrakucho_owner;

--
-- Name: patient_access; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.patient_access (
    facility_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    relation text NOT NULL,
    expires_at timestamp with time zone,
    CONSTRAINT patient_access_check CHECK (((relation = 'emergency'::text) = (expires_at IS NOT NULL))),
    CONSTRAINT patient_access_relation_check CHECK ((relation = ANY (ARRAY['registering'::text, 'member'::text, 'invited'::text, 'sharing'::text, 'consented'::text, 'emergency'::text, 'support'::text, 'collecting'::text, 'withdrawn'::text])))
);

ALTER TABLE ONLY public.patient_access FORCE ROW LEVEL SECURITY;


ALTER TABLE public.patient_access OWNER TO renrakucho_owner;

--
-- Name: has_access(uuid, uuid, text[]); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.has_access(p_facility uuid, p_patient uuid, p_relations text[]) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (EXISTS ( SELECT
            FROM public.patient_access a
           WHERE ((a.facility_id = has_access.p_facility) AND (a.patient_id = has_access.p_patient) AND (a.relation = ANY (has_access.p_relations)) AND ((a.expires_at IS NULL) OR (a.expires_at > now()))))) AS "exists";
END;


ALTER FUNCTION public.has_access(p_facility uuid, p_patient uuid, p_relations text[]) OWNER TO renrakucho_owner;

--
-- Name: in_access_maintenance(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.in_access_maintenance() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (COALESCE(current_setting('renrakucho.access_maintenance'::text, true), ''::text) = 'on'::text);
END;


ALTER FUNCTION public.in_access_maintenance() OWNER TO renrakucho_owner;

--
-- Name: in_access_sync(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.in_access_sync() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (CURRENT_USER = 'renrakucho_access_sync'::name);
END;


ALTER FUNCTION public.in_access_sync() OWNER TO renrakucho_owner;

--
-- Name: in_digest_scope(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.in_digest_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (CURRENT_USER = 'renrakucho_digest'::name);
END;


ALTER FUNCTION public.in_digest_scope() OWNER TO renrakucho_owner;

--
-- Name: in_key_maintenance(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.in_key_maintenance() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (CURRENT_USER = 'renrakucho_key_maintenance'::name);
END;


ALTER FUNCTION public.in_key_maintenance() OWNER TO renrakucho_owner;

--
-- Name: in_platform_scope(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.in_platform_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (CURRENT_USER = 'renrakucho_platform'::name);
END;


ALTER FUNCTION public.in_platform_scope() OWNER TO renrakucho_owner;

--
-- Name: invitations_announce(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.invitations_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.invitations_announce() OWNER TO renrakucho_owner;

--
-- Name: legacy_values_readable(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.legacy_values_readable() RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        RETURN (SELECT b.legacy_readable FROM private.value_binding b);
    END
    $$;


ALTER FUNCTION public.legacy_values_readable() OWNER TO renrakucho_owner;

--
-- Name: master_key_epochs_forward(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.master_key_epochs_forward() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    BEGIN
        IF NEW.master_key_id IS DISTINCT FROM OLD.master_key_id
           OR NEW.erasures_covered IS DISTINCT FROM OLD.erasures_covered
           OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
            RAISE EXCEPTION 'a master key epoch''s identity cannot change' USING ERRCODE = '23514';
        END IF;
        IF (OLD.state = 'retiring' AND NEW.state = 'active')
           OR (OLD.state = 'destroyed' AND NEW.state <> 'destroyed') THEN
            RAISE EXCEPTION 'a master key epoch only moves forward (active, retiring, destroyed)'
                USING ERRCODE = '23514';
        END IF;
        RETURN NEW;
    END
    $$;


ALTER FUNCTION public.master_key_epochs_forward() OWNER TO renrakucho_owner;

--
-- Name: owner_flag(text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.owner_flag(p_name text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (COALESCE(current_setting(('renrakucho.'::text || p_name), true), ''::text) = 'on'::text);
END;


ALTER FUNCTION public.owner_flag(p_name text) OWNER TO renrakucho_owner;

--
-- Name: patient_access_changed(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.patient_access_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM public.refresh_patient_access(NEW.patient_id);
        RETURN NULL;
    END
    $$;


ALTER FUNCTION public.patient_access_changed() OWNER TO renrakucho_owner;

--
-- Name: patient_cards_revision(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.patient_cards_revision() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.patient_cards_revision() OWNER TO renrakucho_owner;

--
-- Name: patients_revision(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.patients_revision() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.patients_revision() OWNER TO renrakucho_owner;

--
-- Name: raise_platform_alert(text, text, jsonb); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.raise_platform_alert(p_kind text, p_dedupe_key text, p_details jsonb) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    DECLARE
        facility uuid := public.current_facility_id();
        created boolean;
    BEGIN
        IF facility IS NULL THEN
            RAISE EXCEPTION 'an alert needs a tenant context' USING ERRCODE = '42501';
        END IF;
        PERFORM private.definer_flags('alerting');
        INSERT INTO private.platform_alerts AS a (kind, raised_by_facility, dedupe_key, details)
        VALUES (p_kind, facility, p_dedupe_key, coalesce(p_details, '{}'::jsonb))
        ON CONFLICT (kind, raised_by_facility, dedupe_key) DO UPDATE
            SET occurrences = a.occurrences + 1, last_raised_at = now(),
                details = excluded.details
        RETURNING (xmax = 0) INTO created;
        PERFORM private.definer_flags(NULL);
        RETURN created;
    END
    $$;


ALTER FUNCTION public.raise_platform_alert(p_kind text, p_dedupe_key text, p_details jsonb) OWNER TO renrakucho_owner;

--
-- Name: reencrypt_target(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.reencrypt_target() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT (NULLIF(current_setting('renrakucho.reencrypt_patient'::text, true), ''::text))::uuid AS "nullif";
END;


ALTER FUNCTION public.reencrypt_target() OWNER TO renrakucho_owner;

--
-- Name: reencrypt_value(text, text, uuid, uuid, bytea, bytea); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.reencrypt_value(p_table text, p_column text, p_patient uuid, p_row uuid, p_old bytea, p_new bytea) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
    $_$;


ALTER FUNCTION public.reencrypt_value(p_table text, p_column text, p_patient uuid, p_row uuid, p_old bytea, p_new bytea) OWNER TO renrakucho_owner;

--
-- Name: patients; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.patients (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    name_enc bytea NOT NULL,
    kana_enc bytea NOT NULL,
    profile_enc bytea NOT NULL,
    registered_by uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    revision bigint DEFAULT 1 NOT NULL,
    CONSTRAINT patients_revision_check CHECK ((revision >= 1))
);

ALTER TABLE ONLY public.patients FORCE ROW LEVEL SECURITY;


ALTER TABLE public.patients OWNER TO renrakucho_owner;

--
-- Name: reencrypting(uuid); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.reencrypting(p_patient uuid) RETURNS boolean
    LANGUAGE sql STABLE
    BEGIN ATOMIC
 SELECT ((public.reencrypt_target() = p_patient) AND (CURRENT_USER = ( SELECT r.rolname
            FROM (pg_class c
              JOIN pg_roles r ON ((r.oid = c.relowner)))
           WHERE (c.oid = ('public.patients'::regclass)::oid))));
END;


ALTER FUNCTION public.reencrypting(p_patient uuid) OWNER TO renrakucho_owner;

--
-- Name: refresh_patient_access(uuid); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.refresh_patient_access(p_patient uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.refresh_patient_access(p_patient uuid) OWNER TO renrakucho_owner;

--
-- Name: context_chain; Type: SEQUENCE; Schema: private; Owner: renrakucho_owner
--

CREATE SEQUENCE private.context_chain
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE private.context_chain OWNER TO renrakucho_owner;

--
-- Name: renrakucho_connection(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.renrakucho_connection(OUT pid integer, OUT chain bigint) RETURNS record
    LANGUAGE sql SECURITY DEFINER
    BEGIN ATOMIC
 SELECT pg_backend_pid() AS pg_backend_pid,
     nextval('private.context_chain'::regclass) AS nextval;
END;


ALTER FUNCTION public.renrakucho_connection(OUT pid integer, OUT chain bigint) OWNER TO renrakucho_owner;

--
-- Name: renrakucho_enter(integer, bigint, uuid, uuid, bytea); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.renrakucho_enter(p_pid integer, p_chain bigint, p_facility uuid, p_staff uuid, p_mac bytea) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.renrakucho_enter(p_pid integer, p_chain bigint, p_facility uuid, p_staff uuid, p_mac bytea) OWNER TO renrakucho_owner;

--
-- Name: session_create(text, bytea, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.session_create(p_id text, p_data bytea, p_expiry timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.session_create(p_id text, p_data bytea, p_expiry timestamp with time zone) OWNER TO renrakucho_owner;

--
-- Name: session_delete(text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.session_delete(p_id text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags('session_store');
        DELETE FROM private.sessions WHERE id_hash = sha256(convert_to(p_id, 'UTF8'));
        PERFORM private.definer_flags(NULL);
    END
    $$;


ALTER FUNCTION public.session_delete(p_id text) OWNER TO renrakucho_owner;

--
-- Name: session_delete_expired(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.session_delete_expired() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.session_delete_expired() OWNER TO renrakucho_owner;

--
-- Name: session_load(text); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.session_load(p_id text) RETURNS TABLE(data bytea, expiry_date timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags('session_store');
        RETURN QUERY
            SELECT s.data, s.expiry_date FROM private.sessions s
             WHERE s.id_hash = sha256(convert_to(p_id, 'UTF8')) AND s.expiry_date > now();
        PERFORM private.definer_flags(NULL);
    END
    $$;


ALTER FUNCTION public.session_load(p_id text) OWNER TO renrakucho_owner;

--
-- Name: session_save(text, bytea, timestamp with time zone); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.session_save(p_id text, p_data bytea, p_expiry timestamp with time zone) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags('session_store');
        INSERT INTO private.sessions (id_hash, data, expiry_date)
        VALUES (sha256(convert_to(p_id, 'UTF8')), p_data, p_expiry)
        ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date;
        PERFORM private.definer_flags(NULL);
    END
    $$;


ALTER FUNCTION public.session_save(p_id text, p_data bytea, p_expiry timestamp with time zone) OWNER TO renrakucho_owner;

--
-- Name: support_requests_announce(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.support_requests_announce() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    BEGIN
        PERFORM private.definer_flags(NULL);
        PERFORM private.announce('renrakucho_events', jsonb_build_object(
            'kind', 'support', 'patient', NEW.patient_id, 'request', NEW.id,
            'facility', NEW.facility_id, 'to', NEW.to_facility_id, 'status', NEW.status));
        RETURN NULL;
    END
    $$;


ALTER FUNCTION public.support_requests_announce() OWNER TO renrakucho_owner;

--
-- Name: support_requests_transition(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.support_requests_transition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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


ALTER FUNCTION public.support_requests_transition() OWNER TO renrakucho_owner;

--
-- Name: unreferenced_objects(uuid, text[]); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.unreferenced_objects(p_patient uuid, p_names text[]) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    DECLARE
        consents_folder text := 'consents/' || p_patient::text || '/';
        attachments_folder text := 'attachments/' || p_patient::text || '/';
    BEGIN
        PERFORM private.definer_flags(NULL);
        IF p_patient IS NULL THEN
            RAISE EXCEPTION 'no patient named' USING ERRCODE = '42501';
        END IF;
        PERFORM set_config('renrakucho.reencrypt_patient', p_patient::text, true);
        RETURN QUERY
            SELECT DISTINCT n FROM unnest(p_names) AS n
             WHERE (starts_with(n, consents_folder) OR starts_with(n, attachments_folder))
               AND NOT EXISTS (SELECT 1 FROM public.consents c
                                WHERE c.patient_id = p_patient AND c.scan_object = n)
               AND NOT EXISTS (SELECT 1 FROM public.attachments a
                                WHERE a.patient_id = p_patient
                                  AND (a.object = n OR a.thumbnail = n));
        PERFORM set_config('renrakucho.reencrypt_patient', '', true);
    END
    $$;


ALTER FUNCTION public.unreferenced_objects(p_patient uuid, p_names text[]) OWNER TO renrakucho_owner;

--
-- Name: value_binding_advance(uuid); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.value_binding_advance(p_through uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.value_binding_advance(p_through uuid) OWNER TO renrakucho_owner;

--
-- Name: value_binding_complete(); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.value_binding_complete() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.value_binding_complete() OWNER TO renrakucho_owner;

--
-- Name: value_binding_state(boolean); Type: FUNCTION; Schema: public; Owner: renrakucho_owner
--

CREATE FUNCTION public.value_binding_state(p_restart boolean) RETURNS TABLE(legacy_readable boolean, done_through uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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


ALTER FUNCTION public.value_binding_state(p_restart boolean) OWNER TO renrakucho_owner;

--
-- Name: announcements; Type: TABLE; Schema: private; Owner: renrakucho_owner
--

CREATE TABLE private.announcements (
    id bigint NOT NULL,
    channel text NOT NULL,
    payload jsonb NOT NULL,
    announced_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT announcements_channel_check CHECK ((channel = ANY (ARRAY['renrakucho_events'::text, 'renrakucho_access_changes'::text, 'renrakucho_key_changes'::text, 'renrakucho_principal_changes'::text])))
);


ALTER TABLE private.announcements OWNER TO renrakucho_owner;

--
-- Name: announcements_id_seq; Type: SEQUENCE; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE private.announcements ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME private.announcements_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: emergency_identifications; Type: TABLE; Schema: private; Owner: renrakucho_owner
--

CREATE TABLE private.emergency_identifications (
    facility_id uuid NOT NULL,
    xact xid8 NOT NULL,
    patient_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    identified_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY private.emergency_identifications FORCE ROW LEVEL SECURITY;


ALTER TABLE private.emergency_identifications OWNER TO renrakucho_owner;

--
-- Name: platform_alerts; Type: TABLE; Schema: private; Owner: renrakucho_owner
--

CREATE TABLE private.platform_alerts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    kind text NOT NULL,
    raised_by_facility uuid,
    dedupe_key text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    raised_at timestamp with time zone DEFAULT now() NOT NULL,
    last_raised_at timestamp with time zone DEFAULT now() NOT NULL,
    occurrences integer DEFAULT 1 NOT NULL,
    acknowledged_at timestamp with time zone,
    acknowledged_by uuid,
    CONSTRAINT platform_alerts_dedupe_key_check CHECK (((length(dedupe_key) >= 1) AND (length(dedupe_key) <= 200))),
    CONSTRAINT platform_alerts_details_check CHECK (((jsonb_typeof(details) = 'object'::text) AND (length((details)::text) <= 2000))),
    CONSTRAINT platform_alerts_kind_check CHECK ((kind ~ '^[a-z][a-z_.]{0,63}$'::text)),
    CONSTRAINT platform_alerts_occurrences_check CHECK ((occurrences >= 1))
);

ALTER TABLE ONLY private.platform_alerts FORCE ROW LEVEL SECURITY;


ALTER TABLE private.platform_alerts OWNER TO renrakucho_owner;

--
-- Name: server_keys; Type: TABLE; Schema: private; Owner: renrakucho_owner
--

CREATE TABLE private.server_keys (
    purpose text NOT NULL,
    key bytea NOT NULL,
    inner_pad bytea NOT NULL,
    outer_pad bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT server_keys_inner_pad_check CHECK ((length(inner_pad) = 64)),
    CONSTRAINT server_keys_key_check CHECK ((length(key) = 32)),
    CONSTRAINT server_keys_outer_pad_check CHECK ((length(outer_pad) = 64)),
    CONSTRAINT server_keys_purpose_check CHECK ((purpose = ANY (ARRAY['context'::text, 'session'::text])))
);


ALTER TABLE private.server_keys OWNER TO renrakucho_owner;

--
-- Name: sessions; Type: TABLE; Schema: private; Owner: renrakucho_owner
--

CREATE TABLE private.sessions (
    id_hash bytea NOT NULL,
    data bytea NOT NULL,
    expiry_date timestamp with time zone NOT NULL,
    CONSTRAINT sessions_id_hash_check CHECK ((length(id_hash) = 32))
);

ALTER TABLE ONLY private.sessions FORCE ROW LEVEL SECURITY;


ALTER TABLE private.sessions OWNER TO renrakucho_owner;

--
-- Name: value_binding; Type: TABLE; Schema: private; Owner: renrakucho_owner
--

CREATE TABLE private.value_binding (
    singleton boolean DEFAULT true NOT NULL,
    legacy_readable boolean NOT NULL,
    done_through uuid DEFAULT '00000000-0000-0000-0000-000000000000'::uuid NOT NULL,
    completed_at timestamp with time zone,
    CONSTRAINT value_binding_check CHECK ((legacy_readable = (completed_at IS NULL))),
    CONSTRAINT value_binding_singleton_check CHECK (singleton)
);


ALTER TABLE private.value_binding OWNER TO renrakucho_owner;

--
-- Name: _sqlx_migrations; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public._sqlx_migrations (
    version bigint NOT NULL,
    description text NOT NULL,
    installed_on timestamp with time zone DEFAULT now() NOT NULL,
    success boolean NOT NULL,
    checksum bytea NOT NULL,
    execution_time bigint NOT NULL
);


ALTER TABLE public._sqlx_migrations OWNER TO renrakucho_owner;

--
-- Name: account_notices; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.account_notices (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    event text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_until timestamp with time zone,
    sent_at timestamp with time zone,
    CONSTRAINT account_notices_event_check CHECK ((event = ANY (ARRAY['second_factor_added'::text, 'second_factor_removed'::text, 'second_factor_reset'::text, 'recovery_codes_replaced'::text, 'passkey_added'::text, 'passkey_removed'::text])))
);

ALTER TABLE ONLY public.account_notices FORCE ROW LEVEL SECURITY;


ALTER TABLE public.account_notices OWNER TO renrakucho_owner;

--
-- Name: attachments; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.attachments (
    id uuid NOT NULL,
    patient_id uuid NOT NULL,
    entry_id uuid,
    facility_id uuid NOT NULL,
    uploaded_by uuid NOT NULL,
    media_type text NOT NULL,
    size bigint NOT NULL,
    file_name_enc bytea NOT NULL,
    object text NOT NULL,
    thumbnail text,
    width integer,
    height integer,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT attachments_media_type_check CHECK ((media_type = ANY (ARRAY['application/pdf'::text, 'image/jpeg'::text, 'image/png'::text]))),
    CONSTRAINT attachments_object_check CHECK (((char_length(object) >= 1) AND (char_length(object) <= 200))),
    CONSTRAINT attachments_size_check CHECK ((size > 0)),
    CONSTRAINT attachments_thumbnail_check CHECK (((char_length(thumbnail) >= 1) AND (char_length(thumbnail) <= 200)))
);

ALTER TABLE ONLY public.attachments FORCE ROW LEVEL SECURITY;


ALTER TABLE public.attachments OWNER TO renrakucho_owner;

--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: care_team_members; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.care_team_members (
    patient_id uuid NOT NULL,
    registering_facility_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    role text NOT NULL,
    status text NOT NULL,
    invited_by uuid,
    invited_at timestamp with time zone DEFAULT now() NOT NULL,
    joined_at timestamp with time zone,
    ended_at timestamp with time zone,
    CONSTRAINT care_team_members_check CHECK (((role <> 'registering'::text) OR ((status = 'active'::text) AND (facility_id = registering_facility_id)))),
    CONSTRAINT care_team_members_role_check CHECK ((role = ANY (ARRAY['registering'::text, 'member'::text]))),
    CONSTRAINT care_team_members_status_check CHECK ((status = ANY (ARRAY['invited'::text, 'active'::text, 'declined'::text, 'left'::text, 'removed'::text])))
);

ALTER TABLE ONLY public.care_team_members FORCE ROW LEVEL SECURITY;


ALTER TABLE public.care_team_members OWNER TO renrakucho_owner;

--
-- Name: consent_changes; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.consent_changes (
    id bigint NOT NULL,
    patient_id uuid NOT NULL,
    consent_id uuid NOT NULL,
    kind text NOT NULL,
    facility_id uuid NOT NULL,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT consent_changes_kind_check CHECK ((kind = ANY (ARRAY['recorded'::text, 'renewed'::text, 'withdrawn'::text])))
);

ALTER TABLE ONLY public.consent_changes FORCE ROW LEVEL SECURITY;


ALTER TABLE public.consent_changes OWNER TO renrakucho_owner;

--
-- Name: consent_changes_id_seq; Type: SEQUENCE; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.consent_changes ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.consent_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: consents; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.consents (
    id uuid NOT NULL,
    patient_id uuid NOT NULL,
    registering_facility_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    signer text NOT NULL,
    details_enc bytea NOT NULL,
    signed_on date NOT NULL,
    scan_object text,
    scan_media_type text,
    scan_size bigint,
    recorded_by uuid NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    withdrawn_at timestamp with time zone,
    withdrawn_by uuid,
    withdrawn_by_facility uuid,
    renewal boolean DEFAULT false NOT NULL,
    CONSTRAINT consents_check CHECK ((((scan_object IS NULL) = (scan_media_type IS NULL)) AND ((scan_object IS NULL) = (scan_size IS NULL)))),
    CONSTRAINT consents_check1 CHECK ((((withdrawn_at IS NULL) = (withdrawn_by IS NULL)) AND ((withdrawn_at IS NULL) = (withdrawn_by_facility IS NULL)))),
    CONSTRAINT consents_scan_media_type_check CHECK ((scan_media_type = ANY (ARRAY['application/pdf'::text, 'image/jpeg'::text, 'image/png'::text]))),
    CONSTRAINT consents_scan_object_check CHECK (((char_length(scan_object) >= 1) AND (char_length(scan_object) <= 200))),
    CONSTRAINT consents_scan_size_check CHECK ((scan_size > 0)),
    CONSTRAINT consents_signer_check CHECK ((signer = ANY (ARRAY['patient'::text, 'family'::text])))
);

ALTER TABLE ONLY public.consents FORCE ROW LEVEL SECURITY;


ALTER TABLE public.consents OWNER TO renrakucho_owner;

--
-- Name: data_keys; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.data_keys (
    owner_kind text NOT NULL,
    owner_id uuid NOT NULL,
    version integer NOT NULL,
    facility_id uuid,
    master_key_id text NOT NULL,
    wrapped bytea,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    rewrapped_at timestamp with time zone,
    destroyed_at timestamp with time zone,
    CONSTRAINT data_keys_check CHECK (((wrapped IS NULL) = (destroyed_at IS NOT NULL))),
    CONSTRAINT data_keys_check1 CHECK (((owner_kind = ANY (ARRAY['blind_index'::text, 'platform'::text])) = (facility_id IS NULL))),
    CONSTRAINT data_keys_check2 CHECK (((owner_kind <> 'facility'::text) OR (owner_id = facility_id))),
    CONSTRAINT data_keys_master_key_id_check CHECK (((char_length(master_key_id) >= 1) AND (char_length(master_key_id) <= 2048))),
    CONSTRAINT data_keys_owner_kind_check CHECK ((owner_kind = ANY (ARRAY['patient'::text, 'facility'::text, 'blind_index'::text, 'platform'::text]))),
    CONSTRAINT data_keys_version_check CHECK ((version >= 1))
);

ALTER TABLE ONLY public.data_keys FORCE ROW LEVEL SECURITY;


ALTER TABLE public.data_keys OWNER TO renrakucho_owner;

--
-- Name: emergency_grants; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.emergency_grants (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    opened_by uuid NOT NULL,
    reason_enc bytea,
    opened_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    reviewed_at timestamp with time zone,
    reviewed_by uuid,
    reviewed_by_facility uuid,
    CONSTRAINT emergency_grants_check CHECK (((expires_at > opened_at) AND (expires_at <= (opened_at + '72:00:00'::interval)))),
    CONSTRAINT emergency_grants_check1 CHECK ((((reviewed_at IS NULL) = (reviewed_by IS NULL)) AND ((reviewed_at IS NULL) = (reviewed_by_facility IS NULL))))
);

ALTER TABLE ONLY public.emergency_grants FORCE ROW LEVEL SECURITY;


ALTER TABLE public.emergency_grants OWNER TO renrakucho_owner;

--
-- Name: emergency_identification_failures; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.emergency_identification_failures (
    id bigint NOT NULL,
    facility_id uuid,
    patient_id uuid,
    requesting_facility_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    attempted_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT emergency_identification_failures_check CHECK (((patient_id IS NULL) = (facility_id IS NULL)))
);

ALTER TABLE ONLY public.emergency_identification_failures FORCE ROW LEVEL SECURITY;


ALTER TABLE public.emergency_identification_failures OWNER TO renrakucho_owner;

--
-- Name: emergency_identification_failures_id_seq; Type: SEQUENCE; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.emergency_identification_failures ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.emergency_identification_failures_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: entries; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.entries (
    id uuid NOT NULL,
    patient_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    author_id uuid NOT NULL,
    author_name text NOT NULL,
    author_profession text NOT NULL,
    category text NOT NULL,
    priority text NOT NULL,
    reply_to uuid,
    mentions uuid[] DEFAULT '{}'::uuid[] NOT NULL,
    body_enc bytea NOT NULL,
    vitals_enc bytea,
    version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    withdrawn_at timestamp with time zone,
    withdrawn_by uuid,
    withdrawal_reason_enc bytea,
    CONSTRAINT entries_author_name_check CHECK (((char_length(author_name) >= 1) AND (char_length(author_name) <= 100))),
    CONSTRAINT entries_category_check CHECK ((category = ANY (ARRAY['instruction'::text, 'treatment'::text, 'support'::text, 'complaint'::text, 'vitals'::text, 'medication'::text, 'notice'::text, 'other'::text]))),
    CONSTRAINT entries_check CHECK ((((withdrawn_at IS NULL) = (withdrawal_reason_enc IS NULL)) AND ((withdrawn_at IS NULL) = (withdrawn_by IS NULL)))),
    CONSTRAINT entries_mentions_check CHECK ((cardinality(mentions) <= 20)),
    CONSTRAINT entries_priority_check CHECK ((priority = ANY (ARRAY['urgent'::text, 'reply_requested'::text, 'info'::text]))),
    CONSTRAINT entries_version_check CHECK ((version >= 1))
);

ALTER TABLE ONLY public.entries FORCE ROW LEVEL SECURITY;


ALTER TABLE public.entries OWNER TO renrakucho_owner;

--
-- Name: entry_reads; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.entry_reads (
    entry_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    reader_name text NOT NULL,
    reader_profession text NOT NULL,
    read_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT entry_reads_reader_name_check CHECK (((char_length(reader_name) >= 1) AND (char_length(reader_name) <= 100)))
);

ALTER TABLE ONLY public.entry_reads FORCE ROW LEVEL SECURITY;


ALTER TABLE public.entry_reads OWNER TO renrakucho_owner;

--
-- Name: entry_versions; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.entry_versions (
    id uuid NOT NULL,
    entry_id uuid NOT NULL,
    version integer NOT NULL,
    patient_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    edited_by uuid NOT NULL,
    edited_by_name text NOT NULL,
    edited_at timestamp with time zone DEFAULT now() NOT NULL,
    category text NOT NULL,
    priority text NOT NULL,
    body_enc bytea NOT NULL,
    vitals_enc bytea,
    CONSTRAINT entry_versions_edited_by_name_check CHECK (((char_length(edited_by_name) >= 1) AND (char_length(edited_by_name) <= 100))),
    CONSTRAINT entry_versions_version_check CHECK ((version >= 1))
);

ALTER TABLE ONLY public.entry_versions FORCE ROW LEVEL SECURITY;


ALTER TABLE public.entry_versions OWNER TO renrakucho_owner;

--
-- Name: external_identities; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.external_identities (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    issuer text NOT NULL,
    subject text NOT NULL,
    linked_by text NOT NULL,
    email text,
    email_verified boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT external_identities_email_check CHECK ((char_length(email) <= 320)),
    CONSTRAINT external_identities_issuer_check CHECK (((char_length(issuer) >= 8) AND (char_length(issuer) <= 500))),
    CONSTRAINT external_identities_linked_by_check CHECK ((linked_by = ANY (ARRAY['admin'::text, 'just_in_time'::text]))),
    CONSTRAINT external_identities_subject_check CHECK (((char_length(subject) >= 1) AND (char_length(subject) <= 255)))
);

ALTER TABLE ONLY public.external_identities FORCE ROW LEVEL SECURITY;


ALTER TABLE public.external_identities OWNER TO renrakucho_owner;

--
-- Name: facilities; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.facilities (
    id uuid NOT NULL,
    code text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT facilities_code_check CHECK ((code ~ '^[A-Z0-9][A-Z0-9-]{2,15}$'::text)),
    CONSTRAINT facilities_kind_check CHECK ((kind = ANY (ARRAY['hospital'::text, 'clinic'::text, 'dental_clinic'::text, 'pharmacy'::text, 'visiting_nurse_station'::text, 'care_management_office'::text, 'home_care_provider'::text, 'municipality'::text, 'other'::text]))),
    CONSTRAINT facilities_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 100))),
    CONSTRAINT facilities_status_check CHECK ((status = ANY (ARRAY['applied'::text, 'active'::text, 'suspended'::text, 'deregistration_requested'::text, 'deregistered'::text])))
);

ALTER TABLE ONLY public.facilities FORCE ROW LEVEL SECURITY;


ALTER TABLE public.facilities OWNER TO renrakucho_owner;

--
-- Name: identity_providers; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.identity_providers (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    issuer text NOT NULL,
    client_id text NOT NULL,
    client_secret_enc bytea NOT NULL,
    scopes text[] NOT NULL,
    login_claim text NOT NULL,
    allowed_domains text[] DEFAULT '{}'::text[] NOT NULL,
    account_policy text NOT NULL,
    enabled boolean DEFAULT false NOT NULL,
    revision integer DEFAULT 1 NOT NULL,
    tested_revision integer,
    tested_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT identity_providers_account_policy_check CHECK ((account_policy = ANY (ARRAY['pre_linked'::text, 'just_in_time'::text]))),
    CONSTRAINT identity_providers_allowed_domains_check CHECK ((cardinality(allowed_domains) <= 20)),
    CONSTRAINT identity_providers_check CHECK (((NOT enabled) OR (tested_revision = revision))),
    CONSTRAINT identity_providers_client_id_check CHECK (((char_length(client_id) >= 1) AND (char_length(client_id) <= 200))),
    CONSTRAINT identity_providers_client_secret_enc_check CHECK (((octet_length(client_secret_enc) >= 30) AND (octet_length(client_secret_enc) <= 1200))),
    CONSTRAINT identity_providers_issuer_check CHECK (((char_length(issuer) >= 8) AND (char_length(issuer) <= 500))),
    CONSTRAINT identity_providers_login_claim_check CHECK ((login_claim = ANY (ARRAY['email'::text, 'preferred_username'::text]))),
    CONSTRAINT identity_providers_revision_check CHECK ((revision >= 1)),
    CONSTRAINT identity_providers_scopes_check CHECK (((cardinality(scopes) >= 1) AND (cardinality(scopes) <= 10)))
);

ALTER TABLE ONLY public.identity_providers FORCE ROW LEVEL SECURITY;


ALTER TABLE public.identity_providers OWNER TO renrakucho_owner;

--
-- Name: master_key_epochs; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.master_key_epochs (
    master_key_id text NOT NULL,
    state text DEFAULT 'active'::text NOT NULL,
    erasures_covered bigint NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    retiring_at timestamp with time zone,
    destroyed_at timestamp with time zone,
    CONSTRAINT master_key_epochs_check CHECK (((state = 'active'::text) = (retiring_at IS NULL))),
    CONSTRAINT master_key_epochs_check1 CHECK (((state = 'destroyed'::text) = (destroyed_at IS NOT NULL))),
    CONSTRAINT master_key_epochs_erasures_covered_check CHECK ((erasures_covered >= 0)),
    CONSTRAINT master_key_epochs_master_key_id_check CHECK (((char_length(master_key_id) >= 1) AND (char_length(master_key_id) <= 2048))),
    CONSTRAINT master_key_epochs_state_check CHECK ((state = ANY (ARRAY['active'::text, 'retiring'::text, 'destroyed'::text])))
);

ALTER TABLE ONLY public.master_key_epochs FORCE ROW LEVEL SECURITY;


ALTER TABLE public.master_key_epochs OWNER TO renrakucho_owner;

--
-- Name: notification_settings; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.notification_settings (
    staff_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    email text,
    live_level text DEFAULT 'info'::text NOT NULL,
    quiet_start smallint DEFAULT 0 NOT NULL,
    quiet_end smallint DEFAULT 0 NOT NULL,
    digest_enabled boolean DEFAULT false NOT NULL,
    digest_hour smallint DEFAULT 7 NOT NULL,
    last_digest_at timestamp with time zone,
    digest_claimed_until timestamp with time zone,
    CONSTRAINT notification_settings_digest_hour_check CHECK (((digest_hour >= 0) AND (digest_hour <= 23))),
    CONSTRAINT notification_settings_email CHECK (((email IS NULL) OR ((octet_length(email) <= 254) AND (octet_length(split_part(email, '@'::text, 1)) <= 64) AND (email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'::text)))),
    CONSTRAINT notification_settings_live_level_check CHECK ((live_level = ANY (ARRAY['urgent'::text, 'reply_requested'::text, 'info'::text]))),
    CONSTRAINT notification_settings_quiet_end_check CHECK (((quiet_end >= 0) AND (quiet_end <= 23))),
    CONSTRAINT notification_settings_quiet_start_check CHECK (((quiet_start >= 0) AND (quiet_start <= 23)))
);

ALTER TABLE ONLY public.notification_settings FORCE ROW LEVEL SECURITY;


ALTER TABLE public.notification_settings OWNER TO renrakucho_owner;

--
-- Name: operator_identities; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.operator_identities (
    id uuid NOT NULL,
    operator_id uuid NOT NULL,
    issuer text NOT NULL,
    subject text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT operator_identities_issuer_check CHECK (((char_length(issuer) >= 8) AND (char_length(issuer) <= 500))),
    CONSTRAINT operator_identities_subject_check CHECK (((char_length(subject) >= 1) AND (char_length(subject) <= 255)))
);

ALTER TABLE ONLY public.operator_identities FORCE ROW LEVEL SECURITY;


ALTER TABLE public.operator_identities OWNER TO renrakucho_owner;

--
-- Name: operator_passkeys; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.operator_passkeys (
    id uuid NOT NULL,
    operator_id uuid NOT NULL,
    credential_id bytea NOT NULL,
    name text NOT NULL,
    passkey jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    CONSTRAINT operator_passkeys_credential_id_check CHECK (((octet_length(credential_id) >= 16) AND (octet_length(credential_id) <= 1023))),
    CONSTRAINT operator_passkeys_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 60))),
    CONSTRAINT operator_passkeys_passkey_check CHECK ((octet_length((passkey)::text) <= 8192))
);

ALTER TABLE ONLY public.operator_passkeys FORCE ROW LEVEL SECURITY;


ALTER TABLE public.operator_passkeys OWNER TO renrakucho_owner;

--
-- Name: patient_cards; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.patient_cards (
    patient_id uuid NOT NULL,
    id uuid GENERATED ALWAYS AS (patient_id) STORED NOT NULL,
    facility_id uuid NOT NULL,
    lookup bytea NOT NULL,
    birth_check bytea NOT NULL,
    number_enc bytea NOT NULL,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    issued_by uuid,
    revision bigint DEFAULT 1 NOT NULL,
    CONSTRAINT patient_cards_birth_check_check CHECK ((length(birth_check) = 32)),
    CONSTRAINT patient_cards_lookup_check CHECK ((length(lookup) = 32)),
    CONSTRAINT patient_cards_revision_check CHECK ((revision >= 1))
);

ALTER TABLE ONLY public.patient_cards FORCE ROW LEVEL SECURITY;


ALTER TABLE public.patient_cards OWNER TO renrakucho_owner;

--
-- Name: patient_mutes; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.patient_mutes (
    staff_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    muted_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE ONLY public.patient_mutes FORCE ROW LEVEL SECURITY;


ALTER TABLE public.patient_mutes OWNER TO renrakucho_owner;

--
-- Name: patient_name_terms; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.patient_name_terms (
    patient_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    term bytea NOT NULL,
    CONSTRAINT patient_name_terms_term_check CHECK ((length(term) = 32))
);

ALTER TABLE ONLY public.patient_name_terms FORCE ROW LEVEL SECURITY;


ALTER TABLE public.patient_name_terms OWNER TO renrakucho_owner;

--
-- Name: platform_operators; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.platform_operators (
    id uuid NOT NULL,
    login_id text NOT NULL,
    display_name text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    password_hash text NOT NULL,
    password_changed_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    previous_password_hashes text[] DEFAULT '{}'::text[] NOT NULL,
    password_must_change boolean DEFAULT false NOT NULL,
    password_version integer DEFAULT 0 NOT NULL,
    totp_secret_enc bytea,
    totp_started_at timestamp with time zone,
    totp_confirmed_at timestamp with time zone,
    totp_last_step bigint DEFAULT 0 NOT NULL,
    recovery_code_hashes text[] DEFAULT '{}'::text[] NOT NULL,
    passkey_count smallint DEFAULT 0 NOT NULL,
    CONSTRAINT platform_operators_display_name_check CHECK (((char_length(display_name) >= 1) AND (char_length(display_name) <= 100))),
    CONSTRAINT platform_operators_login_id_check CHECK ((login_id ~ '^[a-z0-9._-]{3,32}$'::text)),
    CONSTRAINT platform_operators_passkey_count_check CHECK (((passkey_count >= 0) AND (passkey_count <= 10))),
    CONSTRAINT platform_operators_password_version_check CHECK ((password_version >= 0)),
    CONSTRAINT platform_operators_previous_password_hashes_check CHECK ((cardinality(previous_password_hashes) <= 5)),
    CONSTRAINT platform_operators_recovery_code_hashes_check CHECK ((cardinality(recovery_code_hashes) <= 10)),
    CONSTRAINT platform_operators_status_check CHECK ((status = ANY (ARRAY['active'::text, 'suspended'::text, 'disabled'::text]))),
    CONSTRAINT platform_operators_totp_confirmed_has_secret CHECK (((totp_confirmed_at IS NULL) OR (totp_secret_enc IS NOT NULL))),
    CONSTRAINT platform_operators_totp_last_step_check CHECK ((totp_last_step >= 0)),
    CONSTRAINT platform_operators_totp_secret_enc_check CHECK (((octet_length(totp_secret_enc) >= 50) AND (octet_length(totp_secret_enc) <= 200)))
);

ALTER TABLE ONLY public.platform_operators FORCE ROW LEVEL SECURITY;


ALTER TABLE public.platform_operators OWNER TO renrakucho_owner;

--
-- Name: staff_accounts; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.staff_accounts (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    login_id text NOT NULL,
    display_name text NOT NULL,
    role text NOT NULL,
    profession text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    password_hash text NOT NULL,
    password_changed_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    may_accept_invitations boolean DEFAULT false NOT NULL,
    previous_password_hashes text[] DEFAULT '{}'::text[] NOT NULL,
    password_must_change boolean DEFAULT false NOT NULL,
    password_version integer DEFAULT 0 NOT NULL,
    totp_secret_enc bytea,
    totp_started_at timestamp with time zone,
    totp_confirmed_at timestamp with time zone,
    totp_last_step bigint DEFAULT 0 NOT NULL,
    recovery_code_hashes text[] DEFAULT '{}'::text[] NOT NULL,
    passkey_count smallint DEFAULT 0 NOT NULL,
    CONSTRAINT staff_accounts_display_name_check CHECK (((char_length(display_name) >= 1) AND (char_length(display_name) <= 100))),
    CONSTRAINT staff_accounts_login_id_check CHECK ((login_id ~ '^[a-z0-9._-]{3,32}$'::text)),
    CONSTRAINT staff_accounts_passkey_count_check CHECK (((passkey_count >= 0) AND (passkey_count <= 10))),
    CONSTRAINT staff_accounts_password_version_check CHECK ((password_version >= 0)),
    CONSTRAINT staff_accounts_previous_password_hashes_check CHECK ((cardinality(previous_password_hashes) <= 5)),
    CONSTRAINT staff_accounts_profession_check CHECK ((profession = ANY (ARRAY['doctor'::text, 'dentist'::text, 'nurse'::text, 'pharmacist'::text, 'care_manager'::text, 'care_worker'::text, 'therapist'::text, 'clerk'::text, 'other'::text]))),
    CONSTRAINT staff_accounts_recovery_code_hashes_check CHECK ((cardinality(recovery_code_hashes) <= 10)),
    CONSTRAINT staff_accounts_role_check CHECK ((role = ANY (ARRAY['facility_admin'::text, 'staff'::text]))),
    CONSTRAINT staff_accounts_status_check CHECK ((status = ANY (ARRAY['active'::text, 'suspended'::text, 'disabled'::text, 'pending'::text]))),
    CONSTRAINT staff_accounts_totp_confirmed_has_secret CHECK (((totp_confirmed_at IS NULL) OR (totp_secret_enc IS NOT NULL))),
    CONSTRAINT staff_accounts_totp_last_step_check CHECK ((totp_last_step >= 0)),
    CONSTRAINT staff_accounts_totp_secret_enc_check CHECK (((octet_length(totp_secret_enc) >= 50) AND (octet_length(totp_secret_enc) <= 200)))
);

ALTER TABLE ONLY public.staff_accounts FORCE ROW LEVEL SECURITY;


ALTER TABLE public.staff_accounts OWNER TO renrakucho_owner;

--
-- Name: staff_passkeys; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.staff_passkeys (
    id uuid NOT NULL,
    facility_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    credential_id bytea NOT NULL,
    name text NOT NULL,
    passkey jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    CONSTRAINT staff_passkeys_credential_id_check CHECK (((octet_length(credential_id) >= 16) AND (octet_length(credential_id) <= 1023))),
    CONSTRAINT staff_passkeys_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 60))),
    CONSTRAINT staff_passkeys_passkey_check CHECK ((octet_length((passkey)::text) <= 8192))
);

ALTER TABLE ONLY public.staff_passkeys FORCE ROW LEVEL SECURITY;


ALTER TABLE public.staff_passkeys OWNER TO renrakucho_owner;

--
-- Name: support_request_items; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.support_request_items (
    request_id uuid NOT NULL,
    patient_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    entry_id uuid,
    attachment_id uuid,
    CONSTRAINT support_request_items_check CHECK (((entry_id IS NULL) <> (attachment_id IS NULL)))
);

ALTER TABLE ONLY public.support_request_items FORCE ROW LEVEL SECURITY;


ALTER TABLE public.support_request_items OWNER TO renrakucho_owner;

--
-- Name: support_requests; Type: TABLE; Schema: public; Owner: renrakucho_owner
--

CREATE TABLE public.support_requests (
    id uuid NOT NULL,
    patient_id uuid NOT NULL,
    facility_id uuid NOT NULL,
    to_facility_id uuid NOT NULL,
    kind text NOT NULL,
    status text DEFAULT 'requested'::text NOT NULL,
    requested_by uuid NOT NULL,
    question_enc bytea NOT NULL,
    summary_enc bytea NOT NULL,
    answer_enc bytea,
    answered_by uuid,
    answered_by_name text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT support_requests_check CHECK ((facility_id <> to_facility_id)),
    CONSTRAINT support_requests_check1 CHECK (((answer_enc IS NULL) = (answered_by IS NULL))),
    CONSTRAINT support_requests_kind_check CHECK ((kind = ANY (ARRAY['remote_diagnosis'::text, 'second_opinion'::text, 'information'::text]))),
    CONSTRAINT support_requests_status_check CHECK ((status = ANY (ARRAY['requested'::text, 'accepted'::text, 'declined'::text, 'answered'::text, 'closed'::text])))
);

ALTER TABLE ONLY public.support_requests FORCE ROW LEVEL SECURITY;


ALTER TABLE public.support_requests OWNER TO renrakucho_owner;

--
-- Name: announcements announcements_pkey; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.announcements
    ADD CONSTRAINT announcements_pkey PRIMARY KEY (id);


--
-- Name: emergency_identifications emergency_identifications_pkey; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.emergency_identifications
    ADD CONSTRAINT emergency_identifications_pkey PRIMARY KEY (facility_id, xact, patient_id);


--
-- Name: platform_alerts platform_alerts_kind_raised_by_facility_dedupe_key_key; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.platform_alerts
    ADD CONSTRAINT platform_alerts_kind_raised_by_facility_dedupe_key_key UNIQUE NULLS NOT DISTINCT (kind, raised_by_facility, dedupe_key);


--
-- Name: platform_alerts platform_alerts_pkey; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.platform_alerts
    ADD CONSTRAINT platform_alerts_pkey PRIMARY KEY (id);


--
-- Name: server_keys server_keys_pkey; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.server_keys
    ADD CONSTRAINT server_keys_pkey PRIMARY KEY (purpose);


--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id_hash);


--
-- Name: value_binding value_binding_pkey; Type: CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.value_binding
    ADD CONSTRAINT value_binding_pkey PRIMARY KEY (singleton);


--
-- Name: _sqlx_migrations _sqlx_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public._sqlx_migrations
    ADD CONSTRAINT _sqlx_migrations_pkey PRIMARY KEY (version);


--
-- Name: account_notices account_notices_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.account_notices
    ADD CONSTRAINT account_notices_pkey PRIMARY KEY (id);


--
-- Name: attachments attachments_patient_id_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.attachments
    ADD CONSTRAINT attachments_patient_id_id_key UNIQUE (patient_id, id);


--
-- Name: attachments attachments_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.attachments
    ADD CONSTRAINT attachments_pkey PRIMARY KEY (id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: care_team_members care_team_members_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.care_team_members
    ADD CONSTRAINT care_team_members_pkey PRIMARY KEY (patient_id, facility_id);


--
-- Name: consent_changes consent_changes_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consent_changes
    ADD CONSTRAINT consent_changes_pkey PRIMARY KEY (id);


--
-- Name: consents consents_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consents
    ADD CONSTRAINT consents_pkey PRIMARY KEY (id);


--
-- Name: data_keys data_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.data_keys
    ADD CONSTRAINT data_keys_pkey PRIMARY KEY (owner_kind, owner_id, version);


--
-- Name: deletion_requests deletion_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.deletion_requests
    ADD CONSTRAINT deletion_requests_pkey PRIMARY KEY (id);


--
-- Name: emergency_grants emergency_grants_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_grants
    ADD CONSTRAINT emergency_grants_pkey PRIMARY KEY (id);


--
-- Name: emergency_identification_failures emergency_identification_failures_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_identification_failures
    ADD CONSTRAINT emergency_identification_failures_pkey PRIMARY KEY (id);


--
-- Name: entries entries_id_facility_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_id_facility_id_key UNIQUE (id, facility_id);


--
-- Name: entries entries_patient_id_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_patient_id_id_key UNIQUE (patient_id, id);


--
-- Name: entries entries_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_pkey PRIMARY KEY (id);


--
-- Name: entry_reads entry_reads_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_reads
    ADD CONSTRAINT entry_reads_pkey PRIMARY KEY (entry_id, staff_id);


--
-- Name: entry_versions entry_versions_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_versions
    ADD CONSTRAINT entry_versions_id_key UNIQUE (id);


--
-- Name: entry_versions entry_versions_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_versions
    ADD CONSTRAINT entry_versions_pkey PRIMARY KEY (entry_id, version);


--
-- Name: external_identities external_identities_facility_id_issuer_subject_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.external_identities
    ADD CONSTRAINT external_identities_facility_id_issuer_subject_key UNIQUE (facility_id, issuer, subject);


--
-- Name: external_identities external_identities_facility_id_staff_id_issuer_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.external_identities
    ADD CONSTRAINT external_identities_facility_id_staff_id_issuer_key UNIQUE (facility_id, staff_id, issuer);


--
-- Name: external_identities external_identities_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.external_identities
    ADD CONSTRAINT external_identities_pkey PRIMARY KEY (id);


--
-- Name: facilities facilities_code_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.facilities
    ADD CONSTRAINT facilities_code_key UNIQUE (code);


--
-- Name: facilities facilities_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.facilities
    ADD CONSTRAINT facilities_pkey PRIMARY KEY (id);


--
-- Name: identity_providers identity_providers_facility_id_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.identity_providers
    ADD CONSTRAINT identity_providers_facility_id_id_key UNIQUE (facility_id, id);


--
-- Name: identity_providers identity_providers_facility_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.identity_providers
    ADD CONSTRAINT identity_providers_facility_id_key UNIQUE (facility_id);


--
-- Name: identity_providers identity_providers_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.identity_providers
    ADD CONSTRAINT identity_providers_pkey PRIMARY KEY (id);


--
-- Name: master_key_epochs master_key_epochs_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.master_key_epochs
    ADD CONSTRAINT master_key_epochs_pkey PRIMARY KEY (master_key_id);


--
-- Name: notification_settings notification_settings_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.notification_settings
    ADD CONSTRAINT notification_settings_pkey PRIMARY KEY (staff_id);


--
-- Name: operator_identities operator_identities_issuer_subject_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_identities
    ADD CONSTRAINT operator_identities_issuer_subject_key UNIQUE (issuer, subject);


--
-- Name: operator_identities operator_identities_operator_id_issuer_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_identities
    ADD CONSTRAINT operator_identities_operator_id_issuer_key UNIQUE (operator_id, issuer);


--
-- Name: operator_identities operator_identities_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_identities
    ADD CONSTRAINT operator_identities_pkey PRIMARY KEY (id);


--
-- Name: operator_passkeys operator_passkeys_credential_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_passkeys
    ADD CONSTRAINT operator_passkeys_credential_id_key UNIQUE (credential_id);


--
-- Name: operator_passkeys operator_passkeys_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_passkeys
    ADD CONSTRAINT operator_passkeys_pkey PRIMARY KEY (id);


--
-- Name: patient_access patient_access_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_access
    ADD CONSTRAINT patient_access_pkey PRIMARY KEY (facility_id, patient_id, relation);


--
-- Name: patient_cards patient_cards_lookup_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_cards
    ADD CONSTRAINT patient_cards_lookup_key UNIQUE (lookup);


--
-- Name: patient_cards patient_cards_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_cards
    ADD CONSTRAINT patient_cards_pkey PRIMARY KEY (patient_id);


--
-- Name: patient_mutes patient_mutes_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_mutes
    ADD CONSTRAINT patient_mutes_pkey PRIMARY KEY (staff_id, patient_id);


--
-- Name: patient_name_terms patient_name_terms_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_name_terms
    ADD CONSTRAINT patient_name_terms_pkey PRIMARY KEY (patient_id, term);


--
-- Name: patients patients_facility_id_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_facility_id_id_key UNIQUE (facility_id, id);


--
-- Name: patients patients_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_pkey PRIMARY KEY (id);


--
-- Name: platform_operators platform_operators_login_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.platform_operators
    ADD CONSTRAINT platform_operators_login_id_key UNIQUE (login_id);


--
-- Name: platform_operators platform_operators_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.platform_operators
    ADD CONSTRAINT platform_operators_pkey PRIMARY KEY (id);


--
-- Name: staff_accounts staff_accounts_facility_id_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_accounts
    ADD CONSTRAINT staff_accounts_facility_id_id_key UNIQUE (facility_id, id);


--
-- Name: staff_accounts staff_accounts_facility_id_login_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_accounts
    ADD CONSTRAINT staff_accounts_facility_id_login_id_key UNIQUE (facility_id, login_id);


--
-- Name: staff_accounts staff_accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_accounts
    ADD CONSTRAINT staff_accounts_pkey PRIMARY KEY (id);


--
-- Name: staff_passkeys staff_passkeys_facility_id_credential_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_passkeys
    ADD CONSTRAINT staff_passkeys_facility_id_credential_id_key UNIQUE (facility_id, credential_id);


--
-- Name: staff_passkeys staff_passkeys_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_passkeys
    ADD CONSTRAINT staff_passkeys_pkey PRIMARY KEY (id);


--
-- Name: support_request_items support_request_items_request_id_attachment_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_request_items
    ADD CONSTRAINT support_request_items_request_id_attachment_id_key UNIQUE (request_id, attachment_id);


--
-- Name: support_request_items support_request_items_request_id_entry_id_key; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_request_items
    ADD CONSTRAINT support_request_items_request_id_entry_id_key UNIQUE (request_id, entry_id);


--
-- Name: support_requests support_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_requests
    ADD CONSTRAINT support_requests_pkey PRIMARY KEY (id);


--
-- Name: announcements_at; Type: INDEX; Schema: private; Owner: renrakucho_owner
--

CREATE INDEX announcements_at ON private.announcements USING btree (announced_at);


--
-- Name: emergency_identifications_patient; Type: INDEX; Schema: private; Owner: renrakucho_owner
--

CREATE INDEX emergency_identifications_patient ON private.emergency_identifications USING btree (patient_id);


--
-- Name: platform_alerts_facility; Type: INDEX; Schema: private; Owner: renrakucho_owner
--

CREATE INDEX platform_alerts_facility ON private.platform_alerts USING btree (raised_by_facility, last_raised_at DESC);


--
-- Name: platform_alerts_open; Type: INDEX; Schema: private; Owner: renrakucho_owner
--

CREATE INDEX platform_alerts_open ON private.platform_alerts USING btree (last_raised_at DESC) WHERE (acknowledged_at IS NULL);


--
-- Name: sessions_expiry; Type: INDEX; Schema: private; Owner: renrakucho_owner
--

CREATE INDEX sessions_expiry ON private.sessions USING btree (expiry_date);


--
-- Name: account_notices_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX account_notices_facility ON public.account_notices USING btree (facility_id, staff_id);


--
-- Name: account_notices_unsent; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX account_notices_unsent ON public.account_notices USING btree (created_at) WHERE (sent_at IS NULL);


--
-- Name: attachments_entry; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX attachments_entry ON public.attachments USING btree (entry_id) WHERE (entry_id IS NOT NULL);


--
-- Name: attachments_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX attachments_facility ON public.attachments USING btree (facility_id, created_at);


--
-- Name: attachments_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX attachments_patient ON public.attachments USING btree (patient_id);


--
-- Name: audit_log_chain_seq; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE UNIQUE INDEX audit_log_chain_seq ON public.audit_log USING btree (COALESCE(facility_id, '00000000-0000-0000-0000-000000000000'::uuid), seq);


--
-- Name: audit_log_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX audit_log_facility ON public.audit_log USING btree (facility_id, occurred_at);


--
-- Name: audit_log_facility_seq; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX audit_log_facility_seq ON public.audit_log USING btree (facility_id, seq) WHERE (facility_id IS NOT NULL);


--
-- Name: audit_log_platform_seq; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX audit_log_platform_seq ON public.audit_log USING btree (seq) WHERE (facility_id IS NULL);


--
-- Name: care_team_members_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX care_team_members_facility ON public.care_team_members USING btree (facility_id, status);


--
-- Name: care_team_members_registering; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX care_team_members_registering ON public.care_team_members USING btree (registering_facility_id);


--
-- Name: consent_changes_consent; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX consent_changes_consent ON public.consent_changes USING btree (consent_id);


--
-- Name: consent_changes_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX consent_changes_facility ON public.consent_changes USING btree (facility_id);


--
-- Name: consent_changes_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX consent_changes_patient ON public.consent_changes USING btree (patient_id, changed_at);


--
-- Name: consents_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX consents_facility ON public.consents USING btree (facility_id);


--
-- Name: consents_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX consents_patient ON public.consents USING btree (patient_id) WHERE (withdrawn_at IS NULL);


--
-- Name: consents_registering; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX consents_registering ON public.consents USING btree (registering_facility_id);


--
-- Name: data_keys_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX data_keys_facility ON public.data_keys USING btree (facility_id);


--
-- Name: data_keys_master; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX data_keys_master ON public.data_keys USING btree (master_key_id) WHERE (wrapped IS NOT NULL);


--
-- Name: deletion_requests_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX deletion_requests_facility ON public.deletion_requests USING btree (facility_id, requested_at);


--
-- Name: deletion_requests_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX deletion_requests_patient ON public.deletion_requests USING btree (patient_id);


--
-- Name: emergency_grants_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX emergency_grants_facility ON public.emergency_grants USING btree (facility_id, opened_at);


--
-- Name: emergency_grants_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX emergency_grants_patient ON public.emergency_grants USING btree (patient_id, opened_at);


--
-- Name: emergency_identification_failures_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX emergency_identification_failures_patient ON public.emergency_identification_failures USING btree (patient_id, attempted_at);


--
-- Name: emergency_identification_failures_registering; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX emergency_identification_failures_registering ON public.emergency_identification_failures USING btree (facility_id, attempted_at);


--
-- Name: emergency_identification_failures_requesting; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX emergency_identification_failures_requesting ON public.emergency_identification_failures USING btree (requesting_facility_id, attempted_at);


--
-- Name: entries_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entries_facility ON public.entries USING btree (facility_id, created_at);


--
-- Name: entries_mentions; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entries_mentions ON public.entries USING gin (mentions);


--
-- Name: entries_replies; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entries_replies ON public.entries USING btree (reply_to) WHERE (reply_to IS NOT NULL);


--
-- Name: entries_timeline; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entries_timeline ON public.entries USING btree (patient_id, created_at DESC, id DESC);


--
-- Name: entry_reads_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entry_reads_facility ON public.entry_reads USING btree (facility_id, staff_id);


--
-- Name: entry_reads_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entry_reads_patient ON public.entry_reads USING btree (patient_id, staff_id);


--
-- Name: entry_versions_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entry_versions_facility ON public.entry_versions USING btree (facility_id);


--
-- Name: entry_versions_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX entry_versions_patient ON public.entry_versions USING btree (patient_id);


--
-- Name: notification_settings_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX notification_settings_facility ON public.notification_settings USING btree (facility_id);


--
-- Name: operator_passkeys_operator; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX operator_passkeys_operator ON public.operator_passkeys USING btree (operator_id);


--
-- Name: patient_access_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX patient_access_patient ON public.patient_access USING btree (patient_id);


--
-- Name: patient_cards_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX patient_cards_facility ON public.patient_cards USING btree (facility_id);


--
-- Name: patient_mutes_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX patient_mutes_facility ON public.patient_mutes USING btree (facility_id, staff_id);


--
-- Name: patient_name_terms_lookup; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX patient_name_terms_lookup ON public.patient_name_terms USING btree (facility_id, term);


--
-- Name: patients_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX patients_facility ON public.patients USING btree (facility_id, created_at);


--
-- Name: staff_passkeys_staff; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX staff_passkeys_staff ON public.staff_passkeys USING btree (facility_id, staff_id);


--
-- Name: support_request_items_attachment; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX support_request_items_attachment ON public.support_request_items USING btree (attachment_id) WHERE (attachment_id IS NOT NULL);


--
-- Name: support_request_items_entry; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX support_request_items_entry ON public.support_request_items USING btree (entry_id) WHERE (entry_id IS NOT NULL);


--
-- Name: support_request_items_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX support_request_items_facility ON public.support_request_items USING btree (facility_id);


--
-- Name: support_requests_facility; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX support_requests_facility ON public.support_requests USING btree (facility_id, created_at);


--
-- Name: support_requests_patient; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX support_requests_patient ON public.support_requests USING btree (patient_id);


--
-- Name: support_requests_to; Type: INDEX; Schema: public; Owner: renrakucho_owner
--

CREATE INDEX support_requests_to ON public.support_requests USING btree (to_facility_id, status);


--
-- Name: sessions sessions_announce; Type: TRIGGER; Schema: private; Owner: renrakucho_owner
--

CREATE TRIGGER sessions_announce AFTER DELETE OR UPDATE OF id_hash ON private.sessions FOR EACH ROW EXECUTE FUNCTION private.sessions_changed();


--
-- Name: value_binding value_binding_guard; Type: TRIGGER; Schema: private; Owner: renrakucho_owner
--

CREATE TRIGGER value_binding_guard BEFORE UPDATE ON private.value_binding FOR EACH ROW EXECUTE FUNCTION private.value_binding_guard();


--
-- Name: audit_log audit_log_link; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER audit_log_link BEFORE INSERT ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.audit_log_link();


--
-- Name: care_team_members care_team_members_access; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER care_team_members_access AFTER INSERT OR UPDATE ON public.care_team_members FOR EACH ROW EXECUTE FUNCTION public.patient_access_changed();


--
-- Name: care_team_members care_team_members_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER care_team_members_announce AFTER INSERT OR UPDATE OF status ON public.care_team_members FOR EACH ROW EXECUTE FUNCTION public.invitations_announce();


--
-- Name: care_team_members care_team_members_transition; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER care_team_members_transition BEFORE UPDATE ON public.care_team_members FOR EACH ROW EXECUTE FUNCTION public.care_team_members_transition();


--
-- Name: consents consents_access; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER consents_access AFTER INSERT OR UPDATE ON public.consents FOR EACH ROW EXECUTE FUNCTION public.patient_access_changed();


--
-- Name: consents consents_admission; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER consents_admission BEFORE INSERT ON public.consents FOR EACH ROW EXECUTE FUNCTION public.consents_admission();


--
-- Name: consents consents_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER consents_announce AFTER INSERT OR UPDATE ON public.consents FOR EACH ROW EXECUTE FUNCTION public.consents_announce();


--
-- Name: consents consents_withdraw_once; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER consents_withdraw_once BEFORE UPDATE ON public.consents FOR EACH ROW EXECUTE FUNCTION public.consents_withdraw_once();


--
-- Name: data_keys data_keys_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER data_keys_announce AFTER INSERT OR UPDATE ON public.data_keys FOR EACH ROW EXECUTE FUNCTION public.data_keys_announce();


--
-- Name: data_keys data_keys_epoch_open; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER data_keys_epoch_open BEFORE INSERT OR UPDATE ON public.data_keys FOR EACH ROW EXECUTE FUNCTION public.data_keys_epoch_open();


--
-- Name: data_keys data_keys_guard; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER data_keys_guard BEFORE UPDATE ON public.data_keys FOR EACH ROW EXECUTE FUNCTION public.data_keys_guard();


--
-- Name: data_keys data_keys_no_maintenance_insert; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER data_keys_no_maintenance_insert BEFORE INSERT ON public.data_keys FOR EACH ROW EXECUTE FUNCTION public.data_keys_no_maintenance_insert();


--
-- Name: emergency_grants emergency_grants_access; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER emergency_grants_access AFTER INSERT OR UPDATE ON public.emergency_grants FOR EACH ROW EXECUTE FUNCTION public.patient_access_changed();


--
-- Name: emergency_grants emergency_grants_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER emergency_grants_announce AFTER INSERT ON public.emergency_grants FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_announce();


--
-- Name: emergency_grants emergency_grants_guard; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER emergency_grants_guard BEFORE UPDATE ON public.emergency_grants FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_guard();


--
-- Name: emergency_grants emergency_grants_identified; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER emergency_grants_identified AFTER INSERT ON public.emergency_grants FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_identified();


--
-- Name: emergency_grants emergency_grants_reason_given; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE CONSTRAINT TRIGGER emergency_grants_reason_given AFTER INSERT ON public.emergency_grants DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_reason_given();


--
-- Name: emergency_grants emergency_grants_unlocked; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER emergency_grants_unlocked BEFORE INSERT ON public.emergency_grants FOR EACH ROW EXECUTE FUNCTION public.emergency_grants_unlocked();


--
-- Name: entries entries_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER entries_announce AFTER INSERT ON public.entries FOR EACH ROW EXECUTE FUNCTION public.entries_announce();


--
-- Name: entries entries_guard; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER entries_guard BEFORE UPDATE ON public.entries FOR EACH ROW EXECUTE FUNCTION public.entries_guard();


--
-- Name: entry_versions entry_versions_immutable; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER entry_versions_immutable BEFORE UPDATE ON public.entry_versions FOR EACH ROW EXECUTE FUNCTION public.entry_versions_immutable();


--
-- Name: facilities facilities_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER facilities_announce AFTER DELETE OR UPDATE ON public.facilities FOR EACH ROW EXECUTE FUNCTION private.principal_changed();


--
-- Name: master_key_epochs master_key_epochs_forward; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER master_key_epochs_forward BEFORE UPDATE ON public.master_key_epochs FOR EACH ROW EXECUTE FUNCTION public.master_key_epochs_forward();


--
-- Name: patient_cards patient_cards_revision; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER patient_cards_revision BEFORE INSERT OR UPDATE ON public.patient_cards FOR EACH ROW EXECUTE FUNCTION public.patient_cards_revision();


--
-- Name: patients patients_revision; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER patients_revision BEFORE INSERT OR UPDATE ON public.patients FOR EACH ROW EXECUTE FUNCTION public.patients_revision();


--
-- Name: platform_operators platform_operators_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER platform_operators_announce AFTER DELETE OR UPDATE ON public.platform_operators FOR EACH ROW EXECUTE FUNCTION private.principal_changed();


--
-- Name: staff_accounts staff_accounts_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER staff_accounts_announce AFTER DELETE OR UPDATE ON public.staff_accounts FOR EACH ROW EXECUTE FUNCTION private.principal_changed();


--
-- Name: support_requests support_requests_access; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER support_requests_access AFTER INSERT OR UPDATE ON public.support_requests FOR EACH ROW EXECUTE FUNCTION public.patient_access_changed();


--
-- Name: support_requests support_requests_announce; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER support_requests_announce AFTER INSERT OR UPDATE ON public.support_requests FOR EACH ROW EXECUTE FUNCTION public.support_requests_announce();


--
-- Name: support_requests support_requests_transition; Type: TRIGGER; Schema: public; Owner: renrakucho_owner
--

CREATE TRIGGER support_requests_transition BEFORE UPDATE ON public.support_requests FOR EACH ROW EXECUTE FUNCTION public.support_requests_transition();


--
-- Name: emergency_identifications emergency_identifications_facility_id_fkey; Type: FK CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.emergency_identifications
    ADD CONSTRAINT emergency_identifications_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: emergency_identifications emergency_identifications_patient_id_fkey; Type: FK CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.emergency_identifications
    ADD CONSTRAINT emergency_identifications_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id) ON DELETE CASCADE;


--
-- Name: emergency_identifications emergency_identifications_staff_id_fkey; Type: FK CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.emergency_identifications
    ADD CONSTRAINT emergency_identifications_staff_id_fkey FOREIGN KEY (staff_id) REFERENCES public.staff_accounts(id);


--
-- Name: platform_alerts platform_alerts_acknowledged_by_fkey; Type: FK CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.platform_alerts
    ADD CONSTRAINT platform_alerts_acknowledged_by_fkey FOREIGN KEY (acknowledged_by) REFERENCES public.platform_operators(id) ON DELETE SET NULL;


--
-- Name: platform_alerts platform_alerts_raised_by_facility_fkey; Type: FK CONSTRAINT; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE ONLY private.platform_alerts
    ADD CONSTRAINT platform_alerts_raised_by_facility_fkey FOREIGN KEY (raised_by_facility) REFERENCES public.facilities(id) ON DELETE CASCADE;


--
-- Name: account_notices account_notices_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.account_notices
    ADD CONSTRAINT account_notices_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: account_notices account_notices_facility_id_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.account_notices
    ADD CONSTRAINT account_notices_facility_id_staff_id_fkey FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: attachments attachments_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.attachments
    ADD CONSTRAINT attachments_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: attachments attachments_facility_id_uploaded_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.attachments
    ADD CONSTRAINT attachments_facility_id_uploaded_by_fkey FOREIGN KEY (facility_id, uploaded_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: attachments attachments_patient_id_entry_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.attachments
    ADD CONSTRAINT attachments_patient_id_entry_id_fkey FOREIGN KEY (patient_id, entry_id) REFERENCES public.entries(patient_id, id);


--
-- Name: attachments attachments_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.attachments
    ADD CONSTRAINT attachments_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);


--
-- Name: audit_log audit_log_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: care_team_members care_team_members_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.care_team_members
    ADD CONSTRAINT care_team_members_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: care_team_members care_team_members_registering_facility_id_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.care_team_members
    ADD CONSTRAINT care_team_members_registering_facility_id_patient_id_fkey FOREIGN KEY (registering_facility_id, patient_id) REFERENCES public.patients(facility_id, id);


--
-- Name: consent_changes consent_changes_consent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consent_changes
    ADD CONSTRAINT consent_changes_consent_id_fkey FOREIGN KEY (consent_id) REFERENCES public.consents(id) ON DELETE CASCADE;


--
-- Name: consent_changes consent_changes_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consent_changes
    ADD CONSTRAINT consent_changes_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: consents consents_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consents
    ADD CONSTRAINT consents_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: consents consents_facility_id_recorded_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consents
    ADD CONSTRAINT consents_facility_id_recorded_by_fkey FOREIGN KEY (facility_id, recorded_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: consents consents_registering_facility_id_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.consents
    ADD CONSTRAINT consents_registering_facility_id_patient_id_fkey FOREIGN KEY (registering_facility_id, patient_id) REFERENCES public.patients(facility_id, id);


--
-- Name: data_keys data_keys_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.data_keys
    ADD CONSTRAINT data_keys_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: deletion_requests deletion_requests_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.deletion_requests
    ADD CONSTRAINT deletion_requests_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: deletion_requests deletion_requests_facility_id_requested_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.deletion_requests
    ADD CONSTRAINT deletion_requests_facility_id_requested_by_fkey FOREIGN KEY (facility_id, requested_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: emergency_grants emergency_grants_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_grants
    ADD CONSTRAINT emergency_grants_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: emergency_grants emergency_grants_facility_id_opened_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_grants
    ADD CONSTRAINT emergency_grants_facility_id_opened_by_fkey FOREIGN KEY (facility_id, opened_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: emergency_grants emergency_grants_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_grants
    ADD CONSTRAINT emergency_grants_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);


--
-- Name: emergency_identification_failures emergency_identification_failures_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_identification_failures
    ADD CONSTRAINT emergency_identification_failures_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: emergency_identification_failures emergency_identification_failures_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_identification_failures
    ADD CONSTRAINT emergency_identification_failures_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id) ON DELETE CASCADE;


--
-- Name: emergency_identification_failures emergency_identification_failures_requesting_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_identification_failures
    ADD CONSTRAINT emergency_identification_failures_requesting_facility_id_fkey FOREIGN KEY (requesting_facility_id) REFERENCES public.facilities(id);


--
-- Name: emergency_identification_failures emergency_identification_failures_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.emergency_identification_failures
    ADD CONSTRAINT emergency_identification_failures_staff_id_fkey FOREIGN KEY (staff_id) REFERENCES public.staff_accounts(id);


--
-- Name: entries entries_facility_id_author_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_facility_id_author_id_fkey FOREIGN KEY (facility_id, author_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: entries entries_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: entries entries_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);


--
-- Name: entries entries_patient_id_reply_to_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entries
    ADD CONSTRAINT entries_patient_id_reply_to_fkey FOREIGN KEY (patient_id, reply_to) REFERENCES public.entries(patient_id, id);


--
-- Name: entry_reads entry_reads_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_reads
    ADD CONSTRAINT entry_reads_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: entry_reads entry_reads_facility_id_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_reads
    ADD CONSTRAINT entry_reads_facility_id_staff_id_fkey FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: entry_reads entry_reads_patient_id_entry_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_reads
    ADD CONSTRAINT entry_reads_patient_id_entry_id_fkey FOREIGN KEY (patient_id, entry_id) REFERENCES public.entries(patient_id, id);


--
-- Name: entry_versions entry_versions_entry_id_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_versions
    ADD CONSTRAINT entry_versions_entry_id_facility_id_fkey FOREIGN KEY (entry_id, facility_id) REFERENCES public.entries(id, facility_id);


--
-- Name: entry_versions entry_versions_facility_id_edited_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_versions
    ADD CONSTRAINT entry_versions_facility_id_edited_by_fkey FOREIGN KEY (facility_id, edited_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: entry_versions entry_versions_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_versions
    ADD CONSTRAINT entry_versions_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: entry_versions entry_versions_patient_id_entry_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.entry_versions
    ADD CONSTRAINT entry_versions_patient_id_entry_id_fkey FOREIGN KEY (patient_id, entry_id) REFERENCES public.entries(patient_id, id);


--
-- Name: external_identities external_identities_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.external_identities
    ADD CONSTRAINT external_identities_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: external_identities external_identities_facility_id_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.external_identities
    ADD CONSTRAINT external_identities_facility_id_staff_id_fkey FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: identity_providers identity_providers_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.identity_providers
    ADD CONSTRAINT identity_providers_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: notification_settings notification_settings_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.notification_settings
    ADD CONSTRAINT notification_settings_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: notification_settings notification_settings_facility_id_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.notification_settings
    ADD CONSTRAINT notification_settings_facility_id_staff_id_fkey FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: operator_identities operator_identities_operator_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_identities
    ADD CONSTRAINT operator_identities_operator_id_fkey FOREIGN KEY (operator_id) REFERENCES public.platform_operators(id);


--
-- Name: operator_passkeys operator_passkeys_operator_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.operator_passkeys
    ADD CONSTRAINT operator_passkeys_operator_id_fkey FOREIGN KEY (operator_id) REFERENCES public.platform_operators(id);


--
-- Name: patient_access patient_access_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_access
    ADD CONSTRAINT patient_access_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: patient_cards patient_cards_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_cards
    ADD CONSTRAINT patient_cards_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: patient_cards patient_cards_issued_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_cards
    ADD CONSTRAINT patient_cards_issued_by_fkey FOREIGN KEY (issued_by) REFERENCES public.staff_accounts(id);


--
-- Name: patient_cards patient_cards_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_cards
    ADD CONSTRAINT patient_cards_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id) ON DELETE CASCADE;


--
-- Name: patient_mutes patient_mutes_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_mutes
    ADD CONSTRAINT patient_mutes_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: patient_mutes patient_mutes_facility_id_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_mutes
    ADD CONSTRAINT patient_mutes_facility_id_staff_id_fkey FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: patient_mutes patient_mutes_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_mutes
    ADD CONSTRAINT patient_mutes_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);


--
-- Name: patient_name_terms patient_name_terms_facility_id_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patient_name_terms
    ADD CONSTRAINT patient_name_terms_facility_id_patient_id_fkey FOREIGN KEY (facility_id, patient_id) REFERENCES public.patients(facility_id, id);


--
-- Name: patients patients_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: patients patients_facility_id_registered_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.patients
    ADD CONSTRAINT patients_facility_id_registered_by_fkey FOREIGN KEY (facility_id, registered_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: staff_accounts staff_accounts_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_accounts
    ADD CONSTRAINT staff_accounts_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: staff_passkeys staff_passkeys_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_passkeys
    ADD CONSTRAINT staff_passkeys_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: staff_passkeys staff_passkeys_facility_id_staff_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.staff_passkeys
    ADD CONSTRAINT staff_passkeys_facility_id_staff_id_fkey FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: support_request_items support_request_items_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_request_items
    ADD CONSTRAINT support_request_items_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: support_request_items support_request_items_patient_id_attachment_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_request_items
    ADD CONSTRAINT support_request_items_patient_id_attachment_id_fkey FOREIGN KEY (patient_id, attachment_id) REFERENCES public.attachments(patient_id, id);


--
-- Name: support_request_items support_request_items_patient_id_entry_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_request_items
    ADD CONSTRAINT support_request_items_patient_id_entry_id_fkey FOREIGN KEY (patient_id, entry_id) REFERENCES public.entries(patient_id, id);


--
-- Name: support_request_items support_request_items_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_request_items
    ADD CONSTRAINT support_request_items_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.support_requests(id);


--
-- Name: support_requests support_requests_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_requests
    ADD CONSTRAINT support_requests_facility_id_fkey FOREIGN KEY (facility_id) REFERENCES public.facilities(id);


--
-- Name: support_requests support_requests_facility_id_requested_by_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_requests
    ADD CONSTRAINT support_requests_facility_id_requested_by_fkey FOREIGN KEY (facility_id, requested_by) REFERENCES public.staff_accounts(facility_id, id);


--
-- Name: support_requests support_requests_patient_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_requests
    ADD CONSTRAINT support_requests_patient_id_fkey FOREIGN KEY (patient_id) REFERENCES public.patients(id);


--
-- Name: support_requests support_requests_to_facility_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE ONLY public.support_requests
    ADD CONSTRAINT support_requests_to_facility_id_fkey FOREIGN KEY (to_facility_id) REFERENCES public.facilities(id);


--
-- Name: emergency_identifications; Type: ROW SECURITY; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE private.emergency_identifications ENABLE ROW LEVEL SECURITY;

--
-- Name: emergency_identifications emergency_identifications_confirm; Type: POLICY; Schema: private; Owner: renrakucho_owner
--

CREATE POLICY emergency_identifications_confirm ON private.emergency_identifications TO renrakucho_owner USING (( SELECT public.owner_flag('card_lookup'::text) AS owner_flag)) WITH CHECK (( SELECT public.owner_flag('card_lookup'::text) AS owner_flag));


--
-- Name: platform_alerts; Type: ROW SECURITY; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE private.platform_alerts ENABLE ROW LEVEL SECURITY;

--
-- Name: platform_alerts platform_alerts_platform; Type: POLICY; Schema: private; Owner: renrakucho_owner
--

CREATE POLICY platform_alerts_platform ON private.platform_alerts TO renrakucho_platform USING (( SELECT public.in_platform_scope() AS in_platform_scope)) WITH CHECK (( SELECT public.in_platform_scope() AS in_platform_scope));


--
-- Name: platform_alerts platform_alerts_raise; Type: POLICY; Schema: private; Owner: renrakucho_owner
--

CREATE POLICY platform_alerts_raise ON private.platform_alerts TO renrakucho_owner USING (( SELECT public.owner_flag('alerting'::text) AS owner_flag)) WITH CHECK (( SELECT public.owner_flag('alerting'::text) AS owner_flag));


--
-- Name: sessions; Type: ROW SECURITY; Schema: private; Owner: renrakucho_owner
--

ALTER TABLE private.sessions ENABLE ROW LEVEL SECURITY;

--
-- Name: sessions sessions_store; Type: POLICY; Schema: private; Owner: renrakucho_owner
--

CREATE POLICY sessions_store ON private.sessions TO renrakucho_owner USING (( SELECT public.owner_flag('session_store'::text) AS owner_flag)) WITH CHECK (( SELECT public.owner_flag('session_store'::text) AS owner_flag));


--
-- Name: account_notices; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.account_notices ENABLE ROW LEVEL SECURITY;

--
-- Name: account_notices account_notices_digest; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY account_notices_digest ON public.account_notices FOR SELECT TO renrakucho_digest USING (( SELECT public.in_digest_scope() AS in_digest_scope));


--
-- Name: account_notices account_notices_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY account_notices_own ON public.account_notices TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: attachments; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.attachments ENABLE ROW LEVEL SECURITY;

--
-- Name: attachments attachments_attach; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_attach ON public.attachments FOR UPDATE TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (entry_id IS NULL) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = attachments.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))) WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = attachments.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: attachments attachments_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_erasure ON public.attachments FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: attachments attachments_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_erasure_read ON public.attachments FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: attachments attachments_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_read ON public.attachments FOR SELECT TO renrakucho_runtime USING ((((entry_id IS NOT NULL) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = attachments.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))) OR ((entry_id IS NULL) AND (facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = attachments.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))) OR ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = attachments.patient_id) AND (a.relation = ANY ('{support}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) AND (EXISTS ( SELECT
   FROM (public.support_request_items i
     JOIN public.support_requests r ON ((r.id = i.request_id)))
  WHERE ((i.attachment_id = attachments.id) AND (r.to_facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (r.status = ANY (ARRAY['requested'::text, 'accepted'::text, 'answered'::text])))
 OFFSET 0)))));


--
-- Name: attachments attachments_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_reencrypt ON public.attachments TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: attachments attachments_upload; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_upload ON public.attachments FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (entry_id IS NULL) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = attachments.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: attachments attachments_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY attachments_value_check ON public.attachments FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: audit_log; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.audit_log ENABLE ROW LEVEL SECURITY;

--
-- Name: audit_log audit_log_facility; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY audit_log_facility ON public.audit_log TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: audit_log audit_log_identification; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY audit_log_identification ON public.audit_log TO renrakucho_owner USING (( SELECT public.owner_flag('card_lookup'::text) AS owner_flag)) WITH CHECK ((( SELECT public.owner_flag('card_lookup'::text) AS owner_flag) AND (action = 'emergency.identify'::text) AND (outcome = 'denied'::text)));


--
-- Name: audit_log audit_log_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY audit_log_platform ON public.audit_log TO renrakucho_platform, renrakucho_key_maintenance USING (((facility_id IS NULL) AND (( SELECT public.in_platform_scope() AS in_platform_scope) OR ( SELECT public.in_key_maintenance() AS in_key_maintenance)))) WITH CHECK (((facility_id IS NULL) AND (( SELECT public.in_platform_scope() AS in_platform_scope) OR ( SELECT public.in_key_maintenance() AS in_key_maintenance))));


--
-- Name: care_team_members; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.care_team_members ENABLE ROW LEVEL SECURITY;

--
-- Name: care_team_members care_team_members_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY care_team_members_erasure ON public.care_team_members FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: care_team_members care_team_members_insert; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY care_team_members_insert ON public.care_team_members FOR INSERT TO renrakucho_runtime WITH CHECK ((((role = 'registering'::text) AND (facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) OR ((role = 'member'::text) AND (status = 'invited'::text) AND (facility_id <> ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = care_team_members.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))));


--
-- Name: care_team_members care_team_members_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY care_team_members_maintenance ON public.care_team_members FOR SELECT TO renrakucho_owner USING ((( SELECT public.in_access_maintenance() AS in_access_maintenance) OR (patient_id = ( SELECT public.erasure_target() AS erasure_target))));


--
-- Name: care_team_members care_team_members_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY care_team_members_read ON public.care_team_members FOR SELECT TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = care_team_members.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: care_team_members care_team_members_update; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY care_team_members_update ON public.care_team_members FOR UPDATE TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = care_team_members.patient_id) AND (a.relation = ANY ('{registering}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))) WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = care_team_members.patient_id) AND (a.relation = ANY ('{registering}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: consent_changes; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.consent_changes ENABLE ROW LEVEL SECURITY;

--
-- Name: consent_changes consent_changes_log; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consent_changes_log ON public.consent_changes FOR INSERT TO renrakucho_owner WITH CHECK (( SELECT public.owner_flag('announcing'::text) AS owner_flag));


--
-- Name: consent_changes consent_changes_team; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consent_changes_team ON public.consent_changes FOR SELECT TO renrakucho_runtime USING ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = consent_changes.patient_id) AND (a.relation = ANY ('{registering,member}'::text[])))
 OFFSET 0)));


--
-- Name: consents; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.consents ENABLE ROW LEVEL SECURITY;

--
-- Name: consents consents_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_erasure ON public.consents FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: consents consents_insert; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_insert ON public.consents FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = consents.patient_id) AND (a.relation = ANY ('{registering,collecting}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: consents consents_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_maintenance ON public.consents FOR SELECT TO renrakucho_owner USING ((( SELECT public.in_access_maintenance() AS in_access_maintenance) OR (patient_id = ( SELECT public.erasure_target() AS erasure_target))));


--
-- Name: consents consents_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_read ON public.consents FOR SELECT TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = consents.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: consents consents_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_reencrypt ON public.consents TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: consents consents_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_value_check ON public.consents FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: consents consents_withdraw; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY consents_withdraw ON public.consents FOR UPDATE TO renrakucho_runtime USING ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = consents.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))) WITH CHECK ((withdrawn_by_facility = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: data_keys; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.data_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: data_keys data_keys_create; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY data_keys_create ON public.data_keys FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (wrapped IS NOT NULL) AND (destroyed_at IS NULL) AND ((owner_kind <> 'patient'::text) OR (version = 1) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = data_keys.owner_id) AND (a.relation = ANY ('{registering}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))));


--
-- Name: data_keys data_keys_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY data_keys_erasure ON public.data_keys FOR UPDATE TO renrakucho_runtime USING (((owner_kind = 'patient'::text) AND (EXISTS ( SELECT
   FROM public.deletion_requests d
  WHERE ((d.patient_id = data_keys.owner_id) AND (d.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (d.completed_at IS NULL) AND (d.xmin = (pg_current_xact_id())::xid))
 OFFSET 0)))) WITH CHECK (((owner_kind = 'patient'::text) AND (EXISTS ( SELECT
   FROM public.deletion_requests d
  WHERE ((d.patient_id = data_keys.owner_id) AND (d.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (d.completed_at IS NULL) AND (d.xmin = (pg_current_xact_id())::xid))
 OFFSET 0)) AND (wrapped IS NULL) AND (destroyed_at IS NOT NULL)));


--
-- Name: data_keys data_keys_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY data_keys_maintenance ON public.data_keys TO renrakucho_key_maintenance USING (( SELECT public.in_key_maintenance() AS in_key_maintenance)) WITH CHECK ((( SELECT public.in_key_maintenance() AS in_key_maintenance) AND (wrapped IS NOT NULL)));


--
-- Name: data_keys data_keys_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY data_keys_platform ON public.data_keys TO renrakucho_platform USING (((owner_kind = 'platform'::text) AND ( SELECT public.in_platform_scope() AS in_platform_scope))) WITH CHECK (((owner_kind = 'platform'::text) AND ( SELECT public.in_platform_scope() AS in_platform_scope) AND (wrapped IS NOT NULL)));


--
-- Name: data_keys data_keys_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY data_keys_read ON public.data_keys FOR SELECT TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR ((owner_kind = 'blind_index'::text) AND (( SELECT public.current_facility_id() AS current_facility_id) IS NOT NULL)) OR ((owner_kind = 'patient'::text) AND ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = data_keys.owner_id) AND (a.relation = ANY ('{sharing,member,emergency,support}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) OR (EXISTS ( SELECT
   FROM public.deletion_requests d
  WHERE ((d.patient_id = data_keys.owner_id) AND (d.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (d.completed_at IS NULL) AND (d.xmin = (pg_current_xact_id())::xid))
 OFFSET 0))))));


--
-- Name: deletion_requests; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.deletion_requests ENABLE ROW LEVEL SECURITY;

--
-- Name: deletion_requests deletion_requests_complete; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY deletion_requests_complete ON public.deletion_requests FOR UPDATE TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (completed_at IS NULL))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: deletion_requests deletion_requests_epochs; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY deletion_requests_epochs ON public.deletion_requests FOR SELECT TO renrakucho_key_maintenance USING (( SELECT public.in_key_maintenance() AS in_key_maintenance));


--
-- Name: deletion_requests deletion_requests_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY deletion_requests_maintenance ON public.deletion_requests FOR SELECT TO renrakucho_owner USING (( SELECT public.in_access_maintenance() AS in_access_maintenance));


--
-- Name: deletion_requests deletion_requests_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY deletion_requests_own ON public.deletion_requests FOR SELECT TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: deletion_requests deletion_requests_record; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY deletion_requests_record ON public.deletion_requests FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = deletion_requests.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) AND (completed_at IS NULL)));


--
-- Name: emergency_grants; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.emergency_grants ENABLE ROW LEVEL SECURITY;

--
-- Name: emergency_grants emergency_grants_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_erasure ON public.emergency_grants FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: emergency_grants emergency_grants_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_maintenance ON public.emergency_grants FOR SELECT TO renrakucho_owner USING ((( SELECT public.in_access_maintenance() AS in_access_maintenance) OR (patient_id = ( SELECT public.erasure_target() AS erasure_target))));


--
-- Name: emergency_grants emergency_grants_open; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_open ON public.emergency_grants FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (ended_at IS NULL) AND (reviewed_at IS NULL)));


--
-- Name: emergency_grants emergency_grants_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_read ON public.emergency_grants FOR SELECT TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = emergency_grants.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: emergency_grants emergency_grants_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_reencrypt ON public.emergency_grants TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: emergency_grants emergency_grants_update; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_update ON public.emergency_grants FOR UPDATE TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = emergency_grants.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))) WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = emergency_grants.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) AND (reviewed_by_facility = ( SELECT public.current_facility_id() AS current_facility_id)))));


--
-- Name: emergency_grants emergency_grants_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_grants_value_check ON public.emergency_grants FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: emergency_identification_failures; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.emergency_identification_failures ENABLE ROW LEVEL SECURITY;

--
-- Name: emergency_identification_failures emergency_identification_failures_record; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_identification_failures_record ON public.emergency_identification_failures TO renrakucho_owner USING (( SELECT public.owner_flag('card_lookup'::text) AS owner_flag)) WITH CHECK (( SELECT public.owner_flag('card_lookup'::text) AS owner_flag));


--
-- Name: emergency_identification_failures emergency_identification_failures_registering; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY emergency_identification_failures_registering ON public.emergency_identification_failures FOR SELECT TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: entries; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.entries ENABLE ROW LEVEL SECURITY;

--
-- Name: entries entries_announce_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_announce_read ON public.entries FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('announcing'::text) AS owner_flag));


--
-- Name: entries entries_edit; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_edit ON public.entries FOR UPDATE TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entries.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))) WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entries.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: entries entries_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_erasure ON public.entries FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: entries entries_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_erasure_read ON public.entries FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: entries entries_post; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_post ON public.entries FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entries.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: entries entries_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_read ON public.entries FOR SELECT TO renrakucho_runtime USING (((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entries.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) OR ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entries.patient_id) AND (a.relation = ANY ('{support}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) AND (EXISTS ( SELECT
   FROM (public.support_request_items i
     JOIN public.support_requests r ON ((r.id = i.request_id)))
  WHERE ((i.entry_id = entries.id) AND (r.to_facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (r.status = ANY (ARRAY['requested'::text, 'accepted'::text, 'answered'::text])))
 OFFSET 0)))));


--
-- Name: entries entries_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_reencrypt ON public.entries TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: entries entries_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entries_value_check ON public.entries FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: entry_reads; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.entry_reads ENABLE ROW LEVEL SECURITY;

--
-- Name: entry_reads entry_reads_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_reads_erasure ON public.entry_reads FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: entry_reads entry_reads_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_reads_erasure_read ON public.entry_reads FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: entry_reads entry_reads_mark; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_reads_mark ON public.entry_reads FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entry_reads.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: entry_reads entry_reads_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_reads_read ON public.entry_reads FOR SELECT TO renrakucho_runtime USING ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entry_reads.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)));


--
-- Name: entry_versions; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.entry_versions ENABLE ROW LEVEL SECURITY;

--
-- Name: entry_versions entry_versions_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_versions_erasure ON public.entry_versions FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: entry_versions entry_versions_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_versions_erasure_read ON public.entry_versions FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: entry_versions entry_versions_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_versions_read ON public.entry_versions FOR SELECT TO renrakucho_runtime USING ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entry_versions.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)));


--
-- Name: entry_versions entry_versions_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_versions_reencrypt ON public.entry_versions TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: entry_versions entry_versions_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_versions_value_check ON public.entry_versions FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: entry_versions entry_versions_write; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY entry_versions_write ON public.entry_versions FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = entry_versions.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: external_identities; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.external_identities ENABLE ROW LEVEL SECURITY;

--
-- Name: external_identities external_identities_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY external_identities_own ON public.external_identities TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: facilities; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.facilities ENABLE ROW LEVEL SECURITY;

--
-- Name: facilities facilities_directory; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY facilities_directory ON public.facilities FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('directory'::text) AS owner_flag));


--
-- Name: facilities facilities_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY facilities_own ON public.facilities FOR SELECT TO renrakucho_runtime USING ((id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: facilities facilities_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY facilities_platform ON public.facilities TO renrakucho_platform USING (( SELECT public.in_platform_scope() AS in_platform_scope)) WITH CHECK (( SELECT public.in_platform_scope() AS in_platform_scope));


--
-- Name: identity_providers; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.identity_providers ENABLE ROW LEVEL SECURITY;

--
-- Name: identity_providers identity_providers_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY identity_providers_maintenance ON public.identity_providers TO renrakucho_key_maintenance USING (( SELECT public.in_key_maintenance() AS in_key_maintenance)) WITH CHECK (( SELECT public.in_key_maintenance() AS in_key_maintenance));


--
-- Name: identity_providers identity_providers_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY identity_providers_own ON public.identity_providers TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: master_key_epochs; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.master_key_epochs ENABLE ROW LEVEL SECURITY;

--
-- Name: master_key_epochs master_key_epochs_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY master_key_epochs_maintenance ON public.master_key_epochs TO renrakucho_key_maintenance USING (( SELECT public.in_key_maintenance() AS in_key_maintenance)) WITH CHECK (( SELECT public.in_key_maintenance() AS in_key_maintenance));


--
-- Name: master_key_epochs master_key_epochs_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY master_key_epochs_platform ON public.master_key_epochs FOR SELECT TO renrakucho_platform USING (( SELECT public.in_platform_scope() AS in_platform_scope));


--
-- Name: master_key_epochs master_key_epochs_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY master_key_epochs_read ON public.master_key_epochs FOR SELECT TO renrakucho_runtime USING ((( SELECT public.current_facility_id() AS current_facility_id) IS NOT NULL));


--
-- Name: notification_settings; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.notification_settings ENABLE ROW LEVEL SECURITY;

--
-- Name: notification_settings notification_settings_digest; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY notification_settings_digest ON public.notification_settings FOR SELECT TO renrakucho_digest USING (( SELECT public.in_digest_scope() AS in_digest_scope));


--
-- Name: notification_settings notification_settings_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY notification_settings_own ON public.notification_settings TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: operator_identities; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.operator_identities ENABLE ROW LEVEL SECURITY;

--
-- Name: operator_identities operator_identities_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY operator_identities_platform ON public.operator_identities TO renrakucho_platform USING (( SELECT public.in_platform_scope() AS in_platform_scope)) WITH CHECK (( SELECT public.in_platform_scope() AS in_platform_scope));


--
-- Name: operator_passkeys; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.operator_passkeys ENABLE ROW LEVEL SECURITY;

--
-- Name: operator_passkeys operator_passkeys_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY operator_passkeys_platform ON public.operator_passkeys TO renrakucho_platform USING (( SELECT public.in_platform_scope() AS in_platform_scope)) WITH CHECK (( SELECT public.in_platform_scope() AS in_platform_scope));


--
-- Name: patient_access; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.patient_access ENABLE ROW LEVEL SECURITY;

--
-- Name: patient_access patient_access_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_access_maintenance ON public.patient_access TO renrakucho_owner USING (( SELECT public.in_access_maintenance() AS in_access_maintenance)) WITH CHECK (( SELECT public.in_access_maintenance() AS in_access_maintenance));


--
-- Name: patient_access patient_access_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_access_own ON public.patient_access FOR SELECT TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: patient_access patient_access_sync; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_access_sync ON public.patient_access FOR SELECT TO renrakucho_access_sync USING (( SELECT public.in_access_sync() AS in_access_sync));


--
-- Name: patient_cards; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.patient_cards ENABLE ROW LEVEL SECURITY;

--
-- Name: patient_cards patient_cards_identify; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_cards_identify ON public.patient_cards FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('card_lookup'::text) AS owner_flag));


--
-- Name: patient_cards patient_cards_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_cards_reencrypt ON public.patient_cards TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: patient_cards patient_cards_registering; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_cards_registering ON public.patient_cards TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = patient_cards.patient_id) AND (a.relation = ANY ('{registering}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)))) WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (NOT (issued_by IS DISTINCT FROM ( SELECT public.current_staff_id() AS current_staff_id))) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = patient_cards.patient_id) AND (a.relation = ANY ('{registering}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: patient_cards patient_cards_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_cards_value_check ON public.patient_cards FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: patient_mutes; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.patient_mutes ENABLE ROW LEVEL SECURITY;

--
-- Name: patient_mutes patient_mutes_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_mutes_erasure ON public.patient_mutes FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: patient_mutes patient_mutes_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_mutes_erasure_read ON public.patient_mutes FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: patient_mutes patient_mutes_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_mutes_own ON public.patient_mutes TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = patient_mutes.patient_id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0))));


--
-- Name: patient_name_terms; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.patient_name_terms ENABLE ROW LEVEL SECURITY;

--
-- Name: patient_name_terms patient_name_terms_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_name_terms_erasure ON public.patient_name_terms FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: patient_name_terms patient_name_terms_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_name_terms_erasure_read ON public.patient_name_terms FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: patient_name_terms patient_name_terms_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_name_terms_read ON public.patient_name_terms FOR SELECT TO renrakucho_runtime USING ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = patient_name_terms.patient_id) AND (a.relation = ANY ('{sharing}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)));


--
-- Name: patient_name_terms patient_name_terms_replace; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_name_terms_replace ON public.patient_name_terms FOR DELETE TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: patient_name_terms patient_name_terms_write; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patient_name_terms_write ON public.patient_name_terms FOR INSERT TO renrakucho_runtime WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: patients; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.patients ENABLE ROW LEVEL SECURITY;

--
-- Name: patients patients_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_erasure ON public.patients FOR DELETE TO renrakucho_owner USING ((id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: patients patients_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_erasure_read ON public.patients FOR SELECT TO renrakucho_owner USING ((id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: patients patients_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_read ON public.patients FOR SELECT TO renrakucho_runtime USING ((EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = patients.id) AND (a.relation = ANY ('{sharing,emergency}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)));


--
-- Name: patients patients_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_reencrypt ON public.patients TO renrakucho_owner USING ((id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: patients patients_register; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_register ON public.patients FOR INSERT TO renrakucho_runtime WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: patients patients_update; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_update ON public.patients FOR UPDATE TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: patients patients_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY patients_value_check ON public.patients FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: platform_operators; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.platform_operators ENABLE ROW LEVEL SECURITY;

--
-- Name: platform_operators platform_operators_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY platform_operators_maintenance ON public.platform_operators TO renrakucho_key_maintenance USING (( SELECT public.in_key_maintenance() AS in_key_maintenance)) WITH CHECK (( SELECT public.in_key_maintenance() AS in_key_maintenance));


--
-- Name: platform_operators platform_operators_platform; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY platform_operators_platform ON public.platform_operators TO renrakucho_platform USING (( SELECT public.in_platform_scope() AS in_platform_scope)) WITH CHECK (( SELECT public.in_platform_scope() AS in_platform_scope));


--
-- Name: staff_accounts; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.staff_accounts ENABLE ROW LEVEL SECURITY;

--
-- Name: staff_accounts staff_accounts_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY staff_accounts_maintenance ON public.staff_accounts TO renrakucho_key_maintenance USING (( SELECT public.in_key_maintenance() AS in_key_maintenance)) WITH CHECK (( SELECT public.in_key_maintenance() AS in_key_maintenance));


--
-- Name: staff_accounts staff_accounts_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY staff_accounts_own ON public.staff_accounts TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: staff_passkeys; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.staff_passkeys ENABLE ROW LEVEL SECURITY;

--
-- Name: staff_passkeys staff_passkeys_own; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY staff_passkeys_own ON public.staff_passkeys TO renrakucho_runtime USING ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id))) WITH CHECK ((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)));


--
-- Name: support_request_items; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.support_request_items ENABLE ROW LEVEL SECURITY;

--
-- Name: support_request_items support_request_items_add; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_request_items_add ON public.support_request_items FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = support_request_items.patient_id) AND (a.relation = ANY ('{consented}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) AND (EXISTS ( SELECT
   FROM public.support_requests r
  WHERE ((r.id = support_request_items.request_id) AND (r.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (r.patient_id = support_request_items.patient_id))))));


--
-- Name: support_request_items support_request_items_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_request_items_erasure ON public.support_request_items FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: support_request_items support_request_items_erasure_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_request_items_erasure_read ON public.support_request_items FOR SELECT TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: support_request_items support_request_items_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_request_items_read ON public.support_request_items FOR SELECT TO renrakucho_runtime USING (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) OR (EXISTS ( SELECT
   FROM public.support_requests r
  WHERE ((r.id = support_request_items.request_id) AND (r.to_facility_id = ( SELECT public.current_facility_id() AS current_facility_id)))))));


--
-- Name: support_requests; Type: ROW SECURITY; Schema: public; Owner: renrakucho_owner
--

ALTER TABLE public.support_requests ENABLE ROW LEVEL SECURITY;

--
-- Name: support_requests support_requests_erasure; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_erasure ON public.support_requests FOR DELETE TO renrakucho_owner USING ((patient_id = ( SELECT public.erasure_target() AS erasure_target)));


--
-- Name: support_requests support_requests_maintenance; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_maintenance ON public.support_requests FOR SELECT TO renrakucho_owner USING ((( SELECT public.in_access_maintenance() AS in_access_maintenance) OR (patient_id = ( SELECT public.erasure_target() AS erasure_target))));


--
-- Name: support_requests support_requests_move; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_move ON public.support_requests FOR UPDATE TO renrakucho_runtime USING (((( SELECT public.current_facility_id() AS current_facility_id) = facility_id) OR (( SELECT public.current_facility_id() AS current_facility_id) = to_facility_id))) WITH CHECK (((( SELECT public.current_facility_id() AS current_facility_id) = facility_id) OR (( SELECT public.current_facility_id() AS current_facility_id) = to_facility_id)));


--
-- Name: support_requests support_requests_read; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_read ON public.support_requests FOR SELECT TO renrakucho_runtime USING (((( SELECT public.current_facility_id() AS current_facility_id) = facility_id) OR (( SELECT public.current_facility_id() AS current_facility_id) = to_facility_id)));


--
-- Name: support_requests support_requests_reencrypt; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_reencrypt ON public.support_requests TO renrakucho_owner USING ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target))) WITH CHECK ((patient_id = ( SELECT public.reencrypt_target() AS reencrypt_target)));


--
-- Name: support_requests support_requests_send; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_send ON public.support_requests FOR INSERT TO renrakucho_runtime WITH CHECK (((facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (EXISTS ( SELECT
   FROM public.patient_access a
  WHERE ((a.facility_id = ( SELECT public.current_facility_id() AS current_facility_id)) AND (a.patient_id = support_requests.patient_id) AND (a.relation = ANY ('{consented}'::text[])) AND ((a.expires_at IS NULL) OR (a.expires_at > now())))
 OFFSET 0)) AND (status = 'requested'::text)));


--
-- Name: support_requests support_requests_value_check; Type: POLICY; Schema: public; Owner: renrakucho_owner
--

CREATE POLICY support_requests_value_check ON public.support_requests FOR SELECT TO renrakucho_owner USING (( SELECT public.owner_flag('value_check'::text) AS owner_flag));


--
-- Name: SCHEMA private; Type: ACL; Schema: -; Owner: renrakucho_owner
--

GRANT USAGE ON SCHEMA private TO renrakucho_listener;
GRANT USAGE ON SCHEMA private TO renrakucho_platform;


--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: pg_database_owner
--

GRANT USAGE ON SCHEMA public TO renrakucho_runtime;
GRANT USAGE ON SCHEMA public TO renrakucho_platform;
GRANT USAGE ON SCHEMA public TO renrakucho_key_maintenance;
GRANT USAGE ON SCHEMA public TO renrakucho_access_sync;
GRANT USAGE ON SCHEMA public TO renrakucho_digest;
GRANT USAGE ON SCHEMA public TO renrakucho_listener;


--
-- Name: FUNCTION announce(p_channel text, p_payload jsonb); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.announce(p_channel text, p_payload jsonb) FROM PUBLIC;


--
-- Name: FUNCTION context_parts(); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.context_parts() FROM PUBLIC;


--
-- Name: FUNCTION definer_flags(p_on text); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.definer_flags(p_on text) FROM PUBLIC;


--
-- Name: FUNCTION identification_locked_until(p_facility uuid, p_patient uuid, p_since timestamp with time zone); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.identification_locked_until(p_facility uuid, p_patient uuid, p_since timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION legacy_value_count(); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.legacy_value_count() FROM PUBLIC;


--
-- Name: FUNCTION principal_changed(); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.principal_changed() FROM PUBLIC;


--
-- Name: FUNCTION sessions_changed(); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.sessions_changed() FROM PUBLIC;


--
-- Name: FUNCTION value_binding_guard(); Type: ACL; Schema: private; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION private.value_binding_guard() FROM PUBLIC;


--
-- Name: TABLE audit_log; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.audit_log TO renrakucho_runtime;
GRANT SELECT,INSERT ON TABLE public.audit_log TO renrakucho_platform;
GRANT SELECT,INSERT ON TABLE public.audit_log TO renrakucho_key_maintenance;


--
-- Name: FUNCTION consents_admission(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.consents_admission() FROM PUBLIC;


--
-- Name: FUNCTION consents_announce(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.consents_announce() FROM PUBLIC;


--
-- Name: FUNCTION current_facility_id(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.current_facility_id() FROM PUBLIC;
GRANT ALL ON FUNCTION public.current_facility_id() TO renrakucho_runtime;
GRANT ALL ON FUNCTION public.current_facility_id() TO renrakucho_platform;
GRANT ALL ON FUNCTION public.current_facility_id() TO renrakucho_key_maintenance;
GRANT ALL ON FUNCTION public.current_facility_id() TO renrakucho_access_sync;
GRANT ALL ON FUNCTION public.current_facility_id() TO renrakucho_digest;


--
-- Name: FUNCTION current_staff_id(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.current_staff_id() FROM PUBLIC;
GRANT ALL ON FUNCTION public.current_staff_id() TO renrakucho_runtime;
GRANT ALL ON FUNCTION public.current_staff_id() TO renrakucho_platform;
GRANT ALL ON FUNCTION public.current_staff_id() TO renrakucho_key_maintenance;
GRANT ALL ON FUNCTION public.current_staff_id() TO renrakucho_access_sync;
GRANT ALL ON FUNCTION public.current_staff_id() TO renrakucho_digest;


--
-- Name: FUNCTION data_keys_announce(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.data_keys_announce() FROM PUBLIC;


--
-- Name: FUNCTION emergency_grants_announce(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_grants_announce() FROM PUBLIC;


--
-- Name: FUNCTION emergency_grants_identified(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_grants_identified() FROM PUBLIC;


--
-- Name: FUNCTION emergency_grants_unlocked(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_grants_unlocked() FROM PUBLIC;


--
-- Name: FUNCTION emergency_identification_failed(p_lookup bytea); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_identification_failed(p_lookup bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.emergency_identification_failed(p_lookup bytea) TO renrakucho_runtime;


--
-- Name: FUNCTION emergency_identification_status(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_identification_status() FROM PUBLIC;
GRANT ALL ON FUNCTION public.emergency_identification_status() TO renrakucho_runtime;


--
-- Name: FUNCTION emergency_identified(p_lookup bytea, p_birth_check bytea); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_identified(p_lookup bytea, p_birth_check bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.emergency_identified(p_lookup bytea, p_birth_check bytea) TO renrakucho_runtime;


--
-- Name: FUNCTION emergency_identify(p_lookup bytea); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.emergency_identify(p_lookup bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.emergency_identify(p_lookup bytea) TO renrakucho_runtime;


--
-- Name: FUNCTION encrypted_values(p_table text, p_column text, p_patient uuid); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.encrypted_values(p_table text, p_column text, p_patient uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.encrypted_values(p_table text, p_column text, p_patient uuid) TO renrakucho_key_maintenance;


--
-- Name: FUNCTION entries_announce(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.entries_announce() FROM PUBLIC;


--
-- Name: FUNCTION erase_patient(p_patient uuid); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.erase_patient(p_patient uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.erase_patient(p_patient uuid) TO renrakucho_runtime;


--
-- Name: TABLE deletion_requests; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.deletion_requests TO renrakucho_runtime;


--
-- Name: COLUMN deletion_requests.completed_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(completed_at) ON TABLE public.deletion_requests TO renrakucho_runtime;
GRANT SELECT(completed_at) ON TABLE public.deletion_requests TO renrakucho_key_maintenance;


--
-- Name: COLUMN deletion_requests.erased; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(erased) ON TABLE public.deletion_requests TO renrakucho_runtime;


--
-- Name: FUNCTION facility_directory(p_ids uuid[], p_code text); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.facility_directory(p_ids uuid[], p_code text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.facility_directory(p_ids uuid[], p_code text) TO renrakucho_runtime;


--
-- Name: FUNCTION facility_for_sign_in(p_code text); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.facility_for_sign_in(p_code text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.facility_for_sign_in(p_code text) TO renrakucho_runtime;


--
-- Name: TABLE patient_access; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT ON TABLE public.patient_access TO renrakucho_runtime;
GRANT SELECT ON TABLE public.patient_access TO renrakucho_access_sync;


--
-- Name: FUNCTION invitations_announce(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.invitations_announce() FROM PUBLIC;


--
-- Name: FUNCTION legacy_values_readable(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.legacy_values_readable() FROM PUBLIC;
GRANT ALL ON FUNCTION public.legacy_values_readable() TO renrakucho_runtime;
GRANT ALL ON FUNCTION public.legacy_values_readable() TO renrakucho_key_maintenance;


--
-- Name: FUNCTION patient_access_changed(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.patient_access_changed() FROM PUBLIC;


--
-- Name: FUNCTION raise_platform_alert(p_kind text, p_dedupe_key text, p_details jsonb); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.raise_platform_alert(p_kind text, p_dedupe_key text, p_details jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION public.raise_platform_alert(p_kind text, p_dedupe_key text, p_details jsonb) TO renrakucho_runtime;


--
-- Name: FUNCTION reencrypt_value(p_table text, p_column text, p_patient uuid, p_row uuid, p_old bytea, p_new bytea); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.reencrypt_value(p_table text, p_column text, p_patient uuid, p_row uuid, p_old bytea, p_new bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.reencrypt_value(p_table text, p_column text, p_patient uuid, p_row uuid, p_old bytea, p_new bytea) TO renrakucho_key_maintenance;


--
-- Name: TABLE patients; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.patients TO renrakucho_runtime;


--
-- Name: COLUMN patients.name_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(name_enc) ON TABLE public.patients TO renrakucho_runtime;


--
-- Name: COLUMN patients.kana_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(kana_enc) ON TABLE public.patients TO renrakucho_runtime;


--
-- Name: COLUMN patients.profile_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(profile_enc) ON TABLE public.patients TO renrakucho_runtime;


--
-- Name: COLUMN patients.updated_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(updated_at) ON TABLE public.patients TO renrakucho_runtime;


--
-- Name: FUNCTION refresh_patient_access(p_patient uuid); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.refresh_patient_access(p_patient uuid) FROM PUBLIC;


--
-- Name: FUNCTION renrakucho_connection(OUT pid integer, OUT chain bigint); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.renrakucho_connection(OUT pid integer, OUT chain bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.renrakucho_connection(OUT pid integer, OUT chain bigint) TO renrakucho_runtime;


--
-- Name: FUNCTION renrakucho_enter(p_pid integer, p_chain bigint, p_facility uuid, p_staff uuid, p_mac bytea); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.renrakucho_enter(p_pid integer, p_chain bigint, p_facility uuid, p_staff uuid, p_mac bytea) FROM PUBLIC;
GRANT ALL ON FUNCTION public.renrakucho_enter(p_pid integer, p_chain bigint, p_facility uuid, p_staff uuid, p_mac bytea) TO renrakucho_runtime;


--
-- Name: FUNCTION session_create(p_id text, p_data bytea, p_expiry timestamp with time zone); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.session_create(p_id text, p_data bytea, p_expiry timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.session_create(p_id text, p_data bytea, p_expiry timestamp with time zone) TO renrakucho_runtime;


--
-- Name: FUNCTION session_delete(p_id text); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.session_delete(p_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.session_delete(p_id text) TO renrakucho_runtime;


--
-- Name: FUNCTION session_delete_expired(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.session_delete_expired() FROM PUBLIC;
GRANT ALL ON FUNCTION public.session_delete_expired() TO renrakucho_runtime;


--
-- Name: FUNCTION session_load(p_id text); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.session_load(p_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION public.session_load(p_id text) TO renrakucho_runtime;


--
-- Name: FUNCTION session_save(p_id text, p_data bytea, p_expiry timestamp with time zone); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.session_save(p_id text, p_data bytea, p_expiry timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION public.session_save(p_id text, p_data bytea, p_expiry timestamp with time zone) TO renrakucho_runtime;


--
-- Name: FUNCTION support_requests_announce(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.support_requests_announce() FROM PUBLIC;


--
-- Name: FUNCTION unreferenced_objects(p_patient uuid, p_names text[]); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.unreferenced_objects(p_patient uuid, p_names text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION public.unreferenced_objects(p_patient uuid, p_names text[]) TO renrakucho_key_maintenance;


--
-- Name: FUNCTION value_binding_advance(p_through uuid); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.value_binding_advance(p_through uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION public.value_binding_advance(p_through uuid) TO renrakucho_key_maintenance;


--
-- Name: FUNCTION value_binding_complete(); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.value_binding_complete() FROM PUBLIC;
GRANT ALL ON FUNCTION public.value_binding_complete() TO renrakucho_key_maintenance;


--
-- Name: FUNCTION value_binding_state(p_restart boolean); Type: ACL; Schema: public; Owner: renrakucho_owner
--

REVOKE ALL ON FUNCTION public.value_binding_state(p_restart boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION public.value_binding_state(p_restart boolean) TO renrakucho_key_maintenance;


--
-- Name: TABLE announcements; Type: ACL; Schema: private; Owner: renrakucho_owner
--

GRANT SELECT,DELETE ON TABLE private.announcements TO renrakucho_listener;


--
-- Name: TABLE platform_alerts; Type: ACL; Schema: private; Owner: renrakucho_owner
--

GRANT SELECT ON TABLE private.platform_alerts TO renrakucho_platform;


--
-- Name: COLUMN platform_alerts.acknowledged_at; Type: ACL; Schema: private; Owner: renrakucho_owner
--

GRANT UPDATE(acknowledged_at) ON TABLE private.platform_alerts TO renrakucho_platform;


--
-- Name: COLUMN platform_alerts.acknowledged_by; Type: ACL; Schema: private; Owner: renrakucho_owner
--

GRANT UPDATE(acknowledged_by) ON TABLE private.platform_alerts TO renrakucho_platform;


--
-- Name: TABLE _sqlx_migrations; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT ON TABLE public._sqlx_migrations TO renrakucho_runtime;


--
-- Name: TABLE account_notices; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.account_notices TO renrakucho_runtime;
GRANT SELECT ON TABLE public.account_notices TO renrakucho_digest;


--
-- Name: COLUMN account_notices.claimed_until; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(claimed_until) ON TABLE public.account_notices TO renrakucho_runtime;


--
-- Name: COLUMN account_notices.sent_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(sent_at) ON TABLE public.account_notices TO renrakucho_runtime;


--
-- Name: TABLE attachments; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.attachments TO renrakucho_runtime;


--
-- Name: COLUMN attachments.entry_id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(entry_id) ON TABLE public.attachments TO renrakucho_runtime;


--
-- Name: TABLE care_team_members; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.care_team_members TO renrakucho_runtime;


--
-- Name: COLUMN care_team_members.status; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(status) ON TABLE public.care_team_members TO renrakucho_runtime;


--
-- Name: COLUMN care_team_members.invited_by; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(invited_by) ON TABLE public.care_team_members TO renrakucho_runtime;


--
-- Name: COLUMN care_team_members.invited_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(invited_at) ON TABLE public.care_team_members TO renrakucho_runtime;


--
-- Name: COLUMN care_team_members.joined_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(joined_at) ON TABLE public.care_team_members TO renrakucho_runtime;


--
-- Name: COLUMN care_team_members.ended_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(ended_at) ON TABLE public.care_team_members TO renrakucho_runtime;


--
-- Name: TABLE consent_changes; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT ON TABLE public.consent_changes TO renrakucho_runtime;


--
-- Name: TABLE consents; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.consents TO renrakucho_runtime;


--
-- Name: COLUMN consents.withdrawn_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(withdrawn_at) ON TABLE public.consents TO renrakucho_runtime;


--
-- Name: COLUMN consents.withdrawn_by; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(withdrawn_by) ON TABLE public.consents TO renrakucho_runtime;


--
-- Name: COLUMN consents.withdrawn_by_facility; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(withdrawn_by_facility) ON TABLE public.consents TO renrakucho_runtime;


--
-- Name: TABLE data_keys; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.data_keys TO renrakucho_runtime;
GRANT SELECT,INSERT ON TABLE public.data_keys TO renrakucho_key_maintenance;
GRANT SELECT,INSERT ON TABLE public.data_keys TO renrakucho_platform;


--
-- Name: COLUMN data_keys.master_key_id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(master_key_id) ON TABLE public.data_keys TO renrakucho_key_maintenance;


--
-- Name: COLUMN data_keys.wrapped; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(wrapped) ON TABLE public.data_keys TO renrakucho_runtime;
GRANT UPDATE(wrapped) ON TABLE public.data_keys TO renrakucho_key_maintenance;


--
-- Name: COLUMN data_keys.rewrapped_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(rewrapped_at) ON TABLE public.data_keys TO renrakucho_key_maintenance;


--
-- Name: COLUMN data_keys.destroyed_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(destroyed_at) ON TABLE public.data_keys TO renrakucho_runtime;


--
-- Name: TABLE emergency_grants; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.emergency_grants TO renrakucho_runtime;


--
-- Name: COLUMN emergency_grants.reason_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(reason_enc) ON TABLE public.emergency_grants TO renrakucho_runtime;


--
-- Name: COLUMN emergency_grants.ended_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(ended_at) ON TABLE public.emergency_grants TO renrakucho_runtime;


--
-- Name: COLUMN emergency_grants.reviewed_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(reviewed_at) ON TABLE public.emergency_grants TO renrakucho_runtime;


--
-- Name: COLUMN emergency_grants.reviewed_by; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(reviewed_by) ON TABLE public.emergency_grants TO renrakucho_runtime;


--
-- Name: COLUMN emergency_grants.reviewed_by_facility; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(reviewed_by_facility) ON TABLE public.emergency_grants TO renrakucho_runtime;


--
-- Name: TABLE emergency_identification_failures; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT ON TABLE public.emergency_identification_failures TO renrakucho_runtime;


--
-- Name: TABLE entries; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.category; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(category) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.priority; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(priority) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.mentions; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(mentions) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.body_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(body_enc) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.vitals_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(vitals_enc) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.version; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(version) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.updated_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(updated_at) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.withdrawn_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(withdrawn_at) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.withdrawn_by; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(withdrawn_by) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: COLUMN entries.withdrawal_reason_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(withdrawal_reason_enc) ON TABLE public.entries TO renrakucho_runtime;


--
-- Name: TABLE entry_reads; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.entry_reads TO renrakucho_runtime;


--
-- Name: TABLE entry_versions; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.entry_versions TO renrakucho_runtime;


--
-- Name: TABLE external_identities; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.external_identities TO renrakucho_runtime;


--
-- Name: TABLE facilities; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT ON TABLE public.facilities TO renrakucho_runtime;
GRANT SELECT,INSERT,UPDATE ON TABLE public.facilities TO renrakucho_platform;


--
-- Name: TABLE identity_providers; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(id) ON TABLE public.identity_providers TO renrakucho_key_maintenance;


--
-- Name: COLUMN identity_providers.facility_id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(facility_id) ON TABLE public.identity_providers TO renrakucho_key_maintenance;


--
-- Name: COLUMN identity_providers.issuer; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(issuer) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.client_id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(client_id) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.client_secret_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(client_secret_enc) ON TABLE public.identity_providers TO renrakucho_runtime;
GRANT SELECT(client_secret_enc),UPDATE(client_secret_enc) ON TABLE public.identity_providers TO renrakucho_key_maintenance;


--
-- Name: COLUMN identity_providers.scopes; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(scopes) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.login_claim; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(login_claim) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.allowed_domains; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(allowed_domains) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.account_policy; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(account_policy) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.enabled; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(enabled) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.revision; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(revision) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.tested_revision; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(tested_revision) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.tested_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(tested_at) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: COLUMN identity_providers.updated_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(updated_at) ON TABLE public.identity_providers TO renrakucho_runtime;


--
-- Name: TABLE master_key_epochs; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.master_key_epochs TO renrakucho_key_maintenance;


--
-- Name: COLUMN master_key_epochs.master_key_id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(master_key_id) ON TABLE public.master_key_epochs TO renrakucho_runtime;
GRANT SELECT(master_key_id) ON TABLE public.master_key_epochs TO renrakucho_platform;


--
-- Name: COLUMN master_key_epochs.state; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(state) ON TABLE public.master_key_epochs TO renrakucho_key_maintenance;
GRANT SELECT(state) ON TABLE public.master_key_epochs TO renrakucho_runtime;
GRANT SELECT(state) ON TABLE public.master_key_epochs TO renrakucho_platform;


--
-- Name: COLUMN master_key_epochs.retiring_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(retiring_at) ON TABLE public.master_key_epochs TO renrakucho_key_maintenance;


--
-- Name: COLUMN master_key_epochs.destroyed_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(destroyed_at) ON TABLE public.master_key_epochs TO renrakucho_key_maintenance;


--
-- Name: TABLE notification_settings; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.notification_settings TO renrakucho_runtime;
GRANT SELECT ON TABLE public.notification_settings TO renrakucho_digest;


--
-- Name: TABLE operator_identities; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.operator_identities TO renrakucho_platform;


--
-- Name: TABLE operator_passkeys; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.operator_passkeys TO renrakucho_platform;


--
-- Name: COLUMN operator_passkeys.passkey; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(passkey) ON TABLE public.operator_passkeys TO renrakucho_platform;


--
-- Name: COLUMN operator_passkeys.last_used_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(last_used_at) ON TABLE public.operator_passkeys TO renrakucho_platform;


--
-- Name: TABLE patient_cards; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.patient_cards TO renrakucho_runtime;


--
-- Name: COLUMN patient_cards.lookup; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(lookup) ON TABLE public.patient_cards TO renrakucho_runtime;


--
-- Name: COLUMN patient_cards.birth_check; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(birth_check) ON TABLE public.patient_cards TO renrakucho_runtime;


--
-- Name: COLUMN patient_cards.number_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(number_enc) ON TABLE public.patient_cards TO renrakucho_runtime;


--
-- Name: COLUMN patient_cards.issued_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(issued_at) ON TABLE public.patient_cards TO renrakucho_runtime;


--
-- Name: COLUMN patient_cards.issued_by; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(issued_by) ON TABLE public.patient_cards TO renrakucho_runtime;


--
-- Name: TABLE patient_mutes; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.patient_mutes TO renrakucho_runtime;


--
-- Name: TABLE patient_name_terms; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.patient_name_terms TO renrakucho_runtime;


--
-- Name: TABLE platform_operators; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,UPDATE ON TABLE public.platform_operators TO renrakucho_platform;


--
-- Name: COLUMN platform_operators.id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(id) ON TABLE public.platform_operators TO renrakucho_key_maintenance;


--
-- Name: COLUMN platform_operators.totp_secret_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(totp_secret_enc),UPDATE(totp_secret_enc) ON TABLE public.platform_operators TO renrakucho_key_maintenance;


--
-- Name: TABLE staff_accounts; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(id) ON TABLE public.staff_accounts TO renrakucho_key_maintenance;


--
-- Name: COLUMN staff_accounts.facility_id; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT(facility_id) ON TABLE public.staff_accounts TO renrakucho_key_maintenance;


--
-- Name: COLUMN staff_accounts.display_name; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(display_name) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.role; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(role) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.profession; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(profession) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.status; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(status) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.password_hash; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(password_hash) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.password_changed_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(password_changed_at) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.updated_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(updated_at) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.may_accept_invitations; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(may_accept_invitations) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.previous_password_hashes; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(previous_password_hashes) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.password_must_change; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(password_must_change) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.password_version; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(password_version) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.totp_secret_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(totp_secret_enc) ON TABLE public.staff_accounts TO renrakucho_runtime;
GRANT SELECT(totp_secret_enc),UPDATE(totp_secret_enc) ON TABLE public.staff_accounts TO renrakucho_key_maintenance;


--
-- Name: COLUMN staff_accounts.totp_started_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(totp_started_at) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.totp_confirmed_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(totp_confirmed_at) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.totp_last_step; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(totp_last_step) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.recovery_code_hashes; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(recovery_code_hashes) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: COLUMN staff_accounts.passkey_count; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(passkey_count) ON TABLE public.staff_accounts TO renrakucho_runtime;


--
-- Name: TABLE staff_passkeys; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT,DELETE ON TABLE public.staff_passkeys TO renrakucho_runtime;


--
-- Name: COLUMN staff_passkeys.passkey; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(passkey) ON TABLE public.staff_passkeys TO renrakucho_runtime;


--
-- Name: COLUMN staff_passkeys.last_used_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(last_used_at) ON TABLE public.staff_passkeys TO renrakucho_runtime;


--
-- Name: TABLE support_request_items; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.support_request_items TO renrakucho_runtime;


--
-- Name: TABLE support_requests; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT SELECT,INSERT ON TABLE public.support_requests TO renrakucho_runtime;


--
-- Name: COLUMN support_requests.status; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(status) ON TABLE public.support_requests TO renrakucho_runtime;


--
-- Name: COLUMN support_requests.answer_enc; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(answer_enc) ON TABLE public.support_requests TO renrakucho_runtime;


--
-- Name: COLUMN support_requests.answered_by; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(answered_by) ON TABLE public.support_requests TO renrakucho_runtime;


--
-- Name: COLUMN support_requests.answered_by_name; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(answered_by_name) ON TABLE public.support_requests TO renrakucho_runtime;


--
-- Name: COLUMN support_requests.updated_at; Type: ACL; Schema: public; Owner: renrakucho_owner
--

GRANT UPDATE(updated_at) ON TABLE public.support_requests TO renrakucho_runtime;


--
-- PostgreSQL database dump complete
--
