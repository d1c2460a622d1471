//! Parsing the replies of the stream commands (`XREADGROUP`, `XAUTOCLAIM`,
//! `XPENDING`, `XINFO`, `XRANGE`), RESP2 or RESP3.

use std::collections::HashMap;

use redis::Value;

use super::id::StreamId;

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

pub(super) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// Key/value pairs of a flat array (RESP2) or a map (RESP3).
pub(super) fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(items) => items.chunks(2).filter_map(|c| Some((text(c.first()?)?, c.get(1)?))).collect(),
        Value::Map(items) => items.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
        _ => Vec::new(),
    }
}

/// An entry as Redis sends it: id and fields.
pub(super) type RawEntry = (String, HashMap<String, String>);

/// `[[id, [field, value, …]], …]` → entries; deleted ones (nil fields) are skipped.
pub(super) fn entry_list(v: &Value) -> Vec<RawEntry> {
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
pub(super) fn stream_replies(v: &Value) -> Vec<(String, Vec<RawEntry>)> {
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
pub(super) fn pending_deliveries(v: &Value) -> Option<u64> {
    let Value::Array(rows) = v else { return None };
    let Value::Array(row) = rows.first()? else { return None };
    int(row.get(3)?).map(|n| n.max(0) as u64)
}

pub(super) fn entry_ids(v: &Value) -> Vec<StreamId> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(parts) = item else { return None };
            StreamId::parse(&text(parts.first()?)?)
        })
        .collect()
}
