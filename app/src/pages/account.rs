//! Account pages: log in, sign up, personal access tokens (Settings),
//! assistant tokens (Connect an assistant) and the team (admins). Every form
//! here is a plain HTML form posted to the server's `/auth/…` and
//! `/account/…` routes, which answer with a redirect: they work the same
//! with JavaScript off, and ship no code to the browser.

use crate::{
    api::{assistant_tokens, current_user, personal_tokens, team},
    domain::{Role, MIN_PASSWORD_CHARS},
    format::short_timestamp,
    model::{Me, TokenInfo, TokensPage},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// A query parameter of the current URL (set by the server's redirects).
fn query_param(name: &str) -> Option<String> {
    use_query_map().read_untracked().get(name)
}

/// The one-line error a redirect carried, as an alert.
fn redirected_error() -> impl IntoView {
    query_param("error").map(|e| view! { <p class="error" role="alert">{e}</p> })
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let next = query_param("next").unwrap_or_else(|| "/".to_owned());
    view! {
        <Title text="Log in" />
        <section class="card narrow">
            <h1>"Log in"</h1>
            {redirected_error()}
            {query_param("signed_out").map(|_| view! { <p class="notice" role="status">"You are logged out."</p> })}
            <form method="post" action="/auth/login" class="stacked">
                <input type="hidden" name="next" value=next />
                <label>"E-mail" <input type="email" name="email" autocomplete="username" required /></label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" required />
                </label>
                <button type="submit" id="login">"Log in"</button>
            </form>
            <p class="muted small">"No account? Ask your team's admin for an invitation link."</p>
        </section>
    }
}

#[component]
pub fn SignupPage() -> impl IntoView {
    let invite = query_param("invite").unwrap_or_default();
    let heading = if invite.is_empty() {
        "Create a team"
    } else {
        "Join your team"
    };
    view! {
        <Title text="Sign up" />
        <section class="card narrow">
            <h1>{heading}</h1>
            {redirected_error()}
            <form method="post" action="/auth/signup" class="stacked">
                <input type="hidden" name="invite" value=invite.clone() />
                {invite
                    .is_empty()
                    .then(|| view! { <label>"Team name" <input type="text" name="team" maxlength="200" /></label> })}
                <label>"E-mail" <input type="email" name="email" autocomplete="username" required /></label>
                <label>
                    {format!("Password (at least {MIN_PASSWORD_CHARS} characters)")}
                    <input
                        type="password"
                        name="password"
                        autocomplete="new-password"
                        minlength=MIN_PASSWORD_CHARS.to_string()
                        required
                    />
                </label>
                <button type="submit" id="signup">"Sign up"</button>
            </form>
            <p class="muted small">"Have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}

/// The header's account menu: who is signed in, the account pages, log out.
#[component]
pub fn UserMenu() -> impl IntoView {
    let user = OnceResource::new(current_user());
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                user.await.ok().flatten().map(|Me { email, role, team }| {
                    view! {
                        <nav class="user-menu" aria-label="Account">
                            <span class="muted small" id="signed-in-as" title=team>{email}</span>
                            <a href="/query">"Query"</a>
                            <a href="/monitoring">"Monitoring"</a>
                            <a href="/settings">"Tokens"</a>
                            <a href="/assistant">"Assistant"</a>
                            {(role == Role::Admin).then(|| view! { <a href="/team">"Team"</a> })}
                            <form method="post" action="/auth/logout" class="inline-form">
                                <button type="submit" class="secondary" id="logout">"Log out"</button>
                            </form>
                        </nav>
                    }
                })
            })}
        </Suspense>
    }
}

/// The secret just created, shown once with a warning.
fn shown_once(secret: Option<String>, what: &'static str) -> impl IntoView {
    secret.map(|secret| {
        view! {
            <div class="notice" role="status">
                <p>{format!("Your new {what}. Copy it now: it is not shown again.")}</p>
                <code class="secret" id="new-secret">{secret}</code>
            </div>
        }
    })
}

