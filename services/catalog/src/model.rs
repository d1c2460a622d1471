//! What an admin sends (the create and patch bodies), the rules it must
//! meet, and the validated shapes the rest of the crate works with.
//!
//! Bodies are strict: unknown fields are refused (`deny_unknown_fields`),
//! wrong JSON types are refused by the parser, and every rule broken here
//! is a 400 `invalid_event` whose `field` and `detail` name the field.

use serde::{Deserialize, Deserializer};
use stampede_common::clock::parse_rfc3339_ms;

use crate::error::CatalogError;

/// Longest event, venue or section name, in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 200;
pub(crate) const MAX_SECTIONS: usize = 100;
/// Seats plus general-admission places of one event.
pub(crate) const MAX_PLACES: i64 = 200_000;
pub(crate) const MAX_HOLD_SECONDS: i64 = 3600;
pub(crate) const DEFAULT_HOLD_SECONDS: i64 = 600;
pub(crate) const MAX_PER_USER_LIMIT: i64 = 50;
pub(crate) const DEFAULT_PER_USER_LIMIT: i64 = 4;
/// $100M: keeps `price × quantity` exact in the Lua scripts' doubles.
pub(crate) const MAX_PRICE_CENTS: i64 = 10_000_000_000;

/// Everything about an event except its sections: what may still change
/// after publishing (bar `waiting_room`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Terms {
    pub name: String,
    pub venue: String,
    pub starts_at_ms: i64,
    pub sale_starts_at_ms: i64,
    pub hold_seconds: i32,
    pub per_user_limit: i32,
    pub waiting_room: bool,
    /// Holds need an account with a verified e-mail (403 `email_unverified`).
    pub verified_email_required: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Seated { rows: i32, seats_per_row: i32 },
    General { capacity: i32 },
}

impl Layout {
    pub(crate) fn capacity(&self) -> i64 {
        match *self {
            Layout::Seated { rows, seats_per_row } => i64::from(rows) * i64::from(seats_per_row),
            Layout::General { capacity } => i64::from(capacity),
        }
    }
}

/// A validated section, before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SectionSpec {
    pub name: String,
    pub price_cents: i64,
    pub layout: Layout,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SectionInput {
    name: String,
    price_cents: i64,
    #[serde(default)]
    general_admission: bool,
    #[serde(default, deserialize_with = "present")]
    rows: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    seats_per_row: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    capacity: Option<i64>,
}

/// The body of `POST /api/events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEvent {
    name: String,
    venue: String,
    starts_at: String,
    sale_starts_at: String,
    #[serde(default, deserialize_with = "present")]
    hold_seconds: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    per_user_limit: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    waiting_room: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    verified_email_required: Option<bool>,
    sections: Vec<SectionInput>,
}

/// The body of `PATCH /api/events/{id}`: any of the create fields. A field
/// left out keeps its value; `null` is a type error, not a reset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventPatch {
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    venue: Option<String>,
    #[serde(default, deserialize_with = "present")]
    starts_at: Option<String>,
    #[serde(default, deserialize_with = "present")]
    sale_starts_at: Option<String>,
    #[serde(default, deserialize_with = "present")]
    hold_seconds: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    per_user_limit: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    waiting_room: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    verified_email_required: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    sections: Option<Vec<SectionInput>>,
}

/// A field that, when present, must hold a value of its type (not `null`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl NewEvent {
    pub(crate) fn validate(self, min_hold_seconds: i64) -> Result<(Terms, Vec<SectionSpec>), CatalogError> {
        let terms = Terms {
            name: text("name", self.name)?,
            venue: text("venue", self.venue)?,
            starts_at_ms: time("starts_at", &self.starts_at)?,
            sale_starts_at_ms: time("sale_starts_at", &self.sale_starts_at)?,
            hold_seconds: hold_seconds(self.hold_seconds.unwrap_or(default_hold(min_hold_seconds)), min_hold_seconds)?,
            per_user_limit: per_user_limit(self.per_user_limit.unwrap_or(DEFAULT_PER_USER_LIMIT))?,
            waiting_room: self.waiting_room.unwrap_or(false),
            verified_email_required: self.verified_email_required.unwrap_or(false),
        };
        check_window(&terms)?;
        Ok((terms, sections(self.sections)?))
    }
}

