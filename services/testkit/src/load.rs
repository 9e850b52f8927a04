//! A load driver for the running server (issue 14): a network of facilities of the kinds 第5条
//! names, their staff signed in over HTTP, patients shared in care teams of two to six
//! facilities with consent, notebooks of ~1 KiB entries; then each operation of a working day
//! driven at a fixed concurrency for a fixed time, and the same work issued raw (as a superuser,
//! no row-level security, no decryption, no authorization, no audit) against the same database
//! at the same concurrency: the hardware's limit.
//!
//! The `load` bench of renrakucho-server runs it at size (docs/performance.md); the integration
//! suite runs it tiny, so that neither the driver nor what it drives can rot unnoticed.

use std::time::{Duration, Instant};

use renrakucho_core::{
    Category, EntryBody, FacilityKind, PatientId, Priority, Profession, StaffRole,
};
use renrakucho_notebook::{EntryContent, NewEntryInput};
use renrakucho_registry::{ConsentForm, ConsentScope, Signer, StaffActor};
use renrakucho_store::audit::Origin;
use renrakucho_store::staff::StaffAccount;
use serde_json::json;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::acting::{allowed, Writer};
use crate::{TestApp, FIXTURE_PASSWORD};

/// How big a network to build.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub facilities: usize,
    /// Staff signed in per facility (the first one is its administrator).
    pub staff_per_facility: usize,
    /// Patients each facility registers (and shares with one to five others).
    pub patients_per_facility: usize,
    pub entries_per_patient: usize,
}

/// A patient as the driver uses it.
#[derive(Debug, Clone)]
pub struct LoadPatient {
    pub id: PatientId,
    /// The reading searched for.
    pub kana: String,
    /// Its newest entries (at most 50): the page a member marks read.
    pub entries: Vec<Uuid>,
}

/// One signed-in staff member and the patients their facility cares for.
#[derive(Debug, Clone)]
pub struct Member {
    pub client: reqwest::Client,
    pub staff: StaffActor,
    pub patients: Vec<usize>,
}

/// The network built by [`build`].
#[derive(Debug, Clone)]
pub struct Network {
    pub members: Vec<Member>,
    pub patients: Vec<LoadPatient>,
    /// How long building it took.
    pub built_in: Duration,
}

const KINDS: [(FacilityKind, Profession); 5] = [
    (FacilityKind::Clinic, Profession::Doctor),
    (FacilityKind::Pharmacy, Profession::Pharmacist),
    (FacilityKind::VisitingNurseStation, Profession::Nurse),
    (FacilityKind::CareManagementOffice, Profession::CareManager),
    (FacilityKind::Hospital, Profession::Doctor),
];
const FAMILY: [(&str, &str); 8] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("渡辺", "ワタナベ"),
    ("伊藤", "イトウ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
];
const GIVEN: [(&str, &str); 5] = [
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("幸子", "サチコ"),
    ("健太", "ケンタ"),
];

/// About 1 KiB of Japanese text (3 bytes a character), as a visit's note.
pub fn entry_text(n: usize) -> String {
    let line = format!("{n}回目の訪問。体温37.2度、血圧128/76。食事は半分ほど摂取。服薬確認済み。");
    line.repeat(1024 / line.len() + 1)
}

fn writer(account: &StaffAccount, profession: Profession) -> Writer {
    Writer {
        actor: StaffActor {
            staff: account.id,
            facility: account.facility_id,
        },
        name: account.display_name.clone(),
        profession,
        facility_admin: true,
    }
}

