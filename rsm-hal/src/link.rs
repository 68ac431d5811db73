//! The link: sending and receiving raw Ethernet frames (DESIGN §3).
//!
//! A [`Link`] is one network interface of a node: it has its own MAC address, a largest frame
//! it can carry, and two non-blocking operations, [`Link::transmit`] and [`Link::receive`].
//! Frames are whole Ethernet frames — destination MAC, source MAC, EtherType, payload — without
//! preamble or FCS; `rsm-core`'s wire module builds and parses them.
//!
//! Implementations: the host backend (a UDP or raw-socket link), the unikernel image
//! (virtio-net) and, with the `fake` feature, the simulated network in
//! `rsm_hal::netsim`.

use crate::Error;

/// One Ethernet interface of a node.
///
/// ## Contract
/// * Both operations are **non-blocking**. The protocol engine polls [`Link::receive`] until it
///   returns `Ok(None)`; a caller that has nothing to do sleeps in [`Wait`](crate::Wait). An
///   interrupt-driven target (virtio-net) calls [`Wait::wake`](crate::Wait::wake) from its
///   receive interrupt so that the sleeper polls again; a host backend wakes from its receive
///   thread or readiness notification.
/// * The engine holds the link behind its own lock (one poller at a time, DESIGN §3), so the
///   methods take `&mut self` and an implementation needs no internal locking of its own
///   against concurrent calls. No `rsm-core` table lock is held across a link call.
/// * Delivery is best effort: frames may be lost, duplicated, reordered or corrupted; the
///   engine's sequence numbers, acknowledgements and CRC cope with that.
/// * Errors tell their [`ErrorKind`](crate::ErrorKind): a frame that does not fit (either way)
///   is [`ErrorKind::OutOfRange`](crate::ErrorKind::OutOfRange).
pub trait Link {
    /// The error type of `transmit` and `receive`.
    type Error: Error;

    /// This interface's own MAC address (DESIGN §4a: `52:54:00:52:53:<node id>`).
    fn mac(&self) -> [u8; 6];

    /// The largest frame, in bytes from the destination MAC to the end of the payload (no FCS),
    /// that [`Link::transmit`] accepts and [`Link::receive`] can return (1514 for a standard
    /// Ethernet MTU of 1500). The engine announces it in its hello and fragments to the
    /// per-peer minimum.
    fn max_frame(&self) -> usize;

    /// Queue `frame` for transmission and return without waiting for it to leave.
    ///
    /// `frame` starts with the destination MAC; the link does not rewrite it. A frame longer
    /// than [`Link::max_frame`] is refused with an error of kind
    /// [`ErrorKind::OutOfRange`](crate::ErrorKind::OutOfRange) and nothing is sent. `Ok(())`
    /// does not mean the frame will arrive; a full transmit queue may drop it (and count it).
    fn transmit(&mut self, frame: &[u8]) -> Result<(), Self::Error>;

    /// Take the next received frame, if any, into `buf`, and return its length.
    ///
    /// Returns `Ok(None)` at once when no frame is pending (never blocks). A pending frame
    /// longer than `buf` is consumed and discarded — it is not truncated and not kept for a
    /// retry — and reported as an error of kind
    /// [`ErrorKind::OutOfRange`](crate::ErrorKind::OutOfRange) (or, by implementations that
    /// cannot report it, only counted); the next call returns the next frame. A `buf` of
    /// [`Link::max_frame`] bytes always suffices.
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;

    /// Tell the device about everything queued since the last kick — frames
    /// [`Link::transmit`] queued, receive buffers [`Link::receive`] gave back — for links that
    /// batch their notifications (one virtio notify per burst rather than per frame).
    /// Whoever transmits or receives a burst calls it once after the burst
    /// (`rsm_core::Rsm::drive` does). The default does nothing: links that send each frame
    /// at once.
    fn kick(&mut self) {}
}

/// A [`Link`] as a trait object: errors become their [`ErrorKind`](crate::ErrorKind), so a
/// node can keep a link of any type without a type parameter (`rsm_core::Rsm::attach_link`).
/// Every [`Link`] is one; `dyn AnyLink + Send` is a [`Link`] again.
pub trait AnyLink {
    /// [`Link::mac`].
    fn any_mac(&self) -> [u8; 6];
    /// [`Link::max_frame`].
    fn any_max_frame(&self) -> usize;
    /// [`Link::transmit`].
    fn any_transmit(&mut self, frame: &[u8]) -> Result<(), crate::ErrorKind>;
    /// [`Link::receive`].
    fn any_receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, crate::ErrorKind>;
    /// [`Link::kick`].
    fn any_kick(&mut self);
}

impl<T: Link> AnyLink for T {
    fn any_mac(&self) -> [u8; 6] {
        self.mac()
    }
    fn any_max_frame(&self) -> usize {
        self.max_frame()
    }
    fn any_transmit(&mut self, frame: &[u8]) -> Result<(), crate::ErrorKind> {
        self.transmit(frame).map_err(|e| e.kind())
    }
    fn any_receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, crate::ErrorKind> {
        self.receive(buf).map_err(|e| e.kind())
    }
    fn any_kick(&mut self) {
        self.kick();
    }
}

impl Link for dyn AnyLink + Send + '_ {
    type Error = crate::ErrorKind;
    fn mac(&self) -> [u8; 6] {
        self.any_mac()
    }
    fn max_frame(&self) -> usize {
        self.any_max_frame()
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), Self::Error> {
        self.any_transmit(frame)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        self.any_receive(buf)
    }
    fn kick(&mut self) {
        self.any_kick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that only counts kicks.
    struct Kicked(u32);

    impl Link for Kicked {
        type Error = crate::ErrorKind;
        fn mac(&self) -> [u8; 6] {
            [0; 6]
        }
        fn max_frame(&self) -> usize {
            1514
        }
        fn transmit(&mut self, _frame: &[u8]) -> Result<(), Self::Error> {
            Ok(())
        }
        fn receive(&mut self, _buf: &mut [u8]) -> Result<Option<usize>, Self::Error> {
            Ok(None)
        }
        fn kick(&mut self) {
            self.0 += 1;
        }
    }

    #[test]
    fn a_kick_reaches_the_link_through_the_trait_object() {
        let mut k = Kicked(0);
        {
            let any: &mut (dyn AnyLink + Send) = &mut k;
            any.kick();
            Link::kick(any);
        }
        assert_eq!(k.0, 2);
    }
}
