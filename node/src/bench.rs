//! The benchmarks of the host cluster: RSM over UDP against raw UDP on the same path.
//!
//! `rsm-node bench [--smoke] [--frames 1514,65000] [--secs S] [--idle-secs S]` runs, for
//! each frame size and for each path (through the switch library, started in this process,
//! and direct peer addresses):
//! * the raw limit: a `bench-source` process floods bare frames of that size (EtherType
//!   0x88B6, not ours) to a `bench-sink` process, with at most `W` frames not yet credited by
//!   the sink, for every `W` of a sweep; the sink counts what arrives (delivered bytes over
//!   the time from the first to the last frame) and the best window is the baseline. Both use
//!   [`UdpLink`], so the socket, its buffers and its syscalls are those of the RSM node;
//! * RSM: a `bench-importer` process putv's 16 entries into a `bench-exporter` process's
//!   segment in a loop (each putv returns when the exporter acknowledged every byte);
//! * the ratio of the two;
//! * 64-byte round trips: a blocking 64-byte putv against a raw ping-pong of 64-byte frames
//!   between the same two processes (each side one thread blocked in `poll`), median and p99;
//! * through the switch, at the first frame size: the CPU time of an idle exporter and an
//!   idle importer (connected, heartbeats running) over `--idle-secs` (10 s by default).
//!
//! Every figure is printed with its ratio. `--smoke` runs everything briefly (for the test
//! command: the code cannot rot; its numbers mean nothing).

use crate::{usage, value};
use rsm_core::{CreateFlags, IoVec, Permission, RsmError, ScatGath};
use rsm_hal::Link;
use rsm_host::runtime::node_mac;
use rsm_host::udp::wait_readable;
use rsm_host::{
    HostNode, LinkSpec, MemRegion, NodeConfig, PinnedBuf, UdpLink, UdpLinkConfig,
    DEFAULT_SOCKET_BUFFER,
};
use rsm_switch::{Switch, SwitchConfig};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The benchmark's segment id.
const BENCH_SEG: u32 = 0x40_7100;
/// EtherType of raw frames (IEEE 802 local experimental 2): nobody's protocol.
const RAW_TYPE: u16 = 0x88B6;
const DATA: u8 = 1;
const CREDIT: u8 = 2;
const END: u8 = 3;
const PING: u8 = 4;
const PONG: u8 = 5;
const QUIT: u8 = 6;
/// Offsets in a raw frame after the Ethernet header.
const KIND: usize = 14;
const WIN: usize = 15;
const SEQ: usize = 19;
const RAW_HDR: usize = 27;

/// Run a bench role; returns the exit status.
pub fn main(role: &str, args: Vec<String>) -> i32 {
    let r = match role {
        "bench" => orchestrate(args),
        "bench-sink" => sink(),
        "bench-source" => source(args),
        "bench-exporter" => exporter(args),
        _ => importer(args),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            println!("FAIL {e}");
            1
        }
    }
}

type Res<T = ()> = Result<T, String>;

fn link_from_env() -> Res<UdpLink> {
    let cfg = NodeConfig::from_env().map_err(|e| e.to_string())?;
    let LinkSpec::Udp { bind, peers } = cfg.link else {
        return Err("RSM_LINK is not set".into());
    };
    UdpLink::new(UdpLinkConfig {
        bind,
        mac: node_mac(cfg.node_id),
        peers,
        max_frame: cfg.max_frame,
        socket_buffer: DEFAULT_SOCKET_BUFFER,
    })
    .map_err(|e| e.to_string())
}

fn raw_frame(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], kind: u8, win: u32, seq: u64) {
    buf[..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&RAW_TYPE.to_be_bytes());
    buf[KIND] = kind;
    buf[WIN..WIN + 4].copy_from_slice(&win.to_le_bytes());
    buf[SEQ..SEQ + 8].copy_from_slice(&seq.to_le_bytes());
}

fn seq_of(f: &[u8]) -> u64 {
    u64::from_le_bytes(f[SEQ..SEQ + 8].try_into().unwrap_or([0; 8]))
}

