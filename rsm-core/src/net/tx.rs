//! Sending, the node's side: the node layer as the engine's [`Source`] — which control and
//! data message goes out next for a peer, and rendering a message descriptor into a frame
//! straight in the caller's buffer (again for every retransmission); reading a message's
//! data into its frame after the table lock is released.

use crate::error::RsmError;
use crate::node::{Export, Import, Rsm, State};
use crate::op::OpSlot;
use crate::proto::{
    BellState, Msg, Next, RemoteState, Serving, Source, Src, TxRead, MAX_FRAME_LIMIT,
};
use crate::sg::{copy_error, Direction};
use crate::table::wire_id;
use crate::table::Table;
use crate::types::NodeId;
use crate::wire::{
    self, Bell, ConnectRequest, Disconnect, Frame, GetData, GetRequest, Header, HeaderRepr,
    ImportNotice, Message, PutData, ETHERNET_HEADER_LEN, FRAME_OVERHEAD, GET_DATA_FIXED_LEN,
    PUT_DATA_FIXED_LEN,
};
use crate::MAX_PENDING_OPS;
use rsm_hal::{Error as _, Instant, Platform};

/// Placeholder data for put/get data frames: the real bytes are read straight into the frame.
static ZEROS: [u8; MAX_FRAME_LIMIT] = [0; MAX_FRAME_LIMIT];

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// The next frame into `buf`: the engine chooses and frames it, the node's tables are its
    /// [`Source`]; an operation that failed while rendered is failed here.
    pub(crate) fn tx_next(
        &self,
        st: &mut State<P, L, E, I, F>,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<usize> {
        let mut out = Out::<P, E, I, F> {
            platform: &self.platform,
            ops: &mut st.ops,
            exports: &mut st.exports,
            imports: &mut st.imports,
            remote: &mut st.remote,
            tx_read: &mut st.tx_read,
            failed: None,
        };
        let n = st.net.poll_transmit(now, &mut out, &self.platform, buf);
        if let Some((op, e)) = out.failed {
            self.finish_op(st, op, Err(e));
        }
        n
    }

    /// Read a put fragment's bytes (rendered without them) from the operation's local memory
    /// into `frame` and seal it; outside the table lock. If the read fails (it cannot for a
    /// validated vector) the bytes are zeroes and `true` says so: the caller fails the
    /// operation. Returns the length and that flag.
    pub(crate) fn read_put(
        &self,
        t: &crate::proto::TxRead<P::Region>,
        frame: &mut [u8],
    ) -> (usize, bool) {
        let Some(dst) = frame.get_mut(t.at..t.at + t.len) else {
            return (0, true);
        };
        let failed = self.platform.read(&t.region, t.off, dst).is_err();
        if failed {
            dst.fill(0);
        }
        wire::seal_with(frame, &self.platform);
        (frame.len(), failed)
    }

    /// Read a get answer's bytes (rendered without them) into `frame` and seal it; outside
    /// the table lock. If the read fails (it cannot for a checked range) the frame becomes
    /// an error answer for that entry instead — never stale bytes. Returns the length.
    pub(crate) fn read_tx(&self, t: &crate::proto::TxRead<P::Region>, frame: &mut [u8]) -> usize {
        let len = frame.len();
        let ok = frame
            .get_mut(t.at..t.at + t.len)
            .is_some_and(|dst| self.platform.read(&t.region, t.off, dst).is_ok());
        if ok {
            wire::seal_with(frame, &self.platform);
            return len;
        }
        // Rebuild as an error answer from the fields already in the frame.
        let Some(rest) = frame.get(ETHERNET_HEADER_LEN..) else {
            return 0;
        };
        let h = Header::new_unchecked(rest);
        let header = HeaderRepr {
            flags: h.flags(),
            src_node: h.src_node(),
            dst_node: h.dst_node(),
            incarnation: h.incarnation(),
            peer_incarnation: h.peer_incarnation(),
            seq: h.seq(),
            ack: h.ack(),
        };
        let body = h.payload();
        let (Some(op), Some(en)) = (body.get(0..4), body.get(4..6)) else {
            return 0;
        };
        let m = Message::GetData(GetData {
            op_id: u32::from_be_bytes([op[0], op[1], op[2], op[3]]),
            entry: u16::from_be_bytes([en[0], en[1]]),
            status: RsmError::BadAddr.code() as u16,
            frag_offset: 0,
            total_len: 0,
            data: &[],
        });
        Frame { header, message: m }
            .emit_with(frame, &self.platform)
            .unwrap_or(0)
    }
}

