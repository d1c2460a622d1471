//! Handlers for `/api/auth/*`: sign-up, sign-in and sessions here; the
//! account e-mails and password changes in [`account`]; `/api/admin/*`
//! (roles, the audit log) in [`admin`].

mod account;
mod admin;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use stampede_common::Problem;
use stampede_common::http::{self, Resp, Routed};
use stampede_common::token::Role;

use crate::AuthService;
use crate::refresh::{self, Rotation};

pub(crate) async fn route(svc: &AuthService, req: Request<Incoming>) -> Routed {
    let Some((seg, n)) = http::segments::<6>(req.uri().path()) else { return http::not_found() };
    if n >= 3 && seg[0] == "api" && seg[1] == "admin" {
        return route_admin(svc, req).await;
    }
    if !(3..=4).contains(&n) || seg[0] != "api" || seg[1] != "auth" {
        return http::not_found();
    }
    let m = req.method().clone();
    if n == 4 {
        return match (seg[2], seg[3]) {
            ("verify-email", "request") if m == Method::POST => ("/api/auth/verify-email/request", account::request_verification(svc, req).await),
            ("password-reset", "request") if m == Method::POST => ("/api/auth/password-reset/request", account::request_reset(svc, req).await),
            ("verify-email" | "password-reset", "request") => ("/api/auth/*", Err(Problem::method_not_allowed("POST"))),
            _ => http::not_found(),
        };
    }
    match seg[2] {
        "signup" if m == Method::POST => ("/api/auth/signup", signup(svc, req).await),
        "signin" if m == Method::POST => ("/api/auth/signin", signin(svc, req).await),
        "refresh" if m == Method::POST => ("/api/auth/refresh", refresh(svc, req).await),
        "signout" if m == Method::POST => ("/api/auth/signout", signout(svc, req).await),
        "me" if m == Method::GET => ("/api/auth/me", me(svc, req).await),
        "verify-email" if m == Method::POST => ("/api/auth/verify-email", account::verify(svc, req).await),
        "password-reset" if m == Method::POST => ("/api/auth/password-reset", account::reset(svc, req).await),
        "password" if m == Method::POST => ("/api/auth/password", account::change_password(svc, req).await),
        "signup" | "signin" | "refresh" | "signout" | "verify-email" | "password-reset" | "password" => ("/api/auth/*", Err(Problem::method_not_allowed("POST"))),
        "me" => ("/api/auth/me", Err(Problem::method_not_allowed("GET"))),
        _ => http::not_found(),
    }
}

