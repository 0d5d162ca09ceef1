//! Accounts and the edge: log-in and sessions, sign-up by invitation, tokens,
//! CSRF, the Host allow-list, security headers, the log-in rate limit.

use crate::helpers::{
    bare_client, element_text, spawn_app, spawn_app_with, Options, TestApp, ADMIN_EMAIL,
    ADMIN_PASSWORD,
};
use reqwest::StatusCode;
use servicetsunami_server::auth::accounts::{ensure_first_admin, FirstAdmin};

fn cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("st_session="))
        .expect("a session cookie is set")
}

/// A fresh session cookie (`st_session=…`) of the first admin.
async fn session_cookie(app: &TestApp) -> String {
    let response = app
        .browser()
        .post(app.url("/auth/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    cookie(&response).split(';').next().unwrap().to_owned()
}

async fn log_in(app: &TestApp, client: &reqwest::Client, password: &str) -> reqwest::Response {
    client
        .post(app.url("/auth/login"))
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", password),
            ("next", "/datasets/x"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn log_in_sets_a_fresh_httponly_lax_cookie_and_log_out_ends_the_session() {
    let app = spawn_app_with(Options {
        sign_in: false,
        ..Options::default()
    })
    .await;
    let browser = app.browser();
    // A session id planted before log-in is not the one after it.
    let planted = "st_session=planted-session-id";
    let response = browser
        .post(app.url("/auth/login"))
        .header("cookie", planted)
        .form(&[
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("next", "/datasets/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/datasets/x",
        "back where it started"
    );
    let set = cookie(&response);
    assert!(!set.starts_with(planted), "{set}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: not Secure ({set})");
    let value = set.split(';').next().unwrap().to_owned();

    let home = bare_client()
        .get(app.url("/"))
        .header("cookie", &value)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    assert!(
        home.text().await.unwrap().contains(ADMIN_EMAIL),
        "the menu names the user"
    );

    let out = browser.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(out.status(), 303);
    // The old cookie, replayed, opens nothing: the session is gone from the store.
    let replay = bare_client()
        .get(app.url("/"))
        .header("cookie", &value)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert!(replay.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
    let api = bare_client()
        .post(app.url("/api/list_datasets"))
        .header("cookie", &value)
        .header("origin", app.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    sqlx::query("UPDATE tower_sessions.session SET expiry_date = now() - interval '1 minute'")
        .execute(&app.db)
        .await
        .unwrap();
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 303, "back to log-in");
}

#[tokio::test]
async fn signed_out_requests_reach_only_the_public_pages() {
    let app = spawn_app_with(Options {
        sign_in: false,
        ..Options::default()
    })
    .await;
    let client = app.browser();
    let page = client
        .get(app.url("/datasets/abc?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()["location"],
        "/login?next=%2Fdatasets%2Fabc%3Fx%3D1"
    );
    for (method, path) in [
        ("GET", "/api/events"),
        ("POST", "/api/list_datasets"),
        ("POST", "/api/datasets"),
        ("POST", "/api/sync_all"),
        ("POST", "/account/tokens"),
    ] {
        let response = client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
    }
    for path in ["/login", "/signup", "/healthz", "/readyz"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let login = client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login.contains(r#"method="post""#) && login.contains(r#"action="/auth/login""#),
        "log-in is a plain form: it works without JavaScript"
    );
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_rate_limited_per_account() {
    let app = spawn_app_with(Options {
        sign_in: false,
        ..Options::default()
    })
    .await;
    let client = app.browser();
    for _ in 0..5 {
        let response = log_in(&app, &client, "wrong password!").await;
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/login?error=wrong"), "{location}");
    }
    // The sixth attempt is refused before the password is checked, even the right one.
    let limited = log_in(&app, &client, ADMIN_PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 60 && retry <= 15 * 60, "{retry}");
    // Another account is not locked by it.
    let other = client
        .post(app.url("/auth/login"))
        .form(&[("email", "nobody@example.org"), ("password", "whatever123")])
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 303);
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused_and_same_origin_ones_work() {
    let app = spawn_app().await;
    let session = session_cookie(&app).await;
    let cookie_only = |origin: Option<&str>, site: Option<&str>| {
        // The signed-in browser's cookie, with the Origin this test says.
        let mut request = bare_client()
            .post(app.url("/api/datasets"))
            .header("cookie", &session)
            .header("Accept", "application/json")
            .multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(b"a\n1\n".to_vec()).file_name("a.csv"),
            ));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request
    };
    for (origin, site) in [
        (Some("http://evil.example"), None),
        (Some("null"), None),
        (Some("http://evil.example"), Some("same-origin")),
        (None, Some("cross-site")),
    ] {
        let response = cookie_only(origin, site).send().await.unwrap();
        assert_eq!(response.status(), 403, "{origin:?} {site:?}");
        let body: app::model::ErrorBody = response.json().await.unwrap();
        assert_eq!(body.code, "csrf");
    }
    assert_eq!(app.dataset_count().await, 0, "nothing was stored");
    // A server function too (bulk sync), and a plain form (a token).
    for path in ["/api/sync_all", "/account/tokens"] {
        let response = bare_client()
            .post(app.url(path))
            .header("cookie", &session)
            .header("origin", "http://evil.example")
            .form(&[("name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    // The app's own origin works.
    let ok = cookie_only(Some(&app.url("")), None).send().await.unwrap();
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn the_request_without_any_origin_is_refused_but_sec_fetch_site_same_origin_passes() {
    let app = spawn_app().await;
    let jar_only = bare_client();
    let value = session_cookie(&app).await;
    let post = |site: Option<&'static str>| {
        let mut request = jar_only
            .post(app.url("/api/list_datasets"))
            .header("cookie", value.clone());
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request
    };
    assert_eq!(post(None).send().await.unwrap().status(), 403);
    assert_eq!(
        post(Some("same-origin")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn an_unknown_host_is_refused() {
    let app = spawn_app().await;
    for host in ["evil.example", "evil.example:80", "localhost:1"] {
        let response = bare_client()
            .get(app.url("/healthz"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{host}");
    }
    let port = app.addr.port();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let response = bare_client()
            .get(app.url("/healthz"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn pages_carry_a_nonce_csp_and_the_security_headers() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the CSP")
        .to_owned();
    let html = response.text().await.unwrap();
    let scripts = html.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "every script carries the nonce"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["x-frame-options"], "DENY");
    // Another page gets another nonce.
    let again = app.client.get(app.url("/")).send().await.unwrap();
    assert_ne!(
        again.headers()["content-security-policy"].to_str().unwrap(),
        csp
    );
    // Non-page answers get a CSP that allows nothing.
    let health = bare_client().get(app.url("/healthz")).send().await.unwrap();
    assert!(health.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
}

#[tokio::test]
async fn a_personal_access_token_uploads_until_revoked_or_expired() {
    let app = spawn_app().await;
    let token = app.token(&app.client, "tokens").await;
    assert!(token.starts_with("st_pat_"), "{token}");
    // Shown once: the page does not show it again.
    let again = app.get_text("/settings").await;
    assert!(element_text(&again, "new-secret").is_none());
    assert!(!again.contains(&token));

    let upload = |token: String| {
        let app = &app;
        async move {
            bare_client()
                .post(app.url("/api/datasets"))
                .bearer_auth(token)
                .header("Accept", "application/json")
                .multipart(reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("x.csv"),
                ))
                .send()
                .await
                .unwrap()
        }
    };
    // No Origin needed: a bearer is no ambient credential.
    let response = upload(token.clone()).await;
    assert_eq!(response.status(), 201);
    let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored.unwrap(), token.as_bytes(), "stored hashed");
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(used.is_some(), "last use recorded");

    for bad in ["st_pat_wrong", "", "st_mcp_x"] {
        assert_eq!(upload(bad.to_owned()).await.status(), 401, "{bad:?}");
    }
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(upload(token.clone()).await.status(), 401, "expired");
    sqlx::query("UPDATE api_tokens SET expires_at = NULL")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(upload(token.clone()).await.status(), 201);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let revoked = app
        .client
        .post(app.url(&format!("/account/tokens/{id}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert_eq!(upload(token).await.status(), 401, "revoked");
    assert!(app.get_text("/settings").await.contains("revoked"));
}

#[tokio::test]
async fn an_invitation_link_joins_the_team_once() {
    let app = spawn_app_with(Options {
        env: vec![("SIGNUP_OPEN", "false".to_owned())],
        ..Options::default()
    })
    .await;
    let made = app
        .client
        .post(app.url("/account/invitations"))
        .form(&[("role", "member")])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 303);
    let team = app.get_text("/team").await;
    let link = element_text(&team, "invite-link").expect("the link is shown once");
    let code = link.split("invite=").nth(1).unwrap().to_owned();

    let signup = |email: &'static str, invite: String| {
        let app = &app;
        async move {
            app.browser()
                .post(app.url("/auth/signup"))
                .form(&[
                    ("email", email),
                    ("password", "member password 1"),
                    ("invite", &invite),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let joined = signup("member@test.example.org", code.clone()).await;
    assert_eq!(joined.headers()["location"], "/");
    assert_eq!(
        app.tenant_of_user("member@test.example.org").await,
        app.tenant_of_user(ADMIN_EMAIL).await,
        "the member joined the admin's team"
    );
    // Used up: a second sign-up with it fails, and so does one without any.
    let reused = signup("second@test.example.org", code).await;
    assert!(reused.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=this%20invitation"));
    let closed = signup("third@test.example.org", String::new()).await;
    assert!(closed.headers()["location"]
        .to_str()
        .unwrap()
        .contains("invitation%20only"));

    // A member cannot invite.
    let member = app
        .sign_in("member@test.example.org", "member password 1")
        .await;
    let refused = member
        .post(app.url("/account/invitations"))
        .form(&[("role", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let page = member.get(app.url("/team")).send().await.unwrap();
    assert_eq!(page.status(), 403);
}

#[tokio::test]
async fn without_admin_settings_the_first_start_makes_a_one_time_admin_link() {
    let app = spawn_app_with(Options {
        env: vec![
            ("ADMIN_EMAIL", String::new()),
            ("ADMIN_PASSWORD", String::new()),
        ],
        sign_in: false,
        ..Options::default()
    })
    .await;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 0);
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM invitations WHERE role = 'admin' AND expires_at <= now() + interval '24 hours'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(pending, 1, "start-up made the first-admin link");
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'default'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let FirstAdmin::Invitation(code) = ensure_first_admin(&app.db, tenant, None).await.unwrap()
    else {
        panic!("no users yet: another link");
    };
    let response = app
        .browser()
        .post(app.url("/auth/signup"))
        .form(&[
            ("email", "first@test.example.org"),
            ("password", "first admin pw"),
            ("invite", &code),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/");
    let role: String =
        sqlx::query_scalar("SELECT role::text FROM users WHERE email = 'first@test.example.org'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(role, "admin");
    assert_eq!(
        ensure_first_admin(&app.db, tenant, None).await.unwrap(),
        FirstAdmin::Exists
    );
}

#[tokio::test]
async fn sign_up_errors_name_the_problem() {
    let app = spawn_app().await;
    for (email, password, want) in [
        (
            "not-an-address",
            "long enough password",
            "not%20an%20e-mail",
        ),
        ("x@example.org", "short", "at%20least%2010"),
        (ADMIN_EMAIL, "long enough password", "exists%20already"),
    ] {
        let response = app
            .browser()
            .post(app.url("/auth/signup"))
            .form(&[("email", email), ("password", password), ("team", "T")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.contains(want), "{email}: {location}");
    }
}
