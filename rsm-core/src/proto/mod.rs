//! The wire protocol engine (sans-IO) and the remote RSMAPI paths (DESIGN §4).
//!
//! Modelled on quinn-proto and smoltcp: the engine owns no link and no clock. The driver — a
//! unikernel main loop, a host thread, or a test stepping a simulated network — feeds it
//! frames with [`Rsm::handle_frame`](crate::Rsm::handle_frame), asks for frames to send with [`Rsm::poll_transmit`](crate::Rsm::poll_transmit)
//! (call it until it returns `None`), and sleeps at most until [`Rsm::poll_timeout`](crate::Rsm::poll_timeout).
//! [`Rsm::drive`](crate::Rsm::drive) does one such round over a [`rsm_hal::Link`]. Every node is driven even
//! when idle, because an exporter serves its importers without any API call.
//!
//! # The engine and the node layer
//! Inside the crate the protocol is split like quinn-proto's `Connection` and smoltcp's
//! iface/socket: `Engine` (this module) owns the peers, channels, windows,
//! retransmission, reassembly and timers and knows nothing of the RSM tables; the node
//! layer (`net/`) owns the tables and the memory. (Both are internal to the crate; the public
//! face is `Rsm`'s `handle_frame` / `poll_transmit` / `poll_timeout`.)
//! - In: `Engine::on_frame` takes a frame and the time and yields `Event`s — put data
//!   for import X at offset O, get request, get data, acknowledgement of entry k, bell and
//!   bell answer, connect request and reply, disconnect, import closed, peer restarted — that
//!   the node applies to its tables (copying data after it released its lock), then reports
//!   with `Engine::delivered` (or defers, when it has no room).
//! - Out: `Engine::poll_transmit` chooses the peer and what its channel sends (hello,
//!   retransmission, new message, acknowledgement), writes the header and takes message
//!   bodies from the node through the small `Source` trait (control messages, data,
//!   rendering) — again for every retransmission.
//! - Time: `Engine::channel_timers`, `Engine::heartbeat` and `Engine::next_deadline`;
//!   a lost peer becomes `Event::PeerUnreachable` for the node. Connect timeouts stay with
//!   the node (they belong to its pending connects, not to a channel).
//!
//! The engine is tested on its own, without an `Rsm` (two engines over a lossy wire, a test
//! source, hostile frames), and fuzzed on its own (`fuzz` target `engine_rx`).
//!
//! # Reliability
//! Each pair of nodes runs one reliable, ordered channel per direction: every message but the
//! hello carries a sequence number; the receiver delivers only the next one in order
//! (go-back-N: a frame ahead of it is dropped) and acknowledges cumulatively in the header of
//! every frame it sends back (a unicast hello serves as a pure acknowledgement). A frame that
//! arrives ahead of a missing one is kept in one of [`REORDER_SLOTS`] shared slots and
//! delivered once the gap is filled, and the receiver asks for the missing frame at once with
//! a NAK flag, which the sender answers by resending just that frame. The sender
//! keeps at most a congestion window of messages in flight per peer (4 at first, growing
//! like TCP's slow start and additive increase up to [`WINDOW`], halved on a NAK or a
//! timeout) — as small descriptors, rendered into
//! a frame again for each retransmission (data is read again from the source memory), so no
//! frame buffers are held — and retransmits from the oldest unacknowledged message after a
//! timeout that starts at [`RTO_INITIAL_NS`] and doubles up to [`RTO_MAX_NS`], and sooner
//! after three duplicate acknowledgements. So every message is
//! applied at most once and in order, whatever the network drops, duplicates, reorders or
//! delays; corrupted frames fail the CRC-32C and count as lost.
//!
//! Flow control: a receiver that cannot take a message now (its queue of replies or of get
//! answers is full, or the segment is being rebound) does not deliver it and does not
//! acknowledge it, so the sender retransmits later — a fast sender never overruns a slow
//! receiver, and nothing is lost.
//!
//! # Peers, incarnations and unreachability
//! A node's incarnation (per boot, nonzero, larger after every restart — e.g. a boot
//! counter or a boot timestamp) is in every header, and every header also names the
//! destination's incarnation as the sender knows it. Hellos are broadcast every
//! [`HELLO_INTERVAL_NS`] and answered by a unicast hello when the sender did not know us; they
//! carry the largest frame the node receives (the sender uses the per-peer minimum) and feed
//! the topology. A frame from an older incarnation than the one known, or addressed to an
//! older incarnation of this node, is dropped and counted ([`NetStats::stale`]). A newer
//! incarnation means the peer restarted: every import of its segments ends with
//! `RSMERR_CONN_ABORTED`, its imports of ours are forgotten, its operations in flight fail,
//! and the channel starts over. Node identity follows DESIGN §4a: the source MAC must be
//! the MAC of the source node id, else the frame is dropped ([`NetStats::spoofed`]).
//!
//! A peer is declared unreachable only after [`UNREACHABLE_AFTER_NS`] (5 s, the reply wait
//! of spec §6.4) without progress while something waits for it, or — while an import
//! connects the two nodes — after 5 s without any frame from it (both sides send a
//! heartbeat every [`HEARTBEAT_INTERVAL_NS`] they are otherwise silent): never after a
//! count of lost frames. Its pending operations then fail with `RSMERR_REMOTE_NODE_UNREACHABLE`, its
//! imports are aborted (`RSMERR_CONN_ABORTED` afterwards), and retransmission continues at
//! the longest backoff so that the channel resumes if the peer comes back.
//!
//! # Remote operations
//! The wire semantics of DESIGN §4: putv/getv entries are pipelined but applied in order by
//! the exporter; after an entry fails, the exporter drops every later entry of that vector;
//! the residual count is the request count minus the acknowledged, completed prefix; a put
//! completes only after the exporter acknowledged every entry as written. The exporter
//! checks every message against its record of the importer (node, import id, segment,
//! granted permission, epoch) and the segment's bounds: anything else is rejected and
//! counted ([`NetStats::rejected`]) without touching memory.
//!
//! Blocking calls on remote segments ([`Rsm::import_connect`](crate::Rsm::import_connect), [`Rsm::putv`](crate::Rsm::putv), [`Rsm::put`](crate::Rsm::put),
//! …) need the engine driven while they wait: by the caller itself when the node has an
//! attached link ([`Rsm::attach_link`](crate::Rsm::attach_link): waiting drives the link and runs the timers, so one
//! core suffices; a firmware main loop calls [`Rsm::service`](crate::Rsm::service)), or by a driver thread
//! calling [`Rsm::drive`](crate::Rsm::drive). They return when the engine completes them — at the latest
//! [`UNREACHABLE_AFTER_NS`] after the peer last made progress (a connect: after its 5 s
//! reply wait).

pub(crate) mod channel;
pub(crate) mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(test)]
mod pair_tests;
pub(crate) mod send;

use crate::sg::{Direction, Plan};
use crate::types::{NodeId, Permission, SegmentId};
use crate::wire::{
    Ack, Bell, ConnectReply, ConnectRequest, Disconnect, EthernetFrame, Frame, GetRequest,
    ImportNotice, Message, FLAG_ACK, FLAG_NAK, NODE_BROADCAST,
};
use channel::Peer;
pub(crate) use event::Event;
use rsm_hal::Instant;
pub(crate) use send::{Next, Source};

