//! The other scopes: the platform scope sees tenants and operators but no staff; the
//! sign-in lookup restores the caller's scope.

use super::*;

#[tokio::test]
async fn platform_scope_sees_tenants_and_operators_but_no_staff() {
    let net = network().await;
    net.app.seed_operator("operator").await;
    let db = &net.app.db;

    // Platform scope runs as the role renrakucho_platform: facilities, operators and its own
    // audit chain.
    assert_eq!(
        count_in(db, Scope::Platform, "SELECT count(*) FROM facilities").await,
        3
    );
    assert_eq!(
        count_in(
            db,
            Scope::Platform,
            "SELECT count(*) FROM platform_operators"
        )
        .await,
        1
    );
    assert_eq!(
        count_in(
            db,
            Scope::Platform,
            "SELECT count(*) FROM audit_log WHERE facility_id IS NOT NULL"
        )
        .await,
        0,
        "the platform reads its own chain only"
    );
    assert!(count_in(db, Scope::Platform, "SELECT count(*) FROM audit_log").await > 0);

    // Keys: the platform's own only (its operators' authenticator secrets), never a
    // facility's or a patient's, and none to change or remove.
    assert_eq!(
        count_in(
            db,
            Scope::Platform,
            "SELECT count(*) FROM data_keys WHERE owner_kind <> 'platform'"
        )
        .await,
        0,
        "the platform reads its own key only"
    );
    // Staff and patient data: no privilege at all, so the statement is refused (stricter than
    // the zero rows a policy used to give), for every facility-owned table but the three above.
    let mut su = superuser(&net.app).await;
    let platform_may: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('renrakucho_platform', 'public.data_keys',
                'UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert!(!platform_may, "the platform changes no key");
    let tables = facility_owned_tables(&mut su).await;
    let mut refused = 0;
    for table in &tables {
        if ["public.facilities", "public.audit_log", "public.data_keys"]
            .contains(&table.name.as_str())
        {
            continue;
        }
        let bare = table.name.trim_start_matches("public.");
        assert_eq!(
            try_count_in(
                db,
                Scope::Platform,
                &format!("SELECT count(*) FROM {}", table.name)
            )
            .await,
            Err((
                "42501".to_string(),
                format!("permission denied for table {bare}")
            )),
            "{}",
            table.name
        );
        let any: bool = sqlx::query_scalar(
            "SELECT has_table_privilege('renrakucho_platform', $1::regclass,
                    'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
        )
        .bind(&table.name)
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert!(
            !any,
            "renrakucho_platform has a privilege on {}",
            table.name
        );
        refused += 1;
    }
    assert!(refused >= 15, "the staff and patient tables were all tried");

    // A facility: its own row, no operators (no privilege: refused, stricter than the zero
    // rows it used to see), none of the platform's chain.
    let a = Scope::Facility(net.a.id);
    assert_eq!(count_in(db, a, "SELECT count(*) FROM facilities").await, 1);
    assert_eq!(
        try_count_in(db, a, "SELECT count(*) FROM platform_operators").await,
        Err((
            "42501".to_string(),
            "permission denied for table platform_operators".to_string()
        ))
    );
    assert_eq!(
        count_in(
            db,
            a,
            "SELECT count(*) FROM audit_log WHERE facility_id IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_sign_in_lookup_restores_the_callers_scope() {
    // The sign-in lookup and the directory are SECURITY DEFINER functions that read facilities
    // with an owner-only flag (renrakucho.directory) on, for their own query only. Afterwards
    // the flag is off whatever the caller had set, and the caller sees what it saw before.
    let net = network().await;

    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let c = tx.raw_connection_for_tests();
    // The web role may set the flag itself: it only matters to the owner's policies.
    sqlx::query("SELECT set_config('renrakucho.directory', 'on', true)")
        .execute(&mut *c)
        .await
        .unwrap();
    let facilities: i64 = sqlx::query_scalar("SELECT count(*) FROM facilities")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    assert_eq!(facilities, 1, "a flag set by the web role widens nothing");
    let found: (uuid::Uuid, String) =
        sqlx::query_as("SELECT facility_id, status FROM facility_for_sign_in('iso-b')")
            .fetch_one(&mut *c)
            .await
            .unwrap();
    assert_eq!(found, (net.b.id.as_uuid(), "active".to_string()));
    let after: (String, Option<uuid::Uuid>, i64) = sqlx::query_as(
        "SELECT coalesce(current_setting('renrakucho.directory', true), ''),
                current_facility_id(), (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(
        after,
        (String::new(), Some(net.a.id.as_uuid()), 1),
        "no flag left set, the caller's own context, its own facility only"
    );
    let directory: Vec<String> =
        sqlx::query_scalar("SELECT code FROM facility_directory(NULL, NULL) ORDER BY code")
            .fetch_all(&mut *c)
            .await
            .unwrap();
    assert_eq!(directory, ["ISO-A", "ISO-B", "ISO-C"]);
    let after: (String, i64) = sqlx::query_as(
        "SELECT coalesce(current_setting('renrakucho.directory', true), ''),
                (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(after, (String::new(), 1), "after the directory too");
    drop(tx);

    // Sign-in itself runs on a web connection with no tenant at all: the lookup answers, and
    // leaves nothing behind.
    let mut pooled = net.app.db.connection().await.unwrap();
    let c = pooled.raw_connection_for_tests();
    let found: (uuid::Uuid, String) =
        sqlx::query_as("SELECT facility_id, status FROM facility_for_sign_in('ISO-A')")
            .fetch_one(&mut *c)
            .await
            .unwrap();
    assert_eq!(found, (net.a.id.as_uuid(), "active".to_string()));
    let after: (String, Option<uuid::Uuid>, i64) = sqlx::query_as(
        "SELECT coalesce(current_setting('renrakucho.directory', true), ''),
                current_facility_id(), (SELECT count(*) FROM facilities)",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    assert_eq!(after, (String::new(), None, 0));
    pooled.done();

    // Platform scope (its own role) is not granted the web role's lookup: refused (stricter
    // than before, when it ran there and restored the platform flag).
    let mut tx = net.app.db.begin(Scope::Platform).await.unwrap();
    let refused = sqlx::query_as::<_, (uuid::Uuid, String)>(
        "SELECT facility_id, status FROM facility_for_sign_in('iso-b')",
    )
    .fetch_one(tx.raw_connection_for_tests())
    .await;
    assert_eq!(
        refusal(refused),
        (
            "42501".to_string(),
            "permission denied for function facility_for_sign_in".to_string()
        )
    );
}
