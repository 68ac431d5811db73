//! A QEMU cluster: the switch library on 127.0.0.1, then one QEMU process per node, each
//! with a virtio-net NIC (`-netdev dgram`) whose frames go to the switch, MAC from its node
//! id, COM1 to a file of the run directory. Every node's log is shown as it arrives, each
//! line prefixed with the node (`[node 2] …`) and kept in the run directory
//! (`node-N.log`, next to `node-N.serial` and `capture.pcap`); the run ends when every node exited, at the
//! timeout, [`FAIL_GRACE`] after a node failed, or on SIGINT/SIGTERM — in every case no QEMU process outlives it: stragglers
//! are killed and waited for, and a signal ends the runner after the kill (status 130).
//!
//! Host nodes can join through the same switch ([`Cluster::switch_addr`]).

use crate::qemu::{nic_args, qemu_command_with, spawn, BootError, QEMU};
use crate::serial::SerialDecoder;
use rsm_switch::{Switch, SwitchConfig, SwitchStats};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// One node to boot.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// Its node id (1..=63): MAC `52:54:00:52:53:<id>`.
    pub id: u8,
    /// Its kernel command line after `node=<id>` (role, scenario, parameters).
    pub append: String,
}

/// What one node did.
#[derive(Debug, Clone)]
pub struct NodeRun {
    /// Node id.
    pub id: u8,
    /// QEMU's exit status; `None` if killed (timeout or signal).
    pub status: Option<i32>,
    /// The node's decoded log lines.
    pub lines: Vec<String>,
    /// Spawn to exit.
    pub elapsed: Duration,
    /// Spawn to the node's first frame at the switch, if any arrived.
    pub first_frame: Option<Duration>,
    /// When each of [`NodeRun::lines`] was read (since the cluster started).
    pub line_times: Vec<Duration>,
    /// Samples of the QEMU process's CPU time: (since the cluster started, user + system
    /// clock ticks of 1/[`CLOCK_TICKS`] s), one per poll while it ran.
    pub cpu: Vec<(Duration, u64)>,
}

/// `/proc/<pid>/stat`'s tick rate (USER_HZ).
pub const CLOCK_TICKS: u64 = 100;

/// User + system CPU ticks of process `pid` so far.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

impl NodeRun {
    /// When the first line starting with `prefix` was read.
    pub fn time_of(&self, prefix: &str) -> Option<Duration> {
        self.lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .and_then(|i| self.line_times.get(i).copied())
    }

    /// CPU seconds per second of the QEMU process between two moments (the samples
    /// nearest inside them), or `None` without two samples there.
    pub fn cpu_share(&self, from: Duration, to: Duration) -> Option<f64> {
        let a = self.cpu.iter().find(|(t, _)| *t >= from)?;
        let b = self.cpu.iter().rev().find(|(t, _)| *t <= to)?;
        let wall = b.0.checked_sub(a.0)?.as_secs_f64();
        (wall > 0.0).then(|| (b.1.saturating_sub(a.1)) as f64 / CLOCK_TICKS as f64 / wall)
    }
}

