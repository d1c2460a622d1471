//! The settings of the checkout and notifier roles, read from the
//! process's `STAMPEDE_*` variables (the shared ones are in
//! `stampede_common::Config`). Checkout's tables are the ledger the
//! persister writes (`stampede_persister::MIGRATIONS`): no migrations here.

use stampede_common::config::{ConfigError, Env};
use stampede_common::mail::MailConfig;
use stampede_inventory::streams::ReaderOptions;

use crate::codes::TicketKeys;

/// What only the checkout and notifier roles read.
#[derive(Clone, Debug)]
pub struct CheckoutConfig {
    /// How long an idempotency key answers with its first payment.
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
    /// Where the notifier's e-mail goes: SMTP (`STAMPEDE_SMTP_URL`) or the
    /// mail directory (`STAMPEDE_MAIL_DIR`).
    pub mail: MailConfig,
    /// How the notifier reads the streams (the stream workers' shared
    /// `STAMPEDE_PERSISTER_*` settings; the notifier caps the batch).
    pub reader: ReaderOptions,
    /// The Ed25519 key ticket codes are signed with, and the previous one
    /// (still accepted at the gate); `None` when not configured.
    pub ticket_keys: Option<TicketKeys>,
}

impl CheckoutConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            idempotency_seconds: env.ranged_or("STAMPEDE_IDEMPOTENCY_SECONDS", 86_400, 60, 30 * 86_400)?,
            payment_latency_ms: env.ranged_or("STAMPEDE_PAYMENT_LATENCY_MS", 0, 0, 60_000)?,
            payment_decline_rate: env.ranged_or("STAMPEDE_PAYMENT_DECLINE_RATE", 0.0, 0.0, 1.0)?,
            payment_ledger_dir: env.optional("STAMPEDE_PAYMENT_LEDGER_DIR"),
            charge_grace_seconds: env.ranged_or("STAMPEDE_CHARGE_GRACE_SECONDS", 120, 1, 86_400)?,
            charge_reconcile_seconds: env.ranged_or("STAMPEDE_CHARGE_RECONCILE_SECONDS", 60, 1, 86_400)?,
            confirm_replicas: env.ranged_or("STAMPEDE_CONFIRM_REPLICAS", 0, 0, 16)?,
            confirm_wait_ms: env.ranged_or("STAMPEDE_CONFIRM_WAIT_MS", 500, 1, 1500)?,
            mail: MailConfig::from_env(env)?,
            reader: ReaderOptions::from_env(env)?,
            ticket_keys: TicketKeys::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_a_bad_value_names_its_variable() {
        let cfg = CheckoutConfig::from_env(&Env::from_pairs([])).expect("defaults");
        assert_eq!((cfg.charge_grace_seconds, cfg.confirm_wait_ms), (120, 500));
        assert_eq!(cfg.reader.max_deliveries, 5);
        for (var, bad) in [("STAMPEDE_PAYMENT_DECLINE_RATE", "1.5"), ("STAMPEDE_PERSISTER_BATCH", "0")] {
            let err = CheckoutConfig::from_env(&Env::from_pairs([(var, bad)])).expect_err("must fail");
            assert_eq!(err.var, var);
        }
    }
}
