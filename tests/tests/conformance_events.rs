//! RSMAPI conformance: events (spec §4.9, §6.5, §9.3, §9.13, §9.14, §9.27, §9.28; §10
//! "Events").
//!
//! Every §10 Events case, plus rsm-rs's documented choices: export posts ring every connected
//! importer, force-disconnected imports (`RSMERR_CONN_ABORTED` / `POLLHUP`), racing waiters,
//! deadlines, poll descriptors over segments and ordinary descriptors, and the C-shaped NULL
//! cases. Deterministic cases run on [`FakePlatform`] (simulated clock: a wait with a deadline
//! jumps the clock to it); wake-ups and real time on [`HostPlatform`] with threads, each under
//! a watchdog.

use rsm_core::capi;
use rsm_core::events::{PollFd, PollSource, POLLHUP, POLLIN, POLLNVAL, POLLRDNORM};
use rsm_core::{
    Config, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec, Permission, Rsm,
    RsmError, ScatGath, SegmentId, SegmentRef, SgFlags, SigpostFlags, PAGE_SIZE,
};
use rsm_hal::fake::FakePlatform;
use rsm_hal::Clock;
use rsm_host::{HostPlatform, PinnedBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

type Node = Rsm<FakePlatform>;
type HostNode = Rsm<HostPlatform>;

const NONE: SigpostFlags = SigpostFlags::empty();
const NO_ACC: SigpostFlags = SigpostFlags::NO_ACCUMULATE;
/// A host test that has not finished after this long is deadlocked.
const WATCHDOG: Duration = Duration::from_secs(5);

/// A node with one published export segment and one import connected to it.
struct Fx {
    n: Node,
    ctrl: ControllerHandle,
    seg: ExportHandle,
    id: SegmentId,
    imp: ImportHandle,
}

impl Fx {
    fn new() -> Fx {
        let n: Node = Rsm::new(FakePlatform::new(), Config::default());
        let ctrl = n.get_controller(None).unwrap();
        let mem = n.platform().alloc(PAGE_SIZE);
        let seg = n.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
        let id = n.export_publish(seg, 0, &[]).unwrap();
        let imp = n.connect(ctrl, id);
        Fx {
            n,
            ctrl,
            seg,
            id,
            imp,
        }
    }

    fn ex(&self) -> SegmentRef {
        SegmentRef::Export(self.seg)
    }

    fn im(&self) -> SegmentRef {
        SegmentRef::Import(self.imp)
    }

    /// Consume every pending event of `seg` with timeout-0 waits; returns how many there were.
    fn drain(&self, seg: SegmentRef) -> u32 {
        let mut k = 0;
        while self.n.intr_signal_wait(seg, 0).is_ok() {
            k += 1;
            assert!(k < 1000, "events never run out");
        }
        assert_eq!(self.n.intr_signal_wait(seg, 0), Err(RsmError::Timeout));
        k
    }
}

trait Connect {
    fn connect(&self, ctrl: ControllerHandle, id: SegmentId) -> ImportHandle;
}

impl<P: rsm_hal::Platform> Connect for Rsm<P> {
    fn connect(&self, ctrl: ControllerHandle, id: SegmentId) -> ImportHandle {
        self.import_connect(ctrl, self.node_id(), id, Permission::RDWR)
            .unwrap()
    }
}

/// Run `body` on its own thread; fail if it panics or has not finished within [`WATCHDOG`].
fn with_watchdog(name: &str, body: impl FnOnce() + Send + 'static) {
    rsm_tests::with_watchdog(name, WATCHDOG, body);
}

/// A host node with one published export over `buf` and one import connected to it.
fn host_fx(buf: &PinnedBuf) -> (Arc<HostNode>, ControllerHandle, ExportHandle, ImportHandle) {
    let n: Arc<HostNode> = Arc::new(Rsm::new(HostPlatform::new(), Config::default()));
    let ctrl = n.get_controller(None).unwrap();
    let seg = n
        .export_create(ctrl, buf.region(), CreateFlags::empty())
        .unwrap();
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let imp = n.connect(ctrl, id);
    (n, ctrl, seg, imp)
}

// ------------------------------------------------------------------------------------------
// §10 Events checklist
// ------------------------------------------------------------------------------------------

/// §10 Events / §4.9: wait with timeout 0 and no event → 42 (RSMERR_TIMEOUT), on an export and
/// an import handle, through the C layer and the typed API; the clock does not move.
#[test]
fn wait_timeout_zero_without_event_is_timeout() {
    let f = Fx::new();
    let before = f.n.platform().now();
    for seg in [f.ex(), f.im()] {
        assert_eq!(capi::rsm_intr_signal_wait(&f.n, seg.into_raw(), 0), 42);
        assert_eq!(f.n.intr_signal_wait(seg, 0), Err(RsmError::Timeout));
    }
    assert_eq!(f.n.platform().now(), before, "timeout 0 must not sleep");
}

/// §10 Events / §6.5: events accumulate — post ×3 on the import, then three waits on the
/// export succeed and the fourth times out. The same from the export side to the import.
#[test]
fn three_posts_three_waits_fourth_times_out() {
    let f = Fx::new();
    for _ in 0..3 {
        assert_eq!(capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0), 0);
    }
    assert_eq!(f.n.export_pending_events(f.seg), Ok(3));
    for _ in 0..3 {
        assert_eq!(capi::rsm_intr_signal_wait(&f.n, f.seg.into_raw(), 0), 0);
    }
    assert_eq!(capi::rsm_intr_signal_wait(&f.n, f.seg.into_raw(), 0), 42);
    // Posting on the import rang the export only.
    assert_eq!(f.n.intr_signal_wait(f.im(), 0), Err(RsmError::Timeout));

    for _ in 0..3 {
        f.n.intr_signal_post(f.ex(), NONE).unwrap();
    }
    for _ in 0..3 {
        assert_eq!(f.n.intr_signal_wait(f.im(), 0), Ok(()));
    }
    assert_eq!(f.n.intr_signal_wait(f.im(), 0), Err(RsmError::Timeout));
    assert_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));
}

