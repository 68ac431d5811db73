//! Fuzz harnesses for rsm-rs, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and by
//! the corpus replay test of the workspace (`tests/tests/fuzz_corpus.rs`, which includes this
//! file as a module). No libfuzzer here: every function runs on plain bytes.
//!
//! - [`wire_parse`]: `rsm_core::wire::parse` on arbitrary bytes; whatever parses must emit
//!   and parse again to the same header and message, with the same header and body bytes.
//! - [`node_rx`]: a script of records fed to node 1 (net started, a published 64 KiB
//!   export). Each record is `len: u16 LE` then `len` bytes whose first byte is the kind:
//!   - even: a structurally valid frame from node 0, built from the following bytes (see
//!     [`structured_frame`]): sequence and acknowledgement numbers, incarnations and the ids
//!     node 1 used are filled in by the harness unless the kind's bits ask for fuzzed ones;
//!   - `kind & 7 == 1`: the rest of the record is handed to `handle_frame` as is;
//!   - `kind & 7 == 5`: the same with the header checksum recomputed first (if the header
//!     and the body it announces are complete), so that mutated frames pass the CRC;
//!   - `kind & 3 == 3`: an API call of node 1 (connect to node 0, put, get, sigpost,
//!     unpublish, …; see [`action`]) or a jump of the clock.
//!
//!   After every record, `poll_transmit` is drained (bounded); every frame node 1 sends must
//!   parse and come from node 1.
//!
//! [`seed_corpus`] builds the committed seed inputs of both targets.

use rsm_core::proto::{NetConfig, FRAME_BUF};
use rsm_core::wire::{
    self, Ack, Bell, ConnectReply, ConnectRequest, Disconnect, GetData, GetRequest, HeaderRepr,
    Hello, ImportNotice, Message, PutData, Republish, FLAGS_KNOWN, FLAG_ACK, MAX_FRAME,
    NODE_BROADCAST,
};
use rsm_core::{
    AccessEntry, Config, CreateFlags, ExportHandle, ImportHandle, OpId, Permission, Rsm,
    SegmentRef, SigpostFlags,
};
use rsm_hal::fake::FakePlatform;
use rsm_hal::Instant;

/// The node under test.
type Node = Rsm<FakePlatform>;

/// The segment id node 1 publishes.
const SEG: u32 = 0x40_0001;
/// The segment id node 1 connects to on node 0 (which does not exist: node 0 is the fuzzer).
const SEG0: u32 = 0x50_0001;
/// Node 1's incarnation.
const N1_INC: u64 = 1000;
/// Node 0's first incarnation.
const N0_INC: u64 = 7;
/// Length of node 1's export.
const SEG_LEN: usize = 65536;
/// At most this many records of a `node_rx` input are used.
const MAX_RECORDS: usize = 128;
/// At most this many frames are taken from `poll_transmit` after each record.
const MAX_DRAIN: usize = 256;
/// Largest data part of a structured put/get data frame.
const MAX_DATA: usize = 1400;
/// One millisecond in nanoseconds.
const MS: u64 = 1_000_000;

/// The message types a structured frame can carry, by selector.
const TYPES: usize = 12;

// ----------------------------------------------------------------------------------------
// wire_parse

/// Parse `data` as a frame; if it parses, emit it again and check that the result parses to
/// the same header and message, with the same bytes from the EtherType to the end of the body,
/// and that `emit_unsealed` + `seal` writes the same bytes as `emit`.
///
/// Random mutations nearly always break the CRC-32C, which would keep the fuzzer out of the
/// field checks behind it: when bit 0 of the first byte (the destination MAC's group bit,
/// which parsing ignores) is clear, a copy sealed with `wire::seal` (checksum recomputed) is
/// checked as well.
pub fn wire_parse(data: &[u8]) {
    round_trip(data);
    if data.first().is_some_and(|b| b & 1 == 0) {
        let mut sealed = data.to_vec();
        wire::seal(&mut sealed);
        if sealed != data {
            round_trip(&sealed);
        }
    }
}

