//! The persister role's own settings, read from the process's `STAMPEDE_*`
//! variables (the shared ones are in `stampede_common::Config`), and its
//! tables.

use stampede_common::config::{ConfigError, Env};
use stampede_common::db::Migration;
use stampede_inventory::streams::ReaderOptions;

/// The ledger the persister writes from the streams (holds, orders,
/// order seats, payments, tickets, ticket transfers, resale listings and payouts); checkout reads it. The persister also reads the
/// catalog's events and sections (`stampede_catalog::MIGRATIONS`).
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 3, name: "ledger", sql: include_str!("../migrations/0003_ledger.sql") },
    Migration { version: 4, name: "tickets", sql: include_str!("../migrations/0004_tickets.sql") },
    Migration { version: 6, name: "ticket transfers", sql: include_str!("../migrations/0006_ticket_transfers.sql") },
    Migration { version: 7, name: "resale", sql: include_str!("../migrations/0007_resale.sql") },
    // After the catalog's 9, which makes the audit log.
    Migration { version: 11, name: "check-in audit", sql: include_str!("../migrations/0011_check_in_audit.sql") },
];

/// What only the persister reads.
#[derive(Clone, Debug)]
pub struct PersisterConfig {
    /// How the worker reads the streams (`STAMPEDE_PERSISTER_BATCH`,
    /// `STAMPEDE_PERSISTER_CLAIM_IDLE_MS`, `STAMPEDE_PERSISTER_MAX_DELIVERIES`).
    pub reader: ReaderOptions,
}

impl PersisterConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { reader: ReaderOptions::from_env(env)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_bad_value_names_its_variable() {
        let cfg = PersisterConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert_eq!((cfg.reader.batch, cfg.reader.max_deliveries), (1000, 5));
        assert_eq!(cfg.reader.claim_idle, std::time::Duration::from_secs(30));
        for (var, bad) in [("STAMPEDE_PERSISTER_BATCH", "0"), ("STAMPEDE_PERSISTER_CLAIM_IDLE_MS", "soon")] {
            let err = PersisterConfig::from_env(&Env::from_pairs([(var, bad)])).expect_err("must fail");
            assert_eq!(err.var, var);
        }
    }
}
