//! Events (spec §4.9, §6.5, §9.3, §9.13, §9.14, §9.27, §9.28; §10 "Events").
//!
//! Every §10 Events case, plus rsm-rs's documented choices: export posts ring every connected
//! importer, force-disconnected imports (`RSMERR_CONN_ABORTED` / `POLLHUP`), racing waiters,
//! deadlines, poll descriptors over segments and ordinary descriptors, and the C-shaped NULL
//! cases.
//!
//! Time is the platform clock, which may be simulated (the fake platform: a wait with a
//! deadline jumps the clock straight to it, a wait without one blocks until a wake) or real
//! (it waits). Every check holds on both:
//!
//! * durations are measured on the platform clock, so "returned no earlier than its
//!   deadline" holds on a jumping clock as on a real one;
//! * "did not sleep" is an unchanged clock on a simulated clock ([`Needs::SIM_CLOCK`]) and
//!   less than [`NO_SLEEP_MAX_NS`] on a real one;
//! * a waiter that must be blocked while another thread acts ([`Needs::THREADS`]) waits with
//!   timeout −1 (a bounded wait cannot block on a jumping clock), and the acting thread
//!   bounds, in real time, how long it waits for the waiter to return.
//!
//! (These checks have no watchdog of their own: a waiter that is never woken hangs the run.)

use crate::{check, check_eq, fail, read_bytes, Fail, Harness, Must, Needs, Node, Outcome, Reg};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use rsm_core::capi;
use rsm_core::events::{PollFd, PollSource, POLLHUP, POLLIN, POLLNVAL, POLLRDNORM};
use rsm_core::{
    ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec, Permission, RsmError,
    ScatGath, SegmentId, SegmentRef, SgFlags, SigpostFlags, PAGE_SIZE,
};
use rsm_hal::{Clock, Instant};

crate::table! {
    wait_timeout_zero_without_event_is_timeout,
    three_posts_three_waits_fourth_times_out,
    no_accumulate_coalesces_with_pending_event,
    pollfd_held_blocks_destroy_and_disconnect,
    wait_pollfd_ordinary_fd_revents_pass_through,
    export_post_rings_every_importer_but_not_aborted_ones,
    post_on_force_disconnected_import_is_conn_aborted,
    invalid_handles_are_bad_seg_hndl,
    wait_on_destroyed_or_disconnected_segment_is_bad_seg_hndl,
    wait_on_aborted_import_consumes_pending_then_conn_aborted,
    wait_positive_timeout_runs_to_deadline_on_platform_clock,
    implicit_sigpost_from_putv_wakes_blocked_waiter: Needs::THREADS,
    wait_timeout_returns_no_earlier_than_deadline,
    racing_waiters_one_post_one_winner: Needs::THREADS,
    wait_pollfd_woken_by_post: Needs::THREADS,
    wait_pollfd_rechecks_ordinary_fds: Needs::THREADS,
    waiter_is_woken_when_its_segment_goes_away: Needs::THREADS,
    get_pollfd_requires_published_export_and_connected_import,
    wait_pollfd_two_segments_event_on_one,
    wait_pollfd_nval_hup_and_events_mask,
    wait_pollfd_ordinary_fd_recheck_interval_and_deadline: Needs::SIM_CLOCK,
    capi_null_and_argument_cases,
}

const NONE: SigpostFlags = SigpostFlags::empty();
const NO_ACC: SigpostFlags = SigpostFlags::NO_ACCUMULATE;
/// One millisecond in platform-clock nanoseconds.
const MS: u64 = 1_000_000;
/// On a real clock, the most a call that must not sleep may take: far below the shortest
/// deadline it could otherwise sleep to (250 ms), far above the work it does.
const NO_SLEEP_MAX_NS: u64 = 100 * MS;

/// Fail unless the platform clock did not sleep between `before` and `after`: unchanged on a
/// simulated clock ([`Needs::SIM_CLOCK`]), less than [`NO_SLEEP_MAX_NS`] later on a real one.
#[track_caller]
fn check_no_sleep<H: Harness>(h: &H, before: Instant, after: Instant, what: &str) -> Outcome {
    if h.supports().contains(Needs::SIM_CLOCK) {
        if after != before {
            return Err(Fail::new("the simulated clock did not move")
                .with(format_args!("{before:?} -> {after:?}: {what}")));
        }
    } else if after.nanos_since(before) >= NO_SLEEP_MAX_NS {
        return Err(Fail::new("no sleep on the real clock").with(format_args!(
            "took {} ns: {what}",
            after.nanos_since(before)
        )));
    }
    Ok(())
}

/// Import `id` of this node read-write through `ctrl`.
#[track_caller]
fn connect<H: Harness>(
    n: &Node<H>,
    ctrl: ControllerHandle,
    id: SegmentId,
) -> Result<ImportHandle, Fail> {
    Ok(n.import_connect(ctrl, n.node_id(), id, Permission::RDWR)?)
}

/// A node with one published export segment (over `mem`, one page) and one import connected
/// to it.
struct Fx<H: Harness> {
    n: Node<H>,
    mem: Reg<H>,
    ctrl: ControllerHandle,
    seg: ExportHandle,
    id: SegmentId,
    imp: ImportHandle,
}

