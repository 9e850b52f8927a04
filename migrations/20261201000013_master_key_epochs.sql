-- Master key epochs (docs/adr/0015-erasure-reaches-the-disk.md): erasure reaches the WAL, dead
-- tuples and backups by destroying the master key a copy of an erased patient's data key is
-- wrapped under.
--
-- Every local master key is an epoch. The server starts a new epoch after each erasure and on a
-- schedule, re-wraps every live data key under it, and destroys the older epochs' key material.
-- This table says which epochs exist and how far each has gone: active (data keys may be wrapped
-- under it), retiring (no new wrap under it commits; it is destroyed once no live data key needs
-- it), destroyed. `erasures_covered` is the number of completed deletion requests committed
-- before the epoch's key was generated: an erasure counted there never had its data key wrapped
-- under this epoch, so a later count means a new epoch is due.

CREATE TABLE master_key_epochs (
    master_key_id    text PRIMARY KEY CHECK (char_length(master_key_id) BETWEEN 1 AND 2048),
    state            text NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'retiring', 'destroyed')),
    erasures_covered bigint NOT NULL CHECK (erasures_covered >= 0),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    retiring_at      timestamptz,
    destroyed_at     timestamptz,
    CHECK ((state = 'active') = (retiring_at IS NULL)),
    CHECK ((state = 'destroyed') = (destroyed_at IS NOT NULL))
);
ALTER TABLE master_key_epochs ENABLE ROW LEVEL SECURITY;
ALTER TABLE master_key_epochs FORCE ROW LEVEL SECURITY;

-- Key maintenance keeps the epochs; a facility's transaction only reads which ones are open
-- (through the trigger below, when it wraps a new data key). IDs and states only: no key
-- material, nothing about a tenant.
CREATE POLICY master_key_epochs_maintenance ON master_key_epochs TO renrakucho_key_maintenance
    USING ((SELECT in_key_maintenance()))
    WITH CHECK ((SELECT in_key_maintenance()));
CREATE POLICY master_key_epochs_read ON master_key_epochs FOR SELECT TO renrakucho_runtime
    USING ((SELECT current_facility_id()) IS NOT NULL);
GRANT SELECT, INSERT ON master_key_epochs TO renrakucho_key_maintenance;
GRANT UPDATE (state, retiring_at, destroyed_at) ON master_key_epochs TO renrakucho_key_maintenance;
GRANT SELECT (master_key_id, state) ON master_key_epochs TO renrakucho_runtime;

-- An epoch only moves forward (active, retiring, destroyed), and its identity never changes.
CREATE FUNCTION public.master_key_epochs_forward() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
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
CREATE TRIGGER master_key_epochs_forward BEFORE UPDATE ON master_key_epochs
    FOR EACH ROW EXECUTE FUNCTION public.master_key_epochs_forward();

-- A data key is wrapped (created, or re-wrapped) only under an epoch still open. The shared
-- advisory lock, held to the end of the wrapping transaction, is what the rotation's exclusive
-- one waits for before it marks the epoch retiring: a wrap under the old epoch either commits
-- before that (and the rotation re-wraps it) or is refused after it, so no live data key is ever
-- left under a destroyed master key. Master keys without an epoch (AWS KMS keys, keys given in
-- the environment) are not managed here.
CREATE FUNCTION public.data_keys_epoch_open() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
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
CREATE TRIGGER data_keys_epoch_open BEFORE INSERT OR UPDATE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION public.data_keys_epoch_open();

-- Key maintenance counts completed deletion requests (to know whether an erasure happened since
-- the current epoch began): the completion time only, no IDs.
GRANT SELECT (completed_at) ON deletion_requests TO renrakucho_key_maintenance;
CREATE POLICY deletion_requests_epochs ON deletion_requests FOR SELECT
    TO renrakucho_key_maintenance
    USING ((SELECT in_key_maintenance()));
