//! C-shaped entry points: the RSMAPI functions with C's argument shapes, in safe Rust.
//!
//! Each function has the C name and takes out-parameters as `Option<&mut T>` (`None` = a NULL
//! pointer), access lists as `Option<&[AccessEntry]>` plus a length, flags and permissions as
//! raw integers, and returns the C `int`: [`RSM_SUCCESS`] (0) or an `RSMERR_*` code. The NULL
//! checks sit exactly where illumos has them in the check order (spec §4, §9.10), then the call
//! goes to the typed [`Rsm`] method, whose own checks follow. A C shim maps its pointers onto
//! these functions one-to-one; the conformance suite uses them for the NULL cases of spec §10.

use crate::error::{RsmError, RSM_SUCCESS};
use crate::handle::{ControllerHandle, ExportHandle, ImportHandle, LocalMemHandle};
use crate::node::Rsm;
use crate::sg::ScatGath;
use crate::types::{AccessEntry, ControllerAttr, CreateFlags, NodeId, Permission, SegmentId};
use rsm_hal::{Platform, Region};

mod access;
mod events;
mod map;
pub use access::*;
pub use events::*;
pub use map::*;

/// The C `int` of a typed result: [`RSM_SUCCESS`] (0) or the error's `RSMERR_*` code.
pub fn code<T>(r: Result<T, RsmError>) -> i32 {
    match r {
        Ok(_) => RSM_SUCCESS,
        Err(e) => e.code(),
    }
}

/// Store `v` through `out` and return success, or return the error code.
pub(crate) fn store<T>(r: Result<T, RsmError>, out: &mut T) -> i32 {
    match r {
        Ok(v) => {
            *out = v;
            RSM_SUCCESS
        }
        Err(e) => e.code(),
    }
}

/// `rsm_get_controller`: NULL `controller` → `RSMERR_BAD_CTLR_HNDL`, then [`Rsm::get_controller`].
pub fn rsm_get_controller<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    name: Option<&str>,
    controller: Option<&mut ControllerHandle>,
) -> i32 {
    let Some(out) = controller else {
        return RsmError::BadCtlrHndl.code();
    };
    store(rsm.get_controller(name), out)
}

/// `rsm_get_controller_attr`: NULL handle → `RSMERR_BAD_CTLR_HNDL`; NULL `attr` →
/// `RSMERR_BAD_ADDR`; then [`Rsm::get_controller_attr`].
pub fn rsm_get_controller_attr<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    chdl: ControllerHandle,
    attr: Option<&mut ControllerAttr>,
) -> i32 {
    if chdl.is_null() {
        return RsmError::BadCtlrHndl.code();
    }
    let Some(out) = attr else {
        return RsmError::BadAddr.code();
    };
    store(rsm.get_controller_attr(chdl), out)
}

/// `rsm_release_controller`: [`Rsm::release_controller`].
pub fn rsm_release_controller<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    chdl: ControllerHandle,
) -> i32 {
    code(rsm.release_controller(chdl))
}

/// `rsm_create_localmemory_handle`: address → controller → NULL `l_handle`
/// (`RSMERR_BAD_LOCALMEM_HNDL`) → the rest of [`Rsm::create_localmemory_handle`]'s order.
pub fn rsm_create_localmemory_handle<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    handle: ControllerHandle,
    l_handle: Option<&mut LocalMemHandle>,
    local: P::Region,
) -> i32 {
    if local.addr() == 0 || local.addr() % crate::types::PAGE_SIZE != 0 {
        return RsmError::BadAddr.code();
    }
    if let Err(e) = rsm.get_controller_attr(handle) {
        return e.code();
    }
    let Some(out) = l_handle else {
        return RsmError::BadLocalmemHndl.code();
    };
    store(rsm.create_localmemory_handle(handle, local), out)
}

/// `rsm_free_localmemory_handle`: [`Rsm::free_localmemory_handle`].
pub fn rsm_free_localmemory_handle<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    handle: ControllerHandle,
    l_handle: LocalMemHandle,
) -> i32 {
    code(rsm.free_localmemory_handle(handle, l_handle))
}

/// `rsm_memseg_export_create`: controller → NULL `memseg` (`RSMERR_BAD_SEG_HNDL`) → the rest
/// of [`Rsm::export_create`]'s order. `flags` bits other than the two defined are ignored.
pub fn rsm_memseg_export_create<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    controller: ControllerHandle,
    memseg: Option<&mut ExportHandle>,
    region: P::Region,
    flags: u32,
) -> i32 {
    if let Err(e) = rsm.get_controller_attr(controller) {
        return e.code();
    }
    let Some(out) = memseg else {
        return RsmError::BadSegHndl.code();
    };
    *out = ExportHandle::NULL;
    store(
        rsm.export_create(controller, region, CreateFlags::from_bits_retain(flags)),
        out,
    )
}

/// `rsm_memseg_export_destroy`: [`Rsm::export_destroy`].
pub fn rsm_memseg_export_destroy<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ExportHandle,
) -> i32 {
    code(rsm.export_destroy(memseg))
}

/// `rsm_memseg_export_rebind`: [`Rsm::export_rebind`] (`off` is unused, as in illumos).
pub fn rsm_memseg_export_rebind<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ExportHandle,
    region: P::Region,
    _off: i64,
) -> i32 {
    code(rsm.export_rebind(memseg, region))
}

