//! Mapping (spec §4.7, §9.26, §9.30) and interconnect topology (§4.2, §3.6, §9.23).
//!
//! Covers the §10 case "disconnect while mapped → 10" plus every map/unmap error of §4.7 with
//! its check order (the first failing check wins), the data path through a mapping, what a
//! mapping does when the exporter destroys, unpublishes or rebinds (the window stays pinned
//! until unmap, the importer is force-disconnected), and the topology snapshot and its C
//! entry points.
//!
//! Windows are compared by their span (address, length): a platform's region type need not
//! be comparable. The host-backend checks of the old suite (a mapping over `HostPlatform`,
//! `LazyRsm` statics over `HostPlatform`, §9.32) live in `tests/tests/host_map_topology.rs`.

use crate::{check, check_eq, pat, read_bytes, Bytes, Fail, Harness, Must, Needs, Outcome, Reg};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rsm_core::capi;
use rsm_core::topology::{mac_to_u64, node_mac, Topology};
use rsm_core::{
    Config, ImportHandle, IoVec, MapAttr, Permission, RsmError, RsmResult, ScatGath, RSM_MAP_FIXED,
    RSM_MAP_NONE, RSM_MAP_RESERVED, RSM_PERM_RDWR, RSM_PERM_READ, RSM_PERM_WRITE,
};
use rsm_hal::{Memory, Region, PAGE_SIZE};

crate::table! {
    map_returns_window_over_exported_pages: Needs::PIN_COUNT,
    capi_map_stores_window_and_fixed_at_window_succeeds,
    data_through_mapping_matches_getv_and_putv,
    disconnect_while_mapped_is_seg_still_mapped: Needs::PIN_COUNT,
    unmapped_import_disconnects,
    map_twice_is_seg_already_mapped,
    putv_getv_never_map_implicitly,
    unmap_not_mapped_is_seg_not_mapped,
    map_bad_handle_and_null_address,
    map_bad_perm_bits_is_bad_perms,
    map_beyond_import_permission_is_bad_perms,
    map_bad_length,
    map_unaligned_offset_is_bad_mem_alignment,
    map_fixed_unaligned_or_elsewhere,
    map_pin_failure_is_reported: Needs::FREE,
    map_check_order: Needs::FREE,
    exporter_destroy_while_mapped_keeps_window_pinned: Needs::PIN_COUNT,
    exporter_unpublish_while_mapped: Needs::PIN_COUNT,
    rebind_while_mapped_aborts_the_mapped_importer_only: Needs::PIN_COUNT,
    map_races_rebind_with_balanced_pins: Needs::THREADS.union(Needs::PIN_COUNT),
    topology_lists_rsmnet0_with_node_mac,
    topology_node_id_and_mac,
    topology_capacity_too_small_is_insufficient_mem,
    capi_topology,
}

const PAGE: usize = PAGE_SIZE;
/// Pages in the fixture's segment.
const SEG_PAGES: usize = 4;
const SEG_LEN: usize = SEG_PAGES * PAGE;

// The C return value of a typed call.
use rsm_core::capi::code as rc;

fn perm(bits: u32) -> Permission {
    Permission::from_bits_retain(bits)
}

/// A region's span (address, length): how windows are compared.
fn span<R: Region>(r: &R) -> (usize, usize) {
    (r.addr(), r.len())
}

/// One node with a 4-page segment (`RSM_ALLOW_REBIND`, no ACL) published and connected: the
/// shared fixture ([`crate::fixture::Fx`]) with this module's helpers.
struct Fx<'h, H: Harness>(crate::fixture::Fx<'h, H>);

impl<'h, H: Harness> core::ops::Deref for Fx<'h, H> {
    type Target = crate::fixture::Fx<'h, H>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'h, H: Harness> Fx<'h, H> {
    #[track_caller]
    fn new(h: &'h H, p: Permission) -> Result<Self, Fail> {
        let fx = crate::fixture::Fx::new(h, SEG_LEN, p)?;
        fx.fill_seg(7)?;
        Ok(Fx(fx))
    }

