//! # The rsm-rs wire format
//!
//! `no_std`, heap-free and zero-copy, in the style of smoltcp: [`EthernetFrame`] and
//! [`Header`] are views over raw bytes with field accessors and `new_checked`; [`HeaderRepr`]
//! and the [`Message`] structs are the high-level representations with `parse`, `emit` and
//! `buffer_len`; [`Frame`] puts them together for a whole Ethernet frame. Every byte from the
//! wire is untrusted: parsing never panics and rejects malformed input with a typed
//! [`WireError`].
//!
//! ```
//! use rsm_core::wire::{self, Frame, HeaderRepr, Message, PutData, WireError};
//!
//! let header = HeaderRepr { flags: 0, src_node: 1, dst_node: 2, incarnation: 7,
//!     peer_incarnation: 9, seq: 1, ack: 0 };
//! let data = [0xab; 100];
//! let message = Message::PutData(PutData {
//!     import_id: 1, segment_id: 0x1000, op_id: 1, entry: 0,
//!     remote_offset: 0, frag_offset: 0, total_len: 100, data: &data,
//! });
//! let mut buf = [0u8; 1514];
//! let n = Frame { header, message }.emit(&mut buf)?;
//! let (h, m) = wire::parse(&buf[..n])?;
//! assert_eq!((h, m), (header, message));
//! // Any corruption is a typed error.
//! buf[60] ^= 1;
//! assert_eq!(wire::parse(&buf[..n]), Err(WireError::BadChecksum));
//! # Ok::<(), WireError>(())
//! ```
//!
//! ## Frame layout (all integers big-endian)
//!
//! | offset | size | field          | notes                                                     |
//! |--------|------|----------------|-----------------------------------------------------------|
//! | 0      | 6    | dst MAC        | `52:54:00:52:53:<dst>` or broadcast (DESIGN §4a)          |
//! | 6      | 6    | src MAC        | `52:54:00:52:53:<src>`                                    |
//! | 12     | 2    | EtherType      | [`ETHERTYPE_RSM`] = `0x88B5`                              |
//! | 14     | 1    | version        | [`WIRE_VERSION`]                                          |
//! | 15     | 1    | message type   | [`MessageType`]                                           |
//! | 16     | 2    | flags          | [`FLAG_ACK`], [`FLAG_RETRANSMIT`], [`FLAG_NAK`]; others   |
//! |        |      |                | rejected                                                  |
//! | 18     | 1    | src node       | `0..=63`                                                  |
//! | 19     | 1    | dst node       | `0..=63` or [`NODE_BROADCAST`]                            |
//! | 20     | 2    | payload length | bytes of message body after the header                    |
//! | 22     | 8    | incarnation    | sender's per-boot incarnation                             |
//! | 30     | 8    | peer incarn.   | destination's incarnation as the sender knows it (0 = not |
//! |        |      |                | known yet: hello only); stale ones are dropped            |
//! | 38     | 4    | seq            | sequence number                                           |
//! | 42     | 4    | ack            | acknowledgement number (with [`FLAG_ACK`])                |
//! | 46     | 4    | CRC-32C        | over header (this field as zero) + body                   |
//! | 50     | n    | body           | per [`MessageType`], see the structs in [`Message`]       |
//!
//! Offsets inside the rsm-rs header ([`Header`]) are the frame offsets minus 14. A frame
//! shorter than [`ETHERNET_MIN_FRAME`] (60 bytes) is zero-padded by [`Frame::emit`]; on parse,
//! bytes after the body are accepted only as such padding (frame length ≤ 60), otherwise the
//! frame is [`WireError::BadLength`].
//!
//! ## Validation order of [`Frame::parse`]
//! 1. at least 14 bytes, else [`WireError::Truncated`]; EtherType, else
//!    [`WireError::BadEtherType`];
//! 2. at least 50 bytes, else `Truncated`; version, else [`WireError::BadVersion`] (checked
//!    before the CRC so that a future version with another layout is recognised, spec §6.6);
//! 3. the announced body fits the frame, else `Truncated`; no trailing bytes beyond
//!    padding, else `BadLength`;
//! 4. the CRC, else [`WireError::BadChecksum`];
//! 5. message type, else [`WireError::UnknownType`]; flags and node ids, else
//!    [`WireError::BadField`];
//! 6. the body: exact length for its type, else `BadLength`; field ranges, else `BadField`.
//!
//! ## Fragmentation
//! Put and get data larger than one frame are cut by [`Fragments`] to the per-peer frame
//! size (the minimum of both nodes' [`Hello::max_frame`]) and put back together, in order,
//! by [`Reassembly`].

