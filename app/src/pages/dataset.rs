//! `/datasets/:id`: schema, preview and column statistics of one dataset.

use super::{
    components::{LiveBadge, SyncBadge},
    live::use_live_sync,
};
use crate::{
    api::{get_dataset, get_sync_detail, DeleteDataset, RetrySync, SyncAll, PREVIEW_ROWS},
    error::AppError,
    format::{human_bytes, parse_rfc3339_ms, short_timestamp, thousands},
    model::{
        ColumnSchema, ColumnStats, DatasetDetail, DatasetSummary, Preview, SyncDetail, SyncEvent,
        SyncState,
    },
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_params_map};
use uuid::Uuid;

#[component]
pub fn DatasetPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|s| Uuid::parse_str(&s).ok())
    };
    let detail = Resource::new(id, |id| async move {
        match id {
            Some(id) => get_dataset(id).await,
            None => Err(AppError::NotFound),
        }
    });

    view! {
        <p class="crumbs">
            <A href="/">"← Datasets"</A>
        </p>
        <Suspense fallback=|| view! { <p class="muted">"Loading dataset…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(d) => view! { <DatasetView detail=d /> }.into_any(),
                    Err(e) => {
                        #[cfg(feature = "ssr")]
                        if matches!(e, AppError::NotFound) {
                            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                                response.set_status(axum::http::StatusCode::NOT_FOUND);
                            }
                        }
                        view! {
                            <Title text="Dataset" />
                            <section class="card">
                                <p class="error" role="alert">{e.to_string()}</p>
                            </section>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn DatasetView(detail: DatasetDetail) -> impl IntoView {
    let DatasetDetail {
        summary,
        schema,
        preview,
        stats,
        versions,
    } = detail;
    let id = summary.id;
    let row_count = summary.row_count;
    let what = DeletionScope {
        name: summary.name.clone(),
        rows: summary.row_count,
        bronze_table: summary.sync.bronze_table.clone(),
        silver_table: summary.sync.silver_table.clone(),
    };
    view! {
        <Title text=summary.name.clone() />
        <DatasetFacts summary />
        <SyncSection id />
        <SchemaTable schema stats />
        <PreviewTable preview row_count />
        <super::versions::VersionsSection id versions />
        <DeleteSection id what />
    }
}

/// What deleting a dataset removes, for the confirmation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeletionScope {
    name: String,
    rows: i64,
    bronze_table: Option<String>,
    silver_table: Option<String>,
}

/// Delete, behind a confirmation that names what goes. Works without
/// JavaScript (a form post that lands on the list); once hydrated it deletes
/// in place and then goes to the list. If another window deletes the dataset,
/// this page says so.
#[island]
fn DeleteSection(id: Uuid, what: DeletionScope) -> impl IntoView {
    let live = use_live_sync();
    let delete = ServerAction::<DeleteDataset>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(window) = web_sys::window() {
                let _ = window.location().set_href("/");
            }
        }
    });
    let lakehouse = match (&what.bronze_table, &what.silver_table) {
        (Some(b), Some(s)) => format!(
            "its lakehouse tables {b} (bronze) and {s} (silver) and the files staged for them"
        ),
        _ => "any lakehouse tables and staged files a sync made".to_owned(),
    };
    view! {
        <section class="card danger" id="delete">
            <Show when=move || live.is_removed(id)>
                <p class="notice" role="status" id="deleted-elsewhere">
                    "This dataset has been deleted. "
                    <a href="/">"Back to the datasets"</a>
                </p>
            </Show>
            <details>
                <summary id="delete-dataset">"Delete this dataset…"</summary>
                <p id="delete-scope">
                    "Deleting "<strong>{what.name.clone()}</strong>" removes its "
                    {crate::format::thousands(what.rows)}" rows: the uploaded data, "
                    {lakehouse}". It cannot be undone."
                </p>
                <ActionForm action=delete attr:class="inline-form">
                    <input type="hidden" name="id" value=id.to_string() />
                    <button type="submit" id="confirm-delete" class="danger" disabled={move || delete.pending().get()}>
                        {format!("Delete {}", what.name)}
                    </button>
                </ActionForm>
                <span class="muted" role="status" id="delete-result">
                    {move || match delete.value().get() {
                        Some(Err(e)) => e.to_string(),
                        Some(Ok(())) => "Deleting…".to_owned(),
                        None => String::new(),
                    }}
                </span>
            </details>
        </section>
    }
}

