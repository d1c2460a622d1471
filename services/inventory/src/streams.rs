//! Reading the event streams through a consumer group: the machinery every
//! stream worker (the persister, the notifier) shares.
//!
//! A [`GroupReader`] follows every published event's stream
//! (`<p>:{ev:E}:stream`, found in the events set and re-discovered on an
//! interval), makes sure its group exists on each, and hands out batches:
//! first any entries idle in a dead consumer's pending list (claimed with
//! `XAUTOCLAIM`), else new entries (`XREADGROUP … BLOCK` on a connection of
//! its own, since a blocking read must not share the 2 s timeout of the
//! service's connection). Delivery is at least once: the worker acks after
//! its effect is durable, and a crash before the ack means another delivery
//! later. A message delivered more than `max_deliveries` times, or one the
//! worker rejects, goes to the event's dead-letter stream
//! (`<p>:{ev:E}:dead`, same hash tag) with the error, the group and its
//! original id, and is acked in the same transaction: never dropped, never
//! blocking the rest.
//!
//! The module also computes what a stream may lose: [`trim_acknowledged`]
//! trims only below the first entry some group has not acknowledged, over
//! every group on the stream.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use redis::aio::MultiplexedConnection;
use redis::{RedisError, RedisResult, Value};
use stampede_common::Config;
use stampede_common::clock::now_ms;
use stampede_common::store::{self, Redis};

use crate::keys::{EventKeys, events_set};

/// The persister's consumer group: what it has acknowledged is in Postgres.
pub const PERSISTER_GROUP: &str = "persister";

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// The smallest id after this one.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self { ms: self.ms.saturating_add(1), seq: 0 },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One delivered stream entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The event whose stream it came from.
    pub event: i64,
    /// The stream's key.
    pub stream: String,
    /// The entry id, as Redis wrote it.
    pub id: String,
    pub fields: HashMap<String, String>,
    /// How many times the group has delivered it, this delivery included.
    pub deliveries: u64,
}

impl Entry {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The entry's `type` (`hold.created`, `order.confirmed`, …), or "".
    pub fn kind(&self) -> &str {
        self.field("type").unwrap_or("")
    }
}

/// The dead-letter stream of an event, next to its stream (same hash tag).
pub fn dead_letter_key(prefix: &str, event: i64) -> String {
    let stream = EventKeys::new(prefix, event).stream();
    match stream.strip_suffix("stream") {
        Some(base) => format!("{base}dead"),
        None => format!("{stream}:dead"),
    }
}

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
    /// The persister's settings from `config`; other workers adjust fields.
    pub fn from_config(config: &Config) -> Self {
        Self {
            batch: config.persister_batch,
            block: Duration::from_millis(1000),
            linger: Duration::from_millis(5),
            claim_idle: Duration::from_millis(config.persister_claim_idle_ms),
            max_deliveries: config.persister_max_deliveries,
            rediscover: Duration::from_secs(1),
            start: "0".to_owned(),
        }
    }
}

/// Describes the stream metrics (once per process is enough; repeats are harmless).
pub fn describe_metrics() {
    describe_counter!(
        "stream_dead_letters_total",
        Unit::Count,
        "Stream entries moved to a dead-letter stream, by group and reason (rejected, max_deliveries)."
    );
    describe_gauge!("stream_length", Unit::Count, "Entries in an event's stream, by event.");
    describe_gauge!("stream_pending", Unit::Count, "Entries delivered to a group and not yet acknowledged, by event and group.");
    describe_gauge!("stream_group_lag", Unit::Count, "Entries not yet delivered to a group, by event and group.");
    describe_gauge!(
        "stream_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest entry a group has not acknowledged (pending or not yet delivered), by event and group; 0 when caught up."
    );
}

