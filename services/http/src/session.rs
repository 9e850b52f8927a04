//! The signed-in user, from the server-side session: the one place that decides whether a
//! session is still good (idle timeout, absolute lifetime, account and facility still active).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use renrakucho_core::{FacilityKind, Profession, StaffRole, StaffStatus};
use renrakucho_identity::{
    Authenticated, PendingSecondFactor, Principal, SessionRecord, PENDING_KEY, SESSION_KEY,
};
use renrakucho_store::audit::Origin;
use renrakucho_store::{facilities, operators, sessions, staff, Scope};
use serde::Serialize;
use time::OffsetDateTime;
use tower_sessions::session::Record;
use tower_sessions::Session;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::principals::{session_key, Principals};
use crate::state::AppState;

/// The name of the session cookie (over plain HTTP, as in development and tests).
pub const SESSION_COOKIE: &str = "renrakucho_session";

/// Its name over HTTPS: a `__Host-` cookie is set only by this host itself, over HTTPS, for
/// the whole site, so a sibling subdomain cannot plant or overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-renrakucho_session";

/// Who is signed in, as shown to them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WhoAmI {
    /// `staff` or `operator`.
    pub kind: String,
    pub id: Uuid,
    pub login_id: String,
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<StaffRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profession: Option<Profession>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<FacilitySummary>,
    /// The facility admin lets this person accept care-team invitations for the facility.
    pub may_accept_invitations: bool,
    /// The password was chosen by someone else or is older than the network allows: until it
    /// is changed (`POST /api/v1/me/password`), every other request is refused with 403
    /// `password_change_required`.
    pub password_change_required: bool,
    /// An authenticator app is set up: sign-in asks for its code.
    pub second_factor_enabled: bool,
    /// The person must set up a second factor (facility admins always; staff where the
    /// network requires it): until they do (`POST /api/v1/me/second-factor/totp` and its
    /// confirmation), every other request is refused with 403
    /// `second_factor_enrolment_required`.
    pub second_factor_enrolment_required: bool,
    /// The account's password version: a session signed in under another one has ended.
    #[serde(skip)]
    pub password_version: i32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FacilitySummary {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub kind: FacilityKind,
}

/// A request from a signed-in user. As an extractor it answers 401 when nobody is.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Principal,
    pub who: WhoAmI,
    /// Where this request came from, for the audit records it causes (refusals included).
    pub origin: Origin,
    /// Unix seconds when the person last gave their password in this session.
    pub authenticated_at: i64,
    /// Signed in through an OpenID provider: proof is given again there, not with a password.
    pub via_provider: bool,
}

impl SignedIn {
    /// For the acts that ask for the password again (break-glass access, erasure): refused
    /// with 403 `reauthentication_required` when it was given longer ago than `within`.
    pub fn require_recent_password(&self, within: std::time::Duration) -> Result<(), ApiError> {
        if now() - self.authenticated_at <= within.as_secs() as i64 {
            Ok(())
        } else {
            Err(ApiError::reauthentication_required())
        }
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Where sessions live: `private.sessions`, under the SHA-256 of each session ID, each record
/// sealed with the server's session key (the store crate's `sessions` module). The web role
/// reaches a record only with its cookie value, and cannot write one this server accepts.
/// Records this process read or wrote are remembered ([`Principals`], ADR 0025).
#[derive(Clone)]
pub struct SessionStore {
    db: renrakucho_store::Database,
    principals: Principals,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionStore")
    }
}

fn backend(e: renrakucho_store::StoreError) -> tower_sessions::session_store::Error {
    tower_sessions::session_store::Error::Backend(e.to_string())
}

fn encode(record: &Record) -> Result<Vec<u8>, tower_sessions::session_store::Error> {
    serde_json::to_vec(record)
        .map_err(|e| tower_sessions::session_store::Error::Encode(e.to_string()))
}

impl SessionStore {
    /// The record stored under `id`, read from the database whatever is remembered (and then
    /// remembered).
    async fn load_stored(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<Record>> {
        let text = id.to_string();
        let generation = self.principals.generation();
        let Some(bytes) = sessions::load(&self.db, &text).await.map_err(backend)? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&bytes)
            .map_err(|e| tower_sessions::session_store::Error::Decode(e.to_string()))?;
        if record.id != *id {
            return Ok(None);
        }
        self.principals
            .remember_session(generation, session_key(&text), record.clone());
        Ok(Some(record))
    }
}

#[async_trait::async_trait]
impl tower_sessions::SessionStore for SessionStore {
    async fn create(&self, record: &mut Record) -> tower_sessions::session_store::Result<()> {
        loop {
            let bytes = encode(record)?;
            let id = record.id.to_string();
            let generation = self.principals.generation();
            if sessions::create(&self.db, &id, &bytes, record.expiry_date)
                .await
                .map_err(backend)?
            {
                self.principals
                    .remember_session(generation, session_key(&id), record.clone());
                return Ok(());
            }
            // 128 random bits collided: draw again.
            record.id = tower_sessions::session::Id::default();
        }
    }

