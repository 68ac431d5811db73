//! §4.1 controller operations and local memory handles (seed man page, §4.6, §5.1,
//! §9.6–§9.9), with the check order of each function (§4 "Impl order", §9.10) and the choices
//! rsm-rs documents in its rustdoc (§9.7, §9.22).
//!
//! Numeric codes are asserted through the C-shaped entry points of `rsm_core::capi` (the only
//! way to express NULL out-pointers); typed `RsmError`s through the Rust API.
//!
//! The host backend's own pin-quota check (`HostPlatform::with_pin_quota`) is not a
//! platform-generic check: it lives in `tests/tests/host_controller_local.rs`.

use crate::{
    check, check_eq, check_ne, node, node_with, pat, read_bytes, small_node, Fail, Harness, Must,
    Needs, Outcome,
};
use rsm_core::capi;
use rsm_core::{
    Config, ControllerAttr, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec,
    LocalMemHandle, Permission, RsmError,
};
use rsm_hal::{Region, PAGE_SIZE};

const PAGE: usize = PAGE_SIZE;
/// An aligned address far outside any platform's RAM (never allocated).
const UNMAPPED: usize = 0x7000_0000_0000;

use crate::fixture::Fx;

crate::table! {
    get_controller_null_out_pointer_is_bad_ctlr_hndl,
    get_controller_null_name_is_loopback,
    get_controller_twice_same_handle_refcounted,
    get_controller_unknown_names_are_ctlr_not_present,
    controller_names_case_insensitive_and_units,
    loopback_ignores_any_unit_even_one_overflowing_u32,
    controller_name_length_limit,
    get_controller_attr_null_attr_is_bad_addr,
    get_controller_attr_page_size_4096_for_both_controllers,
    released_controller_is_bad_ctlr_hndl_everywhere: Needs::PIN_COUNT,
    released_controller_keeps_local_handles_and_segments_alive: Needs::PIN_COUNT,
    foreign_or_wrong_kind_controller_handle_is_bad_ctlr_hndl,
    create_local_unaligned_vaddr_is_bad_addr: Needs::PIN_COUNT,
    create_local_null_vaddr_is_bad_addr,
    create_local_null_controller_is_bad_ctlr_hndl,
    create_local_null_out_pointer_is_bad_localmem_hndl: Needs::PIN_COUNT,
    create_local_length_zero_is_bad_length,
    create_local_longer_than_max_segment_size_is_bad_length,
    create_local_unmapped_memory_is_bad_addr,
    create_local_non_page_multiple_length_bounds_entries_by_requested_length: Needs::PIN_COUNT,
    free_local_null_controller_and_null_handle: Needs::PIN_COUNT,
    free_local_double_free_is_bad_localmem_hndl: Needs::PIN_COUNT,
    free_local_through_other_controller_is_bad_localmem_hndl: Needs::PIN_COUNT,
    foreign_or_wrong_kind_local_handle_is_rejected,
    create_local_pin_quota_exhausted_is_insufficient_mem: Needs::PIN_QUOTA.union(Needs::PIN_COUNT),
    create_local_table_full_is_insufficient_resources: Needs::PIN_COUNT,
    create_local_check_order: Needs::PIN_QUOTA.union(Needs::PIN_COUNT),
}

/// `prefix` followed by `fill` up to exactly `N` bytes (a stack `format!`).
fn padded<const N: usize>(prefix: &str, fill: char) -> Result<heapless::String<N>, Fail> {
    let mut s = heapless::String::<N>::new();
    s.push_str(prefix).must()?;
    while s.len() < N {
        s.push(fill).must()?;
    }
    Ok(s)
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

/// §10 Controller: unknown name → 4 (RSMERR_CTLR_NOT_PRESENT); §9.22: every node has exactly
/// `loopback` and `rsmnet0`.
fn get_controller_unknown_names_are_ctlr_not_present<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    for name in [
        "rsmnet1",
        "sci0",
        "",
        "wrsm1",
        "loop",
        "rsmnet0x",
        "0",
        "rsm",
        "rsmnet01x",
    ] {
        let mut c = ControllerHandle::NULL;
        check_eq!(
            capi::rsm_get_controller(&n, Some(name), Some(&mut c)),
            4,
            "{name:?}"
        );
        check!(c.is_null(), "{name:?}: out-pointer untouched on failure");
        check_eq!(
            n.get_controller(Some(name)),
            Err(RsmError::CtlrNotPresent),
            "{name:?}"
        );
    }
    Ok(())
}

