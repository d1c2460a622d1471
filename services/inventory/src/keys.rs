//! Key names. Every key of one event shares the hash tag `{ev:<id>}`.

use redis::RedisResult;
use stampede_common::ids::{is_token, random_hex};
use stampede_common::store::Redis;

/// The keys of one event.
#[derive(Clone, Debug)]
pub struct EventKeys {
    base: String,
    pub event: i64,
}

impl EventKeys {
    pub fn new(prefix: &str, event: i64) -> Self {
        Self { base: format!("{prefix}:{{ev:{event}}}"), event }
    }

    fn k(&self, suffix: &str) -> String {
        let mut s = String::with_capacity(self.base.len() + 1 + suffix.len());
        s.push_str(&self.base);
        s.push(':');
        s.push_str(suffix);
        s
    }

    pub fn meta(&self) -> String {
        self.k("meta")
    }
    pub fn avail(&self) -> String {
        self.k("avail")
    }
    pub fn seats(&self, section: i64) -> String {
        self.k(&format!("seats:{section}"))
    }
    /// A seated section's seat index: a byte a seat, 1 where the seat hash
    /// has the seat (see `seat_index` in `lua/lib.lua`).
    pub fn occ(&self, section: i64) -> String {
        self.k(&format!("occ:{section}"))
    }
    /// A seated section's per-row bound on the longest free run (`lua/lib.lua`).
    pub fn runs(&self, section: i64) -> String {
        self.k(&format!("runs:{section}"))
    }
    pub fn ga(&self, section: i64) -> String {
        self.k(&format!("ga:{section}"))
    }
    pub fn users(&self) -> String {
        self.k("users")
    }
    /// Every hold's record, one field per hold id (see `lua/lib.lua`).
    pub fn holds(&self) -> String {
        self.k("holds")
    }
    /// Finished holds by end time, until they are forgotten.
    pub fn ended(&self) -> String {
        self.k("ended")
    }
    /// The holds whose deadline falls in `bucket`, in the order made.
    pub fn bucket(&self, bucket: i64) -> String {
        self.k(&format!("d:{bucket}"))
    }
    /// The expiry timer of the holds whose deadline falls in `bucket`.
    pub fn timer(&self, bucket: i64) -> String {
        self.k(&format!("t:{bucket}"))
    }
    /// The deadline buckets that still list holds: member the bucket,
    /// score its end (see `lua/lib.lua`).
    pub fn deadlines(&self) -> String {
        self.k("deadlines")
    }
    pub fn stream(&self) -> String {
        self.k("stream")
    }
    /// Hold idempotency keys: `<user>:<key>` → hold id.
    pub fn idem(&self) -> String {
        self.k("idem")
    }
    /// The event's tickets: `<order>-<i>` → record (see `tickets.rs`).
    pub fn tickets(&self) -> String {
        self.k("tickets")
    }
    /// Resale listings: token → record (see `resale.rs`).
    pub fn listings(&self) -> String {
        self.k("listings")
    }
    /// The open listings by price (member the token, score the price).
    pub fn open_listings(&self) -> String {
        self.k("lopen")
    }
    pub fn order(&self, order: &str) -> String {
        self.k(&format!("o:{order}"))
    }
    pub fn pay_idem(&self, user: &str, key: &str) -> String {
        self.k(&format!("pidem:{user}:{key}"))
    }
    /// The waiting room's line: ticket → position.
    pub fn queue(&self) -> String {
        self.k("queue")
    }
    /// The waiting room's tickets by user: user → ticket.
    pub fn queue_users(&self) -> String {
        self.k("queue:users")
    }
    /// The waiting room's last position handed out.
    pub fn queue_seq(&self) -> String {
        self.k("queue:seq")
    }
    /// The tickets already reported admitted (so each is counted once).
    pub fn queue_admitted(&self) -> String {
        self.k("queue:admitted")
    }
}

