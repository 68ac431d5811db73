//! Message bodies (after spec §6.3–§6.6 and DESIGN §4): one `Repr` struct per message and the
//! [`Message`] enum over them. Every integer is big-endian; body layouts are listed on each
//! struct as `field: size` in wire order.

use super::WireError;

/// Highest permission (mode) value: `0o777`; larger values are [`WireError::BadField`].
pub const PERMISSION_MAX: u16 = 0o777;

/// [`Bell`] flag: the bell goes from an importer to the exporter (else exporter → importer).
pub const BELL_TO_EXPORTER: u16 = 0x0001;
/// [`Bell`] flag: posted with `RSM_SIGPOST_NO_ACCUMULATE` (dropped if the target already has
/// an event pending).
pub const BELL_NO_ACCUMULATE: u16 = 0x0002;
/// Every bell flag defined by this wire version.
pub const BELL_FLAGS_KNOWN: u16 = BELL_TO_EXPORTER | BELL_NO_ACCUMULATE;
/// [`Ack::entry`] of the answer to a [`Bell`] from an importer: `op_id` is the bell's, the
/// status `0` (the event was delivered) or the `RSMERR_*` code of the refusal. (Vectors
/// have far fewer entries, so no put acknowledgement carries it.)
pub const BELL_ACK_ENTRY: u16 = u16::MAX;

/// Smallest value a [`Hello`] may announce as its largest receivable frame.
pub const MIN_MAX_FRAME: u16 = 128;

/// The message type byte of the header. Values 0–6 are the KA IPC numbers of spec §6.6;
/// the data-path and topology messages are new in rsm-rs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// `RSMIPC_MSG_SEGCONNECT`: [`ConnectRequest`].
    ConnectRequest = 0,
    /// `RSMIPC_MSG_DISCONNECT`: [`Disconnect`].
    Disconnect = 1,
    /// `RSMIPC_MSG_IMPORTING`: [`ImportNotice`].
    Importing = 2,
    /// `RSMIPC_MSG_NOTIMPORTING`: [`ImportNotice`].
    NotImporting = 3,
    /// `RSMIPC_MSG_REPLY` to a connect request: [`ConnectReply`].
    ConnectReply = 4,
    /// `RSMIPC_MSG_BELL`: [`Bell`].
    Bell = 5,
    /// `RSMIPC_MSG_REPUBLISH`: [`Republish`].
    Republish = 6,
    /// Put data: [`PutData`].
    PutData = 16,
    /// Get request: [`GetRequest`].
    GetRequest = 17,
    /// Get data (reply to a get request): [`GetData`].
    GetData = 18,
    /// Acknowledgement of an applied put entry or of a bell: [`Ack`].
    Ack = 19,
    /// Hello / heartbeat for the topology: [`Hello`].
    Hello = 20,
}

impl MessageType {
    /// The type for a header byte, or `None` for an unknown type.
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::ConnectRequest,
            1 => Self::Disconnect,
            2 => Self::Importing,
            3 => Self::NotImporting,
            4 => Self::ConnectReply,
            5 => Self::Bell,
            6 => Self::Republish,
            16 => Self::PutData,
            17 => Self::GetRequest,
            18 => Self::GetData,
            19 => Self::Ack,
            20 => Self::Hello,
            _ => return None,
        })
    }
}

/// A bounds-checked big-endian reader over a message body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::BadLength)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::BadLength)?;
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.arr()?))
    }
    fn perm(&mut self) -> Result<u16, WireError> {
        let p = self.u16()?;
        if p > PERMISSION_MAX {
            return Err(WireError::BadField);
        }
        Ok(p)
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
    fn finish(&self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(WireError::BadLength)
        }
    }
}

/// A bounds-checked big-endian writer into a message body.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    /// Leave the data bytes of put/get data unwritten (see [`Message::emit_without_data`]).
    skip_data: bool,
}

