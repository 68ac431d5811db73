//! The rsm-rs header that follows the Ethernet header: a zero-copy [`Header`] view and its
//! high-level [`HeaderRepr`]. The byte layout is documented in the [module docs](super).

use super::{MessageType, WireError, MAX_NODE, NODE_BROADCAST, WIRE_VERSION};
use rsm_hal::{Checksum, SoftChecksum};

/// Length of the rsm-rs header in bytes.
pub const HEADER_LEN: usize = 36;

/// Header flag: the `ack` field is valid (piggy-backed acknowledgement).
pub const FLAG_ACK: u16 = 0x0001;
/// Header flag: this frame is a retransmission of an earlier one with the same `seq`.
pub const FLAG_RETRANSMIT: u16 = 0x0002;
/// Header flag: the sender of the frame is missing the frame numbered `ack` (it received
/// later ones): resend that one now rather than after a timeout.
pub const FLAG_NAK: u16 = 0x0004;
/// Every flag bit defined by [`WIRE_VERSION`]; any other bit set is [`WireError::BadField`].
pub const FLAGS_KNOWN: u16 = FLAG_ACK | FLAG_RETRANSMIT | FLAG_NAK;

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const TYPE: usize = 1;
    pub const FLAGS: Range<usize> = 2..4;
    pub const SRC: usize = 4;
    pub const DST: usize = 5;
    pub const LEN: Range<usize> = 6..8;
    pub const INCARNATION: Range<usize> = 8..16;
    pub const PEER_INCARNATION: Range<usize> = 16..24;
    pub const SEQ: Range<usize> = 24..28;
    pub const ACK: Range<usize> = 28..32;
    pub const CRC: Range<usize> = 32..36;
}

/// CRC-32C (by `c`, the platform's [`Checksum`] hook) over `header` (the first
/// [`HEADER_LEN`] bytes, with the checksum field taken as zero) followed by `payload`.
/// `header` must be at least [`HEADER_LEN`] bytes.
fn compute_crc<C: Checksum + ?Sized>(c: &C, header: &[u8], payload: &[u8]) -> u32 {
    let mut h = [0u8; HEADER_LEN];
    h[..field::CRC.start].copy_from_slice(&header[..field::CRC.start]);
    c.crc32c_append(c.crc32c_append(0, &h), payload)
}

/// The bare CRC-32C (as used by the header checksum) over `bytes`, in software; exposed for
/// benchmarks and tests.
#[must_use]
pub fn crc32c(bytes: &[u8]) -> u32 {
    SoftChecksum.crc32c_append(0, bytes)
}

