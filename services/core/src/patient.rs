//! Patients (対象者) and the values they are made of. Every field here is personal health
//! data: it is encrypted with the patient's own key before it is stored.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::InvalidValue;

crate::string_enum!(
    /// Sex as recorded on the care record.
    Sex {
        Female => "female" / "女性",
        Male => "male" / "男性",
        Other => "other" / "その他",
        Unknown => "unknown" / "不明",
    }
);

crate::string_enum!(
    /// 要介護度: the long-term care need certified under the Long-Term Care Insurance Act.
    CareLevel {
        NotCertified => "not_certified" / "未認定",
        Pending => "pending" / "申請中",
        Independent => "independent" / "自立",
        Support1 => "support_1" / "要支援1",
        Support2 => "support_2" / "要支援2",
        Care1 => "care_1" / "要介護1",
        Care2 => "care_2" / "要介護2",
        Care3 => "care_3" / "要介護3",
        Care4 => "care_4" / "要介護4",
        Care5 => "care_5" / "要介護5",
    }
);

/// NFKC, trimmed, inner runs of spaces as one; refused when empty, too long, with control
/// characters (checked before inner whitespace is joined, so a line break or tab inside is
/// refused rather than turned into a space) or with nothing visible.
fn text(raw: &str, field: &'static str, max: usize, what: &str) -> Result<String, InvalidValue> {
    let normalized: String = raw.nfkc().collect();
    crate::text::refuse_controls(field, normalized.trim(), crate::Lines::One)?;
    crate::text::refuse_invisible_only(field, normalized.trim())?;
    let joined = normalized.split_whitespace().collect::<Vec<_>>().join(" ");
    let count = joined.chars().count();
    if count == 0 || count > max || joined.chars().any(char::is_control) {
        return Err(InvalidValue::new(
            field,
            format!(
                "{what}は1〜{max}文字で入力してください / {field} must be 1 to {max} characters"
            ),
        ));
    }
    Ok(joined)
}

