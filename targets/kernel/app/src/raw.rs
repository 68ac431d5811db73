//! The raw mode: the same image, driver, interrupts and idle policy as an RSM node, but no
//! RSM — bare frames between two nodes, the limit side of `cargo rsm bench`.
//!
//! * `role=sink peer=N`: counts the source's data frames per phase, credits every
//!   `credit_every`-th one back, answers each phase's end with its count and every ping
//!   with a pong, until the source says quit (or 120 s pass).
//! * `role=source peer=N size=S windows=W1,W2,… ms=D pings=P`: for each window, a phase of
//!   `D` ms flooding `S`-byte frames with at most `W` uncredited, then the sink's count —
//!   delivered bytes over `D` are that window's throughput (`RAW phase=… delivered_kbs=…`);
//!   then `P` 64-byte ping-pongs (`RAWRTT p50_us=… p99_us=…`); then quit, repeated until
//!   the sink says bye.
//!
//! A phase that loses every credit stalls; after [`STALL_MS`] without one the source
//! forgives the window (counts it as credited), so loss costs throughput, not the run.

use defmt::println;
use rsm_board::irq;
use rsm_board::net::{VirtioLink, FRAME_MAX};
use rsm_board::{clock, exit, Boot};
use rsm_core::node_mac;
use rsm_hal::Link;

/// EtherType of raw-mode frames (IEEE local experimental 2).
const ETHERTYPE: u16 = 0x88B6;
const DATA: u8 = 1;
const CREDIT: u8 = 2;
const END: u8 = 3;
const RESULT: u8 = 4;
const PING: u8 = 5;
const PONG: u8 = 6;
const QUIT: u8 = 7;
const BYE: u8 = 8;
/// How long the source waits for a credit before forgiving its window.
const STALL_MS: u64 = 20;
/// Most phases of one run.
const MAX_PHASES: usize = 8;
/// Most pings of one run.
const MAX_PINGS: usize = 2000;

/// A raw frame's header after Ethernet: kind, phase, credit interval, sequence / count.
struct Msg {
    kind: u8,
    phase: u8,
    every: u16,
    value: u32,
}

fn build(buf: &mut [u8], me: [u8; 6], to: [u8; 6], m: &Msg, len: usize) -> usize {
    let len = len.clamp(64, buf.len());
    buf[..6].copy_from_slice(&to);
    buf[6..12].copy_from_slice(&me);
    buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    buf[14] = m.kind;
    buf[15] = m.phase;
    buf[16..18].copy_from_slice(&m.every.to_le_bytes());
    buf[18..22].copy_from_slice(&m.value.to_le_bytes());
    len
}

fn parse(f: &[u8], from: [u8; 6]) -> Option<Msg> {
    if f.len() < 22 || f[6..12] != from || f[12..14] != ETHERTYPE.to_be_bytes() {
        return None;
    }
    Some(Msg {
        kind: f[14],
        phase: f[15],
        every: u16::from_le_bytes([f[16], f[17]]),
        value: u32::from_le_bytes([f[18], f[19], f[20], f[21]]),
    })
}

struct Ends {
    link: VirtioLink,
    me: [u8; 6],
    peer: [u8; 6],
}

impl Ends {
    fn send(&mut self, buf: &mut [u8], m: &Msg, len: usize) {
        let n = build(buf, self.me, self.peer, m, len);
        let _ = self.link.transmit(&buf[..n]);
    }

    /// Send a 64-byte control frame (everything but data).
    fn control(&mut self, buf: &mut [u8], kind: u8, phase: u8, value: u32) {
        self.send(
            buf,
            &Msg {
                kind,
                phase,
                every: 0,
                value,
            },
            64,
        );
    }

    /// The next frame from the peer, if one is pending.
    fn recv(&mut self, rx: &mut [u8]) -> Option<Msg> {
        while let Ok(Some(n)) = self.link.receive(rx) {
            if let Some(m) = parse(&rx[..n], self.peer) {
                return Some(m);
            }
        }
        None
    }

