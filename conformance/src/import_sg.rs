//! §4.4 import connect / disconnect on the same node and §4.6 putv / getv (§9.2, §9.12,
//! §9.19, §9.28), with the check order of each function (the first failing check wins, §4
//! "Impl order", §9.10) and the choices rsm-rs documents in its rustdoc (§9.7, §9.11, §9.16,
//! §9.29, §9.33, …).
//!
//! Numeric codes are asserted through the C-shaped entry points of `rsm_core::capi` (these
//! are also the only way to express NULL out-pointers); typed `RsmError`s through the Rust
//! API.
//!
//! §9.9 "free waits for a putv in flight" runs over the host backend (`HostPlatform`,
//! `PinnedBuf`, two threads, 8+ MiB): it lives in `tests/tests/host_import_sg.rs`.

use crate::{
    check, check_eq, check_ne, filled, node, node_with, pat, small_node, Fail, Harness, Must,
    Needs, Node, Outcome, Reg,
};
use core::fmt::{self, Debug};
use rsm_core::capi;
use rsm_core::capi::code as rc;
use rsm_core::{
    AccessEntry, Config, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec,
    LocalRef, Permission, RsmError, ScatGath, SgFlags, RSM_HANDLE_TYPE, RSM_VA_TYPE,
};
use rsm_hal::{Region, PAGE_SIZE};

use crate::fixture::Fx;

crate::table! {
    connect_unpublished_id_is_seg_not_published,
    connect_acl_excluding_node_is_not_published_to_node,
    connect_perm_bits_outside_0600_is_perm_denied,
    read_only_acl_and_read_only_import,
    write_only_import_getv_is_perm_denied,
    connect_owner_digit_decides_and_first_acl_match_wins,
    connect_perm_none_then_transfers_are_perm_denied,
    connect_node_reachability,
    connect_null_arguments,
    connect_import_table_full_is_insufficient_resources,
    connect_check_order,
    disconnect_bad_handles,
    unpublish_aborts_importers_and_republish_allows_new_connect,
    destroy_aborts_importers: Needs::PIN_COUNT,
    putv_getv_null_sg_is_bad_sgio,
    putv_getv_null_or_bad_remote_handle_is_bad_seg_hndl,
    putv_getv_request_count_limits,
    putv_getv_null_iovec_is_bad_sgio,
    putv_getv_bad_io_type_is_bad_sgio,
    putv_getv_entry_beyond_segment_end_is_bad_offset_nothing_moved,
    putv_getv_entry_beyond_local_length_is_bad_length,
    putv_getv_zero_length_entries_ok,
    putv_getv_mixed_handle_and_va_round_trip,
    putv_freed_local_handle_is_bad_sgio,
    putv_getv_residual_written_on_every_return,
    // The copy of an unmapped VA range must fail cleanly: every platform's copy refuses
    // memory it does not have with BadAddress (the fake's gaps, the image's non-RAM).
    putv_getv_fault_mid_vector_residual_counts_done_entries,
    putv_getv_flags_unchanged,
    implicit_sigpost_rings_once_per_successful_call,
    implicit_sigpost_no_accumulate_coalesces,
    putv_getv_check_order_header,
    putv_getv_check_order_entries,
    putv_validation_identical_on_both_controllers,
}

const PAGE: usize = PAGE_SIZE;

/// A borrowed vector of entries over a harness's regions.
type Iov<'a, H> = &'a [IoVec<'a, Reg<H>>];
/// An aligned address far outside any memory (never allocated).
const UNMAPPED: usize = 0x7000_0000_0000;

fn perm(bits: u32) -> Permission {
    Permission::from_bits_retain(bits)
}

/// An exported (unpublished) segment over a fresh page.
fn exported<H: Harness>(h: &H, n: &Node<H>, ctrl: ControllerHandle) -> Result<ExportHandle, Fail> {
    let m = h.alloc(n.platform(), PAGE)?;
    Ok(n.export_create(ctrl, m, CreateFlags::empty())?)
}

/// A scatter-gather request over `iov` with `flags`.
fn sg_with<'a, R>(imp: ImportHandle, iov: &'a [IoVec<'a, R>], flags: SgFlags) -> ScatGath<'a, R> {
    let mut sg = ScatGath::new(imp, iov);
    sg.flags = flags;
    sg
}

/// An entry for failure messages (regions have no `Debug`: their address and length).
struct Ent<'a, 'b, R>(&'a IoVec<'b, R>);

impl<R: Region> Debug for Ent<'_, '_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "IoVec {{ io_type: {}, local: ", e.io_type)?;
        match &e.local {
            LocalRef::Handle(h) => write!(f, "Handle({h:?})")?,
            LocalRef::Va(r) => write!(f, "Va({:#x}+{})", r.addr(), r.len())?,
        }
        write!(
            f,
            ", local_offset: {}, remote_offset: {}, transfer_length: {} }}",
            e.local_offset, e.remote_offset, e.transfer_length
        )
    }
}

// =============================================================================================
// §4.4 Import: connect / disconnect (same node)
// =============================================================================================

/// §10 Import: connect to an unpublished id → 7 (RSMERR_SEG_NOT_PUBLISHED); also a segment
/// that was unpublished or destroyed.
fn connect_unpublished_id_is_seg_not_published<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let mut ih = ImportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, 0x60_0000, 0o600, Some(&mut ih)),
        7
    );
    check!(ih.is_null());
    let seg = exported(h, &n, c)?;
    check_eq!(
        n.import_connect(c, 0, 0x60_0000, Permission::RDWR),
        Err(RsmError::SegNotPublished),
        "created but not published"
    );
    n.export_publish(seg, 0x60_0000, &[])?;
    check!(n.import_connect(c, 0, 0x60_0000, Permission::RDWR).is_ok());
    n.export_unpublish(seg)?;
    check_eq!(
        n.import_connect(c, 0, 0x60_0000, Permission::RDWR),
        Err(RsmError::SegNotPublished)
    );
    n.export_publish(seg, 0x60_0000, &[])?;
    n.export_destroy(seg)?;
    check_eq!(
        n.import_connect(c, 0, 0x60_0000, Permission::RDWR),
        Err(RsmError::SegNotPublished)
    );
    Ok(())
}