/// Builds a network of `shape` on `app`'s database through the care functions (as the server
/// would: encrypted, audited) and signs its staff in over HTTP.
pub async fn build(app: &TestApp, shape: Shape) -> Network {
    let started = Instant::now();
    let keyring = app.keyring().await;
    let origin = Origin::default();
    let mut facilities = Vec::with_capacity(shape.facilities);
    for i in 0..shape.facilities {
        let (kind, profession) = KINDS[i % KINDS.len()];
        let code = format!("LOAD-{i:05}");
        let facility = app.seed_facility(&code, kind).await;
        let mut staff = Vec::with_capacity(shape.staff_per_facility.max(1));
        for s in 0..shape.staff_per_facility.max(1) {
            let role = if s == 0 {
                StaffRole::FacilityAdmin
            } else {
                StaffRole::Staff
            };
            staff.push(
                app.seed_staff(&facility, &format!("staff{s:03}"), role, profession)
                    .await,
            );
        }
        facilities.push((facility, profession, staff));
    }
    let mut patients = Vec::new();
    // Which patients each facility cares for.
    let mut cared: Vec<Vec<usize>> = vec![Vec::new(); shape.facilities];
    for (i, (_, profession, staff)) in facilities.iter().enumerate() {
        let admin = &staff[0];
        let registering = writer(admin, *profession);
        for p in 0..shape.patients_per_facility {
            let n = i * shape.patients_per_facility + p;
            let (family, family_kana) = FAMILY[n % FAMILY.len()];
            let (given, given_kana) = GIVEN[(n / FAMILY.len()) % GIVEN.len()];
            let kana = format!("{family_kana} {given_kana}");
            let id = app
                .seed_patient(admin, &format!("{family} {given}"), &kana)
                .await
                .id;
            renrakucho_registry::record_consent(
                &app.db,
                &keyring,
                &app.files,
                &allowed(registering.actor, id),
                &origin,
                ConsentForm {
                    signer: Signer::Patient,
                    signed_on: time::OffsetDateTime::now_utc().date(),
                    scope: ConsentScope::standard(),
                },
                None,
            )
            .await
            .expect("recording consent");
            let index = patients.len();
            cared[i].push(index);
            // A care team of two to six facilities: the next ones round the network.
            let team = (1 + n % 5).min(shape.facilities.saturating_sub(1));
            let mut authors = vec![registering.clone()];
            for k in 1..=team {
                let j = (i + k) % shape.facilities;
                let (member, member_profession, member_staff) = &facilities[j];
                renrakucho_registry::invite(
                    &app.db,
                    &allowed(registering.actor, id),
                    &origin,
                    member.code.as_str(),
                )
                .await
                .expect("inviting a facility");
                let accepting = writer(&member_staff[0], *member_profession);
                renrakucho_registry::accept_invitation(
                    &app.db,
                    &allowed(accepting.actor, id),
                    &origin,
                )
                .await
                .expect("accepting an invitation");
                cared[j].push(index);
                authors.push(accepting);
            }
            let mut entries = Vec::with_capacity(shape.entries_per_patient);
            for e in 0..shape.entries_per_patient {
                let author = &authors[e % authors.len()];
                let view = renrakucho_notebook::post_entry(
                    &app.db,
                    &keyring,
                    &author.on(id),
                    &origin,
                    NewEntryInput {
                        content: EntryContent {
                            category: Category::Treatment,
                            priority: Priority::Info,
                            body: EntryBody::parse(&entry_text(e)).expect("a body"),
                            vitals: None,
                            mentions: vec![],
                        },
                        reply_to: None,
                        attachments: vec![],
                    },
                )
                .await
                .expect("posting an entry");
                entries.push(view.id);
            }
            entries.reverse();
            entries.truncate(50);
            patients.push(LoadPatient { id, kana, entries });
        }
    }
    let mut members = Vec::new();
    for (i, (facility, _, staff)) in facilities.iter().enumerate() {
        for account in staff {
            let client = browser_like_client();
            let response = app
                .sign_in_with(
                    &client,
                    Some(facility.code.as_str()),
                    &account.login_id,
                    FIXTURE_PASSWORD,
                )
                .await;
            assert_eq!(response.status(), 200, "signing in a load member");
            members.push(Member {
                client,
                staff: StaffActor {
                    staff: account.id,
                    facility: account.facility_id,
                },
                patients: cared[i].clone(),
            });
        }
    }
    // Fresh statistics, as a database in service has (autovacuum keeps them).
    let mut su = sqlx::PgConnection::connect_with(&app.database.superuser_options())
        .await
        .expect("a superuser connection");
    sqlx::query("ANALYZE")
        .execute(&mut su)
        .await
        .expect("ANALYZE");
    Network {
        members,
        patients,
        built_in: started.elapsed(),
    }
}

