//! Notifications that do not drown people: each person chooses from which level live
//! notifications reach them (至急 urgent / 要返信 reply requested / 参考 for information), quiet
//! hours, a daily e-mail digest and patients to mute; urgent ones always come through. The
//! feed is computed from what the person's facility may see (new entries on its patients,
//! replies to the person's entries, mentions of the facility, invitations, support requests);
//! the e-mail digest carries counts and a link, never patient data.

use renrakucho_core::{FacilityId, InvalidValue, PatientId, Priority};
use renrakucho_registry::audit::record;
use renrakucho_registry::{may, Authorized, CareError, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::notifications::{self, Settings};
use renrakucho_store::{care_team, notebook, support, Database, ScopedTx};
use serde::Serialize;
use serde_json::json;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

const JST: UtcOffset = time::macros::offset!(+9);

/// A person's notification preferences.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Preferences {
    pub email: Option<String>,
    /// Live notifications from this level up.
    pub live_level: Priority,
    /// Quiet hours in Japan time (start == end: none); urgent ones come through.
    pub quiet_start: u8,
    pub quiet_end: u8,
    pub digest_enabled: bool,
    pub digest_hour: u8,
    pub muted: Vec<PatientId>,
}

renrakucho_core::redacted_debug!(Preferences {
    live_level,
    quiet_start,
    quiet_end,
    digest_enabled,
    digest_hour,
    muted
});

impl Default for Preferences {
    fn default() -> Self {
        Self {
            email: None,
            live_level: Priority::Info,
            quiet_start: 0,
            quiet_end: 0,
            digest_enabled: false,
            digest_hour: 7,
            muted: Vec::new(),
        }
    }
}

fn hour(raw: i64, field: &'static str) -> Result<u8, InvalidValue> {
    u8::try_from(raw).ok().filter(|h| *h < 24).ok_or_else(|| {
        InvalidValue::new(
            field,
            "時刻は0〜23時で指定してください / an hour from 0 to 23",
        )
    })
}

/// Preferences as entered, checked.
pub fn preferences(
    email: Option<&str>,
    live_level: &str,
    quiet_start: i64,
    quiet_end: i64,
    digest_enabled: bool,
    digest_hour: i64,
) -> Result<Preferences, InvalidValue> {
    let email = match email.map(str::trim) {
        None | Some("") => None,
        // The network's one rule, which the database's CHECK states too (migration 17).
        Some(e) => Some(renrakucho_core::Email::parse(e)?.as_str().to_string()),
    };
    if digest_enabled && email.is_none() {
        return Err(InvalidValue::new(
            "email",
            "ダイジェストを受け取るにはメールアドレスを入力してください / a daily digest needs an e-mail address",
        ));
    }
    Ok(Preferences {
        email,
        live_level: live_level.parse().map_err(|_| {
            InvalidValue::new(
                "live_level",
                "通知する重要度を選んでください / choose a notification level",
            )
        })?,
        quiet_start: hour(quiet_start, "quiet_start")?,
        quiet_end: hour(quiet_end, "quiet_end")?,
        digest_enabled,
        digest_hour: hour(digest_hour, "digest_hour")?,
        muted: Vec::new(),
    })
}

fn from_settings(s: Settings, muted: Vec<Uuid>) -> Preferences {
    Preferences {
        email: s.email,
        live_level: s.live_level.parse().unwrap_or(Priority::Info),
        quiet_start: s.quiet_start as u8,
        quiet_end: s.quiet_end as u8,
        digest_enabled: s.digest_enabled,
        digest_hour: s.digest_hour as u8,
        muted: muted.into_iter().map(PatientId::from_uuid).collect(),
    }
}

/// The person's preferences (the defaults until they save some).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn preferences_of(db: &Database, who: StaffActor) -> Result<Preferences, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let saved = notifications::get(&mut tx, who.staff).await?;
    let muted = notifications::muted(&mut tx, who.staff).await?;
    tx.commit().await?;
    Ok(match saved {
        Some(s) => from_settings(s, muted),
        None => Preferences {
            muted: muted.into_iter().map(PatientId::from_uuid).collect(),
            ..Preferences::default()
        },
    })
}

