//! The engine's transmit path: which peer sends, what its channel sends (hello, resend, new
//! message, acknowledgement), the frame header — and, for a message's body, the node layer
//! behind the [`Source`] trait (quinn-proto's `poll_transmit`, with the application's data
//! behind a trait instead of in the connection).

use super::{Engine, Msg, TxChoice, HELLO_INTERVAL_NS};
use crate::types::NodeId;
use crate::wire::{
    Frame, Header, HeaderRepr, Hello, Message, ETHERNET_HEADER_LEN, FLAG_ACK, FLAG_NAK,
    FLAG_RETRANSMIT, NODE_BROADCAST,
};
use rsm_hal::{Checksum, Instant};

/// A new message from the [`Source`], and whether taking it freed room for a message the
/// peer was refused earlier (a get answer's last fragment frees its job slot): the engine then
/// asks the peer for that message again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Next {
    pub(crate) msg: Msg,
    pub(crate) room: bool,
}

/// Where the engine's outgoing messages come from and how their bodies are written: the
/// node layer, which owns the tables and the memory. The engine owns everything else of a
/// frame — the choice of peer and message, sequence numbers, acknowledgements, the header,
/// hellos — and keeps each message it got here until acknowledged, asking [`Source::render`]
/// again for every retransmission.
pub(crate) trait Source {
    /// A control message waiting for `node` (a connect request, a forced disconnect, the
    /// notice of a closed import, a bell); asked only while the engine's control bit of the
    /// node is set ([`Engine::poke`]).
    fn control(&mut self, node: NodeId) -> Option<Msg>;

    /// The next data message for `node` — get answers, then the put data and get requests
    /// of the oldest operation — fitting frames of `limit` bytes.
    fn data(&mut self, node: NodeId, limit: usize) -> Option<Next>;

    /// Write the frame of `msg` with `header` into `out` (as long as the frame size in use
    /// towards that peer) and seal it — or leave sealing to whoever fills in the data later.
    /// Returns its length; `None` sends nothing.
    fn render(&mut self, header: &HeaderRepr, msg: &Msg, out: &mut [u8]) -> Option<usize>;
}

/// Add `flags` to an emitted pure acknowledgement, put the selective-acknowledgement bitmap
/// in its `seq`, and reseal it.
fn set_flags_seq<C: Checksum>(frame: &mut [u8], flags: u16, seq: u32, c: &C) {
    if let Some(rest) = frame.get_mut(ETHERNET_HEADER_LEN..) {
        let mut h = Header::new_unchecked(rest);
        h.set_flags(h.flags() | flags);
        h.set_seq(seq);
        h.fill_checksum_with(c);
    }
}

impl<const F: usize> Engine<F> {
    /// The next frame to send at `now` into `buf` (peers in round robin, then the broadcast
    /// hello when due); message bodies come from `src`. Returns the frame's length.
    pub(crate) fn poll_transmit<S: Source, C: Checksum>(
        &mut self,
        now: Instant,
        src: &mut S,
        crc: &C,
        buf: &mut [u8],
    ) -> Option<usize> {
        let n = self.peers.len();
        for k in 0..n {
            let ix = (self.rr + k) % n;
            if let Some(len) = self.tx_peer(ix, now, src, crc, buf) {
                if let Some(peer) = self.peers.get_mut(ix) {
                    peer.last_sent = now;
                }
                self.rr = (ix + 1) % n;
                return Some(len);
            }
        }
        if now >= self.next_hello {
            self.next_hello = now.add_nanos(HELLO_INTERVAL_NS);
            return self.emit_hello(NODE_BROADCAST, 0, None, crc, buf);
        }
        None
    }

