//! A stale value cannot be put back (issue 11 §3, docs/adr/0016-values-bound-to-their-version.md).
//!
//! Someone who can write the database's files (the owner, a superuser, a copy of the data
//! directory) copies an earlier ciphertext of a value into its own row after the row moved on:
//! an entry's pre-edit body and vitals, a patient's name before a correction. The associated
//! data names the version the value was written for, so the application refuses it with a typed
//! integrity error instead of showing it as current. Values written before versions were bound
//! (format 1) are re-encrypted by `renrakucho keys bind-versions`, which resumes after an
//! interruption and, once none is left, has the database refuse format 1 for good.
//!
//! The tampering is real SQL as the cluster's superuser with triggers off
//! (`session_replication_role = replica`), as someone editing the files would be.

use renrakucho_core::{
    BirthDate, CareLevel, Category, EntryBody, FacilityKind, KanaName, PatientId, PatientName,
    PatientProfile, Phone, Priority, Profession, Reason, Sex, StaffRole, Vitals,
};
use renrakucho_keyring::{BindProgress, Binding, KeyOwner, Keyring, KeyringError, Problem};
use renrakucho_notebook::{EditResult, EntryContent, NewEntryInput};
use renrakucho_registry::{CareError, ConsentForm, ConsentScope, NewPatient, Signer, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::encrypted::{EncryptedColumn, ENCRYPTED_COLUMNS, HISTORY_COLUMNS};
use renrakucho_store::staff::StaffAccount;
use renrakucho_store::Scope;
use renrakucho_testkit::acting::Writer;
use renrakucho_testkit::{spawn_app, TestApp};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::support::superuser;

/// A clinic and its doctor (the facility's administrator), with a keyring of its own.
struct Clinic {
    app: TestApp,
    keyring: Keyring,
    doctor: StaffAccount,
}

impl Clinic {
    async fn new(code: &str) -> Self {
        let app = spawn_app().await;
        let clinic = app.seed_facility(code, FacilityKind::Clinic).await;
        let doctor = app
            .seed_staff(
                &clinic,
                "doctor",
                StaffRole::FacilityAdmin,
                Profession::Doctor,
            )
            .await;
        let keyring = app.keyring().await;
        Self {
            app,
            keyring,
            doctor,
        }
    }

    fn actor(&self) -> StaffActor {
        StaffActor {
            staff: self.doctor.id,
            facility: self.doctor.facility_id,
        }
    }

    fn author(&self) -> Writer {
        Writer {
            actor: self.actor(),
            name: "版数 医師".into(),
            profession: Profession::Doctor,
            facility_admin: true,
        }
    }

    async fn register(&self, name: &str, kana: &str) -> PatientId {
        self.app.seed_patient(&self.doctor, name, kana).await.id
    }

    async fn correct(&self, patient: PatientId, name: &str, kana: &str, phone: &str) {
        renrakucho_registry::update_patient(
            &self.app.db,
            &self.keyring,
            &renrakucho_testkit::acting::allowed(self.actor(), patient),
            &Origin::default(),
            new_patient(name, kana, phone),
        )
        .await
        .expect("correcting the registration");
    }

    async fn post(&self, patient: PatientId, body: &str, temperature: f64) -> Uuid {
        renrakucho_notebook::post_entry(
            &self.app.db,
            &self.keyring,
            &self.author().on(patient),
            &Origin::default(),
            NewEntryInput {
                content: content(body, temperature),
                reply_to: None,
                attachments: vec![],
            },
        )
        .await
        .expect("posting an entry")
        .id
    }

    async fn edit(&self, patient: PatientId, entry: Uuid, expected: i32, body: &str, t: f64) {
        let result = renrakucho_notebook::edit_entry(
            &self.app.db,
            &self.keyring,
            &self.author().on(patient),
            &Origin::default(),
            entry,
            expected,
            content(body, t),
        )
        .await
        .expect("editing an entry");
        assert!(matches!(result, EditResult::Saved(_)), "{result:?}");
    }

    async fn patient(
        &self,
        keyring: &Keyring,
        patient: PatientId,
    ) -> Result<renrakucho_registry::Patient, CareError> {
        renrakucho_registry::patient(
            &self.app.db,
            keyring,
            &renrakucho_testkit::acting::allowed(self.actor(), patient),
            &Origin::default(),
        )
        .await
    }

    async fn entry(
        &self,
        keyring: &Keyring,
        patient: PatientId,
        entry: Uuid,
    ) -> Result<renrakucho_notebook::EntryDetail, CareError> {
        renrakucho_notebook::entry_detail(
            &self.app.db,
            keyring,
            &renrakucho_testkit::acting::allowed(self.actor(), patient),
            &Origin::default(),
            entry,
        )
        .await
    }
}

fn new_patient(name: &str, kana: &str, phone: &str) -> NewPatient {
    let today = time::OffsetDateTime::now_utc().date();
    NewPatient {
        name: PatientName::parse(name).unwrap(),
        kana: KanaName::parse(kana).unwrap(),
        profile: PatientProfile {
            birth_date: BirthDate::parse("1938-04-02", today).unwrap(),
            sex: Sex::Female,
            care_level: CareLevel::Care2,
            address: None,
            phone: Some(Phone::parse(phone).unwrap()),
            primary_doctor: None,
        },
    }
}

fn content(body: &str, temperature: f64) -> EntryContent {
    EntryContent {
        category: Category::Vitals,
        priority: Priority::Info,
        body: EntryBody::parse(body).unwrap(),
        vitals: Some(Vitals {
            temperature_c: Some(temperature),
            ..Vitals::default()
        }),
        mentions: vec![],
    }
}

/// The read failed with the keyring's integrity error for this stored value, and nothing else
/// (in particular: no stale plaintext).
#[track_caller]
fn refused<T: std::fmt::Debug>(
    result: Result<T, CareError>,
    table: &str,
    column: &str,
    problem: Problem,
) {
    match result {
        Err(CareError::Keyring(KeyringError::Undecryptable {
            table: t,
            column: c,
            problem: p,
            ..
        })) => assert_eq!(
            (t.as_str(), c.as_str(), p),
            (table, column, problem),
            "the wrong value was refused"
        ),
        other => panic!("{table}.{column}: expected an integrity error, got {other:?}"),
    }
}

/// The superuser, with triggers off: what someone writing the data files can do.
async fn tamperer(app: &TestApp) -> PgConnection {
    let mut su = superuser(app).await;
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut su)
        .await
        .unwrap();
    su
}