/// Without progress for this long while something waits for it, a peer is declared
/// unreachable (5 s, spec §6.4's reply wait); a connect gives up after this long too.
pub const UNREACHABLE_AFTER_NS: u64 = 5_000_000_000;
/// First retransmission timeout (20 ms).
pub const RTO_INITIAL_NS: u64 = 20_000_000;
/// Longest retransmission timeout after backoff (250 ms).
pub const RTO_MAX_NS: u64 = 250_000_000;
/// Rounds of [`Rsm::drive`](crate::Rsm::drive) one [`Rsm::service`](crate::Rsm::service) call makes at most.
pub(crate) const SERVICE_ROUNDS: usize = 16;
/// Interval of the broadcast hello (1 s).
pub const HELLO_INTERVAL_NS: u64 = 1_000_000_000;

/// Interval of hello probes while a connect waits for a node never heard from.
pub(crate) const PROBE_INTERVAL_NS: u64 = 100_000_000;
/// Heartbeat interval (250 ms). While two nodes are connected by an import (this node
/// imports a segment of the peer, or the peer imports one of this node's), each sends the
/// other a unicast hello whenever it has sent the peer nothing for this long, and declares
/// the peer unreachable after [`UNREACHABLE_AFTER_NS`] without hearing any frame from it —
/// so an idle import notices that its exporter died within 5 s + one interval, even with
/// nothing in flight. Twenty heartbeats per 5 s make a false alarm on a lossy link
/// negligible (all lost at 30 % loss: 0.3^20 ≈ 3·10⁻¹¹).
pub const HEARTBEAT_INTERVAL_NS: u64 = 250_000_000;
/// Messages in flight per peer, at most (also bounded by [`INFLIGHT_BYTES`]). 32 (48 KB at
/// 1514-byte frames): between two image nodes under QEMU, 16 left the sender waiting for
/// acknowledgements half of the time (putv 40 against 51 MB/s) and 64 overflowed the
/// emulated path (2 808 retransmissions in 2 s). The selective acknowledgement's 32-bit
/// bitmap covers the whole window.
pub const WINDOW: usize = 32;
/// Bytes in flight per peer, at most, counted in frames of the peer's largest frame: a
/// window of 1514-byte frames fits, six 65 507-byte frames do. Between two image nodes under
/// QEMU, with 65 507-byte frames: 16 in flight overflowed the emulated path's socket buffers
/// (317–345 retransmissions in 2 s), 8 still did (336; 154–164 MB/s), 6 did not (0; 159–160
/// MB/s), 4 did not either but left both sides idle half of the time (124–127 MB/s).
pub const INFLIGHT_BYTES: usize = 384 * 1024;
/// Peers a node keeps state for: one per node id ([`crate::types::MAX_NODES`], ids 0..=63),
/// so every other node of a cluster is reachable — no node can be locked out by the others'
/// hellos. (The table is inline: about 1.9 KiB per peer, mostly its window of messages in
/// flight; see [`Rsm`](crate::Rsm)'s size.)
pub const MAX_PEERS: usize = crate::types::MAX_NODES as usize;
/// Longest entry of a putv/getv on a segment of another node: 4 GiB − 1 bytes (the wire
/// carries an entry's length and fragment offsets in 32 bits). A vector with a longer entry
/// fails as a whole with `RSMERR_BAD_LENGTH`, residual = count, before anything is sent —
/// checked after the per-entry checks of [`Rsm::putv`](crate::Rsm::putv) (so a bad offset is reported first).
/// Same-node vectors have no such limit.
pub const MAX_REMOTE_ENTRY: usize = u32::MAX as usize;
/// The default of the largest frame a node sends and receives, its `F` parameter
/// ([`Rsm`](crate::Rsm)'s last generic): a standard 1514-byte Ethernet frame fits. An embedder chooses
/// `F` at build time, up to [`MAX_FRAME_LIMIT`]: `Rsm<P, 256, 64, 64, 9018>` for jumbo
/// frames, `Rsm<P, 256, 64, 64, 65535>` for QEMU's socket netdev or UDP. The frame size in
/// use is [`NetConfig::max_frame`] (at most `F`), announced in the hello; towards each peer
/// the engine sends frames of the smaller of both ends' sizes. `F` sizes the node's own
/// buffers: the reorder frames (8 × `F`) and one frame on the stack of [`Rsm::drive`](crate::Rsm::drive).
pub const FRAME_BUF: usize = 1536;
/// The largest `F` (frame size) a node can be built with: 65 535 bytes, what the hello's
/// 16-bit frame size and the header's 16-bit body length carry.
pub const MAX_FRAME_LIMIT: usize = u16::MAX as usize;
/// Remote importers of this node's segments, over all segments and peers.
pub const MAX_REMOTE_IMPORTERS: usize = 128;
/// Remote imports one peer may hold on this node, so that no peer can lock the others out
/// (a connect beyond it is answered `RSMERR_INSUFFICIENT_RESOURCES`).
pub const MAX_IMPORTS_PER_PEER: usize = 32;
/// Get requests being answered at once, over all peers.
pub const MAX_GET_JOBS: usize = 64;
/// Get requests being answered at once for one peer; more wait (flow control), so a peer
/// that stops acknowledging cannot starve the others.
pub const MAX_GET_JOBS_PER_PEER: usize = 4;
/// Replies and acknowledgements queued per peer.
pub const CTRL_QUEUE: usize = 4;
/// Frames that arrived ahead of a missing one and are kept (over all peers, at most half of
/// them for one peer) until the missing one arrives; more are dropped and come again with
/// the retransmission.
pub const REORDER_SLOTS: usize = 8;

/// `node`'s bit in a 64-bit node set (node ids are below [`crate::types::MAX_NODES`] = 64;
/// 0 for anything else).
pub(crate) const fn node_bit(node: NodeId) -> u64 {
    match 1u64.checked_shl(node) {
        Some(b) => b,
        None => 0,
    }
}

/// A put fragment to write into an exported segment outside the table lock (see
/// [`Rsm::handle_frame`](crate::Rsm::handle_frame)): the export is held busy until it is done.
pub(crate) struct RxWrite<R> {
    pub(crate) region: R,
    /// Offset in `region`.
    pub(crate) off: usize,
    /// Where the bytes are in the frame, and how many.
    pub(crate) at: usize,
    pub(crate) len: usize,
    pub(crate) export: (u16, u32),
    /// Peer index and the record's identity, for the acknowledgement (or the failure).
    pub(crate) ix: usize,
    pub(crate) src: NodeId,
    pub(crate) import_id: u32,
    pub(crate) segid: SegmentId,
    /// The acknowledgement to queue once written (the last fragment of an entry), and the
    /// failure answer's fields.
    pub(crate) ack: Option<Ack>,
    pub(crate) op_id: u32,
    pub(crate) entry: u16,
    pub(crate) frag_offset: u32,
}

/// Bytes to read from memory into the frame outside the table lock (see
/// [`Rsm::poll_transmit`](crate::Rsm::poll_transmit)): a get answer's, from an exported segment held busy meanwhile, or
/// a put fragment's, from the local memory of the importer's operation (the region clone
/// keeps that memory alive).
pub(crate) struct TxRead<R> {
    pub(crate) region: R,
    pub(crate) off: usize,
    /// Where the bytes go in the frame, and how many.
    pub(crate) at: usize,
    pub(crate) len: usize,
    pub(crate) hold: TxHold,
}

/// Whose bytes a [`TxRead`] reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TxHold {
    /// A get answer: the export, held busy until the read is done.
    Export((u16, u32)),
    /// A put fragment of this operation (failed if the read fails).
    Op((u16, u32)),
}

