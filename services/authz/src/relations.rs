//! The relations of a facility to a patient, which the policies grant actions through.

use renrakucho_core::FacilityId;
use time::OffsetDateTime;

/// A relation of a facility to a patient (see `policies/model.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    Registering,
    Member,
    Invited,
    Sharing,
    Consented,
    Emergency,
    Support,
    /// An active facility of the care team while the consent is not withdrawn: may record one.
    Collecting,
    /// An active facility of the care team while the consent is withdrawn (renewal is due).
    Withdrawn,
}

impl Relation {
    pub const ALL: &'static [Relation] = &[
        Relation::Registering,
        Relation::Member,
        Relation::Invited,
        Relation::Sharing,
        Relation::Consented,
        Relation::Emergency,
        Relation::Support,
        Relation::Collecting,
        Relation::Withdrawn,
    ];

    /// The spelling in the policy file and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Registering => "registering",
            Relation::Member => "member",
            Relation::Invited => "invited",
            Relation::Sharing => "sharing",
            Relation::Consented => "consented",
            Relation::Emergency => "emergency",
            Relation::Support => "support",
            Relation::Collecting => "collecting",
            Relation::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == s)
    }
}

/// One relation of one facility to a patient; emergency links carry their expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub facility: FacilityId,
    pub relation: Relation,
    pub expires_at: Option<OffsetDateTime>,
}