    #[track_caller]
    fn rdwr(h: &'h H) -> Result<Self, Fail> {
        Fx::new(h, Permission::RDWR)
    }

    /// Typed map with `MapAttr::None`.
    fn map(&self, p: u32, offset: i64, length: usize) -> RsmResult<Reg<H>> {
        self.n
            .import_map(self.imp, MapAttr::None, perm(p), offset, length, None)
    }

    /// The import's mapping as (window span, permission).
    fn mapping(&self) -> RsmResult<Option<((usize, usize), Permission)>> {
        self.n
            .import_mapping(self.imp)
            .map(|m| m.map(|(w, p)| (span(&w), p)))
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
    ) -> (i32, Option<Reg<H>>) {
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

    fn putv(&self, imp: ImportHandle, src: &Reg<H>, remote_off: usize) -> i32 {
        let iov = [IoVec::va(src, 0, remote_off, src.len())];
        let mut sg = ScatGath::new(imp, &iov);
        capi::rsm_memseg_import_putv(&self.n, Some(&mut sg))
    }

    fn getv(&self, imp: ImportHandle, dst: &Reg<H>, remote_off: usize) -> i32 {
        let iov = [IoVec::va(dst, 0, remote_off, dst.len())];
        let mut sg = ScatGath::new(imp, &iov);
        capi::rsm_memseg_import_getv(&self.n, Some(&mut sg))
    }

    /// A fresh zeroed region of `len` bytes on the fixture's platform.
    #[track_caller]
    fn alloc(&self, len: usize) -> Result<Reg<H>, Fail> {
        self.h.alloc(self.n.platform(), len)
    }

    /// The bytes `off..off + len` of `r`.
    #[track_caller]
    fn read(&self, r: &Reg<H>, off: usize, len: usize) -> Result<Bytes, Fail> {
        read_bytes(self.h, self.n.platform(), r, off, len)
    }
}

/// The bytes `range` of the fixture's initial segment contents, `pat(SEG_LEN, 7)`, checked
/// against `got`.
#[track_caller]
fn check_seg_bytes(got: &[u8], from: usize, to: usize) -> Outcome {
    let all = pat(SEG_LEN, 7);
    let want = all.get(from..to).must()?;
    check_eq!(got, want);
    Ok(())
}

// =============================================================================================
// §4.7 map: success and the data path
// =============================================================================================

/// A same-node map returns the window over the exported pages themselves, pinned by its own
/// pin; `RSM_MAP_RESERVED` behaves like `RSM_MAP_NONE`.
fn map_returns_window_over_exported_pages<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let (pins_before, _) = h.counters(fx.n.platform()).must()?;
    let w = fx.map(RSM_PERM_RDWR, PAGE as i64, 2 * PAGE)?;
    check_eq!(w.addr(), fx.mem.addr() + PAGE);
    check_eq!(w.len(), 2 * PAGE);
    check_eq!(
        h.counters(fx.n.platform()).must()?.0,
        pins_before + 1,
        "the map pins"
    );
    check_eq!(fx.mapping(), Ok(Some((span(&w), Permission::RDWR))));
    // The window shows the segment's bytes.
    check_seg_bytes(&fx.read(&w, 0, 2 * PAGE)?, PAGE, 3 * PAGE)?;
    check_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    check_eq!(fx.mapping(), Ok(None));

    // Reserved is ignored: a system-chosen mapping of the whole segment.
    let w = fx.n.import_map(
        fx.imp,
        MapAttr::Reserved,
        Permission::READ,
        0,
        SEG_LEN,
        None,
    )?;
    check_eq!((w.addr(), w.len()), (fx.mem.addr(), SEG_LEN));
    // A length that is not a page multiple maps exactly that many bytes.
    check_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    let w = fx.map(RSM_PERM_WRITE, 0, 100)?;
    check_eq!((w.addr(), w.len()), (fx.mem.addr(), 100));
    check_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    // perm 0 (RSM_PERM_NONE) is accepted, as illumos maps with PROT_NONE.
    check!(fx.map(0, 0, PAGE).is_ok());
    Ok(())
}