/// §10 Events / §9.3 (our choice; illumos ignores the flag): post, then post with
/// RSM_SIGPOST_NO_ACCUMULATE → the second is dropped: one wait succeeds, the next → 42. On an
/// empty target the flag still delivers the event.
#[test]
fn no_accumulate_coalesces_with_pending_event() {
    let f = Fx::new();
    f.n.intr_signal_post(f.im(), NONE).unwrap();
    assert_eq!(
        capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), rsm_core::RSM_SIGPOST_NO_ACCUMULATE),
        0
    );
    assert_eq!(f.n.export_pending_events(f.seg), Ok(1));
    assert_eq!(f.n.intr_signal_wait(f.ex(), 0), Ok(()));
    assert_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));

    // Nothing pending: a no-accumulate post is delivered.
    f.n.intr_signal_post(f.im(), NO_ACC).unwrap();
    f.n.intr_signal_post(f.im(), NO_ACC).unwrap();
    assert_eq!(f.drain(f.ex()), 1);

    // Unknown flag bits are ignored (0x4 is nothing; 0x1 is not a sigpost flag).
    assert_eq!(
        capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0xFFFF_FFF5),
        0
    );
    assert_eq!(
        capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0xFFFF_FFF5),
        0
    );
    assert_eq!(f.drain(f.ex()), 2, "bits without 0x2 must accumulate");
}

/// §10 Events / §4.9, §9.13: while a poll descriptor is held, export destroy and import
/// disconnect fail with 34 (RSMERR_POLLFD_IN_USE); references nest; after the releases they
/// succeed.
#[test]
fn pollfd_held_blocks_destroy_and_disconnect() {
    let f = Fx::new();
    let mut pfd = PollFd::other(-1, 0);
    assert_eq!(
        capi::rsm_memseg_get_pollfd(&f.n, f.seg.into_raw(), Some(&mut pfd)),
        0
    );
    assert_eq!(pfd.fd, PollSource::Segment(f.ex()));
    assert_eq!((pfd.events, pfd.revents), (POLLRDNORM, 0));
    let ipfd = f.n.get_pollfd(f.im()).unwrap();
    let ipfd2 = f.n.get_pollfd(f.im()).unwrap();
    assert_eq!(ipfd, ipfd2);

    assert_eq!(capi::rsm_memseg_import_disconnect(&f.n, f.imp), 34);
    f.n.release_pollfd(f.im()).unwrap();
    assert_eq!(
        f.n.import_disconnect(f.imp),
        Err(RsmError::PollfdInUse),
        "two references need two releases"
    );
    assert_eq!(capi::rsm_memseg_release_pollfd(&f.n, f.imp.into_raw()), 0);
    assert_eq!(capi::rsm_memseg_import_disconnect(&f.n, f.imp), 0);

    // Unpublish is not blocked (§9.13: only destroy and disconnect check).
    assert_eq!(f.n.export_unpublish(f.seg), Ok(()));
    assert_eq!(capi::rsm_memseg_export_destroy(&f.n, f.seg), 34);
    assert_eq!(f.n.release_pollfd(f.ex()), Ok(()));
    // A count already 0: release succeeds and changes nothing (illumos).
    assert_eq!(f.n.release_pollfd(f.ex()), Ok(()));
    assert_eq!(capi::rsm_memseg_export_destroy(&f.n, f.seg), 0);
    let _ = f.id;
    f.n.release_controller(f.ctrl).unwrap();
    assert_eq!(f.n.slots_in_use(), (0, 0, 0));
}

