//! `/api/events` (browse, create) and `/api/events/{id}` (read, patch).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, IF_MATCH, LOCATION};
use hyper::{Request, StatusCode};
use serde::Serialize;
use serde_json::json;
use stampede_common::Problem;
use stampede_common::audit::{self, Entry};
use stampede_common::http::{self, Resp};
use stampede_common::token::Role;
use stampede_inventory::EventKeys;

use super::{Manager, visible};
use crate::CatalogService;
use crate::cursor::Cursor;
use crate::error::CatalogError;
use crate::inventory;
use crate::model::{self, EventPatch, NewEvent};
use crate::store;
use crate::view::{self, Audience, EventView};

pub(crate) const DEFAULT_PAGE: i64 = 50;
pub(crate) const MAX_PAGE: i64 = 200;

#[derive(Serialize)]
struct Listing<'a> {
    events: Vec<EventView<'a>>,
    next_cursor: Option<String>,
}

/// `GET /api/events?limit=&cursor=`: published events, newest first.
/// With `managed=true`, the events the caller manages instead (see [`managed`]).
pub(super) async fn list(svc: &CatalogService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let query = req.uri().query();
    let limit = match http::query_param(query, "limit") {
        None => DEFAULT_PAGE,
        Some(v) => {
            v.parse::<i64>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| CatalogError::BadQuery {
                code: "invalid_limit",
                detail: format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            })?
        }
    };
    let cursor = match http::query_param(query, "cursor") {
        None | Some("") => None,
        Some(token) => Some(Cursor::decode(token).ok_or_else(|| CatalogError::BadQuery {
            code: "invalid_cursor",
            detail: "cursor must be a next_cursor value this API returned".into(),
        })?),
    };
    match http::query_param(query, "managed") {
        None | Some("false") => {}
        Some("true") => return managed(svc, req, cursor, limit).await,
        Some(_) => {
            return Err(CatalogError::BadQuery { code: "invalid_query", detail: "managed must be true or false".into() }
                .into());
        }
    }
    let page = svc
        .pages
        .get_or_load((cursor, limit), || async {
            let client = svc.db.get().await?;
            Ok::<_, CatalogError>(Arc::new(store::page(&client, cursor, limit).await?))
        })
        .await?;
    listing(svc, &page, Audience::Public, req.headers()).await
}

/// `GET /api/events?managed=true`: the events the caller manages — an
/// organiser its own, an admin every one — drafts included, newest created
/// first, fresh from Postgres (never the public page cache) and private to
/// the caller. 401 without a token; 403 for customers and gates.
async fn managed(svc: &CatalogService, req: Request<Incoming>, after: Option<Cursor>, limit: i64) -> Result<Resp, Problem> {
    let manager = Manager::of(svc, req.headers())?;
    let owner = (manager.who.role != Role::Admin).then_some(manager.id);
    let client = svc.db.get().await.map_err(CatalogError::from)?;
    let page = store::managed_page(&client, owner, after, limit).await.map_err(CatalogError::from)?;
    listing(svc, &page, Audience::Private, req.headers()).await
}

/// One page of events as the list answers it: each with its live counts
/// (published ones; read together, pipelined), and the next page's cursor.
async fn listing(svc: &CatalogService, page: &store::Page, audience: Audience, headers: &HeaderMap) -> Result<Resp, Problem> {
    let counts = inventory::counts_many(&svc.redis, &svc.prefix, &page.events).await.map_err(CatalogError::from)?;
    let listing = Listing {
        events: page.events.iter().zip(&counts).map(|(doc, c)| view::event(doc, c.as_ref())).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    };
    Ok(view::cached(&listing, audience, headers))
}

