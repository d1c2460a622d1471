//! Typed calls to the inventory scripts and reads of what they keep.

use std::collections::HashMap;

use redis::{AsyncCommands, RedisResult, Value};
use stampede_common::store::Redis;

use crate::keys::{EventKeys, events_set};
use crate::scripts::{Function, Invocation, Scripts};

/// A section as the scripts see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionLayout {
    pub id: i64,
    /// `Some((rows, seats_per_row))` for a seated section, `None` for general admission.
    pub seated: Option<(u32, u32)>,
    pub capacity: i64,
    pub price_cents: i64,
}

impl SectionLayout {
    fn encode(&self) -> String {
        match self.seated {
            Some((rows, spr)) => format!("s,{rows},{spr},{},{}", self.capacity, self.price_cents),
            None => format!("g,0,0,{},{}", self.capacity, self.price_cents),
        }
    }

    fn decode(id: i64, s: &str) -> Option<Self> {
        let mut it = s.split(',');
        let kind = it.next()?;
        let rows: u32 = it.next()?.parse().ok()?;
        let spr: u32 = it.next()?.parse().ok()?;
        let capacity = it.next()?.parse().ok()?;
        let price_cents = it.next()?.parse().ok()?;
        let seated = match kind {
            "s" => Some((rows, spr)),
            "g" => None,
            _ => return None,
        };
        Some(Self { id, seated, capacity, price_cents })
    }

    /// Whether `row`/`number` is a seat of this section.
    pub fn has_seat(&self, row: u32, number: u32) -> bool {
        self.seated.is_some_and(|(rows, spr)| (1..=rows).contains(&row) && (1..=spr).contains(&number))
    }
}

/// What is on sale, as published into Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMeta {
    pub sale_ms: i64,
    pub hold_ms: i64,
    pub limit: i64,
    pub waiting_room: bool,
    pub sections: Vec<SectionLayout>,
}

impl EventMeta {
    pub fn section(&self, id: i64) -> Option<&SectionLayout> {
        self.sections.iter().find(|s| s.id == id)
    }
}

/// Publishes an event's inventory. `Ok(false)` if it was already published
/// (and is then left untouched).
pub async fn publish(conn: &mut Redis, scripts: &Scripts, prefix: &str, keys: &EventKeys, meta: &EventMeta) -> RedisResult<bool> {
    let mut inv = scripts.publish.key(keys.meta());
    inv.key(keys.avail())
        .arg(meta.sale_ms)
        .arg(meta.hold_ms)
        .arg(meta.limit)
        .arg(if meta.waiting_room { 1 } else { 0 });
    for s in &meta.sections {
        inv.arg(s.id).arg(s.encode());
    }
    let reply: Vec<String> = inv.invoke_async(conn).await?;
    let _: i64 = conn.sadd(events_set(prefix), keys.event).await?;
    Ok(reply.first().is_some_and(|s| s == "ok"))
}

/// Updates the sale window and limits of a published event (the layout
/// never changes after publishing).
pub async fn update_terms(conn: &mut Redis, keys: &EventKeys, sale_ms: i64, hold_ms: i64, limit: i64) -> RedisResult<()> {
    conn.hset_multiple(keys.meta(), &[("sale_ms", sale_ms), ("hold_ms", hold_ms), ("limit", limit)]).await
}

/// The published meta of an event, or `None` if it is not on sale.
pub async fn read_meta(conn: &mut Redis, keys: &EventKeys) -> RedisResult<Option<EventMeta>> {
    let map: HashMap<String, String> = conn.hgetall(keys.meta()).await?;
    if map.get("status").map(String::as_str) != Some("published") {
        return Ok(None);
    }
    let num = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let mut sections: Vec<SectionLayout> = map
        .iter()
        .filter_map(|(k, v)| SectionLayout::decode(k.strip_prefix("s:")?.parse().ok()?, v))
        .collect();
    sections.sort_by_key(|s| s.id);
    Ok(Some(EventMeta {
        sale_ms: num("sale_ms"),
        hold_ms: num("hold_ms"),
        limit: num("limit"),
        waiting_room: num("wr") == 1,
        sections,
    }))
}

