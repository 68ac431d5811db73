//! A simulated Ethernet segment for deterministic multi-node tests (DESIGN §4).
//!
//! A [`Network`] is an in-memory L2 switch with any number of ports, a simulated clock (ns,
//! [`Instant`]) that only moves when the test says so, and a seeded fault injector
//! ([`FaultConfig`]: drop, duplicate, corrupt, reorder, delay + jitter, rate limit, queue
//! limit) — in the spirit of smoltcp's `FaultInjector` and its netsim tests.
//! [`Network::port`] adds a port with a MAC and returns a [`SimLink`], which implements
//! [`Link`]. The same seed and the same sequence of calls give the same run, byte for byte.
//! The fault injector is also usable on its own ([`FaultInjector`]): the host's UDP L2
//! switch applies the same faults to real datagrams, so there is one implementation of them.
//!
//! ## Delivery model
//! * **Routing.** A frame goes to the port whose MAC equals its destination MAC; a destination
//!   with the group bit set (`dst[0] & 1`, e.g. broadcast `ff:ff:ff:ff:ff:ff`) goes to every
//!   port but the sender's. A unicast to an unknown MAC (or to the sender itself) is counted in
//!   the sender's [`PortStats::no_route`]. Each copy of a flooded frame meets the fault
//!   injector independently.
//! * **Timing.** A frame sent at `now` leaves the sender at `now` (or, with
//!   [`FaultConfig::rate_limit_bytes_per_sec`], after the sender's previous frames have been
//!   serialised and its own `len / rate` serialisation time), and becomes receivable
//!   [`FaultConfig::delay_ns`] plus a uniform `0..=`[`FaultConfig::jitter_ns`] later.
//!   [`SimLink::receive`] only returns frames whose delivery time is `<= now`, in order of
//!   delivery time, then of sending. Jitter can therefore reorder frames by itself.
//! * **Faults**, drawn per destination copy in this order: drop ([`FaultConfig::drop_pct`]),
//!   duplicate ([`FaultConfig::duplicate_pct`]: a second copy with its own jitter; with no
//!   jitter it arrives right after the first), and
//!   per copy corrupt ([`FaultConfig::corrupt_pct`]: exactly one random bit of the copy flipped)
//!   and reorder (see [`FaultConfig::reorder_window`]). A receiving port holds at most
//!   [`FaultConfig::max_queue`] frames (in flight to it or waiting); more are dropped and
//!   counted in the receiver's [`PortStats::queue_full`].
//!
//! ## Sharing and threads
//! The [`Network`] and its [`SimLink`]s share one state through `Arc<Mutex<…>>`, so a
//! `SimLink` is `Send` and a node that owns one may be moved to or shared with another thread
//! (e.g. a blocking-API test). The primary use is deterministic, single-threaded driving: one
//! thread polls every node, then calls [`Network::advance_to_next_event`] (or
//! [`Network::advance_to`] with the minimum of that and the engines' own timers) when nothing
//! is ready. With several threads the run is no longer reproducible.
//!
//! ```
//! use rsm_hal::{netsim::{FaultConfig, Network}, Link};
//! let net = Network::new(1, FaultConfig { delay_ns: 1_000, ..FaultConfig::default() });
//! let mut a = net.port([0x52, 0x54, 0, 0x52, 0x53, 0]);
//! let mut b = net.port([0x52, 0x54, 0, 0x52, 0x53, 1]);
//! let mut frame = [0u8; 60];
//! frame[..6].copy_from_slice(&b.mac());
//! frame[6..12].copy_from_slice(&a.mac());
//! a.transmit(&frame)?;
//! let mut buf = [0u8; 1514];
//! assert_eq!(b.receive(&mut buf)?, None); // still on the wire
//! assert_eq!(net.advance_to_next_event().map(|t| t.0), Some(1_000));
//! assert_eq!(b.receive(&mut buf)?, Some(60));
//! # Ok::<(), rsm_hal::netsim::SimLinkError>(())
//! ```

use crate::{Clock, Error, ErrorKind, Instant, Link};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

