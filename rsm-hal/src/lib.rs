//! # rsm-hal — what differs per target
//!
//! Small `#![no_std]` traits that `rsm-core` is generic over, in the style of virtio-drivers'
//! `Hal` and embedded-hal (associated error types that expose an [`ErrorKind`]):
//!
//! * [`Memory`] — pin and unpin caller memory, and copy bytes between regions. Every raw-pointer
//!   access lives in the implementation, so `rsm-core` stays free of `unsafe`.
//! * [`Clock`] — a monotonic [`Instant`] for timeouts and retransmission timers.
//! * [`Wait`] — how a blocked caller sleeps until another thread (or an interrupt) makes progress:
//!   an event count ([`Wait::prepare_wait`] / [`Wait::wait`] / [`Wait::wake`]) so that a wake
//!   between "check the condition" and "sleep" is never lost.
//!
//! * [`Checksum`] — the frame CRC-32C, software by default, hardware where that is faster.
//!
//! [`Platform`] bundles the four; `rsm-core`'s node type takes one `Platform`.
//!
//! ## Locking rules (binding for every implementation and for `rsm-core`)
//! 1. No `rsm-core` table lock is held across a call into [`Wait::wait`]; implementations may
//!    block there.
//! 2. [`Memory::copy`] may be called with no table lock held and concurrently from several
//!    threads, on overlapping or identical regions; it must not take locks that `pin`/`unpin`
//!    hold for long (the host backend's copy takes none).
//! 3. [`Wait::wake`] must be callable from any thread and, on a unikernel, from an interrupt
//!    handler: it only sets a flag / bumps a counter and wakes sleepers.
//! 4. Spin locks do not re-enter: [`Memory`], [`Clock`] and [`Wait::wake`] never call back
//!    into `rsm-core` (they run while `rsm-core` may hold a table lock). [`Wait::wait`] is
//!    the one exception: it is called with no `rsm-core` lock held (rule 1), so it may call
//!    the *non-blocking* driving methods of any node (`Rsm::service`, `Rsm::drive`,
//!    `Rsm::handle_frame`, `Rsm::poll_transmit`) — never a blocking one. A node with an
//!    attached link already drives it itself before each wait (`Rsm::attach_link`), so a
//!    one-core target needs nothing more than a `wait` that halts until the next interrupt
//!    or deadline; a single-threaded simulation of several nodes steps the others there.
//!
//! ## Implementing the HAL for a new target
//! 1. **Memory**: a [`Region`] type whose constructor carries the one `unsafe` promise (valid
//!    for reads and writes while any handle uses it); `pin`/`unpin` (a no-op pin is fine
//!    where memory never moves or pages out, as on a unikernel with identity-mapped RAM);
//!    `copy`/`write`/`read` with bounds checks and the 8-byte word atomicity of
//!    [`Memory::write`].
//! 2. **Clock**: any monotonic nanosecond counter (TSC scaled, a timer register).
//! 3. **Wait**: an event count. With threads: a mutex + condition variable (the host);
//!    on one core: `prepare_wait` reads the counter, `wait` halts (`hlt`/`wfi`) until an
//!    interrupt or the deadline's timer, `wake` (from the NIC's receive interrupt too) bumps
//!    the counter.
//! 4. **Link**: a non-blocking [`Link`] over the NIC (virtio-net, a UDP socket); give it to
//!    the node with `Rsm::attach_link`, or drive it from a thread with `Rsm::drive`.
//! 5. **Main loop** (firmware): `loop { let next = node.service(clock.now()); sleep until
//!    next or a frame }` — blocking calls on the same core drive the link themselves.
//!
//! ## The fake platform
//! With the `fake` feature, the `fake` module provides `FakePlatform`: a simulated address space
//! with per-page pin counts that *panics on misuse* (unpin of a range that is not pinned, a copy
//! that leaves an allocation or touches freed memory) and reports leaks, for `rsm-core`'s unit
//! tests — the same role as virtio-drivers' `FakeHal`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "fake")]
pub mod fake;
mod link;
#[cfg(feature = "fake")]
pub mod netsim;

pub use link::{AnyLink, Link};

use core::fmt::Debug;

/// The page size every alignment check uses (spec §9.5: 4096 on x86_64 for every controller).
pub const PAGE_SIZE: usize = 4096;

