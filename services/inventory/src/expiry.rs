//! What the expiry worker reads and runs: deadline buckets due by Redis's
//! clock, the bucket expiry script (`lua/expire_bucket.lua`), and the count
//! of holds not yet finished.

use redis::{AsyncCommands, RedisResult};
use stampede_common::store::Redis;

use crate::keys::EventKeys;
use crate::scripts::Scripts;

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