async fn set(su: &mut PgConnection, sql: &str, key: Uuid, value: &[u8]) {
    let done = sqlx::query(sql)
        .bind(key)
        .bind(value)
        .execute(&mut *su)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
}

type PatientValues = [Vec<u8>; 3];

async fn patient_values(su: &mut PgConnection, patient: PatientId) -> (PatientValues, i64) {
    let (name, kana, profile, revision): (Vec<u8>, Vec<u8>, Vec<u8>, i64) = sqlx::query_as(
        "SELECT name_enc, kana_enc, profile_enc, revision FROM patients WHERE id = $1",
    )
    .bind(patient.as_uuid())
    .fetch_one(&mut *su)
    .await
    .unwrap();
    ([name, kana, profile], revision)
}

/// Body and vitals of a row of `entries`, or of the history row of one version.
async fn entry_values(su: &mut PgConnection, entry: Uuid, version: Option<i32>) -> [Vec<u8>; 2] {
    let (body, vitals): (Vec<u8>, Option<Vec<u8>>) = match version {
        None => sqlx::query_as("SELECT body_enc, vitals_enc FROM entries WHERE id = $1")
            .bind(entry)
            .fetch_one(&mut *su)
            .await
            .unwrap(),
        Some(v) => sqlx::query_as(
            "SELECT body_enc, vitals_enc FROM entry_versions WHERE entry_id = $1 AND version = $2",
        )
        .bind(entry)
        .bind(v)
        .fetch_one(&mut *su)
        .await
        .unwrap(),
    };
    [body, vitals.expect("vitals")]
}

const PATIENT_COLUMNS: [&str; 3] = ["name_enc", "kana_enc", "profile_enc"];
const ENTRY_COLUMNS: [&str; 2] = ["body_enc", "vitals_enc"];

