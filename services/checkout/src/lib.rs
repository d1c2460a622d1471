//! The checkout service: `POST /api/holds/{id}/payment`, `GET /api/orders`,
//! `GET /api/orders/{id}`, and the tickets the orders become:
//! `GET /api/tickets`, `GET /api/tickets/{id}/code` (a signed code, see
//! [`codes`]), `POST /api/tickets/{id}/transfer`,
//! `GET /api/events/{id}/ticket-key` and `POST /api/events/{id}/check-in`.
//!
//! A payment is charged through a [`PaymentGateway`], then one Lua script
//! turns the held seats into sold seats, writes the order and appends
//! `order.confirmed` + `payment.captured`. A charge whose hold lapsed (or
//! was paid by another request) meanwhile is refunded and announced with
//! `payment.refunded`, never kept. `Idempotency-Key` (required, scoped to
//! the caller) makes retries return the first answer and charge once; a
//! charge whose request died between charging and confirming is refunded
//! by the [`ChargeReconciler`] once its hold is gone.

pub mod codes;
mod config;
pub mod gateway;
mod idempotency;
pub mod notifier;
pub mod charge_reconciler;
mod refunds;
mod routes;

use std::sync::Arc;

use deadpool_postgres::Pool;
use hyper::Request;
use hyper::body::Incoming;
use metrics::{Unit, describe_counter, describe_histogram};
use stampede_common::Config;
use stampede_common::http::{Handler, Routed};
use stampede_common::store::Redis;
use stampede_common::token::Tokens;
use stampede_inventory::Scripts;

pub use config::CheckoutConfig;
pub use gateway::{MockGateway, PaymentGateway};
pub use notifier::NotifierWorker;
pub use charge_reconciler::ChargeReconciler;

/// The checkout service's state.
pub struct CheckoutService<G: PaymentGateway = MockGateway> {
    db: Pool,
    redis: Redis,
    /// Where a confirmation that waits for replicas opens a connection of
    /// its own: Redis answers a `WAIT` only once the replicas have every
    /// earlier write of the connection, and holds back the connection's
    /// later commands until then, so on a shared connection every other
    /// request would wait behind it (for up to `confirm_wait_ms` each, when
    /// a replica is down).
    redis_url: String,
    replicas: Replication,
    scripts: Scripts,
    tokens: Arc<Tokens>,
    gateway: Arc<G>,
    prefix: String,
    max_body: usize,
    idempotency_ms: i64,
    /// Signs and verifies ticket codes; `None` without a configured key.
    signer: Option<Arc<codes::Signer>>,
}

impl<G: PaymentGateway> CheckoutService<G> {
    pub fn build(config: &Config, checkout: &CheckoutConfig, db: Pool, redis: Redis, tokens: Arc<Tokens>, gateway: Arc<G>) -> Self {
        describe_counter!("payments_total", Unit::Count, "Payment attempts by outcome: captured, declined, refunded, failed.");
        describe_histogram!("checkout_duration_seconds", Unit::Seconds, "Time to answer a payment request, charge and confirmation included.");
        describe_counter!(
            "confirm_replication_total",
            Unit::Count,
            "Paid orders' confirmations by replication (STAMPEDE_CONFIRM_REPLICAS > 0): replicated, short (fewer replicas in time), error."
        );
        describe_histogram!("confirm_replication_seconds", Unit::Seconds, "Time a paid order's confirmation waited for the replicas (Redis WAIT).");
        describe_counter!(
            "check_ins_total",
            Unit::Count,
            "Ticket check-ins by outcome: admitted, already_used, superseded, not_valid, invalid_code."
        );
        let signer = match &checkout.ticket_keys {
            Some(keys) => Some(Arc::new(codes::Signer::new(keys))),
            None => {
                tracing::warn!("no ticket signing key (STAMPEDE_TICKET_SIGNING_KEY[_FILE]): ticket codes and check-in answer 503");
                None
            }
        };
        Self {
            db,
            redis_url: config.redis_url.clone(),
            redis,
            replicas: Replication { count: checkout.confirm_replicas, wait_ms: checkout.confirm_wait_ms },
            scripts: Scripts::load(),
            tokens,
            gateway,
            prefix: config.redis_prefix.clone(),
            max_body: config.max_body_bytes,
            idempotency_ms: checkout.idempotency_seconds * 1000,
            signer,
        }
    }

    /// The ticket code signer, or 503 when no key is configured.
    pub(crate) fn signer(&self) -> Result<&codes::Signer, stampede_common::Problem> {
        self.signer.as_deref().ok_or_else(|| stampede_common::Problem::unavailable("ticket codes are not configured"))
    }
}

/// How many replicas must acknowledge a confirmation (`WAIT count wait_ms`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Replication {
    pub(crate) count: u32,
    pub(crate) wait_ms: u64,
}

impl<G: PaymentGateway> Handler for CheckoutService<G> {
    fn name(&self) -> &'static str {
        "checkout"
    }

    async fn handle(&self, req: Request<Incoming>) -> Routed {
        routes::route(self, req).await
    }

    async fn ready(&self) -> Result<(), String> {
        stampede_common::store::ping(&self.redis).await?;
        stampede_common::db::ping(&self.db).await
    }
}
