//! Slow clients, for the tests that check a server holds under them.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens `clients` connections to `addr` that send a request's headers one
/// byte every `every` and never finish them (slowloris). Returns how long the
/// server took to close the last of them (each gives up after `within`).
pub async fn trickle_headers(
    addr: SocketAddr,
    clients: usize,
    every: Duration,
    within: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        tasks.spawn(async move {
            let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: ";
            if stream.write_all(head).await.is_err() {
                return Ok(started.elapsed());
            }
            let deadline = started + within;
            let mut buf = [0u8; 512];
            while Instant::now() < deadline {
                // Closed (or answered and closed) by the server: done.
                match tokio::time::timeout(every, stream.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return Ok(started.elapsed()),
                    Ok(Ok(_)) => continue,
                    Err(_) => {}
                }
                if stream.write_all(b"a").await.is_err() {
                    return Ok(started.elapsed());
                }
            }
            anyhow::bail!("the server kept a trickling connection open for {within:?}")
        });
    }
    let mut last = Duration::ZERO;
    while let Some(done) = tasks.join_next().await {
        last = last.max(done??);
    }
    Ok(last)
}