/// A read/write wrapper around the rsm-rs header and the message body that follows it (the
/// Ethernet payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer. Use
    /// [`Header::new_checked`] for untrusted input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks it with [`Header::check_len`].
    ///
    /// # Errors
    /// As [`Header::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks that the buffer holds the whole header and the `payload_len` bytes of payload it
    /// announces. Bytes after the payload (Ethernet padding) are allowed here; see
    /// [`super::Frame::parse`] for the stricter whole-frame rule.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if the buffer is shorter than the header or than the header
    /// plus its announced payload.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if len - HEADER_LEN < usize::from(self.payload_len()) {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Protocol version (must be [`WIRE_VERSION`]).
    pub fn version(&self) -> u8 {
        self.b()[field::VERSION]
    }

    /// Raw message type (see [`MessageType`]).
    pub fn msg_type(&self) -> u8 {
        self.b()[field::TYPE]
    }

    /// Flag bits ([`FLAG_ACK`], [`FLAG_RETRANSMIT`], [`FLAG_NAK`]).
    pub fn flags(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[field::FLAGS.start], b[field::FLAGS.start + 1]])
    }

    /// Source node id.
    pub fn src_node(&self) -> u8 {
        self.b()[field::SRC]
    }

    /// Destination node id, or [`NODE_BROADCAST`].
    pub fn dst_node(&self) -> u8 {
        self.b()[field::DST]
    }

    /// Length of the message body after the header.
    pub fn payload_len(&self) -> u16 {
        let b = self.b();
        u16::from_be_bytes([b[field::LEN.start], b[field::LEN.start + 1]])
    }

    /// The sender's per-boot incarnation number.
    pub fn incarnation(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b()[field::INCARNATION]);
        u64::from_be_bytes(a)
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.b()[r]);
        u32::from_be_bytes(a)
    }

    /// The incarnation the sender believes the destination has (0 = not known yet; only a
    /// hello may carry 0). The engine drops frames meant for an earlier incarnation of itself.
    pub fn peer_incarnation(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b()[field::PEER_INCARNATION]);
        u64::from_be_bytes(a)
    }

    /// Sequence number of this frame on the sender → receiver path.
    pub fn seq(&self) -> u32 {
        self.u32_at(field::SEQ)
    }

    /// Acknowledgement number (valid when [`FLAG_ACK`] is set).
    pub fn ack(&self) -> u32 {
        self.u32_at(field::ACK)
    }

    /// The checksum field as stored.
    pub fn checksum(&self) -> u32 {
        self.u32_at(field::CRC)
    }

    /// The message body: the `payload_len` bytes after the header.
    ///
    /// # Panics
    /// If the buffer is shorter than announced (not after [`Header::new_checked`]).
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// Whether the checksum field matches the CRC-32C of header (checksum zeroed) and body
    /// (software CRC; [`Header::verify_checksum_with`] takes the platform's).
    pub fn verify_checksum(&self) -> bool {
        self.verify_checksum_with(&SoftChecksum)
    }

    /// [`Header::verify_checksum`] with the CRC-32C of `c`.
    pub fn verify_checksum_with<C: Checksum + ?Sized>(&self, c: &C) -> bool {
        compute_crc(c, self.b(), self.payload()) == self.checksum()
    }
}

impl<'a> Header<&'a [u8]> {
    /// The message body with the lifetime of the underlying buffer (zero-copy parsing).
    pub fn payload_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer;
        &b[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        self.bm()[field::VERSION] = v;
    }

    /// Sets the raw message type.
    pub fn set_msg_type(&mut self, t: u8) {
        self.bm()[field::TYPE] = t;
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, f: u16) {
        self.bm()[field::FLAGS].copy_from_slice(&f.to_be_bytes());
    }

    /// Sets the source node id.
    pub fn set_src_node(&mut self, n: u8) {
        self.bm()[field::SRC] = n;
    }

    /// Sets the destination node id.
    pub fn set_dst_node(&mut self, n: u8) {
        self.bm()[field::DST] = n;
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, l: u16) {
        self.bm()[field::LEN].copy_from_slice(&l.to_be_bytes());
    }

    /// Sets the incarnation.
    pub fn set_incarnation(&mut self, i: u64) {
        self.bm()[field::INCARNATION].copy_from_slice(&i.to_be_bytes());
    }

    /// Sets the destination's incarnation as the sender knows it.
    pub fn set_peer_incarnation(&mut self, i: u64) {
        self.bm()[field::PEER_INCARNATION].copy_from_slice(&i.to_be_bytes());
    }

    /// Sets the sequence number.
    pub fn set_seq(&mut self, s: u32) {
        self.bm()[field::SEQ].copy_from_slice(&s.to_be_bytes());
    }

    /// Sets the acknowledgement number.
    pub fn set_ack(&mut self, a: u32) {
        self.bm()[field::ACK].copy_from_slice(&a.to_be_bytes());
    }

    /// Sets the checksum field to a raw value.
    pub fn set_checksum(&mut self, c: u32) {
        self.bm()[field::CRC].copy_from_slice(&c.to_be_bytes());
    }

