//! The image's [`rsm_hal::Platform`]: identity-mapped memory, the TSC clock, an event-count
//! wait, the software CRC-32C.
//!
//! * **Memory**: a [`KernelRegion`] is an address range the application vouched for
//!   ([`KernelRegion::from_static`] safely, [`KernelRegion::from_raw_parts`] with the
//!   promise). Pinning marks every page frame the region touches in a frame table (a count
//!   per 4 KiB frame of RAM, so pins nest) and returns its physical address — the virtual one,
//!   RAM being identity-mapped and never paged. A range outside RAM is `BadAddress`; a frame
//!   pinned 65 535 times, or more frames than [`set_pin_limit`] allows, is `QuotaExceeded`.
//! * **Copies** use `memmove` semantics; [`rsm_hal::Memory::write`] and `read` move aligned
//!   8-byte words with single 8-byte accesses.
//! * **Wait**: `wait` halts the vCPU (`sti; hlt`) until the NIC's receive interrupt or the
//!   APIC timer armed for the deadline ([`crate::irq::sleep_until`]), and returns at once if
//!   the event count moved; the node drives its attached link before every wait. Without a
//!   routed NIC interrupt it polls ([`crate::irq::POLL_US`]).
//! * **Checksum**: software slice-by-16 ([`rsm_hal::soft_crc32c_append`], 16 KiB of
//!   tables): ~500 MB/s under TCG against ~100 for the emulated `crc32` instruction; the
//!   16-bit slicing of [`crate::crc`] is faster only in a tight loop (see there). Time spent
//!   here is counted by [`crate::prof`].

use crate::clock;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use rsm_hal::{Checksum, Clock, ErrorKind, Instant, Memory, Region, Wait, WaitToken, PAGE_SIZE};

/// RAM frames the pin table covers (1 GiB): the image runs with `-m` ≤ 1 GiB.
pub const MAX_FRAMES: usize = 1 << 18;

/// Bytes of the pin table (a 16-bit count per frame).
pub const PIN_TABLE_BYTES: usize = 2 * MAX_FRAMES;

static RAM_END: AtomicUsize = AtomicUsize::new(0);

/// Pin counts per RAM frame.
static PINS: spin::Mutex<[u16; MAX_FRAMES]> = spin::Mutex::new([0; MAX_FRAMES]);

/// Frames pinned at least once (for reports).
static PINNED_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// The most frames that may be pinned at once ([`set_pin_limit`]).
static PIN_LIMIT: AtomicUsize = AtomicUsize::new(MAX_FRAMES);

/// Pins made and copies made (`copy`, `write`, `read` of [`Memory`]) since boot.
static PINS_MADE: AtomicU64 = AtomicU64::new(0);
static COPIES: AtomicU64 = AtomicU64::new(0);

/// Set by the boot code from the loader's memory information.
pub(crate) fn set_ram_end(end: usize) {
    RAM_END.store(end.min(MAX_FRAMES * PAGE_SIZE), Ordering::Relaxed);
}

/// Page frames currently pinned (by any number of pins).
pub fn pinned_frames() -> usize {
    PINNED_FRAMES.load(Ordering::Relaxed)
}

/// Limit pinned memory to `bytes` (rounded down to whole frames; each frame counts once
/// however often it is pinned), for every node of the image — the image's counterpart of
/// `RLIMIT_MEMLOCK`. A pin that would need more frames fails with `QuotaExceeded` (nodes
/// report `RSMERR_INSUFFICIENT_MEM`). `usize::MAX` lifts the limit (the default).
pub fn set_pin_limit(bytes: usize) {
    PIN_LIMIT.store((bytes / PAGE_SIZE).min(MAX_FRAMES), Ordering::Relaxed);
}

/// (pins made, copies made) since boot: every successful [`Memory::pin`], every
/// [`Memory::copy`], [`Memory::write`] and [`Memory::read`] (not the application's own
/// [`KernelRegion::read`] / [`KernelRegion::write`]).
pub fn pin_counters() -> (u64, u64) {
    (
        PINS_MADE.load(Ordering::Relaxed),
        COPIES.load(Ordering::Relaxed),
    )
}

/// An address range the application vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRegion {
    addr: usize,
    len: usize,
}

