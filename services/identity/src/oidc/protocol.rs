//! The OpenID Connect protocol with one provider (the `openidconnect` crate): discovery and
//! its key set, cached per issuer; the authorization request (code flow, PKCE, `state`,
//! `nonce`); the code exchange and the ID token's validation. No database here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, IdTokenClaims, IssuerUrl, JsonWebKeySet, LogoutRequest, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use url::Url;
use zeroize::Zeroizing;

/// A provider's answers are small; a larger one is refused rather than read.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Discovery is read again after this long.
const METADATA_TTL: Duration = Duration::from_secs(60 * 60);
/// A token signed with a key we do not know makes us read the key set again, at most this
/// often per issuer: a flood of forged tokens cannot make us hammer the provider.
const JWKS_REFRESH_EVERY: Duration = Duration::from_secs(30);
/// Clocks differ a little: an ID token this far past its expiry is still accepted.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Why talking to a provider failed, in words for the audit log (never a token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProtocolError {
    /// The provider did not answer, or not with what OpenID Connect says (down, garbage).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered, but its ID token failed validation; the reason is one of a few
    /// fixed words (`wrong_issuer`, `wrong_audience`, `expired`, `bad_signature`,
    /// `unsupported_alg`, `nonce_mismatch`, `unknown_key`, `invalid_token`, `no_id_token`).
    #[error("ID token refused: {0}")]
    TokenRefused(&'static str),
    /// The provider refused the code (used already, expired) or our client.
    #[error("code refused by the provider: {0}")]
    CodeRefused(String),
}

/// What the client needs to know of a facility's provider.
#[derive(Clone)]
pub struct ClientSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    pub scopes: Vec<String>,
}

/// The secrets of one authorization request, kept (server-side, in the session) until the
/// provider sends the person back.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Handshake {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handshake(**redacted**)")
    }
}

/// What a validated ID token says about the person.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    /// When the person last signed in at the provider (Unix seconds), if it says.
    pub auth_time: Option<i64>,
}

struct Discovered {
    metadata: ProviderMetadataWithLogout,
    fetched_at: Instant,
    /// When an unknown key last made us read the key set again (none since discovery).
    keys_refreshed_at: Option<Instant>,
}

/// Talks OpenID Connect with any number of providers, caching each one's discovery document
/// and key set. Cheap to clone; one per process.
#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    cache: Arc<Mutex<HashMap<String, Arc<Discovered>>>>,
    counters: Arc<Counters>,
    /// Whether providers may be on loopback or private addresses and speak plain HTTP there
    /// (development and tests only): otherwise a facility admin's settings could make the
    /// server fetch from inside its own network.
    allow_private: bool,
}

/// How often this process read a provider's documents (for tests and the bench: a warm cache
/// reads none).
#[derive(Debug, Default)]
pub struct Counters {
    pub discoveries: std::sync::atomic::AtomicU64,
    pub key_set_refreshes: std::sync::atomic::AtomicU64,
}

impl ProviderClient {
    /// A client for providers on public addresses over HTTPS only, or (`allow_private`, for
    /// development and tests) anywhere.
    pub fn new(allow_private: bool) -> Self {
        // No redirects: a provider's endpoints answer themselves (an open redirect there must
        // not make us fetch elsewhere).
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        if !allow_private {
            // Names resolve to public addresses only (addresses written as such are checked
            // in `send`), here: no proxy from the environment resolves them instead.
            http = http.dns_resolver(Arc::new(PublicAddresses)).no_proxy();
        }
        Self {
            http: http.build().expect("a plain HTTP client builds"),
            cache: Arc::default(),
            counters: Arc::default(),
            allow_private,
        }
    }

