//! Invitations to care teams, and their answers.

use super::*;

struct InvitationLine {
    patient: String,
    registering_facility_name: Option<String>,
    invited_at: String,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage {
    admin: bool,
    token: String,
    done: Option<&'static str>,
    error: Option<String>,
    invitations: Vec<InvitationLine>,
    may_accept: bool,
}

async fn invitations_page(
    page: &PageRequest,
    done: Option<&'static str>,
    error: Option<ApiError>,
) -> Response {
    let (state, user) = (&page.state, &page.user);
    let who = match staff(user) {
        Ok(who) => who,
        Err(e) => return failed(e),
    };
    let pending = match renrakucho_registry::pending_invitations(&state.db, who).await {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let may_accept = state
        .authz
        .roles_may(&roles(user), Action::CareTeamAccept)
        .await;
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let view = InvitationsPage {
        admin: page.is_admin(),
        token: page.authenticity(),
        done,
        error: error.map(|e| e.message),
        invitations: pending
            .into_iter()
            .map(|i| InvitationLine {
                patient: i.patient.as_uuid().to_string(),
                registering_facility_name: i.registering_facility_name,
                invited_at: local(i.invited_at),
            })
            .collect(),
        may_accept,
    };
    page.respond(render(status, &view))
}

#[tracing::instrument(skip_all)]
pub async fn invitations(page: PageRequest, Query(query): Query<DoneQuery>) -> Response {
    let done = match query.done.as_deref() {
        Some("accepted") => Some("承諾しました / Accepted"),
        Some("declined") => Some("辞退しました / Declined"),
        _ => None,
    };
    invitations_page(&page, done, None).await
}

#[tracing::instrument(skip_all)]
pub async fn answer_invitation(
    page: PageRequest,
    Path((id, answer)): Path<(String, String)>,
) -> Response {
    let result = async {
        let who = page.authorize::<may::CareTeamAccept>(&id).await?;
        match answer.as_str() {
            "accept" => {
                renrakucho_registry::accept_invitation(&page.state.db, &who, page.origin()).await?;
                Ok("accepted")
            }
            "decline" => {
                renrakucho_registry::decline_invitation(&page.state.db, &who, page.origin())
                    .await?;
                Ok("declined")
            }
            _ => Err(ApiError::not_found()),
        }
    }
    .await;
    match result {
        Ok(done) => {
            if let Ok(patient) = patient_id(&id) {
                renrakucho_http::access::changed(&page.state, patient).await;
            }
            Redirect::to(&format!("/invitations?done={done}")).into_response()
        }
        Err(e) => invitations_page(&page, None, Some(e)).await,
    }
}
