//! The group reader: discovery of the event streams, reads of new entries,
//! claims of a dead consumer's idle entries, acknowledgements and dead
//! letters. Replies are redis-rs's typed stream replies
//! (`redis::streams::StreamReadReply`, `StreamAutoClaimReply`,
//! `StreamPendingCountReply`); a claimed batch's delivery counts take one
//! `XPENDING` range per stream, in one round trip.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use metrics::counter;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamKey, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError, RedisResult, Value};
use stampede_common::config::{ConfigError, Env};
use stampede_common::store::{self, Redis};

use super::entry::{Entry, dead_letter_key, text_fields};
use super::id::StreamId;
use super::telemetry::describe_metrics;
use crate::keys::{EventKeys, events_set};

/// How often a reader on a Redis Cluster looks for new entries while it
/// waits (a blocking read cannot span the shards).
pub const CLUSTER_POLL: Duration = Duration::from_millis(20);

/// The persister's consumer group: what it has acknowledged is in Postgres.
pub const PERSISTER_GROUP: &str = "persister";

/// A consumer name unique to this process: `<host>-<pid>-<random>`, so
/// several workers never share a pending list by accident.
pub fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{}", std::process::id(), stampede_common::ids::random_hex(3))
}

/// How a reader batches, blocks, claims and gives up.
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// Entries per batch (per stream for new entries: a batch over many
    /// streams may hold more).
    pub batch: usize,
    /// How long one read waits for a first entry.
    pub block: Duration,
    /// Once a read returned a short batch, how long to wait before one
    /// more read (that does not block) to fill it.
    pub linger: Duration,
    /// A pending entry idle this long belongs to a dead consumer and is
    /// claimed.
    pub claim_idle: Duration,
    /// Deliveries after which a claimed entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// How often the events set is read again for new streams.
    pub rediscover: Duration,
    /// Where a newly created group starts: `0` for the whole stream, `$`
    /// for new entries only.
    pub start: String,
}

impl ReaderOptions {
    /// The stream workers' settings (`STAMPEDE_PERSISTER_BATCH`,
    /// `STAMPEDE_PERSISTER_CLAIM_IDLE_MS`, `STAMPEDE_PERSISTER_MAX_DELIVERIES`),
    /// with the persister's timing; other workers adjust fields.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            batch: env.ranged_or("STAMPEDE_PERSISTER_BATCH", 1000, 1, 10_000)?,
            block: Duration::from_millis(1000),
            linger: Duration::from_millis(5),
            claim_idle: Duration::from_millis(env.ranged_or("STAMPEDE_PERSISTER_CLAIM_IDLE_MS", 30_000, 100, 3_600_000)?),
            max_deliveries: env.ranged_or("STAMPEDE_PERSISTER_MAX_DELIVERIES", 5, 1, 1000)?,
            rediscover: Duration::from_secs(1),
            start: "0".to_owned(),
        })
    }
}

/// Reads one group's share of every event stream. See the module docs.
pub struct GroupReader {
    redis: Redis,
    url: String,
    blocking: Option<Redis>,
    prefix: String,
    group: String,
    consumer: String,
    options: ReaderOptions,
    /// Streams with the group ensured, `(event, key)`, sorted by event.
    streams: Vec<(i64, String)>,
    discovered_at: Option<Instant>,
    claimed_at: Option<Instant>,
}

