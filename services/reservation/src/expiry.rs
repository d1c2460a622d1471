//! The expiry worker (`stampede serve expiry`): releases lapsed holds so the
//! counters and seat maps converge and `hold.expired` reaches the stream.
//!
//! Correctness never depends on it: the scripts treat a lapsed hold as
//! absent (lazy expiry). It is prompted by keyspace `expired`
//! notifications of expiry timers — one key per event per 250 ms of
//! deadlines (`t:<bucket>`), not one per hold — which are lost while it is
//! not subscribed, so a sweeper over each event's deadline set catches up
//! on an interval. The release script is idempotent, so a notification and
//! a sweep firing for one hold still append exactly one `hold.expired`.
//!
//! The sweeper also forgets finished holds: a record that ended longer ago
//! than the retention, and whose last stream entry the persister has
//! committed to Postgres, leaves Redis (`lua/forget.lua`).

use std::time::Duration;

use futures_util::StreamExt;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use stampede_common::Config;

use crate::ReservationConfig;
use stampede_common::store::{self, Redis};
use stampede_inventory::keys::parse_timer_key;
use stampede_inventory::streams::{PERSISTER_GROUP, stream_info};
use stampede_inventory::{
    Admission, EventKeys, Scripts, availability, due_buckets, expire_bucket, forget, pending_holds, published_events, queue_joined, read_meta,
    redis_now_ms,
};
use tokio::sync::watch;

/// The keyspace notifications the worker listens to: every database's
/// expired keys (`notify-keyspace-events` `Ex`).
const EXPIRED_EVENTS: &str = "__keyevent@*__:expired";

/// How often, on a Redis Cluster, the worker reads the topology to follow
/// a failover or a new node with its subscriptions.
const CLUSTER_CHECK: Duration = Duration::from_secs(2);

/// The host and port of a `redis://host:port/` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    match redis::Client::open(url).ok()?.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => Some((host.clone(), *port)),
        _ => None,
    }
}

/// How many due buckets, or holds of one bucket, one read takes.
const SWEEP_BATCH: isize = 1000;

/// How often the worker exports its gauges and forgets finished holds.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// How many holds one call of the bucket expiry releases at most: each
/// call holds Redis for its length (about 30 µs a hold), so a batch is kept
/// short enough not to show in the holds' latency.
const EXPIRE_BATCH: i64 = 100;

/// How many finished holds one sweep of one event forgets at most.
const FORGET_BATCH: i64 = 5000;

/// A finished hold is forgotten only if its stream entries are this far
/// below the first one the persister has not acknowledged (a margin for
/// the ms between the script's clock read and its XADD).
const PERSISTED_MARGIN_MS: i64 = 1000;

pub struct ExpiryWorker {
    redis: Redis,
    redis_url: String,
    scripts: Scripts,
    prefix: String,
    sweep_every: Duration,
    retention_ms: i64,
    admission: Admission,
}

impl ExpiryWorker {
    pub fn build(config: &Config, reservation: &ReservationConfig, redis: Redis) -> Self {
        describe_counter!("holds_expired_total", Unit::Count, "Holds released by the expiry worker, by trigger (notification, sweep).");
        describe_histogram!(
            "hold_expiry_lag_seconds",
            Unit::Seconds,
            "Time from a hold's deadline to its release by the expiry worker (by Redis's clock)."
        );
        describe_counter!("holds_forgotten_total", Unit::Count, "Finished holds dropped from Redis once Postgres had them and their retention had passed.");
        describe_gauge!("holds_active", Unit::Count, "Holds currently live (not yet released, expired or confirmed), over all events.");
        describe_gauge!("inventory_capacity_seats", Unit::Count, "Seats and places on sale, by event.");
        describe_gauge!("inventory_sold_seats", Unit::Count, "Seats and places sold, by event.");
        describe_gauge!("inventory_available_seats", Unit::Count, "Seats and places neither held nor sold, by event.");
        describe_gauge!(
            "queue_waiting_users",
            Unit::Count,
            "Users in a waiting room's line not yet admitted, by event (events with a waiting room only)."
        );
        Self {
            redis,
            redis_url: config.redis_url.clone(),
            scripts: Scripts::load(),
            prefix: config.redis_prefix.clone(),
            sweep_every: Duration::from_millis(reservation.expiry_sweep_ms),
            retention_ms: reservation.finished_hold_retention_ms,
            admission: Admission { initial: reservation.queue_initial_admit, per_second: reservation.queue_admit_per_second },
        }
    }

