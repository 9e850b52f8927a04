//! A load driver for the running server (issue 14): the city of `renrakucho demo --scale`
//! (facilities of the kinds 第5条 names, patients shared in care teams of two to six facilities
//! with consent, notebooks of ~1 KiB entries), some of its staff signed in over HTTP; then each
//! operation of a working day driven at a fixed concurrency for a fixed time, and the same work
//! issued raw (as a superuser, no row-level security, no decryption, no authorization, no audit)
//! against the same database at the same concurrency: the hardware's limit.
//!
//! The `load` bench of renrakucho-server runs it at size (docs/performance.md); the integration
//! suite runs it at `--scale 0.001`, so that neither the generator, the driver nor what it
//! drives can rot unnoticed.

use std::time::{Duration, Instant};

use renrakucho_core::PatientId;
use renrakucho_registry::StaffActor;
use renrakucho_server::city::{self, City};
pub use renrakucho_server::city::{entry_text, CityShape as Shape};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::TestApp;

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
    /// What the generator made, and how long it took.
    pub city: std::sync::Arc<City>,
    /// How long building it took, signing in included.
    pub built_in: Duration,
}

/// Builds the city of `shape` on `app`'s database with the generator of `renrakucho demo
/// --scale` ([`renrakucho_server::city`]) and signs in at most `members` of its staff over
/// HTTP, spread over the facilities.
pub async fn build(app: &TestApp, shape: Shape, members: usize) -> Network {
    let started = Instant::now();
    let generated = city::generate(
        &app.db,
        &app.database.superuser_options(),
        &app.server_hasher,
        &app.keyring().await,
        &app.files,
        shape,
        2,
        &|_| {},
    )
    .await
    .expect("generating the city");
    let patients = generated
        .patients
        .iter()
        .map(|p| LoadPatient {
            id: p.id,
            kana: p.kana.clone(),
            entries: p.newest_entries.clone(),
        })
        .collect();
    // Round the facilities: the first staff member of each, then the second, …
    let mut chosen = Vec::new();
    'rounds: for s in 0..shape.staff_per_facility {
        for facility in &generated.facilities {
            if chosen.len() == members {
                break 'rounds;
            }
            chosen.push((facility, &facility.staff[s]));
        }
    }
    let mut signed_in = Vec::with_capacity(chosen.len());
    for (facility, account) in chosen {
        app.enrol_second_factor(&facility.code, facility.id, account.id, &account.login_id)
            .await;
        let client = browser_like_client();
        let response = app
            .sign_in_with(
                &client,
                Some(facility.code.as_str()),
                &account.login_id,
                renrakucho_server::demo::DEMO_PASSWORD,
            )
            .await;
        assert_eq!(response.status(), 200, "signing in a load member");
        signed_in.push(Member {
            client,
            staff: StaffActor {
                staff: account.id,
                facility: facility.id,
            },
            patients: facility.patients.clone(),
        });
    }
    Network {
        members: signed_in,
        patients,
        city: std::sync::Arc::new(generated),
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
    /// The action the server's audit record of this operation names (the unread counts name
    /// no patient's data and are not recorded).
    fn action(self) -> Option<&'static str> {
        match self {
            Operation::Home => None,
            Operation::Notebook => Some("notebook.read"),
            Operation::Post => Some("entry.post"),
            Operation::MarkRead => Some("entry.mark_read"),
            Operation::Search | Operation::PatientList => Some("patient.search"),
        }
    }

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

/// Drives `GET /healthz` (no database, no session work) through the server at `base` with the
/// members' clients: what HTTP alone costs on this machine, driver included, for comparison
/// with each operation.
pub async fn http_alone(
    network: &Network,
    base: &str,
    concurrency: usize,
    duration: Duration,
) -> Measured {
    let network = std::sync::Arc::new(network.clone());
    let url = std::sync::Arc::new(format!("{base}/healthz"));
    drive(concurrency, duration, move |w, n| {
        let network = network.clone();
        let url = url.clone();
        async move {
            let (member, _) = pick(&network, concurrency, w, n);
            let response = member
                .client
                .get(url.as_str())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            response.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(status.to_string())
            }
        }
    })
    .await
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

/// How the raw side runs each operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw {
    /// The statement alone, committed by itself: the hardware's limit for the work.
    Bare,
    /// The statement and one audit record (linked into the facility's chain by the database's
    /// trigger, as the server's are) in one transaction, committed: the limit for the work
    /// with the record 第31条 asks of every read and write.
    Audited,
}

/// Drives the same work raw: the statements of the store for `operation`, as the superuser on
/// `raw` (no row-level security, no tenant transaction, no decryption, no authorization; an
/// audit record only when `mode` is [`Raw::Audited`]).
pub async fn raw(
    network: &Network,
    raw: &PgPool,
    operation: Operation,
    concurrency: usize,
    duration: Duration,
    mode: Raw,
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
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            if mode == Raw::Audited {
                sqlx::query("BEGIN")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let outcome: Result<(), String> = async {
                let result = match operation {
                    Operation::Home => sqlx::query(
                        "SELECT e.patient_id, count(*) FILTER (WHERE e.priority = 'urgent'),
                                count(*) FILTER (WHERE e.priority = 'reply_requested'), count(*),
                                max(e.created_at)
                           FROM entries e
                          WHERE e.withdrawn_at IS NULL AND e.author_id <> $1
                            AND e.created_at >= now() - make_interval(days => $3)
                            AND e.patient_id IN (SELECT a.patient_id FROM patient_access a
                                                  WHERE a.facility_id = $2 AND a.relation = 'sharing')
                            AND NOT EXISTS (SELECT FROM entry_reads r
                                             WHERE r.entry_id = e.id AND r.staff_id = $1)
                          GROUP BY e.patient_id",
                    )
                    .bind(staff)
                    .bind(facility)
                    .bind(renrakucho_notebook::UNREAD_WINDOW.whole_days() as i32)
                    .fetch_all(&mut *conn)
                    .await
                    .map(drop),
                    Operation::Notebook => sqlx::query(
                        "SELECT id, body_enc FROM entries
                          WHERE withdrawn_at IS NULL AND patient_id = $1
                          ORDER BY created_at DESC, id DESC LIMIT 50",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
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
                    .execute(&mut *conn)
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
                    .execute(&mut *conn)
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
                    .fetch_all(&mut *conn)
                    .await
                    .map(drop),
                    Operation::PatientList => sqlx::query(
                        "SELECT id, facility_id, name_enc, kana_enc, profile_enc FROM patients p
                          WHERE p.id IN (SELECT a.patient_id FROM patient_access a
                                          WHERE a.facility_id = $1)
                          ORDER BY p.created_at DESC LIMIT 50",
                    )
                    .bind(facility)
                    .fetch_all(&mut *conn)
                    .await
                    .map(drop),
                };
                result.map_err(|e| e.to_string())?;
                if let (Raw::Audited, Some(action)) = (mode, operation.action()) {
                    sqlx::query(
                        "INSERT INTO audit_log (facility_id, seq, actor_kind, actor_id, action,
                                                outcome, target_kind, target_id, details,
                                                prev_hash, hash)
                         VALUES ($1, 0, 'staff', $2, $3, 'success', 'patient', $4,
                                 '{\"raw\": true}', ''::bytea, ''::bytea)",
                    )
                    .bind(facility)
                    .bind(staff)
                    .bind(action)
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                }
                if mode == Raw::Audited {
                    sqlx::query("COMMIT")
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            .await;
            if outcome.is_err() && mode == Raw::Audited {
                // Back to the pool outside a transaction, whatever failed.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            }
            outcome
        }
    })
    .await
}
