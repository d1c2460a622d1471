//! Orders: turning a live hold into one (`lua/confirm.lua`) and reading
//! it back.

use std::collections::HashMap;

use redis::{AsyncCommands, RedisResult, Value};
use stampede_common::store::Redis;

use crate::holds::{read_hold, seat_keys};
use crate::keys::EventKeys;
use crate::reply::{int, text};
use crate::scripts::Scripts;

/// How long an order stays readable in Redis.
pub const ORDER_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// What the confirmation script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The order exists now, created at this Redis time.
    Confirmed { created_ms: i64 },
    /// The hold was already paid (by another request): its order.
    AlreadyConfirmed(String),
    /// The hold was released or has expired.
    Gone(String),
    NotFound,
}

/// The payment a confirmation records.
pub struct Payment<'a> {
    pub order: &'a str,
    pub payment: &'a str,
    pub charge: &'a str,
    pub method: &'a str,
}

/// Turns a live hold into an order (see `lua/confirm.lua`). Anything but
/// `Confirmed` means the caller must refund the charge.
pub async fn confirm(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, hold: &str, user: &str, pay: &Payment<'_>) -> RedisResult<ConfirmOutcome> {
    let Some(record) = read_hold(conn, keys, hold).await? else { return Ok(ConfirmOutcome::NotFound) };
    if record.listing.is_some() {
        return buy_listing(conn, scripts, keys, hold, user, pay).await;
    }
    let mut inv = scripts.confirm.key(keys.holds());
    inv.key(keys.avail())
        .key(keys.users())
        .key(keys.stream())
        .key(keys.ended())
        .key(keys.order(pay.order));
    for k in seat_keys(keys, &record) {
        inv.key(k);
    }
    inv.arg(hold).arg(user).arg(pay.order).arg(pay.payment).arg(pay.charge).arg(pay.method).arg(ORDER_RETENTION_MS);
    outcome(inv.invoke_async(conn).await?)
}

/// Pays a hold on a resale listing (see `lua/buy_listing.lua`): the ticket
/// moves to the buyer, the listing is sold, the order record is written.
async fn buy_listing(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, hold: &str, user: &str, pay: &Payment<'_>) -> RedisResult<ConfirmOutcome> {
    let mut inv = scripts.buy_listing.key(keys.holds());
    inv.key(keys.order(pay.order));
    inv.arg(hold).arg(user).arg(pay.order).arg(pay.payment).arg(pay.charge).arg(pay.method).arg(ORDER_RETENTION_MS);
    outcome(inv.invoke_async(conn).await?)
}

fn outcome(reply: Vec<Value>) -> RedisResult<ConfirmOutcome> {
    Ok(match reply.first().map(text).as_deref() {
        Some("ok") => ConfirmOutcome::Confirmed { created_ms: int(reply.get(1)) },
        Some("confirmed") => ConfirmOutcome::AlreadyConfirmed(reply.get(1).map(text).unwrap_or_default()),
        Some("gone") => ConfirmOutcome::Gone(reply.get(1).map(text).unwrap_or_default()),
        _ => ConfirmOutcome::NotFound,
    })
}

/// An order as Redis keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    pub user: String,
    pub hold: String,
    pub seats: Vec<String>,
    pub section: Option<i64>,
    pub quantity: i64,
    pub amount_cents: i64,
    pub status: String,
    pub payment: String,
    pub charge: String,
    pub method: String,
    pub created_ms: i64,
    /// A resale purchase's listing and ticket token.
    pub listing: Option<String>,
    pub ticket: Option<String>,
}

/// Reads an order, or `None` if Redis does not have it.
pub async fn read_order(conn: &mut Redis, keys: &EventKeys, order: &str) -> RedisResult<Option<OrderRecord>> {
    let map: HashMap<String, String> = conn.hgetall(keys.order(order)).await?;
    let Some(user) = map.get("user") else { return Ok(None) };
    let get = |k: &str| map.get(k).cloned().unwrap_or_default();
    let num = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let seats = get("seats");
    Ok(Some(OrderRecord {
        user: user.clone(),
        hold: get("hold"),
        seats: if seats.is_empty() { Vec::new() } else { seats.split(',').map(str::to_owned).collect() },
        section: map.get("section").and_then(|s| s.parse().ok()),
        quantity: num("qty"),
        amount_cents: num("amount"),
        status: get("status"),
        payment: get("payment"),
        charge: get("charge"),
        method: get("method"),
        created_ms: num("created"),
        listing: map.get("listing").cloned(),
        ticket: map.get("ticket").cloned(),
    }))
}
