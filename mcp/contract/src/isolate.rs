//! One job in a process of its own, with a hard cap on its memory.
//!
//! DuckDB's `memory_limit` bounds its buffer pool, not every allocation: a
//! single value a query makes (`repeat('x', 1500000000)`, `range(300000000)`
//! as a list, `lpad(…, 1500000000, …)`) is allocated outside it, so one
//! user's query could take gigabytes from the process serving everyone, and
//! a few at once could have the host kill it. A user's SQL therefore runs in
//! a child process (the same binary, started with a worker argument) whose
//! `RLIMIT_DATA` the child sets on itself before it reads the job: an
//! allocation past the cap fails inside DuckDB, which answers "Out of
//! Memory", and whatever happens, only the child is lost.
//!
//! Starting a process costs milliseconds, so [`Workers`] keeps one spare
//! started ahead, waiting for its job on stdin; each job takes the spare and
//! starts the next. A worker runs one job and exits, so no query sees
//! another's memory. The job goes in as JSON on stdin, the answer comes back
//! as JSON on stdout; a worker that outlives its deadline is killed.
//!
//! A spare waiting for its job exits when its stdin closes, which is also
//! what happens when the parent dies.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::{path::PathBuf, process::Stdio, sync::Mutex, time::Duration};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

/// What the parent sends: the cap, then the job.
#[derive(Serialize, Deserialize)]
struct Envelope<J> {
    /// `RLIMIT_DATA` for the worker, in bytes.
    data_limit: u64,
    job: J,
}

/// Why a job has no answer.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("could not start a worker process: {0}")]
    Spawn(std::io::Error),
    #[error("the worker process did not finish within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("the worker process stopped without an answer ({status}){stderr}")]
    Died { status: String, stderr: String },
    #[error("the worker process could not be talked to: {0}")]
    Io(#[from] std::io::Error),
    #[error("the worker's answer could not be read: {0}")]
    Answer(#[from] serde_json::Error),
}

/// The data cap for a worker that runs DuckDB with `memory_limit` bytes:
/// that limit twice over (DuckDB's buffer pool, and the values a query
/// makes outside it) and 256 MiB for the process itself.
pub fn duckdb_cap(memory_limit: u64) -> u64 {
    memory_limit.saturating_mul(2).saturating_add(256 << 20)
}

/// Worker processes, started one job ahead.
pub struct Workers {
    program: PathBuf,
    args: Vec<String>,
    data_limit: u64,
    spare: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("data_limit", &self.data_limit)
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Workers run `program args…`, which must call [`serve_one`], each
    /// capped at `data_limit` bytes of data (heap and anonymous mappings).
    /// The first is started on the first job, not here, so a process that
    /// never runs a query never starts one.
    pub fn new(program: PathBuf, args: &[&str], data_limit: u64) -> Self {
        Self {
            program,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            data_limit,
            spare: Mutex::new(None),
        }
    }

    /// The cap each worker runs under.
    pub fn data_limit(&self) -> u64 {
        self.data_limit
    }

    fn start(&self) -> std::io::Result<Child> {
        // Nothing of the parent's environment (its keys and URLs) goes in.
        Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
    }

    /// The spare if it is still waiting, else a new worker; and a new spare
    /// for the next job.
    fn take(&self) -> std::io::Result<Child> {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        let ready = match spare.take() {
            // A spare that has exited (killed, say) is no use.
            Some(mut child) => match child.try_wait() {
                Ok(None) => child,
                _ => self.start()?,
            },
            None => self.start()?,
        };
        match self.start() {
            Ok(next) => *spare = Some(next),
            Err(e) => tracing::warn!(error = %e, "could not start a spare worker process"),
        }
        Ok(ready)
    }

    /// Runs `job` in a worker and returns its answer. The worker is killed
    /// if it has not answered within `deadline`.
    pub async fn run<J: Serialize, A: DeserializeOwned>(
        &self,
        job: &J,
        deadline: Duration,
    ) -> Result<A, WorkerError> {
        let body = serde_json::to_vec(&Envelope {
            data_limit: self.data_limit,
            job,
        })?;
        let mut child = self.take().map_err(WorkerError::Spawn)?;
        let mut stdin = child.stdin.take().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the worker has no stdin")
        })?;
        let work = async move {
            // A worker that fails before it reads its job closes the pipe:
            // how it ended says more than the broken pipe.
            let wrote = stdin.write_all(&body).await;
            drop(stdin);
            // Reads stdout and stderr together until the worker exits.
            let output = child.wait_with_output().await?;
            Ok::<_, std::io::Error>((wrote, output))
        };
        // On timeout the future, and with it the child, is dropped: killed.
        let (wrote, output) = tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| WorkerError::Timeout(deadline))??;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .trim()
                .chars()
                .rev()
                .take(2_000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(WorkerError::Died {
                status: output.status.to_string(),
                stderr: if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                },
            });
        }
        wrote?;
        Ok(serde_json::from_slice(&output.stdout)?)
    }
}

