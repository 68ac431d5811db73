//! Conformance: mapping (spec §4.7, §9.26, §9.30), interconnect topology (§4.2, §3.6, §9.23)
//! and lazy library initialisation (§9.32).
//!
//! Covers the §10 case "disconnect while mapped → 10" plus every map/unmap error of §4.7 with
//! its check order (the first failing check wins), the data path through a mapping on the
//! fake and the host platform, what a mapping does when the exporter destroys, unpublishes or
//! rebinds (the window stays pinned until unmap, the importer is force-disconnected), the
//! topology snapshot and its C entry points, and `LazyRsm` over the host platform.

use rsm_core::capi;
use rsm_core::lazy::LazyRsm;
use rsm_core::topology::{mac_to_u64, node_mac, RemoteController, Topology};
use rsm_core::{
    Config, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec, MapAttr, Permission,
    Rsm, RsmError, RsmResult, ScatGath, SegmentId, RSM_MAP_FIXED, RSM_MAP_NONE, RSM_MAP_RESERVED,
    RSM_PERM_RDWR, RSM_PERM_READ, RSM_PERM_WRITE,
};
use rsm_hal::fake::{FakePlatform, FakeRegion};
use rsm_hal::{Memory, Region, PAGE_SIZE};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

type Node = Rsm<FakePlatform>;

const PAGE: usize = PAGE_SIZE;
/// Pages in the fixture's segment.
const SEG_PAGES: usize = 4;
const SEG_LEN: usize = SEG_PAGES * PAGE;

fn node() -> Node {
    Rsm::new(FakePlatform::new(), Config::default())
}

// The C return value of a typed call.
use rsm_core::capi::code as rc;

fn perm(bits: u32) -> Permission {
    Permission::from_bits_retain(bits)
}

fn pat(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
        .collect()
}

/// One node with a 4-page segment (`RSM_ALLOW_REBIND`, no ACL) published and connected.
struct Fx {
    n: Node,
    ctrl: ControllerHandle,
    mem: FakeRegion,
    seg: ExportHandle,
    id: SegmentId,
    imp: ImportHandle,
}

