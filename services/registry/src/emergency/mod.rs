//! Emergency access (break-glass), as the Japanese guideline for medical information systems
//! asks: a doctor or nurse of a facility outside the care team opens a patient's notebook
//! read-only for a limited time after stating a reason. The patient is named by the number on
//! the patient's card (a random number of its own) and confirmed by the date of birth. Failed
//! identifications are counted in the database: five within an hour lock the asking facility
//! and the card; each is recorded in the registering facility's audit chain, and a locked card
//! is announced to it and to the platform's operators (docs/adr/0018). The care team sees every
//! grant at once and reviews it; the grant ends by itself.
//!
//! Here: the request and the grant as the callers see them; `opening` identifies the patient
//! and opens the notebook, `grants` lists, ends and reviews grants, `cards` issues and shows
//! the patient's card.

use renrakucho_core::{BirthDate, CardNumber, FacilityId, InvalidValue, PatientId, StaffId};
use renrakucho_keyring::{Binding, KeyOwner};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

mod cards;
mod grants;
mod opening;

pub(crate) use cards::{card_birth_changed, issue_card};
pub use cards::{ensure_cards, patient_card, reissue_card, CardAttempt, PatientCard};
pub use grants::{emergency_grants, end_emergency, review_emergency};
pub use opening::{identification_status, open_emergency, IdentificationStatus};

/// Failed identifications within an hour before the asking facility, or the card, is locked
/// (the database's rule, `private.identification_locked_until`, restated for messages).
pub const IDENTIFICATION_LIMIT: i32 = 5;

/// Why the notebook is opened, in the words of the person opening it (10–500 characters).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmergencyReason(String);

renrakucho_core::redacted_debug!(EmergencyReason);

impl EmergencyReason {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = renrakucho_core::text::multi_line("reason", raw)?;
        let n = text.chars().count();
        if !(10..=500).contains(&n) {
            return Err(InvalidValue::new(
                "reason",
                "緊急閲覧の理由を10〜500文字で具体的に入力してください / state the reason for emergency access in 10 to 500 characters",
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A request to open a patient's notebook in an emergency.
#[derive(Clone)]
pub struct EmergencyRequest {
    /// The number on the patient's card.
    pub card: CardNumber,
    /// Confirms the number: a mistyped or guessed number with the wrong date opens nothing.
    pub birth_date: BirthDate,
    pub reason: EmergencyReason,
    /// How long the grant lasts (the server's setting, 24 hours by default).
    pub duration: time::Duration,
}

renrakucho_core::redacted_debug!(EmergencyRequest);

/// A grant, as the opening facility or the care team sees it.
#[derive(Clone, Serialize, utoipa::ToSchema)]
#[schema(as = GrantView)]
pub struct EmergencyGrant {
    pub id: Uuid,
    pub patient: PatientId,
    /// The facility that opened the notebook, and its name from the directory.
    pub facility: FacilityId,
    pub facility_name: Option<String>,
    pub opened_by: StaffId,
    /// The reason, when this facility can still read it (the care team always can; the
    /// opening facility while its grant is open).
    pub reason: Option<String>,
    /// The reason is stored but failed its integrity check (ADR 0017).
    pub reason_unreadable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub reviewed_at: Option<OffsetDateTime>,
    pub open: bool,
    /// Opened by the asking facility (otherwise: a grant on one of its patients, to review).
    pub ours: bool,
}

renrakucho_core::redacted_debug!(EmergencyGrant {
    id,
    patient,
    facility,
    opened_by,
    open,
    ours
});

/// Where a grant's reason is stored: sealed with the patient's key, written once.
fn reason_binding(patient: PatientId, id: Uuid) -> Binding<'static> {
    Binding {
        owner: KeyOwner::Patient(patient),
        table: "emergency_grants",
        column: "reason_enc",
        row: id,
        version: Binding::WRITTEN_ONCE,
    }
}
