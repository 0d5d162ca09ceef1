//! The middleware every request to the public listener passes, in order:
//!
//! 1. **Host allow-list** (DNS rebinding): the `Host` must be the public
//!    URL's, a loopback name when the app listens on loopback, or one in
//!    `ALLOWED_HOSTS` → else 400.
//! 2. **CSRF**: a state-changing request (anything but GET, HEAD, OPTIONS)
//!    that relies on the session cookie must come from the app's own origin:
//!    its `Origin` is the public origin, or, without `Origin`, its
//!    `Sec-Fetch-Site` is `same-origin` → else 403. Requests with a bearer
//!    token carry no ambient credential and are exempt.
//! 3. **The principal**: a bearer token (`st_pat_…`) or the session cookie
//!    is resolved into an [`app::ssr::auth::Principal`] in the request's
//!    extensions. A bearer that is not a live token → 401 at once.
//! 4. **The gate**: without a principal, only the public paths (log-in,
//!    sign-up, health, static files) are served; `/api/…` answers 401 and a
//!    page redirects to `/login?next=…`.
//! 5. **Security headers** on every answer: `X-Content-Type-Options`,
//!    `Referrer-Policy`, `X-Frame-Options`, a default CSP (pages set their
//!    own, with a nonce), HSTS over HTTPS.

use super::{accounts, tokens};
use crate::{http::error_response, state::ServerState};
use app::{
    domain::TokenKind,
    ssr::auth::{Principal, SESSION_USER_KEY},
};
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use std::net::SocketAddr;
use tower_sessions::Session;
use uuid::Uuid;

/// Where requests may come from, derived from `PUBLIC_URL`, the listen
/// address and `ALLOWED_HOSTS`.
#[derive(Debug, Clone)]
pub struct EdgePolicy {
    /// `scheme://host[:port]` of `PUBLIC_URL`.
    pub public_origin: String,
    /// Origins accepted on state-changing requests.
    pub origins: Vec<String>,
    /// `host[:port]` values accepted in `Host`, lowercase.
    pub hosts: Vec<String>,
    /// Served over HTTPS: Secure cookies and HSTS.
    pub https: bool,
}

impl EdgePolicy {
    /// `public_url` is `PUBLIC_URL` (an http(s) URL); `listen` the bound
    /// address; `extra_hosts` the `ALLOWED_HOSTS` entries.
    pub fn new(public_url: &str, listen: SocketAddr, extra_hosts: &[String]) -> Self {
        let url = reqwest::Url::parse(public_url).expect("PUBLIC_URL is checked at start-up");
        let https = url.scheme() == "https";
        let host = url.host_str().unwrap_or("").to_lowercase();
        let default_port = if https { 443 } else { 80 };
        // Origins as browsers send them: no port when it is the default.
        let origin = |scheme: &str, host: &str, port: u16| {
            if port == default_port && scheme == url.scheme() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}:{port}")
            }
        };
        let public_port = url.port_or_known_default().unwrap_or(default_port);
        let mut hosts = vec![format!("{host}:{public_port}")];
        let mut origins = vec![origin(url.scheme(), &host, public_port)];
        if listen.ip().is_loopback() {
            for name in ["127.0.0.1", "localhost", "[::1]"] {
                hosts.push(format!("{name}:{}", listen.port()));
                origins.push(format!("http://{name}:{}", listen.port()));
            }
        }
        for extra in extra_hosts {
            let extra = extra.trim().to_lowercase();
            if extra.is_empty() {
                continue;
            }
            let with_port = with_port(&extra, default_port);
            let port = with_port
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(default_port);
            let name = with_port
                .rsplit_once(':')
                .map_or(extra.as_str(), |(h, _)| h);
            origins.push(origin(url.scheme(), name, port));
            hosts.push(with_port);
        }
        hosts.dedup();
        origins.dedup();
        Self {
            public_origin: origins[0].clone(),
            origins,
            hosts,
            https,
        }
    }

    fn host_allowed(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| uri.authority().map(|a| a.to_string()));
        let default_port = if self.https { 443 } else { 80 };
        host.is_some_and(|h| {
            let h = with_port(&h.to_lowercase(), default_port);
            self.hosts.contains(&h)
        })
    }

    /// Whether a state-changing, cookie-authenticated request comes from the app.
    fn same_origin(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("").to_lowercase();
            return if self.origins.contains(&origin) {
                Ok(())
            } else {
                Err("cross-origin request refused: its Origin is not this app's")
            };
        }
        match headers.get("sec-fetch-site").map(HeaderValue::as_bytes) {
            Some(b"same-origin") => Ok(()),
            Some(_) => Err("cross-site request refused (Sec-Fetch-Site)"),
            None => Err("request refused: a form or script request must carry an Origin header (or use a bearer token)"),
        }
    }
}

/// `host` or `host:port` → `host:port` (a bracketed IPv6 literal keeps its brackets).
fn with_port(host: &str, default_port: u16) -> String {
    let has_port = match host.rfind(':') {
        Some(i) => {
            !host[..i].is_empty()
                && host[i + 1..].chars().all(|c| c.is_ascii_digit())
                && !host.ends_with(']')
                && (host.starts_with('[') || !host[..i].contains(':'))
        }
        None => false,
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    }
}

