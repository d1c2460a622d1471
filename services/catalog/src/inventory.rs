//! The catalog's side of the Redis inventory (`stampede_inventory`): the
//! meta that publishing writes, and the counters and seat values that
//! reads show. Nothing here is O(seats): a free seat has no key or field.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::try_join_all;
use redis::RedisResult;
use stampede_common::store::Redis;
use stampede_inventory::{EventKeys, EventMeta, SectionLayout};

use crate::model::Layout;
use crate::store::EventDoc;

/// Per section id: `(available, sold)`, as `stampede_inventory::availability` reads it.
pub(crate) type Counts = HashMap<i64, (i64, i64)>;

/// What publishing `doc` puts on sale.
pub(crate) fn meta(doc: &EventDoc) -> EventMeta {
    EventMeta {
        sale_ms: doc.terms.sale_starts_at_ms,
        hold_ms: i64::from(doc.terms.hold_seconds) * 1000,
        limit: i64::from(doc.terms.per_user_limit),
        waiting_room: doc.terms.waiting_room,
        verified_email_required: doc.terms.verified_email_required,
        sections: doc
            .sections
            .iter()
            .map(|s| SectionLayout {
                id: s.id,
                seated: match s.spec.layout {
                    Layout::Seated { rows, seats_per_row } => Some((rows.unsigned_abs(), seats_per_row.unsigned_abs())),
                    Layout::General { .. } => None,
                },
                capacity: s.spec.layout.capacity(),
                price_cents: s.spec.price_cents,
            })
            .collect(),
    }
}

/// The counters of a published event (`None` for a draft: it has none,
/// and everything is available).
pub(crate) async fn counts(redis: &Redis, prefix: &str, doc: &EventDoc) -> RedisResult<Option<Counts>> {
    if !doc.is_published() {
        return Ok(None);
    }
    let mut conn = redis.clone();
    stampede_inventory::availability(&mut conn, &EventKeys::new(prefix, doc.id)).await.map(Some)
}

/// [`counts`] of many events at once: the reads share one connection and
/// go out pipelined.
pub(crate) async fn counts_many(
    redis: &Redis,
    prefix: &str,
    docs: &[Arc<EventDoc>],
) -> RedisResult<Vec<Option<Counts>>> {
    try_join_all(docs.iter().map(|d| counts(redis, prefix, d))).await
}
