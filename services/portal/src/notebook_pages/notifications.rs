//! Notifications: the feed and each person's preferences.

use super::*;

struct NotificationLine {
    priority: &'static str,
    priority_class: &'static str,
    urgent: bool,
    kind: &'static str,
    read: bool,
    at: String,
    link: String,
    what: String,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    items: Vec<NotificationLine>,
    levels: Vec<(&'static str, &'static str)>,
    live_level: String,
    quiet_start: u8,
    quiet_end: u8,
    email: String,
    digest_enabled: bool,
    digest_hour: u8,
}

/// Patients' names for the lines the person may read (the others say 対象者).
async fn names_of(
    page: &PageRequest,
    feed: &[renrakucho_notebook::Notification],
) -> std::collections::HashMap<PatientId, String> {
    let (state, user) = (&page.state, &page.user);
    let mut names = std::collections::HashMap::new();
    for n in feed {
        if names.contains_key(&n.patient) {
            continue;
        }
        let reader =
            renrakucho_http::access::check::<may::PatientRead>(state, user, n.patient).await;
        if let Some(reader) = reader {
            if let Ok(p) =
                renrakucho_registry::patient(&state.db, &state.keyring, &reader, page.origin())
                    .await
            {
                names.insert(n.patient, p.name.as_str().to_string());
            }
        }
    }
    names
}

impl NotificationLine {
    fn new(n: &renrakucho_notebook::Notification, name: Option<&String>) -> Self {
        let patient = n.patient.as_uuid();
        let name = name.cloned().unwrap_or_else(|| "対象者".into());
        NotificationLine {
            priority: n.priority.label_ja(),
            priority_class: match n.priority {
                Priority::Urgent => "urgent",
                Priority::ReplyRequested => "reply",
                Priority::Info => "",
            },
            urgent: n.priority == Priority::Urgent,
            kind: match n.kind {
                "reply" => "返信",
                "mention" => "自施設あて",
                "invitation" => "招待",
                "support" => "支援依頼",
                "card_locked" => "カード照会停止",
                "consent_recorded" => "同意",
                "consent_renewed" => "再同意",
                "consent_withdrawn" => "同意撤回",
                _ => "記録",
            },
            read: n.read,
            at: local(n.at),
            link: match (n.kind, n.entry, n.request) {
                ("invitation", _, _) => "/invitations".into(),
                (_, _, Some(r)) => format!("/support/{r}"),
                (_, Some(e), _) => format!("/patients/{patient}/entries/{e}"),
                _ => format!("/patients/{patient}"),
            },
            what: match n.kind {
                "invitation" => "ケアチームへの招待 / invitation".into(),
                "support" => "支援依頼 / support request".into(),
                "card_locked" => format!(
                    "{name} のカードで緊急閲覧の本人確認が続けて失敗しました / repeated failed emergency identifications locked the card"
                ),
                // A facility that no longer shares the patient sees no name.
                "consent_recorded" => "同意書が登録されました / a consent was recorded".into(),
                "consent_renewed" => {
                    "再同意が登録され、連絡帳を再び閲覧できます / consent renewed: the notebook is shared again"
                        .into()
                }
                "consent_withdrawn" => {
                    "同意が撤回され、連絡帳の共有が止まりました / consent withdrawn: sharing stopped"
                        .into()
                }
                _ => format!("{name} の連絡帳"),
            },
        }
    }
}

async fn notifications_page(
    page: &PageRequest,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let (state, user) = (&page.state, &page.user);
    let who = match staff(user) {
        Ok(w) => w,
        Err(e) => return failed(e),
    };
    let prefs = match renrakucho_notebook::preferences_of(&state.db, who).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let feed = match renrakucho_notebook::feed(&state.db, who, page.origin(), 7).await {
        Ok(f) => {
            renrakucho_http::access::notebook_items(
                state,
                user,
                f,
                renrakucho_http::access::tells_the_notebook,
            )
            .await
        }
        Err(e) => return failed(e),
    };
    let names = names_of(page, &feed).await;
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let view = NotificationsPage {
        admin: page.is_admin(),
        token: page.authenticity(),
        done,
        error: error.map(|e| e.message),
        items: feed
            .iter()
            .map(|n| NotificationLine::new(n, names.get(&n.patient)))
            .collect(),
        levels: vec![
            ("info", "すべて（参考・要返信・至急） / everything"),
            (
                "reply_requested",
                "要返信と至急 / reply requested and urgent",
            ),
            ("urgent", "至急のみ / urgent only"),
        ],
        live_level: prefs.live_level.as_str().to_string(),
        quiet_start: prefs.quiet_start,
        quiet_end: prefs.quiet_end,
        email: prefs.email.clone().unwrap_or_default(),
        digest_enabled: prefs.digest_enabled,
        digest_hour: prefs.digest_hour,
    };
    page.respond(render(status, &view))
}

#[tracing::instrument(skip_all)]
pub async fn notifications(page: PageRequest, Query(query): Query<DoneQuery>) -> Response {
    let done = (query.done.as_deref() == Some("saved")).then_some("保存しました / Saved");
    notifications_page(&page, done, None).await
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    live_level: String,
    #[serde(default)]
    quiet_start: String,
    #[serde(default)]
    quiet_end: String,
    #[serde(default)]
    digest_enabled: Option<String>,
    #[serde(default)]
    digest_hour: String,
}

#[tracing::instrument(skip_all)]
pub async fn save_notifications(page: PageRequest, Form(form): Form<SettingsForm>) -> Response {
    let hour = |raw: &str, field: &'static str| {
        raw.trim().parse::<i64>().map_err(|_| {
            InvalidValue::new(
                field,
                "時刻は0〜23時で指定してください / an hour from 0 to 23",
            )
        })
    };
    let result = async {
        let who = staff(&page.user)?;
        let prefs = renrakucho_notebook::preferences(
            Some(form.email.as_str()),
            &form.live_level,
            hour(&form.quiet_start, "quiet_start")?,
            hour(&form.quiet_end, "quiet_end")?,
            form.digest_enabled.is_some(),
            hour(&form.digest_hour, "digest_hour")?,
        )?;
        renrakucho_notebook::save_preferences(&page.state.db, who, page.origin(), &prefs).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/notifications?done=saved").into_response(),
        Err(e) => notifications_page(&page, None, Some(e)).await,
    }
}
