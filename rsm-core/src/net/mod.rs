//! The node side of the wire protocol: how an [`Rsm`] feeds frames and time to its engine
//! ([`crate::proto`], which holds the engine's state and types) and applies what comes out —
//! the receive path ([`rx`]), the transmit path ([`tx`]) and the importer's remote operations
//! ([`remote`]). The methods are those of [`Rsm`]: `net_start`, `handle_frame`,
//! `poll_transmit`, `poll_timeout`, `drive`, `service`, `attach_link`, …

mod remote;
mod rx;
mod tx;

use crate::error::RsmResult;
use crate::handle::ImportHandle;
use crate::node::Rsm;
use crate::proto::*;
use crate::types::NodeId;
use rsm_hal::{Instant, Link, Platform};

/// Frames [`Rsm::drive`] takes in before it transmits what is due (acknowledgements above
/// all) in the middle of a burst of arrivals.
const ACK_EVERY: usize = 4;

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// Start the engine of `rsmnet0` at `now` (the first hello goes out at once). Calling it
    /// again changes nothing but the frame size. Without it, remote connects fail with
    /// `RSMERR_REMOTE_NODE_UNREACHABLE` and frames are ignored.
    pub fn net_start(&self, now: Instant, cfg: NetConfig) {
        let mut st = self.state.lock();
        let net = &mut st.net;
        net.max_frame = cfg
            .max_frame
            .clamp(usize::from(crate::wire::MIN_MAX_FRAME), F);
        net.clock = net.clock.max(now);
        if !net.on {
            net.on = true;
            net.inc = cfg.incarnation.max(1);
            net.next_hello = now;
            net.next_heartbeat = now.add_nanos(HEARTBEAT_INTERVAL_NS);
        }
    }

    /// Leave the cluster cleanly (a process that shuts down): every remote import of this
    /// node's segments is disconnected at once — the importers' next calls on them fail with
    /// `RSMERR_CONN_ABORTED`, as after an unpublish (spec §6.4) — instead of after the peers'
    /// unreachability time; connect requests are refused (`RSMERR_SEG_NOT_PUBLISHED`) from
    /// now on. Drive the engine until [`Rsm::net_quiet`] (or a time limit) before stopping,
    /// so the notices are delivered. Imports this node holds of other nodes' segments are
    /// left to the application (disconnect them first to tell their exporters).
    pub fn net_leave(&self) {
        let mut st = self.state.lock();
        st.remote.leaving = true;
        st.net.poke_all();
        self.platform.kick();
    }

    /// `true` when nothing is left to tell any peer: no remote importer record is waiting
    /// for its disconnect notice, no import the application disconnected is waiting to tell
    /// its exporter, and no message is unacknowledged.
    pub fn net_quiet(&self) -> bool {
        let st = self.state.lock();
        let notices = st.remote.leaving && !st.remote.importers.is_empty();
        // Imports the application disconnected whose exporter is not told yet.
        let closing = st.imports.iter().any(|(_, _, im)| {
            im.remote
                .is_some_and(|r| r.state == crate::proto::RemoteState::Closing)
        });
        !notices
            && !closing
            && st
                .net
                .peers
                .iter()
                .all(|p| p.inflight.is_empty() && p.ctrl.is_empty())
    }

    /// This node's incarnation (0 before [`Rsm::net_start`]).
    pub fn net_incarnation(&self) -> u64 {
        self.state.lock().net.inc
    }

    /// The engine's counters.
    pub fn net_stats(&self) -> NetStats {
        self.state.lock().net.stats
    }

    /// The peers heard from (with a known incarnation) and not declared unreachable.
    pub fn net_peers(&self) -> heapless::Vec<NodeId, MAX_PEERS> {
        let st = self.state.lock();
        let mut v: heapless::Vec<NodeId, MAX_PEERS> = st
            .net
            .peers
            .iter()
            .filter(|p| p.inc != 0 && !p.unreachable)
            .map(|p| p.node)
            .collect();
        v.sort_unstable();
        v
    }

    /// Process one received frame at `now`. Never fails and never panics: malformed, stale,
    /// spoofed, out-of-window or unauthorised frames are dropped and counted in
    /// [`Rsm::net_stats`]. Call [`Rsm::poll_transmit`] afterwards.
    ///
    /// A put's bytes are written into the exported memory, and a get answer's into the
    /// importer's local memory, after the table lock is released (the export is held busy,
    /// the local memory kept alive by a region clone; the getv completes after the write), so
    /// no memory copy runs under the node's spin lock — except for frames that waited in the
    /// reorder buffer, applied in order right after the one that filled the gap. Calls are
    /// serialised (frames apply in order). `tests/tests/off_lock_copies.rs` checks it.
    pub fn handle_frame(&self, now: Instant, frame: &[u8]) {
        let _one_at_a_time = self.rx_lock.lock();
        let (wake, write) = {
            let mut st = self.state.lock();
            if !st.net.on {
                return;
            }
            st.net.stats.frames_received += 1;
            st.net.clock = st.net.clock.max(now);
            self.rx_frame(&mut st, now, frame);
            (
                core::mem::take(&mut st.remote.wake),
                (st.rx_write.take(), st.rx_import.take()),
            )
        };
        // (One frame carries one message: at most one of the two is set.)
        let mut wake = wake;
        if let Some(w) = write.0 {
            let r = self.write_rx(&w, frame);
            let mut st = self.state.lock();
            self.finish_rx_write(&mut st, w, r);
            wake |= core::mem::take(&mut st.remote.wake);
        }
        if let Some(w) = write.1 {
            let r = self.write_import(&w, frame);
            let mut st = self.state.lock();
            self.finish_import_write(&mut st, &w, r);
            wake |= core::mem::take(&mut st.remote.wake);
        }
        self.wake_if(wake);
    }

    /// The next frame to send at `now`, written into `buf`: `Ok(Some(len))`, or `Ok(None)`
    /// when there is nothing to send until new input or [`Rsm::poll_timeout`] (also while
    /// the engine is stopped). Runs the timers first. A put fragment's bytes (importer) and a
    /// get answer's (exporter) are read from memory into `buf` after the table lock is
    /// released, then the frame is sealed.
    ///
    /// # Errors
    /// `RSMERR_BAD_LENGTH` if `buf` is shorter than the node's frame size (the
    /// [`NetConfig::max_frame`] in use, at most the node's `F`); nothing is consumed then, so
    /// a call with a large enough buffer sends the same frame.
    pub fn poll_transmit(&self, now: Instant, buf: &mut [u8]) -> RsmResult<Option<usize>> {
        let (n, wake, read) = {
            let mut st = self.state.lock();
            if !st.net.on {
                return Ok(None);
            }
            if buf.len() < st.net.max_frame {
                return Err(crate::RsmError::BadLength);
            }
            st.net.clock = st.net.clock.max(now);
            self.timers(&mut st, now);
            let n = self.tx_next(&mut st, now, buf);
            if n.is_some() {
                st.net.stats.frames_sent += 1;
            }
            (n, core::mem::take(&mut st.remote.wake), st.tx_read.take())
        };
        // A get answer's or put fragment's bytes are read here, outside the lock.
        let (n, wake) = match read {
            Some(t) => {
                let frame = n.and_then(|len| buf.get_mut(..len));
                let (len, failed) = match t.hold {
                    TxHold::Export(_) => (frame.map_or(0, |f| self.read_tx(&t, f)), false),
                    TxHold::Op(_) => frame.map_or((0, false), |f| self.read_put(&t, f)),
                };
                let mut st = self.state.lock();
                match t.hold {
                    TxHold::Export(ex) => st.release_export(ex),
                    TxHold::Op(op) if failed => {
                        // Cannot happen for a validated vector: fail the operation (the
                        // frame went out with zeroes, which the exporter acknowledges to a
                        // failed operation).
                        self.finish_op(&mut st, op, Err(crate::RsmError::BadAddr));
                    }
                    TxHold::Op(_) => {}
                }
                (
                    (len > 0).then_some(len),
                    wake | core::mem::take(&mut st.remote.wake),
                )
            }
            None => (n, wake),
        };
        self.wake_if(wake);
        Ok(n)
    }

    /// When [`Rsm::poll_transmit`] must be called next at the latest (retransmission,
    /// unreachability and connect timers, the next hello or heartbeat); `None` if the engine is stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let st = self.state.lock();
        if !st.net.on {
            return None;
        }
        let mut t = st.net.next_deadline();
        for (_, _, op) in st.ops.iter() {
            if let crate::op::OpSlot::Connect(c) = op {
                t = t.min(c.started.add_nanos(UNREACHABLE_AFTER_NS));
            }
        }
        Some(t)
    }

    /// One round of driving over `link` at `now`: hand every received frame to
    /// [`Rsm::handle_frame`], then transmit everything [`Rsm::poll_transmit`] yields. Returns
    /// whether any frame moved. A frame the link refuses to send is dropped (the channel
    /// retransmits it).
    pub fn drive<K: Link + ?Sized>(&self, link: &mut K, now: Instant) -> bool {
        match self.scratch.try_lock() {
            Some(mut buf) => self.drive_through(link, now, &mut buf[..]),
            None => self.drive_through(link, now, &mut [0u8; F]),
        }
    }

    fn drive_through<K: Link + ?Sized>(&self, link: &mut K, now: Instant, buf: &mut [u8]) -> bool {
        let mut moved = false;
        let mut since_tx = 0;
        while let Ok(Some(n)) = link.receive(buf) {
            moved = true;
            if let Some(frame) = buf.get(..n) {
                self.handle_frame(now, frame);
            }
            // A long burst of arrivals: answer (acknowledge) part-way, so that the sender
            // can refill its window while this node works through the rest.
            since_tx += 1;
            if since_tx == ACK_EVERY {
                since_tx = 0;
                if self.transmit_all(link, now, buf) {
                    link.kick();
                }
            }
        }
        moved |= self.transmit_all(link, now, buf);
        if moved {
            // What was sent, and the receive buffers given back (links that batch).
            link.kick();
        }
        moved
    }

    /// Transmit every frame due; `true` if anything was sent.
    fn transmit_all<K: Link + ?Sized>(&self, link: &mut K, now: Instant, buf: &mut [u8]) -> bool {
        let mut sent = false;
        while let Ok(Some(n)) = self.poll_transmit(now, buf) {
            if let Some(frame) = buf.get(..n) {
                let _ = link.transmit(frame);
                sent = true;
            }
        }
        sent
    }

    /// Give the node a link to drive itself: from now on [`Rsm::service`] and every blocking
    /// call, while it waits, move this link's frames and run the engine's timers — so a
    /// single-threaded target (a unikernel on one core, a firmware main loop) makes progress
    /// with no driver thread (DESIGN §3: waiting means polling the engine). Returns the link
    /// attached before, if any.
    ///
    /// Without an attached link the node is driven from outside, by [`Rsm::drive`] (or
    /// [`Rsm::handle_frame`] and [`Rsm::poll_transmit`]) on a driver thread — the host's mode.
    /// Both can be combined: whoever waits drives the attached link, one caller at a time.
    ///
    /// The link is `'static` because the node keeps it: on a unikernel it is a `static`; a
    /// test can leak a `Box`.
    pub fn attach_link(
        &self,
        link: &'static mut (dyn rsm_hal::AnyLink + Send),
    ) -> Option<&'static mut (dyn rsm_hal::AnyLink + Send)> {
        self.link.lock().replace(link)
    }

    /// Take the attached link back ([`Rsm::attach_link`]).
    pub fn detach_link(&self) -> Option<&'static mut (dyn rsm_hal::AnyLink + Send)> {
        self.link.lock().take()
    }

    /// One turn of a firmware main loop: drive the attached link at `now` (receive every
    /// frame, transmit everything due, run the timers) and return when `service` must run
    /// again at the latest (the next retransmission, heartbeat, hello or connect timeout);
    /// sooner if a frame arrives. `None` when no link is attached or the engine is stopped.
    /// If another caller is driving the link right now, this one only reports the deadline.
    ///
    /// ```
    /// use rsm_core::{proto::NetConfig, Config, Rsm};
    /// use rsm_hal::{fake::FakePlatform, netsim::{FaultConfig, Network}, Link};
    ///
    /// let net = Network::new(1, FaultConfig::default());
    /// let node: Rsm<FakePlatform> = Rsm::new(FakePlatform::new(), Config::default());
    /// let link = Box::leak(Box::new(net.port(rsm_core::node_mac(0))));
    /// node.net_start(net.now(), NetConfig { incarnation: 1, max_frame: link.max_frame() });
    /// node.attach_link(link);
    /// // The main loop: service, then sleep until the deadline or the next frame.
    /// let next = node.service(net.now()).expect("a link is attached");
    /// assert!(next > net.now());
    /// assert_eq!(node.net_stats().frames_sent, 1, "the first hello went out");
    /// ```
    pub fn service(&self, now: Instant) -> Option<Instant> {
        {
            let Some(mut guard) = self.link.try_lock() else {
                return self.poll_timeout();
            };
            let link = guard.as_deref_mut()?;
            // Bounded: a link that never runs dry cannot keep the caller here for ever.
            for _ in 0..SERVICE_ROUNDS {
                if !self.drive(link, now) {
                    break;
                }
            }
        }
        self.poll_timeout()
    }

    /// Take the result of a connect started with [`Rsm::start_import_connect`]: `None` while
    /// it runs or for an unknown id (a second call returns `None`).
    pub fn take_connect(&self, op: crate::OpId) -> Option<RsmResult<ImportHandle>> {
        let (i, g) = self.parts(op.raw(), crate::handle::Kind::Op)?;
        let mut st = self.state.lock();
        match st.ops.get(i, g)? {
            crate::op::OpSlot::Connected(_) => match st.ops.remove(i, g)? {
                crate::op::OpSlot::Connected(r) => Some(r),
                _ => None,
            },
            _ => None,
        }
    }
}
