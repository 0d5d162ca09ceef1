//! `/monitoring`: the tenant's syncs over a window, as charts drawn on the
//! server (SVG, no code in the browser): the success rate, failures by
//! cause, each step's p50/p95, retries over time, the outbox, and the
//! slowest recent syncs with their Restate invocation ids.

use super::charts::{hbar_svg, stacked_svg, Series};
use crate::{
    api::get_sync_monitor,
    format::thousands,
    model::{MonitorWindow, SyncMonitor},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn MonitoringPage() -> impl IntoView {
    let window = use_query_map().read_untracked().get("window");
    let figures = Resource::new(move || window.clone(), get_sync_monitor);
    view! {
        <Title text="Sync monitoring" />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match figures.await {
                    Ok(m) => view! { <Monitor m=m /> }.into_any(),
                    Err(e) => {
                        #[cfg(feature = "ssr")]
                        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                            response.set_status(
                                axum::http::StatusCode::from_u16(e.status())
                                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                            );
                        }
                        view! {
                            <section class="card">
                                <h1>"Sync monitoring"</h1>
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

/// `n` seconds as "2 h 5 min", "4 min 3 s" or "12 s".
fn age(secs: i64) -> String {
    match secs {
        s if s >= 3_600 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

/// A bucket's start as `HH:MM` (or `MM-DD HH:MM` over a week), from RFC 3339.
fn bucket_label(start: &str, window: MonitorWindow) -> String {
    let (date, time) = start.split_once('T').unwrap_or((start, ""));
    let hm = time.get(..5).unwrap_or(time);
    match window {
        MonitorWindow::Week => format!("{} {hm}", date.get(5..).unwrap_or(date)),
        _ => hm.to_owned(),
    }
}

#[component]
fn Monitor(m: SyncMonitor) -> impl IntoView {
    let ended = m.succeeded + m.failed;
    let rate = (ended > 0).then(|| m.succeeded as f64 * 100.0 / ended as f64);
    let labels: Vec<String> = m
        .buckets
        .iter()
        .map(|b| bucket_label(&b.start, m.window))
        .collect();
    let outcomes = stacked_svg(
        "syncs ended per interval, by outcome",
        &labels,
        &[
            Series {
                name: "synced",
                class: "ok",
                values: m.buckets.iter().map(|b| b.succeeded as f64).collect(),
            },
            Series {
                name: "failed",
                class: "bad",
                values: m.buckets.iter().map(|b| b.failed as f64).collect(),
            },
        ],
    );
    let retries = stacked_svg(
        "retried step attempts per interval",
        &labels,
        &[Series {
            name: "retries",
            class: "warn",
            values: m.buckets.iter().map(|b| b.retries as f64).collect(),
        }],
    );
    let causes: Vec<(String, f64)> = m
        .causes
        .iter()
        .map(|c| (format!("{}: {}", c.step.as_str(), c.cause), c.count as f64))
        .collect();
    let steps: Vec<(String, f64)> = m
        .steps
        .iter()
        .flat_map(|s| {
            [
                (
                    format!("{} p50 ({} runs)", s.step.as_str(), s.count),
                    s.p50_ms.round(),
                ),
                (format!("{} p95", s.step.as_str()), s.p95_ms.round()),
            ]
        })
        .collect();
    let window = m.window;
    view! {
        <section class="card" id="monitoring" data-window=window.as_str()>
            <h1>"Sync monitoring"</h1>
            <nav class="actions small" aria-label="Window">
                "Last "
                {MonitorWindow::ALL
                    .into_iter()
                    .map(|w| {
                        let current = w == window;
                        view! {
                            <a
                                href=format!("/monitoring?window={}", w.as_str())
                                aria-current=current.then_some("page")
                                class:current=current
                            >
                                {w.as_str()}
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
            <dl class="figures">
                <div>
                    <dt>"Success rate"</dt>
                    <dd id="success-rate">
                        {match rate {
                            Some(r) => format!("{r:.1} %"),
                            None => "—".to_owned(),
                        }}
                    </dd>
                    <dd class="muted small">
                        {format!("{} synced · {} failed", thousands(m.succeeded), thousands(m.failed))}
                    </dd>
                </div>
                <div>
                    <dt>"Outbox"</dt>
                    <dd id="outbox-depth">{thousands(m.outbox_depth)}</dd>
                    <dd class="muted small">
                        {match m.outbox_oldest_secs {
                            Some(s) => format!("waiting for Restate, oldest {}", age(s)),
                            None => "nothing waiting for Restate".to_owned(),
                        }}
                    </dd>
                </div>
                <div>
                    <dt>"In flight"</dt>
                    <dd id="in-flight">{thousands(m.in_flight)}</dd>
                    <dd class="muted small">"queued, syncing or retrying now"</dd>
                </div>
            </dl>
        </section>
        <section class="card" id="monitor-outcomes">
            <h2>"Syncs over time"</h2>
            <Chart svg=outcomes empty="No sync ended in this window." />
        </section>
        <section class="card" id="monitor-causes">
            <h2>"Failures by cause"</h2>
            <p class="muted small">"Failed and retried step attempts."</p>
            <Chart svg=hbar_svg("failures by cause", &causes, "") empty="No step failed in this window." />
        </section>
        <section class="card" id="monitor-steps">
            <h2>"Step duration (ms)"</h2>
            <Chart svg=hbar_svg("p50 and p95 per step", &steps, "ms") empty="No step ran in this window." />
        </section>
        <section class="card" id="monitor-retries">
            <h2>"Retries over time"</h2>
            <Chart
                svg=if m.buckets.iter().any(|b| b.retries > 0) { retries } else { String::new() }
                empty="No retries in this window."
            />
        </section>
        <section class="card" id="monitor-slowest">
            <h2>"Slowest syncs"</h2>
            {if m.slowest.is_empty() {
                view! { <p class="muted">"No sync finished in this window."</p> }.into_any()
            } else {
                view! {
                    <div class="table-scroll">
                        <table class="listing" id="slowest-syncs">
                            <thead>
                                <tr>
                                    <th>"Dataset"</th>
                                    <th>"Duration"</th>
                                    <th>"Requested"</th>
                                    <th>"Restate invocation"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {m
                                    .slowest
                                    .into_iter()
                                    .map(|s| {
                                        view! {
                                            <tr>
                                                <td>
                                                    <a href=format!("/datasets/{}", s.dataset_id)>{s.dataset_name}</a>
                                                </td>
                                                <td>{format!("{} ms", thousands(s.duration_ms))}</td>
                                                <td class="muted small">{s.requested_at}</td>
                                                <td>
                                                    <code class="invocation">{s.invocation_id.unwrap_or_default()}</code>
                                                </td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                    .into_any()
            }}
        </section>
    }
}

/// A chart, or a sentence when it has nothing to draw.
#[component]
fn Chart(svg: String, empty: &'static str) -> impl IntoView {
    if svg.is_empty() {
        view! { <p class="muted">{empty}</p> }.into_any()
    } else {
        view! { <div class="chart" inner_html=svg></div> }.into_any()
    }
}

#[cfg(test)]
mod tests {
    use super::{age, bucket_label};
    use crate::model::MonitorWindow;

    #[test]
    fn ages_and_bucket_labels_read_naturally() {
        assert_eq!(age(12), "12 s");
        assert_eq!(age(125), "2 min 5 s");
        assert_eq!(age(7_500), "2 h 5 min");
        assert_eq!(
            bucket_label("2026-12-01T10:05:00.000Z", MonitorWindow::Day),
            "10:05"
        );
        assert_eq!(
            bucket_label("2026-12-01T06:00:00.000Z", MonitorWindow::Week),
            "12-01 06:00"
        );
    }
}