/// Per section: `(available, sold)`. One small hash read, whatever the size
/// of the event: the scripts keep these counters.
pub async fn availability(conn: &mut Redis, keys: &EventKeys) -> RedisResult<HashMap<i64, (i64, i64)>> {
    let map: HashMap<String, i64> = conn.hgetall(keys.avail()).await?;
    let mut out: HashMap<i64, (i64, i64)> = HashMap::new();
    for (k, v) in map {
        if let Some(sid) = k.strip_prefix("sold:") {
            if let Ok(sid) = sid.parse() {
                out.entry(sid).or_default().1 = v;
            }
        } else if let Ok(sid) = k.parse() {
            out.entry(sid).or_default().0 = v;
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatStatus {
    Free,
    Held,
    Sold,
}

impl SeatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Free => "free",
            SeatStatus::Held => "held",
            SeatStatus::Sold => "sold",
        }
    }

    /// The status a seat hash value stands for at `now_ms` (lapsed holds are free).
    pub fn of_value(value: &str, now_ms: i64) -> Self {
        match value.as_bytes().first() {
            Some(b's') => SeatStatus::Sold,
            Some(b'h') => {
                let exp = value[1..].split(':').next().and_then(|e| e.parse::<i64>().ok()).unwrap_or(0);
                if exp > now_ms { SeatStatus::Held } else { SeatStatus::Free }
            }
            _ => SeatStatus::Free,
        }
    }
}

/// The status of every seat that is not free in a seated section, keyed
/// `(row, number)`; a hold past its expiry reads as free.
pub async fn taken_seats(conn: &mut Redis, keys: &EventKeys, section: i64, now_ms: i64) -> RedisResult<HashMap<(u32, u32), SeatStatus>> {
    let map: HashMap<String, String> = conn.hgetall(keys.seats(section)).await?;
    Ok(map
        .into_iter()
        .filter_map(|(field, value)| {
            let (r, n) = field.split_once(':')?;
            let status = SeatStatus::of_value(&value, now_ms);
            (status != SeatStatus::Free).then_some(((r.parse().ok()?, n.parse().ok()?), status))
        })
        .collect())
}

/// A seat named in a request, already parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatRef {
    pub section: i64,
    pub row: u32,
    pub number: u32,
}

impl SeatRef {
    /// Parses `"<section>:<row>:<number>"`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split(':');
        let section = it.next()?.parse().ok()?;
        let row = it.next()?.parse().ok()?;
        let number = it.next()?.parse().ok()?;
        if it.next().is_some() || s.len() > 40 {
            return None;
        }
        Some(Self { section, row, number })
    }

    pub fn id(&self) -> String {
        format!("{}:{}:{}", self.section, self.row, self.number)
    }
}

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
    NotFound,
    Bad(String),
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Int(i)) => *i,
        Some(other) => text(other).parse().unwrap_or(0),
        None => 0,
    }
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
        "not_found" => HoldOutcome::NotFound,
        _ => HoldOutcome::Bad(reply.get(1).map(text).unwrap_or(tag)),
    }
}

/// A hold request's identity: who, which new hold id, the optional
/// idempotency key, and whether the caller presented a valid waiting-room
/// pass for this event (checked by the caller; the scripts refuse a
/// waiting-room event without one and ignore it otherwise). An
/// idempotency key answers with its hold for as long as Redis keeps that
/// hold's record (see [`forget`]).
pub struct HoldRequest<'a> {
    pub user: &'a str,
    pub hold: &'a str,
    pub idempotency: Option<&'a str>,
    pub queue_pass: bool,
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
            .arg(if self.queue_pass { 1 } else { 0 });
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
}

impl HoldRecord {
    /// The status a client sees at `now_ms`: lazy expiry applies.
    pub fn status_at(&self, now_ms: i64) -> &str {
        if self.status == "held" && self.expires_ms <= now_ms { "expired" } else { &self.status }
    }
}

impl HoldRecord {
    /// Parses a record of the `holds` hash:
    /// `status|user|exp|qty|amount|section|seats|order|payment|idem`.
    pub fn parse(record: &str) -> Option<Self> {
        let mut f = record.splitn(10, '|');
        let status = f.next()?;
        let user = f.next()?;
        let expires_ms = f.next()?.parse().ok()?;
        let quantity = f.next()?.parse().ok()?;
        let amount_cents = f.next()?.parse().ok()?;
        let section = f.next()?;
        let seats = f.next()?;
        let order = f.next()?;
        Some(HoldRecord {
            user: user.to_owned(),
            status: status.to_owned(),
            seats: if seats.is_empty() { Vec::new() } else { seats.split(',').map(str::to_owned).collect() },
            section: section.parse().ok(),
            quantity,
            amount_cents,
            expires_ms,
            order: (!order.is_empty()).then(|| order.to_owned()),
        })
    }
}