    /// Wait until `until` for a frame from the peer that `want` accepts (others are dropped).
    fn wait_for(&mut self, rx: &mut [u8], until: u64, want: impl Fn(&Msg) -> bool) -> Option<Msg> {
        while clock::now_ns() < until {
            irq::take_net_irq();
            while let Some(m) = self.recv(rx) {
                if want(&m) {
                    return Some(m);
                }
            }
            self.idle(until);
        }
        None
    }

    /// Sleep until a frame arrives or `deadline_ns` (the idle policy of every node).
    fn idle(&mut self, deadline_ns: u64) {
        irq::sleep_until(deadline_ns, || false);
    }
}

/// Run the raw role named on the command line.
pub fn run(boot: &Boot) -> u32 {
    let me = boot.num("node", 0).unwrap_or(0) as u32;
    let peer = boot.num("peer", 0).unwrap_or(0) as u32;
    if me == 0 || peer == 0 || me > 63 || peer > 63 || me == peer {
        println!("FAIL raw needs node=1..63 and peer=1..63");
        return exit::FAIL;
    }
    let Some(link) = VirtioLink::open() else {
        println!("FAIL no virtio-net device");
        return exit::FAIL;
    };
    let mut ends = Ends {
        link,
        me: node_mac(me),
        peer: node_mac(peer),
    };
    println!("READY node={=u32} raw", me);
    match boot.arg("role") {
        Some("sink") => sink(&mut ends),
        Some("source") => source(boot, &mut ends),
        _ => {
            println!("FAIL role= takes sink or source");
            exit::FAIL
        }
    }
}

fn sink(e: &mut Ends) -> u32 {
    let mut rx = [0u8; FRAME_MAX];
    let mut tx = [0u8; 128];
    let mut counts = [0u32; MAX_PHASES];
    let end = clock::now_ns() + 120_000_000_000;
    loop {
        irq::take_net_irq();
        while let Some(m) = e.recv(&mut rx) {
            let ph = usize::from(m.phase).min(MAX_PHASES - 1);
            match m.kind {
                DATA => {
                    counts[ph] += 1;
                    if m.every > 0 && counts[ph] % u32::from(m.every) == 0 {
                        e.control(&mut tx, CREDIT, m.phase, counts[ph]);
                    }
                }
                END => {
                    e.control(&mut tx, RESULT, m.phase, counts[ph]);
                }
                PING => {
                    e.control(&mut tx, PONG, 0, m.value);
                }
                QUIT => {
                    // Acknowledged (three times: one may be lost), so the source stops asking.
                    for _ in 0..3 {
                        e.control(&mut tx, BYE, 0, 0);
                    }
                    // Frames still queued when the image exits are lost: let them out first.
                    e.link.flush(50_000);
                    let l = rsm_board::net::link_stats();
                    println!(
                        "SINK phases={=[?]} nic_tx={=u64} nic_tx_dropped={=u64} nic_rx={=u64}",
                        counts[..],
                        l.tx_frames,
                        l.tx_dropped,
                        l.rx_frames
                    );
                    return exit::PASS;
                }
                _ => {}
            }
        }
        if clock::now_ns() > end {
            let l = rsm_board::net::link_stats();
            println!(
                "FAIL the source never said quit (nic tx={=u64} tx_dropped={=u64} rx={=u64})",
                l.tx_frames, l.tx_dropped, l.rx_frames
            );
            return exit::FAIL;
        }
        e.idle(end);
    }
}