/// §10 Import: ACL excluding the node → 8 (RSMERR_SEG_NOT_PUBLISHED_TO_NODE).
fn connect_acl_excluding_node_is_not_published_to_node<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let seg = exported(h, &n, c)?;
    let id = n.export_publish(
        seg,
        0,
        &[AccessEntry::new(3, 0o666), AccessEntry::new(64, 0o666)],
    )?;
    let mut ih = ImportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, id, 0o600, Some(&mut ih)),
        8
    );
    check_eq!(
        n.import_connect(c, 0, id, Permission::READ),
        Err(RsmError::SegNotPublishedToNode)
    );
    Ok(())
}

/// §10 Import: perm 0700 → 27 (RSMERR_PERM_DENIED, §9.11 — not BAD_PERMS); other bits outside
/// 0600 likewise.
fn connect_perm_bits_outside_0600_is_perm_denied<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    for bits in [0o700, 0o666, 0o1000, 0o4, 0o20, 0xFFFF_FFFF] {
        let mut ih = ImportHandle::NULL;
        check_eq!(
            capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, bits, Some(&mut ih)),
            27,
            "{bits:#o}"
        );
        check!(ih.is_null());
        check_eq!(
            fx.n.import_connect(fx.ctrl, 0, fx.id, perm(bits)),
            Err(RsmError::PermDenied)
        );
    }
    Ok(())
}

/// §9.16 / §9.33: a read-only ACL (0444) refuses RDWR and WRITE with 27 and accepts READ; the
/// read-only import can getv but putv → 27.
fn read_only_acl_and_read_only_import<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::with(
        h,
        node(h),
        Some("rsmnet0"),
        PAGE,
        &[AccessEntry::new(0, 0o444)],
        Permission::READ,
    )?;
    let mut ih = ImportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o600, Some(&mut ih)),
        27
    );
    check_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o200, Some(&mut ih)),
        27
    );
    check_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o400, Some(&mut ih)),
        0
    );
    fx.fill_seg(5)?;
    let (lb, local) = fx.local(64, 8)?;
    let iov = [IoVec::handle(local, 0, 0, 64)];
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.bytes(&lb)?, pat(PAGE, 5)[..64]);
    check_eq!(fx.putv(ih, &iov), (27, 1));
    check_eq!(
        fx.n.putv(&mut ScatGath::new(fx.imp, &iov)),
        Err(RsmError::PermDenied)
    );
    check_eq!(fx.seg_bytes()?, pat(PAGE, 5), "nothing written");
    Ok(())
}

/// §9.33: a write-only import can putv, getv → 27.
fn write_only_import_getv_is_perm_denied<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::with(
        h,
        node(h),
        Some("rsmnet0"),
        PAGE,
        &[AccessEntry::new(0, 0o222)],
        Permission::WRITE,
    )?;
    check_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ),
        Err(RsmError::PermDenied)
    );
    let (lb, local) = fx.local(64, 8)?;
    let iov = [IoVec::handle(local, 0, 0, 64)];
    check_eq!(fx.getv(fx.imp, &iov), (27, 1));
    check_eq!(fx.bytes(&lb)?, pat(64, 8), "local buffer untouched");
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    check_eq!(fx.seg_read(0, 64)?, pat(64, 8));
    // A write-only import asked on an open segment.
    let wo = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::WRITE)?;
    check_eq!(
        fx.n.getv(&mut ScatGath::new(wo, &iov)),
        Err(RsmError::PermDenied)
    );
    Ok(())
}

/// §9.16: the owner digit of the ACL permission decides (every importer is the owner class);
/// duplicate entries: the first match wins; no ACL → read+write.
fn connect_owner_digit_decides_and_first_acl_match_wins<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let cases: [(u32, Permission, i32); 7] = [
        (0o066, Permission::READ, 27),
        (0o066, Permission::WRITE, 27),
        (0o600, Permission::RDWR, 0),
        (0o400, Permission::READ, 0),
        (0o400, Permission::WRITE, 27),
        (0o200, Permission::WRITE, 0),
        (0o624, Permission::RDWR, 0),
    ];
    for (acl_perm, p, want) in cases {
        let seg = exported(h, &n, c)?;
        let id = n.export_publish(seg, 0, &[AccessEntry::new(0, acl_perm)])?;
        check_eq!(
            rc(n.import_connect(c, 0, id, p)),
            want,
            "{acl_perm:#o} {p:?}"
        );
    }
    let seg = exported(h, &n, c)?;
    let id = n.export_publish(
        seg,
        0,
        &[AccessEntry::new(0, 0o444), AccessEntry::new(0, 0o666)],
    )?;
    check_eq!(
        n.import_connect(c, 0, id, Permission::RDWR),
        Err(RsmError::PermDenied)
    );
    let seg = exported(h, &n, c)?;
    let id = n.export_publish(seg, 0, &[])?;
    check!(n.import_connect(c, 0, id, Permission::RDWR).is_ok());
    Ok(())
}

/// §4.4 (rustdoc): perm 0 connects with no access; every putv/getv is then 27.
fn connect_perm_none_then_transfers_are_perm_denied<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::empty())?;
    let (_lb, local) = fx.local(8, 1)?;
    let iov = [IoVec::handle(local, 0, 0, 8)];
    check_eq!(fx.putv(fx.imp, &iov), (27, 1));
    check_eq!(fx.getv(fx.imp, &iov), (27, 1));
    check_eq!(fx.n.import_info(fx.imp)?.perm, Permission::empty());
    Ok(())
}

/// §4.4: loopback controller + another node → 4 (RSMERR_CTLR_NOT_PRESENT); rsmnet0 + node 5 →
/// 39 (RSMERR_REMOTE_NODE_UNREACHABLE); node 64 → 39 (rsmnet0); rsmnet0 + the local node OK.
fn connect_node_reachability<H: Harness>(h: &H) -> Outcome {
    let n = node_with(
        h,
        Config {
            node_id: 2,
            ..Config::default()
        },
    );
    let lo = n.get_controller(None)?;
    let net = n.get_controller(Some("rsmnet0"))?;
    let seg = exported(h, &n, net)?;
    let id = n.export_publish(seg, 0, &[])?;
    let mut ih = ImportHandle::NULL;
    for node in [0, 5, 63, 64, 1000] {
        check_eq!(
            capi::rsm_memseg_import_connect(&n, lo, node, id, 0o600, Some(&mut ih)),
            4,
            "loopback to node {node}"
        );
    }
    for node in [0, 5, 63, 64, 65, u32::MAX] {
        check_eq!(
            capi::rsm_memseg_import_connect(&n, net, node, id, 0o600, Some(&mut ih)),
            39,
            "rsmnet0 to node {node}"
        );
    }
    check!(ih.is_null());
    check_eq!(
        capi::rsm_memseg_import_connect(&n, net, 2, id, 0o600, Some(&mut ih)),
        0
    );
    let info = n.import_info(ih)?;
    check_eq!((info.node, info.segment_id, info.size), (2, id, PAGE));
    check_eq!(info.perm, Permission::RDWR);
    check!(n.import_connect(lo, 2, id, Permission::READ).is_ok());
    Ok(())
}

