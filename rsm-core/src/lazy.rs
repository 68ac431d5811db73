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

/// Where a [`LazyRsm`] stands.
enum Status<T: 'static> {
    /// Nobody called yet.
    Uninit,
    /// One caller is running `init`; the others spin.
    Running,
    /// Initialised: the node, for every caller.
    Ready(&'static T),
    /// `init` failed (or panicked): every call fails.
    Failed,
}

/// An [`Rsm`] that is built on first use, for a `static` (spec §9.32).
///
/// The first call of [`LazyRsm::get`] runs `init`; concurrent first calls spin until it
/// finished, and every call returns the same node. If `init` returns `None` (or panics), the
/// failure is final: this and every later call returns `RSMERR_CTLR_NOT_PRESENT` and `init`
/// is **not** retried — as with illumos, whose library is initialised once when it is loaded;
/// a program that wants to retry builds a new [`Rsm`] itself.
///
/// `get` takes `&'static self`: the lazy node lives in a `static` (which is what it is for).
/// The node itself is stored inline, so the `static` is as large as the [`Rsm`] with its
/// tables (no heap is used).
pub struct LazyRsm<P, const L: usize = 256, const E: usize = 64, const I: usize = 64>
where
    P: Platform + 'static,
{
    init: fn() -> Option<(P, Config)>,
    status: spin::Mutex<Status<Rsm<P, L, E, I>>>,
    /// The node; locked once by the initialising call and never unlocked (its guard is leaked
    /// to hand out a `&'static` reference without `unsafe`).
    cell: spin::Mutex<Option<Rsm<P, L, E, I>>>,
}

/// Marks the initialisation failed if `init` unwinds, so other callers stop spinning.
struct FailOnUnwind<'a, T: 'static> {
    status: &'a spin::Mutex<Status<T>>,
    armed: bool,
}

impl<T: 'static> Drop for FailOnUnwind<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            *self.status.lock() = Status::Failed;
        }
    }
}

impl<P, const L: usize, const E: usize, const I: usize> LazyRsm<P, L, E, I>
where
    P: Platform + 'static,
{
    /// A node that `init` will build on first use. `init` returns the platform and the node
    /// configuration, or `None` if the platform cannot be brought up. Usable in a `static`.
    #[must_use]
    pub const fn new(init: fn() -> Option<(P, Config)>) -> Self {
        LazyRsm {
            init,
            status: spin::Mutex::new(Status::Uninit),
            cell: spin::Mutex::new(None),
        }
    }

    /// The node, built by `init` on the first call.
    ///
    /// Errors: `RSMERR_CTLR_NOT_PRESENT` if initialisation failed — on the first call and on
    /// every later one (it is not retried).
    pub fn get(&'static self) -> RsmResult<&'static Rsm<P, L, E, I>> {
        loop {
            {
                let mut st = self.status.lock();
                match *st {
                    Status::Ready(rsm) => return Ok(rsm),
                    Status::Failed => return Err(RsmError::CtlrNotPresent),
                    Status::Running => {}
                    Status::Uninit => {
                        *st = Status::Running;
                        break;
                    }
                }
            }
            core::hint::spin_loop();
        }
        // This caller initialises; nobody else touches `cell`.
        let mut guard = FailOnUnwind {
            status: &self.status,
            armed: true,
        };
        let made = (self.init)().map(|(platform, config)| Rsm::new(platform, config));
        let mut cell = self.cell.lock();
        *cell = made;
        let node: &'static mut Option<Rsm<P, L, E, I>> = spin::MutexGuard::leak(cell);
        let (status, result) = match node {
            Some(rsm) => {
                let rsm: &'static Rsm<P, L, E, I> = rsm;
                (Status::Ready(rsm), Ok(rsm))
            }
            None => (Status::Failed, Err(RsmError::CtlrNotPresent)),
        };
        *self.status.lock() = status;
        guard.armed = false;
        result
    }

    /// The node if it has been initialised successfully, without initialising it.
    pub fn get_if_initialized(&self) -> Option<&Rsm<P, L, E, I>> {
        match *self.status.lock() {
            Status::Ready(rsm) => Some(rsm),
            _ => None,
        }
    }
}
