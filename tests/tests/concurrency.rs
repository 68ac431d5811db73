//! MT-safety on the real host backend ([`HostPlatform::new`], `mlock` pinning): every RSMAPI
//! function is MT-Safe (spec §7), and rsm-rs's choices for using a handle while it is freed,
//! unpublished or rebound (spec §9.9, §6.4, §9.17).
//!
//! Every test runs under a watchdog: it fails if it has not finished within
//! [`WATCHDOG`] (a deadlock), instead of hanging the suite. Run time is bounded by loop counts
//! (and, for the mixed workload, by a short time budget as well); nothing asserts on speed.

use rsm_core::{
    Config, ControllerHandle, CreateFlags, IoVec, LocalMemHandle, Permission, Rsm, RsmError,
    ScatGath, SegmentId, SgFlags, PAGE_SIZE,
};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

type Node = Rsm<HostPlatform>;

/// A test that has not finished after this long is deadlocked.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Run `body` on its own thread; fail if it panics or does not finish within [`WATCHDOG`].
fn with_watchdog(name: &str, body: impl FnOnce() + Send + 'static) {
    rsm_tests::with_watchdog(name, WATCHDOG, body);
}

/// Position-dependent bytes for `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mix = seed.wrapping_mul(0xD6E8_FEB8_6659_FD93).rotate_left(23) | 1;
    (0..len as u64)
        .map(|i| ((i ^ mix).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect()
}

use rsm_tests::assert_bytes;

fn new_node() -> Node {
    Rsm::new(HostPlatform::new(), Config::default())
}

/// Export `buf` on `node` with `flags`, publish it with an automatic id and connect to it.
fn export_and_connect(
    node: &Node,
    ctrl: ControllerHandle,
    buf: &PinnedBuf,
    flags: CreateFlags,
) -> (rsm_core::ExportHandle, SegmentId, rsm_core::ImportHandle) {
    let seg = node.export_create(ctrl, buf.region(), flags).unwrap();
    let id = node.export_publish(seg, 0, &[]).unwrap();
    let imp = node
        .import_connect(ctrl, node.node_id(), id, Permission::RDWR)
        .unwrap();
    (seg, id, imp)
}

// ------------------------------------------------------------------------------------------
// Mixed workload: 4 threads, one node.
// ------------------------------------------------------------------------------------------

const THREADS: usize = 4;
/// Each thread's own range of the shared segment.
const RANGE: usize = 64 * 1024;
const CHUNK: usize = RANGE / 16;
/// Loop bounds of each thread: at least MIN iterations, at most MAX, and no new iteration
/// after the time budget.
const MIN_ITERS: usize = 5;
const MAX_ITERS: usize = 400;
const BUDGET: Duration = Duration::from_millis(1000);

/// One thread of the mixed workload. Returns the seed of the last pattern it wrote into its
/// range of the shared segment, and how often it reached a neighbour's private segment.
fn worker(
    node: &Node,
    t: usize,
    shared_id: SegmentId,
    private_ids: &[AtomicU32; THREADS],
    deadline: Instant,
) -> (u64, usize) {
    // Each thread takes its own controller reference (refcount under contention).
    let ctrl = node.get_controller(Some("rsmnet0")).unwrap();
    // Source with a non-page-multiple length; destination; private segment; scratch.
    let src = PinnedBuf::new(RANGE + 123).unwrap();
    let dst = PinnedBuf::new(RANGE).unwrap();
    let privates = [0, 1].map(|_| PinnedBuf::new(2 * PAGE_SIZE).unwrap());
    for p in &privates {
        p.fill(t as u8 + 1);
    }
    let mut published = None;
    let scratch = PinnedBuf::new(64).unwrap();
    let (src_r, dst_r, scratch_r) = (src.region(), dst.region(), scratch.region());
    let base = t * RANGE;
    let mut last_seed = 0;
    let mut neighbour_hits = 0;

    let mut iter = 0;
    while iter < MAX_ITERS && (iter < MIN_ITERS || Instant::now() < deadline) {
        let seed = ((t as u64) << 32) | iter as u64;
        let data = pattern(seed, RANGE);
        src.write(0, &data).unwrap();
        dst.fill(0);

        // Local handles over both buffers, a fresh connection to the shared segment.
        let h_src = node.create_localmemory_handle(ctrl, src_r.clone()).unwrap();
        let h_dst = node.create_localmemory_handle(ctrl, dst_r.clone()).unwrap();
        let imp = node
            .import_connect(ctrl, node.node_id(), shared_id, Permission::RDWR)
            .unwrap();

        // putv own range: 16 chunks, mixed HANDLE / VA, in a rotated order.
        let put: Vec<IoVec<'_, MemRegion>> = (0..16)
            .map(|k| {
                let c = (k + iter) % 16;
                if k % 2 == 0 {
                    IoVec::handle(h_src, c * CHUNK, base + c * CHUNK, CHUNK)
                } else {
                    IoVec::va(&src_r, c * CHUNK, base + c * CHUNK, CHUNK)
                }
            })
            .collect();
        let mut sg = ScatGath::new(imp, &put);
        assert_eq!(node.putv(&mut sg), Ok(()), "thread {t} putv");
        assert_eq!(sg.io_residual_count, 0);

        // getv it back, the other way round (VA first).
        let get: Vec<IoVec<'_, MemRegion>> = (0..16)
            .map(|c| {
                if c % 2 == 0 {
                    IoVec::va(&dst_r, c * CHUNK, base + c * CHUNK, CHUNK)
                } else {
                    IoVec::handle(h_dst, c * CHUNK, base + c * CHUNK, CHUNK)
                }
            })
            .collect();
        let mut sg = ScatGath::new(imp, &get);
        assert_eq!(node.getv(&mut sg), Ok(()), "thread {t} getv");
        assert_eq!(sg.io_residual_count, 0);
        assert_bytes(
            &dst.to_vec(),
            &data,
            &format!("thread {t} iteration {iter}"),
        );
        last_seed = seed;

        assert_eq!(node.import_disconnect(imp), Ok(()));
        assert_eq!(node.free_localmemory_handle(ctrl, h_src), Ok(()));
        assert_eq!(node.free_localmemory_handle(ctrl, h_dst), Ok(()));

        // Read the neighbour's private segment, which it may withdraw at any moment.
        let theirs = private_ids[(t + 1) % THREADS].load(SeqCst);
        if theirs != 0 {
            match node.import_connect(ctrl, node.node_id(), theirs, Permission::READ) {
                Ok(imp) => {
                    let iov = [IoVec::va(&scratch_r, 0, 100, 64)];
                    let mut sg = ScatGath::new(imp, &iov);
                    match node.getv(&mut sg) {
                        Ok(()) => {
                            assert_eq!(sg.io_residual_count, 0);
                            let owner = ((t + 1) % THREADS) as u8 + 1;
                            assert_eq!(scratch.to_vec(), vec![owner; 64], "neighbour's bytes");
                            neighbour_hits += 1;
                        }
                        Err(e) => {
                            assert_eq!(e, RsmError::ConnAborted, "getv from a withdrawn segment");
                            assert_eq!(sg.io_residual_count, 1);
                        }
                    }
                    assert_eq!(node.import_disconnect(imp), Ok(()));
                }
                Err(e) => assert_eq!(e, RsmError::SegNotPublished, "connect to {theirs:#x}"),
            }
        }

        // Replace this thread's private segment: withdraw the previous one (unpublish then
        // destroy, or destroy while published), then create, publish (automatic id) and
        // advertise a new one, which stays published until the next iteration.
        if let Some(old) = published.take() {
            private_ids[t].store(0, SeqCst);
            if iter % 3 != 0 {
                assert_eq!(node.export_unpublish(old), Ok(()));
            }
            assert_eq!(node.export_destroy(old), Ok(()));
        }
        let seg = node
            .export_create(ctrl, privates[iter % 2].region(), CreateFlags::empty())
            .unwrap();
        let id = node.export_publish(seg, 0, &[]).unwrap();
        assert!(id >= 0x8000_0000, "automatic id {id:#x}");
        private_ids[t].store(id, SeqCst);
        published = Some(seg);
        iter += 1;
    }
    if let Some(old) = published {
        private_ids[t].store(0, SeqCst);
        assert_eq!(node.export_destroy(old), Ok(()));
    }
    assert_eq!(node.release_controller(ctrl), Ok(()));
    (last_seed, neighbour_hits)
}

#[test]
fn four_threads_share_one_node() {
    with_watchdog("four_threads_share_one_node", || {
        let node = new_node();
        let ctrl = node.get_controller(Some("rsmnet0")).unwrap();
        let shared = PinnedBuf::new(THREADS * RANGE).unwrap();
        let (seg, shared_id, imp) = export_and_connect(&node, ctrl, &shared, CreateFlags::empty());
        let private_ids: [AtomicU32; THREADS] = Default::default();
        let deadline = Instant::now() + BUDGET;

        let results: Vec<(u64, usize)> = thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (node, ids) = (&node, &private_ids);
                    s.spawn(move || worker(node, t, shared_id, ids, deadline))
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });

        let hits: Vec<usize> = results.iter().map(|r| r.1).collect();
        let iters: Vec<u64> = results.iter().map(|r| (r.0 & 0xFFFF_FFFF) + 1).collect();
        eprintln!("iterations per thread {iters:?}; reads of a neighbour's segment {hits:?}");
        // Every thread's range holds exactly the last pattern it wrote.
        let bytes = shared.to_vec();
        for (t, &(seed, _)) in results.iter().enumerate() {
            assert_bytes(
                &bytes[t * RANGE..(t + 1) * RANGE],
                &pattern(seed, RANGE),
                &format!("thread {t}'s range of the shared segment"),
            );
        }
        assert_eq!(
            node.slots_in_use(),
            (0, 1, 1),
            "only the shared segment is left"
        );
        assert_eq!(node.import_disconnect(imp), Ok(()));
        assert_eq!(node.export_destroy(seg), Ok(()));
        assert_eq!(node.release_controller(ctrl), Ok(()));
        assert_eq!(node.slots_in_use(), (0, 0, 0));
        assert_eq!(node.platform().pinned_pages(), 0);
    });
}

