//! Rebuilding an event's Redis inventory from Postgres after Redis lost
//! data: the meta and counters as `lua/publish.lua` writes them, every seat
//! Postgres has sold marked `s` (as `lua/confirm.lua` marks it; the order
//! stays in Postgres), each seated section's seat index rebuilt from its
//! seat map (its row bounds dropped: unknown, so read again), general-admission sold counts, each
//! buyer's sold count in the users hash, and the event back in the events
//! set.
//!
//! Whatever Redis still has is merged, never thrown away: seats it has sold
//! that Postgres does not know yet (the persister lags) stay sold, holds stay
//! held, and every counter is recomputed from the result, so no sold seat
//! can be sold again. The read and the write run under `WATCH`/`MULTI`, so
//! a script that changes the event meanwhile makes the rebuild start over
//! rather than overwrite it. One thing stops it instead: a live hold on a
//! seat Postgres has sold (it could still be confirmed); that clears once
//! the hold lapses or is released. Running it twice changes nothing the second time. (Order
//! records `o:<order>` are not rebuilt: checkout reads orders from Postgres
//! when Redis lacks them.)

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail};
use deadpool_postgres::Pool;
use redis::Value;
use stampede_common::store::Redis;
use stampede_inventory::EventKeys;
use stampede_inventory::keys::events_set;

/// What a rebuild wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rebuilt {
    pub event: i64,
    pub sections: usize,
    /// Seats marked sold, over all seated sections.
    pub sold_seats: i64,
    /// Places sold, over all general-admission sections.
    pub sold_places: i64,
    /// Buyers whose sold count was written.
    pub users: usize,
    /// Attempts it took (a concurrent change makes it start over).
    pub attempts: u32,
}

/// A sold seat's value in a seat map (`lua/confirm.lua`).
const SOLD: &str = "s";

struct Section {
    id: i64,
    /// `(rows, seats per row)` for a seated section.
    seated: Option<(i32, i32)>,
    capacity: i64,
    price_cents: i64,
}

impl Section {
    /// The layout field of the meta hash, as `publish.lua` stores it.
    fn layout(&self) -> String {
        match self.seated {
            Some((rows, spr)) => format!("s,{rows},{spr},{},{}", self.capacity, self.price_cents),
            None => format!("g,0,0,{},{}", self.capacity, self.price_cents),
        }
    }
}

/// The durable truth about one event.
struct Truth {
    sale_ms: i64,
    hold_ms: i64,
    limit: i64,
    waiting_room: bool,
    verified_email_required: bool,
    sections: Vec<Section>,
    /// section → `<row>:<n>` → order.
    seats: HashMap<i64, BTreeMap<String, String>>,
    /// section → places sold.
    places: HashMap<i64, i64>,
    /// user → places and seats bought.
    users: BTreeMap<String, i64>,
}

