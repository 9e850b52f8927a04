//! The runtime role itself: what production requires of it, and the server's start-up check
//! refusing one that could bypass the isolation.

use renrakucho_store::{check_runtime_role, RuntimeRoleProblem};
use renrakucho_testkit::{TestDatabase, RUNTIME_PASSWORD};
use sqlx::Connection;

use super::*;

#[tokio::test]
async fn the_runtime_role_is_what_production_requires() {
    let db = TestDatabase::create().await;
    let mut conn = db.runtime_options().connect().await.unwrap();
    let (superuser, bypass, create_role, create_db, inherit): (bool, bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit
               FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!superuser && !bypass && !create_role && !create_db);
    assert!(inherit, "it takes its privileges from the runtime group");
    let owns: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))
              + (SELECT count(*) FROM pg_proc WHERE proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owns, 0);
    conn.close().await.unwrap();

    assert_eq!(
        check_runtime_role(&db.runtime_options()).await.unwrap(),
        Vec::<RuntimeRoleProblem>::new()
    );
}

#[tokio::test]
async fn the_server_refuses_a_runtime_role_that_could_bypass_isolation() {
    let db = TestDatabase::create().await;
    let mut su = db.superuser_options().connect().await.unwrap();
    let role = format!("bad_runtime_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN BYPASSRLS PASSWORD '{RUNTIME_PASSWORD}';
         GRANT renrakucho_owner TO {role};"
    ))
    .execute(&mut su)
    .await
    .unwrap();

    let options = db.runtime_options().username(&role);
    let problems = check_runtime_role(&options).await;

    sqlx::raw_sql(&format!("DROP ROLE {role}"))
        .execute(&mut su)
        .await
        .unwrap();
    let problems = problems.unwrap();
    assert!(
        problems.contains(&RuntimeRoleProblem::BypassesRls),
        "{problems:?}"
    );
    assert!(
        problems.contains(&RuntimeRoleProblem::MemberOfOwner(
            "renrakucho_owner".into()
        )),
        "{problems:?}"
    );
    assert!(
        problems.contains(&RuntimeRoleProblem::NotInRuntimeGroup),
        "{problems:?}"
    );
}
