//! `GET /api/events/{id}/sections/{section_id}/seats`: a section's seat
//! map. Statuses come from Redis on every request (only taken seats are
//! stored there; a hold past its expiry reads free); the layout comes from
//! the cached event. A general-admission section answers with no seats and
//! its available count.

use std::collections::HashMap;

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
use crate::view;

pub(super) async fn seats(
    svc: &CatalogService,
    req: Request<Incoming>,
    id: i64,
    section: i64,
) -> Result<Resp, Problem> {
    let (doc, audience) = visible(svc, id, req.headers()).await?;
    let sec = doc.section(section).ok_or(CatalogError::SectionNotFound)?;
    let (counts, taken) = if doc.is_published() {
        let keys = EventKeys::new(&svc.prefix, id);
        let (mut a, mut b) = (svc.redis.clone(), svc.redis.clone());
        let seated = matches!(sec.spec.layout, Layout::Seated { .. });
        let counts = stampede_inventory::availability(&mut a, &keys);
        let taken = async {
            if seated {
                stampede_inventory::taken_seats(&mut b, &keys, section, now_ms()).await
            } else {
                Ok(HashMap::new())
            }
        };
        let (counts, taken) = tokio::try_join!(counts, taken).map_err(CatalogError::from)?;
        (Some(counts), taken)
    } else {
        (None, HashMap::new())
    };
    let available = view::available(&doc, sec, counts.as_ref());
    Ok(view::cached(&view::seats(sec, available, &taken), audience, req.headers()))
}
