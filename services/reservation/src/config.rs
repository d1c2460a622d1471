//! The settings of the reservation and expiry roles, read from the
//! process's `STAMPEDE_*` variables (the shared ones are in
//! `stampede_common::Config`). Neither role has tables: no migrations here.

use stampede_common::config::{ConfigError, Env};

/// What only the reservation and expiry roles read.
#[derive(Clone, Debug)]
pub struct ReservationConfig {
    /// Waiting room: places admitted the moment a sale starts …
    pub queue_initial_admit: i64,
    /// … and places admitted each second after that.
    pub queue_admit_per_second: i64,
    /// How often the expiry worker sweeps every event for lapsed holds.
    pub expiry_sweep_ms: u64,
    /// How long a finished hold (released, expired, paid) stays in Redis at
    /// least; the expiry worker drops it after that, once the persister has
    /// committed it to Postgres.
    pub finished_hold_retention_ms: i64,
}

impl ReservationConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            queue_initial_admit: env.ranged_or("STAMPEDE_QUEUE_INITIAL_ADMIT", 100, 0, 100_000_000)?,
            queue_admit_per_second: env.ranged_or("STAMPEDE_QUEUE_ADMIT_PER_SECOND", 200, 0, 1_000_000)?,
            expiry_sweep_ms: env.ranged_or("STAMPEDE_EXPIRY_SWEEP_MS", 250, 10, 600_000)?,
            finished_hold_retention_ms: env.ranged_or("STAMPEDE_FINISHED_HOLD_RETENTION_SECONDS", 600, 0, 30 * 86_400)?
                * 1000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_bad_value_names_its_variable() {
        let cfg = ReservationConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert_eq!((cfg.queue_initial_admit, cfg.queue_admit_per_second), (100, 200));
        assert_eq!(cfg.finished_hold_retention_ms, 600_000);
        for (var, bad) in [("STAMPEDE_QUEUE_ADMIT_PER_SECOND", "-1"), ("STAMPEDE_QUEUE_INITIAL_ADMIT", "lots")] {
            let err = ReservationConfig::from_env(&Env::from_pairs([(var, bad)])).expect_err("must fail");
            assert_eq!(err.var, var);
        }
    }
}
