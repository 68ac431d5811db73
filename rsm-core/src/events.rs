//! Events: doorbells between importers and exporters (spec §4.9, §6.5, §9.3, §9.13, §9.14,
//! §9.27).
//!
//! Every segment — export or import — has a pending-event counter. [`Rsm::intr_signal_post`]
//! on an import handle rings the exporting segment; on an export handle it rings every import
//! connected to it. [`Rsm::intr_signal_wait`] consumes exactly one pending event, sleeping up
//! to a timeout. An implicit sigpost of putv ([`crate::SgFlags::IMPLICIT_SIGPOST`]) rings the
//! exporter exactly like a post on the import handle.
//!
//! Poll descriptors have no file descriptors behind them here (there is no kernel): a
//! [`PollFd`] names either a segment ([`PollSource::Segment`], from [`Rsm::get_pollfd`]) or an
//! ordinary descriptor of the embedder ([`PollSource::Other`]), whose readiness
//! [`Rsm::intr_signal_wait_pollfd`] asks of a callback. The C layer maps `struct pollfd`
//! entries onto these one-to-one.

use crate::error::{RsmError, RsmResult};
use crate::handle::SegmentRef;
use crate::node::{Rsm, State};
use crate::op::OpId;
use crate::types::SigpostFlags;
use rsm_hal::{Instant, Platform};

/// `POLLIN` (Solaris value): data other than high-priority data may be read. Not reported for
/// segments, which report [`POLLRDNORM`] only (as illumos' `rsm_chpoll`).
pub const POLLIN: i16 = 0x0001;
/// `POLLHUP` (Solaris value): reported, whatever was asked for, on the poll descriptor of an
/// import that was force-disconnected and has no pending event left (our choice; see
/// [`Rsm::intr_signal_wait_pollfd`]).
pub const POLLHUP: i16 = 0x0010;
/// `POLLNVAL` (Solaris value): the descriptor is invalid — for a segment entry, its handle is
/// NULL, stale, destroyed or disconnected. Reported whatever was asked for, as poll(2) does.
pub const POLLNVAL: i16 = 0x0020;
/// `POLLRDNORM` (Solaris value): the segment has a pending event. [`Rsm::get_pollfd`] asks for
/// it; a segment entry is only reported readable if its `events` contain it.
pub const POLLRDNORM: i16 = 0x0040;

/// What a [`PollFd`] polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollSource {
    /// A segment's event counter (from [`Rsm::get_pollfd`]).
    Segment(SegmentRef),
    /// An ordinary descriptor of the embedder; its readiness comes from the callback given to
    /// [`Rsm::intr_signal_wait_pollfd`]. A negative value is ignored (revents 0), as poll(2)
    /// ignores negative descriptors.
    Other(i32),
}

/// A `struct pollfd` without a kernel: what to poll, the events asked for, and the events
/// reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PollFd {
    /// The segment or ordinary descriptor.
    pub fd: PollSource,
    /// Events asked for (`POLLRDNORM` for a segment).
    pub events: i16,
    /// Events reported by the last [`Rsm::intr_signal_wait_pollfd`].
    pub revents: i16,
}

impl PollFd {
    /// An entry for an ordinary descriptor `fd` asking for `events`.
    pub const fn other(fd: i32, events: i16) -> PollFd {
        PollFd {
            fd: PollSource::Other(fd),
            events,
            revents: 0,
        }
    }
}

/// How often ordinary descriptors are re-checked while [`Rsm::intr_signal_wait_pollfd`]
/// sleeps (their readiness does not wake us).
const OTHER_RECHECK_MS: u64 = 10;

/// Which counter a segment handle names, once validated.
#[derive(Clone, Copy)]
enum Slot {
    Export(u16, u32),
    Import(u16, u32),
}

