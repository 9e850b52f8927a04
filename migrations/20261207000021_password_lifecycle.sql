-- The password lifecycle (issue 15): a person changes their own password under the network's
-- rules, and none of their last five passwords comes back. The hashes of the passwords an
-- account had before, newest first, at most five: argon2id PHC strings like password_hash,
-- kept only to refuse their reuse. `password_must_change` is set when someone other than the
-- person chose the password (an account created from the command line); the person then
-- changes it before anything else.
ALTER TABLE public.staff_accounts
    ADD COLUMN previous_password_hashes text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(previous_password_hashes) <= 5),
    ADD COLUMN password_must_change boolean NOT NULL DEFAULT false;
ALTER TABLE public.platform_operators
    ADD COLUMN previous_password_hashes text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(previous_password_hashes) <= 5),
    ADD COLUMN password_must_change boolean NOT NULL DEFAULT false;

-- The web role changes a password of its own facility's staff (row-level security as before);
-- the platform role already updates operators' rows.
GRANT UPDATE (previous_password_hashes, password_must_change) ON public.staff_accounts
    TO renrakucho_runtime;
