//! `/api/admin/*`, for admins only (403 for every other role):
//! `PUT /api/admin/users/{id}/role` changes a user's role, and
//! `GET /api/admin/audit` reads the whole audit log, newest first.
//!
//! A role change takes effect on the user's next access token: tokens
//! already issued keep their role until they expire (the access-token
//! lifetime, `STAMPEDE_ACCESS_TOKEN_SECONDS`), and a refresh reads the role
//! afresh from Postgres. Refresh-token families are deliberately left
//! alone: revoking them would not shorten that window (access tokens are
//! verified offline and cannot be recalled) and would only sign the user
//! out everywhere.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use stampede_common::Problem;
use stampede_common::audit::{self, Entry};
use stampede_common::http::{self, Resp};
use stampede_common::token::Role;

use super::user_json;
use crate::AuthService;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

/// The caller's user id, once it is known to be an admin.
fn admin(svc: &AuthService, req: &Request<Incoming>) -> Result<i64, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    who.require_admin()?;
    who.user_id.parse().map_err(|_| Problem::unauthorized("invalid access token"))
}

/// A path's user id: a positive integer in canonical form, or `None`
/// (which names no user: a 404, once the caller is known to be an admin).
pub(super) fn user_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `PUT /api/admin/users/{id}/role {role}`: 200 the user; 404 no such
/// user; 400 `invalid_role`. The change and its audit entry (before and
/// after) commit together.
pub(super) async fn set_role(svc: &AuthService, req: Request<Incoming>, id: Option<i64>) -> Result<Resp, Problem> {
    let actor = admin(svc, &req)?;
    let body: RoleBody = http::read_json(req.into_body(), svc.max_body).await?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        Problem::bad_request("invalid_role", "role must be one of customer, organiser, gate, admin")
    })?;
    let missing = || Problem::not_found("no such user");
    let id = id.ok_or_else(missing)?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let row = tx.query_opt("SELECT role FROM users WHERE id = $1 FOR UPDATE", &[&id]).await?.ok_or_else(missing)?;
    let before: String = row.get(0);
    let row = tx
        .query_one(
            "UPDATE users SET role = $2 WHERE id = $1 RETURNING email, role, email_verified_at IS NOT NULL",
            &[&id, &role.as_str()],
        )
        .await?;
    let target = format!("user:{id}");
    let details = json!({ "before": { "role": before }, "after": { "role": role.as_str() } });
    audit::record(&tx, &Entry { actor: Some(actor), action: "user.role", target: &target, event: None, details }).await?;
    tx.commit().await?;
    tracing::info!(user = id, by = actor, from = %before, to = role.as_str(), "role changed");
    Ok(http::json(StatusCode::OK, &user_json(id, row.get(0), row.get(1), row.get(2))))
}

/// `GET /api/admin/audit?cursor=`: every entry, newest first, 50 a page.
pub(super) async fn audit_log(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    admin(svc, &req)?;
    let before = audit::cursor(req.uri().query())?;
    let client = svc.db.get().await?;
    let page = audit::page(&client, None, before).await?;
    Ok(http::json(StatusCode::OK, &page))
}
