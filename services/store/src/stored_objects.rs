//! Which files in the file store no row names (migration 18): what the housekeeping's sweep
//! of orphaned uploads may delete.

use renrakucho_core::PatientId;

use crate::{Scope, ScopedTx, StoreError};

/// Of `names` (objects in the patient's folders `consents/<patient>/`, `attachments/<patient>/`),
/// those no consent or attachment names. Names outside the patient's folders are never
/// returned. Key maintenance only (`Scope::KeyMaintenance`).
#[tracing::instrument(level = "debug", skip_all, fields(patient = %patient))]
pub async fn unreferenced(
    tx: &mut ScopedTx,
    patient: PatientId,
    names: &[String],
) -> Result<Vec<String>, StoreError> {
    debug_assert_eq!(tx.scope(), Scope::KeyMaintenance);
    let found: Vec<String> = sqlx::query_scalar!(
        r#"SELECT unreferenced_objects($1, $2) AS "name!""#,
        patient.as_uuid(),
        names,
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(found)
}