/// The node layer as the engine's [`Source`]: its tables (borrowed apart from the engine, in
/// the same lock), the platform for the checksum and inline reads, and what the engine's
/// call leaves for the node to apply afterwards.
pub(crate) struct Out<'a, P: Platform, const E: usize, const I: usize, const F: usize> {
    pub(crate) platform: &'a P,
    pub(crate) ops: &'a mut Table<OpSlot<P::Region>, MAX_PENDING_OPS>,
    pub(crate) exports: &'a mut Table<Export<P::Region, P::Pin>, E>,
    pub(crate) imports: &'a mut Table<Import<P::Region, P::Pin>, I>,
    pub(crate) remote: &'a mut Serving,
    /// Set by a render whose data is read after the lock is released.
    pub(crate) tx_read: &'a mut Option<TxRead<P::Region>>,
    /// An operation that failed while its message was rendered: the node fails it after the
    /// engine returns.
    pub(crate) failed: Option<((u16, u32), RsmError)>,
}

impl<P: Platform, const E: usize, const I: usize, const F: usize> Source for Out<'_, P, E, I, F> {
    fn control(&mut self, node: NodeId) -> Option<Msg> {
        self.next_control(node)
    }

    fn data(&mut self, node: NodeId, limit: usize) -> Option<Next> {
        // f. Answers to get requests, in the order they came; g. put data and get requests of
        // the oldest operation with something to send.
        self.next_get_data(node, limit).or_else(|| {
            self.next_op_message(node, limit)
                .map(|msg| Next { msg, room: false })
        })
    }

    fn render(&mut self, header: &HeaderRepr, msg: &Msg, out: &mut [u8]) -> Option<usize> {
        self.render_msg(header, msg, out)
    }
}

