use anyhow::Context;
use servicetsunami_mcp::{config::Settings, startup, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
