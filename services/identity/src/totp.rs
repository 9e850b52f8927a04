//! The codes of a second factor, without storage: TOTP (RFC 6238 as every authenticator app
//! implements it: HMAC-SHA-1, six digits, 30-second steps; the app's clock trusted one step
//! either side) by `totp-rs`, and recovery codes (ten, single-use, 79 random bits each, kept
//! only as SHA-256 hashes: too many to search for, even with the hashes in hand).

use qrcode::render::svg;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

/// Seconds per TOTP step.
pub const STEP_SECONDS: u64 = 30;
/// How many recovery codes an account gets at a time.
pub const RECOVERY_CODES: usize = 10;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "Renrakucho";
/// The recovery codes' alphabet: no 0/o, 1/l/i, so a code read aloud or copied from paper
/// comes out right.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const RECOVERY_LENGTH: usize = 16;

/// A TOTP shared secret (zeroed when dropped).
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(**redacted**)")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rngs::OsRng.fill(&mut bytes[..]);
        Self(bytes)
    }

    /// A secret as stored (decrypted); `None` when it is not one this server made.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        let bytes = Zeroizing::new(bytes);
        (bytes.len() == SECRET_BYTES).then_some(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, account: &str) -> TOTP {
        // `totp-rs` refuses a ':' in the label; login IDs and facility codes have none, and
        // anything else is replaced rather than refused.
        let label = account.replace(':', "-");
        TOTP::new(
            Algorithm::SHA1,
            6,
            1,
            STEP_SECONDS,
            self.0.to_vec(),
            Some(ISSUER.to_string()),
            label,
        )
        .expect("a 160-bit secret and a label without ':' are valid")
    }

    /// The code of 30-second step `step` (Unix time ÷ 30).
    pub fn code_at(&self, step: u64) -> String {
        self.totp("-").generate(step * STEP_SECONDS)
    }

    /// The step, among the one of `now_unix` and one either side, whose code is `code`.
    pub fn matching_step(&self, code: &str, now_unix: u64) -> Option<u64> {
        let now = now_unix / STEP_SECONDS;
        let code = code.trim();
        // Every candidate compared, in constant time: the answer's timing says nothing.
        let mut found = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            if bool::from(self.code_at(step).as_bytes().ct_eq(code.as_bytes())) {
                found = found.or(Some(step));
            }
        }
        found
    }

    /// The secret as people type it into an app (RFC 4648 base32).
    pub fn base32(&self) -> String {
        self.totp("-").get_secret_base32()
    }

    /// The `otpauth://` URI of this secret for `account` (what the QR code holds).
    pub fn uri(&self, account: &str) -> String {
        self.totp(account).get_url()
    }

    /// The QR code of [`TotpSecret::uri`] as an SVG document, drawn here.
    pub fn qr_svg(&self, account: &str) -> String {
        let uri = Zeroizing::new(self.uri(account));
        qrcode::QrCode::new(uri.as_bytes())
            .expect("an otpauth URI fits a QR code")
            .render::<svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build()
    }
}

/// A secret from its base32 form (as [`TotpSecret::base32`] gives it); `None` when it is not
/// one.
pub fn secret_from_base32(text: &str) -> Option<TotpSecret> {
    totp_rs::Secret::Encoded(text.trim().to_string())
        .to_bytes()
        .ok()
        .and_then(TotpSecret::from_bytes)
}

/// Whether `typed` looks like a TOTP code (six digits, spaces aside) rather than a recovery
/// code.
pub fn is_totp_code(typed: &str) -> bool {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Ten new recovery codes, formatted `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..RECOVERY_LENGTH)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            chars
                .chunks(4)
                .map(|group| group.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The stored form of a recovery code: SHA-256 (hex) of the code without separators, in
/// lower case, so `ABCDE-FGHJK`, `abcde fghjk` and `abcdefghjk` are the same code.
pub fn recovery_code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normal.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to six digits (the reference gives eight).
    #[test]
    fn codes_match_the_rfc_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(secret.code_at(time / STEP_SECONDS), eight[2..]);
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let secret = TotpSecret::generate();
        let now = 1_800_000_000u64;
        let step = now / STEP_SECONDS;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = (step as i64 + offset) as u64;
            let found = secret.matching_step(&secret.code_at(at), now);
            if accepted {
                assert_eq!(found, Some(at), "offset {offset}");
            } else {
                assert!(found.is_none_or(|s| s != at), "offset {offset}");
            }
        }
        assert_eq!(secret.matching_step("12345", now), None);
        assert_eq!(secret.matching_step("", now), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_the_same_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        let code = &codes[0];
        assert_eq!(code.len(), 19);
        let typed = code.to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(code), recovery_code_hash(&typed));
        assert_ne!(recovery_code_hash(code), recovery_code_hash(&codes[1]));
        assert!(!is_totp_code(code));
        assert!(is_totp_code("123 456"));
    }

    #[test]
    fn the_uri_and_qr_name_the_account_and_issuer() {
        let secret = TotpSecret::generate();
        let uri = secret.uri("IZ-CLINIC/sato");
        assert!(uri.starts_with("otpauth://totp/Renrakucho:"), "{uri}");
        assert!(uri.contains(&secret.base32()));
        let again = secret_from_base32(&secret.base32()).expect("its own base32");
        assert_eq!(again.as_bytes(), secret.as_bytes());
        assert!(secret_from_base32("not base32!").is_none());
        let svg = secret.qr_svg("IZ-CLINIC/sato");
        assert!(svg.contains("<svg"), "an SVG document");
        assert!(format!("{secret:?}").contains("redacted"));
    }
}