// ------------------------------------------------------------------------------------------
// spec §9.9: free racing with putv on the same handle.
// ------------------------------------------------------------------------------------------

#[test]
fn free_waits_for_putv_in_flight_then_the_handle_is_bad_sgio() {
    with_watchdog("free_vs_putv", || {
        const LEN: usize = 1 << 20;
        const ROUNDS: usize = 8;
        const SOURCE: u8 = 0x11;
        const AFTER_FREE: u8 = 0xEE;
        let node = new_node();
        let ctrl = node.get_controller(Some("rsmnet0")).unwrap();
        let seg_buf = PinnedBuf::new(LEN).unwrap();
        let (seg, _, imp) = export_and_connect(&node, ctrl, &seg_buf, CreateFlags::empty());
        let seg_pages = node.platform().pinned_pages();
        let src = PinnedBuf::new(LEN).unwrap();

        for round in 0..ROUNDS {
            seg_buf.fill(0);
            src.fill(SOURCE);
            let h: LocalMemHandle = node.create_localmemory_handle(ctrl, src.region()).unwrap();
            // 16 entries of 1 MiB each: 16 MiB per putv, so a free easily lands mid-transfer.
            let iov = [IoVec::<MemRegion>::handle(h, 0, 0, LEN); 16];
            let calls = AtomicUsize::new(0);
            let freed = AtomicBool::new(false);
            thread::scope(|s| {
                s.spawn(|| {
                    let mut after_free = 0;
                    for _ in 0..100_000 {
                        let was_freed = freed.load(SeqCst);
                        calls.fetch_add(1, SeqCst);
                        let mut sg = ScatGath::new(imp, &iov);
                        let r = node.putv(&mut sg);
                        if was_freed {
                            // Started after the free returned: the handle is gone.
                            assert_eq!(
                                r,
                                Err(RsmError::BadSgio),
                                "putv after free (round {round})"
                            );
                            assert_eq!(sg.io_residual_count, 16);
                            after_free += 1;
                            if after_free == 3 {
                                return;
                            }
                        } else {
                            assert!(
                                r == Ok(()) || r == Err(RsmError::BadSgio),
                                "putv racing a free: {r:?}"
                            );
                            let want = if r.is_ok() { 0 } else { 16 };
                            assert_eq!(sg.io_residual_count, want);
                            if r.is_err() {
                                // The free is under way; give the freeing thread the CPU.
                                thread::sleep(Duration::from_micros(50));
                            }
                        }
                    }
                    panic!("the freeing thread never finished (round {round})");
                });
                s.spawn(|| {
                    // Free while a transfer runs: wait until the putv thread made a call or
                    // two (varying per round), then free at once.
                    while calls.load(SeqCst) < 1 + round % 3 {
                        thread::yield_now();
                    }
                    assert_eq!(node.free_localmemory_handle(ctrl, h), Ok(()));
                    // The free returned, so no transfer reads the source any more: overwrite it.
                    src.fill(AFTER_FREE);
                    freed.store(true, SeqCst);
                });
            });
            let bytes = seg_buf.to_vec();
            if let Some(i) = bytes.iter().position(|&b| b != SOURCE && b != 0) {
                panic!(
                    "round {round}: segment byte {i} is {:#04x}: a putv read the source after \
                     free_localmemory_handle returned",
                    bytes[i]
                );
            }
            assert_eq!(
                node.platform().pinned_pages(),
                seg_pages,
                "the freed handle's pages are unpinned"
            );
            assert_eq!(
                node.free_localmemory_handle(ctrl, h),
                Err(RsmError::BadLocalmemHndl),
                "double free"
            );
        }
        assert_eq!(node.import_disconnect(imp), Ok(()));
        assert_eq!(node.export_destroy(seg), Ok(()));
        assert_eq!(node.release_controller(ctrl), Ok(()));
        assert_eq!(node.slots_in_use(), (0, 0, 0));
        assert_eq!(node.platform().pinned_pages(), 0);
    });
}

