//! `/query`: a SQL editor over the tenant's datasets (each a table under its
//! normalised name), run locally, on the lakehouse, or wherever `auto`
//! decides. The editor is a plain GET form, so a query is a link and the page
//! works without JavaScript; the chart is an island.

use crate::{
    api::{query_history, query_tables, run_query},
    format::thousands,
    model::{QueryAnswer, QueryColumn, QueryEngine, QueryHistoryEntry, QueryTable},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn QueryPage() -> impl IntoView {
    let query = use_query_map();
    let sql = query.read_untracked().get("sql").unwrap_or_default();
    let engine = query
        .read_untracked()
        .get("engine")
        .and_then(|e| QueryEngine::parse(&e))
        .unwrap_or_default();
    let tables = Resource::new(|| (), |_| query_tables());
    let to_run = sql.clone();
    let answer = Resource::new(
        || (),
        move |_| {
            let sql = to_run.clone();
            async move {
                if sql.trim().is_empty() {
                    None
                } else {
                    Some(run_query(sql, engine.as_str().to_owned()).await)
                }
            }
        },
    );
    let history = Resource::new(|| (), |_| query_history());
    let to_download = sql.clone();
    view! {
        <Title text="Query" />
        <section class="card" id="query">
            <h1>"Query"</h1>
            <form method="get" action="/query" class="query-form">
                <textarea
                    name="sql"
                    id="sql"
                    rows="8"
                    spellcheck="false"
                    placeholder="SELECT * FROM my_dataset LIMIT 10"
                >
                    {sql.clone()}
                </textarea>
                <div class="actions">
                    <label>
                        "Engine "
                        <select name="engine" id="engine">
                            {[QueryEngine::Auto, QueryEngine::Local, QueryEngine::Lakehouse]
                                .into_iter()
                                .map(|e| {
                                    view! {
                                        <option value=e.as_str() selected={e == engine}>
                                            {e.as_str()}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                    </label>
                    <button type="submit" id="run-query">"Run"</button>
                    <span class="muted small">
                        "auto: the lakehouse when every dataset the query names is synced, else local"
                    </span>
                </div>
            </form>
            <Suspense fallback=|| view! { <p class="muted">"Running…"</p> }>
                {move || {
                    let to_download = to_download.clone();
                    Suspend::new(async move {
                    match answer.await {
                        None => ().into_any(),
                        Some(Ok(a)) => {
                            view! {
                                <AnswerView answer=a />
                                <Downloads sql=to_download.clone() />
                            }
                                .into_any()
                        }
                        Some(Err(e)) => {
                            // The page is fine; only the query failed.
                            #[cfg(feature = "ssr")]
                            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                                response.set_status(axum::http::StatusCode::OK);
                            }
                            view! { <p class="error" role="alert" id="query-error">{e.to_string()}</p> }
                                .into_any()
                        }
                    }
                    })
                }}
            </Suspense>
        </section>
        <section class="card" id="query-history">
            <h2>"History"</h2>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match history.await {
                        Ok(h) if h.is_empty() => view! { <p class="muted">"No queries yet."</p> }.into_any(),
                        Ok(h) => view! { <History entries=h /> }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
        <section class="card" id="query-tables">
            <h2>"Tables"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading tables…"</p> }>
                {move || Suspend::new(async move {
                    match tables.await {
                        Ok(t) if t.is_empty() => {
                            view! { <p class="muted">"No datasets yet: upload one first."</p> }.into_any()
                        }
                        Ok(t) => view! { <TableList tables=t /> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Links that download the query's whole result (no row cap), run by the
/// local engine and streamed as a file.
#[component]
fn Downloads(sql: String) -> impl IntoView {
    let href = |format: &str| {
        format!(
            "/api/query/download?sql={}&format={format}",
            crate::format::percent_encode(&sql)
        )
    };
    view! {
        <p class="actions small" id="query-downloads">
            "Download the whole result: "
            <a href=href("csv") id="download-csv" download>"CSV"</a>
            " · "
            <a href=href("parquet") id="download-parquet" download>"Parquet"</a>
            <span class="muted">" (run by the local engine, without the row cap)"</span>
        </p>
    }
}

/// The user's latest queries, each a link that runs it again.
#[component]
fn History(entries: Vec<QueryHistoryEntry>) -> impl IntoView {
    view! {
        <ol class="query-history small">
            {entries
                .into_iter()
                .map(|e| {
                    let href = format!(
                        "/query?sql={}&engine={}",
                        crate::format::percent_encode(&e.sql),
                        e.engine.as_str()
                    );
                    let outcome = match (&e.ran_on, e.row_count, &e.error) {
                        (Some(on), Some(n), _) => {
                            format!("{on} · {} rows · {} ms", thousands(n), e.elapsed_ms.unwrap_or(0))
                        }
                        (_, _, Some(err)) => format!("failed: {err}"),
                        _ => String::new(),
                    };
                    view! {
                        <li>
                            <a href=href><code>{e.sql.clone()}</code></a>
                            " "
                            <span class="muted">{format!("{} · {outcome}", e.engine.as_str())}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
}

/// Each dataset as a table; its columns one click away.
#[component]
fn TableList(tables: Vec<QueryTable>) -> impl IntoView {
    view! {
        <ul class="query-tables">
            {tables
                .into_iter()
                .map(|t| {
                    view! {
                        <li data-table=t.name.clone()>
                            <details>
                                <summary>
                                    <code>{t.name.clone()}</code>
                                    " "
                                    <span class="muted small">
                                        {format!("{} · {}", t.dataset_name, t.status.label())}
                                    </span>
                                </summary>
                                <ul class="small">
                                    {t
                                        .columns
                                        .into_iter()
                                        .map(|c| {
                                            view! {
                                                <li>
                                                    <code>{c.name}</code>
                                                    " "
                                                    <span class="muted">{c.data_type}</span>
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            </details>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

#[component]
fn AnswerView(answer: QueryAnswer) -> impl IntoView {
    let QueryAnswer {
        engine,
        reason,
        columns,
        rows,
        truncated,
        elapsed_ms,
    } = answer;
    let count = rows.len();
    view! {
        <p class="muted" id="query-meta" data-engine=engine.as_str()>
            <strong id="query-engine">{engine.as_str()}</strong>
            {format!(
                " · {} row{}{} · {elapsed_ms} ms · {reason}",
                thousands(count as i64),
                if count == 1 { "" } else { "s" },
                if truncated { " shown (more exist: the page shows at most this many)" } else { "" },
            )}
        </p>
        <ResultChart columns=columns.clone() rows=rows.clone() />
        <div class="table-scroll">
            <table class="listing" id="query-result">
                <thead>
                    <tr>
                        {columns
                            .iter()
                            .map(|c| {
                                view! {
                                    <th>
                                        {c.name.clone()}
                                        <div class="muted small">{c.data_type.clone()}</div>
                                    </th>
                                }
                            })
                            .collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {rows
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
    }
}

/// Chart kinds the result can be drawn as.
const KINDS: [&str; 3] = ["bar", "line", "scatter"];

/// A chart of the result: the user picks the kind, the x column and the y
/// column (a numeric one). SVG, drawn in the browser.
#[island]
fn ResultChart(columns: Vec<QueryColumn>, rows: Vec<Vec<Option<String>>>) -> impl IntoView {
    let numeric: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            rows.iter()
                .filter_map(|r| r[*i].as_deref())
                .all(|v| v.parse::<f64>().is_ok())
                && rows.iter().any(|r| r[*i].is_some())
        })
        .map(|(i, _)| i)
        .collect();
    if numeric.is_empty() || rows.is_empty() {
        return ().into_any();
    }
    let (kind, set_kind) = signal("bar".to_owned());
    let (x, set_x) = signal(if numeric[0] == 0 && columns.len() > 1 {
        1
    } else {
        0
    });
    let (y, set_y) = signal(numeric[0]);
    let names: Vec<(usize, String)> = columns.iter().map(|c| c.name.clone()).enumerate().collect();
    let y_names: Vec<(usize, String)> = numeric
        .iter()
        .map(|&i| (i, columns[i].name.clone()))
        .collect();
    let svg = move || super::charts::chart_svg(&kind.get(), &rows, x.get(), y.get());
    view! {
        <details class="chart" id="query-chart">
            <summary>"Chart"</summary>
            <div class="actions">
                <label>
                    "Kind "
                    <select id="chart-kind" on:change=move |ev| set_kind.set(event_target_value(&ev))>
                        {KINDS.iter().map(|k| view! { <option value=*k>{*k}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    "x "
                    <select
                        id="chart-x"
                        on:change=move |ev| set_x.set(event_target_value(&ev).parse().unwrap_or(0))
                    >
                        {names
                            .iter()
                            .map(|(i, n)| view! { <option value=i.to_string() selected={*i == x.get_untracked()}>{n.clone()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "y "
                    <select
                        id="chart-y"
                        on:change=move |ev| set_y.set(event_target_value(&ev).parse().unwrap_or(0))
                    >
                        {y_names
                            .iter()
                            .map(|(i, n)| view! { <option value=i.to_string()>{n.clone()}</option> })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <div inner_html=svg></div>
        </details>
    }
    .into_any()
}