/// The default largest frame of a port: a 1500-byte MTU plus the 14-byte Ethernet header.
pub const DEFAULT_MAX_FRAME: usize = 1514;

/// The shortest frame a [`SimLink`] transmits: an Ethernet header (destination, source,
/// EtherType), so that it can be routed.
pub const MIN_FRAME: usize = 14;

/// What the fault injector does to frames; [`FaultConfig::default`] is a perfect link
/// (no loss, no delay, no rate limit) with a 1024-frame receive queue per port.
///
/// Percentages are in `0.0..=100.0` and apply per destination copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Chance in percent that a frame is lost.
    pub drop_pct: f64,
    /// Chance in percent that a frame is delivered twice (the second copy draws its own jitter).
    pub duplicate_pct: f64,
    /// Chance in percent that a copy has exactly one random bit flipped.
    pub corrupt_pct: f64,
    /// Chance in percent that a copy is held back for reordering (needs `reorder_window > 0`).
    pub reorder_pct: f64,
    /// Reordering bound, in frames: a held-back copy is released right after the `k`-th later
    /// frame its sender transmits, `k` uniform in `1..=reorder_window` (or at
    /// `reorder_timeout_ns` past its delivery time if the sender goes quiet). So a frame is
    /// only ever overtaken by frames sent at most `reorder_window` frames after it (with no
    /// jitter). 0 disables reordering.
    pub reorder_window: u32,
    /// How long past its own delivery time a held-back copy waits for later frames before it
    /// is delivered anyway.
    pub reorder_timeout_ns: u64,
    /// Fixed one-way latency added to every frame.
    pub delay_ns: u64,
    /// Extra latency, uniform in `0..=jitter_ns`, drawn per copy.
    pub jitter_ns: u64,
    /// Per-sender line rate; frames of one sender are serialised back to back at this rate
    /// (a frame of `n` bytes occupies the line for `ceil(n * 1e9 / rate)` ns). 0 = unlimited.
    pub rate_limit_bytes_per_sec: u64,
    /// Most frames per receiving port that are in flight to it or waiting to be received;
    /// 0 = unlimited.
    pub max_queue: usize,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            drop_pct: 0.0,
            duplicate_pct: 0.0,
            corrupt_pct: 0.0,
            reorder_pct: 0.0,
            reorder_window: 0,
            reorder_timeout_ns: 1_000_000,
            delay_ns: 0,
            jitter_ns: 0,
            rate_limit_bytes_per_sec: 0,
            max_queue: 1024,
        }
    }
}

/// Per-port counters. Fault counters (`dropped`, `duplicated`, `corrupted`, `reordered`,
/// `no_route`) are charged to the **sending** port; `delivered`, `queue_full` and `too_long`
/// to the **receiving** port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames accepted by [`SimLink::transmit`].
    pub sent: u64,
    /// Bytes of those frames.
    pub sent_bytes: u64,
    /// Frames returned by [`SimLink::receive`].
    pub delivered: u64,
    /// Bytes of those frames.
    pub delivered_bytes: u64,
    /// Copies lost by the fault injector.
    pub dropped: u64,
    /// Extra copies made by the fault injector.
    pub duplicated: u64,
    /// Copies with one bit flipped.
    pub corrupted: u64,
    /// Copies held back to be overtaken by later frames.
    pub reordered: u64,
    /// Unicast frames to a MAC with no port (or to the sender itself).
    pub no_route: u64,
    /// Frames for this port dropped because its queue held [`FaultConfig::max_queue`] frames.
    pub queue_full: u64,
    /// Frames for this port discarded by [`SimLink::receive`] because they did not fit `buf`.
    pub too_long: u64,
}

/// Errors of a [`SimLink`]; all of kind [`ErrorKind::OutOfRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimLinkError {
    /// `transmit` of a frame longer than the port's `max_frame`; nothing was sent.
    FrameTooLong {
        /// The frame's length.
        len: usize,
        /// The port's largest frame.
        max: usize,
    },
    /// `transmit` of a frame shorter than [`MIN_FRAME`] (no Ethernet header); nothing was sent.
    FrameTooShort {
        /// The frame's length.
        len: usize,
    },
    /// `receive` found a frame longer than the buffer; the frame was discarded.
    BufferTooSmall {
        /// The discarded frame's length.
        len: usize,
        /// The buffer's length.
        buf: usize,
    },
}

