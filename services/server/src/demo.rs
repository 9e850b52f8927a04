//! Demo data: a small fictional network in Izumi ward, so a newcomer can sign in at once.
//! Every name here is invented: facilities, staff and patients.

use renrakucho_authz::{may, Asker, Authorized, Authorizer, Decision, Permission, Role};
use renrakucho_core::{
    Address, BirthDate, CareLevel, DisplayName, FacilityCode, FacilityKind, FacilityName, KanaName,
    LoginId, Password, PatientName, PatientProfile, Phone, PrimaryDoctor, Profession, Sex,
    StaffRole,
};
use renrakucho_files::FileStore;
use renrakucho_identity::PasswordHasher;
use renrakucho_keyring::Keyring;
use renrakucho_registry::{
    accept_invitation, invite, record_consent, register_patient, CareError, ConsentForm,
    ConsentScope, NewPatient, Signer,
};
use renrakucho_store::audit::Origin;
use renrakucho_store::{facilities, Database, Scope, StoreError};

use crate::admin_commands::{self, StaffToIssue};

/// Every demo account's password. Demo data only: never seed it into a real network.
pub const DEMO_PASSWORD: &str = "renrakucho-demo";

/// The account the README and `serve --demo` point newcomers to.
pub const DEMO_SIGN_IN: (&str, &str) = ("IZ-CLINIC", "sato");

struct DemoFacility {
    code: &'static str,
    name: &'static str,
    kind: FacilityKind,
    staff: &'static [(&'static str, &'static str, StaffRole, Profession)],
}

const NETWORK: &[DemoFacility] = &[
    DemoFacility {
        code: "IZ-CLINIC",
        name: "泉中央在宅クリニック",
        kind: FacilityKind::Clinic,
        staff: &[
            (
                "sato",
                "佐藤 健一",
                StaffRole::FacilityAdmin,
                Profession::Doctor,
            ),
            ("suzuki", "鈴木 美咲", StaffRole::Staff, Profession::Nurse),
            ("ito", "伊藤 直子", StaffRole::Staff, Profession::Clerk),
        ],
    },
    DemoFacility {
        code: "IZ-PHARMACY",
        name: "七北田ひかり薬局",
        kind: FacilityKind::Pharmacy,
        staff: &[
            (
                "takahashi",
                "高橋 誠",
                StaffRole::FacilityAdmin,
                Profession::Pharmacist,
            ),
            (
                "watanabe",
                "渡辺 玲奈",
                StaffRole::Staff,
                Profession::Pharmacist,
            ),
        ],
    },
    DemoFacility {
        code: "IZ-NURSE",
        name: "将監訪問看護ステーション",
        kind: FacilityKind::VisitingNurseStation,
        staff: &[
            (
                "tanaka",
                "田中 由美",
                StaffRole::FacilityAdmin,
                Profession::Nurse,
            ),
            (
                "kobayashi",
                "小林 翔太",
                StaffRole::Staff,
                Profession::Therapist,
            ),
        ],
    },
    DemoFacility {
        code: "IZ-CARE",
        name: "寺岡ケアプランセンター",
        kind: FacilityKind::CareManagementOffice,
        staff: &[
            (
                "yamamoto",
                "山本 恵子",
                StaffRole::FacilityAdmin,
                Profession::CareManager,
            ),
            (
                "nakamura",
                "中村 大輔",
                StaffRole::Staff,
                Profession::CareWorker,
            ),
        ],
    },
];

/// The demo operator's login ID.
pub const DEMO_OPERATOR: &str = "operator";