#[tokio::test]
async fn every_earlier_value_put_back_into_its_row_is_refused() {
    let c = Clinic::new("VER-A").await;
    let mut su = tamperer(&c.app).await;

    // A patient corrected twice: three revisions of name, reading and profile.
    let p = c.register("版数 花子", "ハンスウ ハナコ").await;
    let mut revisions = vec![patient_values(&mut su, p).await];
    c.correct(p, "版数 春子", "ハンスウ ハルコ", "090-1111-0001")
        .await;
    revisions.push(patient_values(&mut su, p).await);
    c.correct(p, "版数 夏子", "ハンスウ ナツコ", "090-1111-0002")
        .await;
    revisions.push(patient_values(&mut su, p).await);
    // The database counted them, whatever the statements said.
    let counted: Vec<i64> = revisions.iter().map(|(_, r)| *r).collect();
    assert_eq!(counted, [1, 2, 3]);

    // An entry edited twice: three versions of body and vitals, in the entry and its history.
    let e = c.post(p, "体温 36.5 度、経過良好", 36.5).await;
    let mut versions = vec![entry_values(&mut su, e, None).await];
    c.edit(p, e, 1, "体温 37.0 度、微熱あり", 37.0).await;
    versions.push(entry_values(&mut su, e, None).await);
    c.edit(p, e, 2, "体温 37.5 度、往診を依頼", 37.5).await;
    versions.push(entry_values(&mut su, e, None).await);
    let mut history = Vec::new();
    for v in 1..=3 {
        history.push(entry_values(&mut su, e, Some(v)).await);
    }

    // Everything reads as it is now.
    let now = c.patient(&c.keyring, p).await.unwrap();
    assert_eq!(now.name.as_str(), "版数 夏子");
    let detail = c.entry(&c.keyring, p, e).await.unwrap();
    assert_eq!(detail.entry.body, "体温 37.5 度、往診を依頼");
    assert_eq!(detail.versions.len(), 3);

    // Every earlier revision of every patient column, put back into the row: refused.
    let (current, _) = revisions[2].clone();
    for (earlier, _) in &revisions[..2] {
        for (i, column) in PATIENT_COLUMNS.iter().enumerate() {
            let put = format!("UPDATE patients SET {column} = $2 WHERE id = $1");
            set(&mut su, &put, p.as_uuid(), &earlier[i]).await;
            refused(
                c.patient(&c.keyring, p).await,
                "patients",
                column,
                Problem::Tampered,
            );
            set(&mut su, &put, p.as_uuid(), &current[i]).await;
        }
    }
    // Every earlier version of the entry's body and vitals, put back into the entry: refused.
    for earlier in &versions[..2] {
        for (i, column) in ENTRY_COLUMNS.iter().enumerate() {
            let put = format!("UPDATE entries SET {column} = $2 WHERE id = $1");
            set(&mut su, &put, e, &earlier[i]).await;
            refused(
                c.entry(&c.keyring, p, e).await,
                "entries",
                column,
                Problem::Tampered,
            );
            set(&mut su, &put, e, &versions[2][i]).await;
        }
    }
    // And in the history: an earlier version's values copied into a later version's row.
    for later in 1..3 {
        for earlier in 0..later {
            for (i, column) in ENTRY_COLUMNS.iter().enumerate() {
                let put = format!(
                    "UPDATE entry_versions SET {column} = $2 WHERE entry_id = $1 AND version = {}",
                    later + 1
                );
                set(&mut su, &put, e, &history[earlier][i]).await;
                // The history is a listing: the entry reads, and that version is marked
                // unreadable (ADR 0017) — never shown with the earlier version's text.
                let detail = c
                    .entry(&c.keyring, p, e)
                    .await
                    .expect("the entry reads, its history marks the broken version");
                assert!(
                    detail.versions[later].readable().is_none(),
                    "entry_versions.{column}: version {} put back from version {} must not read",
                    later + 1,
                    earlier + 1
                );
                assert!(
                    detail
                        .versions
                        .iter()
                        .enumerate()
                        .all(|(n, v)| n == later || v.readable().is_some()),
                    "the other versions still read"
                );
                set(&mut su, &put, e, &history[later][i]).await;
            }
        }
    }

    // Put back as it was, everything reads again (the refusals were about those values).
    assert_eq!(
        c.patient(&c.keyring, p).await.unwrap().name.as_str(),
        "版数 夏子"
    );
    let detail = c.entry(&c.keyring, p, e).await.unwrap();
    assert_eq!(detail.entry.body, "体温 37.5 度、往診を依頼");
    assert_eq!(
        detail
            .versions
            .iter()
            .map(|v| v.readable().expect("a readable version").body.as_str())
            .collect::<Vec<_>>(),
        [
            "体温 36.5 度、経過良好",
            "体温 37.0 度、微熱あり",
            "体温 37.5 度、往診を依頼"
        ]
    );

    // The revision is the database's to count: the web role cannot set it.
    let mut tx = c
        .app
        .db
        .begin(Scope::Facility(c.doctor.facility_id))
        .await
        .unwrap();
    let attempt = sqlx::query("UPDATE patients SET revision = 1 WHERE id = $1")
        .bind(p.as_uuid())
        .execute(tx.raw_connection_for_tests())
        .await
        .expect_err("the web role sets no revision");
    assert_eq!(
        attempt
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501"),
        "{attempt}"
    );
}

