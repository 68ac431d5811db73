//! Process-wide page bookkeeping and the `mlock`/`munlock` system calls.
//!
//! `mlock` does not nest: one `munlock` unlocks a page however often it was locked. Several
//! [`HostPlatform`](crate::HostPlatform)s may live in one process (several nodes in one test
//! binary, a node per thread) and pin the same page, so the decision "lock/unlock this page now"
//! is taken here, on a process-wide count per page, and not per platform. The same table tells a
//! [`PinnedBuf`](crate::PinnedBuf) being dropped whether any of its pages is still pinned.
//!
//! Lock order: a platform's own table first, then [`GLOBAL`]; nothing else is locked while
//! [`GLOBAL`] is held.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Process-wide state of one page that some platform has pinned.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PageEntry {
    /// Pins of this page by any platform (with or without `mlock`).
    pub(crate) pins: u32,
    /// Of those, pins by platforms that `mlock`: the page is locked while this is > 0.
    pub(crate) locks: u32,
}

/// Page number → process-wide pin state; only pages with `pins > 0` are present.
pub(crate) static GLOBAL: Mutex<BTreeMap<usize, PageEntry>> = Mutex::new(BTreeMap::new());

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

/// `true` if `page` is not locked by any platform.
pub(crate) fn unlocked(global: &BTreeMap<usize, PageEntry>, page: usize) -> bool {
    global.get(&page).is_none_or(|e| e.locks == 0)
}

/// Call `f(start, count)` for each maximal run of consecutive pages in `pages` for which `pred`
/// holds, in ascending order. Stops at the first error and returns it with its run.
pub(crate) fn for_each_run<E>(
    pages: Range<usize>,
    mut pred: impl FnMut(usize) -> bool,
    mut f: impl FnMut(usize, usize) -> Result<(), E>,
) -> Result<(), (usize, usize, E)> {
    let mut p = pages.start;
    while p < pages.end {
        if !pred(p) {
            p += 1;
            continue;
        }
        let start = p;
        while p < pages.end && pred(p) {
            p += 1;
        }
        f(start, p - start).map_err(|e| (start, p - start, e))?;
    }
    Ok(())
}

/// The last `errno` of this thread.
fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// The address and byte length of `count` pages from page `start`.
fn span(start: usize, count: usize) -> (*const libc::c_void, usize) {
    let shift = page_shift();
    // Only the address is passed to the kernel; it is never dereferenced here.
    ((start << shift) as *const libc::c_void, count << shift)
}

/// `mlock` `count` pages from page `start`; `Err(errno)` on failure.
pub(crate) fn mlock(start: usize, count: usize) -> Result<(), i32> {
    let (addr, len) = span(start, count);
    // SAFETY: mlock only changes the residency of the range and validates it in the kernel
    // (an unmapped range fails with ENOMEM); it reads and writes no memory of this process.
    if unsafe { libc::mlock(addr, len) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `munlock` `count` pages from page `start`. Failure (memory unmapped since it was locked)
/// leaves nothing to undo, so it is ignored.
pub(crate) fn munlock(start: usize, count: usize) {
    let (addr, len) = span(start, count);
    // SAFETY: munlock only changes the residency of the range; it accesses no memory.
    let _ = unsafe { libc::munlock(addr, len) };
}

/// `true` if every page of the run is mapped in this process.
pub(crate) fn mapped(start: usize, count: usize) -> bool {
    let (addr, len) = span(start, count);
    // SAFETY: msync(MS_ASYNC) on anonymous or file memory schedules no I/O that could touch
    // this process's data unsafely; it fails with ENOMEM if part of the range is unmapped,
    // which is all it is used to find out.
    let rc = unsafe { libc::msync(addr.cast_mut(), len, libc::MS_ASYNC) };
    rc == 0 || errno() != libc::ENOMEM
}

/// Unlock, in runs, the pages among `pages` that no platform locks any more.
pub(crate) fn munlock_released(global: &BTreeMap<usize, PageEntry>, pages: Range<usize>) {
    let _ = for_each_run(
        pages,
        |p| unlocked(global, p),
        |s, n| {
            munlock(s, n);
            Ok::<(), ()>(())
        },
    );
}

/// Take one pin (and, with `mlock`, one lock) of `page` off the process-wide table.
pub(crate) fn release_one(
    global: &mut BTreeMap<usize, PageEntry>,
    page: usize,
    n: u32,
    mlock: bool,
) {
    if let Some(e) = global.get_mut(&page) {
        debug_assert!(e.pins >= n, "rsm-host: process-wide pin count underflow");
        e.pins = e.pins.saturating_sub(n);
        if mlock {
            e.locks = e.locks.saturating_sub(n);
        }
        if e.pins == 0 {
            global.remove(&page);
        }
    } else {
        debug_assert!(false, "rsm-host: release of a page that is not pinned");
    }
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

    #[test]
    fn runs_are_maximal_and_ordered() {
        let mut seen = Vec::new();
        let r = for_each_run(
            0..12,
            |p| ![3, 4, 8].contains(&p),
            |s, n| {
                seen.push((s, n));
                Ok::<(), ()>(())
            },
        );
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![(0, 3), (5, 3), (9, 3)]);

        let r = for_each_run(
            0..12,
            |p| p % 2 == 0,
            |s, _| if s == 4 { Err("boom") } else { Ok(()) },
        );
        assert_eq!(r, Err((4, 1, "boom")));
    }
}
