//! Scalar and bulk access to import segments: put/get and their 8/16/32/64-bit forms (spec
//! §4.5, §9.1, §9.12, §9.18, §9.33).
//!
//! All ten functions (and the C-shaped ones of [`crate::capi`]) run through one internal path,
//! which validates in the illumos order of spec §4.5 — the first failing check wins:
//!
//! 1. NULL handle → `RSMERR_BAD_SEG_HNDL`;
//! 2. (C only) NULL data pointer → `RSMERR_BAD_ADDR`;
//! 3. (C only) data pointer not aligned to N/8 → `RSMERR_BAD_MEM_ALIGNMENT`;
//! 4. `offset` not a multiple of N/8 → `RSMERR_BAD_MEM_ALIGNMENT` (never `BAD_OFFSET` or
//!    `MISALIGNED_OFFSET`, spec §9.12);
//! 5. stale, disconnected or wrong-kind handle → `RSMERR_BAD_SEG_HNDL`;
//! 6. (illumos' implicit map: nothing to do here — put/get copy through the exporter's pinned
//!    pages, so no mapping error can surface, spec §9.33);
//! 7. the import's permission lacks READ (get) / WRITE (put) → `RSMERR_PERM_DENIED` — only the
//!    permission the operation needs is checked, so a read-only import can get (spec §9.33);
//! 8. the byte count `rep_cnt × N/8` does not fit in `usize` (only a C caller can ask for that)
//!    → `RSMERR_BAD_LENGTH`; then `offset < 0` or `offset + len > size` → `RSMERR_BAD_OFFSET`
//!    (what illumos returns in practice for every out-of-range access, spec §4.5 step 8,
//!    §9.12; the arithmetic is checked, so `i64::MAX` is simply out of range);
//! 9. implicit barrier mode and no barrier initialised on the import →
//!    `RSMERR_BARRIER_UNINITIALIZED` (spec §9.1; explicit mode needs no barrier);
//! 10. the connection was force-disconnected (the exporter unpublished, destroyed, or rebound a
//!     segment this import had mapped; spec §6.4) → `RSMERR_CONN_ABORTED`, in **both** modes.
//!
//! Then the transfer: references are taken on the import and the export under the table lock,
//! the bytes are copied through the HAL with no lock held, the references are dropped and
//! waiters (disconnect, unpublish, destroy, rebind) are woken. If a forced disconnect happened
//! *while* the bytes were moving, the call returns `RSMERR_CONN_ABORTED` too (illumos compares
//! the generation number after the operation, and that check overrides the result).
//!
//! ## Our choices
//! * **Aborted connections do no I/O.** illumos redirects a force-disconnected segment's
//!   mapping to a trash page (writes vanish, reads return junk) and reports the abort after
//!   the fact; rsm-rs checks first and performs no access at all.
//! * **Zero length** (`length` 0, `rep_cnt` 0) is a validated no-op: every check above runs,
//!   nothing is copied.
//! * **No byte swapping** (spec §9.18): the N-bit forms move native-endian items; every node
//!   of our targets has the same byte order.
//! * **Word atomicity.** The HAL stores and loads each naturally aligned 8-byte word of a
//!   transfer with one access when the segment address and the length are multiples of 8, so
//!   a `put64`/`get64` (and a byte put/get of whole aligned words) never tears a word for a
//!   concurrent reader or writer. Narrower items carry no such promise beyond what the
//!   platform's copy gives. The typed forms convert through a small stack buffer in chunks of
//!   a multiple of 8 bytes, so each chunk keeps that alignment.
//! * Accesses during a rebind of the exported segment wait until the new pages are in place.
//! * **Remote segments.** The same checks run locally; the bytes then travel through the wire
//!   engine ([`crate::proto`]) in pieces of [`crate::proto::INLINE_MAX`] bytes, each written by
//!   the exporter with one HAL write (so aligned words stay whole) and acknowledged before the
//!   next is sent; a put returns once the exporter acknowledged every piece. A forced
//!   disconnect, or a restart of the exporter, ends the access with `RSMERR_CONN_ABORTED`; an
//!   exporter that makes no progress for 5 s, with `RSMERR_REMOTE_NODE_UNREACHABLE`.

