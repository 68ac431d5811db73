//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same harness the
//! cargo-fuzz targets run (`fuzz/src/lib.rs`, included here as a module), so that every input
//! the fuzzer kept stays a regression test without libfuzzer or a nightly toolchain.
//!
//! `cargo test -p rsm-tests --test fuzz_corpus -- --ignored write_seed_corpus` rewrites the
//! seed inputs (valid frames of every message type and scripted sessions).

#[path = "../../fuzz/src/lib.rs"]
mod fuzz_harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// `fuzz/corpus/<target>` of this checkout.
fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every file of the target's corpus, sorted by name; panics if there is none.
fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} unreadable: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

/// Run `harness` on every corpus file of `target` (on a thread with a large stack: the node is
/// large); fail with the list of the inputs that panicked.
fn replay(target: &'static str, harness: fn(&[u8])) {
    let files = corpus_files(target);
    let n = files.len();
    let failed = std::thread::Builder::new()
        .name(format!("replay-{target}"))
        .stack_size(32 << 20)
        .spawn(move || {
            let mut failed = Vec::new();
            for f in &files {
                let data = std::fs::read(f).expect("corpus file readable");
                if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
                    failed.push(f.display().to_string());
                }
            }
            failed
        })
        .expect("spawn replay thread")
        .join()
        .expect("replay thread");
    assert!(
        failed.is_empty(),
        "{} of {n} {target} inputs failed: {failed:#?}",
        failed.len()
    );
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn wire_parse_corpus() {
    replay("wire_parse", fuzz_harness::wire_parse);
}

#[test]
fn node_rx_corpus() {
    replay("node_rx", fuzz_harness::node_rx);
}

#[test]
fn engine_rx_corpus() {
    replay("engine_rx", fuzz_harness::engine_rx);
}

/// The seed inputs themselves pass (whether or not they are still in the minimised corpus).
#[test]
fn seeds_pass() {
    std::thread::Builder::new()
        .stack_size(32 << 20)
        .spawn(|| {
            for (target, name, data) in fuzz_harness::seed_corpus() {
                match target {
                    "wire_parse" => fuzz_harness::wire_parse(&data),
                    "node_rx" => fuzz_harness::node_rx(&data),
                    "engine_rx" => fuzz_harness::engine_rx(&data),
                    _ => panic!("seed {name}: unknown target {target}"),
                }
            }
        })
        .expect("spawn")
        .join()
        .expect("seeds pass");
}

/// Writes the seed corpus into `fuzz/corpus/<target>/seed_<name>`.
#[test]
#[ignore = "writes files: run by hand to regenerate the seed corpus"]
fn write_seed_corpus() {
    for (target, name, data) in fuzz_harness::seed_corpus() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed_{name}")), data).expect("write seed");
    }
}
