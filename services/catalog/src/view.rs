//! The JSON the catalog answers with, and the HTTP caching of public reads
//! (`Cache-Control`, a weak `ETag` over the body, `304` on `If-None-Match`).

use std::collections::HashMap;

use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};
use hyper::{Response, StatusCode};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use stampede_common::Problem;
use stampede_common::clock::rfc3339_ms;
use stampede_common::http::{self, Body, Resp};
use stampede_inventory::SeatStatus;

use crate::inventory::Counts;
use crate::model::Layout;
use crate::store::{EventDoc, Section};

#[derive(Serialize)]
pub(crate) struct EventView<'a> {
    id: String,
    name: &'a str,
    venue: &'a str,
    starts_at: String,
    sale_starts_at: String,
    hold_seconds: i32,
    per_user_limit: i32,
    waiting_room: bool,
    status: &'static str,
    version: i32,
    sections: Vec<SectionView<'a>>,
}

#[derive(Serialize)]
struct SectionView<'a> {
    id: String,
    name: &'a str,
    price_cents: i64,
    general_admission: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats_per_row: Option<i32>,
    capacity: i64,
    available: i64,
}

/// Places of `section` neither held nor sold: the Redis counter once the
/// event is published (0 if Redis has none), the capacity before.
pub(crate) fn available(doc: &EventDoc, section: &Section, counts: Option<&Counts>) -> i64 {
    if !doc.is_published() {
        return section.spec.layout.capacity();
    }
    counts.and_then(|c| c.get(&section.id)).map_or(0, |(available, _sold)| *available)
}

pub(crate) fn event<'a>(doc: &'a EventDoc, counts: Option<&Counts>) -> EventView<'a> {
    let t = &doc.terms;
    EventView {
        id: doc.id.to_string(),
        name: &t.name,
        venue: &t.venue,
        starts_at: rfc3339_ms(t.starts_at_ms),
        sale_starts_at: rfc3339_ms(t.sale_starts_at_ms),
        hold_seconds: t.hold_seconds,
        per_user_limit: t.per_user_limit,
        waiting_room: t.waiting_room,
        status: doc.status.as_str(),
        version: doc.version,
        sections: doc
            .sections
            .iter()
            .map(|s| {
                let (rows, seats_per_row) = match s.spec.layout {
                    Layout::Seated { rows, seats_per_row } => (Some(rows), Some(seats_per_row)),
                    Layout::General { .. } => (None, None),
                };
                SectionView {
                    id: s.id.to_string(),
                    name: &s.spec.name,
                    price_cents: s.spec.price_cents,
                    general_admission: rows.is_none(),
                    rows,
                    seats_per_row,
                    capacity: s.spec.layout.capacity(),
                    available: available(doc, s, counts),
                }
            })
            .collect(),
    }
}

/// `GET …/seats`: the section's seats in row, then number, order. A
/// general-admission section has none, only a count.
#[derive(Serialize)]
pub(crate) struct SeatsView<'a> {
    section_id: String,
    general_admission: bool,
    available: i64,
    seats: SeatList<'a>,
}

pub(crate) fn seats<'a>(
    section: &Section,
    available: i64,
    taken: &'a HashMap<(u32, u32), SeatStatus>,
) -> SeatsView<'a> {
    let (rows, per_row) = match section.spec.layout {
        Layout::Seated { rows, seats_per_row } => (rows.unsigned_abs(), seats_per_row.unsigned_abs()),
        Layout::General { .. } => (0, 0),
    };
    SeatsView {
        section_id: section.id.to_string(),
        general_admission: rows == 0,
        available,
        seats: SeatList { section: section.id, rows, per_row, taken },
    }
}

/// Every seat of a section, serialised straight from the layout with no
/// per-seat allocation (a section may hold 200,000 of them).
pub(crate) struct SeatList<'a> {
    section: i64,
    rows: u32,
    per_row: u32,
    taken: &'a HashMap<(u32, u32), SeatStatus>,
}

impl Serialize for SeatList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.rows as usize * self.per_row as usize))?;
        for row in 1..=self.rows {
            for number in 1..=self.per_row {
                let status = self.taken.get(&(row, number)).copied().unwrap_or(SeatStatus::Free);
                seq.serialize_element(&Seat { section: self.section, row, number, status })?;
            }
        }
        seq.end()
    }
}

struct Seat {
    section: i64,
    row: u32,
    number: u32,
    status: SeatStatus,
}

impl Serialize for Seat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Seat", 4)?;
        st.serialize_field("id", &SeatId(self))?;
        st.serialize_field("row", &self.row)?;
        st.serialize_field("number", &self.number)?;
        st.serialize_field("status", self.status.as_str())?;
        st.end()
    }
}

/// `"<section>:<row>:<number>"`, the stable seat id.
struct SeatId<'a>(&'a Seat);

impl Serialize for SeatId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}:{}:{}", self.0.section, self.0.row, self.0.number))
    }
}

/// Who may cache a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Audience {
    /// A published event: anyone, for a second, revalidated by `ETag`.
    Public,
    /// A draft an admin is looking at: nobody.
    Private,
}

/// A JSON read answered with caching headers: public answers carry
/// `Cache-Control: public, max-age=1` and a weak `ETag` (a hash of the
/// body), and a matching `If-None-Match` gets a bodiless 304.
pub(crate) fn cached<T: Serialize>(body: &T, audience: Audience, request: &HeaderMap) -> Resp {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => return Problem::internal(e).into_response(),
    };
    if audience == Audience::Private {
        let mut resp = json_bytes(StatusCode::OK, bytes);
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        return resp;
    }
    let digest = Sha256::digest(&bytes);
    let tag = format!("W/\"{}\"", stampede_common::ids::hex(&digest[..12]));
    let mut resp = if matches(request.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()), &tag) {
        http::empty(StatusCode::NOT_MODIFIED)
    } else {
        json_bytes(StatusCode::OK, bytes)
    };
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// Weak comparison (RFC 9110 §13.1.2): `W/` is ignored on both sides.
fn matches(if_none_match: Option<&str>, tag: &str) -> bool {
    let Some(header) = if_none_match else { return false };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = opaque(tag);
    header.split(',').any(|t| t.trim() == "*" || opaque(t) == ours)
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Resp {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_weak_and_listy() {
        let tag = "W/\"abc\"";
        assert!(matches(Some("W/\"abc\""), tag));
        assert!(matches(Some("\"abc\""), tag));
        assert!(matches(Some("\"x\", W/\"abc\""), tag));
        assert!(matches(Some("*"), tag));
        assert!(!matches(Some("W/\"abd\""), tag));
        assert!(!matches(None, tag));
    }

    #[test]
    fn seat_lists_serialise_in_order() {
        let mut taken = HashMap::new();
        taken.insert((1, 2), SeatStatus::Held);
        taken.insert((2, 1), SeatStatus::Sold);
        let list = SeatList { section: 7, rows: 2, per_row: 2, taken: &taken };
        let v = serde_json::to_value(&list).expect("json");
        let ids: Vec<&str> = v.as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id")).collect();
        assert_eq!(ids, ["7:1:1", "7:1:2", "7:2:1", "7:2:2"]);
        let st: Vec<&str> = v.as_array().expect("array").iter().map(|s| s["status"].as_str().expect("s")).collect();
        assert_eq!(st, ["free", "held", "sold", "free"]);
        assert_eq!(v[3], serde_json::json!({"id": "7:2:2", "row": 2, "number": 2, "status": "free"}));
    }
}
