//! Library initialisation on first use (spec §9.32).
//!
//! illumos' `librsm` opens `/dev/rsm` and learns the local node id when it is loaded; if that
//! fails, every later call misbehaves without saying why. rsm-rs makes the step explicit:
//! [`LazyRsm`] holds the node in a `static` and builds it with the embedder's `init` function
//! on the first call of any function — a C layer's `rsm_get_controller` and friends go
//! through [`LazyRsm::get`] — and reports a failed initialisation as
//! `RSMERR_CTLR_NOT_PRESENT` on that call and on every later one.
//!
//! A process or image with no cluster configuration is a single node with id 0: its `init`
//! returns [`Config::default()`].
//!
//! ```
//! use rsm_core::lazy::LazyRsm;
//! use rsm_core::{Config, RsmError};
//! use rsm_hal::fake::FakePlatform;
//!
//! fn init() -> Option<(FakePlatform, Config)> {
//!     // No cluster configuration: node 0.
//!     Some((FakePlatform::new(), Config::default()))
//! }
//! static RSM: LazyRsm<FakePlatform> = LazyRsm::new(init);
//!
//! let node = RSM.get()?; // initialises
//! assert_eq!(node.node_id(), 0);
//! assert!(core::ptr::eq(node, RSM.get()?)); // the same node on every call
//!
//! fn broken() -> Option<(FakePlatform, Config)> {
//!     None // e.g. no network device
//! }
//! static BROKEN: LazyRsm<FakePlatform> = LazyRsm::new(broken);
//! assert_eq!(BROKEN.get().err(), Some(RsmError::CtlrNotPresent));
//! assert_eq!(BROKEN.get().err(), Some(RsmError::CtlrNotPresent)); // not retried
//! # Ok::<(), RsmError>(())
//! ```

use crate::error::{RsmError, RsmResult};
use crate::node::{Config, Rsm};
use rsm_hal::Platform;

/// An [`Rsm`] that is built on first use, for a `static` (spec §9.32).
///
/// The first call of [`LazyRsm::get`] runs `init`; concurrent first calls wait until it
/// finished, and every call returns the same node. If `init` returns `None`, the failure is
/// final: this and every later call returns `RSMERR_CTLR_NOT_PRESENT` and `init` is **not**
/// retried — as with illumos, whose library is initialised once when it is loaded; a program
/// that wants to retry builds a new [`Rsm`] itself. (If `init` panics, the `spin::Once` is
/// poisoned and later calls panic too.)
///
/// The node is stored inline, so a `static` `LazyRsm` is as large as the [`Rsm`] with its
/// tables (no heap is used).
pub struct LazyRsm<
    P: Platform,
    const L: usize = 256,
    const E: usize = 64,
    const I: usize = 64,
    const F: usize = { crate::proto::FRAME_BUF },
> {
    init: fn() -> Option<(P, Config)>,
    node: spin::Once<Option<Rsm<P, L, E, I, F>>>,
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    LazyRsm<P, L, E, I, F>
{
    /// A node that `init` will build on first use. `init` returns the platform and the node
    /// configuration, or `None` if the platform cannot be brought up. Usable in a `static`.
    #[must_use]
    pub const fn new(init: fn() -> Option<(P, Config)>) -> Self {
        LazyRsm {
            init,
            node: spin::Once::new(),
        }
    }

    /// The node, built by `init` on the first call.
    ///
    /// Errors: `RSMERR_CTLR_NOT_PRESENT` if initialisation failed — on the first call and on
    /// every later one (it is not retried).
    pub fn get(&self) -> RsmResult<&Rsm<P, L, E, I, F>> {
        self.node
            .call_once(|| (self.init)().map(|(platform, config)| Rsm::new(platform, config)))
            .as_ref()
            .ok_or(RsmError::CtlrNotPresent)
    }

    /// The node if it has been initialised successfully, without initialising it.
    pub fn get_if_initialized(&self) -> Option<&Rsm<P, L, E, I, F>> {
        self.node.get().and_then(Option::as_ref)
    }
}
