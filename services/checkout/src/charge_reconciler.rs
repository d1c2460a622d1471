//! The charge reconciler: no charge keeps a buyer's money without an order.
//!
//! A payment request charges first and confirms second. If it dies in
//! between — the checkout process is killed, Redis stays away longer than
//! the request's patience, the client gives up and never retries with its
//! `Idempotency-Key` — the provider holds a captured charge that bought
//! nothing. The checkout role walks the provider's recent charges (every
//! `STAMPEDE_CHARGE_RECONCILE_SECONDS`) and decides each one from what
//! Redis and then Postgres know of its hold:
//!
//! - the hold was confirmed with this very charge: **kept**;
//! - the hold is still live (`held`, not yet past its expiry plus a clock
//!   margin): **waiting** — a retry may still confirm it;
//! - its hold released or expired, or paid by another charge: **refunded**
//!   at the provider and announced with `payment.refunded` on the event's
//!   stream (reason `stranded_hold_expired` / `stranded_already_paid`), like
//!   a refund of the payment route itself — unless Postgres has a captured
//!   payment with this charge, which it always asks last;
//! - its hold known nowhere, or confirmed in Redis with an order neither
//!   store can show: **unknown**, never refunded by a machine (it may be
//!   another deployment's charge, or data an operator must look at): logged
//!   as an error and counted, and looked at again every pass.
//!
//! Charges are looked at for 12 hours, half the time Redis keeps a finished
//! hold's record, so the hold is always in Redis unless Redis lost it.
//!
//! A charge younger than `STAMPEDE_CHARGE_GRACE_SECONDS` is left to its
//! request. The decision cannot race a confirmation: a hold that is
//! released, expired past the margin or confirmed never becomes confirmed
//! with another charge again. Refunds are idempotent at the provider, and
//! the announcement's payment id is derived from the charge, so two
//! reconcilers (two checkout processes) refunding one charge leave one
//! refunded payment in Postgres.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use stampede_common::Config;
use stampede_common::clock::now_ms;
use stampede_common::http;
use stampede_common::store::Redis;
use stampede_inventory::{EventKeys, HoldId, read_hold, read_order, redis_now_ms};
use tokio::sync::watch;

use crate::CheckoutConfig;
use crate::gateway::{PaymentGateway, ProviderCharge};
use crate::refunds::{Refunded, announce_refund, refund_at_provider};

/// How far a hold's expiry must lie behind Redis's clock (read at the start
/// of a pass; Redis's clock is the one the scripts judge expiry by) before
/// its charge is refunded.
const CLOCK_MARGIN_MS: i64 = 1_000;

/// How far back the reconciler looks. A hold Redis has already forgotten
/// (finished and persisted) is looked up in Postgres.
const LOOKBACK_MS: i64 = 12 * 3600 * 1000;

/// The `(verdict, reason)` label pairs of `charges_reconciled_total`.
const VERDICT_SERIES: [(&str, &str); 6] = [
    ("kept", "order"),
    ("waiting", "hold_live"),
    ("refunded", "stranded_hold_expired"),
    ("refunded", "stranded_already_paid"),
    ("unknown", "unaccounted"),
    ("failed", "error"),
];

/// What became of one charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its order exists.
    Kept,
    /// Its hold is still live: the request (or a retry) may yet confirm it.
    Waiting,
    /// Refunded, for this reason (`stranded_hold_expired`, `stranded_already_paid`).
    Refunded(&'static str),
    /// Neither store can tell what it bought: left for an operator.
    Unknown,
}

/// The tally of one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Charges old enough to decide, not yet refunded at the provider.
    pub examined: usize,
    pub kept: usize,
    pub waiting: usize,
    pub refunded: usize,
    /// Charges no store can account for (see [`Verdict::Unknown`]).
    pub unknown: usize,
    /// Charges whose refund or decision failed this time (tried again next pass).
    pub failed: usize,
}

pub struct ChargeReconciler<G: PaymentGateway> {
    db: Pool,
    redis: Redis,
    gateway: Arc<G>,
    prefix: String,
    grace_ms: i64,
    every: Duration,
    /// Charges created before this are all decided (kept or refunded).
    watermark: AtomicI64,
}

