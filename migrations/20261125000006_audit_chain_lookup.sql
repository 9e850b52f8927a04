-- Appending to the audit log found the previous record of the chain with a scan of the whole
-- log (row-level security keeps the planner from using the expression index for it): every
-- audited act grew slower as the log grew. Each chain's last record is now found through a
-- plain index on (facility_id, seq), or a partial one for the platform's chain: one index probe,
-- whatever the log's size. The hash and the chain are unchanged.

CREATE INDEX audit_log_facility_seq ON audit_log (facility_id, seq) WHERE facility_id IS NOT NULL;
CREATE INDEX audit_log_platform_seq ON audit_log (seq) WHERE facility_id IS NULL;

CREATE OR REPLACE FUNCTION audit_log_link() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        last_seq  bigint;
        last_hash bytea;
    BEGIN
        PERFORM pg_advisory_xact_lock(
            hashtextextended('renrakucho.audit.' || coalesce(NEW.facility_id::text, 'platform'), 0));
        IF NEW.facility_id IS NULL THEN
            SELECT a.seq, a.hash INTO last_seq, last_hash
              FROM audit_log a
             WHERE a.facility_id IS NULL
             ORDER BY a.seq DESC
             LIMIT 1;
        ELSE
            SELECT a.seq, a.hash INTO last_seq, last_hash
              FROM audit_log a
             WHERE a.facility_id = NEW.facility_id
             ORDER BY a.seq DESC
             LIMIT 1;
        END IF;
        NEW.seq := coalesce(last_seq, 0) + 1;
        NEW.prev_hash := coalesce(last_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
        NEW.occurred_at := statement_timestamp();
        NEW.hash := audit_record_hash(NEW);
        RETURN NEW;
    END
    $$;
