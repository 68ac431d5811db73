//! Multi-process clusters: `rsm-node` processes on 127.0.0.1 through the switch library
//! running in the test process (ephemeral ports everywhere). Every process a test starts is
//! killed when its handle drops, also when the test fails.

use rsm_host::runtime::node_mac;
use rsm_switch::{Switch, SwitchConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running `rsm-node` and the lines it printed (stdout and stderr), time-stamped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl Proc {
    /// Node `id` through the switch at `sw`, in `role` with `args`.
    fn start(sw: SocketAddr, id: u32, role: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rsm-node"))
            .arg(role)
            .args(args)
            .env("RSM_NODE_ID", id.to_string())
            .env("RSM_LINK", format!("udp:127.0.0.1:0,switch={sw}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rsm-node starts");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), l));
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send((Instant::now(), format!("stderr: {l}")));
            }
        });
        Proc {
            name: format!("node {id} ({role})"),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line starting with `word`, within `limit`; panics (showing everything the
    /// process printed) on a `FAIL` line, on its exit, or at the limit.
    fn expect(&mut self, word: &str, limit: Duration) -> (Instant, String) {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    self.seen.push(l.clone());
                    if l.starts_with("FAIL") {
                        panic!("{} failed: {l}\n{}", self.name, self.seen.join("\n"));
                    }
                    if l.starts_with(word) {
                        return (t, l);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no `{word}` line within {limit:?}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} ended without a `{word}` line; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Lines seen so far starting with `word`.
    fn count(&self, word: &str) -> usize {
        self.seen.iter().filter(|l| l.starts_with(word)).count()
    }

    /// Wait for the exit (within `limit`, else kill) and its `BYE` line; the status.
    fn finish(&mut self, limit: Duration) -> i32 {
        self.expect("BYE", limit);
        let end = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > end {
                panic!("{} does not exit:\n{}", self.name, self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Tell an exporter started with `--stay` to leave cleanly.
    fn quit(&mut self) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(b"quit\n");
            let _ = s.flush();
        }
    }

    /// `kill -9`.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field `key=value` of a line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in `{line}`"))
}

const LONG: Duration = Duration::from_secs(60);

/// The story with `importers` importer processes, `rounds` each; returns the switch's
/// counters.
fn story(cfg: SwitchConfig, importers: &[u32], rounds: u32) -> rsm_switch::SwitchStats {
    let sw = Switch::start(cfg).unwrap();
    let list = importers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let r = rounds.to_string();
    let mut ex = Proc::start(
        sw.addr(),
        1,
        "exporter",
        &["--importers", &list, "--rounds", &r],
    );
    ex.expect("READY", LONG);
    let mut ims: Vec<Proc> = importers
        .iter()
        .map(|&n| Proc::start(sw.addr(), n, "importer", &["--rounds", &r]))
        .collect();
    for im in &mut ims {
        im.expect("ACL", LONG);
        let (_, done) = im.expect("DONE", LONG);
        assert_eq!(field(&done, "rounds"), r);
        assert_eq!(im.count("ROUND"), rounds as usize);
        assert_eq!(im.finish(LONG), 0);
    }
    ex.expect("SERVED", LONG);
    assert_eq!(ex.count("ROUND"), importers.len() * rounds as usize);
    assert_eq!(ex.count("FINISHED"), importers.len());
    assert_eq!(ex.finish(LONG), 0);
    sw.stop()
}

#[test]
fn two_processes_run_the_seed_story_through_the_switch() {
    let st = story(SwitchConfig::default(), &[2], 5);
    assert_eq!(st.ports.len(), 2);
    assert!(st.ports.iter().all(|p| p.counters.spoofed == 0));
}

#[test]
fn four_processes_run_the_seed_story_through_the_switch() {
    let st = story(SwitchConfig::default(), &[2, 3, 4], 4);
    assert_eq!(st.ports.len(), 4);
}

#[test]
fn the_story_survives_drops_duplicates_reordering_and_corruption() {
    let faults = rsm_hal::netsim::FaultConfig {
        drop_pct: 10.0,
        duplicate_pct: 5.0,
        reorder_pct: 5.0,
        reorder_window: 4,
        corrupt_pct: 1.0,
        ..Default::default()
    };
    let st = story(
        SwitchConfig {
            faults,
            seed: 77,
            ..SwitchConfig::default()
        },
        &[2],
        40,
    );
    let f = st.ports.iter().fold((0, 0, 0, 0), |a, p| {
        let c = &p.counters.faults;
        (
            a.0 + c.dropped,
            a.1 + c.duplicated,
            a.2 + c.reordered,
            a.3 + c.corrupted,
        )
    });
    println!("faults (dropped, duplicated, reordered, corrupted): {f:?}");
    assert!(f.0 > 0 && f.1 > 0 && f.2 > 0 && f.3 > 0, "{f:?}");
}

#[test]
fn unpublish_mid_transfer_gives_conn_aborted_with_the_exact_residual() {
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    let mut ex = Proc::start(
        sw.addr(),
        1,
        "exporter",
        &["--stay", "--unpublish-after-entry", "3"],
    );
    ex.expect("READY", LONG);
    let mut im = Proc::start(sw.addr(), 2, "bulk", &[]);
    let (_, bulk) = im.expect("BULK", LONG);
    let (_, unp) = ex.expect("UNPUBLISHED", LONG);
    assert_eq!(field(&bulk, "result"), "RSMERR_CONN_ABORTED", "{bulk}");
    let residual: u64 = field(&bulk, "residual").parse().unwrap();
    let prefix: u64 = field(&unp, "prefix").parse().unwrap();
    println!("{bulk}\n{unp}");
    assert!(prefix >= 4, "entry 3 had landed: {unp}");
    assert!(residual >= 1, "unpublished mid-transfer: {bulk}");
    assert_eq!(
        residual,
        16 - prefix,
        "residual = count − entries in memory"
    );
    assert_eq!(field(&unp, "untouched_after_next"), "true");
    assert_eq!(im.finish(LONG), 0);
    ex.quit();
    assert_eq!(ex.finish(LONG), 0);
}

#[test]
fn a_clean_exporter_exit_aborts_every_import_within_a_second() {
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    let mut ex = Proc::start(sw.addr(), 1, "exporter", &["--stay", "--importers", "2,3"]);
    ex.expect("READY", LONG);
    let mut im = Proc::start(sw.addr(), 2, "importer", &["--reconnect"]);
    let mut w = Proc::start(sw.addr(), 3, "waiter", &[]);
    im.expect("ROUND", LONG);
    im.expect("ROUND", LONG);
    w.expect("WAITING", LONG);
    let t0 = Instant::now();
    ex.quit();
    let (t1, l1) = im.expect("LOST", LONG);
    let (t2, l2) = w.expect("LOST", LONG);
    println!(
        "importer: {l1} after {:?}; waiter: {l2} after {:?}",
        t1 - t0,
        t2 - t0
    );
    assert_eq!(field(&l1, "err"), "RSMERR_CONN_ABORTED");
    assert_eq!(field(&l2, "err"), "RSMERR_CONN_ABORTED");
    assert!(t1 - t0 < Duration::from_secs(1), "importer: {:?}", t1 - t0);
    assert!(t2 - t0 < Duration::from_secs(1), "waiter: {:?}", t2 - t0);
    assert_eq!(ex.finish(LONG), 0);
    assert_eq!(w.finish(LONG), 0);
}

#[test]
fn a_killed_exporter_is_unreachable_within_6_s_and_a_restarted_one_is_usable() {
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    let mut ex = Proc::start(sw.addr(), 1, "exporter", &["--stay", "--importers", "2,3"]);
    ex.expect("READY", LONG);
    let mut im = Proc::start(sw.addr(), 2, "importer", &["--reconnect", "--rounds", "3"]);
    let mut w = Proc::start(sw.addr(), 3, "waiter", &[]);
    im.expect("ROUND", LONG);
    im.expect("ROUND", LONG);
    w.expect("WAITING", LONG);
    let t0 = Instant::now();
    ex.kill9();
    let (t1, l1) = im.expect("LOST", LONG);
    let (t2, l2) = w.expect("LOST", LONG);
    println!(
        "after kill -9: importer {l1} in {:?}; waiter {l2} in {:?}",
        t1 - t0,
        t2 - t0
    );
    assert_eq!(field(&l1, "err"), "RSMERR_REMOTE_NODE_UNREACHABLE");
    assert_eq!(field(&l2, "err"), "RSMERR_REMOTE_NODE_UNREACHABLE");
    assert!(t1 - t0 <= Duration::from_secs(6), "importer: {:?}", t1 - t0);
    assert!(t2 - t0 <= Duration::from_secs(6), "waiter: {:?}", t2 - t0);
    assert_eq!(w.finish(LONG), 0);

    // The runner's part: the node was stopped, so its port is released; the new process
    // (a new port, a new incarnation) is learned from its first frame.
    sw.release(node_mac(1));
    let mut ex2 = Proc::start(sw.addr(), 1, "exporter", &["--stay", "--importers", "2,3"]);
    let (_, ready) = ex2.expect("READY", LONG);
    let new_port: SocketAddr = field(&ready, "addr").parse().unwrap();
    // Wait until the switch bound node 1's MAC to the new port.
    let end = Instant::now() + LONG;
    while sw.stats().port_of(node_mac(1)).map(|p| p.addr) != Some(new_port) {
        assert!(
            Instant::now() < end,
            "the switch never learned the new port"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A process sending with node 1's MAC from another port is dropped.
    let spoofer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut frame = vec![0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&node_mac(1));
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    for _ in 0..50 {
        spoofer.send_to(&frame, sw.addr()).unwrap();
    }
    im.expect("RECONNECTED", LONG);
    let (_, done) = im.expect("DONE", LONG);
    assert_eq!(field(&done, "rounds"), "3");
    assert_eq!(im.finish(LONG), 0);
    let spoofer_port = spoofer.local_addr().unwrap();
    let end = Instant::now() + LONG;
    loop {
        let st = sw.stats();
        let p = st.ports.iter().find(|p| p.addr == spoofer_port);
        let spoofed = p.map_or(0, |p| p.counters.spoofed);
        if spoofed == 50 {
            assert_eq!(p.map(|p| p.counters.rx_frames), Some(50));
            break;
        }
        assert!(Instant::now() < end, "spoofed frames counted: {spoofed}");
        std::thread::sleep(Duration::from_millis(10));
    }
    ex2.quit();
    assert_eq!(ex2.finish(LONG), 0);
}