    /// A hello to `dst` (who knows us as `peer_inc`), acknowledging `ack` if given.
    pub(crate) fn emit_hello<C: Checksum>(
        &self,
        dst: u8,
        peer_inc: u64,
        ack: Option<u32>,
        crc: &C,
        buf: &mut [u8],
    ) -> Option<usize> {
        let header = HeaderRepr {
            flags: if ack.is_some() { FLAG_ACK } else { 0 },
            src_node: self.node as u8,
            dst_node: dst,
            incarnation: self.inc,
            peer_incarnation: peer_inc,
            seq: 0,
            ack: ack.unwrap_or(0),
        };
        let hello = Hello {
            incarnation: self.inc,
            max_frame: self.max_frame as u16,
        };
        Frame {
            header,
            message: Message::Hello(hello),
        }
        .emit_with(buf, crc)
        .ok()
    }

    fn tx_peer<S: Source, C: Checksum>(
        &mut self,
        ix: usize,
        now: Instant,
        src: &mut S,
        crc: &C,
        buf: &mut [u8],
    ) -> Option<usize> {
        match self.tx_choose(ix, now)? {
            TxChoice::Hello { dst } => self.emit_hello(dst, 0, None, crc, buf),
            TxChoice::Resend { seq, msg, again } => self.render(ix, seq, &msg, again, src, buf),
            TxChoice::Fresh { seq } => match self.next_message(ix, src, buf.len()) {
                Some(msg) => {
                    self.tx_fresh(ix, seq, msg, now);
                    self.render(ix, seq, &msg, false, src, buf)
                }
                None => self.emit_ack(ix, crc, buf),
            },
            TxChoice::Ack => self.emit_ack(ix, crc, buf),
        }
    }

    /// A pure acknowledgement (a unicast hello) to peer `ix`, if one is due.
    fn emit_ack<C: Checksum>(&mut self, ix: usize, crc: &C, buf: &mut [u8]) -> Option<usize> {
        let a = self.tx_ack(ix)?;
        let n = self.emit_hello(a.dst, a.peer_inc, Some(a.ack), crc, buf)?;
        let flags = if a.nak { FLAG_NAK } else { 0 };
        set_flags_seq(buf.get_mut(..n)?, flags, a.sack, crc);
        Some(n)
    }

    /// The next new message for peer `ix`: replies and acknowledgements the engine queued,
    /// then the source's control messages (only if the node's bit is set), then its data.
    fn next_message<S: Source>(&mut self, ix: usize, src: &mut S, buf_len: usize) -> Option<Msg> {
        let peer = self.peers.get_mut(ix)?;
        let node = peer.node;
        if let Some(m) = peer.ctrl.pop_front() {
            peer.room_again();
            return Some(m);
        }
        let limit = self.frame_for(&self.peers[ix]).min(buf_len);
        let bit = super::node_bit(node);
        if self.ctrl_work & bit != 0 {
            if let Some(m) = src.control(node) {
                return Some(m);
            }
            self.ctrl_work &= !bit;
        }
        let next = src.data(node, limit)?;
        if next.room {
            if let Some(peer) = self.peers.get_mut(ix) {
                peer.room_again();
            }
        }
        Some(next.msg)
    }

    /// Message `msg` with sequence number `seq` to peer `ix`: the header here, the body by
    /// the source.
    fn render<S: Source>(
        &mut self,
        ix: usize,
        seq: u32,
        msg: &Msg,
        again: bool,
        src: &mut S,
        buf: &mut [u8],
    ) -> Option<usize> {
        let nak = self.peers.get_mut(ix)?.take_nak();
        let peer = self.peers.get(ix)?;
        let limit = self.frame_for(peer).min(buf.len());
        let header = HeaderRepr {
            flags: FLAG_ACK
                | if again { FLAG_RETRANSMIT } else { 0 }
                | if nak { FLAG_NAK } else { 0 },
            src_node: self.node as u8,
            dst_node: peer.node as u8,
            incarnation: self.inc,
            peer_incarnation: peer.inc,
            seq,
            ack: peer.expected,
        };
        src.render(&header, msg, buf.get_mut(..limit)?)
    }
}
