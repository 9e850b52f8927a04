//! The database's own guards on care-team membership and withdrawn consent, whatever the
//! application asks.

use super::*;

#[tokio::test]
async fn the_database_guards_membership_moves_and_withdrawn_consent() {
    let app = spawn_app().await;
    let origin = Origin::default();
    let keyring = app.keyring().await;
    let registering = place(&app, "GRD-REG", FacilityKind::Clinic).await;
    let member = place(&app, "GRD-MEM", FacilityKind::Pharmacy).await;
    let p = app
        .seed_patient(&registering.admin, "守り 花子", "マモリ ハナコ")
        .await
        .id;
    record_consent(
        &app.db,
        &keyring,
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
    leave(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&member.admin), p),
        &origin,
    )
    .await
    .unwrap();

    let forbidden = |sql: &'static str, facility: renrakucho_core::FacilityId| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin(Scope::Facility(facility)).await.unwrap();
            let result = sqlx::query(sql)
                .bind(p.as_uuid())
                .execute(tx.raw_connection_for_tests())
                .await;
            match result {
                Ok(done) => done.rows_affected() == 0,
                Err(e) => e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42501"),
            }
        }
    };
    // A former member cannot let itself back in; the registering facility cannot accept on a
    // facility's behalf; nobody un-withdraws a consent or moves the registering facility out.
    assert!(
        forbidden(
            "UPDATE care_team_members SET status = 'active' WHERE patient_id = $1",
            member.facility.id
        )
        .await
    );
    assert!(
        forbidden(
            "UPDATE care_team_members SET status = 'active'
              WHERE patient_id = $1 AND role = 'member'",
            registering.facility.id
        )
        .await
    );
    assert!(
        forbidden(
            "UPDATE care_team_members SET status = 'left' WHERE patient_id = $1 AND role = 'registering'",
            registering.facility.id
        )
        .await
    );
    withdraw_consent(
        &app.db,
        &renrakucho_testkit::acting::allowed(actor(&registering.admin), p),
        &origin,
    )
    .await
    .unwrap();
    assert!(
        forbidden(
            "UPDATE consents SET withdrawn_at = NULL, withdrawn_by = NULL,
                                 withdrawn_by_facility = NULL WHERE patient_id = $1",
            registering.facility.id
        )
        .await
    );
    // The runtime role writes no relation row itself.
    assert!(
        forbidden(
            "INSERT INTO patient_access (facility_id, patient_id, relation)
             SELECT facility_id, $1, 'sharing' FROM care_team_members LIMIT 1",
            member.facility.id
        )
        .await
    );
}
