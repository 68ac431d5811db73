//! Barriers and barrier modes of import segments (spec §3.5, §4.8, §6.4, §9.1, §9.12, §9.24).
//!
//! A [`Barrier`] is the caller-allocated `rsmapi_barrier_t`: the application owns the storage
//! and passes it to [`Rsm::init_barrier`], which ties it to one import segment. Its life:
//!
//! * uninitialised --init--> closed --open--> opened --close--> closed;
//! * open on an opened barrier restarts its scope; order keeps it opened;
//! * destroy, from closed or opened --> uninitialised.
//!
//! Our choices and the illumos behaviour they follow or fix:
//! * [`Barrier::default`] is uninitialised, like zeroed C storage; every operation on it but
//!   init returns `RSMERR_BARRIER_UNINITIALIZED`, and so does every operation after
//!   [`Rsm::destroy_barrier`] (our choice: destroy makes the storage uninitialised again;
//!   illumos leaves a dangling `seg` pointer in it).
//! * The barrier initialised last on an import is the one its implicit-mode put/get use
//!   (spec §4.8, "last one wins"); destroying that barrier leaves the import without one, so
//!   implicit-mode put/get fail with `RSMERR_BARRIER_UNINITIALIZED` again (spec §9.1) until the
//!   next init. Destroying an older barrier changes nothing. Re-initialising storage that is
//!   still initialised (without destroying it first) does not touch the import it named before
//!   — as in C, where that segment keeps its barrier.
//! * The barrier type is accepted and ignored; every barrier is a segment-scope barrier
//!   (spec §9.24).
//! * close or order on a barrier that is not opened → `RSMERR_BARRIER_NOT_OPENED` (spec
//!   §9.12; illumos' generic plugin never says so, the Wildcat plugin did).
//! * Implicit-mode put/get run in their own internal barrier scope; they never change the
//!   state of the application's `Barrier` storage (the library cannot reach it).
//!
//! ## Generation numbers (spec §6.4)
//! illumos keeps a 16-bit generation number per import segment, bumped when the kernel agent
//! force-disconnects it (the exporter unpublished or destroyed the segment); open snapshots
//! it and close compares, so a disconnect inside the scope turns the close into
//! `RSMERR_CONN_ABORTED`. In rsm-rs an import remembers the exporter's epoch at connect;
//! unpublish and destroy advance the epoch, and a rebind of a segment the import had mapped
//! marks the import aborted. Neither ever reverts — republishing starts a new epoch that the
//! old connection does not share — so "the generation changed since open" is exactly "the
//! connection is aborted now", with no 16-bit wrap to alias an old value. The one difference:
//! when the abort happened *before* the open, illumos' open fails with
//! `RSMERR_BARRIER_OPEN_FAILED`; our open (like illumos' same-node open) always succeeds and
//! the close reports `RSMERR_CONN_ABORTED`, so the caller's "redo everything since the open"
//! logic sees the failure at the same place.
//!
//! Same-node stores are complete when put returns, so order and close have no flushing to
//! do; they only report aborts.

use crate::error::{RsmError, RsmResult};
use crate::handle::ImportHandle;
use crate::node::{Rsm, State};
use crate::types::{BarrierMode, BarrierType};
use rsm_hal::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Uninitialized,
    Closed,
    Opened,
}

/// Barrier storage (`rsmapi_barrier_t`, spec §3.5): allocated by the caller, filled by
/// [`Rsm::init_barrier`], opaque otherwise.
///
/// [`Barrier::default()`] is uninitialised storage (C's zeroed struct). A clone is a copy of
/// the storage: it names the same import and barrier but opens and closes independently.
#[doc(alias = "rsmapi_barrier_t")]
#[derive(Debug, Clone)]
pub struct Barrier {
    seg: ImportHandle,
    id: u32,
    phase: Phase,
}

impl Default for Barrier {
    fn default() -> Self {
        Barrier {
            seg: ImportHandle::NULL,
            id: 0,
            phase: Phase::Uninitialized,
        }
    }
}

