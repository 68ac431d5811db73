//! Property tests of `rsm-core` against a reference model, on the fake platform.
//!
//! The fake platform ([`FakePlatform`]) panics on misuse only a core bug can cause (unbalanced
//! unpin, a copy outside its region, a copy into freed memory), so **every property below also
//! checks "never a panic"**: proptest turns a panic into a failing, shrunk case.
//!
//! 1. [`random_api_sequences_match_the_model`] — random sequences of up to ~100 calls of the
//!    RSMAPI (controllers §4.1, export side §4.3, connect/disconnect §4.4, put/get in all
//!    widths §4.5, putv/getv §4.6, local memory handles §4.6/§5, map/unmap §4.7, barriers and
//!    barrier modes §4.8, events and poll descriptors §4.9) on a node with tiny tables
//!    (`Rsm<FakePlatform, 8, 4, 4>`,
//!    so `RSMERR_INSUFFICIENT_RESOURCES` is reachable) and sometimes a pin quota (so
//!    `RSMERR_INSUFFICIENT_MEM` is reachable). Handles are picked from everything created so
//!    far — live, freed/destroyed (stale), NULL, of the wrong kind, or of another `Rsm`
//!    instance — so stale-handle and double-free cases are frequent. After every call:
//!    * the error, if any, is in the call's allow-list: the union of the spec §4 "Doc" and
//!      "Impl" lists plus the choices documented in our rustdoc and spec §9 ([`Call::allowed`]);
//!    * the result equals the model's prediction, computed from the documented check order of
//!      each call (§4.1, §4.3, §4.4, §4.6, §5.1, §9.6, §9.7, §9.11, §9.12, §9.15–§9.17, §9.19,
//!      §9.22): exact error code, the same controller handle for a repeated `get_controller`,
//!      never a reused handle value, the auto-assigned segment id (§9.15);
//!    * putv/getv: exact `io_residual_count` (§9.2: written on every return, `io_request_count`
//!      for any failure before a byte moved, `count − k` after `k` entries were transferred),
//!      `flags` unchanged (§4.6), the implicit sigpost counted (§9.3, §9.28);
//!    * put/get (byte form and 8/16/32/64-bit forms; offsets in range, misaligned, negative,
//!      past the end, `i64::MAX`; counts including 0): the exact result by the check order
//!      documented on `Rsm::get` (handle NULL, alignment, handle state, permission, range,
//!      implicit-mode barrier §9.1, forced disconnect §6.4); a successful put is applied to
//!      the byte model, a successful get returns the model's bytes, a failed get leaves its
//!      buffer untouched;
//!    * barriers: four barrier storage slots (init on live, stale, aborted imports; open,
//!      order, close, destroy, and C-style copies of the storage) with the state machine of
//!      barrier.rs (`BARRIER_UNINITIALIZED`, `BAD_SEG_HNDL` once the import is disconnected,
//!      `BARRIER_NOT_OPENED`, `CONN_ABORTED` with the close still closing) and the import's
//!      implicit-mode barrier (the last init wins; destroying that one clears it, an older one
//!      does not); `set_mode` (0, 1, invalid) and `get_mode`; the storage's
//!      `is_initialized`/`is_open`/`segment` after every call;
//!    * events: exact pending counts per segment — a post on an import rings its exporter, a
//!      post on an export rings every import still connected to it, putv's implicit sigpost
//!      rings the exporter, `NO_ACCUMULATE` coalesces (§9.3); `intr_signal_wait` with timeouts
//!      0 and a few ms (consume one, else `CONN_ABORTED` for an aborted import, else `TIMEOUT`;
//!      the simulated clock moves by exactly the timeout on `TIMEOUT` and not at all
//!      otherwise); `intr_signal_wait_pollfd` over segment and ordinary entries (revents,
//!      consumption per entry in order, `POLLNVAL`/`POLLHUP`, the count, the callback's
//!      scans); `get_pollfd`/`release_pollfd` counts, with destroy/disconnect refused
//!      (`POLLFD_IN_USE`) while any is held (§9.13, §9.14);
//!    * map/unmap: random attribute, permission, offset, length and fixed address, the exact
//!      result by the order documented on `import_map` and the returned window;
//!      `SEG_ALREADY_MAPPED`, `SEG_NOT_MAPPED`, `SEG_STILL_MAPPED` on disconnect; a rebind
//!      force-disconnects the imports that had the segment mapped; the mapping pins its
//!      window until unmap, even after the exporter destroyed or rebound the segment (the
//!      page-pin model); stores through a mapped window reach the byte model;
//!    * **data**: the model keeps the bytes of every fake allocation (a superset of "one byte
//!      array per export segment": segments, local handles and VA entries may alias the same
//!      pages, and a rebound segment's content is simply the new buffer's bytes). Each
//!      successful putv/getv is applied to the model entry by entry in vector order
//!      (memmove semantics); after every putv/getv — successful or not — the whole fake memory
//!      must equal the model (so getv destinations equal the segment's model bytes, and a
//!      rejected vector moved nothing);
//!    * bookkeeping: `slots_in_use()` equals the model's live handle counts, `pinned_pages()`
//!      equals the model's page-pin map, `export_segment_id`, `export_pending_events`,
//!      `import_info`, `import_mapping` and `get_mode` agree with the model; side-effect-free
//!      probes on every live import and export observe the rest of the state: a zero-length
//!      get and put64 (validated no-ops: permission, barrier, abort) and, for segments the
//!      model says have no pending event, a zero-timeout wait (`TIMEOUT`, or `CONN_ABORTED`
//!      for an aborted import — no phantom events);
//!    * **no leaks**: at the end the barriers are destroyed, mapped imports unmapped, poll
//!      descriptors released (plus one release too many, a no-op), everything still live is
//!      freed/disconnected/destroyed, the controllers released, and
//!      `slots_in_use() == (0, 0, 0)` and `pinned_pages() == 0`.
//!
//!    [`random_sequences_reach_the_interesting_paths`] runs the same generator with a fixed
//!    seed and asserts that it actually reaches the paths the properties are about (successful
//!    transfers, partial transfers, table-full, quota, stale handles, every put/get width in
//!    both directions, each barrier, event, poll-descriptor and map call with success and its
//!    characteristic failures, events rung and consumed, rebind-aborted and orphaned mappings,
//!    …), so a generator change cannot silently make property 1 vacuous.
//! 2. [`putv_then_getv_round_trips`] — 1..=16 valid entries (HANDLE and VA, random in-bounds
//!    offsets and lengths, overlapping allowed): putv succeeds with residual 0 and the segment
//!    equals the model (entries applied in order, later entries win, §4.6); getv of the same
//!    shapes into fresh buffers returns exactly the segment's bytes, and every entry whose
//!    remote range no later entry overwrote comes back byte-identical to its source.
//! 3. [`one_invalid_entry_fails_the_whole_vector`] — an otherwise valid vector with one bad
//!    entry (and sometimes a second, later one) at a random position: the error is the first
//!    bad entry's error by the documented per-entry order (`RSMERR_BAD_SGIO` for io_type or
//!    handle, then `RSMERR_BAD_ADDR` for a NULL VA, then `RSMERR_BAD_OFFSET` for the remote
//!    range, then `RSMERR_BAD_LENGTH` for the local range; `sg::plan`, §9.12, §9.19),
//!    `io_residual_count == io_request_count`, and neither the segment nor any local buffer
//!    changed (the whole vector is validated before any byte moves, §9.2).
//! 4. [`loopback_ignores_the_unit`] — `loopback<digits>` names the loopback controller for any
//!    decimal unit (spec §4.1: "for loopback the unit is ignored"; illumos parses the unit with
//!    `atoi` and never rejects it; `Rsm::get_controller`'s rustdoc: "the unit … is ignored for
//!    `loopback`"); a unit that does not fit a `u32`, e.g. `"loopback4294967296"`, included
//!    (found by this property, fixed in `parse_controller_name`).
//!
//! Knobs: `PROPTEST_CASES=N` runs N cases per property instead of the defaults below;
//! `RSM_PROP_STATS=1` prints the outcome counts of the coverage test (`RSM_PROP_SEQS=N` runs it
//! on N sequences instead of 160); `RSM_PROP_TRACE=1` prints every call of property 1 with the
//! live handle counts after it.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rsm_core::{
    AccessEntry, Barrier, BarrierMode, BarrierType, Config, ControllerHandle, CreateFlags,
    ExportHandle, ImportHandle, ImportInfo, IoVec, LocalMemHandle, LocalRef, MapAttr, NodeId,
    Permission, PollFd, PollSource, Rsm, RsmError, RsmResult, ScatGath, SegmentId, SegmentRef,
    SgFlags, SigpostFlags, FIRST_USER_SEGID, LAST_USER_SEGID, MAXNAMELEN, PAGE_SIZE, POLLHUP,
    POLLIN, POLLNVAL, POLLRDNORM, RSM_HANDLE_TYPE, RSM_MAX_SGIOREQS, RSM_USER_APP_ID_BASE,
    RSM_VA_TYPE,
};
use rsm_hal::fake::{FakePlatform, FakeRegion};
use rsm_hal::{Clock, Region};
use std::collections::{BTreeMap, BTreeSet};
use RsmError::*;

/// Table capacities of the node under test: small, so that every table fills up.
const L: usize = 8;
const E: usize = 4;
const I: usize = 4;
type Node = Rsm<FakePlatform, L, E, I>;

/// Sizes (in pages) of the fake allocations every region is carved from.
const POOL_PAGES: [usize; 5] = [3, 3, 2, 1, 3];
/// A page-aligned address the fake never allocates (pinning or copying there fails).
const UNMAPPED: usize = 0x4242_0000;
/// What `io_residual_count` holds before a call: it must be overwritten on every return.
const GARBAGE: u64 = 0xDEAD_BEEF;

/// `cases` cases, or `PROPTEST_CASES` if set (for a longer run by hand).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Never write `proptest-regressions/` files next to this test.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

// =============================================================================================
// Allow-lists (spec §4 Doc ∪ Impl lists, plus our documented choices)
// =============================================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Call {
    GetController,
    ReleaseController,
    CreateLocal,
    FreeLocal,
    ExportCreate,
    ExportDestroy,
    Publish,
    Unpublish,
    Republish,
    Rebind,
    Connect,
    Disconnect,
    Putv,
    Getv,
    Put,
    Get,
    InitBarrier,
    OpenBarrier,
    OrderBarrier,
    CloseBarrier,
    DestroyBarrier,
    SetMode,
    GetMode,
    SigPost,
    SigWait,
    GetPollfd,
    ReleasePollfd,
    WaitPollfd,
    Map,
    Unmap,
}

impl Call {
    /// Every error the call may return.
    fn allowed(self) -> &'static [RsmError] {
        match self {
            // §4.1 Doc + Impl.
            Call::GetController => &[
                BadCtlrHndl,
                BadAddr,
                CtlrNotPresent,
                InsufficientMem,
                BadLibraryVersion,
            ],
            // §4.1.
            Call::ReleaseController => &[BadCtlrHndl],
            // §4.6 seed man page, §5.1, §9.6 (table full → INSUFFICIENT_RESOURCES).
            Call::CreateLocal => &[
                BadAddr,
                BadCtlrHndl,
                BadLength,
                InsufficientMem,
                InsufficientResources,
            ],
            // §4.6, §9.7.
            Call::FreeLocal => &[BadCtlrHndl, BadLocalmemHndl],
            // §4.3 Doc.
            Call::ExportCreate => &[
                BadSegHndl,
                BadCtlrHndl,
                CtlrNotPresent,
                BadLength,
                BadAddr,
                InsufficientMem,
                InsufficientResources,
                PermDenied,
                NotCreator,
                RebindNotAllowed,
                BadMemAlignment,
                Interrupted,
            ],
            Call::ExportDestroy => &[BadSegHndl, PollfdInUse],
            // §4.3 Doc + Impl (INTERNAL_ERROR from the node-address lookup).
            Call::Publish => &[
                BadSegHndl,
                NotCreator,
                SegidInUse,
                ReservedSegid,
                BadSegid,
                BadAcl,
                SegAlreadyPublished,
                InsufficientMem,
                InsufficientResources,
                LocksNotSupported,
                BadAddr,
                InternalError,
            ],
            Call::Unpublish => &[BadSegHndl, NotCreator, SegNotPublished, Interrupted],
            // "as publish minus the segment-ID errors, plus SEG_NOT_PUBLISHED, INTERRUPTED".
            Call::Republish => &[
                BadSegHndl,
                NotCreator,
                BadAcl,
                SegAlreadyPublished,
                InsufficientMem,
                InsufficientResources,
                LocksNotSupported,
                BadAddr,
                InternalError,
                SegNotPublished,
                Interrupted,
            ],
            // "as for create plus INTERRUPTED".
            Call::Rebind => &[
                BadSegHndl,
                BadCtlrHndl,
                CtlrNotPresent,
                BadLength,
                BadAddr,
                InsufficientMem,
                InsufficientResources,
                PermDenied,
                NotCreator,
                RebindNotAllowed,
                BadMemAlignment,
                Interrupted,
            ],
            // §4.4 Doc + Impl (§9.21: INTERNAL_ERROR, BAD_DRIVER_VERSION).
            Call::Connect => &[
                BadSegHndl,
                BadCtlrHndl,
                CtlrNotPresent,
                PermDenied,
                InsufficientMem,
                InsufficientResources,
                SegNotPublishedToNode,
                SegNotPublished,
                BadAddr,
                RemoteNodeUnreachable,
                Interrupted,
                InternalError,
                BadDriverVersion,
            ],
            Call::Disconnect => &[BadSegHndl, SegStillMapped, PollfdInUse],
            // §4.6 Doc + the guide's CONN_ABORTED.
            Call::Putv | Call::Getv => &[
                BadSgio,
                BadSegHndl,
                BadCtlrHndl,
                BadOffset,
                BadLength,
                BadAddr,
                InsufficientResources,
                Interrupted,
                PermDenied,
                BarrierFailure,
                RemoteNodeUnreachable,
                ConnAborted,
            ],
            // §4.5 Doc ∪ Impl (steps 6 and 10: implicit-map and barrier errors).
            Call::Put | Call::Get => &[
                BadSegHndl,
                BadAddr,
                BadMemAlignment,
                BadOffset,
                BadLength,
                PermDenied,
                InsufficientResources,
                BarrierUninitialized,
                BarrierOpenFailed,
                BarrierFailure,
                ConnAborted,
                BadPerms,
                MapFailed,
            ],
            // §4.8.
            Call::InitBarrier => &[
                BadSegHndl,
                BadBarrierPtr,
                InsufficientMem,
                InsufficientResources,
            ],
            Call::OpenBarrier => &[
                BadSegHndl,
                BadBarrierPtr,
                BarrierUninitialized,
                BarrierOpenFailed,
            ],
            Call::OrderBarrier | Call::CloseBarrier => &[
                BadSegHndl,
                BadBarrierPtr,
                BarrierUninitialized,
                BarrierNotOpened,
                BarrierFailure,
                ConnAborted,
            ],
            Call::DestroyBarrier => &[BadSegHndl, BadBarrierPtr, BarrierUninitialized],
            Call::SetMode => &[BadSegHndl, BadMode],
            // Impl: the C layer's NULL `mode` pointer.
            Call::GetMode => &[BadSegHndl, BadAddr],
            // §4.9 Doc ∪ Impl.
            Call::SigPost => &[BadSegHndl, ConnAborted, RemoteNodeUnreachable, Interrupted],
            // §4.9, plus CONN_ABORTED for a force-disconnected import (our documented choice,
            // `intr_signal_wait` rustdoc).
            Call::SigWait => &[
                BadSegHndl,
                Interrupted,
                Timeout,
                InsufficientResources,
                BadAddr,
                BadArgsErrors,
                ConnAborted,
            ],
            Call::GetPollfd | Call::ReleasePollfd => {
                &[BadSegHndl, InsufficientMem, InsufficientResources]
            }
            Call::WaitPollfd => &[
                Timeout,
                BadArgsErrors,
                BadAddr,
                Interrupted,
                InsufficientMem,
                InsufficientResources,
            ],
            // §4.7 Doc ∪ Impl, plus the pin errors of `import_map` step 12.
            Call::Map => &[
                BadSegHndl,
                BadAddr,
                BadLength,
                BadMemAlignment,
                BadOffset,
                BadPerms,
                ConnAborted,
                MapFailed,
                SegAlreadyMapped,
                SegNotConnected,
                InsufficientResources,
                InsufficientMem,
            ],
            Call::Unmap => &[BadSegHndl, SegNotMapped],
        }
    }
}

/// Outcome counts per (call, error code; 0 = success), for the coverage test.
#[derive(Default)]
struct Stats {
    outcomes: BTreeMap<(Call, i32), usize>,
    partial_transfers: usize,
    bytes_moved_ok: usize,
    /// (put, width) of every put/get that moved at least one byte.
    access_ok: BTreeSet<(bool, Width)>,
    /// Import segments rung by a post on their export handle.
    imports_rung: usize,
    /// Events consumed by intr_signal_wait / intr_signal_wait_pollfd.
    events_consumed: usize,
    /// wait_pollfd calls that consumed an event / reported POLLNVAL / reported POLLHUP.
    pollfd_consumed: usize,
    pollfd_nval: usize,
    pollfd_hup: usize,
    /// Imports force-disconnected by a rebind of a segment they had mapped.
    rebind_aborts: usize,
    /// Such imports skipped by a post on their (still published) exporter.
    rebind_aborted_not_rung: usize,
    /// Calls after which a mapping outlived its exporter (destroyed export).
    orphan_maps: usize,
    /// Stores through a mapped window.
    pokes: usize,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        for (k, v) in o.outcomes {
            *self.outcomes.entry(k).or_insert(0) += v;
        }
        self.partial_transfers += o.partial_transfers;
        self.bytes_moved_ok += o.bytes_moved_ok;
        self.access_ok.extend(o.access_ok);
        self.imports_rung += o.imports_rung;
        self.events_consumed += o.events_consumed;
        self.pollfd_consumed += o.pollfd_consumed;
        self.pollfd_nval += o.pollfd_nval;
        self.pollfd_hup += o.pollfd_hup;
        self.rebind_aborts += o.rebind_aborts;
        self.rebind_aborted_not_rung += o.rebind_aborted_not_rung;
        self.orphan_maps += o.orphan_maps;
        self.pokes += o.pokes;
    }
}

impl Stats {
    fn count(&self, call: Call, e: Option<RsmError>) -> usize {
        let code = e.map_or(0, RsmError::code);
        self.outcomes.get(&(call, code)).copied().unwrap_or(0)
    }
}

// =============================================================================================
// Generated operations
// =============================================================================================

/// How a handle argument is chosen among the handles of its kind.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// A live handle (falls back to `Any` when there is none).
    Live(usize),
    /// The most recently created live handle (falls back to `Any`).
    Newest(usize),
    /// Any handle ever returned, live or dead (stale / double free).
    Any(usize),
    /// The C NULL handle.
    Null,
    /// A live handle of the same kind from another `Rsm` instance.
    Foreign,
    /// A handle of another kind (e.g. an import handle passed as an export handle).
    WrongKind(usize),
}

