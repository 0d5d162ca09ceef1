//! Logging set-up. `RUST_LOG` filters (default `info`), `LOG_FORMAT=json`
//! switches to one JSON object per line.

use crate::config::LogFormat;
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests build many apps in one process) is harmless.
    let _ = match format {
        LogFormat::Json => registry.with(fmt::layer().json()).try_init(),
        LogFormat::Pretty => registry.with(fmt::layer()).try_init(),
    };
}
