//! Configuration: environment variables with one prefix, `STAMPEDE_`, parsed
//! once at start into typed structs. A bad value fails start-up naming the
//! variable.
//!
//! This module holds the reader ([`Env`], [`ConfigError`]) and the settings
//! every role shares ([`Config`]: bind address and ports, stores, token keys,
//! body limit). Each service crate owns its own section, parsed from the same
//! [`Env`] (`Config::env`): `stampede_auth::AuthConfig`,
//! `stampede_catalog::CatalogConfig`, `stampede_reservation::ReservationConfig`,
//! `stampede_checkout::CheckoutConfig`, `stampede_persister::PersisterConfig`
//! (the stream reader's settings, `stampede_inventory::streams::ReaderOptions`).

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
#[derive(Clone)]
pub struct Env {
    vars: HashMap<String, String>,
}

/// Names the variables set, never their values (secrets among them).
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env").field("vars", &names).finish()
    }
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

/// The settings every role shares. Each service reads its own section
/// from [`Config::env`].
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
    /// Lifetime of an access token: auth issues them, every role verifies.
    pub access_token_seconds: i64,
    /// The largest request body any HTTP role reads.
    pub max_body_bytes: usize,
    /// The variables this configuration was read from, for each service's
    /// own section.
    pub env: Env,
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
            max_body_bytes: env.ranged_or("STAMPEDE_MAX_BODY_BYTES", 64 * 1024, 256, 16 * 1024 * 1024)?,
            env: env.clone(),
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
        assert_eq!(cfg.max_body_bytes, 64 * 1024);
        assert_eq!(cfg.env.optional("STAMPEDE_REDIS_URL").as_deref(), Some("redis://127.0.0.1:1/"));
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
        for (var, bad) in [("STAMPEDE_MAX_BODY_BYTES", "1"), ("STAMPEDE_DB_POOL_SIZE", "many"), ("STAMPEDE_REDIS_PREFIX", "a:b")] {
            let mut pairs = base();
            pairs.push((var, bad));
            assert_eq!(Config::from_env(&Env::from_pairs(pairs)).expect_err("must fail").var, var);
        }
    }

    #[test]
    fn debug_names_variables_but_never_values() {
        let shown = format!("{:?}", Env::from_pairs(base()));
        assert!(shown.contains("STAMPEDE_JWT_SECRET"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
