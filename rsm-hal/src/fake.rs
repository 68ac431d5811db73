//! A fake platform for host unit tests that catches misuse (cf. virtio-drivers' `FakeHal`).
//!
//! Memory is a simulated address space: [`FakePlatform::alloc`] hands out page-aligned
//! [`FakeRegion`]s backed by a private arena. The fake keeps a pin count per page and panics on
//! misuse that only a bug in `rsm-core` can cause:
//! * unpinning pages that are not pinned (double unpin / unbalanced pin counts);
//! * a copy whose range leaves the region it was given (a missed bounds check);
//! * a copy that touches freed memory (use after free).
//!
//! # Ownership
//! Like `rsm_host::MemRegion` over a `PinnedBuf`, a region from [`FakePlatform::alloc`] *shares
//! ownership* of its allocation with its clones and sub-regions: the memory is freed when the
//! last of them drops — so a region the RSM layer keeps (in a handle, a pending transfer)
//! keeps the memory alive after the test dropped its own copy. [`FakePlatform::live`] tells
//! whether an allocation still lives. [`FakePlatform::free`] instead frees at once, whoever
//! still names the memory, as C's `free` does: the detector then catches any later access.
//!
//! Pinning memory that was never allocated returns [`ErrorKind::BadAddress`], and pinning beyond
//! the configured quota returns [`ErrorKind::QuotaExceeded`], like a real target. The clock is
//! simulated: it only moves when [`FakePlatform::advance`] is called or when a waiter sleeps
//! until a deadline.

use crate::{Clock, ErrorKind, Instant, Memory, Region, Wait, WaitToken, PAGE_SIZE};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::vec::Vec;

/// Where the simulated address space starts (page aligned, never 0).
const BASE: usize = 0x1000_0000;
/// Where reserved (unbacked) allocations start, far above any backed one.
const RESERVED_BASE: usize = 1 << 44;

/// A region of the fake address space. Construct with [`FakePlatform::alloc`] (owning, see
/// the module docs) or, to name memory without owning it — including deliberately bad regions
/// for negative tests — [`FakeRegion::raw`].
#[derive(Debug, Clone)]
pub struct FakeRegion {
    addr: usize,
    len: usize,
    /// The share of the allocation this region keeps alive — for a region that owns nothing,
    /// a token of its own that no allocation watches. (Never `None`, so that `Option` of a
    /// region is no larger than the region, as for the host's.)
    owner: Arc<Owner>,
}

/// The token whose strong count is the number of owners of one allocation.
#[derive(Debug)]
struct Owner;

impl PartialEq for FakeRegion {
    /// Regions are equal when they name the same bytes (ownership is not compared).
    fn eq(&self, other: &Self) -> bool {
        (self.addr, self.len) == (other.addr, other.len)
    }
}
impl Eq for FakeRegion {}

impl FakeRegion {
    /// Any address/length pair, valid or not (e.g. NULL or misaligned), naming memory without
    /// owning it: it keeps nothing alive.
    pub fn raw(addr: usize, len: usize) -> Self {
        FakeRegion {
            addr,
            len,
            owner: Arc::new(Owner),
        }
    }

    /// This region without its share of the memory (like [`FakeRegion::raw`] of the same
    /// range): a test keeps one to inspect memory that only the RSM layer still owns.
    pub fn unowned(&self) -> Self {
        FakeRegion::raw(self.addr, self.len)
    }
    /// A sub-range of this region (`off..off+len`); panics if it does not fit (test helper).
    pub fn sub(&self, off: usize, len: usize) -> Self {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.len),
            "sub-region out of range"
        );
        FakeRegion {
            addr: self.addr + off,
            len,
            owner: self.owner.clone(),
        }
    }
}