/// The access list a C caller passed: NULL with a non-zero length → `RSMERR_BAD_ACL`; a
/// length beyond the array given → `RSMERR_BAD_ACL` (C would read past it).
fn acl_arg(acl: Option<&[AccessEntry]>, len: u32) -> Result<&[AccessEntry], RsmError> {
    match (acl, len) {
        (_, 0) => Ok(&[]),
        (None, _) => Err(RsmError::BadAcl),
        (Some(a), n) => a.get(..n as usize).ok_or(RsmError::BadAcl),
    }
}

/// `rsm_memseg_export_publish`: NULL `segment_id` (`RSMERR_BAD_SEGID`, before the handle!) →
/// NULL handle → NULL list with a length (`RSMERR_BAD_ACL`) → [`Rsm::export_publish`]. On
/// success the id is stored through `segment_id`.
pub fn rsm_memseg_export_publish<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ExportHandle,
    segment_id: Option<&mut SegmentId>,
    access_list: Option<&[AccessEntry]>,
    access_list_length: u32,
) -> i32 {
    let Some(id) = segment_id else {
        return RsmError::BadSegid.code();
    };
    if memseg.is_null() {
        return RsmError::BadSegHndl.code();
    }
    let acl = match acl_arg(access_list, access_list_length) {
        Ok(a) => a,
        Err(e) => return e.code(),
    };
    let requested = *id;
    store(rsm.export_publish(memseg, requested, acl), id)
}

/// `rsm_memseg_export_unpublish`: [`Rsm::export_unpublish`].
pub fn rsm_memseg_export_unpublish<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ExportHandle,
) -> i32 {
    code(rsm.export_unpublish(memseg))
}

/// `rsm_memseg_export_republish`: handle → not published → NULL list with a length
/// (`RSMERR_BAD_ACL`) → [`Rsm::export_republish`].
pub fn rsm_memseg_export_republish<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    memseg: ExportHandle,
    access_list: Option<&[AccessEntry]>,
    access_list_length: u32,
) -> i32 {
    match rsm.export_segment_id(memseg) {
        Err(e) => return e.code(),
        Ok(None) => return RsmError::SegNotPublished.code(),
        Ok(Some(_)) => {}
    }
    match acl_arg(access_list, access_list_length) {
        Ok(acl) => code(rsm.export_republish(memseg, acl)),
        Err(e) => e.code(),
    }
}

/// `rsm_memseg_import_connect`: controller → NULL `im_memseg` (`RSMERR_BAD_SEG_HNDL`, spec
/// §9.11; illumos crashes) → [`Rsm::import_connect`].
pub fn rsm_memseg_import_connect<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    controller: ControllerHandle,
    node_id: NodeId,
    segment_id: SegmentId,
    perm: u32,
    im_memseg: Option<&mut ImportHandle>,
) -> i32 {
    if let Err(e) = rsm.get_controller_attr(controller) {
        return e.code();
    }
    let Some(out) = im_memseg else {
        return RsmError::BadSegHndl.code();
    };
    *out = ImportHandle::NULL;
    let perm = Permission::from_bits_retain(perm);
    store(
        rsm.import_connect(controller, node_id, segment_id, perm),
        out,
    )
}

/// `rsm_memseg_import_disconnect`: [`Rsm::import_disconnect`].
pub fn rsm_memseg_import_disconnect<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    im_memseg: ImportHandle,
) -> i32 {
    code(rsm.import_disconnect(im_memseg))
}

/// `rsm_memseg_import_putv`: NULL `sg_io` → `RSMERR_BAD_SGIO`, then [`Rsm::putv`].
pub fn rsm_memseg_import_putv<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    sg_io: Option<&mut ScatGath<'_, P::Region>>,
) -> i32 {
    match sg_io {
        None => RsmError::BadSgio.code(),
        Some(sg) => code(rsm.putv(sg)),
    }
}

/// `rsm_memseg_import_getv`: NULL `sg_io` → `RSMERR_BAD_SGIO`, then [`Rsm::getv`].
pub fn rsm_memseg_import_getv<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    sg_io: Option<&mut ScatGath<'_, P::Region>>,
) -> i32 {
    match sg_io {
        None => RsmError::BadSgio.code(),
        Some(sg) => code(rsm.getv(sg)),
    }
}

/// `rsm_get_segmentid_range`: any NULL argument → `RSMERR_BAD_ADDR`, then
/// [`Rsm::get_segmentid_range`]; on success `baseid` and `length` are stored.
pub fn rsm_get_segmentid_range<
    P: Platform,
    const L: usize,
    const E: usize,
    const I: usize,
    const F: usize,
>(
    rsm: &Rsm<P, L, E, I, F>,
    appid: Option<&str>,
    baseid: Option<&mut SegmentId>,
    length: Option<&mut u32>,
) -> i32 {
    let (Some(appid), Some(baseid), Some(length)) = (appid, baseid, length) else {
        return RsmError::BadAddr.code();
    };
    match rsm.get_segmentid_range(appid) {
        Ok(r) => {
            *baseid = r.base;
            *length = r.length;
            RSM_SUCCESS
        }
        Err(e) => e.code(),
    }
}