impl KernelRegion {
    /// A region over static memory the caller gives up for good (e.g. from
    /// [`crate::StaticBuf::take`]): always valid, so this is safe.
    pub fn from_static(mem: &'static mut [u8]) -> KernelRegion {
        KernelRegion {
            addr: mem.as_mut_ptr() as usize,
            len: mem.len(),
        }
    }

    /// A region over `len` bytes at `addr`.
    ///
    /// # Safety
    /// The bytes must stay valid for reads and writes for as long as any handle made from
    /// the region (or a clone of it) lives, and nothing may access them through a Rust
    /// reference meanwhile (the node writes them when remote nodes put).
    pub unsafe fn from_raw_parts(addr: *mut u8, len: usize) -> KernelRegion {
        KernelRegion {
            addr: addr as usize,
            len,
        }
    }

    /// Read `out.len()` bytes at `off` (bounds-checked; aligned words as single loads).
    pub fn read(&self, off: usize, out: &mut [u8]) -> Result<(), ErrorKind> {
        let s = span(self, off, out.len())?;
        if s.is_multiple_of(8) && out.len().is_multiple_of(8) {
            for (k, w) in out.chunks_exact_mut(8).enumerate() {
                // SAFETY: inside the region (checked by `span`), 8-aligned: one 8-byte load.
                let v = unsafe { ((s + 8 * k) as *const u64).read_volatile() };
                w.copy_from_slice(&v.to_ne_bytes());
            }
        } else {
            // SAFETY: inside the region (checked by `span`); `out` is a live exclusive slice.
            unsafe { core::ptr::copy(s as *const u8, out.as_mut_ptr(), out.len()) };
        }
        Ok(())
    }

    /// Write `data` at `off` (bounds-checked; aligned words as single stores).
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), ErrorKind> {
        let d = span(self, off, data.len())?;
        if d.is_multiple_of(8) && data.len().is_multiple_of(8) {
            for (k, w) in data.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                // SAFETY: inside the region (checked by `span`), 8-aligned: one 8-byte store.
                unsafe { ((d + 8 * k) as *mut u64).write_volatile(u64::from_ne_bytes(b)) };
            }
        } else {
            // SAFETY: inside the region (checked by `span`); `data` is a live slice that
            // cannot overlap memory the caller vouched for as the node's.
            unsafe { core::ptr::copy(data.as_ptr(), d as *mut u8, data.len()) };
        }
        Ok(())
    }
}

impl Region for KernelRegion {
    fn addr(&self) -> usize {
        self.addr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn slice(&self, off: usize, len: usize) -> Option<Self> {
        let end = off.checked_add(len)?;
        (end <= self.len).then(|| KernelRegion {
            addr: self.addr + off,
            len,
        })
    }
}

/// Proof that a region's frames are pinned.
#[derive(Debug)]
pub struct KernelPin {
    first_frame: usize,
    frames: usize,
    /// The physical address of the region's first byte.
    pub phys: u64,
}

/// The image's platform (a unit value: its state is in statics of this module).
#[derive(Debug, Default)]
pub struct KernelPlatform {
    events: AtomicU64,
}

impl KernelPlatform {
    /// The platform.
    pub const fn new() -> KernelPlatform {
        KernelPlatform {
            events: AtomicU64::new(0),
        }
    }
}

/// The address of `len` bytes at `off` of `r`: `OutOfRange` past the region's end,
/// `BadAddress` unless they lie in RAM above the unmapped page 0 — so that a region naming
/// no memory (NULL, outside RAM) is refused by every copy, as by every pin, instead of
/// faulting (a guest-physical range that is not RAM may be a device).
fn span(r: &KernelRegion, off: usize, len: usize) -> Result<usize, ErrorKind> {
    let end = off
        .checked_add(len)
        .filter(|&end| end <= r.len)
        .ok_or(ErrorKind::OutOfRange)?;
    let start = r.addr.checked_add(off).ok_or(ErrorKind::BadAddress)?;
    let last = r.addr.checked_add(end).ok_or(ErrorKind::BadAddress)?;
    if len == 0 || (start >= PAGE_SIZE && last <= RAM_END.load(Ordering::Relaxed)) {
        Ok(start)
    } else {
        Err(ErrorKind::BadAddress)
    }
}

impl Memory for KernelPlatform {
    type Region = KernelRegion;
    type Pin = KernelPin;
    type Error = ErrorKind;

