//! Every type of the notebook that holds patient data (or a person's name or address) prints
//! redacted in `Debug`: each is built with distinctive content, formatted with `{:?}`,
//! and none of the content may show. IDs may.

use renrakucho_core::{
    Category, EntryBody, FacilityId, PatientId, Priority, Profession, StaffId, SupportKind, Vitals,
};
use renrakucho_notebook::*;
use renrakucho_registry::{may, Listed, StaffActor};
use time::macros::datetime;
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

fn vitals() -> Vitals {
    Vitals {
        temperature_c: Some(38.7),
        ..Vitals::default()
    }
}

fn actor() -> StaffActor {
    StaffActor {
        staff: StaffId::new(),
        facility: FacilityId::new(),
    }
}

fn entry(patient: PatientId) -> EntryView {
    EntryView {
        id: Uuid::now_v7(),
        patient,
        facility: FacilityId::new(),
        facility_name: Some("伊豆クリニック".into()),
        author: StaffId::new(),
        author_name: "青龍 太郎".into(),
        author_profession: "doctor".into(),
        category: Category::Vitals,
        priority: Priority::Urgent,
        body: "ふらつきあり、転倒に注意".into(),
        vitals: Some(vitals()),
        reply_to: None,
        mentions: vec![],
        version: 2,
        created_at: datetime!(2026-12-01 09:00 UTC),
        updated_at: datetime!(2026-12-01 09:30 UTC),
        attachments: vec![attachment()],
        read: false,
        withdrawn_at: None,
        withdrawal_reason: Some("撤回理由あり".into()),
    }
}

fn attachment() -> AttachmentLine {
    AttachmentLine {
        id: Uuid::now_v7(),
        file_name: "水晶体.jpg".into(),
        media_type: "image/jpeg".into(),
        size: 1234,
        has_thumbnail: true,
    }
}

fn version() -> VersionView {
    VersionView {
        version: 1,
        editor_name: "青龍 太郎".into(),
        editor_facility: FacilityId::new(),
        edited_at: datetime!(2026-12-01 09:00 UTC),
        category: "vitals".into(),
        priority: "urgent".into(),
        body: "ふらつきあり".into(),
        vitals: Some(vitals()),
    }
}

fn reader() -> ReaderView {
    ReaderView {
        name: "青龍 太郎".into(),
        profession: "nurse".into(),
        facility: FacilityId::new(),
        facility_name: None,
        read_at: datetime!(2026-12-01 10:00 UTC),
    }
}

fn support_line(patient: PatientId) -> SupportLine {
    SupportLine {
        id: Uuid::now_v7(),
        patient,
        from: FacilityId::new(),
        from_name: None,
        to: FacilityId::new(),
        to_name: None,
        kind: SupportKind::SecondOpinion,
        status: "answered".into(),
        sent: true,
        created_at: datetime!(2026-12-01 09:00 UTC),
        updated_at: datetime!(2026-12-01 09:00 UTC),
    }
}

