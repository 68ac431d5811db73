//! C-shaped entry points for this group (see the parent module): mapping (spec §4.7) and the
//! interconnect topology (spec §4.2).

use super::{code, store};
use crate::error::RsmError;
use crate::handle::ImportHandle;
use crate::node::Rsm;
use crate::topology::Topology;
use crate::types::{MapAttr, Permission, RSM_MAP_FIXED};
use rsm_hal::Platform;

/// `rsm_memseg_import_map`: NULL `seg` → `RSMERR_BAD_SEG_HNDL`; NULL `address` →
/// `RSMERR_BAD_ADDR`; then [`Rsm::import_map`]'s order. On success the window is stored
/// through `address` (C's `*address`).
///
/// `attr` is read as illumos reads it: any value with the `RSM_MAP_FIXED` bit set asks for a
/// fixed mapping at `fixed_addr` (C passes it in `*address`), any other value — `RSM_MAP_NONE`,
/// `RSM_MAP_RESERVED`, unknown values — lets the system choose and `fixed_addr` is ignored.
/// A fixed address of 0 is page-aligned and, like `mmap` at 0, fails with
/// `RSMERR_MAP_FAILED`. `perm` is taken raw, so that values above 0600 give
/// `RSMERR_BAD_PERMS`.
#[allow(clippy::too_many_arguments)] // the C signature, plus the node and C's `*address` input
pub fn rsm_memseg_import_map<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    seg: ImportHandle,
    address: Option<&mut Option<P::Region>>,
    attr: u32,
    perm: u32,
    offset: i64,
    length: usize,
    fixed_addr: usize,
) -> i32 {
    if seg.is_null() {
        return RsmError::BadSegHndl.code();
    }
    let Some(out) = address else {
        return RsmError::BadAddr.code();
    };
    let (attr, fixed) = if attr & RSM_MAP_FIXED != 0 {
        (MapAttr::Fixed, Some(fixed_addr))
    } else {
        (MapAttr::None, None)
    };
    let perm = Permission::from_bits_retain(perm);
    match rsm.import_map(seg, attr, perm, offset, length, fixed) {
        Ok(window) => store(Ok(Some(window)), out),
        Err(e) => e.code(),
    }
}

/// `rsm_memseg_import_unmap`: [`Rsm::import_unmap`].
pub fn rsm_memseg_import_unmap<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    seg: ImportHandle,
) -> i32 {
    code(rsm.import_unmap(seg))
}

/// `rsm_get_interconnect_topology`: NULL `topology_data` → `RSMERR_BAD_TOPOLOGY_PTR`; else
/// `*topology_data` is set to `None` (C's NULL) first, then [`Rsm::get_interconnect_topology`]
/// fills it on success.
pub fn rsm_get_interconnect_topology<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
    const C: usize,
    const R: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    topology_data: Option<&mut Option<Topology<C, R>>>,
) -> i32 {
    let Some(out) = topology_data else {
        return RsmError::BadTopologyPtr.code();
    };
    *out = None;
    store(rsm.get_interconnect_topology().map(Some), out)
}

/// `rsm_free_interconnect_topology`: releases the snapshot; `None` (C's NULL) is ignored.
pub fn rsm_free_interconnect_topology<const C: usize, const R: usize>(
    topology_data: Option<Topology<C, R>>,
) {
    drop(topology_data);
}
