//! The runtime role cannot switch row-level security off or become the owner.

use super::*;

#[tokio::test]
async fn the_runtime_role_cannot_turn_row_level_security_off_or_become_the_owner() {
    let net = network().await;
    let mut conn = net.app.database.runtime_options().connect().await.unwrap();

    for (attempt, expected) in [
        ("SET ROLE renrakucho_owner", "42501"),
        ("SET ROLE postgres", "42501"),
        ("SET SESSION AUTHORIZATION renrakucho_owner", "42501"),
        (
            "ALTER TABLE staff_accounts NO FORCE ROW LEVEL SECURITY",
            "42501",
        ),
        (
            "ALTER TABLE staff_accounts DISABLE ROW LEVEL SECURITY",
            "42501",
        ),
        ("DROP POLICY staff_accounts_own ON staff_accounts", "42501"),
        (
            "CREATE POLICY everything ON staff_accounts USING (true)",
            "42501",
        ),
        ("ALTER ROLE renrakucho_app BYPASSRLS", "42501"),
        (
            "CREATE FUNCTION public.current_facility_id() RETURNS uuid LANGUAGE sql \
             AS 'SELECT NULL::uuid'",
            "42501",
        ),
        ("CREATE TABLE public.escape (id int)", "42501"),
        ("GRANT renrakucho_owner TO renrakucho_app", "42501"),
    ] {
        let result = sqlx::raw_sql(attempt).execute(&mut conn).await;
        assert_eq!(sqlstate(result), expected, "{attempt}");
    }

    // Switching row security off does not show rows: for a role bound by RLS the query fails.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let c = tx.raw_connection_for_tests();
    sqlx::raw_sql("SET LOCAL row_security = off")
        .execute(&mut *c)
        .await
        .unwrap();
    let result = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *c)
        .await;
    assert_eq!(sqlstate(result), "42501");
    drop(tx);

    // The group role it may switch to has the same privileges; RLS still holds there.
    let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
    let c = tx.raw_connection_for_tests();
    sqlx::raw_sql("SET LOCAL ROLE renrakucho_runtime")
        .execute(&mut *c)
        .await
        .unwrap();
    let seen: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT facility_id FROM staff_accounts")
            .fetch_all(&mut *c)
            .await
            .unwrap();
    assert_eq!(seen, vec![net.a.id.as_uuid()]);
}