use crate::error::{RsmError, RsmResult};
use crate::handle::ImportHandle;
use crate::node::{Rsm, State};
use crate::sg::{copy_error, Direction};
use crate::types::{BarrierMode, Permission};
use rsm_hal::{Error as _, Memory, Platform};

/// Size of the stack buffer the typed forms convert through (a multiple of 8, see the module
/// docs on word atomicity).
const CHUNK: usize = 256;

/// The caller's side of a byte-level access.
pub(crate) enum Bytes<'a> {
    /// put: the bytes to store into the segment.
    Put(&'a [u8]),
    /// get: where to store the bytes read from the segment.
    Get(&'a mut [u8]),
    /// A C caller's `rep_cnt × N/8` does not fit in `usize`: validated through step 7, then
    /// `RSMERR_BAD_LENGTH` (step 8).
    Unrepresentable(Direction),
}

/// What an access holds while its bytes move without the table lock.
struct Held<R> {
    region: R,
    off: usize,
    import: (u16, u32),
    export: (u16, u32),
}

/// Where an access's bytes go, at offsets relative to the access's start: the exporter's
/// pages on this node, or the wire engine for a remote segment.
pub(crate) trait Target {
    fn write(&mut self, off: usize, src: &[u8]) -> RsmResult<()>;
    fn read(&mut self, off: usize, dst: &mut [u8]) -> RsmResult<()>;
}

struct LocalTarget<'a, M: Memory> {
    mem: &'a M,
    region: &'a M::Region,
    base: usize,
}

impl<M: Memory> Target for LocalTarget<'_, M> {
    fn write(&mut self, off: usize, src: &[u8]) -> RsmResult<()> {
        self.mem
            .write(self.region, self.base + off, src)
            .map_err(|e| copy_error(e.kind()))
    }
    fn read(&mut self, off: usize, dst: &mut [u8]) -> RsmResult<()> {
        self.mem
            .read(self.region, self.base + off, dst)
            .map_err(|e| copy_error(e.kind()))
    }
}

struct RemoteTarget<'a, P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
{
    rsm: &'a Rsm<P, L, E, I, F>,
    seg: ImportHandle,
    base: usize,
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize> Target
    for RemoteTarget<'_, P, L, E, I, F>
{
    fn write(&mut self, off: usize, src: &[u8]) -> RsmResult<()> {
        self.rsm.remote_write(self.seg, self.base + off, src)
    }
    fn read(&mut self, off: usize, dst: &mut [u8]) -> RsmResult<()> {
        self.rsm.remote_read(self.seg, self.base + off, dst)
    }
}

/// The items of the typed forms: native-endian conversion (no swapping, spec §9.18).
trait Item: Copy + Default {
    const SIZE: usize;
    fn store(self, out: &mut [u8]);
    fn load(bytes: &[u8]) -> Self;
}

macro_rules! item {
    ($($t:ty),*) => {$(
        impl Item for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn store(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }
            fn load(bytes: &[u8]) -> Self {
                let mut b = [0u8; core::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_ne_bytes(b)
            }
        }
    )*};
}
item!(u8, u16, u32, u64);

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// Checks 5–10 (see [`Rsm::get`]) and, on success, the references for the copy. `None`
    /// while the exported segment is being rebound (the caller waits and retries);
    /// `Some(Ok(None))` for a validated zero-length access.
    fn access_acquire(
        &self,
        st: &mut State<P, L, E, I, F>,
        seg: ImportHandle,
        offset: i64,
        dir: Direction,
        len: Option<usize>,
    ) -> Option<RsmResult<Option<Held<P::Region>>>> {
        let (ii, ig, off, len) = match self.access_check(st, seg, offset, dir, len) {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        };
        if len == 0 {
            return Some(Ok(None));
        }
        // Both exist: `check` just found them under this same lock hold.
        let Some((ei, eg)) = st.imports.get(ii, ig).map(|im| im.export) else {
            return Some(Err(RsmError::BadSegHndl));
        };
        let Some(ex) = st.exports.get_mut(ei, eg) else {
            return Some(Err(RsmError::ConnAborted));
        };
        if ex.quiesced {
            return None;
        }
        ex.busy += 1;
        let region = ex.region.clone();
        if let Some(im) = st.imports.get_mut(ii, ig) {
            im.busy += 1;
        }
        Some(Ok(Some(Held {
            region,
            off,
            import: (ii, ig),
            export: (ei, eg),
        })))
    }