/// The C entry point stores the window through `address`; a fixed map at exactly the
/// window's address succeeds.
fn capi_map_stores_window_and_fixed_at_window_succeeds<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let (code, w) = fx.cmap(fx.imp, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG_LEN, 0);
    check_eq!(code, 0);
    check_eq!(w.as_ref().map(span), Some(span(&fx.mem)));
    check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    let at = fx.mem.addr() + 2 * PAGE;
    let (code, w) = fx.cmap(
        fx.imp,
        RSM_MAP_FIXED,
        RSM_PERM_READ,
        2 * PAGE as i64,
        PAGE,
        at,
    );
    check_eq!(code, 0);
    check_eq!(w.map(|w| w.addr()), Some(at));
    // Typed API: Fixed at the window address.
    check_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    let w = fx.n.import_map(
        fx.imp,
        MapAttr::Fixed,
        Permission::RDWR,
        PAGE as i64,
        PAGE,
        Some(fx.mem.addr() + PAGE),
    )?;
    check_eq!(w.addr(), fx.mem.addr() + PAGE);
    Ok(())
}

/// Data written through the mapping is visible to getv, and putv data is visible through the
/// mapping (fake platform).
fn data_through_mapping_matches_getv_and_putv<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let w = fx.map(RSM_PERM_RDWR, PAGE as i64, 2 * PAGE)?;
    // Store through the window (HAL write on the returned region).
    let data = pat(300, 99);
    Memory::write(fx.n.platform(), &w, 40, &data).must()?;
    let dst = fx.alloc(300)?;
    check_eq!(fx.getv(fx.imp, &dst, PAGE + 40), 0);
    check_eq!(fx.read(&dst, 0, 300)?, data);
    // putv into the segment, read through the window.
    let src = fx.alloc(500)?;
    let more = pat(500, 3);
    h.write(fx.n.platform(), &src, 0, &more)?;
    check_eq!(fx.putv(fx.imp, &src, 2 * PAGE + 8), 0);
    let mut back = [0u8; 500];
    Memory::read(fx.n.platform(), &w, PAGE + 8, &mut back).must()?;
    check_eq!(back.as_slice(), more.as_slice());
    // And a write through the window is the exporter's memory itself.
    check_eq!(fx.read(&fx.mem, PAGE + 40, 300)?, data);
    Ok(())
}

// =============================================================================================
// §4.7 map / unmap errors
// =============================================================================================

/// §10 Import: disconnect while mapped → 10; after unmap the disconnect succeeds and nothing
/// stays pinned or allocated.
fn disconnect_while_mapped_is_seg_still_mapped<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    fx.map(RSM_PERM_RDWR, 0, SEG_LEN)?;
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 10);
    // Still connected and usable.
    let dst = fx.alloc(8)?;
    check_eq!(fx.getv(fx.imp, &dst, 0), 0);
    check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    check_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    check_eq!(fx.n.slots_in_use(), (0, 0, 0));
    check_eq!(fx.pinned()?, 0);
    Ok(())
}

/// An import that was never mapped, or mapped and unmapped, disconnects fine.
fn unmapped_import_disconnects<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let other = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::READ)?;
    check_eq!(rc(fx.n.import_disconnect(other)), 0);
    fx.map(RSM_PERM_RDWR, 0, PAGE)?;
    fx.n.import_unmap(fx.imp)?;
    check_eq!(rc(fx.n.import_disconnect(fx.imp)), 0);
    Ok(())
}

/// Only one mapping per handle: the second map → 9, whatever its arguments; a second handle
/// on the same segment can map it too.
fn map_twice_is_seg_already_mapped<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    fx.map(RSM_PERM_RDWR, 0, PAGE)?;
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 9);
    check_eq!(rc(fx.map(RSM_PERM_READ, PAGE as i64, PAGE)), 9);
    let (code, out) = fx.cmap(fx.imp, RSM_MAP_NONE, RSM_PERM_RDWR, 0, PAGE, 0);
    check_eq!((code, out.as_ref().map(span)), (9, None));
    let other = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)?;
    check!(fx
        .n
        .import_map(other, MapAttr::None, Permission::RDWR, 0, PAGE, None)
        .is_ok());
    Ok(())
}

