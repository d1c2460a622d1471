//! Refresh tokens in Postgres: issue, rotate (with reuse detection), revoke.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use stampede_common::Problem;
use stampede_common::ids::random_hex;

/// The outcome of presenting a refresh token.
pub enum Rotation {
    /// A fresh token of the same family; the presented one is now spent.
    Rotated { user_id: i64, token: String, family: String },
    /// Unknown, expired or revoked.
    Invalid,
    /// Already spent: the family has now been revoked.
    Reused,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token opening or continuing `family`.
async fn insert(client: &impl tokio_postgres::GenericClient, user_id: i64, family: &str, ttl: i64) -> Result<String, Problem> {
    let token = random_hex(32);
    client
        .execute(
            "INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &[&digest(&token), &family, &user_id, &(ttl as f64)],
        )
        .await?;
    Ok(token)
}

/// Starts a new family for a fresh sign-in: its first token and the family.
pub async fn issue(db: &Pool, user_id: i64, ttl: i64) -> Result<(String, String), Problem> {
    let client = db.get().await?;
    let family = random_hex(16);
    let token = insert(&**client, user_id, &family, ttl).await?;
    Ok((token, family))
}

/// Spends `token` and returns its successor, atomically: two concurrent
/// rotations of one token see one success and one reuse.
pub async fn rotate(db: &Pool, token: &str, ttl: i64) -> Result<Rotation, Problem> {
    let mut client = db.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT family, user_id, spent_at IS NOT NULL, revoked_at IS NOT NULL, expires_at < now()
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&digest(token)],
        )
        .await?;
    let Some(row) = row else { return Ok(Rotation::Invalid) };
    let (family, user_id): (String, i64) = (row.get(0), row.get(1));
    let (spent, revoked, expired): (bool, bool, bool) = (row.get(2), row.get(3), row.get(4));
    if revoked || expired {
        return Ok(Rotation::Invalid);
    }
    if spent {
        tx.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
            &[&family],
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(user_id, family = %family, "refresh token reused; family revoked");
        return Ok(Rotation::Reused);
    }
    tx.execute("UPDATE refresh_tokens SET spent_at = now() WHERE token_hash = $1", &[&digest(token)]).await?;
    let next = insert(&*tx, user_id, &family, ttl).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { user_id, token: next, family })
}

/// Revokes every family of `user_id` but `keep` (a password reset keeps
/// none; a password change keeps the session that made it).
pub async fn revoke_user(client: &impl tokio_postgres::GenericClient, user_id: i64, keep: Option<&str>) -> Result<u64, Problem> {
    Ok(client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE user_id = $1 AND revoked_at IS NULL AND family IS DISTINCT FROM $2",
            &[&user_id, &keep],
        )
        .await?)
}

/// Revokes the family `token` belongs to (sign-out). Unknown tokens are a no-op.
pub async fn revoke_family(db: &Pool, token: &str) -> Result<(), Problem> {
    let client = db.get().await?;
    client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL",
            &[&digest(token)],
        )
        .await?;
    Ok(())
}
