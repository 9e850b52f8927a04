//! Who is signed in, remembered by this process (ADR 0025): session records by the SHA-256 of
//! their ID, and each person's account as shown to them ([`WhoAmI`]), so that a request does
//! not read both from the database. Before this, the session and the account check cost five
//! round trips of a request's nine.
//!
//! What is remembered is forgotten as soon as the database announces a change to it (a staff
//! account, a facility or an operator changed; a session ended), and after [`REMEMBER_FOR`]
//! whatever happens. While this process is not listening for those announcements (at start,
//! after a lost connection) it remembers nothing: every request reads the database, as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use renrakucho_core::{FacilityId, OperatorId, StaffId};
use renrakucho_identity::Principal;
use renrakucho_store::announcements::{self, Announcements};
use renrakucho_store::{sessions, Database};
use tower_sessions::session::Record;

use crate::session::WhoAmI;

/// How long a remembered value is used without being read again, announced change or not: a
/// bound on what a lost announcement could keep alive.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30);

/// At most this many sessions and as many people (a city's network has ~10,000 staff).
const CAPACITY: usize = 20_000;

/// The key a session is remembered under: the SHA-256 of its ID, as the database stores it.
pub type SessionKey = [u8; 32];

/// The key of the session whose cookie value is `id`.
pub fn session_key(id: &str) -> SessionKey {
    sessions::stored_id(id)
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

#[derive(Clone)]
struct Remembered<T> {
    value: T,
    at: Instant,
}

/// This process's memory of sessions and people (cheap to clone: one shared memory).
#[derive(Clone)]
pub struct Principals {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: quick_cache::sync::Cache<SessionKey, Remembered<Record>>,
    people: quick_cache::sync::Cache<Principal, Remembered<WhoAmI>>,
    /// True while the announcements of changes reach this process.
    listening: AtomicBool,
    /// Moves on with every forgetting. A value is remembered only if no forgetting happened
    /// since it was read from the database (the lock makes the check and the insert one step),
    /// so a value read just before a change cannot be remembered just after it was announced.
    generation: Mutex<u64>,
}

impl Default for Principals {
    fn default() -> Self {
        Self::new()
    }
}

impl Principals {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                sessions: quick_cache::sync::Cache::new(CAPACITY),
                people: quick_cache::sync::Cache::new(CAPACITY),
                listening: AtomicBool::new(false),
                generation: Mutex::new(0),
            }),
        }
    }

    /// Where a value about to be read from the database stands: pass it to `remember_*`.
    pub fn generation(&self) -> u64 {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // Only plain integer updates happen under the lock: a panic cannot leave it inconsistent.
        self.inner
            .generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh<T: Clone>(&self, remembered: Option<Remembered<T>>) -> Option<T> {
        if !self.inner.listening.load(Ordering::Acquire) {
            return None;
        }
        remembered
            .filter(|r| r.at.elapsed() < REMEMBER_FOR)
            .map(|r| r.value)
    }

    /// The session record remembered under `key`, if any.
    pub fn session(&self, key: &SessionKey) -> Option<Record> {
        self.fresh(self.inner.sessions.get(key))
    }

    /// Remembers a session record read or written at `generation`.
    pub fn remember_session(&self, generation: u64, key: SessionKey, record: Record) {
        let current = self.lock();
        if *current == generation && self.inner.listening.load(Ordering::Acquire) {
            let value = Remembered {
                value: record,
                at: Instant::now(),
            };
            self.inner.sessions.insert(key, value);
        }
    }

    /// The account of `principal` as last read, if remembered.
    pub fn person(&self, principal: &Principal) -> Option<WhoAmI> {
        self.fresh(self.inner.people.get(principal))
    }

    /// Remembers the account of `principal` as read at `generation`.
    pub fn remember_person(&self, generation: u64, principal: Principal, who: WhoAmI) {
        let current = self.lock();
        if *current == generation && self.inner.listening.load(Ordering::Acquire) {
            let value = Remembered {
                value: who,
                at: Instant::now(),
            };
            self.inner.people.insert(principal, value);
        }
    }

    /// Forgets one session (ended here or announced from elsewhere).
    pub fn forget_session(&self, key: &SessionKey) {
        let mut generation = self.lock();
        *generation += 1;
        self.inner.sessions.remove(key);
    }

    /// Forgets one person's account (changed by this process: its next request must see the
    /// change without waiting for the announcement).
    pub fn forget_person(&self, principal: &Principal) {
        let mut generation = self.lock();
        *generation += 1;
        self.inner.people.remove(principal);
    }

    /// Forgets every person (a facility changed: its staff are not indexed by facility, and
    /// facilities change rarely).
    fn forget_people(&self) {
        let mut generation = self.lock();
        *generation += 1;
        self.inner.people.clear();
    }

    fn forget_all(&self) {
        let mut generation = self.lock();
        *generation += 1;
        self.inner.people.clear();
        self.inner.sessions.clear();
    }

    /// Applies one announced change.
    fn changed(&self, payload: &serde_json::Value) {
        let id = |name: &str| {
            payload[name]
                .as_str()
                .and_then(|s| s.parse::<uuid::Uuid>().ok())
        };
        if let Some(hex) = payload["session"].as_str() {
            match decode_key(hex) {
                Some(key) => self.forget_session(&key),
                None => self.forget_all(),
            }
        } else if let (Some(staff), Some(facility)) = (id("staff"), id("facility")) {
            self.forget_person(&Principal::Staff {
                id: StaffId::from_uuid(staff),
                facility: FacilityId::from_uuid(facility),
            });
        } else if id("facility").is_some() {
            self.forget_people();
        } else if let Some(operator) = id("operator") {
            self.forget_person(&Principal::Operator {
                id: OperatorId::from_uuid(operator),
            });
        } else {
            // Something this version does not know: forgetting everything is always safe.
            tracing::warn!("an unknown principal change was announced; forgetting everyone");
            self.forget_all();
        }
    }

    /// Follows the announced changes until the task is stopped. Remembers nothing until it
    /// listens, and forgets everything whenever the connection is lost (announcements made
    /// meanwhile are gone).
    pub async fn follow(self, db: Database) {
        loop {
            match Announcements::listen(&db, announcements::PRINCIPAL_CHANGES).await {
                Ok(mut listener) => {
                    self.forget_all();
                    self.inner.listening.store(true, Ordering::Release);
                    loop {
                        match listener.recv().await {
                            Ok(payload) => self.changed(&payload),
                            Err(e) => {
                                tracing::warn!(error = %e, "principal changes interrupted");
                                break;
                            }
                        }
                    }
                    self.inner.listening.store(false, Ordering::Release);
                    self.forget_all();
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for principal changes"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Whether announcements reach this process (for tests that must know the memory is on).
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }
}

fn decode_key(hex: &str) -> Option<SessionKey> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> Principals {
        let p = Principals::new();
        p.inner.listening.store(true, Ordering::Release);
        p
    }

    fn record() -> Record {
        Record {
            id: tower_sessions::session::Id::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
        }
    }

    #[test]
    fn nothing_is_remembered_while_not_listening() {
        let p = Principals::new();
        let key = session_key("a");
        p.remember_session(p.generation(), key, record());
        assert!(p.session(&key).is_none());
    }

    #[test]
    fn a_value_read_before_a_change_is_not_remembered_after_it() {
        let p = listening();
        let key = session_key("a");
        let before = p.generation();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        p.changed(&serde_json::json!({ "session": hex }));
        p.remember_session(before, key, record());
        assert!(p.session(&key).is_none());
        p.remember_session(p.generation(), key, record());
        assert!(p.session(&key).is_some());
    }

    #[test]
    fn an_announced_session_is_forgotten_and_a_malformed_one_forgets_all() {
        let p = listening();
        let (a, b) = (session_key("a"), session_key("b"));
        p.remember_session(p.generation(), a, record());
        p.remember_session(p.generation(), b, record());
        let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
        p.changed(&serde_json::json!({ "session": hex }));
        assert!(p.session(&a).is_none());
        assert!(p.session(&b).is_some());
        p.changed(&serde_json::json!({ "session": "zz" }));
        assert!(p.session(&b).is_none());
    }
}
