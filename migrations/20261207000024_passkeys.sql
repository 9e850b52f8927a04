-- Passkeys (WebAuthn) of staff accounts (issue 15, ADR 0033): several per account, each used as
-- the sign-in's second factor after the password, or alone (passwordless: the authenticator
-- verifies the person with a PIN or biometrics, two factors in one).
--
-- `passkey` is the credential as webauthn-rs keeps it (JSON): its ID, public key, signature
-- counter and backup flags. Nothing in it is secret (the private key never leaves the person's
-- authenticator); it is not patient data. `credential_id` repeats the ID for lookups: a
-- passwordless sign-in names the credential, which is looked for in the facility the person
-- named (one facility's credentials are invisible to another's sign-in), and the same
-- credential is registered at most once per facility.
CREATE TABLE public.staff_passkeys (
    id            uuid PRIMARY KEY,
    facility_id   uuid NOT NULL REFERENCES public.facilities (id),
    staff_id      uuid NOT NULL,
    credential_id bytea NOT NULL CHECK (octet_length(credential_id) BETWEEN 16 AND 1023),
    -- The person's own name for it ("仕事用のスマホ"), to tell several apart.
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 60),
    passkey       jsonb NOT NULL CHECK (octet_length(passkey::text) <= 8192),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    UNIQUE (facility_id, credential_id),
    FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts (facility_id, id)
);
CREATE INDEX staff_passkeys_staff ON public.staff_passkeys (facility_id, staff_id);
ALTER TABLE public.staff_passkeys ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.staff_passkeys FORCE ROW LEVEL SECURITY;
CREATE POLICY staff_passkeys_own ON public.staff_passkeys TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
GRANT SELECT, INSERT, DELETE ON public.staff_passkeys TO renrakucho_runtime;
-- A sign-in moves the counter on (and notes when the passkey was last used).
GRANT UPDATE (passkey, last_used_at) ON public.staff_passkeys TO renrakucho_runtime;

-- How many passkeys the account has, kept by the statements that add and remove them (in the
-- same transaction): sign-in asks for a second factor when the account has an authenticator
-- app or at least one passkey, and every query of the account reads this without the
-- passkeys' table.
ALTER TABLE public.staff_accounts
    ADD COLUMN passkey_count smallint NOT NULL DEFAULT 0
        CHECK (passkey_count BETWEEN 0 AND 10);
GRANT UPDATE (passkey_count) ON public.staff_accounts TO renrakucho_runtime;

-- The person hears of a passkey added or removed like of an authenticator app.
ALTER TABLE public.account_notices
    DROP CONSTRAINT account_notices_event_check,
    ADD CONSTRAINT account_notices_event_check
        CHECK (event IN ('second_factor_added', 'second_factor_removed', 'second_factor_reset',
                         'recovery_codes_replaced', 'passkey_added', 'passkey_removed'));
