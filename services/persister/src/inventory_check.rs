//! The inventory check: does Redis agree with itself, and with Postgres?
//!
//! Per section it verifies, on one atomic snapshot of Redis (a `MULTI`),
//! that sold + held + available = capacity (held counts every seat or place
//! a hold still takes from the counter: live holds, and lapsed ones not yet
//! reclaimed), that a seated section's sold counter matches the seats its
//! map marks sold, and that Redis's sold seats are Postgres's confirmed
//! orders: per section counts and, for seated sections, the exact seat set
//! (a sold seat is `s` in Redis; where it carries its order, `s<order>`, the
//! order must match too). A seated section's seat index (`occ`, a byte a
//! seat, see `lua/lib.lua`) must mark exactly the seats its seat hash has.
//!
//! The persister lags Redis by design, so the comparison is against
//! Postgres plus the `order.confirmed` entries the persister has not
//! acknowledged yet (every entry acked is committed). Reads run in the
//! order Redis → stream → Postgres, and anything Postgres has that the
//! first Redis snapshot lacks is read again from Redis (a confirmation that
//! landed meanwhile; sold is final in Redis). So a check under live
//! traffic reports real drift only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use anyhow::Context;
use deadpool_postgres::Pool;
use redis::{AsyncCommands, Value};
use stampede_common::store::Redis;
use stampede_inventory::streams;
use stampede_inventory::{EventKeys, EventMeta, published_events, read_meta};

use crate::worker::GROUP;

/// One section's figures and what is wrong with them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionReport {
    pub section: i64,
    pub seated: bool,
    pub capacity: i64,
    /// Redis's counter of places neither held nor sold.
    pub available: i64,
    /// Seats or places held in Redis (live, or lapsed and not yet reclaimed).
    pub held: i64,
    /// Redis's sold counter.
    pub sold: i64,
    /// Seats the seat map marks sold (seated sections).
    pub marked_sold: Option<i64>,
    /// Sold in Postgres (confirmed orders).
    pub persisted: i64,
    /// Sold in Redis, in the stream, not yet in Postgres.
    pub in_flight: i64,
    /// Seats or places in disagreement.
    pub drift: i64,
    pub problems: Vec<String>,
}

/// One event's sections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventReport {
    pub event: i64,
    pub sections: Vec<SectionReport>,
    /// Problems of the event as a whole (missing from Redis …).
    pub problems: Vec<String>,
    pub drift: i64,
}

/// The result of [`check`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub events: Vec<EventReport>,
}

impl Report {
    /// Seats and places in disagreement, over every event.
    pub fn drift_seats(&self) -> i64 {
        self.events.iter().map(|e| e.drift).sum()
    }

    /// No drift and nothing else wrong.
    pub fn is_clean(&self) -> bool {
        self.drift_seats() == 0
            && self.events.iter().all(|e| e.problems.is_empty() && e.sections.iter().all(|s| s.problems.is_empty()))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.events.is_empty() {
            return writeln!(f, "no events to check");
        }
        for e in &self.events {
            writeln!(f, "event {}: drift {}", e.event, e.drift)?;
            for p in &e.problems {
                writeln!(f, "  ! {p}")?;
            }
            for s in &e.sections {
                write!(
                    f,
                    "  section {} ({}): capacity {} = sold {} + held {} + available {}",
                    s.section,
                    if s.seated { "seated" } else { "general" },
                    s.capacity,
                    s.sold,
                    s.held,
                    s.available
                )?;
                if let Some(m) = s.marked_sold {
                    write!(f, "; marked sold {m}")?;
                }
                writeln!(f, "; postgres {} + in flight {}; drift {}", s.persisted, s.in_flight, s.drift)?;
                for p in &s.problems {
                    writeln!(f, "    ! {p}")?;
                }
            }
        }
        writeln!(f, "total drift: {} seats", self.drift_seats())
    }
}

/// Checks `event`, or every event published in Redis or Postgres.
pub async fn check(db: &Pool, redis: &Redis, prefix: &str, event: Option<i64>) -> anyhow::Result<Report> {
    let mut conn = redis.clone();
    let events: Vec<i64> = match event {
        Some(e) => vec![e],
        None => {
            let mut all: Vec<i64> = published_events(&mut conn, prefix).await.context("reading the events set")?;
            let client = db.get().await.context("connecting to Postgres")?;
            for row in client.query("SELECT id FROM events WHERE status = 'published'", &[]).await.context("listing events")? {
                all.push(row.get(0));
            }
            all.sort_unstable();
            all.dedup();
            all
        }
    };
    let mut report = Report::default();
    for event in events {
        if let Some(r) = check_event(db, redis, prefix, event).await.with_context(|| format!("checking event {event}"))? {
            for p in &r.problems {
                tracing::warn!(event, problem = %p, "inventory drift");
            }
            for s in &r.sections {
                for p in &s.problems {
                    tracing::warn!(event, section = s.section, problem = %p, "inventory drift");
                }
            }
            report.events.push(r);
        }
    }
    Ok(report)
}

