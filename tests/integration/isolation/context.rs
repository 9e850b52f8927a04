//! The tenant context itself: without one nothing is visible (the setting NULL or empty); a
//! malformed one fails the query instead of widening it; a pooled connection serving A then
//! B sees only B.

use super::*;

#[tokio::test]
async fn without_a_context_nothing_is_visible_whether_the_setting_is_null_or_empty() {
    let net = network().await;
    // One connection, so that the second round runs where a transaction-local context was
    // used before (current_setting then returns '' instead of NULL).
    let db = Database::connect(&net.app.database.connections(), 1)
        .await
        .unwrap();
    let a = net.a.id;
    let use_a_context = |db: &Database| {
        let db = db.clone();
        async move {
            db.begin(Scope::Facility(a))
                .await
                .unwrap()
                .commit()
                .await
                .unwrap()
        }
    };
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;

    for round in ["never set (NULL)", "set earlier on this connection ('')"] {
        let mut pooled = db.connection().await.unwrap();
        let conn = pooled.raw_connection_for_tests();
        let setting: Option<String> =
            sqlx::query_scalar("SELECT current_setting('renrakucho.context', true)")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        match round {
            "never set (NULL)" => assert_eq!(setting, None),
            _ => assert_eq!(setting.as_deref(), Some("")),
        }
        let context: (Option<uuid::Uuid>, Option<uuid::Uuid>) =
            sqlx::query_as("SELECT current_facility_id(), current_staff_id()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(context, (None, None), "{round}");
        for table in tables.iter().map(|t| t.name.as_str()) {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(n, 0, "{table} shows rows with no context, {round}");
        }
        // Tables the web role has no privilege on at all: refused outright, whatever the
        // context (stricter than the zero rows the operators' table used to show).
        for (table, message) in [
            (
                "public.platform_operators",
                "permission denied for table platform_operators",
            ),
            ("private.sessions", "permission denied for schema private"),
            (
                "private.emergency_identifications",
                "permission denied for schema private",
            ),
            (
                "private.server_keys",
                "permission denied for schema private",
            ),
            (
                "private.announcements",
                "permission denied for schema private",
            ),
        ] {
            let refused = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *conn)
                .await;
            assert_eq!(
                refusal(refused),
                ("42501".to_string(), message.to_string()),
                "{table}, {round}"
            );
        }
        pooled.done();
        use_a_context(&db).await;
    }
}

/// What a forged or malformed `renrakucho.context` does: fail the statement (`Err(sqlstate)`)
/// or count nothing (`Ok(0)`). Never more.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ContextOutcome {
    Fails(&'static [&'static str]),
    NoContext,
}

