//! The benchmark in its smoke mode, so that it cannot rot: every row is measured and
//! printed (its numbers mean nothing at 0.1 s per run; `rsm-node bench` gives the real ones).

use std::process::Command;

#[test]
fn the_bench_runs_in_smoke_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_rsm-node"))
        .args(["bench", "--smoke"])
        .output()
        .expect("rsm-node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("BENCH done"), "{text}");
    // Five windows at 1514 B and six at 65 000 B, on both paths.
    let raw = text
        .lines()
        .filter(|l| l.trim_start().starts_with("raw "))
        .count();
    assert_eq!(raw, 2 * (5 + 6), "{text}");
    for frame in ["1514 B", "65000 B"] {
        for path in ["switch", "direct"] {
            let row = text
                .lines()
                .find(|l| l.contains(frame) && l.contains(path) && l.trim_end().ends_with('x'))
                .unwrap_or_else(|| panic!("no ratio row for {frame} {path}:\n{text}"));
            let ratio: f64 = row
                .split_whitespace()
                .last()
                .and_then(|r| r.trim_end_matches('x').parse().ok())
                .unwrap_or(0.0);
            assert!(ratio > 0.0, "{row}");
        }
    }
    assert!(text.contains("idle CPU over"), "{text}");
}
