//! The catalog role's own settings, read from the process's `STAMPEDE_*`
//! variables (the shared ones are in `stampede_common::Config`).

use stampede_common::config::{ConfigError, Env};
use stampede_common::db::Migration;

/// The catalog's tables (events, sections) and the audit log, which the
/// catalog writes most of. Migration 9 also widens auth's role check, so a
/// database needs auth's migrations too (`stampede::migrations()` has all).
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 2, name: "catalog", sql: include_str!("../migrations/0002_catalog.sql") },
    Migration { version: 9, name: "organisers_audit", sql: include_str!("../migrations/0009_organisers_audit.sql") },
    Migration {
        version: 10,
        name: "verified_email_required",
        sql: include_str!("../migrations/0010_verified_email_required.sql"),
    },
];

/// What only the catalog reads.
#[derive(Clone, Debug)]
pub struct CatalogConfig {
    /// The shortest hold an event may be configured with.
    pub min_hold_seconds: i64,
    /// How long one snapshot of a section's seat map serves every request
    /// (the catalog builds it at most once per interval per process).
    pub seatmap_snapshot_ms: u64,
}

impl CatalogConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            min_hold_seconds: env.ranged_or("STAMPEDE_MIN_HOLD_SECONDS", 30, 1, 3600)?,
            seatmap_snapshot_ms: env.ranged_or("STAMPEDE_SEATMAP_SNAPSHOT_MS", 500, 1, 1000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_bad_value_names_its_variable() {
        let cfg = CatalogConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert_eq!((cfg.min_hold_seconds, cfg.seatmap_snapshot_ms), (30, 500));
        let err = CatalogConfig::from_env(&Env::from_pairs([("STAMPEDE_SEATMAP_SNAPSHOT_MS", "0")])).expect_err("must fail");
        assert_eq!(err.var, "STAMPEDE_SEATMAP_SNAPSHOT_MS");
    }
}