/// Reads a hold, or `None` if Redis does not have it (never had it, or
/// has forgotten it since Postgres has it).
pub async fn read_hold(conn: &mut Redis, keys: &EventKeys, hold: &str) -> RedisResult<Option<HoldRecord>> {
    let record: Option<String> = conn.hget(keys.holds(), hold).await?;
    Ok(record.as_deref().and_then(HoldRecord::parse))
}

/// Why a hold is being released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its owner let it go.
    Released,
    /// Its time ran out (the expiry worker).
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released,
    Expired,
    /// Nothing to do: the hold is already `released`, `expired` or `confirmed`.
    Noop(String),
    /// Not lapsed yet (an expiry that came early): its expiry.
    NotYet(i64),
    NotFound,
}

/// How long a finished hold stays in Redis at least, by default
/// (`STAMPEDE_FINISHED_HOLD_RETENTION_SECONDS`): Postgres keeps it for good
/// once the persister has it, and [`forget`] drops it from Redis after both.
pub const FINISHED_RETENTION_MS: i64 = 10 * 60 * 1000;

/// How long an order stays readable in Redis.
pub const ORDER_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// The keys a release or confirmation of `record` touches after the fixed
/// ones: each seat's hash, or the section's zset.
fn seat_keys(keys: &EventKeys, record: &HoldRecord) -> Vec<String> {
    match record.section {
        Some(sid) => vec![keys.ga(sid)],
        None => record.seats.iter().filter_map(|s| SeatRef::parse(s)).map(|s| keys.seats(s.section)).collect(),
    }
}

/// Releases a hold. `requester` is the user asking (`None` for the expiry
/// worker); a hold of someone else is `NotFound`.
pub async fn release(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, hold: &str, reason: Reason, requester: Option<&str>) -> RedisResult<ReleaseOutcome> {
    let Some(record) = read_hold(conn, keys, hold).await? else { return Ok(ReleaseOutcome::NotFound) };
    let mut inv = scripts.release.key(keys.holds());
    inv.key(keys.avail()).key(keys.users()).key(keys.stream()).key(keys.ended());
    for k in seat_keys(keys, &record) {
        inv.key(k);
    }
    inv.arg(hold)
        .arg(match reason {
            Reason::Released => "released",
            Reason::Expired => "expired",
        })
        .arg(requester.unwrap_or(""));
    let reply: Vec<Value> = inv.invoke_async(conn).await?;
    Ok(match reply.first().map(text).as_deref() {
        Some("released") => ReleaseOutcome::Released,
        Some("expired") => ReleaseOutcome::Expired,
        Some("noop") => ReleaseOutcome::Noop(reply.get(1).map(text).unwrap_or_default()),
        Some("not_yet") => ReleaseOutcome::NotYet(int(reply.get(1))),
        _ => ReleaseOutcome::NotFound,
    })
}

/// Drops at most `limit` finished holds that ended at or before `cutoff_ms`
/// from Redis (see `lua/forget.lua`); the number dropped.
pub async fn forget(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, cutoff_ms: i64, limit: i64) -> RedisResult<i64> {
    scripts.forget.key(keys.holds()).key(keys.ended()).key(keys.idem()).arg(cutoff_ms).arg(limit).invoke_async(conn).await
}

/// Deadline buckets that ended at or before `now_ms` (by Redis's clock:
/// no new hold can join them then), oldest first, at most `limit`.
pub async fn due_buckets(conn: &mut Redis, keys: &EventKeys, now_ms: i64, limit: isize) -> RedisResult<Vec<i64>> {
    conn.zrangebyscore_limit(keys.deadlines(), "-inf", now_ms, 0, limit).await
}

/// What one call of `lua/expire_bucket.lua` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketExpiry {
    /// How far past its deadline each hold it expired was, in ms.
    pub lags_ms: Vec<i64>,
    /// Holds still listed in the bucket; `None` if the bucket has not ended.
    pub left: Option<i64>,
}