/// §10 Events / §4.9: wait_pollfd with an ordinary fd passes its revents through unchanged
/// (even bits not asked for); the callback gets the fd and events; a negative fd is ignored
/// as poll(2) does.
#[test]
fn wait_pollfd_ordinary_fd_revents_pass_through() {
    let f = Fx::new();
    let mut fds = [PollFd::other(7, POLLIN), PollFd::other(-3, POLLIN)];
    fds[1].revents = 0x55; // stale value: must be cleared
    let mut calls = Vec::new();
    let mut num = 99;
    let rc =
        capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), |fd, ev| {
            calls.push((fd, ev));
            POLLIN | 0x0004 | 0x0100
        });
    assert_eq!(rc, 0);
    assert_eq!(num, 1);
    assert_eq!(calls, [(7, POLLIN)]);
    assert_eq!(fds[0].revents, POLLIN | 0x0004 | 0x0100);
    assert_eq!(fds[1].revents, 0);

    // Not ready → 42 and *numfdsp zeroed.
    let mut num = 99;
    let rc =
        capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), |_, _| 0);
    assert_eq!((rc, num), (42, 0));
    assert_eq!(fds[0].revents, 0, "revents are cleared first");
}

// ------------------------------------------------------------------------------------------
// Post
// ------------------------------------------------------------------------------------------

/// §4.9 / §6.5: a post on an export handle rings every importer once; an import that was
/// force-disconnected (unpublish, §6.4) is not rung and its wait says 40.
#[test]
fn export_post_rings_every_importer_but_not_aborted_ones() {
    let f = Fx::new();
    let imp2 = f.n.connect(f.ctrl, f.id);
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    assert_eq!(f.drain(f.im()), 1);
    assert_eq!(f.drain(SegmentRef::Import(imp2)), 1);
    assert_eq!(
        f.drain(f.ex()),
        0,
        "an export post does not ring the export"
    );

    // No-accumulate is decided per target.
    f.n.intr_signal_post(f.im(), NONE).unwrap(); // rings the export, not the imports
    f.n.intr_signal_post(SegmentRef::Import(imp2), NONE)
        .unwrap();
    assert_eq!(f.drain(f.ex()), 2);
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    assert_eq!(f.n.intr_signal_wait(f.im(), 0), Ok(()));
    f.n.intr_signal_post(f.ex(), NO_ACC).unwrap();
    assert_eq!(f.drain(f.im()), 1, "imp had none pending: rung");
    assert_eq!(
        f.drain(SegmentRef::Import(imp2)),
        1,
        "imp2 had one: coalesced"
    );

    // Abort both, republish, connect a third: only the third is rung.
    f.n.export_unpublish(f.seg).unwrap();
    assert_eq!(
        f.n.intr_signal_post(f.ex(), NONE),
        Ok(()),
        "unpublished: nothing to ring"
    );
    let id = f.n.export_publish(f.seg, 0, &[]).unwrap();
    let imp3 = f.n.connect(f.ctrl, id);
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    assert_eq!(f.drain(SegmentRef::Import(imp3)), 1);
    assert_eq!(f.n.intr_signal_wait(f.im(), 0), Err(RsmError::ConnAborted));
    assert_eq!(
        f.n.intr_signal_wait(SegmentRef::Import(imp2), 0),
        Err(RsmError::ConnAborted)
    );
}

