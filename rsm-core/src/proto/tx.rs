//! Sending: which frame goes out next, built straight into the caller's buffer, and kept in
//! the pool until the peer acknowledges it.

use super::{Ctrl, RemoteState, FRAME_BUF, HELLO_INTERVAL_NS};
use crate::node::{Rsm, State};
use crate::ops::OpSlot;
use crate::sg::Direction;
use crate::table::Table;
use crate::types::NodeId;
use crate::wire::{
    self, Bell, Disconnect, GetData, GetRequest, Header, HeaderRepr, Hello, ImportNotice, Message,
    PutData, ConnectRequest, ETHERNET_HEADER_LEN, FLAG_ACK, FLAG_RETRANSMIT, FRAME_OVERHEAD,
    GET_DATA_FIXED_LEN, NODE_BROADCAST, PUT_DATA_FIXED_LEN,
};
use rsm_hal::{Error as _, Instant, Platform};

/// Placeholder data for put/get data frames: the real bytes are read straight into the frame.
static ZEROS: [u8; FRAME_BUF] = [0; FRAME_BUF];

/// Set the acknowledgement of a stored frame for this transmission and seal it with the CRC.
fn seal(frame: &mut [u8], ack: u32, retransmit: bool) {
    if let Some(rest) = frame.get_mut(ETHERNET_HEADER_LEN..) {
        let mut h = Header::new_unchecked(rest);
        let mut flags = h.flags() | FLAG_ACK;
        if retransmit {
            flags |= FLAG_RETRANSMIT;
        }
        h.set_flags(flags);
        h.set_ack(ack);
        h.fill_checksum();
    }
}

