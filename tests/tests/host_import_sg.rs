//! §9.9 "free waits for a putv in flight" over the host backend — a host-backend test kept
//! out of the `rsm-conformance` table.
//!
//! Its subject is `rsm_host::HostPlatform` itself (real `PinnedBuf` memory, 8+ MiB of
//! transfers, two std threads timed with `Instant`), not a platform-generic single-node
//! check: it cannot run over another platform's harness, so it stays a std `#[test]` here.
//! Moved verbatim from `tests/tests/conformance.rs`; the rest of §4.4 / §4.6 lives in the
//! table (`conformance/src/import_sg.rs`).

use rsm_core::capi;
use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, RsmError, ScatGath};

// =============================================================================================
// §9.9 free while a putv uses the handle (host platform, threads)
// =============================================================================================

/// §9.9 (our choice: free waits): thread A runs large putv vectors in a loop — 15 entries of
/// 4 MiB from a local handle `bulk`, then one 256 KiB entry from the local handle `local` —
/// while thread B frees `local` in the middle of a vector (the vector holds `local` from its
/// validation to its end). The free must return Ok only once no transfer uses the handle:
/// right after it returns, B overwrites the buffer behind `local` with 0xBB, and no 0xBB byte
/// may ever reach the segment (a free that returned early would let the vector's last entry
/// copy them). Every putv starting after the free returned fails with 14 (residual 16); no
/// call panics; the test is bounded (< 2 s; the only sleep is bounded).
#[test]
fn free_local_waits_for_putv_in_flight_host() {
    use rsm_host::{HostPlatform, PinnedBuf};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    const CHUNK: usize = 4 << 20;
    const SMALL: usize = 256 << 10;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(1500);
    // No mlock: 8+ MiB would exceed the default RLIMIT_MEMLOCK; pin counts work the same.
    let n: Rsm<HostPlatform> = Rsm::new(HostPlatform::without_mlock(), Config::default());
    let page = n.platform().page_size();
    let ctrl = n.get_controller(None).unwrap();
    let seg_buf = PinnedBuf::new(CHUNK).unwrap();
    let seg = n
        .export_create(ctrl, seg_buf.region(), CreateFlags::empty())
        .unwrap();
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let imp = n.import_connect(ctrl, 0, id, Permission::RDWR).unwrap();
    let bulk_buf = PinnedBuf::new(CHUNK).unwrap();
    bulk_buf.fill(0x11);
    let bulk = n
        .create_localmemory_handle(ctrl, bulk_buf.region())
        .unwrap();
    let local_buf = PinnedBuf::new(SMALL).unwrap();
    local_buf.fill(0xAA);
    let local = n
        .create_localmemory_handle(ctrl, local_buf.region())
        .unwrap();
    assert_eq!(n.platform().pinned_pages(), (2 * CHUNK + SMALL) / page);

    let started = AtomicUsize::new(0);
    let first_call_nanos = AtomicU64::new(0);
    let freed = AtomicBool::new(false);
    let (a_res, b_res) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let mut iov = [IoVec::handle(bulk, 0, 0, CHUNK); 16];
            iov[15] = IoVec::handle(local, 0, 0, SMALL);
            let mut results = Vec::new();
            loop {
                let after_free = freed.load(SeqCst);
                let t = Instant::now();
                let first = started.fetch_add(1, SeqCst) == 0;
                let mut sg = ScatGath::new(imp, &iov);
                sg.io_residual_count = 999;
                let r = n.putv(&mut sg);
                if first {
                    let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    first_call_nanos.store(nanos.max(1), SeqCst);
                }
                results.push((after_free, r, sg.io_residual_count));
                if (after_free && r.is_err()) || Instant::now() > deadline {
                    break;
                }
            }
            results
        });
        let b = s.spawn(|| {
            // Wait until A has started its second vector, then (bounded sleep) about a quarter
            // of the time a vector takes, so that the free lands while that vector copies its
            // first entries.
            while (started.load(SeqCst) < 2 || first_call_nanos.load(SeqCst) == 0)
                && Instant::now() < deadline
            {
                std::thread::yield_now();
            }
            let quarter = Duration::from_nanos(first_call_nanos.load(SeqCst) / 4);
            std::thread::sleep(quarter.min(Duration::from_millis(100)));
            let r = n.free_localmemory_handle(ctrl, local);
            // From here on nothing may read the buffer through the freed handle.
            local_buf.fill(0xBB);
            freed.store(true, SeqCst);
            r
        });
        (a.join(), b.join())
    });
    let results = a_res.expect("putv thread panicked");
    let free_result = b_res.expect("free thread panicked");
    assert_eq!(free_result, Ok(()));
    assert!(
        results.iter().any(|(after, _, _)| *after),
        "A never started a putv after the free returned (deadline hit?)"
    );
    let mut ok = 0;
    for (after_free, r, residual) in &results {
        match r {
            Ok(()) => {
                assert!(!after_free, "a putv after the free returned succeeded");
                assert_eq!(*residual, 0);
                ok += 1;
            }
            Err(RsmError::BadSgio) => assert_eq!(*residual, 16),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(ok >= 1, "A's first vector succeeded before the free");
    let seg_bytes = seg_buf.to_vec();
    assert!(
        seg_bytes[..SMALL].iter().all(|&b| b == 0xAA),
        "a transfer read the local buffer after the free returned"
    );
    assert!(seg_bytes[SMALL..].iter().all(|&b| b == 0x11));
    // Subsequent putv naming the handle → 14; the handle is gone and unpinned.
    let iov = [IoVec::handle(local, 0, 0, 64)];
    let mut sg = ScatGath::new(imp, &iov);
    sg.io_residual_count = 999;
    assert_eq!(capi::rsm_memseg_import_putv(&n, Some(&mut sg)), 14);
    assert_eq!(sg.io_residual_count, 1);
    assert_eq!(
        n.free_localmemory_handle(ctrl, local),
        Err(RsmError::BadLocalmemHndl)
    );
    assert_eq!(n.platform().pinned_pages(), 2 * CHUNK / page);
    n.free_localmemory_handle(ctrl, bulk).unwrap();
    n.import_disconnect(imp).unwrap();
    n.export_destroy(seg).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}