/// Add one event to a doorbell counter (saturating), unless `coalesce` (no-accumulate, spec
/// §9.3) and an event is already pending. Shared by explicit posts and putv's implicit post.
pub(crate) fn ring(events: &mut u32, coalesce: bool) {
    if !(coalesce && *events > 0) {
        *events = events.saturating_add(1);
    }
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// The live slot behind `seg`, else `RSMERR_BAD_SEG_HNDL`.
    fn event_slot(&self, st: &State<P, L, E, I, F>, seg: SegmentRef) -> RsmResult<Slot> {
        match seg {
            SegmentRef::Export(h) => self.export_slot(st, h).map(|(i, g)| Slot::Export(i, g)),
            SegmentRef::Import(h) => self.import_slot(st, h).map(|(i, g)| Slot::Import(i, g)),
        }
    }

    /// The deadline `timeout_ms` milliseconds from now; negative = none (wait forever).
    fn deadline_after(&self, timeout_ms: i32) -> Option<Instant> {
        u64::try_from(timeout_ms)
            .ok()
            .map(|ms| self.platform.now().add_millis(ms))
    }

    /// Consume one event of the (validated) `slot` if one is pending. `None` = nothing to
    /// consume yet; `Some(Err(ConnAborted))` = an import that was force-disconnected and has no
    /// event left: it can never be rung again.
    fn take_event(st: &mut State<P, L, E, I, F>, slot: Slot) -> Option<RsmResult<()>> {
        match slot {
            Slot::Export(i, g) => {
                let ex = st.exports.get_mut(i, g)?;
                if ex.events > 0 {
                    ex.events -= 1;
                    return Some(Ok(()));
                }
                None
            }
            Slot::Import(i, g) => {
                let im = st.imports.get(i, g)?;
                let aborted = !st.import_alive(im);
                let im = st.imports.get_mut(i, g)?;
                if im.events > 0 {
                    im.events -= 1;
                    Some(Ok(()))
                } else if aborted {
                    Some(Err(im.lost()))
                } else {
                    None
                }
            }
        }
    }

    /// Signal (ring the doorbell of) the other side of a segment.
    ///
    /// * `seg` an import handle: one event for the exporting segment.
    /// * `seg` an export handle: one event for every import connected to it (each live,
    ///   not force-disconnected import of this segment). With no importer, or when the segment
    ///   is not published, there is nothing to ring and the call succeeds.
    ///
    /// Checks, in this order: NULL, stale, destroyed, disconnected or wrong-kind handle →
    /// `RSMERR_BAD_SEG_HNDL`; an import whose exporter unpublished or destroyed the segment
    /// (force-disconnected, spec §6.4) → `RSMERR_CONN_ABORTED`.
    ///
    /// `flags`: [`SigpostFlags::NO_ACCUMULATE`] drops the new event for a target that already
    /// has one pending (decided per target when ringing several importers). This is the
    /// documented meaning (spec §9.3); **illumos ignores the flag** and always accumulates.
    /// Without it, events accumulate: each post adds one to the target's counter (saturating
    /// at `u32::MAX`). Unknown flag bits are ignored. Waiters are woken after the post.
    ///
    /// On an import of a segment of another node the post is acknowledged: the call returns
    /// when the exporter answered the bell (the engine must be driven, as for [`Rsm::putv`]; see
    /// [`Rsm::start_intr_signal_post`] for the non-blocking form) and reports spec §4.9's
    /// delivery errors — `RSMERR_REMOTE_NODE_UNREACHABLE` when the exporter is (or is declared,
    /// at most [`crate::proto::UNREACHABLE_AFTER_NS`] after it last answered) unreachable,
    /// `RSMERR_CONN_ABORTED` when the import was force-disconnected or the exporter no longer
    /// has it. A `NO_ACCUMULATE` post behind a bell of the same import not yet sent succeeds
    /// at once without sending (the target will have that event pending, so it would drop
    /// this one: the event count is the same as on one node). On an export handle, bells to
    /// importers on other nodes are queued and not acknowledged (our choice: one unreachable
    /// importer must not fail a post to the others; an importer that becomes unreachable
    /// loses its import anyway) — the call does not wait.
    #[doc(alias = "rsm_intr_signal_post")]
    pub fn intr_signal_post(&self, seg: SegmentRef, flags: SigpostFlags) -> RsmResult<()> {
        let coalesce = flags.contains(SigpostFlags::NO_ACCUMULATE);
        let ring = |events: &mut u32| ring(events, coalesce);
        let waiters = {
            let mut st = self.state.lock();
            match self.event_slot(&st, seg)? {
                Slot::Import(i, g) => {
                    let im = st.imports.get(i, g).ok_or(RsmError::BadSegHndl)?;
                    if im.remote.is_some() {
                        let op = self.post_remote(&mut st, (i, g), coalesce)?;
                        drop(st);
                        return self.wait_op(op, None).result;
                    }
                    if st.connected_export(im).is_none() {
                        return Err(RsmError::ConnAborted);
                    }
                    let (ei, eg) = im.export;
                    let ex = st.exports.get_mut(ei, eg).ok_or(RsmError::ConnAborted)?;
                    ring(&mut ex.events);
                }
                Slot::Export(i, g) => {
                    let ex = st.exports.get(i, g).ok_or(RsmError::BadSegHndl)?;
                    if ex.published.is_some() {
                        self.post_remote_importers(&mut st, (i, g), coalesce);
                        let Some(epoch) = st.exports.get(i, g).map(|ex| ex.epoch) else {
                            return Err(RsmError::BadSegHndl);
                        };
                        for (_, _, im) in st.imports.iter_mut() {
                            if im.export == (i, g)
                                && im.epoch == epoch
                                && !im.aborted
                                && !im.closing
                            {
                                ring(&mut im.events);
                            }
                        }
                    }
                }
            }
            st.waiters > 0
        };
        self.wake_if(waiters);
        Ok(())
    }

    /// Start [`Rsm::intr_signal_post`] without waiting; collect the result with
    /// [`Rsm::take_completion`] (residual 0). Errors known at once are returned, as by the
    /// blocking call; a post that needs no answer (same node, an export handle) is done at
    /// once and its operation is already complete. Each pending post holds an operation slot
    /// ([`crate::MAX_PENDING_OPS`]): none free → `RSMERR_INSUFFICIENT_RESOURCES`.
    pub fn start_intr_signal_post(&self, seg: SegmentRef, flags: SigpostFlags) -> RsmResult<OpId> {
        use crate::op::{Completion, OpSlot};
        // Reserve the slot first, so that a full table fails before anything is rung.
        let (i, g) = {
            let mut st = self.state.lock();
            if let Slot::Import(i, g) = self.event_slot(&st, seg)? {
                if st.imports.get(i, g).is_some_and(|im| im.remote.is_some()) {
                    let coalesce = flags.contains(SigpostFlags::NO_ACCUMULATE);
                    return self.post_remote(&mut st, (i, g), coalesce);
                }
            }
            st.ops
                .insert(OpSlot::Running)
                .map_err(|_| RsmError::InsufficientResources)?
        };
        let r = self.intr_signal_post(seg, flags);
        let mut st = self.state.lock();
        if let Err(e) = r {
            st.ops.remove(i, g);
            return Err(e);
        }
        if let Some(slot) = st.ops.get_mut(i, g) {
            *slot = OpSlot::Done(Completion {
                result: Ok(()),
                residual: 0,
            });
        }
        Ok(OpId::from_raw(crate::handle::encode(
            self.instance(),
            crate::handle::Kind::Op,
            g,
            i,
        )))
    }

    /// Wait for an event on `seg` and consume exactly one.
    ///
    /// `timeout_ms`: negative (−1) = wait forever, 0 = check once without sleeping, > 0 = give
    /// up that many milliseconds (platform clock) after the call. A pending event is consumed
    /// at once. If another waiter consumed the event this one was woken for, this one goes
    /// back to sleep until its deadline (spec §9.27: illumos returns `RSMERR_TIMEOUT` early
    /// then).
    ///
    /// Errors, checked at the start and after every wake-up:
    /// * NULL, stale, wrong-kind handle, or a segment destroyed/disconnected (also while
    ///   waiting) → `RSMERR_BAD_SEG_HNDL`;
    /// * pending events are consumed first; then an import that was force-disconnected (the
    ///   exporter unpublished or destroyed the segment, spec §6.4) → `RSMERR_CONN_ABORTED` —
    ///   our choice: nothing can ring it any more, so waiting would be pointless; an import
    ///   whose exporting node was declared unreachable (silent for
    ///   [`crate::proto::UNREACHABLE_AFTER_NS`]) → `RSMERR_REMOTE_NODE_UNREACHABLE`, the
    ///   reason, as every later call on that import reports;
    /// * no event by the deadline → `RSMERR_TIMEOUT`.
    ///
    /// An export segment need not be published to be waited on.
    #[doc(alias = "rsm_intr_signal_wait")]
    pub fn intr_signal_wait(&self, seg: SegmentRef, timeout_ms: i32) -> RsmResult<()> {
        let deadline = self.deadline_after(timeout_ms);
        self.wait_until(deadline, |st| match self.event_slot(st, seg) {
            Err(e) => Some(Err(e)),
            Ok(slot) => Self::take_event(st, slot),
        })
        .unwrap_or(Err(RsmError::Timeout))
    }

    /// A poll descriptor for `seg`, for [`Rsm::intr_signal_wait_pollfd`]: `fd` names the
    /// segment, `events` is [`POLLRDNORM`], `revents` 0.
    ///
    /// Each call adds a reference; while any is held, [`Rsm::export_destroy`] and
    /// [`Rsm::import_disconnect`] fail with `RSMERR_POLLFD_IN_USE` (unpublish, unmap and rebind
    /// are not affected, as in illumos; spec §9.13). Release with [`Rsm::release_pollfd`].
    ///
    /// Errors: NULL, stale, wrong-kind handle → `RSMERR_BAD_SEG_HNDL`; and, enforcing what the
    /// man page documents (spec §9.14; illumos does not check), an export that is not
    /// published or an import that was force-disconnected → `RSMERR_BAD_SEG_HNDL`;
    /// `u32::MAX` references already held → `RSMERR_INSUFFICIENT_RESOURCES`.
    #[doc(alias = "rsm_memseg_get_pollfd")]
    pub fn get_pollfd(&self, seg: SegmentRef) -> RsmResult<PollFd> {
        let mut st = self.state.lock();
        let count = match self.event_slot(&st, seg)? {
            Slot::Export(i, g) => {
                let ex = st.exports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
                if ex.published.is_none() {
                    return Err(RsmError::BadSegHndl);
                }
                &mut ex.pollfds
            }
            Slot::Import(i, g) => {
                let im = st.imports.get(i, g).ok_or(RsmError::BadSegHndl)?;
                if !st.import_alive(im) {
                    return Err(RsmError::BadSegHndl);
                }
                &mut st
                    .imports
                    .get_mut(i, g)
                    .ok_or(RsmError::BadSegHndl)?
                    .pollfds
            }
        };
        *count = count
            .checked_add(1)
            .ok_or(RsmError::InsufficientResources)?;
        Ok(PollFd {
            fd: PollSource::Segment(seg),
            events: POLLRDNORM,
            revents: 0,
        })
    }

    /// Drop one poll-descriptor reference taken by [`Rsm::get_pollfd`]. Releasing when no
    /// reference is held succeeds and changes nothing (as illumos). Works on an unpublished
    /// export or a force-disconnected import (so that it can then be destroyed/disconnected).
    ///
    /// Errors: NULL, stale, destroyed, disconnected or wrong-kind handle →
    /// `RSMERR_BAD_SEG_HNDL`.
    #[doc(alias = "rsm_memseg_release_pollfd")]
    pub fn release_pollfd(&self, seg: SegmentRef) -> RsmResult<()> {
        let mut st = self.state.lock();
        let count = match self.event_slot(&st, seg)? {
            Slot::Export(i, g) => {
                &mut st
                    .exports
                    .get_mut(i, g)
                    .ok_or(RsmError::BadSegHndl)?
                    .pollfds
            }
            Slot::Import(i, g) => {
                &mut st
                    .imports
                    .get_mut(i, g)
                    .ok_or(RsmError::BadSegHndl)?
                    .pollfds
            }
        };
        *count = count.saturating_sub(1);
        Ok(())
    }

    /// Under the table lock: if anything in `fds` is ready (an ordinary entry already has
    /// revents, or a segment entry is readable, invalid or hung up), consume one event per
    /// readable segment entry, set the segment entries' revents and return the number of
    /// entries with non-zero revents; else `None`, changing nothing.
    fn scan_pollfds(&self, st: &mut State<P, L, E, I, F>, fds: &mut [PollFd]) -> Option<usize> {
        let any = fds.iter().any(|f| match f.fd {
            PollSource::Segment(seg) => self.segment_revents(st, seg, f.events, false) != 0,
            PollSource::Other(_) => f.revents != 0,
        });
        if !any {
            return None;
        }
        let mut n = 0;
        for f in fds.iter_mut() {
            if let PollSource::Segment(seg) = f.fd {
                f.revents = self.segment_revents(st, seg, f.events, true);
            }
            if f.revents != 0 {
                n += 1;
            }
        }
        Some(n)
    }

    /// The revents of a segment poll entry asking for `events`; with `consume`, take the
    /// event that makes it readable.
    fn segment_revents(
        &self,
        st: &mut State<P, L, E, I, F>,
        seg: SegmentRef,
        events: i16,
        consume: bool,
    ) -> i16 {
        let (pending, aborted) = match self.event_slot(st, seg) {
            Err(_) => return POLLNVAL,
            Ok(Slot::Export(i, g)) => match st.exports.get_mut(i, g) {
                Some(ex) => (&mut ex.events, false),
                None => return POLLNVAL,
            },
            Ok(Slot::Import(i, g)) => {
                let Some(im) = st.imports.get(i, g) else {
                    return POLLNVAL;
                };
                let aborted = !st.import_alive(im);
                match st.imports.get_mut(i, g) {
                    Some(im) => (&mut im.events, aborted),
                    None => return POLLNVAL,
                }
            }
        };
        if events & POLLRDNORM != 0 && *pending > 0 {
            if consume {
                *pending -= 1;
            }
            POLLRDNORM
        } else if aborted {
            POLLHUP
        } else {
            0
        }
    }

    /// Wait, like poll(2), until segment poll descriptors have events or ordinary
    /// descriptors are ready; consume one event per readable segment entry.
    ///
    /// Every `revents` is cleared first. Then, per entry:
    /// * [`PollSource::Other`] with `fd ≥ 0`: `revents = other(fd, events)`, passed through
    ///   unchanged (the C layer polls real descriptors through this callback with a zero
    ///   timeout; a `no_std` embedder without descriptors passes `|_, _| 0`). Negative
    ///   descriptors are ignored (revents 0), as poll(2) does. `other` is called without the
    ///   table lock held, so it may call back into this node.
    /// * [`PollSource::Segment`] with a valid handle, [`POLLRDNORM`] in `events` and a pending
    ///   event: one event is consumed and `revents = POLLRDNORM`. Events asked for other than
    ///   `POLLRDNORM` (including `POLLIN`) are never reported for a segment, as in illumos.
    /// * a segment entry whose handle is NULL, stale, wrong-kind, destroyed or disconnected:
    ///   `revents = POLLNVAL` (counts as ready, as poll(2) does for a closed descriptor);
    /// * an import entry that was force-disconnected and has no pending event:
    ///   `revents = POLLHUP` (our choice: it can never be rung again, so it counts as ready
    ///   instead of sleeping forever; [`Rsm::intr_signal_wait`] says `RSMERR_CONN_ABORTED`).
    ///
    /// Readiness is decided and events are consumed under one table-lock hold, so an entry
    /// is reported readable only if its event was consumed by this call (a racing waiter
    /// cannot take it in between; spec §4.9 "if none could be consumed its revents is
    /// cleared"). Returns the number of entries with non-zero revents (≥ 1).
    ///
    /// `timeout_ms`: negative = forever, 0 = check once, > 0 = milliseconds on the platform
    /// clock. Posts wake the sleeper at once; ordinary descriptors cannot wake it and are
    /// re-checked at least every 10 ms while any is present.
    ///
    /// Errors: nothing ready by the deadline → `RSMERR_TIMEOUT` (also for an empty `fds`,
    /// which just sleeps for the timeout, like poll(2)).
    #[doc(alias = "rsm_intr_signal_wait_pollfd")]
    pub fn intr_signal_wait_pollfd(
        &self,
        fds: &mut [PollFd],
        timeout_ms: i32,
        mut other: impl FnMut(i32, i16) -> i16,
    ) -> RsmResult<usize> {
        let deadline = self.deadline_after(timeout_ms);
        let has_other = fds
            .iter()
            .any(|f| matches!(f.fd, PollSource::Other(fd) if fd >= 0));
        loop {
            for f in fds.iter_mut() {
                f.revents = match f.fd {
                    PollSource::Other(fd) if fd >= 0 => other(fd, f.events),
                    _ => 0,
                };
            }
            let slice_end = if has_other {
                let next = self.platform.now().add_millis(OTHER_RECHECK_MS);
                Some(deadline.map_or(next, |d| d.min(next)))
            } else {
                deadline
            };
            if let Some(n) = self.wait_until(slice_end, |st| self.scan_pollfds(st, fds)) {
                return Ok(n);
            }
            if deadline.is_some_and(|d| self.platform.now() >= d) {
                return Err(RsmError::Timeout);
            }
        }
    }
}
