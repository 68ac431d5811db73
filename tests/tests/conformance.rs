//! RSMAPI conformance suite (spec `shared/rsmapi/rsmapi-spec.md`, §10 checklist).
//!
//! Covers every §10 case for the functions implemented so far — controller operations (§4.1),
//! local memory handles (seed man page, §5.1, §9.6–§9.9), export create / destroy / publish /
//! unpublish / republish / rebind (§4.3), import connect / disconnect on the same node (§4.4)
//! and putv / getv (§4.6, §9.2, §9.12, §9.19, §9.28) — plus the check order of every one of
//! those functions (the first failing check wins, §4 "Impl order", §9.10) and each choice
//! rsm-rs documents in its rustdoc (§9.7, §9.9, §9.15, §9.16, §9.22, …).
//!
//! Numeric codes are asserted through the C-shaped entry points of `rsm_core::capi` (these are
//! also the only way to express NULL out-pointers); typed `RsmError`s through the Rust API.
//!
//! The rest of §10 lives beside this file: put/get, barriers and modes in
//! `conformance_access.rs`; events and poll descriptors in `conformance_events.rs`; mapping,
//! topology and lazy initialisation in `conformance_map_topology.rs`; segment-id ranges in
//! `conformance_segid.rs`.

use rsm_core::capi;
use rsm_core::{
    AccessEntry, Config, ControllerAttr, ControllerHandle, CreateFlags, ExportHandle, ImportHandle,
    IoVec, LocalMemHandle, LocalRef, Permission, Rsm, RsmError, ScatGath, SegmentId, SgFlags,
    RSM_HANDLE_TYPE, RSM_VA_TYPE,
};
use rsm_hal::fake::{FakePlatform, FakeRegion};
use rsm_hal::{Region, PAGE_SIZE};

type Node = Rsm<FakePlatform>;
/// A node with tiny tables (2 local handles, 2 exports, 2 imports) for exhaustion tests.
type SmallNode = Rsm<FakePlatform, 2, 2, 2>;

const PAGE: usize = PAGE_SIZE;
/// An aligned address far outside the fake address space (never allocated).
const UNMAPPED: usize = 0x7000_0000_0000;

fn node() -> Node {
    Rsm::new(FakePlatform::new(), Config::default())
}

fn small_node() -> SmallNode {
    Rsm::new(FakePlatform::new(), Config::default())
}

fn node_with(cfg: Config) -> Node {
    Rsm::new(FakePlatform::new(), cfg)
}

// The C return value of a typed call.
use rsm_core::capi::code as rc;

/// A recognisable byte pattern.
fn pat(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn perm(bits: u32) -> Permission {
    Permission::from_bits_retain(bits)
}

/// A node with one published, connected segment: the common set-up of the import and putv
/// tests.
struct Fx {
    n: Node,
    ctrl: ControllerHandle,
    mem: FakeRegion,
    seg: ExportHandle,
    id: SegmentId,
    imp: ImportHandle,
}

impl Fx {
    /// Loopback controller, `seg_len` bytes exported with `RSM_ALLOW_REBIND`, published with an
    /// automatic id and no ACL, connected with `p`.
    fn new(seg_len: usize, p: Permission) -> Fx {
        Fx::with(node(), None, seg_len, &[], p)
    }

    fn with(
        n: Node,
        ctrl_name: Option<&str>,
        seg_len: usize,
        acl: &[AccessEntry],
        p: Permission,
    ) -> Fx {
        let ctrl = n.get_controller(ctrl_name).unwrap();
        let mem = n.platform().alloc(seg_len);
        let seg = n
            .export_create(ctrl, mem.clone(), CreateFlags::ALLOW_REBIND)
            .unwrap();
        let id = n.export_publish(seg, 0, acl).unwrap();
        let imp = n.import_connect(ctrl, n.node_id(), id, p).unwrap();
        Fx {
            n,
            ctrl,
            mem,
            seg,
            id,
            imp,
        }
    }

    /// A local memory handle over a fresh buffer of `len` bytes filled with `pat(len, seed)`.
    fn local(&self, len: usize, seed: u8) -> (FakeRegion, LocalMemHandle) {
        let r = self.n.platform().alloc(len);
        self.n.platform().write(&r, 0, &pat(len, seed));
        let h = self
            .n
            .create_localmemory_handle(self.ctrl, r.clone())
            .unwrap();
        (r, h)
    }

    /// A plain (VA) buffer of `len` bytes filled with `pat(len, seed)`.
    fn va(&self, len: usize, seed: u8) -> FakeRegion {
        let r = self.n.platform().alloc(len);
        self.n.platform().write(&r, 0, &pat(len, seed));
        r
    }

    fn seg_bytes(&self) -> Vec<u8> {
        self.n.platform().read(&self.mem, 0, self.mem.len())
    }

    fn bytes(&self, r: &FakeRegion) -> Vec<u8> {
        self.n.platform().read(r, 0, r.len())
    }

    fn fill_seg(&self, seed: u8) {
        self.n
            .platform()
            .write(&self.mem, 0, &pat(self.mem.len(), seed));
    }

    fn events(&self) -> u32 {
        self.n.export_pending_events(self.seg).unwrap()
    }

    /// putv of `iov` with the residual preset to 999; returns (code, residual).
    fn putv(&self, imp: ImportHandle, iov: &[IoVec<'_, FakeRegion>]) -> (i32, u64) {
        let mut sg = ScatGath::new(imp, iov);
        sg.io_residual_count = 999;
        let code = capi::rsm_memseg_import_putv(&self.n, Some(&mut sg));
        (code, sg.io_residual_count)
    }

    /// getv of `iov` with the residual preset to 999; returns (code, residual).
    fn getv(&self, imp: ImportHandle, iov: &[IoVec<'_, FakeRegion>]) -> (i32, u64) {
        let mut sg = ScatGath::new(imp, iov);
        sg.io_residual_count = 999;
        let code = capi::rsm_memseg_import_getv(&self.n, Some(&mut sg));
        (code, sg.io_residual_count)
    }
}

// =============================================================================================
// §4.1 Controller operations
// =============================================================================================

/// §10 Controller: NULL out-pointer → 3 (RSMERR_BAD_CTLR_HNDL); §4.1 impl order (the
/// out-pointer is checked before the name is looked at).
#[test]
fn get_controller_null_out_pointer_is_bad_ctlr_hndl() {
    let n = node();
    assert_eq!(capi::rsm_get_controller(&n, None, None), 3);
    assert_eq!(capi::rsm_get_controller(&n, Some("loopback"), None), 3);
    assert_eq!(capi::rsm_get_controller(&n, Some("rsmnet0"), None), 3);
    // Order: NULL out-pointer wins over an unknown name.
    assert_eq!(capi::rsm_get_controller(&n, Some("sci0"), None), 3);
    // The failed calls took no reference: one get, one release, then the handle is dead.
    let h = n.get_controller(None).unwrap();
    assert_eq!(capi::rsm_release_controller(&n, h), 0);
    assert_eq!(capi::rsm_release_controller(&n, h), 3);
}

/// §10 Controller: NULL name → loopback; §4.1, §9.22.
#[test]
fn get_controller_null_name_is_loopback() {
    let n = node();
    let mut by_null = ControllerHandle::NULL;
    assert_eq!(capi::rsm_get_controller(&n, None, Some(&mut by_null)), 0);
    assert!(!by_null.is_null());
    let by_name = n.get_controller(Some("loopback")).unwrap();
    assert_eq!(by_null, by_name);
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    assert_ne!(by_null, net);
}

/// §10 Controller: same name twice → same handle, two releases succeed, third → 3; §4.1.
#[test]
fn get_controller_twice_same_handle_refcounted() {
    for name in [None, Some("rsmnet0")] {
        let n = node();
        let mut a = ControllerHandle::NULL;
        let mut b = ControllerHandle::NULL;
        assert_eq!(capi::rsm_get_controller(&n, name, Some(&mut a)), 0);
        assert_eq!(capi::rsm_get_controller(&n, name, Some(&mut b)), 0);
        assert_eq!(a, b, "{name:?}");
        assert_eq!(capi::rsm_release_controller(&n, a), 0);
        // Still referenced once: usable.
        assert!(n.get_controller_attr(a).is_ok());
        assert_eq!(capi::rsm_release_controller(&n, b), 0);
        assert_eq!(capi::rsm_release_controller(&n, a), 3);
        assert_eq!(n.release_controller(a), Err(RsmError::BadCtlrHndl));
    }
}

/// §10 Controller: unknown name → 4 (RSMERR_CTLR_NOT_PRESENT); §9.22: every node has exactly
/// `loopback` and `rsmnet0`.
#[test]
fn get_controller_unknown_names_are_ctlr_not_present() {
    let n = node();
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
        let mut h = ControllerHandle::NULL;
        assert_eq!(
            capi::rsm_get_controller(&n, Some(name), Some(&mut h)),
            4,
            "{name:?}"
        );
        assert!(h.is_null(), "{name:?}: out-pointer untouched on failure");
        assert_eq!(
            n.get_controller(Some(name)),
            Err(RsmError::CtlrNotPresent),
            "{name:?}"
        );
    }
}

/// §4.1 / §9.22: names are case-insensitive; loopback ignores the unit ("loopback5" =
/// loopback); "rsmnet" without a unit is unit 0.
#[test]
fn controller_names_case_insensitive_and_units() {
    let n = node();
    let lo = n.get_controller(None).unwrap();
    for name in [
        "loopback",
        "LOOPBACK",
        "LoopBack",
        "loopback0",
        "loopback5",
        "LOOPBACK77",
    ] {
        assert_eq!(n.get_controller(Some(name)), Ok(lo), "{name}");
    }
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    assert_ne!(net, lo);
    for name in ["RSMNET", "rsmnet", "RsmNet0", "RSMNET0"] {
        assert_eq!(n.get_controller(Some(name)), Ok(net), "{name}");
    }
}

/// §4.1 / §9.22: "for loopback the unit is ignored" — any decimal unit, including one that does
/// not fit in 32 bits (illumos parses it with `atoi` and ignores it for loopback). For other
/// types the unit must match (`rsmnet` + a huge unit is not rsmnet0).
#[test]
fn loopback_ignores_any_unit_even_one_overflowing_u32() {
    let n = node();
    let lo = n.get_controller(None).unwrap();
    assert_eq!(
        n.get_controller(Some("rsmnet99999999999")),
        Err(RsmError::CtlrNotPresent)
    );
    for name in [
        "loopback4294967295",
        "loopback4294967296",
        "loopback99999999999",
    ] {
        let mut h = ControllerHandle::NULL;
        assert_eq!(
            capi::rsm_get_controller(&n, Some(name), Some(&mut h)),
            0,
            "{name}"
        );
        assert_eq!(h, lo, "{name}");
    }
}

/// §9.22: names of 256 bytes or more → 4 (illumos overflows its 256-byte buffer); a 255-byte
/// name is still parsed (MAXNAMELEN = 256 includes the terminating NUL).
#[test]
fn controller_name_length_limit() {
    let n = node();
    let lo = n.get_controller(None).unwrap();
    let name255 = format!("loopback{}", "0".repeat(255 - 8));
    assert_eq!(name255.len(), 255);
    assert_eq!(n.get_controller(Some(&name255)), Ok(lo));
    let name256 = format!("loopback{}", "0".repeat(256 - 8));
    assert_eq!(name256.len(), 256);
    let mut h = ControllerHandle::NULL;
    assert_eq!(
        capi::rsm_get_controller(&n, Some(&name256), Some(&mut h)),
        4
    );
    let long = "x".repeat(1000);
    assert_eq!(capi::rsm_get_controller(&n, Some(&long), Some(&mut h)), 4);
    assert!(h.is_null());
}

/// §10 Controller: get_controller_attr NULL attr → 16 (RSMERR_BAD_ADDR); §4.1 order: NULL handle
/// (3) before NULL attr (16).
#[test]
fn get_controller_attr_null_attr_is_bad_addr() {
    let n = node();
    let h = n.get_controller(None).unwrap();
    assert_eq!(capi::rsm_get_controller_attr(&n, h, None), 16);
    assert_eq!(
        capi::rsm_get_controller_attr(&n, ControllerHandle::NULL, None),
        3
    );
    let mut attr = ControllerAttr::default();
    assert_eq!(
        capi::rsm_get_controller_attr(&n, ControllerHandle::NULL, Some(&mut attr)),
        3
    );
    assert_eq!(attr, ControllerAttr::default(), "untouched on failure");
    // A released (non-NULL) handle + NULL attr: the attr pointer is checked first (§4.1 order).
    n.release_controller(h).unwrap();
    assert_eq!(capi::rsm_get_controller_attr(&n, h, None), 16);
    assert_eq!(capi::rsm_get_controller_attr(&n, h, Some(&mut attr)), 3);
}

/// §9.5: attr_page_size is 4096 for every controller, loopback included (illumos reports 8 for
/// loopback); §3.3 attribute values follow the node configuration.
#[test]
fn get_controller_attr_page_size_4096_for_both_controllers() {
    let n = node_with(Config {
        max_segment_size: 1 << 20,
        ..Config::default()
    });
    for name in [None, Some("rsmnet0")] {
        let h = n.get_controller(name).unwrap();
        let mut attr = ControllerAttr::default();
        assert_eq!(capi::rsm_get_controller_attr(&n, h, Some(&mut attr)), 0);
        assert_eq!(attr.attr_page_size, 4096, "{name:?}");
        assert_eq!(attr.attr_max_export_segment_size, 1 << 20, "{name:?}");
        assert_eq!(n.get_controller_attr(h).unwrap(), attr);
    }
}

/// §9.22 (our choice): a released controller handle → 3 everywhere it is used.
#[test]
fn released_controller_is_bad_ctlr_hndl_everywhere() {
    let n = node();
    let h = n.get_controller(None).unwrap();
    n.release_controller(h).unwrap();
    let mut attr = ControllerAttr::default();
    assert_eq!(capi::rsm_get_controller_attr(&n, h, Some(&mut attr)), 3);
    assert_eq!(n.get_controller_attr(h), Err(RsmError::BadCtlrHndl));
    let buf = n.platform().alloc(PAGE);
    let mut lh = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, h, Some(&mut lh), buf.clone()),
        3
    );
    assert_eq!(
        n.create_localmemory_handle(h, buf.clone()),
        Err(RsmError::BadCtlrHndl)
    );
    let mut eh = ExportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_export_create(&n, h, Some(&mut eh), buf.clone(), 0),
        3
    );
    assert_eq!(
        n.export_create(h, buf, CreateFlags::empty()),
        Err(RsmError::BadCtlrHndl)
    );
    let mut ih = ImportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, h, 0, 0x600000, 0o600, Some(&mut ih)),
        3
    );
    assert_eq!(
        capi::rsm_free_localmemory_handle(&n, h, LocalMemHandle::NULL),
        3
    );
    assert_eq!(capi::rsm_release_controller(&n, h), 3);
    // Nothing was pinned or allocated by the failed calls.
    assert_eq!(n.platform().pinned_pages(), 0);
    assert_eq!(n.slots_in_use(), (0, 0, 0));
    // Getting the controller again gives a new, different handle; the old one stays dead.
    let h2 = n.get_controller(None).unwrap();
    assert_ne!(h2, h);
    assert_eq!(n.get_controller_attr(h), Err(RsmError::BadCtlrHndl));
    assert!(n.get_controller_attr(h2).is_ok());
}

