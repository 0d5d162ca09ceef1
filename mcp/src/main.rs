use anyhow::Context;
use servicetsunami_mcp::{config::Settings, startup, telemetry};

fn main() -> anyhow::Result<()> {
    // A query's process: no runtime, no settings, one job.
    if std::env::args().nth(1).as_deref() == Some(servicetsunami_mcp::QUERY_WORKER_COMMAND) {
        return contract::isolate::serve_one(
            servicetsunami_mcp::backend::local::warm_up,
            servicetsunami_mcp::backend::local::serve_query,
        )
        .context("The query worker failed");
    }
    serve()
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("Invalid configuration")?;
    telemetry::init();
    let app = startup::Application::build(settings).await?;
    let stop = app.shutdown_token();
    tokio::spawn(async move {
        contract::process::shutdown_signal().await;
        stop.cancel();
    });
    app.run_until_stopped().await
}
