//! `bench-report`: runs every benchmark at three sizes and writes one
//! Markdown report with a PNG plot per figure (see `stack::report`).
//!
//! ```text
//! bench-report [--out DIR] [--quick] [--only NAME[,NAME…]] [--python PATH] [--render]
//! ```
//!
//! `.ci/bench` builds everything and runs it. Each benchmark writes its
//! measurements with `--json` into `DIR/raw/`; `--render` draws the report
//! again from those files without running anything. `--quick` runs each at
//! a tenth of the sizes (to try the command). `--python` names a Python with
//! pyarrow, the second ingest reference. Exits 1 if a benchmark failed (the
//! report then says which, and the rest is still written).

use anyhow::Context;
use stack::report::{self, Measurement};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

fn usage() -> &'static str {
    "usage: bench-report [--out DIR] [--quick] [--only NAME[,NAME…]] [--python PATH] [--render]\n\
     names: wasm, ingest, ingest-real, lakehouse, query, sse, orchestration"
}

/// One benchmark at one size.
struct Run {
    /// Its short name (`--only`), e.g. `ingest`.
    name: &'static str,
    /// The binary, relative to the target directory's profile directory.
    program: &'static str,
    args: Vec<String>,
}

/// A benchmark's three sizes: `(full, quick)` argument values.
fn sized(
    name: &'static str,
    program: &'static str,
    fixed: &[&str],
    flag: &str,
    sizes: [(&str, &str); 3],
    quick: bool,
) -> Vec<Run> {
    sizes
        .iter()
        .map(|(full, small)| {
            let mut args: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
            args.push(flag.to_owned());
            args.push((if quick { small } else { full }).to_string());
            Run {
                name,
                program,
                args,
            }
        })
        .collect()
}

fn plan(quick: bool, python: Option<&Path>) -> Vec<Run> {
    let mut ingest_fixed = vec!["--rounds", "3"];
    let python = python.map(|p| p.display().to_string());
    if let Some(python) = &python {
        ingest_fixed.push("--pyarrow");
        ingest_fixed.push(python.as_str());
    }
    let mut real_fixed = ingest_fixed.clone();
    real_fixed.extend(["--shape", "real"]);
    let mut runs = Vec::new();
    runs.extend(sized(
        "ingest",
        "examples/upload_bench",
        &ingest_fixed,
        "--size",
        [("100MB", "10MB"), ("300MB", "30MB"), ("1GB", "100MB")],
        quick,
    ));
    runs.extend(sized(
        "ingest-real",
        "examples/upload_bench",
        &real_fixed,
        "--size",
        [("100MB", "10MB"), ("300MB", "30MB"), ("1GB", "100MB")],
        quick,
    ));
    runs.extend(sized(
        "lakehouse",
        "lakehouse-bench",
        &["--rounds", "2"],
        "--rows",
        [
            ("1000000", "100000"),
            ("3000000", "300000"),
            ("10000000", "1000000"),
        ],
        quick,
    ));
    runs.extend(sized(
        "query",
        "examples/query_bench",
        &["--runs", "3"],
        "--rows",
        [
            ("340000", "34000"),
            ("1100000", "110000"),
            ("3400000", "340000"),
        ],
        quick,
    ));
    runs.extend(sized(
        "sse",
        "examples/sse_bench",
        &["--changes", "100"],
        "--clients",
        [("100", "10"), ("300", "30"), ("1000", "100")],
        quick,
    ));
    runs.extend(sized(
        "orchestration",
        "examples/sync_bench",
        &["--syncs", if quick { "10" } else { "100" }],
        "--queued",
        [("50", "10"), ("100", "20"), ("200", "40")],
        quick,
    ));
    runs
}

/// The served wasm bundle's gzipped size against its budget (the same
/// budget and compression `.ci/test` checks).
fn wasm_size() -> anyhow::Result<Measurement> {
    use std::io::Write;
    let pkg = stack::locate::repo_root().join("target/site/pkg");
    let wasm = ["servicetsunami.wasm", "servicetsunami_bg.wasm"]
        .iter()
        .map(|name| pkg.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no wasm in {}: build the front end first (cargo leptos build --release --frontend-only)",
                pkg.display()
            )
        })?;
    let bytes = std::fs::read(&wasm)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    let gzipped = gz.finish()?.len();
    Ok(Measurement {
        bench: "wasm size".into(),
        size: 1.0,
        size_unit: "bundle".into(),
        figures: vec![report::Figure {
            name: "hydrate bundle, gzip -9".into(),
            reference_name: "budget (350 KiB)".into(),
            unit: "KiB".into(),
            measured: gzipped as f64 / 1024.0,
            reference: 350.0,
            target_ratio: Some(1.0),
        }],
    })
}

