-- The password lifecycle (issue 15): a person changes their own password under the network's
-- rules, and none of their last five passwords comes back. The hashes of the passwords an
-- account had before, newest first, at most five: argon2id PHC strings like password_hash,
-- kept only to refuse their reuse. `password_must_change` is set when someone other than the
-- person chose the password (an account created from the command line); the person then
-- changes it before anything else. `password_version` counts the password's changes: a session
-- remembers the version it signed in with and ends when the account's has moved on, so a
-- change ends every other session of the person.
ALTER TABLE public.staff_accounts
    ADD COLUMN previous_password_hashes text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(previous_password_hashes) <= 5),
    ADD COLUMN password_must_change boolean NOT NULL DEFAULT false,
    ADD COLUMN password_version integer NOT NULL DEFAULT 0 CHECK (password_version >= 0);
ALTER TABLE public.platform_operators
    ADD COLUMN previous_password_hashes text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(previous_password_hashes) <= 5),
    ADD COLUMN password_must_change boolean NOT NULL DEFAULT false,
    ADD COLUMN password_version integer NOT NULL DEFAULT 0 CHECK (password_version >= 0);

-- The web role changes a password of its own facility's staff (row-level security as before);
-- the platform role already updates operators' rows.
GRANT UPDATE (previous_password_hashes, password_must_change, password_version)
    ON public.staff_accounts
    TO renrakucho_runtime;
