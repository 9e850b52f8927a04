//! The number printed on a patient's card (連絡帳カード), typed by another facility in an
//! emergency (docs/adr/0018-break-glass-identification.md).
//!
//! It is a random identifier of its own, not the patient's ID: 15 random characters of
//! Crockford's base 32 (75 bits) and a check character (Luhn mod 32), written in four groups of
//! four, e.g. `7K3M-Q9TX-2HCE-WR4P`. Typing is forgiving: lower case, full-width characters,
//! spaces and hyphens are accepted, `I`/`L` read as `1` and `O` as `0`; a mistyped character or
//! two swapped neighbours fail the check before anything is looked up.

use crate::InvalidValue;

/// Crockford's base-32 alphabet: no I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Random characters; one check character follows.
const RANDOM_CHARS: usize = 15;
/// Random bytes that feed the characters (75 of their 80 bits are used).
pub const CARD_RANDOM_BYTES: usize = 10;

/// A card number with a valid check character, in its canonical form (16 characters, no
/// separators, upper case).
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl std::fmt::Debug for CardNumber {
    // A card number opens a notebook together with a birth date: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardNumber(**redacted**)")
    }
}

fn value_of(c: char) -> Option<u32> {
    let c = match c.to_ascii_uppercase() {
        'I' | 'L' => '1',
        'O' => '0',
        other => other,
    };
    ALPHABET
        .iter()
        .position(|&a| a as char == c)
        .map(|p| p as u32)
}

/// Luhn mod 32 over the values: the check character that makes the whole sequence valid.
fn check_value(values: &[u32]) -> u32 {
    let mut sum = 0;
    // From the right, every second value (starting with the rightmost) is doubled.
    for (i, v) in values.iter().rev().enumerate() {
        let mut addend = if i % 2 == 0 { v * 2 } else { *v };
        addend = addend / 32 + addend % 32;
        sum += addend;
    }
    (32 - sum % 32) % 32
}

impl CardNumber {
    /// A new number from `CARD_RANDOM_BYTES` random bytes (the caller draws them from the
    /// operating system's generator).
    pub fn from_random(bytes: [u8; CARD_RANDOM_BYTES]) -> Self {
        let mut bits: u128 = 0;
        for b in bytes {
            bits = (bits << 8) | u128::from(b);
        }
        let values: Vec<u32> = (0..RANDOM_CHARS)
            .map(|i| ((bits >> (5 * i)) & 31) as u32)
            .collect();
        let check = check_value(&values);
        let text = values
            .iter()
            .chain(std::iter::once(&check))
            .map(|&v| ALPHABET[v as usize] as char)
            .collect();
        Self(text)
    }

    /// Reads a number as a person typed it.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        use unicode_normalization::UnicodeNormalization;
        let invalid = || {
            InvalidValue::new(
                "card_number",
                "カード番号は連絡帳カードに印刷された16文字（例: 7K3M-Q9TX-2HCE-WR4P）を入力してください。入力ミスの可能性があります / the card number is the 16 characters printed on the patient's card (e.g. 7K3M-Q9TX-2HCE-WR4P); please check it for typing errors",
            )
        };
        let mut values = Vec::with_capacity(RANDOM_CHARS + 1);
        for c in raw.nfkc() {
            if c.is_whitespace() || c == '-' || c == 'ー' || c == '－' {
                continue;
            }
            values.push(value_of(c).ok_or_else(invalid)?);
            if values.len() > RANDOM_CHARS + 1 {
                return Err(invalid());
            }
        }
        if values.len() != RANDOM_CHARS + 1 {
            return Err(invalid());
        }
        let (body, check) = values.split_at(RANDOM_CHARS);
        if check_value(body) != check[0] {
            return Err(invalid());
        }
        Ok(Self(
            values
                .iter()
                .map(|&v| ALPHABET[v as usize] as char)
                .collect(),
        ))
    }

    /// The canonical form (16 characters): what the blind index is computed over.
    pub fn canonical(&self) -> &str {
        &self.0
    }

    /// As printed on the card: four groups of four.
    pub fn printed(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars
            .chunks(4)
            .map(|g| g.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_number_reads_back_in_every_spelling() {
        let n = CardNumber::from_random([7, 1, 200, 33, 90, 255, 0, 18, 64, 99]);
        assert_eq!(n.canonical().len(), 16);
        let printed = n.printed();
        assert_eq!(printed.len(), 19);
        assert_eq!(CardNumber::parse(&printed).unwrap(), n);
        assert_eq!(CardNumber::parse(&printed.to_lowercase()).unwrap(), n);
        let spaced = printed.replace('-', " ");
        assert_eq!(CardNumber::parse(&spaced).unwrap(), n);
        let wide: String = printed
            .chars()
            .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
            .collect();
        assert_eq!(CardNumber::parse(&wide).unwrap(), n, "full-width input");
    }

    #[test]
    fn one_wrong_character_or_a_swap_fails_the_check() {
        let n = CardNumber::from_random([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let chars: Vec<char> = n.canonical().chars().collect();
        for i in 0..chars.len() {
            for &a in ALPHABET {
                let a = a as char;
                if a == chars[i] {
                    continue;
                }
                let mut typo = chars.clone();
                typo[i] = a;
                let typo: String = typo.into_iter().collect();
                assert!(CardNumber::parse(&typo).is_err(), "{typo}");
            }
        }
        for i in 0..chars.len() - 1 {
            if chars[i] == chars[i + 1] {
                continue;
            }
            let mut swapped = chars.clone();
            swapped.swap(i, i + 1);
            let swapped: String = swapped.into_iter().collect();
            // Luhn mod N misses only the swap of the two values that double into each other.
            let missed = CardNumber::parse(&swapped).is_ok();
            let pair = (value_of(chars[i]).unwrap(), value_of(chars[i + 1]).unwrap());
            assert!(!missed || pair == (0, 31) || pair == (31, 0), "{swapped}");
        }
    }

    #[test]
    fn wrong_lengths_and_characters_are_refused_with_the_field_named() {
        for raw in [
            "",
            "ABCD",
            "7K3M-Q9TX-2HCE-WR4P-X",
            "7K3M-Q9TX-2HCE-WR4U",
            "0196-…",
        ] {
            let e = CardNumber::parse(raw).unwrap_err();
            assert_eq!(e.field, "card_number");
            assert!(e.message.contains("カード番号"));
        }
        // A patient ID (what cards used to carry) is not a card number.
        assert!(CardNumber::parse("0193a7d2-6f1e-7c2a-9b1d-3f4e5a6b7c8d").is_err());
    }

    #[test]
    fn look_alike_letters_read_as_digits_and_the_number_never_prints() {
        let n = CardNumber::from_random([0; CARD_RANDOM_BYTES]);
        assert_eq!(n.canonical(), "0000000000000000");
        assert_eq!(CardNumber::parse("oooo-OOOO-0000-000o").unwrap(), n);
        assert_eq!(format!("{n:?}"), "CardNumber(**redacted**)");
    }
}
