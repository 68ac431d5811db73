//! # rsm-switch — the L2 switch of an rsm-rs cluster over UDP
//!
//! Nodes — host processes with an [`rsm_host::UdpLink`], QEMU guests with `-netdev dgram` —
//! send one Ethernet frame per UDP datagram to the switch; it forwards each frame to the port
//! of its destination MAC, the way a learning Ethernet switch does:
//!
//! * **Ports** are the nodes' UDP addresses. A port's MAC is bound from configuration
//!   ([`Switch::bind_port`], as the runner assigns each node's port) or, if
//!   [`SwitchConfig::learn`], learned from the first frame the port sends. A frame whose
//!   source MAC is bound to another port, or that comes from a port bound to another MAC, is
//!   dropped and counted ([`PortCounters::spoofed`]): a process cannot speak for another node.
//!   [`Switch::release`] frees a MAC when its node stopped or restarts on a new port.
//! * **Forwarding** by destination MAC; broadcast, multicast and unknown destinations are
//!   flooded to every other bound port.
//! * **Faults**: every copy meets rsm-hal's seeded [`FaultInjector`] (drop, duplicate,
//!   corrupt, reorder, delay and jitter — the same implementation as the in-memory netsim).
//! * **Capture**: every frame the switch receives is written to a pcap file (Ethernet link
//!   type, so Wireshark and `tcpdump -r` read it), cut to [`SwitchConfig::snaplen`] bytes.
//! * **Counters** per port, and the socket buffer sizes the kernel granted.
//!
//! The switch runs on its own thread, sleeping in `poll` on its socket until a frame or a
//! delayed delivery is due. It stops when [`Switch::stop`] is called or it is dropped.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use rsm_hal::netsim::{Delivery, FaultConfig, FaultCounts, FaultInjector};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest datagram the switch takes (the largest UDP payload over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// How to run a [`Switch`].
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// The address to listen on (port 0 = an ephemeral port; see [`Switch::addr`]).
    pub bind: SocketAddr,
    /// Learn a port's MAC from its first frame (else only [`Switch::bind_port`] binds).
    pub learn: bool,
    /// Faults applied to every copy.
    pub faults: FaultConfig,
    /// Seed of the fault injector.
    pub seed: u64,
    /// Write every received frame here (pcap, Ethernet).
    pub pcap: Option<PathBuf>,
    /// Bytes of each frame kept in the capture (the rest is counted in its original length).
    pub snaplen: u32,
    /// Socket buffer size asked for, each direction.
    pub socket_buffer: usize,
}

impl Default for SwitchConfig {
    /// 127.0.0.1 on an ephemeral port, learning, no faults, no capture, 8 MiB buffers.
    fn default() -> Self {
        SwitchConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            learn: true,
            faults: FaultConfig::default(),
            seed: 1,
            pcap: None,
            snaplen: MAX_DATAGRAM as u32,
            socket_buffer: rsm_host::DEFAULT_SOCKET_BUFFER,
        }
    }
}

/// Counters of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received from the port (all of them, before any check).
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames sent to the port.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames dropped because their source MAC is bound to another port (or the port to
    /// another MAC).
    pub spoofed: u64,
    /// Frames dropped from a port with no binding while learning is off.
    pub unbound: u64,
    /// Datagrams shorter than an Ethernet header.
    pub runts: u64,
    /// Frames of this port the fault injector dropped, duplicated, corrupted, held back.
    pub faults: FaultCounts,
}

/// One port as [`Switch::stats`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStats {
    /// The node's UDP address.
    pub addr: SocketAddr,
    /// The MAC bound to it, if any.
    pub mac: Option<[u8; 6]>,
    /// Its counters.
    pub counters: PortCounters,
}

/// A snapshot of the switch's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchStats {
    /// Every port seen, in order of first contact.
    pub ports: Vec<PortStats>,
    /// Frames written to the capture.
    pub captured: u64,
    /// Frames flooded (broadcast, multicast or unknown destination).
    pub flooded: u64,
    /// Frames forwarded to one port.
    pub forwarded: u64,
    /// Sends the kernel refused (full buffer), dropped.
    pub send_dropped: u64,
    /// The socket buffer sizes granted, `(receive, send)`, as the kernel reports them.
    pub buffers: (usize, usize),
}

impl SwitchStats {
    /// The counters of the port bound to `mac`, if any.
    pub fn port_of(&self, mac: [u8; 6]) -> Option<&PortStats> {
        self.ports.iter().find(|p| p.mac == Some(mac))
    }

    /// Frames received over all ports.
    pub fn rx_frames(&self) -> u64 {
        self.ports.iter().map(|p| p.counters.rx_frames).sum()
    }
}

struct Port {
    addr: SocketAddr,
    mac: Option<[u8; 6]>,
    counters: PortCounters,
}

