//! The engine's receive path as events: a frame goes in ([`Engine::on_frame`]), and what the
//! node must apply to its tables and memory comes out as an [`Event`] — never a wire message.
//! (quinn-proto's `Connection::handle_event` / `poll`, smoltcp's iface handing sockets their
//! payloads.)

use super::{Admit, Early, Engine, Received};
use crate::types::{NodeId, Permission, SegmentId};
use crate::wire::{
    Frame, Message, BELL_ACK_ENTRY, BELL_NO_ACCUMULATE, BELL_TO_EXPORTER, FRAME_OVERHEAD,
    GET_DATA_FIXED_LEN, PUT_DATA_FIXED_LEN,
};
use rsm_hal::{Checksum, Instant};

/// What a peer's next in-order message asks of the node. Data borrows the frame it came in;
/// `at` is where that data starts in the frame, so the node can copy it after it released its
/// table lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'f> {
    /// Connect request `request_id`: the peer's import `import_id` of segment `segid`, asking
    /// for `perm` (the node answers with [`super::Msg::Reply`]).
    ConnectRequest {
        request_id: u32,
        import_id: u32,
        segid: SegmentId,
        perm: Permission,
    },
    /// Reply to this node's connect request `request_id`: `status` 0 or an RSMERR code, the
    /// permission granted and the segment's length.
    ConnectReply {
        request_id: u32,
        segid: SegmentId,
        status: u16,
        granted: Permission,
        segment_len: u64,
    },
    /// The exporter ended this node's import `import_id` of `segid` (the segment went away).
    Disconnect { import_id: u32, segid: SegmentId },
    /// The importer closed its import `import_id` of `segid`.
    ImportClosed { import_id: u32, segid: SegmentId },
    /// A bell on import `import_id` of `segid`: from the importer (`to_exporter`, operation
    /// `op_id`, to be answered) or from the exporter; `no_accumulate` as posted.
    Bell {
        import_id: u32,
        segid: SegmentId,
        op_id: u32,
        to_exporter: bool,
        no_accumulate: bool,
    },
    /// The exporter's answer to this node's bell (operation `op_id`): 0 or an RSMERR code.
    BellAnswer { op_id: u32, status: u16 },
    /// Put data for import `import_id` of `segid`: bytes `frag .. frag + data.len()` of entry
    /// `entry` (of `total` bytes at segment offset `offset`) of operation `op_id`.
    PutData {
        import_id: u32,
        segid: SegmentId,
        op_id: u32,
        entry: u16,
        offset: u64,
        frag: u32,
        total: u32,
        data: &'f [u8],
        at: usize,
    },
    /// Get request: entry `entry` of operation `op_id` reads `len` bytes at segment offset
    /// `offset` of import `import_id` of `segid`.
    GetRequest {
        import_id: u32,
        segid: SegmentId,
        op_id: u32,
        entry: u16,
        offset: u64,
        len: u32,
    },
    /// Get data for entry `entry` of this node's operation `op_id`: `status` 0 and bytes
    /// `frag .. frag + data.len()` of `total`, or an RSMERR code.
    GetData {
        op_id: u32,
        entry: u16,
        status: u16,
        frag: u32,
        total: u32,
        data: &'f [u8],
        at: usize,
    },
    /// Entry `entry` of this node's put operation `op_id` was applied (`status` 0, `done`
    /// bytes) or failed (an RSMERR code, `done` bytes applied before the failure).
    Ack {
        op_id: u32,
        entry: u16,
        status: u16,
        done: u32,
    },
    /// A notice with nothing to apply (importing, republish): consumed.
    Notice,
    /// Peer `node` restarted (a frame with a newer incarnation): the engine forgot its
    /// channel; the node aborts what it had with the old incarnation.
    PeerRestarted { node: NodeId },
    /// Peer `node` is unreachable (its messages made no progress for
    /// [`super::UNREACHABLE_AFTER_NS`], or it fell silent): its operations fail, its imports
    /// are aborted.
    PeerUnreachable { node: NodeId },
}

