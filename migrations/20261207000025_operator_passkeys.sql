-- Passkeys of platform operators (issue 15, ADR 0033), as staff have theirs (migration 24): in
-- the platform's scope only, where the operators' accounts are. The web role reaches none of
-- it; a facility's scope sees no operator's credential, and the platform's no facility's.
CREATE TABLE public.operator_passkeys (
    id            uuid PRIMARY KEY,
    operator_id   uuid NOT NULL REFERENCES public.platform_operators (id),
    credential_id bytea NOT NULL UNIQUE CHECK (octet_length(credential_id) BETWEEN 16 AND 1023),
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 60),
    passkey       jsonb NOT NULL CHECK (octet_length(passkey::text) <= 8192),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX operator_passkeys_operator ON public.operator_passkeys (operator_id);
ALTER TABLE public.operator_passkeys ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.operator_passkeys FORCE ROW LEVEL SECURITY;
CREATE POLICY operator_passkeys_platform ON public.operator_passkeys TO renrakucho_platform
    USING ((SELECT in_platform_scope()))
    WITH CHECK ((SELECT in_platform_scope()));
GRANT SELECT, INSERT, DELETE ON public.operator_passkeys TO renrakucho_platform;
GRANT UPDATE (passkey, last_used_at) ON public.operator_passkeys TO renrakucho_platform;

-- As on staff accounts: kept by the statements that add and remove passkeys.
ALTER TABLE public.platform_operators
    ADD COLUMN passkey_count smallint NOT NULL DEFAULT 0
        CHECK (passkey_count BETWEEN 0 AND 10);
