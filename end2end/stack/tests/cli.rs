//! The `stack` CLI as the scripts use it: `up` starts a service and records
//! it, `mcp-stop` really stops it (the port closes), `mcp-start` brings it
//! back on the same port, and SIGTERM to `up` stops everything it started.

use stack::wait;
use std::{
    process::{Command, Stdio},
    time::Duration,
};

fn stack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stack"))
        .args(args)
        .output()
        .expect("stack runs")
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn up_records_mcp_which_stops_and_starts_and_everything_ends_with_up() {
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_stack"))
        .args(["up", "--services", "mcp", "--state", state_arg])
        .stdin(Stdio::null())
        .spawn()
        .expect("stack up starts");
    let file = state.path().join("stack.json");
    let stack_file: serde_json::Value =
        wait::until(Duration::from_secs(30), "stack.json", || async {
            std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
        })
        .await
        .unwrap();
    let port = stack_file["mcp"]["port"].as_u64().unwrap() as u16;
    let health = format!("http://127.0.0.1:{port}/healthz");
    assert!(wait::answers(&health).await);

    let out = stack(&["mcp-stop", "--state", state_arg]);
    assert!(out.status.success(), "{out:?}");
    assert!(!wait::answers(&health).await, "mcp-stop closed the port");

    let out = stack(&["mcp-start", "--state", state_arg]);
    assert!(out.status.success(), "{out:?}");
    assert!(wait::answers(&health).await, "mcp-start brought it back");
    let restarted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let pid = restarted["mcp"]["pid"].as_u64().unwrap();
    assert!(alive(pid));

    stack::app::terminate(up.id());
    let status = up.wait().unwrap();
    assert!(status.success(), "{status:?}");
    wait::port_closed(port, Duration::from_secs(10))
        .await
        .unwrap();
    wait::until(
        Duration::from_secs(5),
        "the restarted MCP server to be gone",
        || async { (!alive(pid)).then_some(()) },
    )
    .await
    .unwrap();
}
