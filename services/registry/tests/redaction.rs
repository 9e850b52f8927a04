//! Every type of the registry that holds patient data (or a person's name or address) prints
//! redacted in `Debug`: each is built with distinctive content, formatted with `{:?}`,
//! and none of the content may show. IDs may.

use renrakucho_core::{
    Address, BirthDate, CardNumber, CareLevel, FacilityId, KanaName, PatientId, PatientName,
    PatientProfile, Phone, PrimaryDoctor, Sex, StaffId,
};
use renrakucho_registry::*;
use time::macros::{date, datetime};
use uuid::Uuid;

/// The content every value below is built from; none of it may be printed.
const SECRETS: &[&str] = &[
    "鳳凰堂",       // patient name
    "ホウオウドウ", // reading
    "蓬莱町",       // address
    "0558-77-1234", // phone
    "鶴亀 医師",    // primary doctor
    "1931-02-03",   // date of birth
    "ふらつきあり", // entry body
    "38.7",         // temperature
    "水晶体",       // a file's name
    "XYZ-SCAN",     // a file's bytes
    "玄武",         // a family signer
    "白虎",         // the consent's scope
    "朱雀",         // an emergency reason
    "CARD",         // a card number (its printed form)
    "青龍",         // a staff member's name
    "麒麟",         // a support request's question
    "鵺",           // its summary
    "獏",           // its answer
    "撤回理由",     // a withdrawal reason
    "someone@",     // an e-mail address
];

fn assert_redacted(what: &str, printed: String) {
    for secret in SECRETS {
        assert!(
            !printed.contains(secret),
            "{what} printed {secret:?} in Debug: {printed}"
        );
    }
}

fn patient_id() -> PatientId {
    PatientId::from_uuid(Uuid::now_v7())
}

fn profile() -> PatientProfile {
    PatientProfile {
        birth_date: BirthDate::parse("1931-02-03", date!(2026 - 12 - 01)).unwrap(),
        sex: Sex::Female,
        care_level: CareLevel::Care3,
        address: Some(Address::parse("静岡県伊豆市蓬莱町1-2-3").unwrap()),
        phone: Some(Phone::parse("0558-77-1234").unwrap()),
        primary_doctor: Some(PrimaryDoctor::parse("鶴亀 医師").unwrap()),
    }
}

fn signer() -> Signer {
    Signer::family("玄武 次郎", "長男").unwrap()
}

#[test]
fn every_type_holding_patient_data_prints_redacted() {
    let patient = patient_id();
    let card = CardNumber::from_random([7; renrakucho_core::card::CARD_RANDOM_BYTES]);
    let printed_card = card.printed();

    let cases: Vec<(&str, String)> = vec![
        ("Signer", format!("{:?}", signer())),
        (
            "ConsentScope",
            format!("{:?}", ConsentScope::parse("白虎の範囲で共有").unwrap()),
        ),
        (
            "ConsentForm",
            format!(
                "{:?}",
                ConsentForm {
                    signer: signer(),
                    signed_on: date!(2026 - 11 - 30),
                    scope: ConsentScope::parse("白虎の範囲で共有").unwrap(),
                }
            ),
        ),
        (
            "NewScan",
            format!(
                "{:?}",
                NewScan {
                    bytes: b"XYZ-SCAN".to_vec()
                }
            ),
        ),
        (
            "Consent",
            format!(
                "{:?}",
                Consent {
                    id: Uuid::now_v7(),
                    signer: signer(),
                    signed_on: date!(2026 - 11 - 30),
                    scope: ConsentScope::parse("白虎の範囲で共有").unwrap(),
                    collected_by: FacilityId::new(),
                    recorded_by: StaffId::new(),
                    recorded_at: datetime!(2026-12-01 09:00 UTC),
                    scan_media_type: Some("application/pdf".into()),
                    scan_size: Some(10),
                    withdrawn_at: None,
                    withdrawn_by_facility: None,
                    renewal: false,
                }
            ),
        ),
        (
            "EmergencyReason",
            format!(
                "{:?}",
                EmergencyReason::parse("朱雀: 意識障害で救急搬送された").unwrap()
            ),
        ),
        (
            "EmergencyRequest",
            format!(
                "{:?}",
                EmergencyRequest {
                    card: card.clone(),
                    birth_date: BirthDate::parse("1931-02-03", date!(2026 - 12 - 01)).unwrap(),
                    reason: EmergencyReason::parse("朱雀: 意識障害で救急搬送された").unwrap(),
                    duration: time::Duration::hours(1),
                }
            ),
        ),
        (
            "EmergencyGrant",
            format!(
                "{:?}",
                EmergencyGrant {
                    id: Uuid::now_v7(),
                    patient,
                    facility: FacilityId::new(),
                    facility_name: None,
                    opened_by: StaffId::new(),
                    reason: Some("朱雀: 意識障害で救急搬送された".into()),
                    reason_unreadable: false,
                    opened_at: datetime!(2026-12-01 09:00 UTC),
                    expires_at: datetime!(2026-12-01 10:00 UTC),
                    ended_at: None,
                    reviewed_at: None,
                    open: true,
                    ours: true,
                }
            ),
        ),
        (
            "PatientCard",
            format!(
                "{:?}",
                PatientCard {
                    patient,
                    number: format!("CARD {printed_card}"),
                    issued_at: datetime!(2026-12-01 09:00 UTC),
                    failures_within_hour: 0,
                    locked_until: None,
                    recent_failures: vec![],
                }
            ),
        ),
        (
            "NewPatient",
            format!(
                "{:?}",
                NewPatient {
                    name: PatientName::parse("鳳凰堂 花子").unwrap(),
                    kana: KanaName::parse("ホウオウドウ ハナコ").unwrap(),
                    profile: profile(),
                }
            ),
        ),
        (
            "Patient",
            format!(
                "{:?}",
                Patient {
                    id: patient,
                    registering_facility: FacilityId::new(),
                    name: PatientName::parse("鳳凰堂 花子").unwrap(),
                    kana: KanaName::parse("ホウオウドウ ハナコ").unwrap(),
                    profile: profile(),
                    registered_at: datetime!(2026-12-01 09:00 UTC),
                }
            ),
        ),
        (
            "PatientSummary",
            format!(
                "{:?}",
                PatientSummary {
                    id: patient,
                    name: PatientName::parse("鳳凰堂 花子").unwrap(),
                    kana: KanaName::parse("ホウオウドウ ハナコ").unwrap(),
                }
            ),
        ),
    ];
    for (what, printed) in cases {
        assert_redacted(what, printed.clone());
        // The card's number in any of its spellings.
        assert!(
            !printed.contains(&printed_card) && !printed.contains(card.canonical()),
            "{what} printed the card number: {printed}"
        );
    }

    // What is shown instead: the IDs, so a log or a failed assertion still says which record.
    assert_eq!(format!("{:?}", signer()), "Signer(<redacted>)");
}
