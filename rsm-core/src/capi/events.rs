//! C-shaped entry points for events (spec §4.9; see the parent module for the conventions).
//!
//! C passes an import or export handle as `void *memseg`; here it is the raw handle value
//! (`u64`), classified by [`SegmentRef::from_raw`]. 0 is the NULL handle.

use crate::error::{RsmError, RSM_SUCCESS};
use crate::events::PollFd;
use crate::handle::SegmentRef;
use crate::node::Rsm;
use crate::types::SigpostFlags;
use rsm_hal::Platform;

use super::{code, store};

/// `rsm_intr_signal_post`: [`Rsm::intr_signal_post`] on the raw handle `memseg` (NULL →
/// `RSMERR_BAD_SEG_HNDL`); unknown `flags` bits are ignored.
pub fn rsm_intr_signal_post<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: u64,
    flags: u32,
) -> i32 {
    code(rsm.intr_signal_post(
        SegmentRef::from_raw(memseg),
        SigpostFlags::from_bits_truncate(flags),
    ))
}

/// `rsm_intr_signal_wait`: [`Rsm::intr_signal_wait`] on the raw handle `memseg` (NULL →
/// `RSMERR_BAD_SEG_HNDL`); `timeout` in ms, −1 = forever, 0 = poll.
pub fn rsm_intr_signal_wait<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: u64,
    timeout: i32,
) -> i32 {
    code(rsm.intr_signal_wait(SegmentRef::from_raw(memseg), timeout))
}

/// `rsm_memseg_get_pollfd`: NULL `memseg` → `RSMERR_BAD_SEG_HNDL` first, then NULL `fd` →
/// `RSMERR_BAD_ADDR` (our choice; illumos dereferences it), then [`Rsm::get_pollfd`]; on
/// success the descriptor is stored through `fd` (which is left untouched on failure).
pub fn rsm_memseg_get_pollfd<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: u64,
    fd: Option<&mut PollFd>,
) -> i32 {
    if memseg == 0 {
        return RsmError::BadSegHndl.code();
    }
    let Some(out) = fd else {
        return RsmError::BadAddr.code();
    };
    store(rsm.get_pollfd(SegmentRef::from_raw(memseg)), out)
}

/// `rsm_memseg_release_pollfd`: [`Rsm::release_pollfd`] on the raw handle `memseg` (NULL →
/// `RSMERR_BAD_SEG_HNDL`).
pub fn rsm_memseg_release_pollfd<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: u64,
) -> i32 {
    code(rsm.release_pollfd(SegmentRef::from_raw(memseg)))
}

/// `rsm_intr_signal_wait_pollfd`: [`Rsm::intr_signal_wait_pollfd`] over the first `nfds`
/// entries of `fds`, with `other` reporting ordinary descriptors.
///
/// `*numfdsp` (optional) is zeroed first and receives the number of entries with events on
/// success. Argument errors, mapped as illumos maps poll(2)'s errno (spec §4.9):
/// NULL `fds` with `nfds > 0` is poll's `EFAULT` → `RSMERR_BAD_ADDR`; `nfds` larger than
/// the array given (C would read past it; poll's `EINVAL` for a bad `nfds`) →
/// `RSMERR_BAD_ARGS_ERRORS`. NULL `fds` with `nfds == 0` just waits out the timeout
/// (`RSMERR_TIMEOUT`), like poll(2). Nothing ready by the deadline → `RSMERR_TIMEOUT`.
pub fn rsm_intr_signal_wait_pollfd<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    fds: Option<&mut [PollFd]>,
    nfds: u64,
    timeout: i32,
    numfdsp: Option<&mut u32>,
    other: impl FnMut(i32, i16) -> i16,
) -> i32 {
    let mut numfdsp = numfdsp;
    if let Some(n) = numfdsp.as_deref_mut() {
        *n = 0;
    }
    let fds: &mut [PollFd] = match (fds, nfds) {
        (None, 0) => &mut [],
        (None, _) => return RsmError::BadAddr.code(),
        (Some(a), n) => match usize::try_from(n).ok().and_then(|n| a.get_mut(..n)) {
            Some(a) => a,
            None => return RsmError::BadArgsErrors.code(),
        },
    };
    match rsm.intr_signal_wait_pollfd(fds, timeout, other) {
        Ok(n) => {
            if let Some(out) = numfdsp {
                *out = u32::try_from(n).unwrap_or(u32::MAX);
            }
            RSM_SUCCESS
        }
        Err(e) => e.code(),
    }
}
