//! The real `renrakucho` binary's key commands: master key epochs, rotation and retirement, an
//! unreachable KMS, binding values to their version.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use renrakucho_testkit::TestDatabase;
use sqlx::ConnectOptions;

mod common;
use common::{describe, renrakucho, run, text, Scratch, LISTENING};

/// Lines of `keys status`: (master key ID, data keys, current?).
fn key_status(output: &Output) -> Vec<(String, u64, bool)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (id, rest) = line.split_once(": ")?;
            if id == "Current master key" {
                return None;
            }
            let current = id.ends_with(" (current)");
            let id = id.trim_end_matches(" (current)").to_string();
            let count = rest.split_whitespace().next()?.parse().ok()?;
            Some((id, count, current))
        })
        .collect()
}

#[tokio::test]
async fn a_master_key_epoch_from_the_command_line_destroys_every_older_key() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("epochs");
    let key_dir = scratch.path.join("keys");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_MASTER_KEY_DIR", text(&key_dir)),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);
    let status = run(command(&["keys", "status"])).await;
    assert!(status.status.success(), "{}", describe(&status));
    let (old, _, _) = key_status(&status)[0].clone();
    let old_file = key_dir.join(format!("{}.key", old.trim_start_matches("local:")));
    assert!(old_file.exists());

    let rotated = run(command(&["keys", "rotate-epoch"])).await;
    assert!(rotated.status.success(), "{}", describe(&rotated));
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        out.contains("New master key epoch local:")
            && out.contains("1 data keys re-wrapped, 1 older master keys destroyed"),
        "{out}"
    );
    let after = key_status(&run(command(&["keys", "status"])).await);
    assert_eq!(after.len(), 1, "{after:?}");
    let (new, count, current) = after[0].clone();
    assert!(new != old && count == 1 && current, "{after:?}");
    assert!(!old_file.exists(), "the old epoch's key file is destroyed");
    let files: Vec<_> = std::fs::read_dir(&key_dir).unwrap().collect();
    assert_eq!(files.len(), 2, "the new key and `current`, nothing else");

    // A key given in the environment is not the server's to replace: a usage error.
    let given = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        (
            "RENRAKUCHO_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string(),
        ),
    ];
    let refused = run(renrakucho(&scratch.path, &["keys", "rotate-epoch"], &given)).await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("keys the server can replace"),
        "{}",
        describe(&refused)
    );
}

#[tokio::test]
async fn master_key_rotation_and_retirement_from_the_command_line() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("keys");
    let key_dir = scratch.path.join("keys");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_MASTER_KEY_DIR", text(&key_dir)),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);

    // The first start creates the key directory, its first master key and the network's
    // blind-index key.
    let status = run(command(&["keys", "status"])).await;
    assert!(status.status.success(), "{}", describe(&status));
    let before = key_status(&status);
    assert_eq!(before.len(), 1, "{}", describe(&status));
    let (old, count, current) = before[0].clone();
    assert!(
        old.starts_with("local:") && current && count == 1,
        "{before:?}"
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_dir), 0o700);
    let key_file = key_dir.join(format!("{}.key", old.trim_start_matches("local:")));
    assert_eq!(mode(&key_file), 0o600);

    let rotated = run(command(&["keys", "rotate-master", "--batch", "1"])).await;
    assert!(rotated.status.success(), "{}", describe(&rotated));
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(out.contains("Re-wrapped 1 data keys under local:"), "{out}");

    let after = key_status(&run(command(&["keys", "status"])).await);
    assert_eq!(after.len(), 1, "{after:?}");
    let (new, count, current) = after[0].clone();
    assert!(new != old && count == 1 && current, "{after:?}");

    // The current key cannot be retired; the old one can, and everything still starts.
    let bad = run(command(&["keys", "reencrypt", "someone"])).await;
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    let refused = run(command(&["keys", "retire-master", &new])).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is the current master key"));
    let retired = run(command(&["keys", "retire-master", &old])).await;
    assert!(retired.status.success(), "{}", describe(&retired));
    assert!(!key_file.exists());
    let status = run(command(&["keys", "status"])).await;
    assert!(status.status.success(), "{}", describe(&status));

    // A key file others can read stops everything, with the fix in the message.
    let new_file = key_dir.join(format!("{}.key", new.trim_start_matches("local:")));
    std::fs::set_permissions(&new_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = run(command(&["keys", "status"])).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("accessible to other users") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_kms_stops_the_server_with_a_clear_error() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("kms-down");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_LISTEN", "127.0.0.1:0".to_string()),
        ("RENRAKUCHO_KEY_PROVIDER", "aws-kms".to_string()),
        ("RENRAKUCHO_AWS_KMS_KEY_ID", "alias/renrakucho".to_string()),
        (
            "RENRAKUCHO_AWS_KMS_ENDPOINT",
            format!("http://127.0.0.1:{closed_port}"),
        ),
        ("RENRAKUCHO_AWS_REGION", "ap-northeast-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
    ];
    let served = run(renrakucho(&scratch.path, &["serve"], &envs)).await;
    assert_eq!(served.status.code(), Some(1), "{}", describe(&served));
    let stderr = String::from_utf8_lossy(&served.stderr);
    assert!(
        stderr.contains("the master key provider is unavailable"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&served.stdout).contains(LISTENING));

    // Without a key ID the configuration itself is refused.
    let envs = [("RENRAKUCHO_KEY_PROVIDER", "aws-kms".to_string())];
    let refused = run(renrakucho(&scratch.path, &["serve"], &envs)).await;
    assert_eq!(refused.status.code(), Some(2), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("RENRAKUCHO_AWS_KMS_KEY_ID"));
}