/// §9.22 (our choice): releasing the controller does not invalidate local handles, segments or
/// imports created through it; the local handle is freed with a newly gotten handle.
#[test]
fn released_controller_keeps_local_handles_and_segments_alive() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lbuf, local) = fx.local(64, 7);
    fx.n.release_controller(fx.ctrl).unwrap();
    assert_eq!(
        fx.n.get_controller_attr(fx.ctrl),
        Err(RsmError::BadCtlrHndl)
    );
    // The local handle, export and import still work.
    let iov = [IoVec::handle(local, 0, 100, 64)];
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.n.platform().read(&fx.mem, 100, 64), pat(64, 7));
    // The old handle cannot free it; the new one can.
    assert_eq!(capi::rsm_free_localmemory_handle(&fx.n, fx.ctrl, local), 3);
    let again = fx.n.get_controller(None).unwrap();
    assert_ne!(again, fx.ctrl);
    assert_eq!(capi::rsm_free_localmemory_handle(&fx.n, again, local), 0);
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    assert_eq!(capi::rsm_memseg_export_destroy(&fx.n, fx.seg), 0);
    assert_eq!(fx.n.slots_in_use(), (0, 0, 0));
    assert_eq!(fx.n.platform().pinned_pages(), 0);
}

/// §9.7: a controller handle of another `Rsm` instance or of the wrong kind → 3.
#[test]
fn foreign_or_wrong_kind_controller_handle_is_bad_ctlr_hndl() {
    let a = node();
    let b = node();
    let hb = b.get_controller(None).unwrap();
    let ha = a.get_controller(None).unwrap();
    assert_ne!(ha, hb);
    assert_eq!(a.get_controller_attr(hb), Err(RsmError::BadCtlrHndl));
    assert_eq!(capi::rsm_release_controller(&a, hb), 3);
    let buf = a.platform().alloc(PAGE);
    assert_eq!(
        a.create_localmemory_handle(hb, buf.clone()),
        Err(RsmError::BadCtlrHndl)
    );
    // Wrong kind: an export handle's raw value used as a controller handle.
    let seg = a.export_create(ha, buf, CreateFlags::empty()).unwrap();
    let fake_ctrl = ControllerHandle::from_raw(seg.into_raw());
    assert_eq!(a.get_controller_attr(fake_ctrl), Err(RsmError::BadCtlrHndl));
    assert_eq!(capi::rsm_release_controller(&a, fake_ctrl), 3);
    // An arbitrary non-zero value.
    assert_eq!(
        a.get_controller_attr(ControllerHandle::from_raw(0xdead_beef)),
        Err(RsmError::BadCtlrHndl)
    );
    // b's handle still fine in b (one reference left there).
    assert_eq!(b.release_controller(hb), Ok(()));
}

// =============================================================================================
// Local memory handles (seed man page, §4.6, §5.1, §9.6–§9.9)
// =============================================================================================

/// §10 Local memory handles: unaligned vaddr → 16 (RSMERR_BAD_ADDR); §5.1 step 1.
#[test]
fn create_local_unaligned_vaddr_is_bad_addr() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let mem = n.platform().alloc(2 * PAGE);
    for off in [1, 8, 2048, PAGE - 1] {
        let r = mem.sub(off, 100);
        let mut h = LocalMemHandle::NULL;
        assert_eq!(
            capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), r.clone()),
            16
        );
        assert!(h.is_null());
        assert_eq!(n.create_localmemory_handle(c, r), Err(RsmError::BadAddr));
    }
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §10 Local memory handles: NULL vaddr → 16; §9.6 (illumos lets NULL pass the alignment
/// check; rsm-rs rejects it with BAD_ADDR).
#[test]
fn create_local_null_vaddr_is_bad_addr() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let mut h = LocalMemHandle::NULL;
    let null = FakeRegion::raw(0, PAGE);
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), null.clone()),
        16
    );
    assert_eq!(n.create_localmemory_handle(c, null), Err(RsmError::BadAddr));
}

/// §10 Local memory handles: NULL controller (aligned vaddr) → 3; §5.1 step 2.
#[test]
fn create_local_null_controller_is_bad_ctlr_hndl() {
    let n = node();
    let r = n.platform().alloc(PAGE);
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, ControllerHandle::NULL, Some(&mut h), r.clone()),
        3
    );
    assert_eq!(
        n.create_localmemory_handle(ControllerHandle::NULL, r),
        Err(RsmError::BadCtlrHndl)
    );
}

/// §10 Local memory handles: NULL out-pointer → 15 (RSMERR_BAD_LOCALMEM_HNDL); §5.1 step 3.
#[test]
fn create_local_null_out_pointer_is_bad_localmem_hndl() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let r = n.platform().alloc(PAGE);
    assert_eq!(capi::rsm_create_localmemory_handle(&n, c, None, r), 15);
    assert_eq!(n.platform().pinned_pages(), 0, "nothing pinned");
    assert_eq!(n.slots_in_use(), (0, 0, 0));
}

/// §10 Local memory handles: length 0 → 20 (RSMERR_BAD_LENGTH); §5.1 step 4.
#[test]
fn create_local_length_zero_is_bad_length() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let r = n.platform().alloc(0);
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), r.clone()),
        20
    );
    assert_eq!(n.create_localmemory_handle(c, r), Err(RsmError::BadLength));
}

/// §5.2 (rustdoc step 4): longer than attr_max_export_segment_size → 20.
#[test]
fn create_local_longer_than_max_segment_size_is_bad_length() {
    let n = node_with(Config {
        max_segment_size: 2 * PAGE,
        ..Config::default()
    });
    let c = n.get_controller(None).unwrap();
    let ok = n.platform().alloc(2 * PAGE);
    let big = n.platform().alloc(2 * PAGE + 1);
    assert_eq!(
        n.create_localmemory_handle(c, big),
        Err(RsmError::BadLength)
    );
    let h = n.create_localmemory_handle(c, ok).unwrap();
    n.free_localmemory_handle(c, h).unwrap();
}

/// §5.2 (rustdoc step 5): memory that is not mapped → 16 (pinning fault).
#[test]
fn create_local_unmapped_memory_is_bad_addr() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let r = FakeRegion::raw(UNMAPPED, PAGE);
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), r),
        16
    );
    assert_eq!(n.slots_in_use(), (0, 0, 0));
}

/// §10 Local memory handles: success with a length that is not a page multiple; §9.6: whole
/// pages are pinned, and entries are bounds-checked against the *requested* length (ending
/// exactly at it OK, one byte past → 20) — on both controllers.
#[test]
fn create_local_non_page_multiple_length_bounds_entries_by_requested_length() {
    for ctrl in [None, Some("rsmnet0")] {
        let fx = Fx::with(node(), ctrl, 2 * PAGE, &[], Permission::RDWR);
        let (_buf, h) = fx.local(100, 3);
        assert!(!h.is_null());
        assert_eq!(
            fx.n.platform().pinned_pages(),
            2 + 1,
            "2 segment pages + 1 local page"
        );
        // Ends exactly at the requested length: OK.
        let iov = [IoVec::handle(h, 90, 0, 10)];
        assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
        assert_eq!(fx.n.platform().read(&fx.mem, 0, 10), pat(100, 3)[90..]);
        let iov = [IoVec::handle(h, 0, 0, 100)];
        assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
        // One byte past the requested length (still inside the pinned page) → 20.
        let iov = [IoVec::handle(h, 91, 0, 10)];
        assert_eq!(fx.putv(fx.imp, &iov), (20, 1));
        assert_eq!(fx.getv(fx.imp, &iov), (20, 1));
        let iov = [IoVec::handle(h, 0, 0, 101)];
        assert_eq!(fx.putv(fx.imp, &iov), (20, 1));
        // A length of one page + 1 pins two pages.
        let r2 = fx.n.platform().alloc(PAGE + 1);
        let h2 = fx.n.create_localmemory_handle(fx.ctrl, r2).unwrap();
        assert_eq!(fx.n.platform().pinned_pages(), 2 + 1 + 2);
        fx.n.free_localmemory_handle(fx.ctrl, h2).unwrap();
        fx.n.free_localmemory_handle(fx.ctrl, h).unwrap();
        assert_eq!(fx.n.platform().pinned_pages(), 2);
    }
}

/// §10 Local memory handles: free NULL controller → 3; free NULL handle → 15; §5.2 free order
/// (controller before handle).
#[test]
fn free_local_null_controller_and_null_handle() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let r = n.platform().alloc(PAGE);
    let h = n.create_localmemory_handle(c, r).unwrap();
    assert_eq!(
        capi::rsm_free_localmemory_handle(&n, ControllerHandle::NULL, h),
        3
    );
    assert_eq!(
        capi::rsm_free_localmemory_handle(&n, c, LocalMemHandle::NULL),
        15
    );
    // Order: NULL controller wins over NULL handle.
    assert_eq!(
        capi::rsm_free_localmemory_handle(&n, ControllerHandle::NULL, LocalMemHandle::NULL),
        3
    );
    assert_eq!(
        n.free_localmemory_handle(c, LocalMemHandle::NULL),
        Err(RsmError::BadLocalmemHndl)
    );
    // The handle survived the failed frees.
    assert_eq!(capi::rsm_free_localmemory_handle(&n, c, h), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
    // Released controller + stale handle → 3 (controller first); live controller + stale → 15.
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    n.release_controller(net).unwrap();
    assert_eq!(capi::rsm_free_localmemory_handle(&n, net, h), 3);
    assert_eq!(capi::rsm_free_localmemory_handle(&n, c, h), 15);
}

/// §10 Local memory handles: double free → 15 (our choice, §9.7).
#[test]
fn free_local_double_free_is_bad_localmem_hndl() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let r = n.platform().alloc(PAGE);
    let h = n.create_localmemory_handle(c, r.clone()).unwrap();
    assert_eq!(n.platform().pinned_pages(), 1);
    assert_eq!(capi::rsm_free_localmemory_handle(&n, c, h), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
    assert_eq!(capi::rsm_free_localmemory_handle(&n, c, h), 15);
    assert_eq!(
        n.free_localmemory_handle(c, h),
        Err(RsmError::BadLocalmemHndl)
    );
    // The slot is reused by a new handle: the stale one still does not match it.
    let h2 = n.create_localmemory_handle(c, r).unwrap();
    assert_ne!(h2, h);
    assert_eq!(capi::rsm_free_localmemory_handle(&n, c, h), 15);
    assert_eq!(capi::rsm_free_localmemory_handle(&n, c, h2), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §10 Local memory handles: free of a handle from the other controller (`loopback` vs
/// `rsmnet0`) → 15 (our choice, §9.7); the handle stays valid for its own controller.
#[test]
fn free_local_through_other_controller_is_bad_localmem_hndl() {
    let n = node();
    let lo = n.get_controller(None).unwrap();
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    let r = n.platform().alloc(PAGE);
    let a = n.create_localmemory_handle(lo, r.clone()).unwrap();
    let b = n.create_localmemory_handle(net, r).unwrap();
    assert_eq!(capi::rsm_free_localmemory_handle(&n, net, a), 15);
    assert_eq!(capi::rsm_free_localmemory_handle(&n, lo, b), 15);
    assert_eq!(
        n.free_localmemory_handle(net, a),
        Err(RsmError::BadLocalmemHndl)
    );
    assert_eq!(
        n.platform().pinned_pages(),
        1,
        "both pins of the page still held"
    );
    assert_eq!(capi::rsm_free_localmemory_handle(&n, lo, a), 0);
    assert_eq!(n.platform().pinned_pages(), 1, "b still pins the page");
    assert_eq!(capi::rsm_free_localmemory_handle(&n, net, b), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §9.7: a local handle of another `Rsm` instance → 15 on free, 14 in a putv entry; a
/// wrong-kind raw value → 15.
#[test]
fn foreign_or_wrong_kind_local_handle_is_rejected() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let other = node();
    let oc = other.get_controller(None).unwrap();
    let obuf = other.platform().alloc(PAGE);
    let foreign = other.create_localmemory_handle(oc, obuf).unwrap();
    assert_eq!(
        capi::rsm_free_localmemory_handle(&fx.n, fx.ctrl, foreign),
        15
    );
    let iov = [IoVec::handle(foreign, 0, 0, 8)];
    assert_eq!(fx.putv(fx.imp, &iov), (14, 1));
    assert_eq!(fx.getv(fx.imp, &iov), (14, 1));
    // Wrong kind: controller / export / import raw values used as local memory handles.
    for raw in [fx.ctrl.into_raw(), fx.seg.into_raw(), fx.imp.into_raw()] {
        let h = LocalMemHandle::from_raw(raw);
        assert_eq!(capi::rsm_free_localmemory_handle(&fx.n, fx.ctrl, h), 15);
        let iov = [IoVec::handle(h, 0, 0, 8)];
        assert_eq!(fx.putv(fx.imp, &iov), (14, 1));
    }
    // The foreign handle is intact in its own node.
    assert_eq!(other.free_localmemory_handle(oc, foreign), Ok(()));
}

/// §10 Local memory handles: pin-quota exhaustion → 32 (RSMERR_INSUFFICIENT_MEM), fake
/// platform; §9.8: local handles and export segments share the budget.
#[test]
fn create_local_pin_quota_exhausted_is_insufficient_mem() {
    let n = node();
    n.platform().set_pin_quota(2 * PAGE);
    let c = n.get_controller(None).unwrap();
    let big = n.platform().alloc(3 * PAGE);
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), big.clone()),
        32
    );
    assert_eq!(
        n.create_localmemory_handle(c, big),
        Err(RsmError::InsufficientMem)
    );
    assert_eq!(n.platform().pinned_pages(), 0);
    // An export segment takes one page of the budget, a local handle the other; then full.
    let seg_mem = n.platform().alloc(PAGE);
    let seg = n.export_create(c, seg_mem, CreateFlags::empty()).unwrap();
    let one = n.platform().alloc(PAGE);
    let a = n.create_localmemory_handle(c, one.clone()).unwrap();
    let more = n.platform().alloc(PAGE);
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), more.clone()),
        32
    );
    // Pinning an already pinned page costs nothing.
    let b = n.create_localmemory_handle(c, one).unwrap();
    // Freeing returns the budget.
    n.export_destroy(seg).unwrap();
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), more),
        0
    );
    for x in [a, b, h] {
        n.free_localmemory_handle(c, x).unwrap();
    }
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §10 Local memory handles: pin-quota exhaustion → 32 on the host backend
/// (`HostPlatform::with_pin_quota`).
#[test]
fn create_local_host_pin_quota_exhausted_is_insufficient_mem() {
    use rsm_host::{HostPlatform, PinnedBuf};
    let platform = HostPlatform::with_pin_quota(2 * PAGE);
    let sys_page = platform.page_size();
    let n: Rsm<HostPlatform> = Rsm::new(platform, Config::default());
    let c = n.get_controller(None).unwrap();
    let quota = n.platform().pin_quota().unwrap();
    let over = PinnedBuf::new(quota + sys_page).unwrap();
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), over.region()),
        32
    );
    assert_eq!(
        n.create_localmemory_handle(c, over.region()),
        Err(RsmError::InsufficientMem)
    );
    assert_eq!(n.platform().pinned_pages(), 0);
    let fits = PinnedBuf::new(quota).unwrap();
    let a = n.create_localmemory_handle(c, fits.region()).unwrap();
    let extra = PinnedBuf::new(sys_page).unwrap();
    assert_eq!(
        n.create_localmemory_handle(c, extra.region()),
        Err(RsmError::InsufficientMem)
    );
    n.free_localmemory_handle(c, a).unwrap();
    let b = n.create_localmemory_handle(c, extra.region()).unwrap();
    n.free_localmemory_handle(c, b).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §9.6 (rustdoc step 6): local handle table full → 31 (RSMERR_INSUFFICIENT_RESOURCES), with no
