//! The contact notebook (連絡帳) over HTTP, as the care team's browsers and phones call it:
//! entries of every kind with checked vital signs, replies and mentions, keyset pages, edits
//! with optimistic concurrency and a kept history, withdrawal, read receipts and unread counts,
//! search, attachments cleaned of their metadata and stored encrypted (locally and in S3),
//! exports, support requests to a facility outside the care team, notifications (feed, live
//! over server-sent events, the daily e-mail digest). A facility that has nothing to do with
//! the patient gets the same 404 as for a patient that does not exist, everywhere.
//!
//! The fixture network: a clinic (registering the patient: a doctor who is its facility
//! administrator, a nurse and a clerk), a visiting-nurse station in the care team with the
//! patient's consent on file (its administrator accepted the invitation; a nurse), and an
//! unrelated hospital (a doctor).

use std::time::Duration;

use renrakucho_authz::Action;
use renrakucho_care::{EntryContent, NewEntryInput, StaffActor};
use renrakucho_core::{
    Category, DisplayName, EntryBody, FacilityKind, LoginId, Password, PatientId, Priority,
    Profession, StaffRole, Vitals,
};
use renrakucho_identity::{PasswordHasher, PasswordParams};
use renrakucho_server::admin::{self, StaffToIssue};
use renrakucho_store::facilities::Facility;
use renrakucho_store::staff::StaffAccount;
use renrakucho_testkit::acting::Writer;
use renrakucho_testkit::{spawn_app, spawn_app_with, TestApp, FIXTURE_PASSWORD};
use reqwest::{Client, Method, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

const SIGNED_ON: &str = "2026-11-01";
const SCOPE: &str = "在宅医療のため、ケアチームの施設間で連絡帳を共有すること";

/// The fixture patient (fictional): neither part of the name appears in any fixed text of
/// the product, so a leak is noticed.
const PATIENT_NAME: &str = "梅田 花子";
const PATIENT_KANA: &str = "ウメダ ハナコ";

const DOCTOR: &str = "院長 一郎";
const NURSE: &str = "看護 花江";
const CLERK: &str = "事務 次郎";
const STATION_ADMIN: &str = "所長 三郎";
const MEMBER: &str = "訪問 桜";
const OUTSIDER: &str = "病院 五郎";

const CATEGORIES: [&str; 8] = [
    "instruction",
    "treatment",
    "support",
    "complaint",
    "vitals",
    "medication",
    "notice",
    "other",
];

// ---------------------------------------------------------------------------------------------
// Errors as the client sees them (the shared ones are in `support.rs`).

/// Asserts a 409 `conflict`.
async fn conflict(response: Response, what: &str) {
    let f = failure(response).await;
    assert_eq!(
        (f.status, f.code.as_str()),
        (409, "conflict"),
        "{what}: {f:?}"
    );
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an ID").to_string()
}

/// `X-File-Name`: every byte but unreserved ASCII as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

// ---------------------------------------------------------------------------------------------
// The network.

/// An active staff account with its own display name and [`FIXTURE_PASSWORD`].
async fn person(
    app: &TestApp,
    facility: &Facility,
    login: &str,
    role: StaffRole,
    profession: Profession,
    name: &str,
) -> StaffAccount {
    let hasher = PasswordHasher::new(PasswordParams {
        memory_kib: app.settings.password_memory_kib,
        iterations: app.settings.password_iterations,
        parallelism: 1,
    })
    .expect("hasher");
    let password = Password::new_secret(FIXTURE_PASSWORD.into()).expect("password");
    admin::create_staff(
        &app.db,
        &hasher,
        facility,
        StaffToIssue {
            login_id: LoginId::parse(login).expect("login"),
            name: DisplayName::parse(name).expect("name"),
            role,
            profession,
            password: &password,
        },
    )
    .await
    .expect("seeding staff")
}

/// The staff member as the care domain's author (for bulk set-up without HTTP).
fn author(staff: &StaffAccount) -> Writer {
    Writer {
        actor: StaffActor {
            staff: staff.id,
            facility: staff.facility_id,
        },
        name: staff.display_name.clone(),
        profession: staff.profession,
        facility_admin: staff.role == StaffRole::FacilityAdmin,
    }
}

struct Net {
    clinic: Facility,
    station: Facility,
    hospital: Facility,
    /// The clinic's doctor, its facility administrator.
    admin: StaffAccount,
    /// The visiting-nurse station's nurse (a care-team member's staff).
    member: StaffAccount,
    patient: Uuid,
    /// Clients: the clinic's doctor (admin), nurse and clerk; the station's administrator and
    /// nurse; the hospital's doctor.
    doctor_c: Client,
    nurse_c: Client,
    clerk_c: Client,
    station_admin_c: Client,
    member_c: Client,
    outsider_c: Client,
}

async fn network(app: &TestApp) -> Net {
    let clinic = app.seed_facility("NB-CLINIC", FacilityKind::Clinic).await;
    let station = app
        .seed_facility("NB-NURSE", FacilityKind::VisitingNurseStation)
        .await;
    let hospital = app.seed_facility("NB-HOSP", FacilityKind::Hospital).await;
    let admin = person(
        app,
        &clinic,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Doctor,
        DOCTOR,
    )
    .await;
    person(
        app,
        &clinic,
        "nurse",
        StaffRole::Staff,
        Profession::Nurse,
        NURSE,
    )
    .await;
    person(
        app,
        &clinic,
        "clerk",
        StaffRole::Staff,
        Profession::Clerk,
        CLERK,
    )
    .await;
    person(
        app,
        &station,
        "admin",
        StaffRole::FacilityAdmin,
        Profession::Nurse,
        STATION_ADMIN,
    )
    .await;
    let member = person(
        app,
        &station,
        "nurse",
        StaffRole::Staff,
        Profession::Nurse,
        MEMBER,
    )
    .await;
    person(
        app,
        &hospital,
        "doctor",
        StaffRole::Staff,
        Profession::Doctor,
        OUTSIDER,
    )
    .await;
    let patient = app
        .seed_patient(&admin, PATIENT_NAME, PATIENT_KANA)
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &clinic, patient, Action::NotebookWrite, true).await;
    let net = Net {
        doctor_c: app.client_for(&clinic, "admin").await,
        nurse_c: app.client_for(&clinic, "nurse").await,
        clerk_c: app.client_for(&clinic, "clerk").await,
        station_admin_c: app.client_for(&station, "admin").await,
        member_c: app.client_for(&station, "nurse").await,
        outsider_c: app.client_for(&hospital, "doctor").await,
        clinic,
        station,
        hospital,
        admin,
        member,
        patient,
    };
    net.share(app, patient).await;
    net
}

fn consent_body() -> Value {
    json!({
        "signer": { "kind": "family", "name": "試験 和子", "relation": "長女" },
        "signed_on": SIGNED_ON,
        "scope": SCOPE,
    })
}