/// A get answer's fragment to write into the importer's local memory outside the table lock
/// (see [`Rsm::handle_frame`](crate::Rsm::handle_frame)); the operation's progress is already counted, its completion
/// waits for the write.
pub(crate) struct ImportWrite<R> {
    pub(crate) region: R,
    pub(crate) off: usize,
    /// Where the bytes are in the frame, and how many.
    pub(crate) at: usize,
    pub(crate) len: usize,
    pub(crate) op: (u16, u32),
    /// This fragment was the operation's last byte: it completes after the write.
    pub(crate) complete: bool,
}

/// A frame kept because it arrived ahead of a missing one.
pub(crate) struct Early<const F: usize> {
    pub(crate) ix: u8,
    pub(crate) seq: u32,
    pub(crate) len: u16,
    pub(crate) buf: [u8; F],
}

/// Network configuration of a node, given to [`Rsm::net_start`](crate::Rsm::net_start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// This boot's incarnation: nonzero, and larger than any earlier boot's of this node
    /// (0 is taken as 1).
    pub incarnation: u64,
    /// The largest frame this node receives (its link's MTU plus the Ethernet header); at
    /// most the node's `F` ([`FRAME_BUF`] by default) is used.
    pub max_frame: usize,
}

/// Counters of the engine, for tests and reports ([`Rsm::net_stats`](crate::Rsm::net_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames handed out by [`Rsm::poll_transmit`](crate::Rsm::poll_transmit).
    pub frames_sent: u64,
    /// Frames given to [`Rsm::handle_frame`](crate::Rsm::handle_frame).
    pub frames_received: u64,
    /// Frames transmitted again (timeouts and fast retransmits).
    pub retransmits: u64,
    /// Retransmission timeouts that fired (each resends the window from the oldest frame).
    pub timeouts: u64,
    /// Fast retransmits (after three duplicate acknowledgements).
    pub fast_retransmits: u64,
    /// Frames that failed to parse (short, wrong version or type, bad length, bad CRC, …).
    pub malformed: u64,
    /// Frames addressed to another node (or sent by this node's own id).
    pub not_for_us: u64,
    /// Frames whose source MAC is not the MAC of their source node id.
    pub spoofed: u64,
    /// Frames from an older incarnation of the sender, or for an older one of this node.
    pub stale: u64,
    /// Sequenced frames already delivered (duplicates, retransmissions).
    pub duplicates: u64,
    /// Sequenced frames ahead of the next expected one (dropped; go-back-N).
    pub out_of_order: u64,
    /// Frames with a sequence or acknowledgement number outside any window.
    pub out_of_window: u64,
    /// Messages rejected by their receiver: no such importer, segment or operation; not
    /// published to the sender; permission; range. Memory is not touched.
    pub rejected: u64,
    /// In-order messages not taken for lack of room (flow control; retransmitted later).
    pub deferred: u64,
    /// Times a peer was declared unreachable.
    pub unreachable: u64,
    /// Peer restarts seen (a newer incarnation).
    pub restarts: u64,
}

impl core::ops::AddAssign for NetStats {
    /// Add another node's counters (e.g. to total a cluster).
    fn add_assign(&mut self, o: NetStats) {
        let NetStats {
            frames_sent,
            frames_received,
            retransmits,
            timeouts,
            fast_retransmits,
            malformed,
            not_for_us,
            spoofed,
            stale,
            duplicates,
            out_of_order,
            out_of_window,
            rejected,
            deferred,
            unreachable,
            restarts,
        } = o;
        self.frames_sent += frames_sent;
        self.frames_received += frames_received;
        self.retransmits += retransmits;
        self.timeouts += timeouts;
        self.fast_retransmits += fast_retransmits;
        self.malformed += malformed;
        self.not_for_us += not_for_us;
        self.spoofed += spoofed;
        self.stale += stale;
        self.duplicates += duplicates;
        self.out_of_order += out_of_order;
        self.out_of_window += out_of_window;
        self.rejected += rejected;
        self.deferred += deferred;
        self.unreachable += unreachable;
        self.restarts += restarts;
    }
}

/// A sequenced message, as kept until acknowledged and rendered for each transmission.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Msg {
    Reply(ConnectReply),
    Ack(Ack),
    Connect(ConnectRequest),
    Disconnect(Disconnect),
    NotImporting(ImportNotice),
    Bell(Bell),
    GetRequest(GetRequest),
    /// Put data of operation `op` (slot), read from its source at each transmission; if the
    /// operation has ended meanwhile (it failed), the frame is sent without data — a no-op
    /// that keeps the sequence.
    Put {
        op: (u16, u32),
        import_id: u32,
        segid: SegmentId,
        entry: u16,
        roff: u64,
        frag: u32,
        total: u32,
        chunk: u16,
    },
    /// Get data read from export `export` at `base + frag` at each transmission; if the
    /// segment went away meanwhile, the answer is `RSMERR_CONN_ABORTED` instead.
    GetData {
        export: (u16, u32),
        epoch: u32,
        op_id: u32,
        entry: u16,
        status: u16,
        base: usize,
        frag: u32,
        total: u32,
        chunk: u16,
    },
}

/// State of an import of a segment on another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemoteState {
    /// The connect request is out; the handle is not given to anyone yet.
    Connecting,
    /// Connected.
    Connected,
    /// Disconnected by the application: the engine tells the exporter, then frees the slot.
    Closing,
}

/// The wire side of a remote import.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteImport {
    pub(crate) state: RemoteState,
    /// Id of this import on the wire (the slot's wire id).
    pub(crate) import_id: u32,
}

/// Where the bell of a remote operation stands: an `intr_signal_post` on a remote import is
/// an operation with no entries and a bell; a putv with an implicit sigpost rings its bell
/// after every entry was acknowledged. Bells to the exporter are answered, and the operation
/// completes with that answer (spec §4.9's post errors; §9.28: a failed post replaces the
/// vector's success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BellState {
    /// No bell (yet).
    None,
    /// To be sent, in start order among the peer's bells.
    Due,
    /// Sent; waiting for the exporter's answer.
    Sent,
}

/// The exporter's record of one remote import of one of its segments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteImporter {
    pub(crate) node: NodeId,
    pub(crate) import_id: u32,
    pub(crate) segid: SegmentId,
    pub(crate) export: (u16, u32),
    pub(crate) epoch: u32,
    /// The permission the importer asked for (and was granted).
    pub(crate) perm: Permission,
    /// The last operation of this importer that failed: its later entries are dropped.
    pub(crate) failed_op: Option<u32>,
    /// Bells to send to the importer, in post order (not answered: see
    /// [`Rsm::intr_signal_post`](crate::Rsm::intr_signal_post)).
    pub(crate) bells: BellQueue,
}

/// Bells from an exporter waiting to be sent to one remote import, in post order (bells
/// from an importer are operations: [`BellState`]): first one posted with
/// `RSM_SIGPOST_NO_ACCUMULATE` if `lead_na`, then `count` accumulating ones. A
/// no-accumulate post behind any queued bell is dropped at once: that bell will be pending at
/// the target when it arrives, so the target would drop it too — so the target sees the same
/// number of events as for the same posts on this node (post order is kept; it used to send
/// every accumulating bell first).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BellQueue {
    pub(crate) count: u32,
    pub(crate) lead_na: bool,
}

impl BellQueue {
    /// Queue one bell (`coalesce` = no-accumulate).
    pub(crate) fn post(&mut self, coalesce: bool) {
        if !coalesce {
            self.count = self.count.saturating_add(1);
        } else if self.count == 0 && !self.lead_na {
            self.lead_na = true;
        }
    }