impl<G: PaymentGateway> ChargeReconciler<G> {
    pub fn build(config: &Config, checkout: &CheckoutConfig, db: Pool, redis: Redis, gateway: Arc<G>) -> Self {
        describe_counter!(
            "charges_reconciled_total",
            Unit::Count,
            "Verdicts of the charge reconciler, one per charge per pass that looked at it: kept, waiting (its hold still live), \
             refunded (by reason), unknown (left for an operator), failed (tried again next pass)."
        );
        // Every verdict at zero from the start, so the dashboard's panel has
        // its series before the first stranded charge.
        for (verdict, reason) in VERDICT_SERIES {
            counter!("charges_reconciled_total", "verdict" => verdict, "reason" => reason).increment(0);
        }
        counter!("charge_reconcile_passes_total").increment(0);
        describe_counter!("charge_reconcile_passes_total", Unit::Count, "Passes of the charge reconciler over the provider's charges.");
        describe_gauge!("charges_awaiting_hold", Unit::Count, "Charges older than the grace whose hold is still live, at the last pass.");
        gauge!("charges_awaiting_hold").set(0.0);
        Self {
            db,
            redis,
            gateway,
            prefix: config.redis_prefix.clone(),
            grace_ms: checkout.charge_grace_seconds * 1000,
            every: Duration::from_secs(checkout.charge_reconcile_seconds),
            watermark: AtomicI64::new(now_ms() - LOOKBACK_MS),
        }
    }