    /// Checks 5–10 of [`Rsm::get`]: the import slot, byte offset and length on success.
    fn access_check(
        &self,
        st: &State<P, L, E, I, F>,
        seg: ImportHandle,
        offset: i64,
        dir: Direction,
        len: Option<usize>,
    ) -> RsmResult<(u16, u32, usize, usize)> {
        let (ii, ig) = self.import_slot(st, seg)?;
        let im = st.imports.get(ii, ig).ok_or(RsmError::BadSegHndl)?;
        let need = match dir {
            Direction::Put => Permission::WRITE,
            Direction::Get => Permission::READ,
        };
        if !im.perm.contains(need) {
            return Err(RsmError::PermDenied);
        }
        let len = len.ok_or(RsmError::BadLength)?;
        let off = usize::try_from(offset).map_err(|_| RsmError::BadOffset)?;
        if off.checked_add(len).is_none_or(|end| end > im.size) {
            return Err(RsmError::BadOffset);
        }
        if im.mode == BarrierMode::Implicit && im.barrier.is_none() {
            return Err(RsmError::BarrierUninitialized);
        }
        if !st.import_alive(im) {
            return Err(im.lost());
        }
        Ok((ii, ig, off, len))
    }

    /// Drop the references of [`Self::access_acquire`] and wake waiters. Returns `false` if
    /// the connection was force-disconnected meanwhile (spec §4.5 step 10).
    fn access_release(&self, h: &Held<P::Region>) -> bool {
        let (alive, waiters) = {
            let mut st = self.state.lock();
            let alive = st
                .imports
                .get(h.import.0, h.import.1)
                .is_some_and(|im| st.connected_export(im).is_some());
            if let Some(im) = st.imports.get_mut(h.import.0, h.import.1) {
                im.busy -= 1;
            }
            if let Some(ex) = st.exports.get_mut(h.export.0, h.export.1) {
                ex.busy -= 1;
            }
            (alive, st.waiters > 0)
        };
        self.wake_if(waiters);
        alive
    }

    /// The one access path: validate (checks 1, 4–10 of [`Rsm::get`] / [`Rsm::get16`]), then
    /// run `copy` on the exporter's region at the byte offset, with no lock held.
    fn access_with(
        &self,
        seg: ImportHandle,
        offset: i64,
        align: usize,
        dir: Direction,
        len: Option<usize>,
        copy: impl FnOnce(&mut dyn Target) -> RsmResult<()>,
    ) -> RsmResult<()> {
        if seg.is_null() {
            return Err(RsmError::BadSegHndl);
        }
        let align = i64::try_from(align.max(1)).unwrap_or(i64::MAX);
        if offset.rem_euclid(align) != 0 {
            return Err(RsmError::BadMemAlignment);
        }
        if self.is_remote(seg) {
            let checked = self.access_check(&self.state.lock(), seg, offset, dir, len);
            let (_, _, off, len) = checked?;
            if len == 0 {
                return Ok(());
            }
            return copy(&mut RemoteTarget {
                rsm: self,
                seg,
                base: off,
            });
        }
        let Some(held) = self.wait_for(|st| self.access_acquire(st, seg, offset, dir, len))? else {
            return Ok(());
        };
        let result = copy(&mut LocalTarget {
            mem: &self.platform,
            region: &held.region,
            base: held.off,
        });
        if !self.access_release(&held) {
            return Err(RsmError::ConnAborted);
        }
        result
    }

