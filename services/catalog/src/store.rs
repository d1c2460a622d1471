//! Postgres: events and their sections (migration `0002_catalog.sql`).
//! Seats are never rows; a seated section stores `rows` and
//! `seats_per_row` and every seat is derived from them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::{Error, Row};

use crate::cursor::Cursor;
use crate::model::{Layout, SectionSpec, Terms};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Draft,
    Published,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Section {
    pub id: i64,
    pub spec: SectionSpec,
}

/// An event as Postgres has it: the part of a response that may be cached.
#[derive(Clone, Debug)]
pub(crate) struct EventDoc {
    pub id: i64,
    pub status: Status,
    pub version: i32,
    /// Microseconds since the epoch; `None` for drafts.
    pub published_us: Option<i64>,
    pub terms: Terms,
    pub sections: Vec<Section>,
    /// The user that created it (an organiser, or an admin); `None` for
    /// events created before owners were recorded.
    pub owner: Option<i64>,
}

impl EventDoc {
    pub(crate) fn is_published(&self) -> bool {
        self.status == Status::Published
    }

    pub(crate) fn section(&self, id: i64) -> Option<&Section> {
        self.sections.iter().find(|s| s.id == id)
    }

    pub(crate) fn specs(&self) -> Vec<SectionSpec> {
        self.sections.iter().map(|s| s.spec.clone()).collect()
    }

    pub(crate) fn places(&self) -> i64 {
        self.sections.iter().map(|s| s.spec.layout.capacity()).sum()
    }

    fn cursor(&self) -> Option<Cursor> {
        Some(Cursor { published_us: self.published_us?, id: self.id })
    }
}

/// One page of published events, newest first, and where the next starts.
#[derive(Debug)]
pub(crate) struct Page {
    pub events: Vec<Arc<EventDoc>>,
    pub next: Option<Cursor>,
}

const EVENT_COLUMNS: &str = "id, name, venue, starts_at, sale_starts_at, hold_seconds, per_user_limit, waiting_room, status, version, published_at,
                             verified_email_required, owner_id";
const SECTION_COLUMNS: &str = "event_id, id, name, price_cents, general_admission, rows, seats_per_row, capacity";

/// The event `id` with its sections, or `None`. `lock` takes the row lock
/// (`FOR UPDATE`) a change holds until its transaction ends.
pub(crate) async fn load(c: &impl GenericClient, id: i64, lock: bool) -> Result<Option<EventDoc>, Error> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let stmt = c.prepare_cached(&sql).await?;
    let Some(row) = c.query_opt(&stmt, &[&id]).await? else { return Ok(None) };
    let mut doc = event_row(&row)?;
    let stmt = c
        .prepare_cached(&format!("SELECT {SECTION_COLUMNS} FROM sections WHERE event_id = $1 ORDER BY position"))
        .await?;
    for row in c.query(&stmt, &[&id]).await? {
        doc.sections.push(section_row(&row)?.1);
    }
    Ok(Some(doc))
}

/// Published events after `after` (newest first), at most `limit`.
pub(crate) async fn page(c: &impl GenericClient, after: Option<Cursor>, limit: i64) -> Result<Page, Error> {
    let fetch = limit + 1;
    let rows = match after {
        None => {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE status = 'published'
                 ORDER BY published_at DESC, id DESC LIMIT $1"
            );
            c.query(&c.prepare_cached(&sql).await?, &[&fetch]).await?
        }
        Some(cur) => {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE status = 'published' AND (published_at, id) < ($1, $2)
                 ORDER BY published_at DESC, id DESC LIMIT $3"
            );
            c.query(&c.prepare_cached(&sql).await?, &[&from_us(cur.published_us), &cur.id, &fetch]).await?
        }
    };
    let mut docs = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>()?;
    let more = docs.len() as i64 > limit;
    docs.truncate(limit.max(0) as usize);
    with_sections(c, &mut docs).await?;
    let next = if more { docs.last().and_then(EventDoc::cursor) } else { None };
    Ok(Page { events: docs.into_iter().map(Arc::new).collect(), next })
}

