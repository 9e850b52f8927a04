//! Searching encrypted names: a keyed HMAC of a normalised form of the name (a "blind index").
//! The database stores and compares these terms; without the key it cannot compute the term
//! of a guessed name, so it learns nothing but equality.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

const DOMAIN: &[u8] = b"renrakucho.name.v1";
const CARD_DOMAIN: &[u8] = b"renrakucho.card.v1";
const BIRTH_DOMAIN: &[u8] = b"renrakucho.card-birth.v1";

/// The normalised form a name is indexed and searched by: NFKC (full-width letters and
/// half-width katakana become their ordinary forms), katakana as hiragana, lower case, and no
/// spaces, so that "ヤマダ　タロウ", "やまだ たろう" and "ﾔﾏﾀﾞﾀﾛｳ" are one name.
pub fn normalize_name(name: &str) -> String {
    name.nfkc()
        .filter(|c| !c.is_whitespace())
        .map(katakana_to_hiragana)
        .flat_map(char::to_lowercase)
        .collect()
}

fn katakana_to_hiragana(c: char) -> char {
    match c {
        // ァ..ヶ and the iteration marks ヽヾ have hiragana counterparts 0x60 below.
        '\u{30A1}'..='\u{30F6}' | '\u{30FD}'..='\u{30FE}' => {
            char::from_u32(c as u32 - 0x60).unwrap_or(c)
        }
        _ => c,
    }
}

/// The terms a name is indexed under: the whole name and, when it has several parts
/// (family and given name), each part, so either can be searched alone.
pub fn name_terms(name: &str) -> Vec<String> {
    let mut terms = vec![normalize_name(name)];
    let parts: Vec<String> = name
        .nfkc()
        .collect::<String>()
        .split_whitespace()
        .map(normalize_name)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() > 1 {
        terms.extend(parts);
    }
    terms.retain(|t| !t.is_empty());
    terms.sort();
    terms.dedup();
    terms
}

/// The network's blind-index key, unwrapped.
pub struct BlindIndexKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(**redacted**)")
    }
}

impl BlindIndexKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> Self {
        Self { key }
    }

    /// The stored term of an already normalised name.
    pub fn term(&self, normalized: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes keys of any length");
        mac.update(DOMAIN);
        mac.update(normalized.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The stored terms of a name ([`name_terms`], each keyed).
    pub fn terms(&self, name: &str) -> Vec<Vec<u8>> {
        name_terms(name).iter().map(|t| self.term(t)).collect()
    }

    /// The lookup of a patient's card number (its canonical form): what `patient_cards` is
    /// searched by. Another domain than names', so that no name term ever equals a card's.
    pub fn card_lookup(&self, canonical_number: &str) -> [u8; 32] {
        self.mac(&[CARD_DOMAIN, canonical_number.as_bytes()])
    }

    /// What confirms a card: the patient and the date of birth (`YYYY-MM-DD`), keyed, so the
    /// database compares nothing it could guess from a list of dates.
    pub fn birth_check(&self, patient: uuid::Uuid, birth_date: &str) -> [u8; 32] {
        self.mac(&[BIRTH_DOMAIN, patient.as_bytes(), birth_date.as_bytes()])
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_name_normalise_alike() {
        let forms = [
            "ヤマダ　タロウ",
            "やまだ たろう",
            "ﾔﾏﾀﾞ ﾀﾛｳ",
            " ヤマダタロウ ",
        ];
        for form in forms {
            assert_eq!(normalize_name(form), "やまだたろう", "{form:?}");
        }
        assert_eq!(normalize_name("ＹＡＭＡＤＡ Taro"), "yamadataro");
        assert_eq!(normalize_name("山田　太郎"), "山田太郎");
        assert_eq!(normalize_name("ヴァン"), "ゔぁん");
        assert_eq!(
            normalize_name("ラーメン"),
            "らーめん",
            "the long-vowel mark stays"
        );
    }

    #[test]
    fn a_name_is_indexed_whole_and_by_its_parts() {
        assert_eq!(
            name_terms("山田　太郎"),
            vec!["太郎".to_string(), "山田".into(), "山田太郎".into()]
        );
        assert_eq!(name_terms("やまだ"), vec!["やまだ".to_string()]);
        assert!(name_terms("   ").is_empty());
    }

    #[test]
    fn terms_depend_on_the_key_and_reveal_nothing_readable() {
        let a = BlindIndexKey::new(Zeroizing::new([1; 32]));
        let b = BlindIndexKey::new(Zeroizing::new([2; 32]));
        assert_eq!(a.terms("ヤマダ タロウ"), a.terms("やまだ　たろう"));
        assert_ne!(a.term("やまだ"), b.term("やまだ"));
        assert_eq!(a.term("やまだ").len(), 32);
        assert!(!format!("{a:?}").contains('1'));
    }

    #[test]
    fn card_terms_are_keyed_and_apart_from_name_terms() {
        let a = BlindIndexKey::new(Zeroizing::new([1; 32]));
        let b = BlindIndexKey::new(Zeroizing::new([2; 32]));
        let n = "7K3MQ9TX2HCEWR4P";
        assert_ne!(a.card_lookup(n), b.card_lookup(n));
        assert_ne!(a.card_lookup(n).to_vec(), a.term(n));
        let p = uuid::Uuid::from_u128(7);
        assert_eq!(
            a.birth_check(p, "1940-01-15"),
            a.birth_check(p, "1940-01-15")
        );
        assert_ne!(
            a.birth_check(p, "1940-01-15"),
            a.birth_check(p, "1940-01-16")
        );
        assert_ne!(
            a.birth_check(p, "1940-01-15"),
            a.birth_check(uuid::Uuid::from_u128(8), "1940-01-15")
        );
    }
}