impl Barrier {
    /// `true` once [`Rsm::init_barrier`] filled the storage, until [`Rsm::destroy_barrier`].
    pub fn is_initialized(&self) -> bool {
        self.phase != Phase::Uninitialized
    }

    /// `true` between [`Rsm::open_barrier`] and [`Rsm::close_barrier`].
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Opened
    }

    /// The import segment the barrier was initialised for, if initialised.
    pub fn segment(&self) -> Option<ImportHandle> {
        self.is_initialized().then_some(self.seg)
    }
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// The import slot of an initialised barrier: `RSMERR_BARRIER_UNINITIALIZED`, then
    /// `RSMERR_BAD_SEG_HNDL` if its import was disconnected.
    fn barrier_import(&self, st: &State<P, L, E, I, F>, b: &Barrier) -> RsmResult<(u16, u32)> {
        if b.phase == Phase::Uninitialized {
            return Err(RsmError::BarrierUninitialized);
        }
        self.import_slot(st, b.seg)
    }

    /// `true` if the barrier's import is still connected (not force-disconnected).
    fn barrier_connected(st: &State<P, L, E, I, F>, (i, g): (u16, u32)) -> bool {
        st.imports.get(i, g).is_some_and(|im| st.import_alive(im))
    }

    /// Initialise `barrier` for import segment `seg`; it becomes the barrier `seg`'s
    /// implicit-mode put/get use (the last one initialised wins) and starts closed.
    ///
    /// `ty` is ignored, whatever its value (spec §9.24). Any previous contents of `barrier`
    /// are overwritten.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL` for a NULL, stale, disconnected or wrong-kind handle (a
    /// force-disconnected import is still a valid handle: init succeeds, the barrier's close
    /// then reports `RSMERR_CONN_ABORTED`). (C layer: NULL barrier → `RSMERR_BAD_BARRIER_PTR`,
    /// checked after the handle.)
    #[doc(alias = "rsm_memseg_import_init_barrier")]
    pub fn init_barrier(
        &self,
        seg: ImportHandle,
        ty: BarrierType,
        barrier: &mut Barrier,
    ) -> RsmResult<()> {
        let _ = ty;
        let mut st = self.state.lock();
        let (i, g) = self.import_slot(&st, seg)?;
        let id = st.next_barrier_id;
        st.next_barrier_id = id.wrapping_add(1);
        st.imports
            .get_mut(i, g)
            .ok_or(RsmError::BadSegHndl)?
            .barrier = Some(id);
        *barrier = Barrier {
            seg,
            id,
            phase: Phase::Closed,
        };
        Ok(())
    }

    /// Open the barrier's error-detection scope.
    ///
    /// Check order: uninitialised (or destroyed) → `RSMERR_BARRIER_UNINITIALIZED`; its import
    /// was disconnected → `RSMERR_BAD_SEG_HNDL`. Otherwise it succeeds — also on a
    /// force-disconnected import (the close reports that; see the module docs) and on a barrier
    /// that is already open, whose scope then restarts. (C layer: NULL →
    /// `RSMERR_BAD_BARRIER_PTR` first.)
    #[doc(alias = "rsm_memseg_import_open_barrier")]
    pub fn open_barrier(&self, barrier: &mut Barrier) -> RsmResult<()> {
        let st = self.state.lock();
        self.barrier_import(&st, barrier)?;
        barrier.phase = Phase::Opened;
        Ok(())
    }

    /// Order the writes before this call relative to the writes after it, within an open scope.
    ///
    /// Check order: uninitialised → `RSMERR_BARRIER_UNINITIALIZED`; import disconnected →
    /// `RSMERR_BAD_SEG_HNDL`; not opened → `RSMERR_BARRIER_NOT_OPENED` (spec §9.12);
    /// connection force-disconnected → `RSMERR_CONN_ABORTED`. The barrier stays open.
    /// Same-node writes are complete when put returns, so there is nothing else to do.
    #[doc(alias = "rsm_memseg_import_order_barrier")]
    pub fn order_barrier(&self, barrier: &mut Barrier) -> RsmResult<()> {
        let st = self.state.lock();
        let slot = self.barrier_import(&st, barrier)?;
        if barrier.phase != Phase::Opened {
            return Err(RsmError::BarrierNotOpened);
        }
        if !Self::barrier_connected(&st, slot) {
            return Err(RsmError::ConnAborted);
        }
        Ok(())
    }

    /// Close the scope: success means every access since the open completed.
    ///
    /// Check order: uninitialised → `RSMERR_BARRIER_UNINITIALIZED`; import disconnected →
    /// `RSMERR_BAD_SEG_HNDL`; not opened → `RSMERR_BARRIER_NOT_OPENED` (spec §9.12); then the
    /// barrier is closed, and if the connection was force-disconnected (the exporter
    /// unpublished or destroyed the segment, spec §6.4) the call returns
    /// `RSMERR_CONN_ABORTED` — the caller should redo the accesses since the open, or give up.
    #[doc(alias = "rsm_memseg_import_close_barrier")]
    pub fn close_barrier(&self, barrier: &mut Barrier) -> RsmResult<()> {
        let st = self.state.lock();
        let slot = self.barrier_import(&st, barrier)?;
        if barrier.phase != Phase::Opened {
            return Err(RsmError::BarrierNotOpened);
        }
        barrier.phase = Phase::Closed;
        if !Self::barrier_connected(&st, slot) {
            return Err(RsmError::ConnAborted);
        }
        Ok(())
    }

    /// Release the barrier. If it is its import's implicit-mode barrier, the import no longer
    /// has one (implicit-mode put/get → `RSMERR_BARRIER_UNINITIALIZED` until the next init).
    ///
    /// Errors: `RSMERR_BARRIER_UNINITIALIZED` for uninitialised or already destroyed storage.
    /// Destroying a barrier whose import was disconnected succeeds. Afterwards the storage is
    /// uninitialised (our choice), so any further use returns `RSMERR_BARRIER_UNINITIALIZED`.
    #[doc(alias = "rsm_memseg_import_destroy_barrier")]
    pub fn destroy_barrier(&self, barrier: &mut Barrier) -> RsmResult<()> {
        if barrier.phase == Phase::Uninitialized {
            return Err(RsmError::BarrierUninitialized);
        }
        let mut st = self.state.lock();
        if let Ok((i, g)) = self.import_slot(&st, barrier.seg) {
            if let Some(im) = st.imports.get_mut(i, g) {
                if im.barrier == Some(barrier.id) {
                    im.barrier = None;
                }
            }
        }
        *barrier = Barrier::default();
        Ok(())
    }

    /// Set the barrier mode of `seg` for put/get: `RSM_BARRIER_MODE_EXPLICIT` (0) or
    /// `RSM_BARRIER_MODE_IMPLICIT` (1, the default of new imports). `mode` is the raw C value.
    ///
    /// In explicit mode put/get need no barrier; in implicit mode each put/get runs in its own
    /// barrier scope and needs [`Rsm::init_barrier`] first (spec §9.1).
    ///
    /// Check order: `RSMERR_BAD_SEG_HNDL` (NULL, stale, disconnected or wrong-kind), then a
    /// value other than 0 or 1 → `RSMERR_BAD_MODE`.
    #[doc(alias = "rsm_memseg_import_set_mode")]
    pub fn set_mode(&self, seg: ImportHandle, mode: u32) -> RsmResult<()> {
        let mut st = self.state.lock();
        let (i, g) = self.import_slot(&st, seg)?;
        let mode = BarrierMode::from_raw(mode).ok_or(RsmError::BadMode)?;
        st.imports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?.mode = mode;
        Ok(())
    }

    /// The barrier mode of `seg`.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL` (NULL, stale, disconnected or wrong-kind). (C layer:
    /// NULL `mode` → `RSMERR_BAD_ADDR`, after the NULL-handle check; illumos does not check
    /// it.)
    #[doc(alias = "rsm_memseg_import_get_mode")]
    pub fn get_mode(&self, seg: ImportHandle) -> RsmResult<BarrierMode> {
        let st = self.state.lock();
        let (i, g) = self.import_slot(&st, seg)?;
        Ok(st.imports.get(i, g).ok_or(RsmError::BadSegHndl)?.mode)
    }
}