/// Reads one group's share of every event stream. See the module docs.
pub struct GroupReader {
    redis: Redis,
    url: String,
    blocking: Option<MultiplexedConnection>,
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
        redis::Client::open(redis_url).context("STAMPEDE_REDIS_URL: not a valid Redis URL")?;
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
        let mut pipe = redis::pipe();
        for (stream, ids) in by_stream(entries) {
            pipe.cmd("XACK").arg(stream).arg(&self.group).arg(ids).ignore();
        }
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn).await.context("acknowledging stream entries")
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
        let mut pipe = redis::pipe();
        for (stream, ids) in by_stream(entries) {
            pipe.cmd("XCLAIM").arg(stream).arg(&self.group).arg(&self.consumer).arg(0).arg(ids).arg("JUSTID").ignore();
        }
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn).await.context("renewing pending stream entries")
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

    async fn blocking(&mut self) -> anyhow::Result<&mut MultiplexedConnection> {
        if self.blocking.is_none() {
            self.blocking = Some(store::blocking_connection(&self.url).await?);
        }
        self.blocking.as_mut().context("blocking connection")
    }

    /// One `XREADGROUP` of new entries over every stream, waiting up to
    /// `block` for the first one (`None`: not waiting).
    async fn read(&mut self, count: usize, block: Option<Duration>) -> anyhow::Result<Vec<Entry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&self.group).arg(&self.consumer).arg("COUNT").arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS");
        for (_, key) in &self.streams {
            cmd.arg(key);
        }
        for _ in &self.streams {
            cmd.arg(">");
        }
        let conn = self.blocking().await?;
        let reply: RedisResult<Value> = cmd.query_async(conn).await;
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
        for (key, entries) in stream_replies(&reply) {
            let Some(event) = self.streams.iter().find(|(_, k)| *k == key).map(|(e, _)| *e) else { continue };
            for (id, fields) in entries {
                out.push(Entry { event, stream: key.clone(), id, fields, deliveries: 1 });
            }
        }
        Ok(out)
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
                let reply: RedisResult<Value> = redis::cmd("XAUTOCLAIM")
                    .arg(&key)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(idle)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(want)
                    .query_async(&mut conn)
                    .await;
                let reply = match reply {
                    Ok(v) => v,
                    Err(e) if e.code() == Some("NOGROUP") => {
                        ensure_group(&mut conn, &key, &self.group, &self.options.start).await?;
                        break;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("claiming idle stream entries")),
                };
                let Value::Array(parts) = reply else { break };
                let next = parts.first().and_then(text).unwrap_or_else(|| "0-0".to_owned());
                if let Some(entries) = parts.get(1) {
                    for (id, fields) in entry_list(entries) {
                        claimed.push(Entry { event, stream: key.clone(), id, fields, deliveries: 0 });
                    }
                }
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
        }
        if claimed.is_empty() {
            return Ok(claimed);
        }
        // The claim counted a delivery; read each entry's count.
        let mut pipe = redis::pipe();
        for e in &claimed {
            pipe.cmd("XPENDING").arg(&e.stream).arg(&self.group).arg(&e.id).arg(&e.id).arg(1);
        }
        let counts: Vec<Value> = pipe.query_async(&mut conn).await.context("reading delivery counts")?;
        let mut out = Vec::with_capacity(claimed.len());
        for (mut e, count) in claimed.into_iter().zip(counts) {
            e.deliveries = pending_deliveries(&count).unwrap_or(1);
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

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// Key/value pairs of a flat array (RESP2) or a map (RESP3).
fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(items) => items.chunks(2).filter_map(|c| Some((text(c.first()?)?, c.get(1)?))).collect(),
        Value::Map(items) => items.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => Vec::new(),
    }
}

/// An entry as Redis sends it: id and fields.
type RawEntry = (String, HashMap<String, String>);

/// `[[id, [field, value, …]], …]` → entries; deleted ones (nil fields) are skipped.
fn entry_list(v: &Value) -> Vec<RawEntry> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(parts) = item else { return None };
            let id = text(parts.first()?)?;
            let fields = parts.get(1)?;
            if matches!(fields, Value::Nil) {
                return None;
            }
            let map = pairs(fields).into_iter().filter_map(|(k, v)| Some((k, text(v)?))).collect();
            Some((id, map))
        })
        .collect()
}

/// An `XREADGROUP`/`XREAD` reply → `(stream key, entries)`.
fn stream_replies(v: &Value) -> Vec<(String, Vec<RawEntry>)> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| {
                let Value::Array(parts) = s else { return None };
                Some((text(parts.first()?)?, entry_list(parts.get(1)?)))
            })
            .collect(),
        Value::Map(streams) => streams.iter().filter_map(|(k, v)| Some((text(k)?, entry_list(v)))).collect(),
        _ => Vec::new(),
    }
}

/// The delivery count in an `XPENDING key group id id 1` reply.
fn pending_deliveries(v: &Value) -> Option<u64> {
    let Value::Array(rows) = v else { return None };
    let Value::Array(row) = rows.first()? else { return None };
    int(row.get(3)?).map(|n| n.max(0) as u64)
}

/// One group as `XINFO GROUPS` and `XPENDING` describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub consumers: u64,
    /// Delivered, not yet acknowledged.
    pub pending: u64,
    /// Not yet delivered (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    pub last_delivered: StreamId,
    /// The first entry the group has not acknowledged, if any is in the stream.
    pub oldest_unacked: Option<StreamId>,
}

impl GroupInfo {
    /// Every entry below this id is acknowledged by the group.
    pub fn acked_below(&self) -> StreamId {
        let after_delivered = self.last_delivered.next();
        match self.oldest_unacked {
            Some(id) => id.min(after_delivered),
            None => after_delivered,
        }
    }
}

/// A stream and its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    pub length: u64,
    pub groups: Vec<GroupInfo>,
}