    /// The next bell to send: `Some(no_accumulate)`.
    pub(crate) fn take(&mut self) -> Option<bool> {
        if self.lead_na {
            self.lead_na = false;
            Some(true)
        } else if self.count > 0 {
            self.count -= 1;
            Some(false)
        } else {
            None
        }
    }
}

/// An exporter answering a get request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GetJob {
    pub(crate) node: NodeId,
    /// The segment the request was checked against (slot and epoch).
    pub(crate) export: (u16, u32),
    pub(crate) epoch: u32,
    pub(crate) op_id: u32,
    pub(crate) entry: u16,
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) sent: usize,
    /// 0, or the RSMERR code to answer with (no data).
    pub(crate) status: u16,
}

/// A remote putv/getv/put/get in progress.
pub(crate) struct RemoteOp<R> {
    pub(crate) dir: Direction,
    pub(crate) node: NodeId,
    pub(crate) import: (u16, u32),
    pub(crate) import_id: u32,
    pub(crate) segid: SegmentId,
    /// Where the data comes from (put) or goes to (get).
    pub(crate) src: Src<R>,
    pub(crate) count: u64,
    /// Implicit sigpost after success (or the post itself): `Some(coalesce)`.
    pub(crate) sigpost: Option<bool>,
    /// The bell's progress.
    pub(crate) bell: BellState,
    /// Start order, for first-in-first-out sending per peer.
    pub(crate) seq: u64,
    /// Send cursor: entry and byte offset within it.
    pub(crate) next_entry: usize,
    pub(crate) next_frag: usize,
    /// Entries completed (acknowledged or fully received), in order.
    pub(crate) done: usize,
    /// Bytes received of entry `done` (get).
    pub(crate) recv: usize,
}

/// The local side of a remote operation. (The variants are of similar size for real
/// regions: a plan is 16 steps; the inline buffer is kept no larger.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Src<R> {
    /// A validated vector.
    Plan(Plan<R>),
    /// put/get bytes carried in the operation itself.
    Inline {
        off: usize,
        len: usize,
        data: [u8; INLINE_MAX],
    },
}

/// A remote connect in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectOp {
    pub(crate) node: NodeId,
    pub(crate) segid: SegmentId,
    pub(crate) perm: Permission,
    pub(crate) import: (u16, u32),
    pub(crate) started: Instant,
    pub(crate) sent: bool,
}

/// The node layer's records of the wire side, kept next to the engine but not part of it
/// (the engine owns peers, channels, windows, retransmission, reassembly and timers): the
/// exporter's records of remote importers of its segments, the get answers it owes, the
/// start order of remote operations and the wake-up flag.
pub(crate) struct Serving {
    pub(crate) jobs: heapless::Vec<GetJob, MAX_GET_JOBS>,
    pub(crate) importers: heapless::Vec<RemoteImporter, MAX_REMOTE_IMPORTERS>,
    /// Per node id: the index in `importers` of its last record used (a hint, checked).
    pub(crate) importer_hint: [u8; MAX_PEERS],
    /// Start order of remote operations (first in, first out per peer).
    pub(crate) op_seq: u64,
    /// Something completed: wake sleepers after the lock is released.
    pub(crate) wake: bool,
    /// The node leaves the cluster ([`Rsm::net_leave`](crate::Rsm::net_leave)): every remote
    /// importer is disconnected, and connects are refused.
    pub(crate) leaving: bool,
}

impl Serving {
    /// Nothing recorded.
    pub(crate) const fn new() -> Self {
        Serving {
            jobs: heapless::Vec::new(),
            importers: heapless::Vec::new(),
            importer_hint: [0; MAX_PEERS],
            op_seq: 0,
            wake: false,
            leaving: false,
        }
    }

    /// Forget the remote importers and get answers of `node` (it restarted).
    pub(crate) fn forget_node(&mut self, node: NodeId) {
        self.importers.retain(|r| r.node != node);
        self.jobs.retain(|j| j.node != node);
    }
}

/// The engine's state, one per node, inside the node's table lock.
pub(crate) struct Engine<const F: usize> {
    pub(crate) on: bool,
    pub(crate) node: NodeId,
    pub(crate) inc: u64,
    pub(crate) max_frame: usize,
    pub(crate) peers: heapless::Vec<Peer, MAX_PEERS>,
    /// Index in `peers` of each node id (`u8::MAX` = none).
    pub(crate) peer_ix: [u8; MAX_PEERS],
    pub(crate) early: heapless::Vec<Early<F>, REORDER_SLOTS>,
    pub(crate) next_hello: Instant,
    /// Next heartbeat check ([`HEARTBEAT_INTERVAL_NS`]).
    pub(crate) next_heartbeat: Instant,
    /// One bit per node id: a connect request, forced disconnect, closing import or bell
    /// may be waiting to go to that node ([`Engine::poke`]); the sender scans its tables for
    /// them only then, so a frame costs O(1) in the table sizes otherwise. Every heartbeat
    /// tick sets all bits (a safety net: a missed poke costs at most 250 ms).
    pub(crate) ctrl_work: u64,
    pub(crate) stats: NetStats,
    /// Round-robin start for [`Rsm::poll_transmit`](crate::Rsm::poll_transmit).
    pub(crate) rr: usize,
    /// The latest time the driver gave the engine (API calls start their timers from it).
    pub(crate) clock: Instant,
}

impl<const F: usize> Engine<F> {
    /// `F` is checked here, at compile time: a frame of at least a hello and at most what
    /// the 16-bit length fields carry.
    const FRAME_OK: () = assert!(
        F >= crate::wire::MIN_MAX_FRAME as usize && F <= MAX_FRAME_LIMIT,
        "the frame size F must be in MIN_MAX_FRAME..=MAX_FRAME_LIMIT"
    );

