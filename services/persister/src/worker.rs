//! The persister worker (`stampede serve persister`): drains every event
//! stream into Postgres through the consumer group `persister`.
//!
//! Each batch is decoded, merged and written in one transaction, and acked
//! only after the commit: a crash in between means a second delivery, which
//! the idempotent upserts absorb. When Postgres is unreachable the batch is
//! retried with exponential backoff (capped at 5 s) while its entries stay
//! this consumer's, and the backlog waits in Redis. When Postgres rejects a
//! batch, each message is retried in a transaction of its own so only the
//! poison message is left; it is dead-lettered once it has been delivered
//! `persister_max_deliveries` times. Malformed entries are dead-lettered at
//! once. Several persisters share the work (distinct consumer names), and
//! one that dies leaves its pending entries to be claimed by the others.
//!
//! Within a worker, [`LANES`] tasks share the work the same way under one
//! consumer name, and each reads its next batch while it writes the last
//! one (entries read ahead stay this consumer's through an outage too).
//! Batches may land out of stream order, as with several persisters: no
//! write ever regresses a record, so the order does not matter.
//!
//! On an interval it also trims the streams below what every group has
//! acknowledged, exports the stream gauges, and runs the inventory check
//! ([`crate::reconcile`]), exporting `inventory_drift_seats`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use stampede_common::Config;
use stampede_common::backoff::Backoff;
use stampede_common::store::Redis;
use stampede_inventory::streams::{self, Entry, GroupReader, ReaderOptions};
use stampede_inventory::{EventKeys, published_events};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::PersisterConfig;
use crate::ledger::{Batch, WriteError, Written};
use crate::records::{Message, decode};

/// The persister's consumer group.
pub const GROUP: &str = stampede_inventory::streams::PERSISTER_GROUP;

/// Lanes per worker: tasks reading and writing batches of their own, so
/// that one writes while the other reads, decodes or waits on a round trip.
const LANES: usize = 2;

/// The longest wait between two attempts at an unavailable Postgres.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A hook run after a batch commits and before it is acked, with the
/// batch's number (1-based): a pause point for crash tests and drills.
pub type CommitHook = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Counters of one worker, for tests and logs.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    rows: AtomicU64,
    claimed: AtomicU64,
    dead_letters: AtomicU64,
    write_failures: AtomicU64,
}

/// What one worker has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Batches committed (isolated single-message retries included).
    pub batches: u64,
    /// Entries written and acked.
    pub messages: u64,
    /// Rows sent to Postgres.
    pub rows: u64,
    /// Entries this worker took over from idle consumers.
    pub claimed: u64,
    /// Entries this worker dead-lettered.
    pub dead_letters: u64,
    /// Failed write attempts (retried).
    pub write_failures: u64,
}

/// Drains the streams into Postgres; see the module docs. Build it with
/// [`PersisterWorker::build`], run it with [`PersisterWorker::run`].
pub struct PersisterWorker {
    db: Pool,
    redis: Redis,
    redis_url: String,
    prefix: String,
    consumer: String,
    options: ReaderOptions,
    maintain_every: Duration,
    check_every: Duration,
    hook: Option<CommitHook>,
    counters: Counters,
}

impl PersisterWorker {
    pub fn build(config: &Config, persister: &PersisterConfig, db: Pool, redis: Redis) -> Self {
        describe_histogram!("persister_batch_size", Unit::Count, "Stream entries per batch the persister writes.");
        describe_histogram!(
            "persister_write_duration_seconds",
            Unit::Seconds,
            "Time to write and commit one batch to Postgres, by outcome."
        );
        describe_counter!("persister_rows_total", Unit::Count, "Rows upserted into Postgres by the persister, by table (replays included).");
        describe_counter!("persister_write_failures_total", Unit::Count, "Failed batch writes, by kind (unavailable, rejected).");
        describe_counter!("stream_trimmed_entries_total", Unit::Count, "Entries trimmed from the streams after every group acknowledged them.");
        describe_gauge!(
            "inventory_drift_seats",
            Unit::Count,
            "Seats and places where Redis disagrees with itself or with Postgres, by event (0 when consistent)."
        );
        streams::describe_metrics();
        Self {
            db,
            redis,
            redis_url: config.redis_url.clone(),
            prefix: config.redis_prefix.clone(),
            consumer: streams::consumer_name(),
            options: persister.reader.clone(),
            maintain_every: Duration::from_secs(5),
            check_every: Duration::from_secs(30),
            hook: None,
            counters: Counters::default(),
        }
    }

