//! Routing for `/api/events/*`, and what its handlers share: path ids, who
//! manages which event, and which events a caller may see.
//!
//! Admins manage every event; an organiser creates events (they are its
//! own) and manages only those: another organiser's event answers 404, as
//! if it did not exist. Customers and gates get 403 on these routes.
//!
//! | path | module |
//! |---|---|
//! | `/api/events`, `/api/events/{id}` | [`events`] |
//! | `/api/events/{id}/audit` | [`audit`] |
//! | `/api/events/{id}/publish` | [`publish`] |
//! | `/api/events/{id}/report` | [`report`] |
//! | `/api/events/{id}/sections/{section_id}/seats` | [`seats`] |

mod audit;
mod events;
mod publish;
mod report;
mod seats;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use stampede_common::Problem;
use stampede_common::http::{self, Routed};
use stampede_common::token::{Principal, Role};

use crate::CatalogService;
use crate::error::CatalogError;
use crate::store::{self, EventDoc};
use crate::view::Audience;

pub(crate) async fn route(svc: &CatalogService, req: Request<Incoming>) -> Routed {
    let Some((seg, n)) = http::segments::<7>(req.uri().path()) else { return http::not_found() };
    if n < 2 || seg[0] != "api" || seg[1] != "events" {
        return http::not_found();
    }
    let m = req.method().clone();
    match &seg[2..n] {
        [] => match m {
            Method::GET => ("/api/events", events::list(svc, req).await),
            Method::POST => ("/api/events", events::create(svc, req).await),
            _ => ("/api/events", Err(Problem::method_not_allowed("GET, POST"))),
        },
        [id] => {
            const ROUTE: &str = "/api/events/{id}";
            let Some(id) = parse_id(id) else { return (ROUTE, Err(CatalogError::NotFound.into())) };
            match m {
                Method::GET => (ROUTE, events::get(svc, req, id).await),
                Method::PATCH => (ROUTE, events::patch(svc, req, id).await),
                _ => (ROUTE, Err(Problem::method_not_allowed("GET, PATCH"))),
            }
        }
        [id, "audit"] => {
            const ROUTE: &str = "/api/events/{id}/audit";
            let Some(id) = parse_id(id) else { return (ROUTE, Err(CatalogError::NotFound.into())) };
            match m {
                Method::GET => (ROUTE, audit::audit(svc, req, id).await),
                _ => (ROUTE, Err(Problem::method_not_allowed("GET"))),
            }
        }
        [id, "report"] => {
            const ROUTE: &str = "/api/events/{id}/report";
            let Some(id) = parse_id(id) else { return (ROUTE, Err(CatalogError::NotFound.into())) };
            match m {
                Method::GET => (ROUTE, report::report(svc, req, id).await),
                _ => (ROUTE, Err(Problem::method_not_allowed("GET"))),
            }
        }
        [id, "publish"] => {
            const ROUTE: &str = "/api/events/{id}/publish";
            let Some(id) = parse_id(id) else { return (ROUTE, Err(CatalogError::NotFound.into())) };
            match m {
                Method::POST => (ROUTE, publish::publish(svc, req, id).await),
                _ => (ROUTE, Err(Problem::method_not_allowed("POST"))),
            }
        }
        [id, "sections", section, "seats"] => {
            const ROUTE: &str = "/api/events/{id}/sections/{section_id}/seats";
            let (Some(id), Some(section)) = (parse_id(id), parse_id(section)) else {
                return (ROUTE, Err(CatalogError::NotFound.into()));
            };
            match m {
                Method::GET => (ROUTE, seats::seats(svc, req, id, section).await),
                _ => (ROUTE, Err(Problem::method_not_allowed("GET"))),
            }
        }
        _ => http::not_found(),
    }
}

/// A path id: a positive integer in canonical form (digits, no sign, no
/// leading zero). Anything else names nothing: a 404, never a 500.
fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A caller who manages events: 401 without a valid token, 403 unless an
/// organiser or an admin. Its id is a user id (a number), or the token is
/// not one this platform issued.
struct Manager {
    who: Principal,
    id: i64,
}

impl Manager {
    fn of(svc: &CatalogService, headers: &HeaderMap) -> Result<Self, Problem> {
        let who = svc.tokens.authenticate(headers)?;
        who.require_organiser()?;
        let id = who.user_id.parse().map_err(|_| Problem::unauthorized("invalid access token"))?;
        Ok(Self { who, id })
    }

    /// Whether this caller manages `doc`: an admin every event, an
    /// organiser its own. Anyone else's answers 404, never 403, so an
    /// organiser cannot learn which drafts exist.
    fn check(&self, doc: &EventDoc) -> Result<(), CatalogError> {
        match self.who.role {
            Role::Admin => Ok(()),
            _ if doc.owner == Some(self.id) => Ok(()),
            _ => Err(CatalogError::NotFound),
        }
    }
}

/// The event as `headers`' caller may see it. Published events come from
/// the in-process cache. A draft (or an id the cache says is missing) is
/// visible only to an admin or its organiser, who read it fresh from
/// Postgres; to anyone else it does not exist. A bad token on this public
/// route is treated as no token.
async fn visible(svc: &CatalogService, id: i64, headers: &HeaderMap) -> Result<(Arc<EventDoc>, Audience), Problem> {
    let cached = svc
        .docs
        .get_or_load(id, || async {
            let client = svc.db.get().await?;
            Ok::<_, CatalogError>(store::load(&client, id, false).await?.map(Arc::new))
        })
        .await?;
    if let Some(doc) = cached
        && doc.is_published()
    {
        return Ok((doc, Audience::Public));
    }
    let Ok(manager) = Manager::of(svc, headers) else { return Err(CatalogError::NotFound.into()) };
    let client = svc.db.get().await?;
    let doc = store::load(&client, id, false).await?.ok_or(CatalogError::NotFound)?;
    manager.check(&doc)?;
    let audience = if doc.is_published() { Audience::Public } else { Audience::Private };
    Ok((Arc::new(doc), audience))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_canonical_positive_integers() {
        assert_eq!(super::parse_id("42"), Some(42));
        for bad in ["", "0", "042", "-1", "+1", "1.0", "abc", "4 2", "99999999999999999999", "%31"] {
            assert_eq!(super::parse_id(bad), None, "{bad:?}");
        }
    }
}
