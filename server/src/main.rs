use anyhow::Context;
use servicetsunami_server::{
    config::Settings,
    startup::{Application, Worker},
    telemetry,
};

const USAGE: &str = "usage: servicetsunami [worker]
  (no argument)  the web app, the DatasetSync endpoint and the sync dispatcher
  worker         only the DatasetSync endpoint (RESTATE_ENDPOINT_ADDR)
  query-worker   one query of the query page, read from stdin (started by the app)";

/// jemalloc serves every allocation in the process: with
/// `unprefixed_malloc_on_supported_platforms` it also provides `malloc` and
/// `free`, so DuckDB's C++ allocates from it too (see ARCHITECTURE.md, "Memory
/// allocator"). It reads `MALLOC_CONF` for tuning.
#[cfg(all(unix, not(target_os = "macos")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // A query's worker process: no runtime, no settings, one job.
    if std::env::args().nth(1).as_deref() == Some(servicetsunami_server::QUERY_WORKER_COMMAND) {
        return contract::isolate::serve_one(app::ssr::query::warm_up, app::ssr::query::work)
            .context("The query worker failed");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let mode = std::env::args().nth(1);
    if matches!(mode.as_deref(), Some("-h" | "--help" | "help")) {
        println!("{USAGE}");
        return Ok(());
    }
    let settings = Settings::from_env().context("Failed to read the configuration")?;
    telemetry::init(settings.log_format);
    match mode.as_deref() {
        None => {
            let app = Application::build(settings)
                .await
                .context("Failed to start")?;
            tracing::info!(addr = %app.local_addr(), "listening on http://{}", app.local_addr());
            if let Some(addr) = app.sync_endpoint_addr() {
                tracing::info!(%addr, "DatasetSync endpoint for Restate on http://{addr}");
            }
            app.run_until_stopped().await.context("The server failed")
        }
        Some("worker") => {
            let worker = Worker::build(settings)
                .await
                .context("Failed to start the worker")?;
            tracing::info!(addr = %worker.local_addr()?, "DatasetSync endpoint for Restate");
            worker.run_until_stopped().await;
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    }
}
