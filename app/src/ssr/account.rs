//! Reading accounts for the pages: who is signed in, their tokens, their
//! team. Writes (sign-up, log-in, token creation) belong to the server.

use super::catalog::rfc3339;
use crate::{
    domain::{Role, TokenKind},
    model::{InvitationInfo, Me, Member, TokenInfo},
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

pub async fn me(db: &PgPool, user_id: Uuid) -> Result<Option<Me>, sqlx::Error> {
    sqlx::query_as!(
        Me,
        r#"SELECT u.email, u.role AS "role: Role", t.name AS team
           FROM users u JOIN tenants t ON t.id = u.tenant_id
           WHERE u.id = $1"#,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// A user's tokens of one kind, newest first.
pub async fn tokens(
    db: &PgPool,
    user_id: Uuid,
    kind: TokenKind,
) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let rows = sqlx::query!(
        r#"SELECT id, name, kind AS "kind: TokenKind", created_at, expires_at,
                  last_used_at, revoked_at
           FROM api_tokens WHERE user_id = $1 AND kind = $2
           ORDER BY created_at DESC, id"#,
        user_id,
        kind as TokenKind,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TokenInfo {
            id: r.id,
            name: r.name,
            kind: r.kind,
            created_at: rfc3339(r.created_at),
            expired: r.expires_at.is_some_and(|t| t <= now),
            expires_at: r.expires_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
            revoked: r.revoked_at.is_some(),
        })
        .collect())
}

pub async fn members(db: &PgPool, tenant_id: Uuid) -> Result<Vec<Member>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT email, role AS "role: Role", created_at FROM users
           WHERE tenant_id = $1 ORDER BY created_at, email"#,
        tenant_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Member {
            email: r.email,
            role: r.role,
            created_at: rfc3339(r.created_at),
        })
        .collect())
}

pub async fn invitations(db: &PgPool, tenant_id: Uuid) -> Result<Vec<InvitationInfo>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT role AS "role: Role", created_at, expires_at, used_at FROM invitations
           WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 50"#,
        tenant_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| InvitationInfo {
            role: r.role,
            created_at: rfc3339(r.created_at),
            expires_at: rfc3339(r.expires_at),
            used: r.used_at.is_some(),
        })
        .collect())
}