impl Fx {
    fn new(p: Permission) -> Fx {
        let n = node();
        let ctrl = n.get_controller(None).unwrap();
        let mem = n.platform().alloc(SEG_LEN);
        n.platform().write(&mem, 0, &pat(SEG_LEN, 7));
        let seg = n
            .export_create(ctrl, mem.clone(), CreateFlags::ALLOW_REBIND)
            .unwrap();
        let id = n.export_publish(seg, 0, &[]).unwrap();
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

    fn rdwr() -> Fx {
        Fx::new(Permission::RDWR)
    }

    /// Typed map with `MapAttr::None`.
    fn map(&self, p: u32, offset: i64, length: usize) -> RsmResult<FakeRegion> {
        self.n
            .import_map(self.imp, MapAttr::None, perm(p), offset, length, None)
    }

    /// C-shaped map of `imp`; returns (code, window stored).
    fn cmap(
        &self,
        imp: ImportHandle,
        attr: u32,
        p: u32,
        offset: i64,
        length: usize,
        fixed: usize,
    ) -> (i32, Option<FakeRegion>) {
        let mut out = None;
        let code = capi::rsm_memseg_import_map(
            &self.n,
            imp,
            Some(&mut out),
            attr,
            p,
            offset,
            length,
            fixed,
        );
        (code, out)
    }

    fn putv(&self, imp: ImportHandle, src: &FakeRegion, remote_off: usize) -> i32 {
        let iov = [IoVec::va(src, 0, remote_off, src.len())];
        let mut sg = ScatGath::new(imp, &iov);
        capi::rsm_memseg_import_putv(&self.n, Some(&mut sg))
    }

    fn getv(&self, imp: ImportHandle, dst: &FakeRegion, remote_off: usize) -> i32 {
        let iov = [IoVec::va(dst, 0, remote_off, dst.len())];
        let mut sg = ScatGath::new(imp, &iov);
        capi::rsm_memseg_import_getv(&self.n, Some(&mut sg))
    }

    fn pinned(&self) -> usize {
        self.n.platform().pinned_pages()
    }
}

// =============================================================================================
// §4.7 map: success and the data path
// =============================================================================================

/// A same-node map returns the window over the exported pages themselves, pinned by its own
/// pin; `RSM_MAP_RESERVED` behaves like `RSM_MAP_NONE`.
#[test]
fn map_returns_window_over_exported_pages() {
    let fx = Fx::rdwr();
    let (pins_before, _) = fx.n.platform().counters();
    let w = fx.map(RSM_PERM_RDWR, PAGE as i64, 2 * PAGE).unwrap();
    assert_eq!(w.addr(), fx.mem.addr() + PAGE);
    assert_eq!(w.len(), 2 * PAGE);
    assert_eq!(
        fx.n.platform().counters().0,
        pins_before + 1,
        "the map pins"
    );
    assert_eq!(
        fx.n.import_mapping(fx.imp),
        Ok(Some((w.clone(), Permission::RDWR)))
    );
    // The window shows the segment's bytes.
    assert_eq!(
        fx.n.platform().read(&w, 0, 2 * PAGE),
        pat(SEG_LEN, 7)[PAGE..3 * PAGE].to_vec()
    );
    assert_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    assert_eq!(fx.n.import_mapping(fx.imp), Ok(None));

    // Reserved is ignored: a system-chosen mapping of the whole segment.
    let w =
        fx.n.import_map(
            fx.imp,
            MapAttr::Reserved,
            Permission::READ,
            0,
            SEG_LEN,
            None,
        )
        .unwrap();
    assert_eq!((w.addr(), w.len()), (fx.mem.addr(), SEG_LEN));
    // A length that is not a page multiple maps exactly that many bytes.
    assert_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    let w = fx.map(RSM_PERM_WRITE, 0, 100).unwrap();
    assert_eq!((w.addr(), w.len()), (fx.mem.addr(), 100));
    assert_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    // perm 0 (RSM_PERM_NONE) is accepted, as illumos maps with PROT_NONE.
    assert!(fx.map(0, 0, PAGE).is_ok());
}

/// The C entry point stores the window through `address`; a fixed map at exactly the
/// window's address succeeds.
#[test]
fn capi_map_stores_window_and_fixed_at_window_succeeds() {
    let fx = Fx::rdwr();
    let (code, w) = fx.cmap(fx.imp, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG_LEN, 0);
    assert_eq!(code, 0);
    assert_eq!(w, Some(fx.mem.clone()));
    assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    let at = fx.mem.addr() + 2 * PAGE;
    let (code, w) = fx.cmap(
        fx.imp,
        RSM_MAP_FIXED,
        RSM_PERM_READ,
        2 * PAGE as i64,
        PAGE,
        at,
    );
    assert_eq!(code, 0);
    assert_eq!(w.map(|w| w.addr()), Some(at));
    // Typed API: Fixed at the window address.
    assert_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    let w =
        fx.n.import_map(
            fx.imp,
            MapAttr::Fixed,
            Permission::RDWR,
            PAGE as i64,
            PAGE,
            Some(fx.mem.addr() + PAGE),
        )
        .unwrap();
    assert_eq!(w.addr(), fx.mem.addr() + PAGE);
}

/// Data written through the mapping is visible to getv, and putv data is visible through the
/// mapping (fake platform).
#[test]
fn data_through_mapping_matches_getv_and_putv() {
    let fx = Fx::rdwr();
    let w = fx.map(RSM_PERM_RDWR, PAGE as i64, 2 * PAGE).unwrap();
    // Store through the window (HAL write on the returned region).
    let data = pat(300, 99);
    Memory::write(fx.n.platform(), &w, 40, &data).unwrap();
    let dst = fx.n.platform().alloc(300);
    assert_eq!(fx.getv(fx.imp, &dst, PAGE + 40), 0);
    assert_eq!(fx.n.platform().read(&dst, 0, 300), data);
    // putv into the segment, read through the window.
    let src = fx.n.platform().alloc(500);
    let more = pat(500, 3);
    fx.n.platform().write(&src, 0, &more);
    assert_eq!(fx.putv(fx.imp, &src, 2 * PAGE + 8), 0);
    let mut back = vec![0u8; 500];
    Memory::read(fx.n.platform(), &w, PAGE + 8, &mut back).unwrap();
    assert_eq!(back, more);
    // And a write through the window is the exporter's memory itself.
    assert_eq!(fx.n.platform().read(&fx.mem, PAGE + 40, 300), data);
}

/// The same on the host platform: the window is the exporter's buffer (same address), and
/// bytes stored through it are read back by getv and by the exporter.
#[test]
fn host_mapping_is_the_exported_buffer() {
    let n: Rsm<HostPlatform> = Rsm::new(HostPlatform::new(), Config::default());
    let ctrl = n.get_controller(None).unwrap();
    let buf = PinnedBuf::new(2 * PAGE).unwrap();
    let seg = n
        .export_create(ctrl, buf.region(), CreateFlags::empty())
        .unwrap();
    let id = n.export_publish(seg, 0, &[]).unwrap();
    let imp = n
        .import_connect(ctrl, n.node_id(), id, Permission::RDWR)
        .unwrap();
    let w: MemRegion = n
        .import_map(
            imp,
            MapAttr::None,
            Permission::RDWR,
            PAGE as i64,
            PAGE,
            None,
        )
        .unwrap();
    assert_eq!(w.as_ptr() as usize, buf.as_ptr() as usize + PAGE);
    Memory::write(n.platform(), &w, 16, b"through the window").unwrap();
    let mut seen = [0u8; 18];
    buf.read(PAGE + 16, &mut seen).unwrap();
    assert_eq!(&seen, b"through the window");
    let dst = PinnedBuf::new(18).unwrap();
    let dst_r = dst.region();
    let iov = [IoVec::va(&dst_r, 0, PAGE + 16, 18)];
    let mut sg = ScatGath::new(imp, &iov);
    assert_eq!(capi::rsm_memseg_import_getv(&n, Some(&mut sg)), 0);
    assert_eq!(dst.to_vec(), b"through the window");
    // putv → visible through the window.
    let src = PinnedBuf::new(5).unwrap();
    src.write(0, b"hello").unwrap();
    let src_r = src.region();
    let iov = [IoVec::va(&src_r, 0, PAGE + 100, 5)];
    let mut sg = ScatGath::new(imp, &iov);
    assert_eq!(capi::rsm_memseg_import_putv(&n, Some(&mut sg)), 0);
    let mut back = [0u8; 5];
    Memory::read(n.platform(), &w, 100, &mut back).unwrap();
    assert_eq!(&back, b"hello");
    assert_eq!(rc(n.import_disconnect(imp)), 10);
    assert_eq!(rc(n.import_unmap(imp)), 0);
    assert_eq!(rc(n.import_disconnect(imp)), 0);
    assert_eq!(rc(n.export_destroy(seg)), 0);
    assert_eq!(n.platform().pinned_pages(), 0);
}

// =============================================================================================
// §4.7 map / unmap errors
// =============================================================================================

/// §10 Import: disconnect while mapped → 10; after unmap the disconnect succeeds and nothing
/// stays pinned or allocated.
#[test]
fn disconnect_while_mapped_is_seg_still_mapped() {
    let fx = Fx::rdwr();
    fx.map(RSM_PERM_RDWR, 0, SEG_LEN).unwrap();
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 10);
    // Still connected and usable.
    let dst = fx.n.platform().alloc(8);
    assert_eq!(fx.getv(fx.imp, &dst, 0), 0);
    assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    assert_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    assert_eq!(fx.n.slots_in_use(), (0, 0, 0));
    assert_eq!(fx.pinned(), 0);
}