#[derive(Debug, Clone, Copy)]
enum LenSpec {
    Zero,
    Pages(u8),
    Bytes(u16),
    Rest,
}

/// A region argument.
#[derive(Debug, Clone, Copy)]
enum RegionSpec {
    /// A sub-range of a pool allocation: page `page`, plus `misalign` bytes.
    Pool {
        buf: u8,
        page: u8,
        misalign: u16,
        len: LenSpec,
    },
    /// NULL address.
    Null(u16),
    /// Page-aligned address that was never allocated.
    Unmapped(u16),
    /// A pool allocation plus one page past its end (into the guard page).
    Overlong(u8),
}

/// Where an entry's offsets point (resolved against the actual lengths at run time).
#[derive(Debug, Clone, Copy)]
enum Shape {
    In,
    RemoteOut,
    LocalOut,
    RemoteOverflow,
    LocalOverflow,
}

#[derive(Debug, Clone, Copy)]
enum LocalSpec {
    Handle(Pick),
    Va(RegionSpec),
}

#[derive(Debug, Clone, Copy)]
struct EntrySpec {
    local: LocalSpec,
    /// `None`: the io_type matching `local`; `Some(t)`: this raw value.
    io_type: Option<i32>,
    shape: Shape,
    a: u16,
    b: u16,
    c: u16,
}

#[derive(Debug, Clone, Copy)]
enum CountSpec {
    Exact,
    Zero,
    Seventeen,
    OneMore,
    Prefix(u8),
    NullIovec,
}

#[derive(Debug, Clone, Copy)]
enum SegidSpec {
    /// One of the ids published now.
    Published(u8),
    /// One of the ids published so far.
    Known(u8),
    Fixed(u32),
}

/// The put/get form called: the byte form (`put`/`get`) or one of the N-bit forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Width {
    Bytes,
    W8,
    W16,
    W32,
    W64,
}

impl Width {
    const ALL: [Width; 5] = [Width::Bytes, Width::W8, Width::W16, Width::W32, Width::W64];

    /// Item size in bytes (= the offset alignment put/get require).
    fn size(self) -> usize {
        match self {
            Width::Bytes | Width::W8 => 1,
            Width::W16 => 2,
            Width::W32 => 4,
            Width::W64 => 8,
        }
    }
}

/// A put/get offset (resolved against the segment size and the width at run time).
#[derive(Debug, Clone, Copy)]
enum OffSpec {
    /// An aligned offset inside the segment.
    In(u16),
    /// An in-range offset plus 1..N/8−1 bytes (aligned for the byte forms).
    Misaligned(u16),
    /// −1, −N/8, −4096 or `i64::MIN`.
    Negative(u8),
    /// An aligned offset at or past the segment's end.
    PastEnd(u8),
    /// `i64::MAX` rounded down to the width (or not, with `true`).
    Max(bool),
}

/// A put/get item count (`rep_cnt`; the length for the byte forms).
#[derive(Debug, Clone, Copy)]
enum RepSpec {
    Zero,
    Small(u8),
    Many(u16),
    /// Up to the segment's end.
    Rest,
    /// One item past the segment's end.
    RestPlusOne,
}

/// A segment handle argument (`void *memseg` of the event calls).
#[derive(Debug, Clone, Copy)]
enum SegPick {
    Import(Pick),
    Export(Pick),
}

/// One entry of an `intr_signal_wait_pollfd` call.
#[derive(Debug, Clone, Copy)]
enum PollSpec {
    /// A segment entry asking for `events` (with `true`, preferably on a segment with a
    /// pending event).
    Seg(SegPick, i16, bool),
    /// An ordinary descriptor: the callback reports `POLLIN` for fd 3, nothing for the others;
    /// negative descriptors are ignored.
    Other(i32, i16),
}

#[derive(Debug, Clone, Copy)]
enum MapOff {
    Zero,
    Page(u8),
    Misaligned(u16),
    Negative(bool),
    PastEnd,
}

#[derive(Debug, Clone, Copy)]
enum MapLen {
    Zero,
    /// From the offset to the segment's end.
    Whole,
    Pages(u8),
    Bytes(u16),
    /// One byte past the segment's end.
    Over,
}

/// The `fixed_addr` argument of `import_map`.
#[derive(Debug, Clone, Copy)]
enum FixedSpec {
    None,
    /// The window's own address.
    Exact,
    /// The window's address plus a page (aligned, but not the window).
    NextPage,
    /// The window's address plus one byte.
    Misaligned,
    Zero,
}

/// What [`Op::Targeted`] does, to which handle.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// Destroy the exporter of a mapped import (the mapping outlives it).
    DestroyMapped,
    /// Destroy an export with poll descriptors held (`RSMERR_POLLFD_IN_USE`).
    DestroyPolled,
    /// Disconnect an import with poll descriptors held.
    DisconnectPolled,
    /// Disconnect a mapped import (`RSMERR_SEG_STILL_MAPPED`).
    DisconnectMapped,
    /// Unpublish the exporter of a connected import (forced disconnect).
    UnpublishImported,
    /// Post on the exporter of a force-disconnected import (which must not be rung).
    PostAbortedExporter,
    /// Wait (timeout 0) on a force-disconnected import.
    WaitAborted,
}

/// Barrier storage slots held by the harness.
const NB: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    GetCtrl(usize),
    RelCtrl(Pick),
    CreateLocal(Pick, RegionSpec),
    FreeLocal(Pick, Pick),
    ExportCreate(Pick, RegionSpec, u32),
    Destroy(Pick),
    Publish(Pick, SegidSpec, usize),
    Unpublish(Pick),
    Republish(Pick, usize),
    Rebind(Pick, RegionSpec),
    Connect(Pick, u8, SegidSpec, u32),
    Disconnect(Pick),
    Xfer {
        put: bool,
        imp: Pick,
        entries: Vec<EntrySpec>,
        count: CountSpec,
        flags: u32,
    },
    Access {
        put: bool,
        width: Width,
        imp: Pick,
        off: OffSpec,
        rep: RepSpec,
        seed: u64,
    },
    /// init_barrier(import, barrier type) into storage slot `u8 % NB`.
    InitBarrier(Pick, u8, u32),
    OpenBarrier(u8),
    OrderBarrier(u8),
    CloseBarrier(u8),
    DestroyBarrier(u8),
    /// Copy barrier storage (C struct assignment): slot `from` into slot `to`.
    CopyBarrier(u8, u8),
    SetMode(Pick, u32),
    GetMode(Pick),
    Post(SegPick, u32),
    /// intr_signal_wait with a timeout in ms (never negative: nothing may block); with
    /// `true`, on a live segment with a pending event if there is one.
    Wait(SegPick, i32, bool),
    /// A call on a handle chosen for its state (falling back to a live handle): the
    /// interactions between maps, poll descriptors and forced disconnects.
    Targeted(Target, u8),
    /// Rebind the exporter of a mapped import (if any; else as `Rebind(Live)`) to another
    /// place of the pool with the segment's length (chosen by the second seed).
    RebindMapped(u8, u8),
    GetPollfd(SegPick),
    ReleasePollfd(SegPick),
    WaitPollfd(Vec<PollSpec>, i32),
    Map {
        imp: Pick,
        attr: MapAttr,
        /// `None`: the permission the import was connected with.
        perm: Option<u32>,
        off: MapOff,
        len: MapLen,
        fixed: FixedSpec,
    },
    Unmap(Pick),
    /// A CPU store through an import's mapped window (if it has one): offset and length
    /// seeds.
    Poke(Pick, u16, u16),
}

/// Node configuration of one case.
#[derive(Debug, Clone, Copy)]
struct Setup {
    node_id: NodeId,
    max_segment_size: usize,
    quota_pages: Option<usize>,
    seed: u64,
}

fn pick() -> impl Strategy<Value = Pick> {
    pick_w(8)
}

/// A handle pick with weight `live` for a live handle (and 1–3 for each bad kind).
fn pick_w(live: u32) -> impl Strategy<Value = Pick> {
    prop_oneof![
        live => any::<u8>().prop_map(|i| Pick::Live(i.into())),
        live / 2 => any::<u8>().prop_map(|i| Pick::Newest(i.into())),
        3 => any::<u8>().prop_map(|i| Pick::Any(i.into())),
        1 => Just(Pick::Null),
        1 => Just(Pick::Foreign),
        1 => any::<u8>().prop_map(|i| Pick::WrongKind(i.into())),
    ]
}

fn len_spec() -> impl Strategy<Value = LenSpec> {
    prop_oneof![
        1 => Just(LenSpec::Zero),
        5 => any::<u8>().prop_map(LenSpec::Pages),
        2 => (1u16..9000).prop_map(LenSpec::Bytes),
        2 => Just(LenSpec::Rest),
    ]
}

fn raw_len() -> impl Strategy<Value = u16> {
    prop_oneof![1 => Just(0u16), 2 => Just(4096u16), 2 => 1u16..9000]
}

fn region_spec() -> impl Strategy<Value = RegionSpec> {
    region_spec_w(12, 6, 1, len_spec())
}

/// Regions for export create / rebind: mostly page-aligned whole pages.
fn export_region_spec() -> impl Strategy<Value = RegionSpec> {
    let len = prop_oneof![
        1 => Just(LenSpec::Zero),
        8 => any::<u8>().prop_map(LenSpec::Pages),
        1 => (1u16..9000).prop_map(LenSpec::Bytes),
        3 => Just(LenSpec::Rest),
    ];
    region_spec_w(16, 12, 1, len)
}

/// `pool` weight of a pool region (vs 1 for NULL, `unmapped` for each of unmapped and
/// overlong), `aligned` weight of no misalignment (vs 1).
fn region_spec_w(
    pool: u32,
    aligned: u32,
    unmapped: u32,
    len: impl Strategy<Value = LenSpec> + 'static,
) -> impl Strategy<Value = RegionSpec> {
    let misalign = prop_oneof![aligned => Just(0u16), 1 => 1u16..4096];
    prop_oneof![
        pool => (any::<u8>(), any::<u8>(), misalign, len)
            .prop_map(|(buf, page, misalign, len)| RegionSpec::Pool { buf, page, misalign, len }),
        1 => raw_len().prop_map(RegionSpec::Null),
        unmapped => raw_len().prop_map(RegionSpec::Unmapped),
        unmapped => any::<u8>().prop_map(RegionSpec::Overlong),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        60 => Just(Shape::In),
        1 => Just(Shape::RemoteOut),
        1 => Just(Shape::LocalOut),
        1 => Just(Shape::RemoteOverflow),
        1 => Just(Shape::LocalOverflow),
    ]
}

fn entry_spec() -> impl Strategy<Value = EntrySpec> {
    let local = prop_oneof![
        3 => pick_w(40).prop_map(LocalSpec::Handle),
        2 => region_spec_w(40, 6, 3, len_spec()).prop_map(LocalSpec::Va),
    ];
    let io_type = prop_oneof![
        80 => Just(None),
        1 => prop::sample::select(vec![0, 3, -1, RSM_HANDLE_TYPE, RSM_VA_TYPE]).prop_map(Some),
    ];
    (
        local,
        io_type,
        shape(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(local, io_type, shape, a, b, c)| EntrySpec {
            local,
            io_type,
            shape,
            a,
            b,
            c,
        })
}

fn count_spec() -> impl Strategy<Value = CountSpec> {
    prop_oneof![
        30 => Just(CountSpec::Exact),
        1 => Just(CountSpec::Zero),
        1 => Just(CountSpec::Seventeen),
        1 => Just(CountSpec::OneMore),
        2 => any::<u8>().prop_map(CountSpec::Prefix),
        1 => Just(CountSpec::NullIovec),
    ]
}

fn segid_spec() -> impl Strategy<Value = SegidSpec> {
    prop_oneof![
        4 => any::<u8>().prop_map(SegidSpec::Known),
        6 => Just(SegidSpec::Fixed(0)),
        3 => prop::sample::select(vec![FIRST_USER_SEGID, FIRST_USER_SEGID + 1, 0x50_0000,
            LAST_USER_SEGID]).prop_map(SegidSpec::Fixed),
        1 => prop::sample::select(vec![0x100, 0x3F_FFFF, RSM_USER_APP_ID_BASE,
            RSM_USER_APP_ID_BASE + 1, u32::MAX]).prop_map(SegidSpec::Fixed),
    ]
}

/// Calls of property 1: the §4.1–§4.6 calls and the §4.5/§4.7–§4.9 ones.
fn op() -> BoxedStrategy<Op> {
    // Boxed: the value trees of the nested unions are large, and debug builds would copy
    // them around on the test thread's stack.
    prop_oneof![
        67 => base_op().boxed(),
        50 => new_op().boxed(),
    ]
    .boxed()
}

fn seg_pick() -> impl Strategy<Value = SegPick> {
    prop_oneof![
        3 => pick_w(20).prop_map(SegPick::Import),
        2 => pick_w(20).prop_map(SegPick::Export),
    ]
}

fn off_spec() -> impl Strategy<Value = OffSpec> {
    prop_oneof![
        20 => any::<u16>().prop_map(OffSpec::In),
        2 => any::<u16>().prop_map(OffSpec::Misaligned),
        1 => any::<u8>().prop_map(OffSpec::Negative),
        2 => any::<u8>().prop_map(OffSpec::PastEnd),
        1 => any::<bool>().prop_map(OffSpec::Max),
    ]
}

fn rep_spec() -> impl Strategy<Value = RepSpec> {
    prop_oneof![
        1 => Just(RepSpec::Zero),
        8 => any::<u8>().prop_map(RepSpec::Small),
        3 => any::<u16>().prop_map(RepSpec::Many),
        2 => Just(RepSpec::Rest),
        1 => Just(RepSpec::RestPlusOne),
    ]
}

fn width() -> impl Strategy<Value = Width> {
    prop::sample::select(Width::ALL.to_vec())
}

fn poll_spec() -> impl Strategy<Value = PollSpec> {
    let events = prop::sample::select(vec![
        POLLRDNORM,
        POLLRDNORM,
        POLLRDNORM,
        POLLIN,
        0,
        POLLRDNORM | POLLIN,
    ]);
    prop_oneof![
        6 => (seg_pick(), events, any::<bool>()).prop_map(|(s, e, p)| PollSpec::Seg(s, e, p)),
        1 => (prop::sample::select(vec![-1, 2, 2, 3]), prop::sample::select(vec![POLLIN, 0]))
            .prop_map(|(fd, e)| PollSpec::Other(fd, e)),
    ]
}

fn map_op() -> impl Strategy<Value = Op> {
    let attr = prop::sample::select(vec![
        MapAttr::None,
        MapAttr::None,
        MapAttr::None,
        MapAttr::Fixed,
        MapAttr::Fixed,
        MapAttr::Reserved,
    ]);
    let perm = prop_oneof![
        6 => Just(None),
        6 => prop::sample::select(vec![0o600u32, 0o400, 0o200]).prop_map(Some),
        2 => prop::sample::select(vec![0u32, 0o700, 0o1600, 0o040, 0o606]).prop_map(Some),
    ];
    let off = prop_oneof![
        12 => Just(MapOff::Zero),
        4 => any::<u8>().prop_map(MapOff::Page),
        2 => any::<u16>().prop_map(MapOff::Misaligned),
        1 => any::<bool>().prop_map(MapOff::Negative),
        1 => Just(MapOff::PastEnd),
    ];
    let len = prop_oneof![
        1 => Just(MapLen::Zero),
        12 => Just(MapLen::Whole),
        2 => any::<u8>().prop_map(MapLen::Pages),
        2 => any::<u16>().prop_map(MapLen::Bytes),
        1 => Just(MapLen::Over),
    ];
    let fixed = prop_oneof![
        3 => Just(FixedSpec::Exact),
        1 => Just(FixedSpec::None),
        1 => Just(FixedSpec::NextPage),
        1 => Just(FixedSpec::Misaligned),
        1 => Just(FixedSpec::Zero),
    ];
    (pick_w(40), attr, perm, off, len, fixed).prop_map(|(imp, attr, perm, off, len, fixed)| {
        Op::Map {
            imp,
            attr,
            perm,
            off,
            len,
            fixed,
        }
    })
}

/// put/get, barriers and modes, events and poll descriptors, map/unmap.
fn new_op() -> impl Strategy<Value = Op> {
    let slot = || any::<u8>();
    let access = (
        any::<bool>(),
        width(),
        pick_w(20),
        off_spec(),
        rep_spec(),
        any::<u64>(),
    )
        .prop_map(|(put, width, imp, off, rep, seed)| Op::Access {
            put,
            width,
            imp,
            off,
            rep,
            seed,
        });
    let barrier_type = prop::sample::select(vec![1u32, 1, 2, 0x11, 0x12, 0, 0xFFFF]);
    let barrier = prop_oneof![
        3 => (pick_w(20), slot(), barrier_type).prop_map(|(p, k, t)| Op::InitBarrier(p, k, t)),
        5 => slot().prop_map(Op::OpenBarrier),
        3 => slot().prop_map(Op::OrderBarrier),
        3 => slot().prop_map(Op::CloseBarrier),
        1 => slot().prop_map(Op::DestroyBarrier),
        1 => (slot(), slot()).prop_map(|(a, b)| Op::CopyBarrier(a, b)),
        2 => (pick_w(20), prop::sample::select(vec![0u32, 0, 1, 2, u32::MAX]))
            .prop_map(|(p, m)| Op::SetMode(p, m)),
        1 => pick().prop_map(Op::GetMode),
    ];
    let post_flags = prop::sample::select(vec![0u32, 0, 2, 2, 1, 3, u32::MAX]);
    let timeout = prop::sample::select(vec![0i32, 0, 0, 0, 0, 0, 1, 7]);
    let poll_timeout = prop::sample::select(vec![0i32, 0, 0, 0, 3, 25]);
    let events = prop_oneof![
        5 => (seg_pick(), post_flags).prop_map(|(s, f)| Op::Post(s, f)),
        5 => (seg_pick(), timeout, any::<bool>()).prop_map(|(s, t, p)| Op::Wait(s, t, p)),
        3 => seg_pick().prop_map(Op::GetPollfd),
        2 => seg_pick().prop_map(Op::ReleasePollfd),
        2 => (prop::collection::vec(poll_spec(), 0..=4), poll_timeout)
            .prop_map(|(v, t)| Op::WaitPollfd(v, t)),
    ];
    let map = prop_oneof![
        8 => map_op(),
        2 => pick_w(20).prop_map(Op::Unmap),
        2 => (pick_w(40), any::<u16>(), any::<u16>()).prop_map(|(p, a, b)| Op::Poke(p, a, b)),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(i, p)| Op::RebindMapped(i, p)),
        5 => (
            prop::sample::select(vec![
                Target::DestroyMapped,
                Target::DestroyPolled,
                Target::DisconnectPolled,
                Target::DisconnectMapped,
                Target::UnpublishImported,
                Target::PostAbortedExporter,
                Target::WaitAborted,
            ]),
            any::<u8>()
        )
            .prop_map(|(t, i)| Op::Targeted(t, i)),
    ];
    prop_oneof![
        14 => access,
        19 => barrier,
        16 => events,
        9 => map,
    ]
}

