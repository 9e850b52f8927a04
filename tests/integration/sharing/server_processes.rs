//! Several server processes on one database: each one's authorizer follows a change made
//! through another.

use super::*;

#[tokio::test]
async fn a_change_reaches_every_server_process() {
    // Two servers on one database: a change made through one is followed by the other's
    // authorizer (PostgreSQL LISTEN/NOTIFY), without a reload.
    let app = spawn_app().await;
    let second = renrakucho_server::Application::build(&app.settings, &app.database.connections())
        .await
        .unwrap();
    let other = second.authorizer().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    let origin = Origin::default();
    let registering = place(&app, "TWO-REG", FacilityKind::Clinic).await;
    let member = place(&app, "TWO-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "二重 一郎", "ニジュウ イチロウ")
        .await
        .id;
    record_consent(
        &app.db,
        &app.keyring().await,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
        &member.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    let pharmacist = [Role::Profession(Profession::Pharmacist)];
    let reads = || async {
        other
            .allowed(&pharmacist, member.facility.id, p, Action::NotebookRead)
            .await
            .unwrap()
    };
    crate::support::wait_until("the second process following the acceptance", reads).await;
    leave(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();
    crate::support::wait_until("the second process following the departure", || async {
        !reads().await
    })
    .await;
    let _ = stop.send(());
}
