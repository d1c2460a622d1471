//! Redis: one shared connection per service, to a single Redis or to a
//! Redis Cluster, chosen by `STAMPEDE_REDIS_URL`: one URL is a single Redis
//! (a reconnecting, multiplexed connection: one socket, requests pipelined
//! automatically); a comma-separated list of URLs is a cluster's seed nodes
//! (redis-rs's cluster client: a multiplexed connection per primary, every
//! command routed by its key's slot, MOVED/ASK followed, the topology
//! refreshed when it changes). Callers use one type, [`Redis`], either way.
//!
//! On a cluster a command or an atomic pipeline may only name keys of one
//! slot. Every key of an event shares its hash tag (`{ev:<id>}`), so each
//! function call, and each transaction over an event's keys, stays on one
//! shard; what spans events (reading many streams, acknowledging entries of
//! several) is sent per stream.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to Redis, single or clustered; cheap to clone (clones share
/// the connection).
#[derive(Clone)]
pub enum Redis {
    /// A single Redis: reconnects by itself, requests time out.
    Single(ConnectionManager),
    /// A single Redis without a response timeout (blocking reads).
    Plain(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Redis::Single(c) => c.req_packed_command(cmd),
            Redis::Plain(c) => c.req_packed_command(cmd),
            Redis::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, cmd: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Redis::Single(c) => c.req_packed_commands(cmd, offset, count),
            Redis::Plain(c) => c.req_packed_commands(cmd, offset, count),
            Redis::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Redis::Single(c) => c.get_db(),
            Redis::Plain(c) => c.get_db(),
            Redis::Cluster(c) => c.get_db(),
        }
    }
}

impl Redis {
    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Redis::Cluster(_))
    }

    /// Runs `cmd` on the primary that owns `key`'s slot (a single Redis
    /// runs it as any command). For commands whose meaning is per node
    /// (`WAIT`: the replicas of the node that took this connection's
    /// writes), which a cluster would otherwise send to any node.
    pub async fn query_on_node_of<T: redis::FromRedisValue>(&mut self, key: &str, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Redis::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master)));
                let value = c.route_command(cmd.clone(), route).await?;
                Ok(redis::from_redis_value(value)?)
            }
            other => cmd.query_async(other).await,
        }
    }
}

/// Runs `cmds` and answers their replies in order. Each command may name
/// keys of one slot only, different commands different slots: on a single
/// Redis they go as one pipeline; on a cluster (where redis-rs refuses a
/// pipeline across slots) each goes on its own, all at once, multiplexed
/// on the shards' connections.
pub async fn query_each<T: redis::FromRedisValue>(conn: &mut Redis, cmds: Vec<Cmd>) -> RedisResult<Vec<T>> {
    if cmds.is_empty() {
        return Ok(Vec::new());
    }
    if conn.is_cluster() {
        let calls = cmds.into_iter().map(|cmd| {
            let mut c = conn.clone();
            async move { cmd.query_async::<T>(&mut c).await }
        });
        return futures_util::future::try_join_all(calls).await;
    }
    let mut pipe = redis::pipe();
    for cmd in cmds {
        pipe.add_command(cmd);
    }
    pipe.query_async(conn).await
}

/// The seed nodes of a cluster URL list (`redis://a:1,redis://b:2`), or
/// `None` for a single URL.
pub fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let seeds: Vec<String> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    (seeds.len() > 1).then_some(seeds)
}

/// Whether `url` names a Redis Cluster (a list of seed nodes).
pub fn is_cluster_url(url: &str) -> bool {
    cluster_seeds(url).is_some()
}

fn cluster_client(seeds: Vec<String>, response_timeout: Option<Duration>) -> anyhow::Result<ClusterClient> {
    let mut builder = ClusterClient::builder(seeds).connection_timeout(Duration::from_secs(2)).retries(3);
    builder = builder.response_timeout(response_timeout.unwrap_or(Duration::from_secs(24 * 3600)));
    builder.build().context("STAMPEDE_REDIS_URL: not a valid list of Redis Cluster seed URLs")
}

/// Connects to `url` (one URL, or a cluster's comma-separated seed URLs).
/// Requests time out after 2 s so a stalled Redis turns into a 503, not a
/// hang; the connection reconnects by itself.
pub async fn connect(url: &str) -> anyhow::Result<Redis> {
    if let Some(seeds) = cluster_seeds(url) {
        let client = cluster_client(seeds, Some(Duration::from_secs(2)))?;
        let conn = client.get_async_connection().await.context("connecting to the Redis Cluster")?;
        return Ok(Redis::Cluster(conn));
    }
    let client = redis::Client::open(url).context("STAMPEDE_REDIS_URL: not a valid Redis URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_millis(500));
    let conn = ConnectionManager::new_with_config(client, config).await.context("connecting to Redis")?;
    Ok(Redis::Single(conn))
}

/// A dedicated connection for blocking reads (`XREADGROUP BLOCK`): no
/// response timeout, never shared with the hot path.
pub async fn blocking_connection(url: &str) -> anyhow::Result<Redis> {
    if let Some(seeds) = cluster_seeds(url) {
        let client = cluster_client(seeds, None)?;
        let conn = client.get_async_connection().await.context("connecting to the Redis Cluster")?;
        return Ok(Redis::Cluster(conn));
    }
    let client = redis::Client::open(url).context("STAMPEDE_REDIS_URL: not a valid Redis URL")?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(None);
    let conn = client.get_multiplexed_async_connection_with_config(&config).await.context("connecting to Redis")?;
    Ok(Redis::Plain(conn))
}

/// Checks that `url` is a Redis URL or a list of them, without connecting.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    match cluster_seeds(url) {
        Some(seeds) => {
            for seed in seeds {
                redis::Client::open(seed.as_str()).with_context(|| format!("STAMPEDE_REDIS_URL: {seed:?} is not a valid Redis URL"))?;
            }
        }
        None => {
            redis::Client::open(url).context("STAMPEDE_REDIS_URL: not a valid Redis URL")?;
        }
    }
    Ok(())
}

/// Whether `e` says Redis is unavailable for now, the call not made (worth
/// a retry, a 503 to a client): the connection failed or timed out, the
/// server is loading its data, or a Redis Cluster is in the middle of a
/// failover (the shard's primary gone and its replica not yet promoted, or
/// the client's map of the shards behind after the redirects it follows).
pub fn unavailable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind as S};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(S::BusyLoading | S::ClusterDown | S::TryAgain | S::MasterDown | S::ReadOnly | S::Moved | S::Ask)
        )
}

/// Readiness probe: a PING.
pub async fn ping(redis: &Redis) -> Result<(), String> {
    let mut conn = redis.clone();
    redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| format!("redis: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_urls_is_a_cluster_and_one_url_a_single_redis() {
        assert_eq!(cluster_seeds("redis://127.0.0.1:6390/"), None);
        assert_eq!(
            cluster_seeds("redis://127.0.0.1:7001/, redis://127.0.0.1:7002/"),
            Some(vec!["redis://127.0.0.1:7001/".to_owned(), "redis://127.0.0.1:7002/".to_owned()])
        );
        assert!(!is_cluster_url("redis://127.0.0.1:6390/,"), "a trailing comma is still one URL");
        assert!(check_url("redis://127.0.0.1:7001/,redis://127.0.0.1:7002/").is_ok());
        assert!(check_url("redis://127.0.0.1:7001/,nonsense").is_err());
    }
}
