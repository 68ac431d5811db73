//! C-shaped put/get, barriers and barrier modes (spec §4.5, §4.8). The check order of the
//! put/get group is documented on [`rsm_memseg_import_get`].

use crate::access::Bytes;
use crate::barrier::Barrier;
use crate::capi::{code, store};
use crate::error::{RsmError, RsmResult};
use crate::handle::ImportHandle;
use crate::node::Rsm;
use crate::sg::Direction;
use crate::types::{BarrierMode, BarrierType};
use rsm_hal::Platform;

/// Checks 1–4 and the buffer length (see [`rsm_memseg_import_get`]), then the byte-level
/// access.
fn get_n<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>(
    rsm: &Rsm<P, L, E, I, F>,
    seg: ImportHandle,
    offset: i64,
    datap: Option<&mut [u8]>,
    len: Option<usize>,
    size: usize,
) -> i32 {
    if seg.is_null() {
        return RsmError::BadSegHndl.code();
    }
    let Some(data) = datap else {
        return RsmError::BadAddr.code();
    };
    if (data.as_ptr() as usize) % size != 0 || offset.rem_euclid(size as i64) != 0 {
        return RsmError::BadMemAlignment.code();
    }
    let bytes = match len {
        None => Bytes::Unrepresentable(Direction::Get),
        Some(n) => match data.get_mut(..n) {
            Some(d) => Bytes::Get(d),
            None => return RsmError::BadAddr.code(),
        },
    };
    code(rsm.access_bytes(seg, offset, size, bytes))
}

/// Checks 1–4 and the buffer length (see [`rsm_memseg_import_get`]), then the byte-level
/// access.
fn put_n<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>(
    rsm: &Rsm<P, L, E, I, F>,
    seg: ImportHandle,
    offset: i64,
    datap: Option<&[u8]>,
    len: Option<usize>,
    size: usize,
) -> i32 {
    if seg.is_null() {
        return RsmError::BadSegHndl.code();
    }
    let Some(data) = datap else {
        return RsmError::BadAddr.code();
    };
    if (data.as_ptr() as usize) % size != 0 || offset.rem_euclid(size as i64) != 0 {
        return RsmError::BadMemAlignment.code();
    }
    let bytes = match len {
        None => Bytes::Unrepresentable(Direction::Put),
        Some(n) => match data.get(..n) {
            Some(d) => Bytes::Put(d),
            None => return RsmError::BadAddr.code(),
        },
    };
    code(rsm.access_bytes(seg, offset, size, bytes))
}

/// `rep_cnt` items of `size` bytes, or `None` if that many bytes cannot be addressed.
fn items(rep_cnt: u64, size: usize) -> Option<usize> {
    usize::try_from(rep_cnt).ok()?.checked_mul(size)
}

/// `rsm_memseg_import_get`: copy `length` bytes from `offset` into `dst_addr`.
///
/// Data pointers of this group are `Option<&[u8]>` / `Option<&mut [u8]>` (`None` = NULL)
/// whatever the C item type, so that a C shim passes its pointer and length through unchanged
/// and the pointer's own alignment can be checked as illumos does. Only the first `length`
/// (or `rep_cnt × N/8`) bytes are used. Check order of every put/get (spec §4.5 step numbers;
/// the first failing check wins):
/// * step 1: NULL handle → `RSMERR_BAD_SEG_HNDL`;
/// * step 2: NULL data pointer → `RSMERR_BAD_ADDR` (also with length 0);
/// * step 3: data pointer not aligned to N/8 → `RSMERR_BAD_MEM_ALIGNMENT`;
/// * step 4: `offset` not a multiple of N/8 → `RSMERR_BAD_MEM_ALIGNMENT`;
/// * our check: the data slice is shorter than `length` / `rep_cnt × N/8` →
///   `RSMERR_BAD_ADDR` (C would read or write past the caller's buffer);
/// * steps 5–10 of [`Rsm::get`] (handle state, permission, range, barrier, abort). A
///   `rep_cnt × N/8` that does not fit in `usize` is `RSMERR_BAD_LENGTH` at the range step
///   (step 8, before the offset range): the length itself is invalid, whatever the buffer.
///
/// The bytes move through the HAL in one piece, so whole aligned 8-byte words are stored and
/// loaded atomically (as by [`Rsm::put64`] / [`Rsm::get64`]).
pub fn rsm_memseg_import_get<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    dst_addr: Option<&mut [u8]>,
    length: usize,
) -> i32 {
    get_n(rsm, im_memseg, offset, dst_addr, Some(length), 1)
}

