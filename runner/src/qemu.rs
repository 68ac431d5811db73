//! Booting the image under QEMU: one node per QEMU process, TCG, one vCPU, `isa-debug-exit`
//! for the verdict. Every QEMU process started here is killed when its run ends (on a
//! timeout too), so none outlives its call.

use std::io;
use std::net::{SocketAddr, UdpSocket};
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
    /// Everything the image wrote to COM1, decoded (defmt), one line per frame.
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
    boot_with(image, append, serial_log, timeout, &[])
}

/// QEMU arguments for a virtio-net NIC (MAC of node `node`) whose frames go as UDP
/// datagrams to `remote` from the local address `local` (`-netdev dgram`).
pub fn nic_args(node: u8, local: SocketAddr, remote: SocketAddr) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!(
            "dgram,id=n0,remote.type=inet,remote.host={},remote.port={},local.type=inet,local.host={},local.port={}",
            remote.ip(),
            remote.port(),
            local.ip(),
            local.port()
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,disable-legacy=on,mac=52:54:00:52:53:{node:02x}"),
    ]
}

/// The QEMU command for one node: q35, TCG, one vCPU (`-cpu max`: SSE4.2 and friends),
/// 128 MiB, `-kernel image -append append`, COM1 to `serial_log`, no display, no monitor,
/// no reboot, `isa-debug-exit` at 0xf4.
pub fn qemu_command(image: &Path, append: &str, serial_log: &Path) -> Command {
    qemu_command_with(Path::new(QEMU), image, append, serial_log)
}

/// [`qemu_command`] with another QEMU binary.
pub fn qemu_command_with(qemu: &Path, image: &Path, append: &str, serial_log: &Path) -> Command {
    let mut c = Command::new(qemu);
    c.args([
        "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "128M",
    ])
    .arg("-kernel")
    .arg(image)
    .args(["-append", append])
    .arg("-serial")
    .arg(format!("file:{}", serial_log.display()))
    .args(["-display", "none", "-monitor", "none", "-no-reboot"])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    c
}

/// Start a QEMU command with no standard input or output (COM1 goes to its log file);
/// a missing binary is [`BootError::NoQemu`].
///
/// # Errors
/// [`BootError::NoQemu`] or the spawn error.
pub fn spawn(cmd: &mut Command) -> Result<std::process::Child, BootError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BootError::NoQemu,
            _ => BootError::Io(e),
        })
}

/// [`boot`] with extra QEMU arguments (e.g. [`nic_args`]).
///
/// # Errors
/// As [`boot`].
pub fn boot_with(
    image: &Path,
    append: &str,
    serial_log: &Path,
    timeout: Duration,
    extra: &[String],
) -> Result<Boot, BootError> {
    if !image.is_file() {
        return Err(BootError::NoImage(image.to_path_buf()));
    }
    let _ = std::fs::remove_file(serial_log);
    let start = Instant::now();
    let mut child = spawn(qemu_command(image, append, serial_log).args(extra))?;
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
    let mut dec = crate::serial::SerialDecoder::new(image);
    let serial = dec.read_new(serial_log, &mut 0).join("\n") + "\n";
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
    /// Echo the log lines starting with these (measurements).
    show: &'static [&'static str],
}

