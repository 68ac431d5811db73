//! Booting the image under QEMU: one node per QEMU process, TCG, one vCPU, `isa-debug-exit`
//! for the verdict. Every QEMU process started here is killed when its run ends (on a
//! timeout too), so none outlives its call.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary (installed by the test command's tools step when missing).
pub const QEMU: &str = "qemu-system-x86_64";

/// QEMU's exit status for the image's pass code (`(0x10 << 1) | 1`).
pub const STATUS_PASS: i32 = 33;
/// QEMU's exit status for the image's failure code (`(0x11 << 1) | 1`).
pub const STATUS_FAIL: i32 = 35;
/// QEMU's exit status for the image's panic code (`(0x12 << 1) | 1`).
pub const STATUS_PANIC: i32 = 37;

/// What one boot gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// QEMU's exit status; `None` if it was killed at the timeout.
    pub status: Option<i32>,
    /// Everything the image wrote to COM1.
    pub serial: String,
    /// From spawn to exit.
    pub elapsed: Duration,
}

/// Why a boot could not be run.
#[derive(Debug)]
pub enum BootError {
    /// No QEMU on `PATH`.
    NoQemu,
    /// No image at this path.
    NoImage(PathBuf),
    /// Spawning or waiting failed.
    Io(io::Error),
}

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootError::NoQemu => write!(
                f,
                "`{QEMU}` was not found on PATH (`cargo rsm test` installs it: apt-get install qemu-system-x86)"
            ),
            BootError::NoImage(p) => write!(
                f,
                "no image at {} (`cargo rsm test` builds it in its `image build` step)",
                p.display()
            ),
            BootError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BootError {}

/// Boot `image` with kernel command line `append`, COM1 to `serial_log`; kill QEMU after
/// `timeout`.
///
/// # Errors
/// [`BootError`] when QEMU or the image is missing or QEMU cannot be run.
pub fn boot(
    image: &Path,
    append: &str,
    serial_log: &Path,
    timeout: Duration,
) -> Result<Boot, BootError> {
    if !image.is_file() {
        return Err(BootError::NoImage(image.to_path_buf()));
    }
    let _ = std::fs::remove_file(serial_log);
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args([
            "-machine", "q35", "-accel", "tcg", "-smp", "1", "-m", "128M",
        ])
        .arg("-kernel")
        .arg(image)
        .args(["-append", append])
        .arg("-serial")
        .arg(format!("file:{}", serial_log.display()))
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BootError::NoQemu,
            _ => BootError::Io(e),
        })?;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(BootError::Io)? {
            break s.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let serial = std::fs::read_to_string(serial_log).unwrap_or_default();
    Ok(Boot {
        status,
        serial,
        elapsed,
    })
}

/// One self-check of the board code.
struct Case {
    name: &'static str,
    append: &'static str,
    status: i32,
    line: &'static str,
}

const CASES: [Case; 3] = [
    Case {
        name: "boot to ready",
        append: "node=1 role=boot",
        status: STATUS_PASS,
        line: "rsm-kernel: ready",
    },
    Case {
        name: "page fault is logged, exit = fail",
        append: "node=1 scenario=fault",
        status: STATUS_FAIL,
        line: "rsm-kernel: EXCEPTION 14",
    },
    Case {
        name: "panic is logged, exit = panic",
        append: "node=1 scenario=panic",
        status: STATUS_PANIC,
        line: "rsm-kernel: PANIC",
    },
];

/// `cargo rsm qemu-smoke IMAGE`: boot the image three times (to ready, into a page fault,
/// into a panic) and check each exit status and log line; one line per case on `out`.
///
/// # Errors
/// The first case that did not hold, or why QEMU could not run.
pub fn smoke(image: &Path, dir: &Path, out: &mut dyn io::Write) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (k, c) in CASES.iter().enumerate() {
        let log = dir.join(format!("smoke-{k}.log"));
        let b = boot(image, c.append, &log, Duration::from_secs(60)).map_err(|e| e.to_string())?;
        let echoed = b
            .serial
            .lines()
            .any(|l| l.starts_with("rsm-kernel: cmdline") && l.contains(c.append));
        let ok = b.status == Some(c.status) && echoed && b.serial.contains(c.line);
        let _ = writeln!(
            out,
            "  [{}] {:<36} QEMU status {:?} (want {}), {:.0?}",
            if ok { " OK " } else { "FAIL" },
            c.name,
            b.status,
            c.status,
            b.elapsed
        );
        if !ok {
            return Err(format!(
                "{}: status {:?} (want {}; None = killed at the timeout), serial log:\n{}",
                c.name, b.status, c.status, b.serial
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_image_is_an_error_with_the_reason() {
        let e = boot(
            Path::new("/nonexistent/rsm-kernel"),
            "",
            Path::new("/tmp/rsm-none.log"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, BootError::NoImage(_)));
        assert!(e.to_string().contains("image build"), "{e}");
    }
}
