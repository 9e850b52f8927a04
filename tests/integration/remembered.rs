//! What a server process remembers of sessions and accounts between requests (ADR 0025): a
//! signed-in request reads neither from the database once remembered, and a change made through
//! another process (a sign-out, a suspension) is forgotten as soon as the database announces it,
//! well before the memory's own bound.

use std::time::Duration;

use renrakucho_core::{FacilityKind, Profession, StaffRole, StaffStatus};
use renrakucho_http::principals::{Principals, REMEMBER_FOR};
use renrakucho_store::{staff, Scope};
use renrakucho_testkit::{new_client, spawn_app, TestApp, FIXTURE_PASSWORD};
use reqwest::Client;

/// Much shorter than [`REMEMBER_FOR`]: a change seen within this came by announcement, not by
/// the memory running out.
const ANNOUNCED_WITHIN: Duration = Duration::from_secs(10);
const _: () = assert!(ANNOUNCED_WITHIN.as_secs() < REMEMBER_FOR.as_secs());

async fn listening(principals: &Principals) {
    crate::support::wait_until("the server following principal changes", || async {
        principals.is_listening()
    })
    .await;
}

/// A second server process on `app`'s database, its address and its memory; stopped when the
/// returned sender is dropped.
async fn second_process(app: &TestApp) -> (String, Principals, tokio::sync::oneshot::Sender<()>) {
    let second = renrakucho_server::Application::build(&app.settings, &app.database.connections())
        .await
        .expect("a second server process");
    let address = format!("http://{}", second.local_addr());
    let principals = second.principals().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    listening(&principals).await;
    (address, principals, stop)
}

/// The session cookie (a `Cookie` header value) of a nurse of a new facility `code`, signed in
/// through `app`; the staff member.
async fn nurse(app: &TestApp, code: &str) -> (String, renrakucho_store::staff::StaffAccount) {
    let facility = app.seed_facility(code, FacilityKind::Clinic).await;
    let account = app
        .seed_staff(&facility, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let response = app
        .sign_in_with(&new_client(), Some(code), "nurse", FIXTURE_PASSWORD)
        .await;
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("renrakucho_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("the sign-in sets the session cookie");
    (cookie, account)
}

async fn me_at(address: &str, cookie: &str) -> u16 {
    Client::new()
        .get(format!("{address}/api/v1/me"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits up to [`ANNOUNCED_WITHIN`] for `done`: well before [`REMEMBER_FOR`] would make it so.
async fn within_announcement<F, Fut>(what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::support::wait_within(what, ANNOUNCED_WITHIN, done).await;
}

#[tokio::test]
async fn a_remembered_session_costs_the_database_nothing() {
    let app = spawn_app().await;
    listening(&app.server_principals).await;
    let (cookie, _) = nurse(&app, "MEM-1").await;
    assert_eq!(me_at(&app.address, &cookie).await, 200);
    let before = app.server_db.web_checkouts();
    for _ in 0..20 {
        assert_eq!(me_at(&app.address, &cookie).await, 200);
    }
    let used = app.server_db.web_checkouts() - before;
    // Before ADR 0025 each of these read the session and the account: 40 checkouts. A
    // background task of the server may take one meanwhile.
    assert!(
        used <= 2,
        "20 remembered requests took {used} web connections"
    );
}

#[tokio::test]
async fn signing_out_through_one_process_ends_the_session_in_another() {
    let app = spawn_app().await;
    listening(&app.server_principals).await;
    let (second, _memory, _stop) = second_process(&app).await;
    let (cookie, _) = nurse(&app, "MEM-2").await;
    // The second process reads the session once and remembers it.
    assert_eq!(me_at(&second, &cookie).await, 200);
    assert_eq!(me_at(&second, &cookie).await, 200);

    let out = Client::new()
        .post(app.url("/api/v1/auth/sign-out"))
        .header(reqwest::header::COOKIE, &cookie)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(me_at(&app.address, &cookie).await, 401, "the same process");
    within_announcement("the other process refusing the ended session", || async {
        me_at(&second, &cookie).await == 401
    })
    .await;
}

#[tokio::test]
async fn an_account_suspended_elsewhere_is_refused_by_every_process() {
    let app = spawn_app().await;
    listening(&app.server_principals).await;
    let (second, _memory, _stop) = second_process(&app).await;
    let (cookie, account) = nurse(&app, "MEM-3").await;
    assert_eq!(me_at(&second, &cookie).await, 200);
    assert_eq!(me_at(&app.address, &cookie).await, 200);

    // A third party (the fixture's own connections) suspends the account.
    let mut tx = app
        .db
        .begin(Scope::Facility(account.facility_id))
        .await
        .unwrap();
    staff::set_status(&mut tx, account.id, StaffStatus::Suspended)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for (name, address) in [("the first process", &app.address), ("the second", &second)] {
        within_announcement(name, || async { me_at(address, &cookie).await == 401 }).await;
    }
}
