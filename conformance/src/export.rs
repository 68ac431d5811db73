//! §4.3 export side: create / destroy, publish / unpublish / republish with segment ids
//! (§2.3, §9.15) and access lists (§9.16), rebind (§9.17) — with the check order of every
//! one of those functions (the first failing check wins, §4 "Impl order", §9.10) — and
//! `rsm_get_segmentid_range` (§4.2, §9.31: the segment-id configuration comes from the
//! embedder, `Config::segid_conf`, in the `/etc/rsm/rsm.segmentid` text format).
//!
//! Numeric codes are asserted through the C-shaped entry points of `rsm_core::capi` (the only
//! way to express NULL out-pointers); typed `RsmError`s through the Rust API.
//!
//! (Loading that file from disk is a host-embedder test: `tests/tests/host_export.rs`.)

use crate::{
    check, check_eq, node, node_with, pat, read_bytes, small_node, Fail, Harness, Must, Needs,
    Node, Outcome, SmallNode,
};
use rsm_core::capi;
use rsm_core::capi::rsm_get_segmentid_range;
use rsm_core::segid::SegidRange;
use rsm_core::{
    AccessEntry, Config, ControllerHandle, CreateFlags, ExportHandle, IoVec, Permission, Rsm,
    RsmError, SegmentId,
};
use rsm_hal::{Region, PAGE_SIZE};

use crate::fixture::Fx;

crate::table! {
    export_create_unaligned_vaddr_or_length_is_bad_mem_alignment: Needs::PIN_COUNT,
    export_create_length_zero_is_bad_length,
    export_create_argument_errors: Needs::PIN_COUNT,
    export_create_quota_and_table_exhaustion: Needs::PIN_QUOTA.union(Needs::PIN_COUNT),
    export_create_check_order: Needs::PIN_QUOTA.union(Needs::PIN_COUNT),
    export_destroy_bad_handles,
    publish_id_zero_assigns_distinct_system_ids,
    publish_segment_id_policy,
    publish_duplicate_id_is_segid_in_use_until_unpublished,
    publish_null_arguments_and_order,
    publish_twice_and_unpublish_unpublished,
    publish_check_order,
    publish_acl_limits,
    publish_loopback_acl_rules,
    republish_errors_and_order,
    republish_affects_only_future_connects,
    rebind_without_allow_rebind_is_rebind_not_allowed,
    rebind_different_length_is_bad_length,
    rebind_same_address_is_noop_success: Needs::PIN_COUNT,
    rebind_to_new_buffer_importer_sees_new_bytes: Needs::PIN_COUNT,
    rebind_errors_and_check_order: Needs::PIN_COUNT,
    rebind_over_quota_is_insufficient_mem: Needs::PIN_QUOTA,
    listed_appids_get_their_range,
    unknown_appid_missing_or_malformed_conf,
    c_form_null_arguments_and_success,
    reserved_range_ids_publish,
}

const PAGE: usize = PAGE_SIZE;
/// An aligned address far outside any memory (never allocated).
const UNMAPPED: usize = 0x7000_0000_0000;

/// Room for the longest access list a check builds (one past the 64-entry limit).
const ACL_MAX: usize = 65;
/// An access list on the stack.
type Acl = heapless::Vec<AccessEntry, ACL_MAX>;

/// The access list of `entries` (at most [`ACL_MAX`]).
#[track_caller]
fn acl(entries: impl IntoIterator<Item = AccessEntry>) -> Result<Acl, Fail> {
    let mut v = Acl::new();
    for e in entries {
        if v.push(e).is_err() {
            return Err(Fail::new("acl: more than ACL_MAX entries"));
        }
    }
    Ok(v)
}

/// The sub-range `off .. off + len` of `r` (the fake's `FakeRegion::sub`).
#[track_caller]
fn sub<R: Region>(r: &R, off: usize, len: usize) -> Result<R, Fail> {
    match r.slice(off, len) {
        Some(s) => Ok(s),
        None => Err(Fail::new("sub-region out of range")),
    }
}

// =============================================================================================
// §4.3 Export side: create / destroy
// =============================================================================================

/// §10 Export: unaligned vaddr / unaligned length → 17 (RSMERR_BAD_MEM_ALIGNMENT); §4.3.
fn export_create_unaligned_vaddr_or_length_is_bad_mem_alignment<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let mem = h.alloc(n.platform(), 3 * PAGE)?;
    let mut eh = ExportHandle::NULL;
    for r in [
        sub(&mem, 1, PAGE)?,
        sub(&mem, 8, 2 * PAGE)?,
        sub(&mem, 0, PAGE + 1)?,
        sub(&mem, 0, 100)?,
    ] {
        check_eq!(
            capi::rsm_memseg_export_create(&n, c, Some(&mut eh), r.clone(), 0),
            17
        );
        check_eq!(
            n.export_create(c, r, CreateFlags::empty()),
            Err(RsmError::BadMemAlignment)
        );
    }
    check_eq!(n.slots_in_use(), (0, 0, 0));
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §10 Export: length 0 → 20 (RSMERR_BAD_LENGTH); §4.3.
fn export_create_length_zero_is_bad_length<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let r = h.alloc(n.platform(), 0)?;
    let mut eh = ExportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), r.clone(), 0),
        20
    );
    check_eq!(
        n.export_create(c, r, CreateFlags::empty()),
        Err(RsmError::BadLength)
    );
    Ok(())
}