/// pin left behind; a free makes room again.
#[test]
fn create_local_table_full_is_insufficient_resources() {
    let n = small_node();
    let c = n.get_controller(None).unwrap();
    let bufs: Vec<FakeRegion> = (0..3).map(|_| n.platform().alloc(PAGE)).collect();
    let a = n.create_localmemory_handle(c, bufs[0].clone()).unwrap();
    let b = n.create_localmemory_handle(c, bufs[1].clone()).unwrap();
    let mut h = LocalMemHandle::NULL;
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), bufs[2].clone()),
        31
    );
    assert_eq!(
        n.create_localmemory_handle(c, bufs[2].clone()),
        Err(RsmError::InsufficientResources)
    );
    assert_eq!(
        n.platform().pinned_pages(),
        2,
        "the failed create left no pin"
    );
    n.free_localmemory_handle(c, a).unwrap();
    let c3 = n.create_localmemory_handle(c, bufs[2].clone()).unwrap();
    n.free_localmemory_handle(c, b).unwrap();
    n.free_localmemory_handle(c, c3).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// Check order of rsm_create_localmemory_handle (§5.1, §9.6, rustdoc): address → controller →
/// out-pointer → length → pin/quota → table.
#[test]
fn create_local_check_order() {
    let n = small_node();
    let c = n.get_controller(None).unwrap();
    let mem = n.platform().alloc(4 * PAGE);
    let misaligned = mem.sub(1, 100);
    let null = FakeRegion::raw(0, PAGE);
    let null_len0 = FakeRegion::raw(0, 0);
    let aligned = mem.sub(0, PAGE);
    let empty = mem.sub(0, 0);
    let mut h = LocalMemHandle::NULL;
    let nc = ControllerHandle::NULL;
    // misaligned + NULL controller → BAD_ADDR (not BAD_CTLR_HNDL)
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, Some(&mut h), misaligned.clone()),
        16
    );
    assert_eq!(
        n.create_localmemory_handle(nc, misaligned),
        Err(RsmError::BadAddr)
    );
    // NULL vaddr + NULL controller + NULL out + length 0 → BAD_ADDR
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, None, null_len0),
        16
    );
    assert_eq!(capi::rsm_create_localmemory_handle(&n, nc, None, null), 16);
    // NULL controller + NULL out-pointer → BAD_CTLR_HNDL
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, None, aligned),
        3
    );
    // NULL controller + length 0 → BAD_CTLR_HNDL
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, nc, Some(&mut h), empty.clone()),
        3
    );
    assert_eq!(
        n.create_localmemory_handle(nc, empty.clone()),
        Err(RsmError::BadCtlrHndl)
    );
    // NULL out-pointer + length 0 → BAD_LOCALMEM_HNDL
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, None, empty.clone()),
        15
    );
    // length 0 + quota exhausted → BAD_LENGTH
    n.platform().set_pin_quota(0);
    assert_eq!(
        capi::rsm_create_localmemory_handle(&n, c, Some(&mut h), empty),
        20
    );
    // quota exhausted + table full → INSUFFICIENT_MEM (pinning comes before the table).
    n.platform().set_pin_quota(2 * PAGE);
    let a = n.create_localmemory_handle(c, mem.sub(0, PAGE)).unwrap();
    let b = n.create_localmemory_handle(c, mem.sub(PAGE, PAGE)).unwrap();
    assert_eq!(
        n.create_localmemory_handle(c, mem.sub(2 * PAGE, PAGE)),
        Err(RsmError::InsufficientMem)
    );
    // table full alone (page already pinned, so no quota needed) → INSUFFICIENT_RESOURCES
    assert_eq!(
        n.create_localmemory_handle(c, mem.sub(0, PAGE)),
        Err(RsmError::InsufficientResources)
    );
    assert!(h.is_null());
    n.free_localmemory_handle(c, a).unwrap();
    n.free_localmemory_handle(c, b).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
}

// =============================================================================================
// §4.3 Export side: create / destroy
// =============================================================================================

/// §10 Export: unaligned vaddr / unaligned length → 17 (RSMERR_BAD_MEM_ALIGNMENT); §4.3.
#[test]
fn export_create_unaligned_vaddr_or_length_is_bad_mem_alignment() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let mem = n.platform().alloc(3 * PAGE);
    let mut eh = ExportHandle::NULL;
    for r in [
        mem.sub(1, PAGE),
        mem.sub(8, 2 * PAGE),
        mem.sub(0, PAGE + 1),
        mem.sub(0, 100),
    ] {
        assert_eq!(
            capi::rsm_memseg_export_create(&n, c, Some(&mut eh), r.clone(), 0),
            17
        );
        assert_eq!(
            n.export_create(c, r, CreateFlags::empty()),
            Err(RsmError::BadMemAlignment)
        );
    }
    assert_eq!(n.slots_in_use(), (0, 0, 0));
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §10 Export: length 0 → 20 (RSMERR_BAD_LENGTH); §4.3.
#[test]
fn export_create_length_zero_is_bad_length() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let r = n.platform().alloc(0);
    let mut eh = ExportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), r.clone(), 0),
        20
    );
    assert_eq!(
        n.export_create(c, r, CreateFlags::empty()),
        Err(RsmError::BadLength)
    );
}

/// §4.3: NULL controller → 3, NULL memseg out-pointer → 5, NULL vaddr → 16, longer than
/// attr_max_export_segment_size → 20, unmapped memory → 16; `*memseg` is set to NULL once the
/// out-pointer was found non-NULL.
#[test]
fn export_create_argument_errors() {
    let n = node_with(Config {
        max_segment_size: 2 * PAGE,
        ..Config::default()
    });
    let c = n.get_controller(None).unwrap();
    let ok = n.platform().alloc(PAGE);
    let garbage = ExportHandle::from_raw(0x1234);
    let mut eh = garbage;
    assert_eq!(
        capi::rsm_memseg_export_create(&n, ControllerHandle::NULL, Some(&mut eh), ok.clone(), 0),
        3
    );
    assert_eq!(
        eh, garbage,
        "out-pointer untouched before the controller check"
    );
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, None, ok.clone(), 0),
        5
    );
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), FakeRegion::raw(0, PAGE), 0),
        16
    );
    assert!(
        eh.is_null(),
        "*memseg set to NULL after the out-pointer check"
    );
    let big = n.platform().alloc(3 * PAGE);
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), big, 0),
        20
    );
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), FakeRegion::raw(UNMAPPED, PAGE), 0),
        16
    );
    assert_eq!(n.slots_in_use(), (0, 0, 0));
    // Success; unknown flag bits are ignored (§9.25).
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), ok, 0xFFFF_FFF0),
        0
    );
    assert!(!eh.is_null());
    assert_eq!(n.platform().pinned_pages(), 1);
    assert_eq!(capi::rsm_memseg_export_destroy(&n, eh), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §4.3: pinned-page quota exceeded → 32; export table full → 31.
#[test]
fn export_create_quota_and_table_exhaustion() {
    let n = small_node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    n.platform().set_pin_quota(2 * PAGE);
    let big = n.platform().alloc(3 * PAGE);
    let mut eh = ExportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), big.clone(), 0),
        32
    );
    assert_eq!(
        n.export_create(c, big, CreateFlags::empty()),
        Err(RsmError::InsufficientMem)
    );
    let m: Vec<FakeRegion> = (0..3).map(|_| n.platform().alloc(PAGE)).collect();
    let a = n
        .export_create(c, m[0].clone(), CreateFlags::empty())
        .unwrap();
    let b = n
        .export_create(c, m[1].clone(), CreateFlags::empty())
        .unwrap();
    // Table full and quota exhausted: the table check comes before pinning (§4.3: no
    // descriptor → INSUFFICIENT_RESOURCES before the KA bind).
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), m[2].clone(), 0),
        31
    );
    assert_eq!(
        n.export_create(c, m[2].clone(), CreateFlags::empty()),
        Err(RsmError::InsufficientResources)
    );
    assert_eq!(n.platform().pinned_pages(), 2);
    n.export_destroy(a).unwrap();
    let c3 = n
        .export_create(c, m[2].clone(), CreateFlags::empty())
        .unwrap();
    n.export_destroy(b).unwrap();
    n.export_destroy(c3).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// Check order of rsm_memseg_export_create (§4.3 impl order): controller → NULL memseg → NULL
/// vaddr → length 0 → alignment → max length → table → pin.
#[test]
fn export_create_check_order() {
    let n: SmallNode = Rsm::new(
        FakePlatform::new(),
        Config {
            max_segment_size: 2 * PAGE,
            ..Config::default()
        },
    );
    let c = n.get_controller(None).unwrap();
    let nc = ControllerHandle::NULL;
    let mem = n.platform().alloc(4 * PAGE);
    let mut eh = ExportHandle::NULL;
    let null = FakeRegion::raw(0, 0);
    // NULL controller + NULL memseg → 3
    assert_eq!(
        capi::rsm_memseg_export_create(&n, nc, None, null.clone(), 0),
        3
    );
    assert_eq!(
        n.export_create(nc, null.clone(), CreateFlags::empty()),
        Err(RsmError::BadCtlrHndl)
    );
    // NULL memseg + NULL vaddr → 5
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, None, null.clone(), 0),
        5
    );
    // NULL vaddr + length 0 → 16
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), null, 0),
        16
    );
    // length 0 + misaligned vaddr → 20
    let empty_misaligned = mem.sub(1, 0);
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), empty_misaligned, 0),
        20
    );
    // misaligned + too long → 17
    let long_misaligned = mem.sub(1, 3 * PAGE);
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), long_misaligned.clone(), 0),
        17
    );
    assert_eq!(
        n.export_create(c, long_misaligned, CreateFlags::empty()),
        Err(RsmError::BadMemAlignment)
    );
    // Fill the table, then: too long + table full → 20; misaligned + table full → 17.
    let a = n
        .export_create(c, mem.sub(0, PAGE), CreateFlags::empty())
        .unwrap();
    let b = n
        .export_create(c, mem.sub(PAGE, PAGE), CreateFlags::empty())
        .unwrap();
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), mem.sub(0, 3 * PAGE), 0),
        20
    );
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), mem.sub(8, PAGE), 0),
        17
    );
    // table full + quota exhausted → 31
    n.platform().set_pin_quota(2 * PAGE);
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), mem.sub(2 * PAGE, PAGE), 0),
        31
    );
    n.export_destroy(a).unwrap();
    // Now only the quota fails → 32.
    n.platform().set_pin_quota(PAGE);
    assert_eq!(
        capi::rsm_memseg_export_create(&n, c, Some(&mut eh), mem.sub(2 * PAGE, PAGE), 0),
        32
    );
    n.export_destroy(b).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
}

