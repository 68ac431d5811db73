//! The conformance table under QEMU: boot one image node with `scenario=conformance` and
//! read what it reports (`rsm-kernel`'s `conformance` module prints a `FAILED` line per
//! failing check, an `EXCLUDED` line per excluded one and a `CONFORMANCE` summary).

use crate::qemu::{self, BootError};
use std::path::Path;
use std::time::Duration;

/// How long the table may take under TCG (it takes a few seconds).
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// What the image reported.
#[derive(Debug, Clone, Default)]
pub struct ImageConformance {
    /// QEMU's exit status (`None`: killed at the timeout).
    pub status: Option<i32>,
    /// Checks in the image's table.
    pub total: usize,
    /// Checks run.
    pub ran: usize,
    /// Checks passed.
    pub passed: usize,
    /// Checks excluded.
    pub excluded: usize,
    /// The `Needs` bits the image's harness supports.
    pub supports: u32,
    /// Checks after which frames stayed pinned.
    pub leaks: usize,
    /// Milliseconds the table took in the guest.
    pub ms: u64,
    /// The excluded checks: (name, need, reason).
    pub exclusions: Vec<(String, String, String)>,
    /// The `FAILED` lines.
    pub failures: Vec<String>,
    /// The whole decoded serial log.
    pub serial: String,
    /// Spawn to exit.
    pub elapsed: Duration,
}

impl ImageConformance {
    /// `true` if the summary line was seen (else the numbers are zeros).
    pub fn reported(&self) -> bool {
        self.total > 0
    }
}

/// The value of `key=` in a line of `key=value` words.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Parse the image's serial log.
pub fn parse(serial: &str) -> ImageConformance {
    let mut r = ImageConformance::default();
    for line in serial.lines() {
        if let Some(at) = line.find("EXCLUDED ") {
            let mut w = line[at + "EXCLUDED ".len()..].splitn(3, ' ');
            let (name, need, why) = (w.next(), w.next(), w.next());
            r.exclusions.push((
                name.unwrap_or("").to_owned(),
                need.unwrap_or("").to_owned(),
                why.unwrap_or("").to_owned(),
            ));
        } else if let Some(at) = line.find("FAILED ") {
            r.failures.push(line[at..].to_owned());
        } else if let Some(at) = line.find("CONFORMANCE ") {
            let l = &line[at..];
            let n = |k| field(l, k).unwrap_or(0);
            r.total = n("total") as usize;
            r.ran = n("ran") as usize;
            r.passed = n("passed") as usize;
            r.excluded = n("excluded") as usize;
            r.supports = n("supports") as u32;
            r.leaks = n("leaks") as usize;
            r.ms = n("ms");
        }
    }
    r.serial = serial.to_owned();
    r
}

/// Boot `image` into the conformance table, its serial log at `serial_log`.
///
/// # Errors
/// No QEMU, no image, or an I/O error.
pub fn run(image: &Path, serial_log: &Path) -> Result<ImageConformance, BootError> {
    let boot = qemu::boot_with(
        image,
        "node=1 scenario=conformance",
        serial_log,
        TIMEOUT,
        &[],
    )?;
    let mut r = parse(&boot.serial);
    r.status = boot.status;
    r.elapsed = boot.elapsed;
    Ok(r)
}

/// The readable report.
pub fn report(r: &ImageConformance) -> String {
    let mut s = format!(
        "conformance table in the image: {} checks, {} ran, {} passed, {} excluded, {} pin leaks ({} ms in the guest, {:.1} s with boot)\n",
        r.total,
        r.ran,
        r.passed,
        r.excluded,
        r.leaks,
        r.ms,
        r.elapsed.as_secs_f64()
    );
    for (name, need, why) in &r.exclusions {
        s += &format!("  excluded {name}: {need} ({why})\n");
    }
    for f in &r.failures {
        s += &format!("  {f}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_image_lines() {
        let log = "[node 1] EXCLUDED racing_waiters THREADS needs two threads at once\n\
                   [node 1] FAILED m::c f.rs:3 a == b 1 != 2\n\
                   [node 1] CONFORMANCE total=10 ran=9 passed=8 excluded=1 supports=4 leaks=0 ms=77\n";
        let r = parse(log);
        assert_eq!((r.total, r.ran, r.passed, r.excluded), (10, 9, 8, 1));
        assert_eq!((r.supports, r.leaks, r.ms), (4, 0, 77));
        assert_eq!(
            r.exclusions,
            vec![(
                "racing_waiters".to_owned(),
                "THREADS".to_owned(),
                "needs two threads at once".to_owned()
            )]
        );
        assert_eq!(
            r.failures,
            vec!["FAILED m::c f.rs:3 a == b 1 != 2".to_owned()]
        );
        assert!(r.reported());
        assert!(!parse("nothing").reported());
    }
}
