//! putv/getv and the non-blocking operation layer (DESIGN §4).
//!
//! [`Rsm::start_putv`] / [`Rsm::start_getv`] start an operation and return an [`OpId`];
//! [`Rsm::take_completion`] collects the [`Completion`]. The blocking [`Rsm::putv`] /
//! [`Rsm::getv`] are thin wrappers over the same path. An operation on a segment of this node
//! completes inside `start_*` (the copy is synchronous), so its completion is ready at once;
//! one on a segment of another node is carried by the wire engine ([`crate::proto`]) and
//! completes while the engine is driven ([`Rsm::handle_frame`], [`Rsm::poll_transmit`],
//! [`Rsm::poll`]).

use crate::error::{RsmError, RsmResult};
use crate::handle::{self, Kind};
use crate::node::Rsm;
use crate::op::{Completion, OpId, OpSlot};
use crate::sg::{self, Direction, Plan, ScatGath};
use crate::types::{Permission, SgFlags};
use rsm_hal::{Platform, Region};

/// What a vector holds on to while its copies run without the table lock.
struct Acquired<R> {
    remote: R,
    import: (u16, u32),
    export: (u16, u32),
}

/// Call `f(handle, n)` for each run of `n` consecutive steps naming the same local handle, so
/// that a vector over one handle takes and drops one reference count update, not sixteen.
fn for_each_handle_run<R>(plan: &Plan<R>, mut f: impl FnMut((u16, u32), u32)) {
    let mut run: Option<((u16, u32), u32)> = None;
    for h in plan
        .iter()
        .filter_map(|s| s.handle.map(|(i, g)| (i, g.get())))
    {
        match &mut run {
            Some((cur, n)) if *cur == h => *n += 1,
            _ => {
                if let Some((cur, n)) = run.replace((h, 1)) {
                    f(cur, n);
                }
            }
        }
    }
    if let Some((cur, n)) = run {
        f(cur, n);
    }
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// Validate `sg` and take references on everything it touches (one table-lock hold).
    /// Returns `None` while the exported segment is being rebound (the caller waits).
    fn acquire(
        &self,
        st: &mut crate::node::State<P, L, E, I, F>,
        sg: &ScatGath<'_, P::Region>,
        dir: Direction,
        plan: &mut Plan<P::Region>,
    ) -> Option<RsmResult<Acquired<P::Region>>> {
        let Some((ii, ig)) = self.parts(sg.remote_handle.into_raw(), Kind::Import) else {
            return Some(Err(RsmError::BadSegHndl));
        };
        let im = match st.imports.get(ii, ig) {
            Some(im) if !im.closing => im,
            _ => return Some(Err(RsmError::BadSegHndl)),
        };
        let entries = match sg::entries(sg) {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let (ei, eg) = im.export;
        let Some(ex) = st.connected_export(im) else {
            return Some(Err(RsmError::ConnAborted));
        };
        let need = match dir {
            Direction::Put => Permission::WRITE,
            Direction::Get => Permission::READ,
        };
        if !im.perm.contains(need) {
            return Some(Err(RsmError::PermDenied));
        }
        if ex.quiesced {
            return None;
        }
        let locals = &st.locals;
        let resolve = |h: crate::LocalMemHandle| {
            let (i, g) = self.parts(h.into_raw(), Kind::LocalMem)?;
            let lm = locals.get(i, g).filter(|lm| !lm.freeing)?;
            Some((i, g, lm.region.clone()))
        };
        if let Err(e) = sg::plan_into(entries, ex.region.len(), resolve, plan) {
            return Some(Err(e));
        }
        let remote = ex.region.clone();
        // Take the references: the handle, the segment and every local handle named.
        for_each_handle_run(plan, |(i, g), n| {
            if let Some(lm) = st.locals.get_mut(i, g) {
                lm.busy += n;
            }
        });
        if let Some(ex) = st.exports.get_mut(ei, eg) {
            ex.busy += 1;
        }
        if let Some(im) = st.imports.get_mut(ii, ig) {
            im.busy += 1;
        }
        Some(Ok(Acquired {
            remote,
            import: (ii, ig),
            export: (ei, eg),
        }))
    }

    /// Drop the references taken by [`Self::acquire`]; with `sigpost`, ring the exporter
    /// (spec §9.28: only after the whole vector succeeded). Returns the sigpost's error, if any.
    fn release(
        &self,
        a: &Acquired<P::Region>,
        plan: &Plan<P::Region>,
        sigpost: Option<SgFlags>,
    ) -> RsmResult<()> {
        let mut post = Ok(());
        let waiters = {
            let mut st = self.state.lock();
            for_each_handle_run(plan, |(i, g), n| {
                if let Some(lm) = st.locals.get_mut(i, g) {
                    lm.busy -= n;
                }
            });
            if let Some(im) = st.imports.get_mut(a.import.0, a.import.1) {
                im.busy -= 1;
            }
            // Only an implicit sigpost needs to know whether the connection still stands.
            let alive = sigpost.is_some()
                && st
                    .imports
                    .get(a.import.0, a.import.1)
                    .is_some_and(|im| st.connected_export(im).is_some());
            if let Some(ex) = st.exports.get_mut(a.export.0, a.export.1) {
                ex.busy -= 1;
                if let Some(flags) = sigpost {
                    if alive {
                        let coalesce = flags.contains(SgFlags::SIGPOST_NO_ACCUMULATE);
                        crate::events::ring(&mut ex.events, coalesce);
                    } else {
                        post = Err(RsmError::ConnAborted);
                    }
                }
            }
            st.waiters > 0 || sigpost.is_some()
        };
        self.wake_if(waiters);
        post
    }

    /// Run a vector to completion (on a remote import: through the engine, waiting for it).
    fn run_vector(&self, sg: &ScatGath<'_, P::Region>, dir: Direction) -> Completion {
        let count = sg.io_request_count;
        if self.is_remote(sg.remote_handle) {
            return match self.start_remote(sg, dir) {
                Ok(op) => self.wait_op(op, None),
                Err(e) => Completion {
                    result: Err(e),
                    residual: count,
                },
            };
        }
        let mut plan = Plan::new();
        let acquired = self.wait_for(|st| self.acquire(st, sg, dir, &mut plan));
        let a = match acquired {
            Ok(a) => a,
            Err(e) => {
                return Completion {
                    result: Err(e),
                    residual: count,
                }
            }
        };
        let (result, done) = sg::execute(&self.platform, &plan, &a.remote, dir);
        let sigpost =
            (result.is_ok() && sg.flags.contains(SgFlags::IMPLICIT_SIGPOST)).then_some(sg.flags);
        let post = self.release(&a, &plan, sigpost);
        let residual = count - done as u64;
        Completion {
            result: result.and(post),
            residual,
        }
    }

    /// Gather the iovec's local pieces into the import segment `sg.remote_handle`.
    ///
    /// Check order (spec §4.6, our choices of §9.2/§9.12/§9.19 where illumos checks nothing):
    /// 1. NULL, stale, disconnected or wrong-kind `remote_handle` → `RSMERR_BAD_SEG_HNDL`;
    /// 2. `io_request_count` 0 or above 16, NULL `iovec`, fewer entries than the count →
    ///    `RSMERR_BAD_SGIO`;
    /// 3. the exporter unpublished or destroyed the segment → `RSMERR_CONN_ABORTED`;
    /// 4. the import lacks write permission → `RSMERR_PERM_DENIED`;
    /// 5. per entry, in order (see [`sg::plan`]): `RSMERR_BAD_SGIO` (io_type, unknown or freed
    ///    local handle), `RSMERR_BAD_ADDR` (NULL VA), `RSMERR_BAD_OFFSET` (remote range),
    ///    `RSMERR_BAD_LENGTH` (local range).
    ///
    /// The whole vector is validated before any byte moves, then entries are copied in order.
    /// `io_residual_count` is written on every return (rule in [`crate::sg`]); `flags` is never
    /// changed. With [`SgFlags::IMPLICIT_SIGPOST`], a fully successful call then rings the
    /// exporting segment's doorbell once (coalesced with a pending event under
    /// [`SgFlags::SIGPOST_NO_ACCUMULATE`]); if that post fails (the segment was unpublished
    /// meanwhile) its `RSMERR_CONN_ABORTED` replaces the success, with residual 0 (spec §9.28).
    /// No barrier is needed (spec §9.1).
    ///
    /// On a segment of another node the same checks run locally (the segment length is the
    /// one the exporter reported at connect); the entries are then pipelined to the exporter,
    /// which applies them in order and acknowledges each; the call returns once every entry
    /// was acknowledged as written. If the exporter fails entry `k` (the segment was
    /// unpublished or destroyed: `RSMERR_CONN_ABORTED`), it drops the later entries and the
    /// residual is `count − k`; if the exporter makes no progress for 5 s,
    /// `RSMERR_REMOTE_NODE_UNREACHABLE` with the residual of the acknowledged prefix (entries
    /// after it may or may not have been written). The local memory is read again for each
    /// retransmission, so it must not change while the call runs. Needs a driver
    /// ([`crate::proto`]).
    #[doc(alias = "rsm_memseg_import_putv")]
    pub fn putv(&self, sg: &mut ScatGath<'_, P::Region>) -> RsmResult<()> {
        let c = self.run_vector(sg, Direction::Put);
        sg.io_residual_count = c.residual;
        c.result
    }

    /// Scatter from the import segment `sg.remote_handle` into the iovec's local pieces.
    ///
    /// Identical to [`Rsm::putv`] in checks and residual rules, with read permission needed.
    /// On a remote segment, a getv issued after puts on the same import sees them, and puts
    /// issued after a getv wait until its data has arrived (the exporter reads the segment
    /// when it sends the answer).
    #[doc(alias = "rsm_memseg_import_getv")]
    pub fn getv(&self, sg: &mut ScatGath<'_, P::Region>) -> RsmResult<()> {
        let c = self.run_vector(sg, Direction::Get);
        sg.io_residual_count = c.residual;
        c.result
    }

    fn start(&self, sg: &ScatGath<'_, P::Region>, dir: Direction) -> RsmResult<OpId> {
        if self.is_remote(sg.remote_handle) {
            return self.start_remote(sg, dir);
        }
        let (i, g) = self
            .state
            .lock()
            .ops
            .insert(OpSlot::Running)
            .map_err(|_| RsmError::InsufficientResources)?;
        let c = self.run_vector(sg, dir);
        if let Some(slot) = self.state.lock().ops.get_mut(i, g) {
            *slot = OpSlot::Done(c);
        }
        Ok(OpId(handle::encode(self.instance(), Kind::Op, g, i)))
    }

    /// Start a putv without waiting for it. Every validation or transfer error is reported in
    /// the [`Completion`]; `start_putv` itself fails only with
    /// `RSMERR_INSUFFICIENT_RESOURCES` when [`crate::MAX_PENDING_OPS`] completions are waiting
    /// to be taken. The operation keeps a clone of every local region it names (from a
    /// handle or a VA entry) until it completed, so the vector and the caller's regions may go
    /// at once; with a region type that owns its memory (`rsm_host::MemRegion` of a
    /// `PinnedBuf`, the fake platform's regions) the memory lives until then too. (A region
    /// made from a raw pointer carries its constructor's promise to stay valid that long.)
    pub fn start_putv(&self, sg: &ScatGath<'_, P::Region>) -> RsmResult<OpId> {
        self.start(sg, Direction::Put)
    }

    /// Start a getv without waiting for it (see [`Rsm::start_putv`]).
    pub fn start_getv(&self, sg: &ScatGath<'_, P::Region>) -> RsmResult<OpId> {
        self.start(sg, Direction::Get)
    }

    /// Run the wire engine's timers at `now` (retransmission, unreachability, connect
    /// timeouts); returns `true` if an operation completed. Remote operations otherwise
    /// progress as frames move ([`Rsm::handle_frame`], [`Rsm::poll_transmit`], which also run
    /// the timers); same-node operations complete in `start_*`, so without remote traffic
    /// there is nothing to do and this returns `false`.
    pub fn poll(&self, now: rsm_hal::Instant) -> bool {
        let completed = {
            let mut st = self.state.lock();
            if !st.net.on {
                return false;
            }
            st.net.clock = st.net.clock.max(now);
            self.timers(&mut st, now);
            core::mem::take(&mut st.remote.wake)
        };
        self.wake_if(completed);
        completed
    }

    /// The completion of `op` if it has finished (it is then forgotten: a second call returns
    /// `None`); `None` while it runs or for an unknown id.
    pub fn take_completion(&self, op: OpId) -> Option<Completion> {
        let (i, g) = self.parts(op.0, Kind::Op)?;
        let mut st = self.state.lock();
        match st.ops.get(i, g)? {
            OpSlot::Done(_) | OpSlot::GotData(..) => match st.ops.remove(i, g)? {
                OpSlot::Done(c) | OpSlot::GotData(c, ..) => Some(c),
                _ => None,
            },
            _ => None,
        }
    }

    /// Pending doorbell events of an export segment (rung by implicit sigposts; consumed by
    /// signal waits).
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL`.
    pub fn export_pending_events(&self, seg: crate::ExportHandle) -> RsmResult<u32> {
        let st = self.state.lock();
        let (i, g) = self.export_slot(&st, seg)?;
        Ok(st.exports.get(i, g).map_or(0, |e| e.events))
    }
}
