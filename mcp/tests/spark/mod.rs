//! A local Spark session for the Spark tier (`spark_server.py` over a pipe).
//! Needs pyspark and a Java runtime (`SPARK_PYTHON`, default `python3`):
//! without them `session()` says so and gives `None` locally; under CI
//! (`CI` set) it fails instead.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub struct Spark {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Spark {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

impl Spark {
    fn start() -> Option<Spark> {
        let python = std::env::var("SPARK_PYTHON").unwrap_or_else(|_| "python3".into());
        let has = |cmd: &str, args: &[&str]| {
            Command::new(cmd)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !has(&python, &["-c", "import pyspark"]) || !has("java", &["-version"]) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the Spark tier: pyspark (SPARK_PYTHON) and Java are missing; \
                 `bash .ci/test` installs them"
            );
            eprintln!("SKIPPED: pyspark or Java is missing; the Spark tier did not run");
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spark/spark_server.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut spark = Spark {
            child,
            stdin,
            stdout,
        };
        let ready = spark.read();
        assert!(ready["ready"].is_string(), "Spark did not start: {ready}");
        Some(spark)
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("an answer from Spark");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn ask(&mut self, op: &str, sql: &str) -> Value {
        let mut line = json!({"op": op, "sql": sql}).to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        self.read()
    }

    /// What Spark's parser reads: `relations`, `functions`, `ctes`, `error`.
    pub fn parse(&mut self, sql: &str) -> Value {
        self.ask("parse", sql)
    }

    /// Runs `sql`: `columns`, `types`, `rows` (strings or null), or `error`.
    pub fn sql(&mut self, sql: &str) -> Value {
        let answer = self.ask("sql", sql);
        assert!(
            answer["error"].is_null(),
            "Spark refused {sql}: {}",
            answer["error"]
        );
        answer
    }
}

/// The one session the tests of a file share, or `None` (see the module).
pub fn session() -> Option<&'static Mutex<Spark>> {
    static SPARK: OnceLock<Option<Mutex<Spark>>> = OnceLock::new();
    SPARK
        .get_or_init(|| Spark::start().map(Mutex::new))
        .as_ref()
}