/// §4.4 / §9.11: NULL controller → 3; NULL im_memseg → 5 (illumos crashes); `*im_memseg` set
/// to NULL once found non-NULL.
fn connect_null_arguments<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let garbage = ImportHandle::from_raw(0x4242);
    let mut ih = garbage;
    check_eq!(
        capi::rsm_memseg_import_connect(
            &fx.n,
            ControllerHandle::NULL,
            0,
            fx.id,
            0o600,
            Some(&mut ih)
        ),
        3
    );
    check_eq!(ih, garbage);
    check_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o600, None),
        5
    );
    check_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, 0x60_0000, 0o600, Some(&mut ih)),
        7
    );
    check!(ih.is_null(), "*im_memseg set to NULL on failure");
    check_eq!(fx.n.slots_in_use().2, 1, "only the fixture's import");
    Ok(())
}

/// §4.4: import table full → 31 (RSMERR_INSUFFICIENT_RESOURCES); a disconnect makes room.
fn connect_import_table_full_is_insufficient_resources<H: Harness>(h: &H) -> Outcome {
    let n = small_node(h);
    let c = n.get_controller(None)?;
    let seg = n.export_create(c, h.alloc(n.platform(), PAGE)?, CreateFlags::empty())?;
    let id = n.export_publish(seg, 0, &[])?;
    let a = n.import_connect(c, 0, id, Permission::RDWR)?;
    let _b = n.import_connect(c, 0, id, Permission::RDWR)?;
    let mut ih = ImportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, id, 0o600, Some(&mut ih)),
        31
    );
    n.import_disconnect(a)?;
    check_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, id, 0o600, Some(&mut ih)),
        0
    );
    Ok(())
}

/// Check order of rsm_memseg_import_connect (§4.4 impl order, §9.11, rustdoc): controller →
/// NULL out-pointer → perm bits → import table → loopback vs non-local node → unreachable →
/// not published → ACL → permission.
fn connect_check_order<H: Harness>(h: &H) -> Outcome {
    let n = small_node(h);
    let lo = n.get_controller(None)?;
    let net = n.get_controller(Some("rsmnet0"))?;
    let nc = ControllerHandle::NULL;
    let seg = n.export_create(net, h.alloc(n.platform(), PAGE)?, CreateFlags::empty())?;
    let id = n.export_publish(seg, 0, &[AccessEntry::new(7, 0o400)])?;
    let unpub = 0x60_0000;
    let mut ih = ImportHandle::NULL;
    // NULL controller + NULL out-pointer → 3
    check_eq!(
        capi::rsm_memseg_import_connect(&n, nc, 9, unpub, 0o700, None),
        3
    );
    // NULL controller + perm 0700 → 3
    check_eq!(
        capi::rsm_memseg_import_connect(&n, nc, 0, id, 0o700, Some(&mut ih)),
        3
    );
    check_eq!(
        n.import_connect(nc, 0, id, perm(0o700)),
        Err(RsmError::BadCtlrHndl)
    );
    // NULL out-pointer + perm 0700 → 5
    check_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o700, None),
        5
    );
    // perm 0700 + loopback to another node → 27
    check_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o700, Some(&mut ih)),
        27
    );
    // perm 0700 + unreachable node → 27
    check_eq!(
        n.import_connect(net, 9, unpub, perm(0o700)),
        Err(RsmError::PermDenied)
    );
    // loopback to another node + unpublished → 4
    check_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o600, Some(&mut ih)),
        4
    );
    // loopback to node 64 (also unreachable) → 4
    check_eq!(
        n.import_connect(lo, 64, unpub, Permission::RDWR),
        Err(RsmError::CtlrNotPresent)
    );
    // unreachable + unpublished → 39
    check_eq!(
        capi::rsm_memseg_import_connect(&n, net, 9, unpub, 0o600, Some(&mut ih)),
        39
    );
    // unreachable + published but excluded by the ACL → 39
    check_eq!(
        n.import_connect(net, 7, id, Permission::RDWR),
        Err(RsmError::RemoteNodeUnreachable)
    );
    // ACL excludes node 0 + permission not granted (RDWR vs 0400) → 8
    check_eq!(
        capi::rsm_memseg_import_connect(&n, net, 0, id, 0o600, Some(&mut ih)),
        8
    );
    // Fill the import table (2 slots) with connections to an open segment.
    let open = n.export_create(net, h.alloc(n.platform(), PAGE)?, CreateFlags::empty())?;
    let oid = n.export_publish(open, 0, &[])?;
    let _a = n.import_connect(net, 0, oid, Permission::RDWR)?;
    let _b = n.import_connect(net, 0, oid, Permission::RDWR)?;
    // perm 0700 + table full → 27
    check_eq!(
        n.import_connect(net, 0, oid, perm(0o700)),
        Err(RsmError::PermDenied)
    );
    // table full + loopback to another node → 31
    check_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o600, Some(&mut ih)),
        31
    );
    // table full + unpublished → 31
    check_eq!(
        n.import_connect(net, 0, unpub, Permission::RDWR),
        Err(RsmError::InsufficientResources)
    );
    Ok(())
}

/// §4.4 disconnect: NULL → 5; twice → 5; foreign or wrong-kind handle → 5 (§9.7).
fn disconnect_bad_handles<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let other = Fx::new(h, PAGE, Permission::RDWR)?;
    check_eq!(
        capi::rsm_memseg_import_disconnect(&fx.n, ImportHandle::NULL),
        5
    );
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, other.imp), 5);
    let (_b, local) = fx.local(8, 0)?;
    for raw in [fx.seg.into_raw(), fx.ctrl.into_raw(), local.into_raw()] {
        check_eq!(
            capi::rsm_memseg_import_disconnect(&fx.n, ImportHandle::from_raw(raw)),
            5
        );
    }
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 5);
    check_eq!(fx.n.import_disconnect(fx.imp), Err(RsmError::BadSegHndl));
    check_eq!(other.n.import_disconnect(other.imp), Ok(()));
    Ok(())
}

