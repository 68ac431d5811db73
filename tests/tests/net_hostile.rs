//! A hostile peer on the simulated network (DESIGN §4, `proto` module docs).
//!
//! Three nodes: node 1 exports segments, node 0 is an honest importer, node 2 is the attacker.
//! Node 2 first imports legitimately (read-only) through the API; then it reboots into a fresh
//! identity (a newer incarnation, so that the sequence numbers of its channel to node 1 start
//! again at 1), is powered off — its port stays on the network and keeps the frames sent to
//! it ([`Cluster::capture`]) — and from then on every frame of node 2 is hand-crafted with
//! [`rsm_core::wire::emit`] and injected through its port ([`Cluster::inject`]).
//!
//! Node 1's segments:
//! * A ([`SEG_A`], 64 KiB): node 0 read+write, node 2 read-only — the segment under attack;
//! * B ([`SEG_B`], 16 KiB): published to node 0 only;
//! * C ([`SEG_C`], 8 KiB): node 2 read+write, so that crafted puts can get past the permission
//!   check and reach the range check;
//! * D ([`SEG_D`], 16 KiB): node 2 write-only (its contents are secret to node 2).
//!
//! Every case asserts (a) that the hostile frame is dropped and counted in exactly the
//! expected [`NetStats`] counter of its victim (and no other drop counter moves), (b) that the
//! exported memory is unchanged byte for byte except where someone with the right to write
//! wrote, and (c) that the honest node 0 is still served (a put + get round trip in the usual
//! time). Frames that must not be delivered are followed by a probe with the same sequence
//! number, which must be delivered — so "dropped" also means "did not take a sequence number".

use rsm_core::proto::NetStats;
use rsm_core::wire::{
    self, Ack, Bell, ConnectRequest, Disconnect, GetData, GetRequest, Header, HeaderRepr, Hello,
    ImportNotice, Message, MessageType, PutData, BELL_TO_EXPORTER, ETHERNET_HEADER_LEN, FLAG_ACK,
    FLAG_RETRANSMIT, HEADER_LEN, NODE_BROADCAST,
};
use rsm_core::{
    AccessEntry, Completion, CreateFlags, ImportHandle, OpId, Permission, RsmError, RsmResult,
};
use rsm_hal::fake::FakeRegion;
use rsm_hal::netsim::FaultConfig;
use rsm_tests::assert_bytes;
use rsm_tests::net::{mac, Cluster};
use rsm_tests::Rng;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

const SEG_A: u32 = 0x40_0001;
const SEG_B: u32 = 0x40_0002;
const SEG_C: u32 = 0x40_0003;
const SEG_D: u32 = 0x40_0004;
const LEN: [usize; 4] = [65536, 16384, 8192, 16384];
const A: usize = 0;
const C: usize = 2;
const D: usize = 3;

/// The attacker's crafted imports (its own cookies): A read-only, C read+write.
const RO_ID: u32 = 0x0A11_CE01;
const RW_ID: u32 = 0x0A11_CE02;

/// The known contents of segment `k` at byte `i` (distinct per segment, never all equal).
fn pattern(k: usize, i: usize) -> u8 {
    (i.wrapping_mul(31 + 2 * k) ^ (i >> 8) ^ (0x5a + 0x11 * k)) as u8
}

/// What the attacker received from a victim, in order (sequenced messages only).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Reply {
        request_id: u32,
        status: u16,
        permission: u16,
        segment_len: u64,
    },
    Ack {
        op_id: u32,
        entry: u16,
        status: u16,
    },
    GetData {
        op_id: u32,
        status: u16,
        frag: u32,
        data: Vec<u8>,
    },
    Other(MessageType),
}

/// One direction of the attacker's channel to a victim.
#[derive(Debug, Clone, Copy)]
struct Chan {
    /// The victim's incarnation.
    inc: u64,
    /// Next sequence number to send.
    seq: u32,
    /// Next sequence number expected from the victim (our cumulative acknowledgement).
    ack: u32,
}

struct World {
    c: Cluster,
    /// Node 0's honest read+write import of A.
    imp0: ImportHandle,
    /// Node 1's segments A, B, C, D and what they must contain.
    mem: [FakeRegion; 4],
    expect: [Vec<u8>; 4],
    /// The attacker's incarnation.
    inc: u64,
    /// The attacker's channels to node 0 and node 1.
    chan: [Chan; 2],
    /// Sequenced messages received from node 0 and node 1.
    seen: [Vec<Seen>; 2],
    /// All frames the attacker's port received (raw), for retransmission checks.
    raw: Vec<Vec<u8>>,
    next_op: u32,
}

fn frame(h: &HeaderRepr, m: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = wire::emit(h, m, &mut buf).expect("a valid frame");
    buf.truncate(n);
    buf
}

/// A one-fragment put of `data` at `off`.
fn put_msg(import_id: u32, segid: u32, op: u32, off: u64, data: &[u8]) -> Message<'_> {
    Message::PutData(PutData {
        import_id,
        segment_id: segid,
        op_id: op,
        entry: 0,
        remote_offset: off,
        frag_offset: 0,
        total_len: data.len() as u32,
        data,
    })
}

/// A get of `len` bytes at `off`.
/// A connect request for `segid` under request id `request` and import id (cookie) `import_id`.
fn connect_msg(segid: u32, request: u32, import_id: u32, perm: Permission) -> Message<'static> {
    Message::ConnectRequest(ConnectRequest {
        segment_id: segid,
        request_id: request,
        import_id,
        permission: perm.bits() as u16,
    })
}

fn get_msg(import_id: u32, segid: u32, op: u32, off: u64, len: u32) -> Message<'static> {
    Message::GetRequest(GetRequest {
        import_id,
        segment_id: segid,
        op_id: op,
        entry: 0,
        remote_offset: off,
        length: len,
    })
}

/// Recompute the CRC of a tampered frame (so that it fails later checks, not the CRC).
fn reseal(f: &mut [u8]) {
    Header::new_unchecked(&mut f[ETHERNET_HEADER_LEN..]).fill_checksum();
}

fn connect(
    c: &mut Cluster,
    node: u32,
    target: u32,
    segid: u32,
    perm: Permission,
) -> RsmResult<ImportHandle> {
    let n = c.node(node);
    let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
    let op = n.start_import_connect(ctrl, target, segid, perm).unwrap();
    let mut got = None;
    assert!(
        c.run_until(6 * SEC, |c| {
            got = c.node(node).take_connect(op);
            got.is_some()
        }),
        "connect of node {node} to {segid:#x} on node {target} did not complete"
    );
    got.unwrap()
}

/// Run until `op` of `node` completes, at most `limit_ns` of simulated time.
fn wait(c: &mut Cluster, node: u32, op: OpId, limit_ns: u64, buf: &mut [u8]) -> Completion {
    let mut got = None;
    let start = c.now();
    let done = c.run_until(limit_ns, |c| {
        got = c.node(node).take_get(op, buf);
        got.is_some()
    });
    assert!(
        done,
        "node {node}: operation not complete {} ns after {start:?} (stats of node 1: {:?})",
        limit_ns,
        c.node(1).net_stats()
    );
    got.unwrap()
}

