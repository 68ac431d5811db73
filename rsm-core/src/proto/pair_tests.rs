//! The engine alone, end to end: two engines (no `Rsm`, no tables) talk through a lossy
//! wire; one's messages come from a test [`Source`], the other's events are recorded.

use super::*;
use crate::wire::{self, Ack, Bell, Frame, HeaderRepr, Message, PutData};
use rsm_hal::SoftChecksum;
use std::vec::Vec;

const A: NodeId = 1;
const B: NodeId = 2;
const SEGID: u32 = 0x40_0001;
const IMPORT: u32 = 9;
const LEN: usize = 200;

fn engine(node: NodeId, inc: u64) -> Engine<FRAME_BUF> {
    let mut e = Engine::new(node);
    e.on = true;
    e.inc = inc;
    e
}

/// The bytes of entry `k`.
fn pattern(k: u16) -> [u8; LEN] {
    let mut d = [0u8; LEN];
    for (i, b) in d.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8);
    }
    d
}

/// `count` put entries of [`LEN`] bytes to node `to`, entry `k` at segment offset `1000 k`;
/// counts the calls the engine makes.
struct Puts {
    to: NodeId,
    next: u16,
    count: u16,
    control_calls: u32,
    renders: u32,
}

impl Source for Puts {
    fn control(&mut self, _node: NodeId) -> Option<Msg> {
        self.control_calls += 1;
        None
    }

    fn data(&mut self, node: NodeId, _limit: usize) -> Option<Next> {
        if node != self.to || self.next == self.count {
            return None;
        }
        let k = self.next;
        self.next += 1;
        Some(Next {
            msg: Msg::Put {
                op: (0, 1),
                import_id: IMPORT,
                segid: SEGID,
                entry: k,
                roff: 1000 * u64::from(k),
                frag: 0,
                total: LEN as u32,
                chunk: LEN as u16,
            },
            room: false,
        })
    }

    fn render(&mut self, header: &HeaderRepr, msg: &Msg, out: &mut [u8]) -> Option<usize> {
        self.renders += 1;
        let Msg::Put {
            import_id,
            segid,
            entry,
            roff,
            frag,
            total,
            ..
        } = *msg
        else {
            return None;
        };
        let data = pattern(entry);
        let m = Message::PutData(PutData {
            import_id,
            segment_id: segid,
            op_id: 77,
            entry,
            remote_offset: roff,
            frag_offset: frag,
            total_len: total,
            data: &data,
        });
        Frame {
            header: *header,
            message: m,
        }
        .emit_with(out, &SoftChecksum)
        .ok()
    }
}

/// A source with nothing to send.
struct Nothing;

impl Source for Nothing {
    fn control(&mut self, _node: NodeId) -> Option<Msg> {
        None
    }
    fn data(&mut self, _node: NodeId, _limit: usize) -> Option<Next> {
        None
    }
    fn render(&mut self, _h: &HeaderRepr, _m: &Msg, _o: &mut [u8]) -> Option<usize> {
        None
    }
}

