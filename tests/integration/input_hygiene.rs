//! Issue 12 §3 (and §1): what people type is checked before anything reaches the database.
//! Each test performs the attack and sees it refused: control characters (a NUL first of all)
//! in sign-in fields, JSON bodies, query strings and forms are a 422 naming the field, never
//! the database's 500; names of nothing but invisible characters are refused; an uploaded
//! file's name loses its direction tricks; the e-mail rule is one rule in the application and
//! in the database; and form-like upload types are refused whatever their letter case.

use renrakucho_authz::Action;
use renrakucho_core::{FacilityKind, Profession, StaffRole};
use renrakucho_store::facilities::Facility;
use renrakucho_testkit::{new_client, spawn_app, TestApp, FIXTURE_PASSWORD};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

use crate::support::{authorizer_follows, failure, invalid, json_of, patient_url, superuser};

/// A clinic with a signed-in doctor (its administrator) and one patient of theirs.
struct Clinic {
    facility: Facility,
    client: Client,
    patient: Uuid,
}

async fn clinic(app: &TestApp, code: &str) -> Clinic {
    let facility = app.seed_facility(code, FacilityKind::Clinic).await;
    let doctor = app
        .seed_staff(
            &facility,
            "doctor",
            StaffRole::FacilityAdmin,
            Profession::Doctor,
        )
        .await;
    let patient = app
        .seed_patient(&doctor, "入力 花子", "ニュウリョク ハナコ")
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &facility, patient, Action::NotebookWrite, true).await;
    let client = app.client_for(&facility, "doctor").await;
    Clinic {
        facility,
        client,
        patient,
    }
}

/// Asserts the answer is not a server error, whatever else it is.
fn not_a_server_error(response: &Response, what: &str) {
    assert!(
        !response.status().is_server_error(),
        "{what}: answered {}",
        response.status()
    );
}

/// `X-File-Name`: every byte but unreserved ASCII as `%XX`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Control characters.

