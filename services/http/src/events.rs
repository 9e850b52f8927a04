//! Live notifications: every server process listens on `renrakucho_events` (new entries,
//! support requests, invitations, emergency access, consent changes: IDs and kinds only, announced by the
//! database through `private.announcements`) and passes each event to the people it concerns, over server-sent events. Who it
//! concerns is decided
//! here with the authorizer and the person's preferences (level, quiet hours, muted patients;
//! urgent ones always); the message says what happened and where, never what was written.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use renrakucho_authz::{Action, Authorizer};
use renrakucho_core::{PatientId, Priority};
use renrakucho_notebook::Preferences;
use renrakucho_registry::StaffActor;
use renrakucho_store::announcements::{self, Announcements};
use renrakucho_store::Database;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use uuid::Uuid;

use crate::access::{roles, staff};
use crate::error::ApiError;
use crate::session::SignedIn;
use crate::state::AppState;

/// An event as the database announces it.
#[derive(Debug, Clone, Deserialize)]
pub struct Announced {
    pub kind: String,
    pub patient: Uuid,
    #[serde(default)]
    pub entry: Option<Uuid>,
    #[serde(default)]
    pub request: Option<Uuid>,
    #[serde(default)]
    pub facility: Option<Uuid>,
    #[serde(default)]
    pub author: Option<Uuid>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub reply_to_author: Option<Uuid>,
    #[serde(default)]
    pub mentions: Option<Vec<Uuid>>,
    #[serde(default)]
    pub to: Option<Uuid>,
    #[serde(default)]
    pub status: Option<String>,
}

/// What a person is told.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Live {
    /// `entry`, `reply`, `mention`, `invitation`, `support`, `answer`, `emergency`,
    /// `consent_recorded`, `consent_renewed`, `consent_withdrawn`, `card_locked`
    pub kind: &'static str,
    pub patient: Uuid,
    pub entry: Option<Uuid>,
    pub request: Option<Uuid>,
    pub priority: Priority,
    /// Where to look, in the portal.
    pub link: String,
}