/// §4.3: NULL controller → 3, NULL memseg out-pointer → 5, NULL vaddr → 16, longer than
/// attr_max_export_segment_size → 20, unmapped memory → 16; `*memseg` is set to NULL once the
/// out-pointer was found non-NULL.
fn export_create_argument_errors<H: Harness>(h: &H) -> Outcome {
    let n = node_with(
        h,
        Config {
            max_segment_size: 2 * PAGE,
            ..Config::default()
        },
    );
    let c = n.get_controller(None)?;
    let ok = h.alloc(n.platform(), PAGE)?;
    let garbage = ExportHandle::from_raw(0x1234);
    let mut eh = garbage;
    check_eq!(
        capi::rsm_memseg_export_create(&n, ControllerHandle::NULL, Some(&mut eh), ok.clone(), 0),
        3
    );
    check_eq!(
        eh,
        garbage,
        "out-pointer untouched before the controller check"
    );
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, None, ok.clone(), 0),
        5
    );
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), h.raw(0, PAGE)?, 0),
        16
    );
    check!(
        eh.is_null(),
        "*memseg set to NULL after the out-pointer check"
    );
    let big = h.alloc(n.platform(), 3 * PAGE)?;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), big, 0),
        20
    );
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), h.raw(UNMAPPED, PAGE)?, 0),
        16
    );
    check_eq!(n.slots_in_use(), (0, 0, 0));
    // Success; unknown flag bits are ignored (§9.25).
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), ok, 0xFFFF_FFF0),
        0
    );
    check!(!eh.is_null());
    check_eq!(h.pinned_pages(n.platform()).must()?, 1);
    check_eq!(capi::rsm_memseg_export_destroy(&n, eh), 0);
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §4.3: pinned-page quota exceeded → 32; export table full → 31.
fn export_create_quota_and_table_exhaustion<H: Harness>(h: &H) -> Outcome {
    let n = small_node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    check!(h.set_pin_quota(n.platform(), 2 * PAGE));
    let big = h.alloc(n.platform(), 3 * PAGE)?;
    let mut eh = ExportHandle::NULL;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), big.clone(), 0),
        32
    );
    check_eq!(
        n.export_create(c, big, CreateFlags::empty()),
        Err(RsmError::InsufficientMem)
    );
    let m = [
        h.alloc(n.platform(), PAGE)?,
        h.alloc(n.platform(), PAGE)?,
        h.alloc(n.platform(), PAGE)?,
    ];
    let [m0, m1, m2] = &m;
    let a = n.export_create(c, m0.clone(), CreateFlags::empty())?;
    let b = n.export_create(c, m1.clone(), CreateFlags::empty())?;
    // Table full and quota exhausted: the table check comes before pinning (§4.3: no
    // descriptor → INSUFFICIENT_RESOURCES before the KA bind).
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), m2.clone(), 0),
        31
    );
    check_eq!(
        n.export_create(c, m2.clone(), CreateFlags::empty()),
        Err(RsmError::InsufficientResources)
    );
    check_eq!(h.pinned_pages(n.platform()).must()?, 2);
    n.export_destroy(a)?;
    let c3 = n.export_create(c, m2.clone(), CreateFlags::empty())?;
    n.export_destroy(b)?;
    n.export_destroy(c3)?;
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// Check order of rsm_memseg_export_create (§4.3 impl order): controller → NULL memseg → NULL
/// vaddr → length 0 → alignment → max length → table → pin.
fn export_create_check_order<H: Harness>(h: &H) -> Outcome {
    let n: SmallNode<H> = Rsm::new(
        h.platform(),
        Config {
            max_segment_size: 2 * PAGE,
            ..Config::default()
        },
    );
    let c = n.get_controller(None)?;
    let nc = ControllerHandle::NULL;
    let mem = h.alloc(n.platform(), 4 * PAGE)?;
    let mut eh = ExportHandle::NULL;
    let null = h.raw(0, 0)?;
    // NULL controller + NULL memseg → 3
    check_eq!(
        capi::rsm_memseg_export_create(&n, nc, None, null.clone(), 0),
        3
    );
    check_eq!(
        n.export_create(nc, null.clone(), CreateFlags::empty()),
        Err(RsmError::BadCtlrHndl)
    );
    // NULL memseg + NULL vaddr → 5
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, None, null.clone(), 0),
        5
    );
    // NULL vaddr + length 0 → 16
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), null, 0),
        16
    );
    // length 0 + misaligned vaddr → 20
    let empty_misaligned = sub(&mem, 1, 0)?;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), empty_misaligned, 0),
        20
    );
    // misaligned + too long → 17
    let long_misaligned = sub(&mem, 1, 3 * PAGE)?;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), long_misaligned.clone(), 0),
        17
    );
    check_eq!(
        n.export_create(c, long_misaligned, CreateFlags::empty()),
        Err(RsmError::BadMemAlignment)
    );
    // Fill the table, then: too long + table full → 20; misaligned + table full → 17.
    let a = n.export_create(c, sub(&mem, 0, PAGE)?, CreateFlags::empty())?;
    let b = n.export_create(c, sub(&mem, PAGE, PAGE)?, CreateFlags::empty())?;
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), sub(&mem, 0, 3 * PAGE)?, 0),
        20
    );
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), sub(&mem, 8, PAGE)?, 0),
        17
    );
    // table full + quota exhausted → 31
    check!(h.set_pin_quota(n.platform(), 2 * PAGE));
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), sub(&mem, 2 * PAGE, PAGE)?, 0),
        31
    );
    n.export_destroy(a)?;
    // Now only the quota fails → 32.
    check!(h.set_pin_quota(n.platform(), PAGE));
    check_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), sub(&mem, 2 * PAGE, PAGE)?, 0),
        32
    );
    n.export_destroy(b)?;
    check_eq!(h.pinned_pages(n.platform()).must()?, 0);
    Ok(())
}