    /// Mutable access to the message body (`payload_len` bytes after the header).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.payload_len());
        &mut self.bm()[HEADER_LEN..HEADER_LEN + len]
    }

    /// Computes the checksum over the header and body and stores it. Call last. (Software
    /// CRC; [`Header::fill_checksum_with`] takes the platform's.)
    pub fn fill_checksum(&mut self) {
        self.fill_checksum_with(&SoftChecksum);
    }

    /// [`Header::fill_checksum`] with the CRC-32C of `c`.
    pub fn fill_checksum_with<C: Checksum + ?Sized>(&mut self, c: &C) {
        let sum = compute_crc(c, self.b(), self.payload());
        self.set_checksum(sum);
    }
}

/// The high-level header: everything but the version (always [`WIRE_VERSION`]), the message
/// type (implied by the [`super::Message`]), the payload length (implied by the message) and
/// the checksum (computed by emit, verified by parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// Flag bits, a subset of [`FLAGS_KNOWN`].
    pub flags: u16,
    /// Source node id, `0..=63`.
    pub src_node: u8,
    /// Destination node id, `0..=63`, or [`NODE_BROADCAST`].
    pub dst_node: u8,
    /// The sender's per-boot incarnation (stale incarnations are dropped by the engine).
    pub incarnation: u64,
    /// The destination's incarnation as the sender knows it (0 = unknown, hello only).
    pub peer_incarnation: u64,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with [`FLAG_ACK`]).
    pub ack: u32,
}

impl HeaderRepr {
    /// Parses and validates a header view: version, length, checksum, message type, flags
    /// and node ids, in that order. Returns the repr and the message type.
    ///
    /// # Errors
    /// [`WireError::Truncated`], [`WireError::BadVersion`], [`WireError::BadChecksum`],
    /// [`WireError::UnknownType`] or [`WireError::BadField`].
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<(Self, MessageType), WireError> {
        Self::parse_with(h, &SoftChecksum)
    }

    /// [`HeaderRepr::parse`] with the CRC-32C of `c`.
    ///
    /// # Errors
    /// As [`HeaderRepr::parse`].
    pub fn parse_with<T: AsRef<[u8]>, C: Checksum + ?Sized>(
        h: &Header<T>,
        c: &C,
    ) -> Result<(Self, MessageType), WireError> {
        h.check_len()?;
        if h.version() != WIRE_VERSION {
            return Err(WireError::BadVersion);
        }
        if !h.verify_checksum_with(c) {
            return Err(WireError::BadChecksum);
        }
        let ty = MessageType::from_u8(h.msg_type()).ok_or(WireError::UnknownType)?;
        let flags = h.flags();
        if flags & !FLAGS_KNOWN != 0 {
            return Err(WireError::BadField);
        }
        let (src, dst) = (h.src_node(), h.dst_node());
        if src > MAX_NODE || (dst > MAX_NODE && dst != NODE_BROADCAST) {
            return Err(WireError::BadField);
        }
        Ok((
            Self {
                flags,
                src_node: src,
                dst_node: dst,
                incarnation: h.incarnation(),
                peer_incarnation: h.peer_incarnation(),
                seq: h.seq(),
                ack: h.ack(),
            },
            ty,
        ))
    }

    /// Writes every header field except the checksum (call [`Header::fill_checksum`] after
    /// the body is written).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        h: &mut Header<T>,
        ty: MessageType,
        payload_len: u16,
    ) {
        h.set_version(WIRE_VERSION);
        h.set_msg_type(ty as u8);
        h.set_flags(self.flags);
        h.set_src_node(self.src_node);
        h.set_dst_node(self.dst_node);
        h.set_payload_len(payload_len);
        h.set_incarnation(self.incarnation);
        h.set_peer_incarnation(self.peer_incarnation);
        h.set_seq(self.seq);
        h.set_ack(self.ack);
        h.set_checksum(0);
    }

    /// Checks the fields a sender controls (flags, node ids) before emitting.
    ///
    /// # Errors
    /// [`WireError::BadField`].
    pub fn validate(&self) -> Result<(), WireError> {
        if self.flags & !FLAGS_KNOWN != 0
            || self.src_node > MAX_NODE
            || (self.dst_node > MAX_NODE && self.dst_node != NODE_BROADCAST)
        {
            return Err(WireError::BadField);
        }
        Ok(())
    }
}
