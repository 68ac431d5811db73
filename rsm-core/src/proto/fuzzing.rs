//! Fuzzing entry points for the standalone engine (feature `fuzzing`; not part of the API):
//! the engine's receive stages driven without a node, with a model of what they may do.

use super::{Admit, Engine, Received, FRAME_BUF, MAX_PEERS, REORDER_SLOTS};
use crate::types::NodeId;
use crate::wire::{
    self, Ack, Bell, Frame, HeaderRepr, Hello, Message, FLAG_ACK, FLAG_NAK, NODE_BROADCAST,
};
use rsm_hal::{Instant, SoftChecksum};

/// The engine's node id and incarnation.
const ME: NodeId = 1;
const MY_INC: u64 = 7;

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// What the harness knows the engine must hold, per peer slot: the next expected sequence
/// number (moved only by a consumed delivery or a restart).
struct Model {
    expected: [Option<u32>; MAX_PEERS],
}

/// Drive one engine with a script of records from `data`, checking after every step that
/// it delivered only the next expected sequence number, moved its channel only as the model
/// says, and kept its bounds. Records (first byte `op`, by `op & 7`):
/// 0. a raw frame (`u16` length, then bytes);
/// 1. a frame built from fields (source, incarnations, sequence, flags, acknowledgement,
///    message kind) and sealed, so that it passes the checksum; bit 7 of `op` spoofs the MAC;
/// 2. the kept frame of a peer that is in order now, delivered or deferred;
/// 3. forget a peer (as the node does on a restart);
/// 4. to 7. advance the clock.
///
/// In-order messages are consumed, or deferred when bit 6 of `op` is set.
pub fn engine_rx(data: &[u8]) {
    let mut e: Engine<FRAME_BUF> = Engine::new(ME);
    e.on = true;
    e.inc = MY_INC;
    let mut model = Model {
        expected: [None; MAX_PEERS],
    };
    let mut now = Instant(0);
    let mut r = Bytes(data);
    let mut buf = [0u8; FRAME_BUF];
    while let Some(op) = r.u8() {
        let consume = op & 0x40 == 0;
        match op & 7 {
            0 => {
                let n = usize::from(r.u16().unwrap_or(0)) % (FRAME_BUF + 64);
                let bytes = r.take(n);
                step(&mut e, &mut model, now, bytes, consume);
            }
            1 => {
                let Some(n) = build(&mut r, op & 0x80 != 0, &mut buf) else {
                    continue;
                };
                let frame = &buf[..n];
                step(&mut e, &mut model, now, frame, consume);
            }
            2 => {
                let p = usize::from(r.u8().unwrap_or(0)) % MAX_PEERS;
                if let Some(k) = e.take_early(p) {
                    let expected = e.peers[p].expected;
                    assert_eq!(k.seq, expected, "a kept frame out of order");
                    let bytes = &k.buf[..usize::from(k.len)];
                    assert!(
                        Frame::parse_with(bytes, &SoftChecksum).is_ok(),
                        "kept garbage"
                    );
                    e.delivered(p, consume);
                    if consume {
                        model.expected[p] = Some(expected.wrapping_add(1));
                    } else {
                        e.keep_early(k);
                    }
                }
            }
            3 => {
                let p = usize::from(r.u8().unwrap_or(0)) % MAX_PEERS;
                if p < e.peers.len() {
                    e.forget_peer(p);
                    model.expected[p] = Some(e.peers[p].expected);
                }
            }
            _ => now = now.add_nanos(u64::from(r.u16().unwrap_or(0)) * 1_000_000),
        }
        check(&e, &model);
    }
}

/// Build a sealed frame from the fields in `r` into `buf`.
fn build(r: &mut Bytes<'_>, spoof: bool, buf: &mut [u8]) -> Option<usize> {
    let src = r.u8()? % 4; // node 0, 2, 3, or ME itself
    let inc = [5, 6, 7, u64::MAX][usize::from(r.u8()? % 4)];
    let peer_inc = [MY_INC, MY_INC, 0, MY_INC - 1][usize::from(r.u8()? % 4)];
    let seq = u32::from(r.u8()?);
    let f = r.u8()?;
    let ack = u32::from(r.u8()?);
    let flags = (if f & 1 != 0 { FLAG_ACK } else { 0 }) | (if f & 2 != 0 { FLAG_NAK } else { 0 });
    let message = match f >> 2 & 3 {
        0 => Message::Hello(Hello {
            incarnation: inc,
            max_frame: 1514,
        }),
        1 => Message::Ack(Ack {
            op_id: u32::from(r.u8()?),
            entry: 0,
            status: 0,
            done_len: 0,
        }),
        _ => Message::Bell(Bell {
            segment_id: 0x40_0001,
            import_id: u32::from(r.u8()?),
            flags: 0,
            op_id: 0,
        }),
    };
    let dst = if f & 0x10 != 0 {
        NODE_BROADCAST
    } else {
        ME as u8
    };
    let frame = Frame {
        header: HeaderRepr {
            flags,
            src_node: src,
            dst_node: dst,
            incarnation: inc,
            peer_incarnation: peer_inc,
            seq,
            ack,
        },
        message,
    };
    let n = frame.emit_with(buf, &SoftChecksum).ok()?;
    if spoof {
        buf[6..12].copy_from_slice(&wire::node_mac(u32::from(src) + 1));
        wire::seal_with(&mut buf[..n], &SoftChecksum);
    }
    Some(n)
}

/// Admit and receive `bytes`, checking delivery against the model.
fn step(e: &mut Engine<FRAME_BUF>, model: &mut Model, now: Instant, bytes: &[u8], consume: bool) {
    let Admit::Peer {
        p,
        frame,
        restarted,
        ..
    } = e.admit(bytes, &SoftChecksum)
    else {
        return;
    };
    if restarted {
        e.forget_peer(p);
        model.expected[p] = Some(e.peers[p].expected);
    }
    let expected = *model.expected[p].get_or_insert(e.peers[p].expected);
    if let Received::InOrder(_) = e.receive(now, p, &frame, bytes) {
        assert_eq!(frame.header.seq, expected, "delivered out of order");
        e.delivered(p, consume);
        if consume {
            model.expected[p] = Some(expected.wrapping_add(1));
        }
    }
}

fn check(e: &Engine<FRAME_BUF>, model: &Model) {
    assert!(e.peers.len() <= MAX_PEERS);
    assert!(e.early.len() <= REORDER_SLOTS);
    for (p, peer) in e.peers.iter().enumerate() {
        if let Some(x) = model.expected[p] {
            assert_eq!(peer.expected, x, "peer {p}'s channel moved on its own");
        }
        let held = e.early.iter().filter(|k| usize::from(k.ix) == p).count();
        assert!(
            held <= REORDER_SLOTS / 2,
            "peer {p} holds {held} kept frames"
        );
        assert_ne!(peer.node, ME, "a peer slot for this node itself");
    }
}
