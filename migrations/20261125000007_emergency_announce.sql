-- Emergency (break-glass) access is announced like new entries: every server process hears of
-- it (IDs only) and tells the care team's people at once, through quiet hours (第12条, the
-- guideline's break-glass notification).
CREATE FUNCTION emergency_grants_announce() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        PERFORM pg_notify('renrakucho_events', json_build_object(
            'kind', 'emergency', 'patient', NEW.patient_id, 'facility', NEW.facility_id)::text);
        RETURN NULL;
    END
    $$;
CREATE TRIGGER emergency_grants_announce AFTER INSERT ON emergency_grants
    FOR EACH ROW EXECUTE FUNCTION emergency_grants_announce();
