//! Explicit mapping of an import segment (spec §4.7, §9.26, §9.30).
//!
//! On a unikernel there is no MMU remapping to do: "mapping" a same-node import hands the
//! caller the window of the exported pages itself, as a HAL [`Region`] (the host target's
//! `MemRegion` gives its raw pointer, so CPU loads and stores reach the exporter's memory
//! directly, as a C program's `mmap` of a segment would). The mapping takes its own pin on
//! the window, so the pages stay pinned — and the window never dangles — even after the
//! exporter destroys, unpublishes or rebinds the segment; the importer is then
//! force-disconnected (`RSMERR_CONN_ABORTED` on its next access) and keeps the old pages
//! until it unmaps.
//!
//! rsm-rs never maps implicitly: put/get and putv/getv never create a mapping, so
//! `RSMERR_SEG_ALREADY_MAPPED` only follows an explicit [`Rsm::import_map`] (spec §9.26).

use crate::error::{RsmError, RsmResult};
use crate::handle::ImportHandle;
use crate::node::{pin_error, Mapping, Rsm, State};
use crate::types::{MapAttr, Permission, PAGE_SIZE};
use rsm_hal::{Platform, Region};

/// The arguments of one [`Rsm::import_map`] call.
#[derive(Clone, Copy)]
struct MapRequest {
    attr: MapAttr,
    perm: Permission,
    offset: i64,
    length: usize,
    fixed_addr: Option<usize>,
}

