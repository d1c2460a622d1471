//! Holds: the calls of the three hold scripts (`lua/hold.lua`,
//! `lua/hold_ga.lua`, `lua/hold_best.lua`), what they answer, and a hold's
//! record as Redis keeps it.

use redis::{AsyncCommands, RedisResult, Value};
use serde::Serialize;
use stampede_common::clock::rfc3339_ms;
use stampede_common::store::Redis;

use crate::keys::{EventKeys, HoldId};
use crate::layout::SeatRef;
use crate::reply::{int, text};
use crate::scripts::{Function, Invocation, Scripts};

/// What a hold script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held; `seats` are the seats a best-available hold chose (empty for
    /// the other scripts: the caller named them, or general admission).
    Held { expires_ms: i64, amount_cents: i64, quantity: i64, seats: Vec<String> },
    /// The idempotency key was used before: this is the hold it made.
    Duplicate(String),
    Unknown(Vec<String>),
    /// Seats taken (seated) …
    Unavailable(Vec<String>),
    /// … or not enough places left (general admission).
    SoldOut { available: i64 },
    /// … or no seats as asked are free (best available): the section's
    /// free seats.
    NoBlock { available: i64 },
    Limit { used: i64, limit: i64 },
    NotOnSale,
    /// The event has a waiting room and no valid pass was presented.
    QueuePassRequired,
    /// The event requires a verified e-mail and the caller's is not.
    EmailUnverified,
    NotFound,
    Bad(String),
}

fn hold_outcome(reply: Vec<Value>) -> HoldOutcome {
    let tag = reply.first().map(text).unwrap_or_default();
    let rest = || reply[1..].iter().map(text).collect::<Vec<_>>();
    match tag.as_str() {
        "ok" => HoldOutcome::Held {
            expires_ms: int(reply.get(1)),
            amount_cents: int(reply.get(2)),
            quantity: int(reply.get(3)),
            seats: reply.get(4..).map(|s| s.iter().map(text).collect()).unwrap_or_default(),
        },
        "dup" => HoldOutcome::Duplicate(reply.get(1).map(text).unwrap_or_default()),
        "unknown" => HoldOutcome::Unknown(rest()),
        "unavailable" if matches!(reply.get(1), Some(Value::Int(_))) => HoldOutcome::SoldOut { available: int(reply.get(1)) },
        "unavailable" => HoldOutcome::Unavailable(rest()),
        "no_block" => HoldOutcome::NoBlock { available: int(reply.get(1)) },
        "limit" => HoldOutcome::Limit { used: int(reply.get(1)), limit: int(reply.get(2)) },
        "not_on_sale" => HoldOutcome::NotOnSale,
        "queue_pass_required" => HoldOutcome::QueuePassRequired,
        "email_unverified" => HoldOutcome::EmailUnverified,
        "not_found" => HoldOutcome::NotFound,
        _ => HoldOutcome::Bad(reply.get(1).map(text).unwrap_or(tag)),
    }
}

/// A hold request's identity: who, which new hold id, the optional
/// idempotency key, and whether the caller presented a valid waiting-room
/// pass for this event (checked by the caller; the scripts refuse a
/// waiting-room event without one and ignore it otherwise), and whether the
/// caller's e-mail is verified (the access token's claim; the scripts
/// refuse an unverified caller on an event that requires it, read from the
/// meta fields they fetch anyway, and ignore it otherwise). An
/// idempotency key answers with its hold for as long as Redis keeps that
/// hold's record (see [`forget`](crate::forget)).
pub struct HoldRequest<'a> {
    pub user: &'a str,
    pub hold: &'a str,
    pub idempotency: Option<&'a str>,
    pub queue_pass: bool,
    pub email_verified: bool,
}

impl HoldRequest<'_> {
    /// A hold function's call: the event's meta key is its one key (the
    /// library finds the event's other keys from it, and every one of them
    /// shares its hash tag, so its cluster slot).
    fn invocation<'s>(&self, function: &'s Function, keys: &EventKeys) -> Invocation<'s> {
        let mut inv = function.key(keys.meta());
        inv.arg(self.user)
            .arg(self.hold)
            .arg(self.idempotency.unwrap_or(""))
            .arg(if self.queue_pass { 1 } else { 0 })
            .arg(if self.email_verified { 1 } else { 0 });
        inv
    }
}

/// Holds specific seats, all or nothing.
pub async fn hold_seats(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, req: &HoldRequest<'_>, seats: &[SeatRef]) -> RedisResult<HoldOutcome> {
    let mut inv = req.invocation(&scripts.hold, keys);
    for s in seats {
        inv.arg(s.id());
    }
    Ok(hold_outcome(inv.invoke_async(conn).await?))
}

/// Holds `quantity` places of a general-admission section.
pub async fn hold_general(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, req: &HoldRequest<'_>, section: i64, quantity: i64) -> RedisResult<HoldOutcome> {
    let mut inv = req.invocation(&scripts.hold_ga, keys);
    inv.arg(section).arg(quantity);
    Ok(hold_outcome(inv.invoke_async(conn).await?))
}

