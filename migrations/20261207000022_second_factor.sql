-- A second factor for staff sign-in (issue 15, ADR 0031): a TOTP authenticator (RFC 6238) and
-- single-use recovery codes.
--
-- `totp_secret_enc` is the authenticator's shared secret, encrypted with the facility's data
-- key (associated data: staff_accounts, totp_secret_enc, the account's ID, version 0). It is set
-- when enrolment begins (`totp_started_at`; an enrolment not confirmed within ten minutes is
-- void) and counts only once `totp_confirmed_at` is set (the person typed a code from it).
-- `totp_last_step` is the newest 30-second step whose code was accepted: a code is accepted only
-- for a later step, so a code seen over someone's shoulder cannot be used again.
-- `recovery_code_hashes` are the SHA-256 hashes (hex) of the unused recovery codes, each
-- removed when used. The codes carry 79 random bits each, so a fast hash is enough (no dump
-- can be searched for them); they are shown once and never stored in the clear. Adding or
-- removing a factor moves `password_version` on (migration 21), which ends every other session
-- of the person: a session signed in with the password alone before an authenticator was set
-- up does not outlive it.
ALTER TABLE public.staff_accounts
    ADD COLUMN totp_secret_enc bytea CHECK (octet_length(totp_secret_enc) BETWEEN 50 AND 200),
    ADD COLUMN totp_started_at timestamptz,
    ADD COLUMN totp_confirmed_at timestamptz,
    ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0 CHECK (totp_last_step >= 0),
    ADD COLUMN recovery_code_hashes text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(recovery_code_hashes) <= 10),
    ADD CONSTRAINT staff_accounts_totp_confirmed_has_secret
        CHECK (totp_confirmed_at IS NULL OR totp_secret_enc IS NOT NULL);

-- The web role enrols, uses and removes second factors of its own facility's staff (row-level
-- security as for every column of the table).
GRANT UPDATE (totp_secret_enc, totp_started_at, totp_confirmed_at, totp_last_step,
              recovery_code_hashes)
    ON public.staff_accounts
    TO renrakucho_runtime;

-- Re-encryption under the facility's newest data key (`renrakucho keys reencrypt
-- facility:<id>`) reads and replaces the secrets, and nothing else of the accounts.
GRANT SELECT (id, facility_id, totp_secret_enc), UPDATE (totp_secret_enc)
    ON public.staff_accounts
    TO renrakucho_key_maintenance;
CREATE POLICY staff_accounts_maintenance ON public.staff_accounts TO renrakucho_key_maintenance
    USING ((SELECT in_key_maintenance()))
    WITH CHECK ((SELECT in_key_maintenance()));

-- The person is told by e-mail when a factor of theirs is added, removed or reset, or their
-- recovery codes replaced (issue 15): a notice is written in the transaction of the change and
-- sent afterwards by every server process's notice job, at least once, to the address of their
-- notification settings (none: nothing is sent). It names the kind of change and when, never
-- a secret and never patient data. The job lists due notices as the digest role (which reads
-- the addresses) and claims and records each in the facility's own scope, as the digest does.
CREATE TABLE public.account_notices (
    id            uuid PRIMARY KEY,
    facility_id   uuid NOT NULL REFERENCES public.facilities (id),
    staff_id      uuid NOT NULL,
    event         text NOT NULL CHECK (event IN ('second_factor_added', 'second_factor_removed',
                      'second_factor_reset', 'recovery_codes_replaced')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    sent_at       timestamptz,
    FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts (facility_id, id)
);
CREATE INDEX account_notices_unsent ON public.account_notices (created_at)
    WHERE sent_at IS NULL;
CREATE INDEX account_notices_facility ON public.account_notices (facility_id, staff_id);
ALTER TABLE public.account_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.account_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY account_notices_own ON public.account_notices TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
CREATE POLICY account_notices_digest ON public.account_notices FOR SELECT TO renrakucho_digest
    USING ((SELECT in_digest_scope()));
GRANT SELECT, INSERT ON public.account_notices TO renrakucho_runtime;
GRANT UPDATE (claimed_until, sent_at) ON public.account_notices TO renrakucho_runtime;
GRANT SELECT ON public.account_notices TO renrakucho_digest;

-- Platform operators' second factor, the same as staff's, with the secret encrypted under the
-- platform's own data key (owner kind `platform`, one for the network, no facility): operators
-- are nobody's tenant, and their secrets are readable only in the platform's scope.
ALTER TABLE public.data_keys
    DROP CONSTRAINT data_keys_owner_kind_check,
    ADD CONSTRAINT data_keys_owner_kind_check
        CHECK (owner_kind IN ('patient', 'facility', 'blind_index', 'platform')),
    DROP CONSTRAINT data_keys_check1,
    ADD CONSTRAINT data_keys_check1
        CHECK ((owner_kind IN ('blind_index', 'platform')) = (facility_id IS NULL));
GRANT SELECT, INSERT ON public.data_keys TO renrakucho_platform;
CREATE POLICY data_keys_platform ON public.data_keys TO renrakucho_platform
    USING (owner_kind = 'platform' AND (SELECT in_platform_scope()))
    WITH CHECK (owner_kind = 'platform' AND (SELECT in_platform_scope()) AND wrapped IS NOT NULL);
-- A new key is wrapped only under a master key that is not being retired (the epoch trigger
-- asks, as the inserting role).
GRANT SELECT (master_key_id, state) ON public.master_key_epochs TO renrakucho_platform;
CREATE POLICY master_key_epochs_platform ON public.master_key_epochs FOR SELECT
    TO renrakucho_platform
    USING ((SELECT in_platform_scope()));

ALTER TABLE public.platform_operators
    ADD COLUMN totp_secret_enc bytea CHECK (octet_length(totp_secret_enc) BETWEEN 50 AND 200),
    ADD COLUMN totp_started_at timestamptz,
    ADD COLUMN totp_confirmed_at timestamptz,
    ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0 CHECK (totp_last_step >= 0),
    ADD COLUMN recovery_code_hashes text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(recovery_code_hashes) <= 10),
    ADD CONSTRAINT platform_operators_totp_confirmed_has_secret
        CHECK (totp_confirmed_at IS NULL OR totp_secret_enc IS NOT NULL);
-- Re-encryption under the platform's newest key reads and replaces the secrets only.
GRANT SELECT (id, totp_secret_enc), UPDATE (totp_secret_enc)
    ON public.platform_operators
    TO renrakucho_key_maintenance;
CREATE POLICY platform_operators_maintenance ON public.platform_operators
    TO renrakucho_key_maintenance
    USING ((SELECT in_key_maintenance()))
    WITH CHECK ((SELECT in_key_maintenance()));
