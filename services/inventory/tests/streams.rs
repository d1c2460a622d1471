//! The consumer-group reader and the trim rule, against a real Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use stampede_common::store::{self, Redis};
use stampede_common::testkit::test_config;
use stampede_inventory::keys::events_set;
use stampede_inventory::streams::{self, Entry, GroupReader, ReaderOptions, StreamId, dead_letter_key};
use stampede_inventory::EventKeys;

struct Fx {
    url: String,
    redis: Redis,
    prefix: String,
}

async fn fixture(events: &[i64]) -> Fx {
    let cfg = test_config(&[]).await;
    let mut redis = store::connect(&cfg.redis_url).await.expect("redis");
    for e in events {
        let _: i64 = redis.sadd(events_set(&cfg.redis_prefix), e).await.expect("sadd");
    }
    Fx { url: cfg.redis_url, redis, prefix: cfg.redis_prefix }
}

fn options(claim_idle_ms: u64, max_deliveries: u64) -> ReaderOptions {
    ReaderOptions {
        batch: 100,
        block: Duration::from_millis(50),
        linger: Duration::from_millis(2),
        claim_idle: Duration::from_millis(claim_idle_ms),
        max_deliveries,
        rediscover: Duration::from_millis(50),
        start: "0".into(),
    }
}

impl Fx {
    fn stream(&self, event: i64) -> String {
        EventKeys::new(&self.prefix, event).stream()
    }

    async fn add(&mut self, event: i64, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let id: String = self.redis.xadd(self.stream(event), "*", &[("type", "test"), ("n", &i.to_string())]).await.expect("xadd");
            ids.push(id);
        }
        ids
    }

    async fn reader(&self, group: &str, consumer: &str, opts: ReaderOptions) -> GroupReader {
        GroupReader::new(&self.url, self.redis.clone(), &self.prefix, group, consumer, opts).await.expect("reader")
    }

    /// The pending entries of `group` on `event`'s stream, as Redis sees them.
    async fn pending(&mut self, event: i64, group: &str) -> Vec<redis::streams::StreamPendingId> {
        let reply: redis::streams::StreamPendingCountReply =
            self.redis.xpending_count(self.stream(event), group, "-", "+", 100).await.expect("xpending");
        reply.ids
    }

    /// Waits until every pending entry of `group` has been idle for at least
    /// `idle` by Redis's clock (what a claim compares against), polling for
    /// at most ten seconds.
    async fn wait_idle(&mut self, event: i64, group: &str, idle: Duration) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pending = self.pending(event, group).await;
            if !pending.is_empty() && pending.iter().all(|p| p.last_delivered_ms as u128 >= idle.as_millis()) {
                return;
            }
            assert!(Instant::now() < deadline, "pending entries never idle for {idle:?}: {pending:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads until `want` entries arrived or two seconds passed.
async fn read_n(reader: &mut GroupReader, want: usize) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        out.extend(reader.next_batch().await.expect("batch"));
    }
    out
}

#[tokio::test]
async fn reads_every_stream_once_per_group_and_acks() {
    let mut fx = fixture(&[1, 2]).await;
    let a = fx.add(1, 3).await;
    let b = fx.add(2, 2).await;
    let mut r1 = fx.reader("g", "c1", options(60_000, 5)).await;
    let got = read_n(&mut r1, 5).await;
    assert_eq!(got.len(), 5);
    let mut ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = a.iter().chain(&b).cloned().collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(got.iter().all(|e| e.deliveries == 1 && e.kind() == "test"));
    assert_eq!(got.iter().filter(|e| e.event == 2).count(), 2);

    // A second consumer of the same group gets nothing more; another group gets all.
    let mut r2 = fx.reader("g", "c2", options(60_000, 5)).await;
    assert!(r2.next_batch().await.expect("batch").is_empty());
    let mut other = fx.reader("other", "c1", options(60_000, 5)).await;
    assert_eq!(read_n(&mut other, 5).await.len(), 5);

    r1.ack(&got).await.expect("ack");
    let key = fx.stream(1);
    let info = streams::stream_info(&mut fx.redis, &key).await.expect("info").expect("exists");
    let g = info.group("g").expect("group");
    assert_eq!((g.pending, g.lag), (0, Some(0)));
    assert_eq!(info.group("other").expect("group").pending, 3);

    // A stream published later is found on re-discovery.
    let _: i64 = fx.redis.sadd(events_set(&fx.prefix), 3).await.expect("sadd");
    fx.add(3, 1).await;
    let late = read_n(&mut r1, 1).await;
    assert_eq!(late.iter().map(|e| e.event).collect::<Vec<_>>(), vec![3]);
}