impl EventPatch {
    /// The current terms with this patch laid over them, validated as a
    /// whole, and the requested sections (not validated yet: whether they
    /// may change at all depends on the event's status).
    pub(crate) fn apply(
        self,
        current: &Terms,
        min_hold_seconds: i64,
    ) -> Result<(Terms, Option<Vec<SectionInput>>), CatalogError> {
        let mut t = current.clone();
        if let Some(v) = self.name {
            t.name = text("name", v)?;
        }
        if let Some(v) = self.venue {
            t.venue = text("venue", v)?;
        }
        if let Some(v) = self.starts_at {
            t.starts_at_ms = time("starts_at", &v)?;
        }
        if let Some(v) = self.sale_starts_at {
            t.sale_starts_at_ms = time("sale_starts_at", &v)?;
        }
        if let Some(v) = self.hold_seconds {
            t.hold_seconds = hold_seconds(v, min_hold_seconds)?;
        }
        if let Some(v) = self.per_user_limit {
            t.per_user_limit = per_user_limit(v)?;
        }
        if let Some(v) = self.waiting_room {
            t.waiting_room = v;
        }
        if let Some(v) = self.verified_email_required {
            t.verified_email_required = v;
        }
        check_window(&t)?;
        Ok((t, self.sections))
    }
}

fn default_hold(min_hold_seconds: i64) -> i64 {
    DEFAULT_HOLD_SECONDS.max(min_hold_seconds)
}

