//! The scatter-gather engine (spec §4.6, §5.3, §9.2, §9.19, §9.29).
//!
//! Pure and transport-agnostic: [`entries`] checks the vector header, [`plan`] validates every
//! entry and resolves its local side into a [`Step`], and [`execute`] performs the steps in
//! vector order through a [`Memory`]. The same-node path copies with `execute`; the remote
//! path turns the same plan into frames, so both apply identical validation (spec §9.29).
//!
//! Residual rule (spec §9.2), written on every return: 0 on success; `io_request_count` when
//! the call fails before any entry was transferred — which includes every validation error,
//! because the whole vector is validated before the first byte moves (a bad entry never leaves
//! a partial write behind); otherwise `io_request_count − k`, where `k` entries were fully
//! transferred before the entry that failed.

use crate::error::{RsmError, RsmResult};
use crate::handle::{ImportHandle, LocalMemHandle};
use crate::types::{NodeId, SgFlags, RSM_HANDLE_TYPE, RSM_MAX_SGIOREQS, RSM_VA_TYPE};
use core::num::NonZeroU32;
use rsm_hal::{ErrorKind, Memory, Region};

/// The local side of an iovec entry (the C union `local`).
///
/// `Copy` for any region type (it holds only a reference), so vectors can be built with
/// `[entry; 16]` even over regions that are not `Copy` themselves.
#[derive(Debug)]
pub enum LocalRef<'a, R> {
    /// A local memory handle (with `io_type` = [`RSM_HANDLE_TYPE`]).
    Handle(LocalMemHandle),
    /// A memory region given directly (with `io_type` = [`RSM_VA_TYPE`]), borrowed for the
    /// call only: the operation keeps its own clone of the region until it completed.
    Va(&'a R),
}

impl<R> Clone for LocalRef<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for LocalRef<'_, R> {}

/// One scatter-gather entry (`rsm_iovec_t`, spec §3.1).
///
/// `io_type` is kept as the raw C value so that a C caller's vector maps one-to-one: an entry
/// is valid only as `RSM_HANDLE_TYPE` with [`LocalRef::Handle`] or `RSM_VA_TYPE` with
/// [`LocalRef::Va`]; anything else is `RSMERR_BAD_SGIO` (spec §9.19). Use [`IoVec::handle`] and
/// [`IoVec::va`] to build consistent entries.
///
/// An `RSM_VA_TYPE` entry borrows its region only for the call: the RSM layer keeps a clone
/// of the region (not the borrow) for as long as a transfer needs the memory, so a region
/// type that owns or shares its memory (e.g. `rsm_host::MemRegion`) keeps it alive past the
/// call, and dropping the application's copy mid-transfer is harmless.
#[derive(Debug)]
pub struct IoVec<'a, R> {
    /// `RSM_HANDLE_TYPE` (1) or `RSM_VA_TYPE` (2).
    pub io_type: i32,
    /// The local memory.
    pub local: LocalRef<'a, R>,
    /// Byte offset into the local memory.
    pub local_offset: usize,
    /// Byte offset into the remote segment.
    pub remote_offset: usize,
    /// Bytes to move (0 is allowed: a no-op entry that is still validated).
    pub transfer_length: usize,
}

impl<R> Clone for IoVec<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for IoVec<'_, R> {}

impl<'a, R> IoVec<'a, R> {
    /// An `RSM_HANDLE_TYPE` entry.
    pub fn handle(
        handle: LocalMemHandle,
        local_offset: usize,
        remote_offset: usize,
        transfer_length: usize,
    ) -> Self {
        IoVec {
            io_type: RSM_HANDLE_TYPE,
            local: LocalRef::Handle(handle),
            local_offset,
            remote_offset,
            transfer_length,
        }
    }

    /// An `RSM_VA_TYPE` entry over `region`.
    pub fn va(
        region: &'a R,
        local_offset: usize,
        remote_offset: usize,
        transfer_length: usize,
    ) -> Self {
        IoVec {
            io_type: RSM_VA_TYPE,
            local: LocalRef::Va(region),
            local_offset,
            remote_offset,
            transfer_length,
        }
    }
}

