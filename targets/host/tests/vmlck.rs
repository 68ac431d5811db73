//! Checks what the kernel really has locked (`VmLck:` in /proc/self/status) as pins come and
//! go. `VmLck` is per process, so this binary holds exactly one test and nothing else locks
//! memory concurrently.

use rsm_hal::{ErrorKind, Memory};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};

/// Locked memory of this process, in bytes.
fn vmlck() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmLck:")).unwrap();
    let kb: usize = line
        .trim_start_matches("VmLck:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn locked_memory_follows_page_pin_counts() {
    let base = vmlck();
    let locked = || vmlck() - base;
    let p = HostPlatform::new();
    let ps = p.page_size();
    let buf = PinnedBuf::new(6 * ps).unwrap();

    // Two pins on one page: the first unpin leaves it locked.
    let a = p.pin(&buf.subregion(0, 10).unwrap()).unwrap();
    assert_eq!(locked(), ps);
    let b = p.pin(&buf.subregion(100, 100).unwrap()).unwrap();
    assert_eq!(locked(), ps);
    p.unpin(a);
    assert_eq!(locked(), ps, "one handle unpinned the other's page");
    p.unpin(b);
    assert_eq!(locked(), 0);

    // Partial first/last pages lock whole pages; overlapping pins lock the union.
    let a = p.pin(&buf.subregion(ps - 1, ps + 2).unwrap()).unwrap(); // pages 0..3
    assert_eq!(locked(), 3 * ps);
    let b = p.pin(&buf.subregion(2 * ps, 3 * ps).unwrap()).unwrap(); // pages 2..5
    assert_eq!(locked(), 5 * ps);
    p.unpin(a); // pages 0 and 1 go
    assert_eq!(locked(), 3 * ps);
    p.unpin(b);
    assert_eq!(locked(), 0);

    // A pin in the middle splits the runs of a larger pin; unpinning the larger one keeps it.
    let mid = p.pin(&buf.subregion(3 * ps, 1).unwrap()).unwrap();
    let all = p.pin(&buf.region()).unwrap();
    assert_eq!(locked(), 6 * ps);
    p.unpin(all);
    assert_eq!(locked(), ps);
    p.unpin(mid);
    assert_eq!(locked(), 0);

    // Two platforms on one page do not unlock each other.
    let q = HostPlatform::new();
    let a = p.pin(&buf.subregion(0, 1).unwrap()).unwrap();
    let b = q.pin(&buf.subregion(0, ps).unwrap()).unwrap();
    p.unpin(a);
    assert_eq!(locked(), ps);
    q.unpin(b);
    assert_eq!(locked(), 0);

    // A platform without mlock counts pages but locks nothing, and does not unlock pages
    // that a locking platform holds.
    let n = HostPlatform::without_mlock();
    let c = n.pin(&buf.region()).unwrap();
    assert_eq!(n.pinned_pages(), 6);
    assert_eq!(locked(), 0);
    let a = p.pin(&buf.subregion(0, 1).unwrap()).unwrap();
    assert_eq!(locked(), ps);
    n.unpin(c);
    assert_eq!(locked(), ps);
    p.unpin(a);
    assert_eq!(locked(), 0);

    // Quota errors lock nothing.
    let small = HostPlatform::with_pin_quota(2 * ps);
    let a = small.pin(&buf.subregion(0, 1).unwrap()).unwrap();
    let e = small.pin(&buf.region()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(locked(), ps);
    small.unpin(a);
    assert_eq!(locked(), 0);

    // A failed mlock (a hole in the range) leaves nothing locked, even the runs it locked
    // before the hole and the part of the failing run before the hole.
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let map = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            5 * ps,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let map = map.cast::<u8>();
    // SAFETY: the mapping is valid for 5 pages until the final munmap; page 4 is unmapped
    // early and only ever pinned (which fails), never accessed.
    let whole = unsafe { MemRegion::from_raw_parts(map, 5 * ps) };
    let held = p.pin(&whole.subregion(ps, 1).unwrap()).unwrap();
    assert_eq!(locked(), ps);
    // SAFETY: unmaps the last page of our own mapping, which nothing references.
    assert_eq!(unsafe { libc::munmap(map.add(4 * ps).cast(), ps) }, 0);
    // Runs [0] and [2, 3, 4]: the kernel locks pages 2 and 3 before hitting the hole at 4.
    let e = p.pin(&whole).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadAddress);
    assert_eq!(locked(), ps, "a failed pin left pages locked");
    assert_eq!(p.pinned_pages(), 1);
    p.unpin(held);
    assert_eq!(locked(), 0);
    // SAFETY: the remaining 4 pages of our mapping; nothing references them any more.
    assert_eq!(unsafe { libc::munmap(map.cast(), 4 * ps) }, 0);

    // Dropping a platform unlocks what it still pins.
    let d = HostPlatform::new();
    let _leaked = d.pin(&buf.region()).unwrap();
    assert_eq!(locked(), 6 * ps);
    drop(d);
    assert_eq!(locked(), 0);

    // A pseudo-random sequence of overlapping pins by two locking platforms and one that does
    // not lock: after every step the kernel has exactly the pages some locking pin covers.
    let platforms = [
        HostPlatform::new(),
        HostPlatform::new(),
        HostPlatform::without_mlock(),
    ];
    let mut held: Vec<(usize, rsm_host::HostPin, std::ops::Range<usize>)> = Vec::new();
    let mut counts = [[0u32; 6]; 3];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..400 {
        if held.is_empty() || next(5) < 3 {
            let who = next(3);
            let off = next(6 * ps);
            let len = 1 + next((6 * ps - off).min(3 * ps));
            let pin = platforms[who]
                .pin(&buf.subregion(off, len).unwrap())
                .unwrap();
            let span = off / ps..(off + len - 1) / ps + 1;
            span.clone().for_each(|p| counts[who][p] += 1);
            held.push((who, pin, span));
        } else {
            let (who, pin, span) = held.swap_remove(next(held.len()));
            platforms[who].unpin(pin);
            span.for_each(|p| counts[who][p] -= 1);
        }
        let expect = (0..6).filter(|&p| counts[0][p] + counts[1][p] > 0).count();
        assert_eq!(locked(), expect * ps, "counts {counts:?}");
    }
    for (who, pin, _) in held {
        platforms[who].unpin(pin);
    }
    assert_eq!(locked(), 0);
}
