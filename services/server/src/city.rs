//! A city's network for measuring the server at scale (issue 14): `renrakucho demo --scale N`.
//!
//! At N = 1: 1,000 facilities of the 第5条 kinds, 10,000 staff, 50,000 patients with consent in
//! care teams of two to six facilities, 5,000,000 notebook entries of ~1 KiB, read receipts for
//! all but each notebook's newest five, and an audit record for every entry posted and every
//! batch of receipts. Every name is invented.
//!
//! Two phases, each as fast as it can be while every row is what the server itself would write:
//! - The network (facilities, staff, patients, consents, care teams) goes through the same
//!   functions as the server, asked of the same authorizer, so keys, search terms, cards,
//!   access and audit records are the server's own; only the password is hashed once for all.
//! - The notebooks go in with `COPY` (`renrakucho_store::bulk`): each body sealed by the
//!   patient's data key exactly as posting seals it (`renrakucho_notebook::seal_first_version`),
//!   read receipts beside them; then the audit records, linked into each facility's hash chain
//!   by the database as it links the server's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use renrakucho_authz::{may, Authorizer};
use renrakucho_core::{
    BirthDate, CareLevel, Category, DisplayName, EntryBody, FacilityCode, FacilityId, FacilityKind,
    FacilityName, KanaName, LoginId, Password, PatientId, PatientName, PatientProfile, Phone,
    Priority, Profession, Sex, StaffId, StaffRole,
};
use renrakucho_files::FileStore;
use renrakucho_identity::PasswordHasher;
use renrakucho_keyring::{KeyOwner, Keyring};
use renrakucho_registry::{
    accept_invitation, invite, record_consent, register_patient, ConsentForm, ConsentScope,
    NewPatient, Signer,
};
use renrakucho_store::audit::Origin;
use renrakucho_store::bulk::{BulkEntry, BulkLoader, BulkRead};
use renrakucho_store::staff::NewStaff;
use renrakucho_store::{facilities, Database, PgConnectOptions, Scope};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admin_commands;
use crate::demo::{DemoActor, DemoError, DEMO_PASSWORD};

/// How big a network to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CityShape {
    pub facilities: usize,
    /// The first is the facility's administrator.
    pub staff_per_facility: usize,
    /// Patients each facility registers (and shares with one to five others).
    pub patients_per_facility: usize,
    pub entries_per_patient: usize,
}

impl CityShape {
    /// The network at scale `n`: at 1, 1,000 facilities of 10 staff who register 50 patients
    /// each, 100 entries a notebook. At least five facilities (a care team needs others).
    pub fn at_scale(n: f64) -> Result<Self, String> {
        if !(n.is_finite() && n > 0.0 && n <= 10.0) {
            return Err(format!(
                "--scale {n}: give a number above 0 and at most 10 (1 is a city of 1,000 facilities)"
            ));
        }
        Ok(Self {
            facilities: ((1000.0 * n).round() as usize).max(5),
            staff_per_facility: 10,
            patients_per_facility: patients_per_facility(n),
            entries_per_patient: 100,
        })
    }

    pub fn patients(&self) -> usize {
        self.facilities * self.patients_per_facility
    }
}

fn patients_per_facility(n: f64) -> usize {
    let facilities = ((1000.0 * n).round()).max(5.0);
    ((50_000.0 * n) / facilities).round().max(1.0) as usize
}

/// Entries of each notebook left unread by the care team (the rest have a receipt).
pub const UNREAD_PER_NOTEBOOK: usize = 5;

/// The code of the city's `i`-th facility.
pub fn facility_code(i: usize) -> String {
    format!("CITY-{i:05}")
}

/// The login ID of a facility's `s`-th staff member (0 is the administrator).
pub fn staff_login(s: usize) -> String {
    format!("staff{s:03}")
}

/// A staff member of the city.
#[derive(Debug, Clone)]
pub struct CityStaff {
    pub id: StaffId,
    pub login_id: String,
    name: String,
    profession: Profession,
}

/// A facility of the city and the patients it cares for.
#[derive(Debug, Clone)]
pub struct CityFacility {
    pub id: FacilityId,
    pub code: String,
    pub staff: Vec<CityStaff>,
    /// Indices into [`City::patients`].
    pub patients: Vec<usize>,
}