/// `POST /api/events`: a new draft at version 1, owned by its creator (an
/// organiser or an admin), audited in the same transaction.
pub(super) async fn create(svc: &CatalogService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let manager = Manager::of(svc, req.headers())?;
    let body: NewEvent = http::read_json(req.into_body(), svc.max_body).await?;
    let (terms, sections) = body.validate(svc.min_hold_seconds)?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let id = store::insert(&tx, &terms, &sections, manager.id).await?;
    let doc = store::load(&tx, id, false).await?.ok_or(CatalogError::NotFound)?;
    let target = format!("event:{id}");
    let details = json!({ "after": view::event(&doc, None) });
    audit::record(&tx, &Entry { actor: Some(manager.id), action: "event.create", target: &target, event: Some(id), details }).await?;
    tx.commit().await?;
    svc.docs.invalidate(&id);
    metrics::counter!("catalog_events_created_total").increment(1);
    tracing::info!(event = id, places = doc.places(), "event created");
    let mut resp = http::json(StatusCode::CREATED, &view::event(&doc, None));
    if let Ok(v) = HeaderValue::from_str(&format!("/api/events/{id}")) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

/// `GET /api/events/{id}`: the event with per-section availability.
pub(super) async fn get(svc: &CatalogService, req: Request<Incoming>, id: i64) -> Result<Resp, Problem> {
    let (doc, audience) = visible(svc, id, req.headers()).await?;
    let counts = inventory::counts(&svc.redis, &svc.prefix, &doc).await.map_err(CatalogError::from)?;
    Ok(view::cached(&view::event(&doc, counts.as_ref()), audience, req.headers()))
}

/// `PATCH /api/events/{id}` with `If-Match: <version>`.
///
/// A draft may change in every way. Once published, the seat layout
/// (`sections`) and `waiting_room` are fixed (409 `published`; sending
/// them unchanged is fine); the other fields still change, and the sale
/// terms the scripts read (`sale_starts_at`, `hold_seconds`,
/// `per_user_limit`, `verified_email_required`) are written to Redis before the commit, so a Redis
/// failure leaves both stores as they were. The audit entry (before and
/// after) commits with the change.
pub(super) async fn patch(svc: &CatalogService, req: Request<Incoming>, id: i64) -> Result<Resp, Problem> {
    let manager = Manager::of(svc, req.headers())?;
    let expected = if_match(req.headers())?;
    let body: EventPatch = http::read_json(req.into_body(), svc.max_body).await?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let current = store::load(&tx, id, true).await?.ok_or(CatalogError::NotFound)?;
    manager.check(&current)?;
    if current.version != expected {
        return Err(CatalogError::VersionMismatch { current: current.version }.into());
    }
    let published = current.is_published();
    let (terms, sections) = body.apply(&current.terms, svc.min_hold_seconds)?;
    let sections = match sections {
        None => None,
        Some(inputs) if published => match model::sections(inputs) {
            Ok(same) if same == current.specs() => None,
            _ => return Err(CatalogError::Published("sections").into()),
        },
        Some(inputs) => Some(model::sections(inputs)?),
    };
    if published && terms.waiting_room != current.terms.waiting_room {
        return Err(CatalogError::Published("waiting_room").into());
    }
    store::update(&tx, id, expected, &terms)
        .await?
        .ok_or(CatalogError::VersionMismatch { current: current.version })?;
    if let Some(sections) = &sections {
        store::replace_sections(&tx, id, sections).await?;
    }
    let old = &current.terms;
    let sale_terms_changed = (terms.sale_starts_at_ms, terms.hold_seconds, terms.per_user_limit, terms.verified_email_required)
        != (old.sale_starts_at_ms, old.hold_seconds, old.per_user_limit, old.verified_email_required);
    if published && sale_terms_changed {
        let mut conn = svc.redis.clone();
        let keys = EventKeys::new(&svc.prefix, id);
        let hold_ms = i64::from(terms.hold_seconds) * 1000;
        stampede_inventory::update_terms(
            &mut conn,
            &keys,
            terms.sale_starts_at_ms,
            hold_ms,
            i64::from(terms.per_user_limit),
            terms.verified_email_required,
        )
        .await
        .map_err(CatalogError::from)?;
    }
    let doc = store::load(&tx, id, false).await?.ok_or(CatalogError::NotFound)?;
    let target = format!("event:{id}");
    let details = json!({ "before": view::event(&current, None), "after": view::event(&doc, None) });
    audit::record(&tx, &Entry { actor: Some(manager.id), action: "event.update", target: &target, event: Some(id), details }).await?;
    tx.commit().await?;
    svc.forget(id);
    metrics::counter!("catalog_events_updated_total", "status" => doc.status.as_str()).increment(1);
    tracing::info!(event = id, version = doc.version, "event updated");
    let counts = inventory::counts(&svc.redis, &svc.prefix, &doc).await.map_err(CatalogError::from)?;
    Ok(http::json(StatusCode::OK, &view::event(&doc, counts.as_ref())))
}

/// The version named by `If-Match`: a bare number or a quoted one (`"3"`).
fn if_match(headers: &HeaderMap) -> Result<i32, CatalogError> {
    let Some(value) = headers.get(IF_MATCH) else { return Err(CatalogError::PreconditionRequired) };
    let value = value.to_str().map_err(|_| CatalogError::BadPrecondition)?.trim();
    if value.is_empty() {
        return Err(CatalogError::PreconditionRequired);
    }
    let bare = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    bare.parse::<i32>().ok().filter(|v| *v >= 1).ok_or(CatalogError::BadPrecondition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_bare_or_quoted_versions() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(IF_MATCH, HeaderValue::from_str(v).expect("header"));
            if_match(&h)
        };
        assert_eq!(with("3").ok(), Some(3));
        assert_eq!(with(" \"12\" ").ok(), Some(12));
        assert!(matches!(with(""), Err(CatalogError::PreconditionRequired)));
        assert!(matches!(if_match(&HeaderMap::new()), Err(CatalogError::PreconditionRequired)));
        for bad in ["*", "0", "-1", "\"3", "W/\"3\"", "abc", "99999999999"] {
            assert!(matches!(with(bad), Err(CatalogError::BadPrecondition)), "{bad}");
        }
    }
}