/// The raw receiver: counts data frames, credits the sender, answers pings.
fn sink() -> Res {
    let mut link = link_from_env()?;
    let me = link.mac();
    let mut buf = vec![0u8; 65_536];
    let mut out = vec![0u8; 64];
    let (mut frames, mut bytes, mut since) = (0u64, 0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, Instant::now());
    let mut heard = Instant::now();
    let mut reported = None;
    println!(
        "READY addr={}",
        link.local_addr().map_err(|e| e.to_string())?
    );
    loop {
        if first.is_none() && frames == 0 {
            // Announce this port (a switch learns it from any frame), until data comes.
            raw_frame(&mut out, [0xff; 6], me, 0, 0, 0);
            link.transmit(&out).map_err(|e| e.to_string())?;
        }
        if !wait_readable(&link, Duration::from_millis(100)) {
            if heard.elapsed() > Duration::from_secs(30) {
                return Err("the source went quiet".into());
            }
            continue;
        }
        while let Some(n) = link.receive(&mut buf).map_err(|e| e.to_string())? {
            heard = Instant::now();
            if n < RAW_HDR || buf[12..14] != RAW_TYPE.to_be_bytes() {
                continue;
            }
            let from: [u8; 6] = buf[6..12].try_into().unwrap_or([0; 6]);
            match buf[KIND] {
                DATA => {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = now;
                    frames += 1;
                    bytes += n as u64;
                    since += 1;
                    let win = u32::from_le_bytes(buf[WIN..WIN + 4].try_into().unwrap_or([0; 4]));
                    if since >= u64::from((win / 4).max(1)) {
                        since = 0;
                        raw_frame(&mut out, from, me, CREDIT, 0, frames);
                        link.transmit(&out).map_err(|e| e.to_string())?;
                    }
                }
                END if Some(seq_of(&buf)) == reported => {
                    // A repeated end of a run already reported: answer again.
                    raw_frame(&mut out, from, me, END, 0, seq_of(&buf));
                    link.transmit(&out).map_err(|e| e.to_string())?;
                }
                END => {
                    reported = Some(seq_of(&buf));
                    let win = u32::from_le_bytes(buf[WIN..WIN + 4].try_into().unwrap_or([0; 4]));
                    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
                    println!("RAW window={win} frames={frames} bytes={bytes} secs={secs:.6}");
                    (frames, bytes, since, first) = (0, 0, 0, None);
                    // Tell the source the count is taken.
                    raw_frame(&mut out, from, me, END, win, seq_of(&buf));
                    link.transmit(&out).map_err(|e| e.to_string())?;
                }
                PING => {
                    buf[..6].copy_from_slice(&from);
                    buf[6..12].copy_from_slice(&me);
                    buf[KIND] = PONG;
                    link.transmit(&buf[..n]).map_err(|e| e.to_string())?;
                }
                QUIT => return Ok(()),
                _ => {}
            }
        }
    }
}

