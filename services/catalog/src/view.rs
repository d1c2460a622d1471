//! The JSON the catalog answers with, and the HTTP caching of public reads
//! (`Cache-Control`, a weak `ETag` over the body, `304` on `If-None-Match`;
//! seat maps have their own, strong, in [`crate::snapshot`]).

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
    verified_email_required: bool,
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
        verified_email_required: t.verified_email_required,
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

/// A section's seats at one moment, owned, so a seat map can be rendered
/// off the async workers: the layout (`rows` 0 for general admission), the
/// available count, the seats that are not free, and when they were read.
pub(crate) struct SeatState {
    section: i64,
    rows: u32,
    per_row: u32,
    available: i64,
    taken: HashMap<(u32, u32), SeatStatus>,
    as_of_ms: i64,
}

impl SeatState {
    pub(crate) fn new(
        section: &Section,
        available: i64,
        taken: HashMap<(u32, u32), SeatStatus>,
        as_of_ms: i64,
    ) -> Self {
        let (rows, per_row) = match section.spec.layout {
            Layout::Seated { rows, seats_per_row } => (rows.unsigned_abs(), seats_per_row.unsigned_abs()),
            Layout::General { .. } => (0, 0),
        };
        Self { section: section.id, rows, per_row, available, taken, as_of_ms }
    }

    /// `GET …/seats`: every seat as an object, in row, then number, order.
    pub(crate) fn seats(&self) -> SeatsView<'_> {
        SeatsView {
            section_id: self.section.to_string(),
            general_admission: self.rows == 0,
            available: self.available,
            seats: SeatList { section: self.section, rows: self.rows, per_row: self.per_row, taken: &self.taken },
        }
    }

    /// `GET …/seats?format=rows`: one status character per seat, a string
    /// per row. A general-admission section has no rows, only a count.
    pub(crate) fn rows(&self) -> RowsView<'_> {
        RowsView {
            section_id: self.section.to_string(),
            general_admission: self.rows == 0,
            available: self.available,
            rows: RowList { rows: self.rows, per_row: self.per_row, taken: &self.taken },
            as_of: rfc3339_ms(self.as_of_ms),
        }
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

/// `GET …/seats?format=rows`: about one byte per seat instead of sixty.
#[derive(Serialize)]
pub(crate) struct RowsView<'a> {
    section_id: String,
    general_admission: bool,
    available: i64,
    rows: RowList<'a>,
    as_of: String,
}

/// `[{row, statuses}]`, rows ascending; `statuses[i]` is seat `i + 1`.
struct RowList<'a> {
    rows: u32,
    per_row: u32,
    taken: &'a HashMap<(u32, u32), SeatStatus>,
}

impl Serialize for RowList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Row<'a> {
            row: u32,
            statuses: &'a str,
        }
        let mut seq = s.serialize_seq(Some(self.rows as usize))?;
        let mut statuses = String::with_capacity(self.per_row as usize);
        for row in 1..=self.rows {
            statuses.clear();
            statuses.extend(
                (1..=self.per_row).map(|n| status_char(self.taken.get(&(row, n)).copied().unwrap_or(SeatStatus::Free))),
            );
            seq.serialize_element(&Row { row, statuses: &statuses })?;
        }
        seq.end()
    }
}

/// A seat's status in the compact format: `f` free, `h` held, `s` sold.
fn status_char(status: SeatStatus) -> char {
    match status {
        SeatStatus::Free => 'f',
        SeatStatus::Held => 'h',
        SeatStatus::Sold => 's',
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
pub(crate) fn matches(if_none_match: Option<&str>, tag: &str) -> bool {
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

    #[test]
    fn rows_have_one_character_per_seat() {
        let mut taken = HashMap::new();
        taken.insert((1, 2), SeatStatus::Held);
        taken.insert((2, 1), SeatStatus::Sold);
        taken.insert((2, 3), SeatStatus::Held);
        let state = SeatState { section: 7, rows: 2, per_row: 3, available: 3, taken, as_of_ms: 1_764_410_400_250 };
        assert_eq!(
            serde_json::to_value(state.rows()).expect("json"),
            serde_json::json!({
                "section_id": "7", "general_admission": false, "available": 3,
                "rows": [{"row": 1, "statuses": "fhf"}, {"row": 2, "statuses": "sfh"}],
                "as_of": "2025-11-29T10:00:00.250Z"
            })
        );
        let ga = SeatState { section: 8, rows: 0, per_row: 0, available: 40, taken: HashMap::new(), as_of_ms: 0 };
        let v = serde_json::to_value(ga.rows()).expect("json");
        assert_eq!(
            (v["rows"].clone(), v["general_admission"].clone(), v["available"].clone()),
            (serde_json::json!([]), serde_json::json!(true), serde_json::json!(40))
        );
    }
}