/// §4.1 / §9.22: names are case-insensitive; loopback ignores the unit ("loopback5" =
/// loopback); "rsmnet" without a unit is unit 0.
fn controller_names_case_insensitive_and_units<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let lo = n.get_controller(None)?;
    for name in [
        "loopback",
        "LOOPBACK",
        "LoopBack",
        "loopback0",
        "loopback5",
        "LOOPBACK77",
    ] {
        check_eq!(n.get_controller(Some(name)), Ok(lo), "{name}");
    }
    let net = n.get_controller(Some("rsmnet0"))?;
    check_ne!(net, lo);
    for name in ["RSMNET", "rsmnet", "RsmNet0", "RSMNET0"] {
        check_eq!(n.get_controller(Some(name)), Ok(net), "{name}");
    }
    Ok(())
}

/// §4.1 / §9.22: "for loopback the unit is ignored" — any decimal unit, including one that does
/// not fit in 32 bits (illumos parses it with `atoi` and ignores it for loopback). For other
/// types the unit must match (`rsmnet` + a huge unit is not rsmnet0).
fn loopback_ignores_any_unit_even_one_overflowing_u32<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let lo = n.get_controller(None)?;
    check_eq!(
        n.get_controller(Some("rsmnet99999999999")),
        Err(RsmError::CtlrNotPresent)
    );
    for name in [
        "loopback4294967295",
        "loopback4294967296",
        "loopback99999999999",
    ] {
        let mut c = ControllerHandle::NULL;
        check_eq!(
            capi::rsm_get_controller(&n, Some(name), Some(&mut c)),
            0,
            "{name}"
        );
        check_eq!(c, lo, "{name}");
    }
    Ok(())
}

/// §9.22: names of 256 bytes or more → 4 (illumos overflows its 256-byte buffer); a 255-byte
/// name is still parsed (MAXNAMELEN = 256 includes the terminating NUL).
fn controller_name_length_limit<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let lo = n.get_controller(None)?;
    let name255 = padded::<255>("loopback", '0')?;
    check_eq!(name255.len(), 255);
    check_eq!(n.get_controller(Some(&name255)), Ok(lo));
    let name256 = padded::<256>("loopback", '0')?;
    check_eq!(name256.len(), 256);
    let mut c = ControllerHandle::NULL;
    check_eq!(
        capi::rsm_get_controller(&n, Some(&name256), Some(&mut c)),
        4
    );
    let long = padded::<1000>("", 'x')?;
    check_eq!(capi::rsm_get_controller(&n, Some(&long), Some(&mut c)), 4);
    check!(c.is_null());
    Ok(())
}

/// §10 Controller: get_controller_attr NULL attr → 16 (RSMERR_BAD_ADDR); §4.1 order: NULL handle
/// (3) before NULL attr (16).
fn get_controller_attr_null_attr_is_bad_addr<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    check_eq!(capi::rsm_get_controller_attr(&n, c, None), 16);
    check_eq!(
        capi::rsm_get_controller_attr(&n, ControllerHandle::NULL, None),
        3
    );
    let mut attr = ControllerAttr::default();
    check_eq!(
        capi::rsm_get_controller_attr(&n, ControllerHandle::NULL, Some(&mut attr)),
        3
    );
    check_eq!(attr, ControllerAttr::default(), "untouched on failure");
    // A released (non-NULL) handle + NULL attr: the attr pointer is checked first (§4.1 order).
    n.release_controller(c)?;
    check_eq!(capi::rsm_get_controller_attr(&n, c, None), 16);
    check_eq!(capi::rsm_get_controller_attr(&n, c, Some(&mut attr)), 3);
    Ok(())
}

/// §9.5: attr_page_size is 4096 for every controller, loopback included (illumos reports 8 for
/// loopback); §3.3 attribute values follow the node configuration.
fn get_controller_attr_page_size_4096_for_both_controllers<H: Harness>(h: &H) -> Outcome {
    let n = node_with(
        h,
        Config {
            max_segment_size: 1 << 20,
            ..Config::default()
        },
    );
    for name in [None, Some("rsmnet0")] {
        let c = n.get_controller(name)?;
        let mut attr = ControllerAttr::default();
        check_eq!(capi::rsm_get_controller_attr(&n, c, Some(&mut attr)), 0);
        check_eq!(attr.attr_page_size, 4096, "{name:?}");
        check_eq!(attr.attr_max_export_segment_size, 1 << 20, "{name:?}");
        check_eq!(n.get_controller_attr(c)?, attr);
    }
    Ok(())
}