mod ethernet;
mod header;
mod message;

pub use ethernet::{
    mac_node, node_mac, EthernetFrame, ETHERNET_HEADER_LEN, ETHERNET_MIN_FRAME, ETHERTYPE_RSM,
    MAC_BROADCAST,
};
pub use header::{
    crc32c, Header, HeaderRepr, FLAGS_KNOWN, FLAG_ACK, FLAG_NAK, FLAG_RETRANSMIT, HEADER_LEN,
};
pub use message::{
    Ack, Bell, ConnectReply, ConnectRequest, Disconnect, GetData, GetRequest, Hello, ImportNotice,
    Message, MessageType, PutData, Republish, BELL_ACK_ENTRY, BELL_FLAGS_KNOWN, BELL_NO_ACCUMULATE,
    BELL_TO_EXPORTER, GET_DATA_FIXED_LEN, MIN_MAX_FRAME, PERMISSION_MAX, PUT_DATA_FIXED_LEN,
};

use core::fmt;
use rsm_hal::{Checksum, SoftChecksum};

/// The wire protocol version carried in every header.
pub const WIRE_VERSION: u8 = 1;

/// The highest valid node id (DESIGN §4a: node ids are `0..=63`).
pub const MAX_NODE: u8 = 63;

/// Destination node id of a frame for every node (hello); sent to [`MAC_BROADCAST`].
pub const NODE_BROADCAST: u8 = 0xff;

/// Ethernet header plus rsm-rs header: the offset of the message body in a frame.
pub const FRAME_OVERHEAD: usize = ETHERNET_HEADER_LEN + HEADER_LEN;

/// Largest frame [`Frame::emit`] can produce (the payload length field is 16 bits).
pub const MAX_FRAME: usize = FRAME_OVERHEAD + u16::MAX as usize;

/// Why a frame was rejected, or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The frame ends before its headers or before the body its header announces.
    Truncated,
    /// The EtherType is not [`ETHERTYPE_RSM`].
    BadEtherType,
    /// The version is not [`WIRE_VERSION`].
    BadVersion,
    /// The message type is not a [`MessageType`].
    UnknownType,
    /// The body length does not fit its message type, or the frame has trailing bytes.
    BadLength,
    /// The CRC-32C does not match.
    BadChecksum,
    /// The output buffer is too small for the frame.
    BufferTooSmall,
    /// A field is out of range (node id ≥ 64, unknown flag, permission > 0o777, fragment
    /// beyond its total length, …).
    BadField,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "frame truncated",
            Self::BadEtherType => "not an rsm frame (wrong EtherType)",
            Self::BadVersion => "unsupported wire version",
            Self::UnknownType => "unknown message type",
            Self::BadLength => "bad length",
            Self::BadChecksum => "checksum mismatch",
            Self::BufferTooSmall => "buffer too small",
            Self::BadField => "field out of range",
        })
    }
}

/// A whole frame: header and message. Ethernet addresses are derived from the node ids
/// ([`node_mac`], or [`MAC_BROADCAST`] for [`NODE_BROADCAST`]); the engine checks the source
/// MAC against the node it learned (DESIGN §4a) using [`EthernetFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame<'a> {
    /// The header.
    pub header: HeaderRepr,
    /// The message, borrowing data from the frame.
    pub message: Message<'a>,
}

impl<'a> Frame<'a> {
    /// Parses and validates a raw Ethernet frame (see the [validation order](self)).
    ///
    /// # Errors
    /// Any [`WireError`] but `BufferTooSmall`.
    pub fn parse(frame: &'a [u8]) -> Result<Self, WireError> {
        Self::parse_with(frame, &SoftChecksum)
    }

    /// [`Frame::parse`] with the CRC-32C of `c` (the platform's [`Checksum`] hook).
    ///
    /// # Errors
    /// As [`Frame::parse`].
    pub fn parse_with<C: Checksum + ?Sized>(frame: &'a [u8], c: &C) -> Result<Self, WireError> {
        let eth = EthernetFrame::new_checked(frame)?;
        if eth.ethertype() != ETHERTYPE_RSM {
            return Err(WireError::BadEtherType);
        }
        let rest: &'a [u8] = frame
            .get(ETHERNET_HEADER_LEN..)
            .ok_or(WireError::Truncated)?;
        if rest.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let h = Header::new_unchecked(rest);
        if h.version() != WIRE_VERSION {
            return Err(WireError::BadVersion);
        }
        h.check_len()?;
        let used = FRAME_OVERHEAD + usize::from(h.payload_len());
        if frame.len() > used && frame.len() > ETHERNET_MIN_FRAME {
            return Err(WireError::BadLength);
        }
        let (header, ty) = HeaderRepr::parse_with(&h, c)?;
        let message = Message::parse(ty, h.payload_ref())?;
        if let Message::Hello(hello) = message {
            if hello.incarnation != header.incarnation {
                return Err(WireError::BadField);
            }
        }
        Ok(Self { header, message })
    }