    /// Passes every `STAMPEDE_CHARGE_RECONCILE_SECONDS` until `stop`.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut stopped = std::pin::pin!(http::stopped(stop));
        loop {
            tokio::select! { _ = tokio::time::sleep(self.every) => {}, _ = &mut stopped => return }
            match self.pass().await {
                Ok(p) if p.refunded > 0 || p.failed > 0 => tracing::warn!(?p, "charge reconciliation refunded stranded charges"),
                Ok(p) => tracing::debug!(?p, "charge reconciliation"),
                Err(e) => tracing::warn!(error = %e, "charge reconciliation failed; trying again later"),
            }
        }
    }

    /// One pass over the charges not yet decided.
    pub async fn pass(&self) -> anyhow::Result<Pass> {
        let now = now_ms();
        let redis_now = redis_now_ms(&mut self.redis.clone()).await.context("reading Redis's clock")?;
        let since = self.watermark.load(Ordering::Relaxed);
        let charges = self.gateway.charges_since(since).await.context("listing the provider's charges")?;
        let cutoff = now - self.grace_ms;
        // The oldest charge not decided for good: the next pass starts there.
        let mut open = cutoff;
        let mut pass = Pass::default();
        for charge in charges.iter().filter(|c| !c.refunded) {
            if charge.created_ms > cutoff {
                continue;
            }
            pass.examined += 1;
            let verdict = match self.settle(charge, redis_now).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(charge = %charge.id, error = %e, "could not settle a charge");
                    pass.failed += 1;
                    counter!("charges_reconciled_total", "verdict" => "failed", "reason" => "error").increment(1);
                    open = open.min(charge.created_ms);
                    continue;
                }
            };
            match verdict {
                Verdict::Kept => {
                    pass.kept += 1;
                    counter!("charges_reconciled_total", "verdict" => "kept", "reason" => "order").increment(1);
                }
                Verdict::Waiting => {
                    pass.waiting += 1;
                    counter!("charges_reconciled_total", "verdict" => "waiting", "reason" => "hold_live").increment(1);
                    open = open.min(charge.created_ms);
                }
                Verdict::Refunded(reason) => {
                    pass.refunded += 1;
                    counter!("charges_reconciled_total", "verdict" => "refunded", "reason" => reason).increment(1);
                    tracing::warn!(charge = %charge.id, hold = %charge.hold, reason, "refunded a stranded charge");
                }
                Verdict::Unknown => {
                    pass.unknown += 1;
                    open = open.min(charge.created_ms);
                    counter!("charges_reconciled_total", "verdict" => "unknown", "reason" => "unaccounted").increment(1);
                    tracing::error!(charge = %charge.id, hold = %charge.hold, "a charge no store accounts for: check it by hand");
                }
            }
        }
        self.watermark.fetch_max(open, Ordering::Relaxed);
        counter!("charge_reconcile_passes_total").increment(1);
        gauge!("charges_awaiting_hold").set(pass.waiting as f64);
        Ok(pass)
    }

    /// Decides one charge, refunding it when it bought nothing; `now` is
    /// Redis's clock.
    async fn settle(&self, charge: &ProviderCharge, now: i64) -> anyhow::Result<Verdict> {
        let Some(hold) = HoldId::parse(&charge.hold) else {
            // Not a charge of ours to judge (no hold in its metadata).
            anyhow::bail!("the charge names no hold ({:?})", charge.hold);
        };
        if charge.user.parse::<i64>().is_err() {
            anyhow::bail!("the charge names no user ({:?})", charge.user);
        }
        let keys = EventKeys::new(&self.prefix, hold.event);
        let reason = match self.judge(charge, &hold, &keys, now).await? {
            Judged::Keep(verdict) => return Ok(verdict),
            Judged::Refund(reason) => reason,
        };
        // The last word before money moves: a captured payment with this
        // charge in Postgres means an order exists, whatever Redis said.
        if self.captured_in_postgres(&charge.id).await? {
            return Ok(Verdict::Kept);
        }
        refund_at_provider(self.gateway.as_ref(), &charge.id).await.context("refunding at the provider")?;
        let payment = format!("pay_{}", charge.id);
        let refunded = Refunded {
            hold: &hold.token,
            user: &charge.user,
            payment: &payment,
            amount_cents: charge.amount_cents,
            charge: &charge.id,
            reason,
        };
        announce_refund(&self.redis, &keys, &refunded).await.context("announcing the refund")?;
        counter!("payments_total", "outcome" => "refunded").increment(1);
        Ok(Verdict::Refunded(reason))
    }

    /// What the stores say of the charge's hold.
    async fn judge(&self, charge: &ProviderCharge, hold: &HoldId, keys: &EventKeys, now: i64) -> anyhow::Result<Judged> {
        let mut conn = self.redis.clone();
        let Some(rec) = read_hold(&mut conn, keys, &hold.token).await? else {
            return self.judge_in_postgres(charge, hold, now).await;
        };
        Ok(match rec.status.as_str() {
            "confirmed" => {
                let order = match &rec.order {
                    Some(order) => read_order(&mut conn, keys, order).await?,
                    None => None,
                };
                match order {
                    Some(o) if o.charge == charge.id => Judged::Keep(Verdict::Kept),
                    Some(_) => Judged::Refund("stranded_already_paid"),
                    // Paid, but the order record is gone from Redis: only
                    // Postgres can say with which charge; never refund blind.
                    None => match self.judge_in_postgres(charge, hold, now).await? {
                        Judged::Refund("stranded_already_paid") => Judged::Refund("stranded_already_paid"),
                        Judged::Keep(Verdict::Kept) => Judged::Keep(Verdict::Kept),
                        _ => Judged::Keep(Verdict::Unknown),
                    },
                }
            }
            "held" if rec.expires_ms + CLOCK_MARGIN_MS > now => Judged::Keep(Verdict::Waiting),
            _ => Judged::Refund("stranded_hold_expired"),
        })
    }

    /// The durable record, for holds Redis does not have.
    async fn judge_in_postgres(&self, charge: &ProviderCharge, hold: &HoldId, now: i64) -> anyhow::Result<Judged> {
        let client = self.db.get().await.context("connecting to Postgres")?;
        let paid_with = client
            .query_opt(
                "SELECT p.provider_charge_id FROM orders o JOIN payments p ON p.id = o.payment_id
                 WHERE o.event_id = $1 AND o.hold_id = $2",
                &[&hold.event, &hold.token],
            )
            .await
            .context("reading the hold's order")?;
        if let Some(row) = paid_with {
            let paid: String = row.get(0);
            return Ok(if paid == charge.id { Judged::Keep(Verdict::Kept) } else { Judged::Refund("stranded_already_paid") });
        }
        let held = client
            .query_opt(
                "SELECT status, (extract(epoch FROM expires_at) * 1000)::bigint FROM holds WHERE event_id = $1 AND id = $2",
                &[&hold.event, &hold.token],
            )
            .await
            .context("reading the hold")?;
        Ok(match held {
            // Confirmed, but the order row is not in yet: the persister is behind.
            Some(row) if row.get::<_, String>(0) == "confirmed" => Judged::Keep(Verdict::Waiting),
            Some(row) if row.get::<_, String>(0) == "held" && row.get::<_, Option<i64>>(1).is_none_or(|e| e + CLOCK_MARGIN_MS > now) => {
                Judged::Keep(Verdict::Waiting)
            }
            Some(_) => Judged::Refund("stranded_hold_expired"),
            None => Judged::Keep(Verdict::Unknown),
        })
    }

    /// Whether Postgres has a captured payment (an order's) with `charge`.
    async fn captured_in_postgres(&self, charge: &str) -> anyhow::Result<bool> {
        let client = self.db.get().await.context("connecting to Postgres")?;
        let row = client
            .query_opt(
                "SELECT 1 FROM payments WHERE provider_charge_id = $1 AND status = 'captured' AND order_id IS NOT NULL LIMIT 1",
                &[&charge],
            )
            .await
            .context("reading the charge's payments")?;
        Ok(row.is_some())
    }
}

/// A judgement: leave the charge with this verdict, or refund it.
enum Judged {
    Keep(Verdict),
    Refund(&'static str),
}
