//! `POST /api/events/{id}/publish`: puts a draft on sale.
//!
//! Under the event's row lock, the inventory goes into Redis first
//! (`stampede_inventory::publish`: the meta and one counter per section,
//! O(sections) whatever the number of seats), then the status is committed.
//! A Redis failure leaves the draft a draft. A commit that fails after the
//! Redis write leaves Redis ahead of Postgres; the retry finds the same
//! layout there and adopts it, and refuses (409 `inventory_conflict`) a
//! layout that has changed meanwhile rather than guess.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;
use stampede_common::Problem;
use stampede_common::audit::{self, Entry};
use stampede_common::http::{self, Resp};
use stampede_common::store::Redis;
use stampede_inventory::{EventKeys, EventMeta};

use super::Manager;
use crate::CatalogService;
use crate::error::CatalogError;
use crate::inventory;
use crate::store::{self, EventDoc, Status};
use crate::view;

pub(super) async fn publish(svc: &CatalogService, req: Request<Incoming>, id: i64) -> Result<Resp, Problem> {
    let manager = Manager::of(svc, req.headers())?;
    let started = Instant::now();
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let draft = store::load(&tx, id, true).await?.ok_or(CatalogError::NotFound)?;
    manager.check(&draft)?;
    if draft.is_published() {
        return Err(CatalogError::AlreadyPublished.into());
    }
    let meta = inventory::meta(&draft);
    let keys = EventKeys::new(&svc.prefix, id);
    let mut conn = svc.redis.clone();
    let fresh = stampede_inventory::publish(&mut conn, &svc.scripts, &svc.prefix, &keys, &meta)
        .await
        .map_err(CatalogError::from)?;
    if !fresh {
        adopt(&mut conn, &keys, &meta).await?;
    }
    let (version, published_us) = store::mark_published(&tx, id).await?.ok_or(CatalogError::AlreadyPublished)?;
    let target = format!("event:{id}");
    let details = json!({
        "before": { "status": "draft", "version": draft.version },
        "after": { "status": "published", "version": version },
    });
    audit::record(&tx, &Entry { actor: Some(manager.id), action: "event.publish", target: &target, event: Some(id), details }).await?;
    tx.commit().await?;
    let elapsed = started.elapsed();
    svc.forget(id);
    metrics::counter!("catalog_events_published_total").increment(1);
    metrics::counter!("catalog_places_published_total").increment(draft.places().unsigned_abs());
    metrics::histogram!("catalog_publish_duration_seconds").record(elapsed.as_secs_f64());
    tracing::info!(
        event = id,
        places = draft.places(),
        seconds = elapsed.as_secs_f64(),
        adopted = !fresh,
        "event published"
    );
    let doc = EventDoc { status: Status::Published, version, published_us: Some(published_us), ..draft };
    let counts = inventory::counts(&svc.redis, &svc.prefix, &doc).await.map_err(CatalogError::from)?;
    Ok(http::json(StatusCode::OK, &view::event(&doc, counts.as_ref())))
}

/// Redis already holds this event's inventory (an earlier publish wrote it
/// and then failed to commit). Same layout: keep it, counters and all, and
/// bring its terms up to date. Another layout: refuse.
async fn adopt(conn: &mut Redis, keys: &EventKeys, meta: &EventMeta) -> Result<(), CatalogError> {
    let Some(existing) = stampede_inventory::read_meta(conn, keys).await? else {
        return Err(CatalogError::InventoryConflict);
    };
    let mut wanted = meta.sections.clone();
    wanted.sort_by_key(|s| s.id);
    if existing.sections != wanted || existing.waiting_room != meta.waiting_room {
        return Err(CatalogError::InventoryConflict);
    }
    stampede_inventory::update_terms(conn, keys, meta.sale_ms, meta.hold_ms, meta.limit, meta.verified_email_required).await?;
    Ok(())
}