/// The round-trip check of [`wire_parse`] on one frame.
fn round_trip(data: &[u8]) {
    let Ok((header, message)) = wire::parse(data) else {
        return;
    };
    let mut buf = vec![0u8; MAX_FRAME];
    let n = match wire::emit(&header, &message, &mut buf) {
        Ok(n) => n,
        Err(e) => panic!("a parsed frame does not emit: {e:?} ({header:?}, {message:?})"),
    };
    let frame = wire::Frame { header, message };
    assert_eq!(n, frame.buffer_len(), "emit length != buffer_len");
    let used = wire::FRAME_OVERHEAD + message.buffer_len();
    assert!(used <= data.len() && used <= n, "body beyond the frame");
    assert_eq!(
        buf.get(12..used),
        data.get(12..used),
        "re-emitted bytes differ"
    );
    let mut unsealed = vec![0u8; n];
    let m = frame.emit_unsealed(&mut unsealed);
    assert_eq!(m, Ok(n), "emit_unsealed length differs");
    wire::seal(&mut unsealed);
    assert_eq!(
        &unsealed[..],
        &buf[..n],
        "emit_unsealed + seal differs from emit"
    );
    let again = wire::parse(&buf[..n]);
    assert_eq!(again, Ok((header, message)), "round trip differs");
    assert_eq!(wire::Frame::parse(&buf[..n]), Ok(frame));
}

// ----------------------------------------------------------------------------------------
// node_rx

/// Reads fuzz bytes; past the end it reads zeros (so short inputs take the defaults).
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn arr<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.u8();
        }
        a
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.arr())
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.arr())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.arr())
    }

    /// The bytes not read yet.
    fn rest(&mut self) -> &'a [u8] {
        let r = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        r
    }

    /// `tracked` if the next byte is < 0x80, else a fuzzed `u32`.
    fn echo(&mut self, tracked: u32) -> u32 {
        if self.u8() < 0x80 {
            tracked
        } else {
            self.u32()
        }
    }

    /// Node 1's published segment id, or (next byte ≥ 0x80) a fuzzed one.
    fn seg(&mut self) -> u32 {
        self.echo(SEG)
    }

    /// One of node 0's import cookies 1..=4, or (next byte ≥ 0xf0) a fuzzed one.
    fn import_id(&mut self) -> u32 {
        let b = self.u8();
        if b < 0xf0 {
            u32::from(b & 3) + 1
        } else {
            self.u32()
        }
    }

    /// A permission (mode bits ≤ 0o777).
    fn perm(&mut self) -> u16 {
        match self.u8() {
            0 => 0o666,
            1 => 0o444,
            2 => 0o222,
            3 => 0o600,
            4 => 0,
            _ => self.u16() & 0o777,
        }
    }

    /// An offset inside the segment (next byte < 0x80), or a fuzzed 64-bit one.
    fn offset(&mut self) -> u64 {
        if self.u8() < 0x80 {
            u64::from(self.u16())
        } else {
            self.u64()
        }
    }

    /// Data of a fuzzed length (≤ [`MAX_DATA`]): the rest of the record, repeated or cut.
    fn data(&mut self, out: &mut Vec<u8>) {
        let len = usize::from(self.u16()) % (MAX_DATA + 1);
        let rest = self.rest();
        out.clear();
        if rest.is_empty() {
            out.resize(len, 0xa5);
        } else {
            out.extend(rest.iter().cycle().take(len));
        }
    }
}

/// What the harness, playing node 0, knows of the conversation.
struct Peer0 {
    /// Node 0's incarnation.
    inc: u64,
    /// The next sequence number node 0 sends.
    seq: u32,
    /// The next sequence number node 0 expects from node 1 (cumulative acknowledgement).
    ack: u32,
    /// Node 1's last connect request: request id, import id, segment id.
    req: (u32, u32, u32),
    /// Node 1's last put data: op id, entry, total length.
    put: (u32, u16, u32),
    /// Node 1's last get request: op id, entry, length; and the bytes "sent" back so far.
    get: (u32, u16, u32),
    get_sent: u32,
}

impl Peer0 {
    fn new() -> Self {
        Peer0 {
            inc: N0_INC,
            seq: 1,
            ack: 1,
            req: (0, 0, SEG0),
            put: (0, 0, 0),
            get: (0, 0, 0),
            get_sent: 0,
        }
    }

    /// Learn from a frame node 1 sent.
    fn observe(&mut self, h: &HeaderRepr, m: &Message<'_>) {
        if h.dst_node != 0 {
            return;
        }
        if !matches!(m, Message::Hello(_)) {
            let next = h.seq.wrapping_add(1);
            if next.wrapping_sub(self.ack) as i32 > 0 {
                self.ack = next;
            }
        }
        match m {
            Message::ConnectRequest(r) => self.req = (r.request_id, r.import_id, r.segment_id),
            Message::PutData(p) => self.put = (p.op_id, p.entry, p.total_len),
            Message::GetRequest(g) => {
                if (g.op_id, g.entry) != (self.get.0, self.get.1) {
                    self.get_sent = 0;
                }
                self.get = (g.op_id, g.entry, g.length);
            }
            _ => {}
        }
    }
}