/// A client that keeps cookies and asks for gzip, as a browser does (the body is read as it
/// comes: the driver does not look into it).
fn browser_like_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT_ENCODING,
        reqwest::header::HeaderValue::from_static("gzip"),
    );
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .expect("an HTTP client")
}

/// What a working day does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// The home page's unread counts.
    Home,
    /// A page of 50 entries of a notebook.
    Notebook,
    /// Posting an entry of ~1 KiB.
    Post,
    /// Marking a page's entries read.
    MarkRead,
    /// Finding a patient by reading.
    Search,
    /// The patient list.
    PatientList,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Home,
        Operation::Notebook,
        Operation::Post,
        Operation::MarkRead,
        Operation::Search,
        Operation::PatientList,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Home => "home (unread counts)",
            Operation::Notebook => "notebook page of 50",
            Operation::Post => "post an entry",
            Operation::MarkRead => "mark a page read",
            Operation::Search => "search by kana",
            Operation::PatientList => "patient list",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub completed: u64,
    pub errors: u64,
    /// The first error, for the report.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Every completed request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Measured {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency below which `q` (0–1) of the requests completed.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[i]
    }

    fn merge(&mut self, other: Measured) {
        self.completed += other.completed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.extend(other.latencies);
    }
}

/// Runs `work` on `concurrency` workers for `duration`; worker `w`'s `n`-th call gets `(w, n)`.
async fn drive<F, Fut>(concurrency: usize, duration: Duration, work: F) -> Measured
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let work = work.clone();
            tokio::spawn(async move {
                let mut measured = Measured::default();
                let mut n = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match work(w, n).await {
                        Ok(()) => {
                            measured.completed += 1;
                            measured.latencies.push(t.elapsed());
                        }
                        Err(e) => {
                            measured.errors += 1;
                            measured.first_error.get_or_insert(e);
                        }
                    }
                    n += 1;
                }
                measured
            })
        })
        .collect();
    let mut total = Measured::default();
    for worker in workers {
        total.merge(worker.await.expect("a load worker"));
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}

/// Who worker `w` is at its `n`-th call, and which of their patients: spread over every member
/// and every patient they care for.
fn pick(network: &Network, concurrency: usize, w: usize, n: usize) -> (&Member, &LoadPatient) {
    let member = &network.members[(w + n * concurrency) % network.members.len()];
    let patient = &network.patients[member.patients[n % member.patients.len()]];
    (member, patient)
}

/// Drives `operation` through the server at `base` (its HTTP address).
pub async fn through_server(
    network: &Network,
    base: &str,
    operation: Operation,
    concurrency: usize,
    duration: Duration,
) -> Measured {
    let network = std::sync::Arc::new(network.clone());
    let base = std::sync::Arc::new(base.to_string());
    drive(concurrency, duration, move |w, n| {
        let network = network.clone();
        let base = base.clone();
        async move {
            let (member, patient) = pick(&network, concurrency, w, n);
            let id = patient.id.as_uuid();
            let request = match operation {
                Operation::Home => member.client.get(format!("{base}/api/v1/unread")),
                Operation::Notebook => member
                    .client
                    .get(format!("{base}/api/v1/patients/{id}/entries?limit=50")),
                Operation::Post => member
                    .client
                    .post(format!("{base}/api/v1/patients/{id}/entries"))
                    .json(&json!({
                        "category": "treatment", "priority": "info", "body": entry_text(n),
                    })),
                Operation::MarkRead => member
                    .client
                    .post(format!("{base}/api/v1/patients/{id}/entries/read"))
                    .json(&json!({ "entries": patient.entries })),
                Operation::Search => member
                    .client
                    .get(format!("{base}/api/v1/patients"))
                    .query(&[("q", patient.kana.as_str())]),
                Operation::PatientList => member.client.get(format!("{base}/api/v1/patients")),
            };
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            // The whole body, as a browser would read it.
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
            }
        }
    })
    .await
}