    fn pin(&self, region: &KernelRegion) -> Result<KernelPin, ErrorKind> {
        let end = region
            .addr
            .checked_add(region.len.max(1))
            .ok_or(ErrorKind::BadAddress)?;
        if region.addr == 0 || end > RAM_END.load(Ordering::Relaxed) {
            return Err(ErrorKind::BadAddress);
        }
        let first = region.addr / PAGE_SIZE;
        let last = (end - 1) / PAGE_SIZE;
        let mut pins = PINS.lock();
        if pins[first..=last].contains(&u16::MAX) {
            return Err(ErrorKind::QuotaExceeded);
        }
        let fresh = pins[first..=last].iter().filter(|&&c| c == 0).count();
        if PINNED_FRAMES.load(Ordering::Relaxed) + fresh > PIN_LIMIT.load(Ordering::Relaxed) {
            return Err(ErrorKind::QuotaExceeded);
        }
        for c in &mut pins[first..=last] {
            if *c == 0 {
                PINNED_FRAMES.fetch_add(1, Ordering::Relaxed);
            }
            *c += 1;
        }
        PINS_MADE.fetch_add(1, Ordering::Relaxed);
        Ok(KernelPin {
            first_frame: first,
            frames: last + 1 - first,
            phys: region.addr as u64,
        })
    }

    fn unpin(&self, pin: KernelPin) {
        let mut pins = PINS.lock();
        for c in pins[pin.first_frame..pin.first_frame + pin.frames].iter_mut() {
            *c = c.saturating_sub(1);
            if *c == 0 {
                PINNED_FRAMES.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn copy(
        &self,
        dst: &KernelRegion,
        dst_off: usize,
        src: &KernelRegion,
        src_off: usize,
        len: usize,
    ) -> Result<(), ErrorKind> {
        COPIES.fetch_add(1, Ordering::Relaxed);
        let d = span(dst, dst_off, len)?;
        let s = span(src, src_off, len)?;
        crate::prof::timed(crate::prof::Part::Copy, || {
            // SAFETY: both ranges lie inside regions whose creators promised validity for
            // reads and writes (`KernelRegion`); `copy` is memmove, so overlap is fine.
            unsafe { core::ptr::copy(s as *const u8, d as *mut u8, len) }
        });
        Ok(())
    }

    fn write(&self, dst: &KernelRegion, dst_off: usize, src: &[u8]) -> Result<(), ErrorKind> {
        COPIES.fetch_add(1, Ordering::Relaxed);
        crate::prof::timed(crate::prof::Part::Copy, || dst.write(dst_off, src))
    }

    fn read(&self, src: &KernelRegion, src_off: usize, dst: &mut [u8]) -> Result<(), ErrorKind> {
        COPIES.fetch_add(1, Ordering::Relaxed);
        crate::prof::timed(crate::prof::Part::Copy, || src.read(src_off, dst))
    }
}

impl Clock for KernelPlatform {
    fn now(&self) -> Instant {
        Instant(clock::now_ns())
    }
}

impl Wait for KernelPlatform {
    fn prepare_wait(&self) -> WaitToken {
        WaitToken(self.events.load(Ordering::Acquire))
    }

    fn wait(&self, token: WaitToken, deadline: Option<Instant>) {
        // One halt: until the NIC's interrupt, the deadline's timer, or at once if a wake
        // came or a frame arrived since the caller last drove the link. The caller (the
        // node) drives the link again and re-checks; spurious returns are allowed.
        let end = deadline.map_or(u64::MAX, |d| d.0);
        crate::irq::sleep_until(end, || self.events.load(Ordering::Acquire) != token.0);
        crate::irq::take_net_irq();
    }

    fn wake(&self) {
        self.events.fetch_add(1, Ordering::AcqRel);
    }
}

impl Checksum for KernelPlatform {
    fn crc32c_append(&self, crc: u32, bytes: &[u8]) -> u32 {
        crate::prof::timed(crate::prof::Part::Crc, || {
            rsm_hal::soft_crc32c_append(crc, bytes)
        })
    }
}
