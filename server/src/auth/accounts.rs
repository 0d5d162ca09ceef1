//! Users, teams (tenants) and invitations.
//!
//! A user belongs to exactly one tenant. The first admin joins the tenant
//! that exists from the first start (so data uploaded before accounts stays
//! with them); people invited by link join the inviter's tenant; and, when
//! `SIGNUP_OPEN=true`, anyone may sign up and gets a new tenant of their own.

use super::secrets::{self, digest, random_secret};
use app::{
    domain::{Email, Role, MIN_PASSWORD_CHARS},
    ssr::auth::{Credential, Principal},
};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long an invitation link works.
pub const INVITATION_TTL: Duration = Duration::days(7);
/// How long the one-time first-admin link printed at start-up works.
pub const FIRST_ADMIN_TTL: Duration = Duration::hours(24);
/// Longest password accepted (argon2 would take more, but nobody needs it).
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("{0}")]
    Email(&'static str),
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    PasswordTooShort,
    #[error("the password must be at most {MAX_PASSWORD_CHARS} characters long")]
    PasswordTooLong,
    #[error("an account with that e-mail address exists already; log in instead")]
    EmailTaken,
    #[error("this invitation link is not valid: it was used already, has expired, or is mistyped")]
    BadInvitation,
    #[error("sign-up is by invitation only: ask your team's admin for a link")]
    Closed,
    #[error("the team name must be 1 to 200 characters")]
    TeamName,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for SignupError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.constraint() == Some("users_email_idx") {
                return Self::EmailTaken;
            }
        }
        Self::Internal(e.into())
    }
}

/// What a sign-up form sent.
pub struct Signup<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// The invitation code from the link, if any.
    pub invite: Option<&'a str>,
    /// The new team's name (open sign-up without an invitation).
    pub team: Option<&'a str>,
}

fn check_password(password: &str) -> Result<(), SignupError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(SignupError::PasswordTooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(SignupError::PasswordTooLong);
    }
    Ok(())
}

/// Creates the user; returns their id. With an invitation, the user joins
/// its tenant with its role (the invitation is used up in the same
/// transaction); without one, only when `open`, in a new tenant as its admin.
pub async fn sign_up(db: &PgPool, form: Signup<'_>, open: bool) -> Result<Uuid, SignupError> {
    let email = Email::parse(form.email).map_err(SignupError::Email)?;
    check_password(form.password)?;
    let invite = form.invite.map(str::trim).filter(|c| !c.is_empty());
    if invite.is_none() && !open {
        return Err(SignupError::Closed);
    }
    let team = match (invite, form.team.map(str::trim).filter(|t| !t.is_empty())) {
        (Some(_), _) => None,
        (None, Some(t)) if t.chars().count() <= 200 => Some(t.to_owned()),
        (None, Some(_)) => return Err(SignupError::TeamName),
        (None, None) => Some(format!("{}'s team", email.as_str())),
    };
    let password_hash = secrets::hash_password_blocking(form.password.to_owned()).await?;
    let user_id = Uuid::new_v4();
    let mut tx = db.begin().await?;
    let (tenant_id, role) = match invite {
        Some(code) => {
            let invitation = sqlx::query!(
                r#"UPDATE invitations SET used_at = now()
                   WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()
                   RETURNING id, tenant_id, role AS "role: Role""#,
                digest(code),
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(SignupError::BadInvitation)?;
            (invitation.tenant_id, invitation.role)
        }
        None => {
            let tenant_id = Uuid::new_v4();
            sqlx::query!(
                "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3)",
                tenant_id,
                tenant_id.to_string(),
                team.as_deref().unwrap_or("Team"),
            )
            .execute(&mut *tx)
            .await?;
            (tenant_id, Role::Admin)
        }
    };
    sqlx::query!(
        "INSERT INTO users (id, tenant_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
        user_id,
        tenant_id,
        email.as_str(),
        password_hash,
        role as Role,
    )
    .execute(&mut *tx)
    .await?;
    if let Some(code) = invite {
        sqlx::query!(
            "UPDATE invitations SET used_by = $1 WHERE code_hash = $2",
            user_id,
            digest(code)
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(user = %user_id, tenant = %tenant_id, role = role.as_str(), "user signed up");
    Ok(user_id)
}

/// The user's id when the e-mail and password match. Takes as long when
/// the account does not exist (a decoy hash is verified instead).
pub async fn authenticate(
    db: &PgPool,
    email: &str,
    password: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Ok(None);
    }
    let user = sqlx::query!(
        "SELECT id, password_hash FROM users WHERE lower(email) = lower($1)",
        email.trim(),
    )
    .fetch_optional(db)
    .await?;
    let (id, phc) = match user {
        Some(u) => (Some(u.id), u.password_hash),
        None => (None, secrets::decoy_hash().to_owned()),
    };
    let ok = secrets::verify_password_blocking(password.to_owned(), phc).await;
    Ok(id.filter(|_| ok))
}

/// The principal of a signed-in user (`None` when the user is gone).
pub async fn session_principal(
    db: &PgPool,
    user_id: Uuid,
) -> Result<Option<Principal>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, tenant_id, email, role AS "role: Role" FROM users WHERE id = $1"#,
        user_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|u| Principal {
        user_id: u.id,
        tenant_id: u.tenant_id,
        email: u.email,
        role: u.role,
        via: Credential::Session,
    }))
}

/// A new invitation to `tenant_id`; returns its code (shown once).
pub async fn create_invitation(
    db: &PgPool,
    tenant_id: Uuid,
    role: Role,
    created_by: Option<Uuid>,
    valid_for: Duration,
) -> Result<String, sqlx::Error> {
    let code = random_secret("");
    sqlx::query!(
        "INSERT INTO invitations (id, tenant_id, code_hash, role, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        Uuid::new_v4(),
        tenant_id,
        digest(&code),
        role as Role,
        created_by,
        OffsetDateTime::now_utc() + valid_for,
    )
    .execute(db)
    .await?;
    Ok(code)
}

/// What start-up did about the first admin.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstAdmin {
    /// Users exist already.
    Exists,
    /// Created from `ADMIN_EMAIL`/`ADMIN_PASSWORD`.
    Created,
    /// No users and no `ADMIN_EMAIL`: a one-time sign-up link for the first
    /// admin (its code; the caller prints the link).
    Invitation(String),
}

/// On a start with no users: the first admin, from the environment, or a
/// one-time link to create them.
pub async fn ensure_first_admin(
    db: &PgPool,
    default_tenant: Uuid,
    from_env: Option<(&str, &str)>,
) -> Result<FirstAdmin, SignupError> {
    let any = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users) AS "any!""#)
        .fetch_one(db)
        .await?;
    if any {
        return Ok(FirstAdmin::Exists);
    }
    let code = create_invitation(db, default_tenant, Role::Admin, None, FIRST_ADMIN_TTL).await?;
    let Some((email, password)) = from_env else {
        return Ok(FirstAdmin::Invitation(code));
    };
    let form = Signup {
        email,
        password,
        invite: Some(&code),
        team: None,
    };
    match sign_up(db, form, false).await {
        Ok(_) => Ok(FirstAdmin::Created),
        // Another replica created them at the same moment.
        Err(SignupError::EmailTaken) => Ok(FirstAdmin::Exists),
        Err(e) => Err(e),
    }
}
