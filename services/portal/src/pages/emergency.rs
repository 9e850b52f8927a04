//! Emergency (break-glass) access: opening, ending, reviewing.

use super::*;

struct GrantLine {
    id: String,
    patient: String,
    facility_name: Option<String>,
    reason: Option<String>,
    reason_unreadable: bool,
    opened_at: String,
    expires_at: String,
    open: bool,
    ours: bool,
    reviewed: bool,
}

#[derive(Deserialize, Default)]
pub struct EmergencyForm {
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    reason: String,
}

#[derive(Template)]
#[template(path = "emergency.html")]
struct EmergencyPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    may_open: bool,
    hours: u64,
    limit: i32,
    locked_until: Option<String>,
    form: EmergencyForm,
    grants: Vec<GrantLine>,
}

async fn emergency_page(
    page: &PageRequest,
    done: Option<&'static str>,
    error: Option<ApiError>,
    form: EmergencyForm,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let who = match staff(user) {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let reader = renrakucho_http::access::EmergencyReasonReader::new(state, user);
    let grants = match renrakucho_registry::emergency_grants(
        &state.db,
        &state.keyring,
        who,
        origin,
        100,
        |patient, ours| reader.may_read(patient, ours),
    )
    .await
    {
        Ok(g) => g,
        Err(e) => return failed(e),
    };
    let may_open = state
        .authz
        .roles_may(&roles(user), Action::EmergencyOpen)
        .await;
    let locked_until =
        match renrakucho_registry::identification_status(&state.db, who, origin).await {
            Ok(s) => s.locked_until.map(local),
            Err(e) => return failed(e),
        };
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let view = EmergencyPage {
        admin: page.is_admin(),
        token: page.authenticity(),
        done,
        error: error.map(|e| e.message),
        may_open,
        hours: state.care.emergency_access.as_secs() / 3600,
        limit: renrakucho_registry::IDENTIFICATION_LIMIT,
        locked_until,
        form,
        grants: grants
            .into_iter()
            .map(|g| GrantLine {
                id: g.id.to_string(),
                patient: g.patient.as_uuid().to_string(),
                facility_name: g.facility_name,
                reason: g.reason,
                reason_unreadable: g.reason_unreadable,
                opened_at: local(g.opened_at),
                expires_at: local(g.ended_at.unwrap_or(g.expires_at).min(g.expires_at)),
                open: g.open,
                ours: g.ours,
                reviewed: g.reviewed_at.is_some(),
            })
            .collect(),
    };
    page.respond(render(status, &view))
}

#[tracing::instrument(skip_all)]
pub async fn emergency(page: PageRequest, Query(query): Query<DoneQuery>) -> Response {
    let done = match query.done.as_deref() {
        Some("ended") => Some("緊急閲覧を終了しました / Emergency access ended"),
        Some("reviewed") => Some("確認済みにしました / Marked reviewed"),
        _ => None,
    };
    emergency_page(&page, done, None, EmergencyForm::default()).await
}

#[tracing::instrument(skip_all)]
pub async fn open_emergency(page: PageRequest, Form(form): Form<EmergencyForm>) -> Response {
    let state = &page.state;
    // Asked after the permission check: a person who may not open access is not asked for a
    // password first.
    let permitted = permit::<may::EmergencyOpen>(state, &page.user).await;
    if permitted.is_ok()
        && page
            .user
            .require_recent_password(state.sessions.reauthenticate_within)
            .is_err()
    {
        return crate::account::confirm_then("/emergency");
    }
    let result = async {
        let who = permitted?;
        let body = EmergencyBody {
            card_number: form.card_number.clone(),
            birth_date: form.birth_date.clone(),
            reason: form.reason.clone(),
        };
        let request = body.parse(state.care.emergency_access)?;
        let grant = renrakucho_registry::open_emergency(
            &state.db,
            &state.keyring,
            &who,
            page.origin(),
            request,
        )
        .await?;
        if let Err(e) =
            renrakucho_http::access::refresh(&state.db, &state.authz, grant.patient).await
        {
            tracing::warn!(error = %e, "refreshing access after an emergency grant failed");
        }
        Ok::<_, ApiError>(grant.patient)
    }
    .await;
    match result {
        Ok(patient) => {
            Redirect::to(&format!("/patients/{}?done=opened", patient.as_uuid())).into_response()
        }
        Err(e) => emergency_page(&page, None, Some(e), form).await,
    }
}

#[tracing::instrument(skip_all)]
pub async fn close_or_review_emergency(
    page: PageRequest,
    Path((id, what)): Path<(String, String)>,
) -> Response {
    let (state, user, origin) = (&page.state, &page.user, page.origin());
    let result = async {
        let who = staff(user)?;
        let grant = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found())?;
        match what.as_str() {
            "end" => {
                let who = renrakucho_http::access::authorize_emergency_end(state, user).await?;
                renrakucho_registry::end_emergency(&state.db, who, origin, grant).await?;
                Ok("ended")
            }
            "review" if page.is_admin() => {
                renrakucho_registry::review_emergency(&state.db, who, origin, grant).await?;
                Ok("reviewed")
            }
            "review" => Err(ApiError::forbidden(
                "緊急閲覧の確認は施設管理者が行います / facility administrators review emergency access",
            )),
            _ => Err(ApiError::not_found()),
        }
    }
    .await;
    match result {
        Ok(done) => Redirect::to(&format!("/emergency?done={done}")).into_response(),
        Err(e) => emergency_page(&page, None, Some(e), EmergencyForm::default()).await,
    }
}