impl<H: Harness> Fx<H> {
    fn new(h: &H) -> Result<Self, Fail> {
        let n = crate::node(h);
        let ctrl = n.get_controller(None)?;
        let mem = h.alloc(n.platform(), PAGE_SIZE)?;
        let seg = n.export_create(ctrl, mem.clone(), CreateFlags::empty())?;
        let id = n.export_publish(seg, 0, &[])?;
        let imp = connect::<H>(&n, ctrl, id)?;
        Ok(Fx {
            n,
            mem,
            ctrl,
            seg,
            id,
            imp,
        })
    }

    fn ex(&self) -> SegmentRef {
        SegmentRef::Export(self.seg)
    }

    fn im(&self) -> SegmentRef {
        SegmentRef::Import(self.imp)
    }

    fn now(&self) -> Instant {
        self.n.platform().now()
    }

    /// Consume every pending event of `seg` with timeout-0 waits; returns how many there were.
    #[track_caller]
    fn drain(&self, seg: SegmentRef) -> Result<u32, Fail> {
        let mut k = 0;
        while self.n.intr_signal_wait(seg, 0).is_ok() {
            k += 1;
            check!(k < 1000, "events never run out");
        }
        check_eq!(self.n.intr_signal_wait(seg, 0), Err(RsmError::Timeout));
        Ok(k)
    }
}

// ------------------------------------------------------------------------------------------
// §10 Events checklist
// ------------------------------------------------------------------------------------------

/// §10 Events / §4.9: wait with timeout 0 and no event → 42 (RSMERR_TIMEOUT), on an export and
/// an import handle, through the C layer and the typed API; the clock does not move.
fn wait_timeout_zero_without_event_is_timeout<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let before = f.now();
    for seg in [f.ex(), f.im()] {
        check_eq!(capi::rsm_intr_signal_wait(&f.n, seg.into_raw(), 0), 42);
        check_eq!(f.n.intr_signal_wait(seg, 0), Err(RsmError::Timeout));
    }
    check_no_sleep(h, before, f.now(), "timeout 0 must not sleep")?;
    Ok(())
}

/// §10 Events / §6.5: events accumulate — post ×3 on the import, then three waits on the
/// export succeed and the fourth times out. The same from the export side to the import.
fn three_posts_three_waits_fourth_times_out<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    for _ in 0..3 {
        check_eq!(capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0), 0);
    }
    check_eq!(f.n.export_pending_events(f.seg), Ok(3));
    for _ in 0..3 {
        check_eq!(capi::rsm_intr_signal_wait(&f.n, f.seg.into_raw(), 0), 0);
    }
    check_eq!(capi::rsm_intr_signal_wait(&f.n, f.seg.into_raw(), 0), 42);
    // Posting on the import rang the export only.
    check_eq!(f.n.intr_signal_wait(f.im(), 0), Err(RsmError::Timeout));

    for _ in 0..3 {
        f.n.intr_signal_post(f.ex(), NONE)?;
    }
    for _ in 0..3 {
        check_eq!(f.n.intr_signal_wait(f.im(), 0), Ok(()));
    }
    check_eq!(f.n.intr_signal_wait(f.im(), 0), Err(RsmError::Timeout));
    check_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));
    Ok(())
}

/// §10 Events / §9.3 (our choice; illumos ignores the flag): post, then post with
/// RSM_SIGPOST_NO_ACCUMULATE → the second is dropped: one wait succeeds, the next → 42. On an
/// empty target the flag still delivers the event.
fn no_accumulate_coalesces_with_pending_event<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    f.n.intr_signal_post(f.im(), NONE)?;
    check_eq!(
        capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), rsm_core::RSM_SIGPOST_NO_ACCUMULATE),
        0
    );
    check_eq!(f.n.export_pending_events(f.seg), Ok(1));
    check_eq!(f.n.intr_signal_wait(f.ex(), 0), Ok(()));
    check_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));

    // Nothing pending: a no-accumulate post is delivered.
    f.n.intr_signal_post(f.im(), NO_ACC)?;
    f.n.intr_signal_post(f.im(), NO_ACC)?;
    check_eq!(f.drain(f.ex())?, 1);

    // Unknown flag bits are ignored (0x4 is nothing; 0x1 is not a sigpost flag).
    check_eq!(
        capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0xFFFF_FFF5),
        0
    );
    check_eq!(
        capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0xFFFF_FFF5),
        0
    );
    check_eq!(f.drain(f.ex())?, 2, "bits without 0x2 must accumulate");
    Ok(())
}

