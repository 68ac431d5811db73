//! The per-peer reliable channel: sequence numbers, a bounded window of messages in flight,
//! cumulative acknowledgements, go-back-N retransmission with exponential backoff. A message
//! in flight is kept as a small descriptor ([`Msg`]) and rendered into a frame again for each
//! retransmission, so no frame buffers are held.
//!
//! Pure bookkeeping with explicit time: no I/O, no clock, no platform.

use heapless::Deque;
use rsm_hal::Instant;

use super::{
    Msg, NodeId, CTRL_QUEUE, FRAME_BUF, INFLIGHT_BYTES, RTO_INITIAL_NS, RTO_MAX_NS, WINDOW,
};

/// Congestion window of a new session.
pub(crate) const INITIAL_CWND: u16 = 4;

/// A message in flight: its sequence number and how to render it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) seq: u32,
    /// How many times it was transmitted.
    pub(crate) tx: u16,
    /// The peer reported holding it (selective acknowledgement): not resent.
    pub(crate) sacked: bool,
    pub(crate) msg: Msg,
}

/// What to do with a sequenced frame that arrived (see [`Peer::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next frame in order: deliver it.
    InOrder,
    /// Already delivered (a duplicate or a retransmission): drop, acknowledge again.
    Duplicate,
    /// Ahead of the next expected frame but inside the window: drop (go-back-N), and
    /// acknowledge so the sender retransmits soon.
    Ahead,
    /// Beyond the window: no honest sender can produce it; drop and count.
    OutOfWindow,
}

/// Everything one node keeps about one peer.
pub(crate) struct Peer {
    /// The peer's node id.
    pub(crate) node: NodeId,
    /// The peer's incarnation (0 = never heard from).
    pub(crate) inc: u64,
    /// The largest frame the peer receives (from its hello).
    pub(crate) max_frame: usize,
    /// Declared unreachable (no progress for [`super::UNREACHABLE_AFTER_NS`]); cleared by
    /// the next progress.
    pub(crate) unreachable: bool,
    /// Next sequence number to assign.
    pub(crate) next_seq: u32,
    /// Frames sent and not yet acknowledged, oldest first.
    pub(crate) inflight: Deque<Sent, WINDOW>,
    /// Index in `inflight` of the next frame to transmit (`inflight.len()` = all sent).
    pub(crate) cursor: usize,
    /// Congestion window: messages allowed in flight now (1..=[`WINDOW`]). Grows by one per
    /// acknowledged message below `ssthresh` (slow start), by one per window above it; halves
    /// on a NAK, drops to 1 on a timeout.
    pub(crate) cwnd: u16,
    /// Slow-start threshold.
    pub(crate) ssthresh: u16,
    /// Acknowledged messages counted towards the next additive increase.
    pub(crate) acked_run: u16,
    /// Current retransmission timeout.
    pub(crate) rto: u64,
    /// When the oldest frame in flight is retransmitted.
    pub(crate) rto_at: Option<Instant>,
    /// Last time the peer acknowledged something new (or the window became non-empty).
    pub(crate) last_progress: Instant,
    /// Last time an authentic frame of the peer's current incarnation arrived (any frame:
    /// a hello counts). Drives the heartbeat's unreachability ([`super::HEARTBEAT_INTERVAL_NS`]).
    pub(crate) last_heard: Instant,
    /// Last time a frame went to the peer (unicast); a heartbeat goes out when this is
    /// [`super::HEARTBEAT_INTERVAL_NS`] old and something connects the two nodes.
    pub(crate) last_sent: Instant,
    /// Acknowledgements that acknowledged nothing new, in a row.
    pub(crate) dupacks: u8,
    /// Next sequence number to deliver from the peer.
    pub(crate) expected: u32,
    /// An acknowledgement should be sent.
    pub(crate) ack_due: bool,
    /// A unicast hello should be sent (the peer does not know our incarnation, or we probe).
    pub(crate) hello_due: bool,
    /// The next frame to the peer should carry [`crate::wire::FLAG_NAK`] for `expected`.
    pub(crate) nak_due: bool,
    /// The `expected` value a NAK was last sent for (one NAK per hole).
    pub(crate) naked: Option<u32>,
    /// Resend the oldest message now (the peer sent a NAK for it).
    pub(crate) resend_oldest: bool,
    /// In loss recovery (after a NAK or a timeout): messages before this sequence number that
    /// are still unacknowledged after a partial acknowledgement are resent one by one.
    pub(crate) recover: Option<u32>,
    /// An in-order message was refused for lack of room: when room appears, send a NAK so
    /// the peer resends it at once instead of after a timeout.
    pub(crate) deferred: bool,
    /// Next hello probe while a connect waits for an unknown peer.
    pub(crate) probe_at: Option<Instant>,
    /// Replies and acknowledgements waiting for window space.
    pub(crate) ctrl: Deque<Msg, CTRL_QUEUE>,
}