    pub(crate) const fn new(node: NodeId) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FRAME_OK;
        Engine {
            on: false,
            node,
            inc: 0,
            max_frame: F,
            peers: heapless::Vec::new(),
            peer_ix: [u8::MAX; MAX_PEERS],
            early: heapless::Vec::new(),
            next_hello: Instant(0),
            next_heartbeat: Instant(0),
            ctrl_work: 0,
            stats: NetStats {
                frames_sent: 0,
                frames_received: 0,
                retransmits: 0,
                timeouts: 0,
                fast_retransmits: 0,
                malformed: 0,
                not_for_us: 0,
                spoofed: 0,
                stale: 0,
                duplicates: 0,
                out_of_order: 0,
                out_of_window: 0,
                rejected: 0,
                deferred: 0,
                unreachable: 0,
                restarts: 0,
            },
            rr: 0,
            clock: Instant(0),
        }
    }

    /// Control work for `node` may be waiting (see [`Engine::ctrl_work`]).
    pub(crate) fn poke(&mut self, node: NodeId) {
        self.ctrl_work |= node_bit(node);
    }

    /// Control work may be waiting for any node.
    pub(crate) fn poke_all(&mut self) {
        self.ctrl_work = u64::MAX;
    }

    /// The index of peer `node` in `peers`.
    pub(crate) fn ix(&self, node: NodeId) -> Option<usize> {
        let i = *self.peer_ix.get(usize::try_from(node).ok()?)?;
        (usize::from(i) < self.peers.len()).then_some(usize::from(i))
    }

    /// The index of peer `node`, adding it if new; `None` for an invalid id or a full table.
    pub(crate) fn ix_or_insert(&mut self, node: NodeId) -> Option<usize> {
        if let Some(i) = self.ix(node) {
            return Some(i);
        }
        let slot = self.peer_ix.get_mut(usize::try_from(node).ok()?)?;
        let i = self.peers.len();
        self.peers.push(Peer::new(node)).ok()?;
        *slot = i as u8;
        Some(i)
    }

    /// Forget peer `ix` if it never answered and nothing waits for it (a connect to a node
    /// that does not exist must not use up a slot for good).
    pub(crate) fn forget_if_silent(&mut self, ix: usize) {
        let Some(p) = self.peers.get(ix) else {
            return;
        };
        if p.inc != 0 || !p.inflight.is_empty() || !p.ctrl.is_empty() {
            return;
        }
        let node = p.node;
        self.peers.swap_remove(ix);
        if let Some(slot) = self
            .peer_ix
            .get_mut(usize::try_from(node).unwrap_or(usize::MAX))
        {
            *slot = u8::MAX;
        }
        // The peer that moved into `ix`.
        if let Some(moved) = self.peers.get(ix) {
            let moved_node = moved.node;
            let old = self.peers.len();
            if let Some(slot) = self
                .peer_ix
                .get_mut(usize::try_from(moved_node).unwrap_or(usize::MAX))
            {
                *slot = ix as u8;
            }
            for e in self.early.iter_mut() {
                if usize::from(e.ix) == old {
                    e.ix = ix as u8;
                }
            }
        }
        self.rr = 0;
    }

    /// The peer `node`, if known.
    pub(crate) fn peer(&self, node: NodeId) -> Option<&Peer> {
        self.peers.get(self.ix(node)?)
    }

    /// The frame size to use towards `peer`.
    pub(crate) fn frame_for(&self, peer: &Peer) -> usize {
        self.max_frame.min(peer.max_frame).min(F)
    }
}

/// What the engine made of a received frame's header (see [`Engine::admit`]).
pub(crate) enum Admit<'f> {
    /// Dropped (malformed, not for this node, spoofed, stale, no peer slot); counted.
    Dropped,
    /// From peer `p` (node `src`), parsed; `restarted` if it carries a newer incarnation
    /// than the one known — the node must forget the old one first
    /// ([`Engine::forget_peer`] and its own tables), then call [`Engine::receive`].
    Peer {
        p: usize,
        src: NodeId,
        frame: Frame<'f>,
        restarted: bool,
    },
}

/// What the engine made of an admitted frame (see [`Engine::receive`]).
pub(crate) enum Received<'f> {
    /// Consumed by the engine: a hello, an acknowledgement, a duplicate, a frame kept for
    /// later (it arrived ahead of a missing one), or one outside the window.
    Done,
    /// The next in-order message of the peer: the node applies it, then reports with
    /// [`Engine::delivered`]; kept frames that follow come from [`Engine::take_early`].
    InOrder(Message<'f>),
}

impl<const F: usize> Engine<F> {
    /// First stage of receiving `frame` (checksum by `crc`): parse it and check who sent it.
    /// Mutates nothing but the counters and, for a new node, the peer table.
    pub(crate) fn admit<'f, C: rsm_hal::Checksum>(
        &mut self,
        frame: &'f [u8],
        crc: &C,
    ) -> Admit<'f> {
        let Ok(f) = Frame::parse_with(frame, crc) else {
            self.stats.malformed += 1;
            return Admit::Dropped;
        };
        let h = f.header;
        let src = NodeId::from(h.src_node);
        if src == self.node
            || (h.dst_node != NODE_BROADCAST && NodeId::from(h.dst_node) != self.node)
        {
            self.stats.not_for_us += 1;
            return Admit::Dropped;
        }
        // Parse succeeded, so the Ethernet header is there.
        if EthernetFrame::new_unchecked(frame).src_addr() != crate::wire::node_mac(src) {
            self.stats.spoofed += 1;
            return Admit::Dropped;
        }
        if h.incarnation == 0 {
            self.stats.malformed += 1;
            return Admit::Dropped;
        }
        let Some(p) = self.ix_or_insert(src) else {
            // More peers than the table holds.
            self.stats.rejected += 1;
            return Admit::Dropped;
        };
        let known = self.peers[p].inc;
        if known != 0 && h.incarnation < known {
            self.stats.stale += 1;
            return Admit::Dropped;
        }
        let restarted = known != 0 && h.incarnation > known;
        if restarted {
            self.stats.restarts += 1;
        }
        Admit::Peer {
            p,
            src,
            frame: f,
            restarted,
        }
    }

    /// The engine's part of forgetting peer `p`'s old incarnation: its kept frames go, its
    /// channel starts afresh and a hello is due. (The node forgets its remote importers and
    /// get answers: [`Serving::forget_node`].)
    pub(crate) fn forget_peer(&mut self, p: usize) {
        let Some(peer) = self.peers.get_mut(p) else {
            return;
        };
        let node = peer.node;
        peer.reset();
        peer.hello_due = true;
        self.early.retain(|e| usize::from(e.ix) != p);
        self.poke(node);
    }

    /// Second stage: the channel's part — incarnations, hellos, acknowledgements, sequence
    /// order. `bytes` is the frame [`Engine::admit`] parsed into `f` (kept whole if it
    /// arrived ahead of a missing one).
    pub(crate) fn receive<'f>(
        &mut self,
        now: Instant,
        p: usize,
        f: &Frame<'f>,
        bytes: &[u8],
    ) -> Received<'f> {
        let h = f.header;
        let Some(peer) = self.peers.get_mut(p) else {
            return Received::Done;
        };
        let newly = peer.inc == 0;
        peer.inc = h.incarnation;
        peer.last_heard = now;
        let hello = match f.message {
            Message::Hello(hello) => {
                peer.max_frame = usize::from(hello.max_frame);
                true
            }
            _ => false,
        };
        if h.peer_incarnation != self.inc {
            // The sender does not know this incarnation of us (yet): tell it.
            if hello {
                if newly || h.dst_node != NODE_BROADCAST {
                    peer.hello_due = true;
                }
            } else {
                self.stats.stale += 1;
                peer.hello_due = true;
            }
            return Received::Done;
        }
        peer.unreachable = false;
        peer.probe_at = None;
        if h.flags & FLAG_ACK != 0 {
            let before = peer.dupacks;
            if peer.on_ack(h.ack, now, hello).is_err() {
                self.stats.out_of_window += 1;
                return Received::Done;
            }
            if peer.dupacks == 3 && before == 2 {
                self.stats.fast_retransmits += 1;
            }
            if hello {
                // A pure acknowledgement's `seq` is its selective acknowledgement bitmap.
                peer.on_sack(h.ack, h.seq);
            }
            if h.flags & FLAG_NAK != 0 {
                peer.on_nak(h.ack);
            }
        }
        if hello {
            return Received::Done;
        }
        match peer.classify(h.seq) {
            channel::Arrival::InOrder => return Received::InOrder(f.message),
            channel::Arrival::Duplicate => {
                self.stats.duplicates += 1;
                peer.ack_due = true;
            }
            channel::Arrival::Ahead => {
                peer.want_nak();
                peer.ack_due = true;
                self.stats.out_of_order += 1;
                let mine = self.early.iter().filter(|e| usize::from(e.ix) == p);
                let (kept, held) = mine.fold((false, 0), |(k, n), e| (k || e.seq == h.seq, n + 1));
                // No peer may take more than half the slots.
                if !kept && held < REORDER_SLOTS / 2 && bytes.len() <= F {
                    let mut e = Early {
                        ix: p as u8,
                        seq: h.seq,
                        len: bytes.len() as u16,
                        buf: [0; F],
                    };
                    e.buf[..bytes.len()].copy_from_slice(bytes);
                    // Full: dropped; it comes again with the retransmission.
                    let _ = self.early.push(e);
                }
            }
            channel::Arrival::OutOfWindow => self.stats.out_of_window += 1,
        }
        Received::Done
    }

    /// After the node applied peer `p`'s in-order message: `consumed` moves the channel on
    /// (and an acknowledgement becomes due); otherwise (no room) it is neither consumed nor
    /// acknowledged, and the sender retransmits it after our NAK.
    pub(crate) fn delivered(&mut self, p: usize, consumed: bool) {
        let Some(peer) = self.peers.get_mut(p) else {
            return;
        };
        peer.ack_due = true;
        if consumed {
            peer.expected = peer.expected.wrapping_add(1);
        } else {
            self.stats.deferred += 1;
            peer.deferred = true;
        }
    }

    /// `true` if frames of peer `p` are kept for later.
    pub(crate) fn has_early(&self, p: usize) -> bool {
        self.early.iter().any(|e| usize::from(e.ix) == p)
    }

    /// The kept frame of peer `p` that is in order now, if any (kept duplicates are dropped
    /// on the way). Give it back with [`Engine::keep_early`] if the node defers it.
    pub(crate) fn take_early(&mut self, p: usize) -> Option<Early<F>> {
        let expected = self.peers.get(p)?.expected;
        self.early
            .retain(|e| usize::from(e.ix) != p || e.seq.wrapping_sub(expected) as i32 >= 0);
        let k = self
            .early
            .iter()
            .position(|e| usize::from(e.ix) == p && e.seq == expected)?;
        Some(self.early.swap_remove(k))
    }

    /// Keep a frame taken with [`Engine::take_early`] again.
    pub(crate) fn keep_early(&mut self, e: Early<F>) {
        let _ = self.early.push(e);
    }
}