impl Net {
    /// Consent on file, the station invited and accepted (all through the API), and the
    /// station's nurse reading the notebook.
    async fn share(&self, app: &TestApp, patient: Uuid) {
        let response = self
            .doctor_c
            .post(patient_url(app, patient, "/consents"))
            .json(&consent_body())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "recording the consent");
        let response = self
            .doctor_c
            .post(patient_url(app, patient, "/care-team"))
            .json(&json!({ "facility_code": self.station.code }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "inviting the station");
        authorizer_follows(app, &self.station, patient, Action::CareTeamAccept, true).await;
        let response = self
            .station_admin_c
            .post(patient_url(app, patient, "/care-team/accept"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "the station accepts");
        eventually(&self.member_c, &patient_url(app, patient, "/entries"), 200).await;
    }

    fn station_id(&self) -> String {
        self.station.id.as_uuid().to_string()
    }

    fn clinic_id(&self) -> String {
        self.clinic.id.as_uuid().to_string()
    }
}

/// A second patient of the clinic (no consent, no care team), once the server's authorizer
/// knows of it: registration is announced to the authorizer asynchronously.
async fn another_patient(app: &TestApp, net: &Net) -> Uuid {
    let patient = app
        .seed_patient(&net.admin, "松田 次郎", "マツダ ジロウ")
        .await
        .id
        .as_uuid();
    authorizer_follows(app, &net.clinic, patient, Action::NotebookWrite, true).await;
    patient
}

// ---------------------------------------------------------------------------------------------
// Entries.

fn good_vitals() -> Value {
    json!({
        "temperature": { "value": 36.8, "unit": "℃" },
        "systolic": { "value": 128, "unit": "mmHg" },
        "diastolic": { "value": 76, "unit": "mmHg" },
    })
}

async fn try_post(app: &TestApp, client: &Client, patient: Uuid, body: &Value) -> Response {
    client
        .post(patient_url(app, patient, "/entries"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Posts an entry (201); the entry.
async fn post(app: &TestApp, client: &Client, patient: Uuid, body: Value) -> Value {
    let response = try_post(app, client, patient, &body).await;
    if response.status() != 201 {
        panic!("posting an entry: {:?}", failure(response).await);
    }
    json_of(response).await
}

/// A simple entry: category, priority, body.
async fn note(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    category: &str,
    priority: &str,
    body: &str,
) -> String {
    id_of(
        &post(
            app,
            client,
            patient,
            json!({ "category": category, "priority": priority, "body": body }),
        )
        .await,
    )
}

/// One page of the timeline (`query` without the leading `?`).
async fn page(app: &TestApp, client: &Client, patient: Uuid, query: &str) -> Value {
    let response = client
        .get(patient_url(app, patient, &format!("/entries?{query}")))
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        panic!("reading the timeline: {:?}", failure(response).await);
    }
    json_of(response).await
}

/// Every entry ID of the timeline, newest first, following the cursors.
async fn timeline_ids(app: &TestApp, client: &Client, patient: Uuid, filter: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("limit=100&{filter}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let p = page(app, client, patient, &query).await;
        ids.extend(p["entries"].as_array().unwrap().iter().map(id_of));
        match p["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
}

async fn detail(app: &TestApp, client: &Client, patient: Uuid, entry: &str) -> Value {
    let response = client
        .get(patient_url(app, patient, &format!("/entries/{entry}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading an entry");
    json_of(response).await
}

async fn edit(app: &TestApp, client: &Client, patient: Uuid, entry: &str, body: Value) -> Response {
    client
        .put(patient_url(app, patient, &format!("/entries/{entry}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn withdraw(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    entry: &str,
    reason: &str,
) -> Response {
    client
        .post(patient_url(
            app,
            patient,
            &format!("/entries/{entry}/withdraw"),
        ))
        .json(&json!({ "reason": reason }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn entries_of_every_kind_are_posted_and_the_care_team_reads_them_newest_first() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;

    let mut posted = Vec::new();
    for (i, category) in CATEGORIES.iter().enumerate() {
        let priority = ["urgent", "reply_requested", "info"][i % 3];
        let mut body =
            json!({ "category": category, "priority": priority, "body": format!("記録 {i}") });
        if *category == "vitals" {
            body["vitals"] = good_vitals();
        }
        let e = post(&app, &net.nurse_c, p, body).await;
        assert_eq!(e["category"], *category);
        assert_eq!(e["priority"], priority);
        assert_eq!(e["body"], format!("記録 {i}"));
        assert_eq!(e["author_name"], NURSE);
        assert_eq!(e["author_profession"], "nurse");
        assert_eq!(e["facility"], net.clinic_id());
        assert_eq!(e["facility_name"], net.clinic.name.as_str());
        assert_eq!(e["patient"], p.to_string());
        assert_eq!(e["version"], 1);
        assert_eq!(e["read"], true, "one's own entry counts as read");
        assert!(e["withdrawn_at"].is_null());
        if *category == "vitals" {
            let v = &e["vitals"];
            assert_eq!(v["temperature_c"], 36.8);
            assert_eq!(v["systolic_mmhg"], 128);
            assert_eq!(v["diastolic_mmhg"], 76);
            assert!(v["pulse_bpm"].is_null() && v["weight_kg"].is_null());
        } else {
            assert!(e["vitals"].is_null());
        }
        posted.push(id_of(&e));
    }
    // The priority defaults to 参考 (info).
    let e = post(
        &app,
        &net.doctor_c,
        p,
        json!({ "category": "notice", "body": "重要度なし" }),
    )
    .await;
    assert_eq!(e["priority"], "info");
    posted.push(id_of(&e));

    // The member station's nurse reads them, newest first, unread.
    let first = page(&app, &net.member_c, p, "").await;
    let entries = first["entries"].as_array().unwrap();
    let ids: Vec<String> = entries.iter().map(id_of).collect();
    let newest_first: Vec<String> = posted.iter().rev().cloned().collect();
    assert_eq!(
        ids, newest_first,
        "the member reads every entry, newest first"
    );
    assert!(first["next"].is_null(), "one page");
    assert!(entries.iter().all(|e| e["read"] == false));
    let vitals = entries.iter().find(|e| e["category"] == "vitals").unwrap();
    assert_eq!(vitals["vitals"]["temperature_c"], 36.8);

    // The clinic mentions the station; the station's nurse replies.
    let mention = post(
        &app,
        &net.doctor_c,
        p,
        json!({ "category": "instruction", "priority": "reply_requested",
                "body": "訪問時に褥瘡の状態を確認してください", "mentions": [net.station_id()] }),
    )
    .await;
    assert_eq!(mention["mentions"], json!([net.station_id()]));
    let reply = post(
        &app,
        &net.member_c,
        p,
        json!({ "category": "support", "body": "確認しました。発赤なし",
                "reply_to": id_of(&mention) }),
    )
    .await;
    assert_eq!(reply["reply_to"], id_of(&mention));
    assert_eq!(reply["facility"], net.station_id());
    assert_eq!(reply["author_name"], MEMBER);
    let shown = detail(&app, &net.doctor_c, p, &id_of(&mention)).await;
    assert_eq!(shown["entry"]["id"], id_of(&mention));
    let replies: Vec<String> = shown["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(replies, vec![id_of(&reply)], "the detail shows the reply");
    assert_eq!(shown["versions"].as_array().unwrap().len(), 1);
    posted.push(id_of(&mention));
    posted.push(id_of(&reply));

    // Another patient of the clinic, with an entry of its own.
    let other = another_patient(&app, &net).await;
    let others = note(&app, &net.doctor_c, other, "notice", "info", "別の対象者").await;

    // Bad input: 422 naming the field, nothing stored.
    let before = timeline_ids(&app, &net.doctor_c, p, "").await;
    assert_eq!(before.len(), posted.len());
    let long = "あ".repeat(5001);
    let vitals_with =
        |vitals: Value| json!({ "category": "vitals", "body": "測定", "vitals": vitals });
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({ "category": "notice", "body": "" }),
            "body",
            "an empty body",
        ),
        (
            json!({ "category": "notice", "body": " \n\t " }),
            "body",
            "a blank body",
        ),
        (
            json!({ "category": "notice", "body": long }),
            "body",
            "5001 characters",
        ),
        (
            json!({ "category": "diary", "body": "本文" }),
            "category",
            "an unknown category",
        ),
        (
            json!({ "category": "notice", "priority": "asap", "body": "本文" }),
            "priority",
            "an unknown priority",
        ),
        (
            vitals_with(json!({ "temperature": { "value": 45, "unit": "℃" } })),
            "temperature",
            "45 ℃",
        ),
        (
            vitals_with(json!({ "temperature": { "value": 98.6, "unit": "℉" } })),
            "temperature",
            "℉",
        ),
        (
            vitals_with(json!({ "weight": { "value": 110, "unit": "lb" } })),
            "weight",
            "pounds",
        ),
        (
            vitals_with(json!({ "systolic": { "value": 80, "unit": "mmHg" },
                                "diastolic": { "value": 80, "unit": "mmHg" } })),
            "diastolic",
            "diastolic = systolic",
        ),
        (
            vitals_with(json!({ "systolic": { "value": 80, "unit": "mmHg" },
                                "diastolic": { "value": 95, "unit": "mmHg" } })),
            "diastolic",
            "diastolic > systolic",
        ),
        (
            vitals_with(json!({ "temperature": 36.5 })),
            "vitals",
            "a value without its unit",
        ),
        (
            json!({ "category": "vitals", "body": "測定" }),
            "vitals",
            "vitals without vitals",
        ),
        (vitals_with(json!({})), "vitals", "vitals with none given"),
        (
            json!({ "category": "notice", "body": "本文", "mentions": [net.hospital.id.as_uuid()] }),
            "mentions",
            "mentioning a facility outside the care team",
        ),
        (
            json!({ "category": "notice", "body": "本文", "mentions": [Uuid::new_v4()] }),
            "mentions",
            "mentioning no facility at all",
        ),
    ];
    for (body, field, what) in &cases {
        invalid(try_post(&app, &net.nurse_c, p, body).await, field, what).await;
    }
    // A reply to another patient's entry: refused, whatever the status says.
    let response = try_post(
        &app,
        &net.nurse_c,
        p,
        &json!({ "category": "notice", "body": "返信", "reply_to": others }),
    )
    .await;
    let refused = failure(response).await;
    assert!(
        refused.status == 422 || refused.status == 404,
        "a reply to another patient's entry: {refused:?}"
    );
    if refused.status == 422 {
        assert_eq!(refused.field.as_deref(), Some("reply_to"));
    }
    let response = try_post(
        &app,
        &net.nurse_c,
        p,
        &json!({ "category": "notice", "body": "返信", "reply_to": Uuid::new_v4() }),
    )
    .await;
    assert!(!response.status().is_success(), "a reply to nothing");
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, p, "").await,
        before,
        "nothing was stored"
    );
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, other, "").await,
        vec![others],
        "nothing was stored on the other patient either"
    );
    // 5000 characters are fine.
    let e = post(
        &app,
        &net.nurse_c,
        p,
        json!({ "category": "other", "body": "い".repeat(5000) }),
    )
    .await;
    assert_eq!(e["body"].as_str().unwrap().chars().count(), 5000);

    // The clinic's clerk sees the patient but not the clinical notebook.
    let response = net
        .clerk_c
        .get(patient_url(&app, p, "/entries"))
        .send()
        .await
        .unwrap();
    forbidden(response, "a clerk reading the notebook").await;
    let response = try_post(
        &app,
        &net.clerk_c,
        p,
        &json!({ "category": "notice", "body": "事務から" }),
    )
    .await;
    forbidden(response, "a clerk posting").await;
}

/// Posts `n` entries through the care domain (as the API would), oldest first; their IDs.
async fn bulk(
    app: &TestApp,
    patient: Uuid,
    n: usize,
    who: impl Fn(usize) -> Writer,
    kind: impl Fn(usize) -> (Category, Priority),
) -> Vec<String> {
    let keyring = app.keyring().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (category, priority) = kind(i);
        let vitals = (category == Category::Vitals).then(|| Vitals {
            temperature_c: Some(36.0 + (i % 10) as f64 / 10.0),
            ..Vitals::default()
        });
        let entry = renrakucho_care::post_entry(
            &app.db,
            &keyring,
            &who(i).on(PatientId::from_uuid(patient)),
            &renrakucho_store::audit::Origin::default(),
            NewEntryInput {
                content: EntryContent {
                    category,
                    priority,
                    body: EntryBody::parse(&format!("一括の記録 {i}")).unwrap(),
                    vitals,
                    mentions: Vec::new(),
                },
                reply_to: None,
                attachments: Vec::new(),
            },
        )
        .await
        .expect("posting through the care domain");
        ids.push(entry.id.to_string());
    }
    ids
}

#[tokio::test]
async fn the_timeline_pages_by_cursor_newest_first_and_filters() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let (doctor, member) = (author(&net.admin), author(&net.member));
    let by_member = |i: usize| i.is_multiple_of(4);
    let is_vitals = |i: usize| i.is_multiple_of(5);
    let is_urgent = |i: usize| i.is_multiple_of(7);
    let ids = bulk(
        &app,
        p,
        120,
        |i| {
            if by_member(i) {
                member.clone()
            } else {
                doctor.clone()
            }
        },
        |i| {
            (
                if is_vitals(i) {
                    Category::Vitals
                } else {
                    Category::Treatment
                },
                if is_urgent(i) {
                    Priority::Urgent
                } else {
                    Priority::Info
                },
            )
        },
    )
    .await;
    // The oldest twenty were written on 2026-01-10 (Japan time): moved there directly, with
    // the edit guard (which allows no such change) off for this one connection.
    let mut su = superuser(&app).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    let day = time::macros::datetime!(2026-01-10 09:00 +9);
    for (i, id) in ids.iter().take(20).enumerate() {
        sqlx::query("UPDATE entries SET created_at = $2 WHERE id = $1")
            .bind(Uuid::parse_str(id).unwrap())
            .bind(day + time::Duration::minutes(i as i64))
            .execute(&mut su)
            .await
            .unwrap();
    }
    drop(su);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..ids.len())
            .rev()
            .filter(|i| keep(*i))
            .map(|i| ids[i].clone())
            .collect()
    };

    // Pages of 50 (the default) by cursor: 50, 50, 20, each entry exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    let mut last_created: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map(|c| format!("cursor={c}"))
            .unwrap_or_default();
        let p = page(&app, &net.member_c, p, &query).await;
        let entries = p["entries"].as_array().unwrap();
        sizes.push(entries.len());
        for e in entries {
            let created = e["created_at"].as_str().unwrap().to_string();
            let at = time::OffsetDateTime::parse(
                &created,
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            if let Some(previous) = &last_created {
                let before = time::OffsetDateTime::parse(
                    previous,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                assert!(at <= before, "newest first across pages");
            }
            last_created = Some(created);
            seen.push(id_of(e));
        }
        match p["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(sizes, vec![50, 50, 20]);
    assert_eq!(seen, newest_first, "every entry exactly once, newest first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 120, "no duplicates");

    // Other page sizes cover the same.
    assert_eq!(timeline_ids(&app, &net.member_c, p, "").await, newest_first);
    let small = page(&app, &net.member_c, p, "limit=7").await;
    assert_eq!(small["entries"].as_array().unwrap().len(), 7);

    // Filters, with and without cursors.
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "category=vitals").await,
        expect(&|i| is_vitals(i)),
        "category=vitals"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "category=vitals,treatment").await,
        newest_first,
        "two categories"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "urgent=true").await,
        expect(&|i| is_urgent(i)),
        "urgent=true"
    );
    let station = net.station_id();
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, p, &format!("facility={station}")).await,
        expect(&|i| by_member(i)),
        "facility=the member station"
    );
    assert_eq!(
        timeline_ids(
            &app,
            &net.doctor_c,
            p,
            &format!("facility={station}&urgent=true&category=vitals")
        )
        .await,
        expect(&|i| by_member(i) && is_urgent(i) && is_vitals(i)),
        "filters combine"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "from=2026-01-10&until=2026-01-10").await,
        expect(&|i| i < 20),
        "one day"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "from=2026-01-11").await,
        expect(&|i| i >= 20),
        "from a day on"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "until=2026-01-09").await,
        Vec::<String>::new(),
        "until before everything"
    );
    let filtered = page(&app, &net.member_c, p, "urgent=true&limit=5").await;
    let next = filtered["next"].as_str().expect("more urgent entries");
    let rest = page(
        &app,
        &net.member_c,
        p,
        &format!("urgent=true&limit=100&cursor={next}"),
    )
    .await;
    let mut both: Vec<String> = filtered["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    both.extend(rest["entries"].as_array().unwrap().iter().map(id_of));
    assert_eq!(both, expect(&|i| is_urgent(i)), "a filtered page's cursor");

    // Bad cursors and filters: 422 naming them.
    for (query, field) in [
        ("cursor=garbage", "cursor"),
        ("cursor=123_not-a-uuid", "cursor"),
        ("cursor=abc_0190aaaa000070008000000000000000", "cursor"),
        ("category=diary", "category"),
        ("from=2026-13-01", "from"),
        ("until=yesterday", "until"),
        ("from=2026-02-01&until=2026-01-01", "until"),
    ] {
        let response = net
            .member_c
            .get(patient_url(&app, p, &format!("/entries?{query}")))
            .send()
            .await
            .unwrap();
        invalid(response, field, query).await;
    }
}