/// §9.22 (our choice): a released controller handle → 3 everywhere it is used.
fn released_controller_is_bad_ctlr_hndl_everywhere<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    n.release_controller(c)?;
    let mut attr = ControllerAttr::default();
    check_eq!(capi::rsm_get_controller_attr(&n, c, Some(&mut attr)), 3);
    check_eq!(n.get_controller_attr(c), Err(RsmError::BadCtlrHndl));
    let buf = h.alloc(n.platform(), PAGE)?;
    let mut lh = LocalMemHandle::NULL;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), buf.clone()),
        3
    );
    check_eq!(
        n.create_localmemory_handle(c, buf.clone()),
        Err(RsmError::BadCtlrHndl)
    );
    let mut eh = ExportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), buf.clone(), 0),
        3
    );
    check_eq!(
        n.export_create(c, buf, CreateFlags::empty()),
        Err(RsmError::BadCtlrHndl)
    );
    let mut ih = ImportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, 0x600000, 0o600, Some(&mut ih)),
        3
    );
    check_eq!(
        capi::rsm_free_localmemory_handle(&n, c, LocalMemHandle::NULL),
        3
    );
    check_eq!(capi::rsm_release_controller(&n, c), 3);
    // Nothing was pinned or allocated by the failed calls.
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    check_eq!(n.slots_in_use(), (0, 0, 0));
    // Getting the controller again gives a new, different handle; the old one stays dead.
    let c2 = n.get_controller(None)?;
    check_ne!(c2, c);
    check_eq!(n.get_controller_attr(c), Err(RsmError::BadCtlrHndl));
    check!(n.get_controller_attr(c2).is_ok());
    Ok(())
}

/// §9.22 (our choice): releasing the controller does not invalidate local handles, segments or
/// imports created through it; the local handle is freed with a newly gotten handle.
fn released_controller_keeps_local_handles_and_segments_alive<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lbuf, local) = fx.local(64, 7)?;
    fx.n.release_controller(fx.ctrl)?;
    check_eq!(
        fx.n.get_controller_attr(fx.ctrl),
        Err(RsmError::BadCtlrHndl)
    );
    // The local handle, export and import still work.
    let iov = [IoVec::handle(local, 0, 100, 64)];
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    check_eq!(
        read_bytes(h, fx.n.platform(), &fx.mem, 100, 64)?,
        pat(64, 7)
    );
    // The old handle cannot free it; the new one can.
    check_eq!(capi::rsm_free_localmemory_handle(&fx.n, fx.ctrl, local), 3);
    let again = fx.n.get_controller(None)?;
    check_ne!(again, fx.ctrl);
    check_eq!(capi::rsm_free_localmemory_handle(&fx.n, again, local), 0);
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    check_eq!(capi::rsm_memseg_export_destroy(&fx.n, fx.seg), 0);
    check_eq!(fx.n.slots_in_use(), (0, 0, 0));
    check_eq!(fx.pinned()?, 0);
    Ok(())
}

/// §9.7: a controller handle of another `Rsm` instance or of the wrong kind → 3.
fn foreign_or_wrong_kind_controller_handle_is_bad_ctlr_hndl<H: Harness>(h: &H) -> Outcome {
    let a = node(h);
    let b = node(h);
    let hb = b.get_controller(None)?;
    let ha = a.get_controller(None)?;
    check_ne!(ha, hb);
    check_eq!(a.get_controller_attr(hb), Err(RsmError::BadCtlrHndl));
    check_eq!(capi::rsm_release_controller(&a, hb), 3);
    let buf = h.alloc(a.platform(), PAGE)?;
    check_eq!(
        a.create_localmemory_handle(hb, buf.clone()),
        Err(RsmError::BadCtlrHndl)
    );
    // Wrong kind: an export handle's raw value used as a controller handle.
    let seg = a.export_create(ha, buf, CreateFlags::empty())?;
    let fake_ctrl = ControllerHandle::from_raw(seg.into_raw());
    check_eq!(a.get_controller_attr(fake_ctrl), Err(RsmError::BadCtlrHndl));
    check_eq!(capi::rsm_release_controller(&a, fake_ctrl), 3);
    // An arbitrary non-zero value.
    check_eq!(
        a.get_controller_attr(ControllerHandle::from_raw(0xdead_beef)),
        Err(RsmError::BadCtlrHndl)
    );
    // b's handle still fine in b (one reference left there).
    check_eq!(b.release_controller(hb), Ok(()));
    Ok(())
}