/// Every encrypted column of patient data the application knows, history included. (A
/// facility's own values, such as its staff's authenticator secrets, came after format 2 and
/// were never written in format 1: `bind-versions` walks patients.)
fn all_columns() -> impl Iterator<Item = &'static EncryptedColumn<'static>> {
    ENCRYPTED_COLUMNS
        .iter()
        .chain(HISTORY_COLUMNS)
        .filter(|c| c.owner_kind == renrakucho_store::data_keys::OwnerKind::Patient)
}

/// Values of format 1 stored, and values stored, over every encrypted column.
async fn formats(su: &mut PgConnection) -> (i64, i64) {
    let (mut old, mut all) = (0, 0);
    for c in all_columns() {
        let (o, a): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE get_byte({col}, 0) = 1), count(*)
               FROM {table} WHERE {col} IS NOT NULL",
            col = c.column,
            table = c.table
        ))
        .fetch_one(&mut *su)
        .await
        .unwrap();
        old += o;
        all += a;
    }
    (old, all)
}

/// Rewrites every stored value in format 1, as the earlier release wrote it (bound to the row
/// it is stored in, no version). Returns the format-1 values by (table, column, row).
async fn write_as_earlier_release(
    c: &Clinic,
    su: &mut PgConnection,
) -> Vec<((&'static str, &'static str, Uuid), Vec<u8>)> {
    let mut written = Vec::new();
    for col in all_columns() {
        let rows: Vec<(Uuid, Uuid, i64, Uuid, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT {id}, {bound}, {version}, {owner}, {col} FROM {table}
              WHERE {col} IS NOT NULL",
            id = col.id_column,
            bound = col.bound_row_column,
            version = col
                .version_column
                .map_or("0::bigint".to_string(), |v| format!("{v}::bigint")),
            owner = col.owner_column,
            col = col.column,
            table = col.table,
        ))
        .fetch_all(&mut *su)
        .await
        .unwrap();
        let mut tx = c.app.db.begin(Scope::KeyMaintenance).await.unwrap();
        for (id, bound, version, owner, value) in rows {
            let now = Binding {
                owner: KeyOwner::Patient(PatientId::from_uuid(owner)),
                table: col.table,
                column: col.column,
                row: bound,
                version: version as u64,
            };
            let plaintext = c.keyring.decrypt(&mut tx, &now, &value).await.unwrap();
            let earlier = c
                .keyring
                .encrypt_legacy(&mut tx, &Binding { row: id, ..now }, &plaintext)
                .await
                .unwrap();
            let put = format!(
                "UPDATE {} SET {} = $2 WHERE {} = $1",
                col.table, col.column, col.id_column
            );
            set(su, &put, id, &earlier).await;
            written.push(((col.table, col.column, id), earlier));
        }
        tx.commit().await.unwrap();
    }
    written
}

