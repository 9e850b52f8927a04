-- Foundation: facilities (tenants), staff accounts, platform operators, sessions, audit log.
--
-- Isolation model (docs/architecture.md): every facility-owned table has ROW LEVEL SECURITY
-- enabled and FORCED, and its policies read the tenant context that the server sets per
-- transaction with set_config(..., true). With no context, a query sees nothing.
--
-- Privileges are granted to the NOLOGIN group role renrakucho_runtime; the server's login role
-- (renrakucho_app by default) is a member of it, owns nothing and cannot bypass RLS.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'renrakucho_runtime') THEN
        CREATE ROLE renrakucho_runtime NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO renrakucho_runtime;
-- /readyz compares the applied migrations with the ones built into the binary.
GRANT SELECT ON _sqlx_migrations TO renrakucho_runtime;

-- The tenant context. '' (what current_setting returns once a transaction-local setting has
-- been used on the connection) and NULL both mean "no tenant"; a malformed value fails the
-- query instead of widening it.
CREATE FUNCTION current_facility_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('renrakucho.facility_id', true), '')::uuid $$;

-- Platform scope: operator work on tenants (approve, suspend). It never opens patient data.
CREATE FUNCTION in_platform_scope() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renrakucho.platform', true), '') = 'on' $$;

-- Facilities (利用施設): the tenants. A facility sees its own row; the platform sees all.
CREATE TABLE facilities (
    id          uuid PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{2,15}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    kind        text NOT NULL CHECK (kind IN ('hospital', 'clinic', 'dental_clinic', 'pharmacy',
                    'visiting_nurse_station', 'care_management_office', 'home_care_provider',
                    'municipality', 'other')),
    status      text NOT NULL CHECK (status IN ('applied', 'active', 'suspended',
                    'deregistration_requested', 'deregistered')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE facilities ENABLE ROW LEVEL SECURITY;
ALTER TABLE facilities FORCE ROW LEVEL SECURITY;
CREATE POLICY facilities_own ON facilities
    USING (id = (SELECT current_facility_id()))
    WITH CHECK (id = (SELECT current_facility_id()));
CREATE POLICY facilities_platform ON facilities
    USING ((SELECT in_platform_scope()))
    WITH CHECK ((SELECT in_platform_scope()));
-- No DELETE: a facility that leaves is marked deregistered; its audit trail stays.
GRANT SELECT, INSERT, UPDATE ON facilities TO renrakucho_runtime;

-- Staff accounts (利用者), one per person (第19条), in exactly one facility.
-- Login IDs are unique per facility only: a global unique constraint would tell facility A
-- that facility B already uses a login ID.
CREATE TABLE staff_accounts (
    id                  uuid PRIMARY KEY,
    facility_id         uuid NOT NULL REFERENCES facilities (id),
    login_id            text NOT NULL CHECK (login_id ~ '^[a-z0-9._-]{3,32}$'),
    display_name        text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    role                text NOT NULL CHECK (role IN ('facility_admin', 'staff')),
    profession          text NOT NULL CHECK (profession IN ('doctor', 'dentist', 'nurse',
                            'pharmacist', 'care_manager', 'care_worker', 'therapist', 'clerk',
                            'other')),
    status              text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'suspended', 'disabled')),
    password_hash       text NOT NULL,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (facility_id, login_id),
    -- Target of composite foreign keys: a row of facility A can only reference staff of A,
    -- so a foreign-key check never confirms that an ID exists in facility B.
    UNIQUE (facility_id, id)
);
ALTER TABLE staff_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE staff_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY staff_accounts_own ON staff_accounts
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
-- No DELETE: accounts are disabled, never removed, so the audit trail keeps its actors.
GRANT SELECT, INSERT, UPDATE ON staff_accounts TO renrakucho_runtime;

-- Platform operators (運用者 / 契約事業者). Not a tenant's data: visible in platform scope only.
CREATE TABLE platform_operators (
    id                  uuid PRIMARY KEY,
    login_id            text NOT NULL UNIQUE CHECK (login_id ~ '^[a-z0-9._-]{3,32}$'),
    display_name        text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    status              text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'suspended', 'disabled')),
    password_hash       text NOT NULL,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE platform_operators ENABLE ROW LEVEL SECURITY;
ALTER TABLE platform_operators FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_operators_platform ON platform_operators
    USING ((SELECT in_platform_scope()))
    WITH CHECK ((SELECT in_platform_scope()));
GRANT SELECT, INSERT, UPDATE ON platform_operators TO renrakucho_runtime;