/// §4.9 / §6.4: a post on a force-disconnected import → 40 (RSMERR_CONN_ABORTED), also after
/// the exporter destroyed the segment; nothing is rung.
#[test]
fn post_on_force_disconnected_import_is_conn_aborted() {
    let f = Fx::new();
    f.n.export_unpublish(f.seg).unwrap();
    assert_eq!(capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0), 40);
    assert_eq!(f.n.export_pending_events(f.seg), Ok(0));
    // Republishing does not revive the old connection.
    f.n.export_publish(f.seg, 0, &[]).unwrap();
    assert_eq!(
        f.n.intr_signal_post(f.im(), NONE),
        Err(RsmError::ConnAborted)
    );
    f.n.export_destroy(f.seg).unwrap();
    assert_eq!(
        f.n.intr_signal_post(f.im(), NONE),
        Err(RsmError::ConnAborted)
    );
    // The aborted import can still be disconnected; afterwards its handle is invalid.
    f.n.import_disconnect(f.imp).unwrap();
    assert_eq!(
        f.n.intr_signal_post(f.im(), NONE),
        Err(RsmError::BadSegHndl)
    );
}

/// §4.9, §9.7: NULL, stale, destroyed/disconnected and wrong-kind handles → 5
/// (RSMERR_BAD_SEG_HNDL) for every event call.
#[test]
fn invalid_handles_are_bad_seg_hndl() {
    let f = Fx::new();
    let other: Node = Rsm::new(FakePlatform::new(), Config::default());
    let foreign_ctrl = other.get_controller(None).unwrap();
    let foreign_mem = other.platform().alloc(PAGE_SIZE);
    let foreign = other
        .export_create(foreign_ctrl, foreign_mem, CreateFlags::empty())
        .unwrap();
    let bad: [u64; 4] = [
        0,
        f.ctrl.into_raw(),    // a controller handle
        foreign.into_raw(),   // another node instance's export
        f.seg.into_raw() ^ 1, // another index
    ];
    for raw in bad {
        assert_eq!(capi::rsm_intr_signal_post(&f.n, raw, 0), 5, "{raw:#x}");
        assert_eq!(capi::rsm_intr_signal_wait(&f.n, raw, 0), 5, "{raw:#x}");
        assert_eq!(capi::rsm_intr_signal_wait(&f.n, raw, -1), 5, "{raw:#x}");
        let mut pfd = PollFd::other(0, 0);
        assert_eq!(
            capi::rsm_memseg_get_pollfd(&f.n, raw, Some(&mut pfd)),
            5,
            "{raw:#x}"
        );
        assert_eq!(pfd, PollFd::other(0, 0), "fd untouched on failure");
        assert_eq!(capi::rsm_memseg_release_pollfd(&f.n, raw), 5, "{raw:#x}");
    }
    // An export handle classified as import (wrong kind through the typed API).
    let wrong = SegmentRef::Import(ImportHandle::from_raw(f.seg.into_raw()));
    assert_eq!(f.n.intr_signal_post(wrong, NONE), Err(RsmError::BadSegHndl));
    assert_eq!(f.n.intr_signal_wait(wrong, 0), Err(RsmError::BadSegHndl));
}

// ------------------------------------------------------------------------------------------
// Wait
// ------------------------------------------------------------------------------------------

/// §4.9, §9.7: wait on a destroyed export or a disconnected import → 5, even with a pending
/// event and with timeout −1 (no sleep).
#[test]
fn wait_on_destroyed_or_disconnected_segment_is_bad_seg_hndl() {
    let f = Fx::new();
    f.n.intr_signal_post(f.ex(), NONE).unwrap(); // the import has one pending
    f.n.intr_signal_post(f.im(), NONE).unwrap(); // the export has one pending
    f.n.import_disconnect(f.imp).unwrap();
    assert_eq!(capi::rsm_intr_signal_wait(&f.n, f.imp.into_raw(), -1), 5);
    f.n.export_destroy(f.seg).unwrap();
    assert_eq!(capi::rsm_intr_signal_wait(&f.n, f.seg.into_raw(), -1), 5);
    assert_eq!(f.n.intr_signal_wait(f.ex(), 100), Err(RsmError::BadSegHndl));
}

/// §4.9 (our choice, documented on `intr_signal_wait`): a force-disconnected import still
/// hands out the events it received before, then says 40 instead of waiting for ever.
#[test]
fn wait_on_aborted_import_consumes_pending_then_conn_aborted() {
    let f = Fx::new();
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    f.n.export_unpublish(f.seg).unwrap();
    let before = f.n.platform().now();
    assert_eq!(f.n.intr_signal_wait(f.im(), -1), Ok(()));
    assert_eq!(f.n.intr_signal_wait(f.im(), 0), Ok(()));
    assert_eq!(capi::rsm_intr_signal_wait(&f.n, f.imp.into_raw(), -1), 40);
    assert_eq!(f.n.platform().now(), before, "no sleep");
    // An unpublished export may still be waited on (its importers are gone): timeout.
    assert_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));
}

