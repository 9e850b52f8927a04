//! The network's rules for a new password (MHLW guideline 6.0; NIST SP 800-63B): long enough,
//! not a common or easily guessed one, not containing the login ID. Reuse of the account's
//! last passwords is checked against their hashes by [`crate::Authenticator::change_password`].
//! Each refusal names its rule, in Japanese and English.

use renrakucho_core::{InvalidValue, Password};

/// The rules a new password must meet. `min_chars` is a setting (at least
/// [`Password::MIN_CHARS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRules {
    pub min_chars: usize,
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            min_chars: Password::MIN_CHARS,
        }
    }
}

/// zxcvbn's score from which a password counts as not easily guessed: 3 is "safely
/// unguessable: moderate protection from an offline slow-hash scenario" (about 10^8 guesses
/// or more), which argon2id makes the scenario that matters.
const ENOUGH: zxcvbn::Score = zxcvbn::Score::Three;

/// zxcvbn's estimate grows with the input; what follows the first 100 characters adds
/// strength anyway, and is not looked at (as zxcvbn's own front ends do).
const ESTIMATED_CHARS: usize = 100;

impl PasswordRules {
    /// `raw` as the new password of the account `login_id`, or the rule it breaks.
    /// `context` holds other words a guesser would try first for this person (their name, the
    /// facility's code): a password made of them is refused like a common one.
    pub fn check(
        &self,
        raw: String,
        login_id: &str,
        context: &[&str],
    ) -> Result<Password, InvalidValue> {
        let count = raw.chars().count();
        if count < self.min_chars {
            return Err(InvalidValue::new(
                "new_password",
                format!(
                    "パスワードは{n}文字以上にしてください（長さの規則） / a password needs at \
                     least {n} characters (the length rule)",
                    n = self.min_chars
                ),
            ));
        }
        let password = Password::new_secret(raw).map_err(|e| InvalidValue {
            field: "new_password",
            ..e
        })?;
        let lower = password.expose().to_lowercase();
        let login = login_id.trim().to_lowercase();
        if !login.is_empty() && lower.contains(&login) {
            return Err(InvalidValue::new(
                "new_password",
                "ユーザーIDを含まないパスワードにしてください（ユーザーIDの規則） / a password \
                 may not contain the login ID (the login ID rule)",
            ));
        }
        let head: String = password.expose().chars().take(ESTIMATED_CHARS).collect();
        let mut inputs: Vec<&str> = vec![login_id];
        inputs.extend(context.iter().copied().filter(|w| !w.trim().is_empty()));
        if zxcvbn::zxcvbn(&head, &inputs).score() < ENOUGH {
            return Err(InvalidValue::new(
                "new_password",
                "よく使われるパスワード、または単語・キーボードの並び・連続した文字などから推測されやすい\
                 パスワードです（よく使われるパスワードの規則） / this password is common or easy \
                 to guess from words, keyboard patterns or sequences (the common password rule)",
            ));
        }
        Ok(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(raw: &str) -> String {
        PasswordRules::default()
            .check(raw.into(), "sato", &["佐藤 花子", "IZ-CLINIC"])
            .map(|_| ())
            .expect_err(raw)
            .message
    }

    #[test]
    fn each_refusal_names_its_rule() {
        assert!(refusal("short one").contains("length rule"));
        assert!(refusal("my-name-is-SATO-at-work").contains("login ID rule"));
        for common in [
            "password1234",
            "qwertyuiopasdf",
            "123456789012",
            "aaaaaaaaaaaaaaaa",
            "iloveyouiloveyou",
        ] {
            assert!(refusal(common).contains("common password rule"), "{common}");
        }
        assert_eq!(
            PasswordRules::default()
                .check("a\u{0}bcdefghijklmnop".into(), "sato", &[])
                .map(|_| ())
                .unwrap_err()
                .field,
            "new_password"
        );
    }

    #[test]
    fn long_unpredictable_passwords_pass() {
        for good in [
            "correct horse battery staple",
            "Umegaoka-7-kaidan-no-neko",
            "訪問看護の朝は早いけれど楽しい",
            "tJ4#qV9!mZ2&",
        ] {
            PasswordRules::default()
                .check(good.into(), "sato", &["佐藤 花子"])
                .unwrap_or_else(|e| panic!("{good}: {}", e.message));
        }
    }

    #[test]
    fn the_length_is_a_setting() {
        let rules = PasswordRules { min_chars: 16 };
        let e = rules
            .check("tJ4#qV9!mZ2&x".into(), "sato", &[])
            .map(|_| ())
            .unwrap_err();
        assert!(e.message.contains("16"), "{}", e.message);
        rules.check("tJ4#qV9!mZ2&xP7*".into(), "sato", &[]).unwrap();
    }
}