/// A cursor whose time is out of range is as invalid as any other: 422, not a panic (nor, in
/// a release build, a wrapped-around time).
#[tokio::test]
async fn a_cursor_out_of_the_range_of_time_is_refused_with_422() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    note(&app, &net.doctor_c, p, "notice", "info", "一件目").await;
    for micros in [
        "99999999999999999999999999999999999999",
        "-99999999999999999999999999999999999999",
        "99999999999999999",
    ] {
        let url = patient_url(
            &app,
            p,
            &format!("/entries?cursor={micros}_0190aaaa000070008000000000000000"),
        );
        let response = match net.member_c.get(&url).send().await {
            Ok(response) => response,
            Err(e) => panic!("a cursor of {micros} µs: no answer at all ({e})"),
        };
        invalid(response, "cursor", micros).await;
    }
}

#[tokio::test]
async fn edits_keep_every_version_stale_ones_are_refused_and_withdrawal_hides_an_entry() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let entry = note(&app, &net.nurse_c, p, "treatment", "info", "初回の本文").await;

    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &entry,
        json!({ "expected_version": 1, "category": "treatment", "priority": "reply_requested",
                "body": "修正後の本文" }),
    )
    .await;
    assert_eq!(response.status(), 200, "the author edits");
    let saved = json_of(response).await;
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["body"], "修正後の本文");
    assert_eq!(saved["priority"], "reply_requested");
    let shown = detail(&app, &net.member_c, p, &entry).await;
    let versions = shown["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["body"], "初回の本文");
    assert_eq!(versions[0]["editor_name"], NURSE);
    assert_eq!(versions[0]["priority"], "info");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["body"], "修正後の本文");
    assert_eq!(versions[1]["editor_name"], NURSE);
    assert_eq!(versions[1]["editor_facility"], net.clinic_id());
    assert_eq!(shown["entry"]["version"], 2);

    // A second edit from version 1: 409 with the current entry, nothing changed.
    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &entry,
        json!({ "expected_version": 1, "category": "treatment", "body": "古い版からの修正" }),
    )
    .await;
    assert_eq!(response.status(), 409, "a stale edit");
    let stale = json_of(response).await;
    assert_eq!(stale["error"]["code"], "stale_version");
    assert_eq!(stale["error"]["field"], "expected_version");
    assert_eq!(stale["current"]["id"], entry.as_str());
    assert_eq!(stale["current"]["version"], 2);
    assert_eq!(stale["current"]["body"], "修正後の本文");
    let unchanged = |shown: &Value| {
        assert_eq!(shown["entry"]["version"], 2);
        assert_eq!(shown["entry"]["body"], "修正後の本文");
        assert_eq!(shown["versions"].as_array().unwrap().len(), 2);
    };
    unchanged(&detail(&app, &net.doctor_c, p, &entry).await);

    // Nobody but the author and the author's facility administrator edits.
    let v2 = json!({ "expected_version": 2, "category": "treatment", "body": "他人による修正" });
    forbidden(
        edit(&app, &net.member_c, p, &entry, v2.clone()).await,
        "a member facility's nurse editing",
    )
    .await;
    forbidden(
        edit(&app, &net.station_admin_c, p, &entry, v2.clone()).await,
        "another facility's administrator editing",
    )
    .await;
    let doctors = note(&app, &net.doctor_c, p, "instruction", "info", "医師の指示").await;
    forbidden(
        edit(
            &app,
            &net.nurse_c,
            p,
            &doctors,
            json!({ "expected_version": 1, "category": "instruction", "body": "看護師が修正" }),
        )
        .await,
        "a nurse of the same clinic editing the doctor's entry",
    )
    .await;
    forbidden(
        withdraw(&app, &net.member_c, p, &entry, "別施設から取り下げ").await,
        "a member facility's nurse withdrawing",
    )
    .await;
    unchanged(&detail(&app, &net.doctor_c, p, &entry).await);
    assert_eq!(
        detail(&app, &net.doctor_c, p, &doctors).await["entry"]["version"],
        1
    );
    // Each refusal is in the audit log of the facility that tried.
    let refused = |records: &[Value], action: &str| {
        records
            .iter()
            .filter(|r| {
                r["action"] == action && r["outcome"] == "denied" && r["target_id"] == p.to_string()
            })
            .count()
    };
    let station = audit_of(&app, &net.station_admin_c).await;
    assert_eq!(
        refused(&station, "entry.edit"),
        2,
        "the station's two edits"
    );
    assert_eq!(
        refused(&station, "entry.withdraw"),
        1,
        "the station's withdrawal"
    );
    let clinic = audit_of(&app, &net.doctor_c).await;
    assert_eq!(refused(&clinic, "entry.edit"), 1, "the clinic nurse's edit");

    // The clinic's administrator edits its nurse's entry.
    let response = edit(
        &app,
        &net.doctor_c,
        p,
        &entry,
        json!({ "expected_version": 2, "category": "treatment", "body": "管理者による修正" }),
    )
    .await;
    assert_eq!(response.status(), 200, "the facility administrator edits");
    assert_eq!(json_of(response).await["version"], 3);
    let shown = detail(&app, &net.nurse_c, p, &entry).await;
    let versions = shown["versions"].as_array().unwrap();
    let editors: Vec<&str> = versions
        .iter()
        .map(|v| v["editor_name"].as_str().unwrap())
        .collect();
    assert_eq!(editors, vec![NURSE, NURSE, DOCTOR]);
    assert_eq!(shown["entry"]["author_name"], NURSE, "the author stays");

    // Withdrawal: a reason is needed; then hidden from the timeline, kept in its history.
    invalid(
        withdraw(&app, &net.nurse_c, p, &entry, "x").await,
        "reason",
        "a one-character reason",
    )
    .await;
    let reason = "別の対象者の記録を誤って入力したため";
    let response = withdraw(&app, &net.nurse_c, p, &entry, reason).await;
    assert_eq!(response.status(), 204, "the author withdraws");
    let ids = timeline_ids(&app, &net.member_c, p, "").await;
    assert_eq!(ids, vec![doctors.clone()], "hidden from the timeline");
    let shown = detail(&app, &net.member_c, p, &entry).await;
    assert!(shown["entry"]["withdrawn_at"].is_string());
    assert_eq!(shown["entry"]["withdrawal_reason"], reason);
    assert_eq!(shown["versions"].as_array().unwrap().len(), 3);
    conflict(
        withdraw(&app, &net.nurse_c, p, &entry, reason).await,
        "withdrawing again",
    )
    .await;
    conflict(
        edit(
            &app,
            &net.nurse_c,
            p,
            &entry,
            json!({ "expected_version": 3, "category": "treatment", "body": "取り下げ後の修正" }),
        )
        .await,
        "editing a withdrawn entry",
    )
    .await;
    conflict(
        try_post(
            &app,
            &net.member_c,
            p,
            &json!({ "category": "notice", "body": "返信", "reply_to": entry }),
        )
        .await,
        "replying to a withdrawn entry",
    )
    .await;
    let shown = detail(&app, &net.doctor_c, p, &entry).await;
    assert_eq!(shown["entry"]["version"], 3);
    assert_eq!(shown["entry"]["body"], "管理者による修正");

    // The clinic's administrator may withdraw its nurse's entry too.
    let nurses = note(&app, &net.nurse_c, p, "notice", "info", "看護師の連絡").await;
    let response = withdraw(&app, &net.doctor_c, p, &nurses, "重複して登録したため").await;
    assert_eq!(
        response.status(),
        204,
        "the facility administrator withdraws"
    );
    assert_eq!(
        timeline_ids(&app, &net.member_c, p, "").await,
        vec![doctors]
    );
}