/// Served without signing in.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login" | "/signup" | "/healthz" | "/readyz" | "/favicon.ico" | "/robots.txt"
    ) || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").map(str::trim))
            .ok_or(()),
    )
}

fn unauthorized(message: &str) -> Response {
    let mut response = error_response(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Where a page request goes to sign in, coming back afterwards.
fn to_login(uri: &Uri) -> Response {
    let back = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::to(&format!("/login?next={}", percent_encode(back))).into_response()
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub use app::format::percent_encode;

/// The middleware (see the module's documentation).
pub async fn edge(State(state): State<ServerState>, mut request: Request, next: Next) -> Response {
    let policy = &state.edge;
    let https = policy.https;
    if !policy.host_allowed(request.headers(), request.uri()) {
        return with_security_headers(
            error_response(
                StatusCode::BAD_REQUEST,
                "bad_host",
                "this server does not answer for that host name (see ALLOWED_HOSTS)",
            ),
            https,
        );
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let principal = match bearer(request.headers()) {
        Some(Ok(secret)) => match tokens::resolve(state.db(), secret, TokenKind::Personal).await {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                return with_security_headers(
                    unauthorized(
                        "the bearer token is not valid: it is unknown, revoked or expired",
                    ),
                    https,
                )
            }
            Err(e) => return unavailable(e, https),
        },
        Some(Err(())) => {
            return with_security_headers(
                unauthorized("expected Authorization: Bearer st_pat_…"),
                https,
            )
        }
        None => {
            if !safe {
                if let Err(why) = policy.same_origin(request.headers()) {
                    return with_security_headers(
                        error_response(StatusCode::FORBIDDEN, "csrf", why),
                        https,
                    );
                }
            }
            match session_principal(&state, request.extensions().get::<Session>()).await {
                Ok(p) => p,
                Err(e) => return unavailable(e, https),
            }
        }
    };
    let path = request.uri().path().to_owned();
    match principal {
        Some(p) => {
            request.extensions_mut().insert(p);
        }
        None if is_public(&path) => {}
        None if path.starts_with("/api/") || !safe => {
            return with_security_headers(
                unauthorized("sign in first, or send a personal access token"),
                https,
            )
        }
        None => return with_security_headers(to_login(request.uri()), https),
    }
    with_security_headers(next.run(request).await, https)
}

async fn session_principal(
    state: &ServerState,
    session: Option<&Session>,
) -> Result<Option<Principal>, anyhow::Error> {
    let Some(session) = session else {
        return Ok(None);
    };
    let Some(user_id) = session.get::<Uuid>(SESSION_USER_KEY).await? else {
        return Ok(None);
    };
    let principal = accounts::session_principal(state.db(), user_id).await?;
    if principal.is_none() {
        // The user was deleted: the session ends with them.
        session.flush().await?;
    }
    Ok(principal)
}

fn unavailable(e: impl std::fmt::Display, https: bool) -> Response {
    tracing::error!(error = %e, "resolving the request's credential failed");
    with_security_headers(
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "accounts cannot be checked right now; try again shortly",
        ),
        https,
    )
}

/// Headers every answer carries. Pages set their own CSP (with the
/// hydration scripts' nonce); everything else gets one that allows nothing.
pub fn with_security_headers(mut response: Response, https: bool) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        );
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_names_and_the_public_host_are_allowed() {
        let p = EdgePolicy::new(
            "https://data.example.org",
            "127.0.0.1:3000".parse().unwrap(),
            &["alt.example.org".to_owned()],
        );
        let uri = Uri::from_static("/");
        for ok in [
            "data.example.org",
            "DATA.example.org:443",
            "localhost:3000",
            "127.0.0.1:3000",
            "alt.example.org",
        ] {
            assert!(p.host_allowed(&headers(&[("host", ok)]), &uri), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost:3001",
            "data.example.org:8443",
            "",
        ] {
            assert!(!p.host_allowed(&headers(&[("host", bad)]), &uri), "{bad}");
        }
        assert!(!p.host_allowed(&HeaderMap::new(), &uri));
    }

    #[test]
    fn only_the_apps_origin_may_change_state() {
        let p = EdgePolicy::new(
            "http://127.0.0.1:3000",
            "127.0.0.1:3000".parse().unwrap(),
            &[],
        );
        assert!(p
            .same_origin(&headers(&[("origin", "http://127.0.0.1:3000")]))
            .is_ok());
        assert!(p
            .same_origin(&headers(&[("origin", "http://localhost:3000")]))
            .is_ok());
        assert!(p
            .same_origin(&headers(&[("origin", "http://evil.example")]))
            .is_err());
        assert!(p.same_origin(&headers(&[("origin", "null")])).is_err());
        assert!(p
            .same_origin(&headers(&[("sec-fetch-site", "same-origin")]))
            .is_ok());
        assert!(p
            .same_origin(&headers(&[("sec-fetch-site", "cross-site")]))
            .is_err());
        assert!(p.same_origin(&HeaderMap::new()).is_err());
    }

    #[test]
    fn login_redirects_keep_the_page() {
        assert_eq!(
            percent_encode("/datasets/1?a=b&c"),
            "%2Fdatasets%2F1%3Fa%3Db%26c"
        );
    }
}