/// §4.3 / §6.4: the exporter unpublishes → the importer's next putv/getv → 40
/// (RSMERR_CONN_ABORTED), residual = count; publishing again + a new connect works while the old
/// import stays aborted; disconnect of the aborted import succeeds.
fn unpublish_aborts_importers_and_republish_allows_new_connect<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    fx.fill_seg(3)?;
    let (_lb, local) = fx.local(32, 1)?;
    let iov = [
        IoVec::handle(local, 0, 0, 32),
        IoVec::handle(local, 0, 64, 32),
    ];
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    check_eq!(capi::rsm_memseg_export_unpublish(&fx.n, fx.seg), 0);
    let before = fx.seg_bytes()?;
    let (l2, local2) = fx.local(32, 9)?;
    let iov2 = [
        IoVec::handle(local2, 0, 0, 32),
        IoVec::handle(local2, 0, 64, 32),
    ];
    check_eq!(fx.putv(fx.imp, &iov2), (40, 2));
    check_eq!(fx.getv(fx.imp, &iov2), (40, 2));
    check_eq!(fx.seg_bytes()?, before, "no byte moved");
    check_eq!(fx.bytes(&l2)?, pat(32, 9));
    // The id is free again; publish again and connect anew.
    check_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR),
        Err(RsmError::SegNotPublished)
    );
    let id = fx.n.export_publish(fx.seg, 0, &[])?;
    let fresh = fx.n.import_connect(fx.ctrl, 0, id, Permission::RDWR)?;
    check_eq!(fx.putv(fresh, &iov2), (0, 0));
    check_eq!(fx.seg_read(64, 32)?, pat(32, 9));
    check_eq!(fx.putv(fx.imp, &iov), (40, 2), "old import stays aborted");
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fresh), 0);
    Ok(())
}

/// §4.3 destroy: the importer's next putv/getv → 40; disconnect still succeeds.
fn destroy_aborts_importers<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(16, 1)?;
    let iov = [IoVec::handle(local, 0, 0, 16)];
    check_eq!(capi::rsm_memseg_export_destroy(&fx.n, fx.seg), 0);
    check_eq!(
        h.pinned_pages(fx.n.platform()).must()?,
        1,
        "only the local handle's page"
    );
    check_eq!(fx.putv(fx.imp, &iov), (40, 1));
    check_eq!(fx.getv(fx.imp, &iov), (40, 1));
    // A new segment taking the freed slot does not revive the old connection.
    let c2 =
        fx.n.export_create(fx.ctrl, fx.va(PAGE, 0)?, CreateFlags::empty())?;
    let id2 = fx.n.export_publish(c2, 0, &[])?;
    check!(fx
        .n
        .import_connect(fx.ctrl, 0, id2, Permission::RDWR)
        .is_ok());
    check_eq!(fx.putv(fx.imp, &iov), (40, 1));
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    Ok(())
}

// =============================================================================================
// §4.6 putv / getv
// =============================================================================================

/// §10 putv/getv: NULL sg → 14 (RSMERR_BAD_SGIO).
fn putv_getv_null_sg_is_bad_sgio<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    check_eq!(capi::rsm_memseg_import_putv(&n, None), 14);
    check_eq!(capi::rsm_memseg_import_getv(&n, None), 14);
    Ok(())
}

/// §10 putv/getv: NULL remote handle → 5 (RSMERR_BAD_SEG_HNDL), residual = count; stale,
/// foreign and wrong-kind handles likewise (§9.7).
fn putv_getv_null_or_bad_remote_handle_is_bad_seg_hndl<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let other = Fx::new(h, PAGE, Permission::RDWR)?;
    let src = fx.va(16, 1)?;
    let iov = [IoVec::va(&src, 0, 0, 16), IoVec::va(&src, 0, 16, 16)];
    check_eq!(fx.putv(ImportHandle::NULL, &iov), (5, 2));
    check_eq!(fx.getv(ImportHandle::NULL, &iov), (5, 2));
    check_eq!(fx.putv(other.imp, &iov), (5, 2));
    let (_b, local) = fx.local(8, 0)?;
    for raw in [fx.seg.into_raw(), fx.ctrl.into_raw(), local.into_raw()] {
        check_eq!(fx.putv(ImportHandle::from_raw(raw), &iov), (5, 2));
        check_eq!(fx.getv(ImportHandle::from_raw(raw), &iov), (5, 2));
    }
    let gone = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)?;
    fx.n.import_disconnect(gone)?;
    check_eq!(fx.putv(gone, &iov), (5, 2));
    check_eq!(
        fx.n.putv(&mut ScatGath::new(gone, &iov)),
        Err(RsmError::BadSegHndl)
    );
    check_eq!(fx.seg_bytes()?, [0u8; PAGE]);
    Ok(())
}

/// §10 putv/getv: count 0 → 14; count 17 → 14; count 16 OK (data verified); fewer entries than
/// the count → 14; §2.7 RSM_MAX_SGIOREQS.
fn putv_getv_request_count_limits<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(256, 4)?;
    let iov17: [IoVec<'_, Reg<H>>; 17] =
        core::array::from_fn(|i| IoVec::handle(local, i * 15 % 240, i * 16, 16));
    check_eq!(fx.putv(fx.imp, &iov17), (14, 17));
    check_eq!(fx.getv(fx.imp, &iov17), (14, 17));
    check_eq!(fx.putv(fx.imp, &iov17[..0]), (14, 0));
    check_eq!(fx.getv(fx.imp, &iov17[..0]), (14, 0));
    check_eq!(fx.seg_bytes()?, [0u8; PAGE]);
    // Count 16 is the maximum: all 16 entries land.
    check_eq!(fx.putv(fx.imp, &iov17[..16]), (0, 0));
    let src = pat(256, 4);
    for (i, e) in iov17[..16].iter().enumerate() {
        let want = src.get(e.local_offset..e.local_offset + 16).must()?;
        check_eq!(fx.seg_read(i * 16, 16)?, want);
    }
    // Count larger than the vector given.
    let mut sg = ScatGath::new(fx.imp, &iov17[..3]);
    sg.io_request_count = 4;
    sg.io_residual_count = 999;
    check_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 14);
    check_eq!(sg.io_residual_count, 4);
    // Count smaller than the vector: only the first entries are used.
    h.write(fx.n.platform(), &fx.mem, 0, &[0; PAGE])?;
    let mut sg = ScatGath::new(fx.imp, &iov17);
    sg.io_request_count = 2;
    check_eq!(fx.n.putv(&mut sg), Ok(()));
    check_eq!(sg.io_residual_count, 0);
    check_eq!(fx.seg_read(32, 16)?, [0u8; 16]);
    check_ne!(fx.seg_read(16, 16)?, [0u8; 16]);
    Ok(())
}

