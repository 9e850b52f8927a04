//! Support requests: asking another facility, answering, the lists.

use super::*;

struct SupportListLine {
    id: String,
    status: &'static str,
    kind: &'static str,
    at: String,
    between: String,
}

fn status_ja(s: &str) -> &'static str {
    match s {
        "requested" => "依頼中",
        "accepted" => "受諾",
        "declined" => "辞退",
        "answered" => "回答済み",
        "closed" => "終了",
        _ => "—",
    }
}

#[derive(Template)]
#[template(path = "support.html")]
struct SupportPage {
    admin: bool,
    done: Option<&'static str>,
    lines: Vec<SupportListLine>,
}

#[tracing::instrument(skip_all)]
pub async fn support_list(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    let who = match staff(&user) {
        Ok(w) => w,
        Err(e) => return failed(e),
    };
    match renrakucho_notebook::support_requests(&state.db, who).await {
        Ok(lines) => render(
            StatusCode::OK,
            &SupportPage {
                admin: is_admin(&user),
                done: None,
                lines: lines
                    .iter()
                    .map(|l| SupportListLine {
                        id: l.id.to_string(),
                        status: status_ja(&l.status),
                        kind: l.kind.label_ja(),
                        at: local(l.created_at),
                        between: format!(
                            "{} → {}",
                            l.from_name.clone().unwrap_or_default(),
                            l.to_name.clone().unwrap_or_default()
                        ),
                    })
                    .collect(),
            },
        ),
        Err(e) => failed(e),
    }
}

#[derive(Template)]
#[template(path = "support_request.html")]
struct SupportRequestPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    id: String,
    kind: &'static str,
    status: &'static str,
    status_code: String,
    between: String,
    summary: String,
    question: String,
    answer: Option<String>,
    sent: bool,
    entries: Vec<EntryCard>,
}

async fn support_page(
    page: &PageRequest,
    raw_id: &str,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let result = async {
        let id = Uuid::parse_str(raw_id).map_err(|_| ApiError::not_found())?;
        let (side, _) = renrakucho_api::notebook::support_actor(state, user, id).await?;
        side.detail(state, origin, id).await
    }
    .await;
    let detail = match result {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let view = SupportRequestPage {
        admin: page.is_admin(),
        token: page.authenticity(),
        done,
        error: error.map(|e| e.message),
        id: detail.line.id.to_string(),
        kind: detail.line.kind.label_ja(),
        status: status_ja(&detail.line.status),
        status_code: detail.line.status.clone(),
        between: format!(
            "{} → {}",
            detail.line.from_name.clone().unwrap_or_default(),
            detail.line.to_name.clone().unwrap_or_default()
        ),
        summary: detail.summary.clone(),
        question: detail.question.clone(),
        answer: detail.answer.clone(),
        sent: detail.line.sent,
        entries: detail.entries.iter().map(card).collect(),
    };
    page.respond(render(status, &view))
}

#[tracing::instrument(skip_all)]
pub async fn support_request(
    page: PageRequest,
    Path(id): Path<String>,
    Query(query): Query<DoneQuery>,
) -> Response {
    let done = query.done.as_deref().map(|_| "更新しました / Updated");
    support_page(&page, &id, done, None).await
}

#[derive(Deserialize)]
pub struct SupportStepForm {
    #[serde(default)]
    answer: String,
}

#[tracing::instrument(skip_all)]
pub async fn support_step(
    page: PageRequest,
    Path((id, step)): Path<(String, String)>,
    Form(form): Form<SupportStepForm>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let result = async {
        let request = Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
        let (side, line) = renrakucho_api::notebook::support_actor(state, user, request).await?;
        side.step(state, user, origin, request, &step, form.answer)
            .await?;
        renrakucho_http::access::changed(state, line.patient).await;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/support/{id}?done=1")).into_response(),
        Err(e) if is_refusal(&e) => failed(e),
        Err(e) => support_page(&page, &id, None, Some(e)).await,
    }
}

#[derive(Deserialize)]
pub struct SupportForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    question: String,
}

/// Sends a support request with this entry and its files.
#[tracing::instrument(skip_all)]
pub async fn request_support(
    page: PageRequest,
    Path((id, entry)): Path<(String, String)>,
    Form(form): Form<SupportForm>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let result = async {
        let (patient, entry_id) = entry_ids(&id, &entry)?;
        let reader = authorize::<may::NotebookRead>(state, user, patient).await?;
        let me = authorize::<may::SupportRequest>(state, user, patient)
            .await
            .map(|allowed| renrakucho_http::access::as_author(user, allowed))
            .map_err(|_| {
                ApiError::conflict(
                    "同意書が登録されていないか、依頼する権限がありません（第12条・第13条） / without consent on file, or without the right, nothing can be sent to another facility",
                )
            })?;
        if form.to.trim().is_empty() {
            return Err(InvalidValue::new("to", "依頼先を選んでください / choose a facility").into());
        }
        let detail = renrakucho_notebook::entry_detail(
            &state.db,
            &state.keyring,
            &reader,
            origin,
            entry_id,
        )
        .await?;
        let kind = form.kind.parse().map_err(|_| {
            InvalidValue::new("kind", "依頼の種類を選んでください / choose a kind")
        })?;
        let request = renrakucho_notebook::send_support_request(
            &state.db,
            &state.keyring,
            &me,
            origin,
            renrakucho_notebook::NewSupportRequest {
                to_code: form.to.clone(),
                kind,
                question: form.question.clone(),
                summary: form.summary.clone(),
                entries: vec![entry_id],
                attachments: detail.entry.attachments.iter().map(|a| a.id).collect(),
            },
        )
        .await?;
        Ok::<_, ApiError>(request)
    }
    .await;
    match result {
        Ok(request) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(state, patient).await;
            }
            Redirect::to(&format!("/support/{request}?done=sent")).into_response()
        }
        Err(e) if is_refusal(&e) => failed(e),
        Err(e) => entry_page(&page, &id, &entry, None, Some(e)).await,
    }
}