/// §4.9, §9.27: a positive timeout is a deadline on the platform clock (the fake clock jumps
/// to it): no event → 42, and the clock has reached the deadline.
#[test]
fn wait_positive_timeout_runs_to_deadline_on_platform_clock() {
    let f = Fx::new();
    let t0 = f.n.platform().now();
    assert_eq!(f.n.intr_signal_wait(f.ex(), 250), Err(RsmError::Timeout));
    let t1 = f.n.platform().now();
    assert!(t1 >= t0.add_millis(250), "returned before the deadline");
    // A pending event returns at once, whatever the timeout.
    f.n.intr_signal_post(f.im(), NONE).unwrap();
    assert_eq!(f.n.intr_signal_wait(f.ex(), 250), Ok(()));
    assert_eq!(f.n.platform().now(), t1);
}

/// §10 putv "implicit sigpost wakes the exporter exactly once" / §9.28 (host platform): a
/// waiter blocked with timeout −1 is woken by putv with RSM_IMPLICIT_SIGPOST; exactly one
/// event was delivered.
#[test]
fn implicit_sigpost_from_putv_wakes_blocked_waiter() {
    with_watchdog("implicit_sigpost", || {
        let buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (n, _ctrl, seg, imp) = host_fx(&buf);
        let started = Arc::new(Barrier::new(2));
        let waiter = {
            let (n, started) = (Arc::clone(&n), Arc::clone(&started));
            thread::spawn(move || {
                started.wait();
                n.intr_signal_wait(SegmentRef::Export(seg), -1)
            })
        };
        started.wait();
        thread::sleep(Duration::from_millis(30)); // let it block
        let src = PinnedBuf::new(16).unwrap();
        src.write(0, b"doorbell").unwrap();
        let region = src.region();
        let iov = [IoVec::va(&region, 0, 0, 8)];
        let mut sg = ScatGath::new(imp, &iov);
        sg.flags = SgFlags::IMPLICIT_SIGPOST;
        n.putv(&mut sg).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        assert_eq!(
            n.intr_signal_wait(SegmentRef::Export(seg), 0),
            Err(RsmError::Timeout),
            "exactly one event"
        );
        let mut got = [0u8; 8];
        buf.read(0, &mut got).unwrap();
        assert_eq!(&got, b"doorbell");
    });
}

/// §4.9 (host platform): a waiter with timeout 200 ms and no event returns 42, and not before
/// 200 ms of wall time have passed.
#[test]
fn wait_timeout_returns_no_earlier_than_deadline() {
    with_watchdog("timeout_200", || {
        let buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (n, _ctrl, seg, imp) = host_fx(&buf);
        for seg in [SegmentRef::Export(seg), SegmentRef::Import(imp)] {
            let t0 = Instant::now();
            assert_eq!(n.intr_signal_wait(seg, 200), Err(RsmError::Timeout));
            let took = t0.elapsed();
            assert!(
                took >= Duration::from_millis(200),
                "returned after {took:?}"
            );
        }
    });
}

/// §9.27 (host platform): two threads wait with a bounded timeout, one post → exactly one
/// returns Ok and the other RSMERR_TIMEOUT (after its deadline: the loser does not return
/// early when the winner took the event).
#[test]
fn racing_waiters_one_post_one_winner() {
    with_watchdog("racing_waiters", || {
        let buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (n, _ctrl, seg, imp) = host_fx(&buf);
        let started = Arc::new(Barrier::new(3));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (n, started) = (Arc::clone(&n), Arc::clone(&started));
                thread::spawn(move || {
                    started.wait();
                    let t0 = Instant::now();
                    let r = n.intr_signal_wait(SegmentRef::Export(seg), 400);
                    (r, t0.elapsed())
                })
            })
            .collect();
        started.wait();
        thread::sleep(Duration::from_millis(50)); // both blocked
        n.intr_signal_post(SegmentRef::Import(imp), NONE).unwrap();
        let results: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        let oks = results.iter().filter(|(r, _)| r.is_ok()).count();
        let timeouts: Vec<_> = results
            .iter()
            .filter(|(r, _)| *r == Err(RsmError::Timeout))
            .collect();
        assert_eq!((oks, timeouts.len()), (1, 1), "{results:?}");
        assert!(
            timeouts[0].1 >= Duration::from_millis(400),
            "loser returned early: {results:?}"
        );
    });
}