/// An import that was never mapped, or mapped and unmapped, disconnects fine.
#[test]
fn unmapped_import_disconnects() {
    let fx = Fx::rdwr();
    let other =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ)
            .unwrap();
    assert_eq!(rc(fx.n.import_disconnect(other)), 0);
    fx.map(RSM_PERM_RDWR, 0, PAGE).unwrap();
    fx.n.import_unmap(fx.imp).unwrap();
    assert_eq!(rc(fx.n.import_disconnect(fx.imp)), 0);
}

/// Only one mapping per handle: the second map → 9, whatever its arguments; a second handle
/// on the same segment can map it too.
#[test]
fn map_twice_is_seg_already_mapped() {
    let fx = Fx::rdwr();
    fx.map(RSM_PERM_RDWR, 0, PAGE).unwrap();
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 9);
    assert_eq!(rc(fx.map(RSM_PERM_READ, PAGE as i64, PAGE)), 9);
    let (code, out) = fx.cmap(fx.imp, RSM_MAP_NONE, RSM_PERM_RDWR, 0, PAGE, 0);
    assert_eq!((code, out), (9, None));
    let other =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
            .unwrap();
    assert!(fx
        .n
        .import_map(other, MapAttr::None, Permission::RDWR, 0, PAGE, None)
        .is_ok());
}

