use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
/// tell which login IDs exist. How many verifications ran is counted
/// ([`PasswordHasher::verifications`]): that every kind of refusal runs exactly one is checked
/// without a clock (docs/performance.md measures what it costs).
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    dummy_hash: String,
    /// Full argon2id verifications run, by this hasher and its clones.
    verifications: Arc<AtomicU64>,
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
        Ok(Self {
            argon2,
            dummy_hash,
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// How many full argon2id verifications this hasher (with its clones) has run.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
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
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = self
            .argon2
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok();
        ok && known
    }

    /// Whether `stored` was made with other argon2id parameters than this hasher's (the
    /// settings changed since): the password is hashed again at its next sign-in.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        let current = self.argon2.params();
        parsed.algorithm != Algorithm::Argon2id.ident()
            || parsed.version != Some(Version::V0x13.into())
            || params.m_cost() != current.m_cost()
            || params.t_cost() != current.t_cost()
            || params.p_cost() != current.p_cost()
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

    /// The cost of a hash: its algorithm, version and parameters (`m`, `t`, `p`), without the
    /// salt and the output.
    fn cost(phc: &str) -> String {
        let parsed = PasswordHash::new(phc).unwrap();
        format!(
            "{} {:?} {}",
            parsed.algorithm, parsed.version, parsed.params
        )
    }

    #[test]
    fn a_hash_made_with_other_parameters_needs_rehashing() {
        let pw = Password::new_secret("a long enough secret".into()).unwrap();
        let old = fast().hash(&pw);
        let newer = PasswordHasher::new(PasswordParams {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        assert!(newer.needs_rehash(&old));
        assert!(!fast().needs_rehash(&old));
        let again = newer.hash(&pw);
        assert!(!newer.needs_rehash(&again));
        assert!(newer.verify(&pw, Some(&old)), "the old hash still verifies");
    }

    #[test]
    fn an_unknown_account_costs_one_verification_like_a_known_one() {
        let h = PasswordHasher::new(PasswordParams {
            memory_kib: 2048,
            iterations: 3,
            parallelism: 1,
        })
        .unwrap();
        let pw = Password::new_secret("a long enough secret".into()).unwrap();
        let stored = h.hash(&pw);
        // The dummy hash an unknown account is verified against costs what a stored one does.
        assert_eq!(cost(&h.dummy_hash), cost(&stored));
        assert!(
            cost(&stored).contains("m=2048,t=3,p=1"),
            "{}",
            cost(&stored)
        );
        let clone = h.clone();
        for (stored, what) in [
            (Some(stored.as_str()), "a known account"),
            (None, "an unknown account"),
        ] {
            let before = h.verifications();
            clone.verify(&pw, stored);
            assert_eq!(h.verifications(), before + 1, "{what}: one verification");
        }
        // A stored value that is not a hash is logged, not verified.
        let before = h.verifications();
        h.verify(&pw, Some("not a hash"));
        assert_eq!(h.verifications(), before);
    }
}