/// §4.3 destroy: NULL → 5; destroyed, foreign or wrong-kind handle → 5 (§9.7).
fn export_destroy_bad_handles<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let other = node(h);
    let c = n.get_controller(None)?;
    let oc = other.get_controller(None)?;
    let m = h.alloc(n.platform(), PAGE)?;
    let om = h.alloc(other.platform(), PAGE)?;
    let seg = n.export_create(c, m, CreateFlags::empty())?;
    let oseg = other.export_create(oc, om, CreateFlags::empty())?;
    check_eq!(capi::rsm_memseg_export_destroy(&n, ExportHandle::NULL), 5);
    check_eq!(capi::rsm_memseg_export_destroy(&n, oseg), 5);
    let id = n.export_publish(seg, 0, &[])?;
    let imp = n.import_connect(c, 0, id, Permission::RDWR)?;
    let lbuf = h.alloc(n.platform(), PAGE)?;
    let local = n.create_localmemory_handle(c, lbuf)?;
    for raw in [imp.into_raw(), local.into_raw(), c.into_raw()] {
        check_eq!(
            capi::rsm_memseg_export_destroy(&n, ExportHandle::from_raw(raw)),
            5
        );
    }
    check_eq!(capi::rsm_memseg_export_destroy(&n, seg), 0);
    check_eq!(capi::rsm_memseg_export_destroy(&n, seg), 5);
    check_eq!(n.export_destroy(seg), Err(RsmError::BadSegHndl));
    check_eq!(other.export_destroy(oseg), Ok(()));
    Ok(())
}

// =============================================================================================
// §4.3 publish / unpublish / republish, §2.3 / §9.15 segment ids, §9.16 ACLs
// =============================================================================================

/// A fresh one-page segment of `n` on `ctrl` (no flags).
fn exported<H: Harness>(h: &H, n: &Node<H>, ctrl: ControllerHandle) -> Result<ExportHandle, Fail> {
    let m = h.alloc(n.platform(), PAGE)?;
    Ok(n.export_create(ctrl, m, CreateFlags::empty())?)
}

/// §10 Export: publish with id 0 returns ≥ 0x80000000, distinct each time (§2.3, §9.15), also
/// after unpublish/publish of the same segment.
fn publish_id_zero_assigns_distinct_system_ids<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let mut seen: heapless::Vec<SegmentId, 8> = heapless::Vec::new();
    for _ in 0..4 {
        let seg = exported(h, &n, c)?;
        let mut id: SegmentId = 0;
        check_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 0),
            0
        );
        check!(id >= 0x8000_0000, "{id:#x}");
        check!(!seen.contains(&id));
        check_eq!(n.export_segment_id(seg), Ok(Some(id)));
        seen.push(id).must()?;
        n.export_unpublish(seg)?;
        let again = n.export_publish(seg, 0, &[])?;
        check!(again >= 0x8000_0000);
        check!(!seen.contains(&again), "{again:#x} handed out twice");
        seen.push(again).must()?;
    }
    Ok(())
}