/// Every key of one event (its hash tag's), by `SCAN` on the node that
/// holds them: on a Redis Cluster they share a slot, so one node has all.
pub async fn scan_event_keys(conn: &mut Redis, keys: &EventKeys) -> RedisResult<Vec<String>> {
    let pattern = format!("{}:*", keys.base);
    let route = keys.meta();
    let mut names = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let scan = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).to_owned();
        let (next, batch): (u64, Vec<String>) = conn.query_on_node_of(&route, &scan).await?;
        names.extend(batch);
        if next == 0 {
            return Ok(names);
        }
        cursor = next;
    }
}

/// The set of published event ids: how workers find every event's stream.
pub fn events_set(prefix: &str) -> String {
    format!("{prefix}:events")
}

/// How many milliseconds of deadlines one expiry timer covers (`BUCKET_MS`
/// in `lua/lib.lua`).
pub const TIMER_BUCKET_MS: i64 = 250;

/// The parts of a timer key, `<p>:{ev:E}:t:<bucket>` → `(E, bucket)`, as
/// the expiry worker receives it from a keyspace notification. Every hold
/// of event E with a deadline at or before `bucket * TIMER_BUCKET_MS` has lapsed
/// when it fires.
pub fn parse_timer_key(prefix: &str, key: &str) -> Option<(i64, i64)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{ev:")?;
    let (event, rest) = rest.split_once("}:t:")?;
    Some((event.parse().ok()?, rest.parse().ok()?))
}

/// A public hold id: `<event>-<16 hex>`. The event part routes the request
/// to the event's keys with no lookup; the random part (64 bits) makes it
/// unguessable, and every read and write of a hold checks its owner too.
/// The token is stored four or five times per hold (record, seat, deadline,
/// user entry, stream), so it is kept short. Ids of 32 hex (issued before)
/// still parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldId {
    pub event: i64,
    pub token: String,
}

impl HoldId {
    pub fn generate(event: i64) -> Self {
        Self { event, token: random_hex(8) }
    }

    /// Parses a public id; anything malformed is `None` (a 404 to clients).
    pub fn parse(s: &str) -> Option<Self> {
        let (event, token) = s.split_once('-')?;
        let event: i64 = event.parse().ok()?;
        if event <= 0 || !(token.len() == 16 || token.len() == 32) || !is_token(token, 32) {
            return None;
        }
        Some(Self { event, token: token.to_owned() })
    }

    pub fn public(&self) -> String {
        format!("{}-{}", self.event, self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let k = EventKeys::new("st", 42);
        for key in [k.meta(), k.seats(7), k.occ(7), k.runs(7), k.holds(), k.ended(), k.stream(), k.idem(), k.queue(), k.queue_users(), k.queue_seq(), k.queue_admitted(), k.tickets(), k.listings(), k.open_listings()] {
            assert!(key.starts_with("st:{ev:42}:"), "{key}");
        }
        assert_eq!(parse_timer_key("st", &k.timer(7_000_123)), Some((42, 7_000_123)));
        assert_eq!(parse_timer_key("st", "st:{ev:42}:t:abc"), None);
        assert_eq!(parse_timer_key("st", "st:{ev:42}:holds"), None);
        assert_eq!(parse_timer_key("other", &k.timer(1)), None);
    }

    #[test]
    fn hold_ids_round_trip_and_reject_junk() {
        let id = HoldId::generate(9);
        assert_eq!(id.token.len(), 16);
        assert_eq!(HoldId::parse(&id.public()), Some(id));
        assert!(HoldId::parse("9-0123456789abcdef0123456789abcdef").is_some(), "an id of the old length");
        for bad in ["", "9", "9-", "x-0123456789abcdef0123456789abcdef", "9-../../etc", "-1-0123456789abcdef0123456789abcdef"] {
            assert_eq!(HoldId::parse(bad), None, "{bad}");
        }
    }
}
