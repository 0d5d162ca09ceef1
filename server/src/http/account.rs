//! The account forms: log-in, sign-up, log-out, tokens and invitations.
//! Each is a plain form post answered with a redirect (303), so it works
//! without JavaScript; errors come back as `?error=…` on the form's page.
//! A secret made here (a token, an invitation link) travels to the next
//! page in the session's one-time flash, never in a URL.

use crate::{
    auth::{
        accounts::{self, Signup, SignupError, INVITATION_TTL},
        edge::percent_encode,
        tokens,
    },
    state::ServerState,
};
use app::{
    domain::{Role, TokenKind},
    ssr::auth::{Flash, Principal, SESSION_FLASH_KEY, SESSION_USER_KEY},
};
use axum::{
    extract::{ConnectInfo, FromRequest, Path, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::post,
    Extension, Form, Router,
};
use serde::Deserialize;
use std::net::SocketAddr;
use tower_sessions::Session;
use uuid::Uuid;

pub fn router() -> Router<ServerState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/signup", post(signup))
        .route("/auth/logout", post(logout))
        .route("/account/tokens", post(create_personal_token))
        .route("/account/tokens/{id}/revoke", post(revoke_personal_token))
        .route("/account/assistant-tokens", post(create_assistant_token))
        .route(
            "/account/assistant-tokens/{id}/revoke",
            post(revoke_assistant_token),
        )
        .route("/account/invitations", post(create_invitation))
}

/// 303 to `page` with `error` in the query.
fn back_with_error(page: &str, extra: &str, error: &str) -> Response {
    let sep = if page.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{page}{sep}error={}{extra}",
        percent_encode(error)
    ))
    .into_response()
}

/// Only a path on this site: `/…`, not `//host` or `/\host`.
fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if ok {
        next
    } else {
        "/"
    }
}

fn internal(e: impl std::fmt::Display, page: &str) -> Response {
    let reference = Uuid::new_v4();
    tracing::error!(error = %e, %reference, "an account form failed");
    back_with_error(
        page,
        "",
        &format!("something went wrong on our side (reference {reference}); try again"),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(State(state): State<ServerState>, session: Session, request: Request) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &state).await else {
        return back_with_error("/login", "", "send the e-mail address and the password");
    };
    let next = local_path(&form.next).to_owned();
    let again = format!("&next={}", percent_encode(&next));
    if let Err(wait) = state.login_limiter.admit(&form.email, ip) {
        let minutes = wait.as_secs().div_ceil(60);
        tracing::warn!(ip = ?ip, "log-in rate limit reached");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(format!(
                "<!DOCTYPE html><title>Too many attempts</title><p>Too many log-in attempts. \
                 Try again in {minutes} minute(s).</p><p><a href=\"/login\">Back to log-in</a></p>"
            )),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    match accounts::authenticate(state.db(), &form.email, &form.password).await {
        Ok(Some(user_id)) => {
            state.login_limiter.succeeded(&form.email);
            // A new session id on log-in: a planted cookie is worth nothing.
            if let Err(e) = start_session(&session, user_id).await {
                return internal(e, "/login");
            }
            tracing::info!(user = %user_id, "logged in");
            Redirect::to(&next).into_response()
        }
        Ok(None) => {
            state.login_limiter.failed(&form.email);
            back_with_error("/login", &again, "wrong e-mail address or password")
        }
        Err(e) => internal(e, "/login"),
    }
}

async fn start_session(session: &Session, user_id: Uuid) -> anyhow::Result<()> {
    session.cycle_id().await?;
    session.insert(SESSION_USER_KEY, user_id).await?;
    Ok(())
}

#[derive(Deserialize)]
struct SignupForm {
    email: String,
    password: String,
    #[serde(default)]
    invite: String,
    #[serde(default)]
    team: String,
}

async fn signup(
    State(state): State<ServerState>,
    session: Session,
    Form(form): Form<SignupForm>,
) -> Response {
    let page = if form.invite.is_empty() {
        "/signup".to_owned()
    } else {
        format!("/signup?invite={}", percent_encode(&form.invite))
    };
    let request = Signup {
        email: &form.email,
        password: &form.password,
        invite: Some(form.invite.as_str()),
        team: Some(form.team.as_str()),
    };
    match accounts::sign_up(state.db(), request, state.signup_open).await {
        Ok(user_id) => match start_session(&session, user_id).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => internal(e, "/login"),
        },
        Err(SignupError::Internal(e)) => internal(e, &page),
        Err(e) => back_with_error(&page, "", &e.to_string()),
    }
}