/// What a peer's channel sends next (see [`Engine::tx_choose`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TxChoice {
    /// A hello to a peer whose incarnation is not known yet (node id `dst`).
    Hello { dst: u8 },
    /// Message `msg` again (the peer reported it missing, or the window went back) — or for
    /// the first time since the cursor went back (`again` false).
    Resend { seq: u32, msg: Msg, again: bool },
    /// The window has room: a new message may go out with sequence number `seq`; the node
    /// picks it and reports it with [`Engine::tx_fresh`] (else only an acknowledgement, if due:
    /// [`Engine::tx_ack`]).
    Fresh { seq: u32 },
    /// No message may go out: only an acknowledgement, if one is due ([`Engine::tx_ack`]).
    Ack,
}

/// A pure acknowledgement to send (a unicast hello with the acknowledgement fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckFrame {
    pub(crate) dst: u8,
    pub(crate) peer_inc: u64,
    /// The next sequence number expected.
    pub(crate) ack: u32,
    pub(crate) nak: bool,
    /// Bit `k`: frame `ack + 1 + k` is kept (selective acknowledgement).
    pub(crate) sack: u32,
}

impl<const F: usize> Engine<F> {
    /// The channel's choice of what peer `ix` sends next: a hello to a peer not known yet, the
    /// oldest message again when the peer reported it missing, the messages of the window not
    /// sent since the cursor went back (skipping those the peer holds), else room for a new
    /// message, else an acknowledgement if due. Updates the retransmission bookkeeping of
    /// what it chose. `None` for an unknown slot or nothing to send to a peer not known yet.
    pub(crate) fn tx_choose(&mut self, ix: usize, now: Instant) -> Option<TxChoice> {
        let peer = self.peers.get_mut(ix)?;
        if peer.inc == 0 {
            if peer.hello_due {
                peer.hello_due = false;
                return Some(TxChoice::Hello {
                    dst: peer.node as u8,
                });
            }
            return None;
        }
        // 0. The oldest message, which the peer reported missing.
        if peer.resend_oldest {
            peer.resend_oldest = false;
            if let Some(sent) = peer.inflight.front_mut() {
                sent.tx = sent.tx.saturating_add(1);
                let (seq, msg) = (sent.seq, sent.msg);
                self.stats.retransmits += 1;
                return Some(TxChoice::Resend {
                    seq,
                    msg,
                    again: true,
                });
            }
        }
        // 1. Messages of the window not transmitted since the cursor last went back (but not
        //    those the peer holds).
        while peer
            .inflight
            .iter()
            .nth(peer.cursor)
            .is_some_and(|s| s.sacked)
        {
            peer.cursor += 1;
        }
        if peer.cursor < peer.inflight.len() {
            let cursor = peer.cursor;
            let sent = peer.inflight.iter_mut().nth(cursor)?;
            sent.tx = sent.tx.saturating_add(1);
            let (seq, msg, again) = (sent.seq, sent.msg, sent.tx > 1);
            peer.cursor += 1;
            peer.ack_due = false;
            peer.hello_due = false;
            if peer.rto_at.is_none() {
                peer.rto_at = Some(now.add_nanos(peer.rto));
            }
            if again {
                self.stats.retransmits += 1;
            }
            return Some(TxChoice::Resend { seq, msg, again });
        }
        // 2. A new message, if the window has room.
        if peer.window_open() {
            return Some(TxChoice::Fresh { seq: peer.next_seq });
        }
        Some(TxChoice::Ack)
    }

    /// The channels' timers at `now`: a retransmission timeout sends the window again (with
    /// backoff). Returns the peer slots (bit `ix`) whose messages in flight made no progress
    /// for [`UNREACHABLE_AFTER_NS`] and that are not unreachable yet: the node declares them
    /// unreachable (their operations fail, their imports are aborted).
    pub(crate) fn channel_timers(&mut self, now: Instant) -> u64 {
        let mut lost = 0u64;
        for (ix, peer) in self.peers.iter_mut().enumerate() {
            if peer.rto_at.is_some_and(|t| now >= t) {
                if !peer.inflight.is_empty() {
                    self.stats.timeouts += 1;
                }
                peer.on_timeout(now);
            }
            if !peer.inflight.is_empty()
                && !peer.unreachable
                && now.nanos_since(peer.last_progress) >= UNREACHABLE_AFTER_NS
            {
                lost |= node_bit(ix as NodeId);
            }
        }
        lost
    }

    /// The engine's next deadline: the broadcast hello, the heartbeat, and every channel's
    /// retransmission, unreachability and probe timers.
    pub(crate) fn next_deadline(&self) -> Instant {
        let mut t = self.next_hello.min(self.next_heartbeat);
        for p in self.peers.iter() {
            if let Some(r) = p.rto_at {
                t = t.min(r);
            }
            if !p.inflight.is_empty() && !p.unreachable {
                t = t.min(p.last_progress.add_nanos(UNREACHABLE_AFTER_NS));
            }
            if let Some(pr) = p.probe_at {
                t = t.min(pr);
            }
        }
        t
    }

    /// A connect waits for peer `ix`, whose incarnation is not known: send it a hello now,
    /// then every [`PROBE_INTERVAL_NS`].
    pub(crate) fn probe(&mut self, ix: usize, now: Instant) {
        if let Some(peer) = self.peers.get_mut(ix) {
            if peer.probe_at.is_none_or(|t| now >= t) {
                peer.hello_due = true;
                peer.probe_at = Some(now.add_nanos(PROBE_INTERVAL_NS));
            }
        }
    }