/// What the receiving side saw: (entry, offset, data was the pattern and sat at `at`).
fn record(seen: &mut Vec<(u16, u64)>, ev: &Event<'_>, frame: Option<&[u8]>) {
    match *ev {
        Event::PutData {
            import_id,
            segid,
            entry,
            offset,
            frag,
            total,
            data,
            at,
            ..
        } => {
            assert_eq!(
                (import_id, segid, frag, total),
                (IMPORT, SEGID, 0, LEN as u32)
            );
            assert_eq!(data, &pattern(entry)[..]);
            if let Some(f) = frame {
                assert_eq!(&f[at..at + data.len()], data, "`at` locates the data");
            }
            seen.push((entry, offset));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

/// A deterministic lossy wire: drops one frame in `1/drop_one_in`, duplicates some.
struct Wire {
    state: u64,
    drop_one_in: u64,
    dropped: u32,
}

impl Wire {
    fn pass(&mut self) -> (bool, bool) {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = self.state >> 33;
        let drop = r % self.drop_one_in == 0;
        if drop {
            self.dropped += 1;
        }
        (!drop, r % 13 == 0)
    }
}

/// Frames from `a` (messages from `src`) to `b` and acknowledgements back, through `wire`,
/// until `b` saw the source's entries from `src.next` on and `a` has nothing in flight;
/// returns what `b` saw.
fn run(
    a: &mut Engine<FRAME_BUF>,
    b: &mut Engine<FRAME_BUF>,
    src: &mut Puts,
    wire: &mut Wire,
) -> Vec<(u16, u64)> {
    let mut seen = Vec::new();
    let want = usize::from(src.count - src.next);
    let mut buf = [0u8; FRAME_BUF];
    let mut now = Instant(1);
    for _step in 0..20_000 {
        now = now.add_nanos(1_000_000);
        let _ = a.channel_timers(now);
        for _ in 0..64 {
            let Some(n) = a.poll_transmit(now, src, &SoftChecksum, &mut buf) else {
                break;
            };
            let (pass, dup) = wire.pass();
            for _ in 0..(usize::from(pass) + usize::from(pass && dup)) {
                let frame = &buf[..n];
                let Some(inb) = b.on_frame(now, frame, &SoftChecksum) else {
                    continue;
                };
                assert!(!inb.restarted);
                assert_eq!(inb.src, A);
                if let Some(ev) = inb.event {
                    record(&mut seen, &ev, Some(frame));
                    b.delivered(inb.p, true);
                    while let Some(e) = b.take_early(inb.p) {
                        let ev = Engine::<FRAME_BUF>::early_event(&e, &SoftChecksum)
                            .expect("a kept frame parses again");
                        record(&mut seen, &ev, None);
                        b.delivered(inb.p, true);
                    }
                }
            }
        }
        let _ = b.channel_timers(now);
        for _ in 0..64 {
            let Some(n) = b.poll_transmit(now, &mut Nothing, &SoftChecksum, &mut buf) else {
                break;
            };
            if wire.pass().0 {
                let inb = a.on_frame(now, &buf[..n], &SoftChecksum);
                // Acknowledgements and hellos are the engine's own: no event.
                assert!(inb.is_some_and(|i| i.event.is_none()));
            }
        }
        let idle = a.ix(B).is_some_and(|p| a.peers[p].inflight.is_empty());
        if seen.len() == want && idle {
            return seen;
        }
    }
    panic!("did not finish: saw {} of {want}", seen.len());
}

#[test]
fn two_engines_deliver_every_message_once_in_order_over_a_lossy_wire() {
    for drop_one_in in [1_000_000, 5, 3] {
        let (mut a, mut b) = (engine(A, 11), engine(B, 22));
        let mut src = Puts {
            to: B,
            next: 0,
            count: 300,
            control_calls: 0,
            renders: 0,
        };
        let mut wire = Wire {
            state: drop_one_in,
            drop_one_in,
            dropped: 0,
        };
        let seen = run(&mut a, &mut b, &mut src, &mut wire);
        let want: Vec<(u16, u64)> = (0..300u16).map(|k| (k, 1000 * u64::from(k))).collect();
        assert_eq!(
            seen, want,
            "every entry once, in order (1 in {drop_one_in} dropped)"
        );
        if drop_one_in < 10 {
            assert!(wire.dropped > 50, "the wire lost frames");
            assert!(a.stats.retransmits > 0, "and the engine sent them again");
            // Every transmission of a message is rendered by the source again.
            assert!(src.renders > 300);
        }
        // The source's control messages were never asked for: no node had its bit.
        assert_eq!(src.control_calls, 0);
    }
}

#[test]
fn control_messages_are_asked_for_only_while_the_node_has_its_bit() {
    let (mut a, mut b) = (engine(A, 11), engine(B, 22));
    let mut src = Puts {
        to: B,
        next: 0,
        count: 10,
        control_calls: 0,
        renders: 0,
    };
    let mut wire = Wire {
        state: 1,
        drop_one_in: 1_000_000,
        dropped: 0,
    };
    run(&mut a, &mut b, &mut src, &mut wire);
    assert_eq!(src.control_calls, 0);
    a.poke(B);
    src.count = 12;
    let seen = run(&mut a, &mut b, &mut src, &mut wire);
    assert_eq!(seen, [(10, 10_000), (11, 11_000)]);
    // Asked once (nothing there clears the bit), then not again for the other frames.
    assert_eq!(src.control_calls, 1);
}

#[test]
fn a_new_incarnation_is_reported_as_a_restart_and_the_channel_starts_afresh() {
    let (mut a, mut b) = (engine(A, 11), engine(B, 22));
    let mut src = Puts {
        to: B,
        next: 0,
        count: 5,
        control_calls: 0,
        renders: 0,
    };
    let mut wire = Wire {
        state: 1,
        drop_one_in: 1_000_000,
        dropped: 0,
    };
    run(&mut a, &mut b, &mut src, &mut wire);
    let before = b.peers[b.ix(A).unwrap()].expected;
    // Node A comes back with a new incarnation: its first frame (a broadcast hello).
    let mut a2 = engine(A, 12);
    let mut buf = [0u8; FRAME_BUF];
    let n = a2
        .poll_transmit(Instant(5), &mut Nothing, &SoftChecksum, &mut buf)
        .expect("a broadcast hello");
    let inb = b.on_frame(Instant(6), &buf[..n], &SoftChecksum).unwrap();
    assert!(inb.restarted && inb.src == A && inb.event.is_none());
    let p = b.ix(A).unwrap();
    assert_eq!(b.peers[p].inc, 12);
    let fresh = channel::Peer::new(A);
    assert_eq!(
        (b.peers[p].expected, b.peers[p].inflight.len()),
        (fresh.expected, 0),
        "the channel starts afresh"
    );
    assert_eq!(
        before,
        fresh.expected.wrapping_add(5),
        "(the old one had moved on)"
    );
    // The same frame again is no second restart.
    let inb = b.on_frame(Instant(7), &buf[..n], &SoftChecksum).unwrap();
    assert!(!inb.restarted);
}

#[test]
fn events_decode_bells_answers_and_notices() {
    let bell = |flags| {
        Event::of(&Message::Bell(Bell {
            segment_id: SEGID,
            import_id: IMPORT,
            flags,
            op_id: 5,
        }))
    };
    assert_eq!(
        bell(wire::BELL_TO_EXPORTER | wire::BELL_NO_ACCUMULATE),
        Event::Bell {
            import_id: IMPORT,
            segid: SEGID,
            op_id: 5,
            to_exporter: true,
            no_accumulate: true
        }
    );
    assert!(matches!(
        bell(0),
        Event::Bell {
            to_exporter: false,
            no_accumulate: false,
            ..
        }
    ));
    let ack = |entry| {
        Event::of(&Message::Ack(Ack {
            op_id: 5,
            entry,
            status: 3,
            done_len: 64,
        }))
    };
    assert_eq!(
        ack(wire::BELL_ACK_ENTRY),
        Event::BellAnswer {
            op_id: 5,
            status: 3
        }
    );
    assert_eq!(
        ack(2),
        Event::Ack {
            op_id: 5,
            entry: 2,
            status: 3,
            done: 64
        }
    );
    let notice = Message::Importing(wire::ImportNotice {
        segment_id: SEGID,
        import_id: IMPORT,
    });
    assert_eq!(Event::of(&notice), Event::Notice);
}
