//! The common fixture of the controller, local-handle, export and import checks: a node
//! with one published segment connected on the same node.

use crate::{pat, read_bytes, region_bytes, Bytes, Fail, Harness, Must, Node, Reg};
use rsm_core::capi;
use rsm_core::{
    AccessEntry, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec, LocalMemHandle,
    Permission, ScatGath, SegmentId,
};
use rsm_hal::Region;

/// A node with one published, connected segment: the common set-up of the import and putv
/// checks.
pub(crate) struct Fx<'h, H: Harness> {
    pub(crate) h: &'h H,
    pub(crate) n: Node<H>,
    pub(crate) ctrl: ControllerHandle,
    pub(crate) mem: Reg<H>,
    pub(crate) seg: ExportHandle,
    pub(crate) id: SegmentId,
    pub(crate) imp: ImportHandle,
}

impl<'h, H: Harness> Fx<'h, H> {
    /// Loopback controller, `seg_len` bytes exported with `RSM_ALLOW_REBIND`, published with
    /// an automatic id and no ACL, connected with `p`.
    pub(crate) fn new(h: &'h H, seg_len: usize, p: Permission) -> Result<Self, Fail> {
        Fx::with(h, crate::node(h), None, seg_len, &[], p)
    }

    pub(crate) fn with(
        h: &'h H,
        n: Node<H>,
        ctrl_name: Option<&str>,
        seg_len: usize,
        acl: &[AccessEntry],
        p: Permission,
    ) -> Result<Self, Fail> {
        let ctrl = n.get_controller(ctrl_name)?;
        let mem = h.alloc(n.platform(), seg_len)?;
        let seg = n.export_create(ctrl, mem.clone(), CreateFlags::ALLOW_REBIND)?;
        let id = n.export_publish(seg, 0, acl)?;
        let imp = n.import_connect(ctrl, n.node_id(), id, p)?;
        Ok(Fx {
            h,
            n,
            ctrl,
            mem,
            seg,
            id,
            imp,
        })
    }

    /// A local memory handle over a fresh buffer of `len` bytes filled with `pat(len, seed)`.
    pub(crate) fn local(&self, len: usize, seed: u8) -> Result<(Reg<H>, LocalMemHandle), Fail> {
        let r = self.va(len, seed)?;
        let lh = self.n.create_localmemory_handle(self.ctrl, r.clone())?;
        Ok((r, lh))
    }

    /// A plain (VA) buffer of `len` bytes filled with `pat(len, seed)`.
    pub(crate) fn va(&self, len: usize, seed: u8) -> Result<Reg<H>, Fail> {
        crate::alloc_pat(self.h, self.n.platform(), len, seed)
    }

    pub(crate) fn seg_bytes(&self) -> Result<Bytes, Fail> {
        region_bytes(self.h, self.n.platform(), &self.mem)
    }

    /// The bytes `off..off + len` of the segment's memory.
    pub(crate) fn seg_read(&self, off: usize, len: usize) -> Result<Bytes, Fail> {
        read_bytes(self.h, self.n.platform(), &self.mem, off, len)
    }

    pub(crate) fn bytes(&self, r: &Reg<H>) -> Result<Bytes, Fail> {
        region_bytes(self.h, self.n.platform(), r)
    }

    pub(crate) fn fill_seg(&self, seed: u8) -> Result<(), Fail> {
        self.h
            .write(self.n.platform(), &self.mem, 0, &pat(self.mem.len(), seed))
    }

    pub(crate) fn events(&self) -> Result<u32, Fail> {
        Ok(self.n.export_pending_events(self.seg)?)
    }

    /// putv of `iov` with the residual preset to 999; returns (code, residual).
    pub(crate) fn putv(&self, imp: ImportHandle, iov: &[IoVec<'_, Reg<H>>]) -> (i32, u64) {
        let mut sg = ScatGath::new(imp, iov);
        sg.io_residual_count = 999;
        let code = capi::rsm_memseg_import_putv(&self.n, Some(&mut sg));
        (code, sg.io_residual_count)
    }

    /// getv of `iov` with the residual preset to 999; returns (code, residual).
    pub(crate) fn getv(&self, imp: ImportHandle, iov: &[IoVec<'_, Reg<H>>]) -> (i32, u64) {
        let mut sg = ScatGath::new(imp, iov);
        sg.io_residual_count = 999;
        let code = capi::rsm_memseg_import_getv(&self.n, Some(&mut sg));
        (code, sg.io_residual_count)
    }

    /// Distinct pages pinned now on the fixture's platform ([`crate::Needs::PIN_COUNT`]).
    #[track_caller]
    pub(crate) fn pinned(&self) -> Result<usize, Fail> {
        self.h.pinned_pages(self.n.platform()).must()
    }
}
