use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use renrakucho_core::Password;

/// argon2id cost. The default is OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords with argon2id. Verifying against an unknown account costs the
/// same as against a known one ([`PasswordHasher::verify`] with `None`), so timing does not
/// tell which login IDs exist.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(params: PasswordParams) -> Result<Self, argon2::Error> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon2
            .hash_password(b"no account has this password", &salt)
            .map_err(|_| argon2::Error::AlgorithmInvalid)?
            .to_string();
        Ok(Self { argon2, dummy_hash })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
    pub fn hash(&self, password: &Password) -> String {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2
            .hash_password(password.expose().as_bytes(), &salt)
            .expect("argon2 hashing with valid parameters does not fail")
            .to_string()
    }

    /// True when `password` matches `stored`. With no stored hash (unknown account) it still
    /// runs one full verification and returns false.
    pub fn verify(&self, password: &Password, stored: Option<&str>) -> bool {
        let (hash, known) = match stored {
            Some(h) => (h, true),
            None => (self.dummy_hash.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            tracing::error!("a stored password hash is not a valid PHC string");
            return false;
        };
        // The stored hash's own parameters are used, so hashes made under older settings
        // still verify.
        let ok = self
            .argon2
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordHasher {
        PasswordHasher::new(PasswordParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = fast();
        let pw = Password::new_secret("a long enough secret".into()).unwrap();
        let a = h.hash(&pw);
        let b = h.hash(&pw);
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "each hash has its own salt");
        assert!(h.verify(&pw, Some(&a)));
        let wrong = Password::for_sign_in("another secret".into()).unwrap();
        assert!(!h.verify(&wrong, Some(&a)));
        assert!(!h.verify(&pw, None), "no account never verifies");
        assert!(!h.verify(&pw, Some("not a hash")));
    }
}