/// A patient of the city.
#[derive(Debug, Clone)]
pub struct CityPatient {
    pub id: PatientId,
    /// The reading, to search by.
    pub kana: String,
    /// Its notebook's newest entries, newest first (at most 50).
    pub newest_entries: Vec<Uuid>,
}

/// What [`generate`] made and how long it took.
#[derive(Debug, Clone)]
pub struct City {
    pub facilities: Vec<CityFacility>,
    pub patients: Vec<CityPatient>,
    pub memberships: usize,
    pub entries: usize,
    pub receipts: usize,
    pub audit_records: u64,
    /// Facilities, staff, patients, consents and care teams.
    pub network_took: Duration,
    /// Entries, receipts and their audit records.
    pub notebooks_took: Duration,
    pub database_bytes: i64,
}

/// A kind of facility, its staff's profession, its name, and whether it registers patients.
const KINDS: [(FacilityKind, Profession, &str, bool); 6] = [
    (
        FacilityKind::Clinic,
        Profession::Doctor,
        "在宅クリニック",
        true,
    ),
    (
        FacilityKind::Pharmacy,
        Profession::Pharmacist,
        "薬局",
        false,
    ),
    (
        FacilityKind::VisitingNurseStation,
        Profession::Nurse,
        "訪問看護ステーション",
        true,
    ),
    (
        FacilityKind::CareManagementOffice,
        Profession::CareManager,
        "ケアプランセンター",
        true,
    ),
    (FacilityKind::Hospital, Profession::Doctor, "病院", true),
    (
        FacilityKind::HomeCareProvider,
        Profession::CareWorker,
        "訪問介護事業所",
        false,
    ),
];
const FAMILY: [(&str, &str); 16] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("渡辺", "ワタナベ"),
    ("伊藤", "イトウ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
];
const GIVEN: [(&str, &str); 12] = [
    ("太郎", "タロウ"),
    ("花子", "ハナコ"),
    ("一郎", "イチロウ"),
    ("幸子", "サチコ"),
    ("健太", "ケンタ"),
    ("和子", "カズコ"),
    ("清", "キヨシ"),
    ("節子", "セツコ"),
    ("茂", "シゲル"),
    ("久子", "ヒサコ"),
    ("勇", "イサム"),
    ("文子", "フミコ"),
];
const CATEGORIES: [Category; 6] = [
    Category::Treatment,
    Category::Instruction,
    Category::Support,
    Category::Medication,
    Category::Notice,
    Category::Other,
];

/// About 1 KiB of Japanese text (3 bytes a character), as a visit's note.
pub fn entry_text(n: usize) -> String {
    let line = format!("{n}回目の訪問。体温37.2度、血圧128/76。食事は半分ほど摂取。服薬確認済み。");
    line.repeat(1024 / line.len() + 1)
}

/// The `n`-th name of the city (kanji, reading).
fn person(n: usize) -> (String, String) {
    let (family, family_kana) = FAMILY[n % FAMILY.len()];
    let (given, given_kana) = GIVEN[(n / FAMILY.len()) % GIVEN.len()];
    (
        format!("{family} {given}"),
        format!("{family_kana} {given_kana}"),
    )
}

fn invalid(e: renrakucho_core::InvalidValue) -> DemoError {
    DemoError::Invalid(e.message)
}