#[tokio::test]
async fn a_malformed_context_fails_the_query_instead_of_widening_it() {
    // The attacker: any SQL as the web role, with its real credentials, on a connection of its
    // own, which it prepares as the server does (renrakucho_connection()). It cannot read the
    // context key, so it can only set the setting to values it makes up or has seen.
    let net = network().await;
    let a = net.a.id.as_uuid();
    let b = net.b.id.as_uuid();
    let mut conn = net.app.database.runtime_options().connect().await.unwrap();
    let (pid, chain): (i32, i64) = sqlx::query_as("SELECT pid, chain FROM renrakucho_connection()")
        .fetch_one(&mut conn)
        .await
        .unwrap();

    // A genuine context of A, as the server's own connection had it in a real transaction.
    let genuine: String = {
        let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
        let value: String = sqlx::query_scalar("SELECT current_setting('renrakucho.context')")
            .fetch_one(tx.raw_connection_for_tests())
            .await
            .unwrap();
        drop(tx);
        value
    };
    let parts: Vec<&str> = genuine.split(':').collect();
    assert_eq!(parts.len(), 4, "{genuine}");
    assert_eq!(parts[1], a.to_string());
    assert_ne!(
        parts[0],
        chain.to_string(),
        "another connection's chain value"
    );
    let proof = parts[3];
    let zeros = "0".repeat(64);

    let cases: Vec<(String, ContextOutcome)> = vec![
        // The old injection: not shaped like a context at all.
        ("not-a-uuid' OR true --".into(), ContextOutcome::NoContext),
        ("".into(), ContextOutcome::NoContext),
        // Shaped like one, but its parts are not numbers, UUIDs or hex: the statement fails.
        (
            format!("{chain}:not-a-uuid' OR true --::{zeros}"),
            ContextOutcome::Fails(&["22P02"]),
        ),
        (format!("x:{a}::{zeros}"), ContextOutcome::Fails(&["22P02"])),
        (
            format!("{chain}:{a}::zz"),
            ContextOutcome::Fails(&["22023", "22P02"]),
        ),
        // This connection's chain value and a made-up proof.
        (format!("{chain}:{a}::{zeros}"), ContextOutcome::NoContext),
        // A genuine context seen on another connection: its chain value is not this one's.
        (genuine.clone(), ContextOutcome::NoContext),
        // …moved to this connection's chain value, or to facility B, its proof no longer fits.
        (format!("{chain}:{a}::{proof}"), ContextOutcome::NoContext),
        (
            format!("{}:{b}::{proof}", parts[0]),
            ContextOutcome::NoContext,
        ),
        (format!("{chain}:{b}::{proof}"), ContextOutcome::NoContext),
        // A staff member added to a context that had none.
        (
            format!("{}:{a}:{}:{proof}", parts[0], uuid::Uuid::new_v4()),
            ContextOutcome::NoContext,
        ),
        // One part too many.
        (format!("{genuine}:{a}"), ContextOutcome::NoContext),
    ];
    for (value, expected) in cases {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT set_config('renrakucho.context', $1, true)")
            .bind(&value)
            .execute(&mut *tx)
            .await
            .unwrap();
        let counted = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM staff_accounts")
            .fetch_one(&mut *tx)
            .await;
        match (&expected, counted) {
            (ContextOutcome::NoContext, Ok(n)) => {
                assert_eq!(n, 0, "{value:?} shows rows");
                let context: (Option<uuid::Uuid>, Option<uuid::Uuid>) =
                    sqlx::query_as("SELECT current_facility_id(), current_staff_id()")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                assert_eq!(context, (None, None), "{value:?}");
            }
            (ContextOutcome::Fails(codes), Err(e)) => {
                let code = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                assert!(codes.contains(&code.as_str()), "{value:?}: {e}");
            }
            (expected, got) => panic!("{value:?}: expected {expected:?}, got {got:?}"),
        }
        tx.rollback().await.unwrap();
    }

    // The setting the policies used to read means nothing any more.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('renrakucho.facility_id', $1::text, true)")
        .bind(a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0, "renrakucho.facility_id gives no context");
    tx.rollback().await.unwrap();

    // Nor does renrakucho_enter take a MAC the attacker made up, one for another backend, or
    // one for a chain value other than the connection's current one.
    for (who, with_pid, with_chain) in [
        ("this backend", pid, chain),
        ("another backend", pid + 1, chain),
        ("an older chain value", pid, chain - 1),
    ] {
        let mut tx = conn.begin().await.unwrap();
        let entered = sqlx::query_scalar::<_, i64>("SELECT renrakucho_enter($1, $2, $3, NULL, $4)")
            .bind(with_pid)
            .bind(with_chain)
            .bind(a)
            .bind(vec![0u8; 32])
            .fetch_one(&mut *tx)
            .await;
        assert_eq!(
            refusal(entered),
            ("42501".to_string(), "tenant context refused".to_string()),
            "{who}"
        );
        tx.rollback().await.unwrap();
    }

    // A connection that never drew a chain value cannot check any context: the statement
    // fails rather than let one through.
    let mut fresh = net.app.database.runtime_options().connect().await.unwrap();
    let mut tx = fresh.begin().await.unwrap();
    sqlx::query("SELECT set_config('renrakucho.context', $1, true)")
        .bind(&genuine)
        .execute(&mut *tx)
        .await
        .unwrap();
    let counted = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *tx)
        .await;
    assert_eq!(sqlstate(counted), "55000", "currval is not yet defined");
}

#[tokio::test]
async fn a_pooled_connection_serving_a_then_b_sees_only_b() {
    let net = network().await;
    let db = Database::connect(&net.app.database.connections(), 1)
        .await
        .unwrap();
    let backend_and_facilities = |scope: Scope, end: &'static str| {
        let db = db.clone();
        async move {
            let mut tx = db.begin(scope).await.unwrap();
            let conn = tx.raw_connection_for_tests();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let seen: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT DISTINCT facility_id FROM staff_accounts")
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            match end {
                "commit" => tx.commit().await.unwrap(),
                "error" => {
                    // A failed statement leaves the transaction aborted; the pool rolls it back.
                    let _ = sqlx::query("SELECT 1/0").execute(&mut *conn).await;
                    drop(tx);
                }
                _ => drop(tx),
            }
            (pid, seen)
        }
    };

    let (first, seen_a) = backend_and_facilities(Scope::Facility(net.a.id), "commit").await;
    assert_eq!(seen_a, vec![net.a.id.as_uuid()]);
    for end in ["commit", "rollback", "error"] {
        let (pid, seen_b) = backend_and_facilities(Scope::Facility(net.b.id), end).await;
        assert_eq!(pid, first, "the pool of one reuses its connection");
        assert_eq!(seen_b, vec![net.b.id.as_uuid()], "after A, ended by {end}");
        let (_, seen_a) = backend_and_facilities(Scope::Facility(net.a.id), end).await;
        assert_eq!(seen_a, vec![net.a.id.as_uuid()], "after B, ended by {end}");
    }
    // And outside any scoped transaction, the connection carries no tenant at all.
    let mut pooled = db.connection().await.unwrap();
    let conn = pooled.raw_connection_for_tests();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(pid, first);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_accounts")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
