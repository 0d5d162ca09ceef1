//! `/datasets/:id`: schema, preview and column statistics of one dataset.

use super::components::SyncBadge;
use crate::{
    api::{get_dataset, RetrySync, PREVIEW_ROWS},
    error::AppError,
    format::{human_bytes, short_timestamp, thousands},
    model::DatasetDetail,
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
    } = detail;
    let shown = preview.rows.len();
    view! {
        <Title text=summary.name.clone() />
        <section class="card">
            <h1>{summary.name.clone()}</h1>
            <dl class="facts">
                <div>
                    <dt>"File"</dt>
                    <dd>{summary.file_name.clone()}</dd>
                </div>
                <div>
                    <dt>"Format"</dt>
                    <dd>{summary.source_format.clone()}</dd>
                </div>
                <div>
                    <dt>"Rows"</dt>
                    <dd id="row-count">{thousands(summary.row_count)}</dd>
                </div>
                <div>
                    <dt>"Columns"</dt>
                    <dd>{thousands(summary.column_count)}</dd>
                </div>
                <div>
                    <dt>"Size"</dt>
                    <dd>{human_bytes(summary.size_bytes)}</dd>
                </div>
                <div>
                    <dt>"Uploaded"</dt>
                    <dd>
                        <time datetime=summary.created_at.clone()>{short_timestamp(&summary.created_at)}</time>
                    </dd>
                </div>
                <div>
                    <dt>"Sync"</dt>
                    <dd>
                        <SyncBadge status=summary.sync_status />
                    </dd>
                </div>
            </dl>
            <RetrySyncForm id=summary.id />
        </section>

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
                        </tr>
                    </thead>
                    <tbody>
                        {schema
                            .iter()
                            .zip(stats.iter())
                            .map(|(col, st)| {
                                view! {
                                    <tr>
                                        <td>{col.name.clone()}</td>
                                        <td>
                                            <code>{col.normalized_name.clone()}</code>
                                        </td>
                                        <td>
                                            <code>{col.data_type.clone()}</code>
                                        </td>
                                        <td class="num">{thousands(st.null_count)}</td>
                                        <td class="num">{thousands(st.approx_distinct)}</td>
                                        <td class="clip">{st.min.clone().unwrap_or_default()}</td>
                                        <td class="clip">{st.max.clone().unwrap_or_default()}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
        </section>

        <section class="card">
            <h2>"Preview"</h2>
            <p class="muted small">
                {format!(
                    "First {} of {} rows (at most {PREVIEW_ROWS}).",
                    thousands(shown as i64),
                    thousands(summary.row_count),
                )}
            </p>
            <div class="table-scroll">
                <table class="preview">
                    <thead>
                        <tr>
                            {preview
                                .columns
                                .iter()
                                .map(|c| view! { <th>{c.clone()}</th> })
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

/// "Sync again": a manual retry after `failed`, or a re-sync.
#[component]
fn RetrySyncForm(id: Uuid) -> impl IntoView {
    let retry = ServerAction::<RetrySync>::new();
    view! {
        <ActionForm action=retry attr:class="inline-form">
            <input type="hidden" name="id" value=id.to_string() />
            <button type="submit" id="retry-sync" class="secondary">
                "Sync again"
            </button>
        </ActionForm>
        <span class="muted" role="status" id="retry-sync-result">
            {move || match retry.value().get() {
                None => String::new(),
                Some(Ok(())) => "Sync requested.".to_owned(),
                Some(Err(e)) => e.to_string(),
            }}
        </span>
    }
}