fn source(args: Vec<String>) -> Res {
    let mut windows: Vec<u32> = vec![16];
    let mut secs = 1.0f64;
    let mut pings = 1000usize;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--windows" => {
                let v: String = value("--windows", it.next());
                windows = v
                    .split(',')
                    .map(|w| value("--windows", Some(w.into())))
                    .collect();
            }
            "--secs" => secs = value("--secs", it.next()),
            "--pings" => pings = value("--pings", it.next()),
            o => usage(&format!("unknown argument `{o}`")),
        }
    }
    let mut link = link_from_env()?;
    let me = link.mac();
    let sink = node_mac(1);
    let size = link.max_frame();
    let mut f = vec![0u8; size];
    let mut rx = vec![0u8; 65_536];
    for (run, &w) in windows.iter().enumerate() {
        let (mut sent, mut credited, mut lost) = (0u64, 0u64, 0u64);
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < secs {
            while sent - credited.max(lost).min(sent) < u64::from(w) {
                raw_frame(&mut f, sink, me, DATA, w, sent);
                link.transmit(&f).map_err(|e| e.to_string())?;
                sent += 1;
            }
            if wait_readable(&link, Duration::from_millis(2)) {
                while let Some(n) = link.receive(&mut rx).map_err(|e| e.to_string())? {
                    if n >= RAW_HDR && rx[KIND] == CREDIT {
                        credited = credited.max(seq_of(&rx));
                    }
                }
            } else {
                // Nothing came back for 2 ms: the rest was lost; start a new window.
                lost = sent;
            }
        }
        // End of this window's run; wait for the sink to take its count.
        let t = Instant::now();
        'end: loop {
            raw_frame(&mut f[..64], sink, me, END, w, run as u64);
            link.transmit(&f[..64]).map_err(|e| e.to_string())?;
            if wait_readable(&link, Duration::from_millis(20)) {
                while let Some(n) = link.receive(&mut rx).map_err(|e| e.to_string())? {
                    if n >= RAW_HDR && rx[KIND] == END && seq_of(&rx) == run as u64 {
                        break 'end;
                    }
                }
            }
            if t.elapsed() > Duration::from_secs(5) {
                return Err("the sink does not answer".into());
            }
        }
    }
    // Ping-pong of 64-byte frames, one outstanding.
    let mut rtt = Vec::with_capacity(pings);
    let mut p = vec![0u8; 64];
    for k in 0..pings as u64 {
        raw_frame(&mut p, sink, me, PING, 0, k);
        let t = Instant::now();
        link.transmit(&p).map_err(|e| e.to_string())?;
        'pong: loop {
            if !wait_readable(&link, Duration::from_secs(1)) {
                break 'pong; // lost: not counted
            }
            while let Some(n) = link.receive(&mut rx).map_err(|e| e.to_string())? {
                if n >= RAW_HDR && rx[KIND] == PONG && seq_of(&rx) == k {
                    rtt.push(t.elapsed().as_nanos() as u64);
                    break 'pong;
                }
            }
        }
    }
    let (p50, p99) = percentiles(&mut rtt);
    println!("RTT samples={} p50_ns={p50} p99_ns={p99}", rtt.len());
    raw_frame(&mut p, sink, me, QUIT, 0, 0);
    for _ in 0..3 {
        link.transmit(&p).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn percentiles(v: &mut [u64]) -> (u64, u64) {
    v.sort_unstable();
    if v.is_empty() {
        return (0, 0);
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn exporter(args: Vec<String>) -> Res {
    let mut len = 16usize << 20;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--len" => len = value("--len", it.next()),
            o => usage(&format!("unknown argument `{o}`")),
        }
    }
    let cfg = NodeConfig::from_env().map_err(|e| e.to_string())?;
    let node = HostNode::start(cfg).map_err(|e| e.to_string())?;
    let rsm = node.rsm();
    let mem = PinnedBuf::new(len).map_err(|e| e.to_string())?;
    let ctrl = rsm
        .get_controller(Some("rsmnet0"))
        .map_err(|e| e.name().to_string())?;
    let seg = rsm
        .export_create(ctrl, mem.region(), CreateFlags::empty())
        .map_err(|e| e.name().to_string())?;
    rsm.export_publish(seg, BENCH_SEG, &[])
        .map_err(|e| e.name().to_string())?;
    println!(
        "READY addr={} buffers={:?}",
        node.local_addr().map_or("-".into(), |a| a.to_string()),
        node.socket_buffers().unwrap_or_default()
    );
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 && line.trim() != "quit" {
        line.clear();
    }
    let s = rsm.net_stats();
    println!(
        "BYE frames_sent={} frames_received={} retransmits={}",
        s.frames_sent, s.frames_received, s.retransmits
    );
    drop(node);
    Ok(())
}

fn importer(args: Vec<String>) -> Res {
    let (mut secs, mut entry, mut pings, mut idle) = (1.0f64, 1usize << 20, 1000usize, 0.0f64);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = value("--secs", it.next()),
            "--entry" => entry = value("--entry", it.next()),
            "--pings" => pings = value("--pings", it.next()),
            "--idle-secs" => idle = value("--idle-secs", it.next()),
            o => usage(&format!("unknown argument `{o}`")),
        }
    }
    let cfg = NodeConfig::from_env().map_err(|e| e.to_string())?;
    let node = HostNode::start(cfg).map_err(|e| e.to_string())?;
    let rsm = node.rsm();
    let ctrl = rsm
        .get_controller(Some("rsmnet0"))
        .map_err(|e| e.name().to_string())?;
    let t = Instant::now();
    let h = loop {
        match rsm.import_connect(ctrl, 1, BENCH_SEG, Permission::RDWR) {
            Ok(h) => break h,
            Err(RsmError::SegNotPublished | RsmError::RemoteNodeUnreachable)
                if t.elapsed() < Duration::from_secs(20) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("import_connect: {}", e.name())),
        }
    };
    let src = PinnedBuf::new(16 * entry).map_err(|e| e.to_string())?;
    let lh = rsm
        .create_localmemory_handle(ctrl, src.region())
        .map_err(|e| e.name().to_string())?;
    let r = src.region();
    let v: Vec<IoVec<'_, MemRegion>> = (0..16)
        .map(|k| {
            if k % 2 == 0 {
                IoVec::handle(lh, k * entry, k * entry, entry)
            } else {
                IoVec::va(&r, k * entry, k * entry, entry)
            }
        })
        .collect();
    let before = rsm.net_stats();
    let (mut bytes, start) = (0u64, Instant::now());
    while start.elapsed().as_secs_f64() < secs {
        rsm.putv(&mut ScatGath::new(h, &v))
            .map_err(|e| format!("putv: {}", e.name()))?;
        bytes += 16 * entry as u64;
    }
    let took = start.elapsed().as_secs_f64();
    let after = rsm.net_stats();
    println!(
        "PUTV bytes={bytes} secs={took:.6} frames={} retransmits={}",
        after.frames_sent - before.frames_sent,
        after.retransmits - before.retransmits
    );
    let one = [IoVec::va(&r, 0, 0, 64)];
    let mut rtt = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        rsm.putv(&mut ScatGath::new(h, &one))
            .map_err(|e| format!("putv: {}", e.name()))?;
        rtt.push(t.elapsed().as_nanos() as u64);
    }
    let (p50, p99) = percentiles(&mut rtt);
    println!("RTT samples={} p50_ns={p50} p99_ns={p99}", rtt.len());
    if idle > 0.0 {
        println!("IDLE-BEGIN");
        std::thread::sleep(Duration::from_secs_f64(idle));
        println!("IDLE-END unreachable={}", rsm.net_stats().unreachable);
    }
    let _ = rsm.import_disconnect(h);
    let _ = rsm.free_localmemory_handle(ctrl, lh);
    drop(node);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The orchestrator.