/// Patients registered by the clinic (name, reading, date of birth, sex, care level, address,
/// phone). Invented people at invented addresses; the phone numbers are in the range kept
/// for fiction (090-0000-xxxx is not assigned).
const PATIENTS: &[(&str, &str, &str, Sex, CareLevel, &str, &str)] = &[
    (
        "阿部 ハル",
        "アベ ハル",
        "1936-05-12",
        Sex::Female,
        CareLevel::Care3,
        "仙台市泉区泉中央9丁目1-1",
        "090-0000-0101",
    ),
    (
        "石川 正雄",
        "イシカワ マサオ",
        "1941-11-03",
        Sex::Male,
        CareLevel::Care2,
        "仙台市泉区将監9丁目2-2",
        "090-0000-0102",
    ),
    (
        "上田 千代",
        "ウエダ チヨ",
        "1929-02-20",
        Sex::Female,
        CareLevel::Care5,
        "仙台市泉区七北田9丁目3-3",
        "090-0000-0103",
    ),
    (
        "遠藤 勇",
        "エンドウ イサム",
        "1950-08-30",
        Sex::Male,
        CareLevel::Support2,
        "仙台市泉区寺岡9丁目4-4",
        "090-0000-0104",
    ),
];

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Care(#[from] CareError),
    #[error("demo data is invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Authz(#[from] renrakucho_authz::AuthzError),
    #[error("the demo's {0} is not allowed by the policies")]
    Refused(&'static str),
    #[error("loading the demo's access: {0}")]
    Access(String),
}

/// A facility's first account, acting in the demo through the same authorizer as the server:
/// the seed holds no capability the policies would not give that person.
pub(crate) struct DemoActor {
    staff: renrakucho_core::StaffId,
    facility: renrakucho_core::FacilityId,
    roles: Vec<Role>,
}

impl DemoActor {
    pub(crate) fn new(
        staff: renrakucho_core::StaffId,
        facility: renrakucho_core::FacilityId,
        role: StaffRole,
        profession: Profession,
    ) -> Self {
        let mut roles = vec![Role::Profession(profession)];
        if role == StaffRole::FacilityAdmin {
            roles.push(Role::FacilityAdmin);
        }
        Self {
            staff,
            facility,
            roles,
        }
    }

    pub(crate) fn asker(&self) -> Asker<'_> {
        Asker {
            staff: self.staff,
            facility: self.facility,
            roles: &self.roles,
        }
    }

    /// The capability for `P` on `patient`, after reloading the patient's relations from the
    /// database (the demo changes them as it goes).
    pub(crate) async fn authorized<P: Permission>(
        &self,
        db: &Database,
        authz: &Authorizer,
        patient: renrakucho_core::PatientId,
    ) -> Result<Authorized<P>, DemoError> {
        renrakucho_http::access::refresh(db, authz, patient)
            .await
            .map_err(|e| DemoError::Access(e.to_string()))?;
        match authz.authorize::<P>(&self.asker(), patient).await? {
            Decision::Allowed(allowed) => Ok(allowed),
            Decision::Refused(action) => Err(DemoError::Refused(action.as_str())),
        }
    }
}