// =============================================================================================
// Local memory handles (seed man page, §4.6, §5.1, §9.6–§9.9)
// =============================================================================================

/// §10 Local memory handles: unaligned vaddr → 16 (RSMERR_BAD_ADDR); §5.1 step 1.
fn create_local_unaligned_vaddr_is_bad_addr<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let mem = h.alloc(n.platform(), 2 * PAGE)?;
    for off in [1, 8, 2048, PAGE - 1] {
        let r = mem.slice(off, 100).must()?;
        let mut lh = LocalMemHandle::NULL;
        check_eq!(
            capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), r.clone()),
            16
        );
        check!(lh.is_null());
        check_eq!(n.create_localmemory_handle(c, r), Err(RsmError::BadAddr));
    }
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §10 Local memory handles: NULL vaddr → 16; §9.6 (illumos lets NULL pass the alignment
/// check; rsm-rs rejects it with BAD_ADDR).
fn create_local_null_vaddr_is_bad_addr<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let mut lh = LocalMemHandle::NULL;
    let null = h.raw(0, PAGE)?;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), null.clone()),
        16
    );
    check_eq!(n.create_localmemory_handle(c, null), Err(RsmError::BadAddr));
    Ok(())
}

/// §10 Local memory handles: NULL controller (aligned vaddr) → 3; §5.1 step 2.
fn create_local_null_controller_is_bad_ctlr_hndl<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let r = h.alloc(n.platform(), PAGE)?;
    let mut lh = LocalMemHandle::NULL;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, ControllerHandle::NULL, Some(&mut lh), r.clone()),
        3
    );
    check_eq!(
        n.create_localmemory_handle(ControllerHandle::NULL, r),
        Err(RsmError::BadCtlrHndl)
    );
    Ok(())
}

/// §10 Local memory handles: NULL out-pointer → 15 (RSMERR_BAD_LOCALMEM_HNDL); §5.1 step 3.
fn create_local_null_out_pointer_is_bad_localmem_hndl<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let r = h.alloc(n.platform(), PAGE)?;
    check_eq!(capi::rsm_create_localmemory_handle(&n, c, None, r), 15);
    check_eq!(h.pinned_pages(n.platform()).must()?, 0, "nothing pinned");
    check_eq!(n.slots_in_use(), (0, 0, 0));
    Ok(())
}

/// §10 Local memory handles: length 0 → 20 (RSMERR_BAD_LENGTH); §5.1 step 4.
fn create_local_length_zero_is_bad_length<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let r = h.alloc(n.platform(), 0)?;
    let mut lh = LocalMemHandle::NULL;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), r.clone()),
        20
    );
    check_eq!(n.create_localmemory_handle(c, r), Err(RsmError::BadLength));
    Ok(())
}

/// §5.2 (rustdoc step 4): longer than attr_max_export_segment_size → 20.
fn create_local_longer_than_max_segment_size_is_bad_length<H: Harness>(h: &H) -> Outcome {
    let n = node_with(
        h,
        Config {
            max_segment_size: 2 * PAGE,
            ..Config::default()
        },
    );
    let c = n.get_controller(None)?;
    let ok = h.alloc(n.platform(), 2 * PAGE)?;
    let big = h.alloc(n.platform(), 2 * PAGE + 1)?;
    check_eq!(
        n.create_localmemory_handle(c, big),
        Err(RsmError::BadLength)
    );
    let lh = n.create_localmemory_handle(c, ok)?;
    n.free_localmemory_handle(c, lh)?;
    Ok(())
}

/// §5.2 (rustdoc step 5): memory that is not mapped → 16 (pinning fault).
fn create_local_unmapped_memory_is_bad_addr<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let r = h.raw(UNMAPPED, PAGE)?;
    let mut lh = LocalMemHandle::NULL;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), r),
        16
    );
    check_eq!(n.slots_in_use(), (0, 0, 0));
    Ok(())
}

