//! Process-wide pin bookkeeping and the `mlock`/`munlock` system calls.
//!
//! `mlock` does not nest: one `munlock` unlocks a page however often it was locked. Several
//! [`HostPlatform`](crate::HostPlatform)s may live in one process (several nodes in one test
//! binary, a node per thread) and pin the same page, so the decision "lock/unlock these pages
//! now" is taken here, on process-wide counts, and not per platform. The same counts tell a
//! [`PinnedBuf`](crate::PinnedBuf) being dropped whether any of its pages is still pinned.
//!
//! Everything lives in one [`PinTable`] behind one mutex, [`GLOBAL`]: the process-wide counts
//! and every platform's own counts (indexed by the platform's slot), so a pin or an unpin takes
//! exactly one lock. Counts are kept per interval of pages ([`IntervalMap`]), so the work of a
//! pin does not grow with its number of pages. The `mlock`/`munlock` calls are made while the
//! table is locked (so that no other pin can decide differently in between); they are passed in
//! as functions, so the runs the table computes can be tested without system calls.

use crate::intervals::{runs, Count, IntervalMap};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Process-wide counts of the pages of one interval.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shared {
    /// Pins of these pages by any platform (with or without `mlock`).
    pub(crate) pins: u32,
    /// Of those, pins by platforms that `mlock`: the pages are locked while this is > 0.
    pub(crate) locks: u32,
}

impl Shared {
    /// The counts of one pin, by a platform that `mlock`s or not.
    fn one(mlock: bool) -> Shared {
        Shared {
            pins: 1,
            locks: u32::from(mlock),
        }
    }
}

impl Count for Shared {
    fn plus(self, d: Shared) -> Shared {
        Shared {
            pins: self.pins.saturating_add(d.pins),
            locks: self.locks.saturating_add(d.locks),
        }
    }
    fn minus(self, d: Shared) -> Option<Shared> {
        debug_assert!(
            self.pins >= d.pins,
            "rsm-host: process-wide pin count underflow"
        );
        let left = Shared {
            pins: self.pins.saturating_sub(d.pins),
            locks: self.locks.saturating_sub(d.locks),
        };
        Some(left).filter(|s| s.pins > 0)
    }
}

/// Why [`PinTable::pin`] refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PinError<E> {
    /// A page's pin count would overflow (or the platform is not registered).
    Limit,
    /// The platform's quota would be exceeded.
    Quota,
    /// Locking the run `run` failed with `err`. Everything this pin locked before, including
    /// the run itself, has been unlocked again.
    Lock {
        /// The run whose lock failed.
        run: Range<usize>,
        /// The error of the lock function.
        err: E,
    },
}

/// The pin counts of the process: per interval of pages, process-wide ([`Shared`]) and per
/// platform (a count per page, and the number of distinct pages pinned).
#[derive(Debug)]
pub(crate) struct PinTable {
    shared: IntervalMap<Shared>,
    /// Each registered platform's counts, indexed by its slot.
    platforms: Vec<IntervalMap<u32>>,
    /// Slots of dropped platforms, for reuse.
    free: Vec<usize>,
}

/// The process-wide pin table.
pub(crate) static GLOBAL: Mutex<PinTable> = Mutex::new(PinTable::new());