/// Node 1 and the harness's view of it.
struct Harness {
    node: Box<Node>,
    now: u64,
    peer: Peer0,
    export: ExportHandle,
    published: bool,
    connects: Vec<OpId>,
    imports: Vec<ImportHandle>,
    /// Operations started and not taken yet: op, import, is a get.
    ops: Vec<(OpId, ImportHandle, bool)>,
    tx: Vec<u8>,
    frame: Vec<u8>,
    scratch: Vec<u8>,
}

/// Node 1 with its network engine started and a published export of [`SEG_LEN`] bytes.
fn new_node() -> (Box<Node>, ExportHandle) {
    let node = Box::new(Node::new(
        FakePlatform::new(),
        Config {
            node_id: 1,
            ..Config::default()
        },
    ));
    node.net_start(
        Instant(0),
        NetConfig {
            incarnation: N1_INC,
            max_frame: FRAME_BUF,
        },
    );
    let ctrl = node
        .get_controller(Some("rsmnet0"))
        .expect("rsmnet0 controller");
    let mem = node.platform().alloc(SEG_LEN);
    let seg = node
        .export_create(ctrl, mem, CreateFlags::empty())
        .expect("export_create");
    node.export_publish(seg, SEG, &[]).expect("export_publish");
    (node, seg)
}

impl Harness {
    fn new() -> Self {
        let (node, export) = new_node();
        let mut h = Harness {
            node,
            now: 0,
            peer: Peer0::new(),
            export,
            published: true,
            connects: Vec::new(),
            imports: Vec::new(),
            ops: Vec::new(),
            tx: vec![0u8; FRAME_BUF],
            frame: vec![0u8; MAX_FRAME],
            scratch: Vec::new(),
        };
        h.drain();
        h
    }

