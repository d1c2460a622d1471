//! `GET /api/events/{id}/sections/{section_id}/seats[?format=rows]`: a
//! section's seat map. Statuses come from Redis (only taken seats are
//! stored there; a hold past its expiry reads free), the layout from the
//! cached event. A published event's map is a snapshot ([`crate::snapshot`])
//! built at most once per interval per process and format, however many
//! ask at once; a draft's is built for each (admin) request. A
//! general-admission section answers with no seats and its available count.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use hyper::Request;
use hyper::body::Incoming;
use stampede_common::Problem;
use stampede_common::clock::now_ms;
use stampede_common::http::Resp;
use stampede_inventory::EventKeys;

use super::visible;
use crate::CatalogService;
use crate::error::CatalogError;
use crate::model::Layout;
use crate::snapshot::{Format, Snapshot};
use crate::store::{EventDoc, Section};
use crate::view::{self, Audience, SeatState};

pub(super) async fn seats(
    svc: &CatalogService,
    req: Request<Incoming>,
    id: i64,
    section: i64,
) -> Result<Resp, Problem> {
    let format = Format::from_query(req.uri().query())?;
    let (doc, audience) = visible(svc, id, req.headers()).await?;
    let sec = doc.section(section).ok_or(CatalogError::SectionNotFound)?;
    let snapshot = match audience {
        Audience::Public => svc.seat_maps.get_or_load((id, section, format), || build(svc, &doc, sec, format)).await?,
        Audience::Private => build(svc, &doc, sec, format).await?,
    };
    Ok(snapshot.respond(audience, req.headers()))
}

/// Reads the section's statuses and renders them (on a blocking thread:
/// a big map is milliseconds of CPU).
async fn build(svc: &CatalogService, doc: &EventDoc, sec: &Section, format: Format) -> Result<Arc<Snapshot>, Problem> {
    let started = Instant::now();
    let as_of = now_ms();
    let (counts, taken) = if doc.is_published() {
        let keys = EventKeys::new(&svc.prefix, doc.id);
        let (mut a, mut b) = (svc.redis.clone(), svc.redis.clone());
        let seated = matches!(sec.spec.layout, Layout::Seated { .. });
        let counts = stampede_inventory::availability(&mut a, &keys);
        let taken = async {
            if seated {
                stampede_inventory::taken_seats(&mut b, &keys, sec.id, as_of).await
            } else {
                Ok(HashMap::new())
            }
        };
        let (counts, taken) = tokio::try_join!(counts, taken).map_err(CatalogError::from)?;
        (Some(counts), taken)
    } else {
        (None, HashMap::new())
    };
    let state = SeatState::new(sec, view::available(doc, sec, counts.as_ref()), taken, as_of);
    let snapshot =
        tokio::task::spawn_blocking(move || Snapshot::render(&state, format)).await.map_err(Problem::internal)??;
    svc.seat_map_builds.record(format, started.elapsed());
    let (json, gzip) = snapshot.sizes();
    tracing::debug!(event = doc.id, section = sec.id, format = format.as_str(), json, gzip, "seat map built");
    Ok(Arc::new(snapshot))
}