/// Trimmed, non-empty, at most [`MAX_TEXT_CHARS`], no control characters.
fn text(field: &str, value: String) -> Result<String, CatalogError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(CatalogError::invalid(field, format!("{field} must not be empty")));
    }
    if v.chars().count() > MAX_TEXT_CHARS {
        return Err(CatalogError::invalid(field, format!("{field} must be at most {MAX_TEXT_CHARS} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(CatalogError::invalid(field, format!("{field} must not contain control characters")));
    }
    Ok(v.to_owned())
}

fn time(field: &str, value: &str) -> Result<i64, CatalogError> {
    parse_rfc3339_ms(value).ok_or_else(|| {
        CatalogError::invalid(field, format!("{field} must be an RFC 3339 time such as 2026-11-22T20:00:00Z"))
    })
}

fn ranged(field: &str, v: i64, lo: i64, hi: i64) -> Result<i32, CatalogError> {
    if v < lo || v > hi {
        return Err(CatalogError::invalid(field, format!("{field} must be between {lo} and {hi}, not {v}")));
    }
    i32::try_from(v).map_err(|_| CatalogError::invalid(field, format!("{field} is out of range")))
}

fn hold_seconds(v: i64, min_hold_seconds: i64) -> Result<i32, CatalogError> {
    ranged("hold_seconds", v, min_hold_seconds, MAX_HOLD_SECONDS)
}

fn per_user_limit(v: i64) -> Result<i32, CatalogError> {
    ranged("per_user_limit", v, 1, MAX_PER_USER_LIMIT)
}

fn check_window(t: &Terms) -> Result<(), CatalogError> {
    if t.sale_starts_at_ms >= t.starts_at_ms {
        return Err(CatalogError::invalid("sale_starts_at", "sale_starts_at must be before starts_at"));
    }
    Ok(())
}

/// Validates a whole seat layout: 1..=[`MAX_SECTIONS`] sections, each valid,
/// at most [`MAX_PLACES`] seats and places in all.
pub(crate) fn sections(inputs: Vec<SectionInput>) -> Result<Vec<SectionSpec>, CatalogError> {
    if inputs.is_empty() {
        return Err(CatalogError::invalid("sections", "sections must list at least one section"));
    }
    if inputs.len() > MAX_SECTIONS {
        return Err(CatalogError::invalid("sections", format!("an event has at most {MAX_SECTIONS} sections")));
    }
    let specs = inputs.into_iter().enumerate().map(|(i, s)| section(i, s)).collect::<Result<Vec<_>, _>>()?;
    let total: i64 = specs.iter().map(|s| s.layout.capacity()).sum();
    if total > MAX_PLACES {
        return Err(CatalogError::invalid(
            "sections",
            format!("an event has at most {MAX_PLACES} seats and places; these sections have {total}"),
        ));
    }
    Ok(specs)
}

fn section(i: usize, s: SectionInput) -> Result<SectionSpec, CatalogError> {
    let f = |name: &str| format!("sections[{i}].{name}");
    let name = text(&f("name"), s.name)?;
    if s.price_cents < 0 {
        return Err(CatalogError::invalid(f("price_cents"), format!("{} must be at least 0", f("price_cents"))));
    }
    if s.price_cents > MAX_PRICE_CENTS {
        return Err(CatalogError::invalid(
            f("price_cents"),
            format!("{} must be at most {MAX_PRICE_CENTS}", f("price_cents")),
        ));
    }
    let count = |field: &str, v: i64| ranged(&f(field), v, 1, MAX_PLACES);
    let layout = if s.general_admission {
        if s.rows.is_some() || s.seats_per_row.is_some() {
            let field = if s.rows.is_some() { f("rows") } else { f("seats_per_row") };
            return Err(CatalogError::invalid(
                field.clone(),
                format!("{field}: a general-admission section has a capacity, not rows and seats"),
            ));
        }
        let capacity = s.capacity.ok_or_else(|| {
            CatalogError::invalid(
                f("capacity"),
                format!("{} is required for a general-admission section", f("capacity")),
            )
        })?;
        Layout::General { capacity: count("capacity", capacity)? }
    } else {
        let required = |field: &str, v: Option<i64>| {
            v.ok_or_else(|| {
                CatalogError::invalid(
                    f(field),
                    format!("{} is required for a seated section (or set general_admission: true)", f(field)),
                )
            })
        };
        let rows = count("rows", required("rows", s.rows)?)?;
        let seats_per_row = count("seats_per_row", required("seats_per_row", s.seats_per_row)?)?;
        let layout = Layout::Seated { rows, seats_per_row };
        if let Some(c) = s.capacity
            && c != layout.capacity()
        {
            return Err(CatalogError::invalid(
                f("capacity"),
                format!("{} must equal rows × seats_per_row ({}) or be left out", f("capacity"), layout.capacity()),
            ));
        }
        layout
    };
    Ok(SectionSpec { name, price_cents: s.price_cents, layout })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(body: serde_json::Value) -> String {
        let e: NewEvent = serde_json::from_value(body).expect("parses");
        match e.validate(30) {
            Err(CatalogError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {:?}", other.map(|_| ())),
        }
    }

    fn base() -> serde_json::Value {
        json!({"name": " Gig ", "venue": "Hall", "starts_at": "2030-01-02T20:00:00Z",
               "sale_starts_at": "2030-01-01T10:00:00+01:00",
               "sections": [{"name": "A", "price_cents": 0, "rows": 2, "seats_per_row": 3}]})
    }

    #[test]
    fn defaults_and_trimming() {
        let e: NewEvent = serde_json::from_value(base()).expect("parses");
        let (t, s) = e.validate(30).expect("valid");
        assert_eq!((t.name.as_str(), t.hold_seconds, t.per_user_limit, t.waiting_room), ("Gig", 600, 4, false));
        assert!(!t.verified_email_required, "not required unless asked");
        assert_eq!(s[0].layout, Layout::Seated { rows: 2, seats_per_row: 3 });
        let e: NewEvent = serde_json::from_value(base()).expect("parses");
        assert_eq!(e.validate(900).expect("valid").0.hold_seconds, 900, "the default respects the minimum");
    }

    #[test]
    fn each_rule_names_its_field() {
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        let sec = |v: serde_json::Value| with("sections", json!([v]));
        assert_eq!(field(with("name", json!("  "))), "name");
        assert_eq!(field(with("venue", json!("x".repeat(201)))), "venue");
        assert_eq!(field(with("starts_at", json!("tomorrow"))), "starts_at");
        assert_eq!(field(with("sale_starts_at", json!("2030-01-02T20:00:00Z"))), "sale_starts_at");
        assert_eq!(field(with("hold_seconds", json!(29))), "hold_seconds");
        assert_eq!(field(with("per_user_limit", json!(51))), "per_user_limit");
        assert_eq!(field(with("sections", json!([]))), "sections");
        assert_eq!(
            field(sec(json!({"name": "A", "price_cents": -1, "rows": 1, "seats_per_row": 1}))),
            "sections[0].price_cents"
        );
        assert_eq!(
            field(sec(json!({"name": "A", "price_cents": 1, "rows": 0, "seats_per_row": 1}))),
            "sections[0].rows"
        );
        assert_eq!(field(sec(json!({"name": "A", "price_cents": 1, "rows": 1}))), "sections[0].seats_per_row");
        assert_eq!(
            field(sec(json!({"name": "A", "price_cents": 1, "rows": 2, "seats_per_row": 2, "capacity": 5}))),
            "sections[0].capacity"
        );
        assert_eq!(
            field(sec(json!({"name": "A", "price_cents": 1, "general_admission": true}))),
            "sections[0].capacity"
        );
        assert_eq!(
            field(sec(json!({"name": "A", "price_cents": 1, "general_admission": true, "capacity": 5, "rows": 1}))),
            "sections[0].rows"
        );
        assert_eq!(field(sec(json!({"name": "A", "price_cents": 1, "rows": 1000, "seats_per_row": 201}))), "sections");
    }

    #[test]
    fn patches_overlay_and_refuse_null() {
        let e: NewEvent = serde_json::from_value(base()).expect("parses");
        let (current, _) = e.validate(30).expect("valid");
        let p: EventPatch = serde_json::from_value(json!({"name": "New", "per_user_limit": 2})).expect("parses");
        let (t, s) = p.apply(&current, 30).expect("valid");
        assert_eq!((t.name.as_str(), t.per_user_limit, t.venue.as_str()), ("New", 2, "Hall"));
        assert!(s.is_none());
        assert!(serde_json::from_value::<EventPatch>(json!({"name": null})).is_err());
        assert!(serde_json::from_value::<EventPatch>(json!({"colour": "red"})).is_err());
        let p: EventPatch = serde_json::from_value(json!({"sale_starts_at": "2031-01-01T00:00:00Z"})).expect("parses");
        assert!(p.apply(&current, 30).is_err(), "the window is checked on the merged terms");
    }
}