    /// Whether `url` may be fetched or shown as a provider's: HTTPS (or anything, when
    /// private providers are allowed), and no private address written as the host.
    fn reachable(&self, url: &Url) -> bool {
        if self.allow_private {
            return matches!(url.scheme(), "https" | "http");
        }
        let public_host = match url.host() {
            Some(url::Host::Ipv4(ip)) => is_public(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_public(std::net::IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        url.scheme() == "https" && public_host
    }

    /// Whether providers on private addresses (and plain HTTP) are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The URL to send the person to, and the handshake to keep until they come back.
    /// With `fresh`, the provider is asked to have the person sign in again now (`prompt=login`,
    /// `max_age=0`), whatever session it has of its own: a re-authentication.
    pub async fn authorization(
        &self,
        settings: &ClientSettings,
        redirect: &Url,
        fresh: bool,
    ) -> Result<(Url, Handshake), ProtocolError> {
        let discovered = self.discovered(&settings.issuer).await?;
        let client = client_for(&discovered.metadata, settings, redirect)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if fresh {
            request = request
                .add_prompt(openidconnect::core::CoreAuthPrompt::Login)
                .set_max_age(Duration::ZERO);
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        // The browser is sent there: only a web address (never `javascript:` or `data:`,
        // whatever a provider's document says).
        if !self.reachable(&url) {
            return Err(ProtocolError::Unavailable(
                "the authorization endpoint is not an address people may be sent to".into(),
            ));
        }
        Ok((
            url,
            Handshake {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
            },
        ))
    }

    /// Exchanges `code` for tokens and validates the ID token: issuer, audience, expiry (with
    /// a minute's skew), nonce and an RS256 signature by a key of the provider's set (read
    /// again, within bounds, when the token names a key we do not know).
    pub async fn exchange(
        &self,
        settings: &ClientSettings,
        redirect: &Url,
        handshake: &Handshake,
        code: &str,
    ) -> Result<VerifiedIdentity, ProtocolError> {
        let discovered = self.discovered(&settings.issuer).await?;
        let client = client_for(&discovered.metadata, settings, redirect)?;
        let http = |request| send(self.clone(), request);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProtocolError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(handshake.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(answer) => {
                    ProtocolError::CodeRefused(answer.error().to_string())
                }
                RequestTokenError::Parse(_, _) => ProtocolError::TokenRefused("invalid_token"),
                other => ProtocolError::Unavailable(other.to_string()),
            })?;
        let id_token = response
            .id_token()
            .ok_or(ProtocolError::TokenRefused("no_id_token"))?;
        let nonce = Nonce::new(handshake.nonce.clone());
        let claims = match id_token.claims(&verifier(&client), &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys: read its set again (bounded) and try
                // once more.
                let fresh = match self.refreshed_keys(&settings.issuer).await? {
                    Some(fresh) => fresh,
                    // Read within the bound, perhaps by a sign-in alongside: the cache may
                    // hold the new key already.
                    None => {
                        let current = self.discovered(&settings.issuer).await?;
                        if Arc::ptr_eq(&current, &discovered) {
                            return Err(ProtocolError::TokenRefused("unknown_key"));
                        }
                        current
                    }
                };
                let client = client_for(&fresh.metadata, settings, redirect)?;
                let verified = id_token
                    .claims(&verifier(&client), &nonce)
                    .map(identity)
                    .map_err(refusal)?;
                verified
            }
            other => other.map(identity).map_err(refusal)?,
        };
        Ok(claims)
    }

    /// The provider's RP-initiated logout URL (when it offers one), returning the person to
    /// `after`.
    pub async fn logout_url(&self, issuer: &str, client_id: &str, after: &Url) -> Option<Url> {
        let discovered = self.discovered(issuer).await.ok()?;
        let endpoint = discovered
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        Some(
            LogoutRequest::from(endpoint)
                .set_client_id(ClientId::new(client_id.to_owned()))
                .set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(after.clone()))
                .http_get_url(),
        )
        .filter(|url| self.reachable(url))
    }

    /// The issuer's discovery document and keys, from the cache while fresh.
    async fn discovered(&self, issuer: &str) -> Result<Arc<Discovered>, ProtocolError> {
        if let Some(hit) = self.cache.lock().expect("cache lock").get(issuer) {
            if hit.fetched_at.elapsed() < METADATA_TTL {
                return Ok(hit.clone());
            }
        }
        let issuer_url = IssuerUrl::new(issuer.to_owned())
            .map_err(|e| ProtocolError::Unavailable(format!("issuer URL: {e}")))?;
        let http = |request| send(self.clone(), request);
        self.counters
            .discoveries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let metadata = ProviderMetadataWithLogout::discover_async(issuer_url, &http)
            .await
            .map_err(|e| ProtocolError::Unavailable(e.to_string()))?;
        let now = Instant::now();
        let discovered = Arc::new(Discovered {
            metadata,
            fetched_at: now,
            keys_refreshed_at: None,
        });
        self.cache
            .lock()
            .expect("cache lock")
            .insert(issuer.to_owned(), discovered.clone());
        Ok(discovered)
    }

    /// The issuer's key set read again, unless it was read within [`JWKS_REFRESH_EVERY`]
    /// (then `None`: the unknown key stays unknown).
    async fn refreshed_keys(&self, issuer: &str) -> Result<Option<Arc<Discovered>>, ProtocolError> {
        let current = self.discovered(issuer).await?;
        if current
            .keys_refreshed_at
            .is_some_and(|at| at.elapsed() < JWKS_REFRESH_EVERY)
        {
            return Ok(None);
        }
        let http = |request| send(self.clone(), request);
        self.counters
            .key_set_refreshes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let jwks: JsonWebKeySet<CoreJsonWebKey> =
            JsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &http)
                .await
                .map_err(|e| ProtocolError::Unavailable(e.to_string()))?;
        let refreshed = Arc::new(Discovered {
            metadata: current.metadata.clone().set_jwks(jwks),
            fetched_at: current.fetched_at,
            keys_refreshed_at: Some(Instant::now()),
        });
        self.cache
            .lock()
            .expect("cache lock")
            .insert(issuer.to_owned(), refreshed.clone());
        Ok(Some(refreshed))
    }
}

