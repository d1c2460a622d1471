//! `GET /api/events/{id}/report[?format=csv]`: an event's sales, for its
//! organiser and admins (404 for anyone else who manages events, 403 for
//! customers and gates).
//!
//! Seats and places come from Redis, where the sale happens: sold, held
//! (capacity less sold and available: live holds, and lapsed ones not yet
//! reclaimed) and available, per section. Money comes from Postgres, the
//! durable record: revenue is the confirmed orders' amounts (per section:
//! a general-admission section's orders, a seated section's sold seats at
//! its price), refunds the refunded payments, and resale the price of the
//! event's sold resale listings (owed to their sellers, not revenue).
//! Postgres lags Redis by the persister's moment, so a report taken during
//! a rush may count a sale in `sold` before its revenue.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Serialize;
use stampede_common::Problem;
use stampede_common::http::{self, Resp};

use super::Manager;
use crate::CatalogService;
use crate::error::CatalogError;
use crate::inventory;
use crate::store::{self, EventDoc};

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct SectionReport {
    section_id: String,
    name: String,
    capacity: i64,
    sold: i64,
    held: i64,
    available: i64,
    revenue_cents: i64,
}

#[derive(Serialize, Debug)]
pub(crate) struct Report {
    event_id: String,
    status: &'static str,
    sold: i64,
    held: i64,
    available: i64,
    revenue_cents: i64,
    refunds_cents: i64,
    resale_cents: i64,
    by_section: Vec<SectionReport>,
}

pub(super) async fn report(svc: &CatalogService, req: Request<Incoming>, id: i64) -> Result<Resp, Problem> {
    let manager = Manager::of(svc, req.headers())?;
    let csv = match http::query_param(req.uri().query(), "format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Problem::bad_request("invalid_format", "format is json or csv")),
    };
    let client = svc.db.get().await?;
    let doc = store::load(&client, id, false).await?.ok_or(CatalogError::NotFound)?;
    manager.check(&doc)?;
    let counts = inventory::counts(&svc.redis, &svc.prefix, &doc).await?;
    let money = money(&client, &doc).await?;
    let report = build(&doc, counts.as_ref(), &money);
    if csv {
        let mut resp = http::raw(StatusCode::OK, "text/csv; charset=utf-8", to_csv(&report));
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("attachment; filename=\"event-{id}-report.csv\"")) {
            resp.headers_mut().insert("content-disposition", v);
        }
        return Ok(resp);
    }
    Ok(http::json(StatusCode::OK, &report))
}

/// What Postgres says of the event's money.
struct Money {
    /// Per section id: revenue in cents.
    revenue: std::collections::HashMap<i64, i64>,
    refunds_cents: i64,
    resale_cents: i64,
}

async fn money(client: &deadpool_postgres::Client, doc: &EventDoc) -> Result<Money, Problem> {
    let mut revenue = std::collections::HashMap::new();
    // General admission: the orders of the section. Seated: the sold seats,
    // by the section their id names, at the section's price.
    for row in client
        .query(
            "SELECT section_id, sum(amount_cents)::int8 FROM orders
             WHERE event_id = $1 AND status = 'confirmed' AND section_id IS NOT NULL GROUP BY section_id",
            &[&doc.id],
        )
        .await?
    {
        revenue.insert(row.get::<_, i64>(0), row.get::<_, i64>(1));
    }
    for row in client
        .query(
            "SELECT split_part(s.seat_id, ':', 1)::int8, count(*)::int8 FROM order_seats s JOIN orders o ON o.id = s.order_id
             WHERE s.event_id = $1 AND o.status = 'confirmed' GROUP BY 1",
            &[&doc.id],
        )
        .await?
    {
        let (section, seats): (i64, i64) = (row.get(0), row.get(1));
        let price = doc.sections.iter().find(|s| s.id == section).map_or(0, |s| s.spec.price_cents);
        *revenue.entry(section).or_insert(0) += seats * price;
    }
    let refunds_cents: i64 = client
        .query_one("SELECT coalesce(sum(amount_cents), 0)::int8 FROM payments WHERE event_id = $1 AND status = 'refunded'", &[&doc.id])
        .await?
        .get(0);
    let resale_cents: i64 = client
        .query_one("SELECT coalesce(sum(price_cents), 0)::int8 FROM listings WHERE event_id = $1 AND status = 'sold'", &[&doc.id])
        .await?
        .get(0);
    Ok(Money { revenue, refunds_cents, resale_cents })
}

fn build(doc: &EventDoc, counts: Option<&inventory::Counts>, money: &Money) -> Report {
    let by_section: Vec<SectionReport> = doc
        .sections
        .iter()
        .map(|s| {
            let capacity = s.spec.layout.capacity();
            // A draft has no counters: everything is available.
            let (available, sold) = counts.and_then(|c| c.get(&s.id).copied()).unwrap_or((capacity, 0));
            SectionReport {
                section_id: s.id.to_string(),
                name: s.spec.name.clone(),
                capacity,
                sold,
                held: (capacity - sold - available).max(0),
                available,
                revenue_cents: money.revenue.get(&s.id).copied().unwrap_or(0),
            }
        })
        .collect();
    Report {
        event_id: doc.id.to_string(),
        status: if doc.is_published() { "published" } else { "draft" },
        sold: by_section.iter().map(|s| s.sold).sum(),
        held: by_section.iter().map(|s| s.held).sum(),
        available: by_section.iter().map(|s| s.available).sum(),
        revenue_cents: by_section.iter().map(|s| s.revenue_cents).sum(),
        refunds_cents: money.refunds_cents,
        resale_cents: money.resale_cents,
        by_section,
    }
}

/// The report as CSV (RFC 4180): a row per section, then the event's totals.
fn to_csv(r: &Report) -> String {
    let mut out = String::from("section_id,name,capacity,sold,held,available,revenue_cents\r\n");
    for s in &r.by_section {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            s.section_id,
            csv_field(&s.name),
            s.capacity,
            s.sold,
            s.held,
            s.available,
            s.revenue_cents
        ));
    }
    let capacity: i64 = r.by_section.iter().map(|s| s.capacity).sum();
    out.push_str(&format!("total,,{capacity},{},{},{},{}\r\n", r.sold, r.held, r.available, r.revenue_cents));
    out.push_str(&format!("refunds,,,,,,{}\r\n", r.refunds_cents));
    out.push_str(&format!("resale,,,,,,{}\r\n", r.resale_cents));
    out
}

/// A CSV field: quoted when it holds a comma, a quote or a line break; a
/// leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never
/// runs a section's name as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\r', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("Stalls"), "Stalls");
        assert_eq!(csv_field("Stalls, left"), "\"Stalls, left\"");
        assert_eq!(csv_field("The \"Pit\""), "\"The \"\"Pit\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}