#[tokio::test]
async fn claims_entries_of_a_dead_consumer_and_dead_letters_after_max_deliveries() {
    let mut fx = fixture(&[5]).await;
    fx.add(5, 4).await;
    let mut dead = fx.reader("g", "dead", options(100, 2)).await;
    let got = read_n(&mut dead, 4).await;
    assert_eq!(got.len(), 4);
    drop(dead); // never acks

    let mut live = fx.reader("g", "live", options(100, 2)).await;
    fx.wait_idle(5, "g", Duration::from_millis(100)).await;
    let claimed = read_n(&mut live, 4).await;
    assert_eq!(claimed.len(), 4, "the idle entries are claimed");
    assert!(claimed.iter().all(|e| e.deliveries == 2), "{claimed:?}");
    live.ack(&claimed[..2]).await.expect("ack");

    // The other two stay unacked: the next claim is their third delivery,
    // past the limit of two, so they go to the dead-letter stream.
    fx.wait_idle(5, "g", Duration::from_millis(100)).await;
    let again = live.next_batch().await.expect("batch");
    assert!(again.is_empty(), "{again:?}");
    let dead_key = dead_letter_key(&fx.prefix, 5);
    let reply: redis::streams::StreamRangeReply = fx.redis.xrange_all(&dead_key).await.expect("xrange");
    assert_eq!(reply.ids.len(), 2);
    let first = &reply.ids[0];
    let field = |k: &str| first.get::<String>(k).unwrap_or_default();
    assert_eq!(field("group"), "g");
    assert_eq!(field("type"), "test");
    assert_eq!(field("original_id"), claimed[2].id);
    assert!(field("error").contains("delivered 3 times"), "{}", field("error"));
    let key = fx.stream(5);
    let info = streams::stream_info(&mut fx.redis, &key).await.expect("info").expect("exists");
    assert_eq!(info.group("g").expect("group").pending, 0, "dead-lettered entries are acked");
}

/// The delivery counts of a claim come from one `XPENDING` range per
/// stream over this consumer's entries; when the claimer already holds many
/// entries between the claimed ones, the range is read on until each
/// claimed entry's count is found.
#[tokio::test]
async fn delivery_counts_are_exact_when_the_claimer_holds_entries_in_between() {
    let mut fx = fixture(&[6]).await;
    let ids = fx.add(6, 12).await;
    let mut dead = fx.reader("g", "dead", options(300, 5)).await;
    assert_eq!(read_n(&mut dead, 12).await.len(), 12);
    drop(dead); // never acks
    tokio::time::sleep(Duration::from_millis(350)).await;

    let mut live = fx.reader("g", "live", ReaderOptions { batch: 2, ..options(300, 5) }).await;
    // `live` takes the ten middle entries fresh (idle 0, no delivery
    // counted): only the first and the last stay idle, to be claimed.
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(fx.stream(6))
        .arg("g")
        .arg("live")
        .arg(0)
        .arg(&ids[1..11])
        .arg("JUSTID")
        .query_async(&mut fx.redis)
        .await
        .expect("xclaim");
    let claimed = live.next_batch().await.expect("batch");
    let got: Vec<(&str, u64)> = claimed.iter().map(|e| (e.id.as_str(), e.deliveries)).collect();
    assert_eq!(got, vec![(ids[0].as_str(), 2), (ids[11].as_str(), 2)], "read once by `dead`, once by this claim");
}

#[tokio::test]
async fn dead_letter_keeps_fields_and_acks_atomically() {
    let mut fx = fixture(&[6]).await;
    fx.add(6, 2).await;
    let mut r = fx.reader("g", "c", options(60_000, 5)).await;
    let got = read_n(&mut r, 2).await;
    r.dead_letter(&got[0], "bad thing").await.expect("dead letter");
    let reply: redis::streams::StreamRangeReply = fx.redis.xrange_all(dead_letter_key(&fx.prefix, 6)).await.expect("xrange");
    let e = &reply.ids[0];
    assert_eq!(e.get::<String>("n").as_deref(), Some("0"));
    assert_eq!(e.get::<String>("error").as_deref(), Some("bad thing"));
    let key = fx.stream(6);
    let info = streams::stream_info(&mut fx.redis, &key).await.expect("info").expect("exists");
    assert_eq!(info.group("g").expect("group").pending, 1);
}