/// `renrakucho keys bind-versions` as the README documents it (ADR 0016): on a network whose
/// database still reads values of the earlier format, it walks every patient with its progress
/// bar, finds nothing left in that format and records that such values are refused from now
/// on; a second run has nothing to do.
#[tokio::test]
async fn binding_values_to_their_version_from_the_command_line() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("bind-versions");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);
    let demo = run(command(&["demo"])).await;
    assert!(demo.status.success(), "{}", describe(&demo));

    // As an upgraded database starts: format 1 still read until the command completes (set
    // past the guard that keeps the refusal for good).
    let mut su = db.superuser_options().connect().await.unwrap();
    sqlx::raw_sql(
        "BEGIN;
         SET LOCAL session_replication_role = replica;
         UPDATE private.value_binding SET legacy_readable = true, completed_at = NULL;
         COMMIT;",
    )
    .execute(&mut su)
    .await
    .unwrap();

    let bound = run(command(&["keys", "bind-versions", "--batch", "2"])).await;
    assert!(bound.status.success(), "{}", describe(&bound));
    let out = String::from_utf8_lossy(&bound.stdout);
    assert!(
        out.contains("No value of the earlier format is left"),
        "{}",
        describe(&bound)
    );
    let (readable, completed): (bool, bool) = sqlx::query_as(
        "SELECT legacy_readable, completed_at IS NOT NULL FROM private.value_binding",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        (readable, completed),
        (false, true),
        "format 1 refused for good"
    );

    let again = run(command(&["keys", "bind-versions"])).await;
    assert!(again.status.success(), "{}", describe(&again));
}

/// `renrakucho keys rotate-data-key OWNER [--reencrypt]` as the README shows it, for the
/// platform's key (the operators' authenticator secrets) and a facility's: each new version
/// is reported, and re-encryption runs.
#[tokio::test]
async fn data_keys_of_the_platform_and_a_facility_rotate_from_the_command_line() {
    let db = TestDatabase::create().await;
    let scratch = Scratch::new("data-keys");
    let envs = [
        ("DATABASE_URL", db.owner_url()),
        ("RENRAKUCHO_RUNTIME_DATABASE_URL", db.runtime_url()),
        ("RENRAKUCHO_DATA_DIR", text(&scratch.data_dir())),
    ];
    let command = |args: &[&str]| renrakucho(&scratch.path, args, &envs);
    let demo = run(command(&["demo"])).await;
    assert!(demo.status.success(), "{}", describe(&demo));

    for (expected_version, args) in [
        ("1", vec!["keys", "rotate-data-key", "platform"]),
        (
            "2",
            vec!["keys", "rotate-data-key", "platform", "--reencrypt"],
        ),
    ] {
        let rotated = run(command(&args)).await;
        assert!(rotated.status.success(), "{}", describe(&rotated));
        let out = String::from_utf8_lossy(&rotated.stdout);
        assert!(
            out.contains(&format!(
                "The data key of platform is now at version {expected_version}."
            )),
            "{out}"
        );
    }
    let mut su = db.superuser_options().connect().await.unwrap();
    let (platform_keys, clinic): (i64, uuid::Uuid) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM data_keys WHERE owner_kind = 'platform' AND
                    facility_id IS NULL),
                (SELECT id FROM facilities WHERE code = 'IZ-CLINIC')",
    )
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(platform_keys, 2);

    let owner = format!("facility:{clinic}");
    let rotated = run(command(&["keys", "rotate-data-key", &owner, "--reencrypt"])).await;
    // The demo's clinic has no facility key until something of its own is encrypted.
    let out = String::from_utf8_lossy(&rotated.stdout).to_string();
    let err = String::from_utf8_lossy(&rotated.stderr).to_string();
    assert!(
        (rotated.status.success() && out.contains("is now at version"))
            || err.contains("has no data key"),
        "{}",
        describe(&rotated)
    );
}
