//! Domain types of Renrakucho.
//!
//! Values here can only be built valid ("parse, don't validate"): a [`LoginId`] that exists
//! has passed the login-ID rules, a [`FacilityCode`] has the network's shape. Nothing in this
//! crate knows about HTTP or SQL, so the rules can be read and tested on their own.

/// `Debug` for a type that holds patient data, so a value formatted with `{:?}` (a log field, a
/// panic, an error's context, a failed assertion) never shows content.
///
/// `redacted_debug!(A, B)` names each type and hides the whole value: `A(<redacted>)`.
/// `redacted_debug!(A { id, patient })` shows only the fields listed (identifiers, versions,
/// flags: never names or text), each through its own `Debug`, and `..` for the rest:
/// `A { id: …, patient: …, .. }`. Other crates use it as `renrakucho_core::redacted_debug!`.
#[macro_export]
macro_rules! redacted_debug {
    ($name:ty { $($field:ident),* $(,)? }) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
    ($($name:ty),* $(,)?) => {
        $(
            impl std::fmt::Debug for $name {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(concat!(stringify!($name), "(<redacted>)"))
                }
            }
        )*
    };
}

pub mod card;
pub mod email;
pub mod facility;
pub mod ids;
pub mod notebook;
pub mod patient;
pub mod staff;
pub mod states;
pub mod text;

pub use card::CardNumber;
pub use email::Email;
pub use facility::{FacilityCode, FacilityKind, FacilityName, FacilityStatus};
pub use ids::{FacilityId, OperatorId, PatientId, StaffId};
pub use notebook::{Category, EntryBody, Priority, Reason, SupportKind, Vitals, VitalsInput};
pub use patient::{
    Address, BirthDate, CareLevel, KanaName, PatientName, PatientProfile, Phone, PrimaryDoctor, Sex,
};
pub use staff::{
    AccountPolicy, DisplayName, LoginClaim, LoginId, Password, Profession, StaffRole, StaffStatus,
};
pub use states::{MemberMover, MemberStatus, SupportSide, SupportStatus};
pub use text::Lines;

/// Why a value offered from outside was refused. The message is shown to people, so it says in
/// plain words what is wrong (Japanese first, English after).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidValue {
    /// Which field was wrong, as named in the API (`login_id`, `facility_code`, …).
    pub field: &'static str,
    /// A message a person understands.
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Declares a string enum that round-trips through its database/API spelling, so the enum and
/// the SQL `CHECK` constraint share one list of words.
#[macro_export]
#[doc(hidden)]
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal / $ja:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in the database and used in the API.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The Japanese label shown in the portal.
            pub fn label_ja(self) -> &'static str {
                match self { $($name::$variant => $ja),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::InvalidValue::new(
                        stringify!($name),
                        format!("「{other}」は使用できない値です / unknown value `{other}`"),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// Dates in the API as `YYYY-MM-DD`: `#[serde(with = "renrakucho_core::date_format")]`.
time::serde::format_description!(
    pub date_format,
    Date,
    "[year]-[month]-[day]"
);