/// §10 Export: reserved ids → 23 (RSMERR_RESERVED_SEGID): 0x100, 0x3FFFFF, 0x80000001 and the
/// rest outside 0x400000..=0x7FFFFFFF; the boundaries 0x400000 and 0x7FFFFFFF are accepted
/// (§2.3, §9.15).
fn publish_segment_id_policy<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let seg = exported(h, &n, c)?;
    for bad in [
        1u32,
        0x100,
        0xF_FFFF,
        0x10_0000,
        0x20_0000,
        0x3F_FFFF,
        0x8000_0000,
        0x8000_0001,
        0xFFFF_FFFF,
    ] {
        let mut id = bad;
        check_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 0),
            23,
            "{bad:#x}"
        );
        check_eq!(id, bad, "id untouched on failure");
        check_eq!(
            n.export_publish(seg, bad, &[]),
            Err(RsmError::ReservedSegid)
        );
    }
    check_eq!(n.export_segment_id(seg), Ok(None), "still unpublished");
    for good in [0x40_0000u32, 0x4F_FFFF, 0x50_0000, 0x60_0000, 0x7FFF_FFFF] {
        let mut id = good;
        check_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 0),
            0,
            "{good:#x}"
        );
        check_eq!(id, good);
        check_eq!(n.export_segment_id(seg), Ok(Some(good)));
        n.export_unpublish(seg)?;
    }
    Ok(())
}

/// §10 Export: id 0x600000 twice on two segments → second 24 (RSMERR_SEGID_IN_USE); after
/// unpublish the id can be reused; also across controllers (ids are per node).
fn publish_duplicate_id_is_segid_in_use_until_unpublished<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let lo = n.get_controller(None)?;
    let net = n.get_controller(Some("rsmnet0"))?;
    let a = exported(h, &n, lo)?;
    let b = exported(h, &n, lo)?;
    let d = exported(h, &n, net)?;
    check_eq!(n.export_publish(a, 0x60_0000, &[]), Ok(0x60_0000));
    let mut id = 0x60_0000;
    check_eq!(
        capi::rsm_memseg_export_publish(&n, b, Some(&mut id), None, 0),
        24
    );
    check_eq!(
        n.export_publish(d, 0x60_0000, &[]),
        Err(RsmError::SegidInUse)
    );
    check_eq!(n.export_segment_id(b), Ok(None));
    n.export_unpublish(a)?;
    check_eq!(
        capi::rsm_memseg_export_publish(&n, b, Some(&mut id), None, 0),
        0
    );
    check_eq!(id, 0x60_0000);
    // A destroyed segment frees its id too.
    n.export_destroy(b)?;
    check_eq!(n.export_publish(d, 0x60_0000, &[]), Ok(0x60_0000));
    Ok(())
}

/// §10 Export: NULL id pointer → 22 (RSMERR_BAD_SEGID), checked before the handle (§4.3,
/// §9.10); NULL handle → 5; NULL list with length > 0 → 21.
fn publish_null_arguments_and_order<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let seg = exported(h, &n, c)?;
    let nh = ExportHandle::NULL;
    let mut id: SegmentId = 0;
    check_eq!(capi::rsm_memseg_export_publish(&n, seg, None, None, 0), 22);
    // NULL id pointer + NULL handle → 22 (not 5)
    check_eq!(capi::rsm_memseg_export_publish(&n, nh, None, None, 0), 22);
    // NULL id pointer + NULL handle + NULL list with length → 22
    check_eq!(capi::rsm_memseg_export_publish(&n, nh, None, None, 3), 22);
    // NULL handle → 5; NULL handle + NULL list with length → 5
    check_eq!(
        capi::rsm_memseg_export_publish(&n, nh, Some(&mut id), None, 0),
        5
    );
    check_eq!(
        capi::rsm_memseg_export_publish(&n, nh, Some(&mut id), None, 1),
        5
    );
    // NULL list with length > 0 → 21
    check_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 1),
        21
    );
    // A length beyond the array given → 21.
    let acl = [AccessEntry::new(0, 0o666)];
    check_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), Some(&acl), 2),
        21
    );
    check_eq!(id, 0);
    check_eq!(n.export_segment_id(seg), Ok(None));
    check_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), Some(&acl), 1),
        0
    );
    check!(id >= 0x8000_0000);
    Ok(())
}

/// §10 Export: publish twice → 6 (RSMERR_SEG_ALREADY_PUBLISHED); unpublish unpublished → 7
/// (RSMERR_SEG_NOT_PUBLISHED); unpublish / publish of stale handles → 5.
fn publish_twice_and_unpublish_unpublished<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let seg = exported(h, &n, c)?;
    check_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 7);
    check_eq!(n.export_unpublish(seg), Err(RsmError::SegNotPublished));
    let id = n.export_publish(seg, 0, &[])?;
    let mut again: SegmentId = 0;
    check_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut again), None, 0),
        6
    );
    check_eq!(
        n.export_publish(seg, 0x60_0000, &[]),
        Err(RsmError::SegAlreadyPublished)
    );
    check_eq!(
        n.export_segment_id(seg),
        Ok(Some(id)),
        "first publication kept"
    );
    check_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 0);
    check_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 7);
    check_eq!(capi::rsm_memseg_export_unpublish(&n, ExportHandle::NULL), 5);
    n.export_destroy(seg)?;
    check_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 5);
    let mut id2: SegmentId = 0;
    check_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id2), None, 0),
        5
    );
    Ok(())
}