impl<P: Platform, const E: usize, const I: usize, const F: usize> Out<'_, P, E, I, F> {
    /// Export `export` if it is still the published segment of epoch `epoch`.
    fn live_export(&self, export: (u16, u32), epoch: u32) -> Option<&Export<P::Region, P::Pin>> {
        let ex = self.exports.get(export.0, export.1)?;
        (ex.epoch == epoch && ex.published.is_some()).then_some(ex)
    }

    /// The frame of `msg` with `header`, into `out`.
    fn render_msg(&mut self, header: &HeaderRepr, msg: &Msg, out: &mut [u8]) -> Option<usize> {
        let header = *header;
        let simple = |m: Message<'_>, out: &mut [u8]| {
            Frame { header, message: m }
                .emit_with(out, self.platform)
                .ok()
        };
        match *msg {
            Msg::Reply(r) => simple(Message::ConnectReply(r), out),
            Msg::Ack(a) => simple(Message::Ack(a), out),
            Msg::Connect(c) => simple(Message::ConnectRequest(c), out),
            Msg::Disconnect(d) => simple(Message::Disconnect(d), out),
            Msg::NotImporting(n) => simple(Message::NotImporting(n), out),
            Msg::Bell(b) => simple(Message::Bell(b), out),
            Msg::GetRequest(r) => simple(Message::GetRequest(r), out),
            Msg::Put {
                op,
                import_id,
                segid,
                entry,
                roff,
                frag,
                total,
                chunk,
            } => {
                let chunk = usize::from(chunk);
                // The source, if the operation still runs.
                let live = match self.ops.get(op.0, op.1) {
                    Some(OpSlot::Remote(o)) if o.dir == Direction::Put => Some(()),
                    _ => None,
                };
                let n = if live.is_some() { chunk } else { 0 };
                let put = PutData {
                    import_id,
                    segment_id: segid,
                    op_id: wire_id(op.0, op.1),
                    entry,
                    remote_offset: roff,
                    frag_offset: frag,
                    total_len: total,
                    data: &ZEROS[..n],
                };
                let m = Message::PutData(put);
                if n == 0 {
                    return Frame { header, message: m }
                        .emit_with(out, self.platform)
                        .ok();
                }
                let Ok(len) = Frame { header, message: m }.emit_without_data(out) else {
                    // Cut for a larger frame than the one in use now (the frame size shrank
                    // while it was in flight): fail the operation and send the no-data
                    // no-op, which keeps the sequence — never leave a number unsent.
                    self.failed = Some((op, RsmError::InsufficientResources));
                    let empty = Message::PutData(PutData { data: &[], ..put });
                    return Frame {
                        header,
                        message: empty,
                    }
                    .emit_with(out, self.platform)
                    .ok();
                };
                let start = FRAME_OVERHEAD + PUT_DATA_FIXED_LEN;
                let frag = frag as usize;
                // A vector's bytes are read into the frame after the table lock is released
                // (poll_transmit), through a clone of the local region; it seals the frame.
                if let Some(OpSlot::Remote(o)) = self.ops.get(op.0, op.1) {
                    if let Src::Plan(plan) = &o.src {
                        let k = usize::from(entry);
                        if let (Some(s), Some(local)) = (plan.get(k), crate::sg::local_of(plan, k))
                        {
                            *self.tx_read = Some(crate::proto::TxRead {
                                region: local.clone(),
                                off: s.local_off + frag,
                                at: start,
                                len: n,
                                hold: crate::proto::TxHold::Op(op),
                            });
                            return Some(len);
                        }
                    }
                }
                let dst = out.get_mut(start..start + n)?;
                let read = match self.ops.get(op.0, op.1) {
                    Some(OpSlot::Remote(o)) => match &o.src {
                        Src::Inline { data, .. } => match data.get(frag..frag + n) {
                            Some(src) => {
                                dst.copy_from_slice(src);
                                Ok(())
                            }
                            None => Err(RsmError::BadLength),
                        },
                        Src::Plan(plan) => {
                            let k = usize::from(entry);
                            match (plan.get(k), crate::sg::local_of(plan, k)) {
                                (Some(s), Some(local)) => self
                                    .platform
                                    .read(local, s.local_off + frag, dst)
                                    .map_err(|e| copy_error(e.kind())),
                                _ => Err(RsmError::BadSgio),
                            }
                        }
                    },
                    _ => Err(RsmError::BadSgio),
                };
                if let Err(e) = read {
                    // Cannot happen for a validated vector; fail the operation, and send
                    // nothing the exporter could mistake for data.
                    out[start..start + n].fill(0);
                    self.failed = Some((op, e));
                }
                wire::seal_with(&mut out[..len], self.platform);
                Some(len)
            }
            Msg::GetData {
                export,
                epoch,
                op_id,
                entry,
                status,
                base,
                frag,
                total,
                chunk,
            } => {
                let region = self.live_export(export, epoch).map(|ex| ex.region.clone());
                let (status, frag, total, n) = match (&region, status) {
                    (Some(_), 0) => (0, frag, total, usize::from(chunk)),
                    (None, 0) => (RsmError::ConnAborted.code() as u16, 0, 0, 0),
                    (_, s) => (s, 0, 0, 0),
                };
                let m = Message::GetData(GetData {
                    op_id,
                    entry,
                    status,
                    frag_offset: frag,
                    total_len: total,
                    data: &ZEROS[..n],
                });
                let Ok(len) = Frame { header, message: m }.emit_without_data(out) else {
                    // Cut for a larger frame than the one in use now: answer this entry with
                    // an error instead (the sequence number is still sent).
                    let m = Message::GetData(GetData {
                        op_id,
                        entry,
                        status: RsmError::InsufficientResources.code() as u16,
                        frag_offset: 0,
                        total_len: 0,
                        data: &[],
                    });
                    return Frame { header, message: m }
                        .emit_with(out, self.platform)
                        .ok();
                };
                if let (Some(r), true) = (region, n > 0) {
                    // The bytes are read into the frame after the table lock is released
                    // (poll_transmit), the export held busy meanwhile; it seals the frame.
                    if let Some(ex) = self.exports.get_mut(export.0, export.1) {
                        ex.busy += 1;
                        *self.tx_read = Some(crate::proto::TxRead {
                            region: r,
                            off: base + frag as usize,
                            at: FRAME_OVERHEAD + GET_DATA_FIXED_LEN,
                            len: n,
                            hold: crate::proto::TxHold::Export(export),
                        });
                        return Some(len);
                    }
                }
                // No data to read after all (the export went away just now): zeroes, never
                // the bytes the buffer held before.
                if let Some(d) = out
                    .get_mut(FRAME_OVERHEAD + GET_DATA_FIXED_LEN..)
                    .and_then(|d| d.get_mut(..n))
                {
                    d.fill(0);
                }
                wire::seal_with(&mut out[..len], self.platform);
                Some(len)
            }
        }
    }

    /// The next control message to `node` (b–e of the engine's order of new messages), found by scanning
    /// the tables: only called while [`crate::proto::Engine::ctrl_work`] has its bit.
    fn next_control(&mut self, node: NodeId) -> Option<Msg> {
        // b. Connect requests.
        let connect = self.ops.iter().find_map(|(i, g, op)| match op {
            OpSlot::Connect(c) if c.node == node && !c.sent => Some((i, g, *c)),
            _ => None,
        });
        if let Some((i, g, c)) = connect {
            if let Some(OpSlot::Connect(c)) = self.ops.get_mut(i, g) {
                c.sent = true;
            }
            return Some(Msg::Connect(ConnectRequest {
                segment_id: c.segid,
                request_id: wire_id(i, g),
                import_id: wire_id(c.import.0, c.import.1),
                permission: c.perm.bits() as u16,
            }));
        }
        // c. Forced disconnects of importers whose segment went away (spec §6.4), or of every
        //    importer once the node leaves the cluster (`Rsm::net_leave`).
        let gone = self.remote.importers.iter().position(|r| {
            r.node == node && (self.remote.leaving || self.live_export(r.export, r.epoch).is_none())
        });
        if let Some(k) = gone {
            let r = self.remote.importers.swap_remove(k);
            return Some(Msg::Disconnect(Disconnect {
                segment_id: r.segid,
                import_id: r.import_id,
                generation: r.epoch.wrapping_add(1) as u16,
                forced: true,
            }));
        }
        // d. Imports the application disconnected: tell the exporter, free the slot.
        let closing = self.imports.iter().find_map(|(i, g, im)| {
            let r = im.remote.as_ref()?;
            (im.node == node && r.state == RemoteState::Closing).then_some((
                i,
                g,
                im.segid,
                r.import_id,
            ))
        });
        if let Some((i, g, segid, import_id)) = closing {
            self.imports.remove(i, g);
            self.remote.wake = true;
            return Some(Msg::NotImporting(ImportNotice {
                segment_id: segid,
                import_id,
            }));
        }
        // e. Bells, importer → exporter, then exporter → importers.
        self.next_bell(node).map(Msg::Bell)
    }

    fn next_bell(&mut self, node: NodeId) -> Option<Bell> {
        let take = |q: &mut crate::proto::BellQueue, base: u16| -> Option<u16> {
            q.take().map(|na| {
                if na {
                    base | wire::BELL_NO_ACCUMULATE
                } else {
                    base
                }
            })
        };
        // The oldest due bell of an operation (a post, or a vector's implicit sigpost).
        let due = self
            .ops
            .iter()
            .filter_map(|(i, g, op)| match op {
                OpSlot::Remote(o) if o.node == node && o.bell == BellState::Due => {
                    Some((o.seq, i, g))
                }
                _ => None,
            })
            .min();
        if let Some((_, i, g)) = due {
            if let Some(OpSlot::Remote(o)) = self.ops.get_mut(i, g) {
                o.bell = BellState::Sent;
                let na = if o.sigpost == Some(true) {
                    wire::BELL_NO_ACCUMULATE
                } else {
                    0
                };
                return Some(Bell {
                    segment_id: o.segid,
                    import_id: o.import_id,
                    flags: wire::BELL_TO_EXPORTER | na,
                    op_id: wire_id(i, g),
                });
            }
        }
        {
            self.remote.importers.iter_mut().find_map(|r| {
                if r.node != node {
                    return None;
                }
                let flags = take(&mut r.bells, 0)?;
                Some(Bell {
                    segment_id: r.segid,
                    import_id: r.import_id,
                    flags,
                    op_id: 0,
                })
            })
        }
    }

    fn next_get_data(&mut self, node: NodeId, limit: usize) -> Option<Next> {
        let k = self.remote.jobs.iter().position(|j| j.node == node)?;
        let job = self.remote.jobs[k];
        let cap = wire::get_data_capacity(limit).min(F);
        let chunk = (job.len - job.sent).min(cap);
        if job.status == 0 && chunk == 0 && job.len > job.sent {
            return None;
        }
        let m = Msg::GetData {
            export: job.export,
            epoch: job.epoch,
            op_id: job.op_id,
            entry: job.entry,
            status: job.status,
            base: job.offset,
            frag: job.sent as u32,
            total: job.len as u32,
            chunk: chunk as u16,
        };
        let sent = job.sent + chunk;
        // The job's last fragment frees its slot.
        let room = job.status != 0 || sent >= job.len;
        if room {
            self.remote.jobs.remove(k);
        } else {
            self.remote.jobs[k].sent = sent;
        }
        Some(Next { msg: m, room })
    }

    fn next_op_message(&mut self, node: NodeId, limit: usize) -> Option<Msg> {
        let (seq, i, g) = self
            .ops
            .iter()
            .filter_map(|(i, g, op)| match op {
                OpSlot::Remote(op) if op.node == node && (op.next_entry as u64) < op.count => {
                    Some((op.seq, i, g))
                }
                _ => None,
            })
            .min()?;
        // Order on one import: put data waits until every earlier get on it has all its
        // answers (the exporter reads a get's data when it sends it, so a later write must
        // not reach the segment before that).
        if let Some(OpSlot::Remote(op)) = self.ops.get(i, g) {
            let import = op.import;
            let waits = op.dir == Direction::Put
                && self.ops.iter().any(|(_, _, o)| {
                    matches!(o, OpSlot::Remote(o)
                        if o.import == import && o.dir == Direction::Get && o.seq < seq)
                });
            if waits {
                return None;
            }
        }
        let Some(OpSlot::Remote(op)) = self.ops.get_mut(i, g) else {
            return None;
        };
        let k = op.next_entry;
        let (roff, len) = op.entry(k);
        match op.dir {
            Direction::Get => {
                op.next_entry += 1;
                Some(Msg::GetRequest(GetRequest {
                    import_id: op.import_id,
                    segment_id: op.segid,
                    op_id: wire_id(i, g),
                    entry: k as u16,
                    remote_offset: roff as u64,
                    length: len as u32,
                }))
            }
            Direction::Put => {
                let frag = op.next_frag;
                let cap = wire::put_data_capacity(limit).min(F);
                let chunk = (len - frag).min(cap);
                if chunk == 0 && len > 0 {
                    return None;
                }
                op.next_frag += chunk;
                if op.next_frag >= len {
                    op.next_frag = 0;
                    op.next_entry += 1;
                }
                Some(Msg::Put {
                    op: (i, g),
                    import_id: op.import_id,
                    segid: op.segid,
                    entry: k as u16,
                    roff: roff as u64,
                    frag: frag as u32,
                    total: len as u32,
                    chunk: chunk as u16,
                })
            }
        }
    }
}