impl Region for FakeRegion {
    fn addr(&self) -> usize {
        self.addr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn slice(&self, off: usize, len: usize) -> Option<Self> {
        let end = off.checked_add(len)?;
        (end <= self.len).then(|| FakeRegion {
            addr: self.addr + off,
            len,
            owner: self.owner.clone(),
        })
    }
}

/// Proof of a pin made by the fake: the page range it pinned.
#[derive(Debug, PartialEq, Eq)]
pub struct FakePin {
    first_page: usize,
    pages: usize,
}

#[derive(Default)]
struct MemState {
    arena: Vec<u8>,
    /// start address -> the allocation
    allocs: BTreeMap<usize, Alloc>,
    /// Next address for [`FakePlatform::reserve`] (offset from [`RESERVED_BASE`]).
    reserved_next: usize,
    /// page number -> pin count (only pages with count > 0)
    pins: BTreeMap<usize, u32>,
    quota_pages: Option<usize>,
    pins_made: u64,
    copies: u64,
}

/// One allocation of the fake address space.
struct Alloc {
    len: usize,
    /// Freed at once by [`FakePlatform::free`].
    freed: bool,
    /// Alive while any owning region of it is.
    owners: Weak<Owner>,
}

impl Alloc {
    fn live(&self) -> bool {
        !self.freed && self.owners.strong_count() > 0
    }
}

impl MemState {
    /// The allocation containing `[addr, addr+len)`: `Some(live)` or `None` if none does.
    fn containing(&self, addr: usize, len: usize) -> Option<bool> {
        let (&start, a) = self.allocs.range(..=addr).next_back()?;
        let end = addr.checked_add(len)?;
        (end <= start + a.len).then(|| a.live())
    }

    /// Record a new allocation at `addr`; the region returned owns it.
    fn insert(&mut self, addr: usize, reserve: usize, len: usize) -> FakeRegion {
        let owner = Arc::new(Owner);
        self.allocs.insert(
            addr,
            Alloc {
                len: reserve,
                freed: false,
                owners: Arc::downgrade(&owner),
            },
        );
        FakeRegion { addr, len, owner }
    }
}

/// A one-shot gate in the fake's memory copies, to check that no copy runs under a lock of
/// its caller (issue 9 §2): once [`CopyGate::arm`]ed, the next copy, read or write of the
/// platform it is installed in ([`FakePlatform::set_copy_gate`]) stops before touching memory
/// and waits until another thread [`CopyGate::release`]s it — after that thread's own call on
/// the same node returned — or until [`CopyGate::DEADLINE`] passed, which it records as a
/// failure ([`CopyGate::timed_out`]). A copy under the node's spin lock would make that other
/// call spin until the deadline, so a test that sees no time-out proves the lock was free.
#[derive(Debug, Default)]
pub struct CopyGate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    armed: bool,
    entered: bool,
    released: bool,
    timed_out: bool,
}

impl CopyGate {
    /// How long a stopped copy waits for its release.
    pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