fn token_rows(tokens: Vec<TokenInfo>, revoke_base: &'static str) -> impl IntoView {
    if tokens.is_empty() {
        return view! { <p class="muted">"None yet."</p> }.into_any();
    }
    view! {
        <table class="tokens">
            <thead>
                <tr>
                    <th>"Name"</th>
                    <th>"Created"</th>
                    <th>"Expires"</th>
                    <th>"Last used"</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>
                {tokens
                    .into_iter()
                    .map(|t| {
                        let state = if t.revoked {
                            Some("revoked")
                        } else if t.expired {
                            Some("expired")
                        } else {
                            None
                        };
                        view! {
                            <tr data-token-id=t.id.to_string()>
                                <td>{t.name}</td>
                                <td>{short_timestamp(&t.created_at)}</td>
                                <td>{t.expires_at.as_deref().map_or_else(|| "never".to_owned(), short_timestamp)}</td>
                                <td>{t.last_used_at.as_deref().map_or_else(|| "never".to_owned(), short_timestamp)}</td>
                                <td>
                                    {match state {
                                        Some(s) => view! { <span class="muted">{s}</span> }.into_any(),
                                        None => {
                                            view! {
                                                <form method="post" action=format!("{revoke_base}/{}/revoke", t.id) class="inline-form">
                                                    <button type="submit" class="secondary">"Revoke"</button>
                                                </form>
                                            }
                                                .into_any()
                                        }
                                    }}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

fn expiry_select() -> impl IntoView {
    view! {
        <label>
            "Expires"
            <select name="expires_in_days">
                <option value="30">"in 30 days"</option>
                <option value="90" selected>"in 90 days"</option>
                <option value="365">"in a year"</option>
                <option value="0">"never"</option>
            </select>
        </label>
    }
}

/// `/settings`: personal access tokens for scripts.
#[component]
pub fn SettingsPage() -> impl IntoView {
    let page = OnceResource::new(personal_tokens());
    view! {
        <Title text="Tokens" />
        <section class="card">
            <h1>"Personal access tokens"</h1>
            <p class="muted">
                "For scripts: send one as " <code>"Authorization: Bearer st_pat_…"</code>
                ", e.g. " <code>"curl -H 'Authorization: Bearer st_pat_…' -F file=@data.csv …/api/datasets"</code> "."
            </p>
            {redirected_error()}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(TokensPage { tokens, new_secret, .. }) => {
                            view! {
                                {shown_once(new_secret, "token")}
                                {token_rows(tokens, "/account/tokens")}
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <h2>"New token"</h2>
            <form method="post" action="/account/tokens" class="stacked">
                <label>"Name" <input type="text" name="name" maxlength="100" required placeholder="nightly export" /></label>
                {expiry_select()}
                <button type="submit" id="create-token">"Create token"</button>
            </form>
        </section>
    }
}

/// `/assistant`: tokens an AI assistant uses with the MCP server, bound to
/// this team, and the configuration to paste into the assistant.
#[component]
pub fn AssistantPage() -> impl IntoView {
    let page = OnceResource::new(assistant_tokens());
    view! {
        <Title text="Connect an assistant" />
        <section class="card">
            <h1>"Connect an assistant"</h1>
            <p class="muted">
                "An assistant token opens the lakehouse tools (list, describe, query, status) for this team's data only."
            </p>
            {redirected_error()}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(TokensPage { tokens, new_secret, mcp_url }) => {
                            let url = mcp_url.unwrap_or_else(|| "http://127.0.0.1:8000/mcp".to_owned());
                            let config = new_secret.as_ref().map(|secret| client_config(&url, secret));
                            view! {
                                {shown_once(new_secret, "assistant token")}
                                {config.map(|c| view! {
                                    <p>"Paste this into your MCP client's configuration:"</p>
                                    <pre class="config" id="assistant-config">{c}</pre>
                                })}
                                <p class="muted small">"MCP server: " <code>{url}</code></p>
                                {token_rows(tokens, "/account/assistant-tokens")}
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <h2>"New assistant token"</h2>
            <form method="post" action="/account/assistant-tokens" class="stacked">
                <label>"Name" <input type="text" name="name" maxlength="100" required placeholder="Claude Desktop" /></label>
                {expiry_select()}
                <button type="submit" id="create-assistant-token">"Create assistant token"</button>
            </form>
        </section>
    }
}

/// The `mcpServers` entry MCP clients (Claude Desktop, Cursor, VS Code…) read.
pub fn client_config(url: &str, secret: &str) -> String {
    let config = serde_json::json!({
        "mcpServers": {
            "servicetsunami": {
                "type": "http",
                "url": url,
                "headers": { "Authorization": format!("Bearer {secret}") }
            }
        }
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

/// `/team`: members and invitation links (admins).
#[component]
pub fn TeamPage() -> impl IntoView {
    let page = OnceResource::new(team());
    view! {
        <Title text="Team" />
        <section class="card">
            {redirected_error()}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(page) => {
                            view! {
                                <h1>{format!("Team: {}", page.team)}</h1>
                                {page.new_link.map(|link| view! {
                                    <div class="notice" role="status">
                                        <p>"Send this sign-up link to the person you invite. It works once, for 7 days."</p>
                                        <code class="secret" id="invite-link">{link}</code>
                                    </div>
                                })}
                                <h2>"Members"</h2>
                                <ul class="members">
                                    {page.members.into_iter().map(|m| view! {
                                        <li>{m.email} " · " {m.role.as_str()} " · since " {short_timestamp(&m.created_at)}</li>
                                    }).collect_view()}
                                </ul>
                                <h2>"Invitations"</h2>
                                <ul class="invitations">
                                    {page.invitations.into_iter().map(|i| view! {
                                        <li>
                                            {i.role.as_str()} " · created " {short_timestamp(&i.created_at)} " · "
                                            {if i.used { "used".to_owned() } else { format!("expires {}", short_timestamp(&i.expires_at)) }}
                                        </li>
                                    }).collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <h2>"Invite someone"</h2>
            <form method="post" action="/account/invitations" class="inline-form">
                <label>
                    "Role "
                    <select name="role">
                        <option value="member" selected>"member"</option>
                        <option value="admin">"admin"</option>
                    </select>
                </label>
                <button type="submit" id="create-invite">"Create invitation link"</button>
            </form>
        </section>
    }
}