/// Check order of rsm_memseg_export_publish after the C-layer NULL checks (§4.3 impl order):
/// handle → already published → reserved id → ACL → duplicate id.
fn publish_check_order<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let a = exported(h, &n, c)?;
    let b = exported(h, &n, c)?;
    let bad_acl = [AccessEntry::new(65, 0o666)];
    let destroyed = exported(h, &n, c)?;
    n.export_destroy(destroyed)?;
    // stale handle + reserved id + bad ACL → 5
    check_eq!(
        n.export_publish(destroyed, 0x100, &bad_acl),
        Err(RsmError::BadSegHndl)
    );
    check_eq!(
        n.export_publish(ExportHandle::NULL, 0x100, &bad_acl),
        Err(RsmError::BadSegHndl)
    );
    n.export_publish(a, 0x60_0000, &[])?;
    // already published + reserved id → 6
    check_eq!(
        n.export_publish(a, 0x100, &bad_acl),
        Err(RsmError::SegAlreadyPublished)
    );
    // reserved id + bad ACL → 23
    check_eq!(
        n.export_publish(b, 0x100, &bad_acl),
        Err(RsmError::ReservedSegid)
    );
    // bad ACL + duplicate id → 21
    check_eq!(
        n.export_publish(b, 0x60_0000, &bad_acl),
        Err(RsmError::BadAcl)
    );
    let mut id = 0x60_0000;
    check_eq!(
        capi::rsm_memseg_export_publish(&n, b, Some(&mut id), Some(&bad_acl), 1),
        21
    );
    // duplicate id alone → 24
    check_eq!(
        n.export_publish(b, 0x60_0000, &[]),
        Err(RsmError::SegidInUse)
    );
    Ok(())
}

/// §10 Export: ACL with node 65 → 21; node 64 accepted on rsmnet0; permission 0777 → 21 (0666
/// accepted); 65 entries → 21 (64 accepted); §4.3, §9.16.
fn publish_acl_limits<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let seg = exported(h, &n, c)?;
    let mut id: SegmentId = 0;
    let bad_lists: [Acl; 5] = [
        acl([AccessEntry::new(65, 0o666)])?,
        acl([AccessEntry::new(0, 0o777)])?,
        acl([AccessEntry::new(0, 0o1000)])?,
        acl([
            AccessEntry::new(0, 0o666),
            AccessEntry::new(u32::MAX, 0o400),
        ])?,
        acl((0..65).map(|i| AccessEntry::new(i % 64, 0o666)))?,
    ];
    for acl in &bad_lists {
        check_eq!(
            capi::rsm_memseg_export_publish(
                &n,
                seg,
                Some(&mut id),
                Some(acl.as_slice()),
                acl.len() as u32
            ),
            21,
            "{acl:?}"
        );
        check_eq!(n.export_publish(seg, 0, acl), Err(RsmError::BadAcl));
    }
    check_eq!(id, 0);
    check_eq!(n.export_segment_id(seg), Ok(None));
    let good_lists: [Acl; 3] = [
        acl([AccessEntry::new(64, 0o666)])?,
        acl([AccessEntry::new(0, 0o666), AccessEntry::new(3, 0o400)])?,
        acl((0..64).map(|i| AccessEntry::new(i, 0o666)))?,
    ];
    for acl in &good_lists {
        check!(n.export_publish(seg, 0, acl).is_ok(), "{acl:?}");
        n.export_unpublish(seg)?;
    }
    Ok(())
}

/// §4.3: on the loopback controller the ACL has at most one entry and it names the local node;
/// 2 entries or a foreign node → 21 (also with a non-zero local node id).
fn publish_loopback_acl_rules<H: Harness>(h: &H) -> Outcome {
    let n = node_with(
        h,
        Config {
            node_id: 3,
            ..Config::default()
        },
    );
    let c = n.get_controller(None)?;
    let seg = exported(h, &n, c)?;
    for acl in [
        acl([AccessEntry::new(3, 0o666), AccessEntry::new(3, 0o666)])?,
        acl([AccessEntry::new(3, 0o666), AccessEntry::new(4, 0o666)])?,
        acl([AccessEntry::new(0, 0o666)])?,
        acl([AccessEntry::new(4, 0o400)])?,
    ] {
        check_eq!(
            n.export_publish(seg, 0, &acl),
            Err(RsmError::BadAcl),
            "{acl:?}"
        );
    }
    check!(n
        .export_publish(seg, 0, &[AccessEntry::new(3, 0o600)])
        .is_ok());
    n.export_unpublish(seg)?;
    check!(n.export_publish(seg, 0, &[]).is_ok(), "empty ACL is fine");
    // The same ACL on rsmnet0 is fine.
    let net = n.get_controller(Some("rsmnet0"))?;
    let seg2 = exported(h, &n, net)?;
    check!(n
        .export_publish(
            seg2,
            0,
            &[AccessEntry::new(3, 0o666), AccessEntry::new(4, 0o666)]
        )
        .is_ok());
    Ok(())
}

