//! Configuration: environment variables with one prefix, `STAMPEDE_`, parsed
//! once at start into typed structs. A bad value fails start-up naming the
//! variable.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;

/// Every role's listening port, in one place so `serve all` and nginx agree.
pub const ROLES: [(&str, u16); 7] = [
    ("auth", 8101),
    ("catalog", 8102),
    ("reservation", 8103),
    ("checkout", 8104),
    ("persister", 8105),
    ("expiry", 8106),
    ("notifier", 8107),
];

/// A configuration error that names the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

/// Reads typed values from a variable map (the process environment in
/// production, a literal map in tests).
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().filter(|(k, _)| k.starts_with("STAMPEDE_")).collect() }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    fn raw(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.raw(var)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError { var: var.into(), reason: "is required but not set".into() })
    }

    pub fn string_or(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or(default).to_owned()
    }

    pub fn optional(&self, var: &str) -> Option<String> {
        self.raw(var).map(str::to_owned)
    }

    pub fn parse_or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(var) {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|e| ConfigError { var: var.into(), reason: format!("cannot parse {s:?}: {e}") }),
        }
    }

    /// Like [`Env::parse_or`], and the value must lie in `lo..=hi`.
    pub fn ranged_or<T>(&self, var: &str, default: T, lo: T, hi: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v = self.parse_or(var, default)?;
        if v < lo || v > hi {
            return Err(ConfigError { var: var.into(), reason: format!("{v} is outside {lo}..={hi}") });
        }
        Ok(v)
    }
}

/// The signing keys for access tokens. `previous` is still accepted for
/// verification during a key rotation, never used to sign.
#[derive(Clone, Debug)]
pub struct JwtKeys {
    pub kid: String,
    pub secret: String,
    pub previous: Option<(String, String)>,
}

/// Settings for the whole process. Each service reads the parts it needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind_host: IpAddr,
    pub ports: HashMap<&'static str, u16>,
    pub database_url: String,
    pub redis_url: String,
    /// Prefix of every Redis key; tests give each run its own.
    pub redis_prefix: String,
    pub db_pool_size: usize,
    pub jwt: JwtKeys,
    pub access_token_seconds: i64,
    pub refresh_token_seconds: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub max_body_bytes: usize,
    pub min_hold_seconds: i64,
    pub idempotency_seconds: i64,
    pub payment_latency_ms: u64,
    pub payment_decline_rate: f64,
    /// Where the mock payment provider keeps its ledger (charges and
    /// refunds) when set: shared by every process, surviving restarts.
    pub payment_ledger_dir: Option<String>,
    /// A charge this old that bought nothing (its hold lapsed or was paid
    /// by another charge, and no retry came) is refunded by the checkout
    /// role's charge reconciler.
    pub charge_grace_seconds: i64,
    /// How often the charge reconciler looks.
    pub charge_reconcile_seconds: u64,
    /// Replicas that must have a paid order's confirmation before checkout
    /// answers 201 (Redis `WAIT`); 0 waits for none.
    pub confirm_replicas: u32,
    /// How long checkout waits for them; a confirmation the replicas have
    /// not acknowledged by then is answered anyway (the order exists on the
    /// primary) and counted.
    pub confirm_wait_ms: u64,
    pub mail_dir: String,
    pub expiry_sweep_ms: u64,
    /// How long a finished hold (released, expired, paid) stays in Redis at
    /// least; the expiry worker drops it after that, once the persister has
    /// committed it to Postgres.
    pub finished_hold_retention_ms: i64,
    pub persister_batch: usize,
    pub persister_claim_idle_ms: u64,
    pub persister_max_deliveries: u64,
    /// Waiting room: places admitted the moment a sale starts …
    pub queue_initial_admit: i64,
    /// … and places admitted each second after that.
    pub queue_admit_per_second: i64,
    /// How long one snapshot of a section's seat map serves every request
    /// (the catalog builds it at most once per interval per process).
    pub seatmap_snapshot_ms: u64,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
}