/// A child process and its stdout lines.
struct Kid {
    child: Child,
    lines: Receiver<String>,
    what: String,
}

impl Kid {
    fn start(what: &str, role: &str, args: &[String], env: &[(&str, String)]) -> Res<Kid> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg(role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Ok(Kid {
            child,
            lines,
            what: what.into(),
        })
    }

    fn expect(&mut self, word: &str, limit: Duration) -> Res<String> {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .map_err(|_| format!("{}: no `{word}` line within {limit:?}", self.what))?;
            if l.starts_with("FAIL") {
                return Err(format!("{}: {l}", self.what));
            }
            if l.starts_with(word) {
                return Ok(l);
            }
        }
    }

    fn quit(&mut self) {
        if let Some(s) = self.child.stdin.as_mut() {
            let _ = s.write_all(b"quit\n");
        }
    }

    fn wait(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// CPU time of the process (all threads), user + system, from /proc (USER_HZ = 100,
    /// the Linux ABI).
    fn cpu(&self) -> Res<Duration> {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map_err(|e| e.to_string())?;
        // Fields after the command name in parentheses: utime is the 14th field overall.
        let rest = s.rsplit_once(')').map(|x| x.1).ok_or("bad /proc stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Duration::from_millis(ticks * 10))
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, key: &str) -> Res<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key}= in `{line}`"))
}

/// Two free UDP ports on 127.0.0.1 (bound and released: the children bind them next).
fn free_ports() -> Res<(SocketAddr, SocketAddr)> {
    let a = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let b = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok((
        a.local_addr().map_err(|e| e.to_string())?,
        b.local_addr().map_err(|e| e.to_string())?,
    ))
}

