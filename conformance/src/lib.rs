//! The single-node RSMAPI conformance table (spec `shared/rsmapi/rsmapi-spec.md`, §10), as
//! `no_std` checks any platform can run.
//!
//! Every check is a plain function over a [`Harness`] — the few things a platform must offer
//! a test besides [`rsm_hal::Platform`] itself: fresh platforms, memory to export, a way to
//! name bad memory, and optional extras ([`Needs`]). The host tests run the whole table over
//! the fake platform (`tests/tests/conformance_table.rs`); the unikernel image runs it under
//! QEMU (`scenario=conformance`) and reports how many checks ran and passed, listing the
//! checks it excluded and why (each exclusion is a [`Needs`] flag the image's harness lacks).
//!
//! A check fails by returning a [`Fail`] (file, line, what, details) — never by panicking —
//! through the `check*!` macros, [`Must::must`] and `?` on an [`RsmError`].
//!
//! The table: [`checks`]; running it: [`run`].

#![no_std]
#![forbid(unsafe_code)]
// A `Fail` carries its details inline (no heap), so it is a few hundred bytes; checks return
// it at most once, so the size of `Result<(), Fail>` costs nothing that matters.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use core::fmt::{self, Debug, Write as _};
use core::panic::Location;
use rsm_core::{Config, Rsm, RsmError};
use rsm_hal::{Memory, Platform};

pub use rsm_core;
pub use rsm_hal;

#[cfg(feature = "fake")]
extern crate std;
#[cfg(feature = "fake")]
pub mod fake;

mod access;
mod controller_local;
mod events;
mod export;
mod fixture;
mod import_sg;
mod map_topology;

bitflags::bitflags! {
    /// What a check needs beyond a plain platform; a harness lacking one of these excludes
    /// the check (reported, never counted as run).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Needs: u32 {
        /// Two threads at once ([`Harness::concurrently`]): racing calls, blocked waiters
        /// woken by another thread.
        const THREADS = 1;
        /// A settable limit on pinned memory ([`Harness::set_pin_quota`]).
        const PIN_QUOTA = 1 << 1;
        /// Pinned-page and pin/copy counters ([`Harness::pinned_pages`],
        /// [`Harness::counters`]).
        const PIN_COUNT = 1 << 2;
        /// Freeing memory a handle still names ([`Harness::free`]) and detecting later use.
        const FREE = 1 << 3;
        /// A clock that jumps ([`Harness::advance`] without waiting): checks that move time
        /// by seconds.
        const SIM_CLOCK = 1 << 4;
    }
}

impl Needs {
    /// Why a harness might lack the first flag of `self` (for exclusion reports).
    pub fn reason(self) -> &'static str {
        if self.contains(Needs::THREADS) {
            "needs two threads at once"
        } else if self.contains(Needs::PIN_QUOTA) {
            "needs a pin quota"
        } else if self.contains(Needs::PIN_COUNT) {
            "needs pin counters"
        } else if self.contains(Needs::FREE) {
            "needs freeing memory under a handle"
        } else if self.contains(Needs::SIM_CLOCK) {
            "needs a simulated clock"
        } else {
            "needs nothing"
        }
    }

    /// The name of the first flag of `self`.
    pub fn first_name(self) -> &'static str {
        self.iter_names().next().map_or("NONE", |(name, _)| name)
    }
}

/// The region type of a harness's platform.
pub type Reg<H> = <<H as Harness>::P as Memory>::Region;
/// A node with the default capacities over a harness's platform.
pub type Node<H> = Rsm<<H as Harness>::P>;
/// A node with tiny tables (2 local handles, 2 exports, 2 imports) for exhaustion checks.
pub type SmallNode<H> = Rsm<<H as Harness>::P, 2, 2, 2>;

/// A closure one side of [`Harness::concurrently`] runs.
pub type Side<'a> = &'a (dyn Fn() -> Result<(), Fail> + Sync);

/// What a platform offers the checks besides [`rsm_hal::Platform`].
///
/// Methods for a [`Needs`] flag the harness does not claim in [`Harness::supports`] are
/// never called by [`run`]; they may return `None`/`false`/a [`Fail`].
pub trait Harness: Sync {
    /// The platform under test.
    type P: Platform<Region: Send + Sync, Pin: Send + Sync> + Send + Sync;