/// The broad class of a HAL error, so that `rsm-core` can map any implementation's error to the
/// right RSMERR_* code without knowing the concrete type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A pinned-memory quota or limit would be exceeded (maps to `RSMERR_INSUFFICIENT_MEM`).
    QuotaExceeded,
    /// The system is out of memory or of pinning resources (maps to `RSMERR_INSUFFICIENT_MEM`).
    OutOfMemory,
    /// The address range is not valid, mapped memory (maps to `RSMERR_BAD_ADDR`).
    BadAddress,
    /// The platform refused the operation for lack of privilege (maps to `RSMERR_PERM_DENIED`).
    PermissionDenied,
    /// An offset/length lies outside a region (a caller bug; maps to `RSMERR_BAD_LENGTH`).
    OutOfRange,
    /// Anything else.
    Other,
}

/// A HAL error type: anything `Debug` that can tell its [`ErrorKind`].
pub trait Error: Debug {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;
}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

/// A range of memory that the embedder vouches for: it is valid for reads and writes for
/// `len()` bytes from `addr()` for as long as any handle made from it lives.
///
/// The promise is made once, where the region is constructed — in `unsafe` code of the target
/// crate (e.g. `rsm_host::MemRegion::from_raw_parts`) or safely from an owned pinned buffer —
/// so that `rsm-core` can accept regions without `unsafe` and without dereferencing arbitrary
/// integers. `addr() == 0` stands for C's NULL and is rejected by `rsm-core`.
pub trait Region: Clone {
    /// The first byte's address (0 = NULL).
    fn addr(&self) -> usize;
    /// The number of bytes.
    fn len(&self) -> usize;
    /// `true` when the region has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The sub-range `off .. off + len`, or `None` if it does not fit. A part of a region the
    /// embedder vouched for is vouched for too, so this needs no `unsafe`.
    fn slice(&self, off: usize, len: usize) -> Option<Self>;
}

/// Pinning and copying memory.
///
/// `rsm-core` checks every offset and length against the regions before calling [`copy`]
/// (spec §9.29); an implementation should still refuse (not perform) a copy that leaves either
/// region, and return [`ErrorKind::OutOfRange`].
///
/// [`copy`]: Memory::copy
pub trait Memory {
    /// The memory token the embedder hands to the API (see [`Region`]).
    type Region: Region;
    /// Proof that a region's pages are pinned; returned to [`Memory::unpin`] exactly once.
    type Pin;
    /// The error type of `pin` and `copy`.
    type Error: Error;

    /// Pin every page that `region` touches (whole pages, even when `region` covers only part
    /// of its first or last page). Pins nest: two pins of one page need two unpins.
    fn pin(&self, region: &Self::Region) -> Result<Self::Pin, Self::Error>;

    /// Release a pin made by [`Memory::pin`].
    fn unpin(&self, pin: Self::Pin);

    /// Copy `len` bytes from `src` at `src_off` to `dst` at `dst_off`, with `memmove` semantics
    /// (the two ranges may overlap, e.g. a local handle over the exported buffer itself).
    fn copy(
        &self,
        dst: &Self::Region,
        dst_off: usize,
        src: &Self::Region,
        src_off: usize,
        len: usize,
    ) -> Result<(), Self::Error>;

    /// Copy `src` into `dst` at `dst_off`.
    ///
    /// Word atomicity: when `dst.addr() + dst_off` and `src.len()` are multiples of 8, every
    /// naturally aligned 8-byte word is stored with a single 8-byte store, so a concurrent
    /// reader never sees half of it (the guarantee `rsm_memseg_import_put64` needs).
    fn write(&self, dst: &Self::Region, dst_off: usize, src: &[u8]) -> Result<(), Self::Error>;

    /// Copy bytes of `src` at `src_off` into `dst`; with the same word atomicity as
    /// [`Memory::write`] (each aligned 8-byte word is loaded with one 8-byte load).
    fn read(&self, src: &Self::Region, src_off: usize, dst: &mut [u8]) -> Result<(), Self::Error>;
}

/// A point on the platform's monotonic clock, in nanoseconds since an arbitrary origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// `self + ms` milliseconds, saturating.
    pub const fn add_millis(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms.saturating_mul(1_000_000)))
    }
    /// `self + ns` nanoseconds, saturating.
    pub const fn add_nanos(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }
    /// Nanoseconds from `earlier` to `self` (0 if `earlier` is later).
    pub const fn nanos_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A monotonic clock.
