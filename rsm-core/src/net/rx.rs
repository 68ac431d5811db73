//! Receiving: frame checks, the channel's sequence and acknowledgement handling, and the
//! delivery of each message to the exporter or importer side.

use crate::error::{RsmError, RsmResult};
use crate::node::{Rsm, State};
use crate::op::OpSlot;
use crate::proto::{BellState, Event, GetJob, Msg, RemoteImporter, RemoteState, Src};
use crate::sg::{copy_error, Direction};
use crate::types::{NodeId, Permission, SegmentId};
use crate::wire::{self, Ack, ConnectReply};
use rsm_hal::{Error as _, Instant, Platform, Region};

/// What became of a delivered message.
pub(crate) enum Verdict {
    /// Taken (applied, answered, or dropped by the protocol's rules).
    Accept,
    /// Refused as invalid or unauthorised (counted); still consumed.
    Reject,
    /// No room now: not consumed, not acknowledged; the sender retransmits it.
    Defer,
}

fn status_of(r: Result<(), RsmError>) -> u16 {
    match r {
        Ok(()) => 0,
        Err(e) => u16::try_from(e.code()).unwrap_or(u16::MAX),
    }
}

/// The error an RSMERR code on the wire stands for (unknown codes → `RSMERR_INTERNAL_ERROR`).
pub(crate) fn error_of(status: u16) -> RsmError {
    RsmError::from_code(i32::from(status)).unwrap_or(RsmError::InternalError)
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// Receive one frame: the engine turns it into an event ([`crate::proto::Engine::on_frame`]);
    /// the node applies it to its tables.
    pub(crate) fn rx_frame(&self, st: &mut State<P, L, E, I, F>, now: Instant, frame: &[u8]) {
        let Some(inb) = st.net.on_frame(now, frame, &self.platform) else {
            return;
        };
        let (p, src) = (inb.p, inb.src);
        if inb.restarted {
            self.apply(st, p, src, Event::PeerRestarted { node: src });
        }
        let Some(ev) = inb.event else {
            return;
        };
        st.rx_direct = true;
        let consumed = self.deliver_in_order(st, p, src, ev);
        st.rx_direct = false;
        if consumed && st.net.has_early(p) {
            // Kept frames follow at once: this message's bytes go first, under the lock (the
            // rare path, recovering from a loss).
            if let Some(w) = st.rx_write.take() {
                let r = self.write_rx(&w, frame);
                self.finish_rx_write(st, w, r);
            }
            if let Some(w) = st.rx_import.take() {
                let r = self.write_import(&w, frame);
                self.finish_import_write(st, &w, r);
            }
            self.deliver_early(st, p, src);
        }
    }

    /// Apply the next in-order event of peer `p`; `true` if it was consumed.
    fn deliver_in_order(
        &self,
        st: &mut State<P, L, E, I, F>,
        p: usize,
        src: NodeId,
        ev: Event<'_>,
    ) -> bool {
        let consumed = !matches!(self.apply(st, p, src, ev), Verdict::Defer);
        st.net.delivered(p, consumed);
        consumed
    }

    /// Deliver the kept frames of peer `p` that are now in order. Out of line and cold: a
    /// kept frame is taken by value (up to `F` bytes), and the stack frame of every
    /// `handle_frame` would otherwise be sized (and probed, page by page) for it.
    #[inline(never)]
    #[cold]
    fn deliver_early(&self, st: &mut State<P, L, E, I, F>, p: usize, src: NodeId) {
        while let Some(e) = st.net.take_early(p) {
            // It parsed when it arrived; the bytes are unchanged.
            let Some(ev) = crate::proto::Engine::<F>::early_event(&e, &self.platform) else {
                return;
            };
            if !self.deliver_in_order(st, p, src, ev) {
                // Deferred: keep it (the sender may skip it, having been told we hold it).
                st.net.keep_early(e);
                return;
            }
        }
    }

    /// Apply one of the engine's events from peer `ix` (node `src`) to the tables.
    pub(crate) fn apply(
        &self,
        st: &mut State<P, L, E, I, F>,
        ix: usize,
        src: NodeId,
        ev: Event<'_>,
    ) -> Verdict {
        let v = match ev {
            Event::ConnectRequest { .. } => self.rx_connect_request(st, ix, src, &ev),
            Event::ConnectReply { .. } => self.rx_connect_reply(st, src, &ev),
            Event::Disconnect { import_id, segid } => {
                match Self::remote_import_of(st, src, import_id, segid) {
                    Some((i, g)) => {
                        if let Some(im) = st.imports.get_mut(i, g) {
                            im.aborted = true;
                        }
                        self.fail_import_ops(st, (i, g), RsmError::ConnAborted);
                        Verdict::Accept
                    }
                    None => Verdict::Reject,
                }
            }
            Event::ImportClosed { import_id, segid } => {
                let pos =
                    st.remote.importers.iter().position(|r| {
                        r.node == src && r.import_id == import_id && r.segid == segid
                    });
                // Unknown is normal after a forced disconnect: the record is already gone.
                if let Some(k) = pos {
                    st.remote.importers.swap_remove(k);
                }
                Verdict::Accept
            }
            Event::Notice => Verdict::Accept,
            Event::Bell { .. } => self.rx_bell(st, ix, src, &ev),
            Event::BellAnswer { op_id, status } => self.rx_bell_answer(st, src, op_id, status),
            Event::PutData { .. } => self.rx_put(st, ix, src, &ev),
            Event::GetRequest { .. } => self.rx_get_request(st, src, &ev),
            Event::GetData { .. } => self.rx_get_data(st, src, &ev),
            Event::Ack { .. } => self.rx_ack(st, src, &ev),
            Event::PeerRestarted { node } => {
                self.peer_restarted(st, node);
                Verdict::Accept
            }
            Event::PeerUnreachable { node } => {
                self.peer_unreachable(st, node);
                Verdict::Accept
            }
        };
        if matches!(v, Verdict::Reject) {
            st.net.stats.rejected += 1;
        }
        v
    }

    /// The connected remote import `import_id` of segment `segid` on node `src`.
    fn remote_import_of(
        st: &State<P, L, E, I, F>,
        src: NodeId,
        import_id: u32,
        segid: SegmentId,
    ) -> Option<(u16, u32)> {
        let (i, g) = st.imports.find_wire(import_id)?;
        let im = st.imports.get(i, g)?;
        let r = im.remote.as_ref()?;
        (im.node == src
            && im.segid == segid
            && r.import_id == import_id
            && r.state == RemoteState::Connected)
            .then_some((i, g))
    }

    /// Copy `len` bytes at `at` of `frame` into `region` at `off` (outside the table lock).
    fn copy_in(
        &self,
        region: &P::Region,
        off: usize,
        frame: &[u8],
        at: usize,
        len: usize,
    ) -> RsmResult<()> {
        let data = frame.get(at..at + len).ok_or(RsmError::InternalError)?;
        self.platform
            .write(region, off, data)
            .map_err(|e| copy_error(e.kind()))
    }

    /// Copy a deferred put fragment from `frame` into the exported memory (no lock needed:
    /// the export is held busy).
    pub(crate) fn write_rx(
        &self,
        w: &crate::proto::RxWrite<P::Region>,
        frame: &[u8],
    ) -> RsmResult<()> {
        self.copy_in(&w.region, w.off, frame, w.at, w.len)
    }

    /// Copy a deferred get answer fragment from `frame` into the importer's local memory (no
    /// lock needed: the region clone keeps the memory alive).
    pub(crate) fn write_import(
        &self,
        w: &crate::proto::ImportWrite<P::Region>,
        frame: &[u8],
    ) -> RsmResult<()> {
        self.copy_in(&w.region, w.off, frame, w.at, w.len)
    }

    /// After [`Self::write_import`]: complete the operation if that was its last byte, or fail
    /// it if the write failed. (If a timer ended it meanwhile, nothing changes.)
    pub(crate) fn finish_import_write(
        &self,
        st: &mut State<P, L, E, I, F>,
        w: &crate::proto::ImportWrite<P::Region>,
        result: RsmResult<()>,
    ) {
        match result {
            Err(e) => self.finish_op(st, w.op, Err(e)),
            Ok(()) if w.complete => self.finish_op(st, w.op, Ok(())),
            Ok(()) => {}
        }
    }

    /// After [`Self::write_rx`]: release the export, queue the acknowledgement (or, if the
    /// write failed, the failure: the importer's later entries are dropped).
    pub(crate) fn finish_rx_write(
        &self,
        st: &mut State<P, L, E, I, F>,
        w: crate::proto::RxWrite<P::Region>,
        result: RsmResult<()>,
    ) {
        st.release_export(w.export);
        let ack = match result {
            Ok(()) => w.ack,
            Err(e) => {
                if let Some(k) = Self::importer_of(st, w.src, w.import_id, w.segid) {
                    st.remote.importers[k].failed_op = Some(w.op_id);
                }
                Some(Ack {
                    op_id: w.op_id,
                    entry: w.entry,
                    status: status_of(Err(e)),
                    done_len: w.frag_offset,
                })
            }
        };
        if let Some(a) = ack {
            // Room was checked when the fragment arrived; only senders took from it since.
            let _ = st.net.queue_ctrl(w.ix, Msg::Ack(a));
        }
    }

    /// The index of the exporter's record of (node `src`, `import_id`) for `segid`, found
    /// through the peer's hint first.
    fn importer_of(
        st: &mut State<P, L, E, I, F>,
        src: NodeId,
        import_id: u32,
        segid: SegmentId,
    ) -> Option<usize> {
        let is = |r: &RemoteImporter| r.node == src && r.import_id == import_id && r.segid == segid;
        // A stream of frames names the same record: try the peer's last one first (O(1)).
        let hint = usize::try_from(src).ok()?;
        let last = usize::from(*st.remote.importer_hint.get(hint)?);
        if st.remote.importers.get(last).is_some_and(is) {
            return Some(last);
        }
        let k = st.remote.importers.iter().position(is)?;
        if let (Some(h), Ok(k8)) = (st.remote.importer_hint.get_mut(hint), u8::try_from(k)) {
            *h = k8;
        }
        Some(k)
    }

    /// What the exporter checks for every put or get of a remote importer: its segment is
    /// still the one it connected to (`RSMERR_CONN_ABORTED`), its permission has `need`
    /// (`RSMERR_PERM_DENIED`), and `offset .. offset + len` lies in the segment
    /// (`RSMERR_BAD_OFFSET`). Returns the offset.
    fn check_access(
        st: &State<P, L, E, I, F>,
        rec: &RemoteImporter,
        need: Permission,
        offset: u64,
        len: usize,
    ) -> Result<usize, RsmError> {
        let ex = st
            .live_export(rec.export, rec.epoch)
            .ok_or(RsmError::ConnAborted)?;
        if !rec.perm.contains(need) {
            return Err(RsmError::PermDenied);
        }
        let off = usize::try_from(offset).map_err(|_| RsmError::BadOffset)?;
        if off.checked_add(len).is_none_or(|end| end > ex.region.len()) {
            return Err(RsmError::BadOffset);
        }
        Ok(off)
    }

    fn rx_connect_request(
        &self,
        st: &mut State<P, L, E, I, F>,
        ix: usize,
        src: NodeId,
        ev: &Event<'_>,
    ) -> Verdict {
        let Event::ConnectRequest {
            request_id,
            import_id,
            segid,
            perm,
        } = *ev
        else {
            return Verdict::Reject;
        };
        if !st.net.ctrl_room(ix) {
            return Verdict::Defer;
        }
        // An import id the peer already uses (for any segment: only a hostile or confused
        // peer does that) replaces the old record, so that one id never names two imports.
        st.remote
            .importers
            .retain(|rec| !(rec.node == src && rec.import_id == import_id));
        let mut reply = ConnectReply {
            request_id,
            status: 0,
            permission: 0,
            segment_id: segid,
            segment_len: 0,
            owner_uid: 0,
            owner_gid: 0,
        };
        let found = st
            .exports
            .iter()
            .find(|(_, _, e)| e.published.as_ref().is_some_and(|p| p.segid == segid));
        let result = match found {
            _ if st.remote.leaving => Err(RsmError::SegNotPublished),
            None => Err(RsmError::SegNotPublished),
            Some((ei, eg, ex)) => {
                let acl = ex.published.as_ref().map(|p| &p.acl);
                match crate::acl::granted(acl, src) {
                    _ if ex.ctrl == crate::node::LOOPBACK => Err(RsmError::SegNotPublishedToNode),
                    None => Err(RsmError::SegNotPublishedToNode),
                    Some(granted) => {
                        reply.permission = granted.bits() as u16;
                        reply.segment_len = ex.region.len() as u64;
                        if !granted.contains(perm) {
                            Err(RsmError::PermDenied)
                        } else {
                            let rec = RemoteImporter {
                                node: src,
                                import_id,
                                segid,
                                export: (ei, eg),
                                epoch: ex.epoch,
                                perm,
                                failed_op: None,
                                bells: crate::proto::BellQueue::default(),
                            };
                            let held = st.remote.importers.iter().filter(|r| r.node == src).count();
                            if held >= crate::proto::MAX_IMPORTS_PER_PEER {
                                Err(RsmError::InsufficientResources)
                            } else {
                                st.remote
                                    .importers
                                    .push(rec)
                                    .map_err(|_| RsmError::InsufficientResources)
                            }
                        }
                    }
                }
            }
        };
        reply.status = status_of(result);
        // Room was checked above.
        let _ = st.net.queue_ctrl(ix, Msg::Reply(reply));
        Verdict::Accept
    }

    fn rx_connect_reply(
        &self,
        st: &mut State<P, L, E, I, F>,
        src: NodeId,
        ev: &Event<'_>,
    ) -> Verdict {
        let Event::ConnectReply {
            request_id,
            segid,
            status,
            granted,
            segment_len,
        } = *ev
        else {
            return Verdict::Reject;
        };
        let Some((oi, og)) = st.ops.find_wire(request_id) else {
            return Verdict::Reject;
        };
        let c = match st.ops.get(oi, og) {
            Some(OpSlot::Connect(c)) if c.node == src && c.sent && c.segid == segid => *c,
            _ => return Verdict::Reject,
        };
        let (ii, ig) = c.import;
        let result = if status != 0 {
            // The exporter kept no record.
            st.imports.remove(ii, ig);
            Err(error_of(status))
        } else if !granted.contains(c.perm) {
            self.close_remote_import(st, (ii, ig));
            Err(RsmError::PermDenied)
        } else {
            match (usize::try_from(segment_len), st.imports.get_mut(ii, ig)) {
                (Ok(size), Some(im)) => {
                    im.size = size;
                    if let Some(rm) = im.remote.as_mut() {
                        rm.state = RemoteState::Connected;
                    }
                    Ok(self.import_handle(ii, ig))
                }
                _ => {
                    self.close_remote_import(st, (ii, ig));
                    Err(RsmError::InternalError)
                }
            }
        };
        if let Some(slot) = st.ops.get_mut(oi, og) {
            *slot = OpSlot::Connected(result);
        }
        st.remote.wake = true;
        Verdict::Accept
    }

    /// A bell. One to the exporter is answered ([`wire::BELL_ACK_ENTRY`]): delivered, or
    /// `RSMERR_CONN_ABORTED` when this node has no live import by that importer (the
    /// segment was unpublished or destroyed, or the import is unknown).
    fn rx_bell(
        &self,
        st: &mut State<P, L, E, I, F>,
        ix: usize,
        src: NodeId,
        ev: &Event<'_>,
    ) -> Verdict {
        let Event::Bell {
            import_id,
            segid,
            op_id,
            to_exporter,
            no_accumulate: coalesce,
        } = *ev
        else {
            return Verdict::Reject;
        };
        if to_exporter {
            if !st.net.ctrl_room(ix) {
                return Verdict::Defer;
            }
            let rec = Self::importer_of(st, src, import_id, segid)
                .map(|k| st.remote.importers[k])
                .filter(|rec| st.live_export(rec.export, rec.epoch).is_some());
            let (verdict, status) = match rec {
                Some(rec) => {
                    if let Some(ex) = st.exports.get_mut(rec.export.0, rec.export.1) {
                        crate::events::ring(&mut ex.events, coalesce);
                    }
                    st.remote.wake = true;
                    (Verdict::Accept, 0)
                }
                None => (Verdict::Reject, status_of(Err(RsmError::ConnAborted))),
            };
            let answer = Ack {
                op_id,
                entry: wire::BELL_ACK_ENTRY,
                status,
                done_len: 0,
            };
            // Room was checked above.
            let _ = st.net.queue_ctrl(ix, Msg::Ack(answer));
            return verdict;
        } else {
            let Some((i, g)) = Self::remote_import_of(st, src, import_id, segid) else {
                return Verdict::Reject;
            };
            match st.imports.get_mut(i, g) {
                Some(im) if !im.aborted => crate::events::ring(&mut im.events, coalesce),
                _ => return Verdict::Reject,
            }
        }
        st.remote.wake = true;
        Verdict::Accept
    }

    fn rx_put(
        &self,
        st: &mut State<P, L, E, I, F>,
        ix: usize,
        src: NodeId,
        ev: &Event<'_>,
    ) -> Verdict {
        let Event::PutData {
            import_id,
            segid,
            op_id,
            entry,
            offset,
            frag,
            total,
            data,
            at,
        } = *ev
        else {
            return Verdict::Reject;
        };
        if !st.net.ctrl_room(ix) {
            return Verdict::Defer;
        }
        let Some(k) = Self::importer_of(st, src, import_id, segid) else {
            return Verdict::Reject;
        };
        let rec = st.remote.importers[k];
        if rec.failed_op == Some(op_id) {
            // A later entry of a vector that already failed: dropped (DESIGN §4).
            return Verdict::Accept;
        }
        let checked = Self::check_access(st, &rec, Permission::WRITE, offset, total as usize);
        let quiesced = st
            .exports
            .get(rec.export.0, rec.export.1)
            .is_some_and(|ex| ex.quiesced);
        if quiesced {
            return Verdict::Defer;
        }
        let frag_offset = frag;
        let frag = frag as usize;
        let last = frag + data.len() == total as usize;
        // The frame handle_frame holds: copy its bytes after the table lock is released,
        // holding the export busy meanwhile (issue 9 §2: no HAL copy under the spin lock).
        if let (true, false, Ok(roff)) = (st.rx_direct, data.is_empty(), &checked) {
            if let Some(ex) = st.exports.get_mut(rec.export.0, rec.export.1) {
                ex.busy += 1;
                let region = ex.region.clone();
                st.rx_write = Some(crate::proto::RxWrite {
                    region,
                    off: roff + frag,
                    at,
                    len: data.len(),
                    export: rec.export,
                    ix,
                    src,
                    import_id,
                    segid,
                    ack: last.then_some(Ack {
                        op_id,
                        entry,
                        status: 0,
                        done_len: total,
                    }),
                    op_id,
                    entry,
                    frag_offset,
                });
                return Verdict::Accept;
            }
        }
        let result = checked.and_then(|roff| {
            if data.is_empty() {
                return Ok(());
            }
            let ex = st
                .exports
                .get(rec.export.0, rec.export.1)
                .ok_or(RsmError::ConnAborted)?;
            self.platform
                .write(&ex.region, roff + frag, data)
                .map_err(|e| copy_error(e.kind()))
        });
        let mut verdict = Verdict::Accept;
        let ack = match result {
            Ok(()) if !last => None,
            Ok(()) => Some(Ack {
                op_id,
                entry,
                status: 0,
                done_len: total,
            }),
            Err(e) => {
                if matches!(e, RsmError::PermDenied | RsmError::BadOffset) {
                    verdict = Verdict::Reject;
                }
                st.remote.importers[k].failed_op = Some(op_id);
                Some(Ack {
                    op_id,
                    entry,
                    status: status_of(Err(e)),
                    done_len: frag_offset,
                })
            }
        };
        if let Some(a) = ack {
            // Room was checked above.
            let _ = st.net.queue_ctrl(ix, Msg::Ack(a));
        }
        verdict
    }

    fn rx_get_request(
        &self,
        st: &mut State<P, L, E, I, F>,
        src: NodeId,
        ev: &Event<'_>,
    ) -> Verdict {
        let Event::GetRequest {
            import_id,
            segid,
            op_id,
            entry,
            offset,
            len,
        } = *ev
        else {
            return Verdict::Reject;
        };
        let mine = st.remote.jobs.iter().filter(|j| j.node == src).count();
        if st.remote.jobs.is_full() || mine >= crate::proto::MAX_GET_JOBS_PER_PEER {
            return Verdict::Defer;
        }
        let Some(k) = Self::importer_of(st, src, import_id, segid) else {
            return Verdict::Reject;
        };
        let rec = st.remote.importers[k];
        if rec.failed_op == Some(op_id) {
            return Verdict::Accept;
        }
        let checked = Self::check_access(st, &rec, Permission::READ, offset, len as usize);
        let mut verdict = Verdict::Accept;
        let job = match checked {
            Ok(off) => GetJob {
                node: src,
                export: rec.export,
                epoch: rec.epoch,
                op_id,
                entry,
                offset: off,
                len: len as usize,
                sent: 0,
                status: 0,
            },
            Err(e) => {
                if matches!(e, RsmError::PermDenied | RsmError::BadOffset) {
                    verdict = Verdict::Reject;
                }
                st.remote.importers[k].failed_op = Some(op_id);
                GetJob {
                    node: src,
                    export: rec.export,
                    epoch: rec.epoch,
                    op_id,
                    entry,
                    offset: 0,
                    len: 0,
                    sent: 0,
                    status: status_of(Err(e)),
                }
            }
        };
        // Room was checked above.
        let _ = st.remote.jobs.push(job);
        verdict
    }

    /// The running remote operation an answer from `src` is for: `op_id` in direction `dir`,
    /// whose next entry is `entry`. An error `status` ends the operation here. `Err` carries
    /// the verdict when there is nothing more to do.
    fn answer_to(
        &self,
        st: &mut State<P, L, E, I, F>,
        src: NodeId,
        op_id: u32,
        dir: Direction,
        entry: u16,
        status: u16,
    ) -> Result<(u16, u32), Verdict> {
        let (i, g) = st.ops.find_wire(op_id).ok_or(Verdict::Reject)?;
        match st.ops.get(i, g) {
            Some(OpSlot::Remote(op))
                if op.node == src
                    && op.dir == dir
                    && op.bell == BellState::None
                    && usize::from(entry) == op.done => {}
            _ => return Err(Verdict::Reject),
        }
        if status != 0 {
            self.finish_op(st, (i, g), Err(error_of(status)));
            return Err(Verdict::Accept);
        }
        Ok((i, g))
    }

    fn rx_get_data(&self, st: &mut State<P, L, E, I, F>, src: NodeId, ev: &Event<'_>) -> Verdict {
        let Event::GetData {
            op_id,
            entry,
            status,
            frag,
            total,
            data,
            at,
        } = *ev
        else {
            return Verdict::Reject;
        };
        let (i, g) = match self.answer_to(st, src, op_id, Direction::Get, entry, status) {
            Ok(op) => op,
            Err(v) => return v,
        };
        let Some(OpSlot::Remote(op)) = st.ops.get_mut(i, g) else {
            return Verdict::Reject;
        };
        let (_, len) = op.entry(op.done);
        let frag = frag as usize;
        if total as usize != len || frag != op.recv || frag + data.len() > len {
            return Verdict::Reject;
        }
        let k = op.done;
        // The frame handle_frame holds: write its bytes after the table lock is released
        // (issue 9 §2), through a clone of the local region; completion waits for the write.
        if let (true, false, Src::Plan(plan)) = (st.rx_direct, data.is_empty(), &op.src) {
            if let (Some(s), Some(local)) = (plan.get(k), crate::sg::local_of(plan, k)) {
                let w = crate::proto::ImportWrite {
                    region: local.clone(),
                    off: s.local_off + frag,
                    at,
                    len: data.len(),
                    op: (i, g),
                    complete: false,
                };
                op.recv += data.len();
                if op.recv == len {
                    op.recv = 0;
                    op.done += 1;
                }
                let complete = op.done as u64 == op.count;
                st.rx_import = Some(crate::proto::ImportWrite { complete, ..w });
                return Verdict::Accept;
            }
        }
        let written = match &mut op.src {
            Src::Inline { data: buf, .. } => match buf.get_mut(frag..frag + data.len()) {
                Some(dst) => {
                    dst.copy_from_slice(data);
                    Ok(())
                }
                None => Err(RsmError::BadLength),
            },
            Src::Plan(plan) => match (plan.get(k), crate::sg::local_of(plan, k)) {
                (Some(_), _) if data.is_empty() => Ok(()),
                (Some(s), Some(local)) => self
                    .platform
                    .write(local, s.local_off + frag, data)
                    .map_err(|e| copy_error(e.kind())),
                _ => Err(RsmError::BadSgio),
            },
        };
        if let Err(e) = written {
            self.finish_op(st, (i, g), Err(e));
            return Verdict::Accept;
        }
        op.recv += data.len();
        if op.recv == len {
            op.recv = 0;
            op.done += 1;
            if op.done as u64 == op.count {
                self.finish_op(st, (i, g), Ok(()));
            }
        }
        Verdict::Accept
    }

    /// The exporter's answer to a bell: the post completes with it.
    fn rx_bell_answer(
        &self,
        st: &mut State<P, L, E, I, F>,
        src: NodeId,
        op_id: u32,
        status: u16,
    ) -> Verdict {
        let Some((i, g)) = st.ops.find_wire(op_id) else {
            return Verdict::Reject;
        };
        match st.ops.get(i, g) {
            Some(OpSlot::Remote(op)) if op.node == src && op.bell == BellState::Sent => {}
            _ => return Verdict::Reject,
        }
        let result = if status == 0 {
            Ok(())
        } else {
            Err(error_of(status))
        };
        self.finish_op(st, (i, g), result);
        Verdict::Accept
    }

    fn rx_ack(&self, st: &mut State<P, L, E, I, F>, src: NodeId, ev: &Event<'_>) -> Verdict {
        let Event::Ack {
            op_id,
            entry,
            status,
            done,
        } = *ev
        else {
            return Verdict::Reject;
        };
        let (i, g) = match self.answer_to(st, src, op_id, Direction::Put, entry, status) {
            Ok(op) => op,
            Err(v) => return v,
        };
        let Some(OpSlot::Remote(op)) = st.ops.get_mut(i, g) else {
            return Verdict::Reject;
        };
        let (_, len) = op.entry(op.done);
        if done as usize != len {
            return Verdict::Reject;
        }
        op.done += 1;
        if op.done as u64 == op.count {
            self.finish_op(st, (i, g), Ok(()));
        }
        Verdict::Accept
    }
}