/// The dataset's name and facts: file, format, size, when, sync badge.
#[component]
fn DatasetFacts(summary: DatasetSummary) -> impl IntoView {
    view! {
        <section class="card">
            <h1>{summary.name.clone()}</h1>
            <dl class="facts">
                <Fact label="File">{summary.file_name.clone()}</Fact>
                <Fact label="Format">{summary.source_format.clone()}</Fact>
                <div>
                    <dt>"Rows"</dt>
                    <dd id="row-count">{thousands(summary.row_count)}</dd>
                </div>
                <Fact label="Columns">{thousands(summary.column_count)}</Fact>
                <Fact label="Size">{human_bytes(summary.size_bytes)}</Fact>
                <Fact label="Version">
                    <a href="#versions" id="dataset-version">{summary.version}</a>
                </Fact>
                <Fact label="Uploaded">
                    <time datetime=summary.created_at.clone()>{short_timestamp(&summary.created_at)}</time>
                </Fact>
                <Fact label="Sync">
                    <LiveBadge state=summary.sync.clone() />
                </Fact>
            </dl>
        </section>
    }
}

/// One term and its description in a facts list.
#[component]
fn Fact(label: &'static str, children: Children) -> impl IntoView {
    view! {
        <div>
            <dt>{label}</dt>
            <dd>{children()}</dd>
        </div>
    }
}

