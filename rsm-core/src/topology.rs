//! Interconnect topology (spec §4.2, §3.6, §9.23): which controllers this node has and which
//! remote controllers each one reaches.
//!
//! illumos returns one heap block with internal pointers (`rsm_topology_t`). rsm-rs has no
//! heap, so [`Rsm::get_interconnect_topology`] returns an owned, heap-free snapshot whose
//! capacities the embedder chooses: `C` local controllers and `R` remote controllers per
//! local controller. [`Rsm::for_each_remote_controller`] walks the same data with no
//! capacity at all.
//!
//! # Sizes
//! A [`RemoteController`] is 40 bytes on 64-bit targets, a [`ControllerTopology<R>`] about
//! `32 + 40·R` bytes and a [`Topology<C, R>`] about `16 + C·(32 + 40·R)` bytes. The defaults
//! (`C` = 4, `R` = 64) make about 10.4 KiB — a snapshot large enough for a full 64-node
//! cluster on four controllers. The C maxima of §3.6 (64 controllers of 64 remotes with
//! 256-byte names, ≈ 580 KB) are never built: names are `&'static str`, and an embedder with
//! a small stack picks smaller `C`/`R` or uses the visitor.
//!
//! # What is listed
//! As in illumos, the `loopback` controller is **not** listed. Every node lists its network
//! controller `rsmnet0`, whose hardware address is the node's MAC 52:54:00:52:53:&lt;id&gt;
//! (DESIGN §4a; see [`node_mac`] and [`mac_to_u64`]), and under it one
//! [`RemoteController`] per peer node the node knows, each in state
//! [`RSM_CONNECTION_ACTIVE`]. A single node (or one whose network engine has not yet heard
//! from any peer) lists `rsmnet0` with no remote controllers.

use crate::error::{RsmError, RsmResult};
use crate::node::Rsm;
use crate::types::{NodeId, RSM_CONNECTION_ACTIVE};
use rsm_hal::Platform;

/// The name of every node's network controller (DESIGN §4a).
pub(crate) const NET_CONTROLLER: &str = "rsmnet0";

/// The controllers the topology lists: every controller but `loopback` (spec §3.6).
const LISTED_CONTROLLERS: [&str; 1] = [NET_CONTROLLER];

pub use crate::wire::node_mac;

/// A MAC address as an `rsm_addr_t` (`u64`): the six bytes in network order in the low 48
/// bits, so `52:54:00:52:53:05` is `0x5254_0052_5305`.
#[must_use]
pub const fn mac_to_u64(mac: [u8; 6]) -> u64 {
    ((mac[0] as u64) << 40)
        | ((mac[1] as u64) << 32)
        | ((mac[2] as u64) << 24)
        | ((mac[3] as u64) << 16)
        | ((mac[4] as u64) << 8)
        | mac[5] as u64
}

/// One remote controller reachable from a local controller (`rsm_remote_cntlr_t`, §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteController {
    /// The remote node's id.
    pub remote_nodeid: NodeId,
    /// The remote controller's name (`<type><unit>`, e.g. `rsmnet0`).
    pub remote_cntlrname: &'static str,
    /// The remote controller's hardware address (the remote node's MAC, see [`mac_to_u64`]).
    pub remote_hwaddr: u64,
    /// The path state; only [`RSM_CONNECTION_ACTIVE`] (3) may be used.
    pub connection_state: u32,
}

/// One local controller and the remote controllers it reaches (`rsm_connections_t`, §3.6);
/// room for `R` remote controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerTopology<const R: usize> {
    /// The local controller's name (`<type><unit>`, e.g. `rsmnet0`).
    pub cntlr_name: &'static str,
    /// The local controller's hardware address (this node's MAC, see [`mac_to_u64`]).
    pub local_hwaddr: u64,
    /// The remote controllers this controller reaches (`remote_cntlr_count` = its length).
    pub remote: heapless::Vec<RemoteController, R>,
}