/// The counters that record dropped or refused input.
fn drops(s: &NetStats) -> [(&'static str, u64); 8] {
    [
        ("malformed", s.malformed),
        ("not_for_us", s.not_for_us),
        ("spoofed", s.spoofed),
        ("stale", s.stale),
        ("out_of_window", s.out_of_window),
        ("rejected", s.rejected),
        ("restarts", s.restarts),
        ("unreachable", s.unreachable),
    ]
}

/// Exactly the listed drop counters moved, by exactly the listed amounts.
#[track_caller]
fn assert_counted(before: &NetStats, after: &NetStats, expect: &[(&str, u64)]) {
    for ((name, b), (_, a)) in drops(before).iter().zip(drops(after).iter()) {
        let want = expect.iter().find(|(n, _)| n == name).map_or(0, |e| e.1);
        assert_eq!(
            a - b,
            want,
            "NetStats::{name} moved by {} (expected {want})\nbefore: {before:?}\nafter:  {after:?}",
            a - b
        );
    }
}

impl World {
    /// The three nodes, the segments, node 0's import, node 2's legitimate read-only import,
    /// then node 2 reborn as the attacker with crafted imports `RO_ID` (A, read) and `RW_ID`
    /// (C, read+write), both checked to work (positive controls for the crafted frames).
    fn new(seed: u64, faults: FaultConfig) -> World {
        let mut c = Cluster::new(3, seed, faults);
        // Node 1 runs its second incarnation: a frame for the first one is stale.
        c.boot(1);
        c.run_for(10 * MS);
        let n1 = c.node(1);
        let ctrl = n1.get_controller(Some("rsmnet0")).unwrap();
        let acls: [Vec<AccessEntry>; 4] = [
            vec![AccessEntry::new(0, 0o666), AccessEntry::new(2, 0o444)],
            vec![AccessEntry::new(0, 0o666)],
            vec![AccessEntry::new(2, 0o666)],
            vec![AccessEntry::new(2, 0o222)],
        ];
        let segids = [SEG_A, SEG_B, SEG_C, SEG_D];
        let mut mem = Vec::new();
        let mut expect = Vec::new();
        for k in 0..4 {
            let region = n1.platform().alloc(LEN[k]);
            let bytes: Vec<u8> = (0..LEN[k]).map(|i| pattern(k, i)).collect();
            n1.platform().write(&region, 0, &bytes);
            let ex = n1
                .export_create(ctrl, region.clone(), CreateFlags::empty())
                .unwrap();
            n1.export_publish(ex, segids[k], &acls[k]).unwrap();
            mem.push(region);
            expect.push(bytes);
        }
        let imp0 = connect(&mut c, 0, 1, SEG_A, Permission::RDWR).expect("node 0 imports A");

        // Node 2, honest for now: the ACL is enforced on connect.
        let imp2 = connect(&mut c, 2, 1, SEG_A, Permission::READ).expect("node 2 imports A");
        assert_eq!(
            connect(&mut c, 2, 1, SEG_A, Permission::RDWR),
            Err(RsmError::PermDenied)
        );
        assert_eq!(
            connect(&mut c, 2, 1, SEG_B, Permission::READ),
            Err(RsmError::SegNotPublishedToNode)
        );
        let op = c.node(2).start_get(imp2, 100, 64).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(wait(&mut c, 2, op, 100 * MS, &mut buf).result, Ok(()));
        assert_bytes(&buf, &expect[A][100..164], "node 2's legitimate get");

        // Node 2 reborn as the attacker: a newer incarnation, known to node 1.
        let restarts = c.node(1).net_stats().restarts;
        c.boot(2);
        assert!(c.run_until(SEC, |c| {
            c.node(1).net_stats().restarts > restarts && c.node(2).net_peers().contains(&1)
        }));
        c.run_for(10 * MS);
        let inc = c.node(2).net_incarnation();
        let chan = [
            Chan {
                inc: c.node(0).net_incarnation(),
                seq: 1,
                ack: 1,
            },
            Chan {
                inc: c.node(1).net_incarnation(),
                seq: 1,
                ack: 1,
            },
        ];
        assert_eq!(chan[1].inc, 2, "node 1 is in its second incarnation");
        c.power_off(2);
        c.capture(2, true);
        let mut w = World {
            c,
            imp0,
            mem: [
                mem[0].clone(),
                mem[1].clone(),
                mem[2].clone(),
                mem[3].clone(),
            ],
            expect: [
                expect[0].clone(),
                expect[1].clone(),
                expect[2].clone(),
                expect[3].clone(),
            ],
            inc,
            chan,
            seen: [Vec::new(), Vec::new()],
            raw: Vec::new(),
            next_op: 0x1000,
        };

        // The attacker's own (crafted but legitimate) imports.
        w.send(1, &connect_msg(SEG_A, 0xC0DE_0001, RO_ID, Permission::READ));
        w.send(1, &connect_msg(SEG_C, 0xC0DE_0002, RW_ID, Permission::RDWR));
        w.settle();
        assert_eq!(w.reply(0xC0DE_0001), Some((0, 0o400, LEN[A] as u64)));
        assert_eq!(w.reply(0xC0DE_0002), Some((0, 0o600, LEN[C] as u64)));

        // Positive controls: a crafted put through RW_ID writes C, a crafted get through
        // RO_ID reads A.
        let before = w.stats(1);
        let op = w.op();
        let data = [0xC3u8; 40];
        w.send(1, &put_msg(RW_ID, SEG_C, op, 300, &data));
        let get = w.op();
        w.send(1, &get_msg(RO_ID, SEG_A, get, 1000, 300));
        w.settle();
        w.expect[C][300..340].copy_from_slice(&data);
        assert_eq!(
            w.acks(op),
            vec![0],
            "crafted put through RW_ID acknowledged"
        );
        assert_eq!(w.got(get), Some((0, w.expect[A][1000..1300].to_vec())));
        assert_counted(&before, &w.stats(1), &[]);
        w.assert_memory();
        w
    }

    fn op(&mut self) -> u32 {
        self.next_op += 1;
        self.next_op
    }

    fn stats(&self, node: u32) -> NetStats {
        self.c.node(node).net_stats()
    }

    /// The header of the attacker's next frame to `victim` (with a valid acknowledgement).
    fn header(&self, victim: u8) -> HeaderRepr {
        let ch = &self.chan[usize::from(victim)];
        HeaderRepr {
            flags: FLAG_ACK,
            src_node: 2,
            dst_node: victim,
            incarnation: self.inc,
            peer_incarnation: ch.inc,
            seq: ch.seq,
            ack: ch.ack,
        }
    }

    /// A frame with the next sequence number, not yet sent (the number is not used up).
    fn next_frame(&self, victim: u8, m: &Message<'_>) -> Vec<u8> {
        frame(&self.header(victim), m)
    }

    /// Send `m` as the next in-order message to `victim` (it uses up a sequence number), let
    /// it be processed at this instant and acknowledge what came back — so that the victim's
    /// window and queues towards the attacker never fill up.
    fn send(&mut self, victim: u8, m: &Message<'_>) {
        self.send_quiet(victim, m);
        self.c.run_for(0);
        self.absorb();
        self.pure_ack(victim);
        self.c.run_for(0);
        self.absorb();
    }

    /// Send `m` as the next in-order message to `victim`, and nothing else.
    fn send_quiet(&mut self, victim: u8, m: &Message<'_>) {
        let f = self.next_frame(victim, m);
        self.inject(&f);
        self.chan[usize::from(victim)].seq += 1;
    }

    fn inject(&mut self, f: &[u8]) {
        self.c.inject(2, f).expect("the network takes the frame");
    }

    /// Read what arrived at the attacker's port; advance the acknowledgements.
    fn absorb(&mut self) {
        for f in self.c.take_captured(2) {
            if let Ok((h, m)) = wire::parse(&f) {
                let v = usize::from(h.src_node);
                let known = v < 2
                    && h.incarnation == self.chan[v].inc
                    && h.peer_incarnation == self.inc
                    && h.dst_node == 2;
                // The victim expects `ack` next: frames of ours were delivered that we did not
                // count (only random ones can be).
                if known
                    && h.flags & FLAG_ACK != 0
                    && h.ack.wrapping_sub(self.chan[v].seq) as i32 > 0
                {
                    self.chan[v].seq = h.ack;
                }
                if known && !matches!(m, Message::Hello(_)) && h.seq == self.chan[v].ack {
                    self.chan[v].ack += 1;
                    self.seen[v].push(match m {
                        Message::ConnectReply(r) => Seen::Reply {
                            request_id: r.request_id,
                            status: r.status,
                            permission: r.permission,
                            segment_len: r.segment_len,
                        },
                        Message::Ack(a) => Seen::Ack {
                            op_id: a.op_id,
                            entry: a.entry,
                            status: a.status,
                        },
                        Message::GetData(g) => Seen::GetData {
                            op_id: g.op_id,
                            status: g.status,
                            frag: g.frag_offset,
                            data: g.data.to_vec(),
                        },
                        other => Seen::Other(other.msg_type()),
                    });
                }
            }
            self.raw.push(f);
        }
    }

    /// A pure acknowledgement (unicast hello) to `victim`.
    fn pure_ack(&mut self, victim: u8) {
        let mut h = self.header(victim);
        h.seq = 0;
        let f = frame(
            &h,
            &Message::Hello(Hello {
                incarnation: self.inc,
                max_frame: 1514,
            }),
        );
        self.inject(&f);
    }

    /// Let everything settle: run, read the answers, acknowledge them.
    fn settle(&mut self) {
        for _ in 0..3 {
            self.c.run_for(5 * MS);
            self.absorb();
            self.pure_ack(0);
            self.pure_ack(1);
        }
        self.c.run_for(5 * MS);
        self.absorb();
    }

    /// (status, granted permission, length) of the connect reply for `request_id`.
    fn reply(&self, request_id: u32) -> Option<(u16, u16, u64)> {
        self.seen[1].iter().find_map(|s| match s {
            Seen::Reply {
                request_id: r,
                status,
                permission,
                segment_len,
            } if *r == request_id => Some((*status, *permission, *segment_len)),
            _ => None,
        })
    }

    /// Statuses of the acknowledgements node 1 sent for the attacker's put `op`.
    fn acks(&self, op: u32) -> Vec<u16> {
        self.seen[1]
            .iter()
            .filter_map(|s| match s {
                Seen::Ack { op_id, status, .. } if *op_id == op => Some(*status),
                _ => None,
            })
            .collect()
    }

    /// The answer of node 1 to the attacker's get `op`: (status, bytes), fragments joined.
    fn got(&self, op: u32) -> Option<(u16, Vec<u8>)> {
        let mut out: Option<(u16, Vec<u8>)> = None;
        for s in &self.seen[1] {
            if let Seen::GetData {
                op_id,
                status,
                frag,
                data,
            } = s
            {
                if *op_id == op {
                    let o = out.get_or_insert((*status, Vec::new()));
                    assert_eq!(*frag as usize, o.1.len(), "fragments in order");
                    o.0 = *status;
                    o.1.extend_from_slice(data);
                }
            }
        }
        out
    }

    /// Nothing came back for `op` but, at most, refusals: no data, no successful ack.
    #[track_caller]
    fn assert_refused(&self, op: u32) {
        if let Some((status, data)) = self.got(op) {
            assert!(
                status != 0 && data.is_empty(),
                "get {op:#x} was answered with data"
            );
        }
        assert!(
            self.acks(op).iter().all(|&s| s != 0),
            "put {op:#x} was acknowledged as written"
        );
    }

    /// Take what C and D hold now as expected: node 2 may write them (random frames can).
    fn adopt_writable(&mut self) {
        for k in [C, D] {
            self.expect[k] = self.c.node(1).platform().read(&self.mem[k], 0, LEN[k]);
        }
    }

    /// Node 1's segments hold exactly what they should.
    #[track_caller]
    fn assert_memory(&self) {
        for k in 0..4 {
            let got = self.c.node(1).platform().read(&self.mem[k], 0, LEN[k]);
            assert_bytes(&got, &self.expect[k], ["A", "B", "C", "D"][k]);
        }
    }

    /// The next in-order message from the attacker is still delivered (a get through RO_ID
    /// answered with A's bytes): the channel is intact and no sequence number was used up by
    /// a dropped frame.
    #[track_caller]
    fn probe(&mut self) {
        let op = self.op();
        let seq = self.chan[1].seq;
        self.send(1, &get_msg(RO_ID, SEG_A, op, 8, 24));
        self.settle();
        assert_eq!(
            self.got(op),
            Some((0, self.expect[A][8..32].to_vec())),
            "probe with seq {seq} not answered: a dropped frame took its sequence number, or \
             the channel broke (stats of node 1: {:?})",
            self.stats(1)
        );
    }

    /// Node 0 is still served: a put and a get through its import, within 100 ms of
    /// simulated time each, byte-exact; then all memory is as expected.
    #[track_caller]
    fn honest_round_trip(&mut self, off: usize, tag: u8) {
        let data: Vec<u8> = (0..256).map(|i| tag ^ (i as u8).wrapping_mul(7)).collect();
        let op = self.c.node(0).start_put(self.imp0, off, &data).unwrap();
        let c = wait(&mut self.c, 0, op, 100 * MS, &mut []);
        assert_eq!(c.result, Ok(()), "honest put");
        self.expect[A][off..off + 256].copy_from_slice(&data);
        let op = self.c.node(0).start_get(self.imp0, off, 256).unwrap();
        let mut buf = vec![0u8; 256];
        let c = wait(&mut self.c, 0, op, 100 * MS, &mut buf);
        assert_eq!(c.result, Ok(()), "honest get");
        assert_bytes(&buf, &data, "honest get");
        self.assert_memory();
    }
}

#[test]
fn spoofed_source_is_dropped() {
    let mut w = World::new(11, FaultConfig::default());
    w.honest_round_trip(4096, 0x11);
    let before = w.stats(1);
    let n0_inc = w.c.node(0).net_incarnation();

    // 1. Node 0's id from node 2's MAC, claiming a newer incarnation of node 0: if believed,
    //    node 1 would take node 0 for restarted and forget its import.
    let mut h = w.header(1);
    h.src_node = 0;
    h.incarnation = n0_inc + 1;
    let data = [0xEEu8; 64];
    let op = w.op();
    let mut f = frame(&h, &put_msg(RO_ID, SEG_A, op, 0, &data));
    f[6..12].copy_from_slice(&mac(2));
    w.inject(&f);
    // 2. Node 2's id from node 0's MAC.
    let op2 = w.op();
    let mut f = w.next_frame(1, &get_msg(RO_ID, SEG_A, op2, 0, 16));
    f[6..12].copy_from_slice(&mac(0));
    w.inject(&f);
    // 3. A MAC that is no node's (locally administered).
    let op3 = w.op();
    let mut f = w.next_frame(1, &get_msg(RO_ID, SEG_A, op3, 0, 16));
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    w.inject(&f);
    // 4. Node 1's own id, from node 2's MAC: not for it.
    let op4 = w.op();
    let mut h = w.header(1);
    h.src_node = 1;
    let mut f = frame(&h, &get_msg(RO_ID, SEG_A, op4, 0, 16));
    f[6..12].copy_from_slice(&mac(2));
    w.inject(&f);
    w.settle();

    assert_counted(&before, &w.stats(1), &[("spoofed", 3), ("not_for_us", 1)]);
    for op in [op, op2, op3, op4] {
        assert_eq!(w.got(op), None, "spoofed get {op:#x} answered");
        assert!(w.acks(op).is_empty(), "spoofed put {op:#x} acknowledged");
    }
    w.probe();
    w.assert_memory();
    w.honest_round_trip(4096, 0x12);
}

#[test]
fn stale_incarnations_are_dropped() {
    let mut w = World::new(12, FaultConfig::default());
    let before = w.stats(1);
    let data = [0xEEu8; 64];

    // 1. From an older incarnation of node 2: a put through RW_ID, which would be allowed
    //    from the current one.
    let op1 = w.op();
    let mut h = w.header(1);
    h.incarnation = w.inc - 1;
    let f = frame(&h, &put_msg(RW_ID, SEG_C, op1, 0, &data));
    w.inject(&f);
    // 2. Addressed to node 1's first incarnation.
    let op2 = w.op();
    let mut h = w.header(1);
    h.peer_incarnation = w.chan[1].inc - 1;
    let f = frame(&h, &put_msg(RW_ID, SEG_C, op2, 64, &data));
    w.inject(&f);
    w.settle();
    assert_counted(&before, &w.stats(1), &[("stale", 2)]);
    w.assert_refused(op1);
    w.assert_refused(op2);
    assert!(w.acks(op1).is_empty() && w.acks(op2).is_empty());
    w.assert_memory();
    w.probe();

    // 3. Addressed to an incarnation of node 1 that does not exist yet: dropped too (the
    //    counter it lands in is the engine's choice: any one drop counter, exactly once).
    let before = w.stats(1);
    let op3 = w.op();
    let mut h = w.header(1);
    h.peer_incarnation = w.chan[1].inc + 1;
    let f = frame(&h, &put_msg(RW_ID, SEG_C, op3, 128, &data));
    w.inject(&f);
    w.settle();
    let after = w.stats(1);
    let moved: u64 = drops(&after)
        .iter()
        .zip(drops(&before).iter())
        .map(|(a, b)| a.1 - b.1)
        .sum();
    assert_eq!(
        moved, 1,
        "dropped and counted once: {before:?} -> {after:?}"
    );
    assert_eq!(after.restarts, before.restarts);
    assert!(w.acks(op3).is_empty());
    w.probe();
    w.assert_memory();
    w.honest_round_trip(2048, 0x21);
}

#[test]
fn put_out_of_range_is_rejected() {
    let mut w = World::new(13, FaultConfig::default());
    w.honest_round_trip(0, 0x31);
    let before = w.stats(1);
    let len = LEN[C] as u64;
    let big = [0xEEu8; 200];
    let mut ops = Vec::new();
    // (remote offset, total length, bytes carried) through RW_ID, which may write C.
    let cases: [(u64, u32, usize); 7] = [
        (len - 16, 32, 32),         // runs 16 bytes past the end
        (len, 1, 1),                // starts at the end
        (len + 4096, 8, 8),         // in the guard page after the region
        (0, len as u32 + 1, 200),   // entry longer than the segment (first fragment only)
        (1 << 40, 8, 8),            // far away
        (u64::MAX - 300, 200, 200), // near the top of the address space
        (len + 1, 0, 0),            // empty, but outside
    ];
    for (off, total, n) in cases {
        let op = w.op();
        ops.push(op);
        w.send(
            1,
            &Message::PutData(PutData {
                import_id: RW_ID,
                segment_id: SEG_C,
                op_id: op,
                entry: 0,
                remote_offset: off,
                frag_offset: 0,
                total_len: total,
                data: &big[..n],
            }),
        );
    }
    // Gets through RO_ID outside A.
    let lena = LEN[A] as u64;
    for (off, n) in [
        (lena - 8, 16),
        (lena, 1),
        (1 << 40, 64),
        (u64::MAX - 64, 64),
    ] {
        let op = w.op();
        ops.push(op);
        w.send(1, &get_msg(RO_ID, SEG_A, op, off, n));
    }
    w.settle();
    assert_counted(&before, &w.stats(1), &[("rejected", 11)]);
    for op in ops {
        w.assert_refused(op);
    }
    w.assert_memory();
    w.probe();
    // A correct put through RW_ID still works after the refusals.
    let op = w.op();
    w.send(1, &put_msg(RW_ID, SEG_C, op, len - 8, &[0x5Au8; 8]));
    w.settle();
    assert_eq!(w.acks(op), vec![0]);
    w.expect[C][LEN[C] - 8..].copy_from_slice(&[0x5A; 8]);
    w.assert_memory();
    w.honest_round_trip(0, 0x32);
}

#[test]
fn put_through_read_only_import_is_rejected() {
    let mut w = World::new(14, FaultConfig::default());
    let before = w.stats(1);
    let data = [0xEEu8; 300];
    let mut ops = Vec::new();
    for off in [0u64, 1000, LEN[A] as u64 - 300] {
        let op = w.op();
        ops.push(op);
        w.send(1, &put_msg(RO_ID, SEG_A, op, off, &data));
    }
    // A second fragment of a put whose first fragment never came.
    let op = w.op();
    ops.push(op);
    w.send(
        1,
        &Message::PutData(PutData {
            import_id: RO_ID,
            segment_id: SEG_A,
            op_id: op,
            entry: 0,
            remote_offset: 0,
            frag_offset: 1000,
            total_len: 2000,
            data: &data,
        }),
    );
    w.settle();
    assert_counted(&before, &w.stats(1), &[("rejected", 4)]);
    for op in &ops {
        w.assert_refused(*op);
    }
    w.assert_memory();

    // Asking for write access, under a new cookie or under the read-only one, is refused
    // and upgrades nothing.
    let before = w.stats(1);
    for (request_id, import_id) in [(0xC0DE_0100, 0x0A11_CE77), (0xC0DE_0101, RO_ID)] {
        w.send(
            1,
            &Message::ConnectRequest(ConnectRequest {
                segment_id: SEG_A,
                request_id,
                import_id,
                permission: Permission::RDWR.bits() as u16,
            }),
        );
    }
    w.settle();
    for request_id in [0xC0DE_0100, 0xC0DE_0101] {
        assert_eq!(
            w.reply(request_id).map(|r| r.0),
            Some(RsmError::PermDenied.code() as u16)
        );
    }
    let mut ops = Vec::new();
    for import_id in [0x0A11_CE77, RO_ID] {
        let op = w.op();
        ops.push(op);
        w.send(1, &put_msg(import_id, SEG_A, op, 0, &data));
    }
    w.settle();
    assert_counted(&before, &w.stats(1), &[("rejected", 2)]);
    for op in ops {
        w.assert_refused(op);
    }
    w.assert_memory();
    // Read-only again under RO_ID (for the probe).
    w.send(1, &connect_msg(SEG_A, 0xC0DE_0102, RO_ID, Permission::READ));
    w.settle();
    assert_eq!(w.reply(0xC0DE_0102), Some((0, 0o400, LEN[A] as u64)));
    w.probe();
    w.honest_round_trip(512, 0x41);
}

#[test]
fn segment_not_published_to_attacker_and_unknown_imports_are_rejected() {
    let mut w = World::new(15, FaultConfig::default());
    let before = w.stats(1);
    let data = [0xEEu8; 100];
    let mut ops = Vec::new();
    // Its real cookies, naming B (published to node 0 only).
    for id in [RO_ID, RW_ID] {
        let op = w.op();
        ops.push(op);
        w.send(1, &put_msg(id, SEG_B, op, 0, &data));
        let op = w.op();
        ops.push(op);
        w.send(1, &get_msg(id, SEG_B, op, 0, 100));
    }
    // Unknown cookies naming A; and guesses of node 0's import id (index << 16 | generation),
    // which are keyed to node 0 and must mean nothing from node 2.
    let mut ids = vec![0xDEAD_BEEF, 0, u32::MAX];
    for index in 0..4u32 {
        for gen in 0..6u32 {
            ids.push(index << 16 | gen);
        }
    }
    for &id in &ids {
        let op = w.op();
        ops.push(op);
        w.send(1, &put_msg(id, SEG_A, op, 0, &data));
    }
    w.settle();
    for &id in &ids[..3] {
        let op = w.op();
        ops.push(op);
        w.send(1, &get_msg(id, SEG_A, op, 0, 100));
    }
    // Bells for unknown imports and for B.
    for (id, seg) in [(0xDEAD_BEEF, SEG_A), (RO_ID, SEG_B), (0, SEG_A)] {
        w.send(
            1,
            &Message::Bell(Bell {
                segment_id: seg,
                import_id: id,
                flags: BELL_TO_EXPORTER,
                op_id: 7,
            }),
        );
    }
    // A disconnect for an import node 1 does not have (node 1 imports nothing from node 2).
    w.send(
        1,
        &Message::Disconnect(Disconnect {
            segment_id: SEG_A,
            import_id: RO_ID,
            generation: 1,
            forced: true,
        }),
    );
    w.settle();
    let n_rejected = 4 + ids.len() as u64 + 3 + 3 + 1;
    assert_counted(&before, &w.stats(1), &[("rejected", n_rejected)]);
    for op in ops {
        w.assert_refused(op);
    }
    w.assert_memory();

    // "Not importing" with guesses of node 0's id must not end node 0's import either.
    for &id in &ids {
        w.send(
            1,
            &Message::NotImporting(ImportNotice {
                segment_id: SEG_A,
                import_id: id,
            }),
        );
    }
    // Connecting to B or to a segment that does not exist: refused with the spec's codes.
    w.send(
        1,
        &connect_msg(SEG_B, 0xC0DE_0200, 0x0A11_CE0B, Permission::READ),
    );
    w.send(
        1,
        &connect_msg(0x7777_0000, 0xC0DE_0201, 0x0A11_CE0C, Permission::READ),
    );
    w.settle();
    assert_eq!(
        w.reply(0xC0DE_0200).map(|r| r.0),
        Some(RsmError::SegNotPublishedToNode.code() as u16)
    );
    assert_eq!(
        w.reply(0xC0DE_0201).map(|r| r.0),
        Some(RsmError::SegNotPublished.code() as u16)
    );
    let before = w.stats(1);
    let op = w.op();
    w.send(1, &get_msg(0x0A11_CE0B, SEG_B, op, 0, 64));
    w.settle();
    assert_counted(&before, &w.stats(1), &[("rejected", 1)]);
    w.assert_refused(op);
    w.probe();
    w.assert_memory();
    w.honest_round_trip(8192, 0x51);
}

#[test]
fn sequence_or_ack_far_outside_the_window_is_dropped() {
    let mut w = World::new(16, FaultConfig::default());
    let before = w.stats(1);
    let mut ops = Vec::new();
    for ahead in [1000u32, 0x4000_0000] {
        let op = w.op();
        ops.push(op);
        let mut h = w.header(1);
        h.seq = h.seq.wrapping_add(ahead);
        w.inject(&frame(&h, &get_msg(RO_ID, SEG_A, op, 0, 16)));
    }
    // Acknowledging frames node 1 never sent: on a data frame and on a pure ack.
    for ahead in [1000u32, 0x4000_0000] {
        let op = w.op();
        ops.push(op);
        let mut h = w.header(1);
        h.ack = h.ack.wrapping_add(ahead);
        w.inject(&frame(&h, &get_msg(RO_ID, SEG_A, op, 0, 16)));
    }
    let mut h = w.header(1);
    h.seq = 0;
    h.ack = h.ack.wrapping_add(77);
    w.inject(&frame(
        &h,
        &Message::Hello(Hello {
            incarnation: w.inc,
            max_frame: 1514,
        }),
    ));
    // Let the bogus acknowledgements meet unacknowledged frames of node 1: hold back our
    // acknowledgements while node 1 answers a get.
    let get = w.op();
    w.send_quiet(1, &get_msg(RO_ID, SEG_A, get, 0, 16));
    w.c.run_for(MS);
    let mut h = w.header(1);
    h.seq = 0;
    h.ack = h.ack.wrapping_add(500);
    w.inject(&frame(
        &h,
        &Message::Hello(Hello {
            incarnation: w.inc,
            max_frame: 1514,
        }),
    ));
    // Node 1 must still retransmit its unacknowledged answer.
    w.c.run_for(200 * MS);
    w.absorb();
    let retransmitted = w.raw.iter().any(|f| {
        wire::parse(f).is_ok_and(|(h, m)| {
            h.src_node == 1
                && h.flags & FLAG_RETRANSMIT != 0
                && matches!(m, Message::GetData(g) if g.op_id == get)
        })
    });
    assert!(
        retransmitted,
        "a bogus ack released node 1's unacknowledged answer"
    );
    w.settle();
    assert_counted(&before, &w.stats(1), &[("out_of_window", 6)]);
    for op in ops {
        assert_eq!(
            w.got(op),
            None,
            "get {op:#x} outside the window was answered"
        );
    }
    assert_eq!(w.got(get), Some((0, w.expect[A][..16].to_vec())));
    w.probe();
    w.assert_memory();
    w.honest_round_trip(3000, 0x61);
}

#[test]
fn malformed_frames_are_dropped() {
    let mut w = World::new(17, FaultConfig::default());
    let before = w.stats(1);
    let op = w.op();
    let base = w.next_frame(1, &get_msg(RO_ID, SEG_A, op, 0, 16));
    assert_eq!(base.len(), ETHERNET_HEADER_LEN + HEADER_LEN + 26);
    let hdr = ETHERNET_HEADER_LEN;
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut f = base.clone();
    f[hdr + HEADER_LEN + 5] ^= 0x01;
    bad.push(("body bit flipped", f));
    let mut f = base.clone();
    f[hdr + 33] ^= 0x80;
    bad.push(("checksum flipped", f));
    bad.push(("cut inside the header", base[..40].to_vec()));
    bad.push(("cut inside the body", base[..base.len() - 6].to_vec()));
    bad.push(("Ethernet header only", base[..14].to_vec()));
    let mut f = base.clone();
    f[hdr] = 2;
    bad.push(("version 2", f.clone()));
    reseal(&mut f);
    bad.push(("version 2, checksum fixed", f));
    let mut f = base.clone();
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    bad.push(("IPv4 EtherType", f));
    let mut f = base.clone();
    f[hdr + 1] = 0x7f;
    reseal(&mut f);
    bad.push(("unknown message type", f));
    let mut f = base.clone();
    f[hdr + 2..hdr + 4].copy_from_slice(&(0x8000u16 | FLAG_ACK).to_be_bytes());
    reseal(&mut f);
    bad.push(("unknown flag", f));
    let mut f = base.clone();
    f[hdr + 8..hdr + 16].fill(0);
    reseal(&mut f);
    bad.push(("incarnation 0", f));
    let mut f = base.clone();
    f[hdr + 4] = 64;
    reseal(&mut f);
    bad.push(("source node 64", f));
    let mut f = base.clone();
    f.extend_from_slice(&[0u8; 10]);
    bad.push(("trailing bytes", f));
    let mut f = base.clone();
    f[hdr + 6..hdr + 8].copy_from_slice(&20u16.to_be_bytes());
    reseal(&mut f);
    bad.push(("payload length too short for its type", f));
    // A put whose fragment runs past its entry.
    let data = [1u8; 32];
    let mut f = w.next_frame(1, &put_msg(RW_ID, SEG_C, op, 0, &data));
    let total_at = hdr + HEADER_LEN + 26;
    f[total_at..total_at + 4].copy_from_slice(&16u32.to_be_bytes());
    reseal(&mut f);
    bad.push(("fragment past its total length", f));
    // Hellos: body incarnation differs from the header's; max frame below the minimum.
    let mut h = w.header(1);
    h.seq = 0;
    let hello = frame(
        &h,
        &Message::Hello(Hello {
            incarnation: w.inc,
            max_frame: 1514,
        }),
    );
    let mut f = hello.clone();
    f[hdr + HEADER_LEN + 7] ^= 1;
    reseal(&mut f);
    bad.push(("hello incarnation mismatch", f));
    let mut f = hello;
    f[hdr + HEADER_LEN + 8..hdr + HEADER_LEN + 10].copy_from_slice(&64u16.to_be_bytes());
    reseal(&mut f);
    bad.push(("hello max frame 64", f));
    let n = bad.len() as u64;
    for (what, f) in &bad {
        let s0 = w.stats(1).malformed;
        w.c.inject(2, f).expect("the network takes the frame");
        w.c.run_for(MS);
        assert_eq!(
            w.stats(1).malformed,
            s0 + 1,
            "{what}: not counted as malformed"
        );
    }
    w.settle();
    assert_counted(&before, &w.stats(1), &[("malformed", n)]);
    w.assert_refused(op);
    w.probe();
    w.assert_memory();
    w.honest_round_trip(700, 0x71);
}

/// A random frame from node 2's port: raw bytes, a valid frame with bits flipped, a
/// structurally valid frame with random fields (CRC right), or one cut short. Most valid
/// frames carry the attacker's real incarnations and sequence numbers near the expected
/// one, so that they get past the channel; `true` if the frame announces a restart of the
/// attacker (incarnation + 1: the caller adopts it).
fn garbage(w: &World, rng: &mut Rng) -> (Vec<u8>, bool) {
    let kind = rng.below(10);
    if kind < 2 {
        let len = 14 + rng.below(1500) as usize;
        let mut f = rng.bytes(len);
        let dst = if rng.below(2) == 0 { mac(1) } else { [0xff; 6] };
        f[..6].copy_from_slice(&dst);
        if rng.below(2) == 0 {
            f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes());
            if len > 14 {
                f[14] = 1;
            }
        }
        return (f, false);
    }
    let pick = |rng: &mut Rng, v: &[u64]| v[rng.below(v.len() as u64) as usize];
    let ch = w.chan[1];
    let r: [u64; 4] = [
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
    ];
    let restart = (4..8).contains(&kind) && rng.below(150) == 0;
    let flags = [0, FLAG_ACK, FLAG_ACK, FLAG_ACK | FLAG_RETRANSMIT][rng.below(4) as usize];
    let src_node = if !restart && rng.below(8) == 0 {
        rng.below(64) as u8
    } else {
        2
    };
    let dst_node = if !restart && rng.below(10) == 0 {
        NODE_BROADCAST
    } else {
        1
    };
    let incarnation = if restart {
        w.inc + 1
    } else if rng.below(10) == 0 {
        pick(rng, &[w.inc - 1, 1])
    } else {
        w.inc
    };
    let peer_incarnation = if rng.below(8) == 0 {
        pick(rng, &[0, 1, ch.inc + 1, r[1]])
    } else {
        ch.inc
    };
    let seq = ch.seq.wrapping_add(rng.below(24) as u32).wrapping_sub(4);
    let ack = if rng.below(8) == 0 {
        r[2] as u32
    } else {
        ch.ack.wrapping_add(rng.below(3) as u32).wrapping_sub(2)
    };
    let h = HeaderRepr {
        flags,
        src_node,
        dst_node,
        incarnation,
        peer_incarnation,
        seq,
        ack,
    };
    let import_id = pick(
        rng,
        &[u64::from(RO_ID), u64::from(RW_ID), r[3] & 0xffff_ffff],
    ) as u32;
    let r4 = rng.next_u64() & 0xffff_ffff;
    let segment_id = pick(
        rng,
        &[
            u64::from(SEG_A),
            u64::from(SEG_B),
            u64::from(SEG_C),
            u64::from(SEG_D),
            r4,
        ],
    ) as u32;
    let op_id = rng.next_u64() as u32;
    let n = rng.below(300) as usize;
    let data = rng.bytes(n);
    let offset = if rng.below(4) == 0 {
        let shift = rng.below(64);
        rng.next_u64() >> shift
    } else {
        rng.below(70_000)
    };
    let extra = rng.below(3) as u32 * rng.below(70_000) as u32;
    let total = (data.len() as u32).saturating_add(extra);
    let frag = rng.below(u64::from(total) - data.len() as u64 + 1) as u32;
    let perm = rng.below(0o1000) as u16;
    let r5 = rng.below(140);
    let status = pick(rng, &[0, 0, r5]) as u16;
    let m = match rng.below(12) {
        0 => Message::ConnectRequest(ConnectRequest {
            segment_id,
            request_id: op_id,
            import_id,
            permission: perm,
        }),
        1 => Message::ConnectReply(wire::ConnectReply {
            request_id: op_id,
            status,
            permission: perm,
            segment_id,
            segment_len: rng.next_u64(),
            owner_uid: 0,
            owner_gid: 0,
        }),
        2 => Message::Disconnect(Disconnect {
            segment_id,
            import_id,
            generation: rng.next_u64() as u16,
            forced: rng.below(2) == 0,
        }),
        3 => Message::Importing(ImportNotice {
            segment_id,
            import_id,
        }),
        4 => Message::NotImporting(ImportNotice {
            segment_id,
            import_id,
        }),
        5 => Message::Bell(Bell {
            segment_id,
            import_id,
            flags: rng.below(4) as u16,
            op_id: rng.below(1 << 16) as u32,
        }),
        6 => Message::Republish(wire::Republish {
            segment_id,
            permission: perm,
        }),
        7 | 8 => Message::PutData(PutData {
            import_id,
            segment_id,
            op_id,
            entry: rng.below(20) as u16,
            remote_offset: offset.min(u64::MAX - u64::from(total)),
            frag_offset: frag,
            total_len: total,
            data: &data,
        }),
        9 => Message::GetRequest(GetRequest {
            import_id,
            segment_id,
            op_id,
            entry: rng.below(20) as u16,
            remote_offset: offset.min(u64::MAX - 70_000),
            length: rng.below(70_000) as u32,
        }),
        10 => Message::GetData(GetData {
            op_id,
            entry: rng.below(20) as u16,
            status,
            frag_offset: frag,
            total_len: total,
            data: &data,
        }),
        _ => Message::Ack(Ack {
            op_id,
            entry: rng.below(20) as u16,
            status,
            done_len: rng.next_u64() as u32,
        }),
    };
    let mut f = frame(&h, &m);
    f[6..12].copy_from_slice(&mac(2));
    match kind {
        2 | 3 => {
            for _ in 0..1 + rng.below(8) {
                let bit = 48 + rng.below((f.len() as u64 - 6) * 8);
                f[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
        }
        8 | 9 => {
            let cut = 14 + rng.below(f.len() as u64 - 14) as usize;
            f.truncate(cut);
        }
        _ => {}
    }
    (f, restart)
}

#[test]
fn random_garbage_never_panics_and_node_0_is_still_served() {
    for seed in 0..3u64 {
        let mut w = World::new(18 + seed, FaultConfig::default());
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        let before = w.stats(1);
        let mut to_node1 = 0u64;
        for i in 0..3000 {
            let (f, restart) = garbage(&w, &mut rng);
            if restart {
                // Node 1 starts the attacker's channel over.
                w.inc += 1;
                w.chan[1].seq = 1;
                w.chan[1].ack = 1;
            }
            let routed = f[..6] == mac(1) || f[..6] == [0xff; 6];
            if w.c.inject(2, &f).is_ok() && routed {
                to_node1 += 1;
            }
            if i % 10 == 9 {
                w.c.run_for(100_000);
                // Keep the attacker's view of node 1 current so that many frames are in order.
                w.absorb();
            }
            if i % 500 == 499 {
                w.adopt_writable();
                w.honest_round_trip(16384 + (i / 500) * 256, i as u8);
            }
        }
        w.c.run_for(50 * MS);
        let after = w.stats(1);
        assert!(
            after.frames_received - before.frames_received >= to_node1,
            "node 1 saw {} frames, {to_node1} were sent to it",
            after.frames_received - before.frames_received
        );
        let dropped: u64 = drops(&after)
            .iter()
            .zip(drops(&before).iter())
            .map(|(a, b)| a.1 - b.1)
            .sum();
        assert!(
            dropped >= to_node1 / 2,
            "only {dropped} of {to_node1} counted as dropped"
        );
        assert!(
            after.rejected > before.rejected,
            "no random message got past the channel: {after:?}"
        );
        // A and B can never be written by node 2; and node 0 is still served.
        w.adopt_writable();
        w.assert_memory();
        w.honest_round_trip(0, 0x81);
        eprintln!("seed {seed}: node 1 after the garbage: {after:?}");
    }
}

/// Junk of every kind that node 1 must drop or refuse.
fn junk(w: &World, rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let op = 0xF000_0000 | i as u32;
        let m = get_msg(RO_ID, SEG_B, op, 0, 64);
        let mut h = w.header(1);
        let f = match i % 6 {
            0 => {
                let mut f = frame(&h, &m);
                f[60] ^= 0x10;
                f
            }
            1 => {
                h.src_node = 0;
                let mut f = frame(&h, &m);
                f[6..12].copy_from_slice(&mac(2));
                f
            }
            2 => {
                h.incarnation = w.inc - 1;
                frame(&h, &m)
            }
            3 => {
                h.seq = h.seq.wrapping_add(5000 + i as u32);
                frame(&h, &m)
            }
            4 => {
                h.ack = h.ack.wrapping_add(5000);
                frame(&h, &m)
            }
            _ => {
                let n = 60 + rng.below(1400) as usize;
                let mut f = rng.bytes(n);
                f[..6].copy_from_slice(&mac(1));
                f
            }
        };
        out.push(f);
    }
    out
}

#[test]
fn flood_of_junk_does_not_starve_node_0() {
    let faults = FaultConfig {
        delay_ns: 20_000,
        max_queue: 0,
        ..FaultConfig::default()
    };
    let mut w = World::new(19, faults);
    let mut rng = Rng(42);
    // The usual time of a round trip, without flood.
    let t0 = w.c.now();
    w.honest_round_trip(0, 0x91);
    let usual = w.c.now().nanos_since(t0);
    let retransmits = w.stats(0).retransmits;
    let before = w.stats(1);
    for round in 0..10usize {
        // Thousands of frames in one round, then the honest round trip.
        for f in junk(&w, &mut rng, 3000) {
            w.inject(&f);
        }
        let t = w.c.now();
        w.honest_round_trip(round * 512, round as u8);
        let took = w.c.now().nanos_since(t);
        assert!(
            took <= usual + MS,
            "round {round}: honest round trip took {took} ns under flood, {usual} ns without"
        );
    }
    // A steady flood while node 0 moves data.
    let t = w.c.now();
    let data: Vec<u8> = (0..512).map(|i| (i * 3) as u8).collect();
    let op = w.c.node(0).start_put(w.imp0, 30000, &data).unwrap();
    let mut done = None;
    for _ in 0..100 {
        for f in junk(&w, &mut rng, 200) {
            w.inject(&f);
        }
        w.c.run_for(50_000);
        done = w.c.node(0).take_completion(op);
        if done.is_some() {
            break;
        }
    }
    let took = w.c.now().nanos_since(t);
    assert_eq!(
        done.map(|c| c.result),
        Some(Ok(())),
        "honest put under a steady flood"
    );
    assert!(took <= usual + MS, "put under steady flood took {took} ns");
    w.expect[A][30000..30512].copy_from_slice(&data);
    assert_eq!(
        w.stats(0).retransmits,
        retransmits,
        "node 0 had to retransmit: the flood cost it frames"
    );
    let after = w.stats(1);
    assert!(after.malformed > before.malformed && after.spoofed > before.spoofed);
    assert!(after.stale > before.stale && after.out_of_window > before.out_of_window);
    assert_eq!(after.restarts, before.restarts);
    w.assert_memory();
    w.settle();
    w.probe();
}

/// A read-only importer that asks for much and acknowledges nothing must not crowd the
/// other importers out of the exporter's get answers.
#[test]
fn get_flood_from_a_read_only_importer_does_not_starve_node_0() {
    let mut w = World::new(20, FaultConfig::default());
    // The attacker asks for all of A, again and again, and never acknowledges an answer:
    // node 1 can send it at most a window of frames; the rest must not crowd node 0 out.
    for _ in 0..40 {
        let op = w.op();
        w.send_quiet(1, &get_msg(RO_ID, SEG_A, op, 0, LEN[A] as u32));
    }
    w.c.run_for(10 * MS);
    let t = w.c.now();
    w.honest_round_trip(100, 0xA1);
    let took = w.c.now().nanos_since(t);
    assert!(took < 100 * MS, "honest round trip took {took} ns");
    // Still served a while later, after node 1 gave up on the silent attacker.
    w.c.run_for(6 * SEC);
    w.honest_round_trip(200, 0xA2);
}

/// One peer opening imports without end must not lock the other nodes out of connecting.
#[test]
fn connect_flood_from_one_peer_does_not_lock_out_node_0() {
    let mut w = World::new(21, FaultConfig::default());
    // The attacker opens read-only imports of A under ever new cookies (each one granted).
    let mut granted = 0;
    for k in 0..80u32 {
        w.send(
            1,
            &connect_msg(SEG_A, 0xC0DE_1000 + k, 0x0B00_0000 + k, Permission::READ),
        );
        if k % 4 == 3 {
            w.settle();
        }
    }
    w.settle();
    for k in 0..80u32 {
        if w.reply(0xC0DE_1000 + k).is_some_and(|r| r.0 == 0) {
            granted += 1;
        }
    }
    assert!(granted > 0);
    // Node 0's existing import still works, and it can still open another one.
    w.honest_round_trip(300, 0xB1);
    let second = connect(&mut w.c, 0, 1, SEG_B, Permission::RDWR);
    assert!(
        second.is_ok(),
        "node 0 locked out by node 2's {granted} imports: {second:?}"
    );
}

/// An importer's cookie names one import per segment: a get through the import of A must
/// read A, even when the same node uses the same cookie for an import of another segment.
#[test]
fn duplicate_import_cookie_cannot_read_another_segment() {
    let mut w = World::new(22, FaultConfig::default());
    // One cookie for two imports: D (write-only for node 2, secret), then A (read-only).
    const X: u32 = 0x0A11_CE0D;
    w.send(1, &connect_msg(SEG_D, 0xC0DE_0300, X, Permission::WRITE));
    w.send(1, &connect_msg(SEG_A, 0xC0DE_0301, X, Permission::READ));
    w.settle();
    assert_eq!(w.reply(0xC0DE_0300).map(|r| r.0), Some(0));
    assert_eq!(w.reply(0xC0DE_0301).map(|r| r.0), Some(0));
    let before = w.stats(1);
    // Reading D directly is refused (write-only).
    let op_d = w.op();
    w.send(1, &get_msg(X, SEG_D, op_d, 0, 256));
    // Reading A through X must give A's bytes, never D's.
    let op_a = w.op();
    w.send(1, &get_msg(X, SEG_A, op_a, 0, 256));
    w.settle();
    assert_counted(&before, &w.stats(1), &[("rejected", 1)]);
    w.assert_refused(op_d);
    let got = w.got(op_a).expect("the get of A is answered");
    assert_eq!(got.0, 0);
    assert!(
        got.1 != w.expect[D][..256],
        "node 2 read write-only segment D through its import of A"
    );
    assert_bytes(
        &got.1,
        &w.expect[A][..256],
        "get of A through a shared cookie",
    );
    w.assert_memory();
    w.honest_round_trip(1024, 0xC1);
}

#[test]
fn forged_answers_to_node_0_are_rejected() {
    // A slow link, so that node 0's operations are in flight while the forgeries arrive.
    let faults = FaultConfig {
        delay_ns: 2 * MS,
        ..FaultConfig::default()
    };
    let mut w = World::new(23, faults);
    let data: Vec<u8> = (0..256).map(|i| (i as u8) ^ 0x3c).collect();
    let put = w.c.node(0).start_put(w.imp0, 5000, &data).unwrap();
    let get = w.c.node(0).start_get(w.imp0, 9000, 256).unwrap();
    w.c.run_for(MS / 2);
    let before = w.stats(0);
    // Acks and get data for every plausible op id (index << 16 | generation), from node 2.
    let fake = [0xEEu8; 256];
    let mut sent = 0;
    for index in 0..4u32 {
        for gen in 0..4u32 {
            let op_id = index << 16 | gen;
            w.send(
                0,
                &Message::Ack(Ack {
                    op_id,
                    entry: 0,
                    status: 0,
                    done_len: 256,
                }),
            );
            w.send(
                0,
                &Message::GetData(GetData {
                    op_id,
                    entry: 0,
                    status: 0,
                    frag_offset: 0,
                    total_len: 256,
                    data: &fake,
                }),
            );
            w.send(
                0,
                &Message::ConnectReply(wire::ConnectReply {
                    request_id: op_id,
                    status: 0,
                    permission: 0o600,
                    segment_id: SEG_B,
                    segment_len: 1 << 20,
                    owner_uid: 0,
                    owner_gid: 0,
                }),
            );
            w.send(
                0,
                &Message::Disconnect(Disconnect {
                    segment_id: SEG_A,
                    import_id: op_id,
                    generation: 2,
                    forced: true,
                }),
            );
            sent += 4;
            w.c.run_for(10_000);
        }
    }
    let c = wait(&mut w.c, 0, put, 100 * MS, &mut []);
    assert_eq!(c.result, Ok(()));
    let mut buf = vec![0u8; 256];
    let c = wait(&mut w.c, 0, get, 100 * MS, &mut buf);
    assert_eq!(c.result, Ok(()));
    assert_bytes(
        &buf,
        &w.expect[A][9000..9256],
        "node 0's get: node 1's bytes",
    );
    w.expect[A][5000..5256].copy_from_slice(&data);
    w.settle();
    assert_counted(&before, &w.stats(0), &[("rejected", sent)]);
    w.assert_memory();
    w.honest_round_trip(6000, 0xD1);
}
