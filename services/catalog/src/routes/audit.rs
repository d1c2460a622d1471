//! `GET /api/events/{id}/audit?cursor=`: the event's audit trail, newest
//! first, for its organiser and admins (404 for anyone else who manages
//! events, 403 for customers and gates).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use stampede_common::Problem;
use stampede_common::audit;
use stampede_common::http::{self, Resp};

use super::Manager;
use crate::CatalogService;
use crate::error::CatalogError;
use crate::store;

pub(super) async fn audit(svc: &CatalogService, req: Request<Incoming>, id: i64) -> Result<Resp, Problem> {
    let manager = Manager::of(svc, req.headers())?;
    let before = audit::cursor(req.uri().query())?;
    let client = svc.db.get().await?;
    let doc = store::load(&client, id, false).await?.ok_or(CatalogError::NotFound)?;
    manager.check(&doc)?;
    let page = audit::page(&client, Some(id), before).await?;
    Ok(http::json(StatusCode::OK, &page))
}