/// §9.26: put/get never map implicitly — after putv/getv the handle is not mapped and an
/// explicit map succeeds (no SEG_ALREADY_MAPPED leaks from implicit state).
#[test]
fn putv_getv_never_map_implicitly() {
    let fx = Fx::rdwr();
    let buf = fx.n.platform().alloc(64);
    assert_eq!(fx.putv(fx.imp, &buf, 0), 0);
    assert_eq!(fx.getv(fx.imp, &buf, 128), 0);
    assert_eq!(fx.n.import_mapping(fx.imp), Ok(None));
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, SEG_LEN)), 0);
}

/// Unmap of a handle that is not mapped → 11 (also right after an unmap).
#[test]
fn unmap_not_mapped_is_seg_not_mapped() {
    let fx = Fx::rdwr();
    assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 11);
    fx.map(RSM_PERM_RDWR, 0, PAGE).unwrap();
    assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 11);
}

/// NULL, stale and wrong-kind handles → 5 for map and unmap; NULL `address` → 16 (the C
/// layer checks the handle for NULL, then the address pointer, then the rest).
#[test]
fn map_bad_handle_and_null_address() {
    let fx = Fx::rdwr();
    let stale =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
            .unwrap();
    fx.n.import_disconnect(stale).unwrap();
    let wrong_kind = ImportHandle::from_raw(fx.seg.into_raw());
    for h in [ImportHandle::NULL, stale, wrong_kind] {
        assert_eq!(
            rc(fx
                .n
                .import_map(h, MapAttr::None, Permission::RDWR, 0, PAGE, None)),
            5
        );
        assert_eq!(fx.cmap(h, RSM_MAP_NONE, RSM_PERM_RDWR, 0, PAGE, 0).0, 5);
        assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, h), 5);
    }
    // NULL address.
    let null_addr =
        |h| capi::rsm_memseg_import_map(&fx.n, h, None, RSM_MAP_NONE, RSM_PERM_RDWR, 0, PAGE, 0);
    assert_eq!(null_addr(fx.imp), 16);
    // Order: NULL handle before NULL address; NULL address before stale handle (illumos
    // checks only for NULL there).
    assert_eq!(null_addr(ImportHandle::NULL), 5);
    assert_eq!(null_addr(stale), 16);
    // Nothing was mapped by the failed calls.
    assert_eq!(fx.n.import_mapping(fx.imp), Ok(None));
}

/// `perm` above 0600 or with other bits → 26 (RSMERR_BAD_PERMS).
#[test]
fn map_bad_perm_bits_is_bad_perms() {
    let fx = Fx::rdwr();
    for p in [0o700, 0o601, 0o100, 0o004, 0o777, u32::MAX] {
        assert_eq!(rc(fx.map(p, 0, PAGE)), 26, "{p:o}");
        assert_eq!(fx.cmap(fx.imp, RSM_MAP_NONE, p, 0, PAGE, 0).0, 26, "{p:o}");
    }
    assert_eq!(fx.n.import_mapping(fx.imp), Ok(None));
}

/// A mapping beyond the permission the import was connected with → 26; within it → 0.
#[test]
fn map_beyond_import_permission_is_bad_perms() {
    let ro = Fx::new(Permission::READ);
    assert_eq!(rc(ro.map(RSM_PERM_RDWR, 0, PAGE)), 26);
    assert_eq!(rc(ro.map(RSM_PERM_WRITE, 0, PAGE)), 26);
    assert_eq!(rc(ro.map(RSM_PERM_READ, 0, PAGE)), 0);
    let wo = Fx::new(Permission::WRITE);
    assert_eq!(rc(wo.map(RSM_PERM_READ, 0, PAGE)), 26);
    assert_eq!(rc(wo.map(RSM_PERM_WRITE, 0, PAGE)), 0);
}