/// §9.26: put/get never map implicitly — after putv/getv the handle is not mapped and an
/// explicit map succeeds (no SEG_ALREADY_MAPPED leaks from implicit state).
fn putv_getv_never_map_implicitly<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let buf = fx.alloc(64)?;
    check_eq!(fx.putv(fx.imp, &buf, 0), 0);
    check_eq!(fx.getv(fx.imp, &buf, 128), 0);
    check_eq!(fx.mapping(), Ok(None));
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, SEG_LEN)), 0);
    Ok(())
}

/// Unmap of a handle that is not mapped → 11 (also right after an unmap).
fn unmap_not_mapped_is_seg_not_mapped<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 11);
    fx.map(RSM_PERM_RDWR, 0, PAGE)?;
    check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 11);
    Ok(())
}

/// NULL, stale and wrong-kind handles → 5 for map and unmap; NULL `address` → 16 (the C
/// layer checks the handle for NULL, then the address pointer, then the rest).
fn map_bad_handle_and_null_address<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let stale = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)?;
    fx.n.import_disconnect(stale)?;
    let wrong_kind = ImportHandle::from_raw(fx.seg.into_raw());
    for bad in [ImportHandle::NULL, stale, wrong_kind] {
        check_eq!(
            rc(fx
                .n
                .import_map(bad, MapAttr::None, Permission::RDWR, 0, PAGE, None)),
            5
        );
        check_eq!(fx.cmap(bad, RSM_MAP_NONE, RSM_PERM_RDWR, 0, PAGE, 0).0, 5);
        check_eq!(capi::rsm_memseg_import_unmap(&fx.n, bad), 5);
    }
    // NULL address.
    let null_addr = |imp: ImportHandle| {
        capi::rsm_memseg_import_map(&fx.n, imp, None, RSM_MAP_NONE, RSM_PERM_RDWR, 0, PAGE, 0)
    };
    check_eq!(null_addr(fx.imp), 16);
    // Order: NULL handle before NULL address; NULL address before stale handle (illumos
    // checks only for NULL there).
    check_eq!(null_addr(ImportHandle::NULL), 5);
    check_eq!(null_addr(stale), 16);
    // Nothing was mapped by the failed calls.
    check_eq!(fx.mapping(), Ok(None));
    Ok(())
}

/// `perm` above 0600 or with other bits → 26 (RSMERR_BAD_PERMS).
fn map_bad_perm_bits_is_bad_perms<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    for p in [0o700, 0o601, 0o100, 0o004, 0o777, u32::MAX] {
        check_eq!(rc(fx.map(p, 0, PAGE)), 26, "{p:o}");
        check_eq!(fx.cmap(fx.imp, RSM_MAP_NONE, p, 0, PAGE, 0).0, 26, "{p:o}");
    }
    check_eq!(fx.mapping(), Ok(None));
    Ok(())
}

/// A mapping beyond the permission the import was connected with → 26; within it → 0.
fn map_beyond_import_permission_is_bad_perms<H: Harness>(h: &H) -> Outcome {
    let ro = Fx::new(h, Permission::READ)?;
    check_eq!(rc(ro.map(RSM_PERM_RDWR, 0, PAGE)), 26);
    check_eq!(rc(ro.map(RSM_PERM_WRITE, 0, PAGE)), 26);
    check_eq!(rc(ro.map(RSM_PERM_READ, 0, PAGE)), 0);
    let wo = Fx::new(h, Permission::WRITE)?;
    check_eq!(rc(wo.map(RSM_PERM_READ, 0, PAGE)), 26);
    check_eq!(rc(wo.map(RSM_PERM_WRITE, 0, PAGE)), 0);
    Ok(())
}

