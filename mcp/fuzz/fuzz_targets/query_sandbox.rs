//! Whatever SQL the guard accepts for tenant `acme`, run in the sandbox it
//! would run in, never reads another tenant's rows nor a file outside the
//! tenant's own: the answer never carries rival's secret or the secret of a
//! file beside the lakehouse, and writes no file. (Errors and refusals are
//! fine; a query is cut off after two seconds.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use servicetsunami_mcp::{
    config::SandboxLimits,
    domain::{Ident, TenantId},
    query_guard,
    sandbox::{Sandbox, SandboxView},
};
use std::sync::OnceLock;
use std::time::Duration;

const RIVAL: &str = "RIVAL-SECRET-7731";
const OUTSIDE: &str = "FILE-SECRET-4410";

struct World {
    dir: tempfile::TempDir,
    views: Vec<SandboxView>,
}

/// acme's silver file, rival's file and a secret CSV, written once.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let (acme, rival, secret) = (path("acme.parquet"), path("rival.parquet"), path("secret.csv"));
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT range AS id, 'acme-row' AS secret FROM range(3)) TO '{acme}';
             COPY (SELECT range AS id, '{RIVAL}' AS secret FROM range(3)) TO '{rival}';
             COPY (SELECT '{OUTSIDE}' AS s) TO '{secret}' (HEADER);"
        ))
        .unwrap();
        let views = vec![SandboxView {
            schema: "acme_silver".into(),
            name: "t".into(),
            sql: format!("CREATE VIEW acme_silver.t AS SELECT * FROM read_parquet('{acme}')"),
            files: vec![acme],
        }];
        World { dir, views }
    })
}

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let world = world();
    let catalog = Ident::parse("lh").unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let Ok(sandbox) = Sandbox::open(SandboxLimits {
        memory_bytes: 64 << 20,
        threads: 1,
    }) else {
        return;
    };
    let Ok(checked) = query_guard::check(sandbox.connection(), &catalog, &tenant, &sql) else {
        return;
    };
    let Ok(conn) = sandbox.admit(&catalog, &tenant, &world.views) else {
        return;
    };
    let interrupt = sandbox.interrupt_handle();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(2)).is_err() {
            interrupt.interrupt();
        }
    });
    let wrapped = format!(
        "SELECT to_json(q)::VARCHAR FROM (\n{}\n) AS q LIMIT 100",
        checked.sql
    );
    if let Ok(mut stmt) = conn.prepare(&wrapped) {
        if let Ok(mut rows) = stmt.query([]) {
            while let Ok(Some(row)) = rows.next() {
                let text: String = row.get(0).unwrap_or_default();
                assert!(!text.contains(RIVAL), "rival's rows through {sql:?}: {text}");
                assert!(!text.contains(OUTSIDE), "a file outside through {sql:?}: {text}");
            }
        }
    }
    let _ = done.send(());
    let _ = watchdog.join();
    // Nothing was written beside the three files.
    let files = std::fs::read_dir(world.dir.path()).map_or(0, |d| d.count());
    assert_eq!(files, 3, "a file appeared through {sql:?}");
});
