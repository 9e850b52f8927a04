//! The contact notebook's values (連絡帳): what an entry is about, how pressing it is, its text,
//! and vital signs checked against physiological ranges and units. Every one of them is
//! patient data once written: the text and the vitals are encrypted before they are stored.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::InvalidValue;

crate::string_enum!(
    /// What an entry is about (the terms' 指示事項・治療経過・支援経過・訴え, and more).
    Category {
        Instruction => "instruction" / "指示事項",
        Treatment => "treatment" / "治療経過",
        Support => "support" / "支援経過",
        Complaint => "complaint" / "訴え",
        Vitals => "vitals" / "バイタル",
        Medication => "medication" / "服薬",
        Notice => "notice" / "連絡",
        Other => "other" / "その他",
    }
);

crate::string_enum!(
    /// How pressing an entry is: urgent ones reach people even in their quiet hours.
    Priority {
        Urgent => "urgent" / "至急",
        ReplyRequested => "reply_requested" / "要返信",
        Info => "info" / "参考",
    }
);

crate::string_enum!(
    /// What a support request (支援依頼, 第13条) asks for.
    SupportKind {
        RemoteDiagnosis => "remote_diagnosis" / "遠隔診断",
        SecondOpinion => "second_opinion" / "セカンドオピニオン",
        Information => "information" / "情報提供",
    }
);

impl Priority {
    /// Higher is more pressing.
    pub fn rank(self) -> u8 {
        match self {
            Priority::Urgent => 2,
            Priority::ReplyRequested => 1,
            Priority::Info => 0,
        }
    }