    /// Bytes [`Frame::emit`] writes: headers plus body, at least [`ETHERNET_MIN_FRAME`].
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        let n = FRAME_OVERHEAD + self.message.buffer_len();
        if n < ETHERNET_MIN_FRAME {
            ETHERNET_MIN_FRAME
        } else {
            n
        }
    }

    /// Writes the frame into `buf` and returns its length ([`Frame::buffer_len`]).
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `buf` is shorter than [`Frame::buffer_len`];
    /// [`WireError::BadLength`] if the body exceeds 65535 bytes; [`WireError::BadField`] if
    /// a field would be rejected by [`Frame::parse`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_with(buf, &SoftChecksum)
    }

    /// [`Frame::emit`] with the CRC-32C of `c`.
    ///
    /// # Errors
    /// As [`Frame::emit`].
    pub fn emit_with<C: Checksum + ?Sized>(
        &self,
        buf: &mut [u8],
        c: &C,
    ) -> Result<usize, WireError> {
        let n = self.emit_unsealed(buf)?;
        seal_with(buf.get_mut(..n).ok_or(WireError::BufferTooSmall)?, c);
        Ok(n)
    }

    /// Like [`Frame::emit`] but without the checksum: for a sender that writes the data of
    /// a put/get data frame in place afterwards, then seals the frame with [`seal`] (one
    /// CRC pass per frame instead of two).
    ///
    /// # Errors
    /// As [`Frame::emit`].
    pub fn emit_unsealed(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_parts(buf, false)
    }

    /// [`Frame::emit_unsealed`] without the data bytes of a put/get data message
    /// ([`Message::emit_without_data`]): the caller writes them at
    /// [`FRAME_OVERHEAD`] + the message's fixed length, then seals the frame ([`seal_with`]).
    /// Until then those bytes are whatever `buf` held.
    ///
    /// # Errors
    /// As [`Frame::emit`].
    pub fn emit_without_data(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_parts(buf, true)
    }

    fn emit_parts(&self, buf: &mut [u8], skip_data: bool) -> Result<usize, WireError> {
        self.header.validate()?;
        self.message.validate()?;
        if let Message::Hello(h) = self.message {
            if h.incarnation != self.header.incarnation {
                return Err(WireError::BadField);
            }
        }
        let body_len = self.message.buffer_len();
        let payload_len = u16::try_from(body_len).map_err(|_| WireError::BadLength)?;
        let total = self.buffer_len();
        let out = buf.get_mut(..total).ok_or(WireError::BufferTooSmall)?;
        let mut eth = EthernetFrame::new_unchecked(&mut *out);
        let dst = if self.header.dst_node == NODE_BROADCAST {
            MAC_BROADCAST
        } else {
            node_mac(u32::from(self.header.dst_node))
        };
        eth.set_dst_addr(dst);
        eth.set_src_addr(node_mac(u32::from(self.header.src_node)));
        eth.set_ethertype(ETHERTYPE_RSM);
        let used = FRAME_OVERHEAD + body_len;
        let (head, pad) = out.split_at_mut(used);
        pad.fill(0);
        let mut h = Header::new_unchecked(&mut head[ETHERNET_HEADER_LEN..]);
        self.header
            .emit(&mut h, self.message.msg_type(), payload_len);
        if skip_data {
            self.message.emit_without_data(h.payload_mut())?;
        } else {
            self.message.emit(h.payload_mut())?;
        }
        Ok(total)
    }
}

/// Compute and store the checksum of a frame written by [`Frame::emit_unsealed`] (or
/// changed after [`Frame::emit`]). Does nothing to a buffer too short for its headers or
/// for the body its header announces.
pub fn seal(frame: &mut [u8]) {
    seal_with(frame, &SoftChecksum);
}

/// [`seal`] with the CRC-32C of `c`.
pub fn seal_with<C: Checksum + ?Sized>(frame: &mut [u8], c: &C) {
    if let Some(rest) = frame.get_mut(ETHERNET_HEADER_LEN..) {
        if let Ok(mut h) = Header::new_checked(rest) {
            h.fill_checksum_with(c);
        }
    }
}

