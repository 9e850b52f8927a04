//! The daily e-mail digest (第23条 aside, notifications must not drown people): for each person
//! who asked for one, once a day at their hour, the number of unread entries (urgent and
//! reply-requested counted apart), invitations and support requests, and a link. Never a name,
//! never a word of an entry.

use renrakucho_notebook::DigestCounts;
use renrakucho_store::Database;
use time::OffsetDateTime;

use crate::mail::Mailer;

/// The digest's text.
pub fn text(counts: &DigestCounts, link: &str) -> String {
    format!(
        "連絡帳からのお知らせです。\n\n\
         未読の記録: {total}件（至急 {urgent}件・要返信 {reply}件、対象者 {patients}名、過去{days}日）\n\
         ケアチームへの招待: {invitations}件\n\
         支援依頼: {support}件\n\n\
         内容は連絡帳で確認してください: {link}\n\n\
         このメールには対象者の情報は含まれていません。配信の設定は連絡帳の「通知設定」で変更できます。\n\n\
         ---\n\
         Renrakucho: {total} unread entries of the last {days} days ({urgent} urgent, \
         {reply} reply requested, {patients} patients), {invitations} invitations, \
         {support} support requests.\n\
         Read them in Renrakucho: {link}\n",
        total = counts.unread_total,
        urgent = counts.unread_urgent,
        reply = counts.unread_reply_requested,
        patients = counts.patients_with_unread,
        invitations = counts.invitations,
        support = counts.support_requests,
        days = renrakucho_notebook::UNREAD_WINDOW.whole_days(),
    )
}

/// Sends every digest due at `now` that this process claims (so that N server processes send
/// each one once); returns how many went out. A failure for one person is logged (without the
/// address), the claim given back, and retried at the next round. A process that dies between
/// sending and recording leaves its claim to expire ([`renrakucho_notebook::DIGEST_LEASE`]):
/// that one digest may then go out twice, which the record cannot prevent without the mail
/// server taking part.
pub async fn send_due(
    db: &Database,
    mailer: &Mailer,
    base_url: &str,
    now: OffsetDateTime,
) -> usize {
    let due = match renrakucho_notebook::digests_due(db, now).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the digests due");
            return 0;
        }
    };
    let mut sent = 0;
    for d in due {
        match renrakucho_notebook::claim_digest(db, &d, now).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a digest");
                continue;
            }
        }
        let counts = match renrakucho_notebook::digest_counts(db, d.who, now).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not count a digest");
                give_back(db, &d).await;
                continue;
            }
        };
        let link = format!("{}/", base_url.trim_end_matches('/'));
        let subject = if counts.unread_urgent > 0 {
            "【連絡帳】至急の未読があります / urgent unread entries"
        } else {
            "【連絡帳】本日のお知らせ / today's digest"
        };
        if let Err(e) = mailer.send(&d.email, subject, text(&counts, &link)).await {
            tracing::warn!(error = %e, "a digest could not be sent");
            give_back(db, &d).await;
            continue;
        }
        if let Err(e) = renrakucho_notebook::digest_sent(db, d.who, &counts, now).await {
            tracing::warn!(error = %e, "a digest was sent but not recorded");
        }
        sent += 1;
    }
    sent
}

/// Gives a digest's claim back so that the next round (in any process) retries it.
async fn give_back(db: &Database, due: &renrakucho_notebook::DigestDue) {
    if let Err(e) = renrakucho_notebook::release_digest(db, due.who).await {
        tracing::warn!(error = %e, "a digest's claim could not be given back; it expires");
    }
}
