//! Unit tests of the platform. These run in parallel threads of one process, so they check the
//! per-platform and process-wide tables, not `VmLck` (see `tests/vmlck.rs` for that).

use crate::pages::{lock, page_size, GLOBAL};
use crate::{HostPlatform, MemRegion, PinnedBuf};
use rsm_hal::{Clock, ErrorKind, Instant, Memory, Region, Wait};
use std::sync::Arc;
use std::time::Duration;

fn ps() -> usize {
    page_size()
}

/// The process-wide entry of the page containing `addr`.
fn global_entry(addr: usize) -> Option<(u32, u32)> {
    lock(&GLOBAL).shared_counts(addr / ps())
}

/// `true` if no page of `buf` is in the process-wide table.
fn untouched(buf: &PinnedBuf) -> bool {
    let first = buf.as_ptr() as usize / ps();
    let end = first + buf.capacity() / ps();
    lock(&GLOBAL).range(first..end).next().is_none()
}

fn both_modes() -> [HostPlatform; 2] {
    [HostPlatform::new(), HostPlatform::without_mlock()]
}

#[test]
fn pins_nest_per_page() {
    for p in both_modes() {
        let buf = PinnedBuf::new(3 * ps()).unwrap();
        let a = p.pin(&buf.subregion(0, 10).unwrap()).unwrap();
        let b = p.pin(&buf.subregion(5, ps()).unwrap()).unwrap();
        assert_eq!(a.pages(), 1);
        assert_eq!(b.pages(), 2);
        assert_eq!(p.pinned_pages(), 2);
        assert_eq!(p.pinned_bytes(), 2 * ps());
        let locks = u32::from(p.uses_mlock());
        assert_eq!(global_entry(buf.as_ptr() as usize), Some((2, 2 * locks)));
        p.unpin(a);
        // The first page is still pinned by `b`.
        assert_eq!(p.pinned_pages(), 2);
        assert_eq!(global_entry(buf.as_ptr() as usize), Some((1, locks)));
        p.unpin(b);
        assert_eq!(p.pinned_pages(), 0);
        assert!(untouched(&buf));
    }
}

#[test]
fn partial_pages_pin_whole_pages() {
    for p in both_modes() {
        let buf = PinnedBuf::new(3 * ps()).unwrap();
        // Two bytes straddling a page boundary pin both pages.
        let a = p.pin(&buf.subregion(ps() - 1, 2).unwrap()).unwrap();
        assert_eq!(a.pages(), 2);
        assert_eq!(p.pinned_bytes(), 2 * ps());
        let b = p
            .pin(&buf.subregion(ps() + 7, 2 * ps() - 7).unwrap())
            .unwrap();
        assert_eq!(b.pages(), 2);
        assert_eq!(p.pinned_pages(), 3);
        p.unpin(b);
        assert_eq!(p.pinned_pages(), 2);
        p.unpin(a);
        assert_eq!(p.pinned_pages(), 0);
        assert!(untouched(&buf));
    }
}