impl Peer {
    pub(crate) const fn new(node: NodeId) -> Self {
        Peer {
            node,
            inc: 0,
            max_frame: FRAME_BUF,
            unreachable: false,
            next_seq: 1,
            inflight: Deque::new(),
            cursor: 0,
            cwnd: INITIAL_CWND,
            ssthresh: WINDOW as u16,
            acked_run: 0,
            rto: RTO_INITIAL_NS,
            rto_at: None,
            last_progress: Instant(0),
            last_heard: Instant(0),
            last_sent: Instant(0),
            dupacks: 0,
            expected: 1,
            ack_due: false,
            hello_due: false,
            nak_due: false,
            naked: None,
            resend_oldest: false,
            recover: None,
            deferred: false,
            probe_at: None,
            ctrl: Deque::new(),
        }
    }

    /// Forget the session (the peer restarted): messages in flight are dropped, sequence
    /// numbers start again at 1.
    pub(crate) fn reset(&mut self) {
        let max_frame = self.max_frame;
        *self = Peer::new(self.node);
        self.max_frame = max_frame;
    }

    /// Messages the peer's frame size allows in flight ([`INFLIGHT_BYTES`] in frames of
    /// [`Peer::max_frame`], 1..=[`WINDOW`]).
    pub(crate) fn frame_budget(&self) -> usize {
        (INFLIGHT_BYTES / self.max_frame.max(1)).clamp(1, WINDOW)
    }

    /// Room for one more new message in the (congestion) window.
    pub(crate) fn window_open(&self) -> bool {
        self.cursor >= self.inflight.len()
            && !self.inflight.is_full()
            && self.inflight.len() < usize::from(self.cwnd).min(self.frame_budget())
    }

    /// Classify sequence number `seq` of an arriving frame.
    pub(crate) fn classify(&self, seq: u32) -> Arrival {
        let d = seq.wrapping_sub(self.expected) as i32;
        if d == 0 {
            Arrival::InOrder
        } else if d < 0 {
            Arrival::Duplicate
        } else if (d as usize) < WINDOW {
            Arrival::Ahead
        } else {
            Arrival::OutOfWindow
        }
    }