/// Environments of node 1 and node 2 on this path.
fn envs(path: Option<SocketAddr>, frame: usize) -> Res<[Vec<(&'static str, String)>; 2]> {
    let (a, b) = free_ports()?;
    let link = |me: SocketAddr, id_other: u32, other: SocketAddr| match path {
        Some(sw) => format!("udp:{me},switch={sw}"),
        None => format!("udp:{me},peer={id_other}@{other}"),
    };
    Ok([
        vec![
            ("RSM_NODE_ID", "1".into()),
            ("RSM_LINK", link(a, 2, b)),
            ("RSM_MAX_FRAME", frame.to_string()),
        ],
        vec![
            ("RSM_NODE_ID", "2".into()),
            ("RSM_LINK", link(b, 1, a)),
            ("RSM_MAX_FRAME", frame.to_string()),
        ],
    ])
}

struct Row {
    frame: usize,
    path: &'static str,
    raw: f64,
    raw_window: u32,
    rsm: f64,
    raw_rtt: (f64, f64),
    rsm_rtt: (f64, f64),
}

fn orchestrate(args: Vec<String>) -> Res {
    let mut frames = vec![1514usize, 65_000];
    let mut smoke = false;
    let mut secs = 2.0f64;
    let mut idle = 10.0f64;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => smoke = true,
            "--secs" => secs = value("--secs", it.next()),
            "--idle-secs" => idle = value("--idle-secs", it.next()),
            "--frames" => {
                let v: String = value("--frames", it.next());
                frames = v
                    .split(',')
                    .map(|f| value("--frames", Some(f.into())))
                    .collect();
            }
            o => usage(&format!("unknown argument `{o}`")),
        }
    }
    if smoke {
        (secs, idle) = (0.1, 0.5);
    }
    let pings = if smoke { 50 } else { 2000 };
    let limit = Duration::from_secs_f64(secs * 10.0 + 30.0);
    println!(
        "rsm-node bench: {} s per run, frames {frames:?}{}",
        secs,
        if smoke {
            " (smoke: the numbers mean nothing)"
        } else {
            ""
        }
    );
    let mut rows = Vec::new();
    let mut idle_line = None;
    for &frame in &frames {
        if !(60..=rsm_host::UDP_MAX_FRAME).contains(&frame) {
            usage("--frames takes sizes 60..=65507");
        }
        let windows: &[u32] = if frame <= 9014 {
            &[8, 32, 128, 512, 2048]
        } else {
            &[2, 4, 8, 16, 32, 64]
        };
        for path in ["switch", "direct"] {
            let sw = match path {
                "switch" => Some(
                    Switch::start(SwitchConfig {
                        snaplen: 128,
                        ..SwitchConfig::default()
                    })
                    .map_err(|e| e.to_string())?,
                ),
                _ => None,
            };
            let addr = sw.as_ref().map(Switch::addr);
            // Raw UDP.
            let [e1, e2] = envs(addr, frame)?;
            let mut sink = Kid::start("bench-sink", "bench-sink", &[], &e1)?;
            sink.expect("READY", limit)?;
            let list = windows
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let mut src = Kid::start(
                "bench-source",
                "bench-source",
                &[
                    "--windows".into(),
                    list,
                    "--secs".into(),
                    secs.to_string(),
                    "--pings".into(),
                    pings.to_string(),
                ],
                &e2,
            )?;
            let (mut raw, mut raw_window) = (0.0f64, 0);
            for _ in windows {
                let l = sink.expect("RAW", limit)?;
                let (bytes, s, w) = (
                    field(&l, "bytes")?,
                    field(&l, "secs")?,
                    field(&l, "window")?,
                );
                let rate = if s > 0.0 { bytes / s } else { 0.0 };
                println!(
                    "  raw  {frame:>5} B {path:<6} window {w:>5}: {:>8.1} MB/s delivered",
                    rate / 1e6
                );
                if rate > raw {
                    (raw, raw_window) = (rate, w as u32);
                }
            }
            let l = src.expect("RTT", limit)?;
            let raw_rtt = (field(&l, "p50_ns")?, field(&l, "p99_ns")?);
            src.wait(limit);
            sink.wait(limit);
            if let Some(sw) = &sw {
                // Those nodes stopped: their ports are released for the next ones.
                sw.release(node_mac(1));
                sw.release(node_mac(2));
            }
            // RSM.
            let [e1, e2] = envs(addr, frame)?;
            let entry = if smoke { 64 << 10 } else { 1 << 20 };
            let mut ex = Kid::start(
                "bench-exporter",
                "bench-exporter",
                &["--len".into(), (16 * entry).to_string()],
                &e1,
            )?;
            let ready = ex.expect("READY", limit)?;
            let want_idle = path == "switch" && idle_line.is_none();
            let mut im = Kid::start(
                "bench-importer",
                "bench-importer",
                &[
                    "--secs".into(),
                    secs.to_string(),
                    "--entry".into(),
                    entry.to_string(),
                    "--pings".into(),
                    pings.to_string(),
                    "--idle-secs".into(),
                    if want_idle {
                        idle.to_string()
                    } else {
                        "0".into()
                    },
                ],
                &e2,
            )?;
            let l = im.expect("PUTV", limit)?;
            let rsm = field(&l, "bytes")? / field(&l, "secs")?;
            println!(
                "  rsm  {frame:>5} B {path:<6} putv        : {:>8.1} MB/s ({l})",
                rsm / 1e6
            );
            let l = im.expect("RTT", limit)?;
            let rsm_rtt = (field(&l, "p50_ns")?, field(&l, "p99_ns")?);
            if want_idle {
                im.expect("IDLE-BEGIN", limit)?;
                let (c0, c1, t) = (ex.cpu()?, im.cpu()?, Instant::now());
                let end = im.expect("IDLE-END", Duration::from_secs_f64(idle + 30.0))?;
                let (d0, d1, dt) = (ex.cpu()? - c0, im.cpu()? - c1, t.elapsed());
                let pct = |d: Duration| 100.0 * d.as_secs_f64() / dt.as_secs_f64();
                idle_line = Some(format!(
                    "idle CPU over {:.1} s (connected, heartbeats on): exporter {:.2} % of a core, \
                     importer {:.2} % (goal <= 2 %; /proc ticks of 10 ms) [{end}]",
                    dt.as_secs_f64(),
                    pct(d0),
                    pct(d1)
                ));
                println!("  {}", idle_line.as_deref().unwrap_or(""));
            }
            im.wait(limit);
            ex.quit();
            ex.wait(limit);
            if path == "switch" {
                println!("  socket buffers granted (receive, send): {ready}");
            }
            if let Some(sw) = sw {
                let st = sw.stop();
                println!(
                    "  switch: {} frames received, {} forwarded, {} flooded, {} send drops",
                    st.rx_frames(),
                    st.forwarded,
                    st.flooded,
                    st.send_dropped
                );
            }
            rows.push(Row {
                frame,
                path,
                raw,
                raw_window,
                rsm,
                raw_rtt,
                rsm_rtt,
            });
        }
    }
    println!("\nthroughput: putv vs the best delivered raw UDP (goal >= 0.90x)");
    println!("  frame   path     raw best (window)       putv          ratio");
    for r in &rows {
        println!(
            "  {:>5} B {:<7} {:>8.1} MB/s (W={:<5}) {:>8.1} MB/s   {:.2}x",
            r.frame,
            r.path,
            r.raw / 1e6,
            r.raw_window,
            r.rsm / 1e6,
            if r.raw > 0.0 { r.rsm / r.raw } else { 0.0 }
        );
    }
    println!("\n64 B round trip: blocking putv vs raw ping-pong (goal <= 1.20x)");
    println!("  frame   path     raw p50 / p99 (us)    putv p50 / p99 (us)   ratio p50 / p99");
    for r in &rows {
        println!(
            "  {:>5} B {:<7} {:>7.1} / {:>7.1}      {:>7.1} / {:>7.1}      {:.2}x / {:.2}x",
            r.frame,
            r.path,
            r.raw_rtt.0 / 1e3,
            r.raw_rtt.1 / 1e3,
            r.rsm_rtt.0 / 1e3,
            r.rsm_rtt.1 / 1e3,
            r.rsm_rtt.0 / r.raw_rtt.0.max(1.0),
            r.rsm_rtt.1 / r.raw_rtt.1.max(1.0)
        );
    }
    if let Some(l) = idle_line {
        println!("\n{l}");
    }
    println!("BENCH done");
    Ok(())
}
