//! The auth role's own settings, read from the process's `STAMPEDE_*`
//! variables (the shared ones are in `stampede_common::Config`).

use stampede_common::config::{ConfigError, Env};
use stampede_common::db::Migration;
use stampede_common::mail::MailConfig;

/// The auth service's tables (users, refresh tokens, account tokens).
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "auth", sql: include_str!("../migrations/0001_auth.sql") },
    Migration { version: 5, name: "gate_role", sql: include_str!("../migrations/0005_gate_role.sql") },
    Migration { version: 8, name: "account_tokens", sql: include_str!("../migrations/0008_account_tokens.sql") },
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
    /// How long a verify-e-mail token works.
    pub verify_token_seconds: i64,
    /// How long a password-reset token works.
    pub reset_token_seconds: i64,
    /// Account e-mails (verify, reset) per address and purpose per hour;
    /// requests past it still answer 202 and send nothing.
    pub account_emails_per_hour: i64,
    /// Where the links in account e-mails point (the web client's origin).
    pub public_url: String,
    /// How account e-mails are delivered (SMTP or the mail directory).
    pub mail: MailConfig,
}

impl AuthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            refresh_token_seconds: env.ranged_or("STAMPEDE_REFRESH_TOKEN_SECONDS", 30 * 86_400, 60, 365 * 86_400)?,
            argon2_memory_kib: env.ranged_or("STAMPEDE_ARGON2_MEMORY_KIB", 19_456, 8, 4_194_304)?,
            argon2_iterations: env.ranged_or("STAMPEDE_ARGON2_ITERATIONS", 2, 1, 64)?,
            admin_email: env.optional("STAMPEDE_ADMIN_EMAIL"),
            admin_password: env.optional("STAMPEDE_ADMIN_PASSWORD"),
            verify_token_seconds: env.ranged_or("STAMPEDE_VERIFY_TOKEN_SECONDS", 86_400, 60, 30 * 86_400)?,
            reset_token_seconds: env.ranged_or("STAMPEDE_RESET_TOKEN_SECONDS", 3_600, 60, 86_400)?,
            account_emails_per_hour: env.ranged_or("STAMPEDE_ACCOUNT_EMAILS_PER_HOUR", 3, 1, 1_000)?,
            public_url: env.string_or("STAMPEDE_PUBLIC_URL", "http://localhost:8080").trim_end_matches('/').to_owned(),
            mail: MailConfig::from_env(env)?,
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