    /// A new, unarmed gate.
    pub fn new() -> Arc<CopyGate> {
        Arc::new(CopyGate::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stop the next copy (once).
    pub fn arm(&self) {
        *self.lock() = GateState {
            armed: true,
            ..GateState::default()
        };
    }

    /// Wait up to `timeout` for an armed gate to stop a copy; `true` if one is stopped now.
    pub fn wait_entered(&self, timeout: std::time::Duration) -> bool {
        let g = self.lock();
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |s| !s.entered)
            .unwrap_or_else(PoisonError::into_inner);
        g.entered
    }

    /// Let the stopped copy go on.
    pub fn release(&self) {
        self.lock().released = true;
        self.cv.notify_all();
    }

    /// `true` if a stopped copy gave up waiting for its release (the check failed).
    pub fn timed_out(&self) -> bool {
        self.lock().timed_out
    }

    /// Called by each copy before it touches memory.
    fn pass(&self) {
        let mut g = self.lock();
        if !g.armed {
            return;
        }
        g.armed = false;
        g.entered = true;
        self.cv.notify_all();
        let (mut g, r) = self
            .cv
            .wait_timeout_while(g, Self::DEADLINE, |s| !s.released)
            .unwrap_or_else(PoisonError::into_inner);
        if r.timed_out() {
            g.timed_out = true;
        }
    }
}

/// The fake platform: memory, simulated clock and an event-count waiter.
pub struct FakePlatform {
    /// The copy gate, if installed ([`FakePlatform::set_copy_gate`]).
    gate: Mutex<Option<Arc<CopyGate>>>,
    /// A gate is installed (checked first, so copies without one take no lock for it).
    gated: std::sync::atomic::AtomicBool,
    /// The checksum hook ([`FakePlatform::with_checksum`]); `None` = the software default.
    crc: Option<fn(u32, &[u8]) -> u32>,
    mem: Mutex<MemState>,
    now: Mutex<u64>,
    events: Mutex<u64>,
    cv: Condvar,
}

impl Default for FakePlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl FakePlatform {
    /// How many times [`Wait::wake`] was called (each call wakes every sleeper): lets tests
    /// count the wake-ups a workload causes.
    pub fn wakes(&self) -> u64 {
        *self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This platform with `crc` as its [`crate::Checksum::crc32c_append`] (e.g. a hardware
    /// CRC-32C, for benchmarks that compare checksums).
    #[must_use]
    pub fn with_checksum(mut self, crc: fn(u32, &[u8]) -> u32) -> Self {
        self.crc = Some(crc);
        self
    }

    /// A fresh platform with no memory and no quota (`const`: a node over it can live in a
    /// `static`).
    pub const fn new() -> Self {
        FakePlatform {
            gate: Mutex::new(None),
            gated: std::sync::atomic::AtomicBool::new(false),
            crc: None,
            mem: Mutex::new(MemState {
                arena: Vec::new(),
                allocs: BTreeMap::new(),
                reserved_next: 0,
                pins: BTreeMap::new(),
                quota_pages: None,
                pins_made: 0,
                copies: 0,
            }),
            now: Mutex::new(0),
            events: Mutex::new(0),
            cv: Condvar::new(),
        }
    }

    /// Install (or remove) a [`CopyGate`] in this platform's copies, reads and writes.
    pub fn set_copy_gate(&self, gate: Option<Arc<CopyGate>>) {
        self.gated
            .store(gate.is_some(), std::sync::atomic::Ordering::SeqCst);
        *self.gate.lock().unwrap_or_else(PoisonError::into_inner) = gate;
    }

    /// Pass the copy gate, if one is installed (before any lock of the fake is taken).
    fn pass_gate(&self) {
        if !self.gated.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let gate = self
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(g) = gate {
            g.pass();
        }
    }

    /// Limit pinned memory to `bytes` (rounded down to pages); each page counts once.
    pub fn set_pin_quota(&self, bytes: usize) {
        self.mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .quota_pages = Some(bytes / PAGE_SIZE);
    }

    /// Allocate `len` bytes (at least one page is reserved), page aligned and zeroed.
    pub fn alloc(&self, len: usize) -> FakeRegion {
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        let reserve = len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let addr = BASE + m.arena.len();
        let new_len = m.arena.len() + reserve + PAGE_SIZE; // one guard page between allocations
        m.arena.resize(new_len, 0);
        m.insert(addr, reserve, len)
    }

    /// Reserve `len` bytes of address space with no memory behind it: the region can be
    /// pinned, exported and named in vectors (e.g. to check how sizes beyond 4 GiB are
    /// handled without allocating them), but any copy touching it panics ("unbacked").
    pub fn reserve(&self, len: usize) -> FakeRegion {
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        let reserve = len.div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let addr = RESERVED_BASE + m.reserved_next;
        m.reserved_next += reserve + PAGE_SIZE;
        m.insert(addr, reserve, len)
    }

    /// Free the allocation that starts at `region`'s address *now*, whoever still names it
    /// (C's `free`); later accesses touching it panic. Panics on a double free or an address
    /// that starts no allocation.
    pub fn free(&self, region: &FakeRegion) {
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = m.allocs.get_mut(&region.addr) else {
            panic!("fake platform: free of an address never allocated");
        };
        assert!(entry.live(), "double free in the fake platform");
        entry.freed = true;
    }

    /// `true` while the allocation containing `region` lives: not [`FakePlatform::free`]d and
    /// some owning region of it (the test's, or a clone the RSM layer keeps) still exists.
    pub fn live(&self, region: &FakeRegion) -> bool {
        let m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        m.containing(region.addr, region.len.max(1)) == Some(true)
    }

    /// Write bytes into the fake memory (test set-up; bypasses pin checks).
    pub fn write(&self, region: &FakeRegion, off: usize, data: &[u8]) {
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            off + data.len() <= region.len,
            "test write outside the region"
        );
        let at = region.addr - BASE + off;
        m.arena[at..at + data.len()].copy_from_slice(data);
    }

    /// Read bytes from the fake memory (test check).
    pub fn read(&self, region: &FakeRegion, off: usize, len: usize) -> Vec<u8> {
        let m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(off + len <= region.len, "test read outside the region");
        let at = region.addr - BASE + off;
        m.arena[at..at + len].to_vec()
    }

    /// Number of distinct pages pinned now.
    pub fn pinned_pages(&self) -> usize {
        self.mem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pins
            .len()
    }

    /// Total pins made so far and copies performed (for tests that check work was done).
    pub fn counters(&self) -> (u64, u64) {
        let m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        (m.pins_made, m.copies)
    }

    /// Move the simulated clock forward.
    pub fn advance(&self, nanos: u64) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += nanos;
        self.wake();
    }
}

impl Memory for FakePlatform {
    type Region = FakeRegion;
    type Pin = FakePin;
    type Error = ErrorKind;

