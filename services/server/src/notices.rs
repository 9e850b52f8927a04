//! E-mail notices of account changes (issue 15): a person hears when a second factor of theirs
//! was added, removed or reset, or their recovery codes replaced, so a change they did not make
//! does not go unnoticed. What changed and when, never a secret, never patient data. Every
//! server process runs the job; a notice is claimed before it is sent, so it goes out once
//! (at least once: a process that dies between sending and recording leaves its claim to
//! expire, and another sends it again).

use renrakucho_store::account_notices::{self, DueNotice, NoticeEvent};
use renrakucho_store::{Database, Scope, StoreError};
use time::OffsetDateTime;

use crate::mail::Mailer;

/// How long a claim keeps other processes off a notice, and a failed one waits.
const CLAIM: time::Duration = time::Duration::minutes(5);
const RETRY_AFTER: time::Duration = time::Duration::minutes(10);

/// The notice's subject and text.
pub fn message(event: NoticeEvent, at: OffsetDateTime) -> (&'static str, String) {
    let (ja, en) = match event {
        NoticeEvent::SecondFactorAdded => (
            "認証アプリ（二要素認証）が設定されました",
            "an authenticator app (two-step verification) was set up",
        ),
        NoticeEvent::SecondFactorRemoved => (
            "認証アプリ（二要素認証）が解除されました",
            "your authenticator app (two-step verification) was removed",
        ),
        NoticeEvent::SecondFactorReset => (
            "二要素認証がリセットされました（施設管理者または運用者による）。次回のログインで設定し直してください",
            "your two-step verification was reset (by your facility administrator or the \
             operators); set it up again at your next sign-in",
        ),
        NoticeEvent::RecoveryCodesReplaced => (
            "回復コードが作り直されました（以前のコードは使えません）",
            "your recovery codes were replaced (the earlier ones no longer work)",
        ),
        NoticeEvent::PasskeyAdded => (
            "パスキーが登録されました",
            "a passkey was registered",
        ),
        NoticeEvent::PasskeyRemoved => (
            "パスキーが削除されました",
            "a passkey was removed",
        ),
    };
    let when = at
        .to_offset(time::macros::offset!(+9))
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]"
        ))
        .unwrap_or_default();
    let text = format!(
        "連絡帳のアカウントで、{ja}。\n日時: {when}（日本時間）\n\n\
         心当たりがない場合は、すぐに施設管理者に連絡してください。\n\n\
         ---\n\
         Renrakucho: on your account, {en}.\nWhen: {when} (Japan time)\n\
         If this was not you, tell your facility administrator at once.\n"
    );
    (
        "【連絡帳】アカウントの設定が変更されました / your account changed",
        text,
    )
}

/// Sends every due notice this process claims; returns how many went out. A failure is
/// logged (without the address) and the notice tried again ten minutes later.
pub async fn send_due(db: &Database, mailer: &Mailer, now: OffsetDateTime) -> usize {
    let due = match account_notices::due(db, now).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the account notices due");
            return 0;
        }
    };
    let mut sent = 0;
    for notice in due {
        match claim(db, &notice, now).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim an account notice");
                continue;
            }
        }
        let (subject, text) = message(notice.event, notice.created_at);
        let outcome = match mailer.send(&notice.email, subject, text).await {
            Ok(()) => Ok(OffsetDateTime::now_utc()),
            Err(e) => {
                tracing::warn!(error = %e, "an account notice could not be sent");
                Err(now + RETRY_AFTER)
            }
        };
        if let Err(e) = finish(db, &notice, outcome).await {
            tracing::warn!(error = %e, "an account notice's outcome was not recorded");
        }
        if outcome.is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Claims `notice` for this process, in its facility's scope.
async fn claim(db: &Database, notice: &DueNotice, now: OffsetDateTime) -> Result<bool, StoreError> {
    let mut tx = db.begin(Scope::Facility(notice.facility)).await?;
    let won = account_notices::claim(&mut tx, notice.id, now, now + CLAIM).await?;
    tx.commit().await?;
    Ok(won)
}

/// Records that `notice` went out, or when to try it again.
async fn finish(
    db: &Database,
    notice: &DueNotice,
    outcome: Result<OffsetDateTime, OffsetDateTime>,
) -> Result<(), StoreError> {
    let mut tx = db.begin(Scope::Facility(notice.facility)).await?;
    account_notices::finish(&mut tx, notice.id, outcome).await?;
    tx.commit().await
}