    /// The extras this harness offers.
    fn supports(&self) -> Needs;

    /// A fresh platform for a new node.
    fn platform(&self) -> Self::P;

    /// `len` zeroed bytes, page aligned, that stay valid while any clone of the region lives
    /// (at least until the check returns); a length of 0 still names a valid address.
    fn alloc(&self, p: &Self::P, len: usize) -> Result<Reg<Self>, Fail>;

    /// A region naming `len` bytes at `addr` without owning them — NULL, misaligned, unmapped
    /// or inside an allocation — for negative checks. `Err` when this harness cannot name
    /// that range safely.
    fn raw(&self, addr: usize, len: usize) -> Result<Reg<Self>, Fail>;

    /// Write `data` at `off` of `r`, bypassing pins (test set-up).
    fn write(&self, p: &Self::P, r: &Reg<Self>, off: usize, data: &[u8]) -> Result<(), Fail>;

    /// Read `out.len()` bytes at `off` of `r` (test check).
    fn read(&self, p: &Self::P, r: &Reg<Self>, off: usize, out: &mut [u8]) -> Result<(), Fail>;

    /// Distinct pages pinned now on `p` ([`Needs::PIN_COUNT`]).
    fn pinned_pages(&self, p: &Self::P) -> Option<usize>;

    /// (pins made so far, copies made so far) on `p` ([`Needs::PIN_COUNT`]).
    fn counters(&self, p: &Self::P) -> Option<(u64, u64)>;

    /// Limit pinned memory on `p` to `bytes` (rounded down to pages) ([`Needs::PIN_QUOTA`]).
    fn set_pin_quota(&self, p: &Self::P, bytes: usize) -> bool;

    /// Free the allocation `r` starts, whoever still names it ([`Needs::FREE`]).
    fn free(&self, p: &Self::P, r: &Reg<Self>) -> bool;

    /// Move `p`'s clock forward by at least `nanos`: a simulated clock jumps
    /// ([`Needs::SIM_CLOCK`]), a real one waits.
    fn advance(&self, p: &Self::P, nanos: u64);

    /// Pause the calling thread for about `ms` milliseconds of real time (lets the other
    /// side of [`Harness::concurrently`] block).
    fn sleep_ms(&self, ms: u64);

    /// Run `a` and `b` at the same time on two threads; both must succeed
    /// ([`Needs::THREADS`]).
    fn concurrently(&self, a: Side<'_>, b: Side<'_>) -> Result<(), Fail>;
}

/// A fresh node with the default capacities and configuration.
pub fn node<H: Harness>(h: &H) -> Node<H> {
    Rsm::new(h.platform(), Config::default())
}

/// A fresh node with tiny tables ([`SmallNode`]).
pub fn small_node<H: Harness>(h: &H) -> SmallNode<H> {
    Rsm::new(h.platform(), Config::default())
}

/// A fresh node with the default capacities and `cfg`.
pub fn node_with<H: Harness>(h: &H, cfg: Config) -> Node<H> {
    Rsm::new(h.platform(), cfg)
}

/// Room for the details of a failure.
pub const DETAIL_MAX: usize = 192;

/// Why a check failed: where, what was expected, and formatted details.
#[derive(Clone, PartialEq, Eq)]
pub struct Fail {
    /// Source file of the failing line.
    pub file: &'static str,
    /// The failing line.
    pub line: u32,
    /// The failed condition as written.
    pub what: &'static str,
    /// Values and the check's message (truncated to [`DETAIL_MAX`] bytes).
    pub detail: heapless::String<DETAIL_MAX>,
}

impl Fail {
    /// A failure at the caller's location.
    #[track_caller]
    pub fn new(what: &'static str) -> Fail {
        let at = Location::caller();
        Fail {
            file: at.file(),
            line: at.line(),
            what,
            detail: heapless::String::new(),
        }
    }

    /// This failure with `args` appended to its details (truncated when full).
    #[must_use]
    pub fn with(mut self, args: fmt::Arguments<'_>) -> Fail {
        let mut w = Trunc(&mut self.detail);
        let _ = w.write_fmt(args);
        self
    }
}

