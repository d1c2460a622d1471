//! Redis: a reconnecting, multiplexed connection shared by every task of a
//! service (one socket, requests pipelined automatically).

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub type Redis = ConnectionManager;

/// Connects to `url`. Requests time out after 2 s so a stalled Redis turns
/// into a 503, not a hang; the manager reconnects by itself.
pub async fn connect(url: &str) -> anyhow::Result<Redis> {
    let client = redis::Client::open(url).context("STAMPEDE_REDIS_URL: not a valid Redis URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client, config).await.context("connecting to Redis")
}

/// A dedicated connection for blocking reads (`XREADGROUP BLOCK`) and
/// pub/sub: no response timeout, never shared with the hot path.
pub async fn blocking_connection(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).context("STAMPEDE_REDIS_URL: not a valid Redis URL")?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(None);
    client.get_multiplexed_async_connection_with_config(&config).await.context("connecting to Redis")
}

/// Readiness probe: a PING.
pub async fn ping(redis: &Redis) -> Result<(), String> {
    let mut conn = redis.clone();
    redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| format!("redis: {e}"))
}