/// A snapshot of the interconnect (`rsm_topology_t`, §3.6): room for `C` local controllers of
/// `R` remote controllers each (default 4 × 64, about 10.4 KiB; see the module docs).
/// `Topology::default()` is an empty snapshot of node 0.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology<const C: usize = 4, const R: usize = 64> {
    /// This node's id.
    pub local_nodeid: NodeId,
    /// The local controllers except `loopback` (`local_cntlr_count` = its length).
    pub controllers: heapless::Vec<ControllerTopology<R>, C>,
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// The peer nodes this node knows, excluding itself: every node the wire engine heard a
    /// hello (or any valid frame) from and has not declared unreachable
    /// ([`Rsm::net_peers`]); none before [`Rsm::net_start`].
    pub(crate) fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.net_peers().into_iter()
    }

    /// The hardware address of this node's network controllers (its MAC, as a `u64`).
    fn local_hwaddr(&self) -> u64 {
        mac_to_u64(node_mac(self.config.node_id))
    }

    /// The remote controller entry for peer `node`.
    fn remote_controller(node: NodeId) -> RemoteController {
        RemoteController {
            remote_nodeid: node,
            remote_cntlrname: NET_CONTROLLER,
            remote_hwaddr: mac_to_u64(node_mac(node)),
            connection_state: RSM_CONNECTION_ACTIVE,
        }
    }

    /// A snapshot of the interconnect (`rsm_get_interconnect_topology`): this node's id and
    /// every controller except `loopback`, each with the remote controllers it reaches.
    ///
    /// Every node lists `rsmnet0` with `local_hwaddr` = its MAC 52:54:00:52:53:&lt;id&gt; (as
    /// [`mac_to_u64`] encodes it) and one entry per known peer, in state
    /// [`RSM_CONNECTION_ACTIVE`]; a single node lists no peers. The capacities `C` and `R`
    /// are the caller's (`let t: Topology = rsm.get_interconnect_topology()?` takes the
    /// defaults); see the [module docs](crate::topology) for the sizes.
    ///
    /// Errors: `RSMERR_INSUFFICIENT_MEM` when the snapshot does not fit `C` controllers or
    /// `R` remote controllers per controller (the analogue of illumos' failed allocation).
    /// The C layer adds `RSMERR_BAD_TOPOLOGY_PTR` for a NULL out-pointer.
    #[doc(alias = "rsm_get_interconnect_topology")]
    pub fn get_interconnect_topology<const C: usize, const R: usize>(
        &self,
    ) -> RsmResult<Topology<C, R>> {
        let mut topology = Topology {
            local_nodeid: self.config.node_id,
            controllers: heapless::Vec::new(),
        };
        for name in LISTED_CONTROLLERS {
            let mut ctrl = ControllerTopology {
                cntlr_name: name,
                local_hwaddr: self.local_hwaddr(),
                remote: heapless::Vec::new(),
            };
            for peer in self.peers() {
                ctrl.remote
                    .push(Self::remote_controller(peer))
                    .map_err(|_| RsmError::InsufficientMem)?;
            }
            topology
                .controllers
                .push(ctrl)
                .map_err(|_| RsmError::InsufficientMem)?;
        }
        Ok(topology)
    }

    /// Call `f(local_controller_name, remote)` for every remote controller of the topology,
    /// in the order [`Rsm::get_interconnect_topology`] lists them — the same data with no
    /// capacity limit and no snapshot on the stack. The local controllers themselves, with their
    /// hardware address, are `rsmnet0` and [`node_mac`] of [`Rsm::node_id`].
    pub fn for_each_remote_controller(&self, mut f: impl FnMut(&'static str, RemoteController)) {
        for name in LISTED_CONTROLLERS {
            for peer in self.peers() {
                f(name, Self::remote_controller(peer));
            }
        }
    }

    /// Release a topology snapshot (`rsm_free_interconnect_topology`). The snapshot owns no
    /// heap memory, so this only drops it; it exists for code ported from C.
    #[doc(alias = "rsm_free_interconnect_topology")]
    pub fn free_interconnect_topology<const C: usize, const R: usize>(
        &self,
        topology: Topology<C, R>,
    ) {
        drop(topology);
    }
}
