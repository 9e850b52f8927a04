-- Sign-in through a facility's own OpenID Connect provider (issue 15, ADR 0032).
--
-- `identity_providers`: at most one provider per facility, configured by its facility admin.
-- The client secret is encrypted with the facility's data key (associated data:
-- identity_providers, client_secret_enc, the row's ID, version 0); every other field is
-- configuration, not patient data. A provider is used for sign-in only once `enabled`, and it
-- can be enabled only after a test sign-in through it succeeded under the configuration as it
-- is now (`tested_revision` = `revision`): a mistyped issuer or secret never locks the
-- facility's staff out.
CREATE TABLE public.identity_providers (
    id               uuid PRIMARY KEY,
    facility_id      uuid NOT NULL UNIQUE REFERENCES public.facilities (id),
    issuer           text NOT NULL CHECK (char_length(issuer) BETWEEN 8 AND 500),
    client_id        text NOT NULL CHECK (char_length(client_id) BETWEEN 1 AND 200),
    client_secret_enc bytea NOT NULL CHECK (octet_length(client_secret_enc) BETWEEN 30 AND 1200),
    scopes           text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 10),
    -- Which claim of the ID token proposes a login ID for a just-in-time account and is shown
    -- to the admin; accounts are linked by (issuer, subject) only.
    login_claim      text NOT NULL CHECK (login_claim IN ('email', 'preferred_username')),
    -- With `email`: the domains an address must be in (verified by the provider); empty: any.
    allowed_domains  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(allowed_domains) <= 20),
    -- `pre_linked`: only accounts the admin linked sign in. `just_in_time`: an unknown subject
    -- gets an account that waits (status `pending`) for the admin's approval.
    account_policy   text NOT NULL CHECK (account_policy IN ('pre_linked', 'just_in_time')),
    enabled          boolean NOT NULL DEFAULT false,
    revision         integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    tested_revision  integer,
    tested_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT enabled OR tested_revision = revision),
    UNIQUE (facility_id, id)
);
ALTER TABLE public.identity_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.identity_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY identity_providers_own ON public.identity_providers TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
GRANT SELECT, INSERT, DELETE ON public.identity_providers TO renrakucho_runtime;
GRANT UPDATE (issuer, client_id, client_secret_enc, scopes, login_claim, allowed_domains,
              account_policy, enabled, revision, tested_revision, tested_at, updated_at)
    ON public.identity_providers TO renrakucho_runtime;
-- Re-encryption under the facility's newest data key replaces the secret, nothing else.
GRANT SELECT (id, facility_id, client_secret_enc), UPDATE (client_secret_enc)
    ON public.identity_providers TO renrakucho_key_maintenance;
CREATE POLICY identity_providers_maintenance ON public.identity_providers
    TO renrakucho_key_maintenance
    USING ((SELECT in_key_maintenance()))
    WITH CHECK ((SELECT in_key_maintenance()));

-- Which account a provider's subject signs in as, per facility: linked by (issuer, subject),
-- never by e-mail. The same subject of a provider serving several facilities (a hospital group)
-- has one link in each, each made there; a link in facility A never lets anyone into B.
CREATE TABLE public.external_identities (
    id          uuid PRIMARY KEY,
    facility_id uuid NOT NULL REFERENCES public.facilities (id),
    staff_id    uuid NOT NULL,
    issuer      text NOT NULL CHECK (char_length(issuer) BETWEEN 8 AND 500),
    subject     text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 255),
    -- `admin`: linked by the facility admin; `just_in_time`: made at a first sign-in.
    linked_by   text NOT NULL CHECK (linked_by IN ('admin', 'just_in_time')),
    -- What the provider said of the person when a just-in-time account was made, for the
    -- admin who approves it (the address as given, and whether the provider verified it).
    email       text CHECK (char_length(email) <= 320),
    email_verified boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (facility_id, issuer, subject),
    UNIQUE (facility_id, staff_id, issuer),
    FOREIGN KEY (facility_id, staff_id) REFERENCES public.staff_accounts (facility_id, id)
);
ALTER TABLE public.external_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.external_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY external_identities_own ON public.external_identities TO renrakucho_runtime
    USING (facility_id = (SELECT current_facility_id()))
    WITH CHECK (facility_id = (SELECT current_facility_id()));
GRANT SELECT, INSERT, DELETE ON public.external_identities TO renrakucho_runtime;

-- A just-in-time account waits for the facility admin's approval: `pending` may not sign in and
-- sees nothing until the admin makes it `active`.
ALTER TABLE public.staff_accounts
    DROP CONSTRAINT staff_accounts_status_check,
    ADD CONSTRAINT staff_accounts_status_check
        CHECK (status IN ('active', 'suspended', 'disabled', 'pending'));

-- The operators' own provider, set in the server's configuration (`RENRAKUCHO_OPERATOR_OIDC_*`):
-- its subjects linked to operator accounts (`renrakucho admin link-operator-identity`), in the
-- platform's scope only. The web role reaches none of it.
CREATE TABLE public.operator_identities (
    id          uuid PRIMARY KEY,
    operator_id uuid NOT NULL REFERENCES public.platform_operators (id),
    issuer      text NOT NULL CHECK (char_length(issuer) BETWEEN 8 AND 500),
    subject     text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 255),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (issuer, subject),
    UNIQUE (operator_id, issuer)
);
ALTER TABLE public.operator_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.operator_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY operator_identities_platform ON public.operator_identities TO renrakucho_platform
    USING ((SELECT in_platform_scope()))
    WITH CHECK ((SELECT in_platform_scope()));
GRANT SELECT, INSERT, DELETE ON public.operator_identities TO renrakucho_platform;
