//! Key names. Every key of one event shares the hash tag `{ev:<id>}`.

use stampede_common::ids::{is_token, random_hex};

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
    pub fn ga(&self, section: i64) -> String {
        self.k(&format!("ga:{section}"))
    }
    pub fn users(&self) -> String {
        self.k("users")
    }
    pub fn hold(&self, hold: &str) -> String {
        self.k(&format!("h:{hold}"))
    }
    pub fn timer(&self, hold: &str) -> String {
        self.k(&format!("t:{hold}"))
    }
    pub fn deadlines(&self) -> String {
        self.k("deadlines")
    }
    pub fn stream(&self) -> String {
        self.k("stream")
    }
    pub fn idem(&self, user: &str, key: &str) -> String {
        self.k(&format!("idem:{user}:{key}"))
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

/// The set of published event ids: how workers find every event's stream.
pub fn events_set(prefix: &str) -> String {
    format!("{prefix}:events")
}

/// The parts of a timer key, `<p>:{ev:E}:t:<hold>` → `(E, hold)`, as the
/// expiry worker receives it from a keyspace notification.
pub fn parse_timer_key<'a>(prefix: &str, key: &'a str) -> Option<(i64, &'a str)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{ev:")?;
    let (event, rest) = rest.split_once("}:t:")?;
    Some((event.parse().ok()?, rest))
}

/// A public hold id: `<event>-<32 hex>`. The event part routes the request
/// to the event's keys with no lookup; the random part makes it unguessable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldId {
    pub event: i64,
    pub token: String,
}

impl HoldId {
    pub fn generate(event: i64) -> Self {
        Self { event, token: random_hex(16) }
    }

    /// Parses a public id; anything malformed is `None` (a 404 to clients).
    pub fn parse(s: &str) -> Option<Self> {
        let (event, token) = s.split_once('-')?;
        let event: i64 = event.parse().ok()?;
        if event <= 0 || token.len() != 32 || !is_token(token, 32) {
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
        for key in [k.meta(), k.seats(7), k.hold("ab"), k.stream(), k.idem("1", "x"), k.queue(), k.queue_users(), k.queue_seq(), k.queue_admitted()] {
            assert!(key.starts_with("st:{ev:42}:"), "{key}");
        }
        assert_eq!(parse_timer_key("st", &k.timer("abc")), Some((42, "abc")));
        assert_eq!(parse_timer_key("st", "st:{ev:42}:h:abc"), None);
        assert_eq!(parse_timer_key("other", &k.timer("abc")), None);
    }

    #[test]
    fn hold_ids_round_trip_and_reject_junk() {
        let id = HoldId::generate(9);
        assert_eq!(HoldId::parse(&id.public()), Some(id));
        for bad in ["", "9", "9-", "x-0123456789abcdef0123456789abcdef", "9-../../etc", "-1-0123456789abcdef0123456789abcdef"] {
            assert_eq!(HoldId::parse(bad), None, "{bad}");
        }
    }
}