/// §4.9 (host platform): wait_pollfd blocked with −1 is woken by a post; the event is
/// consumed and reported as POLLRDNORM.
#[test]
fn wait_pollfd_woken_by_post() {
    with_watchdog("pollfd_woken", || {
        let buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (n, _ctrl, seg, imp) = host_fx(&buf);
        let pfd = n.get_pollfd(SegmentRef::Export(seg)).unwrap();
        let waiter = {
            let n = Arc::clone(&n);
            thread::spawn(move || {
                let mut fds = [pfd];
                let r = n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0);
                (r, fds[0].revents)
            })
        };
        thread::sleep(Duration::from_millis(30));
        n.intr_signal_post(SegmentRef::Import(imp), NONE).unwrap();
        assert_eq!(waiter.join().unwrap(), (Ok(1), POLLRDNORM));
        assert_eq!(
            n.intr_signal_wait(SegmentRef::Export(seg), 0),
            Err(RsmError::Timeout)
        );
        n.release_pollfd(SegmentRef::Export(seg)).unwrap();
    });
}

/// §4.9 (host platform): an ordinary descriptor that becomes ready while wait_pollfd sleeps
/// with −1 is noticed (re-checked every 10 ms; it cannot wake the sleeper).
#[test]
fn wait_pollfd_rechecks_ordinary_fds() {
    with_watchdog("pollfd_recheck", || {
        let buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (n, _ctrl, seg, _imp) = host_fx(&buf);
        let pfd = n.get_pollfd(SegmentRef::Export(seg)).unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let setter = {
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(60));
                ready.store(true, SeqCst);
            })
        };
        let mut fds = [pfd, PollFd::other(3, POLLIN)];
        let t0 = Instant::now();
        let r =
            n.intr_signal_wait_pollfd(
                &mut fds,
                -1,
                |_, _| {
                    if ready.load(SeqCst) {
                        POLLIN
                    } else {
                        0
                    }
                },
            );
        let took = t0.elapsed();
        setter.join().unwrap();
        assert_eq!(r, Ok(1));
        assert_eq!((fds[0].revents, fds[1].revents), (0, POLLIN));
        assert!(took >= Duration::from_millis(60), "{took:?}");
        n.release_pollfd(SegmentRef::Export(seg)).unwrap();
    });
}

/// §4.9, §6.4 (needs `import_disconnect` / `export_unpublish` / `export_destroy` to wake
/// waiters): a waiter blocked on an import that is disconnected returns 5, on an import whose
/// exporter unpublishes returns 40, on an export that is destroyed returns 5 — each promptly,
/// not at its deadline.
#[test]
fn waiter_is_woken_when_its_segment_goes_away() {
    with_watchdog("segment_goes_away", || {
        let buf = PinnedBuf::new(PAGE_SIZE).unwrap();
        let (n, ctrl, seg, imp) = host_fx(&buf);
        let id = n.export_segment_id(seg).unwrap().unwrap();
        let imp2 = n.connect(ctrl, id);
        let spawn_wait = |s: SegmentRef| {
            let n = Arc::clone(&n);
            thread::spawn(move || {
                let t0 = Instant::now();
                (n.intr_signal_wait(s, 3000), t0.elapsed())
            })
        };
        let prompt = Duration::from_millis(1500);
        let w_imp = spawn_wait(SegmentRef::Import(imp));
        let w_imp2 = spawn_wait(SegmentRef::Import(imp2));
        let w_seg = spawn_wait(SegmentRef::Export(seg));
        thread::sleep(Duration::from_millis(50));

        n.import_disconnect(imp).unwrap();
        let (r, took) = w_imp.join().unwrap();
        assert_eq!(r, Err(RsmError::BadSegHndl));
        assert!(took < prompt, "disconnect: woken late: {took:?}");

        n.export_unpublish(seg).unwrap();
        let (r, took) = w_imp2.join().unwrap();
        assert_eq!(r, Err(RsmError::ConnAborted));
        assert!(took < prompt, "unpublish: woken late: {took:?}");

        n.export_destroy(seg).unwrap();
        let (r, took) = w_seg.join().unwrap();
        assert_eq!(r, Err(RsmError::BadSegHndl));
        assert!(took < prompt, "destroy: woken late: {took:?}");
        n.import_disconnect(imp2).unwrap();
    });
}

