//! A facility admin's settings for the facility's OpenID provider, checked before anything is
//! stored: each refusal names its field, in Japanese first.

use renrakucho_core::{AccountPolicy, InvalidValue, LoginClaim};
use url::Url;
use zeroize::Zeroizing;

/// The settings as typed (the secret may be left out when it is not being changed).
#[derive(Clone, serde::Deserialize)]
pub struct ProviderInput {
    pub issuer: String,
    pub client_id: String,
    /// Required for a new provider; when absent on a change, the stored one is kept.
    pub client_secret: Option<String>,
    /// Space-separated or as a list; `openid` is always requested.
    pub scopes: Vec<String>,
    pub login_claim: String,
    pub allowed_domains: Vec<String>,
    pub account_policy: String,
}

impl std::fmt::Debug for ProviderInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderInput")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "**redacted**"),
            )
            .finish_non_exhaustive()
    }
}

/// Settings that passed every rule.
#[derive(Clone)]
pub struct ValidSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Zeroizing<String>>,
    pub scopes: Vec<String>,
    pub login_claim: LoginClaim,
    pub allowed_domains: Vec<String>,
    pub account_policy: AccountPolicy,
}

impl ProviderInput {
    /// The settings, or the first rule they break. `allow_private`: the issuer may be on a
    /// loopback or private address, plain HTTP on loopback (development and tests only).
    pub fn validate(self, allow_private: bool) -> Result<ValidSettings, InvalidValue> {
        let issuer = issuer(&self.issuer, allow_private)?;
        let client_id = self.client_id.trim().to_owned();
        if client_id.is_empty()
            || client_id.chars().count() > 200
            || client_id.chars().any(char::is_control)
        {
            return Err(InvalidValue::new(
                "client_id",
                "クライアントIDは1〜200文字で入力してください / a client ID is 1 to 200 characters",
            ));
        }
        let client_secret = match self.client_secret.map(|s| s.trim().to_owned()) {
            Some(s) if s.is_empty() => None,
            Some(s) if s.chars().count() > 500 || s.chars().any(char::is_control) => {
                return Err(InvalidValue::new(
                    "client_secret",
                    "クライアントシークレットは500文字以内です / a client secret is at most 500 characters",
                ))
            }
            other => other.map(Zeroizing::new),
        };
        let mut scopes = vec!["openid".to_owned()];
        for scope in self.scopes.iter().flat_map(|s| s.split_whitespace()) {
            let ok = scope.len() <= 64
                && scope
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
            if !ok {
                return Err(InvalidValue::new(
                    "scopes",
                    format!("スコープ「{scope}」は使用できません / scope `{scope}` is not allowed"),
                ));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.len() > 10 {
            return Err(InvalidValue::new(
                "scopes",
                "スコープは10個までです / at most 10 scopes",
            ));
        }
        let login_claim: LoginClaim = self.login_claim.parse().map_err(|_| {
            InvalidValue::new(
                "login_claim",
                "ログインに使うクレームは email か preferred_username です / the login claim is `email` or `preferred_username`",
            )
        })?;
        let account_policy: AccountPolicy = self.account_policy.parse().map_err(|_| {
            InvalidValue::new(
                "account_policy",
                "アカウントの扱いは pre_linked か just_in_time です / the account policy is `pre_linked` or `just_in_time`",
            )
        })?;
        let mut allowed_domains = Vec::new();
        for raw in self
            .allowed_domains
            .iter()
            .flat_map(|d| d.split([',', ' ', '\n']))
        {
            let domain = raw.trim().trim_start_matches('@').to_ascii_lowercase();
            if domain.is_empty() {
                continue;
            }
            let ok = domain.len() <= 253
                && domain.contains('.')
                && domain.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                return Err(InvalidValue::new(
                    "allowed_domains",
                    format!(
                        "ドメイン「{raw}」の形式が正しくありません / `{raw}` is not a domain name"
                    ),
                ));
            }
            if !allowed_domains.contains(&domain) {
                allowed_domains.push(domain);
            }
        }
        if allowed_domains.len() > 20 {
            return Err(InvalidValue::new(
                "allowed_domains",
                "ドメインは20個までです / at most 20 domains",
            ));
        }
        if !allowed_domains.is_empty() && login_claim != LoginClaim::Email {
            return Err(InvalidValue::new(
                "allowed_domains",
                "ドメインの制限はメールアドレスをログインに使う場合だけ指定できます / allowed domains need the `email` login claim",
            ));
        }
        Ok(ValidSettings {
            issuer,
            client_id,
            client_secret,
            scopes,
            login_claim,
            allowed_domains,
            account_policy,
        })
    }
}

/// An issuer URL: HTTPS on a public address (with `allow_private`, also loopback and private
/// addresses, plain HTTP on loopback), no query, no fragment, no user info. Kept exactly as
/// given (a trailing slash included): the provider's tokens name it so, character for character.
pub fn issuer(raw: &str, allow_private: bool) -> Result<String, InvalidValue> {
    let refuse = || {
        InvalidValue::new(
            "issuer",
            "発行者（Issuer）はインターネット上の https:// のURLです / the issuer is an https:// URL on the internet",
        )
    };
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|_| refuse())?;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    let localhost =
        matches!(url.host(), Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost"));
    let loopback = localhost || ip.is_some_and(|ip| ip.is_loopback());
    let private = localhost || ip.is_some_and(|ip| !super::protocol::is_public(ip));
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && loopback && allow_private);
    if !scheme_ok
        || (private && !allow_private)
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || raw.chars().count() > 500
    {
        return Err(refuse());
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProviderInput {
        ProviderInput {
            issuer: "https://login.example.jp/".into(),
            client_id: "renrakucho".into(),
            client_secret: Some("s3cret".into()),
            scopes: vec!["email profile".into()],
            login_claim: "email".into(),
            allowed_domains: vec!["@Example.jp, clinic.example.jp".into()],
            account_policy: "just_in_time".into(),
        }
    }

    #[test]
    fn settings_are_normalised() {
        let valid = input().validate(false).unwrap();
        assert_eq!(valid.issuer, "https://login.example.jp/", "kept as given");
        assert_eq!(valid.scopes, ["openid", "email", "profile"]);
        assert_eq!(valid.allowed_domains, ["example.jp", "clinic.example.jp"]);
        assert_eq!(valid.account_policy, AccountPolicy::JustInTime);
    }

    /// A change to valid input, and the field its refusal must name.
    type Case = (fn(&mut ProviderInput), &'static str);

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<Case> = vec![
            (|i| i.issuer = "http://login.example.jp".into(), "issuer"),
            (
                |i| i.issuer = "https://login.example.jp/?x=1".into(),
                "issuer",
            ),
            (|i| i.issuer = "not a url".into(), "issuer"),
            (|i| i.client_id = " ".into(), "client_id"),
            (|i| i.scopes = vec!["email <script>".into()], "scopes"),
            (|i| i.login_claim = "sub".into(), "login_claim"),
            (|i| i.account_policy = "anyone".into(), "account_policy"),
            (
                |i| i.allowed_domains = vec!["exa mple".into()],
                "allowed_domains",
            ),
            (
                |i| {
                    i.login_claim = "preferred_username".into();
                },
                "allowed_domains",
            ),
        ];
        for (change, field) in cases {
            let mut i = input();
            change(&mut i);
            assert_eq!(i.validate(false).err().map(|e| e.field), Some(field));
        }
    }

    #[test]
    fn private_addresses_and_plain_http_only_where_allowed() {
        for issuer in [
            "http://127.0.0.1:4000",
            "https://127.0.0.1:4000",
            "https://10.0.0.5",
            "https://169.254.169.254",
            "https://localhost",
            "https://[::1]",
        ] {
            let mut i = input();
            i.issuer = issuer.into();
            assert!(i.clone().validate(false).is_err(), "{issuer} refused");
            assert_eq!(
                i.validate(true).unwrap().issuer,
                issuer,
                "{issuer} allowed for tests"
            );
        }
        let mut i = input();
        i.issuer = "http://10.0.0.5".into();
        assert!(i.validate(true).is_err(), "plain HTTP only on loopback");
    }
}
