//! Password hashing with argon2id, off the async threads.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthConfig;

/// Hashes and verifies passwords at the configured cost.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of nothing in particular, verified against when the email is
    /// unknown so that sign-in takes as long either way.
    decoy: String,
}

impl Passwords {
    pub fn from_config(config: &AuthConfig) -> Self {
        let params = Params::new(config.argon2_memory_kib, config.argon2_iterations, 1, None)
            .unwrap_or_else(|_| Params::default());
        let mut me = Self { params, decoy: String::new() };
        me.decoy = me.hash_blocking("decoy-password-never-matches").unwrap_or_default();
        me
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(self.argon().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("hashing: {e}"))?.to_string())
    }

    /// The PHC string for `password`.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let me = self.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || me.hash_blocking(&password)).await?
    }

    /// Whether `password` matches `hash` (`None`: the user does not exist,
    /// and a decoy is verified to keep the timing the same).
    pub async fn verify(&self, password: &str, hash: Option<String>) -> bool {
        let me = self.clone();
        let password = password.to_owned();
        let exists = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.clone());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| me.argon().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        ok && exists
    }
}