    /// The more pressing of the two.
    pub fn max_rank(self, other: Priority) -> Priority {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// The text of an entry: 1 to 5,000 characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntryBody(String);

impl EntryBody {
    pub const MAX: usize = 5000;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = crate::text::multi_line("body", raw)?;
        let n = text.chars().count();
        if n == 0 {
            return Err(InvalidValue::new(
                "body",
                "本文を入力してください / the entry needs some text",
            ));
        }
        if n > Self::MAX {
            return Err(InvalidValue::new(
                "body",
                format!(
                    "本文は{}文字までです（{n}文字あります） / at most {} characters ({n} given)",
                    Self::MAX,
                    Self::MAX
                ),
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A short reason (withdrawing an entry): 2 to 500 characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = crate::text::multi_line("reason", raw)?;
        let n = text.chars().count();
        if !(2..=500).contains(&n) {
            return Err(InvalidValue::new(
                "reason",
                "理由を2〜500文字で入力してください / give a reason of 2 to 500 characters",
            ));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A measurement as entered: a number and its unit.
#[derive(Clone, Copy, PartialEq, Deserialize)]
pub struct Measured<'a> {
    pub value: f64,
    #[serde(borrow)]
    pub unit: &'a str,
}

/// Vital signs, each optional, each within what a living person can show, in the network's
/// units: ℃, mmHg, beats per minute, %, kg.
#[derive(Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Vitals {
    pub temperature_c: Option<f64>,
    pub systolic_mmhg: Option<u16>,
    pub diastolic_mmhg: Option<u16>,
    pub pulse_bpm: Option<u16>,
    pub spo2_percent: Option<u8>,
    pub weight_kg: Option<f64>,
}

redacted_debug!(EntryBody, Reason, Vitals, Measured<'_>, VitalsInput<'_>);

/// Vital signs as entered, with units (the API's shape).
#[derive(Clone, Default, Deserialize)]
pub struct VitalsInput<'a> {
    #[serde(borrow, default)]
    pub temperature: Option<Measured<'a>>,
    #[serde(borrow, default)]
    pub systolic: Option<Measured<'a>>,
    #[serde(borrow, default)]
    pub diastolic: Option<Measured<'a>>,
    #[serde(borrow, default)]
    pub pulse: Option<Measured<'a>>,
    #[serde(borrow, default)]
    pub spo2: Option<Measured<'a>>,
    #[serde(borrow, default)]
    pub weight: Option<Measured<'a>>,
}

fn unit(
    m: &Measured<'_>,
    field: &'static str,
    accepted: &[&str],
    ja: &str,
) -> Result<f64, InvalidValue> {
    let given: String = m.unit.nfkc().collect::<String>().trim().to_lowercase();
    if !accepted.iter().any(|u| *u == given) {
        return Err(InvalidValue::new(
            field,
            format!(
                "{ja}の単位は{}で入力してください（「{}」は使えません） / {field} must be in {}",
                accepted[0], m.unit, accepted[0]
            ),
        ));
    }
    if !m.value.is_finite() {
        return Err(InvalidValue::new(
            field,
            format!("{ja}は数値で入力してください / {field} must be a number"),
        ));
    }
    Ok(m.value)
}

fn range(
    value: f64,
    field: &'static str,
    low: f64,
    high: f64,
    ja: &str,
    unit: &str,
) -> Result<f64, InvalidValue> {
    if value < low || value > high {
        return Err(InvalidValue::new(
            field,
            format!(
                "{ja}は{low}〜{high}{unit}の範囲で入力してください（{value}{unit}） / {field} must be between {low} and {high} {unit}"
            ),
        ));
    }
    Ok(value)
}

impl VitalsInput<'_> {
    /// Checks units and ranges; at least one measurement must be given.
    pub fn parse(&self) -> Result<Vitals, InvalidValue> {
        let mut v = Vitals::default();
        if let Some(m) = &self.temperature {
            let t = unit(m, "temperature", &["℃", "c", "°c", "celsius"], "体温")?;
            v.temperature_c = Some(range(t, "temperature", 30.0, 43.0, "体温", "℃")?);
        }
        if let Some(m) = &self.systolic {
            let s = unit(m, "systolic", &["mmhg"], "収縮期血圧")?;
            v.systolic_mmhg = Some(range(s, "systolic", 40.0, 300.0, "収縮期血圧", "mmHg")? as u16);
        }
        if let Some(m) = &self.diastolic {
            let d = unit(m, "diastolic", &["mmhg"], "拡張期血圧")?;
            v.diastolic_mmhg =
                Some(range(d, "diastolic", 20.0, 200.0, "拡張期血圧", "mmHg")? as u16);
        }
        if let (Some(s), Some(d)) = (v.systolic_mmhg, v.diastolic_mmhg) {
            if d >= s {
                return Err(InvalidValue::new(
                    "diastolic",
                    "拡張期血圧は収縮期血圧より低い値です / diastolic must be below systolic",
                ));
            }
        }
        if v.systolic_mmhg.is_some() != v.diastolic_mmhg.is_some() {
            return Err(InvalidValue::new(
                "diastolic",
                "血圧は収縮期と拡張期の両方を入力してください / give both systolic and diastolic pressure",
            ));
        }
        if let Some(m) = &self.pulse {
            let p = unit(m, "pulse", &["bpm", "/min", "回/分"], "脈拍")?;
            v.pulse_bpm = Some(range(p, "pulse", 20.0, 250.0, "脈拍", "回/分")? as u16);
        }
        if let Some(m) = &self.spo2 {
            let o = unit(m, "spo2", &["%"], "SpO2")?;
            v.spo2_percent = Some(range(o, "spo2", 50.0, 100.0, "SpO2", "%")? as u8);
        }
        if let Some(m) = &self.weight {
            let w = unit(m, "weight", &["kg"], "体重")?;
            v.weight_kg = Some(range(w, "weight", 1.0, 300.0, "体重", "kg")?);
        }
        if v == Vitals::default() {
            return Err(InvalidValue::new(
                "vitals",
                "バイタルを1つ以上入力してください / give at least one vital sign",
            ));
        }
        Ok(v)
    }
}

impl Vitals {
    /// One line for people: 体温 36.8℃ / 血圧 128/76 mmHg / …
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.temperature_c {
            parts.push(format!("体温 {t:.1}℃"));
        }
        if let (Some(s), Some(d)) = (self.systolic_mmhg, self.diastolic_mmhg) {
            parts.push(format!("血圧 {s}/{d} mmHg"));
        }
        if let Some(p) = self.pulse_bpm {
            parts.push(format!("脈拍 {p}回/分"));
        }
        if let Some(o) = self.spo2_percent {
            parts.push(format!("SpO2 {o}%"));
        }
        if let Some(w) = self.weight_kg {
            parts.push(format!("体重 {w:.1} kg"));
        }
        parts.join(" / ")
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn notebook_content_prints_redacted() {
        let vitals = Vitals {
            temperature_c: Some(38.7),
            systolic_mmhg: Some(182),
            ..Vitals::default()
        };
        let measured = Measured {
            value: 38.7,
            unit: "℃",
        };
        let input = VitalsInput {
            temperature: Some(measured),
            ..VitalsInput::default()
        };
        for (printed, secret) in [
            (
                format!("{:?}", EntryBody::parse("転倒して右大腿骨を骨折").unwrap()),
                "骨折",
            ),
            (
                format!("{:?}", Reason::parse("誤って別の患者に記入").unwrap()),
                "患者",
            ),
            (format!("{vitals:?}"), "38.7"),
            (format!("{vitals:?}"), "182"),
            (format!("{measured:?}"), "38.7"),
            (format!("{input:?}"), "38.7"),
        ] {
            assert!(printed.contains("<redacted>"), "{printed}");
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(value: f64, unit: &str) -> Option<Measured<'_>> {
        Some(Measured { value, unit })
    }

    #[test]
    fn vitals_need_units_and_physiological_values() {
        let ok = VitalsInput {
            temperature: m(36.8, "℃"),
            systolic: m(128.0, "mmHg"),
            diastolic: m(76.0, "mmHg"),
            pulse: m(72.0, "bpm"),
            spo2: m(97.0, "%"),
            weight: m(48.2, "kg"),
        }
        .parse()
        .unwrap();
        assert_eq!(
            ok.summary(),
            "体温 36.8℃ / 血圧 128/76 mmHg / 脈拍 72回/分 / SpO2 97% / 体重 48.2 kg"
        );
        let bad = |input: VitalsInput<'_>, field: &str| {
            let e = input.parse().unwrap_err();
            assert_eq!(e.field, field, "{}", e.message);
        };
        bad(
            VitalsInput {
                temperature: m(98.6, "℉"),
                ..Default::default()
            },
            "temperature",
        );
        bad(
            VitalsInput {
                temperature: m(45.0, "℃"),
                ..Default::default()
            },
            "temperature",
        );
        bad(
            VitalsInput {
                spo2: m(101.0, "%"),
                ..Default::default()
            },
            "spo2",
        );
        bad(
            VitalsInput {
                weight: m(110.0, "lb"),
                ..Default::default()
            },
            "weight",
        );
        bad(
            VitalsInput {
                systolic: m(80.0, "mmHg"),
                diastolic: m(90.0, "mmHg"),
                ..Default::default()
            },
            "diastolic",
        );
        bad(
            VitalsInput {
                systolic: m(120.0, "mmHg"),
                ..Default::default()
            },
            "diastolic",
        );
        bad(
            VitalsInput {
                pulse: m(f64::NAN, "bpm"),
                ..Default::default()
            },
            "pulse",
        );
        bad(VitalsInput::default(), "vitals");
    }

    #[test]
    fn bodies_are_cleaned_and_bounded() {
        assert_eq!(
            EntryBody::parse("  夜間の発熱あり\r\n解熱剤を使用\t38.2度 ")
                .unwrap()
                .as_str(),
            "夜間の発熱あり\n解熱剤を使用\t38.2度"
        );
        // Other control characters are refused, not silently dropped.
        assert_eq!(
            EntryBody::parse("解熱剤を使用\u{0007}").unwrap_err().field,
            "body"
        );
        assert_eq!(Reason::parse("誤記\u{0}です").unwrap_err().field, "reason");
        assert_eq!(EntryBody::parse(" \n ").unwrap_err().field, "body");
        assert!(EntryBody::parse(&"あ".repeat(5000)).is_ok());
        assert!(EntryBody::parse(&"あ".repeat(5001)).is_err());
        assert!(Reason::parse("x").is_err());
    }
}
