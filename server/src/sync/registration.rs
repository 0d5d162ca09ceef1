//! Registers the DatasetSync endpoint with the Restate admin API at start-up.
//! Registering an unchanged endpoint again is a no-op; when the handlers have
//! changed Restate answers 409 and the registration is forced. Restate may
//! start after us, so this retries with backoff until it succeeds.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("cannot reach the Restate admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the Restate admin API refused the deployment ({status}): {body}")]
    Refused { status: u16, body: String },
}

/// Registers `endpoint_url` once.
pub async fn register(
    http: &reqwest::Client,
    admin_url: &str,
    endpoint_url: &str,
) -> Result<(), RegistrationError> {
    let mut force = false;
    loop {
        let response = http
            .post(format!("{admin_url}/deployments"))
            .json(&serde_json::json!({"uri": endpoint_url, "force": force}))
            .send()
            .await
            .map_err(|e| RegistrationError::Unreachable {
                url: admin_url.to_owned(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            tracing::info!(
                endpoint = endpoint_url,
                forced = force,
                "registered the DatasetSync endpoint with Restate"
            );
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::CONFLICT && !force {
            tracing::info!(
                endpoint = endpoint_url,
                "the endpoint's handlers changed; forcing re-registration"
            );
            force = true;
            continue;
        }
        return Err(RegistrationError::Refused {
            status: status.as_u16(),
            body: body.trim().to_owned(),
        });
    }
}

/// Keeps trying [`register`] (1 s doubling to 30 s) until it succeeds or
/// `stop` is cancelled; returns whether it succeeded.
pub async fn register_until_done(
    http: reqwest::Client,
    admin_url: String,
    endpoint_url: String,
    stop: CancellationToken,
) -> bool {
    let mut delay = Duration::from_secs(1);
    loop {
        match register(&http, &admin_url, &endpoint_url).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "registering with Restate failed")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