/// Saves the person's preferences.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn save_preferences(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    p: &Preferences,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let settings = notifications::NewSettings {
        email: p.email.as_deref(),
        live_level: p.live_level.as_str(),
        quiet_start: i16::from(p.quiet_start),
        quiet_end: i16::from(p.quiet_end),
        digest_enabled: p.digest_enabled,
        digest_hour: i16::from(p.digest_hour),
    };
    notifications::save(&mut tx, who.staff, &settings).await?;
    record(
        &mut tx,
        who,
        origin,
        "notifications.settings",
        None,
        json!({ "live_level": p.live_level.as_str(), "digest": p.digest_enabled }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Mutes (or unmutes) a patient for the person.
#[tracing::instrument(level = "debug", skip_all, fields(patient = %allowed.patient()))]
pub async fn set_muted(
    db: &Database,
    allowed: &Authorized<may::NotebookRead>,
    origin: &Origin,
    muted: bool,
) -> Result<(), CareError> {
    let who = StaffActor::from(allowed);
    let patient = allowed.patient();
    let mut tx = db.begin(who.scope()).await?;
    renrakucho_store::patients::get(&mut tx, patient).await?;
    if muted {
        notifications::mute(&mut tx, who.staff, patient).await?;
    } else {
        notifications::unmute(&mut tx, who.staff, patient).await?;
    }
    record(
        &mut tx,
        who,
        origin,
        if muted {
            "notifications.mute"
        } else {
            "notifications.unmute"
        },
        Some(("patient", patient.as_uuid())),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `now` falls in the quiet hours (Japan time; start == end: never).
pub fn in_quiet_hours(p: &Preferences, now: OffsetDateTime) -> bool {
    let h = now.to_offset(JST).hour();
    match (p.quiet_start, p.quiet_end) {
        (s, e) if s == e => false,
        (s, e) if s < e => (s..e).contains(&h),
        (s, e) => h >= s || h < e,
    }
}

/// Whether a live notification of `priority` about `patient` reaches the person now. Urgent
/// ones always do: through quiet hours and mutes alike.
pub fn reaches(
    p: &Preferences,
    priority: Priority,
    patient: PatientId,
    now: OffsetDateTime,
) -> bool {
    if priority == Priority::Urgent {
        return true;
    }
    priority.rank() >= p.live_level.rank() && !in_quiet_hours(p, now) && !p.muted.contains(&patient)
}

/// Something in the person's feed.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// `entry`, `reply`, `mention`, `invitation`, `support`, `consent_recorded`,
    /// `consent_renewed`, `consent_withdrawn` or `card_locked`.
    pub kind: &'static str,
    pub patient: PatientId,
    pub entry: Option<Uuid>,
    pub request: Option<Uuid>,
    pub priority: Priority,
    pub from: Option<FacilityId>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub read: bool,
}

/// The person's feed over the last `days`, newest first: entries concerning them (replies to
/// their entries, mentions of their facility, entries on shared patients at or above their
/// level, muted patients left out unless urgent), invitations to their facility, support
/// requests to it. IDs and kinds only; the portal links to the patient.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn feed(
    db: &Database,
    who: StaffActor,
    origin: &Origin,
    days: i64,
) -> Result<Vec<Notification>, CareError> {
    let prefs = preferences_of(db, who).await?;
    let since = OffsetDateTime::now_utc() - time::Duration::days(days.clamp(1, 30));
    let mut tx = db.begin(who.scope()).await?;
    let mut out = entries_concerning(&mut tx, who, &prefs, since).await?;
    out.extend(invitations(&mut tx).await?);
    out.extend(support_requests(&mut tx, who).await?);
    out.extend(locked_cards(&mut tx, since).await?);
    out.extend(consent_changes(&mut tx, since).await?);
    out.sort_by_key(|n| std::cmp::Reverse(n.at));
    record(
        &mut tx,
        who,
        origin,
        "notifications.read",
        None,
        json!({ "items": out.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

/// Entries concerning the person: replies to their entries and mentions of their facility
/// always; other entries at or above their level, muted patients left out unless urgent.
async fn entries_concerning(
    tx: &mut ScopedTx,
    who: StaffActor,
    prefs: &Preferences,
    since: OffsetDateTime,
) -> Result<Vec<Notification>, CareError> {
    let mut out = Vec::new();
    for c in notebook::concerning(tx, who.staff, since, 500).await? {
        let priority: Priority = c.priority.parse().unwrap_or(Priority::Info);
        let patient = PatientId::from_uuid(c.patient_id);
        let kind = if c.is_reply_to_me {
            "reply"
        } else if c.mentions_us {
            "mention"
        } else {
            "entry"
        };
        let shown = kind != "entry"
            || priority == Priority::Urgent
            || (priority.rank() >= prefs.live_level.rank() && !prefs.muted.contains(&patient));
        if shown {
            out.push(Notification {
                kind,
                patient,
                entry: Some(c.entry_id),
                request: None,
                priority,
                from: Some(FacilityId::from_uuid(c.facility_id)),
                at: c.created_at,
                read: c.read,
            });
        }
    }
    Ok(out)
}

/// Invitations to the person's facility still waiting for an answer.
async fn invitations(tx: &mut ScopedTx) -> Result<Vec<Notification>, CareError> {
    let mut out = Vec::new();
    for i in care_team::pending_invitations(tx).await? {
        out.push(Notification {
            kind: "invitation",
            patient: i.patient,
            entry: None,
            request: None,
            priority: Priority::ReplyRequested,
            from: Some(i.registering_facility),
            at: i.invited_at,
            read: false,
        });
    }
    Ok(out)
}

/// Support requests to the person's facility not yet accepted or declined.
async fn support_requests(
    tx: &mut ScopedTx,
    who: StaffActor,
) -> Result<Vec<Notification>, CareError> {
    let mut out = Vec::new();
    for r in support::visible(tx, 100).await? {
        if r.to_facility_id == who.facility.as_uuid() && r.status == "requested" {
            out.push(Notification {
                kind: "support",
                patient: PatientId::from_uuid(r.patient_id),
                entry: None,
                request: Some(r.id),
                priority: Priority::ReplyRequested,
                from: Some(FacilityId::from_uuid(r.facility_id)),
                at: r.created_at,
                read: false,
            });
        }
    }
    Ok(out)
}

/// A card of one of the facility's patients locked by failed identifications (the fifth
/// failure within an hour): urgent, like the live message (ADR 0018).
async fn locked_cards(
    tx: &mut ScopedTx,
    since: OffsetDateTime,
) -> Result<Vec<Notification>, CareError> {
    let mut out = Vec::new();
    for f in renrakucho_store::emergency::card_failures(tx, None, since, 100).await? {
        if f.within_hour == i64::from(renrakucho_registry::IDENTIFICATION_LIMIT) {
            out.push(Notification {
                kind: "card_locked",
                patient: PatientId::from_uuid(f.patient_id),
                entry: None,
                request: None,
                priority: Priority::Urgent,
                from: Some(FacilityId::from_uuid(f.facility_id)),
                at: f.attempted_at,
                read: false,
            });
        }
    }
    Ok(out)
}

/// Consents recorded, renewed or withdrawn by other facilities of the care team (ADR 0014).
async fn consent_changes(
    tx: &mut ScopedTx,
    since: OffsetDateTime,
) -> Result<Vec<Notification>, CareError> {
    let mut out = Vec::new();
    for c in renrakucho_store::consents::changes_since(tx, since, 100).await? {
        let (kind, priority) = match c.kind.as_str() {
            "withdrawn" => ("consent_withdrawn", Priority::Urgent),
            "renewed" => ("consent_renewed", Priority::ReplyRequested),
            _ => ("consent_recorded", Priority::ReplyRequested),
        };
        out.push(Notification {
            kind,
            patient: PatientId::from_uuid(c.patient_id),
            entry: None,
            request: None,
            priority,
            from: Some(FacilityId::from_uuid(c.facility_id)),
            at: c.changed_at,
            read: false,
        });
    }
    Ok(out)
}

/// What a daily digest says: counts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DigestCounts {
    pub unread_urgent: i64,
    pub unread_reply_requested: i64,
    pub unread_total: i64,
    pub patients_with_unread: i64,
    pub invitations: i64,
    pub support_requests: i64,
}

/// The counts for one person's digest (in their facility's scope), as of `now` (unread: the
/// entries of the [`crate::UNREAD_WINDOW`] before it).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn digest_counts(
    db: &Database,
    who: StaffActor,
    now: OffsetDateTime,
) -> Result<DigestCounts, CareError> {
    let mut tx = db.begin(who.scope()).await?;
    let since = now - crate::entries::UNREAD_WINDOW;
    let unread = notebook::unread(&mut tx, who.staff, since).await?;
    let invitations = care_team::pending_invitations(&mut tx).await?.len() as i64;
    let support_requests = support::visible(&mut tx, 200)
        .await?
        .iter()
        .filter(|r| r.to_facility_id == who.facility.as_uuid() && r.status == "requested")
        .count() as i64;
    tx.commit().await?;
    Ok(DigestCounts {
        unread_urgent: unread.iter().map(|u| u.urgent).sum(),
        unread_reply_requested: unread.iter().map(|u| u.reply_requested).sum(),
        unread_total: unread.iter().map(|u| u.total).sum(),
        patients_with_unread: unread.len() as i64,
        invitations,
        support_requests,
    })
}

/// Someone whose digest is due.
#[derive(Clone)]
pub struct DigestDue {
    pub who: StaffActor,
    pub email: String,
    /// The start of their day (Japan time): a digest sent since then is today's.
    pub sent_before: OffsetDateTime,
}

renrakucho_core::redacted_debug!(DigestDue { who });

/// Everyone whose daily digest is due at `now`: the hour has come (Japan time) and none went
/// out today.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn digests_due(db: &Database, now: OffsetDateTime) -> Result<Vec<DigestDue>, CareError> {
    let local = now.to_offset(JST);
    let today_start = local
        .replace_time(time::Time::MIDNIGHT)
        .to_offset(time::UtcOffset::UTC);
    Ok(notifications::digest_subscribers(db)
        .await?
        .into_iter()
        .filter(|s| local.hour() >= s.digest_hour as u8)
        .filter(|s| s.last_digest_at.is_none_or(|t| t < today_start))
        .filter_map(|s| {
            Some(DigestDue {
                who: StaffActor {
                    staff: renrakucho_core::StaffId::from_uuid(s.staff_id),
                    facility: FacilityId::from_uuid(s.facility_id),
                },
                email: s.email?,
                sent_before: today_start,
            })
        })
        .collect())
}

/// How long a claimed digest stays this process's to send: a process that dies holding a
/// claim delays that digest by at most this long (another process then sends it).
pub const DIGEST_LEASE: time::Duration = time::Duration::minutes(10);

/// Claims a due digest for this process (see `renrakucho_store::notifications::claim_digest`):
/// true when this process should send it, false when it was sent or another process holds it.
/// So N server processes send each digest once.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim_digest(
    db: &Database,
    due: &DigestDue,
    now: OffsetDateTime,
) -> Result<bool, CareError> {
    let mut tx = db.begin(due.who.scope()).await?;
    let won = notifications::claim_digest(
        &mut tx,
        due.who.staff,
        due.sent_before,
        now,
        now + DIGEST_LEASE,
    )
    .await?;
    tx.commit().await?;
    Ok(won)
}

/// Gives a claimed digest back after a failed send: the next round retries it.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn release_digest(db: &Database, who: StaffActor) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    notifications::release_digest(&mut tx, who.staff).await?;
    tx.commit().await?;
    Ok(())
}

/// Records that a digest went out (audited: it is a message about patients, if only counts).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn digest_sent(
    db: &Database,
    who: StaffActor,
    counts: &DigestCounts,
    at: OffsetDateTime,
) -> Result<(), CareError> {
    let mut tx = db.begin(who.scope()).await?;
    notifications::digest_sent(&mut tx, who.staff, at).await?;
    renrakucho_store::audit::record(
        &mut tx,
        renrakucho_store::audit::AuditEvent {
            actor: renrakucho_store::audit::Actor::System,
            action: "notifications.digest",
            outcome: renrakucho_store::audit::Outcome::Success,
            target: Some(("staff", who.staff.as_uuid())),
            origin: &Origin::default(),
            details: json!({ "unread": counts.unread_total }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_jst(hour: u8) -> OffsetDateTime {
        time::macros::datetime!(2026-11-25 00:00 +9)
            .replace_hour(hour)
            .unwrap()
    }

    #[test]
    fn quiet_hours_wrap_midnight_and_urgent_always_reaches() {
        let p = Preferences {
            quiet_start: 22,
            quiet_end: 7,
            live_level: Priority::ReplyRequested,
            muted: vec![PatientId::from_uuid(Uuid::nil())],
            ..Preferences::default()
        };
        let patient = PatientId::from_uuid(Uuid::from_u128(1));
        let muted = PatientId::from_uuid(Uuid::nil());
        assert!(in_quiet_hours(&p, at_jst(23)));
        assert!(in_quiet_hours(&p, at_jst(3)));
        assert!(!in_quiet_hours(&p, at_jst(7)));
        assert!(!in_quiet_hours(&p, at_jst(12)));
        assert!(reaches(&p, Priority::ReplyRequested, patient, at_jst(12)));
        assert!(
            !reaches(&p, Priority::Info, patient, at_jst(12)),
            "below the level"
        );
        assert!(
            !reaches(&p, Priority::ReplyRequested, patient, at_jst(23)),
            "quiet"
        );
        assert!(
            reaches(&p, Priority::Urgent, patient, at_jst(23)),
            "urgent in quiet hours"
        );
        assert!(
            !reaches(&p, Priority::ReplyRequested, muted, at_jst(12)),
            "muted"
        );
        assert!(
            reaches(&p, Priority::Urgent, muted, at_jst(12)),
            "urgent on a muted patient"
        );
        let none = Preferences::default();
        assert!(!in_quiet_hours(&none, at_jst(3)));
    }

    #[test]
    fn preferences_are_checked() {
        assert!(preferences(Some("a@b.jp"), "urgent", 22, 7, true, 7).is_ok());
        assert_eq!(
            preferences(Some("not-an-address"), "info", 0, 0, false, 7)
                .unwrap_err()
                .field,
            "email"
        );
        assert_eq!(
            preferences(None, "info", 0, 0, true, 7).unwrap_err().field,
            "email"
        );
        assert_eq!(
            preferences(None, "loud", 0, 0, false, 7).unwrap_err().field,
            "live_level"
        );
        assert_eq!(
            preferences(None, "info", 24, 0, false, 7)
                .unwrap_err()
                .field,
            "quiet_start"
        );
    }
}