impl StreamInfo {
    pub fn group(&self, name: &str) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The id below which every group has acknowledged everything: what a
    /// trim may drop. `None` without groups (nobody has read anything).
    pub fn trimmable_below(&self) -> Option<StreamId> {
        self.groups.iter().map(GroupInfo::acked_below).min()
    }
}

/// Describes `key` and every group on it; `None` if the stream does not exist.
pub async fn stream_info(conn: &mut Redis, key: &str) -> RedisResult<Option<StreamInfo>> {
    let exists: bool = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
    if !exists {
        return Ok(None);
    }
    let length: i64 = redis::cmd("XLEN").arg(key).query_async(conn).await?;
    let groups: Value = redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(conn).await?;
    let Value::Array(list) = groups else { return Ok(Some(StreamInfo { length: length as u64, groups: Vec::new() })) };
    let mut out = Vec::with_capacity(list.len());
    for g in &list {
        let fields: HashMap<String, &Value> = pairs(g).into_iter().collect();
        let Some(name) = fields.get("name").and_then(|v| text(v)) else { continue };
        let last_delivered =
            fields.get("last-delivered-id").and_then(|v| text(v)).and_then(|s| StreamId::parse(&s)).unwrap_or_default();
        let pending = fields.get("pending").and_then(|v| int(v)).unwrap_or(0).max(0) as u64;
        let lag = fields.get("lag").and_then(|v| int(v)).map(|n| n.max(0) as u64);
        let consumers = fields.get("consumers").and_then(|v| int(v)).unwrap_or(0).max(0) as u64;
        let mut oldest = None;
        if pending > 0 {
            let summary: Value = redis::cmd("XPENDING").arg(key).arg(&name).query_async(conn).await?;
            if let Value::Array(parts) = summary {
                oldest = parts.get(1).and_then(text).and_then(|s| StreamId::parse(&s));
            }
        }
        if oldest.is_none() && lag != Some(0) {
            // The first entry not yet delivered, if any.
            let next: Value = redis::cmd("XRANGE")
                .arg(key)
                .arg(format!("({last_delivered}"))
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(conn)
                .await?;
            oldest = entry_ids(&next).into_iter().next();
        }
        out.push(GroupInfo { name, consumers, pending, lag, last_delivered, oldest_unacked: oldest });
    }
    Ok(Some(StreamInfo { length: length as u64, groups: out }))
}

fn entry_ids(v: &Value) -> Vec<StreamId> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(parts) = item else { return None };
            StreamId::parse(&text(parts.first()?)?)
        })
        .collect()
}

/// Sets the stream gauges of `event` from `info`.
pub fn record_metrics(event: i64, info: &StreamInfo) {
    let ev = event.to_string();
    gauge!("stream_length", "event" => ev.clone()).set(info.length as f64);
    let now = now_ms().max(0) as u64;
    for g in &info.groups {
        let labels = [("event", ev.clone()), ("group", g.name.clone())];
        gauge!("stream_pending", &labels).set(g.pending as f64);
        if let Some(lag) = g.lag {
            gauge!("stream_group_lag", &labels).set(lag as f64);
        }
        let age = g.oldest_unacked.map_or(0.0, |id| now.saturating_sub(id.ms) as f64 / 1000.0);
        gauge!("stream_oldest_pending_age_seconds", &labels).set(age);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_and_step() {
        let a = StreamId::parse("1700000000000-5").expect("id");
        assert_eq!(a.next().to_string(), "1700000000000-6");
        assert!(StreamId::parse("2-0").expect("id") > StreamId::parse("1-99").expect("id"));
        assert_eq!(StreamId { ms: 3, seq: u64::MAX }.next(), StreamId { ms: 4, seq: 0 });
        assert_eq!(StreamId::parse("junk"), None);
    }

    #[test]
    fn trims_below_every_group() {
        let g = |name: &str, last: &str, oldest: Option<&str>| GroupInfo {
            name: name.into(),
            consumers: 1,
            pending: u64::from(oldest.is_some()),
            lag: Some(0),
            last_delivered: StreamId::parse(last).expect("id"),
            oldest_unacked: oldest.map(|o| StreamId::parse(o).expect("id")),
        };
        let info = StreamInfo { length: 10, groups: vec![g("persister", "9-0", None), g("notifier", "9-0", Some("4-0"))] };
        assert_eq!(info.trimmable_below(), StreamId::parse("4-0"));
        let info = StreamInfo { length: 10, groups: vec![g("persister", "9-0", None), g("notifier", "7-2", None)] };
        assert_eq!(info.trimmable_below(), StreamId::parse("7-3"));
        assert_eq!(StreamInfo { length: 1, groups: vec![] }.trimmable_below(), None);
    }

    #[test]
    fn dead_letter_key_shares_the_hash_tag() {
        assert_eq!(dead_letter_key("st", 42), "st:{ev:42}:dead");
    }
}