/// The worker's side, called by the binary when started as a worker: runs
/// `warm` unless its job is already waiting (a spare does this before its
/// job exists, so the job does not pay for a cold process), reads one job
/// from stdin, caps the
/// process's data at what the parent says, runs `work` and writes its
/// answer to stdout. Returns without running anything when stdin closes
/// before a job arrives (a spare whose parent went away).
pub fn serve_one<J: DeserializeOwned, A: Serialize>(
    warm: impl FnOnce(),
    work: impl FnOnce(J) -> A,
) -> Result<(), WorkerFailure> {
    use std::io::{Read, Write};
    // A worker started for a job already waiting goes straight to it.
    let waiting = {
        let stdin = std::io::stdin();
        let mut fds = [rustix::event::PollFd::new(
            &stdin,
            rustix::event::PollFlags::IN,
        )];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&now)).is_ok_and(|ready| ready > 0)
    };
    if !waiting {
        warm();
    }
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    if input.is_empty() {
        return Ok(());
    }
    let Envelope { data_limit, job } = serde_json::from_slice::<Envelope<J>>(&input)?;
    drop(input);
    rustix::process::setrlimit(
        rustix::process::Resource::Data,
        rustix::process::Rlimit {
            current: Some(data_limit),
            maximum: Some(data_limit),
        },
    )
    .map_err(std::io::Error::from)?;
    let answer = work(job);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &answer)?;
    out.flush()?;
    Ok(())
}

/// Why a worker could not serve its job.
#[derive(Debug, thiserror::Error)]
pub enum WorkerFailure {
    #[error("reading the job or writing the answer failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the job could not be read: {0}")]
    Job(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A worker that echoes its input: the parent's envelope comes back.
    fn echo() -> Workers {
        Workers::new("/bin/cat".into(), &[], 64 << 20)
    }

    #[tokio::test]
    async fn a_job_goes_in_with_its_cap_and_each_job_gets_a_fresh_worker() {
        let workers = echo();
        for n in 0..3 {
            let answer: serde_json::Value = workers
                .run(&serde_json::json!({"n": n}), Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(answer["job"]["n"], n);
            assert_eq!(answer["data_limit"], 64 << 20);
        }
        // A spare is waiting for the next job.
        let mut spare = workers.spare.lock().unwrap().take().expect("a spare");
        assert!(matches!(spare.try_wait(), Ok(None)));
    }

    #[tokio::test]
    async fn a_worker_past_its_deadline_is_killed() {
        let workers = Workers::new("/bin/sleep".into(), &["30"], 64 << 20);
        let started = Instant::now();
        let err = workers
            .run::<_, serde_json::Value>(&1, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, WorkerError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_worker_that_dies_or_answers_nonsense_is_an_error_that_says_so() {
        let died = Workers::new("/bin/sh".into(), &["-c", "echo boom >&2; exit 3"], 64 << 20)
            .run::<_, serde_json::Value>(&1, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(&died, WorkerError::Died { status, stderr } if status.contains('3') && stderr.contains("boom")),
            "{died}"
        );
        let nonsense = Workers::new(
            "/bin/sh".into(),
            &["-c", "cat >/dev/null; echo nope"],
            64 << 20,
        )
        .run::<_, serde_json::Value>(&1, Duration::from_secs(10))
        .await
        .unwrap_err();
        assert!(matches!(nonsense, WorkerError::Answer(_)), "{nonsense}");
        let missing = Workers::new("/nonexistent/worker".into(), &[], 64 << 20)
            .run::<_, serde_json::Value>(&1, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(missing, WorkerError::Spawn(_)), "{missing}");
    }
}