async fn logout(session: Session) -> Response {
    // Deletes the session from the store: the old cookie opens nothing.
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "ending a session failed");
    }
    Redirect::to("/login?signed_out=1").into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
    #[serde(default)]
    expires_in_days: Option<String>,
}

async fn create_token(
    state: &ServerState,
    session: &Session,
    who: &Principal,
    kind: TokenKind,
    form: TokenForm,
    page: &str,
) -> Response {
    let days = match form.expires_in_days.as_deref().map(str::trim) {
        None | Some("") => 90,
        Some(d) => match d.parse::<u32>() {
            Ok(d) => d,
            Err(_) => return back_with_error(page, "", "the expiry must be a number of days"),
        },
    };
    match tokens::create(state.db(), who, kind, &form.name, days).await {
        Ok(secret) => {
            let flash = Flash {
                kind: kind.as_str().to_owned(),
                value: secret,
            };
            if let Err(e) = session.insert(SESSION_FLASH_KEY, flash).await {
                return internal(e, page);
            }
            Redirect::to(page).into_response()
        }
        Err(tokens::TokenError::Db(e)) => internal(e, page),
        Err(e) => back_with_error(page, "", &e.to_string()),
    }
}

async fn create_personal_token(
    State(state): State<ServerState>,
    session: Session,
    Extension(who): Extension<Principal>,
    Form(form): Form<TokenForm>,
) -> Response {
    create_token(
        &state,
        &session,
        &who,
        TokenKind::Personal,
        form,
        "/settings",
    )
    .await
}

async fn create_assistant_token(
    State(state): State<ServerState>,
    session: Session,
    Extension(who): Extension<Principal>,
    Form(form): Form<TokenForm>,
) -> Response {
    create_token(&state, &session, &who, TokenKind::Mcp, form, "/assistant").await
}

async fn revoke(
    state: &ServerState,
    who: &Principal,
    kind: TokenKind,
    id: &str,
    page: &str,
) -> Response {
    let Ok(id) = Uuid::try_parse(id) else {
        return back_with_error(page, "", "no such token");
    };
    match tokens::revoke(state.db(), who.user_id, kind, id).await {
        Ok(true) => Redirect::to(page).into_response(),
        Ok(false) => back_with_error(page, "", "no such token"),
        Err(e) => internal(e, page),
    }
}

async fn revoke_personal_token(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    revoke(&state, &who, TokenKind::Personal, &id, "/settings").await
}

async fn revoke_assistant_token(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    revoke(&state, &who, TokenKind::Mcp, &id, "/assistant").await
}

#[derive(Deserialize)]
struct InvitationForm {
    #[serde(default)]
    role: String,
}

async fn create_invitation(
    State(state): State<ServerState>,
    session: Session,
    Extension(who): Extension<Principal>,
    Form(form): Form<InvitationForm>,
) -> Response {
    if who.role != Role::Admin {
        return (
            StatusCode::FORBIDDEN,
            "only an admin of your team can invite people",
        )
            .into_response();
    }
    let role = match form.role.as_str() {
        "admin" => Role::Admin,
        "" | "member" => Role::Member,
        _ => return back_with_error("/team", "", "the role must be member or admin"),
    };
    match accounts::create_invitation(
        state.db(),
        who.tenant_id,
        role,
        Some(who.user_id),
        INVITATION_TTL,
    )
    .await
    {
        Ok(code) => {
            let flash = Flash {
                kind: "invitation".to_owned(),
                value: state.signup_link(&code),
            };
            if let Err(e) = session.insert(SESSION_FLASH_KEY, flash).await {
                return internal(e, "/team");
            }
            Redirect::to("/team").into_response()
        }
        Err(e) => internal(e, "/team"),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path("/datasets/1?x=2"), "/datasets/1?x=2");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "",
            "javascript:x",
        ] {
            assert_eq!(local_path(bad), "/", "{bad}");
        }
    }
}