const CASES: [Case; 7] = [
    Case {
        name: "boot to ready",
        append: "node=1 role=boot",
        status: STATUS_PASS,
        line: "rsm-kernel: ready",
        show: &[],
    },
    Case {
        name: "page fault is logged, exit = fail",
        append: "node=1 scenario=fault",
        status: STATUS_FAIL,
        line: "rsm-board: EXCEPTION 14",
        show: &[],
    },
    Case {
        name: "null read hits the guard page",
        append: "node=1 scenario=null",
        status: STATUS_FAIL,
        line: "cr2 0x0",
        show: &[],
    },
    Case {
        name: "fault inside a log call is logged",
        append: "node=1 scenario=logfault",
        status: STATUS_FAIL,
        line: "rsm-board: EXCEPTION 14",
        show: &[],
    },
    Case {
        name: "stack overflow: double fault logged",
        append: "node=1 scenario=overflow",
        status: STATUS_FAIL,
        line: "rsm-board: EXCEPTION 8",
        show: &[],
    },
    Case {
        name: "panic is logged, exit = panic",
        append: "node=1 scenario=panic",
        status: STATUS_PANIC,
        line: "rsm-board: PANIC",
        show: &[],
    },
    Case {
        name: "CRC-32C soft = crc32 insn; copies",
        append: "node=1 scenario=crc",
        status: STATUS_PASS,
        line: "agree=true",
        show: &["CRC ", "COPY ", "TIMING "],
    },
];

/// The NIC self-check: the image (node 1) sends a broadcast frame through virtio-net to a
/// UDP socket of ours, which answers with a frame addressed to the node's MAC; the image
/// must receive it and pass. Returns the boot and what our socket received.
fn net_case(image: &Path, log: &Path) -> Result<(Boot, Option<Vec<u8>>), String> {
    let peer = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let qemu_side = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let (ours, theirs) = (
        peer.local_addr().map_err(|e| e.to_string())?,
        qemu_side.local_addr().map_err(|e| e.to_string())?,
    );
    drop(qemu_side);
    peer.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = peer.recv_from(&mut buf).ok()?;
        let got = buf[..n].to_vec();
        let mut reply = vec![0u8; 64];
        reply[..6].copy_from_slice(&[0x52, 0x54, 0x00, 0x52, 0x53, 0x01]);
        reply[6..12].copy_from_slice(&[0x52, 0x54, 0x00, 0x52, 0x53, 0x00]);
        reply[12..14].copy_from_slice(&0x88B6u16.to_be_bytes());
        reply[14..18].copy_from_slice(b"echo");
        let _ = peer.send_to(&reply, from);
        Some(got)
    });
    let b = boot_with(
        image,
        "node=1 scenario=net",
        log,
        Duration::from_secs(60),
        &nic_args(1, theirs, ours),
    )
    .map_err(|e| e.to_string())?;
    let got = if echo.is_finished() {
        echo.join().ok().flatten()
    } else {
        None
    };
    Ok((b, got))
}

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
            .any(|l| l.starts_with("rsm-board: cmdline") && l.contains(c.append));
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
        for l in b
            .serial
            .lines()
            .filter(|l| c.show.iter().any(|p| l.starts_with(p)))
        {
            let _ = writeln!(out, "         {l}");
        }
        if !ok {
            return Err(format!(
                "{}: status {:?} (want {}; None = killed at the timeout), serial log:\n{}",
                c.name, b.status, c.status, b.serial
            ));
        }
    }
    let log = dir.join("smoke-net.log");
    let (b, got) = net_case(image, &log)?;
    let frame_ok = got.as_ref().is_some_and(|f| {
        f.len() >= 14
            && f[6..12] == [0x52, 0x54, 0x00, 0x52, 0x53, 0x01]
            && f[12..14] == 0x88B6u16.to_be_bytes()
            && f.windows(6).any(|w| w == b"node=1")
    });
    let ok =
        b.status == Some(STATUS_PASS) && frame_ok && b.serial.contains("addressed to us: true");
    let _ = writeln!(
        out,
        "  [{}] {:<36} QEMU status {:?} (want {STATUS_PASS}), frame from the image: {}, {:.0?}",
        if ok { " OK " } else { "FAIL" },
        "virtio-net frame out and back",
        b.status,
        got.as_ref()
            .map_or("none".to_string(), |f| format!("{} bytes", f.len())),
        b.elapsed
    );
    if !ok {
        return Err(format!(
            "virtio-net self-check: status {:?}, frame {:?}, serial log:\n{}",
            b.status, got, b.serial
        ));
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
