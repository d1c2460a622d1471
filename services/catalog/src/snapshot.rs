//! Seat-map snapshots. A section's map is rendered once per interval
//! (`STAMPEDE_SEATMAP_SNAPSHOT_MS`) per process and format into shared
//! bytes — the JSON and, when it is large, its gzip — each with a strong
//! `ETag` over its bytes; every request of that interval is answered from
//! them (`If-None-Match` → 304, `Accept-Encoding: gzip` → the gzip bytes).
//!
//! The compact form carries its snapshot's time (`as_of`), so its tag
//! changes with every snapshot; the seat list's only when a seat or the
//! available count does, so a client's tag outlives the snapshot.
//!
//! Only what anyone may see is shared: the route checks who may see the
//! event before it asks the cache, and a draft's map (admins only) is
//! rendered per request and never cached.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use hyper::StatusCode;
use hyper::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH, VARY,
};
use sha2::{Digest, Sha256};
use stampede_common::Problem;
use stampede_common::http::{self, Resp};

use crate::error::CatalogError;
use crate::view::{self, Audience, SeatState};

/// Bodies smaller than this are not worth compressing.
const GZIP_MIN_BYTES: usize = 1024;
/// zlib's fastest level: a 1.1 MB map of 20,000 seats gzips to about 130 KB
/// in about 2.5 ms (the default level, 6, saves a fifth more in ten times
/// the CPU, paid every interval).
const GZIP_LEVEL: u32 = 1;

/// How a seat map is written (`?format=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// No `format`: `{section_id, general_admission, available, seats:[…]}`.
    Seats,
    /// `format=rows`: one status character per seat.
    Rows,
}

impl Format {
    /// The `format` query parameter: absent, or `rows`.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Self, CatalogError> {
        match http::query_param(query, "format") {
            None => Ok(Self::Seats),
            Some("rows") => Ok(Self::Rows),
            Some(_) => Err(CatalogError::BadQuery {
                code: "invalid_format",
                detail: "format must be rows, or left out for the list of seats".into(),
            }),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Seats => "seats",
            Self::Rows => "rows",
        }
    }
}

/// How many seat maps a service has built: a handle that stays valid after
/// the service moves into its server (tests count builds with it; the
/// metrics count them too).
#[derive(Clone, Debug, Default)]
pub struct SeatMapBuilds(Arc<AtomicU64>);

impl SeatMapBuilds {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, format: Format, took: Duration) {
        self.0.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("catalog_seat_map_builds_total", "format" => format.as_str()).increment(1);
        metrics::histogram!("catalog_seat_map_build_duration_seconds", "format" => format.as_str())
            .record(took.as_secs_f64());
    }
}

/// One representation of a snapshot: its bytes and their strong `ETag`.
struct Variant {
    body: Bytes,
    etag: HeaderValue,
}

/// A rendered seat map, shared by every request its interval serves.
pub(crate) struct Snapshot {
    json: Variant,
    gzip: Option<Variant>,
}

impl Snapshot {
    /// Renders `state` as `format`, and gzips it when it is large. CPU
    /// work (a 20,000-seat map is about 1 MB of JSON): run it on a
    /// blocking thread.
    pub(crate) fn render(state: &SeatState, format: Format) -> Result<Self, Problem> {
        let json = match format {
            Format::Seats => serde_json::to_vec(&state.seats()),
            Format::Rows => serde_json::to_vec(&state.rows()),
        }
        .map_err(Problem::internal)?;
        let digest = Sha256::digest(&json);
        let tag = stampede_common::ids::hex(&digest[..16]);
        let gzip = if json.len() >= GZIP_MIN_BYTES {
            let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 8), Compression::new(GZIP_LEVEL));
            gz.write_all(&json).map_err(Problem::internal)?;
            Some(Variant { body: Bytes::from(gz.finish().map_err(Problem::internal)?), etag: etag(&tag, "-gzip")? })
        } else {
            None
        };
        Ok(Self { json: Variant { body: Bytes::from(json), etag: etag(&tag, "")? }, gzip })
    }

    /// The size of the JSON, uncompressed, and of its gzip.
    pub(crate) fn sizes(&self) -> (usize, Option<usize>) {
        (self.json.body.len(), self.gzip.as_ref().map(|g| g.body.len()))
    }

    /// The answer to `request`: the gzip bytes if it accepts them, else the
    /// JSON. A public map carries `Cache-Control: public, no-cache` (a cache
    /// asks again every time, so with the snapshot's own age a map is never
    /// more than a second old; the `ETag` makes asking again cheap) and its
    /// `ETag`, and a matching `If-None-Match` gets a bodiless 304; a draft's
    /// is `private, no-store`, as every read of a draft.
    pub(crate) fn respond(&self, audience: Audience, request: &HeaderMap) -> Resp {
        let (variant, gzipped) = match &self.gzip {
            Some(gz) if accepts_gzip(request) => (gz, true),
            _ => (&self.json, false),
        };
        let tag = variant.etag.to_str().unwrap_or_default();
        let if_none_match = request.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok());
        let mut resp = if audience == Audience::Public && view::matches(if_none_match, tag) {
            http::empty(StatusCode::NOT_MODIFIED)
        } else {
            let mut resp = http::raw(StatusCode::OK, "application/json", variant.body.clone());
            if gzipped {
                resp.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            resp
        };
        let headers = resp.headers_mut();
        headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        match audience {
            Audience::Public => {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, no-cache"));
                headers.insert(ETAG, variant.etag.clone());
            }
            Audience::Private => {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            }
        }
        resp
    }
}

/// `"<hex><suffix>"`: the representations of one snapshot get different
/// strong tags, as RFC 9110 §8.8.3 asks of different content codings.
fn etag(hex: &str, suffix: &str) -> Result<HeaderValue, Problem> {
    HeaderValue::from_str(&format!("\"{hex}{suffix}\"")).map_err(Problem::internal)
}

/// Whether `Accept-Encoding` admits gzip (RFC 9110 §12.5.3): named (or
/// `x-gzip`) with a nonzero q, or not named and `*` with a nonzero q.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut star = false;
    for value in request.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let q = parts
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                return q > 0.0;
            }
            if coding == "*" {
                star = q > 0.0;
            }
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).expect("header"));
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        for yes in ["gzip", "gzip, deflate, br", "br;q=1.0, GZIP;q=0.5", "x-gzip", "*", "deflate, *;q=0.1"] {
            assert!(accepts(yes), "{yes}");
        }
        for no in ["", "identity", "br, deflate", "gzip;q=0", "gzip; q=0.0, *", "*;q=0", "gzip;q=zero"] {
            assert!(!accepts(no), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn formats_come_from_the_query() {
        assert_eq!(Format::from_query(None).ok(), Some(Format::Seats));
        assert_eq!(Format::from_query(Some("x=1")).ok(), Some(Format::Seats));
        assert_eq!(Format::from_query(Some("x=1&format=rows")).ok(), Some(Format::Rows));
        for bad in ["format=", "format=ROWS", "format=seats", "format=csv", "format"] {
            assert!(Format::from_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
