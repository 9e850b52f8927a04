//! Reading, changing, removing and truncating: with facility A's context nothing of facility B
//! can be read, updated or deleted in any facility-owned table, and TRUNCATE is denied on every
//! table.

use super::*;

#[tokio::test]
async fn facility_a_cannot_read_change_or_remove_facility_bs_rows_in_any_table() {
    let net = network().await;
    let mut su = superuser(&net.app).await;
    let tables = facility_owned_tables(&mut su).await;

    for table in &tables {
        let before = digest(&mut su, table, net.b.id).await;
        assert!(before.0 > 0, "{}: the fixture gives B rows", table.name);
        let own = digest(&mut su, table, net.a.id).await.0;

        let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
        let conn = tx.raw_connection_for_tests();

        // Read: asking for B's rows by ID finds nothing; reading everything finds only A's.
        let of_b: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {} WHERE {} = $1",
            table.name, table.column
        ))
        .bind(net.b.id.as_uuid())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(of_b, 0, "{}: A reads B's rows", table.name);
        // Rows of no facility (the network's blind-index key) are readable by every facility
        // and checked by the key-table test; here only facility rows count.
        let visible: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
            "SELECT {c} FROM {t} WHERE {c} IS NOT NULL",
            t = table.name,
            c = table.column
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            visible.len() as i64,
            own,
            "{}: A sees its own rows",
            table.name
        );
        assert!(
            visible.iter().all(|f| *f == net.a.id.as_uuid()),
            "{}: A sees another facility's rows",
            table.name
        );

        // Update and delete aimed at B: either not permitted at all, or nothing matches.
        for statement in [
            format!(
                "UPDATE {t} SET {c} = {c} WHERE {c} = $1",
                t = table.name,
                c = table.column
            ),
            format!("DELETE FROM {} WHERE {} = $1", table.name, table.column),
        ] {
            sqlx::raw_sql("SAVEPOINT attempt")
                .execute(&mut *conn)
                .await
                .unwrap();
            match sqlx::query(&statement)
                .bind(net.b.id.as_uuid())
                .execute(&mut *conn)
                .await
            {
                Ok(done) => assert_eq!(done.rows_affected(), 0, "{statement}: A changed B's rows"),
                Err(e) => assert_eq!(
                    e.as_database_error().and_then(|d| d.code()).as_deref(),
                    Some("42501"),
                    "{statement}: {e}"
                ),
            }
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT attempt")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        // Committed, so that anything that had slipped through would be visible below.
        tx.commit().await.unwrap();

        assert_eq!(
            digest(&mut su, table, net.b.id).await,
            before,
            "{}: B's rows changed",
            table.name
        );
    }
}

#[tokio::test]
async fn truncate_is_denied_on_every_table() {
    let net = network().await;
    let mut su = superuser(&net.app).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(&mut su)
    .await
    .unwrap();
    assert!(tables.len() >= 5, "{tables:?}");

    for table in &tables {
        let mut tx = net.app.db.begin(Scope::Facility(net.a.id)).await.unwrap();
        let denied = sqlx::raw_sql(&format!("TRUNCATE {table} CASCADE"))
            .execute(tx.raw_connection_for_tests())
            .await;
        assert_eq!(sqlstate(denied), "42501", "TRUNCATE {table}");
    }
    let facilities: i64 = sqlx::query_scalar("SELECT count(*) FROM facilities")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(facilities, 3, "A, B and the facility both ask for support");
}