#[tokio::test]
async fn a_nul_in_any_sign_in_field_is_a_422_naming_it_over_the_api_and_the_portal() {
    let app = spawn_app().await;
    let c = clinic(&app, "NUL-SIGN").await;
    let code = c.facility.code.as_str();
    for (facility_code, login, password, field) in [
        ("NUL-SIGN\0", "doctor", FIXTURE_PASSWORD, "facility_code"),
        ("\0", "doctor", FIXTURE_PASSWORD, "facility_code"),
        ("NUL\u{1}SIGN", "doctor", FIXTURE_PASSWORD, "facility_code"),
        (code, "doc\0tor", FIXTURE_PASSWORD, "login_id"),
        (code, "doctor\u{85}", FIXTURE_PASSWORD, "login_id"),
        (code, "doctor", "correct horse\0battery staple", "password"),
        (code, "doctor", "\0", "password"),
    ] {
        let response = app
            .sign_in_with(&new_client(), Some(facility_code), login, password)
            .await;
        invalid(
            response,
            field,
            &format!("signing in with {facility_code:?} / {login:?} / {password:?}"),
        )
        .await;
    }
    // An operator's sign-in (no facility code) too.
    invalid(
        app.sign_in_with(&new_client(), None, "op\0erator", "x")
            .await,
        "login_id",
        "an operator's login ID with a NUL",
    )
    .await;
    // A password may hold anything printable: a wrong one with a tab is a plain failure.
    let response = app
        .sign_in_with(&new_client(), Some(code), "doctor", "correct\thorse")
        .await;
    assert_eq!(response.status(), 401, "a wrong password with a tab");

    // The portal's sign-in form: the same refusal, as a page.
    let browser = new_client();
    let token = app.form_token(&browser, "/login").await;
    for (facility_code, login, password) in [
        ("NUL-SIGN\0", "doctor", FIXTURE_PASSWORD),
        (code, "doc\0tor", FIXTURE_PASSWORD),
        (code, "doctor", "correct horse\0battery staple"),
    ] {
        let response = browser
            .post(app.url("/login"))
            .form(&[
                ("authenticity_token", token.as_str()),
                ("facility_code", facility_code),
                ("login_id", login),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            422,
            "the portal's sign-in with {facility_code:?} / {login:?}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("制御文字"), "the page says why: {page}");
        assert!(!page.contains('\0'), "the NUL is not sent back");
    }
    // Nobody was signed in by any of it, and the right credentials still work.
    assert_eq!(
        app.sign_in_with(&new_client(), Some(code), "doctor", FIXTURE_PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn control_characters_in_query_strings_are_refused_before_any_search() {
    let app = spawn_app().await;
    let c = clinic(&app, "NUL-QUERY").await;
    for (path, what) in [
        ("/api/v1/patients?q=%00", "the patient search"),
        (
            "/api/v1/patients?q=%E5%85%A5%0A%E5%8A%9B",
            "a line break in it",
        ),
        ("/api/v1/audit?limit=10&x=%00", "a parameter nobody reads"),
    ] {
        let response = c.client.get(app.url(path)).send().await.unwrap();
        let f = failure(response).await;
        assert_eq!((f.status, f.code.as_str()), (422, "validation"), "{what}");
        assert!(f.message.contains("制御文字"), "{what}: {f:?}");
    }
    invalid(
        c.client
            .get(app.url("/api/v1/patients?q=%00"))
            .send()
            .await
            .unwrap(),
        "q",
        "the field is named",
    )
    .await;
    invalid(
        c.client
            .get(patient_url(&app, c.patient, "/entries/search?q=%00"))
            .send()
            .await
            .unwrap(),
        "q",
        "the notebook search",
    )
    .await;
    // The portal's patient search: a page.
    let response = c
        .client
        .get(app.url("/patients?q=%00"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "the portal's patient search");
    // An ordinary search still works.
    let response = c
        .client
        .get(app.url("/api/v1/patients?q=%E5%85%A5%E5%8A%9B"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_nul_anywhere_in_a_json_body_is_a_422_naming_its_path() {
    let app = spawn_app().await;
    let c = clinic(&app, "NUL-JSON").await;
    let p = c.patient;
    // The invitation's facility code went to the database unparsed: a NUL was its 500.
    for (body, field) in [
        (json!({ "facility_code": "NUL-JSON\u{0}" }), "facility_code"),
        // A line break passes the gate (bodies may have lines) and the code's own rule refuses it.
        (json!({ "facility_code": "NUL\nJSON" }), "facility_code"),
    ] {
        let response = c
            .client
            .post(patient_url(&app, p, "/care-team"))
            .json(&body)
            .send()
            .await
            .unwrap();
        not_a_server_error(&response, "an invitation");
        invalid(response, field, "an invitation with a control character").await;
    }
    // A nested field is named by its path.
    let response = c
        .client
        .post(patient_url(&app, p, "/consents"))
        .json(&json!({
            "signer": { "kind": "family", "name": "入力\u{0}和子", "relation": "長女" },
            "signed_on": "2026-11-01",
        }))
        .send()
        .await
        .unwrap();
    invalid(
        response,
        "signer.name",
        "a consent signer's name with a NUL",
    )
    .await;
    // Notebook entries: NUL and escape sequences refused, line breaks and tabs kept.
    for (body, what) in [
        ("発熱あり\u{0}", "a NUL"),
        ("発熱あり\u{1B}[31m赤字", "an escape sequence"),
        ("発熱あり\u{7}", "a bell"),
        ("発熱あり\u{9B}", "a C1 control"),
    ] {
        let response = c
            .client
            .post(patient_url(&app, p, "/entries"))
            .json(&json!({ "category": "notice", "priority": "info", "body": body }))
            .send()
            .await
            .unwrap();
        invalid(response, "body", what).await;
    }
    let response = c
        .client
        .post(patient_url(&app, p, "/entries"))
        .json(&json!({ "category": "notice", "priority": "info",
                       "body": "夜間の発熱\r\n\t38.2度\n解熱剤を使用" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "lines and tabs are kept");
    assert_eq!(
        json_of(response).await["body"],
        "夜間の発熱\n\t38.2度\n解熱剤を使用"
    );
    // One-line fields refuse the line breaks a body keeps.
    for (name, address, field) in [
        ("入力\n太郎", None, "name"),
        ("入力 太郎", Some("静岡県\t伊豆市"), "address"),
        ("入力\u{0}太郎", None, "name"),
    ] {
        let response = c
            .client
            .post(app.url("/api/v1/patients"))
            .json(&json!({
                "name": name, "kana": "ニュウリョク タロウ", "birth_date": "1940-01-01",
                "sex": "male", "care_level": "care_1", "address": address,
            }))
            .send()
            .await
            .unwrap();
        invalid(
            response,
            field,
            &format!("registering {name:?} / {address:?}"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_portal_form_with_a_control_character_is_refused_as_a_page() {
    let app = spawn_app().await;
    let c = clinic(&app, "NUL-FORM").await;
    let token = app.form_token(&c.client, "/patients/new").await;
    let response = c
        .client
        .post(app.url("/patients/new"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("name", "入力\u{0}次郎"),
            ("kana", "ニュウリョク ジロウ"),
            ("birth_date", "1940-01-01"),
            ("sex", "male"),
            ("care_level", "care_1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "registering with a NUL in the name");
    let page = response.text().await.unwrap();
    assert!(page.contains("制御文字") && page.contains("name"), "{page}");
}

// ---------------------------------------------------------------------------------------------
// Invisible characters.

#[tokio::test]
async fn names_of_nothing_but_invisible_characters_are_refused() {
    let app = spawn_app().await;
    let c = clinic(&app, "INVISIBLE").await;
    let register = |name: &'static str, kana: &'static str| {
        c.client.post(app.url("/api/v1/patients")).json(&json!({
            "name": name, "kana": kana, "birth_date": "1940-01-01",
            "sex": "female", "care_level": "care_2",
        }))
    };
    for (name, kana, field) in [
        ("\u{200B}", "ミエナイ", "name"),
        ("\u{200B}\u{200C}\u{200D}", "ミエナイ", "name"),
        ("\u{2060}\u{FEFF}", "ミエナイ", "name"),
        (
            "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}",
            "ミエナイ",
            "name",
        ),
        ("\u{2066}\u{2067}\u{2068}\u{2069}", "ミエナイ", "name"),
        ("\u{200E} \u{200F}", "ミエナイ", "name"),
        ("見えない 花子", "\u{200B}\u{202E}", "kana"),
    ] {
        let response = register(name, kana).send().await.unwrap();
        invalid(response, field, &format!("registering {name:?} / {kana:?}")).await;
    }
    // The family member who signs the consent form is a person too.
    let response = c
        .client
        .post(patient_url(&app, c.patient, "/consents"))
        .json(&json!({
            "signer": { "kind": "family", "name": "\u{2066}\u{200B}\u{2069}", "relation": "長女" },
            "signed_on": "2026-11-01",
        }))
        .send()
        .await
        .unwrap();
    invalid(response, "signer_name", "a signer of invisible characters").await;
    // A name that shows something is kept.
    let response = register("見える 花子", "ミエル ハナコ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn an_uploaded_file_name_loses_direction_tricks_and_an_empty_one_is_refused() {
    let app = spawn_app().await;
    let c = clinic(&app, "BIDI-NAME").await;
    let upload = |name: &str| {
        c.client
            .post(patient_url(&app, c.patient, "/attachments"))
            .header("content-type", "image/png")
            .header("x-file-name", percent_encode(name))
            .body(renrakucho_testkit::PNG_1X1.to_vec())
    };
    // "\u{202E}gnp.exe" shows as "exe.png" wherever the override is honoured.
    for (sent, kept) in [
        ("\u{202E}gnp.exe", "gnp.exe"),
        ("写真\u{200B}\u{2066}.png\u{2069}", "写真.png"),
        ("\u{FEFF}褥瘡\u{200F}.png", "褥瘡.png"),
    ] {
        let response = upload(sent).send().await.unwrap();
        assert_eq!(response.status(), 201, "uploading {sent:?}");
        let uploaded = json_of(response).await;
        assert_eq!(uploaded["file_name"], kept, "{sent:?}");
        // The name attached to an entry and sent back on download is the cleaned one.
        let entry = c
            .client
            .post(patient_url(&app, c.patient, "/entries"))
            .json(
                &json!({ "category": "notice", "priority": "info", "body": "写真です",
                           "attachments": [uploaded["id"]] }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(entry.status(), 201, "attaching {sent:?}");
        let download = c
            .client
            .get(patient_url(
                &app,
                c.patient,
                &format!("/attachments/{}", uploaded["id"].as_str().unwrap()),
            ))
            .send()
            .await
            .unwrap();
        let disposition = download
            .headers()
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let every_byte: String = kept
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert!(
            disposition.ends_with(&format!("UTF-8''{every_byte}")),
            "{disposition}"
        );
        for invisible in ["%E2%80%AE", "%E2%80%8B", "%E2%81%A6", "%EF%BB%BF"] {
            assert!(!disposition.contains(invisible), "{disposition}");
        }
    }
    for sent in [
        "\u{202E}",
        "\u{200B}\u{FEFF}",
        "folder/\u{2066}\u{2069} ",
        "\u{0}\u{202E}",
    ] {
        let response = upload(sent).send().await.unwrap();
        invalid(response, "file_name", &format!("uploading {sent:?}")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// E-mail addresses.

async fn save_email(app: &TestApp, client: &Client, email: &str) -> Response {
    client
        .put(app.url("/api/v1/notifications/settings"))
        .json(&json!({ "email": email, "live_level": "info", "digest_enabled": true }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_digest_address_follows_one_rule_in_the_application_and_the_database() {
    let app = spawn_app().await;
    let c = clinic(&app, "MAIL-RULE").await;
    // The attack of the issue: the application's old check let it through, the database's
    // CHECK refused it, and the person got a 500.
    invalid(
        save_email(&app, &c.client, "a@b@c.jp").await,
        "email",
        "a@b@c.jp",
    )
    .await;
    let response = save_email(&app, &c.client, "doctor@clinic.example.jp").await;
    assert_eq!(response.status(), 204, "a plain address");
    let staff: Uuid = {
        let me: Value = json_of(c.client.get(app.url("/api/v1/me")).send().await.unwrap()).await;
        me["id"]
            .as_str()
            .expect("the signed-in person's ID")
            .parse()
            .unwrap()
    };
    let mut db = superuser(&app).await;
    for (address, valid) in renrakucho_core::email::SAMPLES {
        // The application.
        let response = save_email(&app, &c.client, address).await;
        not_a_server_error(&response, address);
        if *valid {
            assert_eq!(response.status(), 204, "the application takes {address:?}");
        } else {
            invalid(response, "email", address).await;
        }
        if address.contains('\0') {
            continue; // PostgreSQL text cannot hold it at all.
        }
        // The database, asked directly (as the superuser, past the application).
        let mut tx = db.begin().await.unwrap();
        let stored = sqlx::query("UPDATE notification_settings SET email = $1 WHERE staff_id = $2")
            .bind(address)
            .bind(staff)
            .execute(&mut *tx)
            .await;
        tx.rollback().await.unwrap();
        match stored {
            Ok(done) => {
                assert_eq!(done.rows_affected(), 1);
                assert!(
                    *valid,
                    "the database takes {address:?}, the application does not"
                );
            }
            Err(sqlx::Error::Database(e)) => {
                assert_eq!(
                    e.constraint(),
                    Some("notification_settings_email"),
                    "{address:?}"
                );
                assert!(
                    !*valid,
                    "the database refuses {address:?}, the application takes it"
                );
            }
            Err(e) => panic!("{address:?}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upload types.

#[tokio::test]
async fn form_like_upload_types_are_refused_whatever_their_letter_case() {
    let app = spawn_app().await;
    let c = clinic(&app, "TYPE-CASE").await;
    let upload = |content_type: &'static str| {
        c.client
            .post(patient_url(&app, c.patient, "/attachments"))
            .header("content-type", content_type)
            .header("x-file-name", "photo.png")
            .body(renrakucho_testkit::PNG_1X1.to_vec())
    };
    for content_type in [
        "Text/Plain",
        "TEXT/PLAIN; charset=UTF-8",
        "text/plain",
        "Multipart/Form-Data; boundary=x",
        "Application/X-WWW-Form-Urlencoded",
        "not a media type",
    ] {
        let response = upload(content_type).send().await.unwrap();
        let f = failure(response).await;
        assert_eq!(
            (f.status, f.code.as_str()),
            (415, "unsupported_media_type"),
            "{content_type}"
        );
    }
    for content_type in ["image/png", "Image/PNG", "application/octet-stream"] {
        let response = upload(content_type).send().await.unwrap();
        assert_eq!(response.status(), 201, "{content_type}");
    }
}