/// `rsm_memseg_import_put`: copy `length` bytes of `src_addr` to `offset`; checks as
/// [`rsm_memseg_import_get`], with WRITE permission needed ([`Rsm::put`]).
pub fn rsm_memseg_import_put<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    src_addr: Option<&[u8]>,
    length: usize,
) -> i32 {
    put_n(rsm, im_memseg, offset, src_addr, Some(length), 1)
}

/// `rsm_memseg_import_get8`: `rep_cnt` bytes into `datap`; checks as
/// [`rsm_memseg_import_get`], then [`Rsm::get8`]'s.
pub fn rsm_memseg_import_get8<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&mut [u8]>,
    rep_cnt: u64,
) -> i32 {
    get_n(rsm, im_memseg, offset, datap, items(rep_cnt, 1), 1)
}

/// `rsm_memseg_import_get16`: `rep_cnt` native-endian 16-bit items into `datap` (2-aligned);
/// checks as [`rsm_memseg_import_get`], then [`Rsm::get16`]'s.
pub fn rsm_memseg_import_get16<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&mut [u8]>,
    rep_cnt: u64,
) -> i32 {
    get_n(rsm, im_memseg, offset, datap, items(rep_cnt, 2), 2)
}

/// `rsm_memseg_import_get32`: `rep_cnt` native-endian 32-bit items into `datap` (4-aligned);
/// checks as [`rsm_memseg_import_get`], then [`Rsm::get32`]'s.
pub fn rsm_memseg_import_get32<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&mut [u8]>,
    rep_cnt: u64,
) -> i32 {
    get_n(rsm, im_memseg, offset, datap, items(rep_cnt, 4), 4)
}

/// `rsm_memseg_import_get64`: `rep_cnt` native-endian 64-bit items into `datap` (8-aligned);
/// checks as [`rsm_memseg_import_get`], then [`Rsm::get64`]'s.
pub fn rsm_memseg_import_get64<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&mut [u8]>,
    rep_cnt: u64,
) -> i32 {
    get_n(rsm, im_memseg, offset, datap, items(rep_cnt, 8), 8)
}

/// `rsm_memseg_import_put8`: `rep_cnt` bytes from `datap`; checks as
/// [`rsm_memseg_import_get`], then [`Rsm::put8`]'s.
pub fn rsm_memseg_import_put8<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&[u8]>,
    rep_cnt: u64,
) -> i32 {
    put_n(rsm, im_memseg, offset, datap, items(rep_cnt, 1), 1)
}

/// `rsm_memseg_import_put16`: `rep_cnt` native-endian 16-bit items from `datap` (2-aligned);
/// checks as [`rsm_memseg_import_get`], then [`Rsm::put16`]'s.
pub fn rsm_memseg_import_put16<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&[u8]>,
    rep_cnt: u64,
) -> i32 {
    put_n(rsm, im_memseg, offset, datap, items(rep_cnt, 2), 2)
}

/// `rsm_memseg_import_put32`: `rep_cnt` native-endian 32-bit items from `datap` (4-aligned);
/// checks as [`rsm_memseg_import_get`], then [`Rsm::put32`]'s.
pub fn rsm_memseg_import_put32<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&[u8]>,
    rep_cnt: u64,
) -> i32 {
    put_n(rsm, im_memseg, offset, datap, items(rep_cnt, 4), 4)
}