    fn pin(&self, region: &FakeRegion) -> Result<FakePin, ErrorKind> {
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        if region.addr == 0 || region.len == 0 {
            return Err(ErrorKind::BadAddress);
        }
        match m.containing(region.addr, region.len) {
            Some(true) => {}
            _ => return Err(ErrorKind::BadAddress),
        }
        let first_page = region.addr / PAGE_SIZE;
        let last = (region.addr + region.len - 1) / PAGE_SIZE;
        let pages = last - first_page + 1;
        let new = (first_page..=last)
            .filter(|p| !m.pins.contains_key(p))
            .count();
        if let Some(q) = m.quota_pages {
            if m.pins.len() + new > q {
                return Err(ErrorKind::QuotaExceeded);
            }
        }
        for p in first_page..=last {
            *m.pins.entry(p).or_insert(0) += 1;
        }
        m.pins_made += 1;
        Ok(FakePin { first_page, pages })
    }

    fn unpin(&self, pin: FakePin) {
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        for p in pin.first_page..pin.first_page + pin.pages {
            let Some(c) = m.pins.get_mut(&p) else {
                panic!("fake platform: unpin of a page that is not pinned");
            };
            *c -= 1;
            if *c == 0 {
                m.pins.remove(&p);
            }
        }
    }

    fn copy(
        &self,
        dst: &FakeRegion,
        dst_off: usize,
        src: &FakeRegion,
        src_off: usize,
        len: usize,
    ) -> Result<(), ErrorKind> {
        self.pass_gate();
        let in_range =
            |r: &FakeRegion, off: usize| off.checked_add(len).is_some_and(|e| e <= r.len);
        assert!(
            in_range(dst, dst_off),
            "fake platform: copy leaves the destination region"
        );
        assert!(
            in_range(src, src_off),
            "fake platform: copy leaves the source region"
        );
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        m.copies += 1;
        if len == 0 {
            return Ok(());
        }
        for (r, off) in [(dst, dst_off), (src, src_off)] {
            match m.containing(r.addr + off, len) {
                Some(true) if r.addr >= RESERVED_BASE => {
                    panic!("fake platform: copy touches unbacked (reserved) memory")
                }
                Some(true) => {}
                Some(false) => panic!("fake platform: copy touches freed memory"),
                None => return Err(ErrorKind::BadAddress),
            }
        }
        let s = src.addr - BASE + src_off;
        let d = dst.addr - BASE + dst_off;
        m.arena.copy_within(s..s + len, d);
        Ok(())
    }

