//! Shared helpers for the integration tests in `tests/tests/`.
//!
//! The suites run against two platforms: [`rsm_hal::fake::FakePlatform`] (deterministic,
//! catches misuse, has a pin quota) and the real host backend [`rsm_host::HostPlatform`]
//! (mlock pinning).

pub mod net;
pub mod table;

pub use rsm_core;
pub use rsm_hal;
pub use rsm_host;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// Run `body` on its own thread and fail if it panics (the panic is passed on) or has not
/// finished within `limit` — a deadlock or livelock.
pub fn with_watchdog(name: &str, limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            body();
            let _ = tx.send(());
        })
        .expect("spawn the test thread");
    match rx.recv_timeout(limit) {
        Ok(()) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("{name}: not finished within {limit:?}: deadlock (or livelock)")
        }
    }
}

/// `assert_eq!` for large byte buffers: reports the first differing offset, not megabytes.
#[track_caller]
pub fn assert_bytes(actual: &[u8], expected: &[u8], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    if let Some(i) = actual.iter().zip(expected).position(|(a, e)| a != e) {
        panic!(
            "{what}: first difference at byte {i}: got {:#04x}, expected {:#04x}",
            actual[i], expected[i]
        );
    }
}

/// A small deterministic generator (xorshift64*) for seeded test workloads.
pub struct Rng(pub u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (0 for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// `true` with `pct` percent probability.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