/// §4.3 destroy: NULL → 5; destroyed, foreign or wrong-kind handle → 5 (§9.7).
#[test]
fn export_destroy_bad_handles() {
    let n = node();
    let other = node();
    let c = n.get_controller(None).unwrap();
    let oc = other.get_controller(None).unwrap();
    let m = n.platform().alloc(PAGE);
    let om = other.platform().alloc(PAGE);
    let seg = n.export_create(c, m, CreateFlags::empty()).unwrap();
    let oseg = other.export_create(oc, om, CreateFlags::empty()).unwrap();
    assert_eq!(capi::rsm_memseg_export_destroy(&n, ExportHandle::NULL), 5);
    assert_eq!(capi::rsm_memseg_export_destroy(&n, oseg), 5);
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let imp = n.import_connect(c, 0, id, Permission::RDWR).unwrap();
    let lbuf = n.platform().alloc(PAGE);
    let local = n.create_localmemory_handle(c, lbuf).unwrap();
    for raw in [imp.into_raw(), local.into_raw(), c.into_raw()] {
        assert_eq!(
            capi::rsm_memseg_export_destroy(&n, ExportHandle::from_raw(raw)),
            5
        );
    }
    assert_eq!(capi::rsm_memseg_export_destroy(&n, seg), 0);
    assert_eq!(capi::rsm_memseg_export_destroy(&n, seg), 5);
    assert_eq!(n.export_destroy(seg), Err(RsmError::BadSegHndl));
    assert_eq!(other.export_destroy(oseg), Ok(()));
}

// =============================================================================================
// §4.3 publish / unpublish / republish, §2.3 / §9.15 segment ids, §9.16 ACLs
// =============================================================================================

fn exported(n: &Node, ctrl: ControllerHandle) -> ExportHandle {
    let m = n.platform().alloc(PAGE);
    n.export_create(ctrl, m, CreateFlags::empty()).unwrap()
}

/// §10 Export: publish with id 0 returns ≥ 0x80000000, distinct each time (§2.3, §9.15), also
/// after unpublish/publish of the same segment.
#[test]
fn publish_id_zero_assigns_distinct_system_ids() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let seg = exported(&n, c);
        let mut id: SegmentId = 0;
        assert_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 0),
            0
        );
        assert!(id >= 0x8000_0000, "{id:#x}");
        assert!(!seen.contains(&id));
        assert_eq!(n.export_segment_id(seg), Ok(Some(id)));
        seen.push(id);
        n.export_unpublish(seg).unwrap();
        let again = n.export_publish(seg, 0, &[]).unwrap();
        assert!(again >= 0x8000_0000);
        assert!(!seen.contains(&again), "{again:#x} handed out twice");
        seen.push(again);
    }
}

/// §10 Export: reserved ids → 23 (RSMERR_RESERVED_SEGID): 0x100, 0x3FFFFF, 0x80000001 and the
/// rest outside 0x400000..=0x7FFFFFFF; the boundaries 0x400000 and 0x7FFFFFFF are accepted
/// (§2.3, §9.15).
#[test]
fn publish_segment_id_policy() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    let seg = exported(&n, c);
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
        assert_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 0),
            23,
            "{bad:#x}"
        );
        assert_eq!(id, bad, "id untouched on failure");
        assert_eq!(
            n.export_publish(seg, bad, &[]),
            Err(RsmError::ReservedSegid)
        );
    }
    assert_eq!(n.export_segment_id(seg), Ok(None), "still unpublished");
    for good in [0x40_0000u32, 0x4F_FFFF, 0x50_0000, 0x60_0000, 0x7FFF_FFFF] {
        let mut id = good;
        assert_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 0),
            0,
            "{good:#x}"
        );
        assert_eq!(id, good);
        assert_eq!(n.export_segment_id(seg), Ok(Some(good)));
        n.export_unpublish(seg).unwrap();
    }
}

/// §10 Export: id 0x600000 twice on two segments → second 24 (RSMERR_SEGID_IN_USE); after
/// unpublish the id can be reused; also across controllers (ids are per node).
#[test]
fn publish_duplicate_id_is_segid_in_use_until_unpublished() {
    let n = node();
    let lo = n.get_controller(None).unwrap();
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    let a = exported(&n, lo);
    let b = exported(&n, lo);
    let d = exported(&n, net);
    assert_eq!(n.export_publish(a, 0x60_0000, &[]), Ok(0x60_0000));
    let mut id = 0x60_0000;
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, b, Some(&mut id), None, 0),
        24
    );
    assert_eq!(
        n.export_publish(d, 0x60_0000, &[]),
        Err(RsmError::SegidInUse)
    );
    assert_eq!(n.export_segment_id(b), Ok(None));
    n.export_unpublish(a).unwrap();
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, b, Some(&mut id), None, 0),
        0
    );
    assert_eq!(id, 0x60_0000);
    // A destroyed segment frees its id too.
    n.export_destroy(b).unwrap();
    assert_eq!(n.export_publish(d, 0x60_0000, &[]), Ok(0x60_0000));
}

/// §10 Export: NULL id pointer → 22 (RSMERR_BAD_SEGID), checked before the handle (§4.3,
/// §9.10); NULL handle → 5; NULL list with length > 0 → 21.
#[test]
fn publish_null_arguments_and_order() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    let seg = exported(&n, c);
    let nh = ExportHandle::NULL;
    let mut id: SegmentId = 0;
    assert_eq!(capi::rsm_memseg_export_publish(&n, seg, None, None, 0), 22);
    // NULL id pointer + NULL handle → 22 (not 5)
    assert_eq!(capi::rsm_memseg_export_publish(&n, nh, None, None, 0), 22);
    // NULL id pointer + NULL handle + NULL list with length → 22
    assert_eq!(capi::rsm_memseg_export_publish(&n, nh, None, None, 3), 22);
    // NULL handle → 5; NULL handle + NULL list with length → 5
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, nh, Some(&mut id), None, 0),
        5
    );
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, nh, Some(&mut id), None, 1),
        5
    );
    // NULL list with length > 0 → 21
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), None, 1),
        21
    );
    // A length beyond the array given → 21.
    let acl = [AccessEntry::new(0, 0o666)];
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), Some(&acl), 2),
        21
    );
    assert_eq!(id, 0);
    assert_eq!(n.export_segment_id(seg), Ok(None));
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), Some(&acl), 1),
        0
    );
    assert!(id >= 0x8000_0000);
}

/// §10 Export: publish twice → 6 (RSMERR_SEG_ALREADY_PUBLISHED); unpublish unpublished → 7
/// (RSMERR_SEG_NOT_PUBLISHED); unpublish / publish of stale handles → 5.
#[test]
fn publish_twice_and_unpublish_unpublished() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let seg = exported(&n, c);
    assert_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 7);
    assert_eq!(n.export_unpublish(seg), Err(RsmError::SegNotPublished));
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let mut again: SegmentId = 0;
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut again), None, 0),
        6
    );
    assert_eq!(
        n.export_publish(seg, 0x60_0000, &[]),
        Err(RsmError::SegAlreadyPublished)
    );
    assert_eq!(
        n.export_segment_id(seg),
        Ok(Some(id)),
        "first publication kept"
    );
    assert_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 0);
    assert_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 7);
    assert_eq!(capi::rsm_memseg_export_unpublish(&n, ExportHandle::NULL), 5);
    n.export_destroy(seg).unwrap();
    assert_eq!(capi::rsm_memseg_export_unpublish(&n, seg), 5);
    let mut id2: SegmentId = 0;
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, seg, Some(&mut id2), None, 0),
        5
    );
}

/// Check order of rsm_memseg_export_publish after the C-layer NULL checks (§4.3 impl order):
/// handle → already published → reserved id → ACL → duplicate id.
#[test]
fn publish_check_order() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    let a = exported(&n, c);
    let b = exported(&n, c);
    let bad_acl = [AccessEntry::new(65, 0o666)];
    let destroyed = exported(&n, c);
    n.export_destroy(destroyed).unwrap();
    // stale handle + reserved id + bad ACL → 5
    assert_eq!(
        n.export_publish(destroyed, 0x100, &bad_acl),
        Err(RsmError::BadSegHndl)
    );
    assert_eq!(
        n.export_publish(ExportHandle::NULL, 0x100, &bad_acl),
        Err(RsmError::BadSegHndl)
    );
    n.export_publish(a, 0x60_0000, &[]).unwrap();
    // already published + reserved id → 6
    assert_eq!(
        n.export_publish(a, 0x100, &bad_acl),
        Err(RsmError::SegAlreadyPublished)
    );
    // reserved id + bad ACL → 23
    assert_eq!(
        n.export_publish(b, 0x100, &bad_acl),
        Err(RsmError::ReservedSegid)
    );
    // bad ACL + duplicate id → 21
    assert_eq!(
        n.export_publish(b, 0x60_0000, &bad_acl),
        Err(RsmError::BadAcl)
    );
    let mut id = 0x60_0000;
    assert_eq!(
        capi::rsm_memseg_export_publish(&n, b, Some(&mut id), Some(&bad_acl), 1),
        21
    );
    // duplicate id alone → 24
    assert_eq!(
        n.export_publish(b, 0x60_0000, &[]),
        Err(RsmError::SegidInUse)
    );
}

/// §10 Export: ACL with node 65 → 21; node 64 accepted on rsmnet0; permission 0777 → 21 (0666
/// accepted); 65 entries → 21 (64 accepted); §4.3, §9.16.
#[test]
fn publish_acl_limits() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    let seg = exported(&n, c);
    let mut id: SegmentId = 0;
    let bad_lists: [Vec<AccessEntry>; 5] = [
        vec![AccessEntry::new(65, 0o666)],
        vec![AccessEntry::new(0, 0o777)],
        vec![AccessEntry::new(0, 0o1000)],
        vec![
            AccessEntry::new(0, 0o666),
            AccessEntry::new(u32::MAX, 0o400),
        ],
        (0..65).map(|i| AccessEntry::new(i % 64, 0o666)).collect(),
    ];
    for acl in &bad_lists {
        assert_eq!(
            capi::rsm_memseg_export_publish(&n, seg, Some(&mut id), Some(acl), acl.len() as u32),
            21,
            "{acl:?}"
        );
        assert_eq!(n.export_publish(seg, 0, acl), Err(RsmError::BadAcl));
    }
    assert_eq!(id, 0);
    assert_eq!(n.export_segment_id(seg), Ok(None));
    let good_lists: [Vec<AccessEntry>; 3] = [
        vec![AccessEntry::new(64, 0o666)],
        vec![AccessEntry::new(0, 0o666), AccessEntry::new(3, 0o400)],
        (0..64).map(|i| AccessEntry::new(i, 0o666)).collect(),
    ];
    for acl in &good_lists {
        assert!(n.export_publish(seg, 0, acl).is_ok(), "{acl:?}");
        n.export_unpublish(seg).unwrap();
    }
}

/// §4.3: on the loopback controller the ACL has at most one entry and it names the local node;
/// 2 entries or a foreign node → 21 (also with a non-zero local node id).
#[test]
fn publish_loopback_acl_rules() {
    let n = node_with(Config {
        node_id: 3,
        ..Config::default()
    });
    let c = n.get_controller(None).unwrap();
    let seg = exported(&n, c);
    for acl in [
        vec![AccessEntry::new(3, 0o666), AccessEntry::new(3, 0o666)],
        vec![AccessEntry::new(3, 0o666), AccessEntry::new(4, 0o666)],
        vec![AccessEntry::new(0, 0o666)],
        vec![AccessEntry::new(4, 0o400)],
    ] {
        assert_eq!(
            n.export_publish(seg, 0, &acl),
            Err(RsmError::BadAcl),
            "{acl:?}"
        );
    }
    assert!(n
        .export_publish(seg, 0, &[AccessEntry::new(3, 0o600)])
        .is_ok());
    n.export_unpublish(seg).unwrap();
    assert!(n.export_publish(seg, 0, &[]).is_ok(), "empty ACL is fine");
    // The same ACL on rsmnet0 is fine.
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    let seg2 = exported(&n, net);
    assert!(n
        .export_publish(
            seg2,
            0,
            &[AccessEntry::new(3, 0o666), AccessEntry::new(4, 0o666)]
        )
        .is_ok());
}

/// §4.3 republish: NULL → 5; not published → 7 (before the ACL argument check); NULL list with
/// length → 21; bad ACL → 21 and the old list stays; ACL rules as for publish.
#[test]
fn republish_errors_and_order() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    let seg = exported(&n, c);
    let acl = [AccessEntry::new(0, 0o400)];
    assert_eq!(
        capi::rsm_memseg_export_republish(&n, ExportHandle::NULL, None, 1),
        5
    );
    // not published + NULL list with length → 7
    assert_eq!(capi::rsm_memseg_export_republish(&n, seg, None, 1), 7);
    assert_eq!(capi::rsm_memseg_export_republish(&n, seg, Some(&acl), 1), 7);
    assert_eq!(
        n.export_republish(seg, &acl),
        Err(RsmError::SegNotPublished)
    );
    let id = n.export_publish(seg, 0, &acl).unwrap();
    assert_eq!(capi::rsm_memseg_export_republish(&n, seg, None, 1), 21);
    for bad in [
        vec![AccessEntry::new(65, 0o666)],
        vec![AccessEntry::new(0, 0o777)],
        (0..65)
            .map(|i| AccessEntry::new(i % 64, 0o666))
            .collect::<Vec<_>>(),
    ] {
        assert_eq!(
            capi::rsm_memseg_export_republish(&n, seg, Some(&bad), bad.len() as u32),
            21
        );
    }
    // The old ACL (read-only for node 0) is still in force.
    assert_eq!(
        n.import_connect(c, 0, id, Permission::RDWR),
        Err(RsmError::PermDenied)
    );
    assert!(n.import_connect(c, 0, id, Permission::READ).is_ok());
    // Loopback rules apply to republish too.
    let lo = n.get_controller(None).unwrap();
    let lseg = exported(&n, lo);
    n.export_publish(lseg, 0, &[]).unwrap();
    let two = [AccessEntry::new(0, 0o666), AccessEntry::new(1, 0o666)];
    assert_eq!(n.export_republish(lseg, &two), Err(RsmError::BadAcl));
    assert_eq!(
        n.export_republish(lseg, &[AccessEntry::new(1, 0o666)]),
        Err(RsmError::BadAcl)
    );
    assert_eq!(
        n.export_republish(lseg, &[AccessEntry::new(0, 0o666)]),
        Ok(())
    );
    n.export_destroy(seg).unwrap();
    assert_eq!(capi::rsm_memseg_export_republish(&n, seg, None, 0), 5);
}