/// A scatter-gather request (`rsm_scat_gath_t`, spec §3.2). `Copy` for any region type.
#[derive(Debug)]
pub struct ScatGath<'a, R> {
    /// Informational; ignored (as in illumos).
    pub local_nodeid: NodeId,
    /// Number of entries of `iovec` to process, 1..=16 ([`RSM_MAX_SGIOREQS`]).
    pub io_request_count: u64,
    /// Output: entries not completed (see the module docs for the exact rule).
    pub io_residual_count: u64,
    /// [`SgFlags::IMPLICIT_SIGPOST`], optionally with [`SgFlags::SIGPOST_NO_ACCUMULATE`].
    /// Never modified by the call.
    pub flags: SgFlags,
    /// The import segment on the other side.
    pub remote_handle: ImportHandle,
    /// The entries (`None` is C's NULL `iovec`: `RSMERR_BAD_SGIO`). Only the first
    /// `io_request_count` are used; a shorter slice is `RSMERR_BAD_SGIO`.
    pub iovec: Option<&'a [IoVec<'a, R>]>,
}

impl<R> Clone for ScatGath<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for ScatGath<'_, R> {}

impl<'a, R> ScatGath<'a, R> {
    /// A request over all of `iovec` (count = its length), no flags, residual 0.
    pub fn new(remote_handle: ImportHandle, iovec: &'a [IoVec<'a, R>]) -> Self {
        ScatGath {
            local_nodeid: 0,
            io_request_count: iovec.len() as u64,
            io_residual_count: 0,
            flags: SgFlags::empty(),
            remote_handle,
            iovec: Some(iovec),
        }
    }
}

/// Which way the data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// putv: local → remote segment (needs write permission).
    Put,
    /// getv: remote segment → local (needs read permission).
    Get,
}

/// One validated entry: the local region (resolved from a handle or given), offsets and length.
#[derive(Debug, Clone)]
pub struct Step<R> {
    /// Local memory of the entry — or `None` when it is the previous step's memory: a run of
    /// entries over one handle (or one VA region) shares one clone of the region, so a region
    /// type that counts its owners (`rsm_host::MemRegion`) pays one count update per run, not
    /// per entry. [`local_of`] finds a step's region.
    pub local: Option<R>,
    /// Offset into `local`.
    pub local_off: usize,
    /// Offset into the remote segment.
    pub remote_off: usize,
    /// Bytes to move.
    pub len: usize,
    /// Table slot (index, generation) of the local memory handle, if the entry named one
    /// (for busy accounting). Generations are never 0, which keeps this at 8 bytes.
    pub handle: Option<(u16, NonZeroU32)>,
}

/// A validated vector, in order.
pub type Plan<R> = heapless::Vec<Step<R>, RSM_MAX_SGIOREQS>;

/// The local region of step `k` of `plan`: its own, or that of the nearest step before it that
/// has one (see [`Step::local`]). `None` only for `k` out of range or a malformed plan.
pub fn local_of<R>(plan: &[Step<R>], k: usize) -> Option<&R> {
    plan.get(..=k)?.iter().rev().find_map(|s| s.local.as_ref())
}

/// Header checks after the remote handle (spec §4.6): count 0 or above 16, NULL `iovec`, or
/// fewer entries than `io_request_count` → `RSMERR_BAD_SGIO`. Returns the entries to process.
pub fn entries<'s, 'a, R>(sg: &'s ScatGath<'a, R>) -> RsmResult<&'s [IoVec<'a, R>]> {
    let n = sg.io_request_count;
    if n == 0 || n > RSM_MAX_SGIOREQS as u64 {
        return Err(RsmError::BadSgio);
    }
    let iov = sg.iovec.ok_or(RsmError::BadSgio)?;
    iov.get(..n as usize).ok_or(RsmError::BadSgio)
}