// ------------------------------------------------------------------------------------------
// Poll descriptors
// ------------------------------------------------------------------------------------------

/// §9.14 (our choice: enforce the documented preconditions): get_pollfd on an unpublished
/// export or a force-disconnected import → 5; nothing is counted (destroy/disconnect work).
#[test]
fn get_pollfd_requires_published_export_and_connected_import() {
    let f = Fx::new();
    let n: Node = Rsm::new(FakePlatform::new(), Config::default());
    let ctrl = n.get_controller(None).unwrap();
    let mem = n.platform().alloc(PAGE_SIZE);
    let unpublished = n.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
    let mut pfd = PollFd::other(0, 0);
    assert_eq!(
        capi::rsm_memseg_get_pollfd(&n, unpublished.into_raw(), Some(&mut pfd)),
        5
    );
    assert_eq!(
        n.export_destroy(unpublished),
        Ok(()),
        "no reference was taken"
    );

    f.n.export_unpublish(f.seg).unwrap();
    assert_eq!(f.n.get_pollfd(f.im()), Err(RsmError::BadSegHndl));
    assert_eq!(f.n.get_pollfd(f.ex()), Err(RsmError::BadSegHndl));
    assert_eq!(f.n.import_disconnect(f.imp), Ok(()));
    assert_eq!(f.n.export_destroy(f.seg), Ok(()));
}

/// §4.9: wait_pollfd over two segment descriptors with an event on one → returns 1, that
/// entry POLLRDNORM, the other 0, and the event was consumed.
#[test]
fn wait_pollfd_two_segments_event_on_one() {
    let f = Fx::new();
    let mut fds = [
        f.n.get_pollfd(f.ex()).unwrap(),
        f.n.get_pollfd(f.im()).unwrap(),
    ];
    f.n.intr_signal_post(f.ex(), NONE).unwrap(); // rings the import
    let mut num = 0;
    assert_eq!(
        capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), |_, _| 0),
        0
    );
    assert_eq!(num, 1);
    assert_eq!((fds[0].revents, fds[1].revents), (0, POLLRDNORM));
    assert_eq!(
        f.n.intr_signal_wait(f.im(), 0),
        Err(RsmError::Timeout),
        "consumed"
    );

    // Both rung, two events on the export: each call consumes one per readable entry.
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    f.n.intr_signal_post(f.im(), NONE).unwrap();
    f.n.intr_signal_post(f.im(), NONE).unwrap();
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(2));
    assert_eq!((fds[0].revents, fds[1].revents), (POLLRDNORM, POLLRDNORM));
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(1));
    assert_eq!((fds[0].revents, fds[1].revents), (POLLRDNORM, 0));
    assert_eq!(
        f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0),
        Err(RsmError::Timeout)
    );
    assert_eq!((fds[0].revents, fds[1].revents), (0, 0));
    f.n.release_pollfd(f.ex()).unwrap();
    f.n.release_pollfd(f.im()).unwrap();
}

/// §4.9 (poll(2) semantics; our choices for entries that cannot become readable): a segment
/// entry whose handle is invalid gets POLLNVAL, a force-disconnected import with no event
/// gets POLLHUP — both count as ready, whatever was asked for; an entry not asking for
/// POLLRDNORM (POLLIN only) is never readable and its event stays pending.
#[test]
fn wait_pollfd_nval_hup_and_events_mask() {
    let f = Fx::new();
    let seg_entry = |s: SegmentRef, events: i16| PollFd {
        fd: PollSource::Segment(s),
        events,
        revents: 0,
    };
    // POLLIN only: not readable → timeout, event kept.
    f.n.intr_signal_post(f.im(), NONE).unwrap();
    let mut fds = [seg_entry(f.ex(), POLLIN)];
    assert_eq!(
        f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0),
        Err(RsmError::Timeout)
    );
    assert_eq!(f.n.export_pending_events(f.seg), Ok(1));

    // Invalid handle → POLLNVAL, with a pending event elsewhere consumed in the same call.
    let stale = SegmentRef::Import(ImportHandle::NULL);
    let mut fds = [seg_entry(stale, POLLRDNORM), seg_entry(f.ex(), POLLRDNORM)];
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(2));
    assert_eq!((fds[0].revents, fds[1].revents), (POLLNVAL, POLLRDNORM));
    assert_eq!(f.n.export_pending_events(f.seg), Ok(0));

    // Aborted import: its pending event first (POLLRDNORM), then POLLHUP (not a hang).
    let pfd = f.n.get_pollfd(f.im()).unwrap();
    f.n.intr_signal_post(f.ex(), NONE).unwrap();
    f.n.export_unpublish(f.seg).unwrap();
    let mut fds = [pfd];
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(1));
    assert_eq!(fds[0].revents, POLLRDNORM);
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(1));
    assert_eq!(fds[0].revents, POLLHUP);
    fds[0].events = 0;
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(1));
    assert_eq!(fds[0].revents, POLLHUP, "reported whatever was asked for");
    // Release works on the aborted import, then it can be disconnected → POLLNVAL.
    f.n.release_pollfd(f.im()).unwrap();
    f.n.import_disconnect(f.imp).unwrap();
    assert_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(1));
    assert_eq!(fds[0].revents, POLLNVAL);
}