    fn write(&self, dst: &FakeRegion, dst_off: usize, src: &[u8]) -> Result<(), ErrorKind> {
        self.pass_gate();
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        let at = Self::arena_range(&m, dst, dst_off, src.len())?;
        m.copies += 1;
        m.arena[at..at + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn read(&self, src: &FakeRegion, src_off: usize, dst: &mut [u8]) -> Result<(), ErrorKind> {
        self.pass_gate();
        let mut m = self.mem.lock().unwrap_or_else(PoisonError::into_inner);
        let at = Self::arena_range(&m, src, src_off, dst.len())?;
        m.copies += 1;
        dst.copy_from_slice(&m.arena[at..at + dst.len()]);
        Ok(())
    }
}

impl FakePlatform {
    /// Check that `[r.addr + off, +len)` lies in `r` (else panic: a core bug) and in a live
    /// allocation; returns the arena offset.
    fn arena_range(
        m: &MemState,
        r: &FakeRegion,
        off: usize,
        len: usize,
    ) -> Result<usize, ErrorKind> {
        let fits = off.checked_add(len).is_some_and(|e| e <= r.len);
        assert!(fits, "fake platform: access leaves the region");
        if len == 0 {
            return Ok(0);
        }
        match m.containing(r.addr + off, len) {
            Some(true) if r.addr >= RESERVED_BASE => {
                panic!("fake platform: access touches unbacked (reserved) memory")
            }
            Some(true) => Ok(r.addr - BASE + off),
            Some(false) => panic!("fake platform: access touches freed memory"),
            None => Err(ErrorKind::BadAddress),
        }
    }
}

impl Clock for FakePlatform {
    fn now(&self) -> Instant {
        Instant(*self.now.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl crate::Checksum for FakePlatform {
    fn crc32c_append(&self, crc: u32, bytes: &[u8]) -> u32 {
        match self.crc {
            Some(f) => f(crc, bytes),
            None => crate::soft_crc32c_append(crc, bytes),
        }
    }
}

impl Wait for FakePlatform {
    fn prepare_wait(&self) -> WaitToken {
        WaitToken(*self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn wait(&self, token: WaitToken, deadline: Option<Instant>) {
        let mut ev = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if *ev != token.0 {
            return;
        }
        match deadline {
            // Simulated time: sleeping until a deadline jumps the clock there.
            Some(d) => {
                drop(ev);
                let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
                if *now < d.0 {
                    *now = d.0;
                }
            }
            None => {
                let timeout = std::time::Duration::from_millis(50);
                while *ev == token.0 {
                    let (g, r) = self
                        .cv
                        .wait_timeout(ev, timeout)
                        .unwrap_or_else(PoisonError::into_inner);
                    ev = g;
                    if r.timed_out() {
                        break;
                    }
                }
            }
        }
    }

    fn wake(&self) {
        *self.events.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_nest_and_count_pages_once() {
        let p = FakePlatform::new();
        let r = p.alloc(3 * PAGE_SIZE);
        let a = p.pin(&r.sub(0, 10)).unwrap();
        let b = p.pin(&r.sub(5, PAGE_SIZE)).unwrap();
        assert_eq!(p.pinned_pages(), 2);
        p.unpin(a);
        assert_eq!(p.pinned_pages(), 2);
        p.unpin(b);
        assert_eq!(p.pinned_pages(), 0);
    }

    #[test]
    fn quota_and_bad_address() {
        let p = FakePlatform::new();
        p.set_pin_quota(PAGE_SIZE);
        let r = p.alloc(2 * PAGE_SIZE);
        assert_eq!(p.pin(&r).unwrap_err(), ErrorKind::QuotaExceeded);
        assert_eq!(
            p.pin(&FakeRegion::raw(0x42000, 8)).unwrap_err(),
            ErrorKind::BadAddress
        );
    }

    #[test]
    #[should_panic(expected = "not pinned")]
    fn double_unpin_panics() {
        let p = FakePlatform::new();
        let r = p.alloc(PAGE_SIZE);
        let a = p.pin(&r).unwrap();
        let first_page = a.first_page;
        p.unpin(a);
        p.unpin(FakePin {
            first_page,
            pages: 1,
        });
    }

    #[test]
    #[should_panic(expected = "freed memory")]
    fn copy_after_free_panics() {
        let p = FakePlatform::new();
        let a = p.alloc(64);
        let b = p.alloc(64);
        p.free(&b);
        let _ = p.copy(&b, 0, &a, 0, 8);
    }

    #[test]
    #[should_panic(expected = "unbacked")]
    fn reserved_memory_pins_but_cannot_be_touched() {
        let p = FakePlatform::new();
        let big = p.reserve(1 << 33);
        let pin = p.pin(&big.sub(0, 1 << 20)).unwrap();
        assert_eq!(p.pinned_pages(), (1 << 20) / PAGE_SIZE);
        p.unpin(pin);
        let a = p.alloc(64);
        // Never-allocated addresses above it are still just bad addresses.
        assert_eq!(
            p.copy(&a, 0, &FakeRegion::raw(0x7000_0000_0000, 8), 0, 8),
            Err(ErrorKind::BadAddress)
        );
        let _ = p.copy(&a, 0, &big, 0, 8);
    }

    #[test]
    fn copy_is_memmove() {
        let p = FakePlatform::new();
        let a = p.alloc(16);
        p.write(&a, 0, b"0123456789abcdef");
        p.copy(&a, 2, &a, 0, 8).unwrap();
        assert_eq!(p.read(&a, 0, 16), b"0101234567abcdef");
    }
}