#[test]
fn every_type_holding_patient_data_prints_redacted() {
    let patient = patient_id();
    let content = EntryContent {
        category: Category::Complaint,
        priority: Priority::ReplyRequested,
        body: EntryBody::parse("ふらつきあり").unwrap(),
        vitals: Some(vitals()),
        mentions: vec![FacilityId::new()],
    };
    let detail = EntryDetail {
        entry: entry(patient),
        versions: vec![Listed::Readable(version())],
        replies: vec![Listed::Readable(entry(patient))],
        read_by: vec![reader()],
    };
    let exported = NotebookCopy {
        notice: "copy",
        exported_at: datetime!(2026-12-01 12:00 UTC),
        patient: ExportedPatient {
            id: patient,
            name: "鳳凰堂 花子".into(),
            kana: "ホウオウドウ ハナコ".into(),
            birth_date: "1931-02-03".into(),
            sex: "female".into(),
            care_level: "care_3".into(),
        },
        entries: vec![ExportedEntry {
            entry: entry(patient),
            versions: vec![version()],
        }],
    };

    let cases: Vec<(&str, String)> = vec![
        (
            "Uploaded",
            format!(
                "{:?}",
                Uploaded {
                    id: Uuid::now_v7(),
                    file_name: "水晶体.pdf".into(),
                    media_type: "application/pdf".into(),
                    size: 10,
                    has_thumbnail: false,
                }
            ),
        ),
        (
            "Download",
            format!(
                "{:?}",
                Download {
                    media_type: "application/pdf".into(),
                    file_name: "水晶体.pdf".into(),
                    bytes: b"XYZ-SCAN".to_vec(),
                }
            ),
        ),
        (
            "FileUpload",
            format!(
                "{:?}",
                FileUpload {
                    name: "水晶体.png",
                    bytes: b"XYZ-SCAN".to_vec(),
                }
            ),
        ),
        ("NotebookCopy", format!("{exported:?}")),
        ("ExportedPatient", format!("{:?}", exported.patient)),
        ("ExportedEntry", format!("{:?}", exported.entries)),
        (
            "Author",
            format!(
                "{:?}",
                Author::<may::NotebookWrite>::new(
                    renrakucho_authz::Authorized::unchecked(
                        actor().staff,
                        actor().facility,
                        renrakucho_core::PatientId::new(),
                    ),
                    "青龍 太郎".into(),
                    Profession::Doctor,
                    false,
                )
            ),
        ),
        ("EntryContent", format!("{content:?}")),
        (
            "NewEntryInput",
            format!(
                "{:?}",
                NewEntryInput {
                    content: content.clone(),
                    reply_to: Some(Uuid::now_v7()),
                    attachments: vec![Uuid::now_v7()],
                }
            ),
        ),
        ("AttachmentLine", format!("{:?}", attachment())),
        ("EntryView", format!("{:?}", entry(patient))),
        (
            "TimelinePage",
            format!(
                "{:?}",
                TimelinePage {
                    entries: vec![Listed::Readable(entry(patient))],
                    next: None,
                }
            ),
        ),
        ("VersionView", format!("{:?}", version())),
        ("ReaderView", format!("{:?}", reader())),
        ("EntryDetail", format!("{detail:?}")),
        (
            "EditResult",
            format!("{:?}", EditResult::Stale(Box::new(entry(patient)))),
        ),
        (
            "Preferences",
            format!(
                "{:?}",
                Preferences {
                    email: Some("someone@example.jp".into()),
                    muted: vec![patient],
                    ..Preferences::default()
                }
            ),
        ),
        (
            "DigestDue",
            format!(
                "{:?}",
                DigestDue {
                    who: actor(),
                    email: "someone@example.jp".into(),
                    sent_before: datetime!(2026-12-01 00:00 +9),
                }
            ),
        ),
        (
            "NewSupportRequest",
            format!(
                "{:?}",
                NewSupportRequest {
                    to_code: "IZ-HOSP".into(),
                    kind: SupportKind::RemoteDiagnosis,
                    question: "麒麟の所見について".into(),
                    summary: "鵺の経過".into(),
                    entries: vec![Uuid::now_v7()],
                    attachments: vec![],
                }
            ),
        ),
        (
            "SupportDetail",
            format!(
                "{:?}",
                SupportDetail {
                    line: support_line(patient),
                    question: "麒麟の所見について".into(),
                    summary: "鵺の経過".into(),
                    answer: Some("獏の見立て".into()),
                    answered_by_name: Some("青龍 太郎".into()),
                    entries: vec![Listed::Readable(entry(patient))],
                }
            ),
        ),
    ];
    for (what, printed) in cases {
        assert_redacted(what, printed);
    }

    // What is shown instead: the IDs, so a log or a failed assertion still says which record.
    let shown = format!("{:?}", entry(patient));
    assert!(shown.starts_with("EntryView {"), "{shown}");
    assert!(shown.contains(&patient.to_string()), "{shown}");
    assert!(shown.ends_with(", .. }"), "{shown}");
}