    /// The byte-oriented access every put/get form goes through (the C entry points use it
    /// directly with their element size as `align`).
    pub(crate) fn access_bytes(
        &self,
        seg: ImportHandle,
        offset: i64,
        align: usize,
        bytes: Bytes<'_>,
    ) -> RsmResult<()> {
        match bytes {
            Bytes::Put(src) => {
                self.access_with(seg, offset, align, Direction::Put, Some(src.len()), |t| {
                    t.write(0, src)
                })
            }
            Bytes::Get(dst) => {
                self.access_with(seg, offset, align, Direction::Get, Some(dst.len()), |t| {
                    t.read(0, dst)
                })
            }
            Bytes::Unrepresentable(dir) => {
                self.access_with(seg, offset, align, dir, None, |_| Ok(()))
            }
        }
    }

    fn put_items<T: Item>(&self, seg: ImportHandle, offset: i64, src: &[T]) -> RsmResult<()> {
        let len = src.len().checked_mul(T::SIZE);
        self.access_with(seg, offset, T::SIZE, Direction::Put, len, |t| {
            let mut buf = [0u8; CHUNK];
            for (k, items) in src.chunks(CHUNK / T::SIZE).enumerate() {
                let n = items.len() * T::SIZE;
                for (item, out) in items.iter().zip(buf.chunks_exact_mut(T::SIZE)) {
                    item.store(out);
                }
                t.write(k * CHUNK, &buf[..n])?;
            }
            Ok(())
        })
    }

    fn get_items<T: Item>(&self, seg: ImportHandle, offset: i64, dst: &mut [T]) -> RsmResult<()> {
        let len = dst.len().checked_mul(T::SIZE);
        self.access_with(seg, offset, T::SIZE, Direction::Get, len, |t| {
            let mut buf = [0u8; CHUNK];
            for (k, items) in dst.chunks_mut(CHUNK / T::SIZE).enumerate() {
                let n = items.len() * T::SIZE;
                t.read(k * CHUNK, &mut buf[..n])?;
                for (item, bytes) in items.iter_mut().zip(buf.chunks_exact(T::SIZE)) {
                    *item = T::load(bytes);
                }
            }
            Ok(())
        })
    }

    /// Copy `dst.len()` bytes from `offset` in the import segment into `dst`.
    ///
    /// Check order (spec §4.5, with its step numbers; the first failing check wins):
    /// * step 1: NULL handle → `RSMERR_BAD_SEG_HNDL`;
    /// * step 5: stale, disconnected or wrong-kind handle → `RSMERR_BAD_SEG_HNDL`;
    /// * step 7: the import lacks READ → `RSMERR_PERM_DENIED` (only the permission the
    ///   operation needs: a read-only import can get, spec §9.33);
    /// * step 8: `offset < 0` or `offset + len` past the segment's end → `RSMERR_BAD_OFFSET`
    ///   (spec §9.12; checked arithmetic, so `i64::MAX` is simply out of range);
    /// * step 9: implicit mode (the default) and no barrier initialised with
    ///   [`Rsm::init_barrier`] → `RSMERR_BARRIER_UNINITIALIZED` (spec §9.1);
    /// * step 10: the connection was force-disconnected (the exporter unpublished or destroyed
    ///   the segment, spec §6.4) → `RSMERR_CONN_ABORTED`, in both modes; nothing is read
    ///   (our choice; illumos reads a trash page and reports the abort afterwards).
    ///
    /// A forced disconnect that happens while the bytes move also returns
    /// `RSMERR_CONN_ABORTED` (illumos' generation check after the operation overrides its
    /// result). A zero-length get is a validated no-op: every check runs, nothing is copied.
    /// Eight-byte words at 8-aligned offsets are read with single loads. A get during a rebind
    /// of the exported segment waits until the new pages are in place.
    #[doc(alias = "rsm_memseg_import_get")]
    pub fn get(&self, seg: ImportHandle, offset: i64, dst: &mut [u8]) -> RsmResult<()> {
        self.access_bytes(seg, offset, 1, Bytes::Get(dst))
    }

