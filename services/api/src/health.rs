use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use renrakucho_http::state::AppState;
use renrakucho_store::Readiness;
use serde_json::{json, Value};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is running")))]
#[tracing::instrument(skip_all)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database is reachable and its migrations match this binary.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready to serve"),
              (status = 503, description = "Database unreachable or migrations not current")))]
#[tracing::instrument(skip_all)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.db.readiness().await {
        Ok(Readiness::Ready) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Readiness::MigrationsBehind { applied, expected }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "migrations_not_current", "applied": applied, "expected": expected }),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database_unreachable" })),
            )
        }
    }
}