fn base_op() -> impl Strategy<Value = Op> {
    let export_flags = prop::sample::select(vec![0u32, 1, 1, 1, 2, 3, 0xFF, 0x100]);
    let perm = prop_oneof![
        10 => Just(0o600u32),
        2 => Just(0o400u32),
        2 => Just(0o200u32),
        1 => prop::sample::select(vec![0u32, 0o700, 0o1600, 0o040, 0o004]),
    ];
    let sg_flags = prop::sample::select(vec![0u32, 0, 0, 1, 2, 3, 0x10, u32::MAX]);
    let connect_segid = prop_oneof![
        8 => any::<u8>().prop_map(SegidSpec::Published),
        2 => segid_spec(),
    ];
    // Mostly short vectors (a long one is valid only if every entry is).
    let entries = prop_oneof![
        3 => prop::collection::vec(entry_spec(), 1..=3),
        1 => prop::collection::vec(entry_spec(), 1..=RSM_MAX_SGIOREQS),
    ];
    prop_oneof![
        4 => any::<u8>().prop_map(|i| Op::GetCtrl(i.into())),
        1 => pick().prop_map(Op::RelCtrl),
        6 => (pick_w(20), region_spec()).prop_map(|(c, r)| Op::CreateLocal(c, r)),
        3 => (pick_w(20), pick()).prop_map(|(c, h)| Op::FreeLocal(c, h)),
        8 => (pick_w(20), export_region_spec(), export_flags)
            .prop_map(|(c, r, f)| Op::ExportCreate(c, r, f)),
        2 => pick().prop_map(Op::Destroy),
        8 => (pick_w(20), segid_spec(), any::<u8>()).prop_map(|(s, id, a)| Op::Publish(s, id, a.into())),
        2 => pick().prop_map(Op::Unpublish),
        2 => (pick(), any::<u8>()).prop_map(|(s, a)| Op::Republish(s, a.into())),
        3 => (pick(), export_region_spec()).prop_map(|(s, r)| Op::Rebind(s, r)),
        8 => (pick_w(20), any::<u8>(), connect_segid, perm)
            .prop_map(|(c, n, id, p)| Op::Connect(c, n, id, p)),
        2 => pick().prop_map(Op::Disconnect),
        18 => (any::<bool>(), pick_w(20), entries, count_spec(), sg_flags)
            .prop_map(|(put, imp, entries, count, flags)| Op::Xfer { put, imp, entries, count, flags }),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::sample::select(vec![0u32, 0, 5]),
        prop::sample::select(vec![1usize << 40, 1 << 40, 2 * PAGE_SIZE]),
        prop_oneof![3 => Just(None), 1 => (1usize..=10).prop_map(Some)],
        any::<u64>(),
    )
        .prop_map(|(node_id, max_segment_size, quota_pages, seed)| Setup {
            node_id,
            max_segment_size,
            quota_pages,
            seed,
        })
}

/// Calls that build a connection (with valid-looking arguments; they may still fail, e.g.
/// on a full table or the pin quota): export create, publish, connect, create a local handle.
/// Sequences start with a few of these so that they get to transfers early.
fn pipeline() -> impl Strategy<Value = Vec<Op>> {
    let live = || any::<u8>().prop_map(|i| Pick::Live(i.into()));
    let pool =
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(buf, page, n)| RegionSpec::Pool {
            buf,
            page,
            misalign: 0,
            len: LenSpec::Pages(n),
        });
    let local_pool =
        (any::<u8>(), any::<u8>(), 1u16..9000).prop_map(|(buf, page, n)| RegionSpec::Pool {
            buf,
            page,
            misalign: 0,
            len: LenSpec::Bytes(n),
        });
    (
        (live(), pool, prop::sample::select(vec![0u32, 1, 1])),
        (
            prop::sample::select(vec![0u32, 0, FIRST_USER_SEGID, FIRST_USER_SEGID + 1]),
            prop::sample::select(vec![0usize, 0, 1, 2, 3, 11]),
        ),
        (
            live(),
            prop::sample::select(vec![0o600u32, 0o600, 0o400, 0o200]),
        ),
        (live(), local_pool),
        // Make put/get on the new import possible: a barrier for implicit mode, or explicit
        // mode (or neither); or map the whole segment.
        prop_oneof![
            3 => any::<u8>().prop_map(|k| Some(Op::InitBarrier(Pick::Newest(0), k, 1))),
            1 => Just(Some(Op::SetMode(Pick::Newest(0), 0))),
            1 => Just(None),
            1 => Just(Some(Op::Map {
                imp: Pick::Newest(0),
                attr: MapAttr::None,
                perm: None,
                off: MapOff::Zero,
                len: MapLen::Whole,
                fixed: FixedSpec::None,
            })),
        ],
    )
        .prop_map(|((c, r, f), (id, acl), (c2, perm), (c3, lr), prep)| {
            let mut v = vec![
                Op::ExportCreate(c, r, f),
                Op::Publish(Pick::Newest(0), SegidSpec::Fixed(id), acl),
                Op::Connect(c2, 0, SegidSpec::Published(255), perm),
                Op::CreateLocal(c3, lr),
            ];
            v.extend(prep);
            v
        })
}

/// A sequence: 0–3 connection-building pipelines, then up to 80 steps, each an arbitrary
/// call or (rarely) another pipeline, so that connections are rebuilt after teardowns.
fn sequence() -> impl Strategy<Value = (Setup, Vec<Op>)> {
    let step = prop_oneof![
        20 => op().prop_map(|o| vec![o]),
        1 => pipeline(),
    ];
    (
        setup(),
        prop::collection::vec(pipeline(), 0..=3),
        prop::collection::vec(step, 1..=80),
    )
        .prop_map(|(s, a, b)| {
            (
                s,
                a.into_iter()
                    .flatten()
                    .chain(b.into_iter().flatten())
                    .collect(),
            )
        })
}

// =============================================================================================
// The model
// =============================================================================================

/// Deterministic bytes (splitmix64) to fill buffers with.
fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn pages_of(r: &FakeRegion) -> std::ops::RangeInclusive<usize> {
    r.addr() / PAGE_SIZE..=(r.addr() + r.len() - 1) / PAGE_SIZE
}

struct MCtrl {
    refs: u32,
    cur: Option<ControllerHandle>,
}

struct MLocal {
    h: LocalMemHandle,
    ctrl: usize,
    region: FakeRegion,
    live: bool,
}

struct MExport {
    h: ExportHandle,
    ctrl: usize,
    region: FakeRegion,
    rebind: bool,
    published: Option<(SegmentId, Vec<AccessEntry>)>,
    epoch: u32,
    events: u32,
    /// Poll descriptors held (get_pollfd − release_pollfd, never below 0).
    pollfds: u32,
    live: bool,
}

struct MImport {
    h: ImportHandle,
    export: usize,
    epoch: u32,
    info: ImportInfo,
    live: bool,
    /// Force-disconnected by a rebind while mapped (independent of the epoch).
    aborted: bool,
    /// Barrier mode: `true` = implicit (the default of new imports).
    implicit: bool,
    /// Token of the barrier implicit-mode put/get use (the last one initialised).
    barrier: Option<u64>,
    /// Pending events rung by the exporter.
    events: u32,
    pollfds: u32,
    /// The explicit mapping: window and permission.
    map: Option<(FakeRegion, Permission)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Uninit,
    Closed,
    Opened,
}

/// The model of one barrier storage slot.
#[derive(Debug, Clone, Copy)]
struct MBarrier {
    phase: Phase,
    /// The import it was initialised for (meaningless when uninitialised).
    import: usize,
    /// Ties the storage to its import's implicit-mode barrier (the core's barrier id).
    token: u64,
}

const UNINIT: MBarrier = MBarrier {
    phase: Phase::Uninit,
    import: 0,
    token: 0,
};

/// Which live segment a segment handle names.
#[derive(Debug, Clone, Copy)]
enum MSeg {
    Import(usize),
    Export(usize),
}

/// Ring a doorbell counter (spec §9.3: NO_ACCUMULATE drops the event if one is pending).
fn ring(events: &mut u32, coalesce: bool) {
    if !(coalesce && *events > 0) {
        *events = events.saturating_add(1);
    }
}

struct Model {
    node_id: NodeId,
    max_segment_size: usize,
    quota_pages: Option<usize>,
    pool: Vec<FakeRegion>,
    /// The bytes of every pool allocation.
    mem: Vec<Vec<u8>>,
    /// page -> pin count.
    pins: BTreeMap<usize, u32>,
    ctrls: [MCtrl; 2],
    ctrl_seen: Vec<ControllerHandle>,
    locals: Vec<MLocal>,
    exports: Vec<MExport>,
    imports: Vec<MImport>,
    next_auto: u32,
    ids_seen: Vec<SegmentId>,
    bars: [MBarrier; NB],
    next_token: u64,
}

impl Model {
    /// The allocation and offset holding `[addr, addr+len)`, if one does.
    fn locate(&self, addr: usize, len: usize) -> Option<(usize, usize)> {
        let end = addr.checked_add(len)?;
        let i = self
            .pool
            .iter()
            .position(|b| addr >= b.addr() && end <= b.addr() + b.len())?;
        Some((i, addr - self.pool[i].addr()))
    }

    fn read(&self, addr: usize, len: usize) -> Vec<u8> {
        let (b, off) = self.locate(addr, len).expect("model read outside the pool");
        self.mem[b][off..off + len].to_vec()
    }

    fn write(&mut self, addr: usize, data: &[u8]) {
        let (b, off) = self
            .locate(addr, data.len())
            .expect("model write outside the pool");
        self.mem[b][off..off + data.len()].copy_from_slice(data);
    }

    /// What `FakePlatform::pin` would say, mapped as rsm-core maps it (§4.3, §5.2).
    fn pin_check(&self, r: &FakeRegion) -> RsmResult<()> {
        if r.addr() == 0 || r.is_empty() || self.locate(r.addr(), r.len()).is_none() {
            return Err(BadAddr);
        }
        let new = pages_of(r).filter(|p| !self.pins.contains_key(p)).count();
        if self.quota_pages.is_some_and(|q| self.pins.len() + new > q) {
            return Err(InsufficientMem);
        }
        Ok(())
    }

    fn pin(&mut self, r: &FakeRegion) {
        for p in pages_of(r) {
            *self.pins.entry(p).or_insert(0) += 1;
        }
    }

    fn unpin(&mut self, r: &FakeRegion) {
        for p in pages_of(r) {
            let c = self.pins.get_mut(&p).expect("model unpin");
            *c -= 1;
            if *c == 0 {
                self.pins.remove(&p);
            }
        }
    }

    /// The controller index a handle is currently valid for.
    fn ctrl_valid(&self, h: ControllerHandle) -> Option<usize> {
        (0..2).find(|&c| self.ctrls[c].refs > 0 && self.ctrls[c].cur == Some(h))
    }

    fn live_local(&self, raw: u64) -> Option<usize> {
        self.locals
            .iter()
            .position(|l| l.live && l.h.into_raw() == raw)
    }

    fn live_export(&self, raw: u64) -> Option<usize> {
        self.exports
            .iter()
            .position(|e| e.live && e.h.into_raw() == raw)
    }

    fn live_import(&self, raw: u64) -> Option<usize> {
        self.imports
            .iter()
            .position(|i| i.live && i.h.into_raw() == raw)
    }

    /// The live segment behind a segment handle (`RSMERR_BAD_SEG_HNDL` otherwise).
    fn live_seg(&self, seg: SegmentRef) -> Option<MSeg> {
        match seg {
            SegmentRef::Import(h) => self.live_import(h.into_raw()).map(MSeg::Import),
            SegmentRef::Export(h) => self.live_export(h.into_raw()).map(MSeg::Export),
        }
    }

    /// The revents of a segment poll entry asking for `events` (§4.9,
    /// `intr_signal_wait_pollfd`): `POLLNVAL` for a bad handle, `POLLRDNORM` for a pending
    /// event (consumed with `consume`), `POLLHUP` for an aborted import with none left.
    fn seg_revents(&mut self, seg: SegmentRef, events: i16, consume: bool) -> i16 {
        let (pending, aborted) = match self.live_seg(seg) {
            None => return POLLNVAL,
            Some(MSeg::Export(ei)) => (&mut self.exports[ei].events, false),
            Some(MSeg::Import(ii)) => {
                let aborted = !self.connected(ii);
                (&mut self.imports[ii].events, aborted)
            }
        };
        if events & POLLRDNORM != 0 && *pending > 0 {
            if consume {
                *pending -= 1;
            }
            POLLRDNORM
        } else if aborted {
            POLLHUP
        } else {
            0
        }
    }

    /// A live import whose exporter neither unpublished nor destroyed the segment since the
    /// connect, and that no rebind force-disconnected (spec §6.4).
    fn connected(&self, ii: usize) -> bool {
        let im = &self.imports[ii];
        let ex = &self.exports[im.export];
        im.live && !im.aborted && ex.live && ex.epoch == im.epoch && ex.published.is_some()
    }

    fn live_counts(&self) -> (usize, usize, usize) {
        (
            self.locals.iter().filter(|l| l.live).count(),
            self.exports.iter().filter(|e| e.live).count(),
            self.imports.iter().filter(|i| i.live).count(),
        )
    }

    fn segid_in_use(&self, id: SegmentId) -> bool {
        self.exports
            .iter()
            .any(|e| e.live && e.published.as_ref().is_some_and(|p| p.0 == id))
    }

    /// ACL table (index chosen by the generator).
    fn acl(&self, i: usize) -> Vec<AccessEntry> {
        let l = self.node_id;
        let e = AccessEntry::new;
        match i % 12 {
            0 => vec![],
            1 => vec![e(l, 0o666)],
            2 => vec![e(l, 0o444)],
            3 => vec![e(l, 0o222)],
            4 => vec![e(l, 0o066)],
            5 => vec![e(l + 7, 0o666)],
            6 => vec![e(l, 0o777)],
            7 => vec![e(65, 0o666)],
            8 => vec![e(l, 0o200), e(l, 0o666)],
            9 => (0..65).map(|n| e(n % 64, 0o666)).collect(),
            10 => vec![e(64, 0o666), e(l, 0o600)],
            _ => vec![e(l, 0o600)],
        }
    }

    /// §4.3 / §9.16: ≤ 64 entries, node ≤ 64, permission ≤ 0666; on loopback at most one
    /// entry, for the local node.
    fn acl_valid(&self, acl: &[AccessEntry], ctrl: usize) -> bool {
        acl.len() <= 64
            && acl
                .iter()
                .all(|e| e.ae_node <= 64 && e.ae_permission <= 0o666)
            && !(ctrl == 0 && (acl.len() > 1 || acl.iter().any(|e| e.ae_node != self.node_id)))
    }

    /// §9.16: owner digit of the first entry for the node; empty ACL = read+write.
    fn granted(&self, acl: &[AccessEntry]) -> Option<u32> {
        if acl.is_empty() {
            return Some(0o600);
        }
        acl.iter()
            .find(|e| e.ae_node == self.node_id)
            .map(|e| e.ae_permission & 0o600)
    }
}

/// Live objects on a second `Rsm` instance: their handles must be rejected by the node under
/// test (§9.7).
struct Foreign {
    _node: Node,
    ctrl: u64,
    local: u64,
    export: u64,
    import: u64,
}

fn foreign() -> Foreign {
    let node = Node::new(FakePlatform::new(), Config::default());
    let ctrl = node.get_controller(None).unwrap();
    let buf = node.platform().alloc(PAGE_SIZE);
    let local = node.create_localmemory_handle(ctrl, buf.clone()).unwrap();
    let export = node
        .export_create(ctrl, buf, CreateFlags::ALLOW_REBIND)
        .unwrap();
    let id = node.export_publish(export, 0, &[]).unwrap();
    let import = node.import_connect(ctrl, 0, id, Permission::RDWR).unwrap();
    Foreign {
        _node: node,
        ctrl: ctrl.into_raw(),
        local: local.into_raw(),
        export: export.into_raw(),
        import: import.into_raw(),
    }
}

/// Controller names with the controller index they must resolve to (§4.1, §9.22).
fn names() -> Vec<(Option<String>, Option<usize>)> {
    let s = |n: &str| Some(n.to_string());
    vec![
        (None, Some(0)),
        (s("loopback"), Some(0)),
        (s("LOOPBACK3"), Some(0)),
        (s("LoopBack"), Some(0)),
        (s("rsmnet0"), Some(1)),
        (s("RsmNet0"), Some(1)),
        (s("rsmnet"), Some(1)),
        (s("rsmnet1"), None),
        (s("sci0"), None),
        (s(""), None),
        (s("0"), None),
        (s("rsmnet0 "), None),
        (Some("a".repeat(300)), None),
        // 255 bytes: still a name; 256 bytes (MAXNAMELEN) or more: not present.
        (
            Some(format!("loopback{}", "0".repeat(MAXNAMELEN - 1 - 8))),
            Some(0),
        ),
        (
            Some(format!("loopback{}", "0".repeat(MAXNAMELEN - 8))),
            None,
        ),
    ]
}

const CTRL_NAMES: [Option<&str>; 2] = [None, Some("rsmnet0")];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ctrl,
    Local,
    Export,
    Import,
}

struct Harness {
    node: Node,
    m: Model,
    /// The barrier storage (the application's `rsmapi_barrier_t`s), modelled by `m.bars`.
    bars: [Barrier; NB],
    foreign: Foreign,
    names: Vec<(Option<String>, Option<usize>)>,
    stats: Stats,
}

type TestResult = Result<(), TestCaseError>;

impl Harness {
    fn new(s: &Setup) -> Self {
        let node = Node::new(
            FakePlatform::new(),
            Config {
                node_id: s.node_id,
                max_segment_size: s.max_segment_size,
                ..Config::default()
            },
        );
        if let Some(q) = s.quota_pages {
            node.platform().set_pin_quota(q * PAGE_SIZE);
        }
        let mut pool = Vec::new();
        let mut mem = Vec::new();
        for (i, &pages) in POOL_PAGES.iter().enumerate() {
            let r = node.platform().alloc(pages * PAGE_SIZE);
            let bytes = fill(s.seed ^ ((i as u64) << 56), r.len());
            node.platform().write(&r, 0, &bytes);
            pool.push(r);
            mem.push(bytes);
        }
        Harness {
            node,
            m: Model {
                node_id: s.node_id,
                max_segment_size: s.max_segment_size,
                quota_pages: s.quota_pages,
                pool,
                mem,
                pins: BTreeMap::new(),
                ctrls: [MCtrl { refs: 0, cur: None }, MCtrl { refs: 0, cur: None }],
                ctrl_seen: Vec::new(),
                locals: Vec::new(),
                exports: Vec::new(),
                imports: Vec::new(),
                next_auto: RSM_USER_APP_ID_BASE,
                ids_seen: Vec::new(),
                bars: [UNINIT; NB],
                next_token: 1,
            },
            bars: std::array::from_fn(|_| Barrier::default()),
            foreign: foreign(),
            names: names(),
            stats: Stats::default(),
        }
    }