/// Length 0, a range beyond the segment, a negative offset and an overflowing range → 20.
fn map_bad_length<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, 0)), 20);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, SEG_LEN + 1)), 20);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, PAGE as i64, SEG_LEN)), 20);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, SEG_LEN as i64, PAGE)), 20);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, -(PAGE as i64), PAGE)), 20);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, i64::MAX, PAGE)), 20);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, PAGE as i64, usize::MAX)), 20);
    // The whole segment exactly fits.
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, SEG_LEN)), 0);
    Ok(())
}

/// An offset that is not a multiple of 4096 → 17.
fn map_unaligned_offset_is_bad_mem_alignment<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    for off in [1, 8, PAGE as i64 - 1, PAGE as i64 + 512] {
        check_eq!(rc(fx.map(RSM_PERM_RDWR, off, 16)), 17, "{off}");
    }
    Ok(())
}

/// RSM_MAP_FIXED: unaligned address (or none, typed) → 17; an aligned address other than the
/// window's → 33 (no remapping); address 0 → 33 as mmap at 0 fails.
fn map_fixed_unaligned_or_elsewhere<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let fixed = |at: Option<usize>| {
        fx.n.import_map(fx.imp, MapAttr::Fixed, Permission::RDWR, 0, PAGE, at)
    };
    check_eq!(rc(fixed(Some(fx.mem.addr() + 1))), 17);
    check_eq!(rc(fixed(None)), 17);
    check_eq!(rc(fixed(Some(fx.mem.addr() + PAGE))), 33);
    check_eq!(rc(fixed(Some(0x7000_0000_0000))), 33);
    // C layer: the FIXED bit decides, the address comes from `fixed_addr`.
    let c = |attr: u32, at: usize| fx.cmap(fx.imp, attr, RSM_PERM_RDWR, 0, PAGE, at).0;
    check_eq!(c(RSM_MAP_FIXED, fx.mem.addr() + 4), 17);
    check_eq!(c(RSM_MAP_FIXED, 0), 33);
    check_eq!(
        c(RSM_MAP_FIXED | RSM_MAP_RESERVED, fx.mem.addr() + PAGE),
        33
    );
    // Without the FIXED bit (NONE, RESERVED, unknown values) the address is ignored.
    for attr in [RSM_MAP_NONE, RSM_MAP_RESERVED, 0x10] {
        check_eq!(c(attr, 3), 0, "attr {attr}");
        check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    }
    check_eq!(c(RSM_MAP_FIXED | RSM_MAP_RESERVED, fx.mem.addr()), 0);
    Ok(())
}

/// A HAL pin failure is mapped like other pin errors: the exporter's memory is gone →
/// RSMERR_BAD_ADDR (16), and nothing is mapped.
fn map_pin_failure_is_reported<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    check!(h.free(fx.n.platform(), &fx.mem));
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 16);
    check_eq!(fx.mapping(), Ok(None));
    Ok(())
}

