//! Routing for the reservation service.

mod holds;
mod queue;

use hyper::body::Incoming;
use hyper::{Method, Request};
use stampede_common::Problem;
use stampede_common::http::{self, Routed};

use crate::ReservationService;

pub(crate) use holds::HoldMetrics;

pub(crate) async fn route(svc: &ReservationService, req: Request<Incoming>) -> Routed {
    let Some((seg, n)) = http::segments::<5>(req.uri().path()) else { return http::not_found() };
    match (&seg[..n], req.method()) {
        (["api", "events", event, "holds"], &Method::POST) => ("/api/events/{id}/holds", holds::create(svc, event_id(event), req).await),
        (["api", "events", _, "holds"], _) => ("/api/events/{id}/holds", Err(Problem::method_not_allowed("POST"))),
        (["api", "holds", id], &Method::GET) => ("/api/holds/{id}", holds::show(svc, id, &req).await),
        (["api", "holds", id], &Method::DELETE) => ("/api/holds/{id}", holds::delete(svc, id, &req).await),
        (["api", "holds", _], _) => ("/api/holds/{id}", Err(Problem::method_not_allowed("GET, DELETE"))),
        (["api", "events", event, "queue"], &Method::POST) => ("/api/events/{id}/queue", queue::join(svc, event_id(event), &req).await),
        (["api", "events", _, "queue"], _) => ("/api/events/{id}/queue", Err(Problem::method_not_allowed("POST"))),
        (["api", "events", event, "queue", ticket], &Method::GET) => {
            ("/api/events/{id}/queue/{ticket}", queue::status(svc, event_id(event), ticket, &req).await)
        }
        (["api", "events", _, "queue", _], _) => ("/api/events/{id}/queue/{ticket}", Err(Problem::method_not_allowed("GET"))),
        _ => http::not_found(),
    }
}

/// An event id from the path; anything but a positive integer is a 404.
fn event_id(s: &str) -> Option<i64> {
    s.parse::<i64>().ok().filter(|e| *e > 0)
}