impl Debug for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// A writer that keeps what fits.
struct Trunc<'a>(&'a mut heapless::String<DETAIL_MAX>);

impl fmt::Write for Trunc<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl From<RsmError> for Fail {
    /// `?` on an unexpected RSM error fails the check at the `?`.
    #[track_caller]
    fn from(e: RsmError) -> Fail {
        Fail::new("unexpected error").with(format_args!("{e:?}"))
    }
}

/// `.must()?`: the value of an `Option`/`Result` the check expects to be there.
pub trait Must<T> {
    /// The value, or a failure at the caller.
    #[track_caller]
    fn must(self) -> Result<T, Fail>;
}

impl<T> Must<T> for Option<T> {
    #[track_caller]
    fn must(self) -> Result<T, Fail> {
        self.ok_or_else(|| Fail::new("expected Some, got None"))
    }
}

impl<T, E: Debug> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self) -> Result<T, Fail> {
        match self {
            Ok(v) => Ok(v),
            Err(e) => Err(Fail::new("expected Ok").with(format_args!("{e:?}"))),
        }
    }
}

/// Fail the check unless `cond` holds; optional message with format arguments.
#[macro_export]
macro_rules! check {
    ($cond:expr $(,)?) => {
        if !$cond {
            return Err($crate::Fail::new(stringify!($cond)));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Fail::new(stringify!($cond)).with(format_args!($($arg)+)));
        }
    };
}

/// Fail the check unless `a == b` (both `Debug`); optional message with format arguments.
#[macro_export]
macro_rules! check_eq {
    ($a:expr, $b:expr $(,)?) => {
        match (&$a, &$b) {
            (a, b) => {
                if !(*a == *b) {
                    return Err($crate::Fail::new(concat!(stringify!($a), " == ", stringify!($b)))
                        .with(format_args!("{:?} != {:?}", a, b)));
                }
            }
        }
    };
    ($a:expr, $b:expr, $($arg:tt)+) => {
        match (&$a, &$b) {
            (a, b) => {
                if !(*a == *b) {
                    return Err($crate::Fail::new(concat!(stringify!($a), " == ", stringify!($b)))
                        .with(format_args!("{:?} != {:?}: ", a, b))
                        .with(format_args!($($arg)+)));
                }
            }
        }
    };
}

/// Fail the check if `a == b` (both `Debug`); optional message with format arguments.
#[macro_export]
macro_rules! check_ne {
    ($a:expr, $b:expr $(,)?) => {
        match (&$a, &$b) {
            (a, b) => {
                if *a == *b {
                    return Err($crate::Fail::new(concat!(stringify!($a), " != ", stringify!($b)))
                        .with(format_args!("both {:?}", a)));
                }
            }
        }
    };
    ($a:expr, $b:expr, $($arg:tt)+) => {
        match (&$a, &$b) {
            (a, b) => {
                if *a == *b {
                    return Err($crate::Fail::new(concat!(stringify!($a), " != ", stringify!($b)))
                        .with(format_args!("both {:?}: ", a))
                        .with(format_args!($($arg)+)));
                }
            }
        }
    };
}

/// Fail the check now with a message (format arguments allowed).
#[macro_export]
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::Fail::new("failed").with(format_args!($($arg)+)))
    };
}

/// The list of one module's checks: `table! { name, name: Needs::X, … }` — each `name` is a
/// `fn name<H: Harness>(h: &H) -> Outcome` in the module.
macro_rules! table {
    ($($name:ident $(: $needs:expr)?),* $(,)?) => {
        /// This module's checks.
        pub(crate) struct Table<H>(core::marker::PhantomData<H>);
        impl<H: $crate::Harness + 'static> Table<H> {
            pub(crate) const CHECKS: &'static [$crate::Check<H>] = &[
                $($crate::Check {
                    name: stringify!($name),
                    module: module_path!(),
                    needs: $crate::table!(@needs $($needs)?),
                    run: $name::<H>,
                }),*
            ];
        }
    };
    (@needs) => { $crate::Needs::empty() };
    (@needs $needs:expr) => { $needs };
}
pub(crate) use table;

/// What a check returns.
pub type Outcome = Result<(), Fail>;