/// §4.3 republish: NULL → 5; not published → 7 (before the ACL argument check); NULL list with
/// length → 21; bad ACL → 21 and the old list stays; ACL rules as for publish.
fn republish_errors_and_order<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(Some("rsmnet0"))?;
    let seg = exported(h, &n, c)?;
    let acl0 = [AccessEntry::new(0, 0o400)];
    check_eq!(
        capi::rsm_memseg_export_republish(&n, ExportHandle::NULL, None, 1),
        5
    );
    // not published + NULL list with length → 7
    check_eq!(capi::rsm_memseg_export_republish(&n, seg, None, 1), 7);
    check_eq!(
        capi::rsm_memseg_export_republish(&n, seg, Some(&acl0), 1),
        7
    );
    check_eq!(
        n.export_republish(seg, &acl0),
        Err(RsmError::SegNotPublished)
    );
    let id = n.export_publish(seg, 0, &acl0)?;
    check_eq!(capi::rsm_memseg_export_republish(&n, seg, None, 1), 21);
    for bad in [
        acl([AccessEntry::new(65, 0o666)])?,
        acl([AccessEntry::new(0, 0o777)])?,
        acl((0..65).map(|i| AccessEntry::new(i % 64, 0o666)))?,
    ] {
        check_eq!(
            capi::rsm_memseg_export_republish(&n, seg, Some(bad.as_slice()), bad.len() as u32),
            21
        );
    }
    // The old ACL (read-only for node 0) is still in force.
    check_eq!(
        n.import_connect(c, 0, id, Permission::RDWR),
        Err(RsmError::PermDenied)
    );
    check!(n.import_connect(c, 0, id, Permission::READ).is_ok());
    // Loopback rules apply to republish too.
    let lo = n.get_controller(None)?;
    let lseg = exported(h, &n, lo)?;
    n.export_publish(lseg, 0, &[])?;
    let two = [AccessEntry::new(0, 0o666), AccessEntry::new(1, 0o666)];
    check_eq!(n.export_republish(lseg, &two), Err(RsmError::BadAcl));
    check_eq!(
        n.export_republish(lseg, &[AccessEntry::new(1, 0o666)]),
        Err(RsmError::BadAcl)
    );
    check_eq!(
        n.export_republish(lseg, &[AccessEntry::new(0, 0o666)]),
        Ok(())
    );
    n.export_destroy(seg)?;
    check_eq!(capi::rsm_memseg_export_republish(&n, seg, None, 0), 5);
    Ok(())
}

/// §4.3 / §9.16: republish only affects future connects; existing connections keep working.
fn republish_affects_only_future_connects<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::with(h, node(h), Some("rsmnet0"), PAGE, &[], Permission::RDWR)?;
    let (_b, local) = fx.local(16, 1)?;
    // Read-only for node 0.
    check_eq!(
        capi::rsm_memseg_export_republish(&fx.n, fx.seg, Some(&[AccessEntry::new(0, 0o444)]), 1),
        0
    );
    let iov = [IoVec::handle(local, 0, 0, 16)];
    check_eq!(
        fx.putv(fx.imp, &iov),
        (0, 0),
        "existing RDWR import keeps writing"
    );
    check_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR),
        Err(RsmError::PermDenied)
    );
    let ro = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ)?;
    check_eq!(fx.putv(ro, &iov), (27, 1));
    // Exclude node 0.
    fx.n.export_republish(fx.seg, &[AccessEntry::new(5, 0o666)])?;
    check_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ),
        Err(RsmError::SegNotPublishedToNode)
    );
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    check_eq!(fx.getv(ro, &iov), (0, 0));
    // Back to "everybody".
    fx.n.export_republish(fx.seg, &[])?;
    check!(fx
        .n
        .import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
        .is_ok());
    Ok(())
}

// =============================================================================================
// §4.3 rebind, §9.17
// =============================================================================================

/// §10 Export: rebind without ALLOW_REBIND → 30 (RSMERR_REBIND_NOT_ALLOWED).
fn rebind_without_allow_rebind_is_rebind_not_allowed<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let m = h.alloc(n.platform(), PAGE)?;
    let m2 = h.alloc(n.platform(), PAGE)?;
    let seg = n.export_create(c, m.clone(), CreateFlags::empty())?;
    check_eq!(capi::rsm_memseg_export_rebind(&n, seg, m2.clone(), 0), 30);
    check_eq!(
        n.export_rebind(seg, m2.clone()),
        Err(RsmError::RebindNotAllowed)
    );
    // Even rebinding to the same address is refused.
    check_eq!(
        n.export_rebind(seg, m.clone()),
        Err(RsmError::RebindNotAllowed)
    );
    let dontwait = n.export_create(c, m2, CreateFlags::CREATE_SEG_DONTWAIT)?;
    check_eq!(
        n.export_rebind(dontwait, m),
        Err(RsmError::RebindNotAllowed)
    );
    Ok(())
}