pub trait Clock {
    /// The current time; never goes backwards.
    fn now(&self) -> Instant;
}

/// A snapshot of a [`Wait`] event count, taken before checking a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitToken(pub u64);

/// Sleeping until something changes, without lost wake-ups (an event count).
///
/// The pattern is: `let t = w.prepare_wait(); if condition() { break } w.wait(t, deadline);`.
/// `wait` returns at once if any `wake` happened after `prepare_wait`, so a wake between the
/// check and the sleep is never lost. Spurious returns are allowed; callers re-check.
pub trait Wait {
    /// Take a snapshot of the event count.
    fn prepare_wait(&self) -> WaitToken;
    /// Sleep until the event count moved past `token` or `deadline` (if any) passed.
    fn wait(&self, token: WaitToken, deadline: Option<Instant>);
    /// Advance the event count and wake every sleeper. Callable from any thread or interrupt.
    fn wake(&self);

    /// The node queued work for its engine (a new remote operation, a connect, a bell, a
    /// disconnect notice): a driver sleeping on the link (a host runtime thread in `poll`)
    /// should run the engine now instead of at its next deadline. Called with the node's
    /// table lock held: it must not block or call back into the node (a host writes an
    /// eventfd). The default does nothing — right where the caller drives the engine itself
    /// (an attached link, a firmware main loop, a test stepping the network).
    fn kick(&self) {}

    /// A blocking call that slept in [`Wait::wait`] (one or more times) is about to return:
    /// nobody is waiting for it any more. Called with no lock held. The default does nothing;
    /// a host whose blocked callers watch the link themselves tells its driver thread to
    /// watch it again.
    fn wait_over(&self) {}
}

/// The frame checksum, CRC-32C (Castagnoli, reflected, init and final XOR `0xFFFF_FFFF`),
/// computed however is fastest on the target — a hook because the best choice differs:
/// on the host the SSE4.2 `crc32` instruction (about 5× the software speed), under QEMU TCG
/// software tables (the emulated instruction is several times slower than them).
///
/// The default is software, slice-by-16 tables ([`soft_crc32c_append`]): `impl Checksum for
/// MyPlatform {}` keeps it.
pub trait Checksum {
    /// The CRC-32C of `bytes` appended to data whose CRC-32C is `crc` (0 for none):
    /// `crc32c_append(crc32c_append(0, a), b)` is the CRC-32C of `a` followed by `b` —
    /// the convention of the `crc32c` crate's function of that name.
    fn crc32c_append(&self, crc: u32, bytes: &[u8]) -> u32 {
        soft_crc32c_append(crc, bytes)
    }
}

/// The software CRC-32C, slice-by-16 tables (the `crc` crate, `CRC_32_ISCSI`); see
/// [`Checksum::crc32c_append`] for the meaning of `crc`.
pub fn soft_crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    static CRC32C: crc::Crc<u32, crc::Table<16>> =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
    // The register of a reflected CRC continues from the bit-reversed complement of the
    // finished value.
    let mut d = CRC32C.digest_with_initial((!crc).reverse_bits());
    d.update(bytes);
    d.finalize()
}

/// The software [`Checksum`] on its own (for code with no platform at hand).
#[derive(Debug, Clone, Copy, Default)]
pub struct SoftChecksum;

impl Checksum for SoftChecksum {}

/// Everything `rsm-core` needs from a target.
pub trait Platform: Memory + Clock + Wait + Checksum {}

impl<T: Memory + Clock + Wait + Checksum> Platform for T {}

#[cfg(test)]
mod checksum_tests {
    use super::soft_crc32c_append;

    #[test]
    fn soft_crc32c_matches_the_check_value_and_appends() {
        // The CRC-32C check value (RFC 3720 / the CRC catalogue): "123456789" -> 0xE3069283.
        assert_eq!(soft_crc32c_append(0, b"123456789"), 0xE306_9283);
        assert_eq!(soft_crc32c_append(0, b""), 0);
        let (a, b) = (b"hello, ".as_slice(), b"world and more".as_slice());
        let mut whole = a.to_vec();
        whole.extend_from_slice(b);
        assert_eq!(
            soft_crc32c_append(soft_crc32c_append(0, a), b),
            soft_crc32c_append(0, &whole)
        );
    }
}