/// Makes the city's network on `db` (which must not have it yet); `superuser` writes the
/// notebooks. `progress` hears what is being done, for a person watching.
#[allow(clippy::too_many_arguments)]
pub async fn generate(
    db: &Database,
    superuser: &PgConnectOptions,
    hasher: &PasswordHasher,
    keyring: &Keyring,
    files: &FileStore,
    shape: CityShape,
    workers: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<City, DemoError> {
    // Refused before anything is written: the loader's role, and a city already there.
    let mut loader = BulkLoader::connect(superuser).await?;
    let mut tx = db.begin(Scope::Platform).await?;
    let first = FacilityCode::parse(&facility_code(0)).map_err(invalid)?;
    let present = facilities::find_by_code(&mut tx, &first).await?.is_some();
    tx.commit().await?;
    if present {
        return Err(DemoError::Invalid(
            "the city network is already in this database: generate it into a fresh one".into(),
        ));
    }
    let started = Instant::now();
    let password = Password::new_secret(DEMO_PASSWORD.into()).map_err(invalid)?;
    let hash = hasher.hash(&password);
    let workers = workers.max(1);
    progress(&format!(
        "{} facilities with {} staff each",
        shape.facilities, shape.staff_per_facility
    ));
    let mut city = Vec::with_capacity(shape.facilities);
    for chunk in (0..shape.facilities).collect::<Vec<_>>().chunks(64) {
        let mut made = tokio::task::JoinSet::new();
        for &i in chunk {
            let (db, hash) = (db.clone(), hash.clone());
            made.spawn(async move { make_facility(&db, i, shape, &hash).await.map(|f| (i, f)) });
        }
        while let Some(done) = made.join_next().await {
            city.push(done.map_err(|e| DemoError::Invalid(e.to_string()))??);
        }
    }
    city.sort_by_key(|(i, _)| *i);
    let mut city: Vec<CityFacility> = city.into_iter().map(|(_, f)| f).collect();

    progress(&format!(
        "{} patients with consent and their care teams",
        shape.patients()
    ));
    let authz = Arc::new(Authorizer::new().await?);
    let shared = Arc::new(city.clone());
    let mut registering = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (db, keyring, files, authz, shared) = (
            db.clone(),
            keyring.clone(),
            files.clone(),
            authz.clone(),
            shared.clone(),
        );
        registering.spawn(async move {
            let mut made = Vec::new();
            for n in (w..shape.patients()).step_by(workers) {
                made.push((
                    n,
                    make_patient(&db, &keyring, &files, &authz, &shared, shape, n).await?,
                ));
            }
            Ok::<_, DemoError>(made)
        });
    }
    let mut teams = Vec::with_capacity(shape.patients());
    while let Some(done) = registering.join_next().await {
        teams.extend(done.map_err(|e| DemoError::Invalid(e.to_string()))??);
    }
    teams.sort_by_key(|(n, _)| *n);
    let mut patients = Vec::with_capacity(teams.len());
    let mut memberships = 0;
    for (n, (id, team)) in &teams {
        for &f in team {
            city[f].patients.push(*n);
        }
        memberships += team.len();
        patients.push(CityPatient {
            id: *id,
            kana: person(*n).1,
            newest_entries: Vec::new(),
        });
    }
    let network_took = started.elapsed();

    let started = Instant::now();
    progress(&format!(
        "{} notebook entries through COPY",
        shape.patients() * shape.entries_per_patient
    ));
    let city = Arc::new(city);
    let teams = Arc::new(teams);
    let mut writing = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (db, keyring, city, teams, superuser) = (
            db.clone(),
            keyring.clone(),
            city.clone(),
            teams.clone(),
            superuser.clone(),
        );
        writing.spawn(async move {
            let mut loader = BulkLoader::connect(&superuser).await?;
            let mut newest = Vec::new();
            let (mut entries, mut receipts) = (0, 0);
            let mine: Vec<usize> = (w..teams.len()).step_by(workers).collect();
            for batch in mine.chunks(40) {
                let mut rows = Vec::new();
                let mut reads = Vec::new();
                for &n in batch {
                    let (patient, team) = &teams[n].1;
                    let (made, read, ids) =
                        notebook(&db, &keyring, &city, *patient, team, shape).await?;
                    rows.extend(made);
                    reads.extend(read);
                    newest.push((n, ids));
                }
                entries += rows.len();
                receipts += reads.len();
                loader.entries(&rows).await?;
                loader.reads(&reads).await?;
            }
            loader.close().await?;
            Ok::<_, DemoError>((newest, entries, receipts))
        });
    }
    let (mut entries, mut receipts) = (0, 0);
    while let Some(done) = writing.join_next().await {
        let (newest, e, r) = done.map_err(|e| DemoError::Invalid(e.to_string()))??;
        for (n, ids) in newest {
            patients[n].newest_entries = ids;
        }
        entries += e;
        receipts += r;
    }
    // One writer for the audit records: each facility's chain is linked under its lock.
    progress("audit records of the entries and receipts");
    let ids: Vec<Uuid> = patients.iter().map(|p| p.id.as_uuid()).collect();
    let mut audit_records = 0;
    for batch in ids.chunks(500) {
        audit_records += loader.audit_notebooks(batch).await?;
    }
    progress("fresh planner statistics (ANALYZE)");
    loader.analyze().await?;
    let database_bytes = loader.database_size().await?;
    loader.close().await?;
    let city = Arc::try_unwrap(city).unwrap_or_else(|shared| (*shared).clone());
    Ok(City {
        facilities: city,
        patients,
        memberships,
        entries,
        receipts,
        audit_records,
        network_took,
        notebooks_took: started.elapsed(),
        database_bytes,
    })
}