    /// Record the outcome and check it against the call's allow-list.
    fn outcome<T>(&mut self, call: Call, r: &RsmResult<T>) -> TestResult {
        let e = r.as_ref().err().copied();
        *self
            .stats
            .outcomes
            .entry((call, e.map_or(0, RsmError::code)))
            .or_insert(0) += 1;
        if let Some(e) = e {
            prop_assert!(
                call.allowed().contains(&e),
                "{:?} returned {:?}, which spec §4 does not allow for this call",
                call,
                e
            );
        }
        Ok(())
    }

    fn raws(&self, k: Kind, live_only: bool) -> Vec<u64> {
        match k {
            Kind::Ctrl if live_only => self
                .m
                .ctrls
                .iter()
                .filter(|c| c.refs > 0)
                .filter_map(|c| c.cur.map(ControllerHandle::into_raw))
                .collect(),
            Kind::Ctrl => self.m.ctrl_seen.iter().map(|h| h.into_raw()).collect(),
            Kind::Local => self
                .m
                .locals
                .iter()
                .filter(|l| l.live || !live_only)
                .map(|l| l.h.into_raw())
                .collect(),
            Kind::Export => self
                .m
                .exports
                .iter()
                .filter(|e| e.live || !live_only)
                .map(|e| e.h.into_raw())
                .collect(),
            Kind::Import => self
                .m
                .imports
                .iter()
                .filter(|i| i.live || !live_only)
                .map(|i| i.h.into_raw())
                .collect(),
        }
    }

    fn pick(&self, k: Kind, p: Pick) -> u64 {
        let from = |v: Vec<u64>, i: usize| if v.is_empty() { 0 } else { v[i % v.len()] };
        match p {
            Pick::Live(i) => {
                let live = self.raws(k, true);
                if live.is_empty() {
                    from(self.raws(k, false), i)
                } else {
                    from(live, i)
                }
            }
            Pick::Newest(i) => match self.raws(k, true).last() {
                Some(&raw) => raw,
                None => from(self.raws(k, false), i),
            },
            Pick::Any(i) => from(self.raws(k, false), i),
            Pick::Null => 0,
            Pick::Foreign => match k {
                Kind::Ctrl => self.foreign.ctrl,
                Kind::Local => self.foreign.local,
                Kind::Export => self.foreign.export,
                Kind::Import => self.foreign.import,
            },
            Pick::WrongKind(i) => {
                let mut other = Vec::new();
                for o in [Kind::Ctrl, Kind::Local, Kind::Export, Kind::Import] {
                    if o != k {
                        other.extend(self.raws(o, false));
                    }
                }
                from(other, i)
            }
        }
    }

    fn region(&self, s: RegionSpec) -> FakeRegion {
        let pool = &self.m.pool;
        match s {
            RegionSpec::Pool {
                buf,
                page,
                misalign,
                len,
            } => {
                let b = pool[usize::from(buf) % pool.len()].clone();
                let pages = b.len() / PAGE_SIZE;
                let off = usize::from(page) % pages * PAGE_SIZE + usize::from(misalign);
                let avail = b.len() - off;
                let len = match len {
                    LenSpec::Zero => 0,
                    LenSpec::Pages(k) => ((1 + usize::from(k) % 3) * PAGE_SIZE).min(avail),
                    LenSpec::Bytes(n) => usize::from(n).min(avail),
                    LenSpec::Rest => avail,
                };
                b.sub(off, len)
            }
            RegionSpec::Null(n) => FakeRegion::raw(0, n.into()),
            RegionSpec::Unmapped(n) => FakeRegion::raw(UNMAPPED, n.into()),
            RegionSpec::Overlong(buf) => {
                let b = pool[usize::from(buf) % pool.len()].clone();
                FakeRegion::raw(b.addr(), b.len() + PAGE_SIZE)
            }
        }
    }

    fn segid(&self, s: SegidSpec) -> SegmentId {
        match s {
            SegidSpec::Known(i) if !self.m.ids_seen.is_empty() => {
                self.m.ids_seen[usize::from(i) % self.m.ids_seen.len()]
            }
            SegidSpec::Known(_) => FIRST_USER_SEGID,
            SegidSpec::Published(i) => {
                let ids: Vec<SegmentId> = self
                    .m
                    .exports
                    .iter()
                    .filter(|e| e.live)
                    .filter_map(|e| e.published.as_ref().map(|p| p.0))
                    .collect();
                if ids.is_empty() {
                    self.segid(SegidSpec::Known(i))
                } else {
                    ids[usize::from(i) % ids.len()]
                }
            }
            SegidSpec::Fixed(v) => v,
        }
    }

    /// Run one operation and check it against the model.
    fn run(&mut self, op: &Op) -> TestResult {
        match op {
            Op::GetCtrl(i) => self.get_ctrl(*i),
            Op::RelCtrl(p) => self.rel_ctrl(*p),
            Op::CreateLocal(c, r) => self.create_local(*c, *r),
            Op::FreeLocal(c, h) => self.free_local(*c, *h),
            Op::ExportCreate(c, r, f) => self.export_create(*c, *r, *f),
            Op::Destroy(p) => self.destroy(*p),
            Op::Publish(p, id, acl) => self.publish(*p, *id, *acl),
            Op::Unpublish(p) => self.unpublish(*p),
            Op::Republish(p, acl) => self.republish(*p, *acl),
            Op::Rebind(p, r) => self.rebind(*p, *r),
            Op::Targeted(t, i) => self.targeted(*t, usize::from(*i)),
            Op::RebindMapped(i, at) => {
                // The exporter of a mapped import, if there is one.
                let mapped: Vec<(u64, FakeRegion)> = self
                    .m
                    .imports
                    .iter()
                    .filter(|im| im.live && im.map.is_some())
                    .map(|im| &self.m.exports[im.export])
                    .filter(|e| e.live)
                    .map(|e| (e.h.into_raw(), e.region.clone()))
                    .collect();
                let (raw, old) = match mapped.len() {
                    0 => (
                        self.pick(Kind::Export, Pick::Live(usize::from(*i))),
                        FakeRegion::raw(0, PAGE_SIZE),
                    ),
                    n => mapped[usize::from(*i) % n].clone(),
                };
                // Another place of the same length in the pool (page aligned).
                let mut places = Vec::new();
                for (b, r) in self.m.pool.iter().enumerate() {
                    for p in 0..r.len() / PAGE_SIZE {
                        let addr = r.addr() + p * PAGE_SIZE;
                        if p * PAGE_SIZE + old.len() <= r.len() && addr != old.addr() {
                            places.push((b, p));
                        }
                    }
                }
                let (b, p) = places[usize::from(*at) % places.len()];
                let r = RegionSpec::Pool {
                    buf: u8::try_from(b).unwrap_or(0),
                    page: u8::try_from(p).unwrap_or(0),
                    misalign: 0,
                    len: LenSpec::Bytes(u16::try_from(old.len()).unwrap_or(u16::MAX)),
                };
                self.rebind_raw(raw, r)
            }
            Op::Connect(c, n, id, perm) => self.connect(*c, *n, *id, *perm),
            Op::Disconnect(p) => self.disconnect(*p),
            Op::Xfer {
                put,
                imp,
                entries,
                count,
                flags,
            } => self.xfer(*put, *imp, entries, *count, *flags),
            Op::Access {
                put,
                width,
                imp,
                off,
                rep,
                seed,
            } => self.access(*put, *width, *imp, *off, *rep, *seed),
            Op::InitBarrier(p, k, ty) => self.init_barrier(*p, *k, *ty),
            Op::OpenBarrier(k) => self.open_barrier(*k),
            Op::OrderBarrier(k) => self.order_barrier(*k),
            Op::CloseBarrier(k) => self.close_barrier(*k),
            Op::DestroyBarrier(k) => self.destroy_barrier(*k),
            Op::CopyBarrier(a, b) => {
                let (a, b) = (self.slot(*a), usize::from(*b) % NB);
                self.bars[b] = self.bars[a].clone();
                self.m.bars[b] = self.m.bars[a];
                Ok(())
            }
            Op::SetMode(p, mode) => self.set_mode(*p, *mode),
            Op::GetMode(p) => self.get_mode(*p),
            Op::Post(s, f) => self.post(*s, *f),
            Op::Wait(s, t, pending) => self.wait(*s, *t, *pending),
            Op::GetPollfd(s) => self.get_pollfd(*s),
            Op::ReleasePollfd(s) => self.release_pollfd(*s),
            Op::WaitPollfd(v, t) => self.wait_pollfd(v, *t),
            Op::Map {
                imp,
                attr,
                perm,
                off,
                len,
                fixed,
            } => self.map(*imp, *attr, *perm, *off, *len, *fixed),
            Op::Unmap(p) => self.unmap(*p),
            Op::Poke(p, a, b) => self.poke(*p, *a, *b),
        }?;
        if self
            .m
            .imports
            .iter()
            .any(|im| im.live && im.map.is_some() && !self.m.exports[im.export].live)
        {
            self.stats.orphan_maps += 1;
        }
        self.check_invariants()
    }

    fn get_ctrl(&mut self, i: usize) -> TestResult {
        let (name, exp) = self.names[i % self.names.len()].clone();
        let r = self.node.get_controller(name.as_deref());
        self.outcome(Call::GetController, &r)?;
        match (exp, r) {
            (None, r) => prop_assert_eq!(r, Err(CtlrNotPresent), "name {:?}", name),
            (Some(c), Ok(h)) => {
                prop_assert!(!h.is_null());
                let mc = &mut self.m.ctrls[c];
                if mc.refs > 0 {
                    prop_assert_eq!(Some(h), mc.cur, "same controller, same handle (§4.1)");
                } else {
                    prop_assert!(
                        !self.m.ctrl_seen.contains(&h),
                        "a controller acquired again after its last release gets a new handle"
                    );
                    mc.cur = Some(h);
                    self.m.ctrl_seen.push(h);
                }
                self.m.ctrls[c].refs += 1;
            }
            (Some(c), Err(e)) => {
                prop_assert!(
                    false,
                    "get_controller({:?}) = {:?}, want ctrl {}",
                    name,
                    e,
                    c
                )
            }
        }
        Ok(())
    }

    fn rel_ctrl(&mut self, p: Pick) -> TestResult {
        let h = ControllerHandle::from_raw(self.pick(Kind::Ctrl, p));
        let exp = self.m.ctrl_valid(h);
        let r = self.node.release_controller(h);
        self.outcome(Call::ReleaseController, &r)?;
        match exp {
            Some(c) => {
                prop_assert_eq!(r, Ok(()));
                self.m.ctrls[c].refs -= 1;
            }
            None => prop_assert_eq!(r, Err(BadCtlrHndl)),
        }
        Ok(())
    }

    fn create_local(&mut self, c: Pick, rs: RegionSpec) -> TestResult {
        let ctrl = ControllerHandle::from_raw(self.pick(Kind::Ctrl, c));
        let region = self.region(rs);
        // §5.1 / §9.6 order, as documented on `create_localmemory_handle`.
        let exp = (|| {
            if region.addr() == 0 || region.addr() % PAGE_SIZE != 0 {
                return Err(BadAddr);
            }
            let c = self.m.ctrl_valid(ctrl).ok_or(BadCtlrHndl)?;
            if region.is_empty() || region.len() > self.m.max_segment_size {
                return Err(BadLength);
            }
            self.m.pin_check(&region)?;
            if self.m.live_counts().0 == L {
                return Err(InsufficientResources);
            }
            Ok(c)
        })();
        let r = self.node.create_localmemory_handle(ctrl, region.clone());
        self.outcome(Call::CreateLocal, &r)?;
        match (exp, r) {
            (Ok(c), Ok(h)) => {
                prop_assert!(!h.is_null());
                prop_assert!(
                    self.m.locals.iter().all(|l| l.h != h),
                    "local handle value reused"
                );
                self.m.pin(&region);
                self.m.locals.push(MLocal {
                    h,
                    ctrl: c,
                    region,
                    live: true,
                });
            }
            (exp, r) => prop_assert_eq!(
                r.map(|_| ()),
                exp.map(|_| ()),
                "create_localmemory_handle({:?})",
                region
            ),
        }
        Ok(())
    }

    fn free_local(&mut self, c: Pick, h: Pick) -> TestResult {
        let ctrl = ControllerHandle::from_raw(self.pick(Kind::Ctrl, c));
        let h = LocalMemHandle::from_raw(self.pick(Kind::Local, h));
        let exp = (|| {
            let c = self.m.ctrl_valid(ctrl).ok_or(BadCtlrHndl)?;
            let li = self.m.live_local(h.into_raw()).ok_or(BadLocalmemHndl)?;
            if self.m.locals[li].ctrl != c {
                return Err(BadLocalmemHndl);
            }
            Ok(li)
        })();
        let r = self.node.free_localmemory_handle(ctrl, h);
        self.outcome(Call::FreeLocal, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "free_localmemory_handle (§9.7)");
        if let Ok(li) = exp {
            let region = self.m.locals[li].region.clone();
            self.m.unpin(&region);
            self.m.locals[li].live = false;
        }
        Ok(())
    }

    fn export_create(&mut self, c: Pick, rs: RegionSpec, flags: u32) -> TestResult {
        let ctrl = ControllerHandle::from_raw(self.pick(Kind::Ctrl, c));
        let region = self.region(rs);
        // §4.3 order, as documented on `export_create`.
        let exp = (|| {
            let c = self.m.ctrl_valid(ctrl).ok_or(BadCtlrHndl)?;
            if region.addr() == 0 {
                return Err(BadAddr);
            }
            if region.is_empty() {
                return Err(BadLength);
            }
            if region.addr() % PAGE_SIZE != 0 || region.len() % PAGE_SIZE != 0 {
                return Err(BadMemAlignment);
            }
            if region.len() > self.m.max_segment_size {
                return Err(BadLength);
            }
            if self.m.live_counts().1 == E {
                return Err(InsufficientResources);
            }
            self.m.pin_check(&region)?;
            Ok(c)
        })();
        let r = self
            .node
            .export_create(ctrl, region.clone(), CreateFlags::from_bits_retain(flags));
        self.outcome(Call::ExportCreate, &r)?;
        match (exp, r) {
            (Ok(c), Ok(h)) => {
                prop_assert!(!h.is_null());
                prop_assert!(
                    self.m.exports.iter().all(|e| e.h != h),
                    "export handle reused"
                );
                self.m.pin(&region);
                self.m.exports.push(MExport {
                    h,
                    ctrl: c,
                    region,
                    rebind: flags & 1 != 0,
                    published: None,
                    epoch: 0,
                    events: 0,
                    pollfds: 0,
                    live: true,
                });
            }
            (exp, r) => prop_assert_eq!(
                r.map(|_| ()),
                exp.map(|_| ()),
                "export_create({:?})",
                region
            ),
        }
        Ok(())
    }

    fn destroy(&mut self, p: Pick) -> TestResult {
        self.destroy_raw(self.pick(Kind::Export, p))
    }

