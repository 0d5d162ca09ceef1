use anyhow::Context;
use servicetsunami_server::{config::Settings, startup::Application, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("Failed to read the configuration")?;
    telemetry::init(settings.log_format);
    let app = Application::build(settings)
        .await
        .context("Failed to start")?;
    tracing::info!(addr = %app.local_addr(), "listening on http://{}", app.local_addr());
    app.run_until_stopped().await.context("The server failed")
}