    /// Runs the notification listener and the sweeper until `stop` turns true.
    pub async fn run(self: std::sync::Arc<Self>, stop: watch::Receiver<bool>) {
        let listener = tokio::spawn(self.clone().listen(stop.clone()));
        let mut stopped = std::pin::pin!(stampede_common::http::stopped(stop));
        let mut tick = tokio::time::interval(self.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_upkeep = tokio::time::Instant::now() - UPKEEP_EVERY;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "expiry sweep failed");
                    }
                    if last_upkeep.elapsed() >= UPKEEP_EVERY {
                        last_upkeep = tokio::time::Instant::now();
                        if let Err(e) = self.upkeep().await {
                            tracing::warn!(error = %e, "expiry upkeep failed");
                        }
                    }
                }
                _ = &mut stopped => break,
            }
        }
        listener.abort();
    }

    /// One pass over every event's deadline buckets: releases what has
    /// lapsed, by Redis's clock (a bucket that has ended by it takes no new
    /// hold). Keyspace notifications come only when Redis's active expiry
    /// finds a timer, which among many keys with a TTL (orders, payment
    /// keys) can be seconds late; so the sweep runs often
    /// (`STAMPEDE_EXPIRY_SWEEP_MS`, 250) and costs one read per event when
    /// nothing is due.
    pub async fn sweep(&self) -> anyhow::Result<usize> {
        let mut conn = self.redis.clone();
        let now = redis_now_ms(&mut conn).await?;
        let mut released = 0;
        for event in published_events(&mut conn, &self.prefix).await? {
            let keys = EventKeys::new(&self.prefix, event);
            for bucket in due_buckets(&mut conn, &keys, now, SWEEP_BATCH).await? {
                released += self.expire_bucket(&keys, bucket, "sweep").await?;
            }
        }
        Ok(released)
    }

    /// Once every [`UPKEEP_EVERY`]: the gauges of every event, and finished
    /// holds forgotten once Postgres has them.
    pub async fn upkeep(&self) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        let now = redis_now_ms(&mut conn).await?;
        let mut active = 0;
        for event in published_events(&mut conn, &self.prefix).await? {
            let keys = EventKeys::new(&self.prefix, event);
            active += pending_holds(&mut conn, &keys).await?;
            self.export_inventory(&mut conn, &keys, now).await?;
            self.forget_finished(&mut conn, &keys, now).await?;
        }
        gauge!("holds_active").set(active as f64);
        Ok(())
    }

    /// Drops finished holds of `keys`'s event that ended before both the
    /// retention and the persister's acknowledged position. Without a
    /// persister group (nothing has been persisted), nothing goes.
    pub async fn forget_finished(&self, conn: &mut Redis, keys: &EventKeys, now: i64) -> anyhow::Result<i64> {
        let Some(info) = stream_info(conn, &keys.stream()).await? else { return Ok(0) };
        let Some(group) = info.group(PERSISTER_GROUP) else { return Ok(0) };
        let persisted = group.acked_below().ms as i64 - PERSISTED_MARGIN_MS;
        let cutoff = persisted.min(now - self.retention_ms);
        let n = forget(conn, &self.scripts, keys, cutoff, FORGET_BATCH).await?;
        if n > 0 {
            counter!("holds_forgotten_total").increment(n as u64);
        }
        Ok(n)
    }

    /// Per-event capacity, sold and available gauges for the on-sale
    /// dashboard, and the line of an event with a waiting room (admission
    /// is computed from Redis's clock `now`, as `lua/queue.lua` does).
    async fn export_inventory(&self, conn: &mut Redis, keys: &EventKeys, now: i64) -> anyhow::Result<()> {
        let Some(meta) = read_meta(conn, keys).await? else { return Ok(()) };
        let counts = availability(conn, keys).await?;
        let capacity: i64 = meta.sections.iter().map(|s| s.capacity).sum();
        let (available, sold) = counts.values().fold((0, 0), |(a, s), (ca, cs)| (a + ca, s + cs));
        let event = keys.event.to_string();
        gauge!("inventory_capacity_seats", "event" => event.clone()).set(capacity as f64);
        gauge!("inventory_sold_seats", "event" => event.clone()).set(sold as f64);
        if meta.waiting_room {
            let waiting = self.admission.waiting(queue_joined(conn, keys).await?, meta.sale_ms, now);
            gauge!("queue_waiting_users", "event" => event.clone()).set(waiting as f64);
        }
        gauge!("inventory_available_seats", "event" => event).set(available as f64);
        Ok(())
    }

    /// Subscribes to `expired` keyspace events and releases each hold whose
    /// timer fired. Reconnects forever; the sweeper covers the gaps.
    async fn listen(self: std::sync::Arc<Self>, stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            if let Err(e) = self.listen_once().await {
                tracing::warn!(error = %e, "expiry notifications lost; reconnecting");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn listen_once(&self) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        ensure_notifications(&mut conn).await;
        if store::is_cluster_url(&self.redis_url) {
            return self.listen_cluster_once().await;
        }
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(EXPIRED_EVENTS).await?;
        tracing::info!("expiry worker subscribed to keyspace notifications");
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(key) = msg.get_payload::<String>() else { continue };
            self.on_expired(&key).await;
        }
        anyhow::bail!("notification stream ended")
    }

    /// A key expired: if it is a deadline bucket's timer, expire the bucket.
    async fn on_expired(&self, key: &str) {
        let Some((event, bucket)) = parse_timer_key(&self.prefix, key) else { return };
        let keys = EventKeys::new(&self.prefix, event);
        if let Err(e) = self.expire_bucket(&keys, bucket, "notification").await {
            tracing::warn!(error = %e, event, bucket, "releasing expired holds failed; the sweeper will retry");
        }
    }

    /// On a Redis Cluster each node publishes the notifications of its own
    /// keys only, so every primary needs a subscriber of its own. fred's
    /// cluster client finds the primaries and `split_cluster` gives one
    /// client per primary; each subscribes, and subscribes again whenever
    /// it reconnects. Every [`CLUSTER_CHECK`] the cluster's topology is
    /// read again, and when its primaries changed (a failover promoted a
    /// replica, a node joined or left) the whole set is made anew (the
    /// caller reconnects at once; the sweeper covers the moment between).
    async fn listen_cluster_once(&self) -> anyhow::Result<()> {
        use fred::prelude::*;
        use tokio::sync::broadcast::error::RecvError;

        let hosts = store::cluster_seeds(&self.redis_url).unwrap_or_default().iter().filter_map(|u| host_port(u)).collect();
        let config = fred::types::config::Config { server: ServerConfig::new_clustered(hosts), ..Default::default() };
        let main = Builder::from_config(config).set_policy(ReconnectPolicy::new_constant(0, 500)).build()?;
        main.init().await?;
        let primaries = |c: &fred::clients::Client| -> std::collections::BTreeSet<String> {
            c.cached_cluster_state().map(|s| s.unique_primary_nodes().iter().map(|n| n.to_string()).collect()).unwrap_or_default()
        };
        let subscribed = primaries(&main);
        let (tx, mut keys) = tokio::sync::mpsc::channel::<String>(4096);
        let mut tasks = Vec::new();
        let mut subscribers = Vec::new();
        for sub in main.split_cluster()? {
            sub.init().await?;
            sub.psubscribe(EXPIRED_EVENTS).await?;
            let (again, mut reconnects) = (sub.clone(), sub.reconnect_rx());
            tasks.push(tokio::spawn(async move {
                while reconnects.recv().await.is_ok() {
                    if let Err(e) = again.psubscribe(EXPIRED_EVENTS).await {
                        tracing::warn!(error = %e, "subscribing again after a reconnect failed");
                    }
                }
            }));
            // fred hands keyspace and keyevent messages to their own
            // channel, parsed (`operation` expired, `key` the key).
            let (tx, mut events) = (tx.clone(), sub.keyspace_event_rx());
            tasks.push(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(event) if event.operation == "expired" => {
                            if tx.send(event.key.as_str_lossy().into_owned()).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "expiry notifications dropped; the sweeper covers them"),
                        Err(RecvError::Closed) => return,
                    }
                }
            }));
            subscribers.push(sub);
        }
        drop(tx);
        tracing::info!(primaries = subscribed.len(), "expiry worker subscribed to keyspace notifications on every primary");
        let mut check = tokio::time::interval(CLUSTER_CHECK);
        check.tick().await;
        let outcome = loop {
            tokio::select! {
                key = keys.recv() => match key {
                    Some(key) => self.on_expired(&key).await,
                    None => break Err(anyhow::anyhow!("every notification subscriber stopped")),
                },
                _ = check.tick() => {
                    if let Err(e) = main.sync_cluster().await {
                        tracing::warn!(error = %e, "reading the cluster's topology failed");
                    }
                    if primaries(&main) != subscribed {
                        break Err(anyhow::anyhow!("the cluster's primaries changed; subscribing anew"));
                    }
                }
            }
        };
        for t in tasks {
            t.abort();
        }
        for sub in subscribers {
            let _ = sub.quit().await;
        }
        let _ = main.quit().await;
        outcome
    }

    /// Expires every hold listed in deadline bucket `bucket` (which has
    /// ended: its timer fired, or Redis's clock is past it), a batch per
    /// atomic call; the script drops each batch from the list, and the
    /// bucket once its list is empty. Returns how many this call expired.
    async fn expire_bucket(&self, keys: &EventKeys, bucket: i64, trigger: &'static str) -> anyhow::Result<usize> {
        let mut conn = self.redis.clone();
        let mut expired = 0;
        loop {
            let done = expire_bucket(&mut conn, &self.scripts, keys, bucket, EXPIRE_BATCH).await?;
            expired += done.lags_ms.len();
            counter!("holds_expired_total", "trigger" => trigger).increment(done.lags_ms.len() as u64);
            for lag in &done.lags_ms {
                histogram!("hold_expiry_lag_seconds").record(*lag as f64 / 1000.0);
            }
            if done.left.is_none_or(|left| left == 0) {
                return Ok(expired);
            }
        }
    }
}

/// Makes sure Redis publishes `expired` keyspace events (`E` and `x`),
/// keeping whatever other classes are configured. Best effort: a managed
/// Redis may forbid CONFIG, and then the sweeper alone does the work.
async fn ensure_notifications(conn: &mut Redis) {
    let current: Result<Vec<String>, _> = redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query_async(conn).await;
    let flags = current.ok().and_then(|v| v.get(1).cloned()).unwrap_or_default();
    if flags.contains('E') && (flags.contains('x') || flags.contains('A')) {
        return;
    }
    let mut wanted = flags.clone();
    for c in ['E', 'x'] {
        if !wanted.contains(c) {
            wanted.push(c);
        }
    }
    let set: Result<(), _> = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg(&wanted).query_async(conn).await;
    if let Err(e) = set {
        tracing::warn!(error = %e, "cannot enable keyspace notifications; relying on the sweeper");
    }
}
