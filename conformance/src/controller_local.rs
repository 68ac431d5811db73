//! §4.1 controller operations and local memory handles (seed man page, §4.6, §5.1,
//! §9.6–§9.9), with the check order of each function (§4 "Impl order", §9.10).
//!
//! Numeric codes are asserted through the C-shaped entry points of `rsm_core::capi` (the only
//! way to express NULL out-pointers); typed `RsmError`s through the Rust API.

use crate::{check, check_eq, check_ne, node, Harness, Outcome};
use rsm_core::capi;
use rsm_core::{ControllerHandle, RsmError};

crate::table! {
    get_controller_null_out_pointer_is_bad_ctlr_hndl,
    get_controller_null_name_is_loopback,
    get_controller_twice_same_handle_refcounted,
}

/// §10 Controller: NULL out-pointer → 3 (RSMERR_BAD_CTLR_HNDL); §4.1 impl order (the
/// out-pointer is checked before the name is looked at).
fn get_controller_null_out_pointer_is_bad_ctlr_hndl<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    check_eq!(capi::rsm_get_controller(&n, None, None), 3);
    check_eq!(capi::rsm_get_controller(&n, Some("loopback"), None), 3);
    check_eq!(capi::rsm_get_controller(&n, Some("rsmnet0"), None), 3);
    // Order: NULL out-pointer wins over an unknown name.
    check_eq!(capi::rsm_get_controller(&n, Some("sci0"), None), 3);
    // The failed calls took no reference: one get, one release, then the handle is dead.
    let c = n.get_controller(None)?;
    check_eq!(capi::rsm_release_controller(&n, c), 0);
    check_eq!(capi::rsm_release_controller(&n, c), 3);
    Ok(())
}

/// §10 Controller: NULL name → loopback; §4.1, §9.22.
fn get_controller_null_name_is_loopback<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let mut by_null = ControllerHandle::NULL;
    check_eq!(capi::rsm_get_controller(&n, None, Some(&mut by_null)), 0);
    check!(!by_null.is_null());
    let by_name = n.get_controller(Some("loopback"))?;
    check_eq!(by_null, by_name);
    let net = n.get_controller(Some("rsmnet0"))?;
    check_ne!(by_null, net);
    Ok(())
}

/// §10 Controller: same name twice → same handle, two releases succeed, third → 3; §4.1.
fn get_controller_twice_same_handle_refcounted<H: Harness>(h: &H) -> Outcome {
    for name in [None, Some("rsmnet0")] {
        let n = node(h);
        let mut a = ControllerHandle::NULL;
        let mut b = ControllerHandle::NULL;
        check_eq!(capi::rsm_get_controller(&n, name, Some(&mut a)), 0);
        check_eq!(capi::rsm_get_controller(&n, name, Some(&mut b)), 0);
        check_eq!(a, b, "{name:?}");
        check_eq!(capi::rsm_release_controller(&n, a), 0);
        // Still referenced once: usable.
        check!(n.get_controller_attr(a).is_ok());
        check_eq!(capi::rsm_release_controller(&n, b), 0);
        check_eq!(capi::rsm_release_controller(&n, a), 3);
        check_eq!(n.release_controller(a), Err(RsmError::BadCtlrHndl));
    }
    Ok(())
}