/// Holds the best `quantity` free seats of a seated section, chosen by the
/// script (`lua/hold_best.lua`): one block of adjacent seats of a row if
/// `adjacent`, else the best seats wherever they are; lowest row first,
/// nearest its centre. A general-admission section's places are held as
/// [`hold_general`] holds them, in the same call.
pub async fn hold_best(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, req: &HoldRequest<'_>, section: i64, quantity: i64, adjacent: bool) -> RedisResult<HoldOutcome> {
    let mut inv = req.invocation(&scripts.hold_best, keys);
    inv.arg(section)
        .arg(quantity)
        .arg(if adjacent { 1 } else { 0 });
    Ok(hold_outcome(inv.invoke_async(conn).await?))
}

/// A hold as Redis keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRecord {
    pub user: String,
    /// `held`, `released`, `expired` or `confirmed` (a `held` hold past
    /// its expiry is reported as `expired` by [`HoldRecord::status_at`]).
    pub status: String,
    pub seats: Vec<String>,
    pub section: Option<i64>,
    pub quantity: i64,
    pub amount_cents: i64,
    pub expires_ms: i64,
    pub order: Option<String>,
    /// The resale listing a hold on one is for (its seats or section are
    /// the listed ticket's; it takes nothing from inventory).
    pub listing: Option<String>,
}

/// A hold as clients see it: `GET /api/holds/{id}` and the 201 of every
/// hold route (seats, places, best available, a resale listing).
#[derive(Serialize)]
pub struct HoldView<'a> {
    id: String,
    event_id: String,
    seats: &'a [String],
    section_id: Option<String>,
    quantity: i64,
    amount_cents: i64,
    status: &'a str,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<&'a str>,
    /// A hold on a resale listing names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    listing_id: Option<String>,
}

impl<'a> HoldView<'a> {
    /// Hold `id` as of `now_ms` (a `held` hold past its expiry shows `expired`).
    pub fn of(id: &HoldId, rec: &'a HoldRecord, now_ms: i64) -> Self {
        Self {
            id: id.public(),
            event_id: id.event.to_string(),
            seats: &rec.seats,
            section_id: rec.section.map(|s| s.to_string()),
            quantity: rec.quantity,
            amount_cents: rec.amount_cents,
            status: rec.status_at(now_ms),
            expires_at: rfc3339_ms(rec.expires_ms),
            order_id: rec.order.as_deref(),
            listing_id: rec.listing.as_ref().map(|l| HoldId { event: id.event, token: l.clone() }.public()),
        }
    }
}

impl HoldRecord {
    /// The status a client sees at `now_ms`: lazy expiry applies.
    pub fn status_at(&self, now_ms: i64) -> &str {
        if self.status == "held" && self.expires_ms <= now_ms { "expired" } else { &self.status }
    }
}

impl HoldRecord {
    /// Parses a record of the `holds` hash:
    /// `status|user|exp|qty|amount|section|seats|order|payment|idem`, then
    /// `|<listing>` for a hold on a resale listing.
    pub fn parse(record: &str) -> Option<Self> {
        let mut f = record.splitn(11, '|');
        let status = f.next()?;
        let user = f.next()?;
        let expires_ms = f.next()?.parse().ok()?;
        let quantity = f.next()?.parse().ok()?;
        let amount_cents = f.next()?.parse().ok()?;
        let section = f.next()?;
        let seats = f.next()?;
        let order = f.next()?;
        let (_payment, _idem) = (f.next()?, f.next()?);
        let listing = f.next().filter(|l| !l.is_empty()).map(str::to_owned);
        Some(HoldRecord {
            user: user.to_owned(),
            status: status.to_owned(),
            seats: if seats.is_empty() { Vec::new() } else { seats.split(',').map(str::to_owned).collect() },
            section: section.parse().ok(),
            quantity,
            amount_cents,
            expires_ms,
            order: (!order.is_empty()).then(|| order.to_owned()),
            listing,
        })
    }
}

/// Reads a hold, or `None` if Redis does not have it (never had it, or
/// has forgotten it since Postgres has it).
pub async fn read_hold(conn: &mut Redis, keys: &EventKeys, hold: &str) -> RedisResult<Option<HoldRecord>> {
    let record: Option<String> = conn.hget(keys.holds(), hold).await?;
    Ok(record.as_deref().and_then(HoldRecord::parse))
}

/// The keys a release or confirmation of `record` touches after the fixed
/// ones: each seat's hash, or the section's zset; none for a hold on a
/// resale listing (it takes no seats).
pub(crate) fn seat_keys(keys: &EventKeys, record: &HoldRecord) -> Vec<String> {
    if record.listing.is_some() {
        return Vec::new();
    }
    match record.section {
        Some(sid) => vec![keys.ga(sid)],
        None => record.seats.iter().filter_map(|s| SeatRef::parse(s)).map(|s| keys.seats(s.section)).collect(),
    }
}