impl GroupReader {
    /// A reader for `group` as `consumer`. `redis_url` is for the blocking
    /// connection, opened on first use; `redis` serves everything else.
    pub async fn new(
        redis_url: &str,
        redis: Redis,
        prefix: &str,
        group: &str,
        consumer: &str,
        options: ReaderOptions,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!group.is_empty() && !consumer.is_empty(), "a stream reader needs a group and a consumer name");
        anyhow::ensure!(options.batch > 0, "a stream reader needs a batch size of at least 1");
        store::check_url(redis_url)?;
        describe_metrics();
        // Present from the start at 0, so "no dead letters" is a value, not an absence.
        for reason in ["rejected", "max_deliveries"] {
            counter!("stream_dead_letters_total", "group" => group.to_owned(), "reason" => reason).increment(0);
        }
        Ok(Self {
            redis,
            url: redis_url.to_owned(),
            blocking: None,
            prefix: prefix.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            options,
            streams: Vec::new(),
            discovered_at: None,
            claimed_at: None,
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn options(&self) -> &ReaderOptions {
        &self.options
    }

    /// The events whose streams this reader follows.
    pub fn events(&self) -> Vec<i64> {
        self.streams.iter().map(|(e, _)| *e).collect()
    }

    /// The next batch: claimed entries of dead consumers when there are
    /// some, else new entries (waiting up to `block` for the first one).
    /// Empty when nothing arrived in time.
    pub async fn next_batch(&mut self) -> anyhow::Result<Vec<Entry>> {
        if self.discovered_at.is_none_or(|t| t.elapsed() >= self.options.rediscover) {
            self.discover().await?;
        }
        if self.streams.is_empty() {
            tokio::time::sleep(self.options.block.min(self.options.rediscover)).await;
            return Ok(Vec::new());
        }
        let claim_every = (self.options.claim_idle / 2).max(Duration::from_millis(20));
        if self.claimed_at.is_none_or(|t| t.elapsed() >= claim_every) {
            self.claimed_at = Some(Instant::now());
            let claimed = self.claim().await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        let mut out = self.read(self.options.batch, Some(self.options.block)).await?;
        // A short batch under load: wait out the linger, then take what
        // arrived meanwhile in one read that does not block. (Blocking reads
        // in a loop would return at every single XADD: one read, and one
        // wake-up in Redis, per entry at exactly the rate that hurts.)
        if !out.is_empty() && out.len() < self.options.batch && !self.options.linger.is_zero() {
            tokio::time::sleep(self.options.linger).await;
            let more = self.read(self.options.batch - out.len(), None).await?;
            out.extend(more);
        }
        Ok(out)
    }

    /// Acknowledges `entries` (the worker's effect of each is durable).
    pub async fn ack(&self, entries: &[Entry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let cmds = by_stream(entries).into_iter().map(|(stream, ids)| redis::cmd("XACK").arg(stream).arg(&self.group).arg(ids).to_owned()).collect();
        let mut conn = self.redis.clone();
        store::query_each::<Value>(&mut conn, cmds).await.context("acknowledging stream entries")?;
        Ok(())
    }

    /// Moves `entry` to its event's dead-letter stream with `error`, and
    /// acknowledges it, atomically.
    pub async fn dead_letter(&self, entry: &Entry, error: &str) -> anyhow::Result<()> {
        self.bury(entry, error, "rejected").await
    }

    async fn bury(&self, entry: &Entry, error: &str, reason: &'static str) -> anyhow::Result<()> {
        let key = dead_letter_key(&self.prefix, entry.event);
        let mut fields: Vec<(&str, &str)> = entry.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        fields.sort_unstable();
        let deliveries = entry.deliveries.to_string();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XADD").arg(&key).arg("*");
        for (k, v) in fields {
            pipe.arg(k).arg(v);
        }
        pipe.arg("error")
            .arg(error)
            .arg("group")
            .arg(&self.group)
            .arg("original_id")
            .arg(&entry.id)
            .arg("consumer")
            .arg(&self.consumer)
            .arg("deliveries")
            .arg(&deliveries)
            .ignore();
        pipe.cmd("XACK").arg(&entry.stream).arg(&self.group).arg(&entry.id).ignore();
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn).await.context("moving an entry to the dead-letter stream")?;
        counter!("stream_dead_letters_total", "group" => self.group.clone(), "reason" => reason).increment(1);
        tracing::warn!(event = entry.event, id = %entry.id, group = %self.group, deliveries = entry.deliveries, error, "stream entry dead-lettered");
        Ok(())
    }

    /// Keeps `entries` this consumer's while it retries them (an outage):
    /// resets their idle time so no other consumer claims them, without
    /// counting a delivery (`XCLAIM … JUSTID`).
    pub async fn keep(&self, entries: &[Entry]) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let cmds = by_stream(entries)
            .into_iter()
            .map(|(stream, ids)| redis::cmd("XCLAIM").arg(stream).arg(&self.group).arg(&self.consumer).arg(0).arg(ids).arg("JUSTID").to_owned())
            .collect();
        let mut conn = self.redis.clone();
        store::query_each::<Value>(&mut conn, cmds).await.context("renewing pending stream entries")?;
        Ok(())
    }

    /// Re-reads the events set and ensures the group on every new stream.
    async fn discover(&mut self) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        let mut events: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(events_set(&self.prefix))
            .query_async(&mut conn)
            .await
            .context("reading the events set")?;
        events.sort_unstable();
        for event in events {
            if self.streams.binary_search_by_key(&event, |(e, _)| *e).is_ok() {
                continue;
            }
            let key = EventKeys::new(&self.prefix, event).stream();
            ensure_group(&mut conn, &key, &self.group, &self.options.start).await?;
            tracing::debug!(event, group = %self.group, "following stream");
            self.streams.push((event, key));
        }
        self.streams.sort_unstable();
        self.discovered_at = Some(Instant::now());
        Ok(())
    }

    /// Ensures the group on every known stream again (a stream was deleted
    /// and its group with it).
    async fn reensure(&mut self) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        for (_, key) in &self.streams {
            ensure_group(&mut conn, key, &self.group, &self.options.start).await?;
        }
        Ok(())
    }

