use anyhow::Context;
use servicetsunami_server::{
    config::Settings,
    startup::{Application, Worker},
    telemetry,
};

const USAGE: &str = "usage: servicetsunami [worker]
  (no argument)  the web app, the DatasetSync endpoint and the sync dispatcher
  worker         only the DatasetSync endpoint (RESTATE_ENDPOINT_ADDR)";

fn main() -> anyhow::Result<()> {
    tune_malloc();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")?
        .block_on(run())
}

/// glibc's allocator, tuned for the upload path. Settings made in the
/// environment (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES`) win.
///
/// - **Two arenas.** glibc gives each thread that contends for `malloc` an
///   arena of its own (up to 8 per core), and DuckDB's threads, the blocking
///   pool and the workers each keep freed memory in theirs. Two arenas bring
///   the peak RSS of a 1 GB upload from ~330 MB to ~270 MB.
/// - **Receive buffers stay mapped.** An upload passes through buffers of a
///   few hundred KiB (hyper's reads, multer's parts). Above glibc's default
///   threshold each is a fresh `mmap`, so every page of a 1 GB upload was
///   faulted in and zeroed again. With a 4 MiB threshold and 32 MiB of free
///   memory kept, the buffers are reused: receiving 1 GB took ~100 ms less,
///   and peak RSS did not grow.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let unset =
        |var: &str, tunable: &str| std::env::var_os(var).is_none() && !tunables.contains(tunable);
    // SAFETY: runs before any other thread exists; mallopt only sets tuning
    // parameters of the allocator.
    unsafe {
        if unset("MALLOC_ARENA_MAX", "malloc.arena_max") {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
        if unset("MALLOC_MMAP_THRESHOLD_", "malloc.mmap_threshold") {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        }
        if unset("MALLOC_TRIM_THRESHOLD_", "malloc.trim_threshold") {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

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
