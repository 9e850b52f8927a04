//! Constraint checks are no oracle: unique and foreign-key checks do not reveal another
//! facility's values.

use super::*;

#[tokio::test]
async fn unique_and_foreign_key_checks_do_not_reveal_another_facilitys_values() {
    let net = network().await;
    // B already has a "carol"; A can create its own without learning that.
    net.app
        .seed_staff(&net.b, "carol", StaffRole::Staff, Profession::Pharmacist)
        .await;
    net.app
        .seed_staff(&net.a, "carol", StaffRole::Staff, Profession::Clerk)
        .await;

    // A second "carol" in A is a conflict, named by the per-facility constraint.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let duplicate = sqlx::query(
        "INSERT INTO staff_accounts (id, facility_id, login_id, display_name, role, profession,
                                     password_hash)
         VALUES (gen_random_uuid(), $1, 'carol', '重複', 'staff', 'clerk', 'x')",
    )
    .bind(net.a.id.as_uuid())
    .execute(tx.raw_connection_for_tests())
    .await
    .expect_err("a duplicate login ID in one facility");
    let db = duplicate.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("23505"));
    assert_eq!(
        db.constraint(),
        Some("staff_accounts_facility_id_login_id_key")
    );
    assert!(
        !db.message().contains(&net.b.id.as_uuid().to_string()),
        "{}",
        db.message()
    );
    drop(tx);

    // Referencing B's facility and one that does not exist fail identically (the policy is
    // checked before constraints), as the insert test shows for every table. Looking B's
    // account up by its ID finds nothing either.
    let mut su = superuser(&net.app).await;
    let b_staff: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM staff_accounts WHERE facility_id = $1 LIMIT 1")
            .bind(net.b.id.as_uuid())
            .fetch_one(&mut su)
            .await
            .unwrap();
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let probe = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM staff_accounts WHERE id = $1 OR login_id = 'carol'",
    )
    .bind(b_staff)
    .fetch_one(tx.raw_connection_for_tests())
    .await
    .unwrap();
    assert_eq!(probe, 1, "A sees only its own carol");
}