async fn truth(db: &Pool, event: i64) -> anyhow::Result<Truth> {
    let client = db.get().await.context("connecting to Postgres")?;
    let row = client
        .query_opt(
            "SELECT status, (extract(epoch FROM sale_starts_at) * 1000)::int8, hold_seconds, per_user_limit, waiting_room,
                    verified_email_required
             FROM events WHERE id = $1",
            &[&event],
        )
        .await
        .context("reading the event")?;
    let Some(row) = row else { bail!("event {event} is not in Postgres") };
    let status: String = row.get(0);
    if status != "published" {
        bail!("event {event} is {status}, not published: there is no inventory to rebuild");
    }
    let hold_seconds: i32 = row.get(2);
    let limit: i32 = row.get(3);
    let mut t = Truth {
        sale_ms: row.get(1),
        hold_ms: i64::from(hold_seconds) * 1000,
        limit: i64::from(limit),
        waiting_room: row.get(4),
        verified_email_required: row.get(5),
        sections: Vec::new(),
        seats: HashMap::new(),
        places: HashMap::new(),
        users: BTreeMap::new(),
    };
    let rows = client
        .query(
            "SELECT id, general_admission, rows, seats_per_row, capacity, price_cents
             FROM sections WHERE event_id = $1 ORDER BY position",
            &[&event],
        )
        .await
        .context("reading the sections")?;
    for r in rows {
        let ga: bool = r.get(1);
        let (rows, spr): (Option<i32>, Option<i32>) = (r.get(2), r.get(3));
        let capacity: i32 = r.get(4);
        let seated = match (ga, rows, spr) {
            (false, Some(rows), Some(spr)) => Some((rows, spr)),
            (false, _, _) => bail!("seated section {} has no rows or seats per row", r.get::<_, i64>(0)),
            (true, _, _) => None,
        };
        t.sections.push(Section { id: r.get(0), seated, capacity: i64::from(capacity), price_cents: r.get(5) });
    }
    let rows = client
        .query(
            "SELECT s.seat_id, s.order_id FROM order_seats s JOIN orders o ON o.id = s.order_id
             WHERE s.event_id = $1 AND o.status = 'confirmed'",
            &[&event],
        )
        .await
        .context("reading sold seats")?;
    for r in rows {
        let seat: String = r.get(0);
        let Some((sid, field)) = seat.split_once(':') else { bail!("malformed seat id {seat:?} in order_seats") };
        let sid: i64 = sid.parse().with_context(|| format!("malformed seat id {seat:?} in order_seats"))?;
        t.seats.entry(sid).or_default().insert(field.to_owned(), r.get(1));
    }
    let rows = client
        .query(
            "SELECT section_id, sum(quantity)::int8 FROM orders
             WHERE event_id = $1 AND section_id IS NOT NULL AND status = 'confirmed' GROUP BY section_id",
            &[&event],
        )
        .await
        .context("reading general-admission sales")?;
    for r in rows {
        t.places.insert(r.get(0), r.get(1));
    }
    let rows = client
        .query(
            "SELECT user_id, sum(quantity)::int8 FROM orders WHERE event_id = $1 AND status = 'confirmed' GROUP BY user_id",
            &[&event],
        )
        .await
        .context("reading buyers")?;
    for r in rows {
        t.users.insert(r.get::<_, i64>(0).to_string(), r.get(1));
    }
    Ok(t)
}