    /// Mark peer `ix` unreachable at `now` (its timers or its silence said so; counted):
    /// its node id, for the node's [`Event::PeerUnreachable`]; `None` if it already is.
    pub(crate) fn mark_unreachable(&mut self, ix: usize, now: Instant) -> Option<NodeId> {
        let peer = self.peers.get_mut(ix)?;
        if peer.unreachable {
            return None;
        }
        peer.unreachable = true;
        peer.last_progress = now;
        self.stats.unreachable += 1;
        Some(peer.node)
    }

    /// The heartbeat's check of peer `ix` at `now`, for a peer the node has business with
    /// (bit of its node id in `related`): `true` if it has been silent for
    /// [`UNREACHABLE_AFTER_NS`] (the node declares it unreachable), else a unicast hello
    /// becomes due when nothing was sent to it for [`HEARTBEAT_INTERVAL_NS`].
    pub(crate) fn heartbeat(&mut self, ix: usize, now: Instant, related: u64) -> bool {
        let Some(peer) = self.peers.get_mut(ix) else {
            return false;
        };
        if peer.inc == 0 || peer.unreachable || related & node_bit(peer.node) == 0 {
            return false;
        }
        if now.nanos_since(peer.last_heard) >= UNREACHABLE_AFTER_NS {
            return true;
        }
        if now.nanos_since(peer.last_sent) >= HEARTBEAT_INTERVAL_NS {
            peer.hello_due = true;
        }
        false
    }

    /// The node sends `msg` as new message `seq` to peer `ix` (after [`TxChoice::Fresh`]).
    pub(crate) fn tx_fresh(&mut self, ix: usize, seq: u32, msg: Msg, now: Instant) {
        if let Some(peer) = self.peers.get_mut(ix) {
            peer.next_seq = seq.wrapping_add(1);
            peer.push_sent(seq, msg, now);
            peer.ack_due = false;
            peer.hello_due = false;
        }
    }

    /// A pure acknowledgement for peer `ix` if one (or a hello, or a NAK) is due; it is then
    /// no longer due.
    pub(crate) fn tx_ack(&mut self, ix: usize) -> Option<AckFrame> {
        let peer = self.peers.get_mut(ix)?;
        if !(peer.ack_due || peer.hello_due || peer.nak_due) {
            return None;
        }
        peer.ack_due = false;
        peer.hello_due = false;
        let nak = peer.take_nak();
        let (dst, peer_inc, ack) = (peer.node as u8, peer.inc, peer.expected);
        let mut sack = 0u32;
        for e in self.early.iter().filter(|e| usize::from(e.ix) == ix) {
            let k = e.seq.wrapping_sub(ack).wrapping_sub(1);
            if k < 32 {
                sack |= 1 << k;
            }
        }
        Some(AckFrame {
            dst,
            peer_inc,
            ack,
            nak,
            sack,
        })
    }
}

/// Largest put/get carried by one engine operation ([`Rsm::start_put`](crate::Rsm::start_put), [`Rsm::start_get`](crate::Rsm::start_get));
/// the blocking [`Rsm::put`](crate::Rsm::put) / [`Rsm::get`](crate::Rsm::get) on a remote segment move longer ranges in pieces
/// of this size (a multiple of 8, so words stay whole).
pub const INLINE_MAX: usize = 512;

impl<R: rsm_hal::Region> RemoteOp<R> {
    /// Remote offset and length of entry `k`.
    pub(crate) fn entry(&self, k: usize) -> (usize, usize) {
        match &self.src {
            Src::Inline { off, len, .. } => (*off, *len),
            Src::Plan(plan) => plan.get(k).map_or((0, 0), |s| (s.remote_off, s.len)),
        }
    }
}

/// `(engine, the node's wire records, peer table, reorder buffers)` in bytes, for the size
/// test of [`Rsm`](crate::Rsm).
#[cfg(test)]
pub(crate) fn engine_sizes() -> (usize, usize, usize, usize) {
    use core::mem::size_of;
    (
        size_of::<Engine<FRAME_BUF>>(),
        size_of::<Serving>(),
        size_of::<heapless::Vec<Peer, MAX_PEERS>>(),
        size_of::<heapless::Vec<Early<FRAME_BUF>, REORDER_SLOTS>>(),
    )
}