impl Config {
    pub fn from_environment() -> Result<Self, ConfigError> {
        Self::from_env(&Env::from_process())
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let bind_host = env.parse_or("STAMPEDE_BIND_HOST", IpAddr::from([127, 0, 0, 1]))?;
        let mut ports = HashMap::new();
        for (role, default) in ROLES {
            let var = format!("STAMPEDE_{}_PORT", role.to_uppercase());
            ports.insert(role, env.parse_or(&var, default)?);
        }
        let secret = env.required("STAMPEDE_JWT_SECRET")?;
        if secret.len() < 32 {
            return Err(ConfigError { var: "STAMPEDE_JWT_SECRET".into(), reason: "must be at least 32 characters".into() });
        }
        let previous = match (env.optional("STAMPEDE_JWT_PREVIOUS_KID"), env.optional("STAMPEDE_JWT_PREVIOUS_SECRET")) {
            (Some(kid), Some(secret)) => Some((kid, secret)),
            (None, None) => None,
            _ => {
                return Err(ConfigError {
                    var: "STAMPEDE_JWT_PREVIOUS_SECRET".into(),
                    reason: "set both STAMPEDE_JWT_PREVIOUS_KID and STAMPEDE_JWT_PREVIOUS_SECRET, or neither".into(),
                });
            }
        };
        let redis_prefix = env.string_or("STAMPEDE_REDIS_PREFIX", "st");
        if !crate::ids::is_token(&redis_prefix, 32) {
            return Err(ConfigError { var: "STAMPEDE_REDIS_PREFIX".into(), reason: "must be 1-32 of [A-Za-z0-9_-]".into() });
        }
        Ok(Self {
            bind_host,
            ports,
            database_url: env.required("STAMPEDE_DATABASE_URL")?,
            redis_url: env.required("STAMPEDE_REDIS_URL")?,
            redis_prefix,
            db_pool_size: env.ranged_or("STAMPEDE_DB_POOL_SIZE", 16, 1, 512)?,
            jwt: JwtKeys { kid: env.string_or("STAMPEDE_JWT_KID", "k1"), secret, previous },
            access_token_seconds: env.ranged_or("STAMPEDE_ACCESS_TOKEN_SECONDS", 900, 1, 86_400)?,
            refresh_token_seconds: env.ranged_or("STAMPEDE_REFRESH_TOKEN_SECONDS", 30 * 86_400, 60, 365 * 86_400)?,
            argon2_memory_kib: env.ranged_or("STAMPEDE_ARGON2_MEMORY_KIB", 19_456, 8, 4_194_304)?,
            argon2_iterations: env.ranged_or("STAMPEDE_ARGON2_ITERATIONS", 2, 1, 64)?,
            max_body_bytes: env.ranged_or("STAMPEDE_MAX_BODY_BYTES", 64 * 1024, 256, 16 * 1024 * 1024)?,
            min_hold_seconds: env.ranged_or("STAMPEDE_MIN_HOLD_SECONDS", 30, 1, 3600)?,
            idempotency_seconds: env.ranged_or("STAMPEDE_IDEMPOTENCY_SECONDS", 86_400, 60, 30 * 86_400)?,
            payment_latency_ms: env.ranged_or("STAMPEDE_PAYMENT_LATENCY_MS", 0, 0, 60_000)?,
            payment_decline_rate: env.ranged_or("STAMPEDE_PAYMENT_DECLINE_RATE", 0.0, 0.0, 1.0)?,
            payment_ledger_dir: env.optional("STAMPEDE_PAYMENT_LEDGER_DIR"),
            charge_grace_seconds: env.ranged_or("STAMPEDE_CHARGE_GRACE_SECONDS", 120, 1, 86_400)?,
            charge_reconcile_seconds: env.ranged_or("STAMPEDE_CHARGE_RECONCILE_SECONDS", 60, 1, 86_400)?,
            confirm_replicas: env.ranged_or("STAMPEDE_CONFIRM_REPLICAS", 0, 0, 16)?,
            confirm_wait_ms: env.ranged_or("STAMPEDE_CONFIRM_WAIT_MS", 500, 1, 1500)?,
            mail_dir: env.string_or("STAMPEDE_MAIL_DIR", ".run/mail"),
            expiry_sweep_ms: env.ranged_or("STAMPEDE_EXPIRY_SWEEP_MS", 250, 10, 600_000)?,
            finished_hold_retention_ms: env.ranged_or("STAMPEDE_FINISHED_HOLD_RETENTION_SECONDS", 600, 0, 30 * 86_400)? * 1000,
            persister_batch: env.ranged_or("STAMPEDE_PERSISTER_BATCH", 1000, 1, 10_000)?,
            persister_claim_idle_ms: env.ranged_or("STAMPEDE_PERSISTER_CLAIM_IDLE_MS", 30_000, 100, 3_600_000)?,
            persister_max_deliveries: env.ranged_or("STAMPEDE_PERSISTER_MAX_DELIVERIES", 5, 1, 1000)?,
            queue_initial_admit: env.ranged_or("STAMPEDE_QUEUE_INITIAL_ADMIT", 100, 0, 100_000_000)?,
            queue_admit_per_second: env.ranged_or("STAMPEDE_QUEUE_ADMIT_PER_SECOND", 200, 0, 1_000_000)?,
            seatmap_snapshot_ms: env.ranged_or("STAMPEDE_SEATMAP_SNAPSHOT_MS", 500, 1, 1000)?,
            admin_email: env.optional("STAMPEDE_ADMIN_EMAIL"),
            admin_password: env.optional("STAMPEDE_ADMIN_PASSWORD"),
        })
    }