/// The process's feed of announced events, and of sessions ended here (so that their live
/// streams end at once rather than at their next check).
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Announced>,
    ended: broadcast::Sender<tower_sessions::session::Id>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            ended: broadcast::channel(256).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Announced> {
        self.sender.subscribe()
    }

    /// Tells this process's live streams that a session was signed out.
    pub fn session_ended(&self, id: tower_sessions::session::Id) {
        let _ = self.ended.send(id);
    }

    /// Listens until stopped, reconnecting when the connection drops.
    pub async fn follow(self, db: Database) {
        loop {
            match Announcements::listen(&db, announcements::EVENTS).await {
                Ok(mut listener) => loop {
                    match listener.recv().await {
                        Ok(payload) => match serde_json::from_value::<Announced>(payload) {
                            Ok(event) => {
                                let _ = self.sender.send(event);
                            }
                            Err(_) => tracing::warn!("ignoring a malformed event"),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "events interrupted");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot listen for events"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// Whether (and how) an announced event reaches this person.
pub async fn concerning(
    authz: &Authorizer,
    person_roles: &[renrakucho_authz::Role],
    who: StaffActor,
    prefs: &Preferences,
    event: &Announced,
    now: OffsetDateTime,
) -> Option<Live> {
    let person = Listener {
        authz,
        roles: person_roles,
        who,
        prefs,
        now,
    };
    let me = who.facility.as_uuid();
    match event.kind.as_str() {
        "entry" => entry_news(&person, event).await,
        "invitation" if event.to == Some(me) => invitation_news(&person, event),
        "support" => support_news(&person, event),
        // Break-glass access by another facility: everyone of the care team who sees the
        // patient is told at once, whatever their quiet hours or mutes (ADR 0010).
        "emergency" if event.facility.is_some_and(|f| f != me) => {
            emergency_news(&person, event).await
        }
        // Repeated failed identifications locked a card of one of the facility's patients:
        // its people who see the patient are told at once, as urgent (ADR 0018).
        "card_locked" if event.to == Some(me) => card_locked_news(&person, event).await,
        // A consent recorded, renewed or withdrawn by another facility: everyone of the care
        // team is told (withdrawal at once, whatever their quiet hours: sharing stopped), with
        // or without consent on file — what changed, never the form's content (ADR 0014).
        "consent" if event.facility.is_some_and(|f| f != me) => consent_news(&person, event).await,
        _ => None,
    }
}

/// The person an event is weighed for: what they may do and what they chose to hear.
struct Listener<'a> {
    authz: &'a Authorizer,
    roles: &'a [renrakucho_authz::Role],
    who: StaffActor,
    prefs: &'a Preferences,
    now: OffsetDateTime,
}

impl Listener<'_> {
    /// Whether the person may do `action` on the patient (no answer: no).
    async fn may(&self, patient: PatientId, action: Action) -> bool {
        self.authz
            .allowed(self.roles, self.who.facility, patient, action)
            .await
            .unwrap_or(false)
    }

    /// Whether a notification of `priority` reaches the person now (their preferences).
    fn reaches(&self, priority: Priority, patient: PatientId) -> bool {
        renrakucho_notebook::reaches(self.prefs, priority, patient, self.now)
    }
}

/// A new entry: a reply to the person's entry or a mention of their facility asks for a
/// reply; never their own entry, and only on a patient whose notebook they read.
async fn entry_news(person: &Listener<'_>, event: &Announced) -> Option<Live> {
    let who = person.who;
    if event.author == Some(who.staff.as_uuid()) {
        return None;
    }
    let patient = PatientId::from_uuid(event.patient);
    if !person.may(patient, Action::NotebookRead).await {
        return None;
    }
    let priority: Priority = event
        .priority
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(Priority::Info);
    let (kind, effective) = if event.reply_to_author == Some(who.staff.as_uuid()) {
        ("reply", priority.max_rank(Priority::ReplyRequested))
    } else if event
        .mentions
        .as_ref()
        .is_some_and(|m| m.contains(&who.facility.as_uuid()))
    {
        ("mention", priority.max_rank(Priority::ReplyRequested))
    } else {
        ("entry", priority)
    };
    person.reaches(effective, patient).then(|| Live {
        kind,
        patient: event.patient,
        entry: event.entry,
        request: None,
        priority: effective,
        link: match event.entry {
            Some(e) => format!("/patients/{}/entries/{e}", event.patient),
            None => format!("/patients/{}", event.patient),
        },
    })
}

/// An invitation to the person's facility.
fn invitation_news(person: &Listener<'_>, event: &Announced) -> Option<Live> {
    let patient = PatientId::from_uuid(event.patient);
    person
        .reaches(Priority::ReplyRequested, patient)
        .then(|| Live {
            kind: "invitation",
            patient: event.patient,
            entry: None,
            request: None,
            priority: Priority::ReplyRequested,
            link: "/invitations".into(),
        })
}

/// A support request to the person's facility, or the answer to one it sent.
fn support_news(person: &Listener<'_>, event: &Announced) -> Option<Live> {
    let patient = PatientId::from_uuid(event.patient);
    let me = person.who.facility.as_uuid();
    let status = event.status.as_deref().unwrap_or_default();
    let (kind, ours) = if event.to == Some(me) && status == "requested" {
        ("support", true)
    } else if event.facility == Some(me) && status == "answered" {
        ("answer", true)
    } else {
        ("support", false)
    };
    (ours && person.reaches(Priority::ReplyRequested, patient)).then(|| Live {
        kind,
        patient: event.patient,
        entry: None,
        request: event.request,
        priority: Priority::ReplyRequested,
        link: match event.request {
            Some(r) => format!("/support/{r}"),
            None => "/support".into(),
        },
    })
}

/// Break-glass access by another facility, to everyone who sees the patient: urgent.
async fn emergency_news(person: &Listener<'_>, event: &Announced) -> Option<Live> {
    let patient = PatientId::from_uuid(event.patient);
    let sees = person.may(patient, Action::PatientRead).await;
    sees.then(|| Live {
        kind: "emergency",
        patient: event.patient,
        entry: None,
        request: None,
        priority: Priority::Urgent,
        link: "/emergency".into(),
    })
}

/// A card of one of the facility's patients locked, to those who see the patient: urgent.
async fn card_locked_news(person: &Listener<'_>, event: &Announced) -> Option<Live> {
    let patient = PatientId::from_uuid(event.patient);
    let sees = person.may(patient, Action::PatientRead).await;
    sees.then_some(Live {
        kind: "card_locked",
        patient: event.patient,
        entry: None,
        request: None,
        priority: Priority::Urgent,
        link: format!("/patients/{}", event.patient),
    })
}

/// A consent changed by another facility, to those told of consent changes.
async fn consent_news(person: &Listener<'_>, event: &Announced) -> Option<Live> {
    let patient = PatientId::from_uuid(event.patient);
    let ours = person.may(patient, Action::ConsentChanges).await;
    let (kind, priority) = match event.status.as_deref() {
        Some("withdrawn") => ("consent_withdrawn", Priority::Urgent),
        Some("renewed") => ("consent_renewed", Priority::ReplyRequested),
        _ => ("consent_recorded", Priority::ReplyRequested),
    };
    (ours && person.reaches(priority, patient)).then(|| Live {
        kind,
        patient: event.patient,
        entry: None,
        request: None,
        priority,
        link: "/notifications".into(),
    })
}

/// `GET /api/v1/events`: the signed-in person's live notifications, as server-sent events
/// (`event: notification`, data JSON `{kind, patient, entry, request, priority, link}`).
/// The stream ends when the session stops being good (signed out elsewhere, idle, account
/// suspended): the page then finds itself signed out.
#[utoipa::path(get, path = "/api/v1/events", tag = "notifications",
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "Server-sent events, as long as the session is good: `event: notification` \
            with data JSON `{kind, patient, entry, request, priority, link}` (IDs and kinds only, \
            never what was written); a comment every 20 s keeps the connection open."),
        (status = 403, description = "Platform operators have no live notifications", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn stream(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    signed_in: SignedIn,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let who = staff(&signed_in)?;
    let session_id = session.id().ok_or_else(ApiError::unauthenticated)?;
    let watcher = state.clone();
    let mut signed_out = state.events.ended.subscribe();
    let session_ended = async move {
        let mut every = tokio::time::interval(watcher.sessions.recheck_every());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            // Signed out in this process: at once. Anything else (another process's sign-out,
            // idle, a suspended account, missed news): at the next check.
            tokio::select! {
                _ = every.tick() => {}
                ended = signed_out.recv() => match ended {
                    Ok(id) if id == session_id => {
                        tracing::info!("live notifications ended: signed out");
                        return;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        every.tick().await;
                    }
                },
            }
            // On a task of its own: a client going away mid-check does not cut a query short.
            let state = watcher.clone();
            let valid =
                tokio::spawn(async move { crate::session::still_valid(&state, session_id).await })
                    .await
                    .unwrap_or(false);
            if !valid {
                tracing::info!("live notifications ended: the session is no longer valid");
                return;
            }
        }
    };
    let person_roles = roles(&signed_in);
    let receiver = state.events.subscribe();
    let db = state.db.clone();
    let authz = state.authz.clone();
    let prefs = renrakucho_notebook::preferences_of(&db, who).await?;
    let prefs = std::sync::Arc::new(tokio::sync::RwLock::new((prefs, OffsetDateTime::now_utc())));
    let stream = tokio_stream::wrappers::BroadcastStream::new(receiver)
        .filter_map(|r| r.ok())
        .then(move |event| {
            let (db, authz, prefs, person_roles) = (
                db.clone(),
                authz.clone(),
                prefs.clone(),
                person_roles.clone(),
            );
            async move {
                let now = OffsetDateTime::now_utc();
                // Preferences change rarely: read again at most once a minute.
                let stale = now - prefs.read().await.1 > time::Duration::minutes(1);
                if stale {
                    let reading =
                        tokio::spawn(
                            async move { renrakucho_notebook::preferences_of(&db, who).await },
                        );
                    if let Ok(Ok(fresh)) = reading.await {
                        *prefs.write().await = (fresh, now);
                    }
                }
                let current = prefs.read().await.0.clone();
                concerning(&authz, &person_roles, who, &current, &event, now).await
            }
        })
        .filter_map(|live| live);
    let stream = futures_util::StreamExt::take_until(stream, session_ended).map(|live| {
        Ok(SseEvent::default()
            .event("notification")
            .json_data(&live)
            .unwrap_or_else(|_| SseEvent::default().comment("unserialisable")))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20))))
}