/// What a map decided under the lock, re-checked after pinning (the pin happens without the
/// lock, so the segment may have changed meanwhile).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    import: (u16, u32),
    export: (u16, u32),
    epoch: u32,
    addr: usize,
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// The checks of [`Rsm::import_map`] in spec order; returns the window to pin and what it
    /// was computed from.
    fn map_checks(
        &self,
        st: &State<P, L, E, I, F>,
        seg: ImportHandle,
        req: MapRequest,
    ) -> RsmResult<(P::Region, Snapshot)> {
        let MapRequest {
            attr,
            perm,
            offset,
            length,
            fixed_addr,
        } = req;
        let (i, g) = self.import_slot(st, seg)?;
        let im = st.imports.get(i, g).ok_or(RsmError::BadSegHndl)?;
        if im.map.is_some() {
            return Err(RsmError::SegAlreadyMapped);
        }
        let local = im.node == self.config.node_id;
        // A force-disconnected same-node import (illumos: mmap fails with ENODEV).
        let ex = if local {
            Some(st.connected_export(im).ok_or(RsmError::ConnAborted)?)
        } else {
            None
        };
        if perm.bits() > Permission::RDWR.bits() || perm.bits() & !Permission::RDWR.bits() != 0 {
            return Err(RsmError::BadPerms);
        }
        if length == 0 {
            return Err(RsmError::BadLength);
        }
        let off = usize::try_from(offset).map_err(|_| RsmError::BadLength)?;
        if off.checked_add(length).is_none_or(|end| end > im.size) {
            return Err(RsmError::BadLength);
        }
        if off % PAGE_SIZE != 0 {
            return Err(RsmError::BadMemAlignment);
        }
        let window = ex.and_then(|ex| ex.region.slice(off, length));
        if attr == MapAttr::Fixed {
            let at = fixed_addr.ok_or(RsmError::BadMemAlignment)?;
            if at % PAGE_SIZE != 0 {
                return Err(RsmError::BadMemAlignment);
            }
            if window.as_ref().is_none_or(|w| w.addr() != at) {
                return Err(RsmError::MapFailed);
            }
        }
        if !im.perm.contains(perm) {
            return Err(RsmError::BadPerms);
        }
        // Only segments of this node can be mapped: a remote segment has no window here.
        let (Some(window), Some(ex)) = (window, ex) else {
            return Err(RsmError::MapFailed);
        };
        let snap = Snapshot {
            import: (i, g),
            export: im.export,
            epoch: ex.epoch,
            addr: window.addr(),
        };
        Ok((window, snap))
    }

    /// `true` if the import and its segment are still as `snap` saw them (not unmapped,
    /// disconnected, aborted or rebound) and the import has no mapping.
    fn map_unchanged(st: &State<P, L, E, I, F>, snap: Snapshot, offset: usize) -> bool {
        let Some(im) = st.imports.get(snap.import.0, snap.import.1) else {
            return false;
        };
        if im.closing || im.map.is_some() || im.export != snap.export {
            return false;
        }
        st.connected_export(im)
            .is_some_and(|ex| ex.epoch == snap.epoch && ex.region.addr() + offset == snap.addr)
    }

    /// Map `length` bytes at `offset` of an import segment for direct access
    /// (`rsm_memseg_import_map`); returns the window: a [`Region`] over the exported pages
    /// themselves, which the caller reads and writes through the platform's
    /// [`Memory::read`](rsm_hal::Memory::read) and [`Memory::write`](rsm_hal::Memory::write)
    /// (or, on the host, through the region's raw pointer).
    ///
    /// Checks, in this order (spec §4.7; the first failing check wins):
    /// 1. NULL, stale, disconnected or wrong-kind handle → `RSMERR_BAD_SEG_HNDL`;
    /// 2. already mapped (only one mapping per handle) → `RSMERR_SEG_ALREADY_MAPPED`;
    /// 3. the connection was force-disconnected (the exporter unpublished, destroyed or
    ///    rebound) → `RSMERR_CONN_ABORTED` (illumos: `mmap` fails with `ENODEV`);
    /// 4. `perm` numerically above 0600 or with bits other than READ/WRITE →
    ///    `RSMERR_BAD_PERMS`;
    /// 5. `length` 0 → `RSMERR_BAD_LENGTH`;
    /// 6. `offset` negative, or `offset + length` beyond the segment → `RSMERR_BAD_LENGTH`;
    /// 7. `offset` not a multiple of 4096 → `RSMERR_BAD_MEM_ALIGNMENT`;
    /// 8. [`MapAttr::Fixed`] with `fixed_addr` `None` or not page-aligned →
    ///    `RSMERR_BAD_MEM_ALIGNMENT`;
    /// 9. [`MapAttr::Fixed`] at any address other than the window's → `RSMERR_MAP_FAILED`:
    ///    nothing is remapped here (no MMU work), the window *is* the exported memory, so a
    ///    fixed mapping succeeds only at the address a first mapping returned;
    /// 10. `perm` beyond the permission the import was connected with → `RSMERR_BAD_PERMS`
    ///     (the kernel agent refuses protections beyond the granted mode: `EACCES`);
    /// 11. a segment of another node → `RSMERR_MAP_FAILED` (only same-node segments can be
    ///     mapped; remote memory is reached with put/get and putv/getv);
    /// 12. pinning the window fails → `RSMERR_INSUFFICIENT_MEM` (quota, out of memory) or
    ///     `RSMERR_BAD_ADDR` (the exporter's memory is gone).
    ///
    /// `fixed_addr` is read only for [`MapAttr::Fixed`]; [`MapAttr::Reserved`] is ignored and
    /// behaves like [`MapAttr::None`] (spec §2.6). `perm` 0 (`RSM_PERM_NONE`) is accepted, as
    /// illumos maps with `PROT_NONE`.
    ///
    /// # Protection and lifetime
    /// `perm` is recorded, but a HAL region carries no page protection (there is no MMU
    /// remapping on the targets), so a READ-only mapping is the caller's promise not to store
    /// through it. The mapping pins the window itself: the pages stay pinned until
    /// [`Rsm::import_unmap`], even if the exporter destroys, unpublishes or rebinds the
    /// segment meanwhile. Such an import is force-disconnected — accesses through the handle
    /// return `RSMERR_CONN_ABORTED` — but the window never dangles: it keeps showing the old
    /// pages (where illumos would redirect the mapping to a "trash" page). The exporter must
    /// not free that memory until the importer unmapped. A mapped import cannot be
    /// disconnected (`RSMERR_SEG_STILL_MAPPED`); unmap it first.
    #[doc(alias = "rsm_memseg_import_map")]
    pub fn import_map(
        &self,
        seg: ImportHandle,
        attr: MapAttr,
        perm: Permission,
        offset: i64,
        length: usize,
        fixed_addr: Option<usize>,
    ) -> RsmResult<P::Region> {
        let req = MapRequest {
            attr,
            perm,
            offset,
            length,
            fixed_addr,
        };
        loop {
            let (window, snap) = {
                let st = self.state.lock();
                self.map_checks(&st, seg, req)?
            };
            // `map_checks` accepted the offset, so it is a non-negative usize.
            let off = usize::try_from(offset).map_err(|_| RsmError::BadLength)?;
            // Pin without the table lock (pinning may be a system call); re-check afterwards.
            let pinned = self.platform.pin(&window);
            let mut st = self.state.lock();
            let unchanged = Self::map_unchanged(&st, snap, off);
            match pinned {
                Ok(pin) if unchanged => {
                    if let Some(im) = st.imports.get_mut(snap.import.0, snap.import.1) {
                        im.map = Some(Mapping {
                            region: window.clone(),
                            pin,
                            perm,
                        });
                        return Ok(window);
                    }
                    drop(st);
                    self.platform.unpin(pin);
                }
                Ok(pin) => {
                    drop(st);
                    self.platform.unpin(pin);
                }
                Err(e) if unchanged => return Err(pin_error(rsm_hal::Error::kind(&e))),
                Err(_) => drop(st),
            }
            // The segment changed while we pinned (another map, a disconnect, an unpublish,
            // a rebind): decide again from the new state.
        }
    }

    /// Remove the mapping of an import segment (`rsm_memseg_import_unmap`) and release the
    /// window's pin; the segment stays connected (or force-disconnected, if it was).
    ///
    /// A force-disconnected import can, and must, still be unmapped before it is
    /// disconnected.
    ///
    /// Errors, in this order (spec §4.7): NULL, stale, disconnected or wrong-kind handle →
    /// `RSMERR_BAD_SEG_HNDL`; not mapped → `RSMERR_SEG_NOT_MAPPED`.
    #[doc(alias = "rsm_memseg_import_unmap")]
    pub fn import_unmap(&self, seg: ImportHandle) -> RsmResult<()> {
        let mapping = {
            let mut st = self.state.lock();
            let (i, g) = self.import_slot(&st, seg)?;
            let im = st.imports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
            im.map.take().ok_or(RsmError::SegNotMapped)?
        };
        self.platform.unpin(mapping.pin);
        Ok(())
    }

    /// The import's explicit mapping, if mapped: the window [`Rsm::import_map`] returned and
    /// the permission it was mapped with (for diagnostics and tests).
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL`.
    pub fn import_mapping(&self, seg: ImportHandle) -> RsmResult<Option<(P::Region, Permission)>> {
        let st = self.state.lock();
        let (i, g) = self.import_slot(&st, seg)?;
        Ok(st
            .imports
            .get(i, g)
            .and_then(|im| im.map.as_ref())
            .map(|m| (m.region.clone(), m.perm)))
    }
}
