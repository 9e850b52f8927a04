//! Who is signing in: password hashing (argon2id), sign-in throttling, the second factor
//! (TOTP, passkeys, recovery codes), OpenID Connect with the facilities' and the operators' providers
//! ([`oidc`]), and the sign-in flows that record every attempt in the audit log. No HTTP
//! served here: the server turns [`SignInError`] and the others into responses.

pub mod oidc;
pub mod passkey;
mod password;
mod password_change;
mod principal;
mod rules;
mod second_factor;
mod sign_in;
mod throttle;
pub mod totp;

pub use passkey::{Factors, PasskeyError, PasskeySummary, Registered};
pub use password::{PasswordHasher, PasswordParams};
pub use password_change::{PasswordChangeError, REMEMBERED_PASSWORDS};
pub use principal::{Authenticated, Principal, SessionRecord, SESSION_KEY};
pub use rules::PasswordRules;
pub use second_factor::{
    reset_facility_account_second_factor, secret_binding, Confirmed, Enrolment,
    PendingSecondFactor, ResetBy, SecondFactorError, PENDING_FOR, PENDING_KEY,
};
pub use sign_in::{Authenticator, SignInError, SignInOutcome, SignInRequest};
pub use throttle::{RefusalSummary, SignInThrottle, ThrottleConfig, Throttled, WindowClock};