/// Length 0, a range beyond the segment, a negative offset and an overflowing range → 20.
#[test]
fn map_bad_length() {
    let fx = Fx::rdwr();
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, 0)), 20);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, SEG_LEN + 1)), 20);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, PAGE as i64, SEG_LEN)), 20);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, SEG_LEN as i64, PAGE)), 20);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, -(PAGE as i64), PAGE)), 20);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, i64::MAX, PAGE)), 20);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, PAGE as i64, usize::MAX)), 20);
    // The whole segment exactly fits.
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, SEG_LEN)), 0);
}

/// An offset that is not a multiple of 4096 → 17.
#[test]
fn map_unaligned_offset_is_bad_mem_alignment() {
    let fx = Fx::rdwr();
    for off in [1, 8, PAGE as i64 - 1, PAGE as i64 + 512] {
        assert_eq!(rc(fx.map(RSM_PERM_RDWR, off, 16)), 17, "{off}");
    }
}

/// RSM_MAP_FIXED: unaligned address (or none, typed) → 17; an aligned address other than the
/// window's → 33 (no remapping); address 0 → 33 as mmap at 0 fails.
#[test]
fn map_fixed_unaligned_or_elsewhere() {
    let fx = Fx::rdwr();
    let fixed = |at: Option<usize>| {
        fx.n.import_map(fx.imp, MapAttr::Fixed, Permission::RDWR, 0, PAGE, at)
    };
    assert_eq!(rc(fixed(Some(fx.mem.addr() + 1))), 17);
    assert_eq!(rc(fixed(None)), 17);
    assert_eq!(rc(fixed(Some(fx.mem.addr() + PAGE))), 33);
    assert_eq!(rc(fixed(Some(0x7000_0000_0000))), 33);
    // C layer: the FIXED bit decides, the address comes from `fixed_addr`.
    let c = |attr, at| fx.cmap(fx.imp, attr, RSM_PERM_RDWR, 0, PAGE, at).0;
    assert_eq!(c(RSM_MAP_FIXED, fx.mem.addr() + 4), 17);
    assert_eq!(c(RSM_MAP_FIXED, 0), 33);
    assert_eq!(
        c(RSM_MAP_FIXED | RSM_MAP_RESERVED, fx.mem.addr() + PAGE),
        33
    );
    // Without the FIXED bit (NONE, RESERVED, unknown values) the address is ignored.
    for attr in [RSM_MAP_NONE, RSM_MAP_RESERVED, 0x10] {
        assert_eq!(c(attr, 3), 0, "attr {attr}");
        assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    }
    assert_eq!(c(RSM_MAP_FIXED | RSM_MAP_RESERVED, fx.mem.addr()), 0);
}

/// A HAL pin failure is mapped like other pin errors: the exporter's memory is gone →
/// RSMERR_BAD_ADDR (16), and nothing is mapped.
#[test]
fn map_pin_failure_is_reported() {
    let fx = Fx::rdwr();
    fx.n.platform().free(&fx.mem);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 16);
    assert_eq!(fx.n.import_mapping(fx.imp), Ok(None));
}

