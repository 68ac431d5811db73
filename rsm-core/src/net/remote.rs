//! The importer's side of remote segments: connect, vectors and put/get as engine
//! operations, their completion, and what happens to them when a peer restarts or becomes
//! unreachable.

use crate::error::{RsmError, RsmResult};
use crate::handle::{ControllerHandle, ImportHandle, Kind};
use crate::node::{Import, Rsm, State, LOOPBACK};
use crate::op::{Completion, OpId, OpSlot};
use crate::proto::{
    BellState, ConnectOp, RemoteImport, RemoteOp, RemoteState, Src, HEARTBEAT_INTERVAL_NS,
    INLINE_MAX, UNREACHABLE_AFTER_NS,
};
use crate::sg::{self, Direction, Plan, ScatGath};
use crate::table::wire_id;
use crate::types::{NodeId, Permission, SegmentId, SgFlags, MAX_NODES};
use rsm_hal::{Instant, Platform};

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// Complete remote operation `(i, g)` with `result`: drop its references, record the
    /// completion (residual = count − completed prefix). A vector with an implicit sigpost
    /// that succeeded rings its bell first and completes with the exporter's answer to it.
    pub(crate) fn finish_op(
        &self,
        st: &mut State<P, L, E, I, F>,
        (i, g): (u16, u32),
        result: RsmResult<()>,
    ) {
        let Some(OpSlot::Remote(op)) = st.ops.get(i, g) else {
            return;
        };
        if let (Ok(()), BellState::None, Some(coalesce)) = (&result, op.bell, op.sigpost) {
            // A no-accumulate bell behind a bell not yet sent is dropped (BellQueue's rule).
            if !(coalesce && Self::bell_due(st, op.import)) {
                if let Some(OpSlot::Remote(op)) = st.ops.get_mut(i, g) {
                    op.bell = BellState::Due;
                    let node = op.node;
                    st.net.poke(node);
                    self.platform.kick();
                }
                return;
            }
        }
        let Some(OpSlot::Remote(op)) = st.ops.get(i, g) else {
            return;
        };
        let residual = op.count - (op.done as u64).min(op.count);
        let import = op.import;
        let mut handles: heapless::Vec<(u16, u32), { crate::types::RSM_MAX_SGIOREQS }> =
            heapless::Vec::new();
        let mut got = None;
        match &op.src {
            Src::Plan(plan) => {
                for s in plan.iter() {
                    if let Some(h) = s.handle {
                        let _ = handles.push((h.0, h.1.get()));
                    }
                }
            }
            Src::Inline { len, data, .. } => {
                if op.dir == Direction::Get && result.is_ok() {
                    got = Some((*len, *data));
                }
            }
        }
        for (hi, hg) in handles {
            if let Some(lm) = st.locals.get_mut(hi, hg) {
                lm.busy = lm.busy.saturating_sub(1);
            }
        }
        if let Some(im) = st.imports.get_mut(import.0, import.1) {
            im.busy = im.busy.saturating_sub(1);
        }
        let c = Completion { result, residual };
        if let Some(slot) = st.ops.get_mut(i, g) {
            *slot = match got {
                Some((len, data)) => OpSlot::GotData(c, len, data),
                None => OpSlot::Done(c),
            };
        }
        st.remote.wake = true;
    }

    /// Fail every running operation on import `(i, g)` with `e` (its connection was
    /// force-disconnected: the exporter drops their data without an answer).
    pub(crate) fn fail_import_ops(
        &self,
        st: &mut State<P, L, E, I, F>,
        import: (u16, u32),
        e: RsmError,
    ) {
        let mut ops: heapless::Vec<(u16, u32), { crate::MAX_PENDING_OPS }> = heapless::Vec::new();
        for (i, g, op) in st.ops.iter() {
            if matches!(op, OpSlot::Remote(o) if o.import == import) {
                let _ = ops.push((i, g));
            }
        }
        for op in ops {
            self.finish_op(st, op, Err(e));
        }
        st.remote.wake = true;
    }

    /// Hand a remote import to the engine to say NOT_IMPORTING and free it (or free it at
    /// once when there is nobody to tell).
    pub(crate) fn close_remote_import(&self, st: &mut State<P, L, E, I, F>, (i, g): (u16, u32)) {
        let tell = st.net.on
            && st.imports.get(i, g).is_some_and(|im| {
                st.net
                    .peer(im.node)
                    .is_some_and(|p| p.inc != 0 && !p.unreachable)
            });
        match st.imports.get_mut(i, g) {
            Some(im) if tell => {
                im.closing = true;
                if let Some(r) = im.remote.as_mut() {
                    r.state = RemoteState::Closing;
                }
                let node = im.node;
                st.net.poke(node);
                self.platform.kick();
            }
            Some(_) => {
                st.imports.remove(i, g);
            }
            None => {}
        }
        st.remote.wake = true;
    }

    /// End everything involving `node`: its remote operations fail with `op_error`, its
    /// connects are retried (`connects_retry`, after a restart) or fail as unreachable, its
    /// connected imports are aborted, and closing ones are freed.
    fn sweep_peer(
        &self,
        st: &mut State<P, L, E, I, F>,
        node: NodeId,
        op_error: RsmError,
        connects_retry: bool,
    ) {
        let mut ops: heapless::Vec<(u16, u32, bool), { crate::MAX_PENDING_OPS }> =
            heapless::Vec::new();
        for (i, g, op) in st.ops.iter() {
            match op {
                OpSlot::Remote(op) if op.node == node => {
                    let _ = ops.push((i, g, false));
                }
                OpSlot::Connect(c) if c.node == node => {
                    let _ = ops.push((i, g, true));
                }
                _ => {}
            }
        }
        for (i, g, connect) in ops {
            if !connect {
                self.finish_op(st, (i, g), Err(op_error));
                continue;
            }
            if connects_retry {
                if let Some(OpSlot::Connect(c)) = st.ops.get_mut(i, g) {
                    c.sent = false;
                }
                st.net.poke(node);
                self.platform.kick();
                continue;
            }
            let import = match st.ops.get(i, g) {
                Some(OpSlot::Connect(c)) => c.import,
                _ => continue,
            };
            st.imports.remove(import.0, import.1);
            if let Some(slot) = st.ops.get_mut(i, g) {
                *slot = OpSlot::Connected(Err(RsmError::RemoteNodeUnreachable));
            }
        }
        let mut gone: heapless::Vec<(u16, u32), I> = heapless::Vec::new();
        for (i, g, im) in st.imports.iter_mut() {
            let Some(r) = im.remote.as_ref() else {
                continue;
            };
            if im.node != node {
                continue;
            }
            match r.state {
                RemoteState::Connected => {
                    im.aborted = true;
                    im.unreachable |= op_error == RsmError::RemoteNodeUnreachable;
                }
                RemoteState::Closing => {
                    let _ = gone.push((i, g));
                }
                RemoteState::Connecting => {}
            }
        }
        for (i, g) in gone {
            st.imports.remove(i, g);
        }
        st.remote.wake = true;
    }

    /// [`crate::proto::Event::PeerRestarted`]: peer `node` came back with a new incarnation
    /// (the engine forgot its channel): forget everything about its old one.
    pub(crate) fn peer_restarted(&self, st: &mut State<P, L, E, I, F>, node: NodeId) {
        self.sweep_peer(st, node, RsmError::ConnAborted, true);
        st.remote.forget_node(node);
    }

    /// [`crate::proto::Event::PeerUnreachable`]: its operations fail, its imports are aborted.
    pub(crate) fn peer_unreachable(&self, st: &mut State<P, L, E, I, F>, node: NodeId) {
        self.sweep_peer(st, node, RsmError::RemoteNodeUnreachable, false);
        // Its get answers cannot go out: free their slots for the other peers.
        st.remote.jobs.retain(|j| j.node != node);
    }

    /// The engine marks peer `ix` unreachable; the node applies the event.
    fn declare_unreachable(&self, st: &mut State<P, L, E, I, F>, ix: usize, now: Instant) {
        if let Some(node) = st.net.mark_unreachable(ix, now) {
            let _ = self.apply(st, ix, node, crate::proto::Event::PeerUnreachable { node });
        }
    }

    /// The heartbeat ([`HEARTBEAT_INTERVAL_NS`]): for every known peer an import connects
    /// this node with, declare it unreachable after [`UNREACHABLE_AFTER_NS`] of silence, or
    /// else send it a unicast hello if this node has sent it nothing for an interval.
    fn heartbeat(&self, st: &mut State<P, L, E, I, F>, now: Instant) {
        // Node ids are below MAX_NODES = 64: one bit each.
        let mut related = 0u64;
        for (_, _, im) in st.imports.iter() {
            if im.remote.is_some_and(|r| r.state == RemoteState::Connected) && !im.aborted {
                related |= crate::proto::node_bit(im.node);
            }
        }
        for r in st.remote.importers.iter() {
            related |= crate::proto::node_bit(r.node);
        }
        for ix in 0..st.net.peers.len() {
            if st.net.heartbeat(ix, now, related) {
                self.declare_unreachable(st, ix, now);
            }
        }
    }

    /// Timers at `now`: retransmissions, unreachability, connect timeouts, probes, the
    /// heartbeat.
    pub(crate) fn timers(&self, st: &mut State<P, L, E, I, F>, now: Instant) {
        let lost = st.net.channel_timers(now);
        for ix in 0..st.net.peers.len() {
            if lost & crate::proto::node_bit(ix as NodeId) != 0 {
                self.declare_unreachable(st, ix, now);
            }
        }
        if now >= st.net.next_heartbeat {
            st.net.next_heartbeat = now.add_nanos(HEARTBEAT_INTERVAL_NS);
            st.net.poke_all();
            self.platform.kick();
            self.heartbeat(st, now);
        }
        let mut expired: heapless::Vec<(u16, u32, (u16, u32), bool), { crate::MAX_PENDING_OPS }> =
            heapless::Vec::new();
        let mut probe: heapless::Vec<NodeId, { crate::MAX_PENDING_OPS }> = heapless::Vec::new();
        for (i, g, op) in st.ops.iter() {
            if let OpSlot::Connect(c) = op {
                if now.nanos_since(c.started) >= UNREACHABLE_AFTER_NS {
                    let _ = expired.push((i, g, c.import, c.sent));
                } else if st.net.peer(c.node).is_none_or(|p| p.inc == 0) {
                    let _ = probe.push(c.node);
                }
            }
        }
        for (i, g, import, sent) in expired {
            let node = st.imports.get(import.0, import.1).map(|im| im.node);
            if sent {
                self.close_remote_import(st, import);
            } else {
                st.imports.remove(import.0, import.1);
            }
            if let Some(slot) = st.ops.get_mut(i, g) {
                *slot = OpSlot::Connected(Err(RsmError::RemoteNodeUnreachable));
            }
            st.remote.wake = true;
            // A node that never answered keeps no peer slot once nothing waits for it.
            let waiting = st
                .ops
                .iter()
                .any(|(_, _, op)| matches!(op, OpSlot::Connect(c) if Some(c.node) == node));
            if let (Some(node), false) = (node, waiting) {
                if let Some(ix) = st.net.ix(node) {
                    st.net.forget_if_silent(ix);
                }
            }
        }
        for node in probe {
            if let Some(ix) = st.net.ix(node) {
                st.net.probe(ix, now);
            }
        }
    }

    /// Start connecting to segment `segment_id` on `node` without waiting; collect the
    /// result with [`Rsm::take_connect`]. The same checks as [`Rsm::import_connect`]; errors
    /// that need no answer from the exporter are returned at once. A connect to this node
    /// completes at once.
    pub fn start_import_connect(
        &self,
        ctrl: ControllerHandle,
        node: NodeId,
        segment_id: SegmentId,
        perm: Permission,
    ) -> RsmResult<OpId> {
        let local = self.config.node_id;
        let ctrl_ix = self.ctrl_index(ctrl)?;
        if node == local || node >= MAX_NODES || ctrl_ix == LOOPBACK {
            let r = self.import_connect_local(ctrl, node, segment_id, perm);
            let mut st = self.state.lock();
            let (i, g) = st
                .ops
                .insert(OpSlot::Connected(r))
                .map_err(|_| RsmError::InsufficientResources)?;
            return Ok(OpId::from_raw(crate::handle::encode(
                self.instance(),
                Kind::Op,
                g,
                i,
            )));
        }
        if perm.bits() & !Permission::RDWR.bits() != 0 {
            return Err(RsmError::PermDenied);
        }
        let mut st = self.state.lock();
        if st.imports.is_full() || st.ops.is_full() {
            return Err(RsmError::InsufficientResources);
        }
        if !st.net.on {
            return Err(RsmError::RemoteNodeUnreachable);
        }
        if st.net.ix_or_insert(node).is_none() {
            return Err(RsmError::InsufficientResources);
        }
        let mut im = Import::new(node, segment_id, (u16::MAX, 0), 0, perm, 0);
        im.remote = Some(RemoteImport {
            state: RemoteState::Connecting,
            import_id: 0,
        });
        let (ii, ig) = st
            .imports
            .insert(im)
            .map_err(|_| RsmError::InsufficientResources)?;
        if let Some(r) = st.imports.get_mut(ii, ig).and_then(|im| im.remote.as_mut()) {
            r.import_id = wire_id(ii, ig);
        }
        let op = ConnectOp {
            node,
            segid: segment_id,
            perm,
            import: (ii, ig),
            started: self.net_now(&st),
            sent: false,
        };
        st.net.poke(node);
        self.platform.kick();
        match st.ops.insert(OpSlot::Connect(op)) {
            Ok((i, g)) => Ok(OpId::from_raw(crate::handle::encode(
                self.instance(),
                Kind::Op,
                g,
                i,
            ))),
            Err(_) => {
                st.imports.remove(ii, ig);
                Err(RsmError::InsufficientResources)
            }
        }
    }

    /// The engine's notion of now when an API call starts something: the latest time the
    /// driver gave it (timers are measured in the driver's time).
    fn net_now(&self, st: &State<P, L, E, I, F>) -> Instant {
        st.net.clock
    }

    /// Whether `seg` is an import of a segment on another node.
    pub(crate) fn is_remote(&self, seg: ImportHandle) -> bool {
        let st = self.state.lock();
        self.import_slot(&st, seg)
            .ok()
            .and_then(|(i, g)| st.imports.get(i, g))
            .is_some_and(|im| im.remote.is_some())
    }

    /// Register remote operation `op` (already validated) or its failure.
    fn insert_op(
        &self,
        st: &mut State<P, L, E, I, F>,
        build: impl FnOnce(&mut State<P, L, E, I, F>) -> Result<RemoteOp<P::Region>, RsmError>,
        count: u64,
    ) -> RsmResult<OpId> {
        let (i, g) = st
            .ops
            .insert(OpSlot::Running)
            .map_err(|_| RsmError::InsufficientResources)?;
        let slot = match build(st) {
            Ok(mut op) => {
                st.remote.op_seq += 1;
                op.seq = st.remote.op_seq;
                OpSlot::Remote(op)
            }
            Err(e) => OpSlot::Done(Completion {
                result: Err(e),
                residual: count,
            }),
        };
        if let Some(s) = st.ops.get_mut(i, g) {
            *s = slot;
        }
        self.platform.kick();
        Ok(OpId::from_raw(crate::handle::encode(
            self.instance(),
            Kind::Op,
            g,
            i,
        )))
    }

    /// Validate a vector on a remote import (the order of [`Rsm::putv`]) and take its
    /// references.
    fn remote_vector(
        &self,
        st: &mut State<P, L, E, I, F>,
        sg: &ScatGath<'_, P::Region>,
        dir: Direction,
    ) -> Result<RemoteOp<P::Region>, RsmError> {
        let (ii, ig) = self.import_slot(st, sg.remote_handle)?;
        let im = st.imports.get(ii, ig).ok_or(RsmError::BadSegHndl)?;
        let entries = sg::entries(sg)?;
        if !st.import_alive(im) {
            return Err(im.lost());
        }
        let need = match dir {
            Direction::Put => Permission::WRITE,
            Direction::Get => Permission::READ,
        };
        if !im.perm.contains(need) {
            return Err(RsmError::PermDenied);
        }
        let (node, segid, size) = (im.node, im.segid, im.size);
        let import_id = im.remote.as_ref().map_or(0, |r| r.import_id);
        let locals = &st.locals;
        let resolve = |h: crate::LocalMemHandle| {
            let (i, g) = self.parts(h.into_raw(), Kind::LocalMem)?;
            let lm = locals.get(i, g).filter(|lm| !lm.freeing)?;
            Some((i, g, lm.region.clone()))
        };
        let mut plan = Plan::new();
        sg::plan_into(entries, size, resolve, &mut plan)?;
        // The wire carries an entry's length and fragment offsets in 32 bits.
        if plan.iter().any(|s| s.len > crate::proto::MAX_REMOTE_ENTRY) {
            return Err(RsmError::BadLength);
        }
        for s in plan.iter() {
            if let Some((i, g)) = s.handle {
                if let Some(lm) = st.locals.get_mut(i, g.get()) {
                    lm.busy += 1;
                }
            }
        }
        if let Some(im) = st.imports.get_mut(ii, ig) {
            im.busy += 1;
        }
        let sigpost = sg
            .flags
            .contains(SgFlags::IMPLICIT_SIGPOST)
            .then(|| sg.flags.contains(SgFlags::SIGPOST_NO_ACCUMULATE));
        Ok(RemoteOp {
            dir,
            node,
            import: (ii, ig),
            import_id,
            segid,
            count: plan.len() as u64,
            src: Src::Plan(plan),
            sigpost,
            bell: BellState::None,
            seq: 0,
            next_entry: 0,
            next_frag: 0,
            done: 0,
            recv: 0,
        })
    }

    /// Start a putv/getv on a remote import (see [`Rsm::start_putv`]).
    pub(crate) fn start_remote(
        &self,
        sg: &ScatGath<'_, P::Region>,
        dir: Direction,
    ) -> RsmResult<OpId> {
        let count = sg.io_request_count;
        let mut st = self.state.lock();
        self.insert_op(&mut st, |st| self.remote_vector(st, sg, dir), count)
    }

    /// Start a put (`Some(src)`) or a get of `len` bytes at `offset` of a remote import,
    /// after the checks of [`Rsm::put`] (permission, range, barrier, connection).
    fn start_inline(
        &self,
        seg: ImportHandle,
        offset: usize,
        len: usize,
        src: Option<&[u8]>,
    ) -> RsmResult<OpId> {
        if len > INLINE_MAX || src.is_some_and(|s| s.len() != len) {
            return Err(RsmError::BadLength);
        }
        let dir = if src.is_some() {
            Direction::Put
        } else {
            Direction::Get
        };
        let mut st = self.state.lock();
        let build = |st: &mut State<P, L, E, I, F>| {
            let (ii, ig) = self.import_slot(st, seg)?;
            let im = st.imports.get_mut(ii, ig).ok_or(RsmError::BadSegHndl)?;
            let need = match dir {
                Direction::Put => Permission::WRITE,
                Direction::Get => Permission::READ,
            };
            if !im.perm.contains(need) {
                return Err(RsmError::PermDenied);
            }
            if offset.checked_add(len).is_none_or(|end| end > im.size) {
                return Err(RsmError::BadOffset);
            }
            let remote = im.remote.filter(|r| r.state == RemoteState::Connected);
            let Some(r) = remote.filter(|_| !im.aborted) else {
                return Err(im.lost());
            };
            im.busy += 1;
            let mut data = [0u8; INLINE_MAX];
            if let Some(s) = src {
                data[..len].copy_from_slice(s);
            }
            Ok(RemoteOp {
                dir,
                node: im.node,
                import: (ii, ig),
                import_id: r.import_id,
                segid: im.segid,
                src: Src::Inline {
                    off: offset,
                    len,
                    data,
                },
                count: 1,
                sigpost: None,
                bell: BellState::None,
                seq: 0,
                next_entry: 0,
                next_frag: 0,
                done: 0,
                recv: 0,
            })
        };
        self.insert_op(&mut st, build, 1)
    }

    /// Start writing `src` (at most [`INLINE_MAX`] bytes) at `offset` of a remote import,
    /// without waiting. The bytes are copied at once. Checks as [`Rsm::put`] minus the
    /// barrier rule; the result comes from [`Rsm::take_completion`].
    pub fn start_put(&self, seg: ImportHandle, offset: usize, src: &[u8]) -> RsmResult<OpId> {
        self.start_inline(seg, offset, src.len(), Some(src))
    }

    /// Start reading `len` bytes (at most [`INLINE_MAX`]) at `offset` of a remote import,
    /// without waiting; collect them with [`Rsm::take_get`].
    pub fn start_get(&self, seg: ImportHandle, offset: usize, len: usize) -> RsmResult<OpId> {
        self.start_inline(seg, offset, len, None)
    }

    /// The completion of a get started with [`Rsm::start_get`], its bytes copied into the
    /// front of `dst` on success (`dst` shorter than the get → only that much). `None` while it
    /// runs or for an unknown id.
    pub fn take_get(&self, op: OpId, dst: &mut [u8]) -> Option<Completion> {
        let (i, g) = self.parts(op.raw(), Kind::Op)?;
        let mut st = self.state.lock();
        if !matches!(st.ops.get(i, g)?, OpSlot::Done(_) | OpSlot::GotData(..)) {
            return None;
        }
        match st.ops.remove(i, g)? {
            OpSlot::Done(c) => Some(c),
            OpSlot::GotData(c, len, data) => {
                let n = len.min(dst.len());
                dst[..n].copy_from_slice(&data[..n]);
                Some(c)
            }
            _ => None,
        }
    }

    /// Block until remote operation `op` completes and take its completion (the blocking
    /// calls' wait; the engine is driven by another thread).
    pub(crate) fn wait_op(&self, op: OpId, dst: Option<&mut [u8]>) -> Completion {
        let Some((i, g)) = self.parts(op.raw(), Kind::Op) else {
            return Completion {
                result: Err(RsmError::InternalError),
                residual: 0,
            };
        };
        self.wait_for(|st| match st.ops.get(i, g) {
            Some(OpSlot::Running) | Some(OpSlot::Remote(_)) => None,
            _ => Some(()),
        });
        let c = match dst {
            Some(d) => self.take_get(op, d),
            None => self.take_completion(op),
        };
        c.unwrap_or(Completion {
            result: Err(RsmError::InternalError),
            residual: 0,
        })
    }

    /// Wait for a connect started by [`Rsm::start_import_connect`].
    pub(crate) fn wait_connect(&self, op: OpId) -> RsmResult<ImportHandle> {
        let Some((i, g)) = self.parts(op.raw(), Kind::Op) else {
            return Err(RsmError::InternalError);
        };
        self.wait_for(|st| match st.ops.get(i, g) {
            Some(OpSlot::Connect(_)) => None,
            _ => Some(()),
        });
        self.take_connect(op)
            .unwrap_or(Err(RsmError::InternalError))
    }

    /// Blocking put/get of any length on a remote import, in pieces of [`INLINE_MAX`].
    pub(crate) fn remote_write(
        &self,
        seg: ImportHandle,
        offset: usize,
        src: &[u8],
    ) -> RsmResult<()> {
        for (k, piece) in src.chunks(INLINE_MAX).enumerate() {
            let op = self.start_put(seg, offset + k * INLINE_MAX, piece)?;
            self.wait_op(op, None).result?;
        }
        Ok(())
    }

    /// See [`Self::remote_write`].
    pub(crate) fn remote_read(
        &self,
        seg: ImportHandle,
        offset: usize,
        dst: &mut [u8],
    ) -> RsmResult<()> {
        for (k, piece) in dst.chunks_mut(INLINE_MAX).enumerate() {
            let op = self.start_get(seg, offset + k * INLINE_MAX, piece.len())?;
            self.wait_op(op, Some(piece)).result?;
        }
        Ok(())
    }

    /// Whether import `import` has a bell waiting to be sent.
    fn bell_due(st: &State<P, L, E, I, F>, import: (u16, u32)) -> bool {
        st.ops.iter().any(|(_, _, op)| {
            matches!(op, OpSlot::Remote(o) if o.import == import && o.bell == BellState::Due)
        })
    }

    /// An operation that is already complete with `c`.
    fn insert_done(&self, st: &mut State<P, L, E, I, F>, c: Completion) -> RsmResult<OpId> {
        let (i, g) = st
            .ops
            .insert(OpSlot::Done(c))
            .map_err(|_| RsmError::InsufficientResources)?;
        Ok(OpId::from_raw(crate::handle::encode(
            self.instance(),
            Kind::Op,
            g,
            i,
        )))
    }

    /// Start posting one bell on remote import `(i, g)` (spec §6.5): an operation with no
    /// entries that completes with the exporter's answer. Errors known at once (as
    /// [`Rsm::intr_signal_post`]) are returned; a no-accumulate post behind a bell not yet
    /// sent completes at once (the target would drop it: the earlier bell is pending there).
    pub(crate) fn post_remote(
        &self,
        st: &mut State<P, L, E, I, F>,
        (i, g): (u16, u32),
        coalesce: bool,
    ) -> RsmResult<OpId> {
        let im = st.imports.get(i, g).ok_or(RsmError::BadSegHndl)?;
        if !st.import_alive(im) {
            return Err(im.lost());
        }
        if st.net.peer(im.node).is_none_or(|p| p.unreachable) {
            return Err(RsmError::RemoteNodeUnreachable);
        }
        let (node, segid) = (im.node, im.segid);
        let import_id = im.remote.map_or(0, |r| r.import_id);
        if coalesce && Self::bell_due(st, (i, g)) {
            return self.insert_done(
                st,
                Completion {
                    result: Ok(()),
                    residual: 0,
                },
            );
        }
        let build = |st: &mut State<P, L, E, I, F>| {
            let im = st.imports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
            im.busy += 1;
            Ok(RemoteOp {
                dir: Direction::Put,
                node,
                import: (i, g),
                import_id,
                segid,
                src: Src::Inline {
                    off: 0,
                    len: 0,
                    data: [0; INLINE_MAX],
                },
                count: 0,
                sigpost: Some(coalesce),
                bell: BellState::Due,
                seq: 0,
                next_entry: 0,
                next_frag: 0,
                done: 0,
                recv: 0,
            })
        };
        st.net.poke(node);
        self.platform.kick();
        self.insert_op(st, build, 0)
    }

    /// Post one bell to every remote importer of export `(i, g)`.
    pub(crate) fn post_remote_importers(
        &self,
        st: &mut State<P, L, E, I, F>,
        (i, g): (u16, u32),
        coalesce: bool,
    ) {
        let Some(epoch) = st.exports.get(i, g).map(|ex| ex.epoch) else {
            return;
        };
        for r in st.remote.importers.iter_mut() {
            if r.export == (i, g) && r.epoch == epoch {
                r.bells.post(coalesce);
                st.net.ctrl_work |= crate::proto::node_bit(r.node);
            }
        }
        self.platform.kick();
    }
}
