//! What both server binaries do the same way at their edges: stop on a
//! signal, and check a bearer token in constant time.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Whether the request carries `key` as its bearer token. Compared in
/// constant time, so a wrong guess does not reveal how much of it matched.
pub fn bearer_matches(headers: &http::HeaderMap, key: &SecretString) -> bool {
    let Some(given) = bearer_token(headers) else {
        return false;
    };
    given
        .as_bytes()
        .ct_eq(key.expose_secret().as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_compared_exactly() {
        let key = SecretString::from("s3cret-key");
        let mut headers = http::HeaderMap::new();
        assert!(!bearer_matches(&headers, &key));
        for (value, ok) in [
            ("Bearer s3cret-key", true),
            ("Bearer s3cret-ke", false),
            ("Bearer s3cret-key2", false),
            ("Basic s3cret-key", false),
            ("s3cret-key", false),
        ] {
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_matches(&headers, &key), ok, "{value}");
        }
    }
}