/// §4.9: with an ordinary descriptor present, wait_pollfd re-checks it at least every 10 ms
/// of platform time (fake clock: each slice jumps it) and gives up at the deadline → 42.
#[test]
fn wait_pollfd_ordinary_fd_recheck_interval_and_deadline() {
    let f = Fx::new();
    let mut fds = [f.n.get_pollfd(f.ex()).unwrap(), PollFd::other(5, POLLIN)];
    let t0 = f.n.platform().now();
    let mut stamps = Vec::new();
    let r = f.n.intr_signal_wait_pollfd(&mut fds, 100, |_, _| {
        stamps.push(f.n.platform().now());
        0
    });
    assert_eq!(r, Err(RsmError::Timeout));
    assert!(f.n.platform().now() >= t0.add_millis(100));
    assert!(stamps.len() >= 10, "only {} checks in 100 ms", stamps.len());
    for w in stamps.windows(2) {
        assert!(w[1].nanos_since(w[0]) <= 10_000_000, "gap over 10 ms");
    }
    // Becomes ready on the 4th check.
    let mut k = 0;
    let r = f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| {
        k += 1;
        if k >= 4 {
            POLLIN
        } else {
            0
        }
    });
    assert_eq!((r, k), (Ok(1), 4));
    f.n.release_pollfd(f.ex()).unwrap();
}

// ------------------------------------------------------------------------------------------
// C layer NULL and argument cases
// ------------------------------------------------------------------------------------------

/// §4.9 C layer: get_pollfd NULL memseg → 5 before NULL fd → 16 (our choice: BAD_ADDR);
/// wait_pollfd NULL fds with nfds > 0 → 16 (poll's EFAULT), nfds beyond the array → 117
/// (RSMERR_BAD_ARGS_ERRORS, poll's EINVAL), `*numfdsp` zeroed first; NULL fds with nfds 0
/// waits out the timeout → 42; NULL numfdsp is fine.
#[test]
fn capi_null_and_argument_cases() {
    let f = Fx::new();
    assert_eq!(capi::rsm_memseg_get_pollfd(&f.n, 0, None), 5);
    assert_eq!(
        capi::rsm_memseg_get_pollfd(&f.n, f.imp.into_raw(), None),
        16
    );
    assert_eq!(
        capi::rsm_memseg_get_pollfd(&f.n, f.seg.into_raw(), None),
        16
    );
    assert_eq!(capi::rsm_memseg_release_pollfd(&f.n, 0), 5);
    assert_eq!(capi::rsm_intr_signal_post(&f.n, 0, 0), 5);
    assert_eq!(capi::rsm_intr_signal_wait(&f.n, 0, 0), 5);

    let mut fds = [PollFd::other(1, POLLIN); 2];
    let mut num = 7;
    let ready = |_: i32, _: i16| POLLIN;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, None, 1, 0, Some(&mut num), ready);
    assert_eq!((rc, num), (16, 0));
    num = 7;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 3, 0, Some(&mut num), ready);
    assert_eq!((rc, num), (117, 0));
    num = 7;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, None, 0, 0, Some(&mut num), ready);
    assert_eq!((rc, num), (42, 0));
    // nfds counts entries: only the first is polled.
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 1, 0, None, ready);
    assert_eq!(rc, 0);
    assert_eq!((fds[0].revents, fds[1].revents), (POLLIN, 0));
    num = 7;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), ready);
    assert_eq!((rc, num), (0, 2));

    // The failed get_pollfd calls took no reference.
    assert_eq!(capi::rsm_memseg_import_disconnect(&f.n, f.imp), 0);
    assert_eq!(capi::rsm_memseg_export_destroy(&f.n, f.seg), 0);
}