    /// Take every frame node 1 wants to send now (bounded), checking each.
    fn drain(&mut self) {
        let now = Instant(self.now);
        for _ in 0..MAX_DRAIN {
            let n = match self.node.poll_transmit(now, &mut self.tx) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => panic!("poll_transmit refused a FRAME_BUF buffer: {e:?}"),
            };
            assert!(n <= FRAME_BUF, "poll_transmit returned {n} > FRAME_BUF");
            let frame = &self.tx[..n];
            match wire::parse(frame) {
                Ok((h, m)) => {
                    assert_eq!(h.src_node, 1, "node 1 sent a frame as node {}", h.src_node);
                    assert_eq!(h.incarnation, N1_INC, "node 1 sent a wrong incarnation");
                    self.peer.observe(&h, &m);
                }
                Err(e) => panic!("node 1 sent a frame that does not parse: {e:?}: {frame:02x?}"),
            }
        }
        assert!(self.node.poll_timeout().is_some(), "engine stopped");
    }

    /// Hand `frame` to node 1 one millisecond later.
    fn receive(&mut self, frame: &[u8]) {
        self.now += MS;
        self.node.handle_frame(Instant(self.now), frame);
    }

    fn record(&mut self, rec: &[u8]) {
        let Some((&kind, body)) = rec.split_first() else {
            return;
        };
        if kind & 1 == 0 {
            self.structured(kind, body);
        } else if kind & 7 == 1 {
            self.receive(body);
        } else if kind & 7 == 5 {
            let mut frame = std::mem::take(&mut self.frame);
            frame.clear();
            frame.extend_from_slice(body);
            wire::seal(&mut frame);
            self.receive(&frame);
            self.frame = frame;
        } else {
            self.action(kind >> 2, body);
        }
        self.drain();
    }

    /// Build and send a structured frame (see [`structured_frame`]).
    fn structured(&mut self, kind: u8, body: &[u8]) {
        let mut frame = std::mem::take(&mut self.frame);
        frame.resize(MAX_FRAME, 0);
        let built = structured_frame(&self.peer, kind, body, &mut self.scratch, &mut frame);
        let before = self.node.net_stats();
        if let Some((n, _, _)) = built {
            self.receive(&frame[..n]);
        }
        self.frame = frame;
        let Some((_, auto_seq, is_get_data)) = built else {
            return;
        };
        let after = self.node.net_stats();
        let dropped = after.malformed != before.malformed
            || after.not_for_us != before.not_for_us
            || after.spoofed != before.spoofed
            || after.stale != before.stale
            || after.duplicates != before.duplicates
            || after.out_of_order != before.out_of_order
            || after.out_of_window != before.out_of_window
            || after.deferred != before.deferred;
        if auto_seq && !dropped {
            self.peer.seq = self.peer.seq.wrapping_add(1);
            if let Some(len) = is_get_data {
                self.peer.get_sent = self.peer.get_sent.wrapping_add(len);
            }
        }
    }

    /// An API call of node 1, or a jump of the clock.
    fn action(&mut self, what: u8, body: &[u8]) {
        let mut c = Cursor::new(body);
        let n = &*self.node;
        match what % 10 {
            0 => {
                // Let time pass (default 1 s: one hello interval); timers run in the drain.
                let ms = match c.u16() {
                    0 => 1000,
                    v => u64::from(v),
                };
                self.now += ms * MS;
            }
            1 => {
                let Ok(ctrl) = n.get_controller(Some("rsmnet0")) else {
                    return;
                };
                let node = u32::from(c.u8() % 64);
                let seg = c.echo(SEG0);
                let perm = [
                    Permission::RDWR,
                    Permission::READ,
                    Permission::WRITE,
                    Permission::empty(),
                ][usize::from(c.u8() % 4)];
                if let Ok(op) = n.start_import_connect(ctrl, node, seg, perm) {
                    self.connects.push(op);
                }
                let _ = n.release_controller(ctrl);
            }
            2 => {
                let mut still = Vec::new();
                for op in self.connects.drain(..) {
                    match n.take_connect(op) {
                        Some(Ok(imp)) => self.imports.push(imp),
                        Some(Err(_)) => {}
                        None => still.push(op),
                    }
                }
                self.connects = still;
            }
            3 | 4 => {
                let Some(&imp) = pick(&self.imports, c.u8()) else {
                    return;
                };
                let off = usize::from(c.u16());
                let len = usize::from(c.u16()) % (rsm_core::proto::INLINE_MAX + 1);
                let get = what % 10 == 4;
                let started = if get {
                    n.start_get(imp, off, len)
                } else {
                    c.data(&mut self.scratch);
                    self.scratch.resize(len, 0x5a);
                    n.start_put(imp, off, &self.scratch)
                };
                if let Ok(op) = started {
                    self.ops.push((op, imp, get));
                }
            }
            5 => {
                let mut buf = [0u8; rsm_core::proto::INLINE_MAX];
                self.ops.retain(|&(op, _, get)| {
                    if get {
                        n.take_get(op, &mut buf).is_none()
                    } else {
                        n.take_completion(op).is_none()
                    }
                });
            }
            6 => {
                let b = c.u8();
                let flags = if b & 2 != 0 {
                    SigpostFlags::NO_ACCUMULATE
                } else {
                    SigpostFlags::empty()
                };
                // Posts on remote imports are answered: start them (one thread drives).
                if b & 1 == 0 {
                    if let Ok(op) = n.start_intr_signal_post(SegmentRef::Export(self.export), flags)
                    {
                        let _ = n.take_completion(op);
                    }
                } else if let Some(&imp) = pick(&self.imports, c.u8()) {
                    if let Ok(op) = n.start_intr_signal_post(SegmentRef::Import(imp), flags) {
                        self.ops.push((op, imp, false));
                    }
                }
            }
            7 => {
                let acl_node = c.u8();
                let acl_perm = u32::from(c.u16() & 0o666);
                let entry = [AccessEntry {
                    ae_node: u32::from(acl_node % 64),
                    ae_permission: acl_perm,
                }];
                let acl: &[AccessEntry] = if acl_node & 0x80 != 0 { &entry } else { &[] };
                match (self.published, c.u8() % 2) {
                    (true, 0) => {
                        if n.export_unpublish(self.export).is_ok() {
                            self.published = false;
                        }
                    }
                    (true, _) => {
                        let _ = n.export_republish(self.export, acl);
                    }
                    (false, _) => {
                        if n.export_publish(self.export, SEG, acl).is_ok() {
                            self.published = true;
                        }
                    }
                }
            }
            8 => {
                let Some(&imp) = pick(&self.imports, c.u8()) else {
                    return;
                };
                // A disconnect waits for operations in flight: only without any (one thread).
                if self.ops.iter().any(|&(_, i, _)| i == imp) {
                    return;
                }
                if n.import_disconnect(imp).is_ok() {
                    self.imports.retain(|&i| i != imp);
                }
            }
            _ => {
                // Node 0 restarts: a newer incarnation, sequence numbers start again.
                self.peer.inc = self.peer.inc.saturating_add(1 + u64::from(c.u8()));
                self.peer.seq = 1;
                self.peer.ack = 1;
            }
        }
    }
}

/// Element `sel % len` of `v`, if any.
fn pick<T>(v: &[T], sel: u8) -> Option<&T> {
    if v.is_empty() {
        None
    } else {
        v.get(usize::from(sel) % v.len())
    }
}

