//! Ending holds: a release by its owner or the expiry worker
//! (`lua/release.lua`), and forgetting finished holds once Postgres has
//! them (`lua/forget.lua`).

use redis::{RedisResult, Value};
use stampede_common::store::Redis;

use crate::holds::{read_hold, seat_keys};
use crate::keys::EventKeys;
use crate::reply::{int, text};
use crate::scripts::Scripts;

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
