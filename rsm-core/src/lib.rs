//! # rsm-core — the RSMAPI without an operating system
//!
//! The Solaris/illumos Remote Shared Memory API (`librsm`, spec in `shared/rsmapi/`) as a
//! `#![no_std]`, heap-free `#![forbid(unsafe_code)]` library: generation-tagged handles over
//! fixed-capacity tables behind a spin lock, validation with the exact `RSMERR_*` semantics and
//! illumos check order, and a scatter-gather engine for `putv`/`getv`.
//!
//! Everything a target provides — pinning, memory access, clock, wait/wake — comes through the
//! traits of [`rsm_hal`]; one [`Rsm`] instance per node owns its tables and its platform.
//!
//! ```
//! use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, ScatGath};
//! use rsm_hal::fake::FakePlatform;
//!
//! let node: Rsm<FakePlatform> = Rsm::new(FakePlatform::new(), Config::default());
//! let ctrl = node.get_controller(None)?; // loopback
//! // Export and publish one page, and connect to it (same node).
//! let page = node.platform().alloc(4096);
//! let seg = node.export_create(ctrl, page.clone(), CreateFlags::empty())?;
//! let id = node.export_publish(seg, 0, &[])?;
//! let imp = node.import_connect(ctrl, node.node_id(), id, Permission::RDWR)?;
//! // Pin a local buffer and put it into the segment with a scatter-gather vector.
//! let buf = node.platform().alloc(100);
//! node.platform().write(&buf, 0, b"hello");
//! let local = node.create_localmemory_handle(ctrl, buf)?;
//! let iov = [IoVec::handle(local, 0, 64, 5)];
//! let mut sg = ScatGath::new(imp, &iov);
//! node.putv(&mut sg)?;
//! assert_eq!(sg.io_residual_count, 0);
//! assert_eq!(node.platform().read(&page, 64, 5), b"hello");
//! // Free everything.
//! node.free_localmemory_handle(ctrl, local)?;
//! node.import_disconnect(imp)?;
//! node.export_destroy(seg)?;
//! node.release_controller(ctrl)?;
//! assert_eq!(node.slots_in_use(), (0, 0, 0));
//! # Ok::<(), rsm_core::RsmError>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

mod access;
mod acl;
pub mod barrier;
pub mod capi;
pub mod error;
pub mod events;
mod handle;
pub mod lazy;
mod lock;
mod map;
mod net;
mod node;
mod op;
mod ops;
pub mod proto;
pub mod segid;
mod segment;
pub mod sg;
mod table;
pub mod topology;
pub mod types;
pub mod wire;

pub use barrier::Barrier;
pub use error::{RsmError, RsmResult, RSM_SUCCESS};
pub use events::{PollFd, PollSource, POLLHUP, POLLIN, POLLNVAL, POLLRDNORM};
pub use handle::{ControllerHandle, ExportHandle, ImportHandle, LocalMemHandle, SegmentRef};
pub use lazy::LazyRsm;
pub use lock::set_contention_hook;
pub use node::{Config, MemoryUse, Rsm, MAX_PENDING_OPS};
pub use op::{Completion, OpId};
pub use segment::ImportInfo;
pub use sg::{Direction, IoVec, LocalRef, ScatGath};
pub use topology::{mac_to_u64, node_mac, ControllerTopology, RemoteController, Topology};
pub use types::*;