/// Build a frame from node 0 to node 1 into `frame` from the record `body` of kind `kind`
/// (even). `body[0] % 12` picks the message type; then the kind's bits take header fields
/// from the body instead of the harness's state, in this order:
/// `0x02` seq (u32), `0x04` flags & ack (u16, u32), `0x08` incarnation (u64), `0x10` peer
/// incarnation (u64), `0x20` source node (u8 % 64), `0x40` destination (u8: ≥ 0x80 broadcast,
/// else % 64), `0x80` one byte flipped after emitting (offset u16, xor u8; the CRC is
/// recomputed). The message fields follow (see the `Cursor` helpers: zero bytes give the
/// fields the conversation expects).
///
/// Returns the frame length, whether the harness's sequence number was used (on node 0's
/// current channel), and for get data the number of data bytes; `None` if the fields cannot
/// be emitted.
fn structured_frame(
    peer: &Peer0,
    kind: u8,
    body: &[u8],
    data: &mut Vec<u8>,
    frame: &mut [u8],
) -> Option<(usize, bool, Option<u32>)> {
    let mut c = Cursor::new(body);
    let ty = usize::from(c.u8()) % TYPES;
    let mut h = HeaderRepr {
        flags: FLAG_ACK,
        src_node: 0,
        dst_node: 1,
        incarnation: peer.inc,
        peer_incarnation: N1_INC,
        seq: peer.seq,
        ack: peer.ack,
    };
    let fuzz_seq = kind & 0x02 != 0;
    if fuzz_seq {
        h.seq = c.u32();
    }
    if kind & 0x04 != 0 {
        h.flags = c.u16() & FLAGS_KNOWN;
        h.ack = c.u32();
    }
    if kind & 0x08 != 0 {
        h.incarnation = c.u64();
    }
    if kind & 0x10 != 0 {
        h.peer_incarnation = c.u64();
    }
    if kind & 0x20 != 0 {
        h.src_node = c.u8() % 64;
    }
    if kind & 0x40 != 0 {
        let d = c.u8();
        h.dst_node = if d >= 0x80 { NODE_BROADCAST } else { d % 64 };
    }
    let corrupt = if kind & 0x80 != 0 {
        Some((usize::from(c.u16()), c.u8()))
    } else {
        None
    };
    let mut get_data_len = None;
    let message = match ty {
        0 => Message::ConnectRequest(ConnectRequest {
            segment_id: c.seg(),
            request_id: c.u32(),
            import_id: c.import_id(),
            permission: c.perm(),
        }),
        1 => Message::ConnectReply(ConnectReply {
            request_id: c.echo(peer.req.0),
            status: c.u16(),
            permission: c.perm(),
            segment_id: c.echo(peer.req.2),
            segment_len: match c.u32() {
                0 => SEG_LEN as u64,
                v => u64::from(v),
            },
            owner_uid: c.u32(),
            owner_gid: c.u32(),
        }),
        2 => Message::Disconnect(Disconnect {
            segment_id: c.echo(peer.req.2),
            import_id: c.echo(peer.req.1),
            generation: c.u16(),
            forced: c.u8() & 1 == 0,
        }),
        3 | 4 => {
            let n = ImportNotice {
                segment_id: c.seg(),
                import_id: c.import_id(),
            };
            if ty == 3 {
                Message::Importing(n)
            } else {
                Message::NotImporting(n)
            }
        }
        5 => {
            let flags = u16::from(c.u8() ^ 1) & wire::BELL_FLAGS_KNOWN;
            let (segment_id, import_id) = if flags & wire::BELL_TO_EXPORTER != 0 {
                (c.seg(), c.import_id())
            } else {
                (c.echo(peer.req.2), c.echo(peer.req.1))
            };
            Message::Bell(Bell {
                segment_id,
                import_id,
                flags,
                op_id: c.u32(),
            })
        }
        6 => Message::Republish(Republish {
            segment_id: c.echo(peer.req.2),
            permission: c.perm(),
        }),
        7 => {
            let import_id = c.import_id();
            let segment_id = c.seg();
            let op_id = c.u32();
            let entry = c.u16();
            let remote_offset = c.offset();
            let frag_offset = u32::from(c.u16());
            let total = c.u8();
            let total_raw = c.u32();
            c.data(data);
            let len = u32::try_from(data.len()).ok()?;
            let total_len = if total < 0x80 {
                frag_offset.checked_add(len)?
            } else {
                total_raw
            };
            Message::PutData(PutData {
                import_id,
                segment_id,
                op_id,
                entry,
                remote_offset,
                frag_offset,
                total_len,
                data,
            })
        }
        8 => Message::GetRequest(GetRequest {
            import_id: c.import_id(),
            segment_id: c.seg(),
            op_id: c.u32(),
            entry: c.u16(),
            remote_offset: c.offset(),
            length: u32::from(c.u16()),
        }),
        9 => {
            let op_id = c.echo(peer.get.0);
            let entry = match c.u8() {
                0 => peer.get.1,
                v => u16::from(v - 1),
            };
            let status = c.u16();
            let frag_offset = c.echo(peer.get_sent);
            let total_len = c.echo(peer.get.2);
            let want = c.u8();
            c.data(data);
            if want < 0x80 {
                // The rest of the entry, in one frame if it fits.
                let left = total_len.saturating_sub(frag_offset) as usize;
                data.resize(left.min(MAX_DATA), 0xc3);
            }
            let len = u32::try_from(data.len()).ok()?;
            get_data_len = Some(len);
            Message::GetData(GetData {
                op_id,
                entry,
                status,
                frag_offset,
                total_len,
                data,
            })
        }
        10 => Message::Ack(Ack {
            op_id: c.echo(peer.put.0),
            entry: match c.u8() {
                0 => peer.put.1,
                v => u16::from(v - 1),
            },
            status: c.u16(),
            done_len: c.echo(peer.put.2),
        }),
        _ => Message::Hello(Hello {
            incarnation: h.incarnation,
            max_frame: match c.u16() {
                0 => FRAME_BUF as u16,
                v => v,
            },
        }),
    };
    let n = wire::emit(&h, &message, frame).ok()?;
    if let Some((off, x)) = corrupt {
        let off = off % n;
        frame[off] ^= x;
        wire::seal(&mut frame[..n]);
    }
    // The harness's sequence number moves only for node 0's own, current channel.
    let auto_seq = kind & 0x3a == 0 && !matches!(message, Message::Hello(_));
    Some((n, auto_seq, get_data_len))
}