    /// Process cumulative acknowledgement `ack` (the next sequence number the peer expects).
    /// Drops acknowledged messages; returns `Err(())` for an acknowledgement of messages never
    /// sent (a hostile or corrupt peer), `Ok(true)` on progress.
    pub(crate) fn on_ack(&mut self, ack: u32, now: Instant, pure: bool) -> Result<bool, ()> {
        let una = self.inflight.front().map_or(self.next_seq, |s| s.seq);
        let newly = ack.wrapping_sub(una) as i32;
        let beyond = ack.wrapping_sub(self.next_seq) as i32;
        if beyond > 0 {
            return Err(());
        }
        if newly <= 0 {
            if pure && newly == 0 && !self.inflight.is_empty() {
                self.dupacks = self.dupacks.saturating_add(1);
                if self.dupacks == 3 {
                    // Fast retransmit: the peer keeps asking for `una`.
                    self.cursor = 0;
                }
            }
            return Ok(false);
        }
        for _ in 0..newly {
            self.inflight.pop_front();
        }
        // Congestion window growth.
        let newly16 = u16::try_from(newly).unwrap_or(u16::MAX);
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(newly16).min(self.ssthresh);
        } else {
            self.acked_run = self.acked_run.saturating_add(newly16);
            if self.acked_run >= self.cwnd {
                self.acked_run = 0;
                self.cwnd = self.cwnd.saturating_add(1);
            }
        }
        self.cwnd = self.cwnd.min(WINDOW as u16);
        self.cursor = self.cursor.saturating_sub(newly as usize);
        self.rto = RTO_INITIAL_NS;
        self.dupacks = 0;
        self.resend_oldest = false;
        self.last_progress = now;
        // A partial acknowledgement during recovery: the next message sent before recovery
        // began was lost too — resend it now rather than after a timeout.
        if let Some(r) = self.recover {
            match self.inflight.front() {
                Some(f) if (r.wrapping_sub(f.seq) as i32) > 0 => {
                    if !f.sacked && self.cursor > 0 {
                        self.resend_oldest = true;
                    }
                }
                _ => self.recover = None,
            }
        }
        self.unreachable = false;
        self.rto_at = if self.inflight.is_empty() {
            None
        } else {
            Some(now.add_nanos(self.rto))
        };
        Ok(true)
    }

    /// A selective acknowledgement: bit `k` of `bitmap` set = the peer holds message
    /// `ack + 1 + k` (it arrived after the missing `ack`).
    pub(crate) fn on_sack(&mut self, ack: u32, bitmap: u32) {
        for s in self.inflight.iter_mut() {
            let k = s.seq.wrapping_sub(ack).wrapping_sub(1);
            if k < 32 && bitmap & (1 << k) != 0 {
                s.sacked = true;
            }
        }
    }

    /// The peer reported `ack` missing (a NAK): resend the oldest message, if it is the one
    /// missing and was sent already.
    pub(crate) fn on_nak(&mut self, ack: u32) {
        let una = self.inflight.front().map(|s| s.seq);
        if una == Some(ack) && self.cursor > 0 {
            self.resend_oldest = true;
            // Once per loss episode: halve the window.
            if self.recover.is_none() {
                self.ssthresh = (self.cwnd / 2).max(2);
                self.cwnd = self.ssthresh;
            }
            self.recover = Some(self.next_seq);
        }
    }

    /// Room appeared for a message refused earlier: ask for it again now.
    pub(crate) fn room_again(&mut self) {
        if self.deferred {
            self.deferred = false;
            self.nak_due = true;
        }
    }

    /// An in-order frame could not be delivered yet because `expected` is missing: ask for it
    /// (once per hole).
    pub(crate) fn want_nak(&mut self) {
        if self.naked != Some(self.expected) {
            self.nak_due = true;
        }
    }

    /// Take the NAK to put in the next frame: `true` if it should carry [`crate::wire::FLAG_NAK`].
    pub(crate) fn take_nak(&mut self) -> bool {
        if self.nak_due {
            self.nak_due = false;
            self.naked = Some(self.expected);
            true
        } else {
            false
        }
    }

    /// The retransmission timer fired at `now`: resend, back off.
    pub(crate) fn on_timeout(&mut self, now: Instant) {
        if self.inflight.is_empty() {
            self.rto_at = None;
            return;
        }
        // Go back to the oldest message; the ones the peer said it holds are skipped — but
        // only once: the report is advisory (a receiver may have had to drop them), so a
        // second timeout in a row resends everything.
        self.cursor = 0;
        self.recover = Some(self.next_seq);
        self.ssthresh = (self.cwnd / 2).max(2);
        self.cwnd = self.ssthresh;
        if self.rto > RTO_INITIAL_NS {
            for s in self.inflight.iter_mut() {
                s.sacked = false;
            }
        }
        self.rto = (self.rto.saturating_mul(2)).min(RTO_MAX_NS);
        self.rto_at = Some(now.add_nanos(self.rto));
    }

    /// Record new message `msg` with sequence number `seq` as sent at `now`.
    pub(crate) fn push_sent(&mut self, seq: u32, msg: Msg, now: Instant) {
        if self.inflight.is_empty() {
            self.last_progress = now;
        }
        let sent = Sent {
            seq,
            tx: 1,
            sacked: false,
            msg,
        };
        // The caller checked `window_open`.
        let _ = self.inflight.push_back(sent);
        self.cursor = self.inflight.len();
        if self.rto_at.is_none() {
            self.rto_at = Some(now.add_nanos(self.rto));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ImportNotice;
    use heapless::Vec;

    fn msg() -> Msg {
        Msg::NotImporting(ImportNotice {
            segment_id: 1,
            import_id: 2,
        })
    }

    fn sent(p: &mut Peer, now: u64) -> u32 {
        let seq = p.next_seq;
        p.next_seq += 1;
        p.push_sent(seq, msg(), Instant(now));
        seq
    }

    #[test]
    fn classify_window() {
        let p = Peer::new(1);
        assert_eq!(p.classify(1), Arrival::InOrder);
        assert_eq!(p.classify(0), Arrival::Duplicate);
        assert_eq!(p.classify(2), Arrival::Ahead);
        assert_eq!(p.classify(1 + WINDOW as u32), Arrival::OutOfWindow);
        assert_eq!(p.classify(u32::MAX / 2), Arrival::OutOfWindow);
    }

    #[test]
    fn large_frames_bound_the_window_by_bytes() {
        let mut p = Peer::new(1);
        p.cwnd = WINDOW as u16;
        assert_eq!(
            p.frame_budget(),
            WINDOW,
            "1536-byte frames: the message window binds"
        );
        p.max_frame = 65_507;
        assert_eq!(p.frame_budget(), INFLIGHT_BYTES / 65_507);
        for _ in 0..p.frame_budget() {
            assert!(p.window_open());
            sent(&mut p, 10);
        }
        assert!(!p.window_open(), "six 64 KiB frames in flight, no more");
        p.max_frame = usize::MAX;
        assert_eq!(p.frame_budget(), 1, "never below one message");
    }

    #[test]
    fn acks_drop_messages_and_reject_the_future() {
        let mut p = Peer::new(1);
        for _ in 0..3 {
            sent(&mut p, 10);
        }
        assert!(p.on_ack(9, Instant(20), false).is_err());
        assert_eq!(p.on_ack(3, Instant(20), false), Ok(true));
        assert_eq!(p.inflight.len(), 1);
        assert_eq!(p.last_progress, Instant(20));
        assert_eq!(p.on_ack(3, Instant(21), false), Ok(false));
        assert_eq!(p.on_ack(4, Instant(22), false), Ok(true));
        assert!(p.inflight.is_empty());
        assert_eq!(p.rto_at, None);
    }

    #[test]
    fn window_fills_then_closes() {
        let mut p = Peer::new(1);
        p.cwnd = WINDOW as u16;
        for _ in 0..WINDOW {
            assert!(p.window_open());
            sent(&mut p, 0);
        }
        assert!(!p.window_open());
        assert_eq!(p.on_ack(2, Instant(1), false), Ok(true));
        assert!(p.window_open());
    }

    #[test]
    fn congestion_window_grows_and_halves() {
        let mut p = Peer::new(1);
        assert_eq!(p.cwnd, INITIAL_CWND);
        for _ in 0..INITIAL_CWND {
            sent(&mut p, 0);
        }
        assert!(!p.window_open(), "a new session starts with a small window");
        // Slow start: +1 per acknowledged message.
        assert_eq!(p.on_ack(p.next_seq, Instant(1), false), Ok(true));
        assert_eq!(p.cwnd, 2 * INITIAL_CWND);
        // A NAK halves it once per loss episode.
        for _ in 0..4 {
            sent(&mut p, 2);
        }
        let una = p.inflight.front().unwrap().seq;
        p.on_nak(una);
        assert_eq!(p.cwnd, INITIAL_CWND);
        p.on_nak(una);
        assert_eq!(p.cwnd, INITIAL_CWND, "same episode");
        // A timeout halves it too, never below 2; it never exceeds WINDOW.
        for _ in 0..5 {
            p.on_timeout(Instant(3));
        }
        assert_eq!(p.cwnd, 2);
        p.cwnd = WINDOW as u16;
        p.ssthresh = 2;
        let next = p.next_seq;
        assert_eq!(p.on_ack(next, Instant(4), false), Ok(true));
        assert_eq!(p.cwnd, WINDOW as u16);
    }

    #[test]
    fn timeout_goes_back_and_backs_off() {
        let mut p = Peer::new(1);
        sent(&mut p, 0);
        sent(&mut p, 0);
        assert_eq!(p.cursor, 2);
        p.on_timeout(Instant(RTO_INITIAL_NS));
        assert_eq!(p.cursor, 0);
        assert_eq!(p.rto, 2 * RTO_INITIAL_NS);
        // Selective acknowledgement: the peer holds seq 2 (bit 0 after ack 1).
        p.on_sack(1, 0b1);
        let sacked: Vec<bool, 2> = p.inflight.iter().map(|s| s.sacked).collect();
        assert_eq!(sacked.as_slice(), &[false, true]);
        for _ in 0..20 {
            p.on_timeout(Instant(0));
        }
        assert_eq!(p.rto, RTO_MAX_NS);
        // Three duplicate pure acks trigger a fast retransmit.
        p.cursor = 2;
        for _ in 0..3 {
            assert_eq!(p.on_ack(1, Instant(5), true), Ok(false));
        }
        assert_eq!(p.cursor, 0);
        // A reset forgets the session but keeps the frame size.
        p.max_frame = 600;
        p.reset();
        assert!(p.inflight.is_empty());
        assert_eq!((p.next_seq, p.expected, p.max_frame), (1, 1, 600));
    }
}
