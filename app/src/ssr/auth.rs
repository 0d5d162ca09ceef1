//! Who is asking. The server resolves every request's credential (a session
//! cookie or a personal access token) into a [`Principal`] before any route
//! runs and puts it in the request's extensions; server functions and pages
//! read it here. Every query that serves a page takes the principal's
//! tenant, so nothing of another tenant can be named, only not found.

use crate::{domain::Role, error::AppError};
use axum::http::request::Parts;
use leptos::prelude::use_context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A signed-in user, or a script with one of a user's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: Role,
    pub via: Credential,
}

/// How the principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The `st_session` cookie.
    Session,
    /// A personal access token (its id).
    Token(Uuid),
}

/// The session key holding the signed-in user's id.
pub const SESSION_USER_KEY: &str = "user_id";
/// The session key of a one-time message for the next page (a new token's
/// secret, an invitation link): shown once, then gone.
pub const SESSION_FLASH_KEY: &str = "flash";

/// A secret shown once, on the page the browser is sent to next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// What it is: "token", "mcp_token" or "invitation".
    pub kind: String,
    pub value: String,
}

/// The request's principal, for a server function or page.
pub fn principal() -> Result<Principal, AppError> {
    use_context::<Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        .ok_or(AppError::Unauthorized)
}

/// The request's principal, if it is an admin of its tenant.
pub fn admin() -> Result<Principal, AppError> {
    let who = principal()?;
    if who.role == Role::Admin {
        Ok(who)
    } else {
        Err(AppError::Forbidden)
    }
}

/// Takes the flash message of `kind` out of the session, if there is one.
pub async fn take_flash(kind: &str) -> Option<String> {
    let session = use_context::<Parts>()?
        .extensions
        .get::<tower_sessions::Session>()
        .cloned()?;
    let flash: Flash = session.get(SESSION_FLASH_KEY).await.ok().flatten()?;
    if flash.kind != kind {
        return None;
    }
    let _ = session.remove_value(SESSION_FLASH_KEY).await;
    Some(flash.value)
}

/// The Content-Security-Policy of every page: scripts only from this origin
/// and only with this response's nonce (the hydration scripts carry it),
/// WebAssembly allowed to compile, no framing, no plugins, forms and
/// connections to this origin only.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Sets the page's CSP header with the nonce leptos_axum made for this
/// response (called from the shell).
pub fn set_page_csp() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = axum::http::HeaderValue::from_str(&page_csp(&nonce)) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}
