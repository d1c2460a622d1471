//! Payment idempotency records in Redis, one per (user, key), under the
//! event's hash tag: `P|<hold>` while the first request is in flight,
//! `D|<hold>|<status>|<body>` once it has answered.

use std::time::Duration;

use redis::AsyncCommands;
use stampede_common::store::Redis;

/// How long an in-flight claim lives if its process dies mid-payment;
/// after that a retry may proceed: the provider's own idempotency key keeps
/// the charge single, and a retry that finds the hold paid with that charge
/// answers with its order (so even a twin still running is harmless).
const PENDING_MS: u64 = 20_000;
/// How long a concurrent duplicate waits for the first request to answer
/// (under nginx's 30 s upstream read timeout, so the answer is a 409, not a 504).
const WAIT: Duration = Duration::from_secs(20);

pub enum Claim {
    /// This request goes ahead.
    Owned,
    /// An earlier request with this key answered this.
    Replay { status: u16, body: String },
    /// The key was used for another hold.
    OtherHold,
    /// The earlier request is still running past the wait.
    InProgress,
}

/// Claims `key` for `hold`, or waits for the request that holds it.
pub async fn claim(conn: &mut Redis, key: &str, hold: &str) -> redis::RedisResult<Claim> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(format!("P|{hold}"))
            .arg("NX")
            .arg("PX")
            .arg(PENDING_MS)
            .query_async(conn)
            .await?;
        if set.is_some() {
            return Ok(Claim::Owned);
        }
        let current: Option<String> = conn.get(key).await?;
        let Some(current) = current else { continue }; // expired between the two calls
        let mut parts = current.splitn(4, '|');
        let (kind, for_hold) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if for_hold != hold {
            return Ok(Claim::OtherHold);
        }
        if kind == "D" {
            let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(500);
            return Ok(Claim::Replay { status, body: parts.next().unwrap_or("").to_owned() });
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Claim::InProgress);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records the answer for replays.
pub async fn finish(conn: &mut Redis, key: &str, hold: &str, status: u16, body: &str, ttl_ms: i64) -> redis::RedisResult<()> {
    conn.pset_ex(key, format!("D|{hold}|{status}|{body}"), ttl_ms.max(1) as u64).await
}

/// Gives the key up (the attempt can be retried with it).
pub async fn abandon(conn: &mut Redis, key: &str) -> redis::RedisResult<()> {
    conn.del(key).await
}