    fn destroy_raw(&mut self, raw: u64) -> TestResult {
        let h = ExportHandle::from_raw(raw);
        // Handle, then poll descriptors held (§4.9, §9.13).
        let exp = (|| {
            let ei = self.m.live_export(h.into_raw()).ok_or(BadSegHndl)?;
            if self.m.exports[ei].pollfds > 0 {
                return Err(PollfdInUse);
            }
            Ok(ei)
        })();
        let r = self.node.export_destroy(h);
        self.outcome(Call::ExportDestroy, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()));
        if let Ok(ei) = exp {
            let region = self.m.exports[ei].region.clone();
            self.m.unpin(&region);
            let ex = &mut self.m.exports[ei];
            ex.live = false;
            ex.published = None;
        }
        Ok(())
    }

    fn publish(&mut self, p: Pick, id: SegidSpec, acl: usize) -> TestResult {
        let h = ExportHandle::from_raw(self.pick(Kind::Export, p));
        let id = self.segid(id);
        let acl = self.m.acl(acl);
        // Order documented on `export_publish` (§4.3, §9.15, §9.16).
        let exp = (|| {
            let ei = self.m.live_export(h.into_raw()).ok_or(BadSegHndl)?;
            let ex = &self.m.exports[ei];
            if ex.published.is_some() {
                return Err(SegAlreadyPublished);
            }
            if id != 0 && !(FIRST_USER_SEGID..=LAST_USER_SEGID).contains(&id) {
                return Err(ReservedSegid);
            }
            if !self.m.acl_valid(&acl, ex.ctrl) {
                return Err(BadAcl);
            }
            if id != 0 && self.m.segid_in_use(id) {
                return Err(SegidInUse);
            }
            Ok(ei)
        })();
        let r = self.node.export_publish(h, id, &acl);
        self.outcome(Call::Publish, &r)?;
        match exp {
            Ok(ei) => {
                let want = if id != 0 {
                    id
                } else {
                    // §9.15: automatic ids upward from 0x80000000, skipping ids in use.
                    loop {
                        let cand = self.m.next_auto;
                        self.m.next_auto = cand.checked_add(1).unwrap_or(RSM_USER_APP_ID_BASE);
                        if !self.m.segid_in_use(cand) {
                            break cand;
                        }
                    }
                };
                prop_assert_eq!(r, Ok(want), "export_publish(id {:#x}, acl {:?})", id, acl);
                self.m.exports[ei].published = Some((want, acl));
                if !self.m.ids_seen.contains(&want) {
                    self.m.ids_seen.push(want);
                }
            }
            Err(e) => prop_assert_eq!(r, Err(e), "export_publish(id {:#x}, acl {:?})", id, acl),
        }
        Ok(())
    }

    fn unpublish(&mut self, p: Pick) -> TestResult {
        self.unpublish_raw(self.pick(Kind::Export, p))
    }

    fn unpublish_raw(&mut self, raw: u64) -> TestResult {
        let h = ExportHandle::from_raw(raw);
        let exp = (|| {
            let ei = self.m.live_export(h.into_raw()).ok_or(BadSegHndl)?;
            if self.m.exports[ei].published.is_none() {
                return Err(SegNotPublished);
            }
            Ok(ei)
        })();
        let r = self.node.export_unpublish(h);
        self.outcome(Call::Unpublish, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()));
        if let Ok(ei) = exp {
            let ex = &mut self.m.exports[ei];
            ex.published = None;
            ex.epoch += 1;
        }
        Ok(())
    }

    fn republish(&mut self, p: Pick, acl: usize) -> TestResult {
        let h = ExportHandle::from_raw(self.pick(Kind::Export, p));
        let acl = self.m.acl(acl);
        let exp = (|| {
            let ei = self.m.live_export(h.into_raw()).ok_or(BadSegHndl)?;
            let ex = &self.m.exports[ei];
            if ex.published.is_none() {
                return Err(SegNotPublished);
            }
            if !self.m.acl_valid(&acl, ex.ctrl) {
                return Err(BadAcl);
            }
            Ok(ei)
        })();
        let r = self.node.export_republish(h, &acl);
        self.outcome(Call::Republish, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "export_republish(acl {:?})", acl);
        if let Ok(ei) = exp {
            if let Some(p) = self.m.exports[ei].published.as_mut() {
                p.1 = acl;
            }
        }
        Ok(())
    }

    fn rebind(&mut self, p: Pick, rs: RegionSpec) -> TestResult {
        self.rebind_raw(self.pick(Kind::Export, p), rs)
    }

    fn rebind_raw(&mut self, raw: u64, rs: RegionSpec) -> TestResult {
        let h = ExportHandle::from_raw(raw);
        let region = self.region(rs);
        // Order documented on `export_rebind` (§4.3, §9.17). Ok(None): same address, no-op.
        let exp = (|| {
            let ei = self.m.live_export(h.into_raw()).ok_or(BadSegHndl)?;
            let ex = &self.m.exports[ei];
            if region.addr() == 0 {
                return Err(BadAddr);
            }
            if !ex.rebind {
                return Err(RebindNotAllowed);
            }
            if region.len() != ex.region.len() {
                return Err(BadLength);
            }
            if region.addr() == ex.region.addr() {
                return Ok(None);
            }
            if region.addr() % PAGE_SIZE != 0 {
                return Err(BadAddr);
            }
            self.m.pin_check(&region)?;
            Ok(Some(ei))
        })();
        let r = self.node.export_rebind(h, region.clone());
        self.outcome(Call::Rebind, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "export_rebind({:?})", region);
        if let Ok(Some(ei)) = exp {
            let old = self.m.exports[ei].region.clone();
            self.m.pin(&region);
            self.m.unpin(&old);
            self.m.exports[ei].region = region;
            // A mapping cannot follow the new pages: its import is force-disconnected and its
            // window keeps the old pages pinned until unmap (§4.7, `export_rebind`).
            for im in &mut self.m.imports {
                if im.live && im.export == ei && im.map.is_some() {
                    im.aborted = true;
                    self.stats.rebind_aborts += 1;
                }
            }
        }
        Ok(())
    }

    fn connect(&mut self, c: Pick, n: u8, id: SegidSpec, perm: u32) -> TestResult {
        let ctrl = ControllerHandle::from_raw(self.pick(Kind::Ctrl, c));
        let local = self.m.node_id;
        let node = [local, local, local, 0, local + 1, 63, 64, 1000][usize::from(n) % 8];
        let id = self.segid(id);
        let perm = Permission::from_bits_retain(perm);
        // Order documented on `import_connect` (§4.4, §9.11, §9.16).
        let exp = (|| {
            let c = self.m.ctrl_valid(ctrl).ok_or(BadCtlrHndl)?;
            if perm.bits() & !0o600 != 0 {
                return Err(PermDenied);
            }
            if self.m.live_counts().2 == I {
                return Err(InsufficientResources);
            }
            if c == 0 && node != local {
                return Err(CtlrNotPresent);
            }
            if node >= 64 || node != local {
                return Err(RemoteNodeUnreachable);
            }
            let ei = self
                .m
                .exports
                .iter()
                .position(|e| e.live && e.published.as_ref().is_some_and(|p| p.0 == id))
                .ok_or(SegNotPublished)?;
            let acl = &self.m.exports[ei].published.as_ref().unwrap().1;
            let granted = self.m.granted(acl).ok_or(SegNotPublishedToNode)?;
            if perm.bits() & !granted != 0 {
                return Err(PermDenied);
            }
            Ok(ei)
        })();
        let r = self.node.import_connect(ctrl, node, id, perm);
        self.outcome(Call::Connect, &r)?;
        match (exp, r) {
            (Ok(ei), Ok(h)) => {
                prop_assert!(!h.is_null());
                prop_assert!(
                    self.m.imports.iter().all(|i| i.h != h),
                    "import handle reused"
                );
                let ex = &self.m.exports[ei];
                self.m.imports.push(MImport {
                    h,
                    export: ei,
                    epoch: ex.epoch,
                    info: ImportInfo {
                        node,
                        segment_id: id,
                        size: ex.region.len(),
                        perm,
                    },
                    live: true,
                    aborted: false,
                    implicit: true,
                    barrier: None,
                    events: 0,
                    pollfds: 0,
                    map: None,
                });
            }
            (exp, r) => prop_assert_eq!(
                r.map(|_| ()),
                exp.map(|_| ()),
                "import_connect(node {}, id {:#x}, perm {:o})",
                node,
                id,
                perm.bits()
            ),
        }
        Ok(())
    }

    fn disconnect(&mut self, p: Pick) -> TestResult {
        self.disconnect_raw(self.pick(Kind::Import, p))
    }

    fn disconnect_raw(&mut self, raw: u64) -> TestResult {
        let h = ImportHandle::from_raw(raw);
        // Order documented on `import_disconnect`: handle, still mapped, poll descriptors.
        let exp = (|| {
            let ii = self.m.live_import(h.into_raw()).ok_or(BadSegHndl)?;
            let im = &self.m.imports[ii];
            if im.map.is_some() {
                return Err(SegStillMapped);
            }
            if im.pollfds > 0 {
                return Err(PollfdInUse);
            }
            Ok(ii)
        })();
        let r = self.node.import_disconnect(h);
        self.outcome(Call::Disconnect, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()));
        if let Ok(ii) = exp {
            self.m.imports[ii].live = false;
        }
        Ok(())
    }

    /// The model of putv/getv: the expected result and residual; applies the transfer to the
    /// model memory (§4.6, §9.2, §9.12, §9.19, §9.28, as documented on `putv`).
    fn model_xfer(
        &mut self,
        put: bool,
        imp: Option<usize>,
        iovec: Option<&[IoVec<'_, FakeRegion>]>,
        count: u64,
        flags: SgFlags,
    ) -> (RsmResult<()>, u64) {
        let pre = |e| (Err(e), count);
        let Some(ii) = imp else {
            return pre(BadSegHndl);
        };
        if count == 0 || count > RSM_MAX_SGIOREQS as u64 {
            return pre(BadSgio);
        }
        let Some(entries) = iovec.and_then(|v| v.get(..count as usize)) else {
            return pre(BadSgio);
        };
        let im = &self.m.imports[ii];
        let xi = im.export;
        let ex = &self.m.exports[xi];
        if !ex.live || ex.epoch != im.epoch || ex.published.is_none() || im.aborted {
            return pre(ConnAborted);
        }
        let need = if put {
            Permission::WRITE
        } else {
            Permission::READ
        };
        if !im.info.perm.contains(need) {
            return pre(PermDenied);
        }
        let seg = ex.region.clone();
        let mut steps = Vec::new();
        for e in entries {
            let local = match (e.io_type, &e.local) {
                (RSM_HANDLE_TYPE, LocalRef::Handle(h)) => match self.m.live_local(h.into_raw()) {
                    Some(li) => self.m.locals[li].region.clone(),
                    None => return pre(BadSgio),
                },
                (RSM_VA_TYPE, LocalRef::Va(r)) if r.addr() == 0 => return pre(BadAddr),
                (RSM_VA_TYPE, LocalRef::Va(r)) => (*r).clone(),
                _ => return pre(BadSgio),
            };
            let len = e.transfer_length;
            let fits = |off: usize, lim: usize| off.checked_add(len).is_some_and(|end| end <= lim);
            if !fits(e.remote_offset, seg.len()) {
                return pre(BadOffset);
            }
            if !fits(e.local_offset, local.len()) {
                return pre(BadLength);
            }
            steps.push((
                local.addr() + e.local_offset,
                seg.addr() + e.remote_offset,
                len,
            ));
        }
        for (k, &(la, ra, len)) in steps.iter().enumerate() {
            if len == 0 {
                continue;
            }
            if self.m.locate(la, len).is_none() {
                // The platform's copy fails: entries before k were transferred.
                return (Err(BadAddr), count - k as u64);
            }
            let (src, dst) = if put { (la, ra) } else { (ra, la) };
            let data = self.m.read(src, len);
            self.m.write(dst, &data);
            self.stats.bytes_moved_ok += len;
        }
        if flags.contains(SgFlags::IMPLICIT_SIGPOST) {
            let ex = &mut self.m.exports[xi];
            if !(flags.contains(SgFlags::SIGPOST_NO_ACCUMULATE) && ex.events > 0) {
                ex.events = ex.events.saturating_add(1);
            }
        }
        (Ok(()), 0)
    }

    fn xfer(
        &mut self,
        put: bool,
        imp: Pick,
        specs: &[EntrySpec],
        count: CountSpec,
        flags: u32,
    ) -> TestResult {
        let call = if put { Call::Putv } else { Call::Getv };
        let imp_raw = self.pick(Kind::Import, imp);
        let mi = self.m.live_import(imp_raw);
        let seg_len = mi.map_or(PAGE_SIZE, |i| self.m.imports[i].info.size);
        let mut regions = Vec::with_capacity(specs.len());
        let mut parts = Vec::with_capacity(specs.len());
        for s in specs {
            let (handle, region, local_len) = match s.local {
                LocalSpec::Handle(p) => {
                    let raw = self.pick(Kind::Local, p);
                    let len = self
                        .m
                        .live_local(raw)
                        .map_or(PAGE_SIZE, |li| self.m.locals[li].region.len());
                    (
                        Some(LocalMemHandle::from_raw(raw)),
                        FakeRegion::raw(0, 0),
                        len,
                    )
                }
                LocalSpec::Va(rs) => {
                    let r = self.region(rs);
                    (None, r.clone(), r.len())
                }
            };
            let (lo, ro, len) = resolve(s.shape, s.a, s.b, s.c, local_len, seg_len);
            let io_type = s.io_type.unwrap_or(if handle.is_some() {
                RSM_HANDLE_TYPE
            } else {
                RSM_VA_TYPE
            });
            regions.push(region);
            parts.push((io_type, handle, lo, ro, len));
        }
        let iov: Vec<IoVec<'_, FakeRegion>> = parts
            .iter()
            .zip(&regions)
            .map(|(&(io_type, h, lo, ro, len), r)| IoVec {
                io_type,
                local: match h {
                    Some(h) => LocalRef::Handle(h),
                    None => LocalRef::Va(r),
                },
                local_offset: lo,
                remote_offset: ro,
                transfer_length: len,
            })
            .collect();
        let n = iov.len() as u64;
        let (count, iovec) = match count {
            CountSpec::Exact => (n, Some(&iov[..])),
            CountSpec::Zero => (0, Some(&iov[..])),
            CountSpec::Seventeen => (17, Some(&iov[..])),
            CountSpec::OneMore => (n + 1, Some(&iov[..])),
            CountSpec::Prefix(k) => (1 + u64::from(k) % n, Some(&iov[..])),
            CountSpec::NullIovec => (n, None),
        };
        let sg_flags = SgFlags::from_bits_retain(flags);
        let (exp, exp_residual) = self.model_xfer(put, mi, iovec, count, sg_flags);
        if exp.is_err() && exp_residual != count {
            self.stats.partial_transfers += 1;
        }

        let mut sg = ScatGath {
            local_nodeid: 0,
            io_request_count: count,
            io_residual_count: GARBAGE,
            flags: sg_flags,
            remote_handle: ImportHandle::from_raw(imp_raw),
            iovec,
        };
        let r = if put {
            self.node.putv(&mut sg)
        } else {
            self.node.getv(&mut sg)
        };
        self.outcome(call, &r)?;
        // Model-independent rules first (§4.6, §9.2).
        prop_assert_eq!(sg.flags.bits(), flags, "flags must be unchanged (§4.6)");
        prop_assert!(sg.io_residual_count <= count, "residual > request count");
        if r.is_ok() {
            prop_assert_eq!(sg.io_residual_count, 0, "success ⇒ residual 0");
        }
        if let Err(e) = r {
            if e != BadAddr {
                prop_assert_eq!(sg.io_residual_count, count, "failure before transfer");
            }
        }
        prop_assert_eq!(r, exp, "{:?}: entries {:?}, count {}", call, parts, count);
        prop_assert_eq!(
            sg.io_residual_count,
            exp_residual,
            "io_residual_count (§9.2)"
        );
        self.check_memory()
    }

    // -----------------------------------------------------------------------------------------
    // put/get (§4.5)
    // -----------------------------------------------------------------------------------------

    /// The size of the segment an import handle value was connected to (a page for values
    /// that never were an import of this node).
    fn import_size(&self, raw: u64) -> usize {
        self.m
            .imports
            .iter()
            .find(|i| i.h.into_raw() == raw)
            .map_or(PAGE_SIZE, |i| i.info.size)
    }

    /// Offset and item count of a put/get on a segment of `size` bytes.
    fn access_args(width: Width, off: OffSpec, rep: RepSpec, size: usize) -> (i64, usize) {
        let w = width.size();
        let aligned_in = |s: u16| usize::from(s) % size / w * w;
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let wi = as_i64(w);
        let offset = match off {
            OffSpec::In(s) => as_i64(aligned_in(s)),
            OffSpec::Misaligned(s) if w > 1 => as_i64(aligned_in(s) + 1 + usize::from(s) % (w - 1)),
            OffSpec::Misaligned(s) => as_i64(aligned_in(s)),
            OffSpec::Negative(k) => [-1, -wi, -4096, i64::MIN][usize::from(k) % 4],
            OffSpec::PastEnd(k) => as_i64(size.div_ceil(w) * w + w * (usize::from(k) % 4)),
            OffSpec::Max(true) => i64::MAX,
            OffSpec::Max(false) => i64::MAX - i64::MAX % wi,
        };
        let rest = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= size)
            .map_or(3, |o| (size - o) / w);
        let items = match rep {
            RepSpec::Zero => 0,
            RepSpec::Small(k) => 1 + usize::from(k) % 16,
            RepSpec::Many(n) => usize::from(n) % 2048,
            RepSpec::Rest => rest,
            RepSpec::RestPlusOne => rest + 1,
        };
        (offset, items)
    }

    /// The model of put/get, in the check order documented on `Rsm::get` (§4.5 steps 1, 4,
    /// 5, 7, 8, 9, 10): the segment address the bytes move at, or `None` for a validated
    /// zero-length access.
    fn model_access(
        &self,
        put: bool,
        w: usize,
        raw: u64,
        offset: i64,
        len: usize,
    ) -> RsmResult<Option<usize>> {
        if raw == 0 {
            return Err(BadSegHndl);
        }
        if offset.rem_euclid(i64::try_from(w).unwrap_or(1)) != 0 {
            return Err(BadMemAlignment);
        }
        let ii = self.m.live_import(raw).ok_or(BadSegHndl)?;
        let im = &self.m.imports[ii];
        let need = if put {
            Permission::WRITE
        } else {
            Permission::READ
        };
        if !im.info.perm.contains(need) {
            return Err(PermDenied);
        }
        let off = usize::try_from(offset).map_err(|_| BadOffset)?;
        if off.checked_add(len).is_none_or(|end| end > im.info.size) {
            return Err(BadOffset);
        }
        if im.implicit && im.barrier.is_none() {
            return Err(BarrierUninitialized);
        }
        if !self.m.connected(ii) {
            return Err(ConnAborted);
        }
        if len == 0 {
            return Ok(None);
        }
        Ok(Some(self.m.exports[im.export].region.addr() + off))
    }

    fn access(
        &mut self,
        put: bool,
        width: Width,
        imp: Pick,
        off: OffSpec,
        rep: RepSpec,
        seed: u64,
    ) -> TestResult {
        const SENTINEL: u8 = 0xA5;
        let call = if put { Call::Put } else { Call::Get };
        let raw = self.pick(Kind::Import, imp);
        let (offset, items) = Self::access_args(width, off, rep, self.import_size(raw));
        let len = items * width.size();
        let exp = self.model_access(put, width.size(), raw, offset, len);
        let h = ImportHandle::from_raw(raw);
        let n = &self.node;
        if put {
            let data = fill(seed, len);
            let r = match width {
                Width::Bytes => n.put(h, offset, &data),
                Width::W8 => n.put8(h, offset, &data),
                Width::W16 => n.put16(h, offset, &to_items(&data, u16::from_ne_bytes)),
                Width::W32 => n.put32(h, offset, &to_items(&data, u32::from_ne_bytes)),
                Width::W64 => n.put64(h, offset, &to_items(&data, u64::from_ne_bytes)),
            };
            self.outcome(call, &r)?;
            prop_assert_eq!(
                r,
                exp.map(|_| ()),
                "{:?} {:?} offset {} items {}",
                call,
                width,
                offset,
                items
            );
            if let Ok(Some(addr)) = exp {
                self.m.write(addr, &data);
                self.stats.access_ok.insert((true, width));
                self.stats.bytes_moved_ok += len;
            }
        } else {
            let (r, got) = match width {
                Width::Bytes | Width::W8 => {
                    let mut b = vec![SENTINEL; len];
                    let r = if width == Width::Bytes {
                        n.get(h, offset, &mut b)
                    } else {
                        n.get8(h, offset, &mut b)
                    };
                    (r, b)
                }
                Width::W16 => {
                    let mut b = vec![u16::from_ne_bytes([SENTINEL; 2]); items];
                    (n.get16(h, offset, &mut b), from_items(&b, u16::to_ne_bytes))
                }
                Width::W32 => {
                    let mut b = vec![u32::from_ne_bytes([SENTINEL; 4]); items];
                    (n.get32(h, offset, &mut b), from_items(&b, u32::to_ne_bytes))
                }
                Width::W64 => {
                    let mut b = vec![u64::from_ne_bytes([SENTINEL; 8]); items];
                    (n.get64(h, offset, &mut b), from_items(&b, u64::to_ne_bytes))
                }
            };
            self.outcome(call, &r)?;
            prop_assert_eq!(
                r,
                exp.map(|_| ()),
                "{:?} {:?} offset {} items {}",
                call,
                width,
                offset,
                items
            );
            match exp {
                Ok(Some(addr)) => {
                    prop_assert!(
                        got == self.m.read(addr, len),
                        "get {:?} at {} returned other bytes than the segment's",
                        width,
                        offset
                    );
                    self.stats.access_ok.insert((false, width));
                    self.stats.bytes_moved_ok += len;
                }
                _ => prop_assert!(
                    got.iter().all(|&b| b == SENTINEL),
                    "a get that moved nothing wrote into the destination"
                ),
            }
        }
        self.check_memory()
    }

    // -----------------------------------------------------------------------------------------
    // Barriers and modes (§4.8)
    // -----------------------------------------------------------------------------------------

    fn init_barrier(&mut self, p: Pick, k: u8, ty: u32) -> TestResult {
        // Mostly into free storage (re-initialising storage in use is the rarer case).
        let free: Vec<usize> = (0..NB)
            .filter(|&i| self.m.bars[i].phase == Phase::Uninit)
            .collect();
        let k = match usize::from(k) {
            k @ ..192 if !free.is_empty() => free[k % free.len()],
            k => k % NB,
        };
        let raw = self.pick(Kind::Import, p);
        let exp = self.m.live_import(raw).ok_or(BadSegHndl);
        let r = self.node.init_barrier(
            ImportHandle::from_raw(raw),
            BarrierType(ty),
            &mut self.bars[k],
        );
        self.outcome(Call::InitBarrier, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "init_barrier");
        if let Ok(ii) = exp {
            // The last barrier initialised is the import's implicit-mode barrier; whatever
            // the storage named before keeps its own barrier (barrier.rs).
            let token = self.m.next_token;
            self.m.next_token += 1;
            self.m.imports[ii].barrier = Some(token);
            self.m.bars[k] = MBarrier {
                phase: Phase::Closed,
                import: ii,
                token,
            };
        }
        Ok(())
    }

    /// A barrier storage slot: `k < 32` any slot; `32..112` an initialised one; `112..` an
    /// opened one (falling back to an initialised one, then to any).
    fn slot(&self, k: u8) -> usize {
        let with = |ok: &dyn Fn(Phase) -> bool| -> Vec<usize> {
            (0..NB).filter(|&i| ok(self.m.bars[i].phase)).collect()
        };
        let init = with(&|p| p != Phase::Uninit);
        let open = with(&|p| p == Phase::Opened);
        let k = usize::from(k);
        match k {
            112.. if !open.is_empty() => open[k % open.len()],
            32.. if !init.is_empty() => init[k % init.len()],
            _ => k % NB,
        }
    }

    /// The first checks of open/order/close: uninitialised (or destroyed) storage, then an
    /// import that was disconnected.
    fn barrier_pre(&self, k: usize) -> RsmResult<MBarrier> {
        let b = self.m.bars[k];
        if b.phase == Phase::Uninit {
            return Err(BarrierUninitialized);
        }
        if !self.m.imports[b.import].live {
            return Err(BadSegHndl);
        }
        Ok(b)
    }

    fn open_barrier(&mut self, k: u8) -> TestResult {
        let k = self.slot(k);
        let exp = self.barrier_pre(k);
        let r = self.node.open_barrier(&mut self.bars[k]);
        self.outcome(Call::OpenBarrier, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "open_barrier of {:?}", self.m.bars[k]);
        if exp.is_ok() {
            self.m.bars[k].phase = Phase::Opened;
        }
        Ok(())
    }

    fn order_barrier(&mut self, k: u8) -> TestResult {
        let k = self.slot(k);
        let exp = self.barrier_pre(k).and_then(|b| {
            if b.phase != Phase::Opened {
                Err(BarrierNotOpened)
            } else if !self.m.connected(b.import) {
                Err(ConnAborted)
            } else {
                Ok(())
            }
        });
        let r = self.node.order_barrier(&mut self.bars[k]);
        self.outcome(Call::OrderBarrier, &r)?;
        prop_assert_eq!(r, exp, "order_barrier of {:?}", self.m.bars[k]);
        Ok(())
    }

    fn close_barrier(&mut self, k: u8) -> TestResult {
        let k = self.slot(k);
        let pre = self.barrier_pre(k).and_then(|b| {
            if b.phase == Phase::Opened {
                Ok(b)
            } else {
                Err(BarrierNotOpened)
            }
        });
        // The barrier is closed even when the close reports the abort.
        let exp = pre.and_then(|b| {
            if self.m.connected(b.import) {
                Ok(())
            } else {
                Err(ConnAborted)
            }
        });
        let r = self.node.close_barrier(&mut self.bars[k]);
        self.outcome(Call::CloseBarrier, &r)?;
        prop_assert_eq!(r, exp, "close_barrier of {:?}", self.m.bars[k]);
        if pre.is_ok() {
            self.m.bars[k].phase = Phase::Closed;
        }
        Ok(())
    }

    fn destroy_barrier(&mut self, k: u8) -> TestResult {
        let k = self.slot(k);
        let b = self.m.bars[k];
        let exp = if b.phase == Phase::Uninit {
            Err(BarrierUninitialized)
        } else {
            Ok(())
        };
        let r = self.node.destroy_barrier(&mut self.bars[k]);
        self.outcome(Call::DestroyBarrier, &r)?;
        prop_assert_eq!(r, exp, "destroy_barrier of {:?}", b);
        if exp.is_ok() {
            // Destroying the import's current barrier leaves it without one (§9.1); an older
            // one changes nothing.
            let im = &mut self.m.imports[b.import];
            if im.live && im.barrier == Some(b.token) {
                im.barrier = None;
            }
            self.m.bars[k] = UNINIT;
        }
        Ok(())
    }

    fn set_mode(&mut self, p: Pick, mode: u32) -> TestResult {
        let raw = self.pick(Kind::Import, p);
        let exp = self.m.live_import(raw).ok_or(BadSegHndl).and_then(|ii| {
            if mode > 1 {
                Err(BadMode)
            } else {
                Ok(ii)
            }
        });
        let r = self.node.set_mode(ImportHandle::from_raw(raw), mode);
        self.outcome(Call::SetMode, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "set_mode({})", mode);
        if let Ok(ii) = exp {
            self.m.imports[ii].implicit = mode == 1;
        }
        Ok(())
    }

    fn get_mode(&mut self, p: Pick) -> TestResult {
        let raw = self.pick(Kind::Import, p);
        let exp = self.m.live_import(raw).ok_or(BadSegHndl).map(|ii| {
            if self.m.imports[ii].implicit {
                BarrierMode::Implicit
            } else {
                BarrierMode::Explicit
            }
        });
        let r = self.node.get_mode(ImportHandle::from_raw(raw));
        self.outcome(Call::GetMode, &r)?;
        prop_assert_eq!(r, exp, "get_mode");
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Events and poll descriptors (§4.9)
    // -----------------------------------------------------------------------------------------

    fn seg_ref(&self, s: SegPick) -> SegmentRef {
        match s {
            SegPick::Import(p) => {
                SegmentRef::Import(ImportHandle::from_raw(self.pick(Kind::Import, p)))
            }
            SegPick::Export(p) => {
                SegmentRef::Export(ExportHandle::from_raw(self.pick(Kind::Export, p)))
            }
        }
    }

    fn events_mut(&mut self, t: MSeg) -> &mut u32 {
        match t {
            MSeg::Import(ii) => &mut self.m.imports[ii].events,
            MSeg::Export(ei) => &mut self.m.exports[ei].events,
        }
    }

    fn pollfds_mut(&mut self, t: MSeg) -> &mut u32 {
        match t {
            MSeg::Import(ii) => &mut self.m.imports[ii].pollfds,
            MSeg::Export(ei) => &mut self.m.exports[ei].pollfds,
        }
    }

    fn post(&mut self, s: SegPick, flags: u32) -> TestResult {
        self.post_seg(self.seg_ref(s), flags)
    }

    fn post_seg(&mut self, seg: SegmentRef, flags: u32) -> TestResult {
        // Handle, then (import) a force-disconnected connection (`intr_signal_post`).
        let exp = match self.m.live_seg(seg) {
            None => Err(BadSegHndl),
            Some(MSeg::Import(ii)) if !self.m.connected(ii) => Err(ConnAborted),
            Some(t) => Ok(t),
        };
        let r = self
            .node
            .intr_signal_post(seg, SigpostFlags::from_bits_retain(flags));
        self.outcome(Call::SigPost, &r)?;
        prop_assert_eq!(
            r,
            exp.map(|_| ()),
            "intr_signal_post({:?}, {:#x})",
            seg,
            flags
        );
        let coalesce = flags & SigpostFlags::NO_ACCUMULATE.bits() != 0;
        match exp {
            // An import rings its exporting segment.
            Ok(MSeg::Import(ii)) => {
                let ei = self.m.imports[ii].export;
                ring(&mut self.m.exports[ei].events, coalesce);
            }
            // An export rings every import still connected to it (none if unpublished).
            Ok(MSeg::Export(ei)) => {
                let epoch = self.m.exports[ei].epoch;
                let published = self.m.exports[ei].published.is_some();
                for ii in 0..self.m.imports.len() {
                    let im = &self.m.imports[ii];
                    if im.export != ei || !im.live {
                        continue;
                    }
                    if self.m.connected(ii) {
                        ring(&mut self.m.imports[ii].events, coalesce);
                        self.stats.imports_rung += 1;
                    } else if published && im.epoch == epoch {
                        // Aborted by a rebind while mapped: same epoch, still not rung.
                        self.stats.rebind_aborted_not_rung += 1;
                    }
                }
            }
            Err(_) => {}
        }
        Ok(())
    }

    /// A live segment with a pending event, if there is one (index seed `i`).
    fn pending_seg(&self, i: usize) -> Option<SegmentRef> {
        let with_events: Vec<SegmentRef> = self
            .m
            .imports
            .iter()
            .filter(|i| i.live && i.events > 0)
            .map(|i| SegmentRef::Import(i.h))
            .chain(
                self.m
                    .exports
                    .iter()
                    .filter(|e| e.live && e.events > 0)
                    .map(|e| SegmentRef::Export(e.h)),
            )
            .collect();
        (!with_events.is_empty()).then(|| with_events[i % with_events.len()])
    }

    /// The segment a [`SegPick`] names; with `pending`, preferably one with a pending event.
    fn seg_ref_pending(&self, s: SegPick, pending: bool) -> SegmentRef {
        let i = match s {
            SegPick::Import(Pick::Live(i)) | SegPick::Export(Pick::Live(i)) => i,
            _ => 0,
        };
        pending
            .then(|| self.pending_seg(i))
            .flatten()
            .unwrap_or_else(|| self.seg_ref(s))
    }

    fn wait(&mut self, s: SegPick, timeout: i32, pending: bool) -> TestResult {
        self.wait_seg(self.seg_ref_pending(s, pending), timeout)
    }

    fn wait_seg(&mut self, seg: SegmentRef, timeout: i32) -> TestResult {
        // Handle; a pending event is consumed; then an aborted import; then the timeout.
        let exp = match self.m.live_seg(seg) {
            None => Err(BadSegHndl),
            Some(MSeg::Export(ei)) if self.m.exports[ei].events == 0 => Err(Timeout),
            Some(MSeg::Import(ii)) if self.m.imports[ii].events == 0 => {
                Err(if self.m.connected(ii) {
                    Timeout
                } else {
                    ConnAborted
                })
            }
            Some(t) => Ok(t),
        };
        let before = self.node.platform().now();
        let r = self.node.intr_signal_wait(seg, timeout);
        let after = self.node.platform().now();
        self.outcome(Call::SigWait, &r)?;
        prop_assert_eq!(
            r,
            exp.map(|_| ()),
            "intr_signal_wait({:?}, {})",
            seg,
            timeout
        );
        // Simulated time: only a timed-out wait sleeps, exactly until its deadline.
        let slept = if r == Err(Timeout) {
            u64::try_from(timeout).unwrap_or(0)
        } else {
            0
        };
        prop_assert_eq!(
            after,
            before.add_millis(slept),
            "simulated clock after the wait"
        );
        if let Ok(t) = exp {
            *self.events_mut(t) -= 1;
            self.stats.events_consumed += 1;
        }
        Ok(())
    }

    fn get_pollfd(&mut self, s: SegPick) -> TestResult {
        let seg = self.seg_ref(s);
        // §9.14: an unpublished export or a force-disconnected import is not pollable.
        let exp = match self.m.live_seg(seg) {
            None => Err(BadSegHndl),
            Some(MSeg::Export(ei)) if self.m.exports[ei].published.is_none() => Err(BadSegHndl),
            Some(MSeg::Import(ii)) if !self.m.connected(ii) => Err(BadSegHndl),
            Some(t) => Ok(t),
        };
        let r = self.node.get_pollfd(seg);
        self.outcome(Call::GetPollfd, &r)?;
        let want = PollFd {
            fd: PollSource::Segment(seg),
            events: POLLRDNORM,
            revents: 0,
        };
        prop_assert_eq!(r, exp.map(|_| want), "get_pollfd({:?})", seg);
        if let Ok(t) = exp {
            *self.pollfds_mut(t) += 1;
        }
        Ok(())
    }

    fn release_pollfd(&mut self, s: SegPick) -> TestResult {
        let seg = self.seg_ref(s);
        let exp = self.m.live_seg(seg).ok_or(BadSegHndl);
        let r = self.node.release_pollfd(seg);
        self.outcome(Call::ReleasePollfd, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "release_pollfd({:?})", seg);
        if let Ok(t) = exp {
            // Releasing with none held succeeds and changes nothing.
            let c = self.pollfds_mut(t);
            *c = c.saturating_sub(1);
        }
        Ok(())
    }

    fn wait_pollfd(&mut self, specs: &[PollSpec], timeout: i32) -> TestResult {
        const GARBAGE_REVENTS: i16 = 0x7F7F;
        let other = |fd: i32, _events: i16| if fd == 3 { POLLIN } else { 0 };
        let mut fds: Vec<PollFd> = specs
            .iter()
            .map(|s| {
                let fd = match *s {
                    PollSpec::Seg(p, _, pending) => {
                        PollSource::Segment(self.seg_ref_pending(p, pending))
                    }
                    PollSpec::Other(fd, _) => PollSource::Other(fd),
                };
                let events = match *s {
                    PollSpec::Seg(_, e, _) | PollSpec::Other(_, e) => e,
                };
                PollFd {
                    fd,
                    events,
                    revents: GARBAGE_REVENTS,
                }
            })
            .collect();
        // The callback's view: ordinary descriptors ≥ 0, once per scan.
        let asked: Vec<(i32, i16)> = fds
            .iter()
            .filter_map(|f| match f.fd {
                PollSource::Other(fd) if fd >= 0 => Some((fd, f.events)),
                _ => None,
            })
            .collect();
        let other_revents = |f: &PollFd| match f.fd {
            PollSource::Other(fd) if fd >= 0 => other(fd, f.events),
            _ => 0,
        };
        // Ready if any entry is: then one event is consumed per readable segment entry, in
        // order, under one lock hold (`intr_signal_wait_pollfd`).
        let mut any = false;
        for f in &fds {
            any |= match f.fd {
                PollSource::Segment(seg) => self.m.seg_revents(seg, f.events, false) != 0,
                PollSource::Other(_) => other_revents(f) != 0,
            };
        }
        let want_revents: Vec<i16> = if any {
            fds.iter()
                .map(|f| match f.fd {
                    PollSource::Segment(seg) => self.m.seg_revents(seg, f.events, true),
                    PollSource::Other(_) => other_revents(f),
                })
                .collect()
        } else {
            vec![0; fds.len()]
        };
        let ready = want_revents.iter().filter(|&&r| r != 0).count();
        let exp = if any { Ok(ready) } else { Err(Timeout) };

        let mut calls = Vec::new();
        let before = self.node.platform().now();
        let r = self
            .node
            .intr_signal_wait_pollfd(&mut fds, timeout, |fd, events| {
                calls.push((fd, events));
                other(fd, events)
            });
        let after = self.node.platform().now();
        self.outcome(Call::WaitPollfd, &r)?;
        prop_assert_eq!(r, exp, "intr_signal_wait_pollfd({:?}, {})", specs, timeout);
        let got: Vec<i16> = fds.iter().map(|f| f.revents).collect();
        prop_assert_eq!(got, want_revents.clone(), "revents of {:?}", specs);
        // The callback sees each ordinary descriptor ≥ 0 once per scan, in order; a call that
        // times out re-checks them at least every 10 ms of its timeout (`OTHER_RECHECK_MS`).
        let t = u64::try_from(timeout).unwrap_or(0);
        if asked.is_empty() {
            prop_assert!(
                calls.is_empty(),
                "callback called without ordinary descriptors"
            );
        } else {
            let scans = calls.len() / asked.len();
            prop_assert!(
                calls.len() % asked.len() == 0 && calls.chunks(asked.len()).all(|c| c == asked),
                "callback calls {:?} are not whole scans of {:?}",
                calls,
                asked
            );
            let min_scans = if r.is_ok() { 1 } else { t.div_ceil(10).max(1) };
            prop_assert!(
                scans as u64 >= min_scans,
                "{} scans of the ordinary descriptors, want at least {}",
                scans,
                min_scans
            );
        }
        let slept = if r.is_err() { t } else { 0 };
        prop_assert_eq!(
            after,
            before.add_millis(slept),
            "simulated clock after the poll"
        );
        for (f, &rv) in fds.iter().zip(&want_revents) {
            if matches!(f.fd, PollSource::Segment(_)) {
                match rv {
                    POLLRDNORM => {
                        self.stats.events_consumed += 1;
                        self.stats.pollfd_consumed += 1;
                    }
                    POLLNVAL => self.stats.pollfd_nval += 1,
                    POLLHUP => self.stats.pollfd_hup += 1,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Mapping (§4.7)
    // -----------------------------------------------------------------------------------------

    fn map(
        &mut self,
        imp: Pick,
        attr: MapAttr,
        perm: Option<u32>,
        off: MapOff,
        len: MapLen,
        fixed: FixedSpec,
    ) -> TestResult {
        // `Live` prefers a connected, unmapped import (the others come from the other picks).
        let mappable: Vec<u64> = (0..self.m.imports.len())
            .filter(|&ii| self.m.connected(ii) && self.m.imports[ii].map.is_none())
            .map(|ii| self.m.imports[ii].h.into_raw())
            .collect();
        let raw = match imp {
            Pick::Live(i) if !mappable.is_empty() => mappable[i % mappable.len()],
            _ => self.pick(Kind::Import, imp),
        };
        let size = self.import_size(raw);
        let perm = perm.unwrap_or_else(|| {
            self.m
                .imports
                .iter()
                .find(|i| i.h.into_raw() == raw)
                .map_or(0o600, |i| i.info.perm.bits())
        });
        let as_i64 = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let offset = match off {
            MapOff::Zero => 0,
            MapOff::Page(k) => as_i64(usize::from(k) % 3 * PAGE_SIZE),
            MapOff::Misaligned(s) => as_i64(1 + usize::from(s) % (PAGE_SIZE - 1)),
            MapOff::Negative(page) => -as_i64(if page { PAGE_SIZE } else { 1 }),
            MapOff::PastEnd => as_i64(size),
        };
        let rest = usize::try_from(offset)
            .ok()
            .filter(|&o| o <= size)
            .map_or(PAGE_SIZE, |o| size - o);
        let length = match len {
            MapLen::Zero => 0,
            MapLen::Whole => rest,
            MapLen::Pages(k) => (1 + usize::from(k) % 3) * PAGE_SIZE,
            MapLen::Bytes(n) => 1 + usize::from(n) % 9000,
            MapLen::Over => rest + 1,
        };
        let mi = self.m.live_import(raw);
        // Where the window would be: the exporter's pages at `offset`.
        let base = mi.map_or(UNMAPPED, |ii| {
            self.m.exports[self.m.imports[ii].export].region.addr()
        });
        let win = base + usize::try_from(offset).unwrap_or(0);
        let fixed_addr = match fixed {
            FixedSpec::None => None,
            FixedSpec::Exact => Some(win),
            FixedSpec::NextPage => Some(win + PAGE_SIZE),
            FixedSpec::Misaligned => Some(win + 1),
            FixedSpec::Zero => Some(0),
        };
        let perm_t = Permission::from_bits_retain(perm);
        // Order documented on `import_map` (§4.7); every connection of the model is to this
        // node, so step 11 (remote segment) never applies.
        let exp = (|| {
            let ii = mi.ok_or(BadSegHndl)?;
            let im = &self.m.imports[ii];
            if im.map.is_some() {
                return Err(SegAlreadyMapped);
            }
            if !self.m.connected(ii) {
                return Err(ConnAborted);
            }
            if perm > 0o600 || perm & !0o600 != 0 {
                return Err(BadPerms);
            }
            if length == 0 {
                return Err(BadLength);
            }
            let off = usize::try_from(offset).map_err(|_| BadLength)?;
            if off.checked_add(length).is_none_or(|end| end > im.info.size) {
                return Err(BadLength);
            }
            if off % PAGE_SIZE != 0 {
                return Err(BadMemAlignment);
            }
            let window = FakeRegion::raw(win, length);
            if attr == MapAttr::Fixed {
                let at = fixed_addr.ok_or(BadMemAlignment)?;
                if at % PAGE_SIZE != 0 {
                    return Err(BadMemAlignment);
                }
                if at != window.addr() {
                    return Err(MapFailed);
                }
            }
            if !im.info.perm.contains(perm_t) {
                return Err(BadPerms);
            }
            self.m.pin_check(&window)?;
            Ok((ii, window))
        })();
        let r = self.node.import_map(
            ImportHandle::from_raw(raw),
            attr,
            perm_t,
            offset,
            length,
            fixed_addr,
        );
        self.outcome(Call::Map, &r)?;
        prop_assert_eq!(
            r,
            exp.clone().map(|(_, w)| w),
            "import_map({:?}, perm {:o}, offset {}, length {}, fixed {:?})",
            attr,
            perm,
            offset,
            length,
            fixed_addr
        );
        if let Ok((ii, window)) = exp {
            // The mapping's own pin: held until unmap, whatever the exporter does.
            self.m.pin(&window);
            self.m.imports[ii].map = Some((window, perm_t));
        }
        Ok(())
    }

    fn targeted(&mut self, t: Target, i: usize) -> TestResult {
        // Live force-disconnected imports: those a rebind aborted if any, else all of them.
        fn aborted_first(m: &Model) -> Vec<usize> {
            let live = |ii: &usize| m.imports[*ii].live;
            let rebound: Vec<usize> = (0..m.imports.len())
                .filter(live)
                .filter(|&ii| m.imports[ii].aborted)
                .collect();
            if rebound.is_empty() {
                (0..m.imports.len())
                    .filter(live)
                    .filter(|&ii| !m.connected(ii))
                    .collect()
            } else {
                rebound
            }
        }
        let m = &self.m;
        let imports = m.imports.iter().filter(|im| im.live);
        let exporter = |im: &MImport| &m.exports[im.export];
        let raws: Vec<u64> = match t {
            Target::DestroyMapped => imports
                .filter(|im| im.map.is_some() && exporter(im).live)
                .map(|im| exporter(im).h.into_raw())
                .collect(),
            Target::DestroyPolled => m
                .exports
                .iter()
                .filter(|e| e.live && e.pollfds > 0)
                .map(|e| e.h.into_raw())
                .collect(),
            Target::DisconnectPolled => imports
                .filter(|im| im.pollfds > 0)
                .map(|im| im.h.into_raw())
                .collect(),
            Target::DisconnectMapped => imports
                .filter(|im| im.map.is_some())
                .map(|im| im.h.into_raw())
                .collect(),
            Target::UnpublishImported => imports
                .filter(|im| exporter(im).live && exporter(im).published.is_some())
                .map(|im| exporter(im).h.into_raw())
                .collect(),
            // Imports aborted by a rebind first: their exporter is still published at the
            // same epoch, so only the abort itself keeps them from being rung.
            Target::PostAbortedExporter => aborted_first(m)
                .into_iter()
                .map(|ii| exporter(&m.imports[ii]))
                .filter(|e| e.live)
                .map(|e| e.h.into_raw())
                .collect(),
            Target::WaitAborted => aborted_first(m)
                .into_iter()
                .map(|ii| m.imports[ii].h.into_raw())
                .collect(),
        };
        let export = matches!(
            t,
            Target::DestroyMapped
                | Target::DestroyPolled
                | Target::UnpublishImported
                | Target::PostAbortedExporter
        );
        let kind = if export { Kind::Export } else { Kind::Import };
        let raw = match raws.len() {
            0 => self.pick(kind, Pick::Live(i)),
            n => raws[i % n],
        };
        match t {
            Target::DestroyMapped | Target::DestroyPolled => self.destroy_raw(raw),
            Target::UnpublishImported => self.unpublish_raw(raw),
            Target::DisconnectPolled | Target::DisconnectMapped => self.disconnect_raw(raw),
            Target::PostAbortedExporter => {
                let seg = SegmentRef::Export(ExportHandle::from_raw(raw));
                self.post_seg(seg, 0)
            }
            Target::WaitAborted => {
                let seg = SegmentRef::Import(ImportHandle::from_raw(raw));
                self.wait_seg(seg, 0)
            }
        }
    }

    /// An import handle: for `Pick::Live`, a mapped live import if there is one.
    fn pick_mapped(&self, p: Pick) -> u64 {
        let mapped: Vec<u64> = self
            .m
            .imports
            .iter()
            .filter(|i| i.live && i.map.is_some())
            .map(|i| i.h.into_raw())
            .collect();
        match p {
            Pick::Live(i) if !mapped.is_empty() => mapped[i % mapped.len()],
            _ => self.pick(Kind::Import, p),
        }
    }

    fn unmap(&mut self, p: Pick) -> TestResult {
        let raw = self.pick_mapped(p);
        let exp = self.m.live_import(raw).ok_or(BadSegHndl).and_then(|ii| {
            self.m.imports[ii]
                .map
                .clone()
                .map(|(w, _)| (ii, w))
                .ok_or(SegNotMapped)
        });
        let r = self.node.import_unmap(ImportHandle::from_raw(raw));
        self.outcome(Call::Unmap, &r)?;
        prop_assert_eq!(r, exp.clone().map(|_| ()), "import_unmap");
        if let Ok((ii, w)) = exp {
            self.m.unpin(&w);
            self.m.imports[ii].map = None;
        }
        Ok(())
    }

    /// A CPU store through the mapped window (the exporter's pages themselves, even after a
    /// forced disconnect): later get/getv and the memory check must see it.
    fn poke(&mut self, p: Pick, a: u16, b: u16) -> TestResult {
        let raw = self.pick_mapped(p);
        let Some(ii) = self.m.live_import(raw) else {
            return Ok(());
        };
        let Some((w, _)) = self.m.imports[ii].map.clone() else {
            return Ok(());
        };
        let off = usize::from(a) % w.len();
        let n = 1 + usize::from(b) % (w.len() - off).min(64);
        let data = fill(u64::from(a) << 16 | u64::from(b), n);
        self.node.platform().write(&w, off, &data);
        self.m.write(w.addr() + off, &data);
        self.stats.pokes += 1;
        self.check_memory()
    }

    /// The fake memory equals the model, byte for byte.
    fn check_memory(&self) -> TestResult {
        for (i, r) in self.m.pool.iter().enumerate() {
            let actual = self.node.platform().read(r, 0, r.len());
            if actual != self.m.mem[i] {
                let at = actual
                    .iter()
                    .zip(&self.m.mem[i])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                prop_assert!(
                    false,
                    "memory of pool buffer {} differs from the model at offset {}",
                    i,
                    at
                );
            }
        }
        Ok(())
    }

    fn check_invariants(&self) -> TestResult {
        prop_assert_eq!(
            self.node.slots_in_use(),
            self.m.live_counts(),
            "slots_in_use"
        );
        prop_assert_eq!(
            self.node.platform().pinned_pages(),
            self.m.pins.len(),
            "pinned pages"
        );
        for ex in self.m.exports.iter().filter(|e| e.live) {
            prop_assert_eq!(
                self.node.export_segment_id(ex.h),
                Ok(ex.published.as_ref().map(|p| p.0))
            );
            prop_assert_eq!(self.node.export_pending_events(ex.h), Ok(ex.events));
        }
        for im in self.m.imports.iter().filter(|i| i.live) {
            prop_assert_eq!(self.node.import_info(im.h), Ok(im.info));
            prop_assert_eq!(
                self.node.import_mapping(im.h),
                Ok(im.map.clone()),
                "import_mapping"
            );
            let mode = if im.implicit {
                BarrierMode::Implicit
            } else {
                BarrierMode::Explicit
            };
            prop_assert_eq!(self.node.get_mode(im.h), Ok(mode));
        }
        // Zero-length put/get are validated no-ops: they observe the handle state, the
        // permission, the implicit-mode barrier and the forced disconnect without side effects.
        for im in self.m.imports.iter().filter(|i| i.live) {
            let raw = im.h.into_raw();
            prop_assert_eq!(
                self.node.get(im.h, 0, &mut []),
                self.model_access(false, 1, raw, 0, 0).map(|_| ()),
                "zero-length get probe"
            );
            prop_assert_eq!(
                self.node.put64(im.h, 8, &[]),
                self.model_access(true, 8, raw, 8, 0).map(|_| ()),
                "zero-length put64 probe"
            );
        }
        // No phantom events: a segment the model says has none pending reports so to a
        // zero-timeout wait (which then consumes nothing and does not move the clock).
        let now = self.node.platform().now();
        for (ii, im) in self.m.imports.iter().enumerate() {
            if im.live && im.events == 0 {
                let want = if self.m.connected(ii) {
                    Timeout
                } else {
                    ConnAborted
                };
                prop_assert_eq!(
                    self.node.intr_signal_wait(im.h.into(), 0),
                    Err(want),
                    "import with no pending event"
                );
            }
        }
        for ex in self.m.exports.iter().filter(|e| e.live && e.events == 0) {
            prop_assert_eq!(
                self.node.intr_signal_wait(ex.h.into(), 0),
                Err(Timeout),
                "export with no pending event"
            );
        }
        prop_assert_eq!(self.node.platform().now(), now, "a zero-timeout wait slept");
        for (b, mb) in self.bars.iter().zip(&self.m.bars) {
            let init = mb.phase != Phase::Uninit;
            prop_assert_eq!(b.is_initialized(), init, "barrier storage {:?}", mb);
            prop_assert_eq!(
                b.is_open(),
                mb.phase == Phase::Opened,
                "barrier storage {:?}",
                mb
            );
            prop_assert_eq!(
                b.segment(),
                init.then(|| self.m.imports[mb.import].h),
                "barrier storage {:?}",
                mb
            );
        }
        Ok(())
    }

    /// Free everything, release every controller, and prove nothing leaked.
    fn teardown(&mut self) -> TestResult {
        self.check_memory()?;
        for li in 0..self.m.locals.len() {
            if !self.m.locals[li].live {
                continue;
            }
            let c = self.m.locals[li].ctrl;
            if self.m.ctrls[c].refs == 0 {
                let before = self.m.ctrls[c].refs;
                self.get_ctrl(
                    self.names
                        .iter()
                        .position(|n| n.0.as_deref() == CTRL_NAMES[c])
                        .unwrap(),
                )?;
                prop_assert_eq!(self.m.ctrls[c].refs, before + 1);
            }
            let ctrl = self.m.ctrls[c].cur.unwrap();
            let h = self.m.locals[li].h;
            prop_assert_eq!(self.node.free_localmemory_handle(ctrl, h), Ok(()));
            let region = self.m.locals[li].region.clone();
            self.m.unpin(&region);
            self.m.locals[li].live = false;
        }
        // Barriers hold nothing in the node, but destroy them as an application would.
        for k in 0..NB {
            if self.m.bars[k].phase != Phase::Uninit {
                self.destroy_barrier(k as u8)?;
            }
        }
        // Unmap and release every poll descriptor first: disconnect and destroy refuse
        // otherwise (checked by the property); one release too many is a no-op.
        for ii in 0..self.m.imports.len() {
            if !self.m.imports[ii].live {
                continue;
            }
            let h = self.m.imports[ii].h;
            if let Some((w, _)) = self.m.imports[ii].map.take() {
                prop_assert_eq!(self.node.import_unmap(h), Ok(()));
                self.m.unpin(&w);
            }
            for _ in 0..=std::mem::take(&mut self.m.imports[ii].pollfds) {
                prop_assert_eq!(self.node.release_pollfd(h.into()), Ok(()));
            }
        }
        for ex in self.m.exports.iter_mut().filter(|e| e.live) {
            for _ in 0..=std::mem::take(&mut ex.pollfds) {
                prop_assert_eq!(self.node.release_pollfd(ex.h.into()), Ok(()));
            }
        }
        for im in self.m.imports.iter_mut().filter(|i| i.live) {
            prop_assert_eq!(self.node.import_disconnect(im.h), Ok(()));
            im.live = false;
        }
        for ex in self.m.exports.iter_mut().filter(|e| e.live) {
            prop_assert_eq!(self.node.export_destroy(ex.h), Ok(()));
            ex.live = false;
        }
        for c in &mut self.m.ctrls {
            while c.refs > 0 {
                prop_assert_eq!(self.node.release_controller(c.cur.unwrap()), Ok(()));
                c.refs -= 1;
            }
        }
        for h in &self.m.ctrl_seen {
            prop_assert_eq!(self.node.release_controller(*h), Err(BadCtlrHndl));
        }
        prop_assert_eq!(self.node.slots_in_use(), (0, 0, 0), "leaked slots");
        prop_assert_eq!(self.node.platform().pinned_pages(), 0, "leaked pins");
        self.check_memory()
    }
}

/// Native-endian items from bytes (the N-bit put forms).
fn to_items<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect()
}

/// The bytes of native-endian items (the N-bit get forms).
fn from_items<const N: usize, T: Copy>(items: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    items.iter().flat_map(|&x| f(x)).collect()
}

/// Offsets and length of an entry of `shape` for a local side of `local_len` bytes and a
/// segment of `seg_len` bytes.
fn resolve(
    shape: Shape,
    a: u16,
    b: u16,
    c: u16,
    local_len: usize,
    seg_len: usize,
) -> (usize, usize, usize) {
    let (a, b, c) = (usize::from(a), usize::from(b), usize::from(c));
    let within = |seed: usize, lim: usize, len: usize| {
        if lim >= len {
            seed % (lim - len + 1)
        } else {
            0
        }
    };
    match shape {
        Shape::In => {
            let len = a % (local_len.min(seg_len) + 1);
            (within(b, local_len, len), within(c, seg_len, len), len)
        }
        Shape::RemoteOut => {
            let len = 1 + a % 64;
            (
                within(b, local_len, len),
                seg_len.saturating_sub(len) + 1 + c % 64,
                len,
            )
        }
        Shape::LocalOut => {
            let len = 1 + a % 64;
            (
                local_len.saturating_sub(len) + 1 + b % 64,
                within(c, seg_len, len),
                len,
            )
        }
        Shape::RemoteOverflow => (0, usize::MAX - c % 8, 9 + a % 64),
        Shape::LocalOverflow => (usize::MAX - b % 8, 0, 9 + a % 64),
    }
}

fn run_sequence(s: &Setup, ops: &[Op]) -> Result<Stats, TestCaseError> {
    let mut h = Harness::new(s);
    // Prologue: hold both controllers once, so that the random part starts with valid handles.
    h.run(&Op::GetCtrl(0))?;
    h.run(&Op::GetCtrl(4))?;
    for (i, op) in ops.iter().enumerate() {
        h.run(op)
            .map_err(|e| TestCaseError::fail(format!("op #{i} {op:?}: {e}")))?;
        if std::env::var_os("RSM_PROP_TRACE").is_some() {
            eprintln!("{op:?} -> live {:?}", h.m.live_counts());
        }
    }
    h.teardown()?;
    Ok(h.stats)
}

proptest! {
    #![proptest_config(config(512))]

    /// Property 1 (see the module docs).
    #[test]
    fn random_api_sequences_match_the_model((s, ops) in sequence()) {
        run_sequence(&s, &ops)?;
    }
}

/// The generator of property 1 reaches the paths it is meant to exercise (fixed seed).
#[test]
fn random_sequences_reach_the_interesting_paths() {
    let mut runner = TestRunner::deterministic();
    let strategy = sequence();
    let mut total = Stats::default();
    let n: usize = std::env::var("RSM_PROP_SEQS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    for _ in 0..n {
        let (s, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let stats = run_sequence(&s, &ops).unwrap_or_else(|e| panic!("{e}"));
        total.add(stats);
    }
    let must = [
        (Call::Putv, None),
        (Call::Getv, None),
        (Call::Putv, Some(BadSgio)),
        (Call::Putv, Some(BadSegHndl)),
        (Call::Getv, Some(BadOffset)),
        (Call::Putv, Some(ConnAborted)),
        (Call::CreateLocal, None),
        (Call::CreateLocal, Some(BadAddr)),
        (Call::CreateLocal, Some(InsufficientMem)),
        (Call::FreeLocal, None),
        (Call::FreeLocal, Some(BadLocalmemHndl)),
        (Call::ExportCreate, None),
        (Call::ExportCreate, Some(BadMemAlignment)),
        (Call::ExportCreate, Some(InsufficientResources)),
        (Call::Publish, None),
        (Call::Publish, Some(SegidInUse)),
        (Call::Publish, Some(BadAcl)),
        (Call::Rebind, None),
        (Call::Connect, None),
        (Call::Connect, Some(PermDenied)),
        (Call::Connect, Some(InsufficientResources)),
        (Call::Disconnect, Some(BadSegHndl)),
        (Call::ExportDestroy, None),
        (Call::ReleaseController, Some(BadCtlrHndl)),
        // put/get (§4.5): success and each step of the check order.
        (Call::Put, None),
        (Call::Get, None),
        (Call::Put, Some(BadSegHndl)),
        (Call::Get, Some(BadMemAlignment)),
        (Call::Put, Some(PermDenied)),
        (Call::Get, Some(BadOffset)),
        (Call::Put, Some(BarrierUninitialized)),
        (Call::Get, Some(BarrierUninitialized)),
        (Call::Put, Some(ConnAborted)),
        // Barriers and modes (§4.8).
        (Call::InitBarrier, None),
        (Call::InitBarrier, Some(BadSegHndl)),
        (Call::OpenBarrier, None),
        (Call::OpenBarrier, Some(BarrierUninitialized)),
        (Call::OpenBarrier, Some(BadSegHndl)),
        (Call::OrderBarrier, None),
        (Call::OrderBarrier, Some(BarrierNotOpened)),
        (Call::CloseBarrier, None),
        (Call::CloseBarrier, Some(BarrierNotOpened)),
        (Call::CloseBarrier, Some(ConnAborted)),
        (Call::DestroyBarrier, None),
        (Call::DestroyBarrier, Some(BarrierUninitialized)),
        (Call::SetMode, None),
        (Call::SetMode, Some(BadMode)),
        (Call::GetMode, None),
        (Call::GetMode, Some(BadSegHndl)),
        // Events and poll descriptors (§4.9).
        (Call::SigPost, None),
        (Call::SigPost, Some(BadSegHndl)),
        (Call::SigPost, Some(ConnAborted)),
        (Call::SigWait, None),
        (Call::SigWait, Some(Timeout)),
        (Call::SigWait, Some(ConnAborted)),
        (Call::SigWait, Some(BadSegHndl)),
        (Call::GetPollfd, None),
        (Call::GetPollfd, Some(BadSegHndl)),
        (Call::ReleasePollfd, None),
        (Call::ReleasePollfd, Some(BadSegHndl)),
        (Call::WaitPollfd, None),
        (Call::WaitPollfd, Some(Timeout)),
        (Call::ExportDestroy, Some(PollfdInUse)),
        (Call::Disconnect, Some(PollfdInUse)),
        // Mapping (§4.7).
        (Call::Map, None),
        (Call::Map, Some(SegAlreadyMapped)),
        (Call::Map, Some(ConnAborted)),
        (Call::Map, Some(BadPerms)),
        (Call::Map, Some(BadLength)),
        (Call::Map, Some(BadMemAlignment)),
        (Call::Map, Some(MapFailed)),
        (Call::Map, Some(BadSegHndl)),
        (Call::Unmap, None),
        (Call::Unmap, Some(SegNotMapped)),
        (Call::Disconnect, Some(SegStillMapped)),
    ];
    if std::env::var_os("RSM_PROP_STATS").is_some() {
        eprintln!(
            "outcomes {:?}\npartial transfers {}, bytes moved {}, access widths {:?}, \
             imports rung {}, events consumed {}, pollfd consumed/nval/hup {}/{}/{}, \
             rebind aborts {} (then not rung {}), orphan maps {}, pokes {}",
            total.outcomes,
            total.partial_transfers,
            total.bytes_moved_ok,
            total.access_ok,
            total.imports_rung,
            total.events_consumed,
            total.pollfd_consumed,
            total.pollfd_nval,
            total.pollfd_hup,
            total.rebind_aborts,
            total.rebind_aborted_not_rung,
            total.orphan_maps,
            total.pokes
        );
    }
    let missing: Vec<_> = must
        .iter()
        .filter(|(c, e)| total.count(*c, *e) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "generator never reached {missing:?}; outcomes: {:?}",
        total.outcomes
    );
    assert!(total.partial_transfers > 0, "no partial transfer reached");
    assert!(total.bytes_moved_ok > 0, "no bytes ever moved");
    for put in [false, true] {
        for w in Width::ALL {
            assert!(
                total.access_ok.contains(&(put, w)),
                "no successful {} of width {w:?}",
                if put { "put" } else { "get" }
            );
        }
    }
    assert!(
        total.imports_rung > 0,
        "an export post never rang an import"
    );
    assert!(total.events_consumed > 0, "no event ever consumed");
    assert!(
        total.pollfd_consumed > 0,
        "wait_pollfd never consumed an event"
    );
    assert!(total.pollfd_nval > 0, "wait_pollfd never reported POLLNVAL");
    assert!(total.pollfd_hup > 0, "wait_pollfd never reported POLLHUP");
    assert!(
        total.rebind_aborts > 0,
        "a rebind never aborted a mapped import"
    );
    assert!(
        total.rebind_aborted_not_rung > 0,
        "an export post never skipped an import a rebind aborted"
    );
    assert!(
        total.orphan_maps > 0,
        "no mapping ever outlived its exporter"
    );
    assert!(total.pokes > 0, "no store through a mapped window");
}

// =============================================================================================
// Properties 2 and 3: a single connection with valid and invalid vectors
// =============================================================================================

/// A node with one published segment of `seg_pages` pages, connected read+write, and one
/// local buffer (with a local memory handle) per entry of `src_lens`.
struct Rig {
    node: Rsm<FakePlatform>,
    ctrl: ControllerHandle,
    seg: FakeRegion,
    export: ExportHandle,
    imp: ImportHandle,
    srcs: Vec<(FakeRegion, LocalMemHandle)>,
}

impl Rig {
    fn new(seg_pages: usize, src_lens: &[usize], seed: u64) -> Self {
        let node: Rsm<FakePlatform> = Rsm::new(FakePlatform::new(), Config::default());
        let ctrl = node.get_controller(None).unwrap();
        let seg = node.platform().alloc(seg_pages * PAGE_SIZE);
        node.platform().write(&seg, 0, &fill(seed, seg.len()));
        let export = node
            .export_create(ctrl, seg.clone(), CreateFlags::empty())
            .unwrap();
        let id = node.export_publish(export, 0, &[]).unwrap();
        let imp = node
            .import_connect(ctrl, node.node_id(), id, Permission::RDWR)
            .unwrap();
        let srcs = src_lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let r = node.platform().alloc(len);
                node.platform()
                    .write(&r, 0, &fill(seed.wrapping_add(i as u64 + 1), len));
                (r.clone(), node.create_localmemory_handle(ctrl, r).unwrap())
            })
            .collect();
        Rig {
            node,
            ctrl,
            seg,
            export,
            imp,
            srcs,
        }
    }

    fn read(&self, r: &FakeRegion) -> Vec<u8> {
        self.node.platform().read(r, 0, r.len())
    }

    fn teardown(self) -> TestResult {
        for (_, h) in &self.srcs {
            prop_assert_eq!(self.node.free_localmemory_handle(self.ctrl, *h), Ok(()));
        }
        prop_assert_eq!(self.node.import_disconnect(self.imp), Ok(()));
        prop_assert_eq!(self.node.export_destroy(self.export), Ok(()));
        prop_assert_eq!(self.node.release_controller(self.ctrl), Ok(()));
        prop_assert_eq!(self.node.slots_in_use(), (0, 0, 0));
        prop_assert_eq!(self.node.platform().pinned_pages(), 0);
        Ok(())
    }
}

/// A valid entry: source index, VA (else HANDLE) and offset/length seeds.
type ValidSpec = (usize, bool, u16, u16, u16);

fn valid_spec() -> impl Strategy<Value = ValidSpec> {
    (
        0usize..3,
        any::<bool>(),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
    )
}

fn src_lens() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..=64, 1usize..=3 * PAGE_SIZE + 100], 3)
}

