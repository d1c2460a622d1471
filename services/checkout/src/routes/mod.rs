//! Routing for the checkout service.

mod events;
mod orders;
pub(crate) mod payment;
mod resale;
mod tickets;

use hyper::body::Incoming;
use hyper::{Method, Request};
use stampede_common::Problem;
use stampede_common::http::{self, Routed};

use crate::CheckoutService;
use crate::gateway::PaymentGateway;

pub(crate) async fn route<G: PaymentGateway>(svc: &CheckoutService<G>, req: Request<Incoming>) -> Routed {
    let Some((seg, n)) = http::segments::<5>(req.uri().path()) else { return http::not_found() };
    match (&seg[..n], req.method()) {
        (["api", "holds", id, "payment"], &Method::POST) => {
            let id = (*id).to_owned();
            ("/api/holds/{id}/payment", payment::pay(svc, &id, req).await)
        }
        (["api", "holds", _, "payment"], _) => ("/api/holds/{id}/payment", Err(Problem::method_not_allowed("POST"))),
        (["api", "orders"], &Method::GET) => ("/api/orders", orders::list(svc, &req).await),
        (["api", "orders"], _) => ("/api/orders", Err(Problem::method_not_allowed("GET"))),
        (["api", "orders", id], &Method::GET) => ("/api/orders/{id}", orders::show(svc, id, &req).await),
        (["api", "orders", _], _) => ("/api/orders/{id}", Err(Problem::method_not_allowed("GET"))),
        (["api", "tickets"], &Method::GET) => ("/api/tickets", tickets::list(svc, &req).await),
        (["api", "tickets"], _) => ("/api/tickets", Err(Problem::method_not_allowed("GET"))),
        (["api", "tickets", id, "code"], &Method::GET) => ("/api/tickets/{id}/code", tickets::code(svc, id, &req).await),
        (["api", "tickets", _, "code"], _) => ("/api/tickets/{id}/code", Err(Problem::method_not_allowed("GET"))),
        (["api", "tickets", id, "transfer"], &Method::POST) => {
            let id = (*id).to_owned();
            ("/api/tickets/{id}/transfer", tickets::transfer(svc, &id, req).await)
        }
        (["api", "tickets", _, "transfer"], _) => ("/api/tickets/{id}/transfer", Err(Problem::method_not_allowed("POST"))),
        (["api", "tickets", id, "listing"], &Method::POST) => {
            let id = (*id).to_owned();
            ("/api/tickets/{id}/listing", resale::create(svc, &id, req).await)
        }
        (["api", "tickets", _, "listing"], _) => ("/api/tickets/{id}/listing", Err(Problem::method_not_allowed("POST"))),
        (["api", "listings", id], &Method::DELETE) => ("/api/listings/{id}", resale::delete(svc, id, &req).await),
        (["api", "listings", _], _) => ("/api/listings/{id}", Err(Problem::method_not_allowed("DELETE"))),
        (["api", "listings", id, "holds"], &Method::POST) => {
            let id = (*id).to_owned();
            ("/api/listings/{id}/holds", resale::hold(svc, &id, req).await)
        }
        (["api", "listings", _, "holds"], _) => ("/api/listings/{id}/holds", Err(Problem::method_not_allowed("POST"))),
        (["api", "events", id, "listings"], &Method::GET) => ("/api/events/{id}/listings", resale::list(svc, id).await),
        (["api", "events", _, "listings"], _) => ("/api/events/{id}/listings", Err(Problem::method_not_allowed("GET"))),
        (["api", "events", id, "ticket-key"], &Method::GET) => ("/api/events/{id}/ticket-key", events::ticket_key(svc, id).await),
        (["api", "events", _, "ticket-key"], _) => ("/api/events/{id}/ticket-key", Err(Problem::method_not_allowed("GET"))),
        (["api", "events", id, "check-in"], &Method::POST) => {
            let id = (*id).to_owned();
            ("/api/events/{id}/check-in", events::check_in(svc, &id, req).await)
        }
        (["api", "events", _, "check-in"], _) => ("/api/events/{id}/check-in", Err(Problem::method_not_allowed("POST"))),
        _ => http::not_found(),
    }
}
