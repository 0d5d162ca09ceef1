//! A TCP proxy on loopback that can be told to fail: while it fails, every
//! connection through it is cut (those in the middle of a transfer too) and
//! new ones are answered `503` and closed. Put between the MCP server and
//! the app's internal listener, it makes the Parquet downloads fail for a
//! while, the way a flaky network or a restarting file server does.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub struct FaultyProxy {
    pub port: u16,
    failing: Arc<AtomicBool>,
    /// Connections refused or cut while failing.
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

const UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

impl FaultyProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let failing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (failing, refused) = (failing.clone(), refused.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (failing, refused) = (failing.clone(), refused.clone());
                    tokio::spawn(async move {
                        if failing.load(Ordering::SeqCst) {
                            refused.fetch_add(1, Ordering::Relaxed);
                            refuse(client).await;
                        } else if forward(client, upstream, &failing).await {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        });
        Ok(Self {
            port,
            failing,
            refused,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts or stops failing.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// How many connections were refused or cut so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refuse(mut client: TcpStream) {
    // Read (some of) the request first, so the answer is not a reset.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), client.read(&mut buf)).await;
    let _ = client.write_all(UNAVAILABLE).await;
    let _ = client.shutdown().await;
}

/// Copies both ways until either side closes, or until the proxy starts
/// failing (then both are cut at once). Returns whether it was cut.
async fn forward(client: TcpStream, upstream: SocketAddr, failing: &AtomicBool) -> bool {
    let Ok(Ok(server)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(upstream)).await
    else {
        return false;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
        std::future::pending::<()>().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    let cut = async {
        while !failing.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        () = up => false,
        () = down => false,
        () = cut => true,
    }
}
