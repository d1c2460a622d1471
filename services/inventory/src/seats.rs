//! The status of single seats, read straight from a section's seat hash.

use std::collections::HashMap;

use redis::{AsyncCommands, RedisResult};
use stampede_common::store::Redis;

use crate::keys::EventKeys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatStatus {
    Free,
    Held,
    Sold,
}

impl SeatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Free => "free",
            SeatStatus::Held => "held",
            SeatStatus::Sold => "sold",
        }
    }

    /// The status a seat hash value stands for at `now_ms` (lapsed holds are free).
    pub fn of_value(value: &str, now_ms: i64) -> Self {
        match value.as_bytes().first() {
            Some(b's') => SeatStatus::Sold,
            Some(b'h') => {
                let exp = value[1..].split(':').next().and_then(|e| e.parse::<i64>().ok()).unwrap_or(0);
                if exp > now_ms { SeatStatus::Held } else { SeatStatus::Free }
            }
            _ => SeatStatus::Free,
        }
    }
}

/// The status of every seat that is not free in a seated section, keyed
/// `(row, number)`; a hold past its expiry reads as free.
pub async fn taken_seats(conn: &mut Redis, keys: &EventKeys, section: i64, now_ms: i64) -> RedisResult<HashMap<(u32, u32), SeatStatus>> {
    let map: HashMap<String, String> = conn.hgetall(keys.seats(section)).await?;
    Ok(map
        .into_iter()
        .filter_map(|(field, value)| {
            let (r, n) = field.split_once(':')?;
            let status = SeatStatus::of_value(&value, now_ms);
            (status != SeatStatus::Free).then_some(((r.parse().ok()?, n.parse().ok()?), status))
        })
        .collect())
}
