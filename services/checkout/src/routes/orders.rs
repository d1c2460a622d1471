//! `GET /api/orders` and `GET /api/orders/{id}`: Redis first (an order is
//! readable the moment checkout answers), then Postgres (the durable record
//! the persister writes).

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use stampede_common::Problem;
use stampede_common::clock::rfc3339;
use stampede_common::clock::rfc3339_ms;
use stampede_common::http::{self, Resp};
use stampede_inventory::{EventKeys, HoldId, OrderRecord, read_order};

use crate::CheckoutService;
use crate::gateway::PaymentGateway;

/// How many orders a list answers at most.
const LIST_LIMIT: isize = 200;

/// The per-user index of recent orders (public ids scored by creation time).
pub(crate) fn user_orders_key(prefix: &str, user: &str) -> String {
    format!("{prefix}:u:{{{user}}}:orders")
}

fn view(id: &HoldId, rec: &OrderRecord) -> Value {
    json!({
        "id": id.public(),
        "event_id": id.event.to_string(),
        "hold_id": HoldId { event: id.event, token: rec.hold.clone() }.public(),
        "seats": rec.seats,
        "section_id": rec.section.map(|s| s.to_string()),
        "quantity": rec.quantity,
        "amount_cents": rec.amount_cents,
        "status": rec.status,
        "created_at": rfc3339_ms(rec.created_ms),
        "payment": {"id": rec.payment, "amount_cents": rec.amount_cents, "status": "captured"},
    })
}

const PG_COLUMNS: &str = "o.id, o.event_id, o.hold_id, o.seats, o.section_id, o.quantity, o.amount_cents, o.status,
     o.created_at, o.payment_id, coalesce(p.status, 'captured')";

fn pg_view(row: &tokio_postgres::Row) -> Value {
    let event: i64 = row.get(1);
    let token: String = row.get(0);
    let hold: String = row.get(2);
    let section: Option<i64> = row.get(4);
    let created: std::time::SystemTime = row.get(8);
    let created = time::OffsetDateTime::from(created);
    let amount: i64 = row.get(6);
    json!({
        "id": HoldId { event, token }.public(),
        "event_id": event.to_string(),
        "hold_id": HoldId { event, token: hold }.public(),
        "seats": row.get::<_, Vec<String>>(3),
        "section_id": section.map(|s| s.to_string()),
        "quantity": row.get::<_, i32>(5),
        "amount_cents": amount,
        "status": row.get::<_, String>(7),
        "created_at": rfc3339(created),
        "payment": {"id": row.get::<_, String>(9), "amount_cents": amount, "status": row.get::<_, String>(10)},
    })
}

pub(crate) async fn show<G: PaymentGateway>(svc: &CheckoutService<G>, id: &str, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let order = HoldId::parse(id).ok_or_else(|| Problem::not_found("no such order"))?;
    let mut conn = svc.redis.clone();
    let keys = EventKeys::new(&svc.prefix, order.event);
    if let Some(rec) = read_order(&mut conn, &keys, &order.token).await? {
        if rec.user != who.user_id {
            return Err(Problem::not_found("no such order"));
        }
        return Ok(http::json(StatusCode::OK, &view(&order, &rec)));
    }
    let user: i64 = who.user_id.parse().map_err(|_| Problem::not_found("no such order"))?;
    let client = svc.db.get().await?;
    let sql = format!(
        "SELECT {PG_COLUMNS} FROM orders o LEFT JOIN payments p ON p.id = o.payment_id
         WHERE o.id = $1 AND o.event_id = $2 AND o.user_id = $3"
    );
    match client.query_opt(&sql, &[&order.token, &order.event, &user]).await? {
        Some(row) => Ok(http::json(StatusCode::OK, &pg_view(&row))),
        None => Err(Problem::not_found("no such order")),
    }
}

pub(crate) async fn list<G: PaymentGateway>(svc: &CheckoutService<G>, req: &Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let mut conn = svc.redis.clone();
    let recent: Vec<String> = conn.zrevrange(user_orders_key(&svc.prefix, &who.user_id), 0, LIST_LIMIT - 1).await?;
    let mut orders: Vec<Value> = Vec::new();
    for id in recent {
        let Some(order) = HoldId::parse(&id) else { continue };
        let keys = EventKeys::new(&svc.prefix, order.event);
        if let Some(rec) = read_order(&mut conn, &keys, &order.token).await?
            && rec.user == who.user_id
        {
            orders.push(view(&order, &rec));
        }
    }
    if let Ok(user) = who.user_id.parse::<i64>() {
        let client = svc.db.get().await?;
        let sql = format!(
            "SELECT {PG_COLUMNS} FROM orders o LEFT JOIN payments p ON p.id = o.payment_id
             WHERE o.user_id = $1 ORDER BY o.created_at DESC LIMIT {LIST_LIMIT}"
        );
        for row in client.query(&sql, &[&user]).await? {
            let v = pg_view(&row);
            if !orders.iter().any(|o| o["id"] == v["id"]) {
                orders.push(v);
            }
        }
    }
    orders.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
    orders.truncate(LIST_LIMIT as usize);
    Ok(http::json(StatusCode::OK, &json!({ "orders": orders })))
}