/// Validate every entry against a remote segment of `seg_len` bytes and resolve local sides.
///
/// Per entry, in vector order, the first failing check wins: `io_type` and local side
/// mismatch, or a handle that `resolve` does not know → `RSMERR_BAD_SGIO`; a NULL VA region →
/// `RSMERR_BAD_ADDR`; `remote_offset + transfer_length` beyond the segment (or overflowing) →
/// `RSMERR_BAD_OFFSET`; `local_offset + transfer_length` beyond the local memory's length (the
/// length asked for at handle creation) → `RSMERR_BAD_LENGTH` (spec §9.12).
pub fn plan<R: Region>(
    entries: &[IoVec<'_, R>],
    seg_len: usize,
    resolve: impl FnMut(LocalMemHandle) -> Option<(u16, u32, R)>,
) -> RsmResult<Plan<R>> {
    let mut out = Plan::new();
    plan_into(entries, seg_len, resolve, &mut out)?;
    Ok(out)
}

/// [`plan`] into a caller-owned vector (cleared first), so that the ~1 KB plan is built in
/// place instead of being moved through return values. Consecutive entries naming the same
/// local handle resolve it once, and consecutive entries over the same memory (the same
/// handle, or VA regions of the same address and length) share one region clone.
pub fn plan_into<R: Region>(
    entries: &[IoVec<'_, R>],
    seg_len: usize,
    mut resolve: impl FnMut(LocalMemHandle) -> Option<(u16, u32, R)>,
    out: &mut Plan<R>,
) -> RsmResult<()> {
    out.clear();
    // The previous step's handle (raw, slot) and its memory (address, length).
    let mut last_handle: Option<(u64, u16, NonZeroU32)> = None;
    let mut last_mem: Option<(usize, usize)> = None;
    for e in entries {
        let (local, handle, local_len) = match (e.io_type, &e.local) {
            (RSM_HANDLE_TYPE, LocalRef::Handle(h)) => match (last_handle, last_mem) {
                (Some((raw, i, g)), Some((_, len))) if raw == h.into_raw() => {
                    (None, Some((i, g)), len)
                }
                _ => {
                    let (i, g, r) = resolve(*h).ok_or(RsmError::BadSgio)?;
                    let g = NonZeroU32::new(g).ok_or(RsmError::BadSgio)?;
                    last_handle = Some((h.into_raw(), i, g));
                    last_mem = Some((r.addr(), r.len()));
                    let len = r.len();
                    (Some(r), Some((i, g)), len)
                }
            },
            (RSM_VA_TYPE, LocalRef::Va(r)) => {
                if r.addr() == 0 {
                    return Err(RsmError::BadAddr);
                }
                last_handle = None;
                if last_mem == Some((r.addr(), r.len())) {
                    (None, None, r.len())
                } else {
                    last_mem = Some((r.addr(), r.len()));
                    (Some((*r).clone()), None, r.len())
                }
            }
            _ => return Err(RsmError::BadSgio),
        };
        let len = e.transfer_length;
        let fits = |off: usize, limit: usize| off.checked_add(len).is_some_and(|end| end <= limit);
        if !fits(e.remote_offset, seg_len) {
            return Err(RsmError::BadOffset);
        }
        if !fits(e.local_offset, local_len) {
            return Err(RsmError::BadLength);
        }
        let step = Step {
            local,
            local_off: e.local_offset,
            remote_off: e.remote_offset,
            len,
            handle,
        };
        // `entries` holds at most RSM_MAX_SGIOREQS items (checked by `entries()`).
        out.push(step).map_err(|_| RsmError::BadSgio)?;
    }
    Ok(())
}

/// Map a HAL copy error to an RSMERR code.
pub(crate) fn copy_error(kind: ErrorKind) -> RsmError {
    match kind {
        ErrorKind::OutOfRange => RsmError::BadLength,
        ErrorKind::PermissionDenied => RsmError::PermDenied,
        ErrorKind::QuotaExceeded | ErrorKind::OutOfMemory => RsmError::InsufficientResources,
        ErrorKind::BadAddress | ErrorKind::Other => RsmError::BadAddr,
    }
}

/// Perform `plan` against the remote segment memory `remote`, strictly in order, stopping at
/// the first failure. Returns the result and the number of entries fully transferred.
pub fn execute<M: Memory>(
    mem: &M,
    plan: &[Step<M::Region>],
    remote: &M::Region,
    dir: Direction,
) -> (RsmResult<()>, usize) {
    let mut local: Option<&M::Region> = None;
    for (k, s) in plan.iter().enumerate() {
        if let Some(r) = &s.local {
            local = Some(r);
        }
        if s.len == 0 {
            continue;
        }
        let Some(l) = local else {
            return (Err(RsmError::BadSgio), k); // a malformed plan (no region yet)
        };
        let r = match dir {
            Direction::Put => mem.copy(remote, s.remote_off, l, s.local_off, s.len),
            Direction::Get => mem.copy(l, s.local_off, remote, s.remote_off, s.len),
        };
        if let Err(e) = r {
            return (Err(copy_error(rsm_hal::Error::kind(&e))), k);
        }
    }
    (Ok(()), plan.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsm_hal::fake::{FakePlatform, FakeRegion};

    fn sg<'a>(iov: &'a [IoVec<'a, FakeRegion>], n: u64) -> ScatGath<'a, FakeRegion> {
        ScatGath {
            io_request_count: n,
            ..ScatGath::new(ImportHandle::NULL, iov)
        }
    }

    #[test]
    fn header_checks() {
        let r = FakeRegion::raw(0x1000, 16);
        let iov = [IoVec::va(&r, 0, 0, 1); 17];
        assert_eq!(entries(&sg(&iov, 0)).unwrap_err(), RsmError::BadSgio);
        assert_eq!(entries(&sg(&iov, 17)).unwrap_err(), RsmError::BadSgio);
        assert_eq!(entries(&sg(&iov, 16)).unwrap().len(), 16);
        assert_eq!(entries(&sg(&iov[..3], 4)).unwrap_err(), RsmError::BadSgio);
        let none = ScatGath {
            iovec: None,
            ..sg(&iov, 1)
        };
        assert_eq!(entries(&none).unwrap_err(), RsmError::BadSgio);
    }

    #[test]
    fn plan_checks_in_order() {
        let r = FakeRegion::raw(0x1000, 16);
        let null = FakeRegion::raw(0, 16);
        let none = |_| None;
        let mut bad_type = IoVec::va(&r, 0, 0, 1);
        bad_type.io_type = 3;
        assert_eq!(plan(&[bad_type], 8, none).unwrap_err(), RsmError::BadSgio);
        let mismatched = IoVec {
            io_type: RSM_HANDLE_TYPE,
            ..IoVec::va(&r, 0, 0, 1)
        };
        assert_eq!(plan(&[mismatched], 8, none).unwrap_err(), RsmError::BadSgio);
        let unknown = IoVec::<FakeRegion>::handle(LocalMemHandle::NULL, 0, 0, 1);
        assert_eq!(plan(&[unknown], 8, none).unwrap_err(), RsmError::BadSgio);
        assert_eq!(
            plan(&[IoVec::va(&null, 0, 0, 1)], 8, none).unwrap_err(),
            RsmError::BadAddr
        );
        // Remote range is checked before the local range.
        assert_eq!(
            plan(&[IoVec::va(&r, 20, 8, 1)], 8, none).unwrap_err(),
            RsmError::BadOffset
        );
        assert_eq!(
            plan(&[IoVec::va(&r, 16, 0, 1)], 8, none).unwrap_err(),
            RsmError::BadLength
        );
        assert_eq!(
            plan(&[IoVec::va(&r, 0, usize::MAX, 2)], 8, none).unwrap_err(),
            RsmError::BadOffset,
            "overflow is an error, never a wrap"
        );
        assert_eq!(plan(&[IoVec::va(&r, 16, 8, 0)], 8, none).unwrap().len(), 1);
    }

    #[test]
    fn execute_stops_at_first_failure() {
        let p = FakePlatform::new();
        let seg = p.alloc(64);
        let a = p.alloc(8);
        p.write(&a, 0, b"abcdefgh");
        let bogus = FakeRegion::raw(0x4242_0000, 8);
        let steps = [
            Step {
                local: Some(a.clone()),
                local_off: 0,
                remote_off: 0,
                len: 8,
                handle: None,
            },
            Step {
                local: Some(bogus),
                local_off: 0,
                remote_off: 8,
                len: 8,
                handle: None,
            },
            Step {
                local: Some(a),
                local_off: 0,
                remote_off: 16,
                len: 8,
                handle: None,
            },
        ];
        let (r, done) = execute(&p, &steps, &seg, Direction::Put);
        assert_eq!((r, done), (Err(RsmError::BadAddr), 1));
        assert_eq!(p.read(&seg, 0, 8), b"abcdefgh");
        assert_eq!(p.read(&seg, 16, 8), [0; 8], "nothing after the failure");
    }
}
