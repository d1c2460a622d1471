//! The catalog service: `/api/events/*`.
//!
//! Events and their sections live in Postgres; seats are not rows (a seated
//! section is `rows × seats_per_row`, and a seat's id `<section>:<row>:<n>`
//! is derived). Admins create and edit drafts under optimistic concurrency
//! (`If-Match: <version>`), then publish, which writes the event's
//! inventory into Redis through `stampede_inventory` in O(sections): free
//! seats cost nothing there. Everyone else browses published events.
//!
//! Reads are built to survive an on-sale rush: the Postgres part of an
//! event (and of a browse page) is cached in-process for at most a second,
//! loaded once however many requests miss together, and dropped at once
//! when this process changes the event; availability is always read from
//! Redis. A seat map is a snapshot of Redis at most
//! `STAMPEDE_SEATMAP_SNAPSHOT_MS` old (500 ms by default), built once per
//! interval per process and served from shared bytes (see [`snapshot`]).

mod cache;
mod config;
mod cursor;
mod error;
mod inventory;
mod model;
mod routes;
mod snapshot;
mod store;
mod view;

use std::sync::{Arc, Once};
use std::time::Duration;

use deadpool_postgres::Pool;
use hyper::Request;
use hyper::body::Incoming;
use metrics::{Unit, describe_counter, describe_histogram};
use stampede_common::Config;
use stampede_common::http::{Handler, Routed};
use stampede_common::store::Redis;
use stampede_common::token::Tokens;
use stampede_inventory::Scripts;

pub use crate::config::{CatalogConfig, MIGRATIONS};
pub use crate::snapshot::SeatMapBuilds;

use crate::cache::TtlCache;
use crate::cursor::Cursor;
use crate::snapshot::{Format, Snapshot};
use crate::store::{EventDoc, Page};

/// How long an event document (the Postgres part) may be served from memory.
pub const DOC_TTL: Duration = Duration::from_secs(1);
/// Entries a cache keeps before it sweeps out the stale ones.
const CACHE_CAPACITY: usize = 10_000;
/// Seat-map snapshots kept at most (each up to a few MB for the largest
/// sections; stale ones are swept every interval anyway).
const SEAT_MAP_CAPACITY: usize = 1_000;

/// The catalog service's state.
pub struct CatalogService {
    db: Pool,
    redis: Redis,
    tokens: Arc<Tokens>,
    scripts: Scripts,
    prefix: String,
    min_hold_seconds: i64,
    max_body: usize,
    /// Event id → its document, or `None` when Postgres has no such event.
    docs: TtlCache<i64, Option<Arc<EventDoc>>>,
    /// `(cursor, limit)` → one page of published events.
    pages: TtlCache<(Option<Cursor>, i64), Arc<Page>>,
    /// `(event, section, format)` → the published section's seat map.
    seat_maps: TtlCache<(i64, i64, Format), Arc<Snapshot>>,
    seat_map_builds: SeatMapBuilds,
}

impl CatalogService {
    pub fn build(config: &Config, catalog: &CatalogConfig, db: Pool, redis: Redis, tokens: Arc<Tokens>) -> Self {
        stampede_common::telemetry::install_metrics();
        describe_metrics();
        Self {
            db,
            redis,
            tokens,
            scripts: Scripts::load(),
            prefix: config.redis_prefix.clone(),
            min_hold_seconds: catalog.min_hold_seconds,
            max_body: config.max_body_bytes,
            docs: TtlCache::new("event", DOC_TTL, CACHE_CAPACITY),
            pages: TtlCache::new("page", DOC_TTL, CACHE_CAPACITY),
            seat_maps: TtlCache::new(
                "seat_map",
                Duration::from_millis(catalog.seatmap_snapshot_ms),
                SEAT_MAP_CAPACITY,
            ),
            seat_map_builds: SeatMapBuilds::default(),
        }
    }

    /// Counts the seat maps this service builds, from now on and after it
    /// has moved into its server.
    pub fn seat_map_builds(&self) -> SeatMapBuilds {
        self.seat_map_builds.clone()
    }

    /// Forgets what this process cached about `event` (and every browse
    /// page, which may list it) after a change.
    fn forget(&self, event: i64) {
        self.docs.invalidate(&event);
        self.pages.clear();
    }
}

impl Handler for CatalogService {
    fn name(&self) -> &'static str {
        "catalog"
    }

    async fn handle(&self, req: Request<Incoming>) -> Routed {
        routes::route(self, req).await
    }

    async fn ready(&self) -> Result<(), String> {
        stampede_common::db::ping(&self.db).await?;
        stampede_common::store::ping(&self.redis).await
    }
}

fn describe_metrics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        describe_counter!("catalog_events_created_total", Unit::Count, "Draft events created.");
        describe_counter!("catalog_events_updated_total", Unit::Count, "Successful event patches, by event status.");
        describe_counter!("catalog_events_published_total", Unit::Count, "Events put on sale.");
        describe_counter!(
            "catalog_places_published_total",
            Unit::Count,
            "Seats and general-admission places put on sale."
        );
        describe_histogram!(
            "catalog_publish_duration_seconds",
            Unit::Seconds,
            "Time to publish an event: Postgres lock, Redis inventory write, commit."
        );
        describe_counter!(
            "catalog_cache_lookups_total",
            Unit::Count,
            "In-process cache lookups, by cache (event, page, seat_map) and result (hit, miss)."
        );
        describe_counter!(
            "catalog_seat_map_builds_total",
            Unit::Count,
            "Seat maps read from Redis and rendered, by format (seats, rows); the rest are served from snapshots."
        );
        describe_histogram!(
            "catalog_seat_map_build_duration_seconds",
            Unit::Seconds,
            "Time to build a seat-map snapshot: Redis reads, JSON, gzip."
        );
    });
}
