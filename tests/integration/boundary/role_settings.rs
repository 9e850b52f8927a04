//! Role settings and memberships: the settings the web role gives itself are named (by the
//! runtime-role check) and change nothing; memberships and settings that would weaken a runtime
//! role are refused.

use super::*;

#[tokio::test]
async fn role_settings_the_web_role_gives_itself_are_named_and_change_nothing() {
    use renrakucho_store::{check_runtime_role, RuntimeRoleProblem};
    let app = spawn_app().await;
    let t = trio(&app, "BND-ROLE").await;
    let db = app.database.name().to_string();
    let _undo = Undo {
        superuser: app.database.superuser_options(),
        sql: format!("ALTER ROLE renrakucho_app IN DATABASE {db} RESET ALL"),
    };
    assert_eq!(
        check_runtime_role(&app.database.runtime_options())
            .await
            .unwrap(),
        []
    );

    let mut me = attacker(&app).await;
    // Only this test's database: the role is shared with every test running meanwhile.
    for setting in [
        "row_security = off",
        "search_path = pg_temp, public",
        "default_transaction_read_only = on",
    ] {
        exec(
            &mut me,
            &format!("ALTER ROLE CURRENT_USER IN DATABASE {db} SET {setting}"),
        )
        .await;
    }
    match sqlx::raw_sql(&format!("ALTER DATABASE {db} SET row_security = off"))
        .execute(&mut me)
        .await
    {
        Err(e) => assert_eq!(sqlstate(&e), "42501"),
        Ok(_) => panic!("the web role altered the database's settings"),
    }
    let problems = check_runtime_role(&app.database.runtime_options())
        .await
        .unwrap();
    for (setting, name) in [
        ("row_security=off", "row_security"),
        ("search_path=pg_temp, public", "search_path"),
        (
            "default_transaction_read_only=on",
            "default_transaction_read_only",
        ),
    ] {
        assert!(
            problems.contains(&RuntimeRoleProblem::Setting {
                setting: setting.into(),
                fix: format!("ALTER ROLE renrakucho_app IN DATABASE {db} RESET {name}"),
            }),
            "{setting}: {problems:?}"
        );
    }
    let message = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        message.contains("row_security=off") && message.contains("RESET row_security"),
        "{message}"
    );

    // A connection of its own starts with them: row-level security off means refusals, not rows.
    let mut own = attacker(&app).await;
    let row_security: String = sqlx::query_scalar("SHOW row_security")
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(row_security, "off");
    exec(&mut own, "BEGIN READ WRITE").await;
    assert_eq!(rows_of_b(&mut own, &t).await, 0);
    sees_nothing(&mut own, "row_security off").await;
    exec(&mut own, "ROLLBACK").await;

    // Limits that deny service: with them, every genuine transaction would be cut off after a
    // millisecond. The check names them too (and is not itself cut off).
    for setting in [
        "idle_in_transaction_session_timeout = '1ms'",
        "statement_timeout = '1ms'",
    ] {
        exec(
            &mut me,
            &format!("ALTER ROLE CURRENT_USER IN DATABASE {db} SET {setting}"),
        )
        .await;
    }
    let problems = check_runtime_role(&app.database.runtime_options())
        .await
        .unwrap();
    for (setting, name) in [
        (
            "idle_in_transaction_session_timeout=1ms",
            "idle_in_transaction_session_timeout",
        ),
        ("statement_timeout=1ms", "statement_timeout"),
    ] {
        assert!(
            problems.contains(&RuntimeRoleProblem::Setting {
                setting: setting.into(),
                fix: format!("ALTER ROLE renrakucho_app IN DATABASE {db} RESET {name}"),
            }),
            "{setting}: {problems:?}"
        );
    }

    // The server's connections start with their own settings, which outrank the role's: new
    // ones isolate as before.
    let fresh = Database::connect(&app.database.connections(), 2)
        .await
        .unwrap();
    let mut tx = fresh.begin(Scope::Facility(t.a.id)).await.unwrap();
    let raw = tx.raw_connection_for_tests();
    let (rls, path, read_only): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('row_security'), current_setting('search_path'),
                current_setting('default_transaction_read_only')",
    )
    .fetch_one(&mut *raw)
    .await
    .unwrap();
    assert_eq!(
        (rls.as_str(), path.as_str(), read_only.as_str()),
        ("on", "pg_catalog,public,pg_temp", "off")
    );
    let (idle, statement): (String, String) = sqlx::query_as(
        "SELECT current_setting('idle_in_transaction_session_timeout'),
                current_setting('statement_timeout')",
    )
    .fetch_one(&mut *raw)
    .await
    .unwrap();
    assert_eq!((idle.as_str(), statement.as_str()), ("0", "0"));
    // A pause inside the transaction longer than the planted limit changes nothing.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(rows_of_b(raw, &t).await, 0, "A sees nothing of B");
    drop(tx);
    let mut tx = fresh.begin(Scope::Facility(t.b.id)).await.unwrap();
    assert_eq!(
        count(
            tx.raw_connection_for_tests(),
            &format!(
                "SELECT count(*) FROM entries WHERE patient_id = '{}'",
                t.b_patient
            )
        )
        .await,
        3,
        "B sees its patient's notebook"
    );
    drop(tx);
    fresh.close().await;
    // And over HTTP.
    let status = t
        .b_client
        .get(patient_url(&app, t.b_patient, "/entries"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "B reads its notebook");
    let status = t
        .a_client
        .get(patient_url(&app, t.b_patient, "/entries"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "A does not");
    exec(
        &mut me,
        &format!("ALTER ROLE CURRENT_USER IN DATABASE {db} RESET ALL"),
    )
    .await;
    assert_eq!(
        check_runtime_role(&app.database.runtime_options())
            .await
            .unwrap(),
        []
    );
}

#[tokio::test]
async fn memberships_and_settings_that_would_weaken_a_runtime_role_are_refused() {
    use renrakucho_store::{check_runtime_role, RuntimeRoleProblem};
    let app = spawn_app().await;
    let db = app.database.name().to_string();
    // A runtime login role of this test's own (memberships are cluster-wide: the shared
    // renrakucho_app is left alone for the tests running meanwhile).
    let id = Uuid::new_v4().simple().to_string();
    let (runtime, bypass, superrole) = (
        format!("bnd_rt_{id}"),
        format!("bnd_bypass_{id}"),
        format!("bnd_super_{id}"),
    );
    let _undo = Undo {
        superuser: app.database.superuser_options(),
        sql: format!(
            "REVOKE TEMPORARY ON DATABASE {db} FROM {runtime};
             DROP ROLE IF EXISTS {bypass}; DROP ROLE IF EXISTS {superrole}; DROP ROLE IF EXISTS {runtime};"
        ),
    };
    let mut su = superuser(&app).await;
    exec(
        &mut su,
        &format!(
            "CREATE ROLE {runtime} LOGIN INHERIT PASSWORD '{}'; GRANT renrakucho_runtime TO {runtime};",
            renrakucho_testkit::RUNTIME_PASSWORD
        ),
    )
    .await;
    let options = app.database.runtime_options().username(&runtime);
    assert_eq!(
        check_runtime_role(&options).await.unwrap(),
        [],
        "as provisioned"
    );

    exec(
        &mut su,
        &format!("CREATE ROLE {bypass} NOLOGIN BYPASSRLS; GRANT {bypass} TO {runtime};"),
    )
    .await;
    exec(
        &mut su,
        &format!("CREATE ROLE {superrole} NOLOGIN SUPERUSER; GRANT {superrole} TO {runtime};"),
    )
    .await;
    exec(&mut su, &format!("GRANT renrakucho_platform TO {runtime}; GRANT TEMPORARY ON DATABASE {db} TO {runtime};")).await;
    // The role itself, for every database.
    let mut own = options.connect().await.unwrap();
    exec(&mut own, "ALTER ROLE CURRENT_USER SET row_security = off").await;
    own.close().await.ok();

    let problems = check_runtime_role(&options).await.unwrap();
    for expected in [
        RuntimeRoleProblem::MemberOfPowerfulRole(bypass.clone()),
        RuntimeRoleProblem::MemberOfPowerfulRole(superrole.clone()),
        RuntimeRoleProblem::MemberOfPrivilegedRole("renrakucho_platform".into()),
        RuntimeRoleProblem::MayCreateTemporaryTables(db.clone()),
        RuntimeRoleProblem::Setting {
            setting: "row_security=off".into(),
            fix: format!("ALTER ROLE {runtime} RESET row_security"),
        },
    ] {
        assert!(problems.contains(&expected), "{expected:?} in {problems:?}");
    }
    exec(&mut su, &format!("REVOKE renrakucho_platform FROM {runtime}; REVOKE TEMPORARY ON DATABASE {db} FROM {runtime}; DROP ROLE {bypass}; DROP ROLE {superrole}; ALTER ROLE {runtime} RESET ALL;")).await;
    assert_eq!(check_runtime_role(&options).await.unwrap(), [], "undone");
}
