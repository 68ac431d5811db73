//! Shared by the rsm-host benches: reading criterion's results back and reporting ratios.
//!
//! After a group has finished, criterion has written
//! `<criterion dir>/<group>/<bench>/new/estimates.json`; [`median_ns`] reads the median point
//! estimate (nanoseconds per iteration) from there, but only if the file was written by this
//! process — a ratio is never computed from an older run. [`Report::line`] prints a `RATIO`
//! line and appends it to `<criterion dir>/rsm-ratios.txt`.
//!
//! Under `cargo test --benches` (criterion's test mode, no `--bench` argument) every bench runs
//! once, nothing is written, and [`Report::new`] returns `None`: no ratios are printed.

// Each bench binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The directory criterion writes to, found the way criterion finds it: `$CRITERION_HOME`,
/// `$CARGO_TARGET_DIR/criterion`, else `<target dir>/criterion` with the target dir found by
/// walking up from this executable (`<target>/<profile>/deps/<bench>`) to the directory cargo
/// marked with `CACHEDIR.TAG`, else `./target/criterion`.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .find(|d| d.join("CACHEDIR.TAG").is_file() || d.file_name() == Some("target".as_ref()))
    });
    match target {
        Some(t) => t.join("criterion"),
        None => PathBuf::from("target/criterion"),
    }
}

/// The baseline directory criterion saves this run under: `new`, or the name given with
/// `--save-baseline NAME`.
fn baseline_name() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--save-baseline")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "new".to_owned())
}

/// The `"point_estimate"` of the `"<stat>"` object in criterion's `estimates.json`.
fn point_estimate(json: &str, stat: &str) -> Option<f64> {
    let at = json.find(&format!("\"{stat}\":"))?;
    let rest = &json[at..];
    let key = "\"point_estimate\":";
    let rest = &rest[rest.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// Ratio reporting for one bench binary, active only in bench mode.
pub struct Report {
    dir: PathBuf,
    baseline: String,
    started: SystemTime,
}

impl Report {
    /// `None` unless criterion runs in bench mode (cargo passes `--bench`).
    pub fn new(bench: &str) -> Option<Report> {
        if !std::env::args().any(|a| a == "--bench") {
            return None;
        }
        let report = Report {
            dir: criterion_dir(),
            baseline: baseline_name(),
            // A little slack for file systems with coarse timestamps.
            started: SystemTime::now() - std::time::Duration::from_secs(2),
        };
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        report.append(&format!(
            "# rsm-host bench `{bench}`, unix time {unix}, {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        Some(report)
    }

    /// The median time per iteration, in ns, of `group/bench` as measured by this process;
    /// `None` (with a note on stderr) if the bench did not run in this process, e.g. because
    /// a filter excluded it.
    pub fn median_ns(&self, group: &str, bench: &str) -> Option<f64> {
        let file = PathBuf::from(group)
            .join(bench)
            .join(&self.baseline)
            .join("estimates.json");
        // Criterion itself falls back to `./target/criterion` when it runs outside cargo.
        let path = [
            self.dir.join(&file),
            PathBuf::from("target/criterion").join(&file),
        ]
        .into_iter()
        .find(|path| {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= self.started)
        });
        let value = path
            .as_ref()
            .and_then(|path| fs::read_to_string(path).ok())
            .and_then(|json| point_estimate(&json, "median"));
        if value.is_none() {
            eprintln!(
                "note: no estimate from this run at {}",
                self.dir.join(&file).display()
            );
        }
        value
    }

    /// Print `RATIO <name>: <text>` and append it to `rsm-ratios.txt`.
    pub fn line(&self, name: &str, text: &str) {
        let line = format!("RATIO {name}: {text}");
        println!("\n{line}\n");
        self.append(&line);
    }

    fn append(&self, line: &str) {
        let path = self.dir.join("rsm-ratios.txt");
        let written = fs::create_dir_all(&self.dir).and_then(|()| {
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            writeln!(f, "{line}")
        });
        if let Err(e) = written {
            eprintln!("note: could not append to {}: {e}", path.display());
        }
    }
}

/// Rounds of [`interleaved`]: with batches of about 100 µs per side, about half a second.
pub const ROUNDS: usize = 2500;

/// An interleaved cross-check of two benches, independent of criterion: `rounds` times, time
/// `batch` calls of `a`, then `batch` calls of `b`; returns the median ns per call of each.
/// Alternating in short batches makes both sides see the same machine load, which criterion's
/// one-after-the-other measurement of a group cannot promise on a busy machine.
pub fn interleaved<A, B>(
    rounds: usize,
    batch: u64,
    mut a: impl FnMut() -> A,
    mut b: impl FnMut() -> B,
) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(a());
        }
        ta.push(t.elapsed().as_nanos() as f64 / batch as f64);
        let t = Instant::now();
        for _ in 0..batch {
            black_box(b());
        }
        tb.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    (median(&mut ta), median(&mut tb))
}

/// Calls per batch for [`interleaved`] so that a batch of a call of `ns` lasts about 100 µs.
pub fn batch_for(ns: f64) -> u64 {
    ((100_000.0 / ns.max(1.0)) as u64).max(1)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `MET` or `MISSED`.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "MISSED"
    }
}

/// Bytes per nanosecond is GB/s.
pub fn gbps(bytes: usize, ns: f64) -> f64 {
    bytes as f64 / ns
}
