//! The single-node conformance table (`rsm-conformance`) on the host: every check over the
//! fake platform, which supports every [`Needs`](rsm_conformance::Needs) — so none is
//! excluded here. (The image runs the same table under QEMU: `runner/tests/qemu.rs`.)
//!
//! `RSM_CHECK=<substring>` runs only the checks whose names contain it.

use rsm_conformance::{run, Verdict};
use rsm_tests::table::FakeHarness;

#[test]
fn every_check_passes_on_the_fake_platform() {
    let filter = std::env::var("RSM_CHECK").unwrap_or_default();
    // The nodes are large (158 KB each, several per check in debug builds): a roomy stack.
    let all = filter.is_empty();
    let worker = std::thread::Builder::new()
        .name("conformance".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let mut failed = Vec::new();
            let summary = run(&FakeHarness, &filter, |c, v| {
                if let Verdict::Failed(f) = v {
                    failed.push(format!("{}::{}: {f:?}", c.module, c.name));
                }
            });
            (summary, failed)
        })
        .expect("spawn the table's thread");
    let (summary, failed) = match worker.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    assert!(failed.is_empty(), "{} checks failed:\n{}", failed.len(), failed.join("\n"));
    assert_eq!(summary.excluded, 0, "the fake supports every need");
    assert_eq!(summary.ran, summary.total);
    assert_eq!(summary.passed, summary.ran);
    if all {
        assert!(summary.total >= 300, "the table lost checks: {}", summary.total);
    }
    eprintln!("conformance table: {summary:?}");
}