proptest! {
    #![proptest_config(config(128))]

    /// Property 2 (see the module docs).
    #[test]
    fn putv_then_getv_round_trips(
        seg_pages in 1usize..=3,
        lens in src_lens(),
        specs in prop::collection::vec(valid_spec(), 1..=RSM_MAX_SGIOREQS),
        flags in prop::sample::select(vec![0u32, 1, 3]),
        seed in any::<u64>(),
    ) {
        let rig = Rig::new(seg_pages, &lens, seed);
        let seg_len = rig.seg.len();
        // (source index, va, lo, ro, len)
        let entries: Vec<(usize, bool, usize, usize, usize)> = specs
            .iter()
            .map(|&(s, va, a, b, c)| {
                let (lo, ro, len) = resolve(Shape::In, a, b, c, lens[s], seg_len);
                (s, va, lo, ro, len)
            })
            .collect();
        let iov: Vec<IoVec<'_, FakeRegion>> = entries
            .iter()
            .map(|&(s, va, lo, ro, len)| {
                let (r, h) = &rig.srcs[s];
                if va {
                    IoVec::va(r, lo, ro, len)
                } else {
                    IoVec::handle(*h, lo, ro, len)
                }
            })
            .collect();
        let sources: Vec<Vec<u8>> = rig.srcs.iter().map(|(r, _)| rig.read(r)).collect();
        let mut model = rig.read(&rig.seg);
        for &(s, _, lo, ro, len) in &entries {
            model[ro..ro + len].copy_from_slice(&sources[s][lo..lo + len]);
        }
        let mut sg = ScatGath::new(rig.imp, &iov);
        sg.flags = SgFlags::from_bits_retain(flags);
        sg.io_residual_count = GARBAGE;
        prop_assert_eq!(rig.node.putv(&mut sg), Ok(()));
        prop_assert_eq!(sg.io_residual_count, 0);
        prop_assert_eq!(sg.flags.bits(), flags);
        prop_assert!(rig.read(&rig.seg) == model, "segment differs from the in-order model");
        for (i, (r, _)) in rig.srcs.iter().enumerate() {
            prop_assert!(rig.read(r) == sources[i], "putv changed a source buffer");
        }

        // getv of the same shapes into one fresh (zeroed) buffer per entry.
        let fresh: Vec<(FakeRegion, LocalMemHandle)> = entries
            .iter()
            .map(|&(s, _, _, _, _)| {
                let r = rig.node.platform().alloc(lens[s]);
                (r.clone(), rig.node.create_localmemory_handle(rig.ctrl, r).unwrap())
            })
            .collect();
        let iov2: Vec<IoVec<'_, FakeRegion>> = entries
            .iter()
            .zip(&fresh)
            .map(|(&(_, va, lo, ro, len), (r, h))| {
                if va {
                    IoVec::va(r, lo, ro, len)
                } else {
                    IoVec::handle(*h, lo, ro, len)
                }
            })
            .collect();
        let mut sg = ScatGath::new(rig.imp, &iov2);
        sg.flags = SgFlags::from_bits_retain(flags);
        sg.io_residual_count = GARBAGE;
        prop_assert_eq!(rig.node.getv(&mut sg), Ok(()));
        prop_assert_eq!(sg.io_residual_count, 0);
        prop_assert_eq!(sg.flags.bits(), flags);
        prop_assert!(rig.read(&rig.seg) == model, "getv changed the segment");
        for (i, &(s, _, lo, ro, len)) in entries.iter().enumerate() {
            let got = rig.read(&fresh[i].0);
            let mut want = vec![0u8; lens[s]];
            want[lo..lo + len].copy_from_slice(&model[ro..ro + len]);
            prop_assert!(got == want, "getv entry {} does not hold the segment's bytes", i);
            let overwritten_later = entries[i + 1..]
                .iter()
                .any(|&(_, _, _, ro2, len2)| len2 > 0 && ro2 < ro + len && ro < ro2 + len2);
            if !overwritten_later {
                prop_assert!(
                    got[lo..lo + len] == sources[s][lo..lo + len],
                    "entry {} did not round-trip",
                    i
                );
            }
        }
        // Two events if IMPLICIT_SIGPOST (one per call), coalesced to one with NO_ACCUMULATE.
        let events = match flags {
            1 => 2,
            3 => 1,
            _ => 0,
        };
        prop_assert_eq!(rig.node.export_pending_events(rig.export), Ok(events));
        for (_, h) in &fresh {
            prop_assert_eq!(rig.node.free_localmemory_handle(rig.ctrl, *h), Ok(()));
        }
        rig.teardown()?;
    }
}