/// §10 putv/getv: NULL iovec → 14 (§9.19).
fn putv_getv_null_iovec_is_bad_sgio<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    for count in [1, 16] {
        let mut sg: ScatGath<'_, Reg<H>> = ScatGath {
            local_nodeid: 0,
            io_request_count: count,
            io_residual_count: 999,
            flags: SgFlags::IMPLICIT_SIGPOST,
            remote_handle: fx.imp,
            iovec: None,
        };
        check_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 14);
        check_eq!(sg.io_residual_count, count);
        sg.io_residual_count = 999;
        check_eq!(fx.n.getv(&mut sg), Err(RsmError::BadSgio));
        check_eq!(sg.io_residual_count, count);
    }
    check_eq!(fx.events()?, 0);
    Ok(())
}

/// §10 putv/getv: io_type 3 → 14 (§9.19); other invalid types and io_type/local mismatches
/// likewise.
fn putv_getv_bad_io_type_is_bad_sgio<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(16, 1)?;
    let src = fx.va(16, 2)?;
    for t in [3, 0, -1, 4, i32::MAX] {
        let mut e = IoVec::va(&src, 0, 0, 16);
        e.io_type = t;
        check_eq!(fx.putv(fx.imp, &[e]), (14, 1), "io_type {t}");
        check_eq!(fx.getv(fx.imp, &[e]), (14, 1), "io_type {t}");
        let mut hv = IoVec::handle(local, 0, 0, 16);
        hv.io_type = t;
        check_eq!(fx.putv(fx.imp, &[hv]), (14, 1), "io_type {t}");
    }
    // HANDLE type with a VA local side, and VA type with a handle.
    let mismatched = [
        IoVec {
            io_type: RSM_HANDLE_TYPE,
            local: LocalRef::Va(&src),
            local_offset: 0,
            remote_offset: 0,
            transfer_length: 16,
        },
        IoVec {
            io_type: RSM_VA_TYPE,
            local: LocalRef::Handle(local),
            local_offset: 0,
            remote_offset: 0,
            transfer_length: 16,
        },
    ];
    for e in mismatched {
        check_eq!(fx.putv(fx.imp, &[e]), (14, 1));
    }
    check_eq!(fx.seg_bytes()?, [0u8; PAGE]);
    Ok(())
}

/// §10 putv/getv: an entry beyond the segment end → 18 (RSMERR_BAD_OFFSET, §9.12) with
/// residual = io_request_count, and no byte changed anywhere (the vector is validated first).
fn putv_getv_entry_beyond_segment_end_is_bad_offset_nothing_moved<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, 2 * PAGE, Permission::RDWR)?;
    fx.fill_seg(1)?;
    let (lb, local) = fx.local(PAGE, 2)?;
    let vb = fx.va(PAGE, 3)?;
    let seg_len = 2 * PAGE;
    let bad_entries = [
        IoVec::handle(local, 0, seg_len - 10, 11),
        IoVec::handle(local, 0, seg_len, 1),
        IoVec::va(&vb, 0, seg_len + 1, 0),
        IoVec::va(&vb, 0, usize::MAX, 2),
        IoVec::va(&vb, 0, usize::MAX - 1, 2),
    ];
    for bad in bad_entries {
        let iov = [
            IoVec::handle(local, 0, 0, 64),
            IoVec::va(&vb, 0, 100, 64),
            bad,
            IoVec::handle(local, 0, 200, 64),
        ];
        check_eq!(fx.putv(fx.imp, &iov), (18, 4), "{:?}", Ent(&bad));
        check_eq!(fx.getv(fx.imp, &iov), (18, 4), "{:?}", Ent(&bad));
        check_eq!(fx.seg_bytes()?, pat(seg_len, 1));
        check_eq!(fx.bytes(&lb)?, pat(PAGE, 2));
        check_eq!(fx.bytes(&vb)?, pat(PAGE, 3));
    }
    // The entry ending exactly at the segment end is fine.
    let iov = [IoVec::handle(local, 0, seg_len - 10, 10)];
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    let mut sg = ScatGath::new(fx.imp, &bad_entries[..1]);
    check_eq!(fx.n.getv(&mut sg), Err(RsmError::BadOffset));
    Ok(())
}

/// §10 putv/getv: an entry beyond the local handle's length → 20 (RSMERR_BAD_LENGTH, §9.12);
/// VA regions are bounded by their length the same way; nothing moves.
fn putv_getv_entry_beyond_local_length_is_bad_length<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, 2 * PAGE, Permission::RDWR)?;
    let (lb, local) = fx.local(PAGE, 2)?;
    let vb = fx.va(300, 3)?;
    for bad in [
        IoVec::handle(local, 0, 0, PAGE + 1),
        IoVec::handle(local, PAGE, 0, 1),
        IoVec::handle(local, PAGE + 1, 0, 0),
        IoVec::handle(local, usize::MAX, 0, 2),
        IoVec::va(&vb, 290, 0, 11),
        IoVec::va(&vb, 0, 0, 301),
    ] {
        let iov = [IoVec::va(&vb, 0, 0, 8), bad];
        check_eq!(fx.putv(fx.imp, &iov), (20, 2), "{:?}", Ent(&bad));
        check_eq!(fx.getv(fx.imp, &iov), (20, 2), "{:?}", Ent(&bad));
        check_eq!(fx.seg_bytes()?, [0u8; 2 * PAGE]);
        check_eq!(fx.bytes(&lb)?, pat(PAGE, 2));
        check_eq!(fx.bytes(&vb)?, pat(300, 3));
    }
    let iov = [IoVec::handle(local, 1, 0, PAGE)];
    check_eq!(
        fx.n.putv(&mut ScatGath::new(fx.imp, &iov)),
        Err(RsmError::BadLength)
    );
    check_eq!(
        fx.n.getv(&mut ScatGath::new(fx.imp, &iov)),
        Err(RsmError::BadLength)
    );
    Ok(())
}