/// Rebuilds `event`'s inventory in Redis from Postgres (see the module docs).
pub async fn rebuild_inventory(db: &Pool, redis: &Redis, prefix: &str, event: i64) -> anyhow::Result<Rebuilt> {
    let truth = truth(db, event).await?;
    let keys = EventKeys::new(prefix, event);
    let mut conn = redis.clone();
    for attempt in 1..=20 {
        let mut watched = vec![keys.meta(), keys.avail(), keys.users()];
        for s in &truth.sections {
            watched.push(if s.seated.is_some() { keys.seats(s.id) } else { keys.ga(s.id) });
        }
        redis::cmd("WATCH").arg(&watched).query_async::<()>(&mut conn).await.context("watching the inventory")?;
        let plan = match plan(&mut conn, &keys, &truth).await {
            Ok(p) => p,
            Err(e) => {
                let _ = redis::cmd("UNWATCH").query_async::<()>(&mut conn).await;
                return Err(e);
            }
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.del(keys.meta()).ignore();
        pipe.cmd("HSET").arg(keys.meta()).arg(&plan.meta).ignore();
        pipe.del(keys.avail()).ignore();
        pipe.cmd("HSET").arg(keys.avail()).arg(&plan.avail).ignore();
        for (sid, map) in &plan.seat_maps {
            pipe.del(keys.seats(*sid)).ignore();
            if !map.is_empty() {
                pipe.cmd("HSET").arg(keys.seats(*sid)).arg(map.iter().collect::<Vec<_>>()).ignore();
            }
        }
        for (sid, occ) in &plan.indexes {
            pipe.del(&[keys.occ(*sid), keys.runs(*sid)]).ignore();
            if !occ.is_empty() {
                pipe.set(keys.occ(*sid), occ).ignore();
            }
        }
        if !plan.users.is_empty() {
            pipe.cmd("HSET").arg(keys.users()).arg(plan.users.iter().collect::<Vec<_>>()).ignore();
        }
        let done: Option<Vec<Value>> = pipe.query_async(&mut conn).await.context("writing the inventory")?;
        if done.is_some() {
            // Apart from the transaction: the events set is no key of the
            // event's (on a cluster it lives on another shard). The workers
            // find the event once it is there; adding it twice is harmless.
            redis::cmd("SADD").arg(events_set(prefix)).arg(event).query_async::<()>(&mut conn).await.context("listing the event")?;
            let rebuilt = Rebuilt {
                event,
                sections: truth.sections.len(),
                sold_seats: plan.sold_seats,
                sold_places: plan.sold_places,
                users: plan.users.len(),
                attempts: attempt,
            };
            tracing::info!(event, sold_seats = rebuilt.sold_seats, sold_places = rebuilt.sold_places, users = rebuilt.users, "inventory rebuilt");
            return Ok(rebuilt);
        }
        tracing::info!(event, attempt, "inventory changed during the rebuild; starting over");
    }
    bail!("event {event} kept changing during the rebuild; pause its sale and retry")
}

/// What to write.
struct Plan {
    meta: Vec<(String, String)>,
    avail: Vec<(String, i64)>,
    seat_maps: Vec<(i64, BTreeMap<String, String>)>,
    /// Each seated section's seat index (`occ`), as `lua/lib.lua` keeps it.
    indexes: Vec<(i64, Vec<u8>)>,
    users: BTreeMap<String, String>,
    sold_seats: i64,
    sold_places: i64,
}

/// Reads what Redis has (under WATCH) and merges Postgres into it.
async fn plan(conn: &mut Redis, keys: &EventKeys, t: &Truth) -> anyhow::Result<Plan> {
    let now_ms = stampede_inventory::redis_now_ms(conn).await.context("reading Redis time")?;
    let avail: HashMap<String, i64> = redis::cmd("HGETALL").arg(keys.avail()).query_async(conn).await?;
    let users: HashMap<String, String> = redis::cmd("HGETALL").arg(keys.users()).query_async(conn).await?;

    let mut p = Plan {
        meta: vec![
            ("status".into(), "published".into()),
            ("sale_ms".into(), t.sale_ms.to_string()),
            ("hold_ms".into(), t.hold_ms.to_string()),
            ("limit".into(), t.limit.to_string()),
            ("wr".into(), if t.waiting_room { "1" } else { "0" }.into()),
            ("ve".into(), if t.verified_email_required { "1" } else { "0" }.into()),
        ],
        avail: Vec::new(),
        seat_maps: Vec::new(),
        indexes: Vec::new(),
        users: BTreeMap::new(),
        sold_seats: 0,
        sold_places: 0,
    };
    for s in &t.sections {
        p.meta.push((format!("s:{}", s.id), s.layout()));
        let (sold, held) = match s.seated {
            Some((_, spr)) => {
                let mut map: BTreeMap<String, String> = redis::cmd("HGETALL").arg(keys.seats(s.id)).query_async(conn).await?;
                if let Some(pg) = t.seats.get(&s.id) {
                    for field in pg.keys() {
                        match map.get(field).map(String::as_str) {
                            Some(v) if v.starts_with('s') => {}
                            Some(v) if hold_is_live(v, now_ms) => bail!(
                                "seat {}:{field} is sold in Postgres and held by a live hold in Redis ({v}); retry once it lapses or is released",
                                s.id
                            ),
                            _ => {
                                map.insert(field.clone(), SOLD.to_owned());
                            }
                        }
                    }
                }
                let sold = map.values().filter(|v| v.starts_with('s')).count() as i64;
                let held = map.values().filter(|v| v.starts_with('h')).count() as i64;
                p.sold_seats += sold;
                p.indexes.push((s.id, seat_index(map.keys(), spr)));
                p.seat_maps.push((s.id, map));
                (sold, held)
            }
            None => {
                let members: Vec<String> = redis::cmd("ZRANGE").arg(keys.ga(s.id)).arg(0).arg(-1).query_async(conn).await?;
                let held: i64 = members.iter().filter_map(|m| m.split(':').next()?.parse::<i64>().ok()).sum();
                let in_redis = avail.get(&format!("sold:{}", s.id)).copied().unwrap_or(0);
                let sold = t.places.get(&s.id).copied().unwrap_or(0).max(in_redis);
                p.sold_places += sold;
                (sold, held)
            }
        };
        let available = s.capacity - sold - held;
        if available < 0 {
            bail!("section {} would be oversold: capacity {}, sold {sold}, held {held}", s.id, s.capacity);
        }
        p.avail.push((s.id.to_string(), available));
        p.avail.push((format!("sold:{}", s.id), sold));
    }
    for (user, bought) in &t.users {
        let (sold, rest) = match users.get(user) {
            Some(rec) => match rec.split_once(';') {
                Some((sold, rest)) => (sold.parse::<i64>().unwrap_or(0), Some(rest)),
                None => (rec.parse::<i64>().unwrap_or(0), None),
            },
            None => (0, None),
        };
        if sold >= *bought {
            continue;
        }
        // As `save_user` in lua/lib.lua writes it: "<sold>;<hold>,<qty>,<exp>;…".
        let rec = match rest.filter(|r| !r.is_empty()) {
            Some(rest) => format!("{bought};{rest}"),
            None => bought.to_string(),
        };
        p.users.insert(user.clone(), rec);
    }
    Ok(p)
}

/// A seated section's seat index: byte `(row - 1) × spr + n - 1` is 1 for
/// each seat `<row>:<n>` of the seat map, 0 for a free seat, and the zero
/// tail left out (a missing byte is free).
fn seat_index<'a>(fields: impl Iterator<Item = &'a String>, spr: i32) -> Vec<u8> {
    let spr = spr.max(1) as usize;
    let mut occ = Vec::new();
    for field in fields {
        let Some((r, n)) = field.split_once(':').and_then(|(r, n)| Some((r.parse::<usize>().ok()?, n.parse::<usize>().ok()?))) else {
            continue;
        };
        if r == 0 || n == 0 || n > spr {
            continue;
        }
        let at = (r - 1) * spr + n - 1;
        if occ.len() <= at {
            occ.resize(at + 1, 0);
        }
        occ[at] = 1;
    }
    occ
}