/// §4.3 / §9.16: republish only affects future connects; existing connections keep working.
#[test]
fn republish_affects_only_future_connects() {
    let fx = Fx::with(node(), Some("rsmnet0"), PAGE, &[], Permission::RDWR);
    let (_b, local) = fx.local(16, 1);
    // Read-only for node 0.
    assert_eq!(
        capi::rsm_memseg_export_republish(&fx.n, fx.seg, Some(&[AccessEntry::new(0, 0o444)]), 1),
        0
    );
    let iov = [IoVec::handle(local, 0, 0, 16)];
    assert_eq!(
        fx.putv(fx.imp, &iov),
        (0, 0),
        "existing RDWR import keeps writing"
    );
    assert_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR),
        Err(RsmError::PermDenied)
    );
    let ro =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ)
            .unwrap();
    assert_eq!(fx.putv(ro, &iov), (27, 1));
    // Exclude node 0.
    fx.n.export_republish(fx.seg, &[AccessEntry::new(5, 0o666)])
        .unwrap();
    assert_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ),
        Err(RsmError::SegNotPublishedToNode)
    );
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.getv(ro, &iov), (0, 0));
    // Back to "everybody".
    fx.n.export_republish(fx.seg, &[]).unwrap();
    assert!(fx
        .n
        .import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
        .is_ok());
}

// =============================================================================================
// §4.3 rebind, §9.17
// =============================================================================================

/// §10 Export: rebind without ALLOW_REBIND → 30 (RSMERR_REBIND_NOT_ALLOWED).
#[test]
fn rebind_without_allow_rebind_is_rebind_not_allowed() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let m = n.platform().alloc(PAGE);
    let m2 = n.platform().alloc(PAGE);
    let seg = n.export_create(c, m.clone(), CreateFlags::empty()).unwrap();
    assert_eq!(capi::rsm_memseg_export_rebind(&n, seg, m2.clone(), 0), 30);
    assert_eq!(
        n.export_rebind(seg, m2.clone()),
        Err(RsmError::RebindNotAllowed)
    );
    // Even rebinding to the same address is refused.
    assert_eq!(
        n.export_rebind(seg, m.clone()),
        Err(RsmError::RebindNotAllowed)
    );
    let dontwait = n
        .export_create(c, m2, CreateFlags::CREATE_SEG_DONTWAIT)
        .unwrap();
    assert_eq!(
        n.export_rebind(dontwait, m),
        Err(RsmError::RebindNotAllowed)
    );
}

/// §10 Export: rebind with a different length → 20 (RSMERR_BAD_LENGTH).
#[test]
fn rebind_different_length_is_bad_length() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let m = n.platform().alloc(2 * PAGE);
    let seg = n
        .export_create(c, m.clone(), CreateFlags::ALLOW_REBIND)
        .unwrap();
    for len in [PAGE, 3 * PAGE, 2 * PAGE + 1, 2 * PAGE - 1] {
        let r = n.platform().alloc(len);
        assert_eq!(capi::rsm_memseg_export_rebind(&n, seg, r, 0), 20, "{len}");
    }
    // Same address, different length → still 20.
    assert_eq!(
        n.export_rebind(seg, m.sub(0, PAGE)),
        Err(RsmError::BadLength)
    );
}

/// §9.17: rebind to the same address → 0, nothing done (no extra pin).
#[test]
fn rebind_same_address_is_noop_success() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (made_before, _) = fx.n.platform().counters();
    assert_eq!(
        capi::rsm_memseg_export_rebind(&fx.n, fx.seg, fx.mem, 12345),
        0
    );
    assert_eq!(fx.n.platform().counters().0, made_before, "no pin made");
    assert_eq!(fx.n.platform().pinned_pages(), 1);
}

/// §4.3 rebind: importers transparently see the new buffer; the old pages are unpinned; the
/// importer's writes land in the new buffer.
#[test]
fn rebind_to_new_buffer_importer_sees_new_bytes() {
    let fx = Fx::new(2 * PAGE, Permission::RDWR);
    fx.fill_seg(1);
    let newbuf = fx.va(2 * PAGE, 2);
    let dst = fx.n.platform().alloc(2 * PAGE);
    let iov = [IoVec::va(&dst, 0, 0, 2 * PAGE)];
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.bytes(&dst), pat(2 * PAGE, 1));
    assert_eq!(
        capi::rsm_memseg_export_rebind(&fx.n, fx.seg, newbuf.clone(), 0),
        0
    );
    assert_eq!(
        fx.n.platform().pinned_pages(),
        2,
        "old pages unpinned, new ones pinned"
    );
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.bytes(&dst), pat(2 * PAGE, 2));
    let src = fx.va(64, 9);
    let iov = [IoVec::va(&src, 0, 10, 64)];
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.n.platform().read(&newbuf, 10, 64), pat(64, 9));
    assert_eq!(fx.seg_bytes(), pat(2 * PAGE, 1), "old buffer untouched");
    // Rebinding back works too.
    assert_eq!(fx.n.export_rebind(fx.seg, fx.mem.clone()), Ok(()));
    let iov = [IoVec::va(&dst, 0, 0, 2 * PAGE)];
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.bytes(&dst), pat(2 * PAGE, 1));
}

/// §4.3 rebind errors: NULL handle → 5, NULL address → 16, misaligned address → 16, unmapped
/// memory → 16 with the old backing kept; check order handle → NULL address → ALLOW_REBIND →
/// length → same address → alignment.
#[test]
fn rebind_errors_and_check_order() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    fx.fill_seg(4);
    let n = &fx.n;
    let c = fx.ctrl;
    let norebind = n
        .export_create(c, n.platform().alloc(PAGE), CreateFlags::empty())
        .unwrap();
    let null = FakeRegion::raw(0, PAGE);
    let misaligned = n.platform().alloc(2 * PAGE).sub(8, PAGE);
    let other_len = n.platform().alloc(2 * PAGE);
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, ExportHandle::NULL, null.clone(), 0),
        5
    );
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, null.clone(), 0),
        16
    );
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, misaligned.clone(), 0),
        16
    );
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, FakeRegion::raw(UNMAPPED, PAGE), 0),
        16
    );
    // NULL address + no ALLOW_REBIND → 16
    assert_eq!(capi::rsm_memseg_export_rebind(n, norebind, null, 0), 16);
    // no ALLOW_REBIND + different length → 30
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, norebind, other_len.clone(), 0),
        30
    );
    // no ALLOW_REBIND + misaligned → 30
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, norebind, misaligned, 0),
        30
    );
    // different length + misaligned → 20
    let misaligned_long = n.platform().alloc(3 * PAGE).sub(8, 2 * PAGE);
    assert_eq!(
        capi::rsm_memseg_export_rebind(n, fx.seg, misaligned_long, 0),
        20
    );
    // The segment still reads its old bytes.
    let dst = n.platform().alloc(PAGE);
    let iov = [IoVec::va(&dst, 0, 0, PAGE)];
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.bytes(&dst), pat(PAGE, 4));
    assert_eq!(
        n.platform().pinned_pages(),
        2,
        "fx segment + norebind segment"
    );
    // Stale handle.
    n.export_destroy(norebind).unwrap();
    assert_eq!(capi::rsm_memseg_export_rebind(n, norebind, other_len, 0), 5);
}

/// §4.3 rebind: pinning the new buffer over the quota → 32, old backing kept.
#[test]
fn rebind_over_quota_is_insufficient_mem() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    fx.fill_seg(6);
    fx.n.platform().set_pin_quota(PAGE);
    let nb = fx.va(PAGE, 7);
    assert_eq!(capi::rsm_memseg_export_rebind(&fx.n, fx.seg, nb, 0), 32);
    let dst = fx.n.platform().alloc(PAGE);
    let iov = [IoVec::va(&dst, 0, 0, PAGE)];
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.bytes(&dst), pat(PAGE, 6));
}

// =============================================================================================
// §4.4 Import: connect / disconnect (same node)
// =============================================================================================

/// §10 Import: connect to an unpublished id → 7 (RSMERR_SEG_NOT_PUBLISHED); also a segment
/// that was unpublished or destroyed.
#[test]
fn connect_unpublished_id_is_seg_not_published() {
    let n = node();
    let c = n.get_controller(None).unwrap();
    let mut ih = ImportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, 0x60_0000, 0o600, Some(&mut ih)),
        7
    );
    assert!(ih.is_null());
    let seg = exported(&n, c);
    assert_eq!(
        n.import_connect(c, 0, 0x60_0000, Permission::RDWR),
        Err(RsmError::SegNotPublished),
        "created but not published"
    );
    n.export_publish(seg, 0x60_0000, &[]).unwrap();
    assert!(n.import_connect(c, 0, 0x60_0000, Permission::RDWR).is_ok());
    n.export_unpublish(seg).unwrap();
    assert_eq!(
        n.import_connect(c, 0, 0x60_0000, Permission::RDWR),
        Err(RsmError::SegNotPublished)
    );
    n.export_publish(seg, 0x60_0000, &[]).unwrap();
    n.export_destroy(seg).unwrap();
    assert_eq!(
        n.import_connect(c, 0, 0x60_0000, Permission::RDWR),
        Err(RsmError::SegNotPublished)
    );
}

/// §10 Import: ACL excluding the node → 8 (RSMERR_SEG_NOT_PUBLISHED_TO_NODE).
#[test]
fn connect_acl_excluding_node_is_not_published_to_node() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
    let seg = exported(&n, c);
    let id = n
        .export_publish(
            seg,
            0,
            &[AccessEntry::new(3, 0o666), AccessEntry::new(64, 0o666)],
        )
        .unwrap();
    let mut ih = ImportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, id, 0o600, Some(&mut ih)),
        8
    );
    assert_eq!(
        n.import_connect(c, 0, id, Permission::READ),
        Err(RsmError::SegNotPublishedToNode)
    );
}

/// §10 Import: perm 0700 → 27 (RSMERR_PERM_DENIED, §9.11 — not BAD_PERMS); other bits outside
/// 0600 likewise.
#[test]
fn connect_perm_bits_outside_0600_is_perm_denied() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    for bits in [0o700, 0o666, 0o1000, 0o4, 0o20, 0xFFFF_FFFF] {
        let mut ih = ImportHandle::NULL;
        assert_eq!(
            capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, bits, Some(&mut ih)),
            27,
            "{bits:#o}"
        );
        assert!(ih.is_null());
        assert_eq!(
            fx.n.import_connect(fx.ctrl, 0, fx.id, perm(bits)),
            Err(RsmError::PermDenied)
        );
    }
}

/// §9.16 / §9.33: a read-only ACL (0444) refuses RDWR and WRITE with 27 and accepts READ; the
/// read-only import can getv but putv → 27.
#[test]
fn read_only_acl_and_read_only_import() {
    let fx = Fx::with(
        node(),
        Some("rsmnet0"),
        PAGE,
        &[AccessEntry::new(0, 0o444)],
        Permission::READ,
    );
    let mut ih = ImportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o600, Some(&mut ih)),
        27
    );
    assert_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o200, Some(&mut ih)),
        27
    );
    assert_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o400, Some(&mut ih)),
        0
    );
    fx.fill_seg(5);
    let (lb, local) = fx.local(64, 8);
    let iov = [IoVec::handle(local, 0, 0, 64)];
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.bytes(&lb), pat(PAGE, 5)[..64]);
    assert_eq!(fx.putv(ih, &iov), (27, 1));
    assert_eq!(
        fx.n.putv(&mut ScatGath::new(fx.imp, &iov)),
        Err(RsmError::PermDenied)
    );
    assert_eq!(fx.seg_bytes(), pat(PAGE, 5), "nothing written");
}

/// §9.33: a write-only import can putv, getv → 27.
#[test]
fn write_only_import_getv_is_perm_denied() {
    let fx = Fx::with(
        node(),
        Some("rsmnet0"),
        PAGE,
        &[AccessEntry::new(0, 0o222)],
        Permission::WRITE,
    );
    assert_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ),
        Err(RsmError::PermDenied)
    );
    let (lb, local) = fx.local(64, 8);
    let iov = [IoVec::handle(local, 0, 0, 64)];
    assert_eq!(fx.getv(fx.imp, &iov), (27, 1));
    assert_eq!(fx.bytes(&lb), pat(64, 8), "local buffer untouched");
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.n.platform().read(&fx.mem, 0, 64), pat(64, 8));
    // A write-only import asked on an open segment.
    let wo =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::WRITE)
            .unwrap();
    assert_eq!(
        fx.n.getv(&mut ScatGath::new(wo, &iov)),
        Err(RsmError::PermDenied)
    );
}

/// §9.16: the owner digit of the ACL permission decides (every importer is the owner class);
/// duplicate entries: the first match wins; no ACL → read+write.
#[test]
fn connect_owner_digit_decides_and_first_acl_match_wins() {
    let n = node();
    let c = n.get_controller(Some("rsmnet0")).unwrap();
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
        let seg = exported(&n, c);
        let id = n
            .export_publish(seg, 0, &[AccessEntry::new(0, acl_perm)])
            .unwrap();
        assert_eq!(
            rc(n.import_connect(c, 0, id, p)),
            want,
            "{acl_perm:#o} {p:?}"
        );
    }
    let seg = exported(&n, c);
    let id = n
        .export_publish(
            seg,
            0,
            &[AccessEntry::new(0, 0o444), AccessEntry::new(0, 0o666)],
        )
        .unwrap();
    assert_eq!(
        n.import_connect(c, 0, id, Permission::RDWR),
        Err(RsmError::PermDenied)
    );
    let seg = exported(&n, c);
    let id = n.export_publish(seg, 0, &[]).unwrap();
    assert!(n.import_connect(c, 0, id, Permission::RDWR).is_ok());
}

/// §4.4 (rustdoc): perm 0 connects with no access; every putv/getv is then 27.
#[test]
fn connect_perm_none_then_transfers_are_perm_denied() {
    let fx = Fx::new(PAGE, Permission::empty());
    let (_lb, local) = fx.local(8, 1);
    let iov = [IoVec::handle(local, 0, 0, 8)];
    assert_eq!(fx.putv(fx.imp, &iov), (27, 1));
    assert_eq!(fx.getv(fx.imp, &iov), (27, 1));
    assert_eq!(fx.n.import_info(fx.imp).unwrap().perm, Permission::empty());
}