/// Every column: its name as uploaded, the silver name, the type and statistics.
#[component]
fn SchemaTable(schema: Vec<ColumnSchema>, stats: Vec<ColumnStats>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Schema and statistics"</h2>
            <div class="table-scroll">
                <table class="schema">
                    <thead>
                        <tr>
                            <th>"Column"</th>
                            <th>"Normalised name"</th>
                            <th>"Type"</th>
                            <th class="num">"Nulls"</th>
                            <th class="num">"≈ Distinct"</th>
                            <th>"Min"</th>
                            <th>"Max"</th>
                            <th>"Distribution"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {schema
                            .into_iter()
                            .zip(stats)
                            .map(|(col, st)| view! { <SchemaRow col st /> })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

#[component]
fn SchemaRow(col: ColumnSchema, st: ColumnStats) -> impl IntoView {
    let name = col.name.clone();
    view! {
        <tr>
            <td>{col.name}</td>
            <td>
                <code>{col.normalized_name}</code>
            </td>
            <td>
                <code>{col.data_type}</code>
            </td>
            <td class="num">{thousands(st.null_count)}</td>
            <td class="num">{thousands(st.approx_distinct)}</td>
            <td class="clip">{st.min.unwrap_or_default()}</td>
            <td class="clip">{st.max.unwrap_or_default()}</td>
            <td>{st.histogram.map(|h| view! { <Sparkline counts=h column=name /> })}</td>
        </tr>
    }
}

/// The first rows, every value as text; NULL shown as such.
#[component]
fn PreviewTable(preview: Preview, row_count: i64) -> impl IntoView {
    let shown = preview.rows.len();
    view! {
        <section class="card">
            <h2>"Preview"</h2>
            <p class="muted small">
                {format!(
                    "First {} of {} rows (at most {PREVIEW_ROWS}).",
                    thousands(shown as i64),
                    thousands(row_count),
                )}
            </p>
            <div class="table-scroll">
                <table class="preview">
                    <thead>
                        <tr>
                            {preview
                                .columns
                                .into_iter()
                                .map(|c| view! { <th>{c}</th> })
                                .collect_view()}
                        </tr>
                    </thead>
                    <tbody>
                        {preview
                            .rows
                            .into_iter()
                            .map(|row| {
                                view! {
                                    <tr>
                                        {row
                                            .into_iter()
                                            .map(|v| match v {
                                                Some(v) => view! { <td>{v}</td> }.into_any(),
                                                None => view! { <td class="null">"NULL"</td> }.into_any(),
                                            })
                                            .collect_view()}
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>
    }
}

/// A histogram as a tiny bar chart.
#[component]
fn Sparkline(counts: Vec<i64>, column: String) -> impl IntoView {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = 100.0 / counts.len().max(1) as f64;
    let total: i64 = counts.iter().sum();
    view! {
        <svg
            class="spark"
            viewBox="0 0 100 24"
            preserveAspectRatio="none"
            role="img"
            aria-label=format!("distribution of {column}: {total} values in {} bins", counts.len())
        >
            {counts
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let h = if *n == 0 { 0.0 } else { (*n as f64 / max * 23.0).max(1.0) };
                    view! {
                        <rect
                            x=format!("{:.2}", i as f64 * width)
                            y=format!("{:.2}", 24.0 - h)
                            width=format!("{:.2}", (width - 0.6).max(0.4))
                            height=format!("{h:.2}")
                        >
                            <title>{n.to_string()}</title>
                        </rect>
                    }
                })
                .collect_view()}
        </svg>
    }
}

/// The Sync section: live state, table names, actions and the timeline. An
/// island: it fetches the timeline again when a live event about the dataset
/// arrives, and its buttons work in place.
#[island]
fn SyncSection(id: Uuid) -> impl IntoView {
    let live = use_live_sync();
    let retry = ServerAction::<RetrySync>::new();
    let sync_all = ServerAction::<SyncAll>::new();
    // Fetched again whenever a live event about this dataset arrives, but
    // not once it is being deleted or gone: the server would answer 404
    // (the page says it was deleted, or is already leaving).
    let gone = move || {
        live.is_removed(id)
            || live
                .state_of(id)
                .is_some_and(|s| s.status == crate::domain::SyncStatus::Deleting)
    };
    let detail = Resource::new(
        move || {
            (
                live.revision_of(id),
                retry.version().get(),
                sync_all.version().get(),
                gone(),
            )
        },
        move |(.., gone)| async move {
            if gone {
                Err(AppError::Deleting)
            } else {
                get_sync_detail(id).await
            }
        },
    );
    view! {
        <section class="card" id="sync">
            <h2>"Sync"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading sync status…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <SyncDetailView detail=d /> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            <div class="actions">
                <ActionForm action=retry attr:class="inline-form">
                    <input type="hidden" name="id" value=id.to_string() />
                    <button type="submit" id="retry-sync" class="secondary">
                        "Retry sync"
                    </button>
                </ActionForm>
                <ActionForm action=sync_all attr:class="inline-form">
                    <button type="submit" id="sync-all" class="secondary">
                        "Sync all unsynced"
                    </button>
                </ActionForm>
                <span class="muted" role="status" id="sync-action-result">
                    {move || match (retry.value().get(), sync_all.value().get()) {
                        (Some(Err(e)), _) | (_, Some(Err(e))) => e.to_string(),
                        (_, Some(Ok(n))) => format!("Sync requested for {n} dataset(s)."),
                        (Some(Ok(())), _) => "Sync requested.".to_owned(),
                        (None, None) => String::new(),
                    }}
                </span>
            </div>
        </section>
    }
}

#[component]
fn SyncDetailView(detail: SyncDetail) -> impl IntoView {
    let SyncDetail {
        state,
        events,
        available,
        catalog_explorer_url,
    } = detail;
    view! {
        {(!available)
            .then(|| {
                view! {
                    <p class="muted">
                        "Lakehouse sync is not configured on this server; datasets stay local."
                    </p>
                }
            })}
        <SyncFacts state=state.clone() catalog_explorer_url />
        {state
            .error
            .clone()
            .map(|e| view! { <p class="error" id="sync-error">"Last error: " {e}</p> })}
        <h3>"Timeline"</h3>
        <Timeline events />
    }
}

/// Status, when it last synced, the two tables and a link to Databricks.
#[component]
fn SyncFacts(state: SyncState, catalog_explorer_url: Option<String>) -> impl IntoView {
    let live = use_live_sync();
    let last_sync_at = state.last_sync_at.clone();
    let since = move || {
        let at = last_sync_at.as_deref()?;
        Some(time_ago(at, live.now_ms()?))
    };
    let (bronze, silver) = (state.bronze_table.clone(), state.silver_table.clone());
    let last_sync_text = state.last_sync_at.clone();
    view! {
        <dl class="facts">
            <Fact label="Status">
                <SyncBadge state=state.clone() />
            </Fact>
            <div>
                <dt>"Last synced"</dt>
                <dd id="last-sync">
                    {match last_sync_text {
                        Some(at) => {
                            view! {
                                <time datetime=at.clone()>{short_timestamp(&at)}</time>
                                <span class="muted">{move || since().map(|s| format!(" ({s})"))}</span>
                            }
                                .into_any()
                        }
                        None => view! { "never" }.into_any(),
                    }}
                </dd>
            </div>
            <TableName label="Bronze table" id="bronze-table" name=bronze />
            <TableName label="Silver table" id="silver-table" name=silver />
            {catalog_explorer_url
                .map(|url| {
                    view! {
                        <Fact label="Databricks">
                            <a href=url target="_blank" rel="noopener">
                                "Open in Catalog Explorer"
                            </a>
                        </Fact>
                    }
                })}
        </dl>
    }
}

/// Every step attempt of every sync, oldest first.
#[component]
fn Timeline(events: Vec<SyncEvent>) -> impl IntoView {
    if events.is_empty() {
        return view! { <p class="muted" id="timeline-empty">"No sync has run yet."</p> }
            .into_any();
    }
    view! {
        <div class="scroll">
            <table class="timeline" id="timeline">
                <thead>
                    <tr>
                        <th>"Step"</th>
                        <th>"Attempt"</th>
                        <th>"Outcome"</th>
                        <th>"Started"</th>
                        <th>"Duration"</th>
                        <th>"Error"</th>
                    </tr>
                </thead>
                <tbody>
                    {events
                        .into_iter()
                        .map(|e| {
                            let (step, outcome) = (e.step.as_str(), e.outcome.as_str());
                            view! {
                                <tr data-step=step data-outcome=outcome>
                                    <td>{step}</td>
                                    <td>{format!("{} of {}", e.attempt, e.max_attempts)}</td>
                                    <td class=format!("outcome outcome-{outcome}")>{outcome}</td>
                                    <td>
                                        <time datetime=e.started_at.clone()>{short_timestamp(&e.started_at)}</time>
                                    </td>
                                    <td>{e.duration_ms.map(human_duration_ms).unwrap_or_else(|| "…".to_owned())}</td>
                                    <td class="error-cell">{e.error.unwrap_or_default()}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// A table name with a copy button (the button works once the page is hydrated).
#[component]
fn TableName(label: &'static str, id: &'static str, name: Option<String>) -> impl IntoView {
    view! {
        <div>
            <dt>{label}</dt>
            <dd>
                {match name {
                    Some(name) => {
                        let copied = RwSignal::new(false);
                        let value = name.clone();
                        view! {
                            <code id=id>{name}</code>
                            " "
                            <button
                                type="button"
                                class="copy"
                                aria-label=format!("Copy the {}", label.to_lowercase())
                                on:click=move |_| {
                                    copy_to_clipboard(&value);
                                    copied.set(true);
                                }
                            >
                                {move || if copied.get() { "copied" } else { "copy" }}
                            </button>
                        }
                            .into_any()
                    }
                    None => view! { <span class="muted">"—"</span> }.into_any(),
                }}
            </dd>
        </div>
    }
}

fn copy_to_clipboard(_text: &str) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let Some(window) = web_sys::window() else {
            return;
        };
        let Ok(navigator) = js_sys::Reflect::get(&window, &"navigator".into()) else {
            return;
        };
        let Ok(clipboard) = js_sys::Reflect::get(&navigator, &"clipboard".into()) else {
            return;
        };
        let Ok(write) = js_sys::Reflect::get(&clipboard, &"writeText".into()) else {
            return;
        };
        if let Some(write) = write.dyn_ref::<js_sys::Function>() {
            let _ = write.call1(&clipboard, &_text.into());
        }
    }
}

/// "42 s ago", "5 min ago", "3 h ago", "2 d ago".
fn time_ago(rfc3339: &str, now_ms: f64) -> String {
    let Some(then_ms) = parse_rfc3339_ms(rfc3339) else {
        return String::new();
    };
    let secs = ((now_ms - then_ms) / 1000.0).max(0.0) as u64;
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

fn human_duration_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ago_reads_naturally() {
        let at = "2026-11-25T10:00:00.000Z";
        let base = parse_rfc3339_ms(at).unwrap();
        assert_eq!(time_ago(at, base + 42_000.0), "42 s ago");
        assert_eq!(time_ago(at, base + 5.0 * 60_000.0), "5 min ago");
        assert_eq!(time_ago(at, base + 3.0 * 3_600_000.0), "3 h ago");
        assert_eq!(human_duration_ms(250), "250 ms");
        assert_eq!(human_duration_ms(1500), "1.5 s");
    }
}
