//! Where a node's time goes: TSC time spent in the platform's checksum, its copies, and the
//! NIC driver's receive and transmit, accumulated since boot (a `rdtsc` pair per call — the
//! calls are per frame or per copy, so the cost is small against what they time). Halted
//! time is [`crate::irq::halted_ns`]; the rest of a phase is the engine and the application.

use crate::clock;
use core::sync::atomic::{AtomicU64, Ordering};

/// What the time was spent on.
#[derive(Clone, Copy)]
pub enum Part {
    /// `Checksum::crc32c_append`.
    Crc = 0,
    /// `Memory::copy` / `write` / `read`.
    Copy = 1,
    /// `Link::receive` (device, the copy out of the receive buffer, re-posting it).
    Rx = 2,
    /// `Link::transmit` (reclaiming, the copy into the slot, the notify).
    Tx = 3,
}

static TICKS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Time `f` as `part`.
pub(crate) fn timed<T>(part: Part, f: impl FnOnce() -> T) -> T {
    let t0 = clock::rdtsc();
    let r = f();
    TICKS[part as usize].fetch_add(clock::rdtsc().wrapping_sub(t0), Ordering::Relaxed);
    r
}

/// Microseconds spent so far in each [`Part`] (checksum, copies, receive, transmit).
pub fn snapshot_us() -> [u64; 4] {
    let hz = clock::tsc_hz().max(1);
    core::array::from_fn(|i| {
        (u128::from(TICKS[i].load(Ordering::Relaxed)) * 1_000_000 / u128::from(hz)) as u64
    })
}