/// §10 Events / §4.9, §9.13: while a poll descriptor is held, export destroy and import
/// disconnect fail with 34 (RSMERR_POLLFD_IN_USE); references nest; after the releases they
/// succeed.
fn pollfd_held_blocks_destroy_and_disconnect<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let mut pfd = PollFd::other(-1, 0);
    check_eq!(
        capi::rsm_memseg_get_pollfd(&f.n, f.seg.into_raw(), Some(&mut pfd)),
        0
    );
    check_eq!(pfd.fd, PollSource::Segment(f.ex()));
    check_eq!((pfd.events, pfd.revents), (POLLRDNORM, 0));
    let ipfd = f.n.get_pollfd(f.im())?;
    let ipfd2 = f.n.get_pollfd(f.im())?;
    check_eq!(ipfd, ipfd2);

    check_eq!(capi::rsm_memseg_import_disconnect(&f.n, f.imp), 34);
    f.n.release_pollfd(f.im())?;
    check_eq!(
        f.n.import_disconnect(f.imp),
        Err(RsmError::PollfdInUse),
        "two references need two releases"
    );
    check_eq!(capi::rsm_memseg_release_pollfd(&f.n, f.imp.into_raw()), 0);
    check_eq!(capi::rsm_memseg_import_disconnect(&f.n, f.imp), 0);

    // Unpublish is not blocked (§9.13: only destroy and disconnect check).
    check_eq!(f.n.export_unpublish(f.seg), Ok(()));
    check_eq!(capi::rsm_memseg_export_destroy(&f.n, f.seg), 34);
    check_eq!(f.n.release_pollfd(f.ex()), Ok(()));
    // A count already 0: release succeeds and changes nothing (illumos).
    check_eq!(f.n.release_pollfd(f.ex()), Ok(()));
    check_eq!(capi::rsm_memseg_export_destroy(&f.n, f.seg), 0);
    let _ = f.id;
    f.n.release_controller(f.ctrl)?;
    check_eq!(f.n.slots_in_use(), (0, 0, 0));
    Ok(())
}

/// §10 Events / §4.9: wait_pollfd with an ordinary fd passes its revents through unchanged
/// (even bits not asked for); the callback gets the fd and events; a negative fd is ignored
/// as poll(2) does.
fn wait_pollfd_ordinary_fd_revents_pass_through<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let mut fds = [PollFd::other(7, POLLIN), PollFd::other(-3, POLLIN)];
    fds[1].revents = 0x55; // stale value: must be cleared
    let mut calls: heapless::Vec<(i32, i16), 8> = heapless::Vec::new();
    let mut num = 99;
    let rc =
        capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), |fd, ev| {
            // More calls than room: the comparison below fails on the length.
            let _ = calls.push((fd, ev));
            POLLIN | 0x0004 | 0x0100
        });
    check_eq!(rc, 0);
    check_eq!(num, 1);
    check_eq!(calls.as_slice(), [(7, POLLIN)].as_slice());
    check_eq!(fds[0].revents, POLLIN | 0x0004 | 0x0100);
    check_eq!(fds[1].revents, 0);

    // Not ready → 42 and *numfdsp zeroed.
    let mut num = 99;
    let rc =
        capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), |_, _| 0);
    check_eq!((rc, num), (42, 0));
    check_eq!(fds[0].revents, 0, "revents are cleared first");
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Post
// ------------------------------------------------------------------------------------------

/// §4.9 / §6.5: a post on an export handle rings every importer once; an import that was
/// force-disconnected (unpublish, §6.4) is not rung and its wait says 40.
fn export_post_rings_every_importer_but_not_aborted_ones<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let imp2 = connect::<H>(&f.n, f.ctrl, f.id)?;
    f.n.intr_signal_post(f.ex(), NONE)?;
    check_eq!(f.drain(f.im())?, 1);
    check_eq!(f.drain(SegmentRef::Import(imp2))?, 1);
    check_eq!(
        f.drain(f.ex())?,
        0,
        "an export post does not ring the export"
    );

    // No-accumulate is decided per target.
    f.n.intr_signal_post(f.im(), NONE)?; // rings the export, not the imports
    f.n.intr_signal_post(SegmentRef::Import(imp2), NONE)?;
    check_eq!(f.drain(f.ex())?, 2);
    f.n.intr_signal_post(f.ex(), NONE)?;
    check_eq!(f.n.intr_signal_wait(f.im(), 0), Ok(()));
    f.n.intr_signal_post(f.ex(), NO_ACC)?;
    check_eq!(f.drain(f.im())?, 1, "imp had none pending: rung");
    check_eq!(
        f.drain(SegmentRef::Import(imp2))?,
        1,
        "imp2 had one: coalesced"
    );

    // Abort both, republish, connect a third: only the third is rung.
    f.n.export_unpublish(f.seg)?;
    check_eq!(
        f.n.intr_signal_post(f.ex(), NONE),
        Ok(()),
        "unpublished: nothing to ring"
    );
    let id = f.n.export_publish(f.seg, 0, &[])?;
    let imp3 = connect::<H>(&f.n, f.ctrl, id)?;
    f.n.intr_signal_post(f.ex(), NONE)?;
    check_eq!(f.drain(SegmentRef::Import(imp3))?, 1);
    check_eq!(f.n.intr_signal_wait(f.im(), 0), Err(RsmError::ConnAborted));
    check_eq!(
        f.n.intr_signal_wait(SegmentRef::Import(imp2), 0),
        Err(RsmError::ConnAborted)
    );
    Ok(())
}

/// §4.9 / §6.4: a post on a force-disconnected import → 40 (RSMERR_CONN_ABORTED), also after
/// the exporter destroyed the segment; nothing is rung.
fn post_on_force_disconnected_import_is_conn_aborted<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    f.n.export_unpublish(f.seg)?;
    check_eq!(capi::rsm_intr_signal_post(&f.n, f.imp.into_raw(), 0), 40);
    check_eq!(f.n.export_pending_events(f.seg), Ok(0));
    // Republishing does not revive the old connection.
    f.n.export_publish(f.seg, 0, &[])?;
    check_eq!(
        f.n.intr_signal_post(f.im(), NONE),
        Err(RsmError::ConnAborted)
    );
    f.n.export_destroy(f.seg)?;
    check_eq!(
        f.n.intr_signal_post(f.im(), NONE),
        Err(RsmError::ConnAborted)
    );
    // The aborted import can still be disconnected; afterwards its handle is invalid.
    f.n.import_disconnect(f.imp)?;
    check_eq!(
        f.n.intr_signal_post(f.im(), NONE),
        Err(RsmError::BadSegHndl)
    );
    Ok(())
}

