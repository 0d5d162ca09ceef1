//! Sync metrics in the Prometheus text format, served at `GET /metrics`.
//! Counted where the work really runs (inside journaled steps), so a replay
//! after a crash does not count twice.

use app::domain::SyncStep;
use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds (seconds) of the step-duration histogram buckets.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct SyncMetrics {
    pub syncs_started: AtomicU64,
    pub syncs_succeeded: AtomicU64,
    pub syncs_failed: AtomicU64,
    pub step_retries: AtomicU64,
    pub dispatched: AtomicU64,
    pub dispatch_errors: AtomicU64,
    /// Set by start-up reconciliation of storage with the catalogue.
    pub storage_orphans_removed: AtomicU64,
    pub storage_missing_files: AtomicU64,
    steps: [Histogram; 3],
}

impl SyncMetrics {
    pub fn observe_step(&self, step: SyncStep, d: Duration) {
        if let Some(i) = SyncStep::RUN.iter().position(|s| *s == step) {
            self.steps[i].observe(d);
        }
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric; `outbox_depth` is read from Postgres by the caller
    /// (`None` if that failed).
    pub fn render(&self, outbox_depth: Option<i64>) -> String {
        let mut out = String::new();
        let counters = [
            (
                "servicetsunami_syncs_started_total",
                "Syncs that started running.",
                &self.syncs_started,
            ),
            (
                "servicetsunami_syncs_succeeded_total",
                "Syncs that ended synced.",
                &self.syncs_succeeded,
            ),
            (
                "servicetsunami_syncs_failed_total",
                "Syncs that ended failed.",
                &self.syncs_failed,
            ),
            (
                "servicetsunami_sync_step_retries_total",
                "Step attempts that failed and were scheduled again.",
                &self.step_retries,
            ),
            (
                "servicetsunami_sync_requests_dispatched_total",
                "Sync requests accepted by Restate.",
                &self.dispatched,
            ),
            (
                "servicetsunami_sync_dispatch_errors_total",
                "Failed submissions to the Restate ingress.",
                &self.dispatch_errors,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "servicetsunami_sync_step_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of each sync step attempt.\n# TYPE {name} histogram"
        );
        for (step, h) in SyncStep::RUN.iter().map(|s| s.as_str()).zip(&self.steps) {
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{step=\"{step}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{step=\"{step}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{step=\"{step}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{step=\"{step}\"}} {count}");
        }
        for (name, help, value) in [
            (
                "servicetsunami_storage_orphan_files_removed",
                "Dataset files without a catalogue row, removed at start-up.",
                &self.storage_orphans_removed,
            ),
            (
                "servicetsunami_storage_missing_files",
                "Datasets in the catalogue whose Parquet file was missing at start-up.",
                &self.storage_missing_files,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        if let Some(depth) = outbox_depth {
            let name = "servicetsunami_sync_outbox_depth";
            let _ = writeln!(
                out,
                "# HELP {name} Sync requests not yet accepted by Restate.\n# TYPE {name} gauge"
            );
            let _ = writeln!(out, "{name} {depth}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_the_gauge() {
        let m = SyncMetrics::default();
        SyncMetrics::inc(&m.syncs_started);
        m.observe_step(SyncStep::Silver, Duration::from_millis(30));
        let text = m.render(Some(4));
        assert!(
            text.contains("servicetsunami_syncs_started_total 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "servicetsunami_sync_step_duration_seconds_bucket{step=\"silver\",le=\"0.025\"} 0\n"
        ));
        assert!(text.contains(
            "servicetsunami_sync_step_duration_seconds_bucket{step=\"silver\",le=\"0.05\"} 1\n"
        ));
        assert!(
            text.contains("servicetsunami_sync_step_duration_seconds_count{step=\"silver\"} 1\n")
        );
        assert!(text.contains("servicetsunami_sync_outbox_depth 4\n"));
    }

    /// The sample Grafana dashboard names only metrics this server exports.
    #[test]
    fn the_grafana_dashboard_reads_exported_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../grafana/sync-dashboard.json")).unwrap();
        let m = SyncMetrics::default();
        m.observe_step(SyncStep::Bronze, Duration::from_millis(5));
        let text = m.render(Some(0));
        let mut names = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("servicetsunami_") {
                        names += 1;
                        assert!(
                            text.lines().any(|l| l.starts_with(word)),
                            "{word} (panel {}) is not exported",
                            panel["title"]
                        );
                    }
                }
            }
        }
        assert!(names >= 10, "{names}");
    }
}