/// §4.4: loopback controller + another node → 4 (RSMERR_CTLR_NOT_PRESENT); rsmnet0 + node 5 →
/// 39 (RSMERR_REMOTE_NODE_UNREACHABLE); node 64 → 39 (rsmnet0); rsmnet0 + the local node OK.
#[test]
fn connect_node_reachability() {
    let n = node_with(Config {
        node_id: 2,
        ..Config::default()
    });
    let lo = n.get_controller(None).unwrap();
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    let seg = exported(&n, net);
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let mut ih = ImportHandle::NULL;
    for node in [0, 5, 63, 64, 1000] {
        assert_eq!(
            capi::rsm_memseg_import_connect(&n, lo, node, id, 0o600, Some(&mut ih)),
            4,
            "loopback to node {node}"
        );
    }
    for node in [0, 5, 63, 64, 65, u32::MAX] {
        assert_eq!(
            capi::rsm_memseg_import_connect(&n, net, node, id, 0o600, Some(&mut ih)),
            39,
            "rsmnet0 to node {node}"
        );
    }
    assert!(ih.is_null());
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, net, 2, id, 0o600, Some(&mut ih)),
        0
    );
    let info = n.import_info(ih).unwrap();
    assert_eq!((info.node, info.segment_id, info.size), (2, id, PAGE));
    assert_eq!(info.perm, Permission::RDWR);
    assert!(n.import_connect(lo, 2, id, Permission::READ).is_ok());
}

/// §4.4 / §9.11: NULL controller → 3; NULL im_memseg → 5 (illumos crashes); `*im_memseg` set
/// to NULL once found non-NULL.
#[test]
fn connect_null_arguments() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let garbage = ImportHandle::from_raw(0x4242);
    let mut ih = garbage;
    assert_eq!(
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
    assert_eq!(ih, garbage);
    assert_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, fx.id, 0o600, None),
        5
    );
    assert_eq!(
        capi::rsm_memseg_import_connect(&fx.n, fx.ctrl, 0, 0x60_0000, 0o600, Some(&mut ih)),
        7
    );
    assert!(ih.is_null(), "*im_memseg set to NULL on failure");
    assert_eq!(fx.n.slots_in_use().2, 1, "only the fixture's import");
}

/// §4.4: import table full → 31 (RSMERR_INSUFFICIENT_RESOURCES); a disconnect makes room.
#[test]
fn connect_import_table_full_is_insufficient_resources() {
    let n = small_node();
    let c = n.get_controller(None).unwrap();
    let seg = n
        .export_create(c, n.platform().alloc(PAGE), CreateFlags::empty())
        .unwrap();
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let a = n.import_connect(c, 0, id, Permission::RDWR).unwrap();
    let _b = n.import_connect(c, 0, id, Permission::RDWR).unwrap();
    let mut ih = ImportHandle::NULL;
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, id, 0o600, Some(&mut ih)),
        31
    );
    n.import_disconnect(a).unwrap();
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, c, 0, id, 0o600, Some(&mut ih)),
        0
    );
}

/// Check order of rsm_memseg_import_connect (§4.4 impl order, §9.11, rustdoc): controller →
/// NULL out-pointer → perm bits → import table → loopback vs non-local node → unreachable →
/// not published → ACL → permission.
#[test]
fn connect_check_order() {
    let n = small_node();
    let lo = n.get_controller(None).unwrap();
    let net = n.get_controller(Some("rsmnet0")).unwrap();
    let nc = ControllerHandle::NULL;
    let seg = n
        .export_create(net, n.platform().alloc(PAGE), CreateFlags::empty())
        .unwrap();
    let id = n
        .export_publish(seg, 0, &[AccessEntry::new(7, 0o400)])
        .unwrap();
    let unpub = 0x60_0000;
    let mut ih = ImportHandle::NULL;
    // NULL controller + NULL out-pointer → 3
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, nc, 9, unpub, 0o700, None),
        3
    );
    // NULL controller + perm 0700 → 3
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, nc, 0, id, 0o700, Some(&mut ih)),
        3
    );
    assert_eq!(
        n.import_connect(nc, 0, id, perm(0o700)),
        Err(RsmError::BadCtlrHndl)
    );
    // NULL out-pointer + perm 0700 → 5
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o700, None),
        5
    );
    // perm 0700 + loopback to another node → 27
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o700, Some(&mut ih)),
        27
    );
    // perm 0700 + unreachable node → 27
    assert_eq!(
        n.import_connect(net, 9, unpub, perm(0o700)),
        Err(RsmError::PermDenied)
    );
    // loopback to another node + unpublished → 4
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o600, Some(&mut ih)),
        4
    );
    // loopback to node 64 (also unreachable) → 4
    assert_eq!(
        n.import_connect(lo, 64, unpub, Permission::RDWR),
        Err(RsmError::CtlrNotPresent)
    );
    // unreachable + unpublished → 39
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, net, 9, unpub, 0o600, Some(&mut ih)),
        39
    );
    // unreachable + published but excluded by the ACL → 39
    assert_eq!(
        n.import_connect(net, 7, id, Permission::RDWR),
        Err(RsmError::RemoteNodeUnreachable)
    );
    // ACL excludes node 0 + permission not granted (RDWR vs 0400) → 8
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, net, 0, id, 0o600, Some(&mut ih)),
        8
    );
    // Fill the import table (2 slots) with connections to an open segment.
    let open = n
        .export_create(net, n.platform().alloc(PAGE), CreateFlags::empty())
        .unwrap();
    let oid = n.export_publish(open, 0, &[]).unwrap();
    let _a = n.import_connect(net, 0, oid, Permission::RDWR).unwrap();
    let _b = n.import_connect(net, 0, oid, Permission::RDWR).unwrap();
    // perm 0700 + table full → 27
    assert_eq!(
        n.import_connect(net, 0, oid, perm(0o700)),
        Err(RsmError::PermDenied)
    );
    // table full + loopback to another node → 31
    assert_eq!(
        capi::rsm_memseg_import_connect(&n, lo, 9, unpub, 0o600, Some(&mut ih)),
        31
    );
    // table full + unpublished → 31
    assert_eq!(
        n.import_connect(net, 0, unpub, Permission::RDWR),
        Err(RsmError::InsufficientResources)
    );
}

/// §4.4 disconnect: NULL → 5; twice → 5; foreign or wrong-kind handle → 5 (§9.7).
#[test]
fn disconnect_bad_handles() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let other = Fx::new(PAGE, Permission::RDWR);
    assert_eq!(
        capi::rsm_memseg_import_disconnect(&fx.n, ImportHandle::NULL),
        5
    );
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, other.imp), 5);
    let (_b, local) = fx.local(8, 0);
    for raw in [fx.seg.into_raw(), fx.ctrl.into_raw(), local.into_raw()] {
        assert_eq!(
            capi::rsm_memseg_import_disconnect(&fx.n, ImportHandle::from_raw(raw)),
            5
        );
    }
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 5);
    assert_eq!(fx.n.import_disconnect(fx.imp), Err(RsmError::BadSegHndl));
    assert_eq!(other.n.import_disconnect(other.imp), Ok(()));
}

/// §4.3 / §6.4: the exporter unpublishes → the importer's next putv/getv → 40
/// (RSMERR_CONN_ABORTED), residual = count; publishing again + a new connect works while the old
/// import stays aborted; disconnect of the aborted import succeeds.
#[test]
fn unpublish_aborts_importers_and_republish_allows_new_connect() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    fx.fill_seg(3);
    let (_lb, local) = fx.local(32, 1);
    let iov = [
        IoVec::handle(local, 0, 0, 32),
        IoVec::handle(local, 0, 64, 32),
    ];
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    assert_eq!(capi::rsm_memseg_export_unpublish(&fx.n, fx.seg), 0);
    let before = fx.seg_bytes();
    let (l2, local2) = fx.local(32, 9);
    let iov2 = [
        IoVec::handle(local2, 0, 0, 32),
        IoVec::handle(local2, 0, 64, 32),
    ];
    assert_eq!(fx.putv(fx.imp, &iov2), (40, 2));
    assert_eq!(fx.getv(fx.imp, &iov2), (40, 2));
    assert_eq!(fx.seg_bytes(), before, "no byte moved");
    assert_eq!(fx.bytes(&l2), pat(32, 9));
    // The id is free again; publish again and connect anew.
    assert_eq!(
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR),
        Err(RsmError::SegNotPublished)
    );
    let id = fx.n.export_publish(fx.seg, 0, &[]).unwrap();
    let fresh =
        fx.n.import_connect(fx.ctrl, 0, id, Permission::RDWR)
            .unwrap();
    assert_eq!(fx.putv(fresh, &iov2), (0, 0));
    assert_eq!(fx.n.platform().read(&fx.mem, 64, 32), pat(32, 9));
    assert_eq!(fx.putv(fx.imp, &iov), (40, 2), "old import stays aborted");
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fresh), 0);
}

/// §4.3 destroy: the importer's next putv/getv → 40; disconnect still succeeds.
#[test]
fn destroy_aborts_importers() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(16, 1);
    let iov = [IoVec::handle(local, 0, 0, 16)];
    assert_eq!(capi::rsm_memseg_export_destroy(&fx.n, fx.seg), 0);
    assert_eq!(
        fx.n.platform().pinned_pages(),
        1,
        "only the local handle's page"
    );
    assert_eq!(fx.putv(fx.imp, &iov), (40, 1));
    assert_eq!(fx.getv(fx.imp, &iov), (40, 1));
    // A new segment taking the freed slot does not revive the old connection.
    let c2 =
        fx.n.export_create(fx.ctrl, fx.va(PAGE, 0), CreateFlags::empty())
            .unwrap();
    let id2 = fx.n.export_publish(c2, 0, &[]).unwrap();
    assert!(fx
        .n
        .import_connect(fx.ctrl, 0, id2, Permission::RDWR)
        .is_ok());
    assert_eq!(fx.putv(fx.imp, &iov), (40, 1));
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
}

// =============================================================================================
// §4.6 putv / getv
// =============================================================================================

/// §10 putv/getv: NULL sg → 14 (RSMERR_BAD_SGIO).
#[test]
fn putv_getv_null_sg_is_bad_sgio() {
    let n = node();
    assert_eq!(capi::rsm_memseg_import_putv(&n, None), 14);
    assert_eq!(capi::rsm_memseg_import_getv(&n, None), 14);
}

/// §10 putv/getv: NULL remote handle → 5 (RSMERR_BAD_SEG_HNDL), residual = count; stale,
/// foreign and wrong-kind handles likewise (§9.7).
#[test]
fn putv_getv_null_or_bad_remote_handle_is_bad_seg_hndl() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let other = Fx::new(PAGE, Permission::RDWR);
    let src = fx.va(16, 1);
    let iov = [IoVec::va(&src, 0, 0, 16), IoVec::va(&src, 0, 16, 16)];
    assert_eq!(fx.putv(ImportHandle::NULL, &iov), (5, 2));
    assert_eq!(fx.getv(ImportHandle::NULL, &iov), (5, 2));
    assert_eq!(fx.putv(other.imp, &iov), (5, 2));
    let (_b, local) = fx.local(8, 0);
    for raw in [fx.seg.into_raw(), fx.ctrl.into_raw(), local.into_raw()] {
        assert_eq!(fx.putv(ImportHandle::from_raw(raw), &iov), (5, 2));
        assert_eq!(fx.getv(ImportHandle::from_raw(raw), &iov), (5, 2));
    }
    let gone =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
            .unwrap();
    fx.n.import_disconnect(gone).unwrap();
    assert_eq!(fx.putv(gone, &iov), (5, 2));
    assert_eq!(
        fx.n.putv(&mut ScatGath::new(gone, &iov)),
        Err(RsmError::BadSegHndl)
    );
    assert_eq!(fx.seg_bytes(), vec![0; PAGE]);
}

/// §10 putv/getv: count 0 → 14; count 17 → 14; count 16 OK (data verified); fewer entries than
/// the count → 14; §2.7 RSM_MAX_SGIOREQS.
#[test]
fn putv_getv_request_count_limits() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(256, 4);
    let iov17: Vec<IoVec<'_, FakeRegion>> = (0..17)
        .map(|i| IoVec::handle(local, i * 15 % 240, i * 16, 16))
        .collect();
    assert_eq!(fx.putv(fx.imp, &iov17), (14, 17));
    assert_eq!(fx.getv(fx.imp, &iov17), (14, 17));
    assert_eq!(fx.putv(fx.imp, &iov17[..0]), (14, 0));
    assert_eq!(fx.getv(fx.imp, &iov17[..0]), (14, 0));
    assert_eq!(fx.seg_bytes(), vec![0; PAGE]);
    // Count 16 is the maximum: all 16 entries land.
    assert_eq!(fx.putv(fx.imp, &iov17[..16]), (0, 0));
    let src = pat(256, 4);
    for (i, e) in iov17[..16].iter().enumerate() {
        assert_eq!(
            fx.n.platform().read(&fx.mem, i * 16, 16),
            src[e.local_offset..e.local_offset + 16]
        );
    }
    // Count larger than the vector given.
    let mut sg = ScatGath::new(fx.imp, &iov17[..3]);
    sg.io_request_count = 4;
    sg.io_residual_count = 999;
    assert_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 14);
    assert_eq!(sg.io_residual_count, 4);
    // Count smaller than the vector: only the first entries are used.
    fx.n.platform().write(&fx.mem, 0, &[0; PAGE]);
    let mut sg = ScatGath::new(fx.imp, &iov17);
    sg.io_request_count = 2;
    assert_eq!(fx.n.putv(&mut sg), Ok(()));
    assert_eq!(sg.io_residual_count, 0);
    assert_eq!(fx.n.platform().read(&fx.mem, 32, 16), vec![0; 16]);
    assert_ne!(fx.n.platform().read(&fx.mem, 16, 16), vec![0; 16]);
}

/// §10 putv/getv: NULL iovec → 14 (§9.19).
#[test]
fn putv_getv_null_iovec_is_bad_sgio() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    for count in [1, 16] {
        let mut sg: ScatGath<'_, FakeRegion> = ScatGath {
            local_nodeid: 0,
            io_request_count: count,
            io_residual_count: 999,
            flags: SgFlags::IMPLICIT_SIGPOST,
            remote_handle: fx.imp,
            iovec: None,
        };
        assert_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 14);
        assert_eq!(sg.io_residual_count, count);
        sg.io_residual_count = 999;
        assert_eq!(fx.n.getv(&mut sg), Err(RsmError::BadSgio));
        assert_eq!(sg.io_residual_count, count);
    }
    assert_eq!(fx.events(), 0);
}

