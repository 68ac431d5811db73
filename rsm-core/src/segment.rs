//! Export segments (spec §4.3) and import connections to segments of this node (spec §4.4).
//!
//! Identity model (spec §9.16): there are no uids on a unikernel, so every importer is treated
//! as the *owner* class — what a Solaris cluster running one uid everywhere sees. The owner
//! digit of the importing node's ACL permission decides; with no ACL every node gets read and
//! write. There is one creating "process" per [`Rsm`] instance: a handle of another instance is
//! simply not a valid handle here (`RSMERR_BAD_SEG_HNDL`), so `RSMERR_NOT_CREATOR` never occurs.

use crate::acl::{granted, Acl};
use crate::error::{RsmError, RsmResult};
use crate::handle::{ControllerHandle, ExportHandle, ImportHandle, Kind};
use crate::node::{pin_error, Export, Import, Publication, Rsm, State, LOOPBACK};
use crate::types::{
    AccessEntry, CreateFlags, NodeId, Permission, SegmentId, FIRST_USER_SEGID, LAST_USER_SEGID,
    MAX_NODES, PAGE_SIZE, RSM_MAX_ACL_ENTRIES, RSM_MAX_ACL_PERMISSION, RSM_MAX_NODE,
    RSM_USER_APP_ID_BASE,
};
use rsm_hal::{Platform, Region};

/// Validate an access list (spec §4.3, §9.16): at most 64 entries, nodes ≤ 64, permissions
/// ≤ 0666; on the loopback controller at most one entry, naming the local node.
pub(crate) fn check_acl(acl: &[AccessEntry], ctrl: u8, local: NodeId) -> RsmResult<Acl> {
    let bad = acl.len() > RSM_MAX_ACL_ENTRIES
        || acl
            .iter()
            .any(|e| e.ae_node > RSM_MAX_NODE || e.ae_permission > RSM_MAX_ACL_PERMISSION)
        || (ctrl == LOOPBACK && (acl.len() > 1 || acl.iter().any(|e| e.ae_node != local)));
    if bad {
        return Err(RsmError::BadAcl);
    }
    Ok(Acl::from_entries(acl))
}

