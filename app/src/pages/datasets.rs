//! `/`: the upload form and the tenant's datasets.

use super::{components::SyncBadge, live::use_live_sync};
use crate::{
    api::{list_datasets, SyncAll},
    format::{human_bytes, short_timestamp, thousands},
    model::DatasetSummary,
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn DatasetsPage() -> impl IntoView {
    let query = use_query_map();
    // Set by the server's redirect after a failed upload without JavaScript.
    let redirected_error = query.read_untracked().get("upload_error");
    // `?after=<token>`: an older page of the list (plain links, so paging
    // works without JavaScript too).
    let after = query.read_untracked().get("after");
    let filters = ListFilters {
        q: query.read_untracked().get("q").unwrap_or_default(),
        status: query.read_untracked().get("status").unwrap_or_default(),
        sort: query.read_untracked().get("sort").unwrap_or_default(),
    };
    view! {
        <Title text="Datasets" />
        <UploadForm redirected_error />
        <DatasetsPanel after filters />
    }
}

/// The list's search, status filter and order, as the URL carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListFilters {
    q: String,
    status: String,
    sort: String,
}

impl ListFilters {
    fn is_default(&self) -> bool {
        self.q.is_empty() && self.status.is_empty() && self.sort.is_empty()
    }

    /// `/?q=…&status=…&sort=…` (and `&after=…`), leaving out what is empty.
    fn href(&self, after: Option<&str>) -> String {
        let pairs = [
            ("q", self.q.as_str()),
            ("status", self.status.as_str()),
            ("sort", self.sort.as_str()),
            ("after", after.unwrap_or("")),
        ];
        let query: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", crate::format::percent_encode(v)))
            .collect();
        if query.is_empty() {
            "/".to_owned()
        } else {
            format!("/?{}", query.join("&"))
        }
    }
}

/// Search, status and order: a GET form, so it works without JavaScript and
/// every view is a link.
#[component]
fn FilterForm(filters: ListFilters) -> impl IntoView {
    view! {
        <form method="get" action="/" class="filters" id="list-filters">
            <input type="search" name="q" value=filters.q.clone() placeholder="Search names" aria-label="Search names" />
            <select name="status" aria-label="Sync status">
                <option value="" selected={filters.status.is_empty()}>"any status"</option>
                {crate::domain::SyncStatus::ALL
                    .iter()
                    .map(|s| {
                        view! {
                            <option value=s.as_str() selected={filters.status == s.as_str()}>
                                {s.label()}
                            </option>
                        }
                    })
                    .collect_view()}
            </select>
            <select name="sort" aria-label="Order">
                {crate::model::DatasetSort::ALL
                    .iter()
                    .map(|s| {
                        let label = match s {
                            crate::model::DatasetSort::Date => "newest first",
                            crate::model::DatasetSort::Name => "name",
                            crate::model::DatasetSort::Size => "largest first",
                        };
                        view! {
                            <option value=s.as_str() selected={filters.sort == s.as_str()}>{label}</option>
                        }
                    })
                    .collect_view()}
            </select>
            <button type="submit" class="secondary">"Apply"</button>
        </form>
    }
}