    async fn save(&self, record: &Record) -> tower_sessions::session_store::Result<()> {
        let id = record.id.to_string();
        let generation = self.principals.generation();
        sessions::save(&self.db, &id, &encode(record)?, record.expiry_date)
            .await
            .map_err(backend)?;
        self.principals
            .remember_session(generation, session_key(&id), record.clone());
        Ok(())
    }

    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<Record>> {
        let key = session_key(&id.to_string());
        if let Some(record) = self.principals.session(&key) {
            // The database returns only records that have not expired; so does the memory.
            if record.expiry_date > OffsetDateTime::now_utc() {
                return Ok(Some(record));
            }
            self.principals.forget_session(&key);
            return Ok(None);
        }
        self.load_stored(id).await
    }

    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        let text = id.to_string();
        let deleted = sessions::delete(&self.db, &text).await.map_err(backend);
        // Forgotten here at once (after the delete, so that a read in flight cannot remember
        // it again); the database announces it to the other processes.
        self.principals.forget_session(&session_key(&text));
        deleted
    }
}

/// The session store of this server's database.
pub fn store(state: &AppState) -> SessionStore {
    SessionStore {
        db: state.db.clone(),
        principals: state.principals.clone(),
    }
}

/// Keeps a sign-in whose password was right until its second factor's code comes, under a new
/// session ID; the session is not signed in meanwhile.
pub async fn await_second_factor(
    session: &Session,
    pending: PendingSecondFactor,
) -> Result<(), ApiError> {
    session.cycle_id().await?;
    session.remove::<SessionRecord>(SESSION_KEY).await?;
    session.insert(PENDING_KEY, pending).await?;
    Ok(())
}

/// The sign-in waiting for its second factor in `session`, if any.
pub async fn pending_second_factor(
    session: &Session,
) -> Result<Option<PendingSecondFactor>, ApiError> {
    Ok(session.get::<PendingSecondFactor>(PENDING_KEY).await?)
}

/// Starts a session for the person just authenticated, under a new session ID (no fixation).
pub async fn start(session: &Session, who: Authenticated) -> Result<(), ApiError> {
    begin(session, who, false).await
}

/// Where the session keeps the provider's logout URL of a sign-in through it.
pub const PROVIDER_LOGOUT_KEY: &str = "renrakucho.provider_logout";

/// As [`start`], for a sign-in through the facility's OpenID provider; `logout_url` is the
/// provider's RP-initiated logout, followed at sign-out.
pub async fn start_via_provider(
    session: &Session,
    who: Authenticated,
    logout_url: Option<String>,
) -> Result<(), ApiError> {
    begin(session, who, true).await?;
    if let Some(url) = logout_url {
        session.insert(PROVIDER_LOGOUT_KEY, url).await?;
    }
    Ok(())
}

async fn begin(session: &Session, who: Authenticated, via_provider: bool) -> Result<(), ApiError> {
    session.cycle_id().await?;
    session.remove::<PendingSecondFactor>(PENDING_KEY).await?;
    session
        .remove::<renrakucho_identity::oidc::PendingProviderSignIn>(
            renrakucho_identity::oidc::PENDING_PROVIDER_KEY,
        )
        .await?;
    // Another person's provider logout never follows this sign-in.
    session.remove::<String>(PROVIDER_LOGOUT_KEY).await?;
    let t = now();
    session
        .insert(
            SESSION_KEY,
            SessionRecord {
                principal: who.principal,
                signed_in_at: t,
                last_seen_at: t,
                password_version: who.password_version,
                // The provider's sign-in may rest on a session of its own days old (no
                // `max_age` is asked): it is not a password given just now.
                authenticated_at: if via_provider { 0 } else { t },
                via_provider,
            },
        )
        .await?;
    Ok(())
}

/// The person of `session` changed their password (now at `version`): this session goes on,
/// under a new ID, while every other one of theirs has ended.
pub async fn password_changed(session: &Session, version: i32) -> Result<(), ApiError> {
    let Some(mut record) = session.get::<SessionRecord>(SESSION_KEY).await? else {
        return Err(ApiError::unauthenticated());
    };
    session.cycle_id().await?;
    record.password_version = version;
    record.last_seen_at = now();
    record.authenticated_at = record.last_seen_at;
    session.insert(SESSION_KEY, record).await?;
    Ok(())
}

