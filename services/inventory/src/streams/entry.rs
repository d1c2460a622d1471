//! A delivered entry, and the dead-letter stream it goes to when it
//! cannot be handled.

use std::collections::HashMap;

use redis::Value;

use crate::keys::EventKeys;

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

/// An entry's fields as redis-rs's typed stream replies hold them
/// (`redis::streams::StreamId::map`), as text; a value that is not text is
/// left out.
pub(super) fn text_fields(map: HashMap<String, Value>) -> HashMap<String, String> {
    map.into_iter().filter_map(|(k, v)| Some((k, redis::from_redis_value::<String>(v).ok()?))).collect()
}

/// The dead-letter stream of an event, next to its stream (same hash tag).
pub fn dead_letter_key(prefix: &str, event: i64) -> String {
    let stream = EventKeys::new(prefix, event).stream();
    match stream.strip_suffix("stream") {
        Some(base) => format!("{base}dead"),
        None => format!("{stream}:dead"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_key_shares_the_hash_tag() {
        assert_eq!(dead_letter_key("st", 42), "st:{ev:42}:dead");
    }
}