/// §10 Local memory handles: success with a length that is not a page multiple; §9.6: whole
/// pages are pinned, and entries are bounds-checked against the *requested* length (ending
/// exactly at it OK, one byte past → 20) — on both controllers.
fn create_local_non_page_multiple_length_bounds_entries_by_requested_length<H: Harness>(
    h: &H,
) -> Outcome {
    for ctrl in [None, Some("rsmnet0")] {
        let fx = Fx::with(h, node(h), ctrl, 2 * PAGE, &[], Permission::RDWR)?;
        let (_buf, lh) = fx.local(100, 3)?;
        check!(!lh.is_null());
        check_eq!(fx.pinned()?, 2 + 1, "2 segment pages + 1 local page");
        // Ends exactly at the requested length: OK.
        let iov = [IoVec::handle(lh, 90, 0, 10)];
        check_eq!(fx.putv(fx.imp, &iov), (0, 0));
        check_eq!(
            read_bytes(h, fx.n.platform(), &fx.mem, 0, 10)?.as_slice(),
            pat(100, 3).get(90..).must()?
        );
        let iov = [IoVec::handle(lh, 0, 0, 100)];
        check_eq!(fx.getv(fx.imp, &iov), (0, 0));
        // One byte past the requested length (still inside the pinned page) → 20.
        let iov = [IoVec::handle(lh, 91, 0, 10)];
        check_eq!(fx.putv(fx.imp, &iov), (20, 1));
        check_eq!(fx.getv(fx.imp, &iov), (20, 1));
        let iov = [IoVec::handle(lh, 0, 0, 101)];
        check_eq!(fx.putv(fx.imp, &iov), (20, 1));
        // A length of one page + 1 pins two pages.
        let r2 = h.alloc(fx.n.platform(), PAGE + 1)?;
        let h2 = fx.n.create_localmemory_handle(fx.ctrl, r2)?;
        check_eq!(fx.pinned()?, 2 + 1 + 2);
        fx.n.free_localmemory_handle(fx.ctrl, h2)?;
        fx.n.free_localmemory_handle(fx.ctrl, lh)?;
        check_eq!(fx.pinned()?, 2);
    }
    Ok(())
}

/// §10 Local memory handles: free NULL controller → 3; free NULL handle → 15; §5.2 free order
/// (controller before handle).
fn free_local_null_controller_and_null_handle<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let r = h.alloc(n.platform(), PAGE)?;
    let lh = n.create_localmemory_handle(c, r)?;
    check_eq!(
        capi::rsm_free_localmemory_handle(&n, ControllerHandle::NULL, lh),
        3
    );
    check_eq!(
        capi::rsm_free_localmemory_handle(&n, c, LocalMemHandle::NULL),
        15
    );
    // Order: NULL controller wins over NULL handle.
    check_eq!(
        capi::rsm_free_localmemory_handle(&n, ControllerHandle::NULL, LocalMemHandle::NULL),
        3
    );
    check_eq!(
        n.free_localmemory_handle(c, LocalMemHandle::NULL),
        Err(RsmError::BadLocalmemHndl)
    );
    // The handle survived the failed frees.
    check_eq!(capi::rsm_free_localmemory_handle(&n, c, lh), 0);
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    // Released controller + stale handle → 3 (controller first); live controller + stale → 15.
    let net = n.get_controller(Some("rsmnet0"))?;
    n.release_controller(net)?;
    check_eq!(capi::rsm_free_localmemory_handle(&n, net, lh), 3);
    check_eq!(capi::rsm_free_localmemory_handle(&n, c, lh), 15);
    Ok(())
}