/// §4.9, §9.7: NULL, stale, destroyed/disconnected and wrong-kind handles → 5
/// (RSMERR_BAD_SEG_HNDL) for every event call.
fn invalid_handles_are_bad_seg_hndl<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let other = crate::node(h);
    let foreign_ctrl = other.get_controller(None)?;
    let foreign_mem = h.alloc(other.platform(), PAGE_SIZE)?;
    let foreign = other.export_create(foreign_ctrl, foreign_mem, CreateFlags::empty())?;
    let bad: [u64; 4] = [
        0,
        f.ctrl.into_raw(),    // a controller handle
        foreign.into_raw(),   // another node instance's export
        f.seg.into_raw() ^ 1, // another index
    ];
    for raw in bad {
        check_eq!(capi::rsm_intr_signal_post(&f.n, raw, 0), 5, "{raw:#x}");
        check_eq!(capi::rsm_intr_signal_wait(&f.n, raw, 0), 5, "{raw:#x}");
        check_eq!(capi::rsm_intr_signal_wait(&f.n, raw, -1), 5, "{raw:#x}");
        let mut pfd = PollFd::other(0, 0);
        check_eq!(
            capi::rsm_memseg_get_pollfd(&f.n, raw, Some(&mut pfd)),
            5,
            "{raw:#x}"
        );
        check_eq!(pfd, PollFd::other(0, 0), "fd untouched on failure");
        check_eq!(capi::rsm_memseg_release_pollfd(&f.n, raw), 5, "{raw:#x}");
    }
    // An export handle classified as import (wrong kind through the typed API).
    let wrong = SegmentRef::Import(ImportHandle::from_raw(f.seg.into_raw()));
    check_eq!(f.n.intr_signal_post(wrong, NONE), Err(RsmError::BadSegHndl));
    check_eq!(f.n.intr_signal_wait(wrong, 0), Err(RsmError::BadSegHndl));
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Wait
// ------------------------------------------------------------------------------------------

/// §4.9, §9.7: wait on a destroyed export or a disconnected import → 5, even with a pending
/// event and with timeout −1 (no sleep).
fn wait_on_destroyed_or_disconnected_segment_is_bad_seg_hndl<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    f.n.intr_signal_post(f.ex(), NONE)?; // the import has one pending
    f.n.intr_signal_post(f.im(), NONE)?; // the export has one pending
    f.n.import_disconnect(f.imp)?;
    check_eq!(capi::rsm_intr_signal_wait(&f.n, f.imp.into_raw(), -1), 5);
    f.n.export_destroy(f.seg)?;
    check_eq!(capi::rsm_intr_signal_wait(&f.n, f.seg.into_raw(), -1), 5);
    check_eq!(f.n.intr_signal_wait(f.ex(), 100), Err(RsmError::BadSegHndl));
    Ok(())
}

/// §4.9 (our choice, documented on `intr_signal_wait`): a force-disconnected import still
/// hands out the events it received before, then says 40 instead of waiting for ever.
fn wait_on_aborted_import_consumes_pending_then_conn_aborted<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    f.n.intr_signal_post(f.ex(), NONE)?;
    f.n.intr_signal_post(f.ex(), NONE)?;
    f.n.export_unpublish(f.seg)?;
    let before = f.now();
    check_eq!(f.n.intr_signal_wait(f.im(), -1), Ok(()));
    check_eq!(f.n.intr_signal_wait(f.im(), 0), Ok(()));
    check_eq!(capi::rsm_intr_signal_wait(&f.n, f.imp.into_raw(), -1), 40);
    check_no_sleep(h, before, f.now(), "no sleep")?;
    // An unpublished export may still be waited on (its importers are gone): timeout.
    check_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));
    Ok(())
}

/// §4.9, §9.27: a positive timeout is a deadline on the platform clock (the fake clock jumps
/// to it): no event → 42, and the clock has reached the deadline.
fn wait_positive_timeout_runs_to_deadline_on_platform_clock<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let t0 = f.now();
    check_eq!(f.n.intr_signal_wait(f.ex(), 250), Err(RsmError::Timeout));
    let t1 = f.now();
    check!(t1 >= t0.add_millis(250), "returned before the deadline");
    // A pending event returns at once, whatever the timeout.
    f.n.intr_signal_post(f.im(), NONE)?;
    check_eq!(f.n.intr_signal_wait(f.ex(), 250), Ok(()));
    check_no_sleep(h, t1, f.now(), "a pending event returns at once")?;
    Ok(())
}