// ------------------------------------------------------------------------------------------
// spec §6.4: unpublish racing with putv.
// ------------------------------------------------------------------------------------------

#[test]
fn unpublish_racing_putv_then_no_more_writes() {
    with_watchdog("unpublish_vs_putv", || {
        const SEG: usize = 1 << 20;
        const SRC: usize = SEG + 64;
        let node = new_node();
        let ctrl = node.get_controller(Some("rsmnet0")).unwrap();
        let seg_buf = PinnedBuf::new(SEG).unwrap();
        let (seg, _, imp) = export_and_connect(&node, ctrl, &seg_buf, CreateFlags::empty());
        let src = PinnedBuf::new(SRC).unwrap();
        let h = node.create_localmemory_handle(ctrl, src.region()).unwrap();
        let src_r = src.region();
        // 16 entries of almost the whole segment (16 MiB per call, so the unpublish lands
        // mid-transfer), each from a different local offset of a position-dependent source:
        // every entry leaves different bytes behind, so a late write shows in a snapshot.
        let iov: Vec<IoVec<'_, MemRegion>> = (0..16)
            .map(|k| {
                let (local, remote, len) = (3 * k, k, SEG - 16);
                if k % 2 == 0 {
                    IoVec::handle(h, local, remote, len)
                } else {
                    IoVec::va(&src_r, local, remote, len)
                }
            })
            .collect();
        // Two source contents, alternated per call, so a complete late putv shows too.
        let sources = [pattern(0x0B_0001, SRC), pattern(0x0B_0002, SRC)];

        let calls = AtomicUsize::new(0);
        let unpublished = AtomicBool::new(false);
        let (snapshot, ok_before, aborted_after) = thread::scope(|s| {
            let putter = s.spawn(|| {
                let (mut ok, mut aborted_after) = (0, 0);
                for i in 0..100_000usize {
                    let after = unpublished.load(SeqCst);
                    src.write(0, &sources[i % 2]).unwrap();
                    calls.fetch_add(1, SeqCst);
                    let mut sg = ScatGath::new(imp, &iov);
                    let r = node.putv(&mut sg);
                    assert!(
                        r == Ok(()) || r == Err(RsmError::ConnAborted),
                        "putv racing unpublish: {r:?}"
                    );
                    if r.is_ok() {
                        assert!(!after, "putv succeeded after unpublish returned");
                        ok += 1;
                    } else {
                        assert_eq!(sg.io_residual_count, 16);
                    }
                    if after {
                        aborted_after += 1;
                        if aborted_after == 50 {
                            break;
                        }
                    }
                }
                (ok, aborted_after)
            });
            while calls.load(SeqCst) < 3 {
                thread::yield_now();
            }
            assert_eq!(node.export_unpublish(seg), Ok(()));
            // Transfers in flight have drained: from now on the segment must not change.
            let snapshot = seg_buf.to_vec();
            unpublished.store(true, SeqCst);
            let (ok, aborted_after) = putter.join().unwrap();
            (snapshot, ok, aborted_after)
        });
        assert!(
            ok_before >= 2,
            "putvs before the unpublish succeeded ({ok_before})"
        );
        assert_eq!(
            aborted_after, 50,
            "every putv after unpublish is RSMERR_CONN_ABORTED"
        );
        assert_bytes(
            &seg_buf.to_vec(),
            &snapshot,
            "segment changed after export_unpublish returned",
        );
        assert!(snapshot.iter().any(|&b| b != 0), "the putvs did write");

        assert_eq!(node.free_localmemory_handle(ctrl, h), Ok(()));
        assert_eq!(node.import_disconnect(imp), Ok(()));
        assert_eq!(node.export_destroy(seg), Ok(()));
        assert_eq!(node.release_controller(ctrl), Ok(()));
        assert_eq!(node.slots_in_use(), (0, 0, 0));
        assert_eq!(node.platform().pinned_pages(), 0);
    });
}