-- Audit log: append-only for the runtime role (SELECT and INSERT only), one hash chain per
-- facility and one for the platform (facility_id NULL). Each record's hash covers its content
-- and the previous record's hash; `renrakucho audit verify` recomputes every chain.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    facility_id uuid REFERENCES facilities (id),
    seq         bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_kind  text NOT NULL CHECK (actor_kind IN ('staff', 'operator', 'system', 'anonymous')),
    actor_id    uuid,
    action      text NOT NULL CHECK (action ~ '^[a-z_.]{3,64}$'),
    outcome     text NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    target_kind text,
    target_id   uuid,
    client_addr inet,
    request_id  text CHECK (char_length(request_id) <= 100),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL
);
CREATE UNIQUE INDEX audit_log_chain_seq ON audit_log
    ((coalesce(facility_id, '00000000-0000-0000-0000-000000000000'::uuid)), seq);
CREATE INDEX audit_log_facility ON audit_log (facility_id, occurred_at);
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_scoped ON audit_log
    USING (facility_id = (SELECT current_facility_id())
           OR (facility_id IS NULL AND (SELECT in_platform_scope())))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR (facility_id IS NULL AND (SELECT in_platform_scope())));
GRANT SELECT, INSERT ON audit_log TO renrakucho_runtime;

-- The canonical content of an audit record, hashed. jsonb text output is deterministic and
-- unambiguous, and the timestamp is rendered in UTC whatever the session's TimeZone.
CREATE FUNCTION audit_record_hash(r audit_log) RETURNS bytea
    LANGUAGE sql STABLE
    AS $$
        SELECT sha256(r.prev_hash || convert_to(jsonb_build_array(
            r.seq, r.facility_id,
            to_char(r.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            r.actor_kind, r.actor_id, r.action, r.outcome, r.target_kind, r.target_id,
            host(r.client_addr), r.request_id, r.details)::text, 'UTF8'))
    $$;

-- Links each new record to the last one of its chain. The advisory lock serialises writers of
-- one chain (different facilities do not wait for each other); the SELECT runs under the
-- caller's RLS, which shows exactly the chain the caller may append to.
CREATE FUNCTION audit_log_link() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        last_seq  bigint;
        last_hash bytea;
    BEGIN
        PERFORM pg_advisory_xact_lock(
            hashtextextended('renrakucho.audit.' || coalesce(NEW.facility_id::text, 'platform'), 0));
        SELECT a.seq, a.hash INTO last_seq, last_hash
          FROM audit_log a
         WHERE coalesce(a.facility_id, '00000000-0000-0000-0000-000000000000'::uuid)
             = coalesce(NEW.facility_id, '00000000-0000-0000-0000-000000000000'::uuid)
         ORDER BY a.seq DESC
         LIMIT 1;
        NEW.seq := coalesce(last_seq, 0) + 1;
        NEW.prev_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
        NEW.occurred_at := statement_timestamp();
        NEW.hash := audit_record_hash(NEW);
        RETURN NEW;
    END
    $$;
CREATE TRIGGER audit_log_link BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_link();

-- Sign-in names a facility by its public code before any tenant context exists. This narrow
-- SECURITY DEFINER function answers only "which facility has this code, and may its staff sign
-- in", and is on the catalog test's allow-list with a pinned search_path. RLS is forced on the
-- owner too, so the function enters platform scope for the one query and restores the
-- caller's setting before it returns.
CREATE FUNCTION facility_for_sign_in(p_code text)
    RETURNS TABLE (facility_id uuid, status text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
    DECLARE
        previous text := coalesce(current_setting('renrakucho.platform', true), '');
    BEGIN
        PERFORM set_config('renrakucho.platform', 'on', true);
        RETURN QUERY SELECT f.id, f.status FROM public.facilities f WHERE f.code = upper(p_code);
        PERFORM set_config('renrakucho.platform', previous, true);
    END
    $$;
REVOKE ALL ON FUNCTION facility_for_sign_in(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION facility_for_sign_in(text) TO renrakucho_runtime;

-- Server-side sessions (tower-sessions' PostgreSQL store). Opaque records keyed by a random
-- ID; they hold who is signed in, never patient data. Expired rows are deleted by the server.
CREATE SCHEMA tower_sessions;
CREATE TABLE tower_sessions.session (
    id          text PRIMARY KEY NOT NULL,
    data        bytea NOT NULL,
    expiry_date timestamptz NOT NULL
);
CREATE INDEX session_expiry ON tower_sessions.session (expiry_date);
GRANT USAGE ON SCHEMA tower_sessions TO renrakucho_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON tower_sessions.session TO renrakucho_runtime;
