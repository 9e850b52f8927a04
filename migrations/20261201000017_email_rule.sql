-- One rule for an e-mail address, the application's and the database's (issue 12 §3).
--
-- Until now the two disagreed: the application took `a@b@c.jp` (it split at the first `@` and
-- looked for a dot after it), the CHECK of migration 5 did not, and the person saving their
-- digest address got a 500. The application now parses the address with the `email_address`
-- crate (RFC 5322 addr-spec) narrowed to what a regular expression can state
-- (services/core/src/email.rs); this CHECK states the same narrowed rule:
--
--   * a dot-atom local part of ASCII `atext` (letters, digits and ! # $ % & ' * + / = ? ^ _ `
--     { | } ~ -), dots only between atoms, at most 64 bytes;
--   * a domain of at least two labels, each of letters, digits and inner hyphens, 1 to 63
--     characters (no IP literal, no display name, no quoted local part, nothing beyond ASCII);
--   * at most 254 bytes in all.
--
-- tests/integration/input_hygiene.rs asks both for the verdict on the same list of addresses.

-- An address saved before that the rule refuses could never be stored again, and the digest
-- job's own UPDATE of the row (last_digest_at) would fail on it: it is removed, and the digest
-- turned off, so the person is asked for a valid one on their settings page. The table's
-- row-level security is forced, so the owner lifts it for this statement only, inside the
-- migration's transaction.
ALTER TABLE notification_settings NO FORCE ROW LEVEL SECURITY;
UPDATE notification_settings
   SET email = NULL, digest_enabled = false
 WHERE email IS NOT NULL
   AND NOT (octet_length(email) <= 254
            AND octet_length(split_part(email, '@', 1)) <= 64
            AND email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$');
ALTER TABLE notification_settings FORCE ROW LEVEL SECURITY;

ALTER TABLE notification_settings DROP CONSTRAINT notification_settings_email_check;
ALTER TABLE notification_settings ADD CONSTRAINT notification_settings_email CHECK (
    email IS NULL
    OR (octet_length(email) <= 254
        AND octet_length(split_part(email, '@', 1)) <= 64
        AND email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$')
);