impl Error for SimLinkError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::OutOfRange
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for fault injection.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`); the modulo bias is negligible for test-sized `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// `true` with probability `pct` percent. Draws nothing when `pct <= 0`, so that a
    /// disabled fault does not change the random sequence of the others.
    fn chance(&mut self, pct: f64) -> bool {
        if pct <= 0.0 {
            return false;
        }
        let unit = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        unit * 100.0 < pct
    }
}

/// A copy held back for reordering.
#[derive(Debug)]
struct Held {
    /// Later frames of the sender still to be transmitted before this copy is released.
    remaining: u32,
    /// When it would have been delivered.
    at: u64,
    /// When it is delivered anyway.
    deadline: u64,
    dst: usize,
    data: Vec<u8>,
}

/// One copy of a frame for port `dst`, to be delivered at `at` (ns on the caller's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The destination port (the caller's numbering).
    pub dst: usize,
    /// When it arrives.
    pub at: u64,
    /// The copy's bytes (corrupted, if the injector said so).
    pub data: Vec<u8>,
}

/// What the injector did to one sender's frames (charged to the sender).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Copies lost.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with one bit flipped.
    pub corrupted: u64,
    /// Copies held back to be overtaken by later frames.
    pub reordered: u64,
}

/// The seeded fault injector of [`FaultConfig`] on its own — drop, duplicate, corrupt,
/// reorder, delay and jitter per destination copy — for any switch with numbered ports and a
/// nanosecond clock: the in-memory [`Network`] here, and the UDP L2 switch of the host
/// tools. (Routing, rate limits and queue limits stay with the switch.) The same seed and the
/// same calls give the same decisions.
#[derive(Debug)]
pub struct FaultInjector {
    rng: SplitMix64,
    faults: FaultConfig,
    /// Per sending port: its copies held back for reordering.
    held: Vec<Vec<Held>>,
}

impl FaultInjector {
    /// An injector applying `faults`, its PRNG seeded with `seed`.
    pub fn new(seed: u64, faults: FaultConfig) -> Self {
        FaultInjector {
            rng: SplitMix64(seed),
            faults,
            held: Vec::new(),
        }
    }

    /// The faults applied.
    pub fn faults(&self) -> FaultConfig {
        self.faults
    }

