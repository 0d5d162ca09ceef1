//! New versions of a dataset, without JavaScript: the dataset page lists
//! its versions and has a form that uploads a file as a possible next
//! version; the server converts and stages it and redirects to
//! `/datasets/:id/versions/:staged`, which shows the schema difference
//! (added, removed and type-changed columns) and lets the uploader replace
//! the dataset's rows or append to them (append only when the schemas
//! agree; the page says why not otherwise), or discard the file.

use crate::{
    api::get_staged_version,
    error::AppError,
    format::{human_bytes, short_timestamp, thousands},
    model::{DatasetVersion, StagedVersion},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use uuid::Uuid;

/// The dataset page's Versions section: the history, newest first, and the
/// form for a new version.
#[component]
pub fn VersionsSection(id: Uuid, versions: Vec<DatasetVersion>) -> impl IntoView {
    let error = use_query_map().read_untracked().get("version_error");
    view! {
        <section class="card" id="versions">
            <h2>"Versions"</h2>
            {error.map(|e| view! { <p class="error" role="alert" id="version-error">{e}</p> })}
            <div class="table-scroll">
                <table class="listing" id="version-history">
                    <thead>
                        <tr>
                            <th>"Version"</th>
                            <th>"How"</th>
                            <th>"File"</th>
                            <th>"Rows"</th>
                            <th>"Columns"</th>
                            <th>"Size"</th>
                            <th>"Uploaded by"</th>
                            <th>"When"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {versions
                            .into_iter()
                            .map(|v| {
                                view! {
                                    <tr data-version=v.version>
                                        <td>{v.version}</td>
                                        <td>{v.mode.as_str()}</td>
                                        <td>{v.file_name}</td>
                                        <td>{thousands(v.row_count)}</td>
                                        <td>{thousands(v.column_count)}</td>
                                        <td>{human_bytes(v.size_bytes)}</td>
                                        <td>{v.uploaded_by.unwrap_or_else(|| "—".to_owned())}</td>
                                        <td class="muted small">{short_timestamp(&v.created_at)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </div>
            <form
                method="post"
                action=format!("/api/datasets/{id}/versions")
                enctype="multipart/form-data"
                class="actions"
                id="new-version-form"
            >
                <label>
                    "New version "
                    <input type="file" name="file" id="new-version-file" required />
                </label>
                <input type="hidden" name="mode" value="preview" />
                <button type="submit" id="new-version-submit">"Upload and compare"</button>
                <span class="muted small">
                    "You see how its columns differ before you choose to replace or append."
                </span>
            </form>
        </section>
    }
}

/// `/datasets/:id/versions/:staged`.
#[component]
pub fn StagedVersionPage() -> impl IntoView {
    let params = use_params_map();
    let ids = move || {
        let p = params.read();
        let get = |k| p.get(k).and_then(|s| Uuid::parse_str(&s).ok());
        get("id").zip(get("staged"))
    };
    let staged = Resource::new(ids, |ids| async move {
        match ids {
            Some((dataset, staged)) => get_staged_version(dataset, staged).await,
            None => Err(AppError::NotFound),
        }
    });
    let error = use_query_map().read_untracked().get("error");
    view! {
        <Title text="New version" />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || {
                let error = error.clone();
                Suspend::new(async move {
                    match staged.await {
                        Ok(s) => view! { <StagedView staged=s error /> }.into_any(),
                        Err(e) => {
                            #[cfg(feature = "ssr")]
                            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                                response.set_status(
                                    axum::http::StatusCode::from_u16(e.status())
                                        .unwrap_or(axum::http::StatusCode::NOT_FOUND),
                                );
                            }
                            view! {
                                <section class="card">
                                    <h1>"New version"</h1>
                                    <p class="error" role="alert">
                                        {format!(
                                            "{e} (a staged file is kept for a day, and until a version is made of it)"
                                        )}
                                    </p>
                                    <p><a href="/">"Back to the datasets"</a></p>
                                </section>
                            }
                                .into_any()
                        }
                    }
                })
            }}
        </Suspense>
    }
}

#[component]
fn StagedView(staged: StagedVersion, error: Option<String>) -> impl IntoView {
    let StagedVersion {
        id,
        dataset_id,
        dataset_name,
        current_version,
        file_name,
        row_count,
        size_bytes,
        diff,
        append_conflicts,
        ..
    } = staged;
    let action = format!("/api/datasets/{dataset_id}/versions/staged/{id}");
    let can_append = append_conflicts.is_empty();
    let unchanged = diff.is_empty();
    view! {
        <p class="crumbs">
            <a href=format!("/datasets/{dataset_id}")>{format!("← {dataset_name}")}</a>
        </p>
        <section class="card" id="staged-version">
            <h1>{format!("New version {} of {dataset_name}", current_version + 1)}</h1>
            <p class="muted">
                {format!("{file_name} · {} rows · {}", thousands(row_count), human_bytes(size_bytes))}
            </p>
            {error.map(|e| view! { <p class="error" role="alert" id="commit-error">{e}</p> })}
            <h2>"Schema difference"</h2>
            {if unchanged {
                view! { <p id="schema-same">"Same columns, same types."</p> }.into_any()
            } else {
                view! {
                    <table class="listing" id="schema-diff">
                        <thead>
                            <tr>
                                <th>"Column"</th>
                                <th>"Change"</th>
                                <th>"Type"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {diff
                                .added
                                .into_iter()
                                .map(|c| {
                                    view! {
                                        <tr class="added" data-change="added">
                                            <td>{c.name}</td>
                                            <td>"added"</td>
                                            <td>{c.data_type}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                            {diff
                                .removed
                                .into_iter()
                                .map(|c| {
                                    view! {
                                        <tr class="removed" data-change="removed">
                                            <td>{c.name}</td>
                                            <td>"removed"</td>
                                            <td>{c.data_type}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                            {diff
                                .changed
                                .into_iter()
                                .map(|c| {
                                    view! {
                                        <tr class="changed" data-change="type">
                                            <td>{c.name}</td>
                                            <td>
                                                {if c.widens { "type widens" } else { "type changes" }}
                                            </td>
                                            <td>{format!("{} → {}", c.from, c.to)}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
            <div class="version-choices">
                <form method="post" action=action.clone()>
                    <input type="hidden" name="mode" value="replace" />
                    <button type="submit" id="replace-version">"Replace"</button>
                    <span class="muted small">
                        " The dataset becomes this file's rows, whatever its columns."
                    </span>
                </form>
                <form method="post" action=action.clone()>
                    <input type="hidden" name="mode" value="append" />
                    <button type="submit" id="append-version" disabled=!can_append>
                        "Append"
                    </button>
                    {if can_append {
                        view! {
                            <span class="muted small">
                                " Its rows join the dataset's (earlier rows get no value in added columns)."
                            </span>
                        }
                            .into_any()
                    } else {
                        view! {
                            <ul class="error small" id="append-conflicts">
                                {append_conflicts
                                    .into_iter()
                                    .map(|c| view! { <li>{c}</li> })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }}
                </form>
            </div>
        </section>
    }
}
