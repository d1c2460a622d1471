//! Refunds, for the payment route and the charge reconciler alike: a charge
//! refunded at the provider (with retries), then announced on the event's
//! stream as `payment.refunded` (one refunded payment per charge, whoever
//! refunds it).

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use stampede_common::backoff::Backoff;
use stampede_common::clock::now_ms;
use stampede_inventory::EventKeys;

use crate::gateway::{GatewayError, PaymentGateway};

/// How long a captured charge waits for Redis: to confirm its order, or to
/// announce its refund.
pub(crate) const CONFIRM_PATIENCE: Duration = Duration::from_secs(10);

/// A Redis failure worth retrying: the call was not made (see
/// [`stampede_common::store::unavailable`]).
pub(crate) fn transient(e: &redis::RedisError) -> bool {
    stampede_common::store::unavailable(e)
}

/// Refunds `charge` at the provider, trying five times (waits of up to 50,
/// 100, 200 and 400 ms between them, jittered).
pub(crate) async fn refund_at_provider<G: PaymentGateway>(gateway: &G, charge: &str) -> Result<(), GatewayError> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
    let mut tries = 0;
    loop {
        match gateway.refund(charge).await {
            Ok(_) => return Ok(()),
            Err(e) if tries >= 4 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// A refund to announce on the event's stream.
pub(crate) struct Refunded<'a> {
    /// The hold's token (the stream's own id for it).
    pub hold: &'a str,
    pub user: &'a str,
    pub payment: &'a str,
    pub amount_cents: i64,
    pub charge: &'a str,
    pub reason: &'a str,
}

/// Appends `payment.refunded` to the event's stream, waiting out a Redis
/// restart (up to CONFIRM_PATIENCE): the charge is already refunded.
pub(crate) async fn announce_refund(redis: &stampede_common::store::Redis, keys: &EventKeys, r: &Refunded<'_>) -> redis::RedisResult<()> {
    let mut conn = redis.clone();
    let amount = r.amount_cents.to_string();
    let at = now_ms().to_string();
    let fields: [(&str, &str); 8] = [
        ("type", "payment.refunded"),
        ("payment", r.payment),
        ("hold", r.hold),
        ("user", r.user),
        ("amount", &amount),
        ("charge", r.charge),
        ("reason", r.reason),
        ("at", &at),
    ];
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let deadline = Instant::now() + CONFIRM_PATIENCE;
    loop {
        match conn.xadd::<_, _, _, _, String>(keys.stream(), "*", &fields).await {
            Ok(_) => return Ok(()),
            Err(e) if transient(&e) && Instant::now() + backoff.ceiling() < deadline => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e),
        }
    }
}
