//! The facility's audit log, for its administrator.

use super::*;

struct AuditLine {
    seq: i64,
    occurred_at: String,
    action: String,
    outcome: String,
    target: String,
    request_id: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    admin: bool,
    records: Vec<AuditLine>,
}

#[tracing::instrument(skip_all)]
pub async fn audit(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    let admin = match renrakucho_api::facility_admin::facility_admin(&user) {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    match renrakucho_registry::facility_audit(&state.db, admin, &user.origin, 200).await {
        Ok(records) => render(
            StatusCode::OK,
            &AuditPage {
                admin: true,
                records: records
                    .into_iter()
                    .map(|r| AuditLine {
                        seq: r.seq,
                        occurred_at: local(r.occurred_at),
                        action: r.action,
                        outcome: r.outcome,
                        target: match (r.target_kind, r.target_id) {
                            (Some(k), Some(id)) => format!("{k} {id}"),
                            _ => String::new(),
                        },
                        request_id: r.request_id.unwrap_or_default(),
                    })
                    .collect(),
            },
        ),
        Err(e) => failed(e),
    }
}