    async fn blocking(&mut self) -> anyhow::Result<&mut Redis> {
        if self.blocking.is_none() {
            self.blocking = Some(store::blocking_connection(&self.url).await?);
        }
        self.blocking.as_mut().context("blocking connection")
    }

    /// One `XREADGROUP` of new entries over every stream, waiting up to
    /// `block` for the first one (`None`: not waiting).
    async fn read(&mut self, count: usize, block: Option<Duration>) -> anyhow::Result<Vec<Entry>> {
        // A handle on the blocking connection (clones share it).
        let mut conn = self.blocking().await?.clone();
        let reply = if conn.is_cluster() {
            self.read_each(&mut conn, count, block).await
        } else {
            let mut options = StreamReadOptions::default().group(&self.group, &self.consumer).count(count);
            if let Some(block) = block {
                options = options.block(block.as_millis().max(1) as usize);
            }
            let keys: Vec<&str> = self.streams.iter().map(|(_, k)| k.as_str()).collect();
            let news = vec![">"; keys.len()];
            let reply: RedisResult<Option<StreamReadReply>> = conn.xread_options(&keys, &news, &options).await;
            reply.map(|r| r.map(|r| r.keys).unwrap_or_default())
        };
        let reply = match reply {
            Ok(v) => v,
            Err(e) if e.code() == Some("NOGROUP") => {
                tracing::info!(group = %self.group, "a stream lost its group; recreating");
                self.reensure().await?;
                return Ok(Vec::new());
            }
            Err(e) => {
                if is_connection_error(&e) {
                    self.blocking = None;
                }
                return Err(anyhow::Error::new(e).context("reading the streams"));
            }
        };
        let mut out = Vec::new();
        for StreamKey { key, ids } in reply {
            let Some(event) = self.streams.iter().find(|(_, k)| *k == key).map(|(e, _)| *e) else { continue };
            for entry in ids {
                out.push(Entry { event, stream: key.clone(), id: entry.id, fields: text_fields(entry.map), deliveries: 1 });
            }
        }
        Ok(out)
    }

    /// On a cluster, where one `XREADGROUP` cannot name streams of several
    /// slots: one read per stream, all at once and not blocking, repeated
    /// every [`CLUSTER_POLL`] until one answers or `block` has passed (each
    /// stream may give up to `count`).
    async fn read_each(&self, conn: &mut Redis, count: usize, block: Option<Duration>) -> RedisResult<Vec<StreamKey>> {
        let deadline = block.map(|b| Instant::now() + b);
        loop {
            let reads = self.streams.iter().map(|(_, key)| {
                let mut c = conn.clone();
                let options = StreamReadOptions::default().group(&self.group, &self.consumer).count(count);
                async move { c.xread_options::<_, _, Option<StreamReadReply>>(&[key.as_str()], &[">"], &options).await }
            });
            let replies = futures_util::future::try_join_all(reads).await?;
            let keys: Vec<StreamKey> = replies.into_iter().flatten().flat_map(|r| r.keys).filter(|k| !k.ids.is_empty()).collect();
            match deadline {
                Some(d) if keys.is_empty() && Instant::now() < d => tokio::time::sleep(CLUSTER_POLL.min(d - Instant::now())).await,
                _ => return Ok(keys),
            }
        }
    }