impl Writer<'_> {
    /// A message's data: copied, or only room left for it.
    fn data(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if !self.skip_data {
            return self.put(bytes);
        }
        let end = self
            .pos
            .checked_add(bytes.len())
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::BufferTooSmall)?;
        self.pos = end;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(WireError::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(WireError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
    fn u16(&mut self, v: u16) -> Result<(), WireError> {
        self.put(&v.to_be_bytes())
    }
    fn u32(&mut self, v: u32) -> Result<(), WireError> {
        self.put(&v.to_be_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), WireError> {
        self.put(&v.to_be_bytes())
    }
}

fn check_perm(p: u16) -> Result<(), WireError> {
    if p > PERMISSION_MAX {
        Err(WireError::BadField)
    } else {
        Ok(())
    }
}

/// Checks a fragment: `frag_offset + len <= total_len`, and the transfer fits `u64` offsets.
fn check_fragment(frag_offset: u32, len: usize, total_len: u32) -> Result<(), WireError> {
    let end = u64::from(frag_offset)
        .checked_add(len as u64)
        .ok_or(WireError::BadField)?;
    if end > u64::from(total_len) {
        return Err(WireError::BadField);
    }
    Ok(())
}

/// Connect request, importer → exporter (spec §6.3).
///
/// Body (14 bytes): `segment_id: 4, request_id: 4, import_id: 4, permission: 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectRequest {
    /// The published segment id to connect to.
    pub segment_id: u32,
    /// Request cookie (slot index + sequence) that the reply echoes (spec §6.6).
    pub request_id: u32,
    /// The importer's opaque import cookie (its shared-connection record), recorded by the
    /// exporter and quoted in later disconnects and bells.
    pub import_id: u32,
    /// Requested access mode bits (`<= 0o777`; the library asks for 0o666, spec §6.3).
    pub permission: u16,
}

/// Connect reply, exporter → importer (spec §6.3).
///
/// Body (28 bytes): `request_id: 4, status: 2, permission: 2, segment_id: 4,
/// segment_len: 8, owner_uid: 4, owner_gid: 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectReply {
    /// The [`ConnectRequest::request_id`] being answered.
    pub request_id: u32,
    /// `0` (`RSM_SUCCESS`) or an `RSMERR_*` code (e.g. `RSMERR_SEG_NOT_PUBLISHED_TO_NODE`).
    pub status: u16,
    /// Granted access mode bits (`<= 0o777`).
    pub permission: u16,
    /// The segment id.
    pub segment_id: u32,
    /// Segment length in bytes.
    pub segment_len: u64,
    /// Owner uid of the export segment (for the importer's class check).
    pub owner_uid: u32,
    /// Owner gid of the export segment.
    pub owner_gid: u32,
}

/// Disconnect, exporter → importing node (spec §6.4): the segment was unpublished or
/// destroyed (forced), or the exporter confirms an ordinary disconnect.
///
/// Body (11 bytes): `segment_id: 4, import_id: 4, generation: 2, forced: 1` (`forced` is 0 or
/// 1; other values are [`WireError::BadField`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Disconnect {
    /// The segment id.
    pub segment_id: u32,
    /// The importer's import cookie ([`ConnectRequest::import_id`]).
    pub import_id: u32,
    /// The new 16-bit generation of the import (spec §6.4); the importer compares it with
    /// its barrier snapshot.
    pub generation: u16,
    /// Forced (unpublish/destroy) disconnect: the import reports `RSMERR_CONN_ABORTED`.
    pub forced: bool,
}

/// Importing / not-importing notice, importer → exporter (spec §6.3).
///
/// Body (8 bytes): `segment_id: 4, import_id: 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImportNotice {
    /// The segment id.
    pub segment_id: u32,
    /// The importer's import cookie.
    pub import_id: u32,
}