#[tokio::test]
async fn read_receipts_name_the_reader_and_unread_counts_put_urgent_first() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p1 = net.patient;
    let p2 = another_patient(&app, &net).await;
    net.share(&app, p2).await;
    let a = note(&app, &net.doctor_c, p1, "notice", "info", "朝の体調は安定").await;
    let b = note(
        &app,
        &net.doctor_c,
        p1,
        "complaint",
        "urgent",
        "夕方から発熱",
    )
    .await;
    // The second patient's entries are newer, but not urgent.
    note(
        &app,
        &net.doctor_c,
        p2,
        "notice",
        "info",
        "デイサービス利用",
    )
    .await;
    note(
        &app,
        &net.doctor_c,
        p2,
        "medication",
        "reply_requested",
        "残薬の確認",
    )
    .await;

    let unread = |client: Client| {
        let url = app.url("/api/v1/unread");
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200, "reading unread counts");
            json_of(response)
                .await
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l["patient"].as_str().unwrap().to_string(),
                        l["urgent"].as_i64().unwrap(),
                        l["reply_requested"].as_i64().unwrap(),
                        l["total"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let everything = vec![(s1.clone(), 1, 0, 2), (s2.clone(), 0, 1, 2)];
    assert_eq!(
        unread(net.station_admin_c.clone()).await,
        everything,
        "urgent first, though the other patient's entries are newer"
    );
    assert_eq!(unread(net.member_c.clone()).await, everything);
    assert_eq!(
        unread(net.doctor_c.clone()).await,
        Vec::new(),
        "one's own entries are not unread"
    );

    // The station's nurse reads the first patient's entries.
    let mark = |client: Client, patient: Uuid, entries: Vec<String>| {
        let url = patient_url(&app, patient, "/entries/read");
        async move {
            let response = client
                .post(url)
                .json(&json!({ "entries": entries }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "marking entries read");
            json_of(response).await["marked"].as_u64().unwrap()
        }
    };
    assert_eq!(
        mark(net.member_c.clone(), p1, vec![a.clone(), b.clone()]).await,
        2
    );
    assert_eq!(
        mark(net.member_c.clone(), p1, vec![a.clone(), b.clone()]).await,
        0,
        "reading again changes nothing"
    );
    // The receipt is on the station's record once: the second marking changed nothing.
    let receipts: Vec<Value> = audit_of(&app, &net.station_admin_c)
        .await
        .into_iter()
        .filter(|r| r["action"] == "entry.mark_read" && r["target_id"] == p1.to_string())
        .collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["details"]["entries"], 2);
    let shown = detail(&app, &net.doctor_c, p1, &b).await;
    let readers = shown["read_by"].as_array().unwrap();
    assert_eq!(readers.len(), 1);
    assert_eq!(readers[0]["name"], MEMBER);
    assert_eq!(readers[0]["profession"], "nurse");
    assert_eq!(readers[0]["facility"], net.station_id());
    assert_eq!(readers[0]["facility_name"], net.station.name.as_str());
    assert!(readers[0]["read_at"].is_string());
    let mine = page(&app, &net.member_c, p1, "").await;
    assert!(mine["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["read"] == true));
    let theirs = page(&app, &net.station_admin_c, p1, "").await;
    assert!(
        theirs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["read"] == false),
        "read marks are per person"
    );
    assert_eq!(
        unread(net.member_c.clone()).await,
        vec![(s2.clone(), 0, 1, 2)],
        "her counts drop"
    );
    assert_eq!(
        unread(net.station_admin_c.clone()).await,
        everything,
        "her colleague's do not"
    );

    // The colleague reads the urgent one: urgent no more, the newest patient comes first.
    assert_eq!(
        mark(net.station_admin_c.clone(), p1, vec![b.clone()]).await,
        1
    );
    assert_eq!(
        unread(net.station_admin_c.clone()).await,
        vec![(s2.clone(), 0, 1, 2), (s1.clone(), 0, 0, 1)]
    );
    let shown = detail(&app, &net.member_c, p1, &b).await;
    let names: Vec<&str> = shown["read_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![MEMBER, STATION_ADMIN], "in reading order");

    // Marking another patient's entry under this patient marks nothing.
    let response = net
        .member_c
        .post(patient_url(&app, p2, "/entries/read"))
        .json(&json!({ "entries": [a] }))
        .send()
        .await
        .unwrap();
    assert!(
        !response.status().is_success() || json_of(response).await["marked"] == 0,
        "an entry of another patient"
    );
    assert_eq!(
        unread(net.member_c.clone()).await,
        vec![(s2, 0, 1, 2)],
        "nothing changed"
    );
}

async fn search(app: &TestApp, client: &Client, patient: Uuid, q: &str) -> Response {
    client
        .get(patient_url(app, patient, "/entries/search"))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap()
}

async fn found(app: &TestApp, client: &Client, patient: Uuid, q: &str) -> Vec<String> {
    let response = search(app, client, patient, q).await;
    assert_eq!(response.status(), 200, "searching");
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn search_finds_words_of_one_patients_notebook_in_either_kana() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let fall = note(
        &app,
        &net.doctor_c,
        p,
        "instruction",
        "info",
        "ふらつきがあり、転倒に注意してください",
    )
    .await;
    let helper = note(
        &app,
        &net.member_c,
        p,
        "support",
        "info",
        "ヘルパーの訪問時間を変更しました",
    )
    .await;
    note(
        &app,
        &net.doctor_c,
        p,
        "notice",
        "info",
        "食事量は普段どおり",
    )
    .await;
    let other = another_patient(&app, &net).await;
    let others = note(
        &app,
        &net.doctor_c,
        other,
        "notice",
        "info",
        "ふらつきが強く受診を勧めました",
    )
    .await;

    for client in [&net.doctor_c, &net.member_c] {
        assert_eq!(found(&app, client, p, "ふらつき").await, vec![fall.clone()]);
        assert_eq!(
            found(&app, client, p, "フラツキ").await,
            vec![fall.clone()],
            "katakana finds hiragana"
        );
        assert_eq!(
            found(&app, client, p, "へるぱー").await,
            vec![helper.clone()],
            "hiragana finds katakana"
        );
        assert_eq!(
            found(&app, client, p, "ﾌﾗﾂｷ").await,
            vec![fall.clone()],
            "half-width katakana too"
        );
        assert_eq!(found(&app, client, p, "転倒").await, vec![fall.clone()]);
        assert_eq!(
            found(&app, client, p, "存在しない言葉").await,
            Vec::<String>::new()
        );
    }
    assert_eq!(
        found(&app, &net.doctor_c, other, "ふらつき").await,
        vec![others],
        "the other patient's notebook has its own"
    );
    invalid(
        search(&app, &net.doctor_c, p, " ").await,
        "q",
        "an empty query",
    )
    .await;

    // A withdrawn entry is no longer found.
    let response = withdraw(&app, &net.doctor_c, p, &fall, "内容を誤ったため").await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        found(&app, &net.member_c, p, "ふらつき").await,
        Vec::<String>::new()
    );

    // The unrelated hospital: 404, like a patient that does not exist.
    for patient in [p, Uuid::new_v4()] {
        let response = search(&app, &net.outsider_c, patient, "ヘルパー").await;
        assert_eq!(failure(response).await, not_found());
    }
}

/// `search_notebook` promises entries "whose text (or vitals summary) contains" the words: a
/// vital sign is found by what its summary says (体温 37.9℃).
#[tokio::test]
async fn search_finds_a_vitals_entry_by_its_summary() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let vitals = id_of(
        &post(
            &app,
            &net.member_c,
            p,
            json!({ "category": "vitals", "body": "訪問時に測定",
                    "vitals": { "temperature": { "value": 37.9, "unit": "℃" } } }),
        )
        .await,
    );
    note(&app, &net.doctor_c, p, "notice", "info", "特記事項なし").await;
    assert_eq!(
        found(&app, &net.doctor_c, p, "訪問時").await,
        vec![vitals.clone()]
    );
    assert_eq!(
        found(&app, &net.doctor_c, p, "37.9").await,
        vec![vitals],
        "the temperature, as the summary writes it"
    );
}

// ---------------------------------------------------------------------------------------------
// Attachments.

pub(crate) const GPS_MARKER: &[u8] = b"WGS-84 GPS-TEST-MARKER";
/// The IFD0 entry pointing at the GPS IFD: tag 0x8825, type LONG, count 1 (little endian).
const GPS_IFD_ENTRY: [u8; 8] = [0x25, 0x88, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00];

