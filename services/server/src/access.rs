//! Keeps the authorizer (Casbin) in step with the database, which is the source of truth for
//! who may see which patient: everything at start, then one patient at a time as changes are
//! announced on `renrakucho_access_changes` by any server process.

use std::sync::Arc;
use std::time::Duration;

use renrakucho_authz::Authorizer;
use renrakucho_core::PatientId;
use renrakucho_store::care_team::ACCESS_CHANGES_CHANNEL;
use renrakucho_store::Database;

/// An authorizer loaded with every current link.
pub async fn load(db: &Database) -> Result<Arc<Authorizer>, anyhow::Error> {
    let authz = Authorizer::new().await?;
    authz
        .grant_all(renrakucho_care::access_links(db, None).await?)
        .await?;
    Ok(Arc::new(authz))
}

/// Reloads one patient's links.
pub async fn refresh(
    db: &Database,
    authz: &Authorizer,
    patient: PatientId,
) -> Result<(), anyhow::Error> {
    let links = renrakucho_care::access_links(db, Some(patient)).await?;
    authz
        .replace_patient(patient, links.into_iter().map(|(f, _)| f))
        .await?;
    Ok(())
}

/// Follows announced changes until the task is stopped; after a lost connection it reloads
/// everything, since notifications sent meanwhile are gone.
pub async fn follow(db: Database, authz: Arc<Authorizer>) {
    loop {
        match db.listen(ACCESS_CHANGES_CHANNEL).await {
            Ok(mut listener) => loop {
                match listener.recv().await {
                    Ok(n) => match n.payload().parse() {
                        Ok(id) => {
                            if let Err(e) = refresh(&db, &authz, PatientId::from_uuid(id)).await {
                                tracing::error!(error = %e, "refreshing a patient's access failed");
                            }
                        }
                        Err(_) => tracing::warn!("ignoring a malformed access notification"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "access notifications interrupted");
                        break;
                    }
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot listen for access changes"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        match renrakucho_care::access_links(&db, None).await {
            Ok(links) => {
                // Rebuild from scratch: a fresh authorizer swapped in would need a lock of its
                // own; replacing per patient keeps decisions flowing meanwhile.
                let mut by_patient: std::collections::HashMap<PatientId, Vec<_>> =
                    std::collections::HashMap::new();
                for (f, p) in links {
                    by_patient.entry(p).or_default().push(f);
                }
                for (p, facilities) in by_patient {
                    if let Err(e) = authz.replace_patient(p, facilities).await {
                        tracing::error!(error = %e, "reloading access failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reloading access failed"),
        }
    }
}