/// What an import handle is connected to (see [`Rsm::import_info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportInfo {
    /// The exporting node.
    pub node: NodeId,
    /// The segment id on that node.
    pub segment_id: SegmentId,
    /// The segment's length in bytes.
    pub size: usize,
    /// The permission asked for (and granted) at connect.
    pub perm: Permission,
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// The slot of a live export handle, else `RSMERR_BAD_SEG_HNDL`.
    pub(crate) fn export_slot(
        &self,
        st: &State<P, L, E, I, F>,
        h: ExportHandle,
    ) -> RsmResult<(u16, u32)> {
        let (i, g) = self
            .parts(h.into_raw(), Kind::Export)
            .ok_or(RsmError::BadSegHndl)?;
        match st.exports.get(i, g) {
            Some(e) if !e.dying => Ok((i, g)),
            _ => Err(RsmError::BadSegHndl),
        }
    }

    /// The slot of a live import handle, else `RSMERR_BAD_SEG_HNDL`.
    pub(crate) fn import_slot(
        &self,
        st: &State<P, L, E, I, F>,
        h: ImportHandle,
    ) -> RsmResult<(u16, u32)> {
        let (i, g) = self
            .parts(h.into_raw(), Kind::Import)
            .ok_or(RsmError::BadSegHndl)?;
        match st.imports.get(i, g) {
            Some(im) if !im.closing => Ok((i, g)),
            _ => Err(RsmError::BadSegHndl),
        }
    }

    /// Wait until no transfer uses export slot (i, g) (or the slot is gone).
    fn drain_export(&self, i: u16, g: u32) {
        self.wait_for(|st| match st.exports.get(i, g) {
            Some(e) if e.busy > 0 => None,
            _ => Some(()),
        });
    }

    /// Create an export segment over `region` and pin its pages.
    ///
    /// Checks in illumos order (spec §4.3): controller (`RSMERR_BAD_CTLR_HNDL`); NULL address
    /// (`RSMERR_BAD_ADDR`); length 0 (`RSMERR_BAD_LENGTH`); address or length not a multiple of
    /// 4096 (`RSMERR_BAD_MEM_ALIGNMENT`); longer than `attr_max_export_segment_size`
    /// (`RSMERR_BAD_LENGTH`); no free segment slot (`RSMERR_INSUFFICIENT_RESOURCES`); pinning
    /// fails or the quota is exceeded (`RSMERR_INSUFFICIENT_MEM`; unmapped memory
    /// `RSMERR_BAD_ADDR`).
    ///
    /// `flags`: [`CreateFlags::ALLOW_REBIND`] permits [`Rsm::export_rebind`];
    /// [`CreateFlags::CREATE_SEG_DONTWAIT`] is accepted — this implementation never blocks for
    /// resources, it fails at once. Other bits are ignored (spec §9.25).
    #[doc(alias = "rsm_memseg_export_create")]
    pub fn export_create(
        &self,
        ctrl: ControllerHandle,
        region: P::Region,
        flags: CreateFlags,
    ) -> RsmResult<ExportHandle> {
        let ctrl = self.ctrl_index(ctrl)?;
        if region.addr() == 0 {
            return Err(RsmError::BadAddr);
        }
        if region.is_empty() {
            return Err(RsmError::BadLength);
        }
        if region.addr() % PAGE_SIZE != 0 || region.len() % PAGE_SIZE != 0 {
            return Err(RsmError::BadMemAlignment);
        }
        if region.len() > self.config.max_segment_size {
            return Err(RsmError::BadLength);
        }
        if self.state.lock().exports.is_full() {
            return Err(RsmError::InsufficientResources);
        }
        let pin = self
            .platform
            .pin(&region)
            .map_err(|e| pin_error(rsm_hal::Error::kind(&e)))?;
        let slot = Export {
            ctrl,
            region,
            pin,
            flags: flags & CreateFlags::all(),
            published: None,
            epoch: 0,
            busy: 0,
            quiesced: false,
            events: 0,
            pollfds: 0,
            dying: false,
        };
        let inserted = self.state.lock().exports.insert(slot);
        match inserted {
            Ok((i, g)) => Ok(self.export_handle(i, g)),
            Err(slot) => {
                self.platform.unpin(slot.pin);
                Err(RsmError::InsufficientResources)
            }
        }
    }

    /// Destroy an export segment: unpublish it if published (every importer is force-
    /// disconnected and sees `RSMERR_CONN_ABORTED`), wait for transfers in flight, unpin, free.
    /// An importer's explicit mapping keeps its own pin on the pages until it unmaps.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL` for a NULL, stale, destroyed or wrong-kind handle;
    /// `RSMERR_POLLFD_IN_USE` while poll descriptors of the segment are held.
    #[doc(alias = "rsm_memseg_export_destroy")]
    pub fn export_destroy(&self, seg: ExportHandle) -> RsmResult<()> {
        let (i, g) = {
            let mut st = self.state.lock();
            let (i, g) = self.export_slot(&st, seg)?;
            let ex = st.exports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
            if ex.pollfds > 0 {
                return Err(RsmError::PollfdInUse);
            }
            if ex.busy == 0 && !ex.quiesced {
                let ex = st.exports.remove(i, g).ok_or(RsmError::BadSegHndl)?;
                // Its remote importers are told (forced disconnect).
                st.net.poke_all();
                self.platform.kick();
                let waiters = st.waiters > 0;
                drop(st);
                self.wake_if(waiters);
                self.platform.unpin(ex.pin);
                return Ok(());
            }
            // Transfers are in flight: abort connections now, take no new users, free once
            // they drained.
            ex.dying = true;
            ex.published = None;
            ex.epoch = ex.epoch.wrapping_add(1);
            st.net.poke_all();
            self.platform.kick();
            (i, g)
        };
        self.platform.wake();
        let ex = self.wait_for(|st| match st.exports.get(i, g) {
            Some(e) if e.busy > 0 || e.quiesced => None,
            _ => Some(st.exports.remove(i, g)),
        });
        match ex {
            Some(ex) => {
                self.platform.unpin(ex.pin);
                Ok(())
            }
            // Unreachable in practice: a dying export is invisible to other callers.
            None => Err(RsmError::BadSegHndl),
        }
    }

    /// Publish the segment under `segment_id` with access list `acl`; returns the id.
    ///
    /// `segment_id` 0 asks for an automatic id, assigned upward from 0x80000000 and skipping
    /// ids in use (spec §9.15). A given id must lie in 0x400000..=0x7FFFFFFF, else
    /// `RSMERR_RESERVED_SEGID`; an id already published on this node gives
    /// `RSMERR_SEGID_IN_USE`. An empty `acl` lets every node connect with read and write.
    ///
    /// Check order (spec §4.3): handle (`RSMERR_BAD_SEG_HNDL`), already published
    /// (`RSMERR_SEG_ALREADY_PUBLISHED`), reserved id, ACL (`RSMERR_BAD_ACL`: more than 64
    /// entries, node > 64, permission > 0666, or on loopback anything but one entry for this
    /// node), duplicate id, no automatic id left (`RSMERR_INSUFFICIENT_RESOURCES`).
    #[doc(alias = "rsm_memseg_export_publish")]
    pub fn export_publish(
        &self,
        seg: ExportHandle,
        segment_id: SegmentId,
        acl: &[AccessEntry],
    ) -> RsmResult<SegmentId> {
        let mut st = self.state.lock();
        let (i, g) = self.export_slot(&st, seg)?;
        let ctrl = {
            let ex = st.exports.get(i, g).ok_or(RsmError::BadSegHndl)?;
            if ex.published.is_some() {
                return Err(RsmError::SegAlreadyPublished);
            }
            ex.ctrl
        };
        if segment_id != 0 && !(FIRST_USER_SEGID..=LAST_USER_SEGID).contains(&segment_id) {
            return Err(RsmError::ReservedSegid);
        }
        let acl = check_acl(acl, ctrl, self.config.node_id)?;
        let in_use = |st: &State<P, L, E, I, F>, id: SegmentId| {
            st.exports
                .iter()
                .any(|(_, _, e)| e.published.as_ref().is_some_and(|p| p.segid == id))
        };
        let id = if segment_id != 0 {
            if in_use(&st, segment_id) {
                return Err(RsmError::SegidInUse);
            }
            segment_id
        } else {
            // At most E ids are in use, so E + 1 candidates always contain a free one.
            let mut found = None;
            for _ in 0..=E {
                let cand = st.next_auto_segid;
                st.next_auto_segid = cand.checked_add(1).unwrap_or(RSM_USER_APP_ID_BASE);
                if !in_use(&st, cand) {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or(RsmError::InsufficientResources)?
        };
        let ex = st.exports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
        ex.published = Some(Publication { segid: id, acl });
        Ok(id)
    }

    /// Withdraw a published segment: every import connection is force-disconnected (the
    /// importer's next access returns `RSMERR_CONN_ABORTED`); returns after transfers in flight
    /// finished. The segment can be published again.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL`; `RSMERR_SEG_NOT_PUBLISHED` if not published.
    #[doc(alias = "rsm_memseg_export_unpublish")]
    pub fn export_unpublish(&self, seg: ExportHandle) -> RsmResult<()> {
        let (i, g) = {
            let mut st = self.state.lock();
            let (i, g) = self.export_slot(&st, seg)?;
            let ex = st.exports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
            if ex.published.take().is_none() {
                return Err(RsmError::SegNotPublished);
            }
            ex.epoch = ex.epoch.wrapping_add(1);
            st.net.poke_all();
            self.platform.kick();
            (i, g)
        };
        self.platform.wake();
        self.drain_export(i, g);
        Ok(())
    }

    /// Replace the access list of a published segment. Existing connections are unaffected;
    /// new connections use the new list.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL`; `RSMERR_SEG_NOT_PUBLISHED`; `RSMERR_BAD_ACL` (as for
    /// publish; the old list stays).
    #[doc(alias = "rsm_memseg_export_republish")]
    pub fn export_republish(&self, seg: ExportHandle, acl: &[AccessEntry]) -> RsmResult<()> {
        let mut st = self.state.lock();
        let (i, g) = self.export_slot(&st, seg)?;
        let ex = st.exports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
        let ctrl = ex.ctrl;
        let Some(publication) = ex.published.as_mut() else {
            return Err(RsmError::SegNotPublished);
        };
        publication.acl = check_acl(acl, ctrl, self.config.node_id)?;
        Ok(())
    }

    /// Replace the segment's backing memory with `region` (same length), transparently to
    /// importers. Transfers in flight finish on the old pages first; transfers that start
    /// during the swap wait for it. The old pages are unpinned. An importer that has the
    /// segment *mapped* cannot follow the move: it is force-disconnected (its next access or
    /// barrier close returns `RSMERR_CONN_ABORTED`) and its window keeps the old pages pinned
    /// until it unmaps.
    ///
    /// Check order (spec §4.3, §9.17): handle (`RSMERR_BAD_SEG_HNDL`), NULL address
    /// (`RSMERR_BAD_ADDR`), created without [`CreateFlags::ALLOW_REBIND`]
    /// (`RSMERR_REBIND_NOT_ALLOWED`), length differs from the original (`RSMERR_BAD_LENGTH`),
    /// same address as now (success, nothing done), address not page-aligned
    /// (`RSMERR_BAD_ADDR`), pinning errors as for create. (C's unused `off` argument is not
    /// taken.)
    #[doc(alias = "rsm_memseg_export_rebind")]
    pub fn export_rebind(&self, seg: ExportHandle, region: P::Region) -> RsmResult<()> {
        let (i, g) = {
            let st = self.state.lock();
            let (i, g) = self.export_slot(&st, seg)?;
            let ex = st.exports.get(i, g).ok_or(RsmError::BadSegHndl)?;
            if region.addr() == 0 {
                return Err(RsmError::BadAddr);
            }
            if !ex.flags.contains(CreateFlags::ALLOW_REBIND) {
                return Err(RsmError::RebindNotAllowed);
            }
            if region.len() != ex.region.len() {
                return Err(RsmError::BadLength);
            }
            if region.addr() == ex.region.addr() {
                return Ok(());
            }
            if region.addr() % PAGE_SIZE != 0 {
                return Err(RsmError::BadAddr);
            }
            (i, g)
        };
        let pin = self
            .platform
            .pin(&region)
            .map_err(|e| pin_error(rsm_hal::Error::kind(&e)))?;
        // Quiesce: stop new transfers (one rebind at a time), wait for running ones, swap.
        let quiesced = self.wait_for(|st| match st.exports.get_mut(i, g) {
            None => Some(false),
            Some(e) if e.quiesced => None,
            Some(e) => {
                e.quiesced = true;
                Some(true)
            }
        });
        let mut new = Some((region, pin));
        let old_pin = if quiesced {
            self.wait_for(|st| match st.exports.get_mut(i, g) {
                None => Some(None),
                Some(e) if e.busy > 0 => None,
                Some(e) => {
                    let (r, p) = new.take()?;
                    e.quiesced = false;
                    e.region = r;
                    let old = core::mem::replace(&mut e.pin, p);
                    // A mapping cannot follow the new pages: its importer is force-disconnected
                    // (its window keeps the old pages pinned until it unmaps; spec §4.7).
                    for (_, _, im) in st.imports.iter_mut() {
                        if im.export == (i, g) && im.map.is_some() {
                            im.aborted = true;
                        }
                    }
                    Some(Some(old))
                }
            })
        } else {
            None
        };
        self.platform.wake();
        match (old_pin, new) {
            (Some(old), _) => {
                self.platform.unpin(old);
                Ok(())
            }
            (None, Some((_, p))) => {
                self.platform.unpin(p);
                Err(RsmError::BadSegHndl)
            }
            (None, None) => Err(RsmError::BadSegHndl),
        }
    }

    /// Connect to segment `segment_id` of node `node`, asking for `perm` (READ, WRITE or both).
    ///
    /// Check order (spec §4.4, §9.11): controller (`RSMERR_BAD_CTLR_HNDL`); `perm` with bits
    /// outside 0600 (`RSMERR_PERM_DENIED`); no free import slot
    /// (`RSMERR_INSUFFICIENT_RESOURCES`); loopback controller and another node
    /// (`RSMERR_CTLR_NOT_PRESENT`); node ≥ 64 or a node this instance has no path to
    /// (`RSMERR_REMOTE_NODE_UNREACHABLE`); no such published segment
    /// (`RSMERR_SEG_NOT_PUBLISHED`); the ACL excludes this node
    /// (`RSMERR_SEG_NOT_PUBLISHED_TO_NODE`); `perm` not within the granted owner digit
    /// (`RSMERR_PERM_DENIED`). A `perm` of 0 connects with no access (illumos accepts it);
    /// every put/get through it is then `RSMERR_PERM_DENIED`.
    ///
    /// Another node, through `rsmnet0`: after the same local checks, the request goes to the
    /// exporter (spec §6.3), which decides `RSMERR_SEG_NOT_PUBLISHED`,
    /// `RSMERR_SEG_NOT_PUBLISHED_TO_NODE` or `RSMERR_PERM_DENIED` from its ACL; without
    /// [`Rsm::net_start`], or without a reply within 5 s (retransmitting meanwhile), the result
    /// is `RSMERR_REMOTE_NODE_UNREACHABLE`. The engine must be driven by another thread
    /// (see [`crate::proto`]); [`Rsm::start_import_connect`] is the non-blocking form.
    #[doc(alias = "rsm_memseg_import_connect")]
    pub fn import_connect(
        &self,
        ctrl: ControllerHandle,
        node: NodeId,
        segment_id: SegmentId,
        perm: Permission,
    ) -> RsmResult<ImportHandle> {
        let ctrl_ix = self.ctrl_index(ctrl)?;
        if node != self.config.node_id && node < MAX_NODES && ctrl_ix != LOOPBACK {
            let op = self.start_import_connect(ctrl, node, segment_id, perm)?;
            return self.wait_connect(op);
        }
        self.import_connect_local(ctrl, node, segment_id, perm)
    }

    /// [`Rsm::import_connect`] to this node (and its errors for bad nodes and controllers).
    pub(crate) fn import_connect_local(
        &self,
        ctrl: ControllerHandle,
        node: NodeId,
        segment_id: SegmentId,
        perm: Permission,
    ) -> RsmResult<ImportHandle> {
        let mut st = self.state.lock();
        let ctrl = self.ctrl_index(ctrl)?;
        if perm.bits() & !Permission::RDWR.bits() != 0 {
            return Err(RsmError::PermDenied);
        }
        if st.imports.is_full() {
            return Err(RsmError::InsufficientResources);
        }
        let local = self.config.node_id;
        if ctrl == LOOPBACK && node != local {
            return Err(RsmError::CtlrNotPresent);
        }
        if node >= MAX_NODES || node != local {
            return Err(RsmError::RemoteNodeUnreachable);
        }
        let (ei, eg, ex) = st
            .exports
            .iter()
            .find(|(_, _, e)| e.published.as_ref().is_some_and(|p| p.segid == segment_id))
            .ok_or(RsmError::SegNotPublished)?;
        let acl = ex.published.as_ref().map(|p| &p.acl);
        let granted = granted(acl, local).ok_or(RsmError::SegNotPublishedToNode)?;
        if !granted.contains(perm) {
            return Err(RsmError::PermDenied);
        }
        let im = Import::new(node, segment_id, (ei, eg), ex.epoch, perm, ex.region.len());
        match st.imports.insert(im) {
            Ok((i, g)) => Ok(self.import_handle(i, g)),
            Err(_) => Err(RsmError::InsufficientResources),
        }
    }

    /// Disconnect and free an import handle; waits for its transfers in flight.
    ///
    /// Errors, in this order (spec §4.4): `RSMERR_BAD_SEG_HNDL` for a NULL, stale,
    /// disconnected or wrong-kind handle; `RSMERR_SEG_STILL_MAPPED` while explicitly mapped;
    /// `RSMERR_POLLFD_IN_USE` while poll descriptors of the import are held.
    #[doc(alias = "rsm_memseg_import_disconnect")]
    pub fn import_disconnect(&self, seg: ImportHandle) -> RsmResult<()> {
        let (i, g) = {
            let mut st = self.state.lock();
            let (i, g) = self.import_slot(&st, seg)?;
            let im = st.imports.get_mut(i, g).ok_or(RsmError::BadSegHndl)?;
            if im.map.is_some() {
                return Err(RsmError::SegStillMapped);
            }
            if im.pollfds > 0 {
                return Err(RsmError::PollfdInUse);
            }
            if im.busy == 0 {
                if im.remote.is_some() {
                    self.close_remote_import(&mut st, (i, g));
                } else {
                    st.imports.remove(i, g);
                }
                let waiters = st.waiters > 0;
                drop(st);
                self.wake_if(waiters);
                return Ok(());
            }
            im.closing = true;
            (i, g)
        };
        self.platform.wake();
        self.wait_for(|st| match st.imports.get(i, g) {
            Some(im) if im.busy > 0 => None,
            Some(im) if im.remote.is_some() => {
                self.close_remote_import(st, (i, g));
                Some(())
            }
            _ => {
                st.imports.remove(i, g);
                Some(())
            }
        });
        Ok(())
    }

    /// What an import handle is connected to: node, segment id, size and the permission asked
    /// for at connect.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL`.
    pub fn import_info(&self, seg: ImportHandle) -> RsmResult<ImportInfo> {
        let st = self.state.lock();
        let (i, g) = self.import_slot(&st, seg)?;
        let im = st.imports.get(i, g).ok_or(RsmError::BadSegHndl)?;
        Ok(ImportInfo {
            node: im.node,
            segment_id: im.segid,
            size: im.size,
            perm: im.perm,
        })
    }

    /// The segment id an export handle is published under, or `None` if unpublished.
    ///
    /// Errors: `RSMERR_BAD_SEG_HNDL`.
    pub fn export_segment_id(&self, seg: ExportHandle) -> RsmResult<Option<SegmentId>> {
        let st = self.state.lock();
        let (i, g) = self.export_slot(&st, seg)?;
        Ok(st
            .exports
            .get(i, g)
            .and_then(|e| e.published.as_ref().map(|p| p.segid)))
    }
}

#[cfg(test)]
mod acl_tests {
    use super::{check_acl, granted, Acl};
    use crate::node::LOOPBACK;
    use crate::types::{AccessEntry, Permission};

    fn e(node: u32, perm: u32) -> AccessEntry {
        AccessEntry {
            ae_node: node,
            ae_permission: perm,
        }
    }

    #[test]
    fn the_compact_list_decides_like_the_entries() {
        let net = 1;
        let open = check_acl(&[], net, 0).unwrap();
        assert_eq!(open.granted(63), Some(Permission::RDWR));
        let a = check_acl(&[e(3, 0o400), e(3, 0o666), e(64, 0o246), e(5, 0)], net, 0).unwrap();
        assert_eq!(a.granted(3), Some(Permission::READ), "first entry wins");
        assert_eq!(a.granted(64), Some(Permission::WRITE), "owner digit only");
        assert_eq!(
            a.granted(5),
            Some(Permission::empty()),
            "listed with nothing"
        );
        assert_eq!(a.granted(4), None, "not listed");
        assert_eq!(a.granted(65), None);
        assert_eq!(granted(None::<&Acl>, 9), Some(Permission::RDWR));
        assert!(check_acl(&[e(65, 0o600)], net, 0).is_err());
        assert!(check_acl(&[e(1, 0o600)], LOOPBACK, 0).is_err());
    }
}
