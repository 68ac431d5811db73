//! # rsm-host — the std host backend of rsm-rs
//!
//! Implements the [`rsm_hal`] traits for an ordinary Linux process:
//!
//! * [`HostPlatform`] — [`rsm_hal::Memory`] with real `mlock`/`munlock` pinning, a pin count
//!   per page (two handles on one page do not unlock each other) and an optional pinned-bytes
//!   quota that counts each page once; lock-free memmove copies; [`rsm_hal::Clock`] from
//!   [`std::time::Instant`]; [`rsm_hal::Wait`] as an event count on a mutex and condition
//!   variable.
//! * [`MemRegion`] — the region token handed to the RSM layer: a pointer and a length, made
//!   safely from a [`PinnedBuf`] or with the `unsafe` [`MemRegion::from_raw_parts`].
//! * [`PinnedBuf`] — an owned, page-aligned, zeroed buffer for export segments and local
//!   memory handles, with copying accessors that tolerate concurrent RSM transfers.
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
mod shared;

pub use error::HostError;
pub use platform::{HostPin, HostPlatform};
pub use region::{MemRegion, PinnedBuf};

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