/// Check order of §4.7 (the first failing check wins), pairwise along the whole list.
fn map_check_order<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let m = |attr: MapAttr, p: u32, off: i64, len: usize, at: Option<usize>| {
        rc(fx.n.import_map(fx.imp, attr, perm(p), off, len, at))
    };
    let none = MapAttr::None;
    let fixed = MapAttr::Fixed;
    let base = fx.mem.addr();
    // bad perm bits (26) before length 0 (20)
    check_eq!(m(none, 0o700, 0, 0, None), 26);
    // length 0 (20) before unaligned offset (17)
    check_eq!(m(none, RSM_PERM_RDWR, 1, 0, None), 20);
    // beyond size (20) before unaligned offset (17)
    check_eq!(m(none, RSM_PERM_RDWR, 1, SEG_LEN, None), 20);
    // unaligned offset (17) before fixed elsewhere (33)
    check_eq!(m(fixed, RSM_PERM_RDWR, 1, 8, Some(base + PAGE)), 17);
    // fixed unaligned (17) before perm beyond the grant (26), on a read-only import
    let ro = Fx::new(h, Permission::READ)?;
    let mro = |attr: MapAttr, p: u32, at: Option<usize>| {
        rc(ro.n.import_map(ro.imp, attr, perm(p), 0, PAGE, at))
    };
    check_eq!(mro(fixed, RSM_PERM_RDWR, Some(ro.mem.addr() + 1)), 17);
    // fixed elsewhere (33) before perm beyond the grant (26)
    check_eq!(mro(fixed, RSM_PERM_RDWR, Some(ro.mem.addr() + PAGE)), 33);
    // perm beyond the grant (26) before a pin failure (16)
    check!(h.free(ro.n.platform(), &ro.mem));
    check_eq!(mro(none, RSM_PERM_RDWR, None), 26);
    check_eq!(mro(none, RSM_PERM_READ, None), 16);

    // already mapped (9) before force-disconnected (40) and bad perms (26)
    fx.map(RSM_PERM_RDWR, 0, PAGE)?;
    check_eq!(m(none, 0o700, 0, 0, None), 9);
    fx.n.export_unpublish(fx.seg)?;
    check_eq!(m(none, 0o700, 0, 0, None), 9);
    fx.n.import_unmap(fx.imp)?;
    // force-disconnected (40) before bad perms (26) and everything after
    check_eq!(m(none, 0o700, 1, 0, None), 40);
    check_eq!(m(none, RSM_PERM_RDWR, 0, PAGE, None), 40);
    // bad handle (5) before everything
    fx.n.import_disconnect(fx.imp)?;
    check_eq!(m(none, 0o700, 1, 0, None), 5);
    Ok(())
}

// =============================================================================================
// Mappings and the exporter: destroy, unpublish, rebind
// =============================================================================================

/// The exporter destroys the segment while it is mapped: the importer is force-disconnected
/// (40) but the window stays pinned — and readable — until unmap; a new map → 40.
fn exporter_destroy_while_mapped_keeps_window_pinned<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let w = fx.map(RSM_PERM_RDWR, PAGE as i64, 2 * PAGE)?;
    check_eq!(fx.pinned()?, SEG_PAGES);
    check_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    check_eq!(fx.pinned()?, 2, "the window's two pages stay pinned");
    let buf = fx.alloc(8)?;
    check_eq!(fx.getv(fx.imp, &buf, PAGE), 40);
    // The window never dangles: still the old bytes.
    check_seg_bytes(&fx.read(&w, 0, 16)?, PAGE, PAGE + 16)?;
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 9);
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 10);
    check_eq!(capi::rsm_memseg_import_unmap(&fx.n, fx.imp), 0);
    check_eq!(fx.pinned()?, 0);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 40);
    check_eq!(capi::rsm_memseg_import_disconnect(&fx.n, fx.imp), 0);
    check_eq!(fx.n.slots_in_use(), (0, 0, 0));
    Ok(())
}

/// The exporter unpublishes while mapped: the importer is force-disconnected, the window
/// stays pinned until unmap, and a fresh map → 40.
fn exporter_unpublish_while_mapped<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    fx.map(RSM_PERM_RDWR, 0, SEG_LEN)?;
    fx.n.export_unpublish(fx.seg)?;
    let buf = fx.alloc(8)?;
    check_eq!(fx.putv(fx.imp, &buf, 0), 40);
    check_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 40);
    check_eq!(rc(fx.n.import_disconnect(fx.imp)), 0);
    check_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    check_eq!(fx.pinned()?, 0);
    Ok(())
}

