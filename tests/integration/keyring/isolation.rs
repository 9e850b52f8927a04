//! The key table isolated like every facility table: a facility sees only its own keys (and
//! the network's blind-index key, which it cannot change), an operator none.

use super::*;

#[tokio::test]
async fn the_key_table_is_isolated_like_every_facility_table() {
    let f = fixture().await;
    let sa = Scope::Facility(f.a.id);
    let sb = Scope::Facility(f.b.id);
    encrypt(
        &f.keyring,
        &f.app.db,
        sa,
        &name_of(KeyOwner::Patient(PatientId::new()), Uuid::nil()),
        "a",
    )
    .await;
    encrypt(
        &f.keyring,
        &f.app.db,
        sb,
        &name_of(KeyOwner::Patient(PatientId::new()), Uuid::nil()),
        "b",
    )
    .await;

    let count = |scope: Scope| {
        let db = f.app.db.clone();
        async move {
            let mut tx = db.begin(scope).await.unwrap();
            let n: Vec<String> = sqlx::query_scalar("SELECT owner_kind FROM data_keys ORDER BY 1")
                .fetch_all(tx.raw_connection_for_tests())
                .await
                .unwrap();
            n
        }
    };
    assert_eq!(count(sa).await, vec!["blind_index", "patient"]);
    assert_eq!(count(sb).await, vec!["blind_index", "patient"]);
    // Operators see no facility's or patient's key: platform scope reads the platform's own
    // key only (its operators' authenticator secrets; none here), and may change none.
    assert_eq!(count(Scope::Platform).await, Vec::<String>::new());
    let mut tx = f.app.db.begin(Scope::Platform).await.unwrap();
    let refused = sqlx::query("UPDATE data_keys SET wrapped = NULL")
        .execute(tx.raw_connection_for_tests())
        .await
        .expect_err("platform scope changes no key");
    let refused = refused.as_database_error().expect("a database error");
    assert_eq!(
        (refused.code().as_deref(), refused.message()),
        (Some("42501"), "permission denied for table data_keys")
    );
    drop(tx);

    // A facility can neither change the network's blind-index key nor destroy B's keys.
    let mut tx = f.app.db.begin(sa).await.unwrap();
    let changed = sqlx::query("UPDATE data_keys SET wrapped = NULL, destroyed_at = now() WHERE owner_kind = 'blind_index' OR facility_id = $1")
        .bind(f.b.id.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 0);
}