/// §10 Export: rebind with a different length → 20 (RSMERR_BAD_LENGTH).
fn rebind_different_length_is_bad_length<H: Harness>(h: &H) -> Outcome {
    let n = node(h);
    let c = n.get_controller(None)?;
    let m = h.alloc(n.platform(), 2 * PAGE)?;
    let seg = n.export_create(c, m.clone(), CreateFlags::ALLOW_REBIND)?;
    for len in [PAGE, 3 * PAGE, 2 * PAGE + 1, 2 * PAGE - 1] {
        let r = h.alloc(n.platform(), len)?;
        check_eq!(capi::rsm_memseg_export_rebind(&n, seg, r, 0), 20, "{len}");
    }
    // Same address, different length → still 20.
    check_eq!(
        n.export_rebind(seg, sub(&m, 0, PAGE)?),
        Err(RsmError::BadLength)
    );
    Ok(())
}

/// §9.17: rebind to the same address → 0, nothing done (no extra pin).
fn rebind_same_address_is_noop_success<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    let (made_before, _) = h.counters(fx.n.platform()).must()?;
    check_eq!(
        capi::rsm_memseg_export_rebind(&fx.n, fx.seg, fx.mem.clone(), 12345),
        0
    );
    check_eq!(
        h.counters(fx.n.platform()).must()?.0,
        made_before,
        "no pin made"
    );
    check_eq!(h.pinned_pages(fx.n.platform()).must()?, 1);
    Ok(())
}

/// §4.3 rebind: importers transparently see the new buffer; the old pages are unpinned; the
/// importer's writes land in the new buffer.
fn rebind_to_new_buffer_importer_sees_new_bytes<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, 2 * PAGE, Permission::RDWR)?;
    fx.fill_seg(1)?;
    let newbuf = fx.va(2 * PAGE, 2)?;
    let dst = h.alloc(fx.n.platform(), 2 * PAGE)?;
    let iov = [IoVec::va(&dst, 0, 0, 2 * PAGE)];
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.bytes(&dst)?, pat(2 * PAGE, 1));
    check_eq!(
        capi::rsm_memseg_export_rebind(&fx.n, fx.seg, newbuf.clone(), 0),
        0
    );
    check_eq!(
        h.pinned_pages(fx.n.platform()).must()?,
        2,
        "old pages unpinned, new ones pinned"
    );
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.bytes(&dst)?, pat(2 * PAGE, 2));
    let src = fx.va(64, 9)?;
    let iov = [IoVec::va(&src, 0, 10, 64)];
    check_eq!(fx.putv(fx.imp, &iov), (0, 0));
    check_eq!(read_bytes(h, fx.n.platform(), &newbuf, 10, 64)?, pat(64, 9));
    check_eq!(fx.seg_bytes()?, pat(2 * PAGE, 1), "old buffer untouched");
    // Rebinding back works too.
    check_eq!(fx.n.export_rebind(fx.seg, fx.mem.clone()), Ok(()));
    let iov = [IoVec::va(&dst, 0, 0, 2 * PAGE)];
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.bytes(&dst)?, pat(2 * PAGE, 1));
    Ok(())
}

/// §4.3 rebind errors: NULL handle → 5, NULL address → 16, misaligned address → 16, unmapped
/// memory → 16 with the old backing kept; check order handle → NULL address → ALLOW_REBIND →
/// length → same address → alignment.
fn rebind_errors_and_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    fx.fill_seg(4)?;
    let n = &fx.n;
    let c = fx.ctrl;
    let norebind = n.export_create(c, h.alloc(n.platform(), PAGE)?, CreateFlags::empty())?;
    let null = h.raw(0, PAGE)?;
    let misaligned = sub(&h.alloc(n.platform(), 2 * PAGE)?, 8, PAGE)?;
    let other_len = h.alloc(n.platform(), 2 * PAGE)?;
    check_eq!(
        capi::rsm_memseg_export_rebind(n, ExportHandle::NULL, null.clone(), 0),
        5
    );
    check_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, null.clone(), 0),
        16
    );
    check_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, misaligned.clone(), 0),
        16
    );
    check_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, h.raw(UNMAPPED, PAGE)?, 0),
        16
    );
    // NULL address + no ALLOW_REBIND → 16
    check_eq!(capi::rsm_memseg_export_rebind(n, norebind, null, 0), 16);
    // no ALLOW_REBIND + different length → 30
    check_eq!(
        capi::rsm_memseg_export_rebind(n, norebind, other_len.clone(), 0),
        30
    );
    // no ALLOW_REBIND + misaligned → 30
    check_eq!(
        capi::rsm_memseg_export_rebind(n, norebind, misaligned, 0),
        30
    );
    // different length + misaligned → 20
    let misaligned_long = sub(&h.alloc(n.platform(), 3 * PAGE)?, 8, 2 * PAGE)?;
    check_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, misaligned_long, 0),
        20
    );
    // The segment still reads its old bytes.
    let dst = h.alloc(n.platform(), PAGE)?;
    let iov = [IoVec::va(&dst, 0, 0, PAGE)];
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.bytes(&dst)?, pat(PAGE, 4));
    check_eq!(
        h.pinned_pages(n.platform()).must()?,
        2,
        "fx segment + norebind segment"
    );
    // Stale handle.
    n.export_destroy(norebind)?;
    check_eq!(capi::rsm_memseg_export_rebind(n, norebind, other_len, 0), 5);
    Ok(())
}