/// §10 putv "implicit sigpost wakes the exporter exactly once" / §9.28: a waiter blocked with
/// timeout −1 is woken by putv with RSM_IMPLICIT_SIGPOST; exactly one event was delivered.
fn implicit_sigpost_from_putv_wakes_blocked_waiter<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let p = f.n.platform();
    let src = h.alloc(p, 16)?;
    h.write(p, &src, 0, b"doorbell")?;
    h.concurrently(
        &|| {
            check_eq!(f.n.intr_signal_wait(f.ex(), -1), Ok(()));
            Ok(())
        },
        &|| {
            h.sleep_ms(30); // let it block
            let iov = [IoVec::va(&src, 0, 0, 8)];
            let mut sg = ScatGath::new(f.imp, &iov);
            sg.flags = SgFlags::IMPLICIT_SIGPOST;
            let r = f.n.putv(&mut sg);
            if r.is_err() {
                // Release the waiter, so that the failure is reported instead of a hang.
                let _ = f.n.intr_signal_post(f.im(), NONE);
            }
            r?;
            Ok(())
        },
    )?;
    check_eq!(
        f.n.intr_signal_wait(f.ex(), 0),
        Err(RsmError::Timeout),
        "exactly one event"
    );
    let got = read_bytes(h, p, &f.mem, 0, 8)?;
    check_eq!(got.as_slice(), b"doorbell".as_slice());
    Ok(())
}

/// §4.9: a waiter with timeout 200 ms and no event returns 42, and not before 200 ms have
/// passed on the platform clock (wall time on a real clock; a jump on a simulated one).
fn wait_timeout_returns_no_earlier_than_deadline<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    for seg in [f.ex(), f.im()] {
        let t0 = f.now();
        check_eq!(f.n.intr_signal_wait(seg, 200), Err(RsmError::Timeout));
        let took = f.now().nanos_since(t0);
        check!(took >= 200 * MS, "returned after {took} ns");
    }
    Ok(())
}

/// What one racing waiter got: unset, `Ok`, `RSMERR_TIMEOUT`, anything else.
const UNSET: u8 = 0;
const GOT_OK: u8 = 1;
const GOT_TIMEOUT: u8 = 2;
const GOT_OTHER: u8 = 3;

/// §9.27: two threads wait, one post → exactly one returns Ok and the other
/// RSMERR_TIMEOUT (after its deadline: the loser does not return early when the winner took
/// the event).
///
/// In two steps, each valid on a simulated clock (where a wait with a deadline never blocks:
/// it jumps the clock) as on a real one: (1) both waiters blocked with −1, one post → exactly
/// one returns (Ok) and the other keeps waiting (a second post releases it); (2) two waiters
/// with a 400 ms timeout race for one pending event → one Ok, one RSMERR_TIMEOUT no earlier
/// than 400 ms after it started (platform clock).
fn racing_waiters_one_post_one_winner<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;

    // (1) Both blocked, one post.
    let returned = AtomicUsize::new(0);
    let oks = AtomicUsize::new(0);
    let seen = AtomicUsize::new(usize::MAX);
    let seen_oks = AtomicUsize::new(usize::MAX);
    let blocked = || -> Outcome {
        let r = f.n.intr_signal_wait(f.ex(), -1);
        if r.is_ok() {
            oks.fetch_add(1, SeqCst);
        }
        returned.fetch_add(1, SeqCst);
        check_eq!(r, Ok(()));
        Ok(())
    };
    let poster = || -> Outcome {
        h.sleep_ms(50); // both blocked
        let r = f.n.intr_signal_post(f.im(), NONE);
        // The winner returns (at most 2 s), then a second winner would have 50 ms.
        let mut waited = 0;
        while returned.load(SeqCst) == 0 && waited < 2000 {
            h.sleep_ms(5);
            waited += 5;
        }
        h.sleep_ms(50);
        seen.store(returned.load(SeqCst), SeqCst);
        seen_oks.store(oks.load(SeqCst), SeqCst);
        // Release the loser (and, after a failed post, the winner).
        let r2 = f.n.intr_signal_post(f.im(), NONE);
        if r.is_err() {
            let _ = f.n.intr_signal_post(f.im(), NONE);
        }
        r?;
        r2?;
        Ok(())
    };
    h.concurrently(&|| h.concurrently(&blocked, &blocked), &poster)?;
    check_eq!(
        (seen.load(SeqCst), seen_oks.load(SeqCst)),
        (1, 1),
        "one post: exactly one waiter returns, the other keeps waiting"
    );
    check_eq!((returned.load(SeqCst), oks.load(SeqCst)), (2, 2));
    check_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));

    // (2) Bounded waiters, one event.
    let got = [AtomicU8::new(UNSET), AtomicU8::new(UNSET)];
    let took = [AtomicU64::new(0), AtomicU64::new(0)];
    let bounded = |i: usize| -> Outcome {
        let t0 = f.now();
        let r = f.n.intr_signal_wait(f.ex(), 400);
        let dt = f.now().nanos_since(t0);
        let code = match r {
            Ok(()) => GOT_OK,
            Err(RsmError::Timeout) => GOT_TIMEOUT,
            Err(_) => GOT_OTHER,
        };
        got.get(i).must()?.store(code, SeqCst);
        took.get(i).must()?.store(dt, SeqCst);
        Ok(())
    };
    f.n.intr_signal_post(f.im(), NONE)?;
    h.concurrently(&|| bounded(0), &|| bounded(1))?;
    let got = got.each_ref().map(|g| g.load(SeqCst));
    let took = took.each_ref().map(|t| t.load(SeqCst));
    let oks = got.iter().filter(|&&g| g == GOT_OK).count();
    let timeouts = got.iter().filter(|&&g| g == GOT_TIMEOUT).count();
    check_eq!(
        (oks, timeouts),
        (1, 1),
        "results {got:?} (1 = Ok, 2 = Timeout, 3 = other), took {took:?} ns"
    );
    let loser = got.iter().position(|&g| g == GOT_TIMEOUT).must()?;
    let loser_took = *took.get(loser).must()?;
    check!(
        loser_took >= 400 * MS,
        "loser returned early: results {got:?}, took {took:?} ns"
    );
    Ok(())
}