/// The `i`-th facility and its staff.
async fn make_facility(
    db: &Database,
    i: usize,
    shape: CityShape,
    hash: &str,
) -> Result<CityFacility, DemoError> {
    let (kind, profession, label, _) = KINDS[i % KINDS.len()];
    let code = facility_code(i);
    let facility = admin_commands::create_facility(
        db,
        &FacilityCode::parse(&code).map_err(invalid)?,
        &FacilityName::parse(&format!("泉{i}番{label}")).map_err(invalid)?,
        kind,
    )
    .await?;
    let mut staff = Vec::with_capacity(shape.staff_per_facility);
    for s in 0..shape.staff_per_facility.max(1) {
        let name = person(i * 7 + s * 3).0;
        let account = admin_commands::create_staff_hashed(
            db,
            &facility,
            NewStaff {
                login_id: LoginId::parse(&staff_login(s)).map_err(invalid)?,
                display_name: DisplayName::parse(&name).map_err(invalid)?,
                role: if s == 0 {
                    StaffRole::FacilityAdmin
                } else {
                    StaffRole::Staff
                },
                profession,
                password_hash: hash.to_string(),
                password_must_change: false,
            },
        )
        .await?;
        staff.push(CityStaff {
            id: account.id,
            login_id: account.login_id.as_str().to_string(),
            name,
            profession,
        });
    }
    Ok(CityFacility {
        id: facility.id,
        code,
        staff,
        patients: Vec::new(),
    })
}

/// The `n`-th patient: registered, consented, shared with a care team of two to six facilities
/// (the registering one first). Returns the patient and the team's facility indices.
async fn make_patient(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    authz: &Authorizer,
    city: &[CityFacility],
    shape: CityShape,
    n: usize,
) -> Result<(PatientId, Vec<usize>), DemoError> {
    let origin = Origin::default();
    // Facilities whose staff may register patients (not pharmacies, not home-care providers,
    // as the policies say) take them in turn.
    let registering: Vec<usize> = (0..shape.facilities)
        .filter(|f| KINDS[f % KINDS.len()].3)
        .collect();
    let home = registering[n % registering.len()];
    let admin = |f: usize| {
        let (_, profession, _, _) = KINDS[f % KINDS.len()];
        DemoActor::new(
            city[f].staff[0].id,
            city[f].id,
            StaffRole::FacilityAdmin,
            profession,
        )
    };
    let registering = admin(home);
    let today = OffsetDateTime::now_utc().date();
    let (name, kana) = person(n);
    let born = format!("19{:02}-{:02}-{:02}", 25 + n % 30, 1 + n % 12, 1 + n % 28);
    let new = NewPatient {
        name: PatientName::parse(&name).map_err(invalid)?,
        kana: KanaName::parse(&kana).map_err(invalid)?,
        profile: PatientProfile {
            birth_date: BirthDate::parse(&born, today).map_err(invalid)?,
            sex: [Sex::Female, Sex::Male][n % 2],
            care_level: [CareLevel::Care1, CareLevel::Care2, CareLevel::Care3][n % 3],
            address: None,
            phone: Some(Phone::parse(&format!("090-0000-{:04}", n % 10_000)).map_err(invalid)?),
            primary_doctor: None,
        },
    };
    let permitted = authz
        .permit::<may::PatientRegister>(&registering.asker())
        .await
        .ok_or(DemoError::Refused("patient.register"))?;
    let patient = register_patient(db, keyring, &permitted, &origin, new)
        .await?
        .id;
    let form = ConsentForm {
        signer: Signer::Patient,
        signed_on: today - time::Duration::days(30 + (n % 300) as i64),
        scope: ConsentScope::standard(),
    };
    let recording = registering.authorized(db, authz, patient).await?;
    record_consent(db, keyring, files, &recording, &origin, form, None).await?;
    // Two to six facilities: the neighbours round the city, so the kinds mix.
    let others = (1 + n % 5).min(shape.facilities - 1);
    let team: Vec<usize> = std::iter::once(home)
        .chain((1..=others).map(|k| (home + k) % shape.facilities))
        .collect();
    let inviting = registering.authorized(db, authz, patient).await?;
    for &f in &team[1..] {
        invite(db, &inviting, &origin, &city[f].code).await?;
    }
    for &f in &team[1..] {
        let accepting = admin(f).authorized(db, authz, patient).await?;
        accept_invitation(db, &accepting, &origin).await?;
    }
    // The city's authorizer is only for making it: nothing of this patient stays in memory.
    authz.replace_patient(patient, &[]).await?;
    Ok((patient, team))
}