/// What makes an entry invalid.
#[derive(Debug, Clone, Copy)]
enum TypeDefect {
    /// An io_type other than HANDLE/VA.
    RawType(i32),
    /// io_type HANDLE with a VA local side (or VA with a handle).
    Mismatch,
    /// A freed local memory handle.
    Stale,
    Null,
    /// An export handle passed as a local memory handle.
    WrongKind,
}

#[derive(Debug, Clone, Copy)]
struct Defects {
    ty: Option<TypeDefect>,
    null_va: bool,
    remote: Option<bool>,
    local: Option<bool>,
}

impl Defects {
    /// The entry's error by the documented per-entry order (`sg::plan`).
    fn error(&self) -> RsmError {
        if self.ty.is_some() {
            BadSgio
        } else if self.null_va {
            BadAddr
        } else if self.remote.is_some() {
            BadOffset
        } else {
            BadLength
        }
    }
}

fn defects() -> impl Strategy<Value = Defects> {
    let ty = prop_oneof![
        3 => Just(None),
        1 => prop::sample::select(vec![0, 3, -1, i32::MIN, 0x7FFF]).prop_map(|t| Some(TypeDefect::RawType(t))),
        1 => Just(Some(TypeDefect::Mismatch)),
        1 => Just(Some(TypeDefect::Stale)),
        1 => Just(Some(TypeDefect::Null)),
        1 => Just(Some(TypeDefect::WrongKind)),
    ];
    (
        ty,
        prop::bool::weighted(0.3),
        prop::option::weighted(0.4, any::<bool>()),
        prop::option::weighted(0.4, any::<bool>()),
    )
        .prop_map(|(ty, null_va, remote, local)| {
            let mut d = Defects {
                ty,
                null_va,
                remote,
                local,
            };
            if d.ty.is_none() && !d.null_va && d.remote.is_none() && d.local.is_none() {
                d.remote = Some(false);
            }
            d
        })
}