/// The tenant's datasets with live badges, fetched again after each upload
/// from this page and after "Sync all unsynced".
#[island]
fn DatasetsPanel(after: Option<String>, filters: ListFilters) -> impl IntoView {
    let live = use_live_sync();
    let sync_all = ServerAction::<SyncAll>::new();
    let older_page = after.is_some();
    let filtered = !filters.is_default();
    let (q, status, sort) = (
        Some(filters.q.clone()),
        Some(filters.status.clone()),
        Some(filters.sort.clone()),
    );
    // Fetched again after an upload from this page, a bulk sync, and when
    // a dataset appears or leaves in any window of the tenant.
    let datasets = Resource::new(
        move || (live.uploads(), live.membership(), sync_all.version().get()),
        move |_| list_datasets(after.clone(), q.clone(), status.clone(), sort.clone()),
    );

    view! {
        <section class="card">
            <div class="card-head">
                <h1>"Datasets"</h1>
                <ActionForm action=sync_all attr:class="inline-form">
                    <button type="submit" id="sync-all" class="secondary">
                        "Sync all unsynced"
                    </button>
                </ActionForm>
            </div>
            <FilterForm filters=filters.clone() />
            <p class="muted" role="status" id="sync-all-result">
                {move || match sync_all.value().get() {
                    None => String::new(),
                    Some(Ok(0)) => "Nothing to sync: every dataset is synced or on its way.".to_owned(),
                    Some(Ok(n)) => format!("Sync requested for {n} dataset(s)."),
                    Some(Err(e)) => e.to_string(),
                }}
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading datasets…"</p> }>
                {move || {
                    let filters = filters.clone();
                    Suspend::new(async move {
                    match datasets.await {
                        Ok(list) if list.datasets.is_empty() && filtered => {
                            view! {
                                <p class="muted" id="no-datasets">
                                    "No dataset matches. " <a href="/">"Show all"</a>
                                </p>
                            }
                                .into_any()
                        }
                        Ok(list) if list.datasets.is_empty() && !older_page => {
                            view! {
                                <p class="muted" id="no-datasets">
                                    "No datasets yet. Upload a CSV, TSV, JSON, NDJSON or Parquet file (gzip is fine too)."
                                </p>
                            }
                                .into_any()
                        }
                        Ok(list) => {
                            view! {
                                <DatasetsTable datasets=list.datasets />
                                <nav class="pager" aria-label="More datasets">
                                    {older_page.then(|| view! { <a href=filters.href(None) id="newest-page">"← First page"</a> })}
                                    {list.next.map(|token| view! {
                                        <a href=filters.href(Some(&token)) id="older-page">"Next page →"</a>
                                    })}
                                </nav>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn DatasetsTable(datasets: Vec<DatasetSummary>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="datasets">
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Format"</th>
                        <th class="num">"Rows"</th>
                        <th class="num">"Columns"</th>
                        <th class="num">"Size"</th>
                        <th>"Uploaded"</th>
                        <th>"Sync"</th>
                    </tr>
                </thead>
                <tbody>
                    {datasets
                        .into_iter()
                        .map(|d| {
                            view! {
                                <tr data-dataset-id=d.id.to_string()>
                                    <td>
                                        <a href=format!("/datasets/{}", d.id)>{d.name.clone()}</a>
                                        <div class="muted small">{d.file_name.clone()}</div>
                                    </td>
                                    <td>{d.source_format.clone()}</td>
                                    <td class="num">{thousands(d.row_count)}</td>
                                    <td class="num">{thousands(d.column_count)}</td>
                                    <td class="num">{human_bytes(d.size_bytes)}</td>
                                    <td>
                                        <time datetime=d.created_at.clone()>{short_timestamp(&d.created_at)}</time>
                                    </td>
                                    <td>
                                        <SyncBadge state=d.sync.clone() />
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// The upload form. Without JavaScript it is a plain multipart form whose
/// answer redirects back here (with `redirected_error` on failure); once
/// hydrated it uploads through XHR so it can show progress, and reports
/// errors inline.
#[island]
fn UploadForm(redirected_error: Option<String>) -> impl IntoView {
    let live = use_live_sync();
    let on_uploaded = Callback::new(move |()| live.uploaded());
    let (error, set_error) = signal(None::<String>);
    let (notice, set_notice) = signal(None::<String>);
    let (progress, set_progress) = signal(None::<f64>);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let file_ref = NodeRef::<leptos::html::Input>::new();
    let name_ref = NodeRef::<leptos::html::Input>::new();
    let uploading = move || progress.get().is_some();

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            ev.prevent_default();
            set_error.set(None);
            set_notice.set(None);
            super::upload::submit(
                &form_ref,
                &file_ref,
                super::upload::Handlers {
                    progress: set_progress,
                    error: set_error,
                    notice: set_notice,
                    on_uploaded,
                },
            );
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (
            ev,
            on_uploaded,
            set_progress,
            set_notice,
            set_error,
            &form_ref,
        );
    };

    view! {
        <section class="card" id="upload">
            <h2>"Upload a dataset"</h2>
            <form
                node_ref=form_ref
                method="post"
                action="/api/datasets"
                enctype="multipart/form-data"
                on:submit=on_submit
            >
                <FileDrop file_ref name_ref />
                <label class="field">
                    <span>"Dataset name"</span>
                    <input
                        node_ref=name_ref
                        type="text"
                        name="name"
                        maxlength="200"
                        placeholder="defaults to the file name"
                    />
                </label>
                <button type="submit" disabled=uploading>
                    {move || if uploading() { "Uploading…" } else { "Upload" }}
                </button>
                <Show when=uploading>
                    <progress
                        id="upload-progress"
                        max="100"
                        value=move || format!("{:.0}", progress.get().unwrap_or(0.0) * 100.0)
                    ></progress>
                </Show>
            </form>
            <UploadMessages
                error=Signal::derive(move || error.get().or_else(|| redirected_error.clone()))
                notice=notice.into()
            />
        </section>
    }
}

/// The file input inside a drop zone. Choosing or dropping a file suggests
/// the dataset name from the file's name (once hydrated).
#[component]
fn FileDrop(
    file_ref: NodeRef<leptos::html::Input>,
    name_ref: NodeRef<leptos::html::Input>,
) -> impl IntoView {
    let (dragging, set_dragging) = signal(false);
    let on_file_chosen = move || {
        #[cfg(feature = "hydrate")]
        super::upload::default_name_from_file(&file_ref, &name_ref);
        #[cfg(not(feature = "hydrate"))]
        let _ = (&file_ref, &name_ref);
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        set_dragging.set(false);
        #[cfg(feature = "hydrate")]
        super::upload::take_dropped_file(&ev, &file_ref);
        on_file_chosen();
    };
    view! {
        <label
            class="dropzone"
            class:dragging=move || dragging.get()
            on:dragover=move |ev: leptos::ev::DragEvent| {
                ev.prevent_default();
                set_dragging.set(true);
            }
            on:dragleave=move |_| set_dragging.set(false)
            on:drop=on_drop
        >
            <span>"Drop a file here or choose one"</span>
            <input
                node_ref=file_ref
                type="file"
                name="file"
                required
                accept=".csv,.tsv,.txt,.json,.ndjson,.jsonl,.parquet,.gz,text/csv,application/json"
                on:change=move |_| on_file_chosen()
            />
        </label>
    }
}

/// The upload's error (inline, or from the no-JavaScript redirect) and its notice.
#[component]
fn UploadMessages(error: Signal<Option<String>>, notice: Signal<Option<String>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().is_some()>
            <p class="error" role="alert" id="upload-error">
                {move || error.get()}
            </p>
        </Show>
        <Show when=move || notice.get().is_some()>
            <p class="notice" role="status" id="upload-notice">
                {move || notice.get()}
            </p>
        </Show>
    }
}