/// Rebind while mapped: the mapped importer's putv → 40 and its window keeps the old pages
/// pinned until unmap; an importer without a mapping follows the rebind transparently.
fn rebind_while_mapped_aborts_the_mapped_importer_only<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let other = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)?;
    let w = fx.map(RSM_PERM_RDWR, 0, 2 * PAGE)?;
    let new_mem = fx.alloc(SEG_LEN)?;
    check_eq!(rc(fx.n.export_rebind(fx.seg, new_mem.clone())), 0);
    // New pages (4) plus the window's old pages (2).
    check_eq!(fx.pinned()?, SEG_PAGES + 2);
    let src = fx.alloc(4)?;
    h.write(fx.n.platform(), &src, 0, b"new!")?;
    check_eq!(fx.putv(fx.imp, &src, 0), 40);
    check_eq!(fx.putv(other, &src, 0), 0, "an unmapped import follows");
    check_eq!(fx.read(&new_mem, 0, 4)?.as_slice(), b"new!".as_slice());
    // The window still shows the old pages, not the new ones.
    check_seg_bytes(&fx.read(&w, 0, 4)?, 0, 4)?;
    check_eq!(rc(fx.n.import_unmap(fx.imp)), 0);
    check_eq!(fx.pinned()?, SEG_PAGES);
    // Still force-disconnected after the unmap.
    check_eq!(fx.putv(fx.imp, &src, 0), 40);
    check_eq!(rc(fx.map(RSM_PERM_RDWR, 0, PAGE)), 40);
    // `other` can map the new pages.
    let w2 =
        fx.n.import_map(other, MapAttr::None, Permission::RDWR, 0, PAGE, None)?;
    check_eq!(w2.addr(), new_mem.addr());
    check_eq!(rc(fx.n.import_disconnect(fx.imp)), 0);
    Ok(())
}

/// Maps and unmaps racing rebinds: every map either returns a window over one of the two
/// backing regions or `RSMERR_CONN_ABORTED` (then the importer reconnects); pins stay
/// balanced (the fake platform panics on an unbalanced unpin) and nothing is left pinned.
fn map_races_rebind_with_balanced_pins<H: Harness>(h: &H) -> Outcome {
    let fx = Fx::rdwr(h)?;
    let other = fx.alloc(SEG_LEN)?;
    let regions = [fx.mem.clone(), other];
    let done = AtomicBool::new(false);
    // A two-party start barrier (spinning: both sides run at once).
    let arrived = AtomicUsize::new(0);
    let start = || {
        arrived.fetch_add(1, Ordering::SeqCst);
        while arrived.load(Ordering::SeqCst) < 2 {
            core::hint::spin_loop();
        }
    };
    let maps = AtomicUsize::new(0);
    let aborts = AtomicUsize::new(0);
    h.concurrently(
        &|| {
            start();
            let rebinds = || -> Outcome {
                for k in 0..2000 {
                    let next = regions.get((k + 1) % 2).must()?;
                    check_eq!(rc(fx.n.export_rebind(fx.seg, next.clone())), 0);
                }
                Ok(())
            };
            let r = rebinds();
            // Also on failure, so the mapping side stops.
            done.store(true, Ordering::SeqCst);
            r
        },
        &|| {
            let mut imp = fx.imp;
            start();
            while !done.load(Ordering::SeqCst) || maps.load(Ordering::SeqCst) < 100 {
                match fx.n.import_map(
                    imp,
                    MapAttr::None,
                    Permission::RDWR,
                    PAGE as i64,
                    PAGE,
                    None,
                ) {
                    Ok(w) => {
                        maps.fetch_add(1, Ordering::SeqCst);
                        check!(regions.iter().any(|r| r.addr() + PAGE == w.addr()));
                        // Hold the mapping a moment (the test's `yield_now`).
                        for _ in 0..64 {
                            core::hint::spin_loop();
                        }
                        check_eq!(rc(fx.n.import_unmap(imp)), 0);
                    }
                    Err(e) => {
                        check_eq!(e, RsmError::ConnAborted);
                        aborts.fetch_add(1, Ordering::SeqCst);
                        check_eq!(rc(fx.n.import_disconnect(imp)), 0);
                        imp = fx.n.import_connect(fx.ctrl, 0, fx.id, Permission::RDWR)?;
                    }
                }
            }
            check_eq!(rc(fx.n.import_disconnect(imp)), 0);
            Ok(())
        },
    )?;
    let (maps, aborts) = (maps.load(Ordering::SeqCst), aborts.load(Ordering::SeqCst));
    check!(maps >= 100, "{maps} maps, {aborts} aborts");
    check_eq!(rc(fx.n.export_destroy(fx.seg)), 0);
    check_eq!(fx.pinned()?, 0);
    check_eq!(fx.n.slots_in_use(), (0, 0, 0));
    Ok(())
}

