//! The pages, the router and the HTML shell.
//!
//! **Islands.** Every page renders on the server; only the interactive parts
//! are `#[island]`s that hydrate in the browser (the upload form, the
//! datasets list, live badges, the dataset page's sync section). Static parts
//! (a dataset's schema, statistics and preview) ship no code to the browser,
//! which keeps the bundle small. Islands share page-global state through
//! [`live`], not context, and navigate with plain links.

mod account;
mod charts;
mod components;
mod dataset;
mod datasets;
pub mod live;
mod monitor;
mod query;
#[cfg(feature = "hydrate")]
mod upload;
mod versions;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, SsrMode,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // Every page gets a fresh CSP nonce: the hydration scripts carry it, and
    // the Content-Security-Policy header allows only scripts that do.
    #[cfg(feature = "ssr")]
    crate::ssr::auth::set_page_csp();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/servicetsunami.css" />
        <Title formatter=|text| format!("{text} · ServiceTsunami") />
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    "ServiceTsunami"
                </A>
                <span class="tagline">"datasets → lakehouse"</span>
                <account::UserMenu />
            </header>
            <main>
                <Routes fallback=|| view! { <NotFound /> }>
                    // Async: the server sends a page only once its data is in,
                    // so it reads fine without JavaScript (out-of-order
                    // streaming needs JS to place the late fragments) and a
                    // missing dataset can still answer 404.
                    <Route path=path!("/") view=datasets::DatasetsPage ssr=SsrMode::Async />
                    <Route path=path!("/datasets/:id") view=dataset::DatasetPage ssr=SsrMode::Async />
                    <Route
                        path=path!("/datasets/:id/versions/:staged")
                        view=versions::StagedVersionPage
                        ssr=SsrMode::Async
                    />
                    <Route path=path!("/query") view=query::QueryPage ssr=SsrMode::Async />
                    <Route path=path!("/monitoring") view=monitor::MonitoringPage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=account::LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/signup") view=account::SignupPage ssr=SsrMode::Async />
                    <Route path=path!("/settings") view=account::SettingsPage ssr=SsrMode::Async />
                    <Route path=path!("/assistant") view=account::AssistantPage ssr=SsrMode::Async />
                    <Route path=path!("/team") view=account::TeamPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
        <HydrationDone />
    }
}

/// The last island on every page: when it hydrates, every island before it
/// has. Then, once hydration has returned (a zero timeout, so no live
/// update lands mid-hydration), the live status starts for a signed-in user
/// and the page is marked ready for the end-to-end tests.
#[island]
fn HydrationDone() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    set_timeout(
        || {
            let Some(window) = web_sys::window() else {
                return;
            };
            let signed_in = window
                .document()
                .and_then(|d| d.get_element_by_id("signed-in-as"))
                .is_some();
            if signed_in {
                live::start();
            }
            let _ = js_sys::Reflect::set(
                &window,
                &wasm_bindgen::JsValue::from_str("__servicetsunami_hydrated"),
                &wasm_bindgen::JsValue::TRUE,
            );
        },
        std::time::Duration::ZERO,
    );
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
        <section class="card">
            <h1>"Page not found"</h1>
            <p>
                <A href="/">"Back to the datasets"</A>
            </p>
        </section>
    }
}
