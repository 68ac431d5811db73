//! # rsm-host — the std host backend of rsm-rs
//!
//! Implements the [`rsm_hal`] traits for an ordinary Linux process:
//!
//! * [`HostPlatform`] — [`rsm_hal::Memory`] with real `mlock`/`munlock` pinning, a pin count
//!   per page (two handles on one page do not unlock each other) and an optional pinned-bytes
//!   quota that counts each page once; lock-free atomic copies (memmove semantics, race-free); [`rsm_hal::Clock`] from
//!   [`std::time::Instant`]; [`rsm_hal::Wait`] as an event count on a mutex and condition
//!   variable.
//! * [`MemRegion`] — the region token handed to the RSM layer: a pointer and a length that
//!   shares the ownership of a [`PinnedBuf`]'s memory, or names memory that lives forever
//!   ([`MemRegion::from_static`]) or that the caller vouches for (the `unsafe`
//!   [`MemRegion::from_raw_parts`]).
//! * [`PinnedBuf`] — an owned, page-aligned, zeroed buffer for export segments and local
//!   memory handles, with copying accessors that tolerate concurrent RSM transfers.
//!
//! ## Memory ownership
//! No safe code can make the RSM layer touch freed memory or race on it: the memory of a
//! [`PinnedBuf`] lives while the buffer or any [`MemRegion`] of it does, and the RSM layer
//! keeps a region clone in every export segment, local memory handle and pending transfer
//! that names it; every access to region memory — the platform's copies and the accessors —
//! is atomic (see [`PinnedBuf`]'s notes on concurrent access).
//!
//! ## Three ways to embed a node
//! **A node in a `static` over `&'static mut` buffers** (as the unikernel does, with no heap
//! for the memory it exports):
//! ```
//! use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, ScatGath};
//! use rsm_host::{HostPlatform, MemRegion};
//! use std::sync::OnceLock;
//!
//! static NODE: OnceLock<Rsm<HostPlatform>> = OnceLock::new();
//!
//! #[repr(align(4096))]
//! struct Pages([u8; 8192]);
//!
//! let node = NODE.get_or_init(|| Rsm::new(HostPlatform::without_mlock(), Config::DEFAULT));
//! // A unikernel takes its `&'static mut` from a static once at boot; here a leak makes one.
//! let pages: &'static mut Pages = Box::leak(Box::new(Pages([0; 8192])));
//! let mem = MemRegion::from_static(&mut pages.0);
//! let src = MemRegion::from_static(Box::leak(Box::new(*b"static")));
//! let ctrl = node.get_controller(None)?;
//! let seg = node.export_create(ctrl, mem.clone(), CreateFlags::empty())?;
//! node.export_publish(seg, 0x40_0100, &[])?;
//! let imp = node.import_connect(ctrl, node.node_id(), 0x40_0100, Permission::RDWR)?;
//! node.putv(&mut ScatGath::new(imp, &[IoVec::va(&src, 0, 4096, 6)]))?;
//! let mut back = [0u8; 6];
//! mem.read(4096, &mut back).expect("in range");
//! assert_eq!(&back, b"static");
//! # Ok::<(), rsm_core::RsmError>(())
//! ```
//!
//! **Raw memory from a pointer and a length** (as the C layer will pass it): the one
//! `unsafe` promise, made where the region is built.
//! ```
//! use rsm_core::{Config, Rsm};
//! use rsm_host::{HostPlatform, MemRegion};
//! use std::alloc::{alloc_zeroed, dealloc, Layout};
//!
//! let node: Box<Rsm<HostPlatform>> =
//!     Box::new(Rsm::new(HostPlatform::without_mlock(), Config::DEFAULT));
//! let ctrl = node.get_controller(None)?;
//! let layout = Layout::from_size_align(8192, 4096).unwrap();
//! // SAFETY: the layout has a non-zero size.
//! let ptr = unsafe { alloc_zeroed(layout) };
//! assert!(!ptr.is_null());
//! // SAFETY: the allocation is valid for 8192 bytes until `dealloc` below, which runs after
//! // the handle made from the region was freed; nothing else accesses it meanwhile.
//! let region = unsafe { MemRegion::from_raw_parts(ptr, 8192) };
//! let lh = node.create_localmemory_handle(ctrl, region)?;
//! node.free_localmemory_handle(ctrl, lh)?;
//! // SAFETY: allocated above with this layout; no handle names it any more.
//! unsafe { dealloc(ptr, layout) };
//! # Ok::<(), rsm_core::RsmError>(())
//! ```
//!
//! **A node shared with a driver thread** (`Rsm<HostPlatform>` is `Send + Sync`): the driver
//! runs the engine's timers while the application moves data.
//! ```
//! use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, ScatGath};
//! use rsm_hal::Clock;
//! use rsm_host::{HostPlatform, PinnedBuf};
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//!
//! let node: Arc<Rsm<HostPlatform>> =
//!     Arc::new(Rsm::new(HostPlatform::without_mlock(), Config::DEFAULT));
//! let stop = Arc::new(AtomicBool::new(false));
//! let driver = {
//!     let (node, stop) = (node.clone(), stop.clone());
//!     std::thread::spawn(move || {
//!         while !stop.load(Ordering::Relaxed) {
//!             let _next = node.service(node.platform().now());
//!             std::thread::sleep(std::time::Duration::from_millis(1));
//!         }
//!     })
//! };
//! let ctrl = node.get_controller(None)?;
//! let seg_buf = PinnedBuf::new(8192).unwrap();
//! let seg = node.export_create(ctrl, seg_buf.region(), CreateFlags::empty())?;
//! node.export_publish(seg, 0x40_0101, &[])?;
//! let imp = node.import_connect(ctrl, node.node_id(), 0x40_0101, Permission::RDWR)?;
//! let src = PinnedBuf::new(4096).unwrap();
//! src.write(0, b"from the app thread").unwrap();
//! let src_r = src.region();
//! node.putv(&mut ScatGath::new(imp, &[IoVec::va(&src_r, 0, 100, 19)]))?;
//! let mut out = [0u8; 19];
//! seg_buf.read(100, &mut out).unwrap();
//! assert_eq!(&out, b"from the app thread");
//! stop.store(true, Ordering::Relaxed);
//! driver.join().unwrap();
//! # Ok::<(), rsm_core::RsmError>(())
//! ```
//!
//! ```
//! use rsm_hal::Memory;
//! use rsm_host::{HostPlatform, PinnedBuf};
//!
//! let platform = HostPlatform::without_mlock();
//! let buf = PinnedBuf::new(8192)?;
//! buf.write(0, b"hello")?;
//! let pin = platform.pin(&buf.region())?;
//! assert_eq!(platform.pinned_pages(), 2);
//! let (a, b) = (buf.region(), buf.region());
//! platform.copy(&a, 4096, &b, 0, 5)?;
//! platform.unpin(pin);
//! let mut out = [0u8; 5];
//! buf.read(4096, &mut out)?;
//! assert_eq!(&out, b"hello");
//! # Ok::<(), rsm_host::HostError>(())
//! ```