/// A little-endian TIFF/EXIF block (as in `files::media`'s tests): IFD0 with the orientation
/// and a GPS IFD with a position in Tokyo and a recognisable map datum.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value);
    }
    let ifd_len = |n: u32| 2 + 12 * n + 4;
    let gps_ifd = 8 + ifd_len(2);
    let lat = gps_ifd + ifd_len(5);
    let lon = lat + 24;
    let datum = lon + 24;

    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, 4, 1, gps_ifd.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len() as u32, gps_ifd);
    t.extend_from_slice(&5u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, lat.to_le_bytes());
    entry(&mut t, 0x0003, 2, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, 5, 3, lon.to_le_bytes());
    entry(
        &mut t,
        0x0012,
        2,
        GPS_MARKER.len() as u32 + 1,
        datum.to_le_bytes(),
    );
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len() as u32, lat);
    for (num, den) in [
        (35, 1),
        (41, 1),
        (2271, 100),
        (139, 1),
        (41, 1),
        (3012, 100),
    ] {
        t.extend_from_slice(&u32::to_le_bytes(num));
        t.extend_from_slice(&u32::to_le_bytes(den));
    }
    t.extend_from_slice(GPS_MARKER);
    t.push(0);
    t
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff, marker];
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A whole baseline JPEG, built by hand: 8×8 grey, one component, every quantiser 1, one
/// Huffman code each for "DC difference 0" and "end of block"; and, as a phone writes it,
/// EXIF with a GPS position right after the start marker.
pub(crate) fn phone_jpeg() -> Vec<u8> {
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&exif_tiff(1));
    let mut out = vec![0xff, 0xd8];
    out.extend(jpeg_segment(0xe1, &exif));
    out.extend(jpeg_segment(0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    out.extend(jpeg_segment(0xdb, &dqt));
    // Baseline, 8 bits, 8 × 8, one component (ID 1, 1×1 sampling, table 0).
    out.extend(jpeg_segment(0xc0, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
    for class in [0x00u8, 0x10] {
        let mut dht = vec![class, 1];
        dht.extend_from_slice(&[0u8; 15]);
        dht.push(0);
        out.extend(jpeg_segment(0xc4, &dht));
    }
    out.extend(jpeg_segment(0xda, &[1, 1, 0x00, 0, 63, 0]));
    // DC "0", EOB "0", padded with ones.
    out.push(0x3f);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

pub(crate) async fn upload(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    content_type: Option<&str>,
    name: &str,
    bytes: Vec<u8>,
) -> Response {
    let mut request = client
        .post(patient_url(app, patient, "/attachments"))
        .header("x-file-name", percent_encode(name))
        .body(bytes);
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    request.send().await.unwrap()
}

/// Uploads a file (201); its description.
pub(crate) async fn uploaded(
    app: &TestApp,
    client: &Client,
    patient: Uuid,
    content_type: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Value {
    let response = upload(app, client, patient, Some(content_type), name, bytes).await;
    if response.status() != 201 {
        panic!("uploading a file: {:?}", failure(response).await);
    }
    json_of(response).await
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn attachments_are_cleaned_stored_encrypted_and_sent_back_as_attachments() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let name = "褥瘡の写真 1.png";

    let png = uploaded(
        &app,
        &net.nurse_c,
        p,
        "image/png",
        name,
        renrakucho_testkit::PNG_1X1.to_vec(),
    )
    .await;
    assert_eq!(png["file_name"], name);
    assert_eq!(png["media_type"], "image/png");
    assert_eq!(png["has_thumbnail"], true);
    assert!(png["size"].as_i64().unwrap() > 0);
    let png_id = id_of(&png);

    let photo = phone_jpeg();
    assert!(contains(&photo, b"Exif\0\0") && contains(&photo, GPS_MARKER));
    let jpeg = uploaded(
        &app,
        &net.nurse_c,
        p,
        "image/jpeg",
        "C:\\写真\\自宅にて.jpg",
        photo,
    )
    .await;
    assert_eq!(jpeg["media_type"], "image/jpeg");
    assert_eq!(jpeg["file_name"], "自宅にて.jpg", "the path is dropped");
    let jpeg_id = id_of(&jpeg);

    // What is not a photo or a PDF, whatever it claims: 422 on `file`.
    invalid(
        upload(
            &app,
            &net.nurse_c,
            p,
            Some("image/png"),
            "写真.png",
            b"just some text, named like a photo".to_vec(),
        )
        .await,
        "file",
        "a text file sent as image/png",
    )
    .await;
    invalid(
        upload(
            &app,
            &net.nurse_c,
            p,
            Some("image/png"),
            "空.png",
            Vec::new(),
        )
        .await,
        "file",
        "an empty file",
    )
    .await;
    let cut = renrakucho_testkit::PNG_1X1[..40].to_vec();
    invalid(
        upload(&app, &net.nurse_c, p, Some("image/png"), "途中.png", cut).await,
        "file",
        "a cut-off PNG",
    )
    .await;
    // Bodies another site could make a browser send: 415.
    for content_type in [
        Some("multipart/form-data; boundary=xyz"),
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = upload(
            &app,
            &net.nurse_c,
            p,
            content_type,
            "写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await;
        let f = failure(response).await;
        assert_eq!(
            (f.status, f.code.as_str()),
            (415, "unsupported_media_type"),
            "{content_type:?}"
        );
    }

    // Not attached yet: the care team does not see the upload.
    let png_url = patient_url(&app, p, &format!("/attachments/{png_id}"));
    assert_eq!(status_of(&net.member_c, &png_url).await, 404);
    // Nor can a member attach another facility's upload to its own entry.
    let response = try_post(
        &app,
        &net.member_c,
        p,
        &json!({ "category": "notice", "body": "写真を添付", "attachments": [png_id] }),
    )
    .await;
    invalid(
        response,
        "attachments",
        "attaching another facility's upload",
    )
    .await;

    let entry = post(
        &app,
        &net.nurse_c,
        p,
        json!({ "category": "treatment", "body": "褥瘡の処置、写真を添付", "attachments": [png_id, jpeg_id] }),
    )
    .await;
    let files = entry["attachments"].as_array().unwrap();
    let mut listed: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                id_of(f),
                f["file_name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (png_id.clone(), name.to_string()),
        (jpeg_id.clone(), "自宅にて.jpg".to_string()),
    ];
    expected.sort();
    assert_eq!(listed, expected, "the entry lists its files");

    // Downloads: as an attachment, never sniffed, never cached.
    for client in [&net.nurse_c, &net.member_c] {
        let response = client.get(&png_url).send().await.unwrap();
        assert_eq!(response.status(), 200, "downloading the PNG");
        assert_eq!(header(&response, "content-type"), "image/png");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-store");
        let disposition = header(&response, "content-disposition");
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        assert!(
            disposition.contains(&format!("filename=\"attachment-{png_id}.png\"")),
            "{disposition}"
        );
        let encoded = disposition
            .split("filename*=UTF-8''")
            .nth(1)
            .expect("filename*");
        assert_eq!(percent_decode(encoded.trim()), name);
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(bytes.len() as i64, png["size"].as_i64().unwrap());
    }
    let jpeg_url = patient_url(&app, p, &format!("/attachments/{jpeg_id}"));
    let response = net.member_c.get(&jpeg_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "image/jpeg");
    let cleaned = response.bytes().await.unwrap().to_vec();
    assert!(cleaned.starts_with(&[0xff, 0xd8]));
    assert!(!contains(&cleaned, b"Exif"), "no EXIF left");
    assert!(!contains(&cleaned, GPS_MARKER), "no GPS left");
    assert!(!contains(&cleaned, &GPS_IFD_ENTRY), "no GPS IFD left");
    for id in [&png_id, &jpeg_id] {
        let response = net
            .member_c
            .get(patient_url(
                &app,
                p,
                &format!("/attachments/{id}/thumbnail"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "a thumbnail");
        assert_eq!(header(&response, "content-type"), "image/jpeg");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let thumb = response.bytes().await.unwrap();
        assert!(thumb.starts_with(&[0xff, 0xd8]));
        assert!(!contains(&thumb, b"Exif") && !contains(&thumb, GPS_MARKER));
    }

    // The unrelated hospital: 404, like a file that does not exist.
    for url in [
        png_url.clone(),
        format!("{png_url}/thumbnail"),
        jpeg_url.clone(),
        patient_url(&app, p, &format!("/attachments/{}", Uuid::new_v4())),
    ] {
        let response = net.outsider_c.get(&url).send().await.unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital");
    }
    let response = net
        .nurse_c
        .get(patient_url(
            &app,
            p,
            &format!("/attachments/{}", Uuid::new_v4()),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(response).await, not_found(), "no such file");

    // Under another patient's URL, the file and the entry are not found.
    let other = another_patient(&app, &net).await;
    for rest in [
        format!("/attachments/{png_id}"),
        format!("/attachments/{png_id}/thumbnail"),
        format!("/entries/{}", id_of(&entry)),
    ] {
        let response = net
            .nurse_c
            .get(patient_url(&app, other, &rest))
            .send()
            .await
            .unwrap();
        assert_eq!(
            failure(response).await,
            not_found(),
            "another patient's URL"
        );
    }
    let response = edit(
        &app,
        &net.nurse_c,
        other,
        &id_of(&entry),
        json!({ "expected_version": 1, "category": "treatment", "body": "別の対象者から修正" }),
    )
    .await;
    assert_eq!(
        failure(response).await,
        not_found(),
        "editing through another patient"
    );

    // A file belongs to one entry.
    let before = timeline_ids(&app, &net.nurse_c, p, "").await;
    let response = try_post(
        &app,
        &net.nurse_c,
        p,
        &json!({ "category": "treatment", "body": "同じ写真をもう一度", "attachments": [png_id] }),
    )
    .await;
    invalid(response, "attachments", "attaching a file twice").await;
    assert_eq!(
        timeline_ids(&app, &net.nurse_c, p, "").await,
        before,
        "nothing stored"
    );

    // On disk: encrypted, never the photo in the clear.
    let dir = app.settings.files_dir();
    let png_file = dir.join(format!("attachments/{p}/{png_id}"));
    let sealed = std::fs::read(&png_file).expect("the PNG's stored file");
    let clear = net
        .nurse_c
        .get(&png_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!contains(&sealed, &clear), "the stored file is not the PNG");
    assert!(!contains(&sealed, renrakucho_testkit::PNG_1X1));
    assert!(dir.join(format!("attachments/{p}/{png_id}.thumb")).exists());
    let all = stored_files(&app);
    assert!(all.len() >= 4, "two files and their thumbnails");
    for file in &all {
        let bytes = std::fs::read(file).unwrap();
        for secret in [
            b"\x89PNG\r\n\x1a\n".as_slice(),
            b"IHDR",
            b"IDAT",
            b"JFIF",
            b"Exif",
            GPS_MARKER,
            name.as_bytes(),
        ] {
            assert!(!contains(&bytes, secret), "a stored file holds plaintext");
        }
    }
}

#[tokio::test]
async fn attachments_are_kept_encrypted_in_an_s3_bucket() {
    let moto = renrakucho_testkit::KmsEmulator::start().await;
    let bucket = "renrakucho-notebook-files";
    let http = Client::new();
    let response = http
        .put(format!("{}/{bucket}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "creating the bucket");
    // The S3 store takes its credentials from the usual AWS environment; moto checks their
    // shape only. Every test that sets them sets the same values.
    std::env::set_var("AWS_ACCESS_KEY_ID", renrakucho_testkit::KMS_ACCESS_KEY);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", renrakucho_testkit::KMS_SECRET_KEY);
    let endpoint = moto.endpoint.clone();
    let app = spawn_app_with(|s| {
        s.file_store = renrakucho_server::config::FileStoreKind::S3;
        s.s3_bucket = Some(bucket.into());
        s.s3_region = Some("ap-northeast-1".into());
        s.s3_endpoint = Some(endpoint);
    })
    .await;
    let clinic = app.seed_facility("S3-CLINIC", FacilityKind::Clinic).await;
    let doctor = person(
        &app,
        &clinic,
        "doctor",
        StaffRole::Staff,
        Profession::Doctor,
        DOCTOR,
    )
    .await;
    let p = app
        .seed_patient(&doctor, PATIENT_NAME, PATIENT_KANA)
        .await
        .id
        .as_uuid();
    authorizer_follows(&app, &clinic, p, Action::NotebookWrite, true).await;
    let client = app.client_for(&clinic, "doctor").await;

    let file = uploaded(
        &app,
        &client,
        p,
        "image/png",
        "足の写真.png",
        renrakucho_testkit::PNG_1X1.to_vec(),
    )
    .await;
    let id = id_of(&file);
    post(
        &app,
        &client,
        p,
        json!({ "category": "treatment", "body": "足の写真", "attachments": [id] }),
    )
    .await;
    let response = client
        .get(patient_url(&app, p, &format!("/attachments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "downloading from S3");
    let clear = response.bytes().await.unwrap().to_vec();
    assert!(clear.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(clear.len() as i64, file["size"].as_i64().unwrap());
    let response = client
        .get(patient_url(
            &app,
            p,
            &format!("/attachments/{id}/thumbnail"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the thumbnail from S3");

    // The objects are in the bucket, named by IDs, encrypted.
    let listing = http
        .get(format!("{}/{bucket}?list-type=2", moto.endpoint))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys: Vec<String> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect();
    let object = format!("attachments/{p}/{id}");
    assert!(keys.contains(&object), "the file is in the bucket");
    assert!(
        keys.contains(&format!("{object}.thumb")),
        "so is its thumbnail"
    );
    assert!(keys.iter().all(|k| k.starts_with("attachments/")));
    assert!(
        !app.settings.files_dir().join("attachments").exists(),
        "nothing on local disk"
    );
    // Read back signed, through the server's own store (moto refuses anonymous reads): the
    // bytes kept in the bucket, as listed there.
    let sealed = app
        .files
        .get(&object)
        .await
        .expect("the object in the bucket");
    let listed_size = listing
        .split("<Contents>")
        .find(|c| c.contains(&format!("<Key>{object}</Key>")))
        .and_then(|c| c.split("<Size>").nth(1))
        .and_then(|s| s.split("</Size>").next())
        .and_then(|s| s.parse::<usize>().ok())
        .expect("the object's size in the listing");
    assert_eq!(sealed.len(), listed_size, "the bytes moto keeps");
    assert!(!sealed.is_empty());
    assert!(!contains(&sealed, &clear), "the object is not the PNG");
    assert!(!contains(&sealed, b"IHDR") && !contains(&sealed, b"\x89PNG"));
    assert!(!contains(&sealed, "足の写真".as_bytes()));
}

// ---------------------------------------------------------------------------------------------
// Export.

#[tokio::test]
async fn the_notebook_exports_as_json_and_pdf_audited_and_only_for_the_care_team() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let edited = note(
        &app,
        &net.nurse_c,
        p,
        "treatment",
        "info",
        "処置の記録 初版",
    )
    .await;
    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &edited,
        json!({ "expected_version": 1, "category": "treatment", "body": "処置の記録 修正版" }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let withdrawn = note(&app, &net.nurse_c, p, "notice", "info", "誤記の連絡").await;
    let response = withdraw(&app, &net.nurse_c, p, &withdrawn, "誤記のため").await;
    assert_eq!(response.status(), 204);
    let vitals = id_of(
        &post(
            &app,
            &net.member_c,
            p,
            json!({ "category": "vitals", "body": "訪問時測定", "vitals": good_vitals() }),
        )
        .await,
    );

    let response = net
        .nurse_c
        .get(patient_url(&app, p, "/export.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "exporting as JSON");
    assert_eq!(header(&response, "content-type"), "application/json");
    let disposition = header(&response, "content-disposition");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains(&format!("notebook-{p}.json")));
    let copy = json_of(response).await;
    let notice = copy["notice"].as_str().unwrap();
    assert!(notice.contains("第15条"), "the notice of 第15条");
    assert_eq!(copy["patient"]["id"], p.to_string());
    assert_eq!(copy["patient"]["name"], PATIENT_NAME);
    let entries = copy["entries"].as_array().unwrap();
    let ids: Vec<String> = entries.iter().map(id_of).collect();
    assert_eq!(
        ids,
        vec![edited.clone(), withdrawn.clone(), vitals.clone()],
        "every entry, oldest first, the withdrawn one included"
    );
    let versions = |i: usize| entries[i]["versions"].as_array().unwrap().clone();
    let edited_versions = versions(0);
    assert_eq!(edited_versions.len(), 2);
    assert_eq!(edited_versions[0]["body"], "処置の記録 初版");
    assert_eq!(edited_versions[1]["body"], "処置の記録 修正版");
    assert_eq!(entries[0]["body"], "処置の記録 修正版");
    assert_eq!(entries[1]["withdrawal_reason"], "誤記のため");
    assert_eq!(versions(1).len(), 1);
    assert_eq!(entries[2]["vitals"]["systolic_mmhg"], 128);

    let response = net
        .nurse_c
        .get(patient_url(&app, p, "/export.pdf"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "exporting as PDF");
    assert_eq!(header(&response, "content-type"), "application/pdf");
    assert!(header(&response, "content-disposition").starts_with("attachment"));
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));

    // Both exports are in the clinic's audit log, with their format.
    let records = audit_of(&app, &net.doctor_c).await;
    let nurse_id =
        json_of(net.nurse_c.get(app.url("/api/v1/me")).send().await.unwrap()).await["id"].clone();
    assert!(nurse_id.is_string());
    for format in ["json", "pdf"] {
        let record = records
            .iter()
            .find(|r| r["action"] == "notebook.export" && r["details"]["format"] == format)
            .unwrap_or_else(|| panic!("the {format} export is audited"));
        assert_eq!(record["target_id"], p.to_string());
        assert_eq!(record["outcome"], "success");
        assert_eq!(record["actor_id"], nurse_id, "the nurse exported");
    }

    // Nobody else exports: the hospital gets 404, the clinic's clerk 403.
    for rest in ["/export.json", "/export.pdf"] {
        let response = net
            .outsider_c
            .get(patient_url(&app, p, rest))
            .send()
            .await
            .unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital");
        let response = net
            .clerk_c
            .get(patient_url(&app, p, rest))
            .send()
            .await
            .unwrap();
        forbidden(response, "the clerk exporting").await;
    }
}

/// The JSON copy is "complete with every version" (第15条): each version's vital signs
/// included, as the entry's own history shows them.
#[tokio::test]
async fn the_json_export_keeps_the_vital_signs_of_every_version() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let entry = id_of(
        &post(
            &app,
            &net.nurse_c,
            p,
            json!({ "category": "vitals", "body": "朝の測定", "vitals": good_vitals() }),
        )
        .await,
    );
    let response = edit(
        &app,
        &net.nurse_c,
        p,
        &entry,
        json!({ "expected_version": 1, "category": "vitals", "body": "朝の測定 再測定",
                "vitals": { "temperature": { "value": 37.4, "unit": "℃" } } }),
    )
    .await;
    assert_eq!(response.status(), 200);
    // The history as the detail shows it.
    let shown = detail(&app, &net.nurse_c, p, &entry).await;
    assert_eq!(shown["versions"][0]["vitals"]["temperature_c"], 36.8);
    assert_eq!(shown["versions"][1]["vitals"]["temperature_c"], 37.4);

    let copy = json_of(
        net.nurse_c
            .get(patient_url(&app, p, "/export.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let versions = copy["entries"][0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0]["vitals"], shown["versions"][0]["vitals"],
        "version 1's vital signs are in the export"
    );
    assert_eq!(
        versions[1]["vitals"], shown["versions"][1]["vitals"],
        "version 2's vital signs are in the export"
    );
}

// ---------------------------------------------------------------------------------------------
// Support requests.

#[tokio::test]
async fn a_support_request_shares_only_what_it_names_while_it_is_open() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let shared_file = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "皮膚所見.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let shared = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "右下腿に紅斑、写真添付",
                    "attachments": [shared_file] }),
        )
        .await,
    );
    let kept_file = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "別の写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let kept = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "共有しない記録", "attachments": [kept_file] }),
        )
        .await,
    );
    let send = |body: Value| {
        let url = patient_url(&app, p, "/support-requests");
        let client = net.doctor_c.clone();
        async move { client.post(url).json(&body).send().await.unwrap() }
    };
    let question = "皮膚病変について専門医の意見をいただけますか";
    let summary = "80代女性、要介護2、在宅療養中。1週間前から右下腿に紅斑。";

    // Refusals first: nothing is sent.
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "gossip", "question": question,
                     "summary": summary }),
        )
        .await,
        "kind",
        "an unknown kind",
    )
    .await;
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "second_opinion", "question": "",
                     "summary": summary }),
        )
        .await,
        "question",
        "no question",
    )
    .await;
    conflict(
        send(
            json!({ "to": net.clinic.code, "kind": "second_opinion", "question": question,
                     "summary": summary }),
        )
        .await,
        "asking oneself",
    )
    .await;
    conflict(
        send(
            json!({ "to": "NO-SUCH", "kind": "second_opinion", "question": question,
                     "summary": summary }),
        )
        .await,
        "an unknown facility",
    )
    .await;
    let other = another_patient(&app, &net).await;
    let others = note(
        &app,
        &net.doctor_c,
        other,
        "notice",
        "info",
        "別の対象者の記録",
    )
    .await;
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "second_opinion", "question": question,
                     "summary": summary, "entries": [others] }),
        )
        .await,
        "entries",
        "another patient's entry",
    )
    .await;
    let unattached = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "未添付.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    invalid(
        send(
            json!({ "to": net.hospital.code, "kind": "second_opinion", "question": question,
                     "summary": summary, "attachments": [unattached] }),
        )
        .await,
        "attachments",
        "a file attached to no entry",
    )
    .await;
    // Without consent on file (the other patient has none): 409.
    let response = net
        .doctor_c
        .post(patient_url(&app, other, "/support-requests"))
        .json(
            &json!({ "to": net.hospital.code, "kind": "information", "question": question,
                       "summary": summary, "entries": [others] }),
        )
        .send()
        .await
        .unwrap();
    conflict(response, "a request without consent").await;
    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await, json!([]), "nothing was sent");

    // The request.
    let response = send(json!({ "to": net.hospital.code, "kind": "second_opinion",
                                "question": question, "summary": summary,
                                "entries": [shared], "attachments": [shared_file] }))
    .await;
    assert_eq!(response.status(), 201, "sending the request");
    let request = id_of(&json_of(response).await);
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, true).await;

    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lines = json_of(response).await;
    let line = lines
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == request.as_str())
        .expect("the hospital sees the request");
    assert_eq!(line["sent"], false);
    assert_eq!(line["status"], "requested");
    assert_eq!(line["kind"], "second_opinion");
    assert_eq!(line["from"], net.clinic_id());
    assert_eq!(line["to"], net.hospital.id.as_uuid().to_string());
    let feed = json_of(
        net.outsider_c
            .get(app.url("/api/v1/notifications"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        feed.as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "support" && n["request"] == request.as_str()),
        "the request is in the hospital's notifications"
    );

    let request_url = app.url(&format!("/api/v1/support-requests/{request}"));
    let response = net.outsider_c.get(&request_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "the hospital reads the request");
    let shown = json_of(response).await;
    assert_eq!(shown["question"], question);
    assert_eq!(shown["summary"], summary);
    assert!(shown["answer"].is_null());
    let entries: Vec<String> = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(entries, vec![shared.clone()], "exactly the shared entry");
    assert_eq!(shown["entries"][0]["body"], "右下腿に紅斑、写真添付");

    // The hospital reads the shared file, nothing else of the patient.
    let shared_url = patient_url(&app, p, &format!("/attachments/{shared_file}"));
    let response = net.outsider_c.get(&shared_url).send().await.unwrap();
    assert_eq!(response.status(), 200, "the shared file");
    assert!(response.bytes().await.unwrap().starts_with(b"\x89PNG"));
    for rest in [
        String::new(),
        "/entries".to_string(),
        format!("/entries/{kept}"),
        format!("/attachments/{kept_file}"),
        format!("/attachments/{unattached}"),
        "/consents".to_string(),
        "/export.json".to_string(),
    ] {
        let response = net
            .outsider_c
            .get(patient_url(&app, p, &rest))
            .send()
            .await
            .unwrap();
        assert_eq!(failure(response).await, not_found(), "the hospital: {rest}");
    }
    let response = try_post(
        &app,
        &net.outsider_c,
        p,
        &json!({ "category": "notice", "body": "病院から" }),
    )
    .await;
    assert_eq!(failure(response).await, not_found(), "the hospital posting");

    // The clinic cannot answer its own request; the hospital accepts and answers once.
    let step = |client: &Client, what: &str, body: Option<Value>| {
        let mut request =
            client.post(app.url(&format!("/api/v1/support-requests/{request}/{what}")));
        if let Some(b) = body {
            request = request.json(&b);
        }
        request.send()
    };
    let response = step(
        &net.doctor_c,
        "answer",
        Some(json!({ "answer": "自分で回答" })),
    )
    .await
    .unwrap();
    assert_eq!(
        failure(response).await,
        not_found(),
        "the asking side answering"
    );
    conflict(
        step(
            &net.outsider_c,
            "answer",
            Some(json!({ "answer": "受諾前の回答" })),
        )
        .await
        .unwrap(),
        "answering before accepting",
    )
    .await;
    let response = step(&net.outsider_c, "accept", None).await.unwrap();
    assert_eq!(response.status(), 204, "accepting");
    let answer = "接触皮膚炎を疑います。ステロイド外用で経過観察し、拡大すれば受診を。";
    let response = step(&net.outsider_c, "answer", Some(json!({ "answer": answer })))
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "answering");
    conflict(
        step(
            &net.outsider_c,
            "answer",
            Some(json!({ "answer": "二度目の回答" })),
        )
        .await
        .unwrap(),
        "answering twice",
    )
    .await;

    let response = net.doctor_c.get(&request_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = json_of(response).await;
    assert_eq!(seen["answer"], answer, "the clinic sees the answer");
    assert_eq!(seen["answered_by_name"], OUTSIDER);
    assert_eq!(seen["line"]["status"], "answered");
    assert_eq!(seen["line"]["sent"], true);

    // A second request, declined: what it shared is closed again at once.
    let response = send(json!({ "to": net.hospital.code, "kind": "information",
                                "question": "経過を教えてください", "summary": summary,
                                "entries": [kept], "attachments": [kept_file] }))
    .await;
    assert_eq!(response.status(), 201);
    let second = id_of(&json_of(response).await);
    let kept_url = patient_url(&app, p, &format!("/attachments/{kept_file}"));
    assert_eq!(status_of(&net.outsider_c, &kept_url).await, 200);
    let response = net
        .outsider_c
        .post(app.url(&format!("/api/v1/support-requests/{second}/decline")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "declining");
    assert_eq!(
        failure(net.outsider_c.get(&kept_url).send().await.unwrap()).await,
        not_found(),
        "a declined request shares nothing"
    );
    assert_eq!(status_of(&net.outsider_c, &shared_url).await, 200);

    // The clinic closes the first: from the next request on, the hospital reads its file no
    // more (row-level security answers at once, whatever the authorizer still believes).
    let response = step(&net.doctor_c, "close", None).await.unwrap();
    assert_eq!(response.status(), 204, "closing");
    assert_eq!(
        failure(net.outsider_c.get(&shared_url).send().await.unwrap()).await,
        not_found(),
        "a closed request shares nothing"
    );
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, false).await;
    let response = net.outsider_c.get(&request_url).send().await.unwrap();
    assert_eq!(
        failure(response).await,
        not_found(),
        "nor the request itself"
    );
    conflict(
        step(&net.doctor_c, "close", None).await.unwrap(),
        "closing twice",
    )
    .await;
    let response = net.doctor_c.get(&request_url).send().await.unwrap();
    assert_eq!(json_of(response).await["line"]["status"], "closed");
}

