//! Password hashes: argon2id in the PHC string format (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
//! stored in the `credentials` table.
//!
//! The salt comes from the node's seeded rng, never the OS (argon2's `hash_password` would draw
//! it from `getrandom`), so a run is reproducible. The cost is a parameter: OWASP's argon2id
//! recommendation (19 MiB, 2 passes, 1 lane) costs about 30 ms a hash, which a simulation of
//! thousands of logins cannot afford; [`PasswordCost::simulation`] (64 KiB, 1 pass) costs about
//! 0.08 ms. Verification reads the cost from the stored hash, so hashes made under one cost
//! verify under another.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Salt length (the PHC format's recommended 16 bytes).
pub const SALT_LEN: usize = 16;
/// Longest PHC string accepted from the store (a corrupt or hostile row is rejected, not parsed).
pub const MAX_HASH_LEN: usize = 512;

/// argon2's cost parameters, under their names in RFC 9106.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordCost {
    /// Memory, in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl PasswordCost {
    /// OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1.
    pub fn production() -> Self {
        PasswordCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }

    /// argon2's smallest useful cost, for simulation only.
    pub fn simulation() -> Self {
        PasswordCost { memory_kib: 64, iterations: 1, parallelism: 1 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("invalid argon2 cost: {0}")]
    Cost(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Hashes and verifies passwords with one cost.
#[derive(Clone, Debug)]
pub struct Passwords {
    argon2: Argon2<'static>,
}

impl Passwords {
    pub fn new(cost: PasswordCost) -> Result<Self, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| PasswordError::Cost(e.to_string()))?;
        Ok(Passwords { argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params) })
    }

    /// The PHC string of `password` with a salt drawn from `rng`.
    pub fn hash(&self, password: &str, rng: &mut impl RngCore) -> Result<String, PasswordError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        let hash = self
            .argon2
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the stored PHC string (false for a malformed one).
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        phc.len() <= MAX_HASH_LEN && self.argon2.verify_password(password.as_bytes(), phc).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn hashes_verify_and_depend_on_the_seeded_salt() {
        let p = Passwords::new(PasswordCost::simulation()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let h = p.hash("correct horse", &mut rng).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(p.verify("correct horse", &h));
        assert!(!p.verify("correct horsf", &h));
        assert!(!p.verify("", &h));
        let again = p.hash("correct horse", &mut ChaCha8Rng::seed_from_u64(7)).unwrap();
        assert_eq!(h, again, "same seed, same salt, same hash");
        let other = p.hash("correct horse", &mut rng).unwrap();
        assert_ne!(h, other, "a fresh salt per hash");
    }

    #[test]
    fn a_hash_verifies_under_another_cost_and_junk_never_does() {
        let cheap = Passwords::new(PasswordCost::simulation()).unwrap();
        let dearer = Passwords::new(PasswordCost { memory_kib: 128, iterations: 2, parallelism: 1 }).unwrap();
        let h = dearer.hash("pw-12345678", &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert!(cheap.verify("pw-12345678", &h));
        for junk in ["", "plain", "$argon2id$v=19$m=64,t=1,p=1$$", &"$".repeat(600)] {
            assert!(!cheap.verify("pw-12345678", junk), "{junk}");
        }
        assert!(Passwords::new(PasswordCost { memory_kib: 1, iterations: 0, parallelism: 0 }).is_err());
    }
}