macro_rules! text_value {
    ($(#[$meta:meta])* $name:ident, $field:literal, $max:literal, $ja:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        redacted_debug!($name);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                text(raw, $field, $max, $ja).map(Self)
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_value!(
    /// 氏名: the patient's name as written (kanji or any script).
    PatientName, "name", 100, "氏名"
);
text_value!(
    /// 住所.
    Address, "address", 200, "住所"
);
text_value!(
    /// 主治医: the primary doctor, as free text (name and facility).
    PrimaryDoctor, "primary_doctor", 100, "主治医"
);

/// フリガナ: the reading of the name, in katakana or hiragana (and spaces).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KanaName(String);

impl KanaName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let kana = text(raw, "kana", 100, "フリガナ")?;
        let is_kana = |c: char| matches!(c, '\u{3041}'..='\u{3096}' | '\u{309D}'..='\u{309F}' | '\u{30A1}'..='\u{30FF}' | ' ');
        if kana.chars().all(is_kana) {
            Ok(Self(kana))
        } else {
            Err(InvalidValue::new(
                "kana",
                "フリガナはカタカナかひらがなで入力してください / the reading must be in katakana or hiragana",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 電話番号: digits with optional hyphens, 10 or 11 digits (Japanese numbers).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let phone: String = raw.nfkc().collect::<String>().trim().to_string();
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        let ok = phone.chars().all(|c| c.is_ascii_digit() || c == '-')
            && (10..=11).contains(&digits)
            && phone.starts_with('0');
        if ok {
            Ok(Self(phone))
        } else {
            Err(InvalidValue::new(
                "phone",
                "電話番号は0から始まる10〜11桁の数字（ハイフン可）です / a phone number is 10 or 11 digits starting with 0",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 生年月日: not in the future, not before 1900.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BirthDate(time::Date);

impl BirthDate {
    pub fn parse(raw: &str, today: time::Date) -> Result<Self, InvalidValue> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let invalid = || {
            InvalidValue::new(
                "birth_date",
                "生年月日は 1900-01-01 から今日までの日付（YYYY-MM-DD）で入力してください / the date of birth must be YYYY-MM-DD, from 1900 to today",
            )
        };
        let date = time::Date::parse(raw.trim(), format).map_err(|_| invalid())?;
        if date.year() < 1900 || date > today {
            return Err(invalid());
        }
        Ok(Self(date))
    }
    pub fn date(self) -> time::Date {
        self.0
    }
}

/// Everything recorded about a patient besides the name, kept (and encrypted) together.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientProfile {
    pub birth_date: BirthDate,
    pub sex: Sex,
    pub care_level: CareLevel,
    pub address: Option<Address>,
    pub phone: Option<Phone>,
    pub primary_doctor: Option<PrimaryDoctor>,
}

redacted_debug!(KanaName, Phone, BirthDate, PatientProfile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_data_prints_redacted() {
        let today = time::macros::date!(2026 - 12 - 01);
        let profile = PatientProfile {
            birth_date: BirthDate::parse("1940-01-15", today).unwrap(),
            sex: Sex::Female,
            care_level: CareLevel::Care2,
            address: Some(Address::parse("静岡県伊豆市修善寺1-2-3").unwrap()),
            phone: Some(Phone::parse("0558-12-3456").unwrap()),
            primary_doctor: Some(PrimaryDoctor::parse("佐藤 医師").unwrap()),
        };
        let printed = [
            format!("{:?}", PatientName::parse("山田 花子").unwrap()),
            format!("{:?}", KanaName::parse("ヤマダ ハナコ").unwrap()),
            format!("{:?}", profile.address),
            format!("{:?}", profile.phone),
            format!("{:?}", profile.primary_doctor),
            format!("{:?}", profile.birth_date),
            format!("{profile:?}"),
        ];
        for (printed, secret) in
            printed
                .iter()
                .zip(["山田", "ヤマダ", "修善寺", "3456", "佐藤", "1940", "1940"])
        {
            assert!(printed.contains("<redacted>"), "{printed}");
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(!format!("{profile:?}").contains("Care2"));
    }

    #[test]
    fn names_and_readings_are_normalised_and_checked() {
        assert_eq!(
            PatientName::parse("  山田　 太郎 ").unwrap().as_str(),
            "山田 太郎"
        );
        assert!(PatientName::parse("   ").is_err());
        for bad in [
            "\u{200B}\u{200C}",
            "\u{202E}\u{2066}\u{2069}",
            "山田\u{0}",
            "山田\n太郎",
        ] {
            assert_eq!(
                PatientName::parse(bad).unwrap_err().field,
                "name",
                "{bad:?}"
            );
            assert_eq!(KanaName::parse(bad).unwrap_err().field, "kana", "{bad:?}");
        }
        assert!(PatientName::parse(&"あ".repeat(101)).is_err());
        assert_eq!(
            KanaName::parse("ﾔﾏﾀﾞ ﾀﾛｳ").unwrap().as_str(),
            "ヤマダ タロウ"
        );
        assert!(KanaName::parse("やまだ たろう").is_ok());
        let err = KanaName::parse("Yamada").unwrap_err();
        assert_eq!(err.field, "kana");
        assert!(err.message.starts_with("フリガナ"));
    }

    #[test]
    fn phones_and_birth_dates_are_checked() {
        assert_eq!(
            Phone::parse("０９０-１２３４-５６７８").unwrap().as_str(),
            "090-1234-5678"
        );
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("090-1234-5678; DROP").is_err());
        let today = time::macros::date!(2026 - 11 - 25);
        assert!(BirthDate::parse("1938-04-01", today).is_ok());
        assert!(BirthDate::parse("2027-01-01", today).is_err());
        assert!(BirthDate::parse("1899-12-31", today).is_err());
        assert!(BirthDate::parse("1938/04/01", today).is_err());
    }
}