#[test]
fn quota_counts_each_page_once() {
    for p in [
        HostPlatform::with_pin_quota(2 * ps()),
        HostPlatform::without_mlock().limit_pins(2 * ps()),
    ] {
        assert_eq!(p.pin_quota(), Some(2 * ps()));
        let buf = PinnedBuf::new(3 * ps()).unwrap();
        let a = p.pin(&buf.subregion(0, 10).unwrap()).unwrap();
        let b = p.pin(&buf.subregion(100, 10).unwrap()).unwrap();
        let c = p.pin(&buf.subregion(ps(), 10).unwrap()).unwrap();
        let d = p.pin(&buf.subregion(0, 2 * ps()).unwrap()).unwrap();
        assert_eq!(p.pinned_bytes(), 2 * ps());
        let e = p.pin(&buf.subregion(2 * ps(), 1).unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        for pin in [a, b, c, d] {
            p.unpin(pin);
        }
        assert_eq!(p.pinned_pages(), 0);
        // Freed quota can be used again.
        let f = p.pin(&buf.subregion(ps(), 2 * ps()).unwrap()).unwrap();
        p.unpin(f);
        assert!(untouched(&buf));
    }
}

#[test]
fn quota_error_is_all_or_nothing() {
    let p = HostPlatform::with_pin_quota(2 * ps());
    let buf = PinnedBuf::new(3 * ps()).unwrap();
    let a = p.pin(&buf.subregion(0, 1).unwrap()).unwrap();
    let e = p.pin(&buf.region()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(e.errno(), None);
    // Nothing changed: only page 0, once.
    assert_eq!(p.pinned_pages(), 1);
    assert_eq!(global_entry(buf.as_ptr() as usize), Some((1, 1)));
    assert_eq!(global_entry(buf.as_ptr() as usize + ps()), None);
    assert_eq!(global_entry(buf.as_ptr() as usize + 2 * ps()), None);
    p.unpin(a);
    assert!(untouched(&buf));
}

#[test]
fn quota_rounds_down_to_pages() {
    let p = HostPlatform::with_pin_quota(ps() - 1);
    assert_eq!(p.pin_quota(), Some(0));
    let buf = PinnedBuf::new(1).unwrap();
    let e = p.pin(&buf.region()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(HostPlatform::new().pin_quota(), None);
}

#[test]
fn bad_regions_are_rejected() {
    for p in both_modes() {
        let buf = PinnedBuf::new(16).unwrap();
        // SAFETY: NULL and wrapping regions are never dereferenced by `pin`.
        let (null, wraps) = unsafe {
            (
                MemRegion::from_raw_parts(core::ptr::null_mut(), 16),
                MemRegion::from_raw_parts(usize::MAX as *mut u8, 16),
            )
        };
        for r in [null, buf.subregion(3, 0).unwrap(), wraps] {
            assert_eq!(
                p.pin(&r).unwrap_err().kind(),
                ErrorKind::BadAddress,
                "{r:?}"
            );
        }
        assert_eq!(p.pinned_pages(), 0);
    }
}

/// An anonymous mapping of `pages` pages; the caller unmaps it.
fn map(pages: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let addr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            pages * ps(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    addr.cast()
}

fn unmap(addr: *mut u8, pages: usize) {
    // SAFETY: the range belongs to a mapping made by `map` and is not used afterwards.
    assert_eq!(unsafe { libc::munmap(addr.cast(), pages * ps()) }, 0);
}

#[test]
fn unmapped_memory_is_a_bad_address_and_nothing_changes() {
    let p = HostPlatform::new();
    let base = map(4);
    // SAFETY: the mapping is 4 pages long and lives until the unmap below; the parts unmapped
    // early are only pinned (which fails), never accessed.
    let whole = unsafe { MemRegion::from_raw_parts(base, 4 * ps()) };
    let page1 = whole.subregion(ps(), ps()).unwrap();
    let held = p.pin(&page1).unwrap();
    unmap(base.wrapping_add(3 * ps()), 1);
    // Runs [0] and [2,3]: the first locks, the second hits the hole.
    let e = p.pin(&whole).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadAddress);
    assert_eq!(e.errno(), Some(libc::ENOMEM));
    assert_eq!(p.pinned_pages(), 1);
    assert_eq!(global_entry(base as usize), None);
    assert_eq!(global_entry(base as usize + ps()), Some((1, 1)));
    assert_eq!(global_entry(base as usize + 2 * ps()), None);
    p.unpin(held);
    assert_eq!(global_entry(base as usize + ps()), None);
    unmap(base, 3);
    // Entirely unmapped now.
    assert_eq!(p.pin(&page1).unwrap_err().kind(), ErrorKind::BadAddress);
    // Without mlock nothing validates the address (documented).
    let q = HostPlatform::without_mlock();
    let pin = q.pin(&page1).unwrap();
    q.unpin(pin);
}

#[test]
fn platforms_share_locks_of_a_page() {
    let (p1, p2, p3) = (
        HostPlatform::new(),
        HostPlatform::new(),
        HostPlatform::without_mlock(),
    );
    let buf = PinnedBuf::new(ps()).unwrap();
    let at = buf.as_ptr() as usize;
    let c = p3.pin(&buf.region()).unwrap();
    assert_eq!(global_entry(at), Some((1, 0)));
    let a = p1.pin(&buf.region()).unwrap();
    let b = p2.pin(&buf.subregion(8, 8).unwrap()).unwrap();
    assert_eq!(global_entry(at), Some((3, 2)));
    assert_eq!(
        (p1.pinned_pages(), p2.pinned_pages(), p3.pinned_pages()),
        (1, 1, 1)
    );
    p1.unpin(a);
    assert_eq!(global_entry(at), Some((2, 1)));
    p2.unpin(b);
    assert_eq!(global_entry(at), Some((1, 0)));
    p3.unpin(c);
    assert!(untouched(&buf));
}

#[test]
fn dropping_a_platform_releases_its_pins() {
    let buf = PinnedBuf::new(3 * ps()).unwrap();
    let keep = HostPlatform::new();
    let k = keep.pin(&buf.subregion(0, 1).unwrap()).unwrap();
    {
        let p = HostPlatform::new();
        let _a = p.pin(&buf.region()).unwrap();
        let _b = p.pin(&buf.subregion(ps(), 1).unwrap()).unwrap();
        assert_eq!(global_entry(buf.as_ptr() as usize + ps()), Some((2, 2)));
    }
    assert_eq!(global_entry(buf.as_ptr() as usize), Some((1, 1)));
    assert_eq!(global_entry(buf.as_ptr() as usize + ps()), None);
    keep.unpin(k);
    assert!(untouched(&buf));
}

#[test]
#[should_panic(expected = "another platform")]
fn unpin_on_the_wrong_platform_is_caught() {
    let (p1, p2) = (HostPlatform::without_mlock(), HostPlatform::without_mlock());
    let buf = PinnedBuf::new(1).unwrap();
    let a = p1.pin(&buf.region()).unwrap();
    p2.unpin(a);
}

#[test]
fn a_region_keeps_the_memory_of_a_dropped_buffer() {
    let p = HostPlatform::without_mlock();
    let buf = PinnedBuf::new(64).unwrap();
    buf.write(0, b"still here").unwrap();
    let r = buf.region();
    let sub = r.subregion(6, 4).unwrap();
    assert_eq!(r.owners(), 3); // the buffer, `r` and `sub`
    let pin = p.pin(&r).unwrap();
    drop(buf);
    assert_eq!(r.owners(), 2);
    // The memory was not freed: a transfer through the region is still valid.
    let other = PinnedBuf::new(64).unwrap();
    p.copy(&other.region(), 0, &r, 0, 10).unwrap();
    assert_eq!(&other.to_vec()[..10], b"still here");
    p.unpin(pin);
    drop(r);
    assert_eq!(sub.owners(), 1);
    assert_eq!(sub.to_vec(), b"here");
    // A region from memory it does not own counts no owners.
    let stat = MemRegion::from_static(Box::leak(Box::new([0u8; 8])));
    assert_eq!(stat.owners(), 0);
}

#[test]
fn copy_between_buffers() {
    let p = HostPlatform::new();
    let a = PinnedBuf::new(64).unwrap();
    let b = PinnedBuf::new(64).unwrap();
    a.write(0, b"abcdefgh").unwrap();
    p.copy(&b.region(), 60, &a.region(), 2, 4).unwrap();
    assert_eq!(&b.to_vec()[56..], b"\0\0\0\0cdef");
    // Subregions are offsets of their own.
    p.copy(
        &b.subregion(8, 8).unwrap(),
        0,
        &a.subregion(4, 4).unwrap(),
        0,
        4,
    )
    .unwrap();
    assert_eq!(&b.to_vec()[8..12], b"efgh");
}

#[test]
fn copy_is_memmove() {
    let p = HostPlatform::new();
    let buf = PinnedBuf::new(16).unwrap();
    let r = buf.region();
    buf.write(0, b"0123456789abcdef").unwrap();
    p.copy(&r, 2, &r, 0, 8).unwrap();
    assert_eq!(buf.to_vec(), b"0101234567abcdef");
    buf.write(0, b"0123456789abcdef").unwrap();
    p.copy(&r, 0, &r, 2, 8).unwrap();
    assert_eq!(buf.to_vec(), b"2345678989abcdef");
    // Overlap through two different regions over the same memory.
    buf.write(0, b"0123456789abcdef").unwrap();
    let tail = buf.subregion(4, 12).unwrap();
    p.copy(&tail, 0, &r, 0, 12).unwrap();
    assert_eq!(buf.to_vec(), b"01230123456789ab");
    // Copy onto itself.
    p.copy(&r, 3, &r, 3, 10).unwrap();
    assert_eq!(buf.to_vec(), b"01230123456789ab");
}

#[test]
fn copy_out_of_range_is_rejected_without_copying() {
    let p = HostPlatform::new();
    let a = PinnedBuf::new(16).unwrap();
    let b = PinnedBuf::new(32).unwrap();
    a.fill(7);
    let (ra, rb) = (a.region(), b.region());
    let cases: [(usize, usize, usize); 6] = [
        (0, 0, 17),         // longer than the source
        (17, 0, 16),        // destination offset + len past the end
        (0, 1, 16),         // source offset + len past the end
        (usize::MAX, 0, 2), // destination offset overflows
        (0, usize::MAX, 2), // source offset overflows
        (0, 17, 0),         // empty copy starting past the source's end
    ];
    for (dst_off, src_off, len) in cases {
        let e = p.copy(&rb, dst_off, &ra, src_off, len).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange, "{dst_off} {src_off} {len}");
    }
    assert!(b.to_vec().iter().all(|&x| x == 0));
    // Empty copies at the very end are in range.
    p.copy(&rb, 32, &ra, 16, 0).unwrap();
    // A NULL region of the right length: no copy, BadAddress (and an empty copy is fine).
    // SAFETY: the NULL region is never dereferenced: copy rejects it.
    let null = unsafe { MemRegion::from_raw_parts(core::ptr::null_mut(), 16) };
    assert_eq!(
        p.copy(&rb, 0, &null, 0, 4).unwrap_err().kind(),
        ErrorKind::BadAddress
    );
    assert_eq!(
        p.copy(&null, 0, &ra, 0, 4).unwrap_err().kind(),
        ErrorKind::BadAddress
    );
    p.copy(&null, 0, &ra, 0, 0).unwrap();
}

#[test]
fn clock_is_monotonic_and_starts_near_zero() {
    let p = HostPlatform::new();
    let t0 = p.now();
    assert!(t0.0 < 10_000_000_000, "origin is the platform's creation");
    std::thread::sleep(Duration::from_millis(2));
    let t1 = p.now();
    assert!(t1.nanos_since(t0) >= 2_000_000);
    for _ in 0..1000 {
        let a = p.now();
        assert!(p.now() >= a);
    }
}

#[test]
fn wake_before_wait_is_not_lost() {
    let p = HostPlatform::new();
    let t = p.prepare_wait();
    p.wake();
    let start = std::time::Instant::now();
    // Without a deadline: if the wake were lost this would hang (and the test time out).
    p.wait(t, None);
    p.wait(t, Some(p.now().add_millis(60_000)));
    assert!(start.elapsed() < Duration::from_secs(5));
    // A fresh token after the wake does wait.
    let t2 = p.prepare_wait();
    assert_ne!(t2, t);
    let deadline = p.now().add_millis(20);
    p.wait(t2, Some(deadline));
    assert!(p.now() >= deadline);
}

#[test]
fn wake_from_another_thread() {
    let p = Arc::new(HostPlatform::new());
    for _ in 0..20 {
        let t = p.prepare_wait();
        let q = Arc::clone(&p);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            q.wake();
        });
        let start = std::time::Instant::now();
        p.wait(t, None);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_ne!(p.prepare_wait(), t);
        h.join().unwrap();
    }
}