/// A confirmation in the stream the persister has not acknowledged.
struct InFlight {
    order: String,
    seats: Vec<String>,
    section: Option<i64>,
    qty: i64,
}

/// What Postgres holds as sold for one event.
#[derive(Default)]
struct Persisted {
    /// seat id `<sid>:<row>:<n>` → order.
    seats: HashMap<String, String>,
    /// GA order → (section, quantity).
    places: HashMap<String, (i64, i64)>,
    published: bool,
}

async fn persisted(db: &Pool, event: i64) -> anyhow::Result<Persisted> {
    let client = db.get().await.context("connecting to Postgres")?;
    let mut out = Persisted::default();
    let rows = client
        .query(
            "SELECT s.seat_id, s.order_id FROM order_seats s JOIN orders o ON o.id = s.order_id
             WHERE s.event_id = $1 AND o.status = 'confirmed'",
            &[&event],
        )
        .await
        .context("reading sold seats")?;
    for r in rows {
        out.seats.insert(r.get(0), r.get(1));
    }
    let rows = client
        .query(
            "SELECT id, section_id, quantity FROM orders
             WHERE event_id = $1 AND section_id IS NOT NULL AND status = 'confirmed'",
            &[&event],
        )
        .await
        .context("reading general-admission orders")?;
    for r in rows {
        let q: i32 = r.get(2);
        out.places.insert(r.get(0), (r.get(1), i64::from(q)));
    }
    out.published = client
        .query_opt("SELECT 1 FROM events WHERE id = $1 AND status = 'published'", &[&event])
        .await
        .context("reading the event")?
        .is_some();
    Ok(out)
}

/// `order.confirmed` entries at or after the first entry the persister
/// group has not acknowledged (the whole stream if it has no group yet).
async fn in_flight(conn: &mut Redis, key: &str) -> anyhow::Result<Vec<InFlight>> {
    let Some(info) = streams::stream_info(conn, key).await.context("describing the stream")? else { return Ok(Vec::new()) };
    let mut start = match info.group(GROUP) {
        Some(g) => g.acked_below().to_string(),
        None => "-".to_owned(),
    };
    let mut out = Vec::new();
    loop {
        let page: redis::streams::StreamRangeReply = conn.xrange_count(key, &start, "+", 1000).await.context("reading the stream")?;
        let Some(last) = page.ids.last() else { break };
        start = format!("({}", last.id);
        let n = page.ids.len();
        for e in page.ids {
            let get = |k: &str| e.get::<String>(k).unwrap_or_default();
            if get("type") != "order.confirmed" {
                continue;
            }
            let seats = get("seats");
            out.push(InFlight {
                order: get("order"),
                seats: if seats.is_empty() { Vec::new() } else { seats.split(',').map(str::to_owned).collect() },
                section: get("section").parse().ok(),
                qty: get("qty").parse().unwrap_or(0),
            });
        }
        if n < 1000 {
            break;
        }
    }
    Ok(out)
}

/// The Redis side of one section, from the atomic snapshot.
enum Snapshot {
    /// Sold seats, field `<row>:<n>` → the order when the value names it,
    /// and the count of held seats.
    /// `index_wrong`: seats whose byte in the seat index disagrees with
    /// the seat hash.
    Seated { sold: HashMap<String, Option<String>>, held: i64, index_wrong: i64 },
    General { held: i64 },
}