/// §4.3 rebind: pinning the new buffer over the quota → 32, old backing kept.
fn rebind_over_quota_is_insufficient_mem<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::new(h, PAGE, Permission::RDWR)?;
    fx.fill_seg(6)?;
    check!(h.set_pin_quota(fx.n.platform(), PAGE));
    let nb = fx.va(PAGE, 7)?;
    check_eq!(capi::rsm_memseg_export_rebind(&fx.n, fx.seg, nb, 0), 32);
    let dst = h.alloc(fx.n.platform(), PAGE)?;
    let iov = [IoVec::va(&dst, 0, 0, PAGE)];
    check_eq!(fx.getv(fx.imp, &iov), (0, 0));
    check_eq!(fx.bytes(&dst)?, pat(PAGE, 6));
    Ok(())
}

// =============================================================================================
// §4.2 rsm_get_segmentid_range, §9.31 (from `conformance_segid.rs`)
// =============================================================================================

/// A segment-id configuration in the `/etc/rsm/rsm.segmentid` format.
const CONF: &str = "\
# rsm.segmentid: keyword appid baseid length
reserved SUNWrsm 0x600000 4096

reserve  myapp   0x700000 16
";

/// A node whose segment-id configuration is `conf`.
fn segid_node<H: Harness>(h: &H, conf: Option<&'static str>) -> Node<H> {
    let config = Config {
        segid_conf: conf,
        ..Config::default()
    };
    node_with(h, config)
}

/// §4.2: the range of a listed appid, with either keyword (§9.31), case-insensitively.
fn listed_appids_get_their_range<H: Harness>(h: &H) -> Outcome {
    let n = segid_node(h, Some(CONF));
    check_eq!(
        n.get_segmentid_range("SUNWrsm"),
        Ok(SegidRange {
            base: 0x600000,
            length: 4096
        })
    );
    check_eq!(
        n.get_segmentid_range("MYAPP"),
        Ok(SegidRange {
            base: 0x700000,
            length: 16
        })
    );
    Ok(())
}

/// §4.2: no line for the appid → 43 (`RSMERR_BAD_APPID`); no configuration at all → 44
/// (`RSMERR_BAD_CONF`, illumos: the file cannot be opened); a malformed line → 44.
fn unknown_appid_missing_or_malformed_conf<H: Harness>(h: &H) -> Outcome {
    check_eq!(
        segid_node(h, Some(CONF)).get_segmentid_range("other"),
        Err(RsmError::BadAppid)
    );
    check_eq!(
        segid_node(h, None).get_segmentid_range("SUNWrsm"),
        Err(RsmError::BadConf)
    );
    let bad = segid_node(h, Some("reserved SUNWrsm 0x600000\n"));
    check_eq!(bad.get_segmentid_range("SUNWrsm"), Err(RsmError::BadConf));
    Ok(())
}

/// §4.2 C form: any NULL argument → 16 (`RSMERR_BAD_ADDR`); success stores both values.
fn c_form_null_arguments_and_success<H: Harness>(h: &H) -> Outcome {
    let n = segid_node(h, Some(CONF));
    let (mut base, mut len) = (0u32, 0u32);
    check_eq!(
        rsm_get_segmentid_range(&n, None, Some(&mut base), Some(&mut len)),
        16
    );
    check_eq!(
        rsm_get_segmentid_range(&n, Some("SUNWrsm"), None, Some(&mut len)),
        16
    );
    check_eq!(
        rsm_get_segmentid_range(&n, Some("SUNWrsm"), Some(&mut base), None),
        16
    );
    check_eq!(
        rsm_get_segmentid_range(&n, Some("SUNWrsm"), Some(&mut base), Some(&mut len)),
        0
    );
    check_eq!((base, len), (0x600000, 4096));
    check_eq!(
        rsm_get_segmentid_range(&n, Some("nope"), Some(&mut base), Some(&mut len)),
        43
    );
    Ok(())
}

/// §2.3: ids from an application's reserved range are publishable (they lie in the user
/// range 0x400000..=0x7FFFFFFF).
fn reserved_range_ids_publish<H: Harness>(h: &H) -> Outcome {
    let n = segid_node(h, Some(CONF));
    let range = n.get_segmentid_range("SUNWrsm")?;
    let ctrl: ControllerHandle = n.get_controller(Some("rsmnet0"))?;
    let mem = h.alloc(n.platform(), 4096)?;
    let seg = n.export_create(ctrl, mem, CreateFlags::empty())?;
    check_eq!(
        n.export_publish(seg, range.base + 7, &[]),
        Ok(range.base + 7)
    );
    n.export_destroy(seg)?;
    Ok(())
}