/// §10 putv/getv: io_type 3 → 14 (§9.19); other invalid types and io_type/local mismatches
/// likewise.
#[test]
fn putv_getv_bad_io_type_is_bad_sgio() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(16, 1);
    let src = fx.va(16, 2);
    for t in [3, 0, -1, 4, i32::MAX] {
        let mut e = IoVec::va(&src, 0, 0, 16);
        e.io_type = t;
        assert_eq!(fx.putv(fx.imp, &[e]), (14, 1), "io_type {t}");
        assert_eq!(fx.getv(fx.imp, &[e]), (14, 1), "io_type {t}");
        let mut h = IoVec::handle(local, 0, 0, 16);
        h.io_type = t;
        assert_eq!(fx.putv(fx.imp, &[h]), (14, 1), "io_type {t}");
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
        assert_eq!(fx.putv(fx.imp, &[e]), (14, 1));
    }
    assert_eq!(fx.seg_bytes(), vec![0; PAGE]);
}

/// §10 putv/getv: an entry beyond the segment end → 18 (RSMERR_BAD_OFFSET, §9.12) with
/// residual = io_request_count, and no byte changed anywhere (the vector is validated first).
#[test]
fn putv_getv_entry_beyond_segment_end_is_bad_offset_nothing_moved() {
    let fx = Fx::new(2 * PAGE, Permission::RDWR);
    fx.fill_seg(1);
    let (lb, local) = fx.local(PAGE, 2);
    let vb = fx.va(PAGE, 3);
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
        assert_eq!(fx.putv(fx.imp, &iov), (18, 4), "{bad:?}");
        assert_eq!(fx.getv(fx.imp, &iov), (18, 4), "{bad:?}");
        assert_eq!(fx.seg_bytes(), pat(seg_len, 1));
        assert_eq!(fx.bytes(&lb), pat(PAGE, 2));
        assert_eq!(fx.bytes(&vb), pat(PAGE, 3));
    }
    // The entry ending exactly at the segment end is fine.
    let iov = [IoVec::handle(local, 0, seg_len - 10, 10)];
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    let mut sg = ScatGath::new(fx.imp, &bad_entries[..1]);
    assert_eq!(fx.n.getv(&mut sg), Err(RsmError::BadOffset));
}

/// §10 putv/getv: an entry beyond the local handle's length → 20 (RSMERR_BAD_LENGTH, §9.12);
/// VA regions are bounded by their length the same way; nothing moves.
#[test]
fn putv_getv_entry_beyond_local_length_is_bad_length() {
    let fx = Fx::new(2 * PAGE, Permission::RDWR);
    let (lb, local) = fx.local(PAGE, 2);
    let vb = fx.va(300, 3);
    for bad in [
        IoVec::handle(local, 0, 0, PAGE + 1),
        IoVec::handle(local, PAGE, 0, 1),
        IoVec::handle(local, PAGE + 1, 0, 0),
        IoVec::handle(local, usize::MAX, 0, 2),
        IoVec::va(&vb, 290, 0, 11),
        IoVec::va(&vb, 0, 0, 301),
    ] {
        let iov = [IoVec::va(&vb, 0, 0, 8), bad];
        assert_eq!(fx.putv(fx.imp, &iov), (20, 2), "{bad:?}");
        assert_eq!(fx.getv(fx.imp, &iov), (20, 2), "{bad:?}");
        assert_eq!(fx.seg_bytes(), vec![0; 2 * PAGE]);
        assert_eq!(fx.bytes(&lb), pat(PAGE, 2));
        assert_eq!(fx.bytes(&vb), pat(300, 3));
    }
    let iov = [IoVec::handle(local, 1, 0, PAGE)];
    assert_eq!(
        fx.n.putv(&mut ScatGath::new(fx.imp, &iov)),
        Err(RsmError::BadLength)
    );
    assert_eq!(
        fx.n.getv(&mut ScatGath::new(fx.imp, &iov)),
        Err(RsmError::BadLength)
    );
}

/// §4.6 / §9.19: zero-length entries are allowed no-ops (also at the very end of the segment
/// and of the local memory) and still validated.
#[test]
fn putv_getv_zero_length_entries_ok() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    fx.fill_seg(1);
    let (lb, local) = fx.local(100, 2);
    let vb = fx.va(50, 3);
    let iov = [
        IoVec::handle(local, 0, 0, 0),
        IoVec::handle(local, 100, PAGE, 0),
        IoVec::va(&vb, 50, 17, 0),
        IoVec::va(&vb, 0, PAGE, 0),
    ];
    assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.getv(fx.imp, &iov), (0, 0));
    assert_eq!(fx.seg_bytes(), pat(PAGE, 1));
    assert_eq!(fx.bytes(&lb), pat(100, 2));
    assert_eq!(fx.bytes(&vb), pat(50, 3));
    // Zero-length entries are still validated.
    assert_eq!(fx.putv(fx.imp, &[IoVec::va(&vb, 0, PAGE + 1, 0)]), (18, 1));
    let mut bad = IoVec::va(&vb, 0, 0, 0);
    bad.io_type = 3;
    assert_eq!(fx.putv(fx.imp, &[bad]), (14, 1));
}

/// §10 putv/getv: mixed HANDLE/VA entries round-trip data (putv, then getv into other buffers),
/// on both controllers.
#[test]
fn putv_getv_mixed_handle_and_va_round_trip() {
    for ctrl in [None, Some("rsmnet0")] {
        let fx = Fx::with(node(), ctrl, 3 * PAGE, &[], Permission::RDWR);
        let (_a, ha) = fx.local(100, 10);
        let vb = fx.va(300, 20);
        let iov = [
            IoVec::handle(ha, 0, 0, 100),
            IoVec::va(&vb, 10, PAGE - 20, 50),
            IoVec::handle(ha, 50, 2 * PAGE + 5, 50),
            IoVec::va(&vb, 0, 3 * PAGE - 300, 300),
        ];
        assert_eq!(fx.putv(fx.imp, &iov), (0, 0));
        let rd = |off, len| fx.n.platform().read(&fx.mem, off, len);
        assert_eq!(rd(0, 100), pat(100, 10));
        assert_eq!(rd(PAGE - 20, 50), pat(300, 20)[10..60]);
        assert_eq!(rd(2 * PAGE + 5, 50), pat(100, 10)[50..]);
        assert_eq!(rd(3 * PAGE - 300, 300), pat(300, 20));
        assert_eq!(rd(100, 50), vec![0; 50], "nothing between the entries");
        // getv scatters it back into a handle and a VA buffer.
        let cbuf = fx.n.platform().alloc(200);
        let ch =
            fx.n.create_localmemory_handle(fx.ctrl, cbuf.clone())
                .unwrap();
        let dbuf = fx.n.platform().alloc(400);
        let back = [
            IoVec::handle(ch, 0, 0, 100),
            IoVec::va(&dbuf, 0, PAGE - 20, 50),
            IoVec::handle(ch, 100, 2 * PAGE + 5, 50),
            IoVec::va(&dbuf, 100, 3 * PAGE - 300, 300),
        ];
        assert_eq!(fx.getv(fx.imp, &back), (0, 0));
        let c = fx.bytes(&cbuf);
        let d = fx.bytes(&dbuf);
        assert_eq!(c[..100], pat(100, 10)[..]);
        assert_eq!(c[100..150], pat(100, 10)[50..]);
        assert_eq!(c[150..], vec![0; 50][..]);
        assert_eq!(d[..50], pat(300, 20)[10..60]);
        assert_eq!(d[100..], pat(300, 20)[..]);
    }
}

/// §4.6 (rustdoc): a local handle that was freed, or a stale handle whose slot was reused, in
/// an entry → 14.
#[test]
fn putv_freed_local_handle_is_bad_sgio() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (lb, local) = fx.local(64, 1);
    fx.n.free_localmemory_handle(fx.ctrl, local).unwrap();
    let iov = [IoVec::handle(local, 0, 0, 64)];
    assert_eq!(fx.putv(fx.imp, &iov), (14, 1));
    assert_eq!(fx.getv(fx.imp, &iov), (14, 1));
    let reused = fx.n.create_localmemory_handle(fx.ctrl, lb).unwrap();
    assert_ne!(reused, local);
    assert_eq!(fx.putv(fx.imp, &iov), (14, 1));
    assert_eq!(fx.putv(fx.imp, &[IoVec::handle(reused, 0, 0, 64)]), (0, 0));
}

/// §9.2: io_residual_count is written on every return (preset to 999): 0 on success, the
/// request count on every failure before a transfer.
#[test]
fn putv_getv_residual_written_on_every_return() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(64, 1);
    let ok = IoVec::handle(local, 0, 0, 64);
    let beyond = IoVec::handle(local, 0, PAGE, 1);
    let cases: Vec<(Vec<IoVec<'_, FakeRegion>>, ImportHandle, i32)> = vec![
        (vec![ok; 3], fx.imp, 0),
        (vec![ok; 16], fx.imp, 0),
        (vec![ok, ok, beyond], fx.imp, 18),
        (vec![beyond, ok], fx.imp, 18),
        (vec![ok; 5], ImportHandle::NULL, 5),
        (vec![ok; 17], fx.imp, 14),
    ];
    for (iov, imp, want) in &cases {
        let expect_residual = if *want == 0 { 0 } else { iov.len() as u64 };
        assert_eq!(fx.putv(*imp, iov), (*want, expect_residual));
        assert_eq!(fx.getv(*imp, iov), (*want, expect_residual));
        // Typed API writes it too.
        let mut sg = ScatGath::new(*imp, iov);
        sg.io_residual_count = 999;
        assert_eq!(rc(fx.n.putv(&mut sg)), *want);
        assert_eq!(sg.io_residual_count, expect_residual);
    }
    // Aborted connection.
    fx.n.export_unpublish(fx.seg).unwrap();
    assert_eq!(fx.putv(fx.imp, &[ok, ok]), (40, 2));
}

/// §9.2: when an entry fails *during* the transfer (here: a VA entry over memory that is not
/// mapped, which passes validation and faults in the copy), entries are processed strictly in
/// order, processing stops at the failing entry, the entries before it are transferred, and
/// residual = io_request_count − k; no implicit sigpost on failure (§9.28).
#[test]
fn putv_getv_fault_mid_vector_residual_counts_done_entries() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (lb, local) = fx.local(64, 1);
    let vb = fx.va(64, 2);
    let hole = FakeRegion::raw(UNMAPPED, 64);
    let iov = [
        IoVec::handle(local, 0, 0, 64),
        IoVec::va(&vb, 0, 64, 64),
        IoVec::va(&hole, 0, 128, 64),
        IoVec::handle(local, 0, 192, 64),
    ];
    let mut sg = ScatGath::new(fx.imp, &iov);
    sg.io_residual_count = 999;
    sg.flags = SgFlags::IMPLICIT_SIGPOST;
    assert_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 16);
    assert_eq!(sg.io_residual_count, 2);
    assert_eq!(sg.flags, SgFlags::IMPLICIT_SIGPOST);
    assert_eq!(
        fx.n.platform().read(&fx.mem, 0, 64),
        pat(64, 1),
        "entry 0 done"
    );
    assert_eq!(
        fx.n.platform().read(&fx.mem, 64, 64),
        pat(64, 2),
        "entry 1 done"
    );
    assert_eq!(
        fx.n.platform().read(&fx.mem, 128, 128),
        vec![0; 128],
        "entries 2, 3 not"
    );
    assert_eq!(fx.events(), 0);
    // getv: the same, in the other direction.
    fx.fill_seg(7);
    sg.io_residual_count = 999;
    assert_eq!(fx.n.getv(&mut sg), Err(RsmError::BadAddr));
    assert_eq!(sg.io_residual_count, 2);
    assert_eq!(fx.bytes(&lb), pat(PAGE, 7)[..64]);
    assert_eq!(fx.bytes(&vb), pat(PAGE, 7)[64..128]);
    assert_eq!(fx.events(), 0);
    // Failing first entry: residual = count.
    let iov = [IoVec::va(&hole, 0, 0, 8), IoVec::handle(local, 0, 8, 8)];
    assert_eq!(fx.putv(fx.imp, &iov), (16, 2));
}

/// §4.6: the caller's flags are unchanged after return, on success and on failure, with
/// IMPLICIT_SIGPOST | SIGPOST_NO_ACCUMULATE set.
#[test]
fn putv_getv_flags_unchanged() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(64, 1);
    let all = SgFlags::IMPLICIT_SIGPOST | SgFlags::SIGPOST_NO_ACCUMULATE;
    let good = [IoVec::handle(local, 0, 0, 64)];
    let bad = [IoVec::handle(local, 0, PAGE, 64)];
    for flags in [all, SgFlags::IMPLICIT_SIGPOST, SgFlags::empty()] {
        for (iov, want) in [(&good, 0), (&bad, 18)] {
            let mut sg = ScatGath::new(fx.imp, iov);
            sg.flags = flags;
            assert_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), want);
            assert_eq!(sg.flags, flags);
            assert_eq!(capi::rsm_memseg_import_getv(&fx.n, Some(&mut sg)), want);
            assert_eq!(sg.flags, flags);
        }
    }
    // Also when the connection was aborted.
    fx.n.export_unpublish(fx.seg).unwrap();
    let mut sg = ScatGath::new(fx.imp, &good);
    sg.flags = all;
    assert_eq!(fx.n.putv(&mut sg), Err(RsmError::ConnAborted));
    assert_eq!(sg.flags, all);
}

fn sg_with<'a>(
    imp: ImportHandle,
    iov: &'a [IoVec<'a, FakeRegion>],
    flags: SgFlags,
) -> ScatGath<'a, FakeRegion> {
    let mut sg = ScatGath::new(imp, iov);
    sg.flags = flags;
    sg
}

