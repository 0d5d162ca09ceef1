//! The fault-injection run in its shortened form (the `faults` binary runs
//! the full one): fewer uploads and shorter windows, every fault injected
//! once, every promise checked.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_promise_holds_through_every_fault() {
    let report = stack::faults::run(stack::faults::Plan {
        datasets: 40,
        clients: 8,
        window: Duration::from_secs(4),
        dir: None,
    })
    .await
    .expect("the run completes");
    let text = report.markdown();
    println!("{text}");
    assert_eq!(report.faults.len(), 6, "{text}");
    assert!(report.passed(), "{text}");
    assert_eq!(report.tally.unexpected.len(), 0, "{text}");
}
