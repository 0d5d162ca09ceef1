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
                {move || Suspend::new(async move {
                    match answer.await {
                        None => ().into_any(),
                        Some(Ok(a)) => view! { <AnswerView answer=a /> }.into_any(),
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
                })}
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
            <table class="preview" id="query-result">
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
    let svg = move || chart_svg(&kind.get(), &rows, x.get(), y.get());
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

/// The chart as SVG markup: `y` against `x` (categories for a bar chart,
/// numbers otherwise when they parse). Text is escaped.
pub fn chart_svg(kind: &str, rows: &[Vec<Option<String>>], x: usize, y: usize) -> String {
    const W: f64 = 640.0;
    const H: f64 = 240.0;
    const PAD: f64 = 30.0;
    let points: Vec<(String, f64)> = rows
        .iter()
        .filter_map(|r| {
            let yv = r.get(y)?.as_deref()?.parse::<f64>().ok()?;
            let xv = r.get(x).cloned().flatten().unwrap_or_default();
            yv.is_finite().then_some((xv, yv))
        })
        .collect();
    if points.is_empty() {
        return String::new();
    }
    let (ymin, ymax) = points.iter().fold((0f64, f64::MIN), |(lo, hi), (_, v)| {
        (lo.min(*v), hi.max(*v))
    });
    let yspan = if ymax > ymin { ymax - ymin } else { 1.0 };
    let ypix = |v: f64| H - PAD - (v - ymin) / yspan * (H - 2.0 * PAD);
    let xs: Option<Vec<f64>> = points.iter().map(|(x, _)| x.parse::<f64>().ok()).collect();
    let n = points.len() as f64;
    let xpix: Vec<f64> = match (&xs, kind) {
        (Some(xs), "line" | "scatter") => {
            let (lo, hi) = xs
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            xs.iter()
                .map(|v| PAD + (v - lo) / span * (W - 2.0 * PAD))
                .collect()
        }
        _ => (0..points.len())
            .map(|i| PAD + (i as f64 + 0.5) * (W - 2.0 * PAD) / n)
            .collect(),
    };
    let mut body = String::new();
    match kind {
        "line" => {
            let mut order: Vec<usize> = (0..points.len()).collect();
            order.sort_by(|a, b| xpix[*a].total_cmp(&xpix[*b]));
            let path: Vec<String> = order
                .iter()
                .map(|&i| format!("{:.1},{:.1}", xpix[i], ypix(points[i].1)))
                .collect();
            body.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            ));
        }
        "scatter" => {
            for (i, (_, v)) in points.iter().enumerate() {
                body.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"currentColor\"/>",
                    xpix[i],
                    ypix(*v)
                ));
            }
        }
        _ => {
            let width = ((W - 2.0 * PAD) / n * 0.8).max(1.0);
            let base = ypix(0f64.max(ymin));
            for (i, (label, v)) in points.iter().enumerate() {
                let top = ypix(*v).min(base);
                let height = (ypix(*v) - base).abs().max(0.5);
                body.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"currentColor\"><title>{}: {v}</title></rect>",
                    xpix[i] - width / 2.0,
                    escape(label)
                ));
            }
        }
    }
    format!(
        "<svg class=\"chart-svg\" role=\"img\" aria-label=\"{kind} chart\" viewBox=\"0 0 {W} {H}\" width=\"100%\">\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"2\" y=\"{PAD}\" font-size=\"10\">{ymax}</text>\
         <text x=\"2\" y=\"{b}\" font-size=\"10\">{ymin}</text>{body}</svg>",
        b = H - PAD,
        r = W - PAD,
        ymax = escape(&format!("{ymax}")),
        ymin = escape(&format!("{ymin}")),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::chart_svg;

    fn rows(values: &[(&str, &str)]) -> Vec<Vec<Option<String>>> {
        values
            .iter()
            .map(|(x, y)| vec![Some((*x).to_owned()), Some((*y).to_owned())])
            .collect()
    }

    #[test]
    fn charts_draw_one_mark_per_row_and_escape_labels() {
        let data = rows(&[
            ("<b>Oslo</b>", "709037"),
            ("Lyon", "-522250"),
            ("Bergen", "NA"),
        ]);
        let bar = chart_svg("bar", &data, 0, 1);
        assert_eq!(bar.matches("<rect").count(), 2, "the NA row is skipped");
        assert!(bar.contains("&lt;b&gt;Oslo"), "{bar}");
        assert!(!bar.contains("<b>"));
        let numbers = rows(&[("1", "2"), ("3", "4"), ("2", "9")]);
        assert_eq!(
            chart_svg("scatter", &numbers, 0, 1)
                .matches("<circle")
                .count(),
            3
        );
        assert!(chart_svg("line", &numbers, 0, 1).contains("<polyline"));
        assert_eq!(chart_svg("bar", &[], 0, 1), "");
    }
}