    /// Uses `name` as the consumer name instead of `<host>-<pid>-<random>`.
    pub fn with_consumer(mut self, name: &str) -> Self {
        self.consumer = name.to_owned();
        self
    }

    /// How often to trim and export the stream gauges, and how often to
    /// run the inventory check.
    pub fn with_intervals(mut self, maintain: Duration, check: Duration) -> Self {
        self.maintain_every = maintain;
        self.check_every = check;
        self
    }

    /// Adjusts the reader (block, linger, rediscovery …).
    pub fn with_reader(mut self, adjust: impl FnOnce(&mut ReaderOptions)) -> Self {
        adjust(&mut self.options);
        self
    }

    /// Runs `hook` after each commit, before the ack.
    pub fn with_commit_hook(mut self, hook: CommitHook) -> Self {
        self.hook = Some(hook);
        self
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            batches: c.batches.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            rows: c.rows.load(Ordering::Relaxed),
            claimed: c.claimed.load(Ordering::Relaxed),
            dead_letters: c.dead_letters.load(Ordering::Relaxed),
            write_failures: c.write_failures.load(Ordering::Relaxed),
        }
    }

    /// Drains the streams until `stop` turns true; maintenance runs beside.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        // Stops with this task, however it ends (stop, or an abort).
        let _maintenance = AbortOnDrop(tokio::spawn(self.clone().maintenance(stop.clone())));
        tracing::info!(consumer = %self.consumer, group = GROUP, "persister started");
        // Lanes stop with this task, however it ends.
        let mut lanes = JoinSet::new();
        for _ in 0..LANES {
            lanes.spawn(self.clone().lane(stop.clone()));
        }
        while let Some(done) = lanes.join_next().await {
            if let Err(e) = done
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        tracing::info!(consumer = %self.consumer, "persister stopped");
    }

    /// One lane: reads a batch, writes it, and reads the next one
    /// meanwhile, until `stop`.
    async fn lane(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let open = || GroupReader::new(&self.redis_url, self.redis.clone(), &self.prefix, GROUP, &self.consumer, self.options.clone());
        // `reader` reads the next batch while `acker`, a second handle on
        // the same group and consumer, acks (renews, dead-letters) the one
        // being written.
        let (mut reader, acker) = match tokio::try_join!(open(), open()) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "persister cannot start");
                return;
            }
        };
        let mut backoff = retry_backoff();
        // Delivered, not yet written: a read over many streams may return
        // more than a batch.
        let mut backlog: Vec<Entry> = Vec::new();
        loop {
            let stopping = *stop.borrow();
            if stopping && backlog.is_empty() {
                break;
            }
            let chunk: Vec<Entry> = backlog.drain(..backlog.len().min(self.options.batch.max(1))).collect();
            let read_more = !stopping && backlog.is_empty();
            let settled = Notify::new();
            let write = async {
                self.persist(&acker, chunk, &stop).await;
                settled.notify_one();
            };
            let read = async {
                if !read_more {
                    return anyhow::Ok(Vec::new());
                }
                let entries = reader.next_batch().await?;
                self.hold(&acker, &entries, &settled).await;
                anyhow::Ok(entries)
            };
            match tokio::join!(write, read).1 {
                Ok(entries) => {
                    backoff.reset();
                    if entries.iter().any(|e| e.deliveries > 1) {
                        self.counters.claimed.fetch_add(entries.len() as u64, Ordering::Relaxed);
                    }
                    backlog.extend(entries);
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "reading the streams failed; retrying");
                    if !pause(backoff.next_delay(), &stop).await {
                        break;
                    }
                }
            }
        }
    }

    /// Keeps `entries`, read ahead, this consumer's until `settled` (the
    /// batch before them may be retried through a long Postgres outage).
    async fn hold(&self, acker: &GroupReader, entries: &[Entry], settled: &Notify) {
        loop {
            tokio::select! {
                () = settled.notified() => return,
                () = tokio::time::sleep(self.keep_every()) => {
                    if let Err(e) = acker.keep(entries).await {
                        tracing::debug!(error = %format!("{e:#}"), "renewing pending entries failed");
                    }
                }
            }
        }
    }

    /// How often entries waiting on Postgres are renewed: well within the
    /// claim idle time.
    fn keep_every(&self) -> Duration {
        (self.options.claim_idle / 3).max(Duration::from_millis(10))
    }

    /// Writes one delivered batch and acks what is durable. Returns when
    /// every entry is acked, dead-lettered, left pending for a later
    /// delivery (rejected, not yet at its delivery limit), or on stop.
    async fn persist(&self, reader: &GroupReader, delivered: Vec<Entry>, stop: &watch::Receiver<bool>) {
        if delivered.is_empty() {
            return;
        }
        histogram!("persister_batch_size").record(delivered.len() as f64);
        let mut entries: Vec<Entry> = Vec::with_capacity(delivered.len());
        let mut messages: Vec<Message> = Vec::with_capacity(delivered.len());
        for entry in delivered {
            match decode(&entry) {
                Ok(m) => {
                    entries.push(entry);
                    messages.push(m);
                }
                Err(why) => self.bury(reader, &entry, &format!("malformed entry: {why}")).await,
            }
        }
        if entries.is_empty() {
            return;
        }
        let mut batch = Batch::new();
        for m in &messages {
            batch.add(m.clone());
        }
        match self.write_until_done(reader, &batch, &entries, stop).await {
            Some(Ok(written)) => self.acked(reader, &entries, &batch, written).await,
            Some(Err(why)) => {
                tracing::warn!(error = %why, messages = entries.len(), "batch rejected; isolating the poison message");
                for (entry, message) in entries.iter().zip(messages) {
                    if *stop.borrow() {
                        return;
                    }
                    let one = Batch::of(message);
                    let single = std::slice::from_ref(entry);
                    match self.write_until_done(reader, &one, single, stop).await {
                        Some(Ok(written)) => self.acked(reader, single, &one, written).await,
                        Some(Err(why)) if entry.deliveries >= self.options.max_deliveries => {
                            self.bury(reader, entry, &why).await;
                        }
                        Some(Err(why)) => {
                            tracing::warn!(
                                event = entry.event,
                                id = %entry.id,
                                deliveries = entry.deliveries,
                                error = %why,
                                "message rejected; left pending for another delivery"
                            );
                        }
                        None => return,
                    }
                }
            }
            None => {}
        }
    }

    /// Writes `batch`, retrying while Postgres is unavailable. `None` on
    /// stop; `Some(Err)` when Postgres rejects the data.
    async fn write_until_done(
        &self,
        reader: &GroupReader,
        batch: &Batch,
        entries: &[Entry],
        stop: &watch::Receiver<bool>,
    ) -> Option<Result<Written, String>> {
        let mut backoff = retry_backoff();
        loop {
            let started = Instant::now();
            let result = batch.write(&self.db).await;
            let elapsed = started.elapsed().as_secs_f64();
            match result {
                Ok(written) => {
                    histogram!("persister_write_duration_seconds", "outcome" => "ok").record(elapsed);
                    return Some(Ok(written));
                }
                Err(WriteError::Rejected(why)) => {
                    histogram!("persister_write_duration_seconds", "outcome" => "rejected").record(elapsed);
                    counter!("persister_write_failures_total", "kind" => "rejected").increment(1);
                    self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                    return Some(Err(why));
                }
                Err(WriteError::Unavailable(why)) => {
                    histogram!("persister_write_duration_seconds", "outcome" => "unavailable").record(elapsed);
                    counter!("persister_write_failures_total", "kind" => "unavailable").increment(1);
                    self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %why, retry_in_ms = wait.as_millis() as u64, messages = entries.len(), "postgres unavailable; retrying the batch");
                    // Keep the entries ours while we wait, in steps shorter
                    // than the claim idle time.
                    let step = self.keep_every();
                    let until = Instant::now() + wait;
                    loop {
                        if let Err(e) = reader.keep(entries).await {
                            tracing::debug!(error = %format!("{e:#}"), "renewing pending entries failed");
                        }
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        if !pause(left.min(step), stop).await {
                            return None;
                        }
                    }
                }
            }
        }
    }

    async fn acked(&self, reader: &GroupReader, entries: &[Entry], batch: &Batch, written: Written) {
        counter!("persister_rows_total", "table" => "holds").increment(written.holds as u64);
        counter!("persister_rows_total", "table" => "orders").increment(written.orders as u64);
        counter!("persister_rows_total", "table" => "order_seats").increment(written.order_seats as u64);
        counter!("persister_rows_total", "table" => "payments").increment(written.payments as u64);
        counter!("persister_rows_total", "table" => "tickets").increment(written.tickets as u64);
        let n = self.counters.batches.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(hook) = &self.hook {
            hook(n).await;
        }
        // Written rows are durable; a failed ack only means a harmless
        // second delivery.
        if let Err(e) = reader.ack(entries).await {
            tracing::warn!(error = %format!("{e:#}"), messages = entries.len(), "ack failed; the batch will be delivered again");
            return;
        }
        self.counters.messages.fetch_add(batch.messages() as u64, Ordering::Relaxed);
        self.counters.rows.fetch_add(written.total() as u64, Ordering::Relaxed);
    }

    async fn bury(&self, reader: &GroupReader, entry: &Entry, why: &str) {
        match reader.dead_letter(entry, why).await {
            Ok(()) => {
                self.counters.dead_letters.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), id = %entry.id, "dead-lettering failed; the entry stays pending");
            }
        }
    }

    /// Trims, exports gauges and checks the inventory on their intervals.
    async fn maintenance(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut last_check: Option<Instant> = None;
        loop {
            if !pause(self.maintain_every, &stop).await {
                return;
            }
            if let Err(e) = self.maintain().await {
                tracing::warn!(error = %format!("{e:#}"), "stream maintenance failed");
            }
            if last_check.is_none_or(|t| t.elapsed() >= self.check_every) {
                last_check = Some(Instant::now());
                if let Err(e) = self.check_drift().await {
                    tracing::warn!(error = %format!("{e:#}"), "inventory check failed");
                }
            }
        }
    }

    /// One pass over every stream: gauges, then a trim below what every
    /// group has acknowledged.
    pub async fn maintain(&self) -> anyhow::Result<u64> {
        let mut conn = self.redis.clone();
        let mut trimmed = 0;
        for event in published_events(&mut conn, &self.prefix).await? {
            let key = EventKeys::new(&self.prefix, event).stream();
            let Some(info) = streams::stream_info(&mut conn, &key).await? else { continue };
            streams::record_metrics(event, &info);
            let n = streams::trim_below(&mut conn, &key, &info).await?;
            if n > 0 {
                counter!("stream_trimmed_entries_total").increment(n);
                tracing::debug!(event, trimmed = n, "stream trimmed");
            }
            trimmed += n;
        }
        Ok(trimmed)
    }

    /// Runs the inventory check over every event and exports the drift.
    pub async fn check_drift(&self) -> anyhow::Result<i64> {
        let report = crate::inventory_check::check(&self.db, &self.redis, &self.prefix, None).await?;
        for ev in &report.events {
            gauge!("inventory_drift_seats", "event" => ev.event.to_string()).set(ev.drift as f64);
        }
        Ok(report.drift_seats())
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sleeps `d` unless `stop` turns true first; false when stopping.
async fn pause(d: Duration, stop: &watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// Jittered exponential backoff from (up to) 50 ms to [`MAX_BACKOFF`].
fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), MAX_BACKOFF)
}

