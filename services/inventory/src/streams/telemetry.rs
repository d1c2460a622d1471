//! The stream metrics: dead letters, length, pending, lag and age per
//! event and group.

use metrics::{Unit, describe_counter, describe_gauge, gauge};
use stampede_common::clock::now_ms;

use super::info::StreamInfo;

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