proptest! {
    #![proptest_config(config(128))]

    /// Property 3 (see the module docs).
    #[test]
    fn one_invalid_entry_fails_the_whole_vector(
        seg_pages in 1usize..=3,
        lens in src_lens(),
        specs in prop::collection::vec(valid_spec(), 0..RSM_MAX_SGIOREQS),
        bad in (any::<prop::sample::Index>(), defects(), valid_spec()),
        second in prop::option::weighted(0.3, (any::<prop::sample::Index>(), defects(), valid_spec())),
        put in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let rig = Rig::new(seg_pages, &lens, seed);
        // A freed handle and a NULL region for the defects.
        let stale = {
            let r = rig.node.platform().alloc(64);
            let h = rig.node.create_localmemory_handle(rig.ctrl, r).unwrap();
            rig.node.free_localmemory_handle(rig.ctrl, h).unwrap();
            h
        };
        let null_region = FakeRegion::raw(0, 64);
        let seg_len = rig.seg.len();
        let valid = |&(s, va, a, b, c): &ValidSpec| {
            let (lo, ro, len) = resolve(Shape::In, a, b, c, lens[s], seg_len);
            let (r, h) = &rig.srcs[s];
            if va {
                IoVec::va(r, lo, ro, len)
            } else {
                IoVec::handle(*h, lo, ro, len)
            }
        };
        let invalid = |d: &Defects, &(s, va, a, b, c): &ValidSpec| {
            let (r, h) = &rig.srcs[s];
            let va = va || d.null_va;
            let local_region = if d.null_va { &null_region } else { r };
            let local_len = local_region.len();
            let shape = match (d.remote, d.local) {
                (Some(false), _) => Shape::RemoteOut,
                (Some(true), _) => Shape::RemoteOverflow,
                (None, Some(false)) => Shape::LocalOut,
                (None, Some(true)) => Shape::LocalOverflow,
                (None, None) => Shape::In,
            };
            let (mut lo, ro, len) = resolve(shape, a, b, c, local_len, seg_len);
            if d.remote.is_some() {
                // Both ranges bad: the remote one must win.
                if let Some(overflow) = d.local {
                    lo = if overflow { usize::MAX } else { local_len + 1 };
                }
            }
            let mut e = if va {
                IoVec::va(local_region, lo, ro, len)
            } else {
                IoVec::handle(*h, lo, ro, len)
            };
            match d.ty {
                None => {}
                Some(TypeDefect::RawType(t)) => e.io_type = t,
                Some(TypeDefect::Mismatch) if va => e.io_type = RSM_HANDLE_TYPE,
                Some(TypeDefect::Mismatch) => e.io_type = RSM_VA_TYPE,
                Some(TypeDefect::Stale) => {
                    e = IoVec { io_type: RSM_HANDLE_TYPE, local: LocalRef::Handle(stale), ..e }
                }
                Some(TypeDefect::Null) => {
                    e = IoVec {
                        io_type: RSM_HANDLE_TYPE,
                        local: LocalRef::Handle(LocalMemHandle::NULL),
                        ..e
                    }
                }
                Some(TypeDefect::WrongKind) => {
                    let wrong = LocalMemHandle::from_raw(rig.export.into_raw());
                    e = IoVec { io_type: RSM_HANDLE_TYPE, local: LocalRef::Handle(wrong), ..e }
                }
            }
            e
        };
        let mut iov: Vec<IoVec<'_, FakeRegion>> = specs.iter().map(valid).collect();
        let pos = bad.0.index(iov.len() + 1);
        iov.insert(pos, invalid(&bad.1, &bad.2));
        let want = bad.1.error();
        if let Some((idx, d, v)) = &second {
            if iov.len() < RSM_MAX_SGIOREQS {
                let p2 = pos + 1 + idx.index(iov.len() - pos);
                iov.insert(p2, invalid(d, v));
            }
        }
        let seg_before = rig.read(&rig.seg);
        let srcs_before: Vec<Vec<u8>> = rig.srcs.iter().map(|(r, _)| rig.read(r)).collect();
        let mut sg = ScatGath::new(rig.imp, &iov);
        sg.io_residual_count = GARBAGE;
        sg.flags = SgFlags::IMPLICIT_SIGPOST;
        let r = if put { rig.node.putv(&mut sg) } else { rig.node.getv(&mut sg) };
        prop_assert_eq!(r, Err(want), "bad entry at {} of {}: {:?}", pos, iov.len(), iov[pos]);
        prop_assert_eq!(sg.io_residual_count, iov.len() as u64, "residual == io_request_count");
        prop_assert_eq!(sg.flags, SgFlags::IMPLICIT_SIGPOST);
        prop_assert!(rig.read(&rig.seg) == seg_before, "a rejected vector changed the segment");
        for (i, (r, _)) in rig.srcs.iter().enumerate() {
            prop_assert!(rig.read(r) == srcs_before[i], "a rejected vector changed a local buffer");
        }
        prop_assert_eq!(rig.node.export_pending_events(rig.export), Ok(0), "no sigpost on failure");
        rig.teardown()?;
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Property 4 (see the module docs): `loopback<unit>` is the loopback controller for every
    /// decimal unit, however large (spec §4.1, §9.22).
    /// Regression: `"loopback4294967296"` was once rejected with `RSMERR_CTLR_NOT_PRESENT`.
    #[test]
    fn loopback_ignores_the_unit(unit in "[0-9]{1,40}", upper in any::<bool>()) {
        let node: Rsm<FakePlatform> = Rsm::new(FakePlatform::new(), Config::default());
        let lo = node.get_controller(None).unwrap();
        let name = format!("{}{unit}", if upper { "LOOPBACK" } else { "loopback" });
        prop_assert_eq!(node.get_controller(Some(&name)), Ok(lo), "name {}", name);
    }
}