type Notebook = (Vec<BulkEntry>, Vec<BulkRead>, Vec<Uuid>);

/// A patient's notebook: entries over the last half year by the team's staff in turn, each but
/// the newest [`UNREAD_PER_NOTEBOOK`] read by someone of the next facility in the team.
async fn notebook(
    db: &Database,
    keyring: &Keyring,
    city: &[CityFacility],
    patient: PatientId,
    team: &[usize],
    shape: CityShape,
) -> Result<Notebook, DemoError> {
    let mut tx = db.begin(Scope::Facility(city[team[0]].id)).await?;
    let keys = keyring
        .owner_keys(&mut tx, KeyOwner::Patient(patient))
        .await
        .map_err(renrakucho_registry::CareError::from)?;
    tx.commit().await?;
    let count = shape.entries_per_patient;
    let now = OffsetDateTime::now_utc();
    let spacing = Duration::from_secs(180 * 24 * 3600) / count.max(1) as u32;
    let mut entries = Vec::with_capacity(count);
    let mut reads = Vec::with_capacity(count);
    for e in 0..count {
        let created_at = now - spacing * (count - e) as u32;
        let nanos = created_at.unix_timestamp_nanos();
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        ));
        let author_facility = &city[team[e % team.len()]];
        let author = &author_facility.staff[(e / team.len()) % author_facility.staff.len()];
        let body = EntryBody::parse(&entry_text(e)).map_err(invalid)?;
        let (body_enc, version_body_enc) =
            renrakucho_notebook::seal_first_version(&keys, patient, id, &body)?;
        let priority = match e % 50 {
            0 => Priority::Urgent,
            1..=2 => Priority::ReplyRequested,
            _ => Priority::Info,
        };
        entries.push(BulkEntry {
            id,
            version_id: Uuid::now_v7(),
            patient: patient.as_uuid(),
            facility: author_facility.id.as_uuid(),
            author: author.id.as_uuid(),
            author_name: author.name.clone(),
            author_profession: author.profession.as_str(),
            category: CATEGORIES[e % CATEGORIES.len()].as_str(),
            priority: priority.as_str(),
            body_enc,
            version_body_enc,
            created_at,
        });
        if e + UNREAD_PER_NOTEBOOK < count && team.len() > 1 {
            let reading = &city[team[(e + 1) % team.len()]];
            let reader = &reading.staff[e % reading.staff.len()];
            reads.push(BulkRead {
                entry: id,
                patient: patient.as_uuid(),
                staff: reader.id.as_uuid(),
                facility: reading.id.as_uuid(),
                reader_name: reader.name.clone(),
                reader_profession: reader.profession.as_str(),
                read_at: created_at + time::Duration::hours(1),
            });
        }
    }
    let newest = entries.iter().rev().take(50).map(|e| e.id).collect();
    Ok((entries, reads, newest))
}