    pub fn port(&self, role: &str) -> u16 {
        self.ports.get(role).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("STAMPEDE_DATABASE_URL", "postgres://x@127.0.0.1/x"),
            ("STAMPEDE_REDIS_URL", "redis://127.0.0.1:1/"),
            ("STAMPEDE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]
    }

    #[test]
    fn defaults_apply() {
        let cfg = Config::from_env(&Env::from_pairs(base())).expect("valid");
        assert_eq!(cfg.port("reservation"), 8103);
        assert_eq!(cfg.min_hold_seconds, 30);
        assert_eq!((cfg.queue_initial_admit, cfg.queue_admit_per_second), (100, 200));
        assert_eq!(cfg.seatmap_snapshot_ms, 500);
    }

    #[test]
    fn bad_value_names_the_variable() {
        let mut pairs = base();
        pairs.push(("STAMPEDE_AUTH_PORT", "eighty"));
        let err = Config::from_env(&Env::from_pairs(pairs)).expect_err("must fail");
        assert_eq!(err.var, "STAMPEDE_AUTH_PORT");
        let mut pairs = base();
        pairs.retain(|(k, _)| *k != "STAMPEDE_REDIS_URL");
        assert_eq!(Config::from_env(&Env::from_pairs(pairs)).expect_err("must fail").var, "STAMPEDE_REDIS_URL");
        let mut pairs = base();
        pairs.push(("STAMPEDE_PAYMENT_DECLINE_RATE", "1.5"));
        assert_eq!(
            Config::from_env(&Env::from_pairs(pairs)).expect_err("must fail").var,
            "STAMPEDE_PAYMENT_DECLINE_RATE"
        );
        for (var, bad) in [
            ("STAMPEDE_QUEUE_ADMIT_PER_SECOND", "-1"),
            ("STAMPEDE_QUEUE_INITIAL_ADMIT", "lots"),
            ("STAMPEDE_SEATMAP_SNAPSHOT_MS", "0"),
        ] {
            let mut pairs = base();
            pairs.push((var, bad));
            assert_eq!(Config::from_env(&Env::from_pairs(pairs)).expect_err("must fail").var, var);
        }
    }
}