/// §4.9: wait_pollfd blocked with −1 is woken by a post; the event is consumed and reported
/// as POLLRDNORM.
fn wait_pollfd_woken_by_post<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let pfd = f.n.get_pollfd(f.ex())?;
    h.concurrently(
        &|| {
            let mut fds = [pfd];
            let r = f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0);
            let [e] = fds;
            check_eq!((r, e.revents), (Ok(1), POLLRDNORM));
            Ok(())
        },
        &|| {
            h.sleep_ms(30);
            f.n.intr_signal_post(f.im(), NONE)?;
            Ok(())
        },
    )?;
    check_eq!(f.n.intr_signal_wait(f.ex(), 0), Err(RsmError::Timeout));
    f.n.release_pollfd(f.ex())?;
    Ok(())
}

/// §4.9: an ordinary descriptor that becomes ready while wait_pollfd sleeps with −1 is
/// noticed (re-checked every 10 ms; it cannot wake the sleeper).
///
/// It becomes ready after 60 ms of real time (another thread) once 60 ms have also passed on
/// the platform clock since the wait began (at once on a real clock; a simulated one is moved
/// by the sleeper's 10 ms slices).
fn wait_pollfd_rechecks_ordinary_fds<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let pfd = f.n.get_pollfd(f.ex())?;
    let ready = AtomicBool::new(false);
    let start = AtomicU64::new(u64::MAX);
    h.concurrently(
        &|| {
            let mut fds = [pfd, PollFd::other(3, POLLIN)];
            let t0 = f.now();
            start.store(t0.0, SeqCst);
            let r = f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| {
                if ready.load(SeqCst) {
                    POLLIN
                } else {
                    0
                }
            });
            let took = f.now().nanos_since(t0);
            check_eq!(r, Ok(1));
            let [seg, other] = fds;
            check_eq!((seg.revents, other.revents), (0, POLLIN));
            check!(took >= 60 * MS, "{took} ns");
            Ok(())
        },
        &|| {
            h.sleep_ms(60);
            // At most 5 s more: the waiter may have failed and stopped moving the clock.
            for _ in 0..5000 {
                let t0 = start.load(SeqCst);
                if t0 != u64::MAX && f.now() >= Instant(t0).add_millis(60) {
                    break;
                }
                h.sleep_ms(1);
            }
            ready.store(true, SeqCst);
            Ok(())
        },
    )?;
    f.n.release_pollfd(f.ex())?;
    Ok(())
}

/// How long a waiter may take to notice that its segment went away (the original deadline of
/// its wait was twice this).
const PROMPT_MS: u64 = 1500;

/// §4.9, §6.4 (needs `import_disconnect` / `export_unpublish` / `export_destroy` to wake
/// waiters): a waiter blocked on an import that is disconnected returns 5, on an import whose
/// exporter unpublishes returns 40, on an export that is destroyed returns 5 — each promptly,
/// not at its deadline.
///
/// The waiters block with −1 (a wait with a deadline does not block on a simulated clock);
/// "promptly" is under 1.5 s both on the platform clock (as measured by each waiter) and in
/// real time (as waited for by the thread that removes the segments, which wakes everyone
/// and fails when a waiter is late, instead of hanging).
fn waiter_is_woken_when_its_segment_goes_away<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let id = f.n.export_segment_id(f.seg)?.must()?;
    let imp2 = connect::<H>(&f.n, f.ctrl, id)?;
    // A spare pair: posting on it wakes every sleeper of the platform (the rescue).
    let spare_mem = h.alloc(f.n.platform(), PAGE_SIZE)?;
    let spare = f.n.export_create(f.ctrl, spare_mem, CreateFlags::empty())?;
    let spare_id = f.n.export_publish(spare, 0, &[])?;
    let spare_imp = connect::<H>(&f.n, f.ctrl, spare_id)?;

    let done = [
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicBool::new(false),
    ];
    let wait = |s: SegmentRef, i: usize, want: RsmError, what: &str| -> Outcome {
        let t0 = f.now();
        let r = f.n.intr_signal_wait(s, -1);
        let took = f.now().nanos_since(t0);
        done.get(i).must()?.store(true, SeqCst);
        check_eq!(r, Err(want), "{what}");
        check!(took < PROMPT_MS * MS, "{what}: woken late: {took} ns");
        Ok(())
    };
    // Wait (real time) for waiter `i` to return.
    let returned = |i: usize| -> bool {
        let mut waited = 0;
        while waited < PROMPT_MS {
            if done.get(i).is_some_and(|d| d.load(SeqCst)) {
                return true;
            }
            h.sleep_ms(5);
            waited += 5;
        }
        false
    };
    let remove = || -> Outcome {
        h.sleep_ms(50);
        let steps = || -> Outcome {
            f.n.import_disconnect(f.imp)?;
            if !returned(0) {
                fail!("disconnect: woken late (over {PROMPT_MS} ms)");
            }
            f.n.export_unpublish(f.seg)?;
            if !returned(1) {
                fail!("unpublish: woken late (over {PROMPT_MS} ms)");
            }
            f.n.export_destroy(f.seg)?;
            if !returned(2) {
                fail!("destroy: woken late (over {PROMPT_MS} ms)");
            }
            Ok(())
        };
        let r = steps();
        if r.is_err() {
            // Release every waiter: ring the live segments, then wake everyone.
            let _ = f.n.intr_signal_post(SegmentRef::Export(f.seg), NONE);
            let _ = f.n.intr_signal_post(SegmentRef::Import(imp2), NONE);
            let _ = f.n.import_disconnect(f.imp);
            let _ = f.n.export_unpublish(f.seg);
            let _ = f.n.export_destroy(f.seg);
            let _ = f.n.intr_signal_post(SegmentRef::Import(spare_imp), NONE);
        }
        r
    };
    h.concurrently(
        &|| {
            h.concurrently(
                &|| wait(f.im(), 0, RsmError::BadSegHndl, "disconnect"),
                &|| {
                    wait(
                        SegmentRef::Import(imp2),
                        1,
                        RsmError::ConnAborted,
                        "unpublish",
                    )
                },
            )
        },
        &|| {
            h.concurrently(
                &|| wait(f.ex(), 2, RsmError::BadSegHndl, "destroy"),
                &remove,
            )
        },
    )?;
    f.n.import_disconnect(imp2)?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Poll descriptors