// =============================================================================================
// §4.2 Topology
// =============================================================================================

/// A single node lists `rsmnet0` once, with its MAC, no peers; loopback is not listed.
fn topology_lists_rsmnet0_with_node_mac<H: Harness>(h: &H) -> Outcome {
    let n = crate::node(h);
    let t: Topology = n.get_interconnect_topology()?;
    check_eq!(t.local_nodeid, 0);
    check_eq!(t.controllers.len(), 1);
    let c = t.controllers.first().must()?;
    check_eq!(c.cntlr_name, "rsmnet0");
    check_eq!(c.local_hwaddr, 0x5254_0052_5300);
    check!(c.remote.is_empty());
    check!(!t
        .controllers
        .iter()
        .any(|c| c.cntlr_name.eq_ignore_ascii_case("loopback")));
    // The visitor sees the same (no remote controllers).
    let mut seen = 0usize;
    n.for_each_remote_controller(|_name, _r| seen += 1);
    check_eq!(seen, 0, "remote controllers visited");
    n.free_interconnect_topology(t);
    Ok(())
}

/// Node id 5 → MAC 52:54:00:52:53:05, hwaddr 0x525400525305.
fn topology_node_id_and_mac<H: Harness>(h: &H) -> Outcome {
    check_eq!(node_mac(5), [0x52, 0x54, 0x00, 0x52, 0x53, 0x05]);
    check_eq!(node_mac(63).get(5).copied(), Some(63));
    check_eq!(mac_to_u64(node_mac(5)), 0x5254_0052_5305);
    check_eq!(mac_to_u64([1, 2, 3, 4, 5, 6]), 0x0102_0304_0506);
    let n = crate::node_with(
        h,
        Config {
            node_id: 5,
            ..Config::default()
        },
    );
    let t: Topology<1, 0> = n.get_interconnect_topology()?;
    check_eq!(t.local_nodeid, 5);
    let c = t.controllers.first().must()?;
    check_eq!(c.local_hwaddr & 0xff, 0x05);
    check_eq!(c.local_hwaddr, mac_to_u64(node_mac(5)));
    Ok(())
}

/// No room for a controller → 32 (RSMERR_INSUFFICIENT_MEM); the C layer leaves NULL.
fn topology_capacity_too_small_is_insufficient_mem<H: Harness>(h: &H) -> Outcome {
    let n = crate::node(h);
    check_eq!(
        n.get_interconnect_topology::<0, 64>(),
        Err(RsmError::InsufficientMem)
    );
    let mut out: Option<Topology<0, 4>> = Some(Topology {
        local_nodeid: 9,
        ..Topology::default()
    });
    check_eq!(capi::rsm_get_interconnect_topology(&n, Some(&mut out)), 32);
    check!(out.is_none(), "set to NULL first");
    Ok(())
}

/// C layer: NULL out-pointer → 2; success stores the snapshot; free accepts it and NULL.
fn capi_topology<H: Harness>(h: &H) -> Outcome {
    let n = crate::node(h);
    let null: Option<&mut Option<Topology<4, 64>>> = None;
    check_eq!(capi::rsm_get_interconnect_topology(&n, null), 2);
    let mut out: Option<Topology> = None;
    check_eq!(capi::rsm_get_interconnect_topology(&n, Some(&mut out)), 0);
    let t = out.take().must()?;
    check_eq!(t.local_nodeid, 0);
    check_eq!(t.controllers.len(), 1);
    check_eq!(t.controllers.first().must()?.cntlr_name, "rsmnet0");
    capi::rsm_free_interconnect_topology(Some(t));
    capi::rsm_free_interconnect_topology::<4, 64>(None);
    Ok(())
}