/// Check order of §4.7 (the first failing check wins), pairwise along the whole list.
#[test]
fn map_check_order() {
    let fx = Fx::rdwr();
    let m = |attr, p, off: i64, len, at| rc(fx.n.import_map(fx.imp, attr, perm(p), off, len, at));
    let none = MapAttr::None;
    let fixed = MapAttr::Fixed;
    let base = fx.mem.addr();
    // bad perm bits (26) before length 0 (20)
    assert_eq!(m(none, 0o700, 0, 0, None), 26);
    // length 0 (20) before unaligned offset (17)
    assert_eq!(m(none, RSM_PERM_RDWR, 1, 0, None), 20);
    // beyond size (20) before unaligned offset (17)
    assert_eq!(m(none, RSM_PERM_RDWR, 1, SEG_LEN, None), 20);
    // unaligned offset (17) before fixed elsewhere (33)
    assert_eq!(m(fixed, RSM_PERM_RDWR, 1, 8, Some(base + PAGE)), 17);
    // fixed unaligned (17) before perm beyond the grant (26), on a read-only import
    let ro = Fx::new(Permission::READ);
    let mro = |attr, p, at| rc(ro.n.import_map(ro.imp, attr, perm(p), 0, PAGE, at));
    assert_eq!(mro(fixed, RSM_PERM_RDWR, Some(ro.mem.addr() + 1)), 17);
    // fixed elsewhere (33) before perm beyond the grant (26)
    assert_eq!(mro(fixed, RSM_PERM_RDWR, Some(ro.mem.addr() + PAGE)), 33);
    // perm beyond the grant (26) before a pin failure (16)
    ro.n.platform().free(&ro.mem);
    assert_eq!(mro(none, RSM_PERM_RDWR, None), 26);
    assert_eq!(mro(none, RSM_PERM_READ, None), 16);

    // already mapped (9) before force-disconnected (40) and bad perms (26)
    fx.map(RSM_PERM_RDWR, 0, PAGE).unwrap();
    assert_eq!(m(none, 0o700, 0, 0, None), 9);
    fx.n.export_unpublish(fx.seg).unwrap();
    assert_eq!(m(none, 0o700, 0, 0, None), 9);
    fx.n.import_unmap(fx.imp).unwrap();
    // force-disconnected (40) before bad perms (26) and everything after
    assert_eq!(m(none, 0o700, 1, 0, None), 40);
    assert_eq!(m(none, RSM_PERM_RDWR, 0, PAGE, None), 40);
    // bad handle (5) before everything
    fx.n.import_disconnect(fx.imp).unwrap();
    assert_eq!(m(none, 0o700, 1, 0, None), 5);
}

// =============================================================================================
// Mappings and the exporter: destroy, unpublish, rebind
// =============================================================================================

/// The exporter destroys the segment while it is mapped: the importer is force-disconnected
/// (40) but the window stays pinned — and readable — until unmap; a new map → 40.
#[test]
fn exporter_destroy_while_mapped_keeps_window_pinned() {
    let fx = Fx::rdwr();
    let w = fx.map(RSM_PERM_RDWR, PAGE as i64, 2 * PAGE).unwrap();
    assert_eq!(fx.pinned(), SEG_PAGES);
    assert_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    assert_eq!(fx.pinned(), 2, "the window's two pages stay pinned");
    let buf = fx.n.platform().alloc(8);
    assert_eq!(fx.getv(fx.imp, &buf, PAGE), 40);
    // The window never dangles: still the old bytes.
    assert_eq!(
        fx.n.platform().read(&w, 0, 16),
        pat(SEG_LEN, 7)[PAGE..PAGE + 16].to_vec()
    );
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 9);
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 10);
    assert_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    assert_eq!(fx.pinned(), 0);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 40);
    assert_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    assert_eq!(fx.n.slots_in_use(), (0, 0, 0));
}

/// The exporter unpublishes while mapped: the importer is force-disconnected, the window
/// stays pinned until unmap, and a fresh map → 40.
#[test]
fn exporter_unpublish_while_mapped() {
    let fx = Fx::rdwr();
    fx.map(RSM_PERM_RDWR, 0, SEG_LEN).unwrap();
    fx.n.export_unpublish(fx.seg).unwrap();
    let buf = fx.n.platform().alloc(8);
    assert_eq!(fx.putv(fx.imp, &buf, 0), 40);
    assert_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 40);
    assert_eq!(rc(fx.n.import_disconnect(fx.imp)), 0);
    assert_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    assert_eq!(fx.pinned(), 0);
}

/// Rebind while mapped: the mapped importer's putv → 40 and its window keeps the old pages
/// pinned until unmap; an importer without a mapping follows the rebind transparently.
#[test]
fn rebind_while_mapped_aborts_the_mapped_importer_only() {
    let fx = Fx::rdwr();
    let other =
        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
            .unwrap();
    let w = fx.map(RSM_PERM_RDWR, 0, 2 * PAGE).unwrap();
    let new_mem = fx.n.platform().alloc(SEG_LEN);
    assert_eq!(rc(fx.n.export_rebind(fx.seg, new_mem.clone())), 0);
    // New pages (4) plus the window's old pages (2).
    assert_eq!(fx.pinned(), SEG_PAGES + 2);
    let src = fx.n.platform().alloc(4);
    fx.n.platform().write(&src, 0, b"new!");
    assert_eq!(fx.putv(fx.imp, &src, 0), 40);
    assert_eq!(fx.putv(other, &src, 0), 0, "an unmapped import follows");
    assert_eq!(fx.n.platform().read(&new_mem, 0, 4), b"new!");
    // The window still shows the old pages, not the new ones.
    assert_eq!(
        fx.n.platform().read(&w, 0, 4),
        pat(SEG_LEN, 7)[..4].to_vec()
    );
    assert_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    assert_eq!(fx.pinned(), SEG_PAGES);
    // Still force-disconnected after the unmap.
    assert_eq!(fx.putv(fx.imp, &src, 0), 40);
    assert_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 40);
    // `other` can map the new pages.
    let w2 =
        fx.n.import_map(other, MapAttr::None, Permission::RDWR, 0, PAGE, None)
            .unwrap();
    assert_eq!(w2.addr(), new_mem.addr());
    assert_eq!(rc(fx.n.import_disconnect(fx.imp)), 0);
}