/// Bell (event post, spec §6.5).
///
/// A bell from an importer ([`BELL_TO_EXPORTER`]) is answered by an [`Ack`] with entry
/// [`BELL_ACK_ENTRY`] and the bell's `op_id`, so that the post can report a refusal; a bell
/// from the exporter to its importers is not answered (`op_id` 0).
///
/// Body (14 bytes): `segment_id: 4, import_id: 4, flags: 2, op_id: 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bell {
    /// The segment the event is posted on.
    pub segment_id: u32,
    /// The importer's import cookie (exporter → importer), or the sender's (importer →
    /// exporter).
    pub import_id: u32,
    /// Bell flags, a subset of [`BELL_FLAGS_KNOWN`] ([`BELL_TO_EXPORTER`]).
    pub flags: u16,
    /// The posting operation (importer → exporter), echoed in the answer; 0 otherwise.
    pub op_id: u32,
}

/// Republish, exporter → importer: the segment's access list changed.
///
/// Body (6 bytes): `segment_id: 4, permission: 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Republish {
    /// The segment id.
    pub segment_id: u32,
    /// The access mode now granted to the receiving node (`0` = none, `<= 0o777`).
    pub permission: u16,
}

/// Put data: one fragment of one scatter-gather entry, importer → exporter.
///
/// Body (30 + n bytes): `import_id: 4, segment_id: 4, op_id: 4, entry: 2, remote_offset: 8,
/// frag_offset: 4, total_len: 4, data: n`, with `frag_offset + n <= total_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PutData<'a> {
    /// The importer's import cookie.
    pub import_id: u32,
    /// The segment id.
    pub segment_id: u32,
    /// Operation id (one putv) on this import.
    pub op_id: u32,
    /// Index of the scatter-gather entry within the operation.
    pub entry: u16,
    /// Offset in the segment where the entry starts.
    pub remote_offset: u64,
    /// Offset of this fragment within the entry.
    pub frag_offset: u32,
    /// Total length of the entry.
    pub total_len: u32,
    /// The fragment's bytes, borrowed from the frame.
    pub data: &'a [u8],
}

/// Length of the fixed part of a [`PutData`] body.
pub const PUT_DATA_FIXED_LEN: usize = 30;
/// Length of the fixed part of a [`GetData`] body.
pub const GET_DATA_FIXED_LEN: usize = 16;

/// Get request: one scatter-gather entry, importer → exporter.
///
/// Body (26 bytes): `import_id: 4, segment_id: 4, op_id: 4, entry: 2, remote_offset: 8,
/// length: 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GetRequest {
    /// The importer's import cookie.
    pub import_id: u32,
    /// The segment id.
    pub segment_id: u32,
    /// Operation id (one getv) on this import.
    pub op_id: u32,
    /// Index of the scatter-gather entry.
    pub entry: u16,
    /// Offset in the segment.
    pub remote_offset: u64,
    /// Number of bytes requested.
    pub length: u32,
}

/// Get data: one fragment of the answer to a [`GetRequest`], exporter → importer.
///
/// Body (16 + n bytes): `op_id: 4, entry: 2, status: 2, frag_offset: 4, total_len: 4,
/// data: n`, with `frag_offset + n <= total_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GetData<'a> {
    /// Operation id of the request.
    pub op_id: u32,
    /// Entry index of the request.
    pub entry: u16,
    /// `0` or an `RSMERR_*` code (then `data` is empty).
    pub status: u16,
    /// Offset of this fragment within the entry.
    pub frag_offset: u32,
    /// Total length of the entry.
    pub total_len: u32,
    /// The fragment's bytes, borrowed from the frame.
    pub data: &'a [u8],
}

/// Acknowledgement of a put entry (applied, or failed), or with entry [`BELL_ACK_ENTRY`] the
/// answer to an importer's [`Bell`]; exporter → importer.
///
/// Body (12 bytes): `op_id: 4, entry: 2, status: 2, done_len: 4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ack {
    /// Operation id.
    pub op_id: u32,
    /// Entry index.
    pub entry: u16,
    /// `0` or an `RSMERR_*` code (after a failure the rest of the vector is dropped).
    pub status: u16,
    /// Bytes of the entry applied so far (the acknowledged, contiguous prefix).
    pub done_len: u32,
}

