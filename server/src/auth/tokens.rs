//! Personal access tokens (`st_pat_…`, for the app's API) and assistant
//! tokens (`st_mcp_…`, for the MCP server, bound to the tenant). The secret
//! is shown once; only its SHA-256 digest is stored. A token stops working
//! when it is revoked, expires, or its user is deleted.

use super::secrets::{digest, random_secret};
use app::{
    domain::{Role, TokenKind},
    ssr::auth::{Credential, Principal},
};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Longest lifetime a token may be given, in days (0 = never expires).
pub const MAX_EXPIRY_DAYS: u32 = 366;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("give the token a name of 1 to 100 characters")]
    Name,
    #[error("the expiry must be 0 (never) to {MAX_EXPIRY_DAYS} days")]
    Expiry,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates a token for the principal's user; returns the secret (shown once).
pub async fn create(
    db: &PgPool,
    owner: &Principal,
    kind: TokenKind,
    name: &str,
    expires_in_days: u32,
) -> Result<String, TokenError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(TokenError::Name);
    }
    if expires_in_days > MAX_EXPIRY_DAYS {
        return Err(TokenError::Expiry);
    }
    let expires_at = (expires_in_days > 0)
        .then(|| OffsetDateTime::now_utc() + Duration::days(i64::from(expires_in_days)));
    let secret = random_secret(kind.prefix());
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO api_tokens (id, tenant_id, user_id, kind, name, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        owner.tenant_id,
        owner.user_id,
        kind as TokenKind,
        name,
        digest(&secret),
        expires_at,
    )
    .execute(db)
    .await?;
    tracing::info!(token = %id, user = %owner.user_id, kind = kind.as_str(), "token created");
    Ok(secret)
}

/// Revokes one of the user's own tokens; false when there is no such token.
pub async fn revoke(
    db: &PgPool,
    user_id: Uuid,
    kind: TokenKind,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND user_id = $2 AND kind = $3",
        id,
        user_id,
        kind as TokenKind,
    )
    .execute(db)
    .await?;
    if done.rows_affected() > 0 {
        tracing::info!(token = %id, user = %user_id, "token revoked");
    }
    Ok(done.rows_affected() > 0)
}

/// The principal a live token of `kind` stands for. Records when it was
/// last used (at most once a minute, so a busy script does not write on
/// every request).
pub async fn resolve(
    db: &PgPool,
    secret: &str,
    kind: TokenKind,
) -> Result<Option<Principal>, sqlx::Error> {
    if !secret.starts_with(kind.prefix()) || secret.len() > 200 {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"SELECT t.id, t.last_used_at, u.id AS user_id, u.tenant_id, u.email,
                  u.role AS "role: Role"
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           WHERE t.token_hash = $1 AND t.kind = $2 AND t.revoked_at IS NULL
             AND (t.expires_at IS NULL OR t.expires_at > now())"#,
        digest(secret),
        kind as TokenKind,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stale = row
        .last_used_at
        .is_none_or(|t| OffsetDateTime::now_utc() - t > Duration::minutes(1));
    if stale {
        sqlx::query!(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
            row.id
        )
        .execute(db)
        .await?;
    }
    Ok(Some(Principal {
        user_id: row.user_id,
        tenant_id: row.tenant_id,
        email: row.email,
        role: row.role,
        via: Credential::Token(row.id),
    }))
}
