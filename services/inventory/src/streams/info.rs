//! What a stream holds and how far each group on it has got: the basis of
//! trimming and of the stream metrics.

use redis::streams::{StreamInfoGroupsReply, StreamPendingReply, StreamRangeReply};
use redis::{AsyncCommands, RedisResult};
use stampede_common::store::Redis;

use super::id::StreamId;

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
    let exists: bool = conn.exists(key).await?;
    if !exists {
        return Ok(None);
    }
    let length: u64 = conn.xlen(key).await?;
    let groups: StreamInfoGroupsReply = conn.xinfo_groups(key).await?;
    let mut out = Vec::with_capacity(groups.groups.len());
    for g in groups.groups {
        let last_delivered = StreamId::parse(&g.last_delivered_id).unwrap_or_default();
        let pending = g.pending as u64;
        let lag = g.lag.map(|n| n as u64);
        let mut oldest = None;
        if pending > 0 {
            let summary: StreamPendingReply = conn.xpending(key, &g.name).await?;
            if let StreamPendingReply::Data(data) = summary {
                oldest = StreamId::parse(&data.start_id);
            }
        }
        if oldest.is_none() && lag != Some(0) {
            // The first entry not yet delivered, if any.
            let next: StreamRangeReply = conn.xrange_count(key, format!("({last_delivered}"), "+", 1).await?;
            oldest = next.ids.first().and_then(|e| StreamId::parse(&e.id));
        }
        out.push(GroupInfo {
            name: g.name,
            consumers: g.consumers as u64,
            pending,
            lag,
            last_delivered,
            oldest_unacked: oldest,
        });
    }
    Ok(Some(StreamInfo { length, groups: out }))
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