    /// Apply `faults` from now on (copies already held back keep their release rules).
    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.faults = faults;
    }

    /// A frame from port `src`, leaving it at `leave`, for the ports `dsts` (in this order):
    /// each copy meets the faults (drop, duplicate, then per copy corrupt, jitter, reorder);
    /// `deliver` gets every copy to deliver now (at its time), then the copies held back
    /// earlier that this frame released. Counts go to `counts` (the sender's).
    pub fn inject(
        &mut self,
        src: usize,
        leave: u64,
        frame: &[u8],
        dsts: &[usize],
        counts: &mut FaultCounts,
        mut deliver: impl FnMut(Delivery),
    ) {
        let f = self.faults;
        if self.held.len() <= src {
            self.held.resize_with(src + 1, Vec::new);
        }
        let mut latest = leave.saturating_add(f.delay_ns);
        let mut newly_held = Vec::new();
        for &dst in dsts {
            if self.rng.chance(f.drop_pct) {
                counts.dropped += 1;
                continue;
            }
            let copies = if self.rng.chance(f.duplicate_pct) {
                counts.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut data = frame.to_vec();
                if self.rng.chance(f.corrupt_pct) && !data.is_empty() {
                    let bit = self.rng.below(data.len() as u64 * 8);
                    data[(bit / 8) as usize] ^= 1 << (bit % 8);
                    counts.corrupted += 1;
                }
                let jitter = if f.jitter_ns == 0 {
                    0
                } else {
                    self.rng.below(f.jitter_ns.saturating_add(1))
                };
                let at = leave.saturating_add(f.delay_ns).saturating_add(jitter);
                if f.reorder_window > 0 && self.rng.chance(f.reorder_pct) {
                    let k = 1 + self.rng.below(u64::from(f.reorder_window)) as u32;
                    counts.reordered += 1;
                    newly_held.push(Held {
                        remaining: k,
                        at,
                        deadline: at.saturating_add(f.reorder_timeout_ns),
                        dst,
                        data,
                    });
                } else {
                    latest = latest.max(at);
                    deliver(Delivery { dst, at, data });
                }
            }
        }
        // This frame overtakes the copies held back earlier; release those whose count ran out
        // right after it.
        let held = std::mem::take(&mut self.held[src]);
        let mut keep = Vec::with_capacity(held.len() + newly_held.len());
        for mut h in held {
            h.remaining -= 1;
            if h.remaining == 0 {
                deliver(Delivery {
                    dst: h.dst,
                    at: h.at.max(latest),
                    data: h.data,
                });
            } else {
                keep.push(h);
            }
        }
        keep.extend(newly_held);
        self.held[src] = keep;
    }

    /// The copies held back whose deadline is `<= t` (their sender went quiet), each at its
    /// deadline, oldest deadline first (ties by sender, then holding order).
    pub fn release_due(&mut self, t: u64, mut deliver: impl FnMut(Delivery)) {
        let mut due: Vec<(u64, usize, usize)> = Vec::new();
        for (pi, held) in self.held.iter().enumerate() {
            for (hi, h) in held.iter().enumerate() {
                if h.deadline <= t {
                    due.push((h.deadline, pi, hi));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        due.sort_unstable();
        let mut taken: Vec<Vec<Option<Held>>> = self
            .held
            .iter_mut()
            .map(|held| std::mem::take(held).into_iter().map(Some).collect())
            .collect();
        for &(deadline, pi, hi) in &due {
            if let Some(h) = taken[pi][hi].take() {
                deliver(Delivery {
                    dst: h.dst,
                    at: deadline.max(h.at),
                    data: h.data,
                });
            }
        }
        for (held, rest) in self.held.iter_mut().zip(taken) {
            *held = rest.into_iter().flatten().collect();
        }
    }

    /// The earliest deadline of a held copy, no earlier than `after` (`None` if none is held).
    pub fn next_deadline(&self, after: u64) -> Option<u64> {
        self.held
            .iter()
            .flatten()
            .map(|h| h.deadline.max(after))
            .min()
    }

    /// Copies held back now.
    pub fn held(&self) -> usize {
        self.held.iter().map(Vec::len).sum()
    }
}

#[derive(Debug)]
struct Port {
    mac: [u8; 6],
    max_frame: usize,
    /// (delivery time, global sequence) -> frame, in flight to or waiting at this port.
    queue: BTreeMap<(u64, u64), Vec<u8>>,
    /// When the sender's line is free again (rate limiting).
    busy_until: u64,
    stats: PortStats,
}

#[derive(Debug)]
struct Inner {
    now: u64,
    injector: FaultInjector,
    ports: Vec<Port>,
    next_seq: u64,
}

impl Inner {
    fn schedule(&mut self, dst: usize, at: u64, data: Vec<u8>) {
        let max_queue = self.injector.faults().max_queue;
        let seq = self.next_seq;
        self.next_seq += 1;
        let port = &mut self.ports[dst];
        if max_queue != 0 && port.queue.len() >= max_queue {
            port.stats.queue_full += 1;
            return;
        }
        port.queue.insert((at, seq), data);
    }

    fn transmit(&mut self, src: usize, frame: &[u8]) -> Result<(), SimLinkError> {
        let max = self.ports[src].max_frame;
        if frame.len() > max {
            return Err(SimLinkError::FrameTooLong {
                len: frame.len(),
                max,
            });
        }
        if frame.len() < MIN_FRAME {
            return Err(SimLinkError::FrameTooShort { len: frame.len() });
        }
        let f = self.injector.faults();
        let now = self.now;
        {
            let s = &mut self.ports[src].stats;
            s.sent += 1;
            s.sent_bytes += frame.len() as u64;
        }
        // Serialisation on the sender's line.
        let leave = if f.rate_limit_bytes_per_sec == 0 {
            now
        } else {
            let start = now.max(self.ports[src].busy_until);
            let bits = (frame.len() as u128) * 1_000_000_000;
            let rate = u128::from(f.rate_limit_bytes_per_sec);
            let ns = u64::try_from(bits.div_ceil(rate)).unwrap_or(u64::MAX);
            let end = start.saturating_add(ns);
            self.ports[src].busy_until = end;
            end
        };
        // Routing.
        let dst_mac: [u8; 6] = frame[..6].try_into().unwrap_or([0; 6]);
        let dsts: Vec<usize> = if dst_mac[0] & 1 != 0 {
            (0..self.ports.len()).filter(|&i| i != src).collect()
        } else {
            (0..self.ports.len())
                .filter(|&i| i != src && self.ports[i].mac == dst_mac)
                .collect()
        };
        if dsts.is_empty() && dst_mac[0] & 1 == 0 {
            self.ports[src].stats.no_route += 1;
        }
        // Faults per destination copy.
        let mut counts = FaultCounts::default();
        let mut out = Vec::new();
        self.injector
            .inject(src, leave, frame, &dsts, &mut counts, |d| out.push(d));
        let s = &mut self.ports[src].stats;
        s.dropped += counts.dropped;
        s.duplicated += counts.duplicated;
        s.corrupted += counts.corrupted;
        s.reordered += counts.reordered;
        for d in out {
            self.schedule(d.dst, d.at, d.data);
        }
        Ok(())
    }

    fn receive(&mut self, port: usize, buf: &mut [u8]) -> Result<Option<usize>, SimLinkError> {
        let now = self.now;
        let p = &mut self.ports[port];
        let Some(entry) = p.queue.first_entry() else {
            return Ok(None);
        };
        if entry.key().0 > now {
            return Ok(None);
        }
        let data = entry.remove();
        if data.len() > buf.len() {
            p.stats.too_long += 1;
            return Err(SimLinkError::BufferTooSmall {
                len: data.len(),
                buf: buf.len(),
            });
        }
        buf[..data.len()].copy_from_slice(&data);
        p.stats.delivered += 1;
        p.stats.delivered_bytes += data.len() as u64;
        Ok(Some(data.len()))
    }

    /// The earliest event strictly after `now`: a delivery or a held copy's deadline.
    fn next_event(&self) -> Option<u64> {
        let now = self.now;
        let mut best: Option<u64> = None;
        for p in &self.ports {
            if let Some((&(at, _), _)) = p.queue.range((now.saturating_add(1), 0)..).next() {
                best = Some(best.map_or(at, |b| b.min(at)));
            }
        }
        if let Some(d) = self.injector.next_deadline(now.saturating_add(1)) {
            best = Some(best.map_or(d, |b| b.min(d)));
        }
        best
    }

    fn advance_to(&mut self, t: u64) {
        if t <= self.now {
            return;
        }
        // Held copies whose deadline passes are delivered at their deadline, oldest first.
        let mut out = Vec::new();
        self.injector.release_due(t, |d| out.push(d));
        for d in out {
            self.schedule(d.dst, d.at, d.data);
        }
        self.now = t;
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory Ethernet segment with a simulated clock and a seeded fault injector.
///
/// Cloning gives another handle to the same network.
#[derive(Debug, Clone)]
pub struct Network {
    inner: Arc<Mutex<Inner>>,
}

impl Network {
    /// A network with no ports, the clock at 0, `faults`, and a PRNG seeded with `seed`.
    pub fn new(seed: u64, faults: FaultConfig) -> Self {
        Network {
            inner: Arc::new(Mutex::new(Inner {
                now: 0,
                injector: FaultInjector::new(seed, faults),
                ports: Vec::new(),
                next_seq: 0,
            })),
        }
    }

    /// Add a port with MAC `mac` and [`DEFAULT_MAX_FRAME`]; see [`Network::port_with_max_frame`].
    pub fn port(&self, mac: [u8; 6]) -> SimLink {
        self.port_with_max_frame(mac, DEFAULT_MAX_FRAME)
    }

    /// Add a port with MAC `mac` that transmits frames of at most `max_frame` bytes.
    ///
    /// # Panics
    /// If `mac` is a group address (`mac[0] & 1`) or already has a port, or
    /// `max_frame < MIN_FRAME` (test set-up bugs).
    pub fn port_with_max_frame(&self, mac: [u8; 6], max_frame: usize) -> SimLink {
        let mut g = lock(&self.inner);
        assert!(mac[0] & 1 == 0, "netsim: a port MAC must be unicast");
        assert!(max_frame >= MIN_FRAME, "netsim: max_frame below MIN_FRAME");
        assert!(
            g.ports.iter().all(|p| p.mac != mac),
            "netsim: MAC {mac:02x?} already has a port"
        );
        g.ports.push(Port {
            mac,
            max_frame,
            queue: BTreeMap::new(),
            busy_until: 0,
            stats: PortStats::default(),
        });
        SimLink {
            net: self.inner.clone(),
            port: g.ports.len() - 1,
            mac,
            max_frame,
        }
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        Instant(lock(&self.inner).now)
    }

    /// A [`Clock`] reading this network's simulated time.
    pub fn clock(&self) -> SimClock {
        SimClock {
            net: self.inner.clone(),
        }
    }

    /// Move the clock forward by `ns` nanoseconds.
    pub fn advance(&self, ns: u64) {
        let mut g = lock(&self.inner);
        let t = g.now.saturating_add(ns);
        g.advance_to(t);
    }

    /// Move the clock to `t`; does nothing if `t` is not in the future (time never goes back).
    pub fn advance_to(&self, t: Instant) {
        lock(&self.inner).advance_to(t.0);
    }

    /// The earliest time after now at which something happens: a frame becomes receivable or
    /// a held-back copy is released. `None` if nothing is pending (frames already receivable
    /// do not count: receive them first).
    pub fn next_event(&self) -> Option<Instant> {
        lock(&self.inner).next_event().map(Instant)
    }

    /// Jump the clock to [`Network::next_event`] and return it; `None` (clock unchanged) if
    /// nothing is pending.
    pub fn advance_to_next_event(&self) -> Option<Instant> {
        let mut g = lock(&self.inner);
        let t = g.next_event()?;
        g.advance_to(t);
        Some(Instant(t))
    }

    /// Frames in flight or waiting at any port, plus held-back copies.
    pub fn pending(&self) -> usize {
        let g = lock(&self.inner);
        g.ports.iter().map(|p| p.queue.len()).sum::<usize>() + g.injector.held()
    }

    /// The counters of the port with MAC `mac`, or `None` if there is none.
    pub fn stats(&self, mac: [u8; 6]) -> Option<PortStats> {
        let g = lock(&self.inner);
        g.ports.iter().find(|p| p.mac == mac).map(|p| p.stats)
    }

    /// The current fault configuration.
    pub fn faults(&self) -> FaultConfig {
        lock(&self.inner).injector.faults()
    }

    /// Replace the fault configuration for frames sent from now on (e.g. heal a lossy link);
    /// frames already in flight keep their fate.
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.inner).injector.set_faults(faults);
    }
}

/// A [`Clock`] over a [`Network`]'s simulated time (from [`Network::clock`]).
#[derive(Debug, Clone)]
pub struct SimClock {
    net: Arc<Mutex<Inner>>,
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        Instant(lock(&self.net).now)
    }
}

/// One port of a [`Network`]: a [`Link`] whose frames travel through the simulated segment.
///
/// Dropping it leaves the port on the network (frames to it still queue, up to
/// [`FaultConfig::max_queue`]).
#[derive(Debug)]
pub struct SimLink {
    net: Arc<Mutex<Inner>>,
    port: usize,
    mac: [u8; 6],
    max_frame: usize,
}

impl SimLink {
    /// This port's counters.
    pub fn stats(&self) -> PortStats {
        lock(&self.net).ports[self.port].stats
    }

    /// The network's simulated time.
    pub fn now(&self) -> Instant {
        Instant(lock(&self.net).now)
    }
}

impl Link for SimLink {
    type Error = SimLinkError;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Send `frame` into the network at the current simulated time. Errors:
    /// [`SimLinkError::FrameTooLong`], [`SimLinkError::FrameTooShort`].
    fn transmit(&mut self, frame: &[u8]) -> Result<(), SimLinkError> {
        lock(&self.net).transmit(self.port, frame)
    }

    /// The next frame whose delivery time has come. Error: [`SimLinkError::BufferTooSmall`]
    /// (the frame is discarded and counted in [`PortStats::too_long`]).
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, SimLinkError> {
        lock(&self.net).receive(self.port, buf)
    }
}

#[cfg(test)]
mod injector_tests {
    use super::*;

    fn run(inj: &mut FaultInjector, src: usize, leave: u64, dsts: &[usize]) -> Vec<Delivery> {
        let mut counts = FaultCounts::default();
        let mut out = Vec::new();
        inj.inject(src, leave, &[7u8; 64], dsts, &mut counts, |d| out.push(d));
        out
    }

    #[test]
    fn a_perfect_link_delivers_one_copy_per_destination_after_the_delay() {
        let mut inj = FaultInjector::new(
            1,
            FaultConfig {
                delay_ns: 500,
                ..FaultConfig::default()
            },
        );
        let out = run(&mut inj, 0, 1000, &[1, 2]);
        let got: Vec<(usize, u64)> = out.iter().map(|d| (d.dst, d.at)).collect();
        assert_eq!(got, [(1, 1500), (2, 1500)]);
        assert!(out.iter().all(|d| d.data == [7u8; 64]));
    }

    #[test]
    fn drops_duplicates_and_corruption_are_counted_per_copy() {
        let mut inj = FaultInjector::new(
            2,
            FaultConfig {
                duplicate_pct: 100.0,
                corrupt_pct: 100.0,
                ..FaultConfig::default()
            },
        );
        let mut counts = FaultCounts::default();
        let mut out = Vec::new();
        inj.inject(0, 0, &[0u8; 64], &[1], &mut counts, |d| out.push(d));
        assert_eq!(out.len(), 2);
        // Exactly one bit flipped in each copy.
        for d in &out {
            let bits: u32 = d.data.iter().map(|b| b.count_ones()).sum();
            assert_eq!(bits, 1);
        }
        assert_eq!((counts.duplicated, counts.corrupted), (1, 2));
        inj.set_faults(FaultConfig {
            drop_pct: 100.0,
            ..FaultConfig::default()
        });
        let mut counts = FaultCounts::default();
        inj.inject(0, 0, &[0u8; 64], &[1, 2, 3], &mut counts, |_| {
            panic!("dropped")
        });
        assert_eq!(counts.dropped, 3);
    }

    #[test]
    fn a_held_copy_is_overtaken_by_later_frames_or_released_at_its_deadline() {
        let mut inj = FaultInjector::new(
            3,
            FaultConfig {
                reorder_pct: 100.0,
                reorder_window: 1,
                reorder_timeout_ns: 10_000,
                ..FaultConfig::default()
            },
        );
        // Every copy is held back; window 1: the next frame of the sender releases it.
        assert!(run(&mut inj, 0, 0, &[1]).is_empty());
        assert_eq!(inj.held(), 1);
        let out = run(&mut inj, 0, 100, &[1]);
        assert_eq!(out.len(), 1, "the first copy, released by the second frame");
        assert_eq!(inj.held(), 1);
        assert_eq!(inj.next_deadline(0), Some(10_100));
        let mut late = Vec::new();
        inj.release_due(10_099, |d| late.push(d));
        assert!(late.is_empty());
        inj.release_due(10_100, |d| late.push(d));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].at, 10_100);
        assert_eq!(inj.held(), 0);
    }
}
