//! The auth role's own settings, read from the process's `STAMPEDE_*`
//! variables (the shared ones are in `stampede_common::Config`).

use stampede_common::config::{ConfigError, Env};
use stampede_common::db::Migration;

/// The auth service's tables (users, refresh tokens).
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "auth", sql: include_str!("../migrations/0001_auth.sql") },
    Migration { version: 5, name: "gate_role", sql: include_str!("../migrations/0005_gate_role.sql") },
];

/// What only auth reads.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub refresh_token_seconds: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// An admin account created at start when both are set.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
}

impl AuthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            refresh_token_seconds: env.ranged_or("STAMPEDE_REFRESH_TOKEN_SECONDS", 30 * 86_400, 60, 365 * 86_400)?,
            argon2_memory_kib: env.ranged_or("STAMPEDE_ARGON2_MEMORY_KIB", 19_456, 8, 4_194_304)?,
            argon2_iterations: env.ranged_or("STAMPEDE_ARGON2_ITERATIONS", 2, 1, 64)?,
            admin_email: env.optional("STAMPEDE_ADMIN_EMAIL"),
            admin_password: env.optional("STAMPEDE_ADMIN_PASSWORD"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_bad_value_names_its_variable() {
        let cfg = AuthConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert_eq!((cfg.argon2_memory_kib, cfg.argon2_iterations), (19_456, 2));
        let err = AuthConfig::from_env(&Env::from_pairs([("STAMPEDE_ARGON2_ITERATIONS", "0")])).expect_err("must fail");
        assert_eq!(err.var, "STAMPEDE_ARGON2_ITERATIONS");
    }
}