/// Run a `node_rx` input: records `len: u16 LE, bytes[len]` (see the module docs).
pub fn node_rx(data: &[u8]) {
    let mut h = Harness::new();
    let mut rest = data;
    for _ in 0..MAX_RECORDS {
        let [lo, hi, tail @ ..] = rest else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (rec, next) = tail.split_at(len);
        h.record(rec);
        rest = next;
    }
    // Let every timer run: retransmissions, unreachability, hellos.
    for _ in 0..3 {
        h.now += 2_000 * MS;
        h.drain();
    }
}

// ----------------------------------------------------------------------------------------
// Seed corpus

/// One record of a `node_rx` input.
fn rec(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let len = u16::try_from(body.len() + 1).expect("record too long");
    out.extend_from_slice(&len.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

/// A structured record with all-default fields for message type `ty`.
fn msg(out: &mut Vec<u8>, ty: u8) {
    rec(out, 0, &[ty]);
}

/// An action record.
fn act(out: &mut Vec<u8>, what: u8, body: &[u8]) {
    rec(out, (what << 2) | 3, body);
}

/// A valid header from node `src` to node `dst`.
fn header(src: u8, dst: u8, inc: u64, peer_inc: u64, seq: u32) -> HeaderRepr {
    HeaderRepr {
        flags: FLAG_ACK,
        src_node: src,
        dst_node: dst,
        incarnation: inc,
        peer_incarnation: peer_inc,
        seq,
        ack: 1,
    }
}

/// One message of every type (data borrowed from `data`).
fn sample_messages(data: &[u8]) -> Vec<Message<'_>> {
    let total_len = u32::try_from(data.len()).expect("sample data too long");
    vec![
        Message::ConnectRequest(ConnectRequest {
            segment_id: SEG,
            request_id: 9,
            import_id: 1,
            permission: 0o666,
        }),
        Message::ConnectReply(ConnectReply {
            request_id: 9,
            status: 0,
            permission: 0o600,
            segment_id: SEG,
            segment_len: SEG_LEN as u64,
            owner_uid: 1000,
            owner_gid: 100,
        }),
        Message::Disconnect(Disconnect {
            segment_id: SEG,
            import_id: 2,
            generation: 3,
            forced: true,
        }),
        Message::Importing(ImportNotice {
            segment_id: SEG,
            import_id: 1,
        }),
        Message::NotImporting(ImportNotice {
            segment_id: SEG,
            import_id: 1,
        }),
        Message::Bell(Bell {
            segment_id: SEG,
            import_id: 1,
            flags: wire::BELL_TO_EXPORTER,
            op_id: 1,
        }),
        Message::Republish(Republish {
            segment_id: SEG,
            permission: 0o600,
        }),
        Message::PutData(PutData {
            import_id: 1,
            segment_id: SEG,
            op_id: 3,
            entry: 0,
            remote_offset: 4096,
            frag_offset: 0,
            total_len,
            data,
        }),
        Message::GetRequest(GetRequest {
            import_id: 1,
            segment_id: SEG,
            op_id: 3,
            entry: 0,
            remote_offset: 4096,
            length: 100,
        }),
        Message::GetData(GetData {
            op_id: 3,
            entry: 0,
            status: 0,
            frag_offset: 0,
            total_len,
            data,
        }),
        Message::Ack(Ack {
            op_id: 3,
            entry: 0,
            status: 0,
            done_len: total_len,
        }),
        Message::Hello(Hello {
            incarnation: N0_INC,
            max_frame: 1514,
        }),
    ]
}

/// Emit `message` with `header` (a hello gets the header's incarnation).
fn emit_frame(mut header: HeaderRepr, message: Message<'_>) -> Vec<u8> {
    let message = match message {
        Message::Hello(h) => Message::Hello(Hello {
            incarnation: header.incarnation,
            ..h
        }),
        m => m,
    };
    if let Message::Hello(_) = message {
        header.flags = 0;
    }
    let mut buf = vec![0u8; MAX_FRAME];
    let n = wire::emit(&header, &message, &mut buf).expect("seed frame emits");
    buf.truncate(n);
    buf
}

/// The committed seed corpus: `(target, file name, bytes)` for the `wire_parse`, `node_rx`
/// and `engine_rx` targets.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let names = [
        "connect_request",
        "connect_reply",
        "disconnect",
        "importing",
        "not_importing",
        "bell",
        "republish",
        "put_data",
        "get_request",
        "get_data",
        "ack",
        "hello",
    ];
    let small = [0x11u8; 100];
    let big: Vec<u8> = (0..1400u32).map(|i| (i * 7 % 251) as u8).collect();
    let empty: [u8; 0] = [];

    // wire_parse: every message type, small, large and empty data, broadcast hello.
    for (data, tag) in [(&small[..], ""), (&big[..], "_big"), (&empty[..], "_empty")] {
        for (m, name) in sample_messages(data).into_iter().zip(names) {
            let has_data = matches!(m, Message::PutData(_) | Message::GetData(_));
            if !tag.is_empty() && !has_data {
                continue;
            }
            let f = emit_frame(header(0, 1, N0_INC, N1_INC, 1), m);
            out.push(("wire_parse", format!("{name}{tag}"), f));
        }
    }
    let hello = Message::Hello(Hello {
        incarnation: N0_INC,
        max_frame: 1514,
    });
    out.push((
        "wire_parse",
        "hello_broadcast".into(),
        emit_frame(header(0, NODE_BROADCAST, N0_INC, 0, 0), hello),
    ));

    // node_rx: each message type alone, raw (as emitted) and structured.
    for (i, (m, name)) in sample_messages(&small).into_iter().zip(names).enumerate() {
        let mut s = Vec::new();
        rec(&mut s, 1, &emit_frame(header(0, 1, N0_INC, N1_INC, 1), m));
        out.push(("node_rx", format!("raw_{name}"), s));
        let mut s = Vec::new();
        msg(&mut s, u8::try_from(i).expect("12 types"));
        out.push(("node_rx", format!("msg_{name}"), s));
    }

    // node_rx: every message type in one script, raw with the checksum recomputed.
    let mut s = Vec::new();
    for (seq, m) in (1..).zip(sample_messages(&small)) {
        rec(&mut s, 5, &emit_frame(header(0, 1, N0_INC, N1_INC, seq), m));
    }
    out.push(("node_rx", "rawfix_all".into(), s));

    // node_rx: node 0 imports node 1's segment and uses it.
    let mut s = Vec::new();
    msg(&mut s, 11); // hello
    msg(&mut s, 0); // connect request (import id 1, 0o666)
    msg(&mut s, 3); // importing
                    // put data: import 1, SEG, op 3, entry 0, offset 0x1000, fragment 0, last fragment,
                    // 200 bytes of "fuzz data ".
    let mut put = vec![
        7u8, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0,
    ];
    put.extend_from_slice(&[0, 200]);
    put.extend_from_slice(b"fuzz data ");
    rec(&mut s, 0, &put);
    msg(&mut s, 8); // get request, 0 bytes at 0
                    // get request: import 1, SEG, op 9, entry 0, offset 0x1000, 100 bytes.
    rec(
        &mut s,
        0,
        &[8, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0x10, 0x00, 0, 100],
    );
    msg(&mut s, 5); // bell to the exporter
    act(&mut s, 6, &[0]); // sigpost on the export: a bell to node 0
    act(&mut s, 7, &[0, 0, 0, 0]); // unpublish: a forced disconnect to node 0
    msg(&mut s, 7); // put after unpublish: rejected
    act(&mut s, 7, &[0, 0, 0, 0]); // publish again
    msg(&mut s, 4); // not importing
    act(&mut s, 0, &[0x13, 0x88]); // 5 s pass
    out.push(("node_rx", "export_session".into(), s));

    // node_rx: node 1 imports from node 0 (the harness answers with the ids node 1 used).
    let mut s = Vec::new();
    msg(&mut s, 11); // hello
    act(&mut s, 1, &[]); // connect to node 0, segment SEG0, read-write
    msg(&mut s, 1); // connect reply, echoing the request
    act(&mut s, 2, &[]); // take the connect
    act(&mut s, 3, &[0, 0, 0, 0, 64]); // put 64 bytes at 0
    msg(&mut s, 10); // ack it
    act(&mut s, 4, &[0, 0x10, 0x00, 0, 100]); // get 100 bytes at 4096
    msg(&mut s, 9); // get data, the whole entry
    act(&mut s, 5, &[]); // take the completions
    act(&mut s, 6, &[1, 0]); // sigpost on the import
    rec(&mut s, 0, &[5, 1]); // a bell to the importer
    msg(&mut s, 6); // republish
    msg(&mut s, 2); // forced disconnect
    act(&mut s, 3, &[0, 0, 0, 0, 8]); // put on the aborted import
    act(&mut s, 5, &[]);
    act(&mut s, 8, &[]); // disconnect
    out.push(("node_rx", "import_session".into(), s));

    // node_rx: an import whose exporter never answers, node 0 restarting, and timers.
    let mut s = Vec::new();
    act(&mut s, 1, &[]);
    act(&mut s, 0, &[0x07, 0xd0]); // 2 s
    msg(&mut s, 0);
    act(&mut s, 9, &[]); // node 0 restarts
    msg(&mut s, 11);
    msg(&mut s, 0);
    act(&mut s, 0, &[0x17, 0x70]); // 6 s: the connect gives up
    act(&mut s, 2, &[]);
    out.push(("node_rx", "restart_and_timeouts".into(), s));

    // node_rx: header fields taken from the input (seq, ack, incarnations, nodes, flip).
    let mut s = Vec::new();
    rec(&mut s, 0x02, &[0, 0, 0, 0, 5]); // connect request with seq 5: ahead
    rec(&mut s, 0x04, &[0, 0, 1, 0, 0, 0, 9]); // ack of frames never sent
    rec(&mut s, 0x10, &[0, 0, 0, 0, 0, 0, 0, 0, 1]); // to an old incarnation of node 1
    rec(&mut s, 0x20, &[0, 5]); // from node 5
    rec(&mut s, 0x40, &[11, 0xff]); // broadcast hello
    rec(&mut s, 0x80, &[7, 0, 40, 0xff]); // flipped byte, CRC fixed
    out.push(("node_rx", "header_fields".into(), s));

    // engine_rx (see `rsm_core::proto::fuzzing::engine_rx`): built frames
    // `[1, src, inc, peer_inc, seq, flags, ack, (bell: import id)]` from node 2 (src byte 2,
    // incarnation byte 0 = 5, peer incarnation byte 0 = the engine's).
    let bell = |op: u8, inc: u8, seq: u8| [op, 2, inc, 0, seq, 2 << 2, 0, seq];
    let mut s = vec![1u8, 2, 0, 0, 0, 0, 0]; // hello
    for seq in [1, 3, 4, 2] {
        s.extend_from_slice(&bell(1, 0, seq)); // bells, 3 and 4 ahead of 2
    }
    s.extend_from_slice(&[2, 0, 2, 0]); // the kept frames, in order
    out.push(("engine_rx", "gap_refilled".into(), s));
    let mut s = Vec::new();
    s.extend_from_slice(&bell(1, 0, 1));
    s.extend_from_slice(&bell(1 | 0x40, 0, 2)); // deferred: not consumed
    s.extend_from_slice(&bell(1 | 0x80, 0, 2)); // spoofed MAC
    s.extend_from_slice(&bell(1, 1, 1)); // a newer incarnation: restart
    s.extend_from_slice(&bell(1, 0, 2)); // the old one: stale
    s.extend_from_slice(&[3, 0, 4, 0x10, 0x27]); // forget peer 0, advance 10 s
    let raw = emit_frame(
        header(2, 1, 5, 7, 1),
        Message::Hello(Hello {
            incarnation: 5,
            max_frame: 1514,
        }),
    );
    s.push(0);
    s.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    s.extend_from_slice(&raw);
    out.push(("engine_rx", "defer_spoof_restart".into(), s));
    out
}

/// The standalone engine's receive stages under a model (`rsm_core::proto::fuzzing`).
pub fn engine_rx(data: &[u8]) {
    rsm_core::proto::fuzzing::engine_rx(data);
}