/// §4.6 / §9.19: zero-length entries are allowed no-ops (also at the very end of the segment
/// and of the local memory) and still validated.
fn putv_getv_zero_length_entries_ok<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    fx.fill_seg(1)?;
    let (lb, local) = fx.local(100, 2)?;
    let vb = fx.va(50, 3)?;
    let iov = [
        IoVec::handle(local, 0, 0, 0),
        IoVec::handle(local, 100, PAGE, 0),
        IoVec::va(&vb, 50, 17, 0),
        IoVec::va(&vb, 0, PAGE, 0),
    ];
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.seg_bytes()?, pat(PAGE, 1));
    check_eq!(fx.bytes(&lb)?, pat(100, 2));
    check_eq!(fx.bytes(&vb)?, pat(50, 3));
    // Zero-length entries are still validated.
    check_eq!(fx.putv(fx.imp, &[IoVec::va(&vb, 0, PAGE + 1, 0)]), (18, 1));
    let mut bad = IoVec::va(&vb, 0, 0, 0);
    bad.io_type = 3;
    check_eq!(fx.putv(fx.imp, &[bad]), (14, 1));
    Ok(())
}

/// §10 putv/getv: mixed HANDLE/VA entries round-trip data (putv, then getv into other buffers),
/// on both controllers.
fn putv_getv_mixed_handle_and_va_round_trip<H: Harness>(h: &H) -> Outcome {
    for ctrl in [None, Some("rsmnet0")] {
        let fx = Fx::with(h, node(h), ctrl, 3 * PAGE, &[], Permission::RDWR)?;
        let (_a, ha) = fx.local(100, 10)?;
        let vb = fx.va(300, 20)?;
        let iov = [
            IoVec::handle(ha, 0, 0, 100),
            IoVec::va(&vb, 10, PAGE - 20, 50),
            IoVec::handle(ha, 50, 2 * PAGE + 5, 50),
            IoVec::va(&vb, 0, 3 * PAGE - 300, 300),
        ];
        check_eq!(fx.putv(fx.imp, &iov), (0, 0));
        let rd = |off, len| fx.seg_read(off, len);
        check_eq!(rd(0, 100)?, pat(100, 10));
        check_eq!(rd(PAGE - 20, 50)?, pat(300, 20)[10..60]);
        check_eq!(rd(2 * PAGE + 5, 50)?, pat(100, 10)[50..]);
        check_eq!(rd(3 * PAGE - 300, 300)?, pat(300, 20));
        check_eq!(rd(100, 50)?, [0u8; 50], "nothing between the entries");
        // getv scatters it back into a handle and a VA buffer.
        let cbuf = h.alloc(fx.n.platform(), 200)?;
        let ch = fx.n.create_localmemory_handle(fx.ctrl, cbuf.clone())?;
        let dbuf = h.alloc(fx.n.platform(), 400)?;
        let back = [
            IoVec::handle(ch, 0, 0, 100),
            IoVec::va(&dbuf, 0, PAGE - 20, 50),
            IoVec::handle(ch, 100, 2 * PAGE + 5, 50),
            IoVec::va(&dbuf, 100, 3 * PAGE - 300, 300),
        ];
        check_eq!(fx.getv(fx.imp, &back), (0, 0));
        let c = fx.bytes(&cbuf)?;
        let d = fx.bytes(&dbuf)?;
        check_eq!(c[..100], pat(100, 10)[..]);
        check_eq!(c[100..150], pat(100, 10)[50..]);
        check_eq!(c[150..], filled(50, 0)[..]);
        check_eq!(d[..50], pat(300, 20)[10..60]);
        check_eq!(d[100..], pat(300, 20)[..]);
    }
    Ok(())
}

/// §4.6 (rustdoc): a local handle that was freed, or a stale handle whose slot was reused, in
/// an entry → 14.
fn putv_freed_local_handle_is_bad_sgio<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (lb, local) = fx.local(64, 1)?;
    fx.n.free_localmemory_handle(fx.ctrl, local)?;
    let iov = [IoVec::handle(local, 0, 0, 64)];
    check_eq!(fx.putv(fx.imp, &iov), (14, 1));
    check_eq!(fx.getv(fx.imp, &iov), (14, 1));
    let reused = fx.n.create_localmemory_handle(fx.ctrl, lb)?;
    check_ne!(reused, local);
    check_eq!(fx.putv(fx.imp, &iov), (14, 1));
    check_eq!(fx.putv(fx.imp, &[IoVec::handle(reused, 0, 0, 64)]), (0, 0));
    Ok(())
}

/// §9.2: io_residual_count is written on every return (preset to 999): 0 on success, the
/// request count on every failure before a transfer.
fn putv_getv_residual_written_on_every_return<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(64, 1)?;
    let ok = IoVec::handle(local, 0, 0, 64);
    let beyond = IoVec::handle(local, 0, PAGE, 1);
    let (ok3, ok16, ok_ok_beyond, beyond_ok, ok5, ok17) = (
        [ok; 3],
        [ok; 16],
        [ok, ok, beyond],
        [beyond, ok],
        [ok; 5],
        [ok; 17],
    );
    let cases: [(Iov<'_, H>, ImportHandle, i32); 6] = [
        (&ok3, fx.imp, 0),
        (&ok16, fx.imp, 0),
        (&ok_ok_beyond, fx.imp, 18),
        (&beyond_ok, fx.imp, 18),
        (&ok5, ImportHandle::NULL, 5),
        (&ok17, fx.imp, 14),
    ];
    for (iov, imp, want) in &cases {
        let expect_residual = if *want == 0 { 0 } else { iov.len() as u64 };
        check_eq!(fx.putv(*imp, iov), (*want, expect_residual));
        check_eq!(fx.getv(*imp, iov), (*want, expect_residual));
        // Typed API writes it too.
        let mut sg = ScatGath::new(*imp, iov);
        sg.io_residual_count = 999;
        check_eq!(rc(fx.n.putv(&mut sg)), *want);
        check_eq!(sg.io_residual_count, expect_residual);
    }
    // Aborted connection.
    fx.n.export_unpublish(fx.seg)?;
    check_eq!(fx.putv(fx.imp, &[ok, ok]), (40, 2));
    Ok(())
}