/// `rsm_memseg_import_put64`: `rep_cnt` native-endian 64-bit items from `datap` (8-aligned),
/// each stored with one 8-byte store; checks as [`rsm_memseg_import_get`], then
/// [`Rsm::put64`]'s.
pub fn rsm_memseg_import_put64<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
    offset: i64,
    datap: Option<&[u8]>,
    rep_cnt: u64,
) -> i32 {
    put_n(rsm, im_memseg, offset, datap, items(rep_cnt, 8), 8)
}

/// `rsm_memseg_import_init_barrier`: NULL handle (`RSMERR_BAD_SEG_HNDL`) → NULL `barrier`
/// (`RSMERR_BAD_BARRIER_PTR`) → [`Rsm::init_barrier`]. `ty` is ignored (spec §9.24).
pub fn rsm_memseg_import_init_barrier<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ImportHandle,
    ty: u32,
    barrier: Option<&mut Barrier>,
) -> i32 {
    if memseg.is_null() {
        return RsmError::BadSegHndl.code();
    }
    let Some(barrier) = barrier else {
        return RsmError::BadBarrierPtr.code();
    };
    code(rsm.init_barrier(memseg, BarrierType(ty), barrier))
}

/// A barrier call from C: NULL storage → `RSMERR_BAD_BARRIER_PTR`, else `op`'s code.
fn with_barrier(
    barrier: Option<&mut Barrier>,
    op: impl FnOnce(&mut Barrier) -> RsmResult<()>,
) -> i32 {
    barrier.map_or(RsmError::BadBarrierPtr.code(), |b| code(op(b)))
}

/// `rsm_memseg_import_open_barrier`: NULL → `RSMERR_BAD_BARRIER_PTR`, then
/// [`Rsm::open_barrier`].
pub fn rsm_memseg_import_open_barrier<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    barrier: Option<&mut Barrier>,
) -> i32 {
    with_barrier(barrier, |b| rsm.open_barrier(b))
}

/// `rsm_memseg_import_order_barrier`: NULL → `RSMERR_BAD_BARRIER_PTR`, then
/// [`Rsm::order_barrier`].
pub fn rsm_memseg_import_order_barrier<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    barrier: Option<&mut Barrier>,
) -> i32 {
    with_barrier(barrier, |b| rsm.order_barrier(b))
}

/// `rsm_memseg_import_close_barrier`: NULL → `RSMERR_BAD_BARRIER_PTR`, then
/// [`Rsm::close_barrier`].
pub fn rsm_memseg_import_close_barrier<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    barrier: Option<&mut Barrier>,
) -> i32 {
    with_barrier(barrier, |b| rsm.close_barrier(b))
}

/// `rsm_memseg_import_destroy_barrier`: NULL → `RSMERR_BAD_BARRIER_PTR`, then
/// [`Rsm::destroy_barrier`].
pub fn rsm_memseg_import_destroy_barrier<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    barrier: Option<&mut Barrier>,
) -> i32 {
    with_barrier(barrier, |b| rsm.destroy_barrier(b))
}

/// `rsm_memseg_import_set_mode`: [`Rsm::set_mode`] (handle, then a mode other than 0/1 →
/// `RSMERR_BAD_MODE`).
pub fn rsm_memseg_import_set_mode<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ImportHandle,
    mode: u32,
) -> i32 {
    code(rsm.set_mode(memseg, mode))
}

/// `rsm_memseg_import_get_mode`: NULL handle (`RSMERR_BAD_SEG_HNDL`) → NULL `mode`
/// (`RSMERR_BAD_ADDR`; our choice, illumos does not check it) → [`Rsm::get_mode`]; the mode is
/// stored through `mode` on success.
pub fn rsm_memseg_import_get_mode<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ImportHandle,
    mode: Option<&mut BarrierMode>,
) -> i32 {
    if memseg.is_null() {
        return RsmError::BadSegHndl.code();
    }
    let Some(out) = mode else {
        return RsmError::BadAddr.code();
    };
    store(rsm.get_mode(memseg), out)
}
