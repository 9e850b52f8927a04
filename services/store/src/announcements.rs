//! Announcements: what the database tells every server process (a new entry, a changed relation,
//! a changed key). A NOTIFY payload is readable by anyone who can LISTEN — PostgreSQL has no
//! privilege for that — so it carries only the number of a row of `private.announcements`; the
//! listener role (renrakucho_listener) reads the row.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::{Database, StoreError};

/// The channel of new entries, support requests, invitations and emergency access.
pub const EVENTS: &str = "renrakucho_events";
/// The channel of changed relations (a patient's care team, consent, grants).
pub const ACCESS_CHANGES: &str = "renrakucho_access_changes";
/// The channel of changed data keys (a new version, a destroyed key).
pub const KEY_CHANGES: &str = "renrakucho_key_changes";
/// The channel of changed principals: a staff account, a facility or an operator account
/// changed, a session ended (ADR 0025).
pub const PRINCIPAL_CHANGES: &str = "renrakucho_principal_changes";

/// A LISTEN connection on one channel.
pub struct Announcements {
    channel: &'static str,
    listener: PgListener,
}

impl Announcements {
    /// Starts listening on `channel` (one of the constants above).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn listen(db: &Database, channel: &'static str) -> Result<Self, StoreError> {
        let mut listener = PgListener::connect_with(db.listener_pool()).await?;
        listener.listen(channel).await?;
        Ok(Self { channel, listener })
    }

    /// The next announcement's content. Waits; an error means the connection is gone (listen
    /// again: announcements made meanwhile are missed).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn recv(&mut self) -> Result<serde_json::Value, StoreError> {
        loop {
            let notification = self.listener.recv().await?;
            let Ok(id) = notification.payload().parse::<i64>() else {
                tracing::warn!(channel = self.channel, "ignoring a malformed announcement");
                continue;
            };
            let payload = sqlx::query_scalar!(
                "SELECT payload FROM private.announcements WHERE id = $1 AND channel = $2",
                id,
                self.channel,
            )
            .fetch_optional(&mut self.listener)
            .await?;
            match payload {
                Some(payload) => return Ok(payload),
                // Removed by housekeeping before we came to it, or not an announcement at all.
                None => continue,
            }
        }
    }
}

/// Removes announcements older than `age` (every process has long read them). Returns how many.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn forget_older_than(db: &Database, age: Duration) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "DELETE FROM private.announcements WHERE announced_at < now() - make_interval(secs => $1)",
        age.as_secs_f64(),
    )
    .execute(db.listener_pool())
    .await?;
    Ok(done.rows_affected())
}
