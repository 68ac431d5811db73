//! The single-node conformance table (`rsm-conformance`) on the host: every check over the
//! fake platform, which supports every [`Needs`](rsm_conformance::Needs) — so none is
//! excluded here. (The image runs the same table under QEMU: `runner/tests/qemu.rs`.)
//!
//! `RSM_CHECK=<substring>` runs only the checks whose names contain it.

use rsm_conformance::{checks, run, Verdict};
use rsm_tests::table::FakeHarness;
use std::sync::mpsc;
use std::time::Duration;

/// Checks in the table: the 165 single-node tests that were in `tests/tests/conformance*.rs`
/// minus the 7 whose subject is the host backend (`tests/tests/host_*.rs`). A check that
/// disappears from the table fails this.
const TABLE_LEN: usize = 158;

/// The whole table takes well under a second here; a check that hangs (a lost wake-up of a
/// waiter blocked without a deadline) fails the test instead of hanging it.
const WATCHDOG: Duration = Duration::from_secs(120);

#[test]
fn every_check_passes_on_the_fake_platform() {
    let filter = std::env::var("RSM_CHECK").unwrap_or_default();
    let all = filter.is_empty();
    let (tx, rx) = mpsc::channel();
    // The nodes are large (158 KB each, several per check in debug builds): a roomy stack.
    let worker = std::thread::Builder::new()
        .name("conformance".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let mut failed = Vec::new();
            let summary = run(&FakeHarness, &filter, |c, v| {
                if let Verdict::Failed(f) = v {
                    failed.push(format!("{}::{}: {f:?}", c.module, c.name));
                }
                let _ = tx.send(Some(c.name));
            });
            let _ = tx.send(None);
            (summary, failed)
        })
        .expect("spawn the table's thread");
    let mut last = "(none yet)";
    loop {
        match rx.recv_timeout(WATCHDOG) {
            Ok(Some(name)) => last = name,
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the table hangs: no check finished within {WATCHDOG:?} after `{last}`")
            }
        }
    }
    let (summary, failed) = match worker.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    assert!(
        failed.is_empty(),
        "{} checks failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert_eq!(summary.excluded, 0, "the fake supports every need");
    assert_eq!(summary.ran, summary.total);
    assert_eq!(summary.passed, summary.ran);
    if all {
        assert_eq!(summary.total, TABLE_LEN, "checks in the table");
    }
    eprintln!("conformance table: {summary:?}");
}

/// Check names are unique (the image's report and `RSM_CHECK` name checks by them).
#[test]
fn check_names_are_unique() {
    let mut names: Vec<&str> = checks::<FakeHarness>().map(|c| c.name).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "duplicate check names");
}