/// `/api/admin/*` (the caller has checked the first two segments).
async fn route_admin(svc: &AuthService, req: Request<Incoming>) -> Routed {
    let Some((seg, n)) = http::segments::<6>(req.uri().path()) else { return http::not_found() };
    let m = req.method().clone();
    match &seg[2..n] {
        ["audit"] if m == Method::GET => ("/api/admin/audit", admin::audit_log(svc, req).await),
        ["audit"] => ("/api/admin/audit", Err(Problem::method_not_allowed("GET"))),
        ["users", id, "role"] => {
            const ROUTE: &str = "/api/admin/users/{id}/role";
            let id = admin::user_id(id);
            match m {
                Method::PUT => (ROUTE, admin::set_role(svc, req, id).await),
                _ => (ROUTE, Err(Problem::method_not_allowed("PUT"))),
            }
        }
        _ => http::not_found(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Trimmed, lower-cased, and shaped like an address: `local@domain.tld`,
/// at most 254 characters, no spaces or control characters.
pub(crate) fn normalize_email(email: &str) -> Result<String, Problem> {
    let email = email.trim().to_lowercase();
    let bad = || Problem::bad_request("invalid_email", "email must look like name@example.com");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err(bad());
    }
    Ok(email)
}

/// At least 8 characters, at most 1024 (hashing cost is bounded).
pub(crate) fn check_password(password: &str) -> Result<(), Problem> {
    let n = password.chars().count();
    if n < 8 {
        return Err(Problem::bad_request("invalid_password", "password must be at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(Problem::bad_request("invalid_password", "password must be at most 1024 bytes"));
    }
    Ok(())
}

/// A user as the API shows it.
pub(crate) fn user_json(id: i64, email: &str, role: &str, email_verified: bool) -> serde_json::Value {
    json!({"id": id.to_string(), "email": email, "role": role, "email_verified": email_verified})
}

async fn session(svc: &AuthService, status: StatusCode, id: i64, email: &str, role: Role, verified: bool) -> Result<Resp, Problem> {
    let user_id = id.to_string();
    let (refresh_token, family) = refresh::issue(&svc.db, id, svc.refresh_ttl_seconds).await?;
    let access = svc.tokens.issue_for_session(&user_id, role, &family, verified)?;
    Ok(http::json(
        status,
        &json!({
            "user": user_json(id, email, role.as_str(), verified),
            "access_token": access,
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_in": svc.tokens.ttl_seconds(),
        }),
    ))
}

async fn signup(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: Credentials = http::read_json(req.into_body(), svc.max_body).await?;
    let email = normalize_email(&body.email)?;
    check_password(&body.password)?;
    let hash = svc.passwords.hash(&body.password).await.map_err(Problem::internal)?;
    let client = svc.db.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO users (email, password_hash) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING RETURNING id",
            &[&email, &hash],
        )
        .await?;
    drop(client);
    let Some(row) = row else {
        return Err(Problem::conflict("email_taken", "an account with this email already exists"));
    };
    metrics::counter!("auth_signups_total").increment(1);
    session(svc, StatusCode::CREATED, row.get(0), &email, Role::Customer, false).await
}

async fn signin(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: Credentials = http::read_json(req.into_body(), svc.max_body).await?;
    let invalid = || Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong email or password");
    if body.password.len() > 1024 {
        return Err(invalid());
    }
    let email = body.email.trim().to_lowercase();
    // Postgres refuses a NUL in text (a 500 if it got there); no such address exists.
    if email.len() > 254 || email.contains('\0') {
        return Err(invalid());
    }
    let client = svc.db.get().await?;
    let row = client
        .query_opt("SELECT id, password_hash, role, email_verified_at IS NOT NULL FROM users WHERE email = $1", &[&email])
        .await?;
    drop(client);
    let hash = row.as_ref().map(|r| r.get::<_, String>(1));
    if !svc.passwords.verify(&body.password, hash).await {
        metrics::counter!("auth_signins_total", "outcome" => "failed").increment(1);
        return Err(invalid());
    }
    let row = row.ok_or_else(invalid)?;
    let role = Role::parse(row.get(2)).unwrap_or(Role::Customer);
    metrics::counter!("auth_signins_total", "outcome" => "ok").increment(1);
    session(svc, StatusCode::OK, row.get(0), &email, role, row.get(3)).await
}

async fn refresh(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: RefreshBody = http::read_json(req.into_body(), svc.max_body).await?;
    if body.refresh_token.len() > 256 {
        return Err(Problem::unauthorized("invalid refresh token"));
    }
    match refresh::rotate(&svc.db, &body.refresh_token, svc.refresh_ttl_seconds).await? {
        Rotation::Invalid => Err(Problem::unauthorized("invalid refresh token")),
        Rotation::Reused => Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "token_reused",
            "this refresh token was already used; every session it belongs to is now signed out",
        )),
        Rotation::Rotated { user_id, token, family } => {
            let client = svc.db.get().await?;
            let row = client.query_opt("SELECT email, role, email_verified_at IS NOT NULL FROM users WHERE id = $1", &[&user_id]).await?;
            let Some(row) = row else { return Err(Problem::unauthorized("invalid refresh token")) };
            let role = Role::parse(row.get(1)).unwrap_or(Role::Customer);
            let id = user_id.to_string();
            let email: String = row.get(0);
            Ok(http::json(
                StatusCode::OK,
                &json!({
                    "user": user_json(user_id, &email, role.as_str(), row.get(2)),
                    "access_token": svc.tokens.issue_for_session(&id, role, &family, row.get(2))?,
                    "refresh_token": token,
                    "token_type": "Bearer",
                    "expires_in": svc.tokens.ttl_seconds(),
                }),
            ))
        }
    }
}

async fn signout(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: RefreshBody = http::read_json(req.into_body(), svc.max_body).await?;
    if body.refresh_token.len() <= 256 {
        refresh::revoke_family(&svc.db, &body.refresh_token).await?;
    }
    Ok(http::empty(StatusCode::NO_CONTENT))
}

async fn me(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let id: i64 = who.user_id.parse().map_err(|_| Problem::unauthorized("invalid access token"))?;
    let client = svc.db.get().await?;
    let row = client.query_opt("SELECT email, role, email_verified_at IS NOT NULL FROM users WHERE id = $1", &[&id]).await?;
    let Some(row) = row else { return Err(Problem::unauthorized("this account no longer exists")) };
    Ok(http::json(StatusCode::OK, &user_json(id, row.get(0), row.get(1), row.get(2))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_emails_and_passwords() {
        assert_eq!(normalize_email("  Ann@Example.COM ").expect("ok"), "ann@example.com");
        for bad in ["", "ann", "ann@", "@x.com", "ann@x", "a b@x.com", "a@x..com", "a@b@c.com"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }
}