    /// Claims entries idle longer than `claim_idle` from any consumer of
    /// the group; buries those delivered too often.
    async fn claim(&mut self) -> anyhow::Result<Vec<Entry>> {
        let mut conn = self.redis.clone();
        let idle = self.options.claim_idle.as_millis() as u64;
        let mut claimed = Vec::new();
        for (event, key) in self.streams.clone() {
            let mut cursor = "0-0".to_owned();
            // Each call scans at most COUNT*10 pending entries; a few rounds
            // per pass keep one pass short even over a long pending list.
            for _ in 0..10 {
                let want = self.options.batch.saturating_sub(claimed.len());
                if want == 0 {
                    break;
                }
                let options = StreamAutoClaimOptions::default().count(want);
                let reply: RedisResult<StreamAutoClaimReply> =
                    conn.xautoclaim_options(key.as_str(), &self.group, &self.consumer, idle, &cursor, options).await;
                let reply = match reply {
                    Ok(v) => v,
                    Err(e) if e.code() == Some("NOGROUP") => {
                        ensure_group(&mut conn, &key, &self.group, &self.options.start).await?;
                        break;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("claiming idle stream entries")),
                };
                // Deleted entries (nil on Redis 6, listed apart on Redis 7)
                // are not among the claimed ones.
                for entry in reply.claimed {
                    claimed.push(Entry { event, stream: key.clone(), id: entry.id, fields: text_fields(entry.map), deliveries: 0 });
                }
                if reply.next_stream_id == "0-0" {
                    break;
                }
                cursor = reply.next_stream_id;
            }
        }
        if claimed.is_empty() {
            return Ok(claimed);
        }
        // The claim counted a delivery; read each entry's count.
        let counts = self.delivery_counts(&mut conn, &claimed).await?;
        let mut out = Vec::with_capacity(claimed.len());
        for (mut e, count) in claimed.into_iter().zip(counts) {
            e.deliveries = count.unwrap_or(1);
            if e.deliveries > self.options.max_deliveries {
                let why = format!("delivered {} times without acknowledgement (limit {})", e.deliveries, self.options.max_deliveries);
                self.bury(&e, &why, "max_deliveries").await?;
            } else {
                out.push(e);
            }
        }
        if !out.is_empty() {
            tracing::info!(group = %self.group, consumer = %self.consumer, claimed = out.len(), "claimed idle stream entries");
        }
        Ok(out)
    }

    /// The delivery count of each of `claimed` (entries this consumer has
    /// just claimed), in order; `None` for one no longer pending. One round
    /// trip for the batch: per stream, one `XPENDING` of this consumer's
    /// entries over the range the claimed ones span (with room for other
    /// entries of this consumer in between; a range holding more of them is
    /// read on, page by page).
    async fn delivery_counts(&self, conn: &mut Redis, claimed: &[Entry]) -> anyhow::Result<Vec<Option<u64>>> {
        let spans: Vec<(&str, Vec<&str>, StreamId, StreamId)> = by_stream(claimed)
            .into_iter()
            .filter_map(|(stream, ids)| {
                let parsed = ids.iter().filter_map(|id| StreamId::parse(id));
                let lo = parsed.clone().min()?;
                let hi = parsed.max()?;
                Some((stream, ids, lo, hi))
            })
            .collect();
        let page = |ids: &[&str]| ids.len() + self.options.batch;
        let cmds = spans
            .iter()
            .map(|(stream, ids, lo, hi)| {
                redis::cmd("XPENDING").arg(*stream).arg(&self.group).arg(lo.to_string()).arg(hi.to_string()).arg(page(ids)).arg(&self.consumer).to_owned()
            })
            .collect();
        let replies: Vec<StreamPendingCountReply> = store::query_each(conn, cmds).await.context("reading delivery counts")?;
        let mut counts: HashMap<(&str, &str), u64> = HashMap::with_capacity(claimed.len());
        for ((stream, ids, _, hi), mut reply) in spans.iter().zip(replies) {
            let wanted: HashSet<&str> = ids.iter().copied().collect();
            loop {
                let full = reply.ids.len() >= page(ids);
                let last = reply.ids.last().map(|p| p.id.clone());
                for p in reply.ids {
                    if let Some(id) = wanted.get(p.id.as_str()) {
                        counts.insert((stream, id), p.times_delivered as u64);
                    }
                }
                let found = wanted.iter().all(|id| counts.contains_key(&(*stream, *id)));
                let (false, true, Some(last)) = (found, full, last) else { break };
                reply = conn
                    .xpending_consumer_count(*stream, &self.group, format!("({last}"), hi.to_string(), page(ids), &self.consumer)
                    .await
                    .context("reading delivery counts")?;
            }
        }
        Ok(claimed.iter().map(|e| counts.get(&(e.stream.as_str(), e.id.as_str())).copied()).collect())
    }
}

/// Creates `group` on `key` (and the stream, if missing) starting at
/// `start`; an existing group is left as it is.
pub async fn ensure_group(conn: &mut Redis, key: &str, group: &str, start: &str) -> anyhow::Result<()> {
    let created: RedisResult<Value> =
        redis::cmd("XGROUP").arg("CREATE").arg(key).arg(group).arg(start).arg("MKSTREAM").query_async(conn).await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating group {group} on {key}"))),
    }
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
}

/// Entry ids grouped by stream key, in order.
fn by_stream(entries: &[Entry]) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for e in entries {
        match out.iter_mut().find(|(k, _)| *k == e.stream) {
            Some((_, ids)) => ids.push(&e.id),
            None => out.push((&e.stream, vec![&e.id])),
        }
    }
    out
}