/// Reads every value of the clinic's patients through the application.
async fn read_everything(c: &Clinic, keyring: &Keyring, patients: &[(PatientId, Vec<Uuid>)]) {
    for (p, entries) in patients {
        c.patient(keyring, *p).await.expect("the patient reads");
        let consents = renrakucho_registry::consents_of(
            &c.app.db,
            keyring,
            &renrakucho_testkit::acting::allowed(c.actor(), *p),
            &Origin::default(),
        )
        .await
        .expect("the consent reads");
        assert_eq!(consents.len(), 1);
        for e in entries {
            let detail = c.entry(keyring, *p, *e).await.expect("the entry reads");
            assert!(!detail.versions.is_empty());
        }
    }
}

async fn legacy_readable(su: &mut PgConnection) -> (bool, Uuid) {
    sqlx::query_as("SELECT legacy_readable, done_through FROM private.value_binding")
        .fetch_one(&mut *su)
        .await
        .unwrap()
}

#[tokio::test]
async fn bind_versions_rebinds_every_value_resumes_and_then_refuses_format_1() {
    let c = Clinic::new("VER-B").await;
    let mut su = tamperer(&c.app).await;
    // A new database refuses format 1 from the start.
    assert!(!legacy_readable(&mut su).await.0);

    // Three patients, each with a consent, an entry edited once and a withdrawn one.
    let mut patients = Vec::new();
    for (i, (name, kana)) in [
        ("移行 一子", "イコウ イチコ"),
        ("移行 二子", "イコウ ニコ"),
        ("移行 三子", "イコウ ミツコ"),
    ]
    .into_iter()
    .enumerate()
    {
        let p = c.register(name, kana).await;
        renrakucho_registry::record_consent(
            &c.app.db,
            &c.keyring,
            &c.app.files,
            &renrakucho_testkit::acting::allowed(c.actor(), p),
            &Origin::default(),
            ConsentForm {
                signer: Signer::Patient,
                signed_on: time::macros::date!(2026 - 11 - 01),
                scope: ConsentScope::standard(),
            },
            None,
        )
        .await
        .unwrap();
        let kept = c.post(p, &format!("経過 その一 ({i})"), 36.6).await;
        c.edit(p, kept, 1, &format!("経過 その二 ({i})"), 36.9)
            .await;
        let withdrawn = c.post(p, "誤って記載", 36.4).await;
        renrakucho_notebook::withdraw_entry(
            &c.app.db,
            &c.keyring,
            &c.author().on(p),
            &Origin::default(),
            withdrawn,
            Reason::parse("記載誤りのため").unwrap(),
        )
        .await
        .unwrap();
        patients.push((p, vec![kept, withdrawn]));
    }
    // In the order the command goes: by patient ID.
    patients.sort_by_key(|(p, _)| p.as_uuid());

    // The database as the earlier release left it: format 1 still read, every value in it.
    sqlx::query("UPDATE private.value_binding SET legacy_readable = true, completed_at = NULL")
        .execute(&mut su)
        .await
        .unwrap();
    let earlier = write_as_earlier_release(&c, &mut su).await;
    // 3 × (name, reading, profile; the consent; 2 bodies, 2 vitals and a reason in the entries;
    // 3 bodies and 3 vitals in their history; the card number) = 3 × 16.
    let stored = formats(&mut su).await;
    assert_eq!(stored, (3 * 16, 3 * 16), "every value in format 1");
    read_everything(&c, &c.keyring, &patients).await;

    // The weakness format 2 removes: the pre-edit body, as the earlier release wrote it, put
    // back into the entry, reads as the current one.
    let (p0, entries0) = &patients[0];
    let entry = entries0[0];
    let binding = Binding {
        owner: KeyOwner::Patient(*p0),
        table: "entries",
        column: "body_enc",
        row: entry,
        version: 0,
    };
    let mut tx = c.app.db.begin(Scope::KeyMaintenance).await.unwrap();
    let pre_edit = c
        .keyring
        .encrypt_legacy(&mut tx, &binding, "経過 その一 (0)".as_bytes())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, current_body) = earlier
        .iter()
        .find(|((t, col, row), _)| (*t, *col, *row) == ("entries", "body_enc", entry))
        .unwrap()
        .clone();
    let put = "UPDATE entries SET body_enc = $2 WHERE id = $1";
    set(&mut su, put, entry, &pre_edit).await;
    let shown = c.entry(&c.keyring, *p0, entry).await.unwrap();
    assert!(shown.entry.body.starts_with("経過 その一"), "{shown:?}");
    set(&mut su, put, entry, &current_body).await;

    // Interrupted after its first batch (one patient).
    let (db, keyring) = (c.app.db.clone(), c.keyring.clone());
    let run = tokio::spawn(async move {
        keyring
            .bind_versions(&db, 1, false, |step| {
                if let BindProgress::Done(_) = step {
                    panic!("interrupted after the first batch");
                }
            })
            .await
    });
    assert!(run.await.expect_err("interrupted").is_panic());
    let (readable, through) = legacy_readable(&mut su).await;
    assert!(readable, "not complete: format 1 still read");
    assert_eq!(
        through,
        patients[0].0.as_uuid(),
        "the first patient was done"
    );
    let (old, all) = formats(&mut su).await;
    assert_eq!(
        (old, all),
        (2 * 16, 3 * 16),
        "the first patient's 16 values rebound"
    );
    // Half-way, everything reads (both formats).
    read_everything(&c, &c.keyring, &patients).await;

    // Resumed: it goes on after the first patient, with a progress bar that says so.
    let mut steps = Vec::new();
    let report = c
        .keyring
        .bind_versions(&c.app.db, 1, true, |step| steps.push(step))
        .await
        .unwrap();
    assert!(report.completed, "{report:?}");
    assert_eq!(
        (
            report.patients,
            report.values,
            report.rebound,
            report.remaining
        ),
        (2, 2 * 16, 2 * 16, 0),
        "{report:?}"
    );
    assert_eq!(
        steps,
        [
            BindProgress::Start { total: 3, done: 1 },
            BindProgress::Done(1),
            BindProgress::Done(1)
        ]
    );
    assert_eq!(
        formats(&mut su).await,
        (0, 3 * 16),
        "no value of format 1 left"
    );
    assert!(
        !legacy_readable(&mut su).await.0,
        "format 1 refused from now on"
    );

    // Every value reads, through this keyring and through another process's.
    read_everything(&c, &c.keyring, &patients).await;
    let other_process = c.app.keyring().await;
    read_everything(&c, &other_process, &patients).await;

    // A value of format 1 is refused now, whichever: the pre-edit body, or a copy of the
    // current name as the earlier release wrote it.
    set(&mut su, put, entry, &pre_edit).await;
    for keyring in [&c.keyring, &other_process] {
        refused(
            c.entry(keyring, *p0, entry).await,
            "entries",
            "body_enc",
            Problem::UnboundVersion,
        );
    }
    let (now, _) = patient_values(&mut su, *p0).await;
    let (_, old_name) = earlier
        .iter()
        .find(|((t, col, row), _)| (*t, *col, *row) == ("patients", "name_enc", p0.as_uuid()))
        .unwrap()
        .clone();
    set(
        &mut su,
        "UPDATE patients SET name_enc = $2 WHERE id = $1",
        p0.as_uuid(),
        &old_name,
    )
    .await;
    refused(
        c.patient(&other_process, *p0).await,
        "patients",
        "name_enc",
        Problem::UnboundVersion,
    );
    set(
        &mut su,
        "UPDATE patients SET name_enc = $2 WHERE id = $1",
        p0.as_uuid(),
        &now[0],
    )
    .await;
    // The command does not launder it either: the state is complete, it does nothing more.
    let again = c
        .keyring
        .bind_versions(&c.app.db, 10, false, |_| {})
        .await
        .unwrap();
    assert!(again.completed && again.patients == 0, "{again:?}");
    assert_eq!(
        formats(&mut su).await,
        (1, 3 * 16),
        "the planted value stays"
    );

    // And the state cannot be turned back (with the triggers on).
    let mut owner_su = superuser(&c.app).await;
    let back =
        sqlx::query("UPDATE private.value_binding SET legacy_readable = true, completed_at = NULL")
            .execute(&mut owner_su)
            .await
            .expect_err("format 1 stays refused");
    assert_eq!(
        back.as_database_error().map(|e| e.message().to_string()),
        Some("values of format 1 stay refused".into())
    );
}
