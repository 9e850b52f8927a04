//! The operators' own provider (`RENRAKUCHO_OPERATOR_OIDC_*`): an operator linked on the server
//! (`admin link-operator-identity`) signs in through it with an empty facility code; an
//! unlinked subject is refused in the platform's chain; no facility is involved.

use std::net::TcpListener;

use renrakucho_core::LoginId;
use renrakucho_server::admin_commands;
use renrakucho_store::{audit, Scope, StoreError};
use renrakucho_testkit::oidc::{OidcClientConfig, OidcProvider};
use renrakucho_testkit::{new_client, spawn_app_with};
use reqwest::StatusCode;
use serde_json::Value;

use super::{accounts, provider_sign_in, CLIENT_SECRET};

#[tokio::test]
async fn operators_sign_in_through_their_own_provider() {
    // The provider knows the app's callback before the app starts: a free port chosen first.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let provider = OidcProvider::start(
        vec![OidcClientConfig {
            client_id: "operators".into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![format!("http://127.0.0.1:{port}/login/provider/callback")],
            post_logout_redirect_uris: vec![format!("http://127.0.0.1:{port}/login")],
        }],
        accounts(),
    )
    .await;
    let issuer = provider.issuer.clone();
    let app = spawn_app_with(|s| {
        s.listen = ([127, 0, 0, 1], port).into();
        s.operator_oidc_issuer = Some(issuer);
        s.operator_oidc_client_id = Some("operators".into());
        s.operator_oidc_client_secret = Some(renrakucho_server::config::Secret::new(CLIENT_SECRET));
    })
    .await;
    app.seed_operator("ops").await;
    let login = LoginId::parse("ops").unwrap();
    admin_commands::link_operator_identity(&app.db, &login, &provider.issuer, "alice-sub")
        .await
        .unwrap();
    let twice =
        admin_commands::link_operator_identity(&app.db, &login, &provider.issuer, "bob-sub").await;
    assert!(
        matches!(twice, Err(StoreError::Conflict { .. })),
        "one subject per operator"
    );

    provider.next_login("alice-sub").await;
    let client = new_client();
    let back = provider_sign_in(&app, &client, "").await;
    assert_eq!(back.status(), 303);
    let me: Value = client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], "operator");
    assert_eq!(me["login_id"], "ops");
    assert_eq!(me["second_factor_enrolment_required"], false);

    provider.next_login("bob-sub").await;
    let client = new_client();
    let back = provider_sign_in(&app, &client, "").await;
    assert_eq!(back.status(), StatusCode::FORBIDDEN);
    let me = client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);

    let mut tx = app.db.begin(Scope::Platform).await.unwrap();
    let records = audit::recent(&mut tx, 50).await.unwrap();
    tx.commit().await.unwrap();
    let reasons: Vec<String> = records
        .iter()
        .filter(|r| r.action == "auth.sign_in" && r.details["method"] == "oidc")
        .map(|r| {
            format!(
                "{}:{}",
                r.outcome,
                r.details["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(reasons, ["denied:not_linked", "success:oidc"]);
}
