//! Property tests of `rsm-core` against a reference model, on the fake platform.
//!
//! The fake platform ([`FakePlatform`]) panics on misuse only a core bug can cause (unbalanced
//! unpin, a copy outside its region, a copy into freed memory), so **every property below also
//! checks "never a panic"**: proptest turns a panic into a failing, shrunk case.
//!
//! 1. [`random_api_sequences_match_the_model`] — random sequences of up to 60 calls of the
//!    RSMAPI (controllers §4.1, export side §4.3, connect/disconnect §4.4, putv/getv §4.6,
//!    local memory handles §4.6/§5) on a node with tiny tables (`Rsm<FakePlatform, 8, 4, 4>`,
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
//!    * **data**: the model keeps the bytes of every fake allocation (a superset of "one byte
//!      array per export segment": segments, local handles and VA entries may alias the same
//!      pages, and a rebound segment's content is simply the new buffer's bytes). Each
//!      successful putv/getv is applied to the model entry by entry in vector order
//!      (memmove semantics); after every putv/getv — successful or not — the whole fake memory
//!      must equal the model (so getv destinations equal the segment's model bytes, and a
//!      rejected vector moved nothing);
//!    * bookkeeping: `slots_in_use()` equals the model's live handle counts, `pinned_pages()`
//!      equals the model's page-pin map, `export_segment_id`, `export_pending_events` and
//!      `import_info` agree with the model;
//!    * **no leaks**: at the end everything still live is freed/disconnected/destroyed, the
//!      controllers released, and `slots_in_use() == (0, 0, 0)` and `pinned_pages() == 0`.
//!
//!    [`random_sequences_reach_the_interesting_paths`] runs the same generator with a fixed
//!    seed and asserts that it actually reaches the paths the properties are about (successful
//!    transfers, partial transfers, table-full, quota, stale handles, …), so a generator change
//!    cannot silently make property 1 vacuous.
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
//! `RSM_PROP_STATS=1` prints the outcome counts of the coverage test; `RSM_PROP_TRACE=1` prints
//! every call of property 1 with the live handle counts after it.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rsm_core::{
    AccessEntry, Config, ControllerHandle, CreateFlags, ExportHandle, ImportHandle, ImportInfo,
    IoVec, LocalMemHandle, LocalRef, NodeId, Permission, Rsm, RsmError, RsmResult, ScatGath,
    SegmentId, SgFlags, FIRST_USER_SEGID, LAST_USER_SEGID, MAXNAMELEN, PAGE_SIZE, RSM_HANDLE_TYPE,
    RSM_MAX_SGIOREQS, RSM_USER_APP_ID_BASE, RSM_VA_TYPE,
};
use rsm_hal::fake::{FakePlatform, FakeRegion};
use rsm_hal::Region;
use std::collections::BTreeMap;
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
        }
    }
}

/// Outcome counts per (call, error code; 0 = success), for the coverage test.
#[derive(Default)]
struct Stats {
    outcomes: BTreeMap<(Call, i32), usize>,
    partial_transfers: usize,
    bytes_moved_ok: usize,
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

fn op() -> impl Strategy<Value = Op> {
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
    )
        .prop_map(|((c, r, f), (id, acl), (c2, perm), (c3, lr))| {
            vec![
                Op::ExportCreate(c, r, f),
                Op::Publish(Pick::Newest(0), SegidSpec::Fixed(id), acl),
                Op::Connect(c2, 0, SegidSpec::Published(255), perm),
                Op::CreateLocal(c3, lr),
            ]
        })
}

/// A sequence: 0–3 connection-building pipelines, then up to 60 arbitrary calls.
fn sequence() -> impl Strategy<Value = (Setup, Vec<Op>)> {
    (
        setup(),
        prop::collection::vec(pipeline(), 0..=3),
        prop::collection::vec(op(), 1..=60),
    )
        .prop_map(|(s, a, b)| (s, a.into_iter().flatten().chain(b).collect()))
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
    live: bool,
}

struct MImport {
    h: ImportHandle,
    export: usize,
    epoch: u32,
    info: ImportInfo,
    live: bool,
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
    let local = node.create_localmemory_handle(ctrl, buf).unwrap();
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
            },
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
                let b = pool[usize::from(buf) % pool.len()];
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
                let b = pool[usize::from(buf) % pool.len()];
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
            Op::Connect(c, n, id, perm) => self.connect(*c, *n, *id, *perm),
            Op::Disconnect(p) => self.disconnect(*p),
            Op::Xfer {
                put,
                imp,
                entries,
                count,
                flags,
            } => self.xfer(*put, *imp, entries, *count, *flags),
        }?;
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
        let r = self.node.create_localmemory_handle(ctrl, region);
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
            let region = self.m.locals[li].region;
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
            .export_create(ctrl, region, CreateFlags::from_bits_retain(flags));
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
        let h = ExportHandle::from_raw(self.pick(Kind::Export, p));
        let exp = self.m.live_export(h.into_raw()).ok_or(BadSegHndl);
        let r = self.node.export_destroy(h);
        self.outcome(Call::ExportDestroy, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()));
        if let Ok(ei) = exp {
            let region = self.m.exports[ei].region;
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
        let h = ExportHandle::from_raw(self.pick(Kind::Export, p));
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
        let h = ExportHandle::from_raw(self.pick(Kind::Export, p));
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
        let r = self.node.export_rebind(h, region);
        self.outcome(Call::Rebind, &r)?;
        prop_assert_eq!(r, exp.map(|_| ()), "export_rebind({:?})", region);
        if let Ok(Some(ei)) = exp {
            let old = self.m.exports[ei].region;
            self.m.pin(&region);
            self.m.unpin(&old);
            self.m.exports[ei].region = region;
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
        let h = ImportHandle::from_raw(self.pick(Kind::Import, p));
        let exp = self.m.live_import(h.into_raw()).ok_or(BadSegHndl);
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
        if !ex.live || ex.epoch != im.epoch || ex.published.is_none() {
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
        let seg = ex.region;
        let mut steps = Vec::new();
        for e in entries {
            let local = match (e.io_type, &e.local) {
                (RSM_HANDLE_TYPE, LocalRef::Handle(h)) => match self.m.live_local(h.into_raw()) {
                    Some(li) => self.m.locals[li].region,
                    None => return pre(BadSgio),
                },
                (RSM_VA_TYPE, LocalRef::Va(r)) if r.addr() == 0 => return pre(BadAddr),
                (RSM_VA_TYPE, LocalRef::Va(r)) => **r,
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
                    (None, r, r.len())
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
            let region = self.m.locals[li].region;
            self.m.unpin(&region);
            self.m.locals[li].live = false;
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
    #![proptest_config(config(128))]

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
    for _ in 0..48 {
        let (s, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let stats = run_sequence(&s, &ops).unwrap_or_else(|e| panic!("{e}"));
        for (k, v) in stats.outcomes {
            *total.outcomes.entry(k).or_insert(0) += v;
        }
        total.partial_transfers += stats.partial_transfers;
        total.bytes_moved_ok += stats.bytes_moved_ok;
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
    ];
    if std::env::var_os("RSM_PROP_STATS").is_some() {
        eprintln!(
            "outcomes {:?}\npartial transfers {}, bytes moved {}",
            total.outcomes, total.partial_transfers, total.bytes_moved_ok
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
        let export = node.export_create(ctrl, seg, CreateFlags::empty()).unwrap();
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
                (r, node.create_localmemory_handle(ctrl, r).unwrap())
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
                (r, rig.node.create_localmemory_handle(rig.ctrl, r).unwrap())
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