// ------------------------------------------------------------------------------------------

/// §9.14 (our choice: enforce the documented preconditions): get_pollfd on an unpublished
/// export or a force-disconnected import → 5; nothing is counted (destroy/disconnect work).
fn get_pollfd_requires_published_export_and_connected_import<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let n = crate::node(h);
    let ctrl = n.get_controller(None)?;
    let mem = h.alloc(n.platform(), PAGE_SIZE)?;
    let unpublished = n.export_create(ctrl, mem, CreateFlags::empty())?;
    let mut pfd = PollFd::other(0, 0);
    check_eq!(
        capi::rsm_memseg_get_pollfd(&n, unpublished.into_raw(), Some(&mut pfd)),
        5
    );
    check_eq!(
        n.export_destroy(unpublished),
        Ok(()),
        "no reference was taken"
    );

    f.n.export_unpublish(f.seg)?;
    check_eq!(f.n.get_pollfd(f.im()), Err(RsmError::BadSegHndl));
    check_eq!(f.n.get_pollfd(f.ex()), Err(RsmError::BadSegHndl));
    check_eq!(f.n.import_disconnect(f.imp), Ok(()));
    check_eq!(f.n.export_destroy(f.seg), Ok(()));
    Ok(())
}

/// §4.9: wait_pollfd over two segment descriptors with an event on one → returns 1, that
/// entry POLLRDNORM, the other 0, and the event was consumed.
fn wait_pollfd_two_segments_event_on_one<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let mut fds = [f.n.get_pollfd(f.ex())?, f.n.get_pollfd(f.im())?];
    f.n.intr_signal_post(f.ex(), NONE)?; // rings the import
    let mut num = 0;
    check_eq!(
        capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), |_, _| 0),
        0
    );
    check_eq!(num, 1);
    check_eq!((fds[0].revents, fds[1].revents), (0, POLLRDNORM));
    check_eq!(
        f.n.intr_signal_wait(f.im(), 0),
        Err(RsmError::Timeout),
        "consumed"
    );

    // Both rung, two events on the export: each call consumes one per readable entry.
    f.n.intr_signal_post(f.ex(), NONE)?;
    f.n.intr_signal_post(f.im(), NONE)?;
    f.n.intr_signal_post(f.im(), NONE)?;
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(2));
    check_eq!((fds[0].revents, fds[1].revents), (POLLRDNORM, POLLRDNORM));
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(1));
    check_eq!((fds[0].revents, fds[1].revents), (POLLRDNORM, 0));
    check_eq!(
        f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0),
        Err(RsmError::Timeout)
    );
    check_eq!((fds[0].revents, fds[1].revents), (0, 0));
    f.n.release_pollfd(f.ex())?;
    f.n.release_pollfd(f.im())?;
    Ok(())
}