    /// Copy `src` into the import segment at `offset`.
    ///
    /// Checks as for [`Rsm::get`], with WRITE permission needed. Nothing is written to an
    /// aborted connection (`RSMERR_CONN_ABORTED`; illumos would let the bytes vanish into a
    /// trash page). Eight-byte words at 8-aligned offsets are stored with single stores.
    #[doc(alias = "rsm_memseg_import_put")]
    pub fn put(&self, seg: ImportHandle, offset: i64, src: &[u8]) -> RsmResult<()> {
        self.access_bytes(seg, offset, 1, Bytes::Put(src))
    }

    /// Read `dst.len()` bytes (`rep_cnt` = slice length) from `offset`; identical to
    /// [`Rsm::get`].
    #[doc(alias = "rsm_memseg_import_get8")]
    pub fn get8(&self, seg: ImportHandle, offset: i64, dst: &mut [u8]) -> RsmResult<()> {
        self.get_items(seg, offset, dst)
    }

    /// Read `dst.len()` native-endian 16-bit items from `offset` (no byte swapping, spec
    /// §9.18).
    ///
    /// Checks as for [`Rsm::get`], with one more between the NULL handle and the handle's
    /// state: `offset` not a multiple of 2 → `RSMERR_BAD_MEM_ALIGNMENT` (spec §4.5 step 4).
    #[doc(alias = "rsm_memseg_import_get16")]
    pub fn get16(&self, seg: ImportHandle, offset: i64, dst: &mut [u16]) -> RsmResult<()> {
        self.get_items(seg, offset, dst)
    }

    /// Read `dst.len()` native-endian 32-bit items from `offset`; as [`Rsm::get16`] with
    /// `offset` a multiple of 4.
    #[doc(alias = "rsm_memseg_import_get32")]
    pub fn get32(&self, seg: ImportHandle, offset: i64, dst: &mut [u32]) -> RsmResult<()> {
        self.get_items(seg, offset, dst)
    }

    /// Read `dst.len()` native-endian 64-bit items from `offset`; as [`Rsm::get16`] with
    /// `offset` a multiple of 8. Each item is read with one 8-byte load: a concurrent
    /// [`Rsm::put64`] is seen entirely or not at all, per word.
    #[doc(alias = "rsm_memseg_import_get64")]
    pub fn get64(&self, seg: ImportHandle, offset: i64, dst: &mut [u64]) -> RsmResult<()> {
        self.get_items(seg, offset, dst)
    }

    /// Write the bytes of `src` (`rep_cnt` = slice length) at `offset`; identical to
    /// [`Rsm::put`].
    #[doc(alias = "rsm_memseg_import_put8")]
    pub fn put8(&self, seg: ImportHandle, offset: i64, src: &[u8]) -> RsmResult<()> {
        self.put_items(seg, offset, src)
    }

    /// Write `src.len()` native-endian 16-bit items at `offset` (no byte swapping, spec
    /// §9.18).
    ///
    /// Checks as for [`Rsm::put`], with one more between the NULL handle and the handle's
    /// state: `offset` not a multiple of 2 → `RSMERR_BAD_MEM_ALIGNMENT` (spec §4.5 step 4).
    #[doc(alias = "rsm_memseg_import_put16")]
    pub fn put16(&self, seg: ImportHandle, offset: i64, src: &[u16]) -> RsmResult<()> {
        self.put_items(seg, offset, src)
    }

    /// Write `src.len()` native-endian 32-bit items at `offset`; as [`Rsm::put16`] with
    /// `offset` a multiple of 4.
    #[doc(alias = "rsm_memseg_import_put32")]
    pub fn put32(&self, seg: ImportHandle, offset: i64, src: &[u32]) -> RsmResult<()> {
        self.put_items(seg, offset, src)
    }

    /// Write `src.len()` native-endian 64-bit items at `offset`; as [`Rsm::put16`] with
    /// `offset` a multiple of 8. Each item is stored with one 8-byte store: a concurrent
    /// [`Rsm::get64`] never sees half of it.
    #[doc(alias = "rsm_memseg_import_put64")]
    pub fn put64(&self, seg: ImportHandle, offset: i64, src: &[u64]) -> RsmResult<()> {
        self.put_items(seg, offset, src)
    }
}