/// Expires up to `limit` holds listed in deadline bucket `bucket`, in one
/// atomic call (see `lua/expire_bucket.lua`).
pub async fn expire_bucket(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, bucket: i64, limit: i64) -> RedisResult<BucketExpiry> {
    let reply: Vec<i64> = scripts
        .expire_bucket
        .key(keys.holds())
        .key(keys.avail())
        .key(keys.users())
        .key(keys.stream())
        .key(keys.ended())
        .key(keys.deadlines())
        .key(keys.bucket(bucket))
        .arg(bucket)
        .arg(limit)
        .invoke_async(conn)
        .await?;
    let left = reply.get(1).copied().unwrap_or(0);
    Ok(BucketExpiry { lags_ms: reply.get(2..).map(<[i64]>::to_vec).unwrap_or_default(), left: (left >= 0).then_some(left) })
}

/// Holds not yet finished (live, or lapsed and not yet released).
pub async fn pending_holds(conn: &mut Redis, keys: &EventKeys) -> RedisResult<i64> {
    let (all, ended): (i64, i64) = redis::pipe().hlen(keys.holds()).zcard(keys.ended()).query_async(conn).await?;
    Ok(all - ended)
}

/// Redis's clock, epoch ms: the one the scripts judge expiry by.
pub async fn redis_now_ms(conn: &mut Redis) -> RedisResult<i64> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1000 + micros / 1000)
}

/// Every published event id.
pub async fn published_events(conn: &mut Redis, prefix: &str) -> RedisResult<Vec<i64>> {
    conn.smembers(events_set(prefix)).await
}

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
    let reply: Vec<Value> = inv.invoke_async(conn).await?;
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
    }))
}

/// How fast a waiting room lets people through: `initial` places at the
/// sale's start, then `per_second` more each second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub initial: i64,
    pub per_second: i64,
}

/// What the waiting-room script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueOutcome {
    /// The caller's ticket and its place in line (1-based, fixed at the
    /// join), admitted once the admission count has reached it. `fresh`:
    /// this join made the ticket, or this status check first found it
    /// admitted. `sold_out`: no seat or place is free and no hold pending.
    Place { ticket: String, position: i64, admitted: bool, fresh: bool, sold_out: bool },
    /// The event is on sale without a waiting room.
    NoWaitingRoom,
    /// No such event on sale, or no such ticket of this user's.
    NotFound,
}

fn queue_call<'s>(scripts: &'s Scripts, keys: &EventKeys, op: &str, user: &str, ticket: &str, admission: Admission) -> Invocation<'s> {
    let mut inv = scripts.queue.key(keys.meta());
    inv.key(keys.queue())
        .key(keys.queue_users())
        .key(keys.queue_seq())
        .key(keys.queue_admitted())
        .key(keys.avail())
        .key(keys.holds())
        .key(keys.ended())
        .arg(op)
        .arg(user)
        .arg(ticket)
        .arg(admission.initial)
        .arg(admission.per_second);
    inv
}

fn queue_outcome(reply: Vec<Value>) -> QueueOutcome {
    match reply.first().map(text).as_deref() {
        Some("ok") => QueueOutcome::Place {
            ticket: reply.get(1).map(text).unwrap_or_default(),
            position: int(reply.get(2)),
            admitted: int(reply.get(3)) == 1,
            fresh: int(reply.get(4)) == 1,
            sold_out: int(reply.get(5)) == 1,
        },
        Some("no_waiting_room") => QueueOutcome::NoWaitingRoom,
        _ => QueueOutcome::NotFound,
    }
}

/// Puts `user` in the event's line with the new `ticket`, or answers the
/// ticket they already have (one per user and event).
pub async fn queue_join(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, user: &str, ticket: &str, admission: Admission) -> RedisResult<QueueOutcome> {
    Ok(queue_outcome(queue_call(scripts, keys, "join", user, ticket, admission).invoke_async(conn).await?))
}

/// Where `user`'s `ticket` stands; another user's ticket is `NotFound`.
pub async fn queue_status(conn: &mut Redis, scripts: &Scripts, keys: &EventKeys, user: &str, ticket: &str, admission: Admission) -> RedisResult<QueueOutcome> {
    Ok(queue_outcome(queue_call(scripts, keys, "status", user, ticket, admission).invoke_async(conn).await?))
}