/// Events of `owner` (every event when `None`), drafts included, after
/// `after` in newest-created-first order (by id; the cursor's time is not
/// used), at most `limit`.
pub(crate) async fn managed_page(
    c: &impl GenericClient,
    owner: Option<i64>,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Page, Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE ($1::bigint IS NULL OR owner_id = $1) AND id < $2
         ORDER BY id DESC LIMIT $3"
    );
    let before = after.map_or(i64::MAX, |cur| cur.id);
    let rows = c.query(&c.prepare_cached(&sql).await?, &[&owner, &before, &(limit + 1)]).await?;
    let mut docs = rows.iter().map(event_row).collect::<Result<Vec<_>, _>>()?;
    let more = docs.len() as i64 > limit;
    docs.truncate(limit.max(0) as usize);
    with_sections(c, &mut docs).await?;
    let next = if more { docs.last().map(|d| Cursor { published_us: 0, id: d.id }) } else { None };
    Ok(Page { events: docs.into_iter().map(Arc::new).collect(), next })
}

/// Fills in the sections of `docs`, in their order, with one query.
async fn with_sections(c: &impl GenericClient, docs: &mut [EventDoc]) -> Result<(), Error> {
    if docs.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = docs.iter().map(|d| d.id).collect();
    let sql = format!("SELECT {SECTION_COLUMNS} FROM sections WHERE event_id = ANY($1) ORDER BY event_id, position");
    for row in c.query(&c.prepare_cached(&sql).await?, &[&ids]).await? {
        let (event, section) = section_row(&row)?;
        if let Some(doc) = docs.iter_mut().find(|d| d.id == event) {
            doc.sections.push(section);
        }
    }
    Ok(())
}

/// Inserts a draft owned by `owner` with its sections; returns its id.
pub(crate) async fn insert(tx: &Transaction<'_>, t: &Terms, sections: &[SectionSpec], owner: i64) -> Result<i64, Error> {
    let row = tx
        .query_one(
            "INSERT INTO events (name, venue, starts_at, sale_starts_at, hold_seconds, per_user_limit, waiting_room,
                                 verified_email_required, owner_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &t.name,
                &t.venue,
                &from_ms(t.starts_at_ms),
                &from_ms(t.sale_starts_at_ms),
                &t.hold_seconds,
                &t.per_user_limit,
                &t.waiting_room,
                &t.verified_email_required,
                &owner,
            ],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    insert_sections(tx, id, sections).await?;
    Ok(id)
}

/// Writes `t` over the event if it is still at `version`; returns the new
/// version, or `None` if the version was stale (nothing changed).
pub(crate) async fn update(tx: &Transaction<'_>, id: i64, version: i32, t: &Terms) -> Result<Option<i32>, Error> {
    let row = tx
        .query_opt(
            "UPDATE events SET name = $3, venue = $4, starts_at = $5, sale_starts_at = $6, hold_seconds = $7,
                    per_user_limit = $8, waiting_room = $9, verified_email_required = $10, version = version + 1
             WHERE id = $1 AND version = $2 RETURNING version",
            &[
                &id,
                &version,
                &t.name,
                &t.venue,
                &from_ms(t.starts_at_ms),
                &from_ms(t.sale_starts_at_ms),
                &t.hold_seconds,
                &t.per_user_limit,
                &t.waiting_room,
                &t.verified_email_required,
            ],
        )
        .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Replaces a draft's sections (they get new ids: nothing refers to a
/// draft's sections yet).
pub(crate) async fn replace_sections(tx: &Transaction<'_>, id: i64, sections: &[SectionSpec]) -> Result<(), Error> {
    tx.execute("DELETE FROM sections WHERE event_id = $1", &[&id]).await?;
    insert_sections(tx, id, sections).await
}

/// Marks a draft published; returns its new version and `published_at`
/// (microseconds), or `None` if it was not a draft.
pub(crate) async fn mark_published(tx: &Transaction<'_>, id: i64) -> Result<Option<(i32, i64)>, Error> {
    let row = tx
        .query_opt(
            "UPDATE events SET status = 'published', published_at = now(), version = version + 1
             WHERE id = $1 AND status = 'draft' RETURNING version, published_at",
            &[&id],
        )
        .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((r.try_get(0)?, us(r.try_get(1)?)))),
    }
}