// ------------------------------------------------------------------------------------------
// spec §9.17: rebind racing with getv.
// ------------------------------------------------------------------------------------------

#[test]
fn rebind_racing_getv_sees_old_or_new_whole_entries() {
    with_watchdog("rebind_vs_getv", || {
        const SEG: usize = 64 * 1024;
        const ENTRY: usize = 64;
        const REBINDS: usize = 200;
        const OLD: u8 = 0xAA;
        const NEW: u8 = 0x55;
        let node = new_node();
        let ctrl = node.get_controller(Some("rsmnet0")).unwrap();
        let old = PinnedBuf::new(SEG).unwrap();
        let new = PinnedBuf::new(SEG).unwrap();
        old.fill(OLD);
        new.fill(NEW);
        let (seg, _, imp) = export_and_connect(&node, ctrl, &old, CreateFlags::ALLOW_REBIND);
        let dst = PinnedBuf::new(16 * ENTRY + 7).unwrap();
        let h = node.create_localmemory_handle(ctrl, dst.region()).unwrap();
        let dst_r = dst.region();

        let rebinding = AtomicBool::new(true);
        let (seen_old, seen_new) = thread::scope(|s| {
            let getter = s.spawn(|| {
                let (mut seen_old, mut seen_new) = (0usize, 0usize);
                let mut i = 0usize;
                while i < 50_000 && (i < 20 || rebinding.load(SeqCst)) {
                    dst.fill(0);
                    let iov: Vec<IoVec<'_, MemRegion>> = (0..16)
                        .map(|k| {
                            let remote = k * (SEG / 16) + (i * 7 + k) % 64;
                            if k % 2 == 0 {
                                IoVec::handle(h, k * ENTRY, remote, ENTRY)
                            } else {
                                IoVec::va(&dst_r, k * ENTRY, remote, ENTRY)
                            }
                        })
                        .collect();
                    let mut sg = ScatGath::new(imp, &iov);
                    assert_eq!(node.getv(&mut sg), Ok(()), "getv during rebinds");
                    assert_eq!(sg.io_residual_count, 0);
                    let bytes = dst.to_vec();
                    for (k, entry) in bytes.chunks(ENTRY).take(16).enumerate() {
                        if entry.iter().all(|&b| b == OLD) {
                            seen_old += 1;
                        } else if entry.iter().all(|&b| b == NEW) {
                            seen_new += 1;
                        } else {
                            panic!("getv {i} entry {k} mixes old and new buffers: {entry:02x?}");
                        }
                    }
                    i += 1;
                }
                (seen_old, seen_new)
            });
            for j in 0..REBINDS {
                let to = if j % 2 == 0 { &new } else { &old };
                assert_eq!(node.export_rebind(seg, to.region()), Ok(()), "rebind {j}");
            }
            rebinding.store(false, SeqCst);
            getter.join().unwrap()
        });
        assert!(seen_old + seen_new >= 20 * 16);

        // REBINDS is even: the segment is back on the old buffer.
        let iov = [IoVec::handle(h, 0, 1000, ENTRY)];
        let mut sg = ScatGath::new(imp, &iov);
        assert_eq!(node.getv(&mut sg), Ok(()));
        assert_eq!(dst.to_vec()[..ENTRY], [OLD; ENTRY]);
        eprintln!(
            "rebind vs getv: {seen_old} entries from the old buffer, {seen_new} from the new"
        );

        assert_eq!(node.free_localmemory_handle(ctrl, h), Ok(()));
        assert_eq!(node.import_disconnect(imp), Ok(()));
        assert_eq!(node.export_destroy(seg), Ok(()));
        assert_eq!(node.release_controller(ctrl), Ok(()));
        assert_eq!(node.slots_in_use(), (0, 0, 0));
        assert_eq!(node.platform().pinned_pages(), 0);
    });
}