/// Maps and unmaps racing rebinds: every map either returns a window over one of the two
/// backing regions or `RSMERR_CONN_ABORTED` (then the importer reconnects); pins stay
/// balanced (the fake platform panics on an unbalanced unpin) and nothing is left pinned.
#[test]
fn map_races_rebind_with_balanced_pins() {
    let fx = Fx::rdwr();
    let other = fx.n.platform().alloc(SEG_LEN);
    let regions = [fx.mem.clone(), other];
    let done = AtomicBool::new(false);
    let start = std::sync::Barrier::new(2);
    let (mut maps, mut aborts) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for k in 0..2000 {
                assert_eq!(
                    rc(fx.n.export_rebind(fx.seg, regions[(k + 1) % 2].clone())),
                    0
                );
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut imp = fx.imp;
        start.wait();
        while !done.load(Ordering::SeqCst) || maps < 100 {
            match fx.n.import_map(
                imp,
                MapAttr::None,
                Permission::RDWR,
                PAGE as i64,
                PAGE,
                None,
            ) {
                Ok(w) => {
                    maps += 1;
                    assert!(regions.iter().any(|r| r.addr() + PAGE == w.addr()));
                    std::thread::yield_now();
                    assert_eq!(rc(fx.n.import_unmap(imp)), 0);
                }
                Err(e) => {
                    assert_eq!(e, RsmError::ConnAborted);
                    aborts += 1;
                    assert_eq!(rc(fx.n.import_disconnect(imp)), 0);
                    imp =
                        fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)
                            .unwrap();
                }
            }
        }
        assert_eq!(rc(fx.n.import_disconnect(imp)), 0);
    });
    assert!(maps >= 100);
    assert_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    assert_eq!(fx.pinned(), 0);
    assert_eq!(fx.n.slots_in_use(), (0, 0, 0));
}

// =============================================================================================
// §4.2 Topology
// =============================================================================================

/// A single node lists `rsmnet0` once, with its MAC, no peers; loopback is not listed.
#[test]
fn topology_lists_rsmnet0_with_node_mac() {
    let n = node();
    let t: Topology = n.get_interconnect_topology().unwrap();
    assert_eq!(t.local_nodeid, 0);
    assert_eq!(t.controllers.len(), 1);
    let c = &t.controllers[0];
    assert_eq!(c.cntlr_name, "rsmnet0");
    assert_eq!(c.local_hwaddr, 0x5254_0052_5300);
    assert!(c.remote.is_empty());
    assert!(!t
        .controllers
        .iter()
        .any(|c| c.cntlr_name.eq_ignore_ascii_case("loopback")));
    // The visitor sees the same (no remote controllers).
    let mut seen: Vec<(&str, RemoteController)> = Vec::new();
    n.for_each_remote_controller(|name, r| seen.push((name, r)));
    assert!(seen.is_empty());
    n.free_interconnect_topology(t);
}

/// Node id 5 → MAC 52:54:00:52:53:05, hwaddr 0x525400525305.
#[test]
fn topology_node_id_and_mac() {
    assert_eq!(node_mac(5), [0x52, 0x54, 0x00, 0x52, 0x53, 0x05]);
    assert_eq!(node_mac(63)[5], 63);
    assert_eq!(mac_to_u64(node_mac(5)), 0x5254_0052_5305);
    assert_eq!(mac_to_u64([1, 2, 3, 4, 5, 6]), 0x0102_0304_0506);
    let n: Node = Rsm::new(
        FakePlatform::new(),
        Config {
            node_id: 5,
            ..Config::default()
        },
    );
    let t: Topology<1, 0> = n.get_interconnect_topology().unwrap();
    assert_eq!(t.local_nodeid, 5);
    assert_eq!(t.controllers[0].local_hwaddr & 0xff, 0x05);
    assert_eq!(t.controllers[0].local_hwaddr, mac_to_u64(node_mac(5)));
}