async fn check_event(db: &Pool, redis: &Redis, prefix: &str, event: i64) -> anyhow::Result<Option<EventReport>> {
    let mut conn = redis.clone();
    let keys = EventKeys::new(prefix, event);
    let meta = read_meta(&mut conn, &keys).await.context("reading the meta")?;
    let Some(meta) = meta else {
        let pg = persisted(db, event).await?;
        let sold = pg.seats.len() as i64 + pg.places.values().map(|(_, q)| q).sum::<i64>();
        if sold == 0 && !pg.published {
            return Ok(None);
        }
        return Ok(Some(EventReport {
            event,
            sections: Vec::new(),
            problems: vec![format!(
                "published in Postgres with {sold} sold but not on sale in Redis: run `stampede admin rebuild-inventory --event {event}`"
            )],
            drift: sold,
        }));
    };

    // T1: one atomic snapshot of the counters and every section's holders.
    let (avail, snaps) = snapshot(&mut conn, &keys, &meta).await?;
    // T2: confirmations not yet acknowledged by the persister.
    let flying = in_flight(&mut conn, &keys.stream()).await?;
    // T3: Postgres.
    let pg = persisted(db, event).await?;

    let mut report = EventReport { event, ..Default::default() };
    for (layout, snap) in meta.sections.iter().zip(snaps) {
        let sid = layout.id;
        let mut s = SectionReport {
            section: sid,
            seated: layout.seated.is_some(),
            capacity: layout.capacity,
            available: avail.get(&sid.to_string()).copied().unwrap_or(0),
            sold: avail.get(&format!("sold:{sid}")).copied().unwrap_or(0),
            ..Default::default()
        };
        match snap {
            Snapshot::Seated { sold, held, index_wrong } => {
                s.held = held;
                if index_wrong > 0 {
                    s.drift += index_wrong;
                    s.problems.push(format!(
                        "the seat index disagrees with the seat map at {index_wrong} seats: run `stampede admin rebuild-inventory --event {event}`"
                    ));
                }
                s.marked_sold = Some(sold.len() as i64);
                if s.sold != sold.len() as i64 {
                    s.drift += (s.sold - sold.len() as i64).abs();
                    s.problems.push(format!("sold counter {} but {} seats marked sold", s.sold, sold.len()));
                }
                // Postgres ∪ in flight, per seat field.
                let tag = format!("{sid}:");
                let mut known: HashMap<String, String> = HashMap::new();
                for (seat, order) in &pg.seats {
                    if let Some(field) = seat.strip_prefix(&tag) {
                        known.insert(field.to_owned(), order.clone());
                    }
                }
                s.persisted = known.len() as i64;
                for f in &flying {
                    for seat in &f.seats {
                        let Some(field) = seat.strip_prefix(&tag) else { continue };
                        match known.get(field) {
                            Some(o) if *o != f.order => {
                                s.drift += 1;
                                s.problems.push(format!("seat {seat} sold to order {o} in Postgres and {} in the stream", f.order));
                            }
                            Some(_) => {}
                            None => {
                                s.in_flight += 1;
                                known.insert(field.to_owned(), f.order.clone());
                            }
                        }
                    }
                }
                let agrees = |value: Option<&Option<String>>, order: &str| match value {
                    Some(None) => true,
                    Some(Some(o)) => o == order,
                    None => false,
                };
                let mut missing = Vec::new();
                for (field, order) in &sold {
                    match known.get(field) {
                        Some(o) if agrees(Some(order), o) => {}
                        _ => missing.push(format!("{sid}:{field}")),
                    }
                }
                // T4: what Redis lacked at T1 may have sold since.
                let extra: Vec<(&String, &String)> = known.iter().filter(|(f, o)| !agrees(sold.get(*f), o)).collect();
                let mut unsold = Vec::new();
                if !extra.is_empty() {
                    let fields: Vec<&str> = extra.iter().map(|(f, _)| f.as_str()).collect();
                    let now: Vec<Option<String>> = redis::cmd("HMGET").arg(keys.seats(sid)).arg(&fields).query_async(&mut conn).await?;
                    for ((field, order), value) in extra.iter().zip(now) {
                        if !agrees(value.as_deref().and_then(sold_order).as_ref(), order) {
                            unsold.push(format!("{sid}:{field}"));
                        }
                    }
                }
                if !missing.is_empty() {
                    missing.sort();
                    s.drift += missing.len() as i64;
                    s.problems.push(format!("{} seats sold in Redis but not in Postgres: {}", missing.len(), sample(&missing)));
                }
                if !unsold.is_empty() {
                    unsold.sort();
                    s.drift += unsold.len() as i64;
                    s.problems.push(format!("{} seats sold in Postgres but not in Redis: {}", unsold.len(), sample(&unsold)));
                }
            }
            Snapshot::General { held } => {
                s.held = held;
                let mut orders: HashSet<&str> = HashSet::new();
                let mut total = 0;
                for (order, (section, qty)) in &pg.places {
                    if *section == sid {
                        orders.insert(order);
                        total += qty;
                    }
                }
                s.persisted = total;
                for f in &flying {
                    if f.section == Some(sid) && orders.insert(&f.order) {
                        s.in_flight += f.qty;
                        total += f.qty;
                    }
                }
                if total < s.sold {
                    s.drift += s.sold - total;
                    s.problems.push(format!("{} places sold in Redis but not in Postgres", s.sold - total));
                } else if total > s.sold {
                    let now: Option<i64> = conn.hget(keys.avail(), format!("sold:{sid}")).await?;
                    let now = now.unwrap_or(0);
                    if total > now {
                        s.drift += total - now;
                        s.problems.push(format!("{} places sold in Postgres but not in Redis", total - now));
                    }
                }
            }
        }
        let sum = s.sold + s.held + s.available;
        if sum != s.capacity {
            s.drift += (sum - s.capacity).abs();
            s.problems.push(format!("sold {} + held {} + available {} = {sum}, not the capacity {}", s.sold, s.held, s.available, s.capacity));
        }
        if s.available < 0 {
            s.problems.push(format!("negative availability {}", s.available));
        }
        report.drift += s.drift;
        report.sections.push(s);
    }
    Ok(Some(report))
}