/// Implicit sigposts from several threads: every successful putv rings the exporter exactly
/// once (spec §9.28), `flags` stays unchanged, and each thread's bytes land in its own range.
#[test]
fn implicit_sigpost_from_many_threads_counts_every_call() {
    with_watchdog("sigpost_counts", || {
        const CALLS: usize = 50;
        let node = new_node();
        let ctrl = node.get_controller(Some("rsmnet0")).unwrap();
        let seg_buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (seg, _, imp) = export_and_connect(&node, ctrl, &seg_buf, CreateFlags::empty());
        thread::scope(|s| {
            for t in 0..THREADS {
                let node = &node;
                s.spawn(move || {
                    let src = PinnedBuf::new(8).unwrap();
                    src.fill(t as u8 + 1);
                    let r = src.region();
                    let iov = [IoVec::va(&r, 0, t * 8, 8)];
                    for _ in 0..CALLS {
                        let mut sg = ScatGath::new(imp, &iov);
                        sg.flags = SgFlags::IMPLICIT_SIGPOST;
                        assert_eq!(node.putv(&mut sg), Ok(()));
                        assert_eq!(sg.flags, SgFlags::IMPLICIT_SIGPOST);
                    }
                });
            }
        });
        assert_eq!(
            node.export_pending_events(seg),
            Ok((THREADS * CALLS) as u32),
            "every implicit sigpost counted once"
        );
        for t in 0..THREADS {
            let mut b = [0u8; 8];
            seg_buf.read(t * 8, &mut b).unwrap();
            assert_eq!(b, [t as u8 + 1; 8]);
        }
        assert_eq!(node.import_disconnect(imp), Ok(()));
        assert_eq!(node.export_destroy(seg), Ok(()));
        assert_eq!(node.release_controller(ctrl), Ok(()));
        assert_eq!(node.slots_in_use(), (0, 0, 0));
    });
}