/// §10 Local memory handles: double free → 15 (our choice, §9.7).
fn free_local_double_free_is_bad_localmem_hndl<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let r = h.alloc(n.platform(), PAGE)?;
    let lh = n.create_localmemory_handle(c, r.clone())?;
    check_eq!(h.pinned_pages(n.platform()).must()?, 1);
    check_eq!(capi::rsm_free_localmemory_handle(&n, c, lh), 0);
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    check_eq!(capi::rsm_free_localmemory_handle(&n, c, lh), 15);
    check_eq!(
        n.free_localmemory_handle(c, lh),
        Err(RsmError::BadLocalmemHndl)
    );
    // The slot is reused by a new handle: the stale one still does not match it.
    let h2 = n.create_localmemory_handle(c, r)?;
    check_ne!(h2, lh);
    check_eq!(capi::rsm_free_localmemory_handle(&n, c, lh), 15);
    check_eq!(capi::rsm_free_localmemory_handle(&n, c, h2), 0);
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §10 Local memory handles: free of a handle from the other controller (`loopback` vs
/// `rsmnet0`) → 15 (our choice, §9.7); the handle stays valid for its own controller.
fn free_local_through_other_controller_is_bad_localmem_hndl<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let lo = n.get_controller(None)?;
    let net = n.get_controller(Some("rsmnet0"))?;
    let r = h.alloc(n.platform(), PAGE)?;
    let a = n.create_localmemory_handle(lo, r.clone())?;
    let b = n.create_localmemory_handle(net, r)?;
    check_eq!(capi::rsm_free_localmemory_handle(&n, net, a), 15);
    check_eq!(capi::rsm_free_localmemory_handle(&n, lo, b), 15);
    check_eq!(
        n.free_localmemory_handle(net, a),
        Err(RsmError::BadLocalmemHndl)
    );
    check_eq!(
        h.pinned_pages(n.platform()).must()?,
        1,
        "both pins of the page still held"
    );
    check_eq!(capi::rsm_free_localmemory_handle(&n, lo, a), 0);
    check_eq!(
        h.pinned_pages(n.platform()).must()?,
        1,
        "b still pins the page"
    );
    check_eq!(capi::rsm_free_localmemory_handle(&n, net, b), 0);
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §9.7: a local handle of another `Rsm` instance → 15 on free, 14 in a putv entry; a
/// wrong-kind raw value → 15.
fn foreign_or_wrong_kind_local_handle_is_rejected<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let other = node(h);
    let oc = other.get_controller(None)?;
    let obuf = h.alloc(other.platform(), PAGE)?;
    let foreign = other.create_localmemory_handle(oc, obuf)?;
    check_eq!(
        capi::rsm_free_localmemory_handle(&fx.n, fx.ctrl, foreign),
        15
    );
    let iov = [IoVec::handle(foreign, 0, 0, 8)];
    check_eq!(fx.putv(fx.imp, &iov), (14, 1));
    check_eq!(fx.getv(fx.imp, &iov), (14, 1));
    // Wrong kind: controller / export / import raw values used as local memory handles.
    for raw in [fx.ctrl.into_raw(), fx.seg.into_raw(), fx.imp.into_raw()] {
        let lh = LocalMemHandle::from_raw(raw);
        check_eq!(capi::rsm_free_localmemory_handle(&fx.n, fx.ctrl, lh), 15);
        let iov = [IoVec::handle(lh, 0, 0, 8)];
        check_eq!(fx.putv(fx.imp, &iov), (14, 1));
    }
    // The foreign handle is intact in its own node.
    check_eq!(other.free_localmemory_handle(oc, foreign), Ok(()));
    Ok(())
}