impl<P: Platform, const L: usize, const E: usize, const I: usize> Rsm<P, L, E, I> {
    /// The next frame of any peer (round robin), then the broadcast hello.
    pub(crate) fn tx_next(
        &self,
        st: &mut State<P, L, E, I>,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<usize> {
        let n = st.net.peers.len();
        for k in 0..n {
            let p = (st.net.rr + k) % n;
            if let Some(len) = self.tx_peer(st, p, now, buf) {
                st.net.rr = (p + 1) % n;
                return Some(len);
            }
        }
        if now >= st.net.next_hello {
            st.net.next_hello = now.add_nanos(HELLO_INTERVAL_NS);
            return self.emit_hello(st, NODE_BROADCAST, 0, None, buf);
        }
        None
    }

    fn emit_hello(
        &self,
        st: &State<P, L, E, I>,
        dst: u8,
        peer_inc: u64,
        ack: Option<u32>,
        buf: &mut [u8],
    ) -> Option<usize> {
        let header = HeaderRepr {
            flags: if ack.is_some() { FLAG_ACK } else { 0 },
            src_node: st.net.node as u8,
            dst_node: dst,
            incarnation: st.net.inc,
            peer_incarnation: peer_inc,
            seq: 0,
            ack: ack.unwrap_or(0),
        };
        let hello = Hello {
            incarnation: st.net.inc,
            max_frame: st.net.max_frame as u16,
        };
        wire::emit(&header, &Message::Hello(hello), buf).ok()
    }

    fn tx_peer(
        &self,
        st: &mut State<P, L, E, I>,
        p: usize,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<usize> {
        if p as NodeId == st.net.node {
            return None;
        }
        let peer = &st.net.peers[p];
        if peer.inc == 0 {
            if peer.hello_due {
                st.net.peers[p].hello_due = false;
                return self.emit_hello(st, p as u8, 0, None, buf);
            }
            return None;
        }
        // 1. Frames of the window not transmitted since the last (re)start of the cursor.
        if peer.cursor < peer.inflight.len() {
            let peer = &mut st.net.peers[p];
            let cursor = peer.cursor;
            let expected = peer.expected;
            let sent = peer.inflight.iter_mut().nth(cursor)?;
            sent.tx = sent.tx.saturating_add(1);
            let (b, len, again) = (sent.buf, usize::from(sent.len), sent.tx > 1);
            peer.cursor += 1;
            peer.ack_due = false;
            peer.hello_due = false;
            if peer.rto_at.is_none() {
                peer.rto_at = Some(now.add_nanos(peer.rto));
            }
            let out = buf.get_mut(..len)?;
            out.copy_from_slice(st.net.pool.get(b, len));
            seal(out, expected, again);
            if again {
                st.net.stats.retransmits += 1;
            }
            return Some(len);
        }
        // 2. A new message, if the window and the pool have room.
        if peer.window_open() && st.net.pool.available() > 0 {
            let seq = peer.next_seq;
            if let Some(len) = self.gen_message(st, p, seq, now, buf) {
                let out = buf.get_mut(..len)?;
                let b = st.net.pool.store(out)?;
                let peer = &mut st.net.peers[p];
                peer.next_seq = seq.wrapping_add(1);
                peer.push_sent(seq, b, len, now);
                peer.ack_due = false;
                peer.hello_due = false;
                seal(out, peer.expected, false);
                return Some(len);
            }
        }
        // 3. A pure acknowledgement (a unicast hello).
        let peer = &mut st.net.peers[p];
        if peer.ack_due || peer.hello_due {
            peer.ack_due = false;
            peer.hello_due = false;
            let (inc, ack) = (peer.inc, peer.expected);
            return self.emit_hello(st, p as u8, inc, Some(ack), buf);
        }
        None
    }

    /// Build the next sequenced message for peer `p` into `buf` (without ack and CRC).
    fn gen_message(
        &self,
        st: &mut State<P, L, E, I>,
        p: usize,
        seq: u32,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<usize> {
        let node = p as NodeId;
        let peer = &st.net.peers[p];
        let limit = st.net.frame_for(peer).min(buf.len());
        let header = HeaderRepr {
            flags: 0,
            src_node: st.net.node as u8,
            dst_node: p as u8,
            incarnation: st.net.inc,
            peer_incarnation: peer.inc,
            seq,
            ack: 0,
        };
        let out = &mut buf[..limit];
        let emit = |m: Message<'_>, out: &mut [u8]| wire::emit(&header, &m, out).ok();

        // a. Replies and acknowledgements.
        if let Some(c) = st.net.peers[p].ctrl.pop_front() {
            let m = match c {
                Ctrl::Reply(r) => Message::ConnectReply(r),
                Ctrl::Ack(a) => Message::Ack(a),
            };
            return emit(m, out);
        }
        // b. Connect requests.
        let connect = st.ops.iter().find_map(|(i, g, op)| match op {
            OpSlot::Connect(c) if c.node == node && !c.sent => Some((i, g, *c)),
            _ => None,
        });
        if let Some((i, g, c)) = connect {
            if let Some(OpSlot::Connect(c)) = st.ops.get_mut(i, g) {
                c.sent = true;
            }
            let m = Message::ConnectRequest(ConnectRequest {
                segment_id: c.segid,
                request_id: Table::<(), 1>::wire_id(i, g),
                import_id: Table::<(), 1>::wire_id(c.import.0, c.import.1),
                permission: c.perm.bits() as u16,
            });
            return emit(m, out);
        }
        // c. Forced disconnects of importers whose segment went away (spec §6.4).
        let gone = st.net.importers.iter().position(|r| {
            r.node == node
                && !st
                    .exports
                    .get(r.export.0, r.export.1)
                    .is_some_and(|ex| ex.epoch == r.epoch && ex.published.is_some())
        });
        if let Some(k) = gone {
            let r = st.net.importers.swap_remove(k);
            let m = Message::Disconnect(Disconnect {
                segment_id: r.segid,
                import_id: r.import_id,
                generation: r.epoch.wrapping_add(1) as u16,
                forced: true,
            });
            return emit(m, out);
        }
        // d. Imports the application disconnected: tell the exporter.
        let closing = st.imports.iter().find_map(|(i, g, im)| {
            let r = im.remote.as_ref()?;
            (im.node == node && r.state == RemoteState::Closing).then_some((i, g, im.segid, r.import_id))
        });
        if let Some((i, g, segid, import_id)) = closing {
            st.imports.remove(i, g);
            st.net.wake = true;
            let m = Message::NotImporting(ImportNotice {
                segment_id: segid,
                import_id,
            });
            return emit(m, out);
        }
        // e. Bells, importer → exporter, then exporter → importers.
        let bell = st.imports.iter_mut().find_map(|(_, _, im)| {
            let segid = im.segid;
            let aborted = im.aborted;
            let r = im.remote.as_mut()?;
            if im.node != node || r.state != RemoteState::Connected || aborted {
                return None;
            }
            let flags = if r.bells > 0 {
                r.bells -= 1;
                wire::BELL_TO_EXPORTER
            } else if r.bells_na > 0 {
                r.bells_na -= 1;
                wire::BELL_TO_EXPORTER | wire::BELL_NO_ACCUMULATE
            } else {
                return None;
            };
            Some(Bell {
                segment_id: segid,
                import_id: r.import_id,
                flags,
            })
        });
        let bell = bell.or_else(|| {
            st.net.importers.iter_mut().find_map(|r| {
                if r.node != node {
                    return None;
                }
                let flags = if r.bells > 0 {
                    r.bells -= 1;
                    0
                } else if r.bells_na > 0 {
                    r.bells_na -= 1;
                    wire::BELL_NO_ACCUMULATE
                } else {
                    return None;
                };
                Some(Bell {
                    segment_id: r.segid,
                    import_id: r.import_id,
                    flags,
                })
            })
        });
        if let Some(b) = bell {
            return emit(Message::Bell(b), out);
        }
        // f. Answers to get requests, in the order they came.
        if let Some(n) = self.gen_get_data(st, node, header, out) {
            return Some(n);
        }
        // g. Put data and get requests of the oldest operation with something to send.
        self.gen_op(st, node, header, now, out)
    }

    fn gen_get_data(
        &self,
        st: &mut State<P, L, E, I>,
        node: NodeId,
        header: HeaderRepr,
        out: &mut [u8],
    ) -> Option<usize> {
        let k = st.net.jobs.iter().position(|j| j.node == node)?;
        let mut job = st.net.jobs[k];
        // The segment may have gone since the request: answer with the abort.
        let region = st
            .net
            .importers
            .iter()
            .find(|r| r.node == node && r.import_id == job.import_id)
            .and_then(|r| {
                st.exports
                    .get(r.export.0, r.export.1)
                    .filter(|ex| ex.epoch == r.epoch && ex.published.is_some())
            })
            .map(|ex| ex.region.clone());
        if job.status == 0 && region.is_none() {
            job.status = crate::error::RsmError::ConnAborted.code() as u16;
        }
        let cap = wire::get_data_capacity(out.len());
        let (chunk, status) = match (&region, job.status) {
            (Some(_), 0) => ((job.len - job.sent).min(cap), 0),
            (_, s) => (0, s),
        };
        if status == 0 && chunk == 0 && job.len > job.sent {
            return None;
        }
        let m = Message::GetData(GetData {
            op_id: job.op_id,
            entry: job.entry,
            status,
            frag_offset: if status == 0 { job.sent as u32 } else { 0 },
            total_len: if status == 0 { job.len as u32 } else { 0 },
            data: &ZEROS[..chunk],
        });
        let n = wire::emit(&header, &m, out).ok()?;
        if chunk > 0 {
            let start = FRAME_OVERHEAD + GET_DATA_FIXED_LEN;
            let dst = out.get_mut(start..start + chunk)?;
            let read = region
                .as_ref()
                .map(|r| self.platform.read(r, job.offset + job.sent, dst));
            if !matches!(read, Some(Ok(()))) {
                // Cannot happen for a checked range; answer with the failure instead.
                let code = match read {
                    Some(Err(e)) => crate::sg::copy_error(e.kind()).code(),
                    _ => crate::error::RsmError::ConnAborted.code(),
                };
                st.net.jobs[k].status = code as u16;
                return None;
            }
        }
        job.sent += chunk;
        if status != 0 || job.sent >= job.len {
            st.net.jobs.remove(k);
        } else {
            st.net.jobs[k] = job;
        }
        Some(n)
    }

    fn gen_op(
        &self,
        st: &mut State<P, L, E, I>,
        node: NodeId,
        header: HeaderRepr,
        _now: Instant,
        out: &mut [u8],
    ) -> Option<usize> {
        let (i, g) = st
            .ops
            .iter()
            .filter_map(|(i, g, op)| match op {
                OpSlot::Remote(op) if op.node == node && (op.next_entry as u64) < op.count => {
                    Some((op.seq, i, g))
                }
                _ => None,
            })
            .min()
            .map(|(_, i, g)| (i, g))?;
        let op_id = Table::<(), 1>::wire_id(i, g);
        let Some(OpSlot::Remote(op)) = st.ops.get_mut(i, g) else {
            return None;
        };
        let k = op.next_entry;
        let (roff, len) = op.entry(k);
        match op.dir {
            Direction::Get => {
                let m = Message::GetRequest(GetRequest {
                    import_id: op.import_id,
                    segment_id: op.segid,
                    op_id,
                    entry: k as u16,
                    remote_offset: roff as u64,
                    length: len as u32,
                });
                let n = wire::emit(&header, &m, out).ok()?;
                op.next_entry += 1;
                Some(n)
            }
            Direction::Put => {
                let frag = op.next_frag;
                let chunk = (len - frag).min(wire::put_data_capacity(out.len()));
                if chunk == 0 && len > 0 {
                    return None;
                }
                let m = Message::PutData(PutData {
                    import_id: op.import_id,
                    segment_id: op.segid,
                    op_id,
                    entry: k as u16,
                    remote_offset: roff as u64,
                    frag_offset: frag as u32,
                    total_len: len as u32,
                    data: &ZEROS[..chunk],
                });
                let n = wire::emit(&header, &m, out).ok()?;
                let start = FRAME_OVERHEAD + PUT_DATA_FIXED_LEN;
                let dst = out.get_mut(start..start + chunk)?;
                let read = match (&op.inline, op.plan.get(k)) {
                    (Some((_, _, data)), _) => match data.get(frag..frag + chunk) {
                        Some(src) => {
                            dst.copy_from_slice(src);
                            Ok(())
                        }
                        None => Err(crate::error::RsmError::BadLength),
                    },
                    (None, Some(s)) if chunk > 0 => self
                        .platform
                        .read(&s.local, s.local_off + frag, dst)
                        .map_err(|e| crate::sg::copy_error(e.kind())),
                    (None, Some(_)) => Ok(()),
                    (None, None) => Err(crate::error::RsmError::BadSgio),
                };
                if let Err(e) = read {
                    self.finish_op(st, (i, g), Err(e));
                    return None;
                }
                op_advance(st, (i, g), chunk, len);
                Some(n)
            }
        }
    }
}

fn op_advance<P: Platform, const L: usize, const E: usize, const I: usize>(
    st: &mut State<P, L, E, I>,
    (i, g): (u16, u32),
    chunk: usize,
    len: usize,
) {
    if let Some(OpSlot::Remote(op)) = st.ops.get_mut(i, g) {
        op.next_frag += chunk;
        if op.next_frag >= len {
            op.next_frag = 0;
            op.next_entry += 1;
        }
    }
}
