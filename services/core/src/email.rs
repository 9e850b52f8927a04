//! E-mail addresses (the notification digest's recipient).
//!
//! One rule, stated twice and kept equal: here, and in the `notification_settings_email`
//! `CHECK` of migration 17. The address is parsed as RFC 5322's `addr-spec` by the
//! `email_address` crate (dot-atom local part of at most 64 bytes, at most 254 bytes in all),
//! then narrowed to what the database's regular expression can state and what every mail
//! server takes: ASCII only, no quoted local part, no display name, no IP-literal domain, and a
//! domain of at least two labels of letters, digits and inner hyphens (at most 63 each). An
//! address the application accepts is therefore one the database accepts, and the other way
//! round: a bad one is a 422 naming `email`, never the constraint's 500.

use email_address::{EmailAddress, Options};

use crate::InvalidValue;

/// An e-mail address that passed the network's rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The longest address, in bytes (RFC 5321's path limit less the angle brackets).
    pub const MAX: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let address = raw.trim();
        if Self::accepts(address) {
            Ok(Self(address.to_string()))
        } else {
            Err(InvalidValue::new(
                "email",
                "メールアドレスの形式が正しくありません（例: name@example.jp） / not an e-mail address (e.g. name@example.jp)",
            ))
        }
    }

    fn accepts(address: &str) -> bool {
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        let Some((local, domain)) = address.rsplit_once('@') else {
            return false;
        };
        address.len() <= Self::MAX
            && address.is_ascii()
            && !local.starts_with('"')
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            && EmailAddress::parse_with_options(address, options).is_ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Addresses on either side of the rule, for the tests here and the integration test that
/// checks the database's `CHECK` gives the same answer for each.
#[doc(hidden)]
pub const SAMPLES: &[(&str, bool)] = &[
    ("tanaka@example.jp", true),
    ("tanaka.hanako+digest@clinic.example.co.jp", true),
    ("o'brien@example.jp", true),
    ("a!#$%&'*+/=?^_`{|}~-@example.jp", true),
    ("x@a-b.c0.jp", true),
    ("X@EXAMPLE.JP", true),
    ("a@b@c.jp", false),
    ("@example.jp", false),
    ("tanaka@", false),
    ("tanaka@localhost", false),
    ("tanaka@example..jp", false),
    ("tanaka@.example.jp", false),
    ("tanaka@example.jp.", false),
    ("tanaka@-example.jp", false),
    ("tanaka@example-.jp", false),
    (".tanaka@example.jp", false),
    ("tanaka.@example.jp", false),
    ("ta..naka@example.jp", false),
    ("ta naka@example.jp", false),
    ("\"ta naka\"@example.jp", false),
    ("\"a@b\"@example.jp", false),
    ("tanaka@[192.0.2.1]", false),
    ("田中 <tanaka@example.jp>", false),
    ("田中@example.jp", false),
    ("tanaka@例え.jp", false),
    ("tanaka@exa_mple.jp", false),
    ("tanaka@exa!mple.jp", false),
    ("ta(naka)@example.jp", false),
    ("ta\\naka@example.jp", false),
    ("tanaka@exam\u{0}ple.jp", false),
    ("tanaka\u{200B}@example.jp", false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_takes_plain_addresses_and_refuses_the_rest() {
        for (address, ok) in SAMPLES {
            assert_eq!(Email::parse(address).is_ok(), *ok, "{address:?}");
        }
        let e = Email::parse("a@b@c.jp").unwrap_err();
        assert_eq!(e.field, "email");
        assert!(e.message.starts_with("メールアドレス"));
        assert_eq!(
            Email::parse(" tanaka@example.jp ").unwrap().as_str(),
            "tanaka@example.jp"
        );
    }

    #[test]
    fn lengths_are_limited_as_rfc_5321_limits_them() {
        let local = "a".repeat(64);
        assert!(Email::parse(&format!("{local}@example.jp")).is_ok());
        assert!(Email::parse(&format!("a{local}@example.jp")).is_err());
        let label = "b".repeat(63);
        assert!(Email::parse(&format!("a@{label}.jp")).is_ok());
        assert!(Email::parse(&format!("a@b{label}.jp")).is_err());
        // 254 in all: 2 + 63 * 3 + 3 dots + 60 = 254.
        let long = format!("a@{label}.{label}.{label}.{}", "c".repeat(60));
        assert_eq!(long.len(), 254);
        assert!(Email::parse(&long).is_ok());
        assert!(Email::parse(&format!("a{long}")).is_err());
    }
}