type Client = openidconnect::Client<
    EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn client_for(
    metadata: &ProviderMetadataWithLogout,
    settings: &ClientSettings,
    redirect: &Url,
) -> Result<Client, ProtocolError> {
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(settings.client_id.clone()),
        Some(ClientSecret::new(settings.client_secret.to_string())),
    )
    .set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
    // client_secret_basic unless the provider offers only client_secret_post.
    let methods = metadata.token_endpoint_auth_methods_supported();
    let post_only = methods.is_some_and(|m| {
        m.contains(&CoreClientAuthMethod::ClientSecretPost)
            && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
    });
    Ok(if post_only {
        client.set_auth_type(openidconnect::AuthType::RequestBody)
    } else {
        client
    })
}

/// RS256 only, whatever the token's header says: `alg: none` and HS256 signed with the
/// provider's public key are refused.
fn verifier(client: &Client) -> openidconnect::IdTokenVerifier<'_, CoreJsonWebKey> {
    client
        .id_token_verifier()
        .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
        .set_time_fn(|| {
            chrono::Utc::now() - chrono::Duration::from_std(CLOCK_SKEW).expect("a minute")
        })
}

fn identity(claims: &IdTokenClaims<EmptyAdditionalClaims, CoreGenderClaim>) -> VerifiedIdentity {
    VerifiedIdentity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        preferred_username: claims.preferred_username().map(|u| u.to_string()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        auth_time: claims.auth_time().map(|t| t.timestamp()),
    }
}

fn refusal(e: ClaimsVerificationError) -> ProtocolError {
    ProtocolError::TokenRefused(match e {
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "wrong_audience",
        ClaimsVerificationError::InvalidIssuer(_) => "wrong_issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce_mismatch",
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::NoMatchingKey => "unknown_key",
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature => "unsupported_alg",
            _ => "bad_signature",
        },
        _ => "invalid_token",
    })
}

/// An address on the internet: not loopback, private, link-local, shared (CGNAT), unique-local,
/// multicast, documentation or unspecified.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // shared (CGNAT), IETF protocol assignments, benchmarking, reserved
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    // NAT64, 6to4 (either may reach an IPv4 address inside), site-local,
                    // documentation
                    || (s[0] == 0x64 && s[1] == 0xff9b)
                    || s[0] == 0x2002
                    || (s[0] & 0xffc0) == 0xfec0
                    || (s[0] == 0x2001 && s[1] == 0x0db8))
            }
        },
    }
}

/// Resolves names to their public addresses only: a provider's name that points inside the
/// server's network is refused like an unreachable one.
struct PublicAddresses;

impl reqwest::dns::Resolve for PublicAddresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the name resolves to no public address".into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why an HTTP exchange with a provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// One request to a provider over reqwest, its answer read up to [`MAX_RESPONSE_BYTES`].
async fn send(
    client: ProviderClient,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let request =
        reqwest::Request::try_from(request).map_err(|e| HttpError(format!("request: {e}")))?;
    // Every endpoint a discovery document names is held to the same rule as the issuer.
    if !client.reachable(request.url()) {
        return Err(HttpError(
            "the provider's endpoint is not HTTPS on a public address".into(),
        ));
    }
    let http = client.http;
    let mut response = http
        .execute(request)
        .await
        .map_err(|e| HttpError(format!("unreachable: {e}")))?;
    // A provider that is down (or behind a failing proxy) is unavailable, not wrong.
    if response.status().is_server_error() {
        return Err(HttpError(format!("answered {}", response.status())));
    }
    let mut answer = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HttpError(format!("reading: {e}")))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError("answer too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    answer
        .body(body)
        .map_err(|e| HttpError(format!("answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internet_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["203.0.114.1", "8.8.8.8", "2001:4860:4860::8888"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn private_providers_are_refused_unless_allowed() {
        let strict = ProviderClient::new(false);
        let lenient = ProviderClient::new(true);
        for url in [
            "http://login.example.jp/auth",
            "https://127.0.0.1/auth",
            "https://localhost/auth",
            "https://[fe80::1]/auth",
            "javascript:alert(1)",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(!strict.reachable(&url), "{url}");
        }
        assert!(strict.reachable(&Url::parse("https://login.example.jp/auth").unwrap()));
        assert!(lenient.reachable(&Url::parse("http://127.0.0.1:4000/auth").unwrap()));
        assert!(!lenient.reachable(&Url::parse("javascript:alert(1)").unwrap()));
    }
}