/// Hello / heartbeat (DESIGN §4): feeds the topology and the per-peer frame size.
///
/// Hellos are not sequenced. Broadcast every second (destination [`super::NODE_BROADCAST`],
/// peer incarnation 0) and sent unicast as a probe, as the answer to a peer that does not know
/// the sender, and as a pure acknowledgement: then the header has [`super::FLAG_ACK`] and
/// its `seq` field carries a selective-acknowledgement bitmap (bit `k` = the sender holds
/// frame `ack + 1 + k`).
///
/// Body (10 bytes): `incarnation: 8, max_frame: 2`; `incarnation` must equal the header's
/// and `max_frame >= MIN_MAX_FRAME`, else [`WireError::BadField`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The sender's per-boot incarnation.
    pub incarnation: u64,
    /// Largest Ethernet frame (header included, FCS excluded) the sender can receive.
    pub max_frame: u16,
}

/// One message body of any type, borrowing its data from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// [`MessageType::ConnectRequest`].
    ConnectRequest(ConnectRequest),
    /// [`MessageType::ConnectReply`].
    ConnectReply(ConnectReply),
    /// [`MessageType::Disconnect`].
    Disconnect(Disconnect),
    /// [`MessageType::Importing`].
    Importing(ImportNotice),
    /// [`MessageType::NotImporting`].
    NotImporting(ImportNotice),
    /// [`MessageType::Bell`].
    Bell(Bell),
    /// [`MessageType::Republish`].
    Republish(Republish),
    /// [`MessageType::PutData`].
    PutData(PutData<'a>),
    /// [`MessageType::GetRequest`].
    GetRequest(GetRequest),
    /// [`MessageType::GetData`].
    GetData(GetData<'a>),
    /// [`MessageType::Ack`].
    Ack(Ack),
    /// [`MessageType::Hello`].
    Hello(Hello),
}

impl<'a> Message<'a> {
    /// The header type byte of this message.
    #[must_use]
    pub const fn msg_type(&self) -> MessageType {
        match self {
            Self::ConnectRequest(_) => MessageType::ConnectRequest,
            Self::ConnectReply(_) => MessageType::ConnectReply,
            Self::Disconnect(_) => MessageType::Disconnect,
            Self::Importing(_) => MessageType::Importing,
            Self::NotImporting(_) => MessageType::NotImporting,
            Self::Bell(_) => MessageType::Bell,
            Self::Republish(_) => MessageType::Republish,
            Self::PutData(_) => MessageType::PutData,
            Self::GetRequest(_) => MessageType::GetRequest,
            Self::GetData(_) => MessageType::GetData,
            Self::Ack(_) => MessageType::Ack,
            Self::Hello(_) => MessageType::Hello,
        }
    }

    /// Length of the body in bytes.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        match self {
            Self::ConnectRequest(_) => 14,
            Self::ConnectReply(_) => 28,
            Self::Disconnect(_) => 11,
            Self::Importing(_) | Self::NotImporting(_) => 8,
            Self::Bell(_) => 14,
            Self::Republish(_) => 6,
            Self::PutData(p) => PUT_DATA_FIXED_LEN + p.data.len(),
            Self::GetRequest(_) => 26,
            Self::GetData(g) => GET_DATA_FIXED_LEN + g.data.len(),
            Self::Ack(_) => 12,
            Self::Hello(_) => 10,
        }
    }

    /// Parses a body of the given type. Exact lengths are required (trailing bytes are
    /// [`WireError::BadLength`]).
    ///
    /// # Errors
    /// [`WireError::BadLength`] for a body of the wrong size, [`WireError::BadField`] for an
    /// out-of-range field.
    pub fn parse(ty: MessageType, body: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader { buf: body, pos: 0 };
        let m = match ty {
            MessageType::ConnectRequest => Self::ConnectRequest(ConnectRequest {
                segment_id: r.u32()?,
                request_id: r.u32()?,
                import_id: r.u32()?,
                permission: r.perm()?,
            }),
            MessageType::ConnectReply => Self::ConnectReply(ConnectReply {
                request_id: r.u32()?,
                status: r.u16()?,
                permission: r.perm()?,
                segment_id: r.u32()?,
                segment_len: r.u64()?,
                owner_uid: r.u32()?,
                owner_gid: r.u32()?,
            }),
            MessageType::Disconnect => Self::Disconnect(Disconnect {
                segment_id: r.u32()?,
                import_id: r.u32()?,
                generation: r.u16()?,
                forced: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(WireError::BadField),
                },
            }),
            MessageType::Importing | MessageType::NotImporting => {
                let n = ImportNotice {
                    segment_id: r.u32()?,
                    import_id: r.u32()?,
                };
                if ty == MessageType::Importing {
                    Self::Importing(n)
                } else {
                    Self::NotImporting(n)
                }
            }
            MessageType::Bell => {
                let b = Bell {
                    segment_id: r.u32()?,
                    import_id: r.u32()?,
                    flags: r.u16()?,
                    op_id: r.u32()?,
                };
                if b.flags & !BELL_FLAGS_KNOWN != 0 {
                    return Err(WireError::BadField);
                }
                Self::Bell(b)
            }
            MessageType::Republish => Self::Republish(Republish {
                segment_id: r.u32()?,
                permission: r.perm()?,
            }),
            MessageType::PutData => {
                let p = PutData {
                    import_id: r.u32()?,
                    segment_id: r.u32()?,
                    op_id: r.u32()?,
                    entry: r.u16()?,
                    remote_offset: r.u64()?,
                    frag_offset: r.u32()?,
                    total_len: r.u32()?,
                    data: r.rest(),
                };
                check_fragment(p.frag_offset, p.data.len(), p.total_len)?;
                p.remote_offset
                    .checked_add(u64::from(p.total_len))
                    .ok_or(WireError::BadField)?;
                Self::PutData(p)
            }
            MessageType::GetRequest => {
                let g = GetRequest {
                    import_id: r.u32()?,
                    segment_id: r.u32()?,
                    op_id: r.u32()?,
                    entry: r.u16()?,
                    remote_offset: r.u64()?,
                    length: r.u32()?,
                };
                g.remote_offset
                    .checked_add(u64::from(g.length))
                    .ok_or(WireError::BadField)?;
                Self::GetRequest(g)
            }
            MessageType::GetData => {
                let g = GetData {
                    op_id: r.u32()?,
                    entry: r.u16()?,
                    status: r.u16()?,
                    frag_offset: r.u32()?,
                    total_len: r.u32()?,
                    data: r.rest(),
                };
                check_fragment(g.frag_offset, g.data.len(), g.total_len)?;
                Self::GetData(g)
            }
            MessageType::Ack => Self::Ack(Ack {
                op_id: r.u32()?,
                entry: r.u16()?,
                status: r.u16()?,
                done_len: r.u32()?,
            }),
            MessageType::Hello => {
                let h = Hello {
                    incarnation: r.u64()?,
                    max_frame: r.u16()?,
                };
                if h.max_frame < MIN_MAX_FRAME {
                    return Err(WireError::BadField);
                }
                Self::Hello(h)
            }
        };
        r.finish()?;
        Ok(m)
    }

    /// Checks the fields a sender controls, with the same rules as [`Message::parse`].
    ///
    /// # Errors
    /// [`WireError::BadField`].
    pub fn validate(&self) -> Result<(), WireError> {
        match self {
            Self::ConnectRequest(c) => check_perm(c.permission),
            Self::ConnectReply(c) => check_perm(c.permission),
            Self::Republish(r) => check_perm(r.permission),
            Self::Bell(b) if b.flags & !BELL_FLAGS_KNOWN != 0 => Err(WireError::BadField),
            Self::PutData(p) => {
                check_fragment(p.frag_offset, p.data.len(), p.total_len)?;
                p.remote_offset
                    .checked_add(u64::from(p.total_len))
                    .map(|_| ())
                    .ok_or(WireError::BadField)
            }
            Self::GetRequest(g) => g
                .remote_offset
                .checked_add(u64::from(g.length))
                .map(|_| ())
                .ok_or(WireError::BadField),
            Self::GetData(g) => check_fragment(g.frag_offset, g.data.len(), g.total_len),
            Self::Hello(h) if h.max_frame < MIN_MAX_FRAME => Err(WireError::BadField),
            _ => Ok(()),
        }
    }

    /// Writes the body into `buf` (exactly [`Message::buffer_len`] bytes).
    ///
    /// # Errors
    /// [`WireError::BufferTooSmall`] if `buf` is too short (nothing is guaranteed about its
    /// contents then).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_inner(buf, false)
    }

    /// [`Message::emit`], except that the data bytes of [`PutData`] and [`GetData`] are not
    /// written: `data` gives only their length, and the caller writes them into the
    /// `data.len()` bytes after the fixed fields (so a frame is filled straight from the
    /// source memory, with no copy of placeholder bytes first). Every other byte is written.
    ///
    /// # Errors
    /// As [`Message::emit`].
    pub fn emit_without_data(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_inner(buf, true)
    }

    fn emit_inner(&self, buf: &mut [u8], skip_data: bool) -> Result<usize, WireError> {
        let mut w = Writer {
            buf,
            pos: 0,
            skip_data,
        };
        match self {
            Self::ConnectRequest(c) => {
                w.u32(c.segment_id)?;
                w.u32(c.request_id)?;
                w.u32(c.import_id)?;
                w.u16(c.permission)?;
            }
            Self::ConnectReply(c) => {
                w.u32(c.request_id)?;
                w.u16(c.status)?;
                w.u16(c.permission)?;
                w.u32(c.segment_id)?;
                w.u64(c.segment_len)?;
                w.u32(c.owner_uid)?;
                w.u32(c.owner_gid)?;
            }
            Self::Disconnect(d) => {
                w.u32(d.segment_id)?;
                w.u32(d.import_id)?;
                w.u16(d.generation)?;
                w.put(&[u8::from(d.forced)])?;
            }
            Self::Importing(n) | Self::NotImporting(n) => {
                w.u32(n.segment_id)?;
                w.u32(n.import_id)?;
            }
            Self::Bell(b) => {
                w.u32(b.segment_id)?;
                w.u32(b.import_id)?;
                w.u16(b.flags)?;
                w.u32(b.op_id)?;
            }
            Self::Republish(r) => {
                w.u32(r.segment_id)?;
                w.u16(r.permission)?;
            }
            Self::PutData(p) => {
                w.u32(p.import_id)?;
                w.u32(p.segment_id)?;
                w.u32(p.op_id)?;
                w.u16(p.entry)?;
                w.u64(p.remote_offset)?;
                w.u32(p.frag_offset)?;
                w.u32(p.total_len)?;
                w.data(p.data)?;
            }
            Self::GetRequest(g) => {
                w.u32(g.import_id)?;
                w.u32(g.segment_id)?;
                w.u32(g.op_id)?;
                w.u16(g.entry)?;
                w.u64(g.remote_offset)?;
                w.u32(g.length)?;
            }
            Self::GetData(g) => {
                w.u32(g.op_id)?;
                w.u16(g.entry)?;
                w.u16(g.status)?;
                w.u32(g.frag_offset)?;
                w.u32(g.total_len)?;
                w.data(g.data)?;
            }
            Self::Ack(a) => {
                w.u32(a.op_id)?;
                w.u16(a.entry)?;
                w.u16(a.status)?;
                w.u32(a.done_len)?;
            }
            Self::Hello(h) => {
                w.u64(h.incarnation)?;
                w.u16(h.max_frame)?;
            }
        }
        Ok(w.pos)
    }
}
