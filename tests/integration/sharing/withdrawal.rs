//! Consent withdrawn: every facility but the registering one is cut off at once, in the database
//! and in the authorizer.

use super::*;

#[tokio::test]
async fn withdrawing_consent_cuts_every_facility_but_the_registering_one_at_once() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "WDR-REG", FacilityKind::Clinic).await;
    let member = place(&app, "WDR-MEM", FacilityKind::Pharmacy).await;
    let late = place(&app, "WDR-LATE", FacilityKind::VisitingNurseStation).await;
    let p = app
        .seed_patient(&registering.admin, "撤回 太郎", "テッカイ タロウ")
        .await
        .id;
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
    settled(&app, &member.facility, p, false).await;
    let member_client = app.client_for(&member.facility, "admin").await;
    let url = app.url(&format!("/api/v1/patients/{}", p.as_uuid()));
    let seen = member_client.get(&url).send().await.unwrap();
    assert_eq!(seen.status(), 404, "no consent yet: not even its existence");

    // The member collected the signed form itself: recording it opens the notebook to the team.
    record_consent(
        &app.db,
        &keyring,
        &app.files,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
        form(Signer::Patient),
        None,
    )
    .await
    .unwrap();
    settled(&app, &member.facility, p, true).await;
    assert_eq!(member_client.get(&url).send().await.unwrap().status(), 200);

    // A facility joining later reuses the consent on file: no new form (第12条 ただし書き).
    invite(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
        &late.facility.code,
    )
    .await
    .unwrap();
    accept_invitation(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&late.admin), p),
        &origin,
    )
    .await
    .unwrap();
    settled(&app, &late.facility, p, true).await;

    withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await
    .unwrap();
    // At once in the database, and as soon as the announcement arrives in the authorizer.
    let mut tx = app
        .db
        .begin(Scope::Facility(member.facility.id))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM patients WHERE id = $1")
        .bind(p.as_uuid())
        .fetch_one(tx.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(n, 0);
    drop(tx);
    settled(&app, &member.facility, p, false).await;
    settled(&app, &late.facility, p, false).await;
    settled(&app, &registering.facility, p, true).await;
    assert_eq!(member_client.get(&url).send().await.unwrap().status(), 404);
    // Withdrawing again is a clear conflict, not a silent success.
    let again = withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await;
    assert!(matches!(
        again,
        Err(renrakucho_registry::CareError::Conflict(_))
    ));
}
