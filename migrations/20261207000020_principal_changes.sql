-- Who is signed in, remembered by each server process (issue 14, ADR 0025): a request no longer
-- reads its session record and the person's account and facility from the database each time.
-- Every process forgets what it remembers about a person, a facility or a session as soon as the
-- database announces a change to it, on a channel of its own. An announcement names IDs only
-- (as every announcement, through a row of private.announcements): a session by the SHA-256 the
-- table already keys it by, never by its cookie value.
ALTER TABLE private.announcements DROP CONSTRAINT announcements_channel_check;
ALTER TABLE private.announcements ADD CONSTRAINT announcements_channel_check
    CHECK (channel IN ('renrakucho_events', 'renrakucho_access_changes', 'renrakucho_key_changes',
                       'renrakucho_principal_changes'));

-- A staff account, a facility or an operator account changed or went away: announced after each
-- row (status, the right to accept invitations; the rest never changes, but any change is
-- announced, so a new column cannot be forgotten here).
CREATE FUNCTION private.principal_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
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
REVOKE ALL ON FUNCTION private.principal_changed() FROM PUBLIC;

CREATE TRIGGER staff_accounts_announce AFTER UPDATE OR DELETE ON public.staff_accounts
    FOR EACH ROW EXECUTE FUNCTION private.principal_changed();
CREATE TRIGGER facilities_announce AFTER UPDATE OR DELETE ON public.facilities
    FOR EACH ROW EXECUTE FUNCTION private.principal_changed();
CREATE TRIGGER platform_operators_announce AFTER UPDATE OR DELETE ON public.platform_operators
    FOR EACH ROW EXECUTE FUNCTION private.principal_changed();

-- A session ended (signed out, cycled at sign-in, expired and removed) or its record moved
-- under another ID: announced by the SHA-256 it was stored under. Renewals (session_save of the
-- same ID) are not announced: a process that remembers an older record of the same sign-in asks
-- the database before it calls the session idle. Only the owner's functions and the superuser
-- write this table, so the trigger needs no privilege of its own.
CREATE FUNCTION private.sessions_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM private.announce('renrakucho_principal_changes',
            jsonb_build_object('session', encode(OLD.id_hash, 'hex')));
        RETURN NULL;
    END
    $$;
REVOKE ALL ON FUNCTION private.sessions_changed() FROM PUBLIC;

CREATE TRIGGER sessions_announce AFTER DELETE OR UPDATE OF id_hash ON private.sessions
    FOR EACH ROW EXECUTE FUNCTION private.sessions_changed();