/// Drives the same work raw: the statements of the store for `operation`, as the superuser on
/// `raw` (no row-level security, no tenant transaction, no decryption, no audit record).
pub async fn raw(
    network: &Network,
    raw: &PgPool,
    operation: Operation,
    concurrency: usize,
    duration: Duration,
) -> Measured {
    let network = std::sync::Arc::new(network.clone());
    let pool = raw.clone();
    let body = std::sync::Arc::new(vec![0x5au8; 1100]);
    drive(concurrency, duration, move |w, n| {
        let network = network.clone();
        let pool = pool.clone();
        let body = body.clone();
        async move {
            let (member, patient) = pick(&network, concurrency, w, n);
            let id = patient.id.as_uuid();
            let staff = member.staff.staff.as_uuid();
            let facility = member.staff.facility.as_uuid();
            let result = match operation {
                Operation::Home => sqlx::query(
                    "SELECT e.patient_id, count(*) FILTER (WHERE e.priority = 'urgent'),
                            count(*) FILTER (WHERE e.priority = 'reply_requested'), count(*),
                            max(e.created_at)
                       FROM entries e
                      WHERE e.withdrawn_at IS NULL AND e.author_id <> $1
                        AND e.patient_id IN (SELECT a.patient_id FROM patient_access a
                                              WHERE a.facility_id = $2 AND a.relation = 'sharing')
                        AND NOT EXISTS (SELECT FROM entry_reads r
                                         WHERE r.entry_id = e.id AND r.staff_id = $1)
                      GROUP BY e.patient_id",
                )
                .bind(staff)
                .bind(facility)
                .fetch_all(&pool)
                .await
                .map(drop),
                Operation::Notebook => sqlx::query(
                    "SELECT id, body_enc FROM entries
                      WHERE withdrawn_at IS NULL AND patient_id = $1
                      ORDER BY created_at DESC, id DESC LIMIT 50",
                )
                .bind(id)
                .fetch_all(&pool)
                .await
                .map(drop),
                Operation::Post => sqlx::query(
                    "INSERT INTO entries (id, patient_id, facility_id, author_id, author_name,
                                          author_profession, category, priority, body_enc)
                     VALUES ($1, $2, $3, $4, '負荷 試験', 'nurse', 'treatment', 'info', $5)",
                )
                .bind(Uuid::now_v7())
                .bind(id)
                .bind(facility)
                .bind(staff)
                .bind(body.as_slice())
                .execute(&pool)
                .await
                .map(drop),
                Operation::MarkRead => sqlx::query(
                    "INSERT INTO entry_reads (entry_id, patient_id, staff_id, facility_id,
                                              reader_name, reader_profession)
                     SELECT unnest($1::uuid[]), $2, $3, $4, '負荷 試験', 'nurse'
                     ON CONFLICT (entry_id, staff_id) DO NOTHING",
                )
                .bind(&patient.entries)
                .bind(id)
                .bind(staff)
                .bind(facility)
                .execute(&pool)
                .await
                .map(drop),
                Operation::Search => sqlx::query(
                    "SELECT id, facility_id, name_enc, kana_enc, profile_enc FROM patients p
                      WHERE EXISTS (SELECT FROM patient_name_terms t
                                     WHERE t.patient_id = p.id
                                       AND t.term = (SELECT t2.term FROM patient_name_terms t2
                                                      WHERE t2.patient_id = $1 LIMIT 1))
                        AND p.id IN (SELECT a.patient_id FROM patient_access a
                                      WHERE a.facility_id = $2)
                      ORDER BY p.created_at DESC LIMIT 50",
                )
                .bind(id)
                .bind(facility)
                .fetch_all(&pool)
                .await
                .map(drop),
                Operation::PatientList => sqlx::query(
                    "SELECT id, facility_id, name_enc, kana_enc, profile_enc FROM patients p
                      WHERE p.id IN (SELECT a.patient_id FROM patient_access a
                                      WHERE a.facility_id = $1)
                      ORDER BY p.created_at DESC LIMIT 50",
                )
                .bind(facility)
                .fetch_all(&pool)
                .await
                .map(drop),
            };
            result.map_err(|e| e.to_string())
        }
    })
    .await
}
