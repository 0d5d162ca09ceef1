//! Free ports and waiting for conditions, never for fixed times.

use std::{
    future::Future,
    net::TcpListener,
    time::{Duration, Instant},
};

/// A port nobody listens on right now.
///
/// Picked at random from 20000–31999, below Linux's ephemeral range
/// (32768–60999): a port the kernel hands out to outgoing connections could
/// be taken by one between this check and the service binding it.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).expect("the OS has randomness");
        let port = 20_000 + u16::from_le_bytes(bytes) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000–31999")
}

/// Polls `check` every 20 ms until it yields `Some`, or fails after `within`
/// saying what was awaited.
pub async fn until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `url` answers 2xx within a second.
pub async fn answers(url: &str) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("an HTTP client");
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Waits until `url` answers 2xx.
pub async fn http_ok(url: &str, what: &str, within: Duration) -> anyhow::Result<()> {
    until(
        within,
        &format!("{what} did not answer at {url}"),
        || async { answers(url).await.then_some(()) },
    )
    .await
}

/// Waits until nothing accepts connections on `port`.
pub async fn port_closed(port: u16, within: Duration) -> anyhow::Result<()> {
    until(within, &format!("port {port} is still open"), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
            .then_some(())
    })
    .await
}