#[test]
fn wait_until_deadline() {
    let p = HostPlatform::new();
    let t = p.prepare_wait();
    let deadline = p.now().add_millis(50);
    p.wait(t, Some(deadline));
    assert!(p.now() >= deadline);
    // A deadline in the past returns at once, and so does Instant(0).
    let start = std::time::Instant::now();
    p.wait(t, Some(Instant(0)));
    p.wait(t, Some(p.now()));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn concurrent_pins_unpins_and_copies_balance() {
    let p = Arc::new(HostPlatform::new());
    let buf = Arc::new(PinnedBuf::new(8 * ps()).unwrap());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (p, buf) = (Arc::clone(&p), Arc::clone(&buf));
            std::thread::spawn(move || {
                let mut seed = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move |n: usize| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % n as u64) as usize
                };
                let mut held = Vec::new();
                for _ in 0..300 {
                    let off = next(buf.len());
                    let len = 1 + next(buf.len() - off);
                    let r = buf.subregion(off, len).unwrap();
                    held.push(p.pin(&r).unwrap());
                    let src = buf.subregion(next(buf.len() / 2), 64).unwrap();
                    p.copy(&r, 0, &src, 0, len.min(64)).unwrap();
                    if next(3) > 0 {
                        let i = next(held.len());
                        p.unpin(held.swap_remove(i));
                    }
                }
                for pin in held {
                    p.unpin(pin);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(p.pinned_pages(), 0);
    assert!(untouched(&buf));
    assert!(buf.region().len() == 8 * ps());
}

#[test]
fn write_and_read_between_slices_and_regions() {
    let p = HostPlatform::without_mlock();
    let buf = PinnedBuf::new(64).unwrap();
    let r = buf.region();
    // Aligned word path and unaligned byte path.
    p.write(
        &r,
        8,
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    )
    .unwrap();
    p.write(&r, 3, &[0xAA, 0xBB]).unwrap();
    let mut out = [0u8; 24];
    p.read(&r, 0, &mut out).unwrap();
    assert_eq!(&out[..8], &[0, 0, 0, 0xAA, 0xBB, 0, 0, 0]);
    assert_eq!(
        &out[8..24],
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    );
    let mut odd = [0u8; 3];
    p.read(&r, 9, &mut odd).unwrap();
    assert_eq!(odd, [2, 3, 4]);
    // Bounds: nothing written, OutOfRange.
    let e = p.write(&r, 60, &[9; 8]).unwrap_err();
    assert_eq!(rsm_hal::Error::kind(&e), ErrorKind::OutOfRange);
    let e = p.read(&r, usize::MAX, &mut [0u8; 2]).unwrap_err();
    assert_eq!(rsm_hal::Error::kind(&e), ErrorKind::OutOfRange);
    assert_eq!(buf.to_vec()[56..64], [0; 8]);
    // Empty accesses succeed without touching memory; NULL is a bad address.
    p.write(&r, 64, &[]).unwrap();
    // SAFETY: a NULL region is never dereferenced: the platform must reject it.
    let null = unsafe { MemRegion::from_raw_parts(std::ptr::null_mut(), 16) };
    let e = p.write(&null, 0, &[1]).unwrap_err();
    assert_eq!(rsm_hal::Error::kind(&e), ErrorKind::BadAddress);
    assert_eq!(r.slice(8, 8).map(|s| s.addr()), Some(r.addr() + 8));
    assert!(r.slice(60, 8).is_none());
}

/// Property tests: random pin/unpin sequences over overlapping ranges, checked after every step
/// against a plain model with a count per page.
mod model {
    use super::*;
    use crate::pages::{PinError, PinTable};
    use crate::HostPin;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::ops::Range;

    /// Pages of the buffer (or page numbers of the table) the operations work on.
    const PAGES: usize = 24;

    /// An operation of a random sequence.
    #[derive(Debug, Clone)]
    enum Op {
        /// Platform `who` pins `len` bytes at byte `off` (clipped to the buffer).
        Pin { who: usize, off: usize, len: usize },
        /// Platform `who` unpins one of its pins (`pick` modulo their number).
        Unpin { who: usize, pick: usize },
        /// Platform `who` is dropped (with the pins it holds) and replaced by a fresh one.
        Drop { who: usize },
        /// Page `page` becomes unmapped or mapped again (its `mlock` fails while unmapped).
        Hole { page: usize },
    }

    /// Random operations on `platforms` platforms. Offsets and lengths are in 1/4096 of a
    /// page, so that regions start and end inside pages and cross page boundaries.
    fn ops(platforms: usize, drops: bool, holes: bool) -> impl Strategy<Value = Vec<Op>> {
        let pin = (0..platforms, 0..PAGES * 4096, 1..6 * 4096usize)
            .prop_map(|(who, off, len)| Op::Pin { who, off, len });
        let unpin = (0..platforms, any::<usize>()).prop_map(|(who, pick)| Op::Unpin { who, pick });
        let drop = (0..platforms).prop_map(|who| Op::Drop { who });
        let hole = (0..PAGES).prop_map(|page| Op::Hole { page });
        let op = prop_oneof![
            6 => pin,
            5 => unpin,
            u32::from(drops) => drop,
            u32::from(holes) => hole,
        ];
        proptest::collection::vec(op, 1..80)
    }

    /// `(off, len)` in bytes of a generated pin, clipped to `PAGES` pages of `page` bytes.
    fn bytes(off: usize, len: usize, page: usize) -> (usize, usize) {
        let off = off * page / 4096;
        let len = (len * page / 4096).clamp(1, PAGES * page - off);
        (off, len)
    }

    /// The maximal runs of pages of `span` for which `pred` holds.
    fn model_runs(span: Range<usize>, pred: impl Fn(usize) -> bool) -> Vec<Range<usize>> {
        let mut out: Vec<Range<usize>> = Vec::new();
        for p in span.filter(|&p| pred(p)) {
            match out.last_mut() {
                Some(r) if r.end == p => r.end = p + 1,
                _ => out.push(p..p + 1),
            }
        }
        out
    }

    fn distinct(counts: &[u32]) -> usize {
        counts.iter().filter(|&&c| c > 0).count()
    }

    /// The quota decision of the model: may `counts` take a pin of `span` under `quota`?
    fn fits(counts: &[u32], span: Range<usize>, quota: Option<usize>) -> bool {
        let new = span.filter(|&p| counts[p] == 0).count();
        quota.is_none_or(|q| distinct(counts) + new <= q)
    }

    fn platform(quota: Option<usize>) -> HostPlatform {
        let p = HostPlatform::without_mlock();
        match quota {
            Some(q) => p.limit_pins(q * ps()),
            None => p,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Two `without_mlock` platforms pinning overlapping regions of one buffer: quota
        /// decisions, `pinned_pages`/`pinned_bytes` and the process-wide counts of the buffer's
        /// pages agree with a count per page after every step, including drops.
        #[test]
        fn platforms_match_a_page_model(
            quotas in [proptest::option::of(0..PAGES + 4), proptest::option::of(0..PAGES + 4)],
            ops in ops(2, true, false),
        ) {
            let ps = ps();
            let buf = PinnedBuf::new(PAGES * ps).unwrap();
            let base = buf.as_ptr() as usize / ps;
            let mut platforms = quotas.map(platform);
            let mut counts = [[0u32; PAGES]; 2];
            let mut held: [Vec<(HostPin, Range<usize>)>; 2] = Default::default();
            for op in ops {
                match op {
                    Op::Pin { who, off, len } => {
                        let (off, len) = bytes(off, len, ps);
                        let span = off / ps..(off + len - 1) / ps + 1;
                        let allowed = fits(&counts[who], span.clone(), quotas[who]);
                        match platforms[who].pin(&buf.subregion(off, len).unwrap()) {
                            Ok(pin) => {
                                prop_assert!(allowed, "pinned over the quota");
                                prop_assert_eq!(pin.pages(), span.len());
                                span.clone().for_each(|p| counts[who][p] += 1);
                                held[who].push((pin, span));
                            }
                            Err(e) => {
                                prop_assert!(!allowed, "refused within the quota: {:?}", e);
                                prop_assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
                            }
                        }
                    }
                    Op::Unpin { who, pick } => {
                        if held[who].is_empty() {
                            continue;
                        }
                        let n = held[who].len();
                        let (pin, span) = held[who].swap_remove(pick % n);
                        platforms[who].unpin(pin);
                        span.for_each(|p| counts[who][p] -= 1);
                    }
                    Op::Drop { who } => {
                        // Dropping the platform releases its pins (the proofs become void).
                        platforms[who] = platform(quotas[who]);
                        held[who].clear();
                        counts[who] = [0; PAGES];
                    }
                    Op::Hole { .. } => {}
                }
                for who in 0..2 {
                    prop_assert_eq!(platforms[who].pinned_pages(), distinct(&counts[who]));
                    prop_assert_eq!(platforms[who].pinned_bytes(), distinct(&counts[who]) * ps);
                }
                let table = lock(&GLOBAL);
                table.check();
                for (p, (a, b)) in counts[0].iter().zip(&counts[1]).enumerate() {
                    let n = a + b;
                    let expect = (n > 0).then_some((n, 0));
                    prop_assert_eq!(table.shared_counts(base + p), expect, "page {}", p);
                }
            }
            drop(platforms);
            prop_assert!(untouched(&buf));
        }

        /// The pin table with two `mlock` platforms and one without, and a fake kernel: the
        /// runs it locks and unlocks are exactly the maximal runs of pages whose process-wide
        /// lock count goes 0 → 1 and 1 → 0, a failing lock (a hole in the range) is rolled back
        /// including the failing run, and the fake kernel's locked pages always equal the pages
        /// that some `mlock` platform pins.
        #[test]
        fn table_lock_runs_match_a_page_model(
            quotas in [
                proptest::option::of(0..PAGES + 4),
                proptest::option::of(0..PAGES + 4),
                proptest::option::of(0..PAGES + 4),
            ],
            ops in ops(3, true, true),
        ) {
            const MLOCK: [bool; 3] = [true, true, false];
            let mut t = PinTable::new();
            let mut slots = [t.register(), t.register(), t.register()];
            let mut counts = [[0u32; PAGES]; 3];
            let mut held: [Vec<Range<usize>>; 3] = Default::default();
            let holes = RefCell::new([false; PAGES]);
            let kernel = RefCell::new([false; PAGES]);
            let (locked, unlocked) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
            let lock = |run: Range<usize>| {
                locked.borrow_mut().push(run.clone());
                // Like the kernel: lock page by page up to a hole.
                for p in run {
                    if holes.borrow()[p] {
                        return Err(libc::ENOMEM);
                    }
                    kernel.borrow_mut()[p] = true;
                }
                Ok(())
            };
            let unlock = |run: Range<usize>| {
                prop_assert!(!run.is_empty());
                unlocked.borrow_mut().push(run.clone());
                run.for_each(|p| kernel.borrow_mut()[p] = false);
                Ok(())
            };
            let locks = |counts: &[[u32; PAGES]; 3], p: usize| -> u32 {
                (0..3).filter(|&w| MLOCK[w]).map(|w| counts[w][p]).sum()
            };
            for op in ops {
                locked.borrow_mut().clear();
                unlocked.borrow_mut().clear();
                let mut unlock_err = Ok(());
                let mut unlock_fn = |run| {
                    if let Err(e) = unlock(run) {
                        unlock_err = Err(e);
                    }
                };
                match op {
                    Op::Pin { who, off, len } => {
                        let (start, len) = (off / 4096, len / 4096 + 1);
                        let span = start..(start + len).min(PAGES);
                        let to_lock = if MLOCK[who] {
                            model_runs(span.clone(), |p| locks(&counts, p) == 0)
                        } else {
                            Vec::new()
                        };
                        let hole = |r: &Range<usize>| r.clone().any(|p| holes.borrow()[p]);
                        let failing = to_lock.iter().position(hole);
                        let r = t.pin(
                            slots[who],
                            span.clone(),
                            MLOCK[who],
                            quotas[who],
                            lock,
                            &mut unlock_fn,
                        );
                        if !fits(&counts[who], span.clone(), quotas[who]) {
                            prop_assert_eq!(r, Err(PinError::Quota));
                            prop_assert!(locked.borrow().is_empty());
                            prop_assert!(unlocked.borrow().is_empty());
                        } else if let Some(k) = failing {
                            prop_assert_eq!(
                                r,
                                Err(PinError::Lock { run: to_lock[k].clone(), err: libc::ENOMEM })
                            );
                            prop_assert_eq!(&*locked.borrow(), &to_lock[..=k]);
                            prop_assert_eq!(&*unlocked.borrow(), &to_lock[..=k]);
                        } else {
                            prop_assert_eq!(r, Ok(()));
                            prop_assert_eq!(&*locked.borrow(), &to_lock);
                            prop_assert!(unlocked.borrow().is_empty());
                            span.clone().for_each(|p| counts[who][p] += 1);
                            held[who].push(span);
                        }
                    }
                    Op::Unpin { who, pick } => {
                        if held[who].is_empty() {
                            continue;
                        }
                        let n = held[who].len();
                        let span = held[who].swap_remove(pick % n);
                        t.unpin(slots[who], span.clone(), MLOCK[who], &mut unlock_fn);
                        span.clone().for_each(|p| counts[who][p] -= 1);
                        let expect = if MLOCK[who] {
                            model_runs(span, |p| locks(&counts, p) == 0)
                        } else {
                            Vec::new()
                        };
                        prop_assert_eq!(&*unlocked.borrow(), &expect);
                    }
                    Op::Drop { who } => {
                        let before: Vec<u32> = (0..PAGES).map(|p| locks(&counts, p)).collect();
                        t.unregister(slots[who], MLOCK[who], &mut unlock_fn);
                        counts[who] = [0; PAGES];
                        held[who].clear();
                        slots[who] = t.register();
                        // Exactly the pages whose last lock went, each once, in ascending
                        // maximal runs of the platform's pinned pages.
                        let mut got: Vec<usize> =
                            unlocked.borrow().iter().flat_map(|r| r.clone()).collect();
                        let sorted = got.windows(2).all(|w| w[0] < w[1]);
                        prop_assert!(sorted, "unlock runs overlap or are out of order");
                        got.dedup();
                        let expect: Vec<usize> = (0..PAGES)
                            .filter(|&p| before[p] > 0 && locks(&counts, p) == 0)
                            .collect();
                        prop_assert_eq!(got, expect);
                    }
                    Op::Hole { page } => holes.borrow_mut()[page] ^= true,
                }
                unlock_err?;
                t.check();
                for p in 0..PAGES {
                    let n: u32 = counts.iter().map(|c| c[p]).sum();
                    let l = locks(&counts, p);
                    prop_assert_eq!(kernel.borrow()[p], l > 0, "page {} locked", p);
                    prop_assert_eq!(t.shared_counts(p), (n > 0).then_some((n, l)), "page {}", p);
                    for w in 0..3 {
                        let c = counts[w][p];
                        prop_assert_eq!(t.platform_count(slots[w], p), (c > 0).then_some(c));
                    }
                }
                for w in 0..3 {
                    prop_assert_eq!(t.pinned_pages(slots[w]), distinct(&counts[w]));
                }
            }
        }
    }
}