/// Runs one benchmark with a deadline; its tables go to our stdout as they
/// are printed, its measurements to `json`.
fn run(run: &Run, json: &Path, deadline: Duration) -> anyhow::Result<()> {
    let program = stack::locate::cargo_bin(run.program)?;
    let started = Instant::now();
    let mut child = Command::new(&program)
        .args(&run.args)
        .arg("--json")
        .arg(json)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "{} exited with {status}", run.program);
            return Ok(());
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{} ran past its deadline of {deadline:?}", run.program);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn read_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What the figures were measured on, and when.
fn machine() -> String {
    let cpuinfo = read_file("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read_file("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("?".into(), |kib| {
            format!("{:.0} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = read_file("/proc/sys/kernel/osrelease");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(stack::locate::repo_root())
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " with uncommitted changes"
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {memory} memory, Linux {}; commit {commit}{dirty}; {date}",
        kernel.trim()
    )
}

fn main() -> anyhow::Result<()> {
    let mut out = stack::locate::repo_root().join("server/examples/report");
    let (mut quick, mut render_only) = (false, false);
    let mut only: Option<Vec<String>> = None;
    let mut python: Option<PathBuf> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--out" => out = PathBuf::from(value()?),
            "--quick" => quick = true,
            "--render" => render_only = true,
            "--only" => only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--python" => python = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    let raw = out.join("raw");
    let plots = out.join("plots");
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let mut failures = Vec::new();
    let mut notes = Vec::new();

    if !render_only {
        // A fresh run replaces the whole report: no figure from an earlier
        // run may sit beside this run's.
        let _ = std::fs::remove_dir_all(&raw);
        let _ = std::fs::remove_dir_all(&plots);
        std::fs::create_dir_all(&raw)?;
        std::fs::write(raw.join("machine.txt"), machine())?;
        if python.is_none() {
            notes.push(
                "No Python with pyarrow was given (`--python`), so the pyarrow reference is missing."
                    .to_owned(),
            );
        }
        if wanted("wasm") {
            match wasm_size() {
                Ok(m) => report::write(&raw.join("wasm-1.json"), &[m])?,
                Err(e) => failures.push(format!("wasm: {e:#}")),
            }
        }
        let runs = plan(quick, python.as_deref());
        let mut index = 0;
        for r in runs.iter().filter(|r| wanted(r.name)) {
            index += 1;
            let json = raw.join(format!("{}-{index}.json", r.name));
            eprintln!(
                "\n==> {} {} ({index})",
                r.program.trim_start_matches("examples/"),
                r.args.join(" ")
            );
            if let Err(e) = run(r, &json, Duration::from_secs(45 * 60)) {
                eprintln!("{e:#}");
                failures.push(format!("{} {}: {e:#}", r.name, r.args.join(" ")));
            }
        }
        std::fs::write(raw.join("failures.txt"), failures.join("\n"))?;
        std::fs::write(raw.join("notes.txt"), notes.join("\n"))?;
    } else {
        failures = read_file(&raw.join("failures.txt").display().to_string())
            .lines()
            .map(str::to_owned)
            .collect();
        notes = read_file(&raw.join("notes.txt").display().to_string())
            .lines()
            .map(str::to_owned)
            .collect();
    }

    // Every measurement file, in the order the runs made them.
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(&raw)
        .with_context(|| format!("reading {}", raw.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_owned();
            let n = stem.rsplit('-').next()?.parse().ok()?;
            Some((n, p))
        })
        .collect();
    files.sort();
    let mut measurements = Vec::new();
    for (_, file) in &files {
        measurements.extend(report::read(file)?);
    }
    let series = report::series(&measurements);
    report::load_font()?;
    std::fs::create_dir_all(&plots)?;
    for s in &series {
        report::plot(s, &plots.join(s.plot_name()))?;
    }
    let mut preamble = format!(
        "Measured on: {}.\n\nMade by `bash .ci/bench` (the `bench-report` binary in \
         end2end/stack); each benchmark's own table and method are in \
         [server/examples/README.md](../README.md).",
        read_file(&raw.join("machine.txt").display().to_string()).trim()
    );
    if quick {
        preamble.push_str("\n\n**Quick run:** a tenth of the sizes; not for comparison.");
    }
    for note in notes.iter().filter(|n| !n.is_empty()) {
        preamble.push_str(&format!("\n\n{note}"));
    }
    let failures: Vec<&String> = failures.iter().filter(|f| !f.is_empty()).collect();
    if !failures.is_empty() {
        preamble.push_str("\n\n**Failed runs** (their figures are missing):\n");
        for f in &failures {
            preamble.push_str(&format!("\n- {f}"));
        }
    }
    let md = report::markdown("Benchmark report", &preamble, &series, "plots");
    let path = out.join("REPORT.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!("\nreport: {}", path.display());
    if !failures.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
