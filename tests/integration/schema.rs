//! `docs/schema.sql` is the schema as the migrations leave it: what a reader would otherwise
//! piece together across the migrations (functions and policies redefined by later ones). It is
//! generated, by `pg_dump --schema-only` of a freshly migrated database, owners, grants and
//! policies included, and this test fails as soon as it differs from a fresh dump.
//!
//! Regenerate it with the command in [`BLESS_COMMAND`] (docs/architecture.md says the same).

use std::path::PathBuf;

use renrakucho_pgcluster::Binaries;
use renrakucho_testkit::TestDatabase;

/// Set to `1` to write `docs/schema.sql` from the dump instead of comparing.
const BLESS: &str = "RENRAKUCHO_BLESS";
const BLESS_COMMAND: &str =
    "RENRAKUCHO_BLESS=1 cargo test -p renrakucho-tests --test integration -- schema::";

const HEADER: &str = "\
-- The database schema as the migrations in migrations/ leave it (generated: do not edit).
-- `pg_dump --schema-only` of a freshly migrated database, checked by the integration test
-- `schema::docs_schema_sql_is_a_fresh_dump`; regenerate with
--   RENRAKUCHO_BLESS=1 cargo test -p renrakucho-tests --test integration -- schema::
-- Only the PostgreSQL versions below are shortened to their major version.
";

/// The `pg_dump` of the server's own installation: beside `initdb`, or beside what a symlinked
/// `initdb` points to (Debian keeps the binaries in `/usr/lib/postgresql/<major>/bin`).
fn pg_dump() -> PathBuf {
    let bin = Binaries::find().expect("the PostgreSQL binaries").bin_dir;
    let beside_initdb = std::fs::canonicalize(bin.join("initdb"))
        .ok()
        .and_then(|initdb| Some(initdb.parent()?.join("pg_dump")));
    [Some(bin.join("pg_dump")), beside_initdb]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("pg_dump"))
}

fn schema_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schema.sql")
}

/// What varies from one dump of the same schema to the next, and nothing else: the random key
/// of psql's `\restrict` guard (pg_dump 15.14+), and the minor versions in the header.
fn normalise(dump: &str) -> String {
    let mut out = String::from(HEADER);
    for line in dump.lines() {
        if line.starts_with("\\restrict ") || line.starts_with("\\unrestrict ") {
            continue;
        }
        let line = match [
            "-- Dumped from database version ",
            "-- Dumped by pg_dump version ",
        ]
        .iter()
        .find(|p| line.starts_with(**p))
        {
            Some(prefix) => {
                let version = &line[prefix.len()..];
                let major = version.split(['.', ' ']).next().unwrap_or(version);
                format!("{prefix}{major}")
            }
            None => line.to_string(),
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[tokio::test]
async fn docs_schema_sql_is_a_fresh_dump() {
    // A database cloned from the template the test server migrated from nothing.
    let database = TestDatabase::create().await;
    let pg_dump = pg_dump();
    let output = tokio::process::Command::new(&pg_dump)
        .arg("--schema-only")
        .arg("--dbname")
        .arg(database.owner_url())
        .env("PGCONNECT_TIMEOUT", "30")
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {}: {e}", pg_dump.display()));
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh = normalise(&String::from_utf8(output.stdout).expect("a UTF-8 dump"));
    assert!(
        fresh.contains("CREATE FUNCTION public.care_team_members_transition()"),
        "the dump holds the schema"
    );
    assert!(
        !fresh.contains(database.name()),
        "the dump names no per-test database"
    );

    let path = schema_file();
    if std::env::var(BLESS).as_deref() == Ok("1") {
        std::fs::write(&path, &fresh).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored == fresh {
        return;
    }
    let (number, ours, theirs) = stored
        .lines()
        .map(Some)
        .chain(std::iter::repeat(None))
        .zip(fresh.lines().map(Some).chain(std::iter::repeat(None)))
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(n, (a, b))| (n + 1, a, b))
        .expect("the texts differ somewhere");
    panic!(
        "docs/schema.sql is not what the migrations make (first difference at line {number}):\n  \
         docs/schema.sql: {}\n  fresh dump:      {}\n\
         After changing migrations, regenerate it with\n  {BLESS_COMMAND}\n\
         and commit it with the migration.",
        ours.unwrap_or("<end of file>"),
        theirs.unwrap_or("<end of dump>"),
    );
}

/// The table of SECURITY DEFINER functions in docs/architecture.md names exactly the functions
/// that run as the owner in a freshly migrated database: a migration that adds one (or drops
/// one) fails here until the table says who may call it and why that is safe.
#[tokio::test]
async fn architecture_md_lists_every_security_definer_function() {
    let database = TestDatabase::create().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&database.owner_url())
        .await
        .expect("connecting as the owner");
    let in_catalog: std::collections::BTreeSet<String> = sqlx::query_scalar(
        "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut conn)
    .await
    .expect("listing SECURITY DEFINER functions")
    .into_iter()
    .collect();
    assert!(
        in_catalog.contains("renrakucho_enter"),
        "the catalog holds the schema's functions"
    );

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/architecture.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    let section = text
        .split("### SECURITY DEFINER functions")
        .nth(1)
        .expect("docs/architecture.md has a section `### SECURITY DEFINER functions`");
    let section = section.split("\n#").next().unwrap_or(section);
    let in_docs: std::collections::BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect();

    let undocumented: Vec<_> = in_catalog.difference(&in_docs).collect();
    let gone: Vec<_> = in_docs.difference(&in_catalog).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "docs/architecture.md's table of SECURITY DEFINER functions differs from the catalog:\n  \
         missing from the table: {undocumented:?}\n  in the table but not in the database: {gone:?}"
    );
}
