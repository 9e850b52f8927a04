//! Staff accounts (利用者) and the values they are made of (第6条3, 第7条, 第19条).

use crate::InvalidValue;
use unicode_normalization::UnicodeNormalization;

crate::string_enum!(
    /// What an account may administer in its facility.
    StaffRole {
        /// 施設管理者: issues and reissues staff IDs, answers for them (第6条, 第7条, 第9条).
        FacilityAdmin => "facility_admin" / "施設管理者",
        /// 利用者: reads and writes the notebooks of the facility's patients.
        Staff => "staff" / "利用者",
    }
);

crate::string_enum!(
    /// The person's profession; authorization on patient data depends on it.
    Profession {
        Doctor => "doctor" / "医師",
        Dentist => "dentist" / "歯科医師",
        Nurse => "nurse" / "看護師",
        Pharmacist => "pharmacist" / "薬剤師",
        CareManager => "care_manager" / "介護支援専門員",
        CareWorker => "care_worker" / "介護職員",
        Therapist => "therapist" / "リハビリ職",
        Clerk => "clerk" / "事務職員",
        Other => "other" / "その他",
    }
);

crate::string_enum!(
    /// Whether an account may sign in.
    StaffStatus {
        Active => "active" / "有効",
        /// Stopped at once, e.g. after a leak (第28条); can be resumed.
        Suspended => "suspended" / "停止中",
        /// Left the facility (第7条); kept for the audit trail.
        Disabled => "disabled" / "無効",
        /// Made at a first sign-in through the facility's identity provider: signs in only
        /// once the facility admin approves it.
        Pending => "pending" / "承認待ち",
    }
);

/// A login ID (ユーザーID), unique within its facility: 3 to 32 characters of ASCII letters,
/// digits, `.`, `_`, `-`; compared case-insensitively (stored lower-case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LoginId(String);

impl LoginId {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let id: String = raw.trim().nfkc().collect::<String>().to_ascii_lowercase();
        let ok = (3..=32).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidValue::new(
                "login_id",
                "ユーザーIDは英数字と . _ - で3〜32文字です / a login ID is 3 to 32 letters, digits, '.', '_' or '-'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LoginId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's name as shown to colleagues: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        parse_text("display_name", raw, 100).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of text: NFC, trimmed, 1 to `max` characters, no control character, something
/// visible (a name of zero-width spaces is no name).
pub(crate) fn parse_text(
    field: &'static str,
    raw: &str,
    max: usize,
) -> Result<String, InvalidValue> {
    let text: String = raw.trim().nfc().collect();
    let count = text.chars().count();
    if count == 0 {
        return Err(InvalidValue::new(field, "入力してください / required"));
    }
    if count > max {
        return Err(InvalidValue::new(
            field,
            format!("{max}文字以内で入力してください / at most {max} characters"),
        ));
    }
    crate::text::refuse_controls(field, &text, crate::Lines::One)?;
    crate::text::refuse_invisible_only(field, &text)?;
    Ok(text)
}

/// A password offered by a person. Never printed: `Debug` shows a placeholder. The rules
/// follow NIST SP 800-63B: length matters, composition rules do not.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The shortest password accepted for a new or changed password.
    pub const MIN_CHARS: usize = 12;
    /// Longer input is refused before hashing, so nobody can make the server hash megabytes.
    pub const MAX_BYTES: usize = 1024;

    /// A password typed at sign-in: only the size is checked, so a password set under older
    /// rules still works, and that it holds no control character but a tab or a line break
    /// (no password was ever set with one: a NUL is a 422, never a hash of it).
    pub fn for_sign_in(raw: String) -> Result<Self, InvalidValue> {
        if raw.is_empty() || raw.len() > Self::MAX_BYTES {
            return Err(InvalidValue::new(
                "password",
                "パスワードを入力してください / enter the password",
            ));
        }
        crate::text::refuse_controls("password", &raw, crate::Lines::Many)?;
        Ok(Self(raw))
    }

    /// A new password being set: at least [`Self::MIN_CHARS`] characters, anything printable
    /// (no control character: it could not be typed again at every keyboard).
    pub fn new_secret(raw: String) -> Result<Self, InvalidValue> {
        crate::text::refuse_controls("password", &raw, crate::Lines::One)?;
        if raw.chars().count() < Self::MIN_CHARS || raw.len() > Self::MAX_BYTES {
            return Err(InvalidValue::new(
                "password",
                format!(
                    "パスワードは{}文字以上にしてください / a password needs at least {} characters",
                    Self::MIN_CHARS,
                    Self::MIN_CHARS
                ),
            ));
        }
        Ok(Self(raw))
    }

    /// The secret itself, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(**redacted**)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_id_is_case_insensitive_and_width_normalised() {
        assert_eq!(LoginId::parse("Ｔａｎａｋａ").unwrap().as_str(), "tanaka");
        assert!(LoginId::parse("ta").is_err());
        assert!(LoginId::parse("tan aka").is_err());
        assert!(LoginId::parse("田中").is_err());
    }

    #[test]
    fn password_never_prints() {
        let p = Password::new_secret("correct horse battery".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
        assert!(Password::new_secret("short".into()).is_err());
        assert!(Password::for_sign_in(String::new()).is_err());
        assert_eq!(
            Password::for_sign_in("pass\u{0}word".into())
                .unwrap_err()
                .field,
            "password"
        );
        assert!(Password::for_sign_in("tab\tin it ∞ 日本語".into()).is_ok());
        assert!(Password::new_secret("twelve chars\u{7} or more".into()).is_err());
    }

    #[test]
    fn display_name_refuses_empty_invisible_and_control_characters() {
        assert!(DisplayName::parse("  ").is_err());
        assert!(DisplayName::parse("田中\u{7}").is_err());
        assert!(DisplayName::parse("田中\n花子").is_err());
        for invisible in ["\u{200B}", "\u{202E}\u{200F}", " \u{FEFF}\u{2060} "] {
            assert_eq!(
                DisplayName::parse(invisible).unwrap_err().field,
                "display_name"
            );
        }
        assert_eq!(
            DisplayName::parse(" 田中 花子 ").unwrap().as_str(),
            "田中 花子"
        );
    }
}

crate::string_enum!(
    /// Which claim of a facility's OpenID provider proposes the login ID of a just-in-time
    /// account (and is shown to the admin). Accounts are linked by issuer and subject only.
    LoginClaim {
        Email => "email" / "メールアドレス",
        PreferredUsername => "preferred_username" / "ユーザー名",
    }
);

crate::string_enum!(
    /// Who may sign in through a facility's OpenID provider.
    AccountPolicy {
        /// Only accounts the facility admin linked to a subject of the provider.
        PreLinked => "pre_linked" / "管理者が紐付けたアカウントのみ",
        /// An unknown subject gets an account that waits for the admin's approval.
        JustInTime => "just_in_time" / "初回サインイン時に作成し管理者が承認",
    }
);
