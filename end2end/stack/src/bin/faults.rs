//! `faults`: the fault-injection run (see `stack::faults`), on demand.
//!
//! ```text
//! faults [--datasets 200] [--clients 20] [--window SECS] [--dir DIR] [--out FILE]
//! ```
//!
//! Prints the table of faults and outcomes and the checks (Markdown; also to
//! `--out`), and exits 1 if a check failed. It starts its own Postgres
//! (`initdb`), restate-server, MCP server and app; nothing else is touched.

use anyhow::Context;
use std::{path::PathBuf, time::Duration};

fn usage() -> &'static str {
    "usage: faults [--datasets N] [--clients N] [--window SECS] [--dir DIR] [--out FILE]"
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut plan = stack::faults::Plan::default();
    let mut out: Option<PathBuf> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--datasets" => plan.datasets = value()?.parse().context("--datasets")?,
            "--clients" => plan.clients = value()?.parse().context("--clients")?,
            "--window" => plan.window = Duration::from_secs(value()?.parse().context("--window")?),
            "--dir" => plan.dir = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    anyhow::ensure!(plan.datasets >= 1 && plan.clients >= 1, "{}", usage());
    let report = stack::faults::run(plan).await?;
    let text = report.markdown();
    println!("{text}");
    if let Some(out) = out {
        std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    }
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