/// §10 Local memory handles: pin-quota exhaustion → 32 (RSMERR_INSUFFICIENT_MEM), fake
/// platform; §9.8: local handles and export segments share the budget.
fn create_local_pin_quota_exhausted_is_insufficient_mem<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    check!(h.set_pin_quota(n.platform(), 2 * PAGE));
    let c = n.get_controller(None)?;
    let big = h.alloc(n.platform(), 3 * PAGE)?;
    let mut lh = LocalMemHandle::NULL;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), big.clone()),
        32
    );
    check_eq!(
        n.create_localmemory_handle(c, big),
        Err(RsmError::InsufficientMem)
    );
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    // An export segment takes one page of the budget, a local handle the other; then full.
    let seg_mem = h.alloc(n.platform(), PAGE)?;
    let seg = n.export_create(c, seg_mem, CreateFlags::empty())?;
    let one = h.alloc(n.platform(), PAGE)?;
    let a = n.create_localmemory_handle(c, one.clone())?;
    let more = h.alloc(n.platform(), PAGE)?;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), more.clone()),
        32
    );
    // Pinning an already pinned page costs nothing.
    let b = n.create_localmemory_handle(c, one)?;
    // Freeing returns the budget.
    n.export_destroy(seg)?;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), more),
        0
    );
    for x in [a, b, lh] {
        n.free_localmemory_handle(c, x)?;
    }
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §9.6 (rustdoc step 6): local handle table full → 31 (RSMERR_INSUFFICIENT_RESOURCES), with no
/// pin left behind; a free makes room again.
fn create_local_table_full_is_insufficient_resources<H: Harness>(h: &H) -> Outcome {
    let n = small_node(h);
    let c = n.get_controller(None)?;
    let bufs = [
        h.alloc(n.platform(), PAGE)?,
        h.alloc(n.platform(), PAGE)?,
        h.alloc(n.platform(), PAGE)?,
    ];
    let a = n.create_localmemory_handle(c, bufs[0].clone())?;
    let b = n.create_localmemory_handle(c, bufs[1].clone())?;
    let mut lh = LocalMemHandle::NULL;
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), bufs[2].clone()),
        31
    );
    check_eq!(
        n.create_localmemory_handle(c, bufs[2].clone()),
        Err(RsmError::InsufficientResources)
    );
    check_eq!(
        h.pinned_pages(n.platform()).must()?,
        2,
        "the failed create left no pin"
    );
    n.free_localmemory_handle(c, a)?;
    let c3 = n.create_localmemory_handle(c, bufs[2].clone())?;
    n.free_localmemory_handle(c, b)?;
    n.free_localmemory_handle(c, c3)?;
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// Check order of rsm_create_localmemory_handle (§5.1, §9.6, rustdoc): address → controller →
/// out-pointer → length → pin/quota → table.
fn create_local_check_order<H: Harness>(h: &H) -> Outcome {
    let n = small_node(h);
    let c = n.get_controller(None)?;
    let mem = h.alloc(n.platform(), 4 * PAGE)?;
    let misaligned = mem.slice(1, 100).must()?;
    let null = h.raw(0, PAGE)?;
    let null_len0 = h.raw(0, 0)?;
    let aligned = mem.slice(0, PAGE).must()?;
    let empty = mem.slice(0, 0).must()?;
    let mut lh = LocalMemHandle::NULL;
    let nc = ControllerHandle::NULL;
    // misaligned + NULL controller → BAD_ADDR (not BAD_CTLR_HNDL)
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, Some(&mut lh), misaligned.clone()),
        16
    );
    check_eq!(
        n.create_localmemory_handle(nc, misaligned),
        Err(RsmError::BadAddr)
    );
    // NULL vaddr + NULL controller + NULL out + length 0 → BAD_ADDR
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, None, null_len0),
        16
    );
    check_eq!(capi::rsm_create_localmemory_handle(&n, nc, None, null), 16);
    // NULL controller + NULL out-pointer → BAD_CTLR_HNDL
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, None, aligned),
        3
    );
    // NULL controller + length 0 → BAD_CTLR_HNDL
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, Some(&mut lh), empty.clone()),
        3
    );
    check_eq!(
        n.create_localmemory_handle(nc, empty.clone()),
        Err(RsmError::BadCtlrHndl)
    );
    // NULL out-pointer + length 0 → BAD_LOCALMEM_HNDL
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, None, empty.clone()),
        15
    );
    // length 0 + quota exhausted → BAD_LENGTH
    check!(h.set_pin_quota(n.platform(), 0));
    check_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut lh), empty),
        20
    );
    // quota exhausted + table full → INSUFFICIENT_MEM (pinning comes before the table).
    check!(h.set_pin_quota(n.platform(), 2 * PAGE));
    let a = n.create_localmemory_handle(c, mem.slice(0, PAGE).must()?)?;
    let b = n.create_localmemory_handle(c, mem.slice(PAGE, PAGE).must()?)?;
    check_eq!(
        n.create_localmemory_handle(c, mem.slice(2 * PAGE, PAGE).must()?),
        Err(RsmError::InsufficientMem)
    );
    // table full alone (page already pinned, so no quota needed) → INSUFFICIENT_RESOURCES
    check_eq!(
        n.create_localmemory_handle(c, mem.slice(0, PAGE).must()?),
        Err(RsmError::InsufficientResources)
    );
    check!(lh.is_null());
    n.free_localmemory_handle(c, a)?;
    n.free_localmemory_handle(c, b)?;
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}
