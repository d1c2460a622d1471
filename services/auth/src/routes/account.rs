//! `/api/auth/verify-email[/request]`, `/api/auth/password-reset[/request]`
//! and `/api/auth/password`: the account e-mails and password changes.
//!
//! Requests for an e-mail answer 202 at once and deliver in the background
//! (`Mailer::send_in_background`), so a reset request takes as long for an
//! unknown address as for a known one and says nothing about which it was.
//! Past `account_emails_per_hour` tokens of a purpose for one user in the
//! last hour, a request still answers 202 and sends nothing: a 429 only for
//! existing accounts would tell them apart.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use stampede_common::Problem;
use stampede_common::http::{self, Resp};

use super::{check_password, user_json};
use crate::AuthService;
use crate::account_tokens::{self, Purpose};
use crate::{emails, refresh};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    current_password: String,
    new_password: String,
}

fn caller_id(svc: &AuthService, req: &Request<Incoming>) -> Result<(i64, Option<String>), Problem> {
    let who = svc.tokens.authenticate(req.headers())?;
    let id = who.user_id.parse().map_err(|_| Problem::unauthorized("invalid access token"))?;
    Ok((id, who.session))
}

/// POST /api/auth/verify-email/request (signed in): 202, and an e-mail with
/// a verify token unless the address is verified already or the hour's
/// allowance is spent.
pub(crate) async fn request_verification(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let (id, _) = caller_id(svc, &req)?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let row = tx.query_opt("SELECT email, email_verified_at IS NOT NULL FROM users WHERE id = $1 FOR UPDATE", &[&id]).await?;
    let Some(row) = row else { return Err(Problem::unauthorized("this account no longer exists")) };
    let (email, verified): (String, bool) = (row.get(0), row.get(1));
    let token = match verified {
        true => None,
        false => account_tokens::issue(&*tx, Purpose::VerifyEmail, id, &email, svc.account.verify_token_seconds, svc.account.emails_per_hour).await?,
    };
    tx.commit().await?;
    if let Some(token) = token {
        let mail = emails::verify_email(&email, &svc.account.public_url, &token, svc.account.verify_token_seconds);
        svc.mailer.send_in_background(mail.id.clone(), mail);
    }
    Ok(http::empty(StatusCode::ACCEPTED))
}

/// POST /api/auth/verify-email {token}: 200 the user, now verified.
pub(crate) async fn verify(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: TokenBody = http::read_json(req.into_body(), svc.max_body).await?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let Some((user_id, email)) = account_tokens::spend(&*tx, Purpose::VerifyEmail, &body.token).await? else {
        return Err(account_tokens::invalid());
    };
    // Verifies the address the token was sent to, only while it is still
    // the account's.
    let row = tx
        .query_opt(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1 AND email = $2 RETURNING role",
            &[&user_id, &email],
        )
        .await?;
    let Some(row) = row else { return Err(account_tokens::invalid()) };
    tx.commit().await?;
    metrics::counter!("auth_account_events_total", "event" => "email_verified").increment(1);
    Ok(http::json(StatusCode::OK, &user_json(user_id, &email, row.get(0), true)))
}

/// POST /api/auth/password-reset/request {email} (anyone): 202 always; an
/// e-mail with a reset token only to an existing account within its
/// allowance.
pub(crate) async fn request_reset(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: ResetRequest = http::read_json(req.into_body(), svc.max_body).await?;
    // A malformed address is a 400, as at sign-up: that says something of
    // the text sent, nothing of which accounts exist.
    let email = super::normalize_email(&body.email)?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let row = tx.query_opt("SELECT id FROM users WHERE email = $1 FOR UPDATE", &[&email]).await?;
    let token = match row {
        None => None,
        Some(row) => {
            let id: i64 = row.get(0);
            account_tokens::issue(&*tx, Purpose::PasswordReset, id, &email, svc.account.reset_token_seconds, svc.account.emails_per_hour).await?
        }
    };
    tx.commit().await?;
    if let Some(token) = token {
        let mail = emails::password_reset(&email, &svc.account.public_url, &token, svc.account.reset_token_seconds);
        svc.mailer.send_in_background(mail.id.clone(), mail);
    }
    Ok(http::empty(StatusCode::ACCEPTED))
}

/// POST /api/auth/password-reset {token, new_password}: 204; the password
/// is replaced, every refresh-token family of the user revoked, the user's
/// other reset links spent, and the address counts as verified (the token
/// reached it).
pub(crate) async fn reset(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let body: ResetBody = http::read_json(req.into_body(), svc.max_body).await?;
    check_password(&body.new_password)?;
    // No password hashing for a token that cannot work; hashed before the
    // transaction, which then spends the token (argon2 is slow).
    if !account_tokens::is_live(&**svc.db.get().await?, Purpose::PasswordReset, &body.token).await? {
        return Err(account_tokens::invalid());
    }
    let hash = svc.passwords.hash(&body.new_password).await.map_err(Problem::internal)?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    let Some((user_id, email)) = account_tokens::spend(&*tx, Purpose::PasswordReset, &body.token).await? else {
        return Err(account_tokens::invalid());
    };
    let changed = tx
        .execute(
            "UPDATE users SET password_hash = $3, email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1 AND email = $2",
            &[&user_id, &email, &hash],
        )
        .await?;
    if changed == 0 {
        return Err(account_tokens::invalid());
    }
    account_tokens::spend_all(&*tx, Purpose::PasswordReset, user_id).await?;
    let revoked = refresh::revoke_user(&*tx, user_id, None).await?;
    tx.commit().await?;
    metrics::counter!("auth_account_events_total", "event" => "password_reset").increment(1);
    tracing::info!(user_id, families_revoked = revoked, "password reset");
    Ok(http::empty(StatusCode::NO_CONTENT))
}

/// POST /api/auth/password {current_password, new_password} (signed in):
/// 204; every other session's refresh tokens are revoked (the caller's own
/// sign-in, named in its access token, is kept).
pub(crate) async fn change_password(svc: &AuthService, req: Request<Incoming>) -> Result<Resp, Problem> {
    let (id, session) = caller_id(svc, &req)?;
    let body: ChangeBody = http::read_json(req.into_body(), svc.max_body).await?;
    let wrong = || Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "the current password is wrong");
    if body.current_password.len() > 1024 {
        return Err(wrong());
    }
    check_password(&body.new_password)?;
    let client = svc.db.get().await?;
    let row = client.query_opt("SELECT password_hash FROM users WHERE id = $1", &[&id]).await?;
    drop(client);
    let Some(row) = row else { return Err(Problem::unauthorized("this account no longer exists")) };
    let old_hash: String = row.get(0);
    if !svc.passwords.verify(&body.current_password, Some(old_hash.clone())).await {
        return Err(wrong());
    }
    let hash = svc.passwords.hash(&body.new_password).await.map_err(Problem::internal)?;
    let mut client = svc.db.get().await?;
    let tx = client.transaction().await?;
    // Only over the hash just verified: a concurrent change wins once.
    let changed = tx.execute("UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3", &[&id, &hash, &old_hash]).await?;
    if changed == 0 {
        return Err(wrong());
    }
    let revoked = refresh::revoke_user(&*tx, id, session.as_deref()).await?;
    tx.commit().await?;
    metrics::counter!("auth_account_events_total", "event" => "password_changed").increment(1);
    tracing::info!(user_id = id, families_revoked = revoked, "password changed");
    Ok(http::empty(StatusCode::NO_CONTENT))
}