/// Parses a raw Ethernet frame into its header and message (same as [`Frame::parse`]).
///
/// # Errors
/// As [`Frame::parse`].
pub fn parse(frame: &[u8]) -> Result<(HeaderRepr, Message<'_>), WireError> {
    Frame::parse(frame).map(|f| (f.header, f.message))
}

/// Writes a frame with `header` and `message` into `buf` (same as [`Frame::emit`]).
///
/// # Errors
/// As [`Frame::emit`].
pub fn emit(
    header: &HeaderRepr,
    message: &Message<'_>,
    buf: &mut [u8],
) -> Result<usize, WireError> {
    Frame {
        header: *header,
        message: *message,
    }
    .emit(buf)
}

/// How many data bytes one [`PutData`] frame carries when the per-peer frame size is
/// `max_frame` (0 if the frame cannot carry any).
#[must_use]
pub const fn put_data_capacity(max_frame: usize) -> usize {
    max_frame.saturating_sub(FRAME_OVERHEAD + PUT_DATA_FIXED_LEN)
}

/// How many data bytes one [`GetData`] frame carries when the per-peer frame size is
/// `max_frame`.
#[must_use]
pub const fn get_data_capacity(max_frame: usize) -> usize {
    max_frame.saturating_sub(FRAME_OVERHEAD + GET_DATA_FIXED_LEN)
}

/// Iterator over the fragments `(offset, len)` of a transfer of `total` bytes cut into
/// pieces of at most `chunk` bytes. A zero-length transfer is one empty fragment; a `chunk`
/// of 0 yields nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragments {
    next: usize,
    total: usize,
    chunk: usize,
    done: bool,
}

impl Fragments {
    /// Fragments of `total` bytes at most `chunk` bytes each (e.g. `chunk =`
    /// [`put_data_capacity`]`(max_frame)`).
    #[must_use]
    pub const fn new(total: usize, chunk: usize) -> Self {
        Self {
            next: 0,
            total,
            chunk,
            done: chunk == 0,
        }
    }
}

impl Iterator for Fragments {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let off = self.next;
        let len = self.chunk.min(self.total - off);
        self.next = off + len;
        if self.next >= self.total {
            self.done = true;
        }
        Some((off, len))
    }
}

/// What [`Reassembly::push`] did with a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reassembled {
    /// The fragment extended the received prefix; more is expected.
    Partial,
    /// The fragment completed the transfer.
    Complete,
    /// The fragment was a duplicate of data already received (ignored).
    Duplicate,
    /// The fragment is ahead of the received prefix (a gap; ignored, the sender resends).
    OutOfOrder,
}

/// In-order reassembly of one fragmented entry into a caller-provided buffer (no heap).
/// Fragments must arrive in order (the engine's sequence numbers guarantee it); duplicates
/// are ignored, gaps are refused.
#[derive(Debug)]
pub struct Reassembly<'b> {
    buf: &'b mut [u8],
    received: usize,
}

impl<'b> Reassembly<'b> {
    /// Reassembles into `buf`, whose length is the entry's total length.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, received: 0 }
    }

    /// Bytes received so far (a contiguous prefix).
    #[must_use]
    pub const fn received(&self) -> usize {
        self.received
    }

    /// Whether every byte has arrived.
    #[must_use]
    pub const fn is_complete(&self) -> bool {
        self.received == self.buf.len()
    }

    /// Adds a fragment: `data` at `frag_offset` of an entry of `total_len` bytes.
    ///
    /// # Errors
    /// [`WireError::BadField`] if `total_len` differs from the buffer length or the fragment
    /// runs past it.
    pub fn push(
        &mut self,
        frag_offset: u32,
        total_len: u32,
        data: &[u8],
    ) -> Result<Reassembled, WireError> {
        let total = usize::try_from(total_len).map_err(|_| WireError::BadField)?;
        let off = usize::try_from(frag_offset).map_err(|_| WireError::BadField)?;
        let end = off.checked_add(data.len()).ok_or(WireError::BadField)?;
        if total != self.buf.len() || end > total {
            return Err(WireError::BadField);
        }
        if off > self.received {
            return Ok(Reassembled::OutOfOrder);
        }
        if end <= self.received
            && !(data.is_empty() && total == 0 && self.received == 0 && off == 0)
        {
            return Ok(Reassembled::Duplicate);
        }
        // Overlapping or extending: copy the new part only.
        let new_from = self.received - off;
        let dst = self
            .buf
            .get_mut(self.received..end)
            .ok_or(WireError::BadField)?;
        dst.copy_from_slice(data.get(new_from..).ok_or(WireError::BadField)?);
        self.received = end;
        Ok(if self.is_complete() {
            Reassembled::Complete
        } else {
            Reassembled::Partial
        })
    }
}
