//! Putting an event on sale and reading what is on sale: the meta hash,
//! the per-section counters, the events set.

use std::collections::HashMap;

use redis::{AsyncCommands, RedisResult};
use stampede_common::store::Redis;

use crate::keys::{EventKeys, events_set};
use crate::layout::{EventMeta, SectionLayout};
use crate::scripts::Scripts;

/// Publishes an event's inventory. `Ok(false)` if it was already published
/// (and is then left untouched).
pub async fn publish(conn: &mut Redis, scripts: &Scripts, prefix: &str, keys: &EventKeys, meta: &EventMeta) -> RedisResult<bool> {
    let mut inv = scripts.publish.key(keys.meta());
    inv.key(keys.avail())
        .arg(meta.sale_ms)
        .arg(meta.hold_ms)
        .arg(meta.limit)
        .arg(if meta.waiting_room { 1 } else { 0 })
        .arg(if meta.verified_email_required { 1 } else { 0 });
    for s in &meta.sections {
        inv.arg(s.id).arg(s.encode());
    }
    let reply: Vec<String> = inv.invoke_async(conn).await?;
    let _: i64 = conn.sadd(events_set(prefix), keys.event).await?;
    Ok(reply.first().is_some_and(|s| s == "ok"))
}

/// Updates the sale window, limits and whether holds need a verified
/// e-mail of a published event (the layout never changes after publishing).
pub async fn update_terms(conn: &mut Redis, keys: &EventKeys, sale_ms: i64, hold_ms: i64, limit: i64, verified_email_required: bool) -> RedisResult<()> {
    let ve = i64::from(verified_email_required);
    conn.hset_multiple(keys.meta(), &[("sale_ms", sale_ms), ("hold_ms", hold_ms), ("limit", limit), ("ve", ve)]).await
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
        verified_email_required: num("ve") == 1,
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

/// Every published event id.
pub async fn published_events(conn: &mut Redis, prefix: &str) -> RedisResult<Vec<i64>> {
    conn.smembers(events_set(prefix)).await
}