/// The person of `session` gave their password again just now: the session goes on under a
/// new ID (the old one's end is announced, so no process keeps the record from before, and a
/// session that gains a right gets a fresh ID).
pub async fn reauthenticated(session: &Session) -> Result<(), ApiError> {
    let Some(mut record) = session.get::<SessionRecord>(SESSION_KEY).await? else {
        return Err(ApiError::unauthenticated());
    };
    session.cycle_id().await?;
    let t = now();
    record.authenticated_at = t;
    record.last_seen_at = t;
    session.insert(SESSION_KEY, record).await?;
    Ok(())
}

/// Ends the session (its record deleted, the cookie cleared) and the live streams this
/// process serves for it.
pub async fn end(
    state: &AppState,
    session: &Session,
) -> Result<(), tower_sessions::session::Error> {
    let id = session.id();
    session.flush().await?;
    if let Some(id) = id {
        state.events.session_ended(id);
    }
    Ok(())
}

/// Whether the session holds a sign-in (expired or not: [`current`] decides that).
pub async fn is_signed_in(session: &Session) -> Result<bool, tower_sessions::session::Error> {
    Ok(session.get::<SessionRecord>(SESSION_KEY).await?.is_some())
}

/// The signed-in user, or `None` (and the session ended) when the session has expired or the
/// account or facility may no longer sign in.
pub async fn current(state: &AppState, session: &Session) -> Result<Option<SignedIn>, ApiError> {
    let Some(mut record) = session.get::<SessionRecord>(SESSION_KEY).await? else {
        return Ok(None);
    };
    let t = now();
    let policy = state.sessions;
    if is_idle(state, &record, t) {
        // The record may be one this process remembered while another one renewed it: only
        // the stored record can say the session is idle.
        if let Some(stored) = stored_record(state, session).await? {
            record.last_seen_at = record.last_seen_at.max(stored.last_seen_at);
        }
    }
    let Some(who) = check(state, &record, t).await? else {
        session.flush().await?;
        return Ok(None);
    };
    if t - record.last_seen_at >= policy.renew_every().as_secs() as i64 {
        record.last_seen_at = t;
        session.insert(SESSION_KEY, record).await?;
    }
    // The request's log line names who it acted for (IDs only).
    crate::middleware::note_actor(record.principal);
    Ok(Some(SignedIn {
        principal: record.principal,
        who,
        origin: Origin::default(),
        authenticated_at: record.authenticated_at,
        via_provider: record.via_provider,
    }))
}

fn is_idle(state: &AppState, record: &SessionRecord, t: i64) -> bool {
    t - record.last_seen_at > state.sessions.idle_timeout.as_secs() as i64
}