// ---------------------------------------------------------------------------------------------
// Notifications.

/// A clerk, whose role may not read the notebook, learns nothing of it through the unread
/// counts (refused, as the live stream refuses them) or the notification feed (no entry
/// items); a nurse of the same facility does.
#[tokio::test]
async fn a_clerk_gets_no_unread_counts_or_entry_notifications() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    post(
        &app,
        &net.member_c,
        p,
        json!({ "category": "notice", "priority": "urgent", "body": "転倒あり、至急連絡を" }),
    )
    .await;
    let unread_of = |client: &Client| {
        let client = client.clone();
        let url = app.url("/api/v1/unread");
        async move { json_of(client.get(url).send().await.unwrap()).await }
    };
    let nurse = unread_of(&net.nurse_c).await;
    assert!(
        nurse
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["patient"] == p.to_string() && l["urgent"] == 1),
        "the nurse sees the urgent entry counted: {nurse}"
    );
    // Refused outright, as the live stream refuses the clerk: no capability to read notebooks.
    let clerk = net
        .clerk_c
        .get(app.url("/api/v1/unread"))
        .send()
        .await
        .unwrap();
    assert_eq!(clerk.status(), 403, "the clerk gets no counts");

    let feed_of = |client: &Client| {
        let client = client.clone();
        let url = app.url("/api/v1/notifications");
        async move { json_of(client.get(url).send().await.unwrap()).await }
    };
    let entry_kinds = |feed: &Value| {
        feed.as_array()
            .unwrap()
            .iter()
            .filter(|n| ["entry", "reply", "mention"].contains(&n["kind"].as_str().unwrap()))
            .count()
    };
    assert!(entry_kinds(&feed_of(&net.nurse_c).await) > 0);
    assert_eq!(entry_kinds(&feed_of(&net.clerk_c).await), 0);
    // As the notebook itself refuses the clerk.
    let response = net
        .clerk_c
        .get(patient_url(&app, p, "/entries"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

/// A request is found by its ID however many newer ones there are (the list shows the newest
/// 200; reading, accepting, answering and closing look the request up by itself).
#[tokio::test]
async fn a_support_request_older_than_the_newest_two_hundred_is_still_answered() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let photo = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "紅斑.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let entry = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "右下腿に紅斑", "attachments": [photo] }),
        )
        .await,
    );
    let response = net
        .doctor_c
        .post(patient_url(&app, p, "/support-requests"))
        .json(&json!({ "to": net.hospital.code, "kind": "second_opinion",
                       "question": "ご意見をください", "summary": "80代女性",
                       "entries": [entry], "attachments": [photo] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "sending the request");
    let request = id_of(&json_of(response).await);
    authorizer_follows(&app, &net.hospital, p, Action::SupportAnswer, true).await;
    // Two hundred newer requests between the same facilities (their texts are copies that
    // would not decrypt for their own rows, which nothing here reads).
    let mut su = superuser(&app).await;
    sqlx::query(
        "INSERT INTO support_requests (id, patient_id, facility_id, to_facility_id, kind,
                                       requested_by, question_enc, summary_enc, created_at)
         SELECT gen_random_uuid(), patient_id, facility_id, to_facility_id, kind, requested_by,
                question_enc, summary_enc, created_at + make_interval(secs => g)
           FROM support_requests, generate_series(1, 200) g
          WHERE id = $1::uuid",
    )
    .bind(&request)
    .execute(&mut su)
    .await
    .unwrap();
    let listed = json_of(
        net.outsider_c
            .get(app.url("/api/v1/support-requests"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 200, "the list shows the newest 200");
    assert!(listed.iter().all(|l| l["id"] != request.as_str()));

    let response = net
        .outsider_c
        .get(app.url(&format!("/api/v1/support-requests/{request}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading the oldest request");
    assert_eq!(json_of(response).await["question"], "ご意見をください");
    // The file the request shares: read through the request's relation, with no refusal
    // recorded on the way (the care team's check is not tried first and logged as refused).
    let response = net
        .outsider_c
        .get(patient_url(&app, p, &format!("/attachments/{photo}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the shared file");
    let refusals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE facility_id = $1 AND action = 'access.refused'",
    )
    .bind(net.hospital.id.as_uuid())
    .fetch_one(&mut su)
    .await
    .unwrap();
    assert_eq!(
        refusals, 0,
        "no false refusal in the asked facility's chain"
    );
    for (client, step) in [
        (&net.outsider_c, "accept"),
        (&net.outsider_c, "answer"),
        (&net.doctor_c, "close"),
    ] {
        let response = client
            .post(app.url(&format!("/api/v1/support-requests/{request}/{step}")))
            .json(&json!({ "answer": "皮膚科受診をお勧めします" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{step}");
    }
    // Another facility still finds nothing by the ID.
    let response = net
        .member_c
        .get(app.url(&format!("/api/v1/support-requests/{request}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

async fn save_settings(app: &TestApp, client: &Client, body: Value) -> Response {
    client
        .put(app.url("/api/v1/notifications/settings"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The person's feed: (kind, entry) pairs.
async fn feed(app: &TestApp, client: &Client) -> Vec<(String, String)> {
    let response = client
        .get(app.url("/api/v1/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "reading notifications");
    json_of(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_string(),
                n["entry"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn has(feed: &[(String, String)], kind: &str, entry: &str) -> bool {
    feed.iter().any(|(k, e)| k == kind && e == entry)
}

fn mentions_entry(feed: &[(String, String)], entry: &str) -> bool {
    feed.iter().any(|(_, e)| e == entry)
}

#[tokio::test]
async fn notification_settings_are_checked_and_the_feed_follows_replies_mentions_and_mutes() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let me = &net.member_c;

    for (body, field, what) in [
        (
            json!({ "email": "not-an-address", "live_level": "info" }),
            "email",
            "a bad address",
        ),
        (
            json!({ "email": "a b@example.jp", "live_level": "info" }),
            "email",
            "an address with a space",
        ),
        (
            json!({ "live_level": "info", "digest_enabled": true }),
            "email",
            "a digest without an address",
        ),
        (
            json!({ "email": "", "live_level": "info", "digest_enabled": true }),
            "email",
            "a digest with an empty address",
        ),
        (
            json!({ "live_level": "loud" }),
            "live_level",
            "an unknown level",
        ),
        (
            json!({ "live_level": "info", "quiet_start": 24 }),
            "quiet_start",
            "hour 24",
        ),
        (
            json!({ "live_level": "info", "digest_hour": -1 }),
            "digest_hour",
            "hour -1",
        ),
    ] {
        invalid(save_settings(&app, me, body).await, field, what).await;
    }
    let response = save_settings(
        &app,
        me,
        json!({ "email": "sakura@nurse.example.jp", "live_level": "reply_requested",
                "quiet_start": 22, "quiet_end": 7, "digest_enabled": true, "digest_hour": 8 }),
    )
    .await;
    assert_eq!(response.status(), 204, "saving preferences");
    let saved = json_of(
        me.get(app.url("/api/v1/notifications/settings"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(saved["email"], "sakura@nurse.example.jp");
    assert_eq!(saved["live_level"], "reply_requested");
    assert_eq!(
        (saved["quiet_start"].as_i64(), saved["quiet_end"].as_i64()),
        (Some(22), Some(7))
    );
    assert_eq!(saved["digest_enabled"], true);
    assert_eq!(saved["digest_hour"], 8);
    // Back to everything, for the feed below.
    let response = save_settings(&app, me, json!({ "live_level": "info" })).await;
    assert_eq!(response.status(), 204);

    // Her entry, a reply to it, a mention of her facility.
    let hers = note(&app, me, p, "support", "info", "訪問看護の記録").await;
    let reply = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "了解しました", "reply_to": hers }),
        )
        .await,
    );
    let mention = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "次回訪問時に採血を",
                    "mentions": [net.station_id()] }),
        )
        .await,
    );
    let info = note(&app, &net.doctor_c, p, "notice", "info", "参考までに").await;
    let items = feed(&app, me).await;
    assert!(has(&items, "reply", &reply), "a reply to her entry");
    assert!(
        has(&items, "mention", &mention),
        "a mention of her facility"
    );
    assert!(
        has(&items, "entry", &info),
        "an ordinary entry at her level"
    );
    assert!(!mentions_entry(&items, &hers), "not her own entry");

    // Muted: ordinary entries of the patient go, urgent ones, replies and mentions stay.
    let response = me
        .put(patient_url(&app, p, "/mute"))
        .json(&json!({ "muted": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "muting");
    let saved = json_of(
        me.get(app.url("/api/v1/notifications/settings"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(saved["muted"], json!([p.to_string()]));
    let later = note(&app, &net.doctor_c, p, "notice", "info", "参考までに その2").await;
    let urgent = note(
        &app,
        &net.doctor_c,
        p,
        "complaint",
        "urgent",
        "呼吸苦の訴え",
    )
    .await;
    let items = feed(&app, me).await;
    assert!(!mentions_entry(&items, &info), "an info entry is muted");
    assert!(!mentions_entry(&items, &later), "a new info entry is muted");
    assert!(has(&items, "entry", &urgent), "an urgent one comes through");
    assert!(has(&items, "reply", &reply) && has(&items, "mention", &mention));
    // Only her: her colleague still sees everything.
    let colleague = feed(&app, &net.station_admin_c).await;
    assert!(has(&colleague, "entry", &later));

    let response = me
        .put(patient_url(&app, p, "/mute"))
        .json(&json!({ "muted": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "unmuting");
    assert!(has(&feed(&app, me).await, "entry", &later));

    // Muting a patient one does not see: 404.
    let response = net
        .outsider_c
        .put(patient_url(&app, p, "/mute"))
        .json(&json!({ "muted": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(failure(response).await, not_found());
}

/// A server-sent-events stream read chunk by chunk.
pub(crate) struct Live {
    response: Response,
    buffer: Vec<u8>,
    /// Everything received, to check what never appears.
    pub(crate) raw: Vec<u8>,
}

impl Live {
    pub(crate) async fn open(app: &TestApp, client: &Client) -> Self {
        let response = client.get(app.url("/api/v1/events")).send().await.unwrap();
        assert_eq!(response.status(), 200, "opening the event stream");
        assert!(header(&response, "content-type").starts_with("text/event-stream"));
        Self {
            response,
            buffer: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// The next `notification` event's data within `wait`, or `None`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("UTF-8 events");
                let mut event = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = Some(e.trim().to_string());
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if event.as_deref() == Some("notification") {
                    return Some(serde_json::from_str(&data).expect("JSON data"));
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            match tokio::time::timeout(left, self.response.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(chunk))) => {
                    self.buffer.extend_from_slice(&chunk);
                    self.raw.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => panic!("the event stream ended"),
                Ok(Err(e)) => panic!("reading the event stream: {e}"),
            }
        }
    }
}

impl Live {
    /// Whether the stream ends within `wait` (events and keep-alives before the end are
    /// skipped).
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
            }
        }
    }
}

/// Signing out (here, in the same browser; equally in another tab) stops the live
/// notifications of that session: an open stream does not outlive its session.
#[tokio::test]
async fn the_event_stream_ends_when_its_session_is_signed_out() {
    // A short idle timeout: the stream checks its session every two seconds.
    let app = spawn_app_with(|s| {
        s.session_idle_timeout = Duration::from_secs(8);
    })
    .await;
    let clinic = app.seed_facility("SSE-END", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &client).await;
    assert!(
        !live.ends_within(Duration::from_secs(3)).await,
        "the stream stays open while the session is good"
    );
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "signing out");
    assert!(
        live.ends_within(Duration::from_secs(8)).await,
        "the stream ends after signing out"
    );
    let again = client.get(app.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(again.status(), 401, "and cannot be opened again");
}

/// With the default idle timeout (30 minutes; the stream checks its session every 30 s), a
/// sign-out in the same server ends the stream at once, not at the next check: through the
/// API and through the portal's sign-out form.
#[tokio::test]
async fn signing_out_ends_the_event_stream_at_once() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("SSE-NOW", FacilityKind::Clinic).await;
    app.seed_staff(&clinic, "nurse", StaffRole::Staff, Profession::Nurse)
        .await;
    let client = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &client).await;
    let response = client
        .post(app.url("/api/v1/auth/sign-out"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "signing out");
    assert!(
        live.ends_within(Duration::from_secs(3)).await,
        "the stream ends at the sign-out"
    );

    let client = app.client_for(&clinic, "nurse").await;
    let mut live = Live::open(&app, &client).await;
    let token = app.form_token(&client, "/").await;
    let response = client
        .post(app.url("/logout"))
        .form(&[("authenticity_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "signing out through the portal");
    assert!(
        live.ends_within(Duration::from_secs(3)).await,
        "the stream ends at the portal's sign-out"
    );
}

#[tokio::test]
async fn live_notifications_arrive_without_content_and_quiet_hours_hold_back_all_but_urgent() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let mut live = Live::open(&app, &net.member_c).await;
    let mut outsider = Live::open(&app, &net.outsider_c).await;

    let secret = "夜間に38.5度の発熱、解熱剤を使用";
    let urgent = note(&app, &net.doctor_c, p, "complaint", "urgent", secret).await;
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("a live notification within five seconds");
    assert_eq!(event["kind"], "entry");
    assert_eq!(event["priority"], "urgent");
    assert_eq!(event["patient"], p.to_string());
    assert_eq!(event["entry"], urgent.as_str());
    assert!(
        !contains(&live.raw, secret.as_bytes()),
        "no text of the entry"
    );
    assert!(!contains(&live.raw, "発熱".as_bytes()));
    assert!(!contains(&live.raw, "梅田".as_bytes()), "no name");
    let info = note(&app, &net.doctor_c, p, "notice", "info", "参考の連絡").await;
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("an info entry arrives outside quiet hours");
    assert_eq!(event["entry"], info.as_str());
    assert_eq!(event["priority"], "info");
    // Her own entries do not come back to her; a reply to one does, and a mention of her
    // facility, both at least as 要返信.
    let hers = note(&app, &net.member_c, p, "support", "urgent", "自分の記録").await;
    assert!(live.next(Duration::from_millis(700)).await.is_none());
    let reply = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "了解", "reply_to": hers }),
        )
        .await,
    );
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("a reply to her entry");
    assert_eq!(
        (&event["kind"], &event["entry"], &event["priority"]),
        (&json!("reply"), &json!(reply), &json!("reply_requested"))
    );
    let mention = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "instruction", "body": "確認を", "mentions": [net.station_id()] }),
        )
        .await,
    );
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("a mention of her facility");
    assert_eq!(
        (&event["kind"], &event["entry"], &event["priority"]),
        (
            &json!("mention"),
            &json!(mention),
            &json!("reply_requested")
        )
    );
    // The unrelated hospital hears nothing of the patient.
    assert!(
        outsider.next(Duration::from_millis(300)).await.is_none(),
        "the hospital is told nothing"
    );
    drop(live);

    // Quiet hours around the present hour (Japan time): info waits, urgent comes through.
    let hour = time::OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .hour();
    let response = save_settings(
        &app,
        &net.member_c,
        json!({ "live_level": "info", "quiet_start": hour, "quiet_end": (hour + 2) % 24 }),
    )
    .await;
    assert_eq!(response.status(), 204);
    let mut live = Live::open(&app, &net.member_c).await;
    note(&app, &net.doctor_c, p, "notice", "info", "静かな時間の連絡").await;
    assert!(
        live.next(Duration::from_millis(1500)).await.is_none(),
        "nothing arrives in quiet hours"
    );
    let urgent = note(&app, &net.doctor_c, p, "complaint", "urgent", "転倒あり").await;
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("an urgent entry comes through quiet hours");
    assert_eq!(event["entry"], urgent.as_str());
    assert_eq!(event["priority"], "urgent");
    assert!(outsider.next(Duration::from_millis(300)).await.is_none());

    // The hospital's doctor opens the notebook in an emergency: the care team hears of it at
    // once, through quiet hours, without the reason; the hospital is not told of itself.
    let reason = "救急搬送。意識障害あり、服薬歴の確認が必要";
    let card = card_number(&app, &net.doctor_c, p).await;
    let response = net
        .outsider_c
        .post(app.url("/api/v1/emergency-access"))
        .json(&json!({ "card_number": card, "birth_date": "1940-01-15", "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "emergency access opened");
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("emergency access is announced through quiet hours");
    assert_eq!(
        (&event["kind"], &event["priority"], &event["link"]),
        (&json!("emergency"), &json!("urgent"), &json!("/emergency"))
    );
    assert_eq!(event["patient"], p.to_string());
    assert!(!contains(&live.raw, "救急搬送".as_bytes()), "no reason");
    assert!(
        outsider.next(Duration::from_millis(500)).await.is_none(),
        "the opener is not told of its own access"
    );
}

/// The text of a plain-text message as the sink stored it (base64 or quoted-printable undone).
fn mail_text(raw: &str) -> (String, String) {
    use base64::Engine;
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let encoding = head
        .lines()
        .find_map(|l| {
            let lower = l.to_ascii_lowercase();
            lower
                .strip_prefix("content-transfer-encoding:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    let text = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body"),
            )
            .expect("UTF-8 body")
        }
        "quoted-printable" => {
            let joined = body.replace("=\n", "");
            let b = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' && i + 3 <= b.len() {
                    if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                }
                out.push(b[i]);
                i += 1;
            }
            String::from_utf8(out).expect("UTF-8 body")
        }
        _ => body.to_string(),
    };
    (head.to_string(), text)
}

#[tokio::test]
async fn the_daily_digest_mails_counts_and_a_link_never_patient_data_once_a_day() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let texts = ["夜間に咳込みあり", "残薬が多い", "デイサービスの日程変更"];
    note(&app, &net.doctor_c, p, "complaint", "urgent", texts[0]).await;
    note(
        &app,
        &net.doctor_c,
        p,
        "medication",
        "reply_requested",
        texts[1],
    )
    .await;
    note(&app, &net.doctor_c, p, "notice", "info", texts[2]).await;
    let address = "sakura@nurse.example.jp";
    let response = save_settings(
        &app,
        &net.member_c,
        json!({ "email": address, "live_level": "info", "digest_enabled": true,
                "digest_hour": 0 }),
    )
    .await;
    assert_eq!(response.status(), 204);

    let sink = renrakucho_testkit::SmtpSink::start().await;
    let mut settings = app.settings.clone();
    settings.smtp_url = Some(renrakucho_server::config::Secret::new(sink.url.clone()));
    let mailer = renrakucho_server::mail::Mailer::from_settings(&settings)
        .expect("mail settings")
        .expect("a mailer");
    let now = time::OffsetDateTime::now_utc();
    let sent =
        renrakucho_server::digest::send_due(&app.db, &mailer, "http://renrakucho.test", now).await;
    assert_eq!(sent, 1, "one digest due");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "one message received");
    let (head, text) = mail_text(&messages[0]);
    assert!(
        head.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(address)),
        "addressed to her"
    );
    assert!(text.contains("http://renrakucho.test/"), "the link");
    assert!(
        text.contains("未読の記録: 3件"),
        "the count of unread entries"
    );
    assert!(text.contains("至急 1件"), "the urgent count");
    assert!(text.contains("要返信 1件"), "the reply-requested count");
    assert!(
        text.contains("3 unread entries (1 urgent, 1 reply requested, 1 patients)"),
        "the counts in English"
    );
    for raw in [text.as_str(), messages[0].as_str()] {
        for secret in [
            PATIENT_NAME,
            "梅田",
            "花子",
            PATIENT_KANA,
            "ウメダ",
            "ハナコ",
            texts[0],
            texts[1],
            texts[2],
        ] {
            assert!(!raw.contains(secret), "the digest holds patient data");
        }
        assert!(!raw.contains(&p.to_string()), "not even the patient's ID");
    }

    // Once a day.
    let again =
        renrakucho_server::digest::send_due(&app.db, &mailer, "http://renrakucho.test", now).await;
    assert_eq!(again, 0, "no second digest the same day");
    assert_eq!(sink.messages().len(), 1);
    let tomorrow = now + time::Duration::days(1);
    let next_day =
        renrakucho_server::digest::send_due(&app.db, &mailer, "http://renrakucho.test", tomorrow)
            .await;
    assert_eq!(next_day, 1, "the next day's digest");
    assert_eq!(sink.messages().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Isolation.

#[tokio::test]
async fn an_unrelated_facility_gets_the_same_404_from_every_notebook_endpoint() {
    let app = spawn_app().await;
    let net = network(&app).await;
    let p = net.patient;
    let file = id_of(
        &uploaded(
            &app,
            &net.doctor_c,
            p,
            "image/png",
            "写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await,
    );
    let entry = id_of(
        &post(
            &app,
            &net.doctor_c,
            p,
            json!({ "category": "treatment", "body": "処置", "attachments": [file] }),
        )
        .await,
    );

    let requests = |patient: &str| -> Vec<(Method, String, Option<Value>)> {
        let url = |rest: &str| patient_url(&app, patient, rest);
        vec![
            (Method::GET, url("/entries"), None),
            (
                Method::POST,
                url("/entries"),
                Some(json!({ "category": "notice", "body": "侵入" })),
            ),
            (Method::GET, url(&format!("/entries/{entry}")), None),
            (
                Method::PUT,
                url(&format!("/entries/{entry}")),
                Some(json!({ "expected_version": 1, "category": "notice", "body": "改ざん" })),
            ),
            (
                Method::POST,
                url(&format!("/entries/{entry}/withdraw")),
                Some(json!({ "reason": "取り下げさせる" })),
            ),
            (
                Method::POST,
                url("/entries/read"),
                Some(json!({ "entries": [entry] })),
            ),
            (
                Method::GET,
                url("/entries/search?q=%E5%87%A6%E7%BD%AE"),
                None,
            ),
            (Method::GET, url(&format!("/attachments/{file}")), None),
            (
                Method::GET,
                url(&format!("/attachments/{file}/thumbnail")),
                None,
            ),
            (Method::GET, url("/export.json"), None),
            (Method::GET, url("/export.pdf"), None),
            (Method::PUT, url("/mute"), Some(json!({ "muted": true }))),
            (
                Method::POST,
                url("/support-requests"),
                Some(json!({ "to": net.hospital.code, "kind": "information",
                             "question": "教えて", "summary": "概要", "entries": [entry] })),
            ),
        ]
    };
    for target in [p, Uuid::new_v4()] {
        let patient = target.to_string();
        for (method, url, body) in requests(&patient) {
            let mut request = net.outsider_c.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = failure(request.send().await.unwrap()).await;
            assert_eq!(
                answer,
                not_found(),
                "{method} {}",
                url.replace(&patient, "{id}")
            );
        }
        let response = upload(
            &app,
            &net.outsider_c,
            target,
            Some("image/png"),
            "写真.png",
            renrakucho_testkit::PNG_1X1.to_vec(),
        )
        .await;
        assert_eq!(failure(response).await, not_found(), "uploading");
    }

    // Every attempt is in the hospital's own audit log, refused, the same for the patient it
    // does not care for and for an ID that names nobody.
    let mut tx = app
        .db
        .begin(renrakucho_store::Scope::Facility(net.hospital.id))
        .await
        .unwrap();
    let refusals: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT target_id, count(*) FROM audit_log
          WHERE action = 'access.refused' AND outcome = 'denied'
          GROUP BY target_id",
    )
    .fetch_all(tx.raw_connection_for_tests())
    .await
    .unwrap();
    drop(tx);
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals.iter().any(|(id, _)| *id == p));
    assert_eq!(
        refusals[0].1, refusals[1].1,
        "a real patient and no patient leave the same trace"
    );

    // Nothing the hospital tried changed anything.
    assert_eq!(
        timeline_ids(&app, &net.doctor_c, p, "").await,
        vec![entry.clone()]
    );
    let shown = detail(&app, &net.doctor_c, p, &entry).await;
    assert_eq!(shown["entry"]["version"], 1);
    assert_eq!(shown["entry"]["body"], "処置");
    assert!(shown["entry"]["withdrawn_at"].is_null());
    assert_eq!(shown["read_by"], json!([]));
    let response = net
        .outsider_c
        .get(app.url("/api/v1/support-requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(response).await, json!([]));
    let unread = json_of(
        net.outsider_c
            .get(app.url("/api/v1/unread"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unread, json!([]), "the hospital has nothing unread");
    let feed_items = feed(&app, &net.outsider_c).await;
    assert!(feed_items.is_empty(), "nor anything in its feed");
}

/// Read-your-writes: a patient registered through the API has a notebook at once, for the
/// very client that registered it (the next request must not answer 404 because the server's
/// authorizer has not yet heard of the registration).
#[tokio::test]
async fn a_patient_registered_through_the_api_has_a_notebook_at_once() {
    let app = spawn_app().await;
    let clinic = app.seed_facility("RYW-CLINIC", FacilityKind::Clinic).await;
    person(
        &app,
        &clinic,
        "doctor",
        StaffRole::Staff,
        Profession::Doctor,
        DOCTOR,
    )
    .await;
    let client = app.client_for(&clinic, "doctor").await;
    let mut missing = 0;
    for i in 0..100 {
        let response = client
            .post(app.url("/api/v1/patients"))
            .json(&json!({ "name": format!("登録 {i}号"), "kana": "トウロク", "birth_date": "1940-01-15",
                           "sex": "female", "care_level": "care_2" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "registering");
        let id = id_of(&json_of(response).await);
        let response = client
            .post(patient_url(&app, &id, "/entries"))
            .json(&json!({ "category": "notice", "body": "初回訪問" }))
            .send()
            .await
            .unwrap();
        if response.status() != 201 {
            missing += 1;
        }
    }
    assert_eq!(
        missing, 0,
        "posts answered 404 right after registering (of 100)"
    );
}

#[tokio::test]
async fn a_live_notification_reaches_people_connected_to_another_server_process() {
    // Two servers on one database: the doctor writes through the first, the nurse listens on the
    // second; the database's announcement carries the event across.
    let app = spawn_app().await;
    let net = network(&app).await;
    let second = renrakucho_server::Application::build(&app.settings, &app.database.connections())
        .await
        .unwrap();
    let second_url = format!("http://{}", second.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(second.run_until(async {
        let _ = stopped.await;
    }));
    // Sessions live in the database: the nurse's cookie works on either server.
    let response = net
        .member_c
        .get(format!("{second_url}/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut live = Live {
        response,
        buffer: Vec::new(),
        raw: Vec::new(),
    };
    let entry = note(
        &app,
        &net.doctor_c,
        net.patient,
        "treatment",
        "urgent",
        "至急の連絡です",
    )
    .await;
    let event = live
        .next(Duration::from_secs(5))
        .await
        .expect("the second server passes the event on within five seconds");
    assert_eq!(event["kind"], "entry");
    assert_eq!(event["priority"], "urgent");
    assert_eq!(event["entry"], entry.as_str());
    assert!(!String::from_utf8_lossy(&live.raw).contains("至急の連絡です"));
    let _ = stop.send(());
}