async fn insert_sections(tx: &Transaction<'_>, event: i64, sections: &[SectionSpec]) -> Result<(), Error> {
    let mut positions = Vec::with_capacity(sections.len());
    let mut names = Vec::with_capacity(sections.len());
    let mut prices = Vec::with_capacity(sections.len());
    let mut general = Vec::with_capacity(sections.len());
    let mut rows = Vec::with_capacity(sections.len());
    let mut seats_per_row = Vec::with_capacity(sections.len());
    let mut capacities = Vec::with_capacity(sections.len());
    for (i, s) in sections.iter().enumerate() {
        positions.push(i as i32);
        names.push(s.name.as_str());
        prices.push(s.price_cents);
        let (ga, r, n, cap) = match s.layout {
            Layout::Seated { rows, seats_per_row } => (false, Some(rows), Some(seats_per_row), rows * seats_per_row),
            Layout::General { capacity } => (true, None, None, capacity),
        };
        general.push(ga);
        rows.push(r);
        seats_per_row.push(n);
        capacities.push(cap);
    }
    tx.execute(
        "INSERT INTO sections (event_id, position, name, price_cents, general_admission, rows, seats_per_row, capacity)
         SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::int8[], $5::bool[], $6::int4[], $7::int4[], $8::int4[])",
        &[&event, &positions, &names, &prices, &general, &rows, &seats_per_row, &capacities],
    )
    .await?;
    Ok(())
}

fn event_row(row: &Row) -> Result<EventDoc, Error> {
    let status: &str = row.try_get(8)?;
    Ok(EventDoc {
        id: row.try_get(0)?,
        terms: Terms {
            name: row.try_get(1)?,
            venue: row.try_get(2)?,
            starts_at_ms: ms(row.try_get(3)?),
            sale_starts_at_ms: ms(row.try_get(4)?),
            hold_seconds: row.try_get(5)?,
            per_user_limit: row.try_get(6)?,
            waiting_room: row.try_get(7)?,
            verified_email_required: row.try_get(11)?,
        },
        status: if status == "published" { Status::Published } else { Status::Draft },
        version: row.try_get(9)?,
        published_us: row.try_get::<_, Option<SystemTime>>(10)?.map(us),
        sections: Vec::new(),
        owner: row.try_get(12)?,
    })
}

fn section_row(row: &Row) -> Result<(i64, Section), Error> {
    let general: bool = row.try_get(4)?;
    let rows: Option<i32> = row.try_get(5)?;
    let seats_per_row: Option<i32> = row.try_get(6)?;
    let capacity: i32 = row.try_get(7)?;
    let layout = match (general, rows, seats_per_row) {
        (false, Some(rows), Some(seats_per_row)) => Layout::Seated { rows, seats_per_row },
        _ => Layout::General { capacity },
    };
    let spec = SectionSpec { name: row.try_get(2)?, price_cents: row.try_get(3)?, layout };
    Ok((row.try_get(0)?, Section { id: row.try_get(1)?, spec }))
}

fn from_ms(ms: i64) -> SystemTime {
    shift(Duration::from_millis(ms.unsigned_abs()), ms < 0)
}

fn from_us(us: i64) -> SystemTime {
    shift(Duration::from_micros(us.unsigned_abs()), us < 0)
}

fn shift(d: Duration, before: bool) -> SystemTime {
    let t = if before { UNIX_EPOCH.checked_sub(d) } else { UNIX_EPOCH.checked_add(d) };
    t.unwrap_or(UNIX_EPOCH)
}

fn ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for v in [0, 1, -1, 1_795_000_000_250, -62_135_596_800_000] {
            assert_eq!(ms(from_ms(v)), v);
            assert_eq!(us(from_us(v)), v);
        }
    }
}