#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod error;
mod intervals;
mod pages;
mod platform;
mod region;
pub mod runtime;
mod shared;
pub mod udp;

pub use error::HostError;
pub use platform::{HostPin, HostPlatform};
pub use region::{MemRegion, PinnedBuf};
pub use runtime::{HostNode, HostRsm, LinkSpec, NodeConfig};
pub use udp::{UdpLink, UdpLinkConfig, UdpPeers, UdpStats, DEFAULT_SOCKET_BUFFER, UDP_MAX_FRAME};

/// Where Solaris keeps the segment-id configuration (spec §4.2).
pub const SEGID_CONF_PATH: &str = "/etc/rsm/rsm.segmentid";

/// Read a segment-id configuration file (the `/etc/rsm/rsm.segmentid` text format) for
/// `rsm_core::Config::segid_conf`, which takes `&'static str` because the core has no heap.
///
/// The text is leaked on purpose: it is read once per process and lives as long as the node.
/// A missing or unreadable file is the caller's `RSMERR_BAD_CONF` — pass `None` to the config.
pub fn load_segid_conf(path: impl AsRef<std::path::Path>) -> std::io::Result<&'static str> {
    Ok(Box::leak(std::fs::read_to_string(path)?.into_boxed_str()))
}

#[cfg(test)]
mod tests;

// The platform is shared between threads (a node's poller and its callers).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<HostPlatform>();
    send_sync::<MemRegion>();
    // Three words (pointer, length, share of the memory's origin), as the fake's region: the
    // node sizes pinned in rsm-core's tests hold for the host too.
    assert!(core::mem::size_of::<MemRegion>() == 3 * core::mem::size_of::<usize>());
    send_sync::<PinnedBuf>();
    send_sync::<HostError>();
};
