//! Trimming a stream without losing a message any group still needs.

use redis::RedisResult;
use stampede_common::store::Redis;

use super::id::StreamId;
use super::info::{StreamInfo, stream_info};

/// Trims `key` below the first entry any group has not acknowledged, so
/// no group ever loses a message. Returns how many entries went.
pub async fn trim_acknowledged(conn: &mut Redis, key: &str) -> RedisResult<u64> {
    let Some(info) = stream_info(conn, key).await? else { return Ok(0) };
    trim_below(conn, key, &info).await
}

/// Trims `key` as [`trim_acknowledged`] does, from an `info` just read.
pub async fn trim_below(conn: &mut Redis, key: &str, info: &StreamInfo) -> RedisResult<u64> {
    let Some(below) = info.trimmable_below() else { return Ok(0) };
    if below <= (StreamId { ms: 0, seq: 1 }) {
        return Ok(0);
    }
    let n: i64 = redis::cmd("XTRIM").arg(key).arg("MINID").arg(below.to_string()).query_async(conn).await?;
    Ok(n.max(0) as u64)
}