/// The sign-in stored for `session` in the database, whatever this process remembers.
async fn stored_record(
    state: &AppState,
    session: &Session,
) -> Result<Option<SessionRecord>, ApiError> {
    let Some(id) = session.id() else {
        return Ok(None);
    };
    let stored = store(state)
        .load_stored(&id)
        .await
        .map_err(|e| ApiError::from(tower_sessions::session::Error::Store(e)))?;
    Ok(stored
        .and_then(|r| r.data.get(SESSION_KEY).cloned())
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// Whether the session `id` is still good, read again from the store. A long-lived response
/// (the live notifications) asks from time to time: signing out in another tab, an idle or too
/// old session, a suspended account or facility end it.
pub async fn still_valid(state: &AppState, id: tower_sessions::session::Id) -> bool {
    use tower_sessions::SessionStore;
    let Ok(Some(stored)) = store(state).load(&id).await else {
        return false;
    };
    if stored.expiry_date <= OffsetDateTime::now_utc() {
        return false;
    }
    let Some(record) = stored
        .data
        .get(SESSION_KEY)
        .and_then(|v| serde_json::from_value::<SessionRecord>(v.clone()).ok())
    else {
        return false;
    };
    // A stream is not a way around a password that must be changed first.
    matches!(check(state, &record, now()).await,
        Ok(Some(who)) if !who.password_change_required && !who.second_factor_enrolment_required)
}

/// The one decision on a session record at time `t`: `None` when it has expired or its account
/// or facility may no longer sign in.
async fn check(
    state: &AppState,
    record: &SessionRecord,
    t: i64,
) -> Result<Option<WhoAmI>, ApiError> {
    let policy = state.sessions;
    let too_old = t - record.signed_in_at > policy.max_lifetime.as_secs() as i64;
    if is_idle(state, record, t) || too_old {
        return Ok(None);
    }
    let current = |mut who: WhoAmI| {
        if record.via_provider {
            // The provider authenticated the person: the local password and second factor
            // are not theirs to change first (the admin's break-glass sign-in still needs both).
            who.password_change_required = false;
            who.second_factor_enrolment_required = false;
        }
        (who.password_version == record.password_version).then_some(who)
    };
    if let Some(who) = state.principals.person(&record.principal) {
        // A remembered account older than the session (its password changed through another
        // process, the announcement still on its way) is read again, not believed.
        if who.password_version >= record.password_version {
            return Ok(current(who));
        }
    }
    let generation = state.principals.generation();
    let who = account(state, record.principal).await?;
    if let Some(who) = &who {
        state
            .principals
            .remember_person(generation, record.principal, who.clone());
    }
    // A session signed in under an earlier password has ended.
    Ok(who.and_then(current))
}

/// `principal`'s account as shown to them, read from the database; `None` when the account or
/// its facility may no longer sign in.
async fn account(state: &AppState, principal: Principal) -> Result<Option<WhoAmI>, ApiError> {
    let who = match principal {
        Principal::Staff { id, facility } => {
            let mut tx = state
                .db
                .begin(Scope::Staff {
                    facility,
                    staff: id,
                })
                .await?;
            let account = staff::get(&mut tx, id).await;
            let place = facilities::get(&mut tx, facility).await;
            tx.commit().await?;
            let (account, place) = match (account, place) {
                (Ok(a), Ok(p)) => (a, p),
                (Err(renrakucho_store::StoreError::NotFound), _)
                | (_, Err(renrakucho_store::StoreError::NotFound)) => return Ok(None),
                (Err(e), _) | (_, Err(e)) => return Err(e.into()),
            };
            if account.status != StaffStatus::Active || !place.status.allows_sign_in() {
                return Ok(None);
            }
            WhoAmI {
                kind: "staff".into(),
                id: account.id.as_uuid(),
                login_id: account.login_id,
                display_name: account.display_name,
                role: Some(account.role),
                profession: Some(account.profession),
                facility: Some(FacilitySummary {
                    id: place.id.as_uuid(),
                    code: place.code,
                    name: place.name,
                    kind: place.kind,
                }),
                may_accept_invitations: account.may_accept_invitations,
                password_change_required: state.auth.password_change_required(
                    account.password_must_change,
                    account.password_changed_at,
                ),
                second_factor_enabled: account.second_factor_enabled,
                second_factor_enrolment_required: state.auth.second_factor_required(account.role)
                    && !account.second_factor_enabled,
                password_version: account.password_version,
            }
        }
        Principal::Operator { id } => {
            let mut tx = state.db.begin(Scope::Platform).await?;
            let operator = operators::get(&mut tx, id).await;
            tx.commit().await?;
            let operator = match operator {
                Ok(o) if o.status == StaffStatus::Active => o,
                Ok(_) | Err(renrakucho_store::StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            WhoAmI {
                kind: "operator".into(),
                id: operator.id.as_uuid(),
                login_id: operator.login_id,
                display_name: operator.display_name,
                role: None,
                profession: None,
                facility: None,
                may_accept_invitations: false,
                password_change_required: state.auth.password_change_required(
                    operator.password_must_change,
                    operator.password_changed_at,
                ),
                // Operators must always have one.
                second_factor_enabled: operator.second_factor_enabled,
                second_factor_enrolment_required: !operator.second_factor_enabled,
                password_version: operator.password_version,
            }
        }
    };
    Ok(Some(who))
}

/// A signed-in person even while their password must be changed or a second factor set up:
/// only for saying who they are and for those changes themselves. Every other handler takes
/// [`SignedIn`], which refuses them.
#[derive(Debug, Clone)]
pub struct SignedInToSecureAccount(pub SignedIn);

impl FromRequestParts<AppState> for SignedInToSecureAccount {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        signed_in(parts, state).await.map(Self)
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let signed_in = signed_in(parts, state).await?;
        if signed_in.who.password_change_required {
            return Err(ApiError::password_change_required());
        }
        if signed_in.who.second_factor_enrolment_required {
            return Err(ApiError::second_factor_enrolment_required());
        }
        Ok(signed_in)
    }
}

/// The person of the request's session with the request's origin, or 401.
async fn signed_in(parts: &mut Parts, state: &AppState) -> Result<SignedIn, ApiError> {
    let session = Session::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::internal())?;
    let crate::origin::RequestOrigin(origin) =
        crate::origin::RequestOrigin::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::internal())?;
    let mut signed_in = current(state, &session)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    signed_in.origin = origin;
    Ok(signed_in)
}
