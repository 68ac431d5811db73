//! Zero-copy view of a raw Ethernet II frame (no FCS, no VLAN tag).

use super::WireError;
use crate::types::NodeId;

/// Length of the Ethernet II header: destination MAC, source MAC, EtherType.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// The EtherType of every rsm-rs frame: 0x88B5, IEEE 802 "local experimental" (DESIGN §4).
pub const ETHERTYPE_RSM: u16 = 0x88B5;

/// The Ethernet broadcast address, used for hello frames to [`super::NODE_BROADCAST`].
pub const MAC_BROADCAST: [u8; 6] = [0xff; 6];

/// Smallest Ethernet frame without FCS (60 bytes); shorter frames are padded with zeros by
/// [`super::Frame::emit`], and [`super::Frame::parse`] accepts such padding.
pub const ETHERNET_MIN_FRAME: usize = 60;

/// A node's MAC address: locally administered, derived from its id, `52:54:00:52:53:<id>`
/// (DESIGN §4a). Node ids are 0..=63, so the id fits the last byte; only its low 8 bits are
/// used. (It lives with the wire format; `crate::topology` re-exports it.)
#[must_use]
pub const fn node_mac(node: NodeId) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x52, 0x53, node as u8]
}

/// The node id a MAC address of the form `52:54:00:52:53:<id>` belongs to, if it has that form
/// and `id` is a valid node id (`< 64`).
#[must_use]
pub fn mac_node(mac: [u8; 6]) -> Option<NodeId> {
    match mac {
        [0x52, 0x54, 0x00, 0x52, 0x53, id] if u32::from(id) < crate::types::MAX_NODES => {
            Some(NodeId::from(id))
        }
        _ => None,
    }
}

/// A read/write wrapper around a buffer holding an Ethernet II frame.
///
/// | offset | size | field       |
/// |--------|------|-------------|
/// | 0      | 6    | destination |
/// | 6      | 6    | source      |
/// | 12     | 2    | EtherType   |
/// | 14     | …    | payload     |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length; accessors may panic on a short buffer.
    /// Use [`EthernetFrame::new_checked`] for untrusted input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer, checking that it holds at least the 14-byte header.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than [`ETHERNET_HEADER_LEN`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the buffer holds at least the Ethernet header.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if it does not.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < ETHERNET_HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn mac_at(&self, at: usize) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[at..at + 6]);
        m
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> [u8; 6] {
        self.mac_at(0)
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> [u8; 6] {
        self.mac_at(6)
    }

    /// EtherType (big-endian on the wire).
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[12], b[13]])
    }

    /// Everything after the Ethernet header (including any padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[ETHERNET_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[12..14].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// Mutable access to everything after the Ethernet header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[ETHERNET_HEADER_LEN..]
    }
}
