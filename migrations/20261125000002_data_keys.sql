-- Envelope encryption (docs/adr/0006-envelope-encryption.md): data keys (DEKs), stored only
-- wrapped by a master key that the database never sees.
--
-- One row per key version of an owner: a patient (per-patient keys make erasure possible by
-- destroying the key), a facility (its private data that is not about a patient), or the
-- network's blind-index key (for searching names without storing them). Destroying a key
-- (crypto-shredding) clears `wrapped` and keeps the row as a tombstone, so versions are never
-- reused and a later read says "destroyed", not "unknown".

-- Key maintenance: re-wrapping every data key under a new master key. It sees wrapped keys
-- only (useless without the master key) and no tenant data at all.
CREATE FUNCTION in_key_maintenance() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('renrakucho.key_maintenance', true), '') = 'on' $$;

CREATE TABLE data_keys (
    owner_kind    text NOT NULL CHECK (owner_kind IN ('patient', 'facility', 'blind_index')),
    owner_id      uuid NOT NULL,
    version       integer NOT NULL CHECK (version >= 1),
    -- The facility whose scope holds the key: the registering facility for a patient, the
    -- facility itself for its own key, none for the network's blind-index key.
    facility_id   uuid REFERENCES facilities (id),
    master_key_id text NOT NULL CHECK (char_length(master_key_id) BETWEEN 1 AND 2048),
    wrapped       bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rewrapped_at  timestamptz,
    destroyed_at  timestamptz,
    PRIMARY KEY (owner_kind, owner_id, version),
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL)),
    CHECK ((owner_kind = 'blind_index') = (facility_id IS NULL)),
    CHECK (owner_kind <> 'facility' OR owner_id = facility_id)
);
CREATE INDEX data_keys_facility ON data_keys (facility_id);
CREATE INDEX data_keys_master ON data_keys (master_key_id) WHERE wrapped IS NOT NULL;
ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY data_keys_facility ON data_keys
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
-- Every facility reads the network's blind-index key (to search); none can change it.
CREATE POLICY data_keys_network_read ON data_keys FOR SELECT
    USING (owner_kind = 'blind_index' AND (SELECT current_facility_id()) IS NOT NULL);
CREATE POLICY data_keys_maintenance ON data_keys
    USING ((SELECT in_key_maintenance()))
    WITH CHECK ((SELECT in_key_maintenance()));
-- No DELETE: destroying a key is an UPDATE that clears it (see data_keys_guard).
GRANT SELECT, INSERT, UPDATE ON data_keys TO renrakucho_runtime;

-- A key's identity never changes, and a destroyed key never comes back.
CREATE FUNCTION data_keys_guard() RETURNS trigger
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
        RETURN NEW;
    END
    $$;
CREATE TRIGGER data_keys_guard BEFORE UPDATE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION data_keys_guard();

-- Key maintenance writes its audit records into the platform's chain.
ALTER POLICY audit_log_scoped ON audit_log
    USING (facility_id = (SELECT current_facility_id())
           OR (facility_id IS NULL
               AND ((SELECT in_platform_scope()) OR (SELECT in_key_maintenance()))))
    WITH CHECK (facility_id = (SELECT current_facility_id())
                OR (facility_id IS NULL
                    AND ((SELECT in_platform_scope()) OR (SELECT in_key_maintenance()))));
