//! The audit log: one append-only row in `audit_log` (the catalog's
//! migration `0009_organisers_audit.sql`) for every write by an admin or an
//! organiser, inserted through the same transaction as the change it
//! records. The table refuses UPDATE and DELETE (a trigger), so nothing in
//! the API, or anywhere else, edits an entry.
//!
//! Readers page newest first with a keyset cursor on the entry's id.

use serde::Serialize;
use serde_json::Value;
use deadpool_postgres::GenericClient;

use crate::Problem;
use crate::clock::rfc3339_ms;

/// Entries per page of `GET /api/admin/audit` and `GET /api/events/{id}/audit`.
pub const PAGE: i64 = 50;

/// What one entry records. `target` names what changed (`event:42`,
/// `user:7`); `event` is set when it concerns an event, so an organiser can
/// read its events' trail.
pub struct Entry<'a> {
    /// Who acted; `None` for the command line (`stampede admin set-role`).
    pub actor: Option<i64>,
    pub action: &'a str,
    pub target: &'a str,
    pub event: Option<i64>,
    /// Before/after where the change has them.
    pub details: Value,
}

/// Appends `entry` through `c` (a transaction, so it commits with the change).
pub async fn record(c: &impl GenericClient, entry: &Entry<'_>) -> Result<(), tokio_postgres::Error> {
    let details = entry.details.to_string();
    let stmt = c
        .prepare_cached(
            "INSERT INTO audit_log (actor_id, action, target, event_id, details) VALUES ($1, $2, $3, $4, $5::text::jsonb)",
        )
        .await?;
    c.execute(&stmt, &[&entry.actor, &entry.action, &entry.target, &entry.event, &details]).await?;
    Ok(())
}

/// One entry as the API shows it.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub id: String,
    pub at: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: String,
    pub details: Value,
}

/// A page of entries, newest first, and the cursor of the next page.
#[derive(Debug, Serialize)]
pub struct Page {
    pub entries: Vec<Shown>,
    pub next_cursor: Option<String>,
}

/// The cursor a client sent (`?cursor=`): `None` for the first page; a
/// 400 `invalid_cursor` for anything this API did not hand out.
pub fn cursor(query: Option<&str>) -> Result<Option<i64>, Problem> {
    match crate::http::query_param(query, "cursor") {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0 && !v.starts_with('0') && !v.starts_with('+'))
            .map(Some)
            .ok_or_else(|| Problem::bad_request("invalid_cursor", "cursor must be a next_cursor value this API returned")),
    }
}

/// Up to [`PAGE`] entries older than `before` (all of them, or those of
/// `event` only), newest first.
pub async fn page(c: &impl GenericClient, event: Option<i64>, before: Option<i64>) -> Result<Page, tokio_postgres::Error> {
    let stmt = c
        .prepare_cached(
            "SELECT id, (extract(epoch FROM at) * 1000)::int8, actor_id, action, target, details::text
             FROM audit_log
             WHERE ($1::int8 IS NULL OR event_id = $1) AND ($2::int8 IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .await?;
    let rows = c.query(&stmt, &[&event, &before, &(PAGE + 1)]).await?;
    let more = rows.len() as i64 > PAGE;
    let mut entries = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows.iter().take(PAGE as usize) {
        let id: i64 = row.try_get(0)?;
        let details: String = row.try_get(5)?;
        last = Some(id);
        entries.push(Shown {
            id: id.to_string(),
            at: rfc3339_ms(row.try_get(1)?),
            actor_id: row.try_get::<_, Option<i64>>(2)?.map(|a| a.to_string()),
            action: row.try_get(3)?,
            target: row.try_get(4)?,
            details: serde_json::from_str(&details).unwrap_or(Value::Null),
        });
    }
    Ok(Page { entries, next_cursor: if more { last.map(|id| id.to_string()) } else { None } })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cursors_are_positive_ids_or_refused() {
        assert_eq!(super::cursor(None).ok(), Some(None));
        assert_eq!(super::cursor(Some("cursor=")).ok(), Some(None));
        assert_eq!(super::cursor(Some("cursor=42")).ok(), Some(Some(42)));
        for bad in ["cursor=0", "cursor=-1", "cursor=abc", "cursor=042", "cursor=%2B1", "cursor=99999999999999999999"] {
            assert!(super::cursor(Some(bad)).is_err(), "{bad}");
        }
    }
}