/// §9.2: when an entry fails *during* the transfer (here: a VA entry over memory that is not
/// mapped, which passes validation and faults in the copy), entries are processed strictly in
/// order, processing stops at the failing entry, the entries before it are transferred, and
/// residual = io_request_count − k; no implicit sigpost on failure (§9.28).
fn putv_getv_fault_mid_vector_residual_counts_done_entries<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (lb, local) = fx.local(64, 1)?;
    let vb = fx.va(64, 2)?;
    let hole = h.raw(UNMAPPED, 64)?;
    let iov = [
        IoVec::handle(local, 0, 0, 64),
        IoVec::va(&vb, 0, 64, 64),
        IoVec::va(&hole, 0, 128, 64),
        IoVec::handle(local, 0, 192, 64),
    ];
    let mut sg = ScatGath::new(fx.imp, &iov);
    sg.io_residual_count = 999;
    sg.flags = SgFlags::IMPLICIT_SIGPOST;
    check_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 16);
    check_eq!(sg.io_residual_count, 2);
    check_eq!(sg.flags, SgFlags::IMPLICIT_SIGPOST);
    check_eq!(fx.seg_read(0, 64)?, pat(64, 1), "entry 0 done");
    check_eq!(fx.seg_read(64, 64)?, pat(64, 2), "entry 1 done");
    check_eq!(fx.seg_read(128, 128)?, [0u8; 128], "entries 2, 3 not");
    check_eq!(fx.events()?, 0);
    // getv: the same, in the other direction.
    fx.fill_seg(7)?;
    sg.io_residual_count = 999;
    check_eq!(fx.n.getv(&mut sg), Err(RsmError::BadAddr));
    check_eq!(sg.io_residual_count, 2);
    check_eq!(fx.bytes(&lb)?, pat(PAGE, 7)[..64]);
    check_eq!(fx.bytes(&vb)?, pat(PAGE, 7)[64..128]);
    check_eq!(fx.events()?, 0);
    // Failing first entry: residual = count.
    let iov = [IoVec::va(&hole, 0, 0, 8), IoVec::handle(local, 0, 8, 8)];
    check_eq!(fx.putv(fx.imp, &iov), (16, 2));
    Ok(())
}

/// §4.6: the caller's flags are unchanged after return, on success and on failure, with
/// IMPLICIT_SIGPOST | SIGPOST_NO_ACCUMULATE set.
fn putv_getv_flags_unchanged<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(64, 1)?;
    let all = SgFlags::IMPLICIT_SIGPOST | SgFlags::SIGPOST_NO_ACCUMULATE;
    let good = [IoVec::handle(local, 0, 0, 64)];
    let bad = [IoVec::handle(local, 0, PAGE, 64)];
    for flags in [all, SgFlags::IMPLICIT_SIGPOST, SgFlags::empty()] {
        for (iov, want) in [(&good, 0), (&bad, 18)] {
            let mut sg = ScatGath::new(fx.imp, iov);
            sg.flags = flags;
            check_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), want);
            check_eq!(sg.flags, flags);
            check_eq!(capi::rsm_memseg_import_getv(&fx.n, Some(&mut sg)), want);
            check_eq!(sg.flags, flags);
        }
    }
    // Also when the connection was aborted.
    fx.n.export_unpublish(fx.seg)?;
    let mut sg = ScatGath::new(fx.imp, &good);
    sg.flags = all;
    check_eq!(fx.n.putv(&mut sg), Err(RsmError::ConnAborted));
    check_eq!(sg.flags, all);
    Ok(())
}