/// §10 putv/getv: implicit sigpost rings the exporter exactly once per successful call, never
/// on failure and never without the flag (§4.6, §9.28).
#[test]
fn implicit_sigpost_rings_once_per_successful_call() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(64, 1);
    let good = [
        IoVec::handle(local, 0, 0, 64),
        IoVec::handle(local, 0, 64, 64),
    ];
    let bad = [
        IoVec::handle(local, 0, 0, 64),
        IoVec::handle(local, 0, PAGE, 64),
    ];
    assert_eq!(fx.events(), 0);
    assert_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &good, SgFlags::empty())),
        Ok(())
    );
    assert_eq!(fx.events(), 0, "no flag, no event");
    assert_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &good, SgFlags::SIGPOST_NO_ACCUMULATE)),
        Ok(())
    );
    assert_eq!(fx.events(), 0, "NO_ACCUMULATE alone does not post");
    assert_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &good, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    assert_eq!(fx.events(), 1, "one event for a two-entry vector");
    assert_eq!(
        fx.n.putv(&mut sg_with(fx.imp, &bad, SgFlags::IMPLICIT_SIGPOST)),
        Err(RsmError::BadOffset)
    );
    assert_eq!(fx.events(), 1, "failure posts nothing");
    assert_eq!(
        fx.n.getv(&mut sg_with(fx.imp, &good, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    assert_eq!(fx.events(), 2, "getv posts too");
    assert_eq!(
        fx.n.getv(&mut sg_with(
            ImportHandle::NULL,
            &good,
            SgFlags::IMPLICIT_SIGPOST
        )),
        Err(RsmError::BadSegHndl)
    );
    assert_eq!(fx.events(), 2);
}

/// §10 putv/getv: no-accumulate coalesces (our choice, §9.3): two calls with NO_ACCUMULATE → 1
/// event; without → 2.
#[test]
fn implicit_sigpost_no_accumulate_coalesces() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(64, 1);
    let iov = [IoVec::handle(local, 0, 0, 64)];
    let both = SgFlags::IMPLICIT_SIGPOST | SgFlags::SIGPOST_NO_ACCUMULATE;
    assert_eq!(fx.n.putv(&mut sg_with(fx.imp, &iov, both)), Ok(()));
    assert_eq!(fx.n.putv(&mut sg_with(fx.imp, &iov, both)), Ok(()));
    assert_eq!(fx.events(), 1);
    let fx2 = Fx::new(PAGE, Permission::RDWR);
    let (_lb2, local2) = fx2.local(64, 1);
    let iov2 = [IoVec::handle(local2, 0, 0, 64)];
    assert_eq!(
        fx2.n
            .putv(&mut sg_with(fx2.imp, &iov2, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    assert_eq!(
        fx2.n
            .putv(&mut sg_with(fx2.imp, &iov2, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    assert_eq!(fx2.events(), 2);
    // An accumulating post on top of a pending event still adds one.
    assert_eq!(fx2.n.putv(&mut sg_with(fx2.imp, &iov2, both)), Ok(()));
    assert_eq!(
        fx2.events(),
        2,
        "no-accumulate with a pending event adds nothing"
    );
    assert_eq!(
        fx2.n
            .putv(&mut sg_with(fx2.imp, &iov2, SgFlags::IMPLICIT_SIGPOST)),
        Ok(())
    );
    assert_eq!(fx2.events(), 3);
}

/// Check order of putv/getv (§4.6, rustdoc): remote handle → count / iovec → connection
/// aborted → permission → entries.
#[test]
fn putv_getv_check_order_header() {
    let fx = Fx::with(node(), Some("rsmnet0"), PAGE, &[], Permission::RDWR);
    let ro =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ)
            .unwrap();
    let wo =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::WRITE)
            .unwrap();
    let (_lb, local) = fx.local(64, 1);
    let mut bad_type = IoVec::handle(local, 0, 0, 8);
    bad_type.io_type = 3;
    let ok = IoVec::handle(local, 0, 0, 8);
    let seventeen = vec![bad_type; 17];
    // NULL remote + count 0 → 5; NULL remote + count 17 → 5
    assert_eq!(fx.putv(ImportHandle::NULL, &[]), (5, 0));
    assert_eq!(fx.putv(ImportHandle::NULL, &seventeen), (5, 17));
    // NULL remote + NULL iovec → 5
    let mut sg: ScatGath<'_, FakeRegion> = ScatGath {
        iovec: None,
        ..ScatGath::new(ImportHandle::NULL, &[])
    };
    sg.io_request_count = 1;
    assert_eq!(capi::rsm_memseg_import_putv(&fx.n, Some(&mut sg)), 5);
    // permission denied + bad entry → 27 (putv on read-only, getv on write-only)
    assert_eq!(fx.putv(ro, &[bad_type]), (27, 1));
    assert_eq!(fx.getv(wo, &[bad_type]), (27, 1));
    // permission denied + count 0 → 14; permission denied + count 17 → 14
    assert_eq!(fx.putv(ro, &[]), (14, 0));
    assert_eq!(fx.getv(wo, &seventeen), (14, 17));
    // Connection aborted.
    fx.n.export_unpublish(fx.seg).unwrap();
    // count 0 / 17 / NULL iovec + aborted → 14
    assert_eq!(fx.putv(fx.imp, &[]), (14, 0));
    assert_eq!(fx.putv(fx.imp, &seventeen), (14, 17));
    let mut sg: ScatGath<'_, FakeRegion> = ScatGath {
        iovec: None,
        ..ScatGath::new(fx.imp, &[])
    };
    sg.io_request_count = 1;
    assert_eq!(fx.n.putv(&mut sg), Err(RsmError::BadSgio));
    // aborted + permission denied → 40
    assert_eq!(fx.putv(ro, &[ok]), (40, 1));
    assert_eq!(fx.getv(wo, &[ok]), (40, 1));
    // aborted + bad entry → 40
    assert_eq!(fx.putv(fx.imp, &[bad_type]), (40, 1));
}

/// Check order among and within entries (§4.6 rustdoc, `sg::plan`): the first bad entry wins;
/// within an entry io_type → NULL VA → remote range (18) → local range (20).
#[test]
fn putv_getv_check_order_entries() {
    let fx = Fx::new(PAGE, Permission::RDWR);
    let (_lb, local) = fx.local(64, 1);
    let vb = fx.va(64, 2);
    let null = FakeRegion::raw(0, 64);
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
        assert_eq!(fx.putv(fx.imp, &[ok, e]), (want, 2), "{e:?}");
        assert_eq!(fx.getv(fx.imp, &[ok, e]), (want, 2), "{e:?}");
    }
    // A freed handle with bad ranges → 14.
    let (_b2, gone) = fx.local(64, 3);
    fx.n.free_localmemory_handle(fx.ctrl, gone).unwrap();
    assert_eq!(
        fx.putv(fx.imp, &[IoVec::handle(gone, 100, PAGE, 100)]),
        (14, 1)
    );
    // A handle entry with both ranges bad → 18.
    assert_eq!(
        fx.putv(fx.imp, &[IoVec::handle(local, 100, PAGE, 100)]),
        (18, 1)
    );
    // Among entries: the first bad one wins, whatever its kind.
    let orders: [(&[IoVec<'_, FakeRegion>], i32); 6] = [
        (&[ok, local_range, bad_type], 20),
        (&[ok, bad_type, local_range], 14),
        (&[remote_range, null_va], 18),
        (&[null_va, remote_range], 16),
        (&[local_range, remote_range, bad_type], 20),
        (&[ok, ok, ok, remote_range, local_range], 18),
    ];
    for (iov, want) in orders {
        assert_eq!(fx.putv(fx.imp, iov), (want, iov.len() as u64));
        assert_eq!(fx.getv(fx.imp, iov), (want, iov.len() as u64));
    }
    assert_eq!(fx.seg_bytes(), vec![0; PAGE], "no vector moved a byte");
}

/// §9.29: validation is identical on both controllers (the same bad vector gets the same code
/// through loopback and rsmnet0).
#[test]
fn putv_validation_identical_on_both_controllers() {
    let mut codes = Vec::new();
    for ctrl in [None, Some("rsmnet0")] {
        let fx = Fx::with(node(), ctrl, PAGE, &[], Permission::RDWR);
        let (_lb, local) = fx.local(64, 1);
        let mut t3 = IoVec::handle(local, 0, 0, 8);
        t3.io_type = 3;
        let v = [
            fx.putv(fx.imp, &[IoVec::handle(local, 0, PAGE, 1)]),
            fx.putv(fx.imp, &[IoVec::handle(local, 60, 0, 8)]),
            fx.putv(fx.imp, &[t3]),
            fx.putv(fx.imp, &[IoVec::handle(local, 0, 0, 64)]),
        ];
        codes.push(v);
    }
    assert_eq!(codes[0], [(18, 1), (20, 1), (14, 1), (0, 0)]);
    assert_eq!(codes[0], codes[1]);
}

// =============================================================================================
// §9.9 free while a putv uses the handle (host platform, threads)
// =============================================================================================

/// §9.9 (our choice: free waits): thread A runs large putv vectors in a loop — 15 entries of
/// 4 MiB from a local handle `bulk`, then one 256 KiB entry from the local handle `local` —
/// while thread B frees `local` in the middle of a vector (the vector holds `local` from its
/// validation to its end). The free must return Ok only once no transfer uses the handle:
/// right after it returns, B overwrites the buffer behind `local` with 0xBB, and no 0xBB byte
/// may ever reach the segment (a free that returned early would let the vector's last entry
/// copy them). Every putv starting after the free returned fails with 14 (residual 16); no
/// call panics; the test is bounded (< 2 s; the only sleep is bounded).
#[test]
fn free_local_waits_for_putv_in_flight_host() {
    use rsm_host::{HostPlatform, PinnedBuf};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    const CHUNK: usize = 4 << 20;
    const SMALL: usize = 256 << 10;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(1500);
    // No mlock: 8+ MiB would exceed the default RLIMIT_MEMLOCK; pin counts work the same.
    let n: Rsm<HostPlatform> = Rsm::new(HostPlatform::without_mlock(), Config::default());
    let page = n.platform().page_size();
    let ctrl = n.get_controller(None).unwrap();
    let seg_buf = PinnedBuf::new(CHUNK).unwrap();
    let seg = n
        .export_create(ctrl, seg_buf.region(), CreateFlags::empty())
        .unwrap();
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let imp = n.import_connect(ctrl, 0, id, Permission::RDWR).unwrap();
    let bulk_buf = PinnedBuf::new(CHUNK).unwrap();
    bulk_buf.fill(0x11);
    let bulk = n
        .create_localmemory_handle(ctrl, bulk_buf.region())
        .unwrap();
    let local_buf = PinnedBuf::new(SMALL).unwrap();
    local_buf.fill(0xAA);
    let local = n
        .create_localmemory_handle(ctrl, local_buf.region())
        .unwrap();
    assert_eq!(n.platform().pinned_pages(), (2 * CHUNK + SMALL) / page);

    let started = AtomicUsize::new(0);
    let first_call_nanos = AtomicU64::new(0);
    let freed = AtomicBool::new(false);
    let (a_res, b_res) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let mut iov = [IoVec::handle(bulk, 0, 0, CHUNK); 16];
            iov[15] = IoVec::handle(local, 0, 0, SMALL);
            let mut results = Vec::new();
            loop {
                let after_free = freed.load(SeqCst);
                let t = Instant::now();
                let first = started.fetch_add(1, SeqCst) == 0;
                let mut sg = ScatGath::new(imp, &iov);
                sg.io_residual_count = 999;
                let r = n.putv(&mut sg);
                if first {
                    let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    first_call_nanos.store(nanos.max(1), SeqCst);
                }
                results.push((after_free, r, sg.io_residual_count));
                if (after_free && r.is_err()) || Instant::now() > deadline {
                    break;
                }
            }
            results
        });
        let b = s.spawn(|| {
            // Wait until A has started its second vector, then (bounded sleep) about a quarter
            // of the time a vector takes, so that the free lands while that vector copies its
            // first entries.
            while (started.load(SeqCst) < 2 || first_call_nanos.load(SeqCst) == 0)
                && Instant::now() < deadline
            {
                std::thread::yield_now();
            }
            let quarter = Duration::from_nanos(first_call_nanos.load(SeqCst) / 4);
            std::thread::sleep(quarter.min(Duration::from_millis(100)));
            let r = n.free_localmemory_handle(ctrl, local);
            // From here on nothing may read the buffer through the freed handle.
            local_buf.fill(0xBB);
            freed.store(true, SeqCst);
            r
        });
        (a.join(), b.join())
    });
    let results = a_res.expect("putv thread panicked");
    let free_result = b_res.expect("free thread panicked");
    assert_eq!(free_result, Ok(()));
    assert!(
        results.iter().any(|(after, _, _)| *after),
        "A never started a putv after the free returned (deadline hit?)"
    );
    let mut ok = 0;
    for (after_free, r, residual) in &results {
        match r {
            Ok(()) => {
                assert!(!after_free, "a putv after the free returned succeeded");
                assert_eq!(*residual, 0);
                ok += 1;
            }
            Err(RsmError::BadSgio) => assert_eq!(*residual, 16),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(ok >= 1, "A's first vector succeeded before the free");
    let seg_bytes = seg_buf.to_vec();
    assert!(
        seg_bytes[..SMALL].iter().all(|&b| b == 0xAA),
        "a transfer read the local buffer after the free returned"
    );
    assert!(seg_bytes[SMALL..].iter().all(|&b| b == 0x11));
    // Subsequent putv naming the handle → 14; the handle is gone and unpinned.
    let iov = [IoVec::handle(local, 0, 0, 64)];
    let mut sg = ScatGath::new(imp, &iov);
    sg.io_residual_count = 999;
    assert_eq!(capi::rsm_memseg_import_putv(&n, Some(&mut sg)), 14);
    assert_eq!(sg.io_residual_count, 1);
    assert_eq!(
        n.free_localmemory_handle(ctrl, local),
        Err(RsmError::BadLocalmemHndl)
    );
    assert_eq!(n.platform().pinned_pages(), 2 * CHUNK / page);
    n.free_localmemory_handle(ctrl, bulk).unwrap();
    n.import_disconnect(imp).unwrap();
    n.export_destroy(seg).unwrap();
    assert_eq!(n.platform().pinned_pages(), 0);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}