/// Seeds the demo network unless it is there already. Returns true when it seeded now.
pub async fn seed(
    db: &Database,
    hasher: &PasswordHasher,
    keyring: &Keyring,
    files: &FileStore,
) -> Result<bool, DemoError> {
    let parse = |e: renrakucho_core::InvalidValue| DemoError::Invalid(e.message);
    let first = FacilityCode::parse(NETWORK[0].code).map_err(parse)?;
    let mut tx = db.begin(Scope::Platform).await?;
    let present = facilities::find_by_code(&mut tx, &first).await?.is_some();
    tx.commit().await?;
    if present {
        return Ok(false);
    }
    let password = Password::new_secret(DEMO_PASSWORD.into()).map_err(parse)?;
    let authz = Authorizer::new().await?;
    admin_commands::create_operator(
        db,
        hasher,
        &LoginId::parse(DEMO_OPERATOR).map_err(parse)?,
        &DisplayName::parse("運用 太郎").map_err(parse)?,
        &password,
        false,
    )
    .await?;
    // Each facility's administrator (the first account), to act in the care teams below.
    let mut admins = Vec::new();
    let mut registered = Vec::new();
    for place in NETWORK {
        let facility = admin_commands::create_facility(
            db,
            &FacilityCode::parse(place.code).map_err(parse)?,
            &FacilityName::parse(place.name).map_err(parse)?,
            place.kind,
        )
        .await?;
        let mut first_staff = None;
        let (_, _, first_role, first_profession) = place
            .staff
            .first()
            .ok_or_else(|| DemoError::Invalid("a facility without staff".into()))?;
        for (login, name, role, profession) in place.staff {
            let account = admin_commands::create_staff(
                db,
                hasher,
                &facility,
                StaffToIssue {
                    login_id: LoginId::parse(login).map_err(parse)?,
                    name: DisplayName::parse(name).map_err(parse)?,
                    role: *role,
                    profession: *profession,
                    password: &password,
                    password_must_change: false,
                },
            )
            .await?;
            first_staff.get_or_insert(account.id);
        }
        let first = DemoActor::new(
            first_staff.ok_or_else(|| DemoError::Invalid("a facility without staff".into()))?,
            facility.id,
            *first_role,
            *first_profession,
        );
        if place.code == DEMO_SIGN_IN.0 {
            let who = authz
                .permit::<may::PatientRegister>(&first.asker())
                .await
                .ok_or(DemoError::Refused("patient.register"))?;
            let today = time::OffsetDateTime::now_utc().date();
            for (name, kana, born, sex, care_level, address, phone) in PATIENTS {
                let new = NewPatient {
                    name: PatientName::parse(name).map_err(parse)?,
                    kana: KanaName::parse(kana).map_err(parse)?,
                    profile: PatientProfile {
                        birth_date: BirthDate::parse(born, today).map_err(parse)?,
                        sex: *sex,
                        care_level: *care_level,
                        address: Some(Address::parse(address).map_err(parse)?),
                        phone: Some(Phone::parse(phone).map_err(parse)?),
                        primary_doctor: Some(
                            PrimaryDoctor::parse("佐藤 健一（泉中央在宅クリニック）")
                                .map_err(parse)?,
                        ),
                    },
                };
                let patient = register_patient(db, keyring, &who, &Origin::default(), new).await?;
                registered.push(patient.id);
            }
        }
        admins.push(first);
    }
    care_teams(db, keyring, files, &authz, &admins, &registered).await?;
    Ok(true)
}

/// The clinic's first three patients have signed consent and a care team (the nurse station,
/// the pharmacy, the care office); the care office has not yet answered its invitation for the
/// second. The fourth has no consent: only the clinic sees them.
async fn care_teams(
    db: &Database,
    keyring: &Keyring,
    files: &FileStore,
    authz: &Authorizer,
    admins: &[DemoActor],
    patients: &[renrakucho_core::PatientId],
) -> Result<(), DemoError> {
    let origin = Origin::default();
    let code = |i: usize| NETWORK[i].code;
    let (clinic, pharmacy, nurse, care) = (&admins[0], &admins[1], &admins[2], &admins[3]);
    let signed_on = time::OffsetDateTime::now_utc().date() - time::Duration::days(30);
    for (n, patient) in patients.iter().take(3).enumerate() {
        let signer = if n == 2 {
            Signer::family("上田 和夫", "長男").map_err(|e| DemoError::Invalid(e.message))?
        } else {
            Signer::Patient
        };
        let form = ConsentForm {
            signer,
            signed_on,
            scope: ConsentScope::standard(),
        };
        let recording = clinic.authorized(db, authz, *patient).await?;
        record_consent(db, keyring, files, &recording, &origin, form, None).await?;
        for (member, index) in [(nurse, 2), (pharmacy, 1), (care, 3)] {
            let inviting = clinic.authorized(db, authz, *patient).await?;
            invite(db, &inviting, &origin, code(index)).await?;
            if !(n == 1 && index == 3) {
                let accepting = member.authorized(db, authz, *patient).await?;
                accept_invitation(db, &accepting, &origin).await?;
            }
        }
    }
    Ok(())
}
