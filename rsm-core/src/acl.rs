//! A published segment's access list in its compact form (spec §4.3, §9.16). A leaf of the
//! module graph: the node's export records hold one, the receive path asks it.

use crate::types::{AccessEntry, NodeId, Permission, RSM_MAX_NODE};

/// A published segment's access list, kept as what it decides (spec §4.3, §9.16): for each
/// node id 0..=64 whether an entry names it and the owner read/write bits of the first entry
/// that does — 66 bytes instead of 64 inline entries of 8 (the list is never read back, only
/// asked what it grants).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Acl {
    /// No entries: every node gets read and write.
    open: bool,
    /// Per node id: 0 = not listed, else [`Acl::LISTED`] | [`Acl::READ`] | [`Acl::WRITE`].
    perm: [u8; RSM_MAX_NODE as usize + 1],
}

impl Acl {
    const LISTED: u8 = 0x80;
    const READ: u8 = 0x01;
    const WRITE: u8 = 0x02;

    /// The decisions of a validated list (nodes ≤ [`RSM_MAX_NODE`]): the first entry for a
    /// node wins.
    pub(crate) fn from_entries(acl: &[AccessEntry]) -> Acl {
        let mut a = Acl {
            open: acl.is_empty(),
            perm: [0; RSM_MAX_NODE as usize + 1],
        };
        for e in acl {
            if let Some(p) = usize::try_from(e.ae_node)
                .ok()
                .and_then(|n| a.perm.get_mut(n))
            {
                if *p == 0 {
                    let bits = Permission::from_bits_truncate(e.ae_permission);
                    *p = Self::LISTED
                        | if bits.contains(Permission::READ) {
                            Self::READ
                        } else {
                            0
                        }
                        | if bits.contains(Permission::WRITE) {
                            Self::WRITE
                        } else {
                            0
                        };
                }
            }
        }
        a
    }

    /// The permission granted to `node` (owner digit; spec §9.16), or `None` if the list
    /// excludes it. With an empty list every node gets read and write; with duplicate
    /// entries for a node the first one wins.
    pub(crate) fn granted(&self, node: NodeId) -> Option<Permission> {
        if self.open {
            return Some(Permission::RDWR);
        }
        let p = *self.perm.get(usize::try_from(node).ok()?)?;
        if p & Self::LISTED == 0 {
            return None;
        }
        let mut g = Permission::empty();
        if p & Self::READ != 0 {
            g |= Permission::READ;
        }
        if p & Self::WRITE != 0 {
            g |= Permission::WRITE;
        }
        Some(g)
    }
}

/// The permission `acl` (`None`: not published with one — every node) grants `node`.
pub(crate) fn granted(acl: Option<&Acl>, node: NodeId) -> Option<Permission> {
    match acl {
        Some(a) => a.granted(node),
        None => Some(Permission::RDWR),
    }
}