/// Seats where a section's seat index (`occ`: byte `(row - 1) × spr + n - 1`
/// is 1 for a seat its seat hash has, 0 or missing for one it has not)
/// disagrees with the seat hash's `fields`.
fn index_disagreements<'a>(fields: impl Iterator<Item = &'a String>, occ: &[u8], spr: u32) -> i64 {
    let mut expected = vec![false; occ.len()];
    let mut wrong = 0;
    for field in fields {
        let offset = field
            .split_once(':')
            .and_then(|(r, n)| Some((r.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|(r, n)| *r >= 1 && (1..=spr as usize).contains(n))
            .map(|(r, n)| (r - 1) * spr as usize + n - 1);
        match offset.and_then(|o| expected.get_mut(o)) {
            Some(slot) => *slot = true,
            None => wrong += 1,
        }
    }
    wrong + occ.iter().zip(&expected).filter(|(byte, taken)| **byte != u8::from(**taken)).count() as i64
}

/// For a sold seat's value (`s`, or `s<order>`), the order it names, if any.
fn sold_order(value: &str) -> Option<Option<String>> {
    let rest = value.strip_prefix('s')?;
    Some((!rest.is_empty()).then(|| rest.to_owned()))
}

/// The first few of a list, for a readable message.
fn sample(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = items.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" … ({} more)", items.len() - SHOWN));
    }
    s
}

/// Reads the counters and every section's seat map or GA zset in one
/// `MULTI`, so the figures belong to one instant.
async fn snapshot(conn: &mut Redis, keys: &EventKeys, meta: &EventMeta) -> anyhow::Result<(BTreeMap<String, i64>, Vec<Snapshot>)> {
    let mut pipe = redis::pipe();
    pipe.atomic().hgetall(keys.avail());
    for s in &meta.sections {
        if s.seated.is_some() {
            pipe.hgetall(keys.seats(s.id)).get(keys.occ(s.id));
        } else {
            pipe.zrange(keys.ga(s.id), 0, -1);
        }
    }
    let mut replies: Vec<Value> = pipe.query_async(conn).await.context("reading the inventory snapshot")?;
    let seated = meta.sections.iter().filter(|s| s.seated.is_some()).count();
    anyhow::ensure!(replies.len() == meta.sections.len() + seated + 1, "short inventory snapshot");
    let mut rest = replies.split_off(1).into_iter();
    let avail: HashMap<String, i64> = redis::from_redis_value(replies.remove(0)).context("the avail hash")?;
    let mut snaps = Vec::with_capacity(meta.sections.len());
    for s in &meta.sections {
        let v = rest.next().context("short inventory snapshot")?;
        if let Some((_, spr)) = s.seated {
            let map: HashMap<String, String> = redis::from_redis_value(v).context("a seat map")?;
            let occ: Option<Vec<u8>> = redis::from_redis_value(rest.next().context("short inventory snapshot")?).context("a seat index")?;
            let index_wrong = index_disagreements(map.keys(), &occ.unwrap_or_default(), spr);
            let mut sold = HashMap::new();
            let mut held = 0;
            for (field, value) in map {
                if let Some(order) = sold_order(&value) {
                    sold.insert(field, order);
                } else if value.starts_with('h') {
                    held += 1;
                }
            }
            snaps.push(Snapshot::Seated { sold, held, index_wrong });
        } else {
            let members: Vec<String> = redis::from_redis_value(v).context("a general-admission zset")?;
            let held = members.iter().filter_map(|m| m.split(':').next()?.parse::<i64>().ok()).sum();
            snaps.push(Snapshot::General { held });
        }
    }
    Ok((avail.into_iter().collect(), snaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seat_index_must_mark_exactly_the_seat_fields() {
        let fields = ["1:2".to_owned(), "2:1".to_owned()];
        // 2 rows of 3: seats 1:2 and 2:1 at bytes 1 and 3.
        assert_eq!(index_disagreements(fields.iter(), &[0, 1, 0, 1], 3), 0);
        assert_eq!(index_disagreements(fields.iter(), &[0, 1, 0, 1, 0, 0], 3), 0, "a zero tail is free");
        assert_eq!(index_disagreements(fields.iter(), &[0, 1], 3), 1, "seat 2:1 is past the index");
        assert_eq!(index_disagreements(fields.iter(), &[1, 1, 0, 1], 3), 1, "seat 1:1 is marked but free");
        assert_eq!(index_disagreements(fields.iter(), &[0, 2, 0, 1], 3), 1, "only 0 and 1 are bytes of the index");
        assert_eq!(index_disagreements(std::iter::empty(), &[], 3), 0);
    }
}