impl NodeRun {
    /// The `key=value` fields of the node's `REPORT` line, if it printed one.
    pub fn report(&self) -> Option<BTreeMap<String, String>> {
        let line = self.lines.iter().find_map(|l| l.strip_prefix("REPORT "))?;
        Some(
            line.split_ascii_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// What a cluster run gave.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// Per node, in plan order.
    pub nodes: Vec<NodeRun>,
    /// The switch's counters at the end.
    pub switch: SwitchStats,
    /// The capture (snap length [`SNAPLEN`]).
    pub pcap: PathBuf,
    /// The run was cut short by the timeout.
    pub timed_out: bool,
}

/// How long the other nodes may run on after one node failed.
pub const FAIL_GRACE: Duration = Duration::from_secs(3);

/// Bytes of each frame kept in the capture: headers and the start of the payload.
pub const SNAPLEN: u32 = 256;

/// Set by SIGINT/SIGTERM (registered once per process).
fn interrupted() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registration fails only for forbidden signals; these two are allowed.
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
}

/// The running QEMU processes; killed and reaped on drop, so no path out of
/// [`run`] (error, panic, timeout, signal) leaves one behind.
struct Children(Vec<Option<Child>>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free UDP port on 127.0.0.1 for a node's end of the link (bound and released: QEMU
/// binds it a moment later).
fn free_port() -> io::Result<SocketAddr> {
    UdpSocket::bind(("127.0.0.1", 0))?.local_addr()
}

/// A cluster whose switch runs; nodes are booted by [`Cluster::run`].
pub struct Cluster {
    switch: Switch,
    dir: PathBuf,
    qemu: PathBuf,
}

impl Cluster {
    /// Start the switch, capturing to `dir/capture.pcap` (the directory is created).
    ///
    /// # Errors
    /// When the directory or the switch's socket cannot be made.
    pub fn start(dir: &Path) -> io::Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let switch = Switch::start(SwitchConfig {
            learn: false,
            pcap: Some(dir.join("capture.pcap")),
            snaplen: SNAPLEN,
            ..SwitchConfig::default()
        })?;
        Ok(Cluster {
            switch,
            dir: dir.to_path_buf(),
            qemu: PathBuf::from(QEMU),
        })
    }

    /// Boot with this QEMU binary instead of [`QEMU`] from `PATH`.
    #[must_use]
    pub fn with_qemu(mut self, qemu: &Path) -> Cluster {
        self.qemu = qemu.to_path_buf();
        self
    }

    /// The switch's address, for host nodes (`RSM_LINK=switch:<addr>`).
    pub fn switch_addr(&self) -> SocketAddr {
        self.switch.addr()
    }

    /// Bind a host node's MAC to its UDP address at the switch.
    pub fn bind_host(&self, mac: [u8; 6], addr: SocketAddr) {
        self.switch.bind_port(mac, addr);
    }

    /// Boot every node of `plans` from `image` and wait until all exited, `timeout` passed
    /// (stragglers killed) or a signal came (all killed, then the process exits with 130).
    /// `show` gets every decoded log line, prefixed with its node, as it arrives.
    ///
    /// # Errors
    /// [`BootError`] when the image or QEMU is missing or a process cannot be started.
    pub fn run(
        self,
        image: &Path,
        plans: &[NodePlan],
        timeout: Duration,
        show: &mut dyn FnMut(&str),
    ) -> Result<ClusterRun, BootError> {
        if !image.is_file() {
            return Err(BootError::NoImage(image.to_path_buf()));
        }
        let stop = interrupted();
        let mut children = Children(Vec::new());
        let mut decoders = Vec::new();
        let mut serials = Vec::new();
        let mut runs = Vec::new();
        let start = Instant::now();
        for p in plans {
            let local = free_port().map_err(BootError::Io)?;
            let mac = rsm_core::node_mac(u32::from(p.id));
            self.switch.bind_port(mac, local);
            let serial = self.dir.join(format!("node-{}.serial", p.id));
            let _ = std::fs::remove_file(&serial);
            let append = format!("node={} {}", p.id, p.append);
            let child = spawn(
                qemu_command_with(&self.qemu, image, &append, &serial).args(nic_args(
                    p.id,
                    local,
                    self.switch.addr(),
                )),
            )?;
            children.0.push(Some(child));
            decoders.push(SerialDecoder::new(image));
            serials.push((serial, 0u64));
            runs.push(NodeRun {
                id: p.id,
                status: None,
                lines: Vec::new(),
                elapsed: Duration::ZERO,
                first_frame: None,
                line_times: Vec::new(),
                cpu: Vec::new(),
            });
        }
        let mut timed_out = false;
        let mut failed_at: Option<Instant> = None;
        loop {
            let mut alive = 0;
            for (k, c) in children.0.iter_mut().enumerate() {
                let Some(child) = c else { continue };
                if let Some(t) = cpu_ticks(child.id()) {
                    runs[k].cpu.push((start.elapsed(), t));
                }
                match child.try_wait().map_err(BootError::Io)? {
                    Some(s) => {
                        if s.code() != Some(crate::qemu::STATUS_PASS) && failed_at.is_none() {
                            failed_at = Some(Instant::now());
                        }
                        runs[k].status = s.code();
                        runs[k].elapsed = start.elapsed();
                        *c = None;
                    }
                    None => alive += 1,
                }
            }
            let stats = self.switch.stats();
            for r in runs.iter_mut().filter(|r| r.first_frame.is_none()) {
                let mac = rsm_core::node_mac(u32::from(r.id));
                if stats.port_of(mac).is_some_and(|p| p.counters.rx_frames > 0) {
                    r.first_frame = Some(start.elapsed());
                }
            }
            for (k, (path, seen)) in serials.iter_mut().enumerate() {
                for line in decoders[k].read_new(path, seen) {
                    show(&format!("[node {}] {line}", runs[k].id));
                    runs[k].lines.push(line);
                    runs[k].line_times.push(start.elapsed());
                }
            }
            if alive == 0 {
                break;
            }
            if stop.load(Ordering::Relaxed) {
                drop(children);
                let _ = writeln!(
                    io::stderr(),
                    "rsm-runner: interrupted — every QEMU process killed"
                );
                std::process::exit(130);
            }
            if start.elapsed() > timeout {
                timed_out = true;
                break;
            }
            // A node failed: the others get a moment to finish their logs, then are killed.
            if failed_at.is_some_and(|t| t.elapsed() > FAIL_GRACE) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(children);
        for (k, (path, seen)) in serials.iter_mut().enumerate() {
            for line in decoders[k].read_new(path, seen) {
                show(&format!("[node {}] {line}", runs[k].id));
                runs[k].lines.push(line);
                runs[k].line_times.push(start.elapsed());
            }
            if runs[k].elapsed == Duration::ZERO {
                runs[k].elapsed = start.elapsed();
            }
        }
        for r in &runs {
            let _ = std::fs::write(
                self.dir.join(format!("node-{}.log", r.id)),
                r.lines.join("\n") + "\n",
            );
        }
        let pcap = self.dir.join("capture.pcap");
        let switch = self.switch.stop();
        Ok(ClusterRun {
            nodes: runs,
            switch,
            pcap,
            timed_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Vec<NodePlan> {
        vec![NodePlan {
            id: 1,
            append: String::new(),
        }]
    }

    #[test]
    fn a_missing_image_fails_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("rsm-cluster-noimage-{}", std::process::id()));
        let c = Cluster::start(&dir).expect("switch");
        let e = c
            .run(
                Path::new("/nonexistent/rsm-kernel"),
                &plan(),
                Duration::from_secs(5),
                &mut |_| {},
            )
            .expect_err("no image");
        assert!(matches!(e, BootError::NoImage(_)), "{e}");
        assert!(e.to_string().contains("image build"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_qemu_fails_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("rsm-cluster-noqemu-{}", std::process::id()));
        let c = Cluster::start(&dir)
            .expect("switch")
            .with_qemu(Path::new("/nonexistent/qemu-system-x86_64"));
        // Any existing file stands in for the image: QEMU is looked for first at spawn.
        let image = std::env::current_exe().expect("exe");
        let e = c
            .run(&image, &plan(), Duration::from_secs(5), &mut |_| {})
            .expect_err("no qemu");
        assert!(matches!(e, BootError::NoQemu), "{e}");
        assert!(
            e.to_string().contains("apt-get install qemu-system-x86"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