struct State {
    ports: Vec<Port>,
    by_addr: HashMap<SocketAddr, usize>,
    by_mac: HashMap<[u8; 6], usize>,
    learn: bool,
    injector: FaultInjector,
    /// Delayed copies: (due, sequence) -> (port, bytes).
    queue: BTreeMap<(u64, u64), (usize, Vec<u8>)>,
    seq: u64,
    pcap: Option<PcapWriter<BufWriter<File>>>,
    snaplen: u32,
    captured: u64,
    flooded: u64,
    forwarded: u64,
    send_dropped: u64,
    buffers: (usize, usize),
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running switch (see the crate docs).
pub struct Switch {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch").field("addr", &self.addr).finish()
    }
}

impl Switch {
    /// Bind the socket, open the capture, and start forwarding on a thread of its own.
    ///
    /// # Errors
    /// The socket cannot be bound, or the capture file cannot be created.
    pub fn start(cfg: SwitchConfig) -> io::Result<Switch> {
        let sock = UdpSocket::bind(cfg.bind)?;
        let addr = sock.local_addr()?;
        let buffers = rsm_host::udp::enlarge_socket_buffers(&sock, cfg.socket_buffer);
        let pcap = match &cfg.pcap {
            Some(path) => {
                // The header announces the largest frame; records are cut to `snaplen`
                // (a record's original length never exceeds the header's snap length, which
                // strict readers check).
                let header = PcapHeader {
                    snaplen: MAX_DATAGRAM as u32,
                    datalink: DataLink::ETHERNET,
                    endianness: pcap_file::Endianness::Little,
                    ..PcapHeader::default()
                };
                let w = BufWriter::new(File::create(path)?);
                Some(PcapWriter::with_header(w, header).map_err(io::Error::other)?)
            }
            None => None,
        };
        let state = Arc::new(Mutex::new(State {
            ports: Vec::new(),
            by_addr: HashMap::new(),
            by_mac: HashMap::new(),
            learn: cfg.learn,
            injector: FaultInjector::new(cfg.seed, cfg.faults),
            queue: BTreeMap::new(),
            seq: 0,
            pcap,
            snaplen: cfg.snaplen,
            captured: 0,
            flooded: 0,
            forwarded: 0,
            send_dropped: 0,
            buffers,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rsm-switch".into())
                .spawn(move || run(&sock, &state, &stop))?
        };
        Ok(Switch {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The address nodes send their frames to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bind `mac` to the port at `addr` (the runner's assignment): frames with that source
    /// MAC are taken only from there, and frames for it go there. Replaces an earlier
    /// binding of either.
    pub fn bind_port(&self, mac: [u8; 6], addr: SocketAddr) {
        let mut st = lock(&self.state);
        st.unbind_mac(mac);
        let p = st.port(addr);
        if let Some(old) = st.ports[p].mac.take() {
            st.by_mac.remove(&old);
        }
        st.ports[p].mac = Some(mac);
        st.by_mac.insert(mac, p);
    }

    /// Free `mac` (its node stopped, or restarts on a new port): the next port that sends
    /// with it is bound to it (when learning) or [`Switch::bind_port`] binds it again.
    pub fn release(&self, mac: [u8; 6]) {
        lock(&self.state).unbind_mac(mac);
    }

    /// Apply `faults` from now on.
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.state).injector.set_faults(faults);
    }

    /// The counters now.
    pub fn stats(&self) -> SwitchStats {
        lock(&self.state).stats()
    }

    /// Stop forwarding, flush the capture, and return the final counters.
    pub fn stop(mut self) -> SwitchStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut st = lock(&self.state);
        if let Some(w) = st.pcap.take() {
            let _ = w.into_writer().into_inner();
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl State {
    fn port(&mut self, addr: SocketAddr) -> usize {
        if let Some(&p) = self.by_addr.get(&addr) {
            return p;
        }
        self.ports.push(Port {
            addr,
            mac: None,
            counters: PortCounters::default(),
        });
        let p = self.ports.len() - 1;
        self.by_addr.insert(addr, p);
        p
    }

    fn unbind_mac(&mut self, mac: [u8; 6]) {
        if let Some(p) = self.by_mac.remove(&mac) {
            self.ports[p].mac = None;
        }
    }

    fn stats(&self) -> SwitchStats {
        SwitchStats {
            ports: self
                .ports
                .iter()
                .map(|p| PortStats {
                    addr: p.addr,
                    mac: p.mac,
                    counters: p.counters,
                })
                .collect(),
            captured: self.captured,
            flooded: self.flooded,
            forwarded: self.forwarded,
            send_dropped: self.send_dropped,
            buffers: self.buffers,
        }
    }

    fn capture(&mut self, at: Duration, frame: &[u8]) {
        let keep = frame.len().min(self.snaplen as usize);
        if let Some(w) = self.pcap.as_mut() {
            let pkt = PcapPacket::new(at, frame.len() as u32, &frame[..keep]);
            if w.write_packet(&pkt).is_ok() {
                self.captured += 1;
            }
        }
    }

    /// Take one datagram from `from` received at `now` (ns since start); the copies to send
    /// now go to `out`.
    fn ingress(
        &mut self,
        from: SocketAddr,
        frame: &[u8],
        now: u64,
        wall: Duration,
        out: &mut Vec<Delivery>,
    ) {
        let p = self.port(from);
        {
            let c = &mut self.ports[p].counters;
            c.rx_frames += 1;
            c.rx_bytes += frame.len() as u64;
        }
        if frame.len() < 14 {
            self.ports[p].counters.runts += 1;
            return;
        }
        self.capture(wall, frame);
        let mut src = [0u8; 6];
        src.copy_from_slice(&frame[6..12]);
        match (self.by_mac.get(&src).copied(), self.ports[p].mac) {
            (Some(owner), _) if owner != p => {
                self.ports[p].counters.spoofed += 1;
                return;
            }
            (Some(_), _) => {}
            (None, Some(_)) => {
                // This port speaks for another MAC already.
                self.ports[p].counters.spoofed += 1;
                return;
            }
            (None, None) if self.learn && src[0] & 1 == 0 => {
                self.ports[p].mac = Some(src);
                self.by_mac.insert(src, p);
            }
            (None, None) => {
                self.ports[p].counters.unbound += 1;
                return;
            }
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[..6]);
        let dsts: Vec<usize> = match self.by_mac.get(&dst) {
            Some(&d) if dst[0] & 1 == 0 => {
                self.forwarded += 1;
                if d == p {
                    Vec::new()
                } else {
                    vec![d]
                }
            }
            _ => {
                self.flooded += 1;
                (0..self.ports.len())
                    .filter(|&i| i != p && self.ports[i].mac.is_some())
                    .collect()
            }
        };
        let mut counts = FaultCounts::default();
        let queue = &mut self.queue;
        let seq = &mut self.seq;
        self.injector
            .inject(p, now, frame, &dsts, &mut counts, |d| {
                if d.at <= now {
                    out.push(d);
                } else {
                    *seq += 1;
                    queue.insert((d.at, *seq), (d.dst, d.data));
                }
            });
        let f = &mut self.ports[p].counters.faults;
        f.dropped += counts.dropped;
        f.duplicated += counts.duplicated;
        f.corrupted += counts.corrupted;
        f.reordered += counts.reordered;
    }

    /// Copies due at `now`: delayed ones and held-back ones whose deadline passed.
    fn due(&mut self, now: u64, out: &mut Vec<Delivery>) {
        let queue = &mut self.queue;
        let seq = &mut self.seq;
        self.injector.release_due(now, |d| {
            *seq += 1;
            queue.insert((d.at, *seq), (d.dst, d.data));
        });
        while let Some(e) = self.queue.first_entry() {
            if e.key().0 > now {
                break;
            }
            let (dst, data) = e.remove();
            out.push(Delivery { dst, at: now, data });
        }
    }

    /// When the next delayed or held copy is due (ns since start).
    fn next_due(&self, now: u64) -> Option<u64> {
        let q = self.queue.keys().next().map(|k| k.0);
        let h = self.injector.next_deadline(now);
        match (q, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The switch thread: receive, forward, send what is due, sleep in `poll`.
fn run(sock: &UdpSocket, state: &Mutex<State>, stop: &AtomicBool) {
    let t0 = Instant::now();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let _ = sock.set_nonblocking(true);
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut out: Vec<Delivery> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now_ns = |t0: Instant| u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Everything pending on the socket, then what is due.
        let mut st = lock(state);
        for _ in 0..4096 {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let now = now_ns(t0);
                    let wall = epoch + Duration::from_nanos(now);
                    st.ingress(from, &buf[..n.min(MAX_DATAGRAM)], now, wall, &mut out);
                    send_all(sock, &mut st, &mut out);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let now = now_ns(t0);
        st.due(now, &mut out);
        send_all(sock, &mut st, &mut out);
        // Sleep until a frame arrives, the next copy is due, or 20 ms pass (to see `stop`).
        let wait = st
            .next_due(now)
            .map_or(20_000_000, |t| t.saturating_sub(now).min(20_000_000));
        drop(st);
        rsm_host::udp::wait_readable(sock, Duration::from_nanos(wait));
    }
}

fn send_all(sock: &UdpSocket, st: &mut State, out: &mut Vec<Delivery>) {
    for d in out.drain(..) {
        let Some(port) = st.ports.get_mut(d.dst) else {
            continue;
        };
        match sock.send_to(&d.data, port.addr) {
            Ok(_) => {
                port.counters.tx_frames += 1;
                port.counters.tx_bytes += d.data.len() as u64;
            }
            Err(_) => st.send_dropped += 1,
        }
    }
}