#[tokio::test]
async fn keep_renews_without_counting_a_delivery() {
    let mut fx = fixture(&[8]).await;
    fx.add(8, 1).await;
    // Claimable once idle for 500 ms; kept each time it has been idle for
    // 300: after three rounds it has been ours for over 900 ms, unclaimed.
    let (claim_idle, renew_at) = (Duration::from_millis(500), Duration::from_millis(300));
    let mut a = fx.reader("g", "a", options(claim_idle.as_millis() as u64, 5)).await;
    let got = read_n(&mut a, 1).await;
    let mut b = fx.reader("g", "b", options(claim_idle.as_millis() as u64, 5)).await;
    for _ in 0..3 {
        fx.wait_idle(8, "g", renew_at).await;
        a.keep(&got).await.expect("keep");
        let idle = fx.pending(8, "g").await[0].last_delivered_ms;
        assert!((idle as u128) < renew_at.as_millis(), "keep resets the idle time: {idle} ms");
        assert!(b.next_batch().await.expect("batch").is_empty(), "a kept entry is not claimed");
    }
    let pending: redis::streams::StreamPendingCountReply =
        fx.redis.xpending_count(fx.stream(8), "g", "-", "+", 10).await.expect("xpending");
    assert_eq!(pending.ids[0].times_delivered, 1);
    assert_eq!(pending.ids[0].consumer, "a");
}

#[tokio::test]
async fn trims_only_what_every_group_has_acknowledged() {
    let mut fx = fixture(&[9]).await;
    let ids = fx.add(9, 10).await;
    let key = fx.stream(9);
    // No group yet: nothing may go.
    assert_eq!(streams::trim_acknowledged(&mut fx.redis, &key).await.expect("trim"), 0);

    let mut persister = fx.reader("persister", "p", options(60_000, 5)).await;
    let mut slow = options(60_000, 5);
    slow.batch = 4;
    let mut notifier = fx.reader("notifier", "n", slow).await;
    let p = read_n(&mut persister, 10).await;
    persister.ack(&p).await.expect("ack");
    let n = read_n(&mut notifier, 4).await;
    assert_eq!(n.len(), 4);
    // The notifier acks entries 0, 1 and 3; 2 stays pending, 4.. are not delivered yet.
    notifier.ack(&[n[0].clone(), n[1].clone(), n[3].clone()]).await.expect("ack");
    assert_eq!(streams::trim_acknowledged(&mut fx.redis, &key).await.expect("trim"), 2);
    let left: redis::streams::StreamRangeReply = fx.redis.xrange_all(&key).await.expect("xrange");
    assert_eq!(left.ids.first().map(|e| e.id.clone()), Some(ids[2].clone()), "the first unacked entry stays");

    let mut all = read_n(&mut notifier, 6).await;
    all.push(n[2].clone());
    notifier.ack(&all).await.expect("ack");
    let info = streams::stream_info(&mut fx.redis, &key).await.expect("info").expect("exists");
    assert_eq!(info.trimmable_below(), StreamId::parse(&ids[9]).map(StreamId::next));
    assert_eq!(streams::trim_acknowledged(&mut fx.redis, &key).await.expect("trim"), 8);
    let len: i64 = fx.redis.xlen(&key).await.expect("xlen");
    assert_eq!(len, 0);
}

#[tokio::test]
async fn recreates_a_group_whose_stream_was_deleted() {
    let mut fx = fixture(&[10]).await;
    fx.add(10, 1).await;
    let mut r = fx.reader("g", "c", options(60_000, 5)).await;
    let got = read_n(&mut r, 1).await;
    r.ack(&got).await.expect("ack");
    let _: i64 = fx.redis.del(fx.stream(10)).await.expect("del");
    fx.add(10, 2).await;
    let got = read_n(&mut r, 2).await;
    assert_eq!(got.len(), 2, "the reader recovers from NOGROUP and reads the new stream from its start");
    let fields: Vec<&HashMap<String, String>> = got.iter().map(|e| &e.fields).collect();
    assert_eq!(fields[0].get("n").map(String::as_str), Some("0"));
}