/// §4.9 (poll(2) semantics; our choices for entries that cannot become readable): a segment
/// entry whose handle is invalid gets POLLNVAL, a force-disconnected import with no event
/// gets POLLHUP — both count as ready, whatever was asked for; an entry not asking for
/// POLLRDNORM (POLLIN only) is never readable and its event stays pending.
fn wait_pollfd_nval_hup_and_events_mask<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let seg_entry = |s: SegmentRef, events: i16| PollFd {
        fd: PollSource::Segment(s),
        events,
        revents: 0,
    };
    // POLLIN only: not readable → timeout, event kept.
    f.n.intr_signal_post(f.im(), NONE)?;
    let mut fds = [seg_entry(f.ex(), POLLIN)];
    check_eq!(
        f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0),
        Err(RsmError::Timeout)
    );
    check_eq!(f.n.export_pending_events(f.seg), Ok(1));

    // Invalid handle → POLLNVAL, with a pending event elsewhere consumed in the same call.
    let stale = SegmentRef::Import(ImportHandle::NULL);
    let mut fds = [seg_entry(stale, POLLRDNORM), seg_entry(f.ex(), POLLRDNORM)];
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(2));
    check_eq!((fds[0].revents, fds[1].revents), (POLLNVAL, POLLRDNORM));
    check_eq!(f.n.export_pending_events(f.seg), Ok(0));

    // Aborted import: its pending event first (POLLRDNORM), then POLLHUP (not a hang).
    let pfd = f.n.get_pollfd(f.im())?;
    f.n.intr_signal_post(f.ex(), NONE)?;
    f.n.export_unpublish(f.seg)?;
    let mut fds = [pfd];
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(1));
    check_eq!(fds[0].revents, POLLRDNORM);
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(1));
    check_eq!(fds[0].revents, POLLHUP);
    fds[0].events = 0;
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(1));
    check_eq!(fds[0].revents, POLLHUP, "reported whatever was asked for");
    // Release works on the aborted import, then it can be disconnected → POLLNVAL.
    f.n.release_pollfd(f.im())?;
    f.n.import_disconnect(f.imp)?;
    check_eq!(f.n.intr_signal_wait_pollfd(&mut fds, 0, |_, _| 0), Ok(1));
    check_eq!(fds[0].revents, POLLNVAL);
    Ok(())
}

/// Room for the re-check stamps of a 100 ms wait (10 ms slices: about 11).
const STAMPS_MAX: usize = 256;

/// §4.9: with an ordinary descriptor present, wait_pollfd re-checks it at least every 10 ms
/// of platform time (fake clock: each slice jumps it) and gives up at the deadline → 42.
///
/// Needs a simulated clock: on a real one each slice ends a little after its 10 ms.
fn wait_pollfd_ordinary_fd_recheck_interval_and_deadline<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    let mut fds = [f.n.get_pollfd(f.ex())?, PollFd::other(5, POLLIN)];
    let t0 = f.now();
    let mut stamps: heapless::Vec<Instant, STAMPS_MAX> = heapless::Vec::new();
    let mut overflow = false;
    let r = f.n.intr_signal_wait_pollfd(&mut fds, 100, |_, _| {
        overflow |= stamps.push(f.now()).is_err();
        0
    });
    check_eq!(r, Err(RsmError::Timeout));
    check!(f.now() >= t0.add_millis(100));
    check!(!overflow, "over {STAMPS_MAX} checks in 100 ms");
    check!(stamps.len() >= 10, "only {} checks in 100 ms", stamps.len());
    for w in stamps.windows(2) {
        let [a, b] = w else {
            fail!("a window of {} stamps", w.len());
        };
        check!(b.nanos_since(*a) <= 10_000_000, "gap over 10 ms");
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
    check_eq!((r, k), (Ok(1), 4));
    f.n.release_pollfd(f.ex())?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// C layer NULL and argument cases
// ------------------------------------------------------------------------------------------

/// §4.9 C layer: get_pollfd NULL memseg → 5 before NULL fd → 16 (our choice: BAD_ADDR);
/// wait_pollfd NULL fds with nfds > 0 → 16 (poll's EFAULT), nfds beyond the array → 117
/// (RSMERR_BAD_ARGS_ERRORS, poll's EINVAL), `*numfdsp` zeroed first; NULL fds with nfds 0
/// waits out the timeout → 42; NULL numfdsp is fine.
fn capi_null_and_argument_cases<H: Harness>(h: &H) -> Outcome {
    let f = Fx::new(h)?;
    check_eq!(capi::rsm_memseg_get_pollfd(&f.n, 0, None), 5);
    check_eq!(
        capi::rsm_memseg_get_pollfd(&f.n, f.imp.into_raw(), None),
        16
    );
    check_eq!(
        capi::rsm_memseg_get_pollfd(&f.n, f.seg.into_raw(), None),
        16
    );
    check_eq!(capi::rsm_memseg_release_pollfd(&f.n, 0), 5);
    check_eq!(capi::rsm_intr_signal_post(&f.n, 0, 0), 5);
    check_eq!(capi::rsm_intr_signal_wait(&f.n, 0, 0), 5);

    let mut fds = [PollFd::other(1, POLLIN); 2];
    let mut num = 7;
    let ready = |_: i32, _: i16| POLLIN;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, None, 1, 0, Some(&mut num), ready);
    check_eq!((rc, num), (16, 0));
    num = 7;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 3, 0, Some(&mut num), ready);
    check_eq!((rc, num), (117, 0));
    num = 7;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, None, 0, 0, Some(&mut num), ready);
    check_eq!((rc, num), (42, 0));
    // nfds counts entries: only the first is polled.
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 1, 0, None, ready);
    check_eq!(rc, 0);
    check_eq!((fds[0].revents, fds[1].revents), (POLLIN, 0));
    num = 7;
    let rc = capi::rsm_intr_signal_wait_pollfd(&f.n, Some(&mut fds), 2, 0, Some(&mut num), ready);
    check_eq!((rc, num), (0, 2));

    // The failed get_pollfd calls took no reference.
    check_eq!(capi::rsm_memseg_import_disconnect(&f.n, f.imp), 0);
    check_eq!(capi::rsm_memseg_export_destroy(&f.n, f.seg), 0);
    Ok(())
}
