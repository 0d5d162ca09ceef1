//! Registers the DatasetSync endpoint with the Restate admin API at start-up,
//! as a deployment of its own *revision*: the endpoint's URL plus
//! `/r/<revision>` (the SDK routes by the path's last segments, so every
//! revision's path reaches the same handlers). Restate pins each invocation
//! to the deployment it started on and sends new invocations to the newest,
//! so a new build never takes over an older build's journals by force.
//!
//! The revision is `RESTATE_DEPLOYMENT_REVISION` when set (a release tag,
//! say), else the crate version and a hash of the workflow's source
//! (`service.rs`): it changes exactly when the handlers can have changed.
//! Registering the same revision again is a no-op; if Restate answers 409
//! (the same revision with other handlers: two builds given one revision),
//! nothing is forced and the error says what to do. Restate may start after
//! us, so this retries with backoff until it succeeds.
//!
//! A rolling upgrade: start the new replicas (they register the new
//! revision, which takes new syncs), keep an old replica serving until
//! `restate deployments describe <old>` shows no invocation pinned to it,
//! then stop it and `restate deployments remove <old>`.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("cannot reach the Restate admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the Restate admin API refused the deployment ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error(
        "Restate already has a deployment at {url} with other handlers: two builds share one \
         revision. Give this build its own RESTATE_DEPLOYMENT_REVISION (nothing was forced)"
    )]
    Conflict { url: String },
}

/// The crate version and a hash (FNV-1a, 48 bits) of the workflow's
/// source: a new value whenever the handlers can have changed.
pub fn default_revision() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in include_str!("service.rs").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{}-{:012x}",
        env!("CARGO_PKG_VERSION"),
        hash & 0xffff_ffff_ffff
    )
}

/// Where Restate reaches one revision of the endpoint.
pub fn deployment_url(endpoint_url: &str, revision: &str) -> String {
    format!("{}/r/{revision}", endpoint_url.trim_end_matches('/'))
}

/// Registers `deployment_url` once.
pub async fn register(
    http: &reqwest::Client,
    admin_url: &str,
    deployment_url: &str,
) -> Result<(), RegistrationError> {
    let response = http
        .post(format!("{admin_url}/deployments"))
        .json(&serde_json::json!({"uri": deployment_url}))
        .send()
        .await
        .map_err(|e| RegistrationError::Unreachable {
            url: admin_url.to_owned(),
            reason: e.to_string(),
        })?;
    let status = response.status();
    if status.is_success() {
        tracing::info!(
            deployment = deployment_url,
            "registered the DatasetSync endpoint with Restate"
        );
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    if status == reqwest::StatusCode::CONFLICT {
        return Err(RegistrationError::Conflict {
            url: deployment_url.to_owned(),
        });
    }
    Err(RegistrationError::Refused {
        status: status.as_u16(),
        body: body.trim().to_owned(),
    })
}

/// Keeps trying [`register`] (1 s doubling to 30 s) until it succeeds or
/// `stop` is cancelled; returns whether it succeeded.
pub async fn register_until_done(
    http: reqwest::Client,
    admin_url: String,
    deployment_url: String,
    stop: CancellationToken,
) -> bool {
    let mut delay = Duration::from_secs(1);
    loop {
        match register(&http, &admin_url, &deployment_url).await {
            Ok(()) => return true,
            Err(e @ RegistrationError::Conflict { .. }) => {
                tracing::error!(error = %e, retry_in_s = delay.as_secs(), "registering with Restate failed")
            }
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

#[cfg(test)]
mod tests {
    use super::{default_revision, deployment_url};

    #[test]
    fn a_revision_is_a_path_segment_of_its_own() {
        let revision = default_revision();
        assert!(
            revision.starts_with(env!("CARGO_PKG_VERSION")),
            "{revision}"
        );
        assert!(
            revision
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c)),
            "{revision}"
        );
        assert_eq!(
            deployment_url("http://127.0.0.1:9080/", "1.2.3-abc"),
            "http://127.0.0.1:9080/r/1.2.3-abc"
        );
    }
}