impl<'f> Event<'f> {
    /// The event a delivered message stands for.
    pub(crate) fn of(m: &Message<'f>) -> Event<'f> {
        match *m {
            Message::ConnectRequest(r) => Event::ConnectRequest {
                request_id: r.request_id,
                import_id: r.import_id,
                segid: r.segment_id,
                perm: Permission::from_bits_truncate(u32::from(r.permission)),
            },
            Message::ConnectReply(r) => Event::ConnectReply {
                request_id: r.request_id,
                segid: r.segment_id,
                status: r.status,
                granted: Permission::from_bits_truncate(u32::from(r.permission)),
                segment_len: r.segment_len,
            },
            Message::Disconnect(d) => Event::Disconnect {
                import_id: d.import_id,
                segid: d.segment_id,
            },
            Message::NotImporting(n) => Event::ImportClosed {
                import_id: n.import_id,
                segid: n.segment_id,
            },
            Message::Bell(b) => Event::Bell {
                import_id: b.import_id,
                segid: b.segment_id,
                op_id: b.op_id,
                to_exporter: b.flags & BELL_TO_EXPORTER != 0,
                no_accumulate: b.flags & BELL_NO_ACCUMULATE != 0,
            },
            Message::Ack(a) if a.entry == BELL_ACK_ENTRY => Event::BellAnswer {
                op_id: a.op_id,
                status: a.status,
            },
            Message::Ack(a) => Event::Ack {
                op_id: a.op_id,
                entry: a.entry,
                status: a.status,
                done: a.done_len,
            },
            Message::PutData(d) => Event::PutData {
                import_id: d.import_id,
                segid: d.segment_id,
                op_id: d.op_id,
                entry: d.entry,
                offset: d.remote_offset,
                frag: d.frag_offset,
                total: d.total_len,
                data: d.data,
                at: FRAME_OVERHEAD + PUT_DATA_FIXED_LEN,
            },
            Message::GetRequest(r) => Event::GetRequest {
                import_id: r.import_id,
                segid: r.segment_id,
                op_id: r.op_id,
                entry: r.entry,
                offset: r.remote_offset,
                len: r.length,
            },
            Message::GetData(d) => Event::GetData {
                op_id: d.op_id,
                entry: d.entry,
                status: d.status,
                frag: d.frag_offset,
                total: d.total_len,
                data: d.data,
                at: FRAME_OVERHEAD + GET_DATA_FIXED_LEN,
            },
            Message::Importing(_) | Message::Republish(_) | Message::Hello(_) => Event::Notice,
        }
    }
}

/// What one received frame gave ([`Engine::on_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inbound<'f> {
    /// The sender's peer slot and node id.
    pub(crate) p: usize,
    pub(crate) src: NodeId,
    /// The sender restarted: apply [`Event::PeerRestarted`] before `event`.
    pub(crate) restarted: bool,
    /// The sender's next in-order message, to apply and then report with
    /// [`Engine::delivered`]; `None` if the engine consumed the frame (a hello, an
    /// acknowledgement, a duplicate, a frame kept for later).
    pub(crate) event: Option<Event<'f>>,
}

impl<const F: usize> Engine<F> {
    /// Receive `frame` at `now` (checksum by `crc`): admission (parse, addressing, MAC
    /// binding, incarnation; a restart makes the engine forget the old channel), then the
    /// channel (acknowledgements, sequence order, reordering). `None` if it was dropped
    /// (counted in the statistics).
    pub(crate) fn on_frame<'f, C: Checksum>(
        &mut self,
        now: Instant,
        frame: &'f [u8],
        crc: &C,
    ) -> Option<Inbound<'f>> {
        let Admit::Peer {
            p,
            src,
            frame: f,
            restarted,
        } = self.admit(frame, crc)
        else {
            return None;
        };
        if restarted {
            self.forget_peer(p);
        }
        let event = match self.receive(now, p, &f, frame) {
            Received::InOrder(m) => Some(Event::of(&m)),
            Received::Done => None,
        };
        Some(Inbound {
            p,
            src,
            restarted,
            event,
        })
    }

    /// The event of a kept frame ([`Engine::take_early`]); it parsed when it arrived.
    pub(crate) fn early_event<'e, C: Checksum>(e: &'e Early<F>, crc: &C) -> Option<Event<'e>> {
        let bytes = e.buf.get(..usize::from(e.len))?;
        let f = Frame::parse_with(bytes, crc).ok()?;
        Some(Event::of(&f.message))
    }

    /// Room in peer `p`'s queue of replies and acknowledgements (the node defers a message
    /// whose answer would not fit).
    pub(crate) fn ctrl_room(&self, p: usize) -> bool {
        self.peers.get(p).is_some_and(|peer| !peer.ctrl.is_full())
    }

    /// Queue a reply or acknowledgement to peer `p` (sent before any new message); `false`
    /// if the queue is full (callers check [`Engine::ctrl_room`] first).
    pub(crate) fn queue_ctrl(&mut self, p: usize, m: super::Msg) -> bool {
        self.peers
            .get_mut(p)
            .is_some_and(|peer| peer.ctrl.push_back(m).is_ok())
    }
}