/// Whether a seat value `h<exp>:<hold>` is a hold that has not lapsed.
fn hold_is_live(value: &str, now_ms: i64) -> bool {
    value
        .strip_prefix('h')
        .and_then(|v| v.split(':').next())
        .and_then(|e| e.parse::<i64>().ok())
        .is_some_and(|exp| exp > now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_publish() {
        let s = Section { id: 3, seated: Some((2, 5)), capacity: 10, price_cents: 700 };
        assert_eq!(s.layout(), "s,2,5,10,700");
        let g = Section { id: 4, seated: None, capacity: 50, price_cents: 100 };
        assert_eq!(g.layout(), "g,0,0,50,100");
    }

    #[test]
    fn the_seat_index_marks_each_seat_of_the_map() {
        let fields = ["2:1".to_owned(), "1:3".to_owned(), "junk".to_owned(), "1:9".to_owned()];
        assert_eq!(seat_index(fields.iter(), 3), vec![0, 0, 1, 1]);
        assert!(seat_index(std::iter::empty(), 3).is_empty());
    }

    #[test]
    fn live_holds_are_told_apart() {
        assert!(hold_is_live("h2000:abc", 1000));
        assert!(!hold_is_live("h500:abc", 1000));
        assert!(!hold_is_live("sorder", 1000));
    }
}