/// The engine's receive stages on their own, without an `Rsm`: frames in, what the node must
/// apply out.
#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::wire::{self, HeaderRepr, Hello};
    use rsm_hal::SoftChecksum;

    const ME: NodeId = 1;
    const MY_INC: u64 = 7;

    fn engine() -> Engine<FRAME_BUF> {
        let mut e = Engine::new(ME);
        e.on = true;
        e.inc = MY_INC;
        e
    }

    /// A frame from node `src` (incarnation `inc`) with sequence number `seq`.
    fn frame(
        src: u8,
        inc: u64,
        peer_inc: u64,
        seq: u32,
        message: Message<'_>,
    ) -> std::vec::Vec<u8> {
        frame_flags(src, inc, peer_inc, seq, 0, 0, message)
    }

    /// [`frame`] with header flags and an acknowledgement number.
    fn frame_flags(
        src: u8,
        inc: u64,
        peer_inc: u64,
        seq: u32,
        flags: u16,
        ack: u32,
        message: Message<'_>,
    ) -> std::vec::Vec<u8> {
        let mut buf = std::vec![0u8; FRAME_BUF];
        let f = Frame {
            header: HeaderRepr {
                flags,
                src_node: src,
                dst_node: ME as u8,
                incarnation: inc,
                peer_incarnation: peer_inc,
                seq,
                ack,
            },
            message,
        };
        let n = f.emit_with(&mut buf, &SoftChecksum).unwrap();
        buf.truncate(n);
        buf
    }

    fn bell(k: u32) -> Message<'static> {
        Message::Bell(Bell {
            segment_id: 0x40_0001,
            import_id: k,
            flags: 0,
            op_id: 0,
        })
    }

    fn hello(inc: u64) -> Message<'static> {
        Message::Hello(Hello {
            incarnation: inc,
            max_frame: 1514,
        })
    }

    /// Admit and receive `bytes`; the in-order message's import id (for bells), if any.
    fn feed(e: &mut Engine<FRAME_BUF>, bytes: &[u8]) -> (bool, Option<u32>) {
        let Admit::Peer {
            p,
            frame: f,
            restarted,
            ..
        } = e.admit(bytes, &SoftChecksum)
        else {
            return (false, None);
        };
        if restarted {
            e.forget_peer(p);
        }
        match e.receive(Instant(0), p, &f, bytes) {
            Received::InOrder(Message::Bell(b)) => {
                e.delivered(p, true);
                (restarted, Some(b.import_id))
            }
            _ => (restarted, None),
        }
    }

    #[test]
    fn in_order_duplicate_and_ahead_frames() {
        let mut e = engine();
        // Hello first: learns the peer (and that a hello is due back), delivers nothing.
        assert_eq!(feed(&mut e, &frame(2, 5, 0, 0, hello(5))), (false, None));
        let p = e.ix(2).unwrap();
        assert!(e.peers[p].hello_due);
        // In order: delivered.
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 1, bell(1))).1, Some(1));
        // The same again: a duplicate, counted, acknowledged, not delivered.
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 1, bell(1))).1, None);
        assert_eq!(e.stats.duplicates, 1);
        // Ahead of a missing one: kept, not delivered; then the gap fills and the kept one
        // is next in order.
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 3, bell(3))).1, None);
        assert_eq!(e.stats.out_of_order, 1);
        assert!(e.has_early(p));
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 2, bell(2))).1, Some(2));
        let kept = e.take_early(p).expect("frame 3 is in order now");
        let f = Frame::parse_with(&kept.buf[..usize::from(kept.len)], &SoftChecksum).unwrap();
        assert_eq!(f.header.seq, 3);
        e.delivered(p, true);
        assert!(!e.has_early(p));
        assert_eq!(e.peers[p].expected, 4);
    }

    #[test]
    fn hostile_frames_are_dropped_and_counted() {
        let mut e = engine();
        let good = frame(2, 5, MY_INC, 1, bell(1));
        // Corrupted: malformed.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(e.admit(&bad, &SoftChecksum), Admit::Dropped));
        assert_eq!(e.stats.malformed, 1);
        // Another node's MAC for node 2's id: spoofed.
        let mut spoof = good.clone();
        spoof[6..12].copy_from_slice(&wire::node_mac(3));
        wire::seal_with(&mut spoof, &SoftChecksum);
        assert!(matches!(e.admit(&spoof, &SoftChecksum), Admit::Dropped));
        assert_eq!(e.stats.spoofed, 1);
        // Our own id as the source: not for us.
        assert!(matches!(
            e.admit(&frame(ME as u8, 5, MY_INC, 1, bell(1)), &SoftChecksum),
            Admit::Dropped
        ));
        assert_eq!(e.stats.not_for_us, 1);
        // Addressed to our old incarnation: not delivered, a hello becomes due.
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC - 1, 1, bell(1))).1, None);
        assert_eq!(e.stats.stale, 1);
        assert!(e.peers[e.ix(2).unwrap()].hello_due);
        // None of it reached the node, and the channel still expects frame 1.
        assert_eq!(feed(&mut e, &good).1, Some(1));
    }

    #[test]
    fn a_newer_incarnation_restarts_the_peer_and_an_older_one_is_stale() {
        let mut e = engine();
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 1, bell(1))).1, Some(1));
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 3, bell(3))).1, None);
        let p = e.ix(2).unwrap();
        assert!(e.has_early(p));
        // The peer rebooted: the engine says so; forgetting it drops its kept frames and
        // starts its channel afresh (sequence 1 again).
        let (restarted, got) = feed(&mut e, &frame(2, 6, MY_INC, 1, bell(9)));
        assert!(restarted);
        assert_eq!(got, Some(9));
        assert_eq!(e.stats.restarts, 1);
        assert!(!e.has_early(p));
        // Its old incarnation is stale from now on.
        assert!(matches!(
            e.admit(&frame(2, 5, MY_INC, 2, bell(2)), &SoftChecksum),
            Admit::Dropped
        ));
        assert_eq!(e.stats.stale, 1);
    }

    fn msg(k: u32) -> Msg {
        Msg::Bell(Bell {
            segment_id: 0x40_0001,
            import_id: k,
            flags: 0,
            op_id: 0,
        })
    }

    #[test]
    fn transmit_choices_follow_the_window() {
        let mut e = engine();
        // A peer learned from its hello, which it does not know us from yet: hello back.
        assert_eq!(feed(&mut e, &frame(2, 5, 0, 0, hello(5))), (false, None));
        let p = e.ix(2).unwrap();
        // Known now: room for new messages, numbered from 1, up to the initial window.
        let mut sent = 0;
        while let Some(TxChoice::Fresh { seq }) = e.tx_choose(p, Instant(0)) {
            assert_eq!(seq, sent + 1);
            e.tx_fresh(p, seq, msg(seq), Instant(0));
            sent += 1;
            assert!(sent <= WINDOW as u32);
        }
        assert_eq!(sent, u32::from(channel::INITIAL_CWND));
        // Window full: only an acknowledgement — none due, the data frames carried the hello
        // that was due.
        assert!(matches!(e.tx_choose(p, Instant(0)), Some(TxChoice::Ack)));
        assert_eq!(e.tx_ack(p), None);
        // A message from the peer makes one due, once.
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 1, bell(1))).1, Some(1));
        let a = e.tx_ack(p).expect("an acknowledgement is due");
        assert_eq!((a.dst, a.peer_inc, a.ack, a.nak), (2, 5, 2, false));
        assert_eq!(e.tx_ack(p), None, "nothing due any more");
        // The peer reports frame 1 missing (NAK, ack 1): it goes again, counted.
        let nak = frame_flags(2, 5, MY_INC, 0, FLAG_ACK | FLAG_NAK, 1, hello(5));
        assert_eq!(feed(&mut e, &nak), (false, None));
        match e.tx_choose(p, Instant(0)) {
            Some(TxChoice::Resend {
                seq: 1,
                again: true,
                ..
            }) => {}
            other => panic!("expected frame 1 again, got {other:?}"),
        }
        assert_eq!(e.stats.retransmits, 1);
        // An unknown slot chooses nothing.
        assert!(e.tx_choose(63, Instant(0)).is_none());
    }

    #[test]
    fn a_timeout_resends_and_silence_loses_the_peer() {
        let mut e = engine();
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 1, bell(1))).1, Some(1));
        let p = e.ix(2).unwrap();
        let Some(TxChoice::Fresh { seq }) = e.tx_choose(p, Instant(0)) else {
            panic!("room for a message");
        };
        e.tx_fresh(p, seq, msg(seq), Instant(0));
        let rto = e.peers[p]
            .rto_at
            .expect("a timer runs for the message in flight");
        // Before the timeout nothing happens; at it the window goes again.
        assert_eq!(e.channel_timers(Instant(rto.0 - 1)), 0);
        assert_eq!(e.stats.timeouts, 0);
        assert_eq!(e.channel_timers(rto), 0);
        assert_eq!(e.stats.timeouts, 1);
        match e.tx_choose(p, rto) {
            Some(TxChoice::Resend {
                seq: s,
                again: true,
                ..
            }) if s == seq => {}
            other => panic!("expected the message again, got {other:?}"),
        }
        // No progress for the unreachability time: the peer is reported lost.
        let later = Instant(UNREACHABLE_AFTER_NS);
        assert_eq!(e.channel_timers(later), node_bit(p as NodeId));
    }

    #[test]
    fn acknowledgements_carry_the_kept_frames() {
        let mut e = engine();
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 1, bell(1))).1, Some(1));
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 3, bell(3))).1, None);
        assert_eq!(feed(&mut e, &frame(2, 5, MY_INC, 5, bell(5))).1, None);
        let p = e.ix(2).unwrap();
        let a = e.tx_ack(p).expect("an ack is due");
        // Expecting 2; 3 and 5 are kept: bits 0 and 2.
        assert_eq!((a.ack, a.sack, a.nak), (2, 0b101, true));
    }

    #[test]
    fn a_deferred_message_is_not_consumed() {
        let mut e = engine();
        let bytes = frame(2, 5, MY_INC, 1, bell(1));
        let Admit::Peer { p, frame: f, .. } = e.admit(&bytes, &SoftChecksum) else {
            panic!("admitted");
        };
        assert!(matches!(
            e.receive(Instant(0), p, &f, &bytes),
            Received::InOrder(_)
        ));
        e.delivered(p, false);
        assert_eq!(e.stats.deferred, 1);
        assert_eq!(
            e.peers[p].expected, 1,
            "not consumed: the sender resends it"
        );
        // Resent, it is in order again.
        assert_eq!(feed(&mut e, &bytes).1, Some(1));
    }
}