/// No room for a controller → 32 (RSMERR_INSUFFICIENT_MEM); the C layer leaves NULL.
#[test]
fn topology_capacity_too_small_is_insufficient_mem() {
    let n = node();
    assert_eq!(
        n.get_interconnect_topology::<0, 64>(),
        Err(RsmError::InsufficientMem)
    );
    let mut out: Option<Topology<0, 4>> = Some(Topology {
        local_nodeid: 9,
        ..Topology::default()
    });
    assert_eq!(capi::rsm_get_interconnect_topology(&n, Some(&mut out)), 32);
    assert!(out.is_none(), "set to NULL first");
}

/// C layer: NULL out-pointer → 2; success stores the snapshot; free accepts it and NULL.
#[test]
fn capi_topology() {
    let n = node();
    assert_eq!(
        capi::rsm_get_interconnect_topology::<_, 256, 64, 64, 1536, 4, 64>(&n, None),
        2
    );
    let mut out: Option<Topology> = None;
    assert_eq!(capi::rsm_get_interconnect_topology(&n, Some(&mut out)), 0);
    let t = out.take().unwrap();
    assert_eq!(t.local_nodeid, 0);
    assert_eq!(t.controllers.len(), 1);
    assert_eq!(t.controllers[0].cntlr_name, "rsmnet0");
    capi::rsm_free_interconnect_topology(Some(t));
    capi::rsm_free_interconnect_topology::<4, 64>(None);
}

// =============================================================================================
// §9.32 Lazy initialisation
// =============================================================================================

static HOST_INITS: AtomicUsize = AtomicUsize::new(0);

fn host_init() -> Option<(HostPlatform, Config)> {
    HOST_INITS.fetch_add(1, Ordering::SeqCst);
    // Slow the first call down so that the second thread really races it.
    std::thread::sleep(std::time::Duration::from_millis(50));
    Some((HostPlatform::new(), Config::default()))
}

static HOST_RSM: LazyRsm<HostPlatform> = LazyRsm::new(host_init);

/// A `static` LazyRsm over the host platform initialises once: two threads get the same
/// instance; it is node 0 and works.
#[test]
fn lazy_rsm_initialises_once() {
    assert!(HOST_RSM.get_if_initialized().is_none());
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(|| HOST_RSM.get().map(|r| r as *const _ as usize)))
        .collect();
    let addrs: Vec<usize> = threads
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert_eq!(addrs[0], addrs[1]);
    assert_eq!(HOST_INITS.load(Ordering::SeqCst), 1);
    let rsm = HOST_RSM.get().unwrap();
    assert_eq!(rsm as *const _ as usize, addrs[0]);
    assert_eq!(HOST_INITS.load(Ordering::SeqCst), 1);
    assert_eq!(rsm.node_id(), 0);
    let ctrl = rsm.get_controller(Some("rsmnet0")).unwrap();
    assert_eq!(rc(rsm.release_controller(ctrl)), 0);
    assert!(HOST_RSM.get_if_initialized().is_some());
}

static FAILED_INITS: AtomicUsize = AtomicUsize::new(0);

fn failing_init() -> Option<(HostPlatform, Config)> {
    FAILED_INITS.fetch_add(1, Ordering::SeqCst);
    None
}

static FAILING_RSM: LazyRsm<HostPlatform> = LazyRsm::new(failing_init);

/// A failed initialisation → 4 (RSMERR_CTLR_NOT_PRESENT) on every call; not retried.
#[test]
fn lazy_rsm_failed_init_is_ctlr_not_present() {
    for _ in 0..3 {
        assert_eq!(rc(FAILING_RSM.get()), 4);
    }
    assert_eq!(FAILED_INITS.load(Ordering::SeqCst), 1);
    assert!(FAILING_RSM.get_if_initialized().is_none());
}
