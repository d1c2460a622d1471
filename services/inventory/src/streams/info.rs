//! What a stream holds and how far each group on it has got: the basis of
//! trimming and of the stream metrics.

use std::collections::HashMap;

use redis::{RedisResult, Value};
use stampede_common::store::Redis;

use super::id::StreamId;
use super::reply::{entry_ids, int, pairs, text};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
