//! Demo data: a small fictional network in Izumi ward, so a newcomer can sign in at once.
//! Every name here is invented. Patients arrive with the patient and consent issue.

use renrakucho_core::{
    DisplayName, FacilityCode, FacilityKind, FacilityName, LoginId, Password, Profession, StaffRole,
};
use renrakucho_identity::PasswordHasher;
use renrakucho_store::{facilities, Database, Scope, StoreError};

use crate::admin::{self, StaffToIssue};

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

/// Seeds the demo network unless it is there already. Returns true when it seeded now.
pub async fn seed(db: &Database, hasher: &PasswordHasher) -> Result<bool, StoreError> {
    let parse = |e: renrakucho_core::InvalidValue| StoreError::Misconfigured(e.message);
    let first = FacilityCode::parse(NETWORK[0].code).map_err(parse)?;
    let mut tx = db.begin(Scope::Platform).await?;
    let present = facilities::find_by_code(&mut tx, &first).await?.is_some();
    tx.commit().await?;
    if present {
        return Ok(false);
    }
    let password = Password::new_secret(DEMO_PASSWORD.into()).map_err(parse)?;
    admin::create_operator(
        db,
        hasher,
        &LoginId::parse(DEMO_OPERATOR).map_err(parse)?,
        &DisplayName::parse("運用 太郎").map_err(parse)?,
        &password,
    )
    .await?;
    for place in NETWORK {
        let facility = admin::create_facility(
            db,
            &FacilityCode::parse(place.code).map_err(parse)?,
            &FacilityName::parse(place.name).map_err(parse)?,
            place.kind,
        )
        .await?;
        for (login, name, role, profession) in place.staff {
            admin::create_staff(
                db,
                hasher,
                &facility,
                StaffToIssue {
                    login_id: LoginId::parse(login).map_err(parse)?,
                    name: DisplayName::parse(name).map_err(parse)?,
                    role: *role,
                    profession: *profession,
                    password: &password,
                },
            )
            .await?;
        }
    }
    Ok(true)
}
