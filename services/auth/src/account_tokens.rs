//! Single-use account tokens (verify an e-mail address, reset a password):
//! 256-bit random secrets e-mailed to the user, stored only as SHA-256
//! hashes with their purpose, user, address, expiry and use. Spending one
//! is one `UPDATE … WHERE used_at IS NULL AND expires_at > now()
//! RETURNING`, so of two concurrent uses exactly one succeeds.

use sha2::{Digest, Sha256};
use stampede_common::Problem;
use stampede_common::ids::random_hex;
use tokio_postgres::GenericClient;

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
        }
    }
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The 400 every unknown, used, expired or malformed token gets.
pub fn invalid() -> Problem {
    Problem::bad_request("invalid_token", "this link is unknown, already used or expired")
}

/// A new token for `user_id` at `email`, unless `per_hour` of this purpose
/// were issued to the user in the last hour (then `None`). Runs in the
/// caller's transaction, which must hold the user's row (`FOR UPDATE`) so
/// concurrent requests count each other.
pub async fn issue(
    client: &impl GenericClient,
    purpose: Purpose,
    user_id: i64,
    email: &str,
    ttl_seconds: i64,
    per_hour: i64,
) -> Result<Option<String>, Problem> {
    let recent: i64 = client
        .query_one(
            "SELECT count(*) FROM account_tokens WHERE user_id = $1 AND purpose = $2 AND created_at > now() - interval '1 hour'",
            &[&user_id, &purpose.as_str()],
        )
        .await?
        .get(0);
    if recent >= per_hour {
        return Ok(None);
    }
    let token = random_hex(32);
    client
        .execute(
            "INSERT INTO account_tokens (token_hash, purpose, user_id, email, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
            &[&digest(&token), &purpose.as_str(), &user_id, &email, &(ttl_seconds as f64)],
        )
        .await?;
    Ok(Some(token))
}

/// Whether `token` is a live token of `purpose` (a cheap look before the
/// costly password hash; [`spend`] decides).
pub async fn is_live(client: &impl GenericClient, purpose: Purpose, token: &str) -> Result<bool, Problem> {
    if !well_formed(token) {
        return Ok(false);
    }
    let row = client
        .query_opt(
            "SELECT 1 FROM account_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
            &[&digest(&token.to_ascii_lowercase()), &purpose.as_str()],
        )
        .await?;
    Ok(row.is_some())
}

/// Tokens are 64 hex digits; anything else cannot match (and a NUL would
/// be refused by Postgres).
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Spends `token` if it is a live token of `purpose`: the user and the
/// address it was sent to. `None` when unknown, used or expired.
pub async fn spend(client: &impl GenericClient, purpose: Purpose, token: &str) -> Result<Option<(i64, String)>, Problem> {
    if !well_formed(token) {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "UPDATE account_tokens SET used_at = now()
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
             RETURNING user_id, email",
            &[&digest(&token.to_ascii_lowercase()), &purpose.as_str()],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Spends every live token of `purpose` the user still has (after a
/// reset: the other reset links die with it).
pub async fn spend_all(client: &impl GenericClient, purpose: Purpose, user_id: i64) -> Result<(), Problem> {
    client
        .execute(
            "UPDATE account_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
            &[&user_id, &purpose.as_str()],
        )
        .await?;
    Ok(())
}