/// The number of pages `a` and `b` have in common.
fn overlap(a: Range<usize>, b: &Range<usize>) -> usize {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

/// `true` for pages that no platform locks.
fn unlocked(v: Option<Shared>) -> bool {
    v.is_none_or(|s| s.locks == 0)
}

impl PinTable {
    /// An empty table.
    pub(crate) const fn new() -> PinTable {
        PinTable {
            shared: IntervalMap::new(),
            platforms: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Make room for a new platform's counts; returns its slot.
    pub(crate) fn register(&mut self) -> usize {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        self.platforms.push(IntervalMap::new());
        self.platforms.len() - 1
    }

    /// The number of distinct pages the platform in `slot` has pinned.
    pub(crate) fn pinned_pages(&self, slot: usize) -> usize {
        self.platforms.get(slot).map_or(0, IntervalMap::pages)
    }

    /// The platform's count of `page` (tests only).
    #[cfg(test)]
    pub(crate) fn platform_count(&self, slot: usize, page: usize) -> Option<u32> {
        self.platforms.get(slot).and_then(|m| m.get(page))
    }

    /// The process-wide `(pins, locks)` of `page`, if any platform pins it (tests only).
    #[cfg(test)]
    pub(crate) fn shared_counts(&self, page: usize) -> Option<(u32, u32)> {
        self.shared.get(page).map(|s| (s.pins, s.locks))
    }

    /// The intervals of pinned pages (by any platform) that share a page with `r` (tests only).
    #[cfg(test)]
    pub(crate) fn range(&self, r: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
        self.shared.overlapping(r).map(|iv| iv.range())
    }

    /// The maximal runs of pages of `span` that no platform locks, in ascending order: before
    /// a pin, the runs to `mlock`; after an unpin, the runs to `munlock`.
    pub(crate) fn lock_runs(&self, span: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
        runs(self.shared.segments(span), unlocked)
    }

    /// Check the invariants of every map (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        self.shared.check();
        for m in &self.platforms {
            m.check();
        }
    }

    /// Pin the pages `span` for the platform in `slot`, all or nothing.
    ///
    /// With `mlock`, first calls `lock` for each maximal run of `span` that no platform locks
    /// yet; if one fails, calls `unlock` for every run locked so far, including the failing one
    /// (the kernel may have locked part of it), and changes nothing. `quota` is the platform's
    /// limit of distinct pinned pages.
    pub(crate) fn pin<E>(
        &mut self,
        slot: usize,
        span: Range<usize>,
        mlock: bool,
        quota: Option<usize>,
        mut lock: impl FnMut(Range<usize>) -> Result<(), E>,
        mut unlock: impl FnMut(Range<usize>),
    ) -> Result<(), PinError<E>> {
        let Some(mine) = self.platforms.get_mut(slot) else {
            debug_assert!(false, "rsm-host: pin by an unregistered platform");
            return Err(PinError::Limit);
        };
        // Check everything before changing anything.
        let mine_w = mine.window(&span);
        let mut covered = 0;
        for iv in mine.in_window(mine_w) {
            let n = overlap(iv.range(), &span);
            if n > 0 && iv.val == u32::MAX {
                return Err(PinError::Limit);
            }
            covered += n;
        }
        if let Some(q) = quota {
            if mine.pages().saturating_add(span.len() - covered) > q {
                return Err(PinError::Quota);
            }
        }
        let shared = &mut self.shared;
        let shared_w = shared.window(&span);
        let full = |v: Shared| v.pins == u32::MAX || v.locks == u32::MAX;
        if shared
            .in_window(shared_w)
            .any(|iv| full(iv.val) && overlap(iv.range(), &span) > 0)
        {
            return Err(PinError::Limit);
        }
        if mlock {
            for run in runs(shared.segments(span.clone()), unlocked) {
                if let Err(err) = lock(run.clone()) {
                    // Nothing has changed in the table, so the same runs up to the failing one
                    // are exactly what this call has locked.
                    for done in runs(shared.segments(span.start..run.end), unlocked) {
                        unlock(done);
                    }
                    return Err(PinError::Lock { run, err });
                }
            }
        }

        mine.update_window(mine_w, span.clone(), |c| Some(c.map_or(1, |c| c.plus(1))));
        let d = Shared::one(mlock);
        shared.update_window(shared_w, span, |v| Some(v.map_or(d, |v| v.plus(d))));
        Ok(())
    }

    /// Release one pin of the pages `span` by the platform in `slot`; with `mlock`, call
    /// `unlock` for each maximal run of pages that no platform locks any more.
    ///
    /// Every page of `span` must be pinned by this platform. Pages that are not (a bug, caught
    /// by a debug assertion) are left alone, so another platform's pins stay intact.
    pub(crate) fn unpin(
        &mut self,
        slot: usize,
        span: Range<usize>,
        mlock: bool,
        mut unlock: impl FnMut(Range<usize>),
    ) {
        let Some(mine) = self.platforms.get_mut(slot) else {
            debug_assert!(false, "rsm-host: unpin by an unregistered platform");
            return;
        };
        let w = mine.window(&span);
        // Usually the pin's pages are an interval of their own; else count what is pinned.
        let held = mine.is_exact(w, &span)
            || mine
                .in_window(w)
                .map(|iv| overlap(iv.range(), &span))
                .sum::<usize>()
                == span.len();
        if !held {
            debug_assert!(false, "rsm-host: unpin of a page that is not pinned");
            let held: Vec<Range<usize>> = runs(mine.segments(span), |c| c.is_some()).collect();
            for r in &held {
                self.release(slot, r.clone(), mlock);
            }
            if mlock {
                for r in held {
                    self.lock_runs(r).for_each(&mut unlock);
                }
            }
            return;
        }
        mine.update_window(w, span.clone(), |c| c.and_then(|c| c.minus(1)));
        let d = Shared::one(mlock);
        self.shared
            .update(span.clone(), |v| v.and_then(|v| v.minus(d)));
        if mlock {
            // Every page of `span` was locked by this pin, so the unlocked ones now are exactly
            // those whose last lock this call released.
            self.lock_runs(span).for_each(unlock);
        }
    }

    /// Take one pin of the pages `span`, all pinned by the platform in `slot`, off the counts.
    fn release(&mut self, slot: usize, span: Range<usize>, mlock: bool) {
        if let Some(mine) = self.platforms.get_mut(slot) {
            mine.update(span.clone(), |c| c.and_then(|c| c.minus(1)));
        }
        let d = Shared::one(mlock);
        self.shared.update(span, |v| v.and_then(|v| v.minus(d)));
    }

    /// Release every pin of the platform in `slot` and free the slot; with `mlock`, call
    /// `unlock` for each maximal run of pages that no platform locks any more.
    pub(crate) fn unregister(
        &mut self,
        slot: usize,
        mlock: bool,
        mut unlock: impl FnMut(Range<usize>),
    ) {
        let PinTable {
            shared,
            platforms,
            free,
        } = self;
        let Some(mine) = platforms.get_mut(slot) else {
            debug_assert!(false, "rsm-host: drop of an unregistered platform");
            return;
        };
        for iv in mine.iter() {
            let d = Shared {
                pins: iv.val,
                locks: if mlock { iv.val } else { 0 },
            };
            shared.update(iv.range(), |v| v.and_then(|v| v.minus(d)));
        }
        if mlock {
            // The platform's pinned pages, as maximal runs (touching intervals joined).
            let held = runs(mine.segments(0..usize::MAX), |c| c.is_some());
            for r in held {
                for u in runs(shared.segments(r), unlocked) {
                    unlock(u);
                }
            }
        }
        mine.clear();
        free.push(slot);
    }
}

/// Lock a mutex, ignoring poisoning (the tables stay consistent: nothing panics mid-update).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// log2 of the system page size, the unit in which pins are counted and `mlock` works.
pub(crate) fn page_shift() -> u32 {
    static SHIFT: OnceLock<u32> = OnceLock::new();
    *SHIFT.get_or_init(|| {
        // SAFETY: sysconf has no memory-safety preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        match usize::try_from(size) {
            Ok(s) if s.is_power_of_two() && s >= rsm_hal::PAGE_SIZE => s.trailing_zeros(),
            _ => rsm_hal::PAGE_SIZE.trailing_zeros(),
        }
    })
}

/// The system page size in bytes.
pub(crate) fn page_size() -> usize {
    1usize << page_shift()
}

/// The pages `[addr, addr+len)` touches, as a half-open range of page numbers; `None` for a
/// NULL or empty range or one that wraps around the address space.
pub(crate) fn page_span(addr: usize, len: usize) -> Option<Range<usize>> {
    if addr == 0 || len == 0 {
        return None;
    }
    let end = addr.checked_add(len)?;
    let shift = page_shift();
    // `(end - 1) >> shift` is at most usize::MAX >> 12, so `+ 1` cannot overflow.
    Some((addr >> shift)..((end - 1) >> shift) + 1)
}

/// The last `errno` of this thread.
fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// The address and byte length of the pages `run`.
fn span(run: Range<usize>) -> (*const libc::c_void, usize) {
    let shift = page_shift();
    // Only the address is passed to the kernel; it is never dereferenced here.
    (
        (run.start << shift) as *const libc::c_void,
        run.len() << shift,
    )
}

/// `mlock` the pages `run`; `Err(errno)` on failure.
pub(crate) fn mlock(run: Range<usize>) -> Result<(), i32> {
    let (addr, len) = span(run);
    // SAFETY: mlock only changes the residency of the range and validates it in the kernel
    // (an unmapped range fails with ENOMEM); it reads and writes no memory of this process.
    if unsafe { libc::mlock(addr, len) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `munlock` the pages `run`. Failure (memory unmapped since it was locked) leaves nothing
/// to undo, so it is ignored.
pub(crate) fn munlock(run: Range<usize>) {
    let (addr, len) = span(run);
    // SAFETY: munlock only changes the residency of the range; it accesses no memory.
    let _ = unsafe { libc::munlock(addr, len) };
}

/// `true` if every page of the run is mapped in this process.
pub(crate) fn mapped(run: Range<usize>) -> bool {
    let (addr, len) = span(run);
    // SAFETY: msync(MS_ASYNC) on anonymous or file memory schedules no I/O that could touch
    // this process's data unsafely; it fails with ENOMEM if part of the range is unmapped,
    // which is all it is used to find out.
    let rc = unsafe { libc::msync(addr.cast_mut(), len, libc::MS_ASYNC) };
    rc == 0 || errno() != libc::ENOMEM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_whole_pages() {
        let ps = page_size();
        assert_eq!(page_span(0, 10), None);
        assert_eq!(page_span(ps, 0), None);
        assert_eq!(page_span(usize::MAX - 3, 10), None);
        assert_eq!(page_span(ps, 1), Some(1..2));
        assert_eq!(page_span(ps, ps), Some(1..2));
        assert_eq!(page_span(ps, ps + 1), Some(1..3));
        assert_eq!(page_span(2 * ps - 1, 2), Some(1..3));
        assert_eq!(page_span(usize::MAX, 1), None);
        assert_eq!(page_span(usize::MAX - 1, 1).map(|r| r.len()), Some(1));
    }

    fn no_lock(_: Range<usize>) -> Result<(), i32> {
        panic!("no lock expected")
    }

    #[test]
    fn full_counts_refuse_pins_and_change_nothing() {
        let mut t = PinTable::new();
        let (a, b) = (t.register(), t.register());
        t.platforms[a].update(10..12, |_| Some(u32::MAX));
        let full = Shared {
            pins: u32::MAX,
            locks: 0,
        };
        t.shared.update(10..12, |_| Some(full));
        let pin = |t: &mut PinTable, slot, span| t.pin(slot, span, false, None, no_lock, |_| {});
        // The platform's own count, and the process-wide one, would overflow.
        assert_eq!(pin(&mut t, a, 11..13), Err(PinError::Limit));
        assert_eq!(pin(&mut t, b, 5..11), Err(PinError::Limit));
        t.check();
        assert_eq!(t.pinned_pages(a), 2);
        assert_eq!(t.pinned_pages(b), 0);
        assert_eq!(t.shared_counts(12), None);
        assert_eq!(t.shared_counts(10), Some((u32::MAX, 0)));
        // Touching a full interval is fine.
        assert_eq!(pin(&mut t, a, 12..14), Ok(()));
        assert_eq!(pin(&mut t, b, 8..10), Ok(()));
        assert_eq!(t.platform_count(a, 12), Some(1));
        assert_eq!(t.shared_counts(9), Some((1, 0)));
        t.check();
    }

    #[test]
    fn slots_are_reused_and_start_empty() {
        let mut t = PinTable::new();
        let a = t.register();
        assert_eq!(t.pin(a, 3..9, false, None, no_lock, |_| {}), Ok(()));
        assert_eq!(t.pin(a, 5..6, false, None, no_lock, |_| {}), Ok(()));
        t.unregister(a, false, |_| panic!("no unlock expected"));
        assert_eq!(t.shared_counts(5), None);
        let b = t.register();
        assert_eq!(b, a);
        assert_eq!(t.pinned_pages(b), 0);
        assert_eq!(t.platform_count(b, 5), None);
        assert_ne!(t.register(), b);
        t.check();
    }
}
