-- Alerts for the platform operators (issue 11): things a facility's request noticed that the
-- operators must hear of — a stored value that no longer decrypts, repeated failed emergency
-- identifications. An alert carries IDs, table and column names and counts, never patient
-- content: operators never see patient data (第4条, ADR 0013).
--
-- The web role raises an alert only through raise_platform_alert(), in its verified tenant
-- context (the alert names that facility), and cannot read any alert; the platform role reads
-- and acknowledges them. The same (kind, facility, key) is stored once and counted after that,
-- so one broken value read by every page view is one alert.

CREATE TABLE private.platform_alerts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z_.]{0,63}$'),
    -- The facility whose request raised it (not its owner: no facility reads alerts).
    raised_by_facility uuid REFERENCES public.facilities (id) ON DELETE CASCADE,
    dedupe_key       text NOT NULL CHECK (length(dedupe_key) BETWEEN 1 AND 200),
    details          jsonb NOT NULL DEFAULT '{}'::jsonb
                         CHECK (jsonb_typeof(details) = 'object' AND length(details::text) <= 2000),
    raised_at        timestamptz NOT NULL DEFAULT now(),
    last_raised_at   timestamptz NOT NULL DEFAULT now(),
    occurrences      integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    acknowledged_at  timestamptz,
    acknowledged_by  uuid REFERENCES public.platform_operators (id) ON DELETE SET NULL,
    UNIQUE NULLS NOT DISTINCT (kind, raised_by_facility, dedupe_key)
);
CREATE INDEX platform_alerts_facility ON private.platform_alerts (raised_by_facility, last_raised_at DESC);
CREATE INDEX platform_alerts_open ON private.platform_alerts (last_raised_at DESC)
    WHERE acknowledged_at IS NULL;
ALTER TABLE private.platform_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE private.platform_alerts FORCE ROW LEVEL SECURITY;

-- The platform reads every alert and acknowledges them.
GRANT USAGE ON SCHEMA private TO renrakucho_platform;
GRANT SELECT ON private.platform_alerts TO renrakucho_platform;
GRANT UPDATE (acknowledged_at, acknowledged_by) ON private.platform_alerts TO renrakucho_platform;
CREATE POLICY platform_alerts_platform ON private.platform_alerts TO renrakucho_platform
    USING ((SELECT public.in_platform_scope())) WITH CHECK ((SELECT public.in_platform_scope()));
-- The owner writes them, inside raise_platform_alert() only.
CREATE POLICY platform_alerts_raise ON private.platform_alerts TO CURRENT_USER
    USING ((SELECT public.owner_flag('alerting')))
    WITH CHECK ((SELECT public.owner_flag('alerting')));

-- The owner-only flags, with 'alerting' added (the list of migration 8 and this one).
CREATE OR REPLACE FUNCTION private.definer_flags(p_on text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        flag text;
    BEGIN
        FOREACH flag IN ARRAY ARRAY['access_maintenance', 'erasure_patient', 'reencrypt_patient',
                                    'directory', 'session_store', 'announcing', 'alerting'] LOOP
            PERFORM set_config('renrakucho.' || flag, CASE WHEN flag = p_on THEN 'on' ELSE '' END, true);
        END LOOP;
    END
    $$;
REVOKE ALL ON FUNCTION private.definer_flags(text) FROM PUBLIC;

-- Raises (or counts again) an alert for the transaction's own facility. True when it is new.
CREATE FUNCTION public.raise_platform_alert(p_kind text, p_dedupe_key text, p_details jsonb)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
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
REVOKE ALL ON FUNCTION public.raise_platform_alert(text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.raise_platform_alert(text, text, jsonb) TO renrakucho_runtime;