/// One phase: flood `size`-byte frames with `window` in flight for `ms`; the sink's count.
fn phase(
    e: &mut Ends,
    ph: u8,
    size: usize,
    window: u32,
    ms: u64,
    rx: &mut [u8],
    tx: &mut [u8],
) -> Option<u32> {
    let every = (window / 4).max(1);
    let (mut sent, mut credited) = (0u32, 0u32);
    let t0 = clock::now_ns();
    let stop = t0 + ms * 1_000_000;
    let mut last_credit = t0;
    while clock::now_ns() < stop {
        while sent.wrapping_sub(credited) < window {
            let m = Msg {
                kind: DATA,
                phase: ph,
                every: every as u16,
                value: sent,
            };
            e.send(tx, &m, size);
            sent += 1;
        }
        irq::take_net_irq();
        while let Some(m) = e.recv(rx) {
            if m.kind == CREDIT && m.phase == ph && m.value > credited {
                credited = m.value.min(sent);
                last_credit = clock::now_ns();
            }
        }
        let now = clock::now_ns();
        if now - last_credit > STALL_MS * 1_000_000 {
            credited = sent; // every credit of the window was lost: forgive it
            last_credit = now;
        } else if sent.wrapping_sub(credited) >= window {
            e.idle(last_credit + STALL_MS * 1_000_000);
        }
    }
    // Let the last frames land, then ask for the count (repeated: END or RESULT may be lost).
    (0..100).find_map(|_| {
        e.control(tx, END, ph, sent);
        let until = clock::now_ns() + 10_000_000;
        e.wait_for(rx, until, |m| m.kind == RESULT && m.phase == ph)
            .map(|m| m.value)
    })
}

fn source(boot: &Boot, e: &mut Ends) -> u32 {
    let size = boot
        .num("size", 1514)
        .unwrap_or(1514)
        .clamp(64, FRAME_MAX as u64) as usize;
    let ms = boot.num("ms", 1000).unwrap_or(1000).max(10);
    let pings = boot.num("pings", 200).unwrap_or(200).min(MAX_PINGS as u64) as usize;
    let mut rx = [0u8; FRAME_MAX];
    let mut tx = [0u8; FRAME_MAX];
    let windows = boot.arg("windows").unwrap_or("8");
    for (k, w) in windows.split(',').take(MAX_PHASES).enumerate() {
        let Ok(window) = w.parse::<u32>() else {
            println!("FAIL bad windows= entry");
            return exit::FAIL;
        };
        match phase(e, k as u8, size, window.max(1), ms, &mut rx, &mut tx) {
            Some(n) => println!(
                "RAW phase={=usize} size={=usize} window={=u32} ms={=u64} delivered={=u32} delivered_kbs={=u64}",
                k,
                size,
                window,
                ms,
                n,
                u64::from(n) * size as u64 / ms
            ),
            None => {
                println!("FAIL phase {=usize}: no count from the sink", k);
                return exit::FAIL;
            }
        }
    }
    let mut rtt = [0u64; MAX_PINGS];
    let mut got = 0;
    for seq in 0..pings as u32 {
        let t = clock::now_ns();
        e.control(&mut tx, PING, 0, seq);
        if e.wait_for(&mut rx, t + 50_000_000, |m| {
            m.kind == PONG && m.value == seq
        })
        .is_some()
        {
            rtt[got] = clock::now_ns() - t;
            got += 1;
        }
    }
    let (p50, p99) = crate::demo::percentiles(&mut rtt[..got]);
    println!(
        "RAWRTT pings={=usize} answered={=usize} p50_us={=u64} p99_us={=u64}",
        pings, got, p50, p99
    );
    // Quit until the sink says bye (a lost quit would leave it waiting): every 10 ms, for at
    // most a second.
    let bye = (0..100).any(|_| {
        e.control(&mut tx, QUIT, 0, 0);
        let until = clock::now_ns() + 10_000_000;
        e.wait_for(&mut rx, until, |m| m.kind == BYE).is_some()
    });
    if !bye {
        let l = rsm_board::net::link_stats();
        println!(
            "FAIL the sink never said bye (nic tx={=u64} tx_dropped={=u64} rx={=u64} rx_too_long={=u64})",
            l.tx_frames,
            l.tx_dropped,
            l.rx_frames,
            l.rx_too_long
        );
        return exit::FAIL;
    }
    if got * 10 < pings * 9 {
        println!("FAIL only {=usize} of {=usize} pings answered", got, pings);
        return exit::FAIL;
    }
    exit::PASS
}