/// §10 putv/getv: implicit sigpost rings the exporter exactly once per successful call, never
/// on failure and never without the flag (§4.6, §9.28).
fn implicit_sigpost_rings_once_per_successful_call<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(64, 1)?;
    let good = [
        IoVec::handle(local, 0, 0, 64),
        IoVec::handle(local, 0, 64, 64),
    ];
    let bad = [
        IoVec::handle(local, 0, 0, 64),
        IoVec::handle(local, 0, PAGE, 64),
    ];
    check_eq!(fx.events()?, 0);
    check_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &good, SgFlags::empty())),
        Ok(())
    );
    check_eq!(fx.events()?, 0, "no flag, no event");
    check_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &good, SgFlags::SIGPOST_NO_ACCUMULATE)),
        Ok(())
    );
    check_eq!(fx.events()?, 0, "NO_ACCUMULATE alone does not post");
    check_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &good, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    check_eq!(fx.events()?, 1, "one event for a two-entry vector");
    check_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &bad, SgFlags::IMPLICIT_SIGPOST)),
        Err(RsmError::BadOffset)
    );
    check_eq!(fx.events()?, 1, "failure posts nothing");
    check_eq!(
        fx.n.getv(&mut sg_with(fx.imp, &good, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    check_eq!(fx.events()?, 2, "getv posts too");
    check_eq!(
        fx.n.getv(&mut sg_with(
            ImportHandle::NULL,
            &good,
            SgFlags::IMPLICIT_SIGPOST
        )),
        Err(RsmError::BadSegHndl)
    );
    check_eq!(fx.events()?, 2);
    Ok(())
}

/// §10 putv/getv: no-accumulate coalesces (our choice, §9.3): two calls with NO_ACCUMULATE → 1
/// event; without → 2.
fn implicit_sigpost_no_accumulate_coalesces<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(64, 1)?;
    let iov = [IoVec::handle(local, 0, 0, 64)];
    let both = SgFlags::IMPLICIT_SIGPOST | SgFlags::SIGPOST_NO_ACCUMULATE;
    check_eq!(fx.n.putv(&mut sg_with(fx.imp, &iov, both)), Ok(()));
    check_eq!(fx.n.putv(&mut sg_with(fx.imp, &iov, both)), Ok(()));
    check_eq!(fx.events()?, 1);
    let fx2 = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb2, local2) = fx2.local(64, 1)?;
    let iov2 = [IoVec::handle(local2, 0, 0, 64)];
    check_eq!(
        fx2.n
            .putv(&mut sg_with(fx2.imp, &iov2, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    check_eq!(
        fx2.n
            .putv(&mut sg_with(fx2.imp, &iov2, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    check_eq!(fx2.events()?, 2);
    // An accumulating post on top of a pending event still adds one.
    check_eq!(fx2.n.putv(&mut sg_with(fx2.imp, &iov2, both)), Ok(()));
    check_eq!(
        fx2.events()?,
        2,
        "no-accumulate with a pending event adds nothing"
    );
    check_eq!(
        fx2.n
            .putv(&mut sg_with(fx2.imp, &iov2, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    check_eq!(fx2.events()?, 3);
    Ok(())
}

/// Check order of putv/getv (§4.6, rustdoc): remote handle → count / iovec → connection
/// aborted → permission → entries.
fn putv_getv_check_order_header<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::with(h, node(h), Some("rsmnet0"), PAGE, &[], Permission::RDWR)?;
    let ro = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ)?;
    let wo = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::WRITE)?;
    let (_lb, local) = fx.local(64, 1)?;
    let mut bad_type = IoVec::handle(local, 0, 0, 8);
    bad_type.io_type = 3;
    let ok = IoVec::handle(local, 0, 0, 8);
    let seventeen = [bad_type; 17];
    // NULL remote + count 0 → 5; NULL remote + count 17 → 5
    check_eq!(fx.putv(ImportHandle::NULL, &[]), (5, 0));
    check_eq!(fx.putv(ImportHandle::NULL, &seventeen), (5, 17));
    // NULL remote + NULL iovec → 5
    let mut sg: ScatGath<'_, Reg<H>> = ScatGath {
        iovec: None,
        ..ScatGath::new(ImportHandle::NULL, &[])
    };
    sg.io_request_count = 1;
    check_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 5);
    // permission denied + bad entry → 27 (putv on read-only, getv on write-only)
    check_eq!(fx.putv(ro, &[bad_type]), (27, 1));
    check_eq!(fx.getv(wo, &[bad_type]), (27, 1));
    // permission denied + count 0 → 14; permission denied + count 17 → 14
    check_eq!(fx.putv(ro, &[]), (14, 0));
    check_eq!(fx.getv(wo, &seventeen), (14, 17));
    // Connection aborted.
    fx.n.export_unpublish(fx.seg)?;
    // count 0 / 17 / NULL iovec + aborted → 14
    check_eq!(fx.putv(fx.imp, &[]), (14, 0));
    check_eq!(fx.putv(fx.imp, &seventeen), (14, 17));
    let mut sg: ScatGath<'_, Reg<H>> = ScatGath {
        iovec: None,
        ..ScatGath::new(fx.imp, &[])
    };
    sg.io_request_count = 1;
    check_eq!(fx.n.putv(&mut sg), Err(RsmError::BadSgio));
    // aborted + permission denied → 40
    check_eq!(fx.putv(ro, &[ok]), (40, 1));
    check_eq!(fx.getv(wo, &[ok]), (40, 1));
    // aborted + bad entry → 40
    check_eq!(fx.putv(fx.imp, &[bad_type]), (40, 1));
    Ok(())
}

/// Check order among and within entries (§4.6 rustdoc, `sg::plan`): the first bad entry wins;
/// within an entry io_type → NULL VA → remote range (18) → local range (20).
fn putv_getv_check_order_entries<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (_lb, local) = fx.local(64, 1)?;
    let vb = fx.va(64, 2)?;
    let null = h.raw(0, 64)?;
    let ok = IoVec::handle(local, 0, 0, 8);
    let mut bad_type = IoVec::va(&null, 100, PAGE, 100);
    bad_type.io_type = 3;
    let null_va = IoVec::va(&null, 100, PAGE, 100); // also remote and local range bad
    let both_ranges = IoVec::va(&vb, 100, PAGE, 100); // remote and local range bad
    let local_range = IoVec::va(&vb, 60, 0, 8);
    let remote_range = IoVec::va(&vb, 0, PAGE - 4, 8);
    // Within one entry.
    for (e, want) in [
        (bad_type, 14),
        (null_va, 16),
        (both_ranges, 18),
        (remote_range, 18),
        (local_range, 20),
    ] {
        check_eq!(fx.putv(fx.imp, &[ok, e]), (want, 2), "{:?}", Ent(&e));
        check_eq!(fx.getv(fx.imp, &[ok, e]), (want, 2), "{:?}", Ent(&e));
    }
    // A freed handle with bad ranges → 14.
    let (_b2, gone) = fx.local(64, 3)?;
    fx.n.free_localmemory_handle(fx.ctrl, gone)?;
    check_eq!(
        fx.putv(fx.imp, &[IoVec::handle(gone, 100, PAGE, 100)]),
        (14, 1)
    );
    // A handle entry with both ranges bad → 18.
    check_eq!(
        fx.putv(fx.imp, &[IoVec::handle(local, 100, PAGE, 100)]),
        (18, 1)
    );
    // Among entries: the first bad one wins, whatever its kind.
    let orders: [(Iov<'_, H>, i32); 6] = [
        (&[ok, local_range, bad_type], 20),
        (&[ok, bad_type, local_range], 14),
        (&[remote_range, null_va], 18),
        (&[null_va, remote_range], 16),
        (&[local_range, remote_range, bad_type], 20),
        (&[ok, ok, ok, remote_range, local_range], 18),
    ];
    for (iov, want) in orders {
        check_eq!(fx.putv(fx.imp, iov), (want, iov.len() as u64));
        check_eq!(fx.getv(fx.imp, iov), (want, iov.len() as u64));
    }
    check_eq!(fx.seg_bytes()?, [0u8; PAGE], "no vector moved a byte");
    Ok(())
}

/// §9.29: validation is identical on both controllers (the same bad vector gets the same code
/// through loopback and rsmnet0).
fn putv_validation_identical_on_both_controllers<H: Harness>(h: &H) -> Outcome {
    let mut codes = [[(0i32, 0u64); 4]; 2];
    for (slot, ctrl) in codes.iter_mut().zip([None, Some("rsmnet0")]) {
        let fx = Fx::with(h, node(h), ctrl, PAGE, &[], Permission::RDWR)?;
        let (_lb, local) = fx.local(64, 1)?;
        let mut t3 = IoVec::handle(local, 0, 0, 8);
        t3.io_type = 3;
        let v = [
            fx.putv(fx.imp, &[IoVec::handle(local, 0, PAGE, 1)]),
            fx.putv(fx.imp, &[IoVec::handle(local, 60, 0, 8)]),
            fx.putv(fx.imp, &[t3]),
            fx.putv(fx.imp, &[IoVec::handle(local, 0, 0, 64)]),
        ];
        *slot = v;
    }
    let [first, second] = codes;
    check_eq!(first, [(18, 1), (20, 1), (14, 1), (0, 0)]);
    check_eq!(first, second);
    Ok(())
}
