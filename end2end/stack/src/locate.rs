//! Where the binaries are.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("end2end/stack sits two levels below the root")
        .to_path_buf()
}

fn npm_package_bin(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let path = repo_root()
        .join("end2end/node_modules")
        .join(package)
        .join(bin);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `npm ci` in end2end/ (bash .ci/test does)",
        path.display()
    );
    Ok(path)
}

fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{}-{arch}", std::env::consts::OS)
}

/// restate-server's own binary from its npm platform package. The package's
/// `.bin` entry is a Node wrapper that does not pass SIGKILL on: killing it
/// would leave the server running, orphaned (and a "killed" server serving).
pub fn restate_server_bin() -> anyhow::Result<PathBuf> {
    npm_package_bin(
        &format!("@restatedev/restate-server-{}", platform()),
        "bin/restate-server",
    )
}

/// The `restate` CLI (operators' tool).
pub fn restate_cli_bin() -> anyhow::Result<PathBuf> {
    npm_package_bin(
        &format!("@restatedev/restate-{}", platform()),
        "bin/restate",
    )
    .or_else(|_| npm_package_bin(".bin", "restate"))
}

/// One of this workspace's binaries, from the target directory the caller
/// runs from (a test in `deps/`, an example in `examples/`, or the `stack`
/// binary itself, all next to or below the binaries).
pub fn cargo_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the current executable")?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "{name} is not built next to {}: build the workspace's server-side packages \
                 together (bash .ci/test)",
                exe.display()
            )
        })
}