/// One entry of the table.
pub struct Check<H: 'static> {
    /// The check's function name (unique in the table).
    pub name: &'static str,
    /// The module it lives in (the spec area).
    pub module: &'static str,
    /// What it needs beyond a plain platform.
    pub needs: Needs,
    /// The check.
    pub run: fn(&H) -> Outcome,
}

/// The whole table, in a fixed order.
pub fn checks<H: Harness + 'static>() -> impl Iterator<Item = &'static Check<H>> {
    controller_local::Table::<H>::CHECKS
        .iter()
        .chain(export::Table::<H>::CHECKS)
        .chain(import_sg::Table::<H>::CHECKS)
        .chain(access::Table::<H>::CHECKS)
        .chain(events::Table::<H>::CHECKS)
        .chain(map_topology::Table::<H>::CHECKS)
}

/// What happened to one check in [`run`].
#[derive(Debug)]
pub enum Verdict {
    /// It ran and passed.
    Passed,
    /// It ran and failed.
    Failed(Fail),
    /// It did not run: the harness lacks these [`Needs`].
    Excluded(Needs),
}

/// Counts of a [`run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Checks in the table.
    pub total: usize,
    /// Checks run.
    pub ran: usize,
    /// Checks that passed.
    pub passed: usize,
    /// Checks excluded.
    pub excluded: usize,
}

/// Run every check `h` supports, in table order, whose name contains `filter` (all for
/// `""`); `each` sees every check with its verdict (also the excluded ones) right after it.
pub fn run<H: Harness + 'static>(
    h: &H,
    filter: &str,
    mut each: impl FnMut(&Check<H>, &Verdict),
) -> Summary {
    let mut s = Summary::default();
    let have = h.supports();
    for c in checks::<H>().filter(|c| c.name.contains(filter)) {
        s.total += 1;
        let missing = c.needs.difference(have);
        let verdict = if !missing.is_empty() {
            s.excluded += 1;
            Verdict::Excluded(missing)
        } else {
            s.ran += 1;
            match (c.run)(h) {
                Ok(()) => {
                    s.passed += 1;
                    Verdict::Passed
                }
                Err(f) => Verdict::Failed(f),
            }
        };
        each(c, &verdict);
    }
    s
}

/// Room in [`Bytes`]: the largest buffer a check compares in one piece.
pub const BYTES_MAX: usize = 32 * 1024;

/// A byte buffer on the stack (no heap): patterns and read-backs.
pub type Bytes = heapless::Vec<u8, BYTES_MAX>;

/// A recognisable byte pattern of `len` bytes (at most [`BYTES_MAX`]; longer requests are
/// cut, which a length comparison then catches).
pub fn pat(len: usize, seed: u8) -> Bytes {
    (0..len.min(BYTES_MAX))
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `len` copies of `byte` (at most [`BYTES_MAX`]).
pub fn filled(len: usize, byte: u8) -> Bytes {
    (0..len.min(BYTES_MAX)).map(|_| byte).collect()
}

/// The bytes `off..off + len` of `r` (at most [`BYTES_MAX`]).
#[track_caller]
pub fn read_bytes<H: Harness>(
    h: &H,
    p: &H::P,
    r: &Reg<H>,
    off: usize,
    len: usize,
) -> Result<Bytes, Fail> {
    if len > BYTES_MAX {
        return Err(Fail::new("read_bytes: longer than BYTES_MAX"));
    }
    let mut out = Bytes::new();
    out.resize(len, 0)
        .map_err(|()| Fail::new("read_bytes: resize"))?;
    h.read(p, r, off, &mut out)?;
    Ok(out)
}

/// All of `r` ([`read_bytes`] of the whole region).
#[track_caller]
pub fn region_bytes<H: Harness>(h: &H, p: &H::P, r: &Reg<H>) -> Result<Bytes, Fail> {
    read_bytes(h, p, r, 0, rsm_hal::Region::len(r))
}

/// A fresh region of `len` bytes filled with `pat(len, seed)`.
#[track_caller]
pub fn alloc_pat<H: Harness>(h: &H, p: &H::P, len: usize, seed: u8) -> Result<Reg<H>, Fail> {
    let r = h.alloc(p, len)?;
    h.write(p, &r, 0, &pat(len, seed))?;
    Ok(r)
}
