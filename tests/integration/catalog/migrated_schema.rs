//! The schema as the migrations leave it passes every check, and the allow-lists name only
//! things that exist.

use renrakucho_store::encrypted::{ENCRYPTED_COLUMNS, HISTORY_COLUMNS};
use renrakucho_testkit::spawn_app;

use super::functions::{CONTEXT_FUNCTIONS, FUNCTIONS, SECURITY_DEFINER};
use super::tables::WITHOUT_RLS;
use super::*;

#[tokio::test]
async fn the_schema_passes_every_catalog_check() {
    let app = spawn_app().await;
    let mut conn = superuser_of(&app).await;
    let problems = schema_problems(&mut conn).await;
    assert!(
        problems.is_empty(),
        "catalog problems:\n{}",
        problems.join("\n")
    );

    // The allow-lists name things that exist: a stale entry would hide nothing but mislead.
    for (table, _) in WITHOUT_RLS {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(exists, "{table} is on the allow-list but does not exist");
    }
    for (function, _) in SECURITY_DEFINER
        .iter()
        .copied()
        .chain(CONTEXT_FUNCTIONS.iter().map(|f| (*f, "")))
    {
        assert!(
            FUNCTIONS.iter().any(|(name, _, _)| *name == function),
            "{function} is on an allow-list but not among the functions"
        );
    }
    // Every column the re-encryption walks, and every column of history, exists, holds bytes,
    // and names its owner.
    for c in ENCRYPTED_COLUMNS.iter().chain(HISTORY_COLUMNS) {
        for (column, expected) in [
            (c.column, "bytea"),
            (c.id_column, "uuid"),
            (c.owner_column, "uuid"),
        ] {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT data_type FROM information_schema.columns
                  WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
            )
            .bind(c.table)
            .bind(column)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
            assert_eq!(found.as_deref(), Some(expected), "{}.{column}", c.table);
        }
    }
}
