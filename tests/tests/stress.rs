//! Host stress test (spec §7: every function is MT-Safe): several threads run
//! create/free, connect/disconnect, putv/getv, put/get with barriers, signal post/wait, poll
//! descriptors and map/unmap against **shared** handles of one node for a bounded time.
//!
//! What it checks:
//! * nothing deadlocks (a watchdog fails the test after [`WATCHDOG`]);
//! * every result is `Ok` or an error in that call's explicit allow-list (spec §4 doc and
//!   implementation lists, and rsm-rs's documented choices for a handle used while another
//!   thread frees, destroys, disconnects, unpublishes or rebinds it);
//! * handles that were freed/destroyed/disconnected never work again, a free/destroy/
//!   disconnect never succeeds twice for one handle, references a thread holds (controller
//!   references, poll descriptors, its own barrier storage) always release cleanly, and the
//!   shared pools account for every table slot in use when the threads stop (nothing leaks);
//! * no aligned 8-byte word written by one `put64` (or a whole-word `put`) is ever seen
//!   half-written by `get64` (or a whole-word `get`).
//!
//! The run is bounded by a wall-clock budget and per-thread operation caps; the random choices
//! come from a per-thread xorshift generator whose base seed is printed (set `RSM_STRESS_SEED`
//! to choose it; thread interleavings are not reproducible, so a seed only narrows a search).
//!
//! [`export_destroy_in_progress_hands_out_no_poll_descriptor`] pins down one race of this
//! workload that the random mix hits too rarely to rely on (a destroy draining a transfer).

use rsm_core::{
    AccessEntry, Barrier, BarrierType, Config, ControllerHandle, CreateFlags, ExportHandle,
    ImportHandle, IoVec, LocalMemHandle, MapAttr, Permission, PollFd, PollSource, Rsm, RsmError,
    RsmResult, ScatGath, SegmentRef, SgFlags, SigpostFlags, PAGE_SIZE, POLLRDNORM,
};
use rsm_hal::Memory;
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use RsmError::*;

/// Small tables, so that "table full" (`RSMERR_INSUFFICIENT_RESOURCES`) is part of the mix.
const LOCALS: usize = 12;
const EXPORTS: usize = 8;
const IMPORTS: usize = 16;
type Node = Rsm<HostPlatform, LOCALS, EXPORTS, IMPORTS>;

/// Not finished after this long: deadlock (or livelock).
const WATCHDOG: Duration = Duration::from_secs(60);
/// Wall-clock budget of the workload (each thread stops starting operations after it).
const BUDGET: Duration = Duration::from_millis(2000);
/// Operation caps per thread: at least MIN (even past the budget), at most MAX.
const MIN_OPS: usize = 50;
const MAX_CHURN_OPS: usize = 40_000;
const MAX_TEAR_OPS: usize = 200_000;
/// Threads doing random operations on the shared pools (plus one tear writer, one tear reader).
const CHURN_THREADS: usize = 4;

/// Pinned-page quota of the platform (pages). The buffers below total 23 pages, so pinning
/// sometimes fails with `RSMERR_INSUFFICIENT_MEM` when many handles are live.
const QUOTA_PAGES: usize = 18;
/// Backing buffers of churned export segments (rebind needs equal lengths).
const SEG_LENS: [usize; 6] = [
    PAGE_SIZE,
    PAGE_SIZE,
    PAGE_SIZE,
    2 * PAGE_SIZE,
    2 * PAGE_SIZE,
    2 * PAGE_SIZE,
];
/// Buffers of churned local memory handles (lengths need not be page multiples).
const LOCAL_LENS: [usize; 6] = [100, 777, 3000, PAGE_SIZE, 5000, 2 * PAGE_SIZE];
/// Every churned segment is at least this long: all remote offsets stay below it.
const MIN_SEG: usize = PAGE_SIZE;
/// Per-thread buffer for `RSM_VA_TYPE` entries.
const VA_LEN: usize = 2 * PAGE_SIZE;
/// The word-tearing segment.
const TEAR_LEN: usize = 2 * PAGE_SIZE;
const TEAR_WORDS: usize = TEAR_LEN / 8;
/// Longest put64/get64 vector on the tearing segment, in words.
const MAX_TEAR_RUN: usize = 96;
/// Segment ids used by fixed-id publishes (collide on purpose: `RSMERR_SEGID_IN_USE`).
const FIXED_ID: u32 = 0x0040_0000;
/// Ids in the user range that nobody publishes.
const UNPUBLISHED_ID: u32 = 0x7FFF_0000;
/// Controller names by index: 0 = loopback, 1 = rsmnet0.
const CTRL_NAMES: [Option<&str>; 2] = [None, Some("rsmnet0")];
/// Freed handles remembered per pool (to use them again: they must keep failing).
const GRAVEYARD: usize = 32;

// ------------------------------------------------------------------------------------------
// Helpers: watchdog, random numbers, poison-tolerant locks, outcome counting.
// ------------------------------------------------------------------------------------------

/// Run `body` on its own thread; fail if it panics or does not finish within [`WATCHDOG`].
fn with_watchdog(name: &str, body: impl FnOnce() + Send + 'static) {
    rsm_tests::with_watchdog(name, WATCHDOG, body);
}

/// xorshift64 (Marsaglia); plenty for choosing operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The base seed: `RSM_STRESS_SEED` (decimal or 0x-hex) or the clock.
fn base_seed() -> u64 {
    if let Ok(s) = std::env::var("RSM_STRESS_SEED") {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.expect("RSM_STRESS_SEED: not a number");
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Lock a test-side mutex, ignoring poisoning (a panicking thread fails the test anyway; the
/// others should stop cleanly rather than cascade).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Outcome counts per call: (call, "Ok" or the error's variant name) → count.
#[derive(Default)]
struct Stats(BTreeMap<(&'static str, String), u64>);

impl Stats {
    /// Count `r` and fail unless it is `Ok` or in `allowed`. Returns `r.is_ok()`.
    #[track_caller]
    fn check<T>(&mut self, call: &'static str, r: &RsmResult<T>, allowed: &[RsmError]) -> bool {
        let outcome = match r {
            Ok(_) => "Ok".to_owned(),
            Err(e) => {
                assert!(
                    allowed.contains(e),
                    "{call} returned {} ({e:?}), which is not in its allow-list Ok, {allowed:?}",
                    e.name()
                );
                format!("{e:?}")
            }
        };
        *self.0.entry((call, outcome)).or_default() += 1;
        r.is_ok()
    }

    /// As [`Stats::check`] for a call that must fail (a freed handle, an invalid argument).
    #[track_caller]
    fn check_err<T>(&mut self, call: &'static str, r: &RsmResult<T>, allowed: &[RsmError]) {
        assert!(r.is_err(), "{call} succeeded where it must fail");
        self.check(call, r, allowed);
    }

    fn count(&mut self, call: &'static str, outcome: &str, n: u64) {
        *self.0.entry((call, outcome.to_owned())).or_default() += n;
    }

    fn merge(&mut self, other: Stats) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }

    fn get(&self, call: &'static str, outcome: &str) -> u64 {
        self.0
            .get(&(call, outcome.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    fn print(&self) {
        let mut by_call: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for ((call, outcome), n) in &self.0 {
            by_call
                .entry(call)
                .or_default()
                .push(format!("{outcome}={n}"));
        }
        for (call, outcomes) in by_call {
            eprintln!("  {call:<26} {}", outcomes.join(" "));
        }
    }
}

/// `true` if all 8 bytes of the word are equal (every pattern written is `0x0101..01 × k`).
fn untorn(w: u64) -> bool {
    w == (w & 0xFF) * 0x0101_0101_0101_0101
}

/// `need` (READ for get, WRITE for put) is missing from an import's permission.
fn lacks(perm: Permission, need: Permission) -> bool {
    !perm.contains(need)
}

// ------------------------------------------------------------------------------------------
// Shared state: pools of live handles (and recently freed ones) that every thread uses.
// ------------------------------------------------------------------------------------------

/// One controller reference held in the pool (index 0 loopback, 1 rsmnet0).
#[derive(Clone, Copy)]
struct Ctrl {
    h: ControllerHandle,
    idx: usize,
}

#[derive(Clone, Copy)]
struct Local {
    h: LocalMemHandle,
    /// Index of the controller it was created through (free must name the same one).
    ctrl: usize,
    len: usize,
}

#[derive(Clone, Copy)]
struct Export {
    h: ExportHandle,
    ctrl: usize,
    len: usize,
    rebind: bool,
}

#[derive(Clone, Copy)]
struct Import {
    h: ImportHandle,
    perm: Permission,
}

/// Live handles (any thread may use or free them at any time) and a graveyard of handles whose
/// free/destroy/disconnect succeeded. A handle leaves `live` only through the call that
/// successfully freed it, so when the threads are done `live` is exactly what is still
/// allocated. For controllers, `live` holds references (each released exactly once) and the
/// graveyard released ones, which stay valid while other references exist.
struct Pool<T> {
    live: Mutex<Vec<T>>,
    dead: Mutex<Vec<T>>,
}

impl<T: Copy> Pool<T> {
    fn new() -> Pool<T> {
        Pool {
            live: Mutex::new(Vec::new()),
            dead: Mutex::new(Vec::new()),
        }
    }

    fn add(&self, t: T) {
        lock(&self.live).push(t);
    }

    fn len(&self) -> usize {
        lock(&self.live).len()
    }

    fn all(&self) -> Vec<T> {
        lock(&self.live).clone()
    }

    fn pick_in(list: &Mutex<Vec<T>>, rng: &mut Rng, filter: impl Fn(&T) -> bool) -> Option<T> {
        let list = lock(list);
        let matching: Vec<&T> = list.iter().filter(|t| filter(t)).collect();
        (!matching.is_empty()).then(|| *matching[rng.below(matching.len())])
    }

    fn pick(&self, rng: &mut Rng, filter: impl Fn(&T) -> bool) -> Option<T> {
        Self::pick_in(&self.live, rng, filter)
    }

    fn pick_dead(&self, rng: &mut Rng, filter: impl Fn(&T) -> bool) -> Option<T> {
        Self::pick_in(&self.dead, rng, filter)
    }

    /// A live handle, or (with `dead_pct` % chance, or when none is live) a freed one;
    /// the flag says which.
    fn choose(&self, rng: &mut Rng, dead_pct: u64) -> Option<(T, bool)> {
        if rng.chance(dead_pct) {
            if let Some(t) = self.pick_dead(rng, |_| true) {
                return Some((t, true));
            }
        }
        self.pick(rng, |_| true).map(|t| (t, false))
    }

    /// Remove a random live entry (the caller now owns it).
    fn take(&self, rng: &mut Rng) -> Option<T> {
        let mut live = lock(&self.live);
        if live.is_empty() {
            return None;
        }
        let i = rng.below(live.len());
        Some(live.swap_remove(i))
    }

    fn bury(&self, t: T) {
        let mut dead = lock(&self.dead);
        if dead.len() == GRAVEYARD {
            dead.remove(0);
        }
        dead.push(t);
    }

    /// Move the live entry matching `is` to the graveyard; `false` if there is none.
    fn retire(&self, is: impl Fn(&T) -> bool) -> bool {
        let mut live = lock(&self.live);
        let Some(i) = live.iter().position(is) else {
            return false;
        };
        let t = live.swap_remove(i);
        drop(live);
        self.bury(t);
        true
    }
}

/// The word-tearing segment: exported once, never unpublished or destroyed during the run
/// (only rebound between its two buffers), with one import per tear thread and one shared by
/// the churn threads (explicit barrier mode).
struct Tear {
    seg: ExportHandle,
    writer: ImportHandle,
    reader: ImportHandle,
    shared: ImportHandle,
    /// The reader's local memory handle over `World::reader_buf` (created through rsmnet0).
    reader_local: LocalMemHandle,
}

struct World {
    // Declared first so that it drops first: its platform releases any pins still held
    // (after a failure) before the buffers are freed.
    node: Node,
    seg_bufs: Vec<PinnedBuf>,
    local_bufs: Vec<PinnedBuf>,
    tear_bufs: [PinnedBuf; 2],
    reader_buf: PinnedBuf,
    ctrls: Pool<Ctrl>,
    locals: Pool<Local>,
    exports: Pool<Export>,
    imports: Pool<Import>,
    /// Poll-descriptor references held (each released exactly once).
    pollfds: Mutex<Vec<SegmentRef>>,
    tear: Tear,
}

impl World {
    fn new() -> World {
        let platform = HostPlatform::new();
        // mlock for real: ~23 pages at most, far below any RLIMIT_MEMLOCK.
        let quota = QUOTA_PAGES * platform.page_size();
        let node = Node::new(platform.limit_pins(quota), Config::default());
        let seg_bufs: Vec<PinnedBuf> = SEG_LENS
            .iter()
            .map(|&l| PinnedBuf::new(l).unwrap())
            .collect();
        let local_bufs: Vec<PinnedBuf> = LOCAL_LENS
            .iter()
            .map(|&l| PinnedBuf::new(l).unwrap())
            .collect();
        let tear_bufs = [0, 1].map(|_| PinnedBuf::new(TEAR_LEN).unwrap());
        let reader_buf = PinnedBuf::new(TEAR_LEN).unwrap();

        let setup = node.get_controller(CTRL_NAMES[1]).unwrap();
        let seg = node
            .export_create(setup, tear_bufs[0].region(), CreateFlags::ALLOW_REBIND)
            .unwrap();
        let id = node.export_publish(seg, 0, &[]).unwrap();
        let connect = || {
            node.import_connect(setup, node.node_id(), id, Permission::RDWR)
                .unwrap()
        };
        let (writer, reader, shared) = (connect(), connect(), connect());
        node.set_mode(shared, rsm_core::RSM_BARRIER_MODE_EXPLICIT)
            .unwrap();
        let reader_local = node
            .create_localmemory_handle(setup, reader_buf.region())
            .unwrap();
        // The tear handles stay valid after the controller's last reference goes (our choice
        // for spec §9.22), so the churn threads can drive rsmnet0's reference count to zero.
        node.release_controller(setup).unwrap();
        World {
            node,
            seg_bufs,
            local_bufs,
            tear_bufs,
            reader_buf,
            ctrls: Pool::new(),
            locals: Pool::new(),
            exports: Pool::new(),
            imports: Pool::new(),
            pollfds: Mutex::new(Vec::new()),
            tear: Tear {
                seg,
                writer,
                reader,
                shared,
                reader_local,
            },
        }
    }
}

// ------------------------------------------------------------------------------------------
// The churn threads: random operations on the shared pools.
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    GetCtrl,
    ReleaseCtrl,
    CtrlAttr,
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
    BarrierAccess,
    Access,
    SetMode,
    Post,
    Wait,
    GetPollfd,
    ReleasePollfd,
    WaitPollfd,
    Map,
    Unmap,
    Tear,
}

/// Relative weights of the churn operations.
const OPS: [(u32, Op); 26] = [
    (3, Op::GetCtrl),
    (3, Op::ReleaseCtrl),
    (1, Op::CtrlAttr),
    (4, Op::CreateLocal),
    (4, Op::FreeLocal),
    (3, Op::ExportCreate),
    (3, Op::ExportDestroy),
    (4, Op::Publish),
    (2, Op::Unpublish),
    (2, Op::Republish),
    (2, Op::Rebind),
    (5, Op::Connect),
    (4, Op::Disconnect),
    (6, Op::Putv),
    (6, Op::Getv),
    (4, Op::BarrierAccess),
    (3, Op::Access),
    (2, Op::SetMode),
    (4, Op::Post),
    (3, Op::Wait),
    (2, Op::GetPollfd),
    (2, Op::ReleasePollfd),
    (1, Op::WaitPollfd),
    (2, Op::Map),
    (2, Op::Unmap),
    (3, Op::Tear),
];

/// An access list for a segment of controller `ctrl`, and whether publish/republish must
/// reject it (`RSMERR_BAD_ACL`).
fn random_acl(rng: &mut Rng, ctrl: usize) -> (Vec<AccessEntry>, bool) {
    match rng.below(10) {
        0..=4 => (vec![], false),
        5 | 6 => (vec![AccessEntry::new(0, 0o666)], false),
        // Read-only for this node: a RDWR or WRITE connect gets RSMERR_PERM_DENIED.
        7 => (vec![AccessEntry::new(0, 0o444)], false),
        // Excludes this node (RSMERR_SEG_NOT_PUBLISHED_TO_NODE); loopback may only name the
        // local node, so there it is invalid.
        8 => (vec![AccessEntry::new(1, 0o666)], ctrl == 0),
        // Permission above 0666: invalid everywhere.
        _ => (vec![AccessEntry::new(0, 0o777)], true),
    }
}

/// Allowed errors of put/get on a churned import (besides BAD_SEG_HNDL for a handle another
/// thread disconnected): the exporter unpublished/destroyed/rebound it → CONN_ABORTED;
/// implicit mode and another thread destroyed the import's barrier (or none yet) →
/// BARRIER_UNINITIALIZED; PERM_DENIED only if the import really lacks the permission.
fn access_allowed(perm: Permission, need: Permission) -> Vec<RsmError> {
    let mut v = vec![BadSegHndl, ConnAborted, BarrierUninitialized];
    if lacks(perm, need) {
        v.push(PermDenied);
    }
    v
}

struct Worker<'w> {
    w: &'w World,
    rng: Rng,
    stats: Stats,
    /// This thread's buffer for VA entries (nobody else touches it).
    va: PinnedBuf,
}

impl<'w> Worker<'w> {
    fn new(w: &'w World, seed: u64) -> Worker<'w> {
        Worker {
            w,
            rng: Rng::new(seed),
            stats: Stats::default(),
            va: PinnedBuf::new(VA_LEN).unwrap(),
        }
    }

    /// A controller handle of index `idx`: usually a reference from the pool (which another
    /// thread may release meanwhile: then BAD_CTLR_HNDL), sometimes a released one, else a
    /// temporary reference of our own (`true`: release it with [`Worker::done_ctrl`]).
    fn ctrl(&mut self, idx: usize) -> (ControllerHandle, bool) {
        let w = self.w;
        if self.rng.chance(5) {
            if let Some(c) = w.ctrls.pick_dead(&mut self.rng, |c| c.idx == idx) {
                return (c.h, false);
            }
        }
        if let Some(c) = w.ctrls.pick(&mut self.rng, |c| c.idx == idx) {
            return (c.h, false);
        }
        let r = w.node.get_controller(CTRL_NAMES[idx]);
        self.stats.check("get_controller", &r, &[]);
        (r.unwrap(), true)
    }

    fn done_ctrl(&mut self, (h, temporary): (ControllerHandle, bool)) {
        if temporary {
            let r = self.w.node.release_controller(h);
            self.stats.check("release_controller", &r, &[]);
        }
    }

    fn run(&mut self, deadline: Instant) -> usize {
        let total: u32 = OPS.iter().map(|(w, _)| w).sum();
        let mut n = 0;
        while n < MAX_CHURN_OPS && (n < MIN_OPS || Instant::now() < deadline) {
            let mut r = self.rng.below(total as usize) as u32;
            let op = OPS
                .iter()
                .find(|(w, _)| {
                    if r < *w {
                        true
                    } else {
                        r -= w;
                        false
                    }
                })
                .map(|&(_, op)| op)
                .unwrap();
            self.op(op);
            n += 1;
        }
        n
    }

    fn op(&mut self, op: Op) {
        match op {
            Op::GetCtrl => self.get_ctrl(),
            Op::ReleaseCtrl => self.release_ctrl(),
            Op::CtrlAttr => self.ctrl_attr(),
            Op::CreateLocal => self.create_local(),
            Op::FreeLocal => self.free_local(),
            Op::ExportCreate => self.export_create(),
            Op::ExportDestroy => self.export_destroy(),
            Op::Publish => self.publish(),
            Op::Unpublish => self.unpublish(),
            Op::Republish => self.republish(),
            Op::Rebind => self.rebind(),
            Op::Connect => self.connect(),
            Op::Disconnect => self.disconnect(),
            Op::Putv => self.vector(true),
            Op::Getv => self.vector(false),
            Op::BarrierAccess => self.barrier_access(),
            Op::Access => self.access(),
            Op::SetMode => self.set_mode(),
            Op::Post => self.post(),
            Op::Wait => self.wait(),
            Op::GetPollfd => self.get_pollfd(),
            Op::ReleasePollfd => self.release_pollfd(),
            Op::WaitPollfd => self.wait_pollfd(),
            Op::Map => self.map(),
            Op::Unmap => self.unmap(),
            Op::Tear => self.tear(),
        }
    }

    // ----- controllers -----

    fn get_ctrl(&mut self) {
        let w = self.w;
        let names: [(Option<&str>, Option<usize>); 6] = [
            (None, Some(0)),
            (Some("loopback"), Some(0)),
            (Some("LoopBack7"), Some(0)),
            (Some("rsmnet0"), Some(1)),
            (Some("RSMNET"), Some(1)),
            (Some("sci0"), None),
        ];
        let (name, idx) = names[self.rng.below(names.len())];
        let r = w.node.get_controller(name);
        let Some(idx) = idx else {
            self.stats
                .check_err("get_controller", &r, &[CtlrNotPresent]);
            return;
        };
        // A valid name always succeeds (a reference count cannot overflow here).
        self.stats.check("get_controller", &r, &[]);
        let h = r.unwrap();
        // Few references, so that the count often drops to zero and handles go stale.
        if w.ctrls.len() < 4 {
            w.ctrls.add(Ctrl { h, idx });
        } else {
            let r = w.node.release_controller(h);
            self.stats.check("release_controller", &r, &[]);
        }
    }

    fn release_ctrl(&mut self) {
        let w = self.w;
        let Some(c) = w.ctrls.take(&mut self.rng) else {
            return;
        };
        // We own this reference: releasing it must succeed.
        let r = w.node.release_controller(c.h);
        self.stats.check("release_controller", &r, &[]);
        w.ctrls.bury(c);
    }

    fn ctrl_attr(&mut self) {
        let w = self.w;
        let c = if self.rng.chance(30) {
            w.ctrls.pick_dead(&mut self.rng, |_| true)
        } else {
            w.ctrls.pick(&mut self.rng, |_| true)
        };
        let Some(c) = c else { return };
        let r = w.node.get_controller_attr(c.h);
        if self.stats.check("get_controller_attr", &r, &[BadCtlrHndl]) {
            assert_eq!(r.unwrap().attr_page_size, PAGE_SIZE);
        }
    }

    // ----- local memory handles -----

    fn create_local(&mut self) {
        let w = self.w;
        let idx = self.rng.below(2);
        let buf = &w.local_bufs[self.rng.below(w.local_bufs.len())];
        let c = self.ctrl(idx);
        let r = w.node.create_localmemory_handle(c.0, buf.region());
        self.done_ctrl(c);
        let allowed = [BadCtlrHndl, InsufficientMem, InsufficientResources];
        if self.stats.check("create_localmemory_handle", &r, &allowed) {
            w.locals.add(Local {
                h: r.unwrap(),
                ctrl: idx,
                len: buf.len(),
            });
        }
    }

    fn free_local(&mut self) {
        let w = self.w;
        let Some((l, dead)) = w.locals.choose(&mut self.rng, 10) else {
            return;
        };
        // Sometimes through the other controller: RSMERR_BAD_LOCALMEM_HNDL (spec §9.7).
        let wrong = !dead && self.rng.chance(10);
        let c = self.ctrl(if wrong { 1 - l.ctrl } else { l.ctrl });
        let r = w.node.free_localmemory_handle(c.0, l.h);
        self.done_ctrl(c);
        // Live handles may be freed by another thread first (or be being freed).
        let allowed = [BadCtlrHndl, BadLocalmemHndl];
        if dead || wrong {
            self.stats
                .check_err("free_localmemory_handle", &r, &allowed);
        } else if self.stats.check("free_localmemory_handle", &r, &allowed) {
            assert!(
                w.locals.retire(|x| x.h == l.h),
                "free_localmemory_handle succeeded twice for {:?}",
                l.h
            );
        }
    }

    // ----- export segments -----

    fn export_create(&mut self) {
        let w = self.w;
        let idx = self.rng.below(2);
        let buf = &w.seg_bufs[self.rng.below(w.seg_bufs.len())];
        let rebind = self.rng.chance(60);
        let mut flags = CreateFlags::empty();
        if rebind {
            flags |= CreateFlags::ALLOW_REBIND;
        }
        if self.rng.chance(20) {
            flags |= CreateFlags::CREATE_SEG_DONTWAIT;
        }
        let c = self.ctrl(idx);
        let r = w.node.export_create(c.0, buf.region(), flags);
        self.done_ctrl(c);
        let allowed = [BadCtlrHndl, InsufficientResources, InsufficientMem];
        if self.stats.check("export_create", &r, &allowed) {
            w.exports.add(Export {
                h: r.unwrap(),
                ctrl: idx,
                len: buf.len(),
                rebind,
            });
        }
    }

    fn export_destroy(&mut self) {
        let w = self.w;
        let Some((e, dead)) = w.exports.choose(&mut self.rng, 8) else {
            return;
        };
        let r = w.node.export_destroy(e.h);
        if dead {
            self.stats.check_err("export_destroy", &r, &[BadSegHndl]);
        } else if self
            .stats
            .check("export_destroy", &r, &[BadSegHndl, PollfdInUse])
        {
            assert!(
                w.exports.retire(|x| x.h == e.h),
                "export_destroy succeeded twice for {:?}",
                e.h
            );
        }
    }

    fn publish(&mut self) {
        let w = self.w;
        let Some((e, dead)) = w.exports.choose(&mut self.rng, 8) else {
            return;
        };
        let (acl, bad) = random_acl(&mut self.rng, e.ctrl);
        let id = if self.rng.chance(50) {
            0
        } else {
            FIXED_ID + self.rng.below(4) as u32
        };
        let r = w.node.export_publish(e.h, id, &acl);
        if dead {
            self.stats.check_err("export_publish", &r, &[BadSegHndl]);
            return;
        }
        let mut allowed = vec![BadSegHndl, SegAlreadyPublished, SegidInUse];
        if bad {
            allowed.push(BadAcl);
            self.stats.check_err("export_publish", &r, &allowed);
        } else if self.stats.check("export_publish", &r, &allowed) {
            let got = r.unwrap();
            if id == 0 {
                assert!(got >= 0x8000_0000, "automatic segment id {got:#x}");
            } else {
                assert_eq!(got, id);
            }
        }
    }

    fn unpublish(&mut self) {
        let w = self.w;
        let Some((e, dead)) = w.exports.choose(&mut self.rng, 8) else {
            return;
        };
        let r = w.node.export_unpublish(e.h);
        if dead {
            self.stats.check_err("export_unpublish", &r, &[BadSegHndl]);
        } else {
            self.stats
                .check("export_unpublish", &r, &[BadSegHndl, SegNotPublished]);
        }
    }

    fn republish(&mut self) {
        let w = self.w;
        let Some((e, dead)) = w.exports.choose(&mut self.rng, 8) else {
            return;
        };
        let (acl, bad) = random_acl(&mut self.rng, e.ctrl);
        let r = w.node.export_republish(e.h, &acl);
        if dead {
            self.stats.check_err("export_republish", &r, &[BadSegHndl]);
        } else if bad {
            self.stats.check_err(
                "export_republish",
                &r,
                &[BadSegHndl, SegNotPublished, BadAcl],
            );
        } else {
            self.stats
                .check("export_republish", &r, &[BadSegHndl, SegNotPublished]);
        }
    }

    fn rebind(&mut self) {
        let w = self.w;
        let Some((e, dead)) = w.exports.choose(&mut self.rng, 8) else {
            return;
        };
        // Usually a buffer of the same length (possibly the current one: a no-op success).
        let wrong_len = self.rng.chance(15);
        let candidates: Vec<&PinnedBuf> = w
            .seg_bufs
            .iter()
            .filter(|b| (b.len() == e.len) != wrong_len)
            .collect();
        let to = candidates[self.rng.below(candidates.len())].region();
        let r = w.node.export_rebind(e.h, to);
        if dead {
            self.stats.check_err("export_rebind", &r, &[BadSegHndl]);
            return;
        }
        let mut allowed = vec![BadSegHndl, InsufficientMem];
        if !e.rebind {
            allowed.push(RebindNotAllowed);
        }
        if wrong_len {
            allowed.push(BadLength);
        }
        if !e.rebind || wrong_len {
            self.stats.check_err("export_rebind", &r, &allowed);
        } else {
            self.stats.check("export_rebind", &r, &allowed);
        }
    }

    // ----- import segments -----

    fn connect(&mut self) {
        let w = self.w;
        let made_up = self.rng.chance(10);
        let id = if made_up {
            UNPUBLISHED_ID + self.rng.below(16) as u32
        } else {
            let Some((e, dead)) = w.exports.choose(&mut self.rng, 8) else {
                return;
            };
            let r = w.node.export_segment_id(e.h);
            if dead {
                self.stats.check_err("export_segment_id", &r, &[BadSegHndl]);
                return;
            }
            self.stats.check("export_segment_id", &r, &[BadSegHndl]);
            match r {
                Ok(Some(id)) => id,
                _ => return,
            }
        };
        let perms = [
            Permission::RDWR,
            Permission::RDWR,
            Permission::RDWR,
            Permission::READ,
            Permission::WRITE,
        ];
        let perm = perms[self.rng.below(perms.len())];
        let idx = self.rng.below(2);
        let c = self.ctrl(idx);
        let r = w.node.import_connect(c.0, w.node.node_id(), id, perm);
        self.done_ctrl(c);
        if made_up {
            let allowed = [BadCtlrHndl, InsufficientResources, SegNotPublished];
            self.stats.check_err("import_connect", &r, &allowed);
            return;
        }
        let allowed = [
            BadCtlrHndl,
            InsufficientResources,
            SegNotPublished,
            SegNotPublishedToNode,
            PermDenied,
        ];
        if self.stats.check("import_connect", &r, &allowed) {
            w.imports.add(Import {
                h: r.unwrap(),
                perm,
            });
        }
    }

    fn disconnect(&mut self) {
        let w = self.w;
        let Some((i, dead)) = w.imports.choose(&mut self.rng, 8) else {
            return;
        };
        let r = w.node.import_disconnect(i.h);
        if dead {
            self.stats.check_err("import_disconnect", &r, &[BadSegHndl]);
        } else if self.stats.check(
            "import_disconnect",
            &r,
            &[BadSegHndl, SegStillMapped, PollfdInUse],
        ) {
            assert!(
                w.imports.retire(|x| x.h == i.h),
                "import_disconnect succeeded twice for {:?}",
                i.h
            );
        }
    }

    /// putv/getv with 1..=16 entries mixing HANDLE entries (shared local handles, which
    /// other threads free at any time, sometimes already freed ones) and VA entries.
    fn vector(&mut self, put: bool) {
        let w = self.w;
        let Some((imp, dead)) = w.imports.choose(&mut self.rng, 8) else {
            return;
        };
        let va = self.va.region();
        let n = 1 + self.rng.below(16);
        let mut dead_local = false;
        let mut iov: Vec<IoVec<'_, MemRegion>> = Vec::with_capacity(n);
        for _ in 0..n {
            let len = if self.rng.chance(5) {
                0
            } else {
                1 + self.rng.below(256)
            };
            let remote = self.rng.below(MIN_SEG - len + 1);
            let local = if self.rng.chance(50) {
                w.locals.choose(&mut self.rng, 10)
            } else {
                None
            };
            match local {
                Some((l, is_dead)) => {
                    dead_local |= is_dead;
                    let len = len.min(l.len);
                    let off = self.rng.below(l.len - len + 1);
                    iov.push(IoVec::handle(l.h, off, remote, len));
                }
                None => {
                    let off = self.rng.below(VA_LEN - len + 1);
                    iov.push(IoVec::va(&va, off, remote, len));
                }
            }
        }
        let mut sg = ScatGath::new(imp.h, &iov);
        let sigpost = put && self.rng.chance(20);
        if sigpost {
            sg.flags = SgFlags::IMPLICIT_SIGPOST;
            if self.rng.chance(50) {
                sg.flags |= SgFlags::SIGPOST_NO_ACCUMULATE;
            }
        }
        let flags = sg.flags;
        let (call, r, need) = if put {
            ("putv", w.node.putv(&mut sg), Permission::WRITE)
        } else {
            ("getv", w.node.getv(&mut sg), Permission::READ)
        };
        assert_eq!(sg.flags, flags, "{call} changed flags");
        // Residual (spec §9.2): 0 on success; the whole count for any failure before the
        // first byte moved (every validation error); a failed implicit sigpost after a
        // complete transfer reports CONN_ABORTED with residual 0 (spec §9.28).
        match r {
            Ok(()) => assert_eq!(sg.io_residual_count, 0, "{call} Ok"),
            Err(ConnAborted) if sigpost => assert!(
                sg.io_residual_count == 0 || sg.io_residual_count == n as u64,
                "{call} {r:?}: residual {}",
                sg.io_residual_count
            ),
            Err(_) => assert_eq!(sg.io_residual_count, n as u64, "{call} {r:?}"),
        }
        if dead {
            self.stats.check_err(call, &r, &[BadSegHndl]);
            return;
        }
        // Stale local handle in an entry → BAD_SGIO; disconnected import → BAD_SEG_HNDL;
        // unpublished/destroyed/rebound-while-mapped exporter → CONN_ABORTED.
        let mut allowed = vec![BadSegHndl, ConnAborted, BadSgio];
        if lacks(imp.perm, need) {
            allowed.push(PermDenied);
        }
        if dead_local {
            self.stats.check_err(call, &r, &allowed);
        } else {
            self.stats.check(call, &r, &allowed);
        }
    }

    /// A random aligned put/get (plain or 64-bit) on a churned import; no content checks
    /// (every thread writes these segments with arbitrary bytes).
    fn one_access(&mut self, imp: Import) -> RsmResult<()> {
        let w = self.w;
        let words = 1 + self.rng.below(32);
        let off = (8 * self.rng.below(MIN_SEG / 8 - words + 1)) as i64;
        let (call, r, need) = match self.rng.below(4) {
            0 => (
                "put",
                w.node.put(imp.h, off, &vec![0x5A; words * 8]),
                Permission::WRITE,
            ),
            1 => (
                "put64",
                w.node
                    .put64(imp.h, off, &vec![0x0707_0707_0707_0707; words]),
                Permission::WRITE,
            ),
            2 => (
                "get",
                w.node.get(imp.h, off, &mut vec![0; words * 8]),
                Permission::READ,
            ),
            _ => (
                "get64",
                w.node.get64(imp.h, off, &mut vec![0; words]),
                Permission::READ,
            ),
        };
        self.stats.check(call, &r, &access_allowed(imp.perm, need));
        r
    }

    /// init_barrier, open, a few accesses with order_barrier, close, destroy.
    fn barrier_access(&mut self) {
        let w = self.w;
        let Some((imp, dead)) = w.imports.choose(&mut self.rng, 5) else {
            return;
        };
        let types = [
            BarrierType::SEGMENT,
            BarrierType::NODE,
            BarrierType::SEGMENT_THREAD,
            BarrierType(0x77),
        ];
        let ty = types[self.rng.below(types.len())];
        let mut b = Barrier::default();
        let r = w.node.init_barrier(imp.h, ty, &mut b);
        if dead {
            self.stats.check_err("init_barrier", &r, &[BadSegHndl]);
            return;
        }
        if !self.stats.check("init_barrier", &r, &[BadSegHndl]) {
            return;
        }
        // open fails only if the import was disconnected meanwhile.
        let r = w.node.open_barrier(&mut b);
        self.stats.check("open_barrier", &r, &[BadSegHndl]);
        for _ in 0..1 + self.rng.below(4) {
            if self.rng.chance(20) {
                let r = w.node.order_barrier(&mut b);
                self.stats
                    .check("order_barrier", &r, &[BadSegHndl, ConnAborted]);
            } else {
                let _ = self.one_access(imp);
            }
        }
        let r = w.node.close_barrier(&mut b);
        self.stats
            .check("close_barrier", &r, &[BadSegHndl, ConnAborted]);
        // Our own initialised storage: destroy always succeeds.
        let r = w.node.destroy_barrier(&mut b);
        self.stats.check("destroy_barrier", &r, &[]);
    }

    fn access(&mut self) {
        let w = self.w;
        let Some((imp, dead)) = w.imports.choose(&mut self.rng, 8) else {
            return;
        };
        if dead {
            let r = w.node.get64(imp.h, 0, &mut [0; 4]);
            self.stats.check_err("get64", &r, &[BadSegHndl]);
            return;
        }
        let _ = self.one_access(imp);
    }

    fn set_mode(&mut self) {
        let w = self.w;
        let Some((imp, dead)) = w.imports.choose(&mut self.rng, 8) else {
            return;
        };
        if self.rng.chance(20) {
            let r = w.node.get_mode(imp.h);
            if dead {
                self.stats.check_err("get_mode", &r, &[BadSegHndl]);
            } else {
                self.stats.check("get_mode", &r, &[BadSegHndl]);
            }
            return;
        }
        let mode = if self.rng.chance(5) {
            2
        } else {
            self.rng.below(2) as u32
        };
        let r = w.node.set_mode(imp.h, mode);
        if dead {
            self.stats.check_err("set_mode", &r, &[BadSegHndl]);
        } else if mode > 1 {
            self.stats.check_err("set_mode", &r, &[BadSegHndl, BadMode]);
        } else {
            self.stats.check("set_mode", &r, &[BadSegHndl]);
        }
    }

    // ----- events -----

    /// A segment (import or export) to post to / wait on, whether it is dead, and whether it
    /// is an import.
    fn event_segment(&mut self) -> Option<(SegmentRef, bool, bool)> {
        let w = self.w;
        if self.rng.chance(50) {
            let (i, dead) = w.imports.choose(&mut self.rng, 5)?;
            Some((SegmentRef::Import(i.h), dead, true))
        } else {
            let (e, dead) = w.exports.choose(&mut self.rng, 5)?;
            Some((SegmentRef::Export(e.h), dead, false))
        }
    }

    fn post(&mut self) {
        let w = self.w;
        let Some((seg, dead, import)) = self.event_segment() else {
            return;
        };
        let flags = if self.rng.chance(30) {
            SigpostFlags::NO_ACCUMULATE
        } else {
            SigpostFlags::empty()
        };
        let r = w.node.intr_signal_post(seg, flags);
        if dead {
            self.stats.check_err("intr_signal_post", &r, &[BadSegHndl]);
        } else if import {
            // import → exporter: CONN_ABORTED once the exporter withdrew the segment.
            self.stats
                .check("intr_signal_post", &r, &[BadSegHndl, ConnAborted]);
        } else {
            // export → importers: nothing to ring is a success.
            self.stats.check("intr_signal_post", &r, &[BadSegHndl]);
        }
    }

    fn wait(&mut self) {
        let w = self.w;
        let Some((seg, dead, import)) = self.event_segment() else {
            return;
        };
        let timeout = if self.rng.chance(50) {
            0
        } else {
            1 + self.rng.below(5) as i32
        };
        let r = w.node.intr_signal_wait(seg, timeout);
        if dead {
            self.stats.check_err("intr_signal_wait", &r, &[BadSegHndl]);
        } else if import {
            self.stats
                .check("intr_signal_wait", &r, &[BadSegHndl, Timeout, ConnAborted]);
        } else {
            self.stats
                .check("intr_signal_wait", &r, &[BadSegHndl, Timeout]);
        }
    }

    fn get_pollfd(&mut self) {
        let w = self.w;
        let Some((seg, dead, _)) = self.event_segment() else {
            return;
        };
        let r = w.node.get_pollfd(seg);
        if dead {
            self.stats.check_err("get_pollfd", &r, &[BadSegHndl]);
            return;
        }
        // An unpublished export or a force-disconnected import → BAD_SEG_HNDL (spec §9.14).
        if !self.stats.check("get_pollfd", &r, &[BadSegHndl]) {
            return;
        }
        let fd = r.unwrap();
        assert_eq!(fd.fd, PollSource::Segment(seg));
        assert_eq!(fd.events, POLLRDNORM);
        let mut held = lock(&w.pollfds);
        if held.len() < 8 {
            held.push(seg);
        } else {
            drop(held);
            let r = w.node.release_pollfd(seg);
            self.stats.check("release_pollfd", &r, &[]);
        }
    }

    fn release_pollfd(&mut self) {
        let w = self.w;
        let seg = {
            let mut held = lock(&w.pollfds);
            if held.is_empty() {
                return;
            }
            let i = self.rng.below(held.len());
            held.swap_remove(i)
        };
        // The reference we hold keeps the segment from being destroyed/disconnected
        // (POLLFD_IN_USE), so releasing it must succeed.
        let r = w.node.release_pollfd(seg);
        self.stats.check("release_pollfd", &r, &[]);
    }

    fn wait_pollfd(&mut self) {
        let w = self.w;
        let mut fds: Vec<PollFd> = {
            let held = lock(&w.pollfds);
            held.iter()
                .take(3)
                .map(|&s| PollFd {
                    fd: PollSource::Segment(s),
                    events: POLLRDNORM,
                    revents: 0,
                })
                .collect()
        };
        if self.rng.chance(30) {
            fds.push(PollFd::other(-1, rsm_core::POLLIN));
        }
        let timeout = self.rng.below(3) as i32;
        let r = w.node.intr_signal_wait_pollfd(&mut fds, timeout, |_, _| 0);
        if self.stats.check("intr_signal_wait_pollfd", &r, &[Timeout]) {
            let n = r.unwrap();
            assert!(n >= 1);
            assert_eq!(n, fds.iter().filter(|f| f.revents != 0).count());
        }
    }

    // ----- mapping -----

    fn map(&mut self) {
        let w = self.w;
        let Some((imp, dead)) = w.imports.choose(&mut self.rng, 8) else {
            return;
        };
        let perms = [
            Permission::READ,
            Permission::WRITE,
            Permission::RDWR,
            imp.perm,
        ];
        let perm = perms[self.rng.below(perms.len())];
        let attr = if self.rng.chance(20) {
            MapAttr::Reserved
        } else {
            MapAttr::None
        };
        let r = w.node.import_map(imp.h, attr, perm, 0, MIN_SEG, None);
        if dead {
            self.stats.check_err("import_map", &r, &[BadSegHndl]);
            return;
        }
        let mut allowed = vec![BadSegHndl, SegAlreadyMapped, ConnAborted, InsufficientMem];
        if !imp.perm.contains(perm) {
            allowed.push(BadPerms);
        }
        if self.stats.check("import_map", &r, &allowed) {
            // The window is the exporter's pages (one of our long-lived buffers): readable
            // even if another thread unmaps meanwhile.
            let window = r.unwrap();
            let mut word = [0u8; 8];
            w.node
                .platform()
                .read(&window, 8 * self.rng.below(MIN_SEG / 8), &mut word)
                .unwrap();
        }
    }

    fn unmap(&mut self) {
        let w = self.w;
        let Some((imp, dead)) = w.imports.choose(&mut self.rng, 8) else {
            return;
        };
        let r = w.node.import_unmap(imp.h);
        if dead {
            self.stats.check_err("import_unmap", &r, &[BadSegHndl]);
        } else {
            self.stats
                .check("import_unmap", &r, &[BadSegHndl, SegNotMapped]);
        }
    }

    // ----- the tearing segment, from the churn threads -----

    fn tear(&mut self) {
        let w = self.w;
        let imp = w.tear.shared;
        match self.rng.below(20) {
            0..=7 => tear_put64(w, &mut self.rng, &mut self.stats, imp),
            8..=15 => tear_get64(w, &mut self.rng, &mut self.stats, imp),
            16..=18 => {
                let va = self.va.region();
                tear_getv(w, &mut self.rng, &mut self.stats, imp, &self.va, &va, None);
            }
            _ => {
                // Rebind between the two buffers (or to the current one: a no-op). Both only
                // ever hold whole patterns, so readers see untorn words either way.
                let to = w.tear_bufs[self.rng.below(2)].region();
                let r = w.node.export_rebind(w.tear.seg, to);
                self.stats
                    .check("tear export_rebind", &r, &[InsufficientMem]);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Word tearing.
// ------------------------------------------------------------------------------------------

/// A random pattern word with all bytes equal (never 0, which is the initial content).
fn pattern(rng: &mut Rng) -> u64 {
    (1 + rng.below(255) as u64) * 0x0101_0101_0101_0101
}

/// A random run of `1..=MAX_TEAR_RUN` words inside the tearing segment: (byte offset, words).
fn tear_run(rng: &mut Rng) -> (i64, usize) {
    let words = 1 + rng.below(MAX_TEAR_RUN);
    let off = 8 * rng.below(TEAR_WORDS - words + 1);
    (off as i64, words)
}

fn tear_put64(w: &World, rng: &mut Rng, stats: &mut Stats, imp: ImportHandle) {
    let (off, words) = tear_run(rng);
    let r = w.node.put64(imp, off, &vec![pattern(rng); words]);
    // The tearing segment is never withdrawn: every access succeeds.
    stats.check("tear put64", &r, &[]);
}

/// Assert every word read is untorn: put64/get64 (and whole-word put/get at 8-aligned
/// offsets) move each aligned word with one 8-byte store/load (rsm-core access.rs "Word
/// atomicity"; rsm-host `Memory::write`/`read`).
#[track_caller]
fn assert_untorn(call: &str, off: i64, words: &[u64]) {
    for (k, &word) in words.iter().enumerate() {
        assert!(
            untorn(word),
            "{call}: the word at byte {} is torn: {word:#018x} (a mix of two put64 patterns)",
            off as usize + 8 * k
        );
    }
}

fn tear_get64(w: &World, rng: &mut Rng, stats: &mut Stats, imp: ImportHandle) {
    let (off, words) = tear_run(rng);
    let mut got = vec![0u64; words];
    let r = w.node.get64(imp, off, &mut got);
    stats.check("tear get64", &r, &[]);
    assert_untorn("get64", off, &got);
    stats.count("tear words checked", "get64", words as u64);
}

/// getv 8-aligned ranges of the tearing segment into `buf` (VA entries, and HANDLE entries
/// through `local` if given) and count torn words — reported, not asserted: getv is a bulk
/// copy through `Memory::copy` (memmove), which the HAL does not promise to perform in
/// aligned 8-byte accesses, so a word may legitimately be seen half-old, half-new.
fn tear_getv(
    w: &World,
    rng: &mut Rng,
    stats: &mut Stats,
    imp: ImportHandle,
    buf: &PinnedBuf,
    va: &MemRegion,
    local: Option<LocalMemHandle>,
) {
    let entries = 1 + rng.below(4);
    let slot = buf.len() / entries / 8 * 8;
    let mut iov: Vec<IoVec<'_, MemRegion>> = Vec::with_capacity(entries);
    let mut ranges = Vec::with_capacity(entries);
    for e in 0..entries {
        let words = 1 + rng.below((slot / 8).min(MAX_TEAR_RUN));
        let remote = 8 * rng.below(TEAR_WORDS - words + 1);
        let local_off = e * slot;
        iov.push(match local {
            Some(h) if rng.chance(50) => IoVec::handle(h, local_off, remote, words * 8),
            _ => IoVec::va(va, local_off, remote, words * 8),
        });
        ranges.push((local_off, words));
    }
    let mut sg = ScatGath::new(imp, &iov);
    let r = w.node.getv(&mut sg);
    stats.check("tear getv", &r, &[]);
    let mut torn = 0;
    for (local_off, words) in ranges {
        let mut bytes = vec![0u8; words * 8];
        buf.read(local_off, &mut bytes).unwrap();
        for chunk in bytes.chunks_exact(8) {
            if !untorn(u64::from_ne_bytes(chunk.try_into().unwrap())) {
                torn += 1;
            }
        }
        stats.count("tear words checked", "getv", words as u64);
    }
    stats.count("tear words checked", "getv torn (not asserted)", torn);
}

/// The tear writer: put64 and whole-word put (implicit mode, its own barrier), sometimes in
/// an explicit open/order/close scope.
fn tear_writer(w: &World, seed: u64, deadline: Instant) -> (Stats, usize) {
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let imp = w.tear.writer;
    let mut b = Barrier::default();
    w.node
        .init_barrier(imp, BarrierType::SEGMENT, &mut b)
        .unwrap();
    let mut n = 0;
    while n < MAX_TEAR_OPS && (n < MIN_OPS || Instant::now() < deadline) {
        match rng.below(10) {
            0..=5 => tear_put64(w, &mut rng, &mut stats, imp),
            6 | 7 => {
                let (off, words) = tear_run(&mut rng);
                let bytes = pattern(&mut rng).to_ne_bytes().repeat(words);
                let r = w.node.put(imp, off, &bytes);
                stats.check("tear put", &r, &[]);
            }
            _ => {
                stats.check("tear open_barrier", &w.node.open_barrier(&mut b), &[]);
                tear_put64(w, &mut rng, &mut stats, imp);
                stats.check("tear order_barrier", &w.node.order_barrier(&mut b), &[]);
                tear_put64(w, &mut rng, &mut stats, imp);
                stats.check("tear close_barrier", &w.node.close_barrier(&mut b), &[]);
            }
        }
        n += 1;
    }
    w.node.destroy_barrier(&mut b).unwrap();
    (stats, n)
}

/// The tear reader: get64 and whole-word get (asserted untorn), getv (reported).
fn tear_reader(w: &World, seed: u64, deadline: Instant) -> (Stats, usize) {
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let imp = w.tear.reader;
    let mut b = Barrier::default();
    w.node
        .init_barrier(imp, BarrierType::SEGMENT, &mut b)
        .unwrap();
    let buf = &w.reader_buf;
    let va = buf.region();
    let mut n = 0;
    while n < MAX_TEAR_OPS && (n < MIN_OPS || Instant::now() < deadline) {
        match rng.below(10) {
            0..=4 => tear_get64(w, &mut rng, &mut stats, imp),
            5..=7 => {
                let (off, words) = tear_run(&mut rng);
                let mut bytes = vec![0u8; words * 8];
                let r = w.node.get(imp, off, &mut bytes);
                stats.check("tear get", &r, &[]);
                let got: Vec<u64> = bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
                    .collect();
                assert_untorn("get (whole words)", off, &got);
                stats.count("tear words checked", "get", words as u64);
            }
            _ => tear_getv(
                w,
                &mut rng,
                &mut stats,
                imp,
                buf,
                &va,
                Some(w.tear.reader_local),
            ),
        }
        n += 1;
    }
    w.node.destroy_barrier(&mut b).unwrap();
    (stats, n)
}

// ------------------------------------------------------------------------------------------
// The test.
// ------------------------------------------------------------------------------------------

/// Calls that must have succeeded at least [`MIN_OK`] times for the run to count.
const MUST_SUCCEED: [&str; 36] = [
    "get_controller",
    "release_controller",
    "get_controller_attr",
    "create_localmemory_handle",
    "free_localmemory_handle",
    "export_create",
    "export_destroy",
    "export_publish",
    "export_unpublish",
    "export_republish",
    "export_rebind",
    "export_segment_id",
    "import_connect",
    "import_disconnect",
    "putv",
    "getv",
    "put",
    "put64",
    "get",
    "get64",
    "init_barrier",
    "open_barrier",
    "close_barrier",
    "destroy_barrier",
    "set_mode",
    "intr_signal_post",
    "intr_signal_wait",
    "get_pollfd",
    "release_pollfd",
    "import_map",
    "import_unmap",
    "tear put64",
    "tear get64",
    "tear getv",
    "tear put",
    "tear get",
];
const MIN_OK: u64 = 3;

/// Release, unmap, disconnect, destroy and free everything still live, checking that each
/// cleanup call succeeds, then that no slot and no pinned page is left.
fn clean_up(w: &World) {
    let node = &w.node;
    for seg in lock(&w.pollfds).drain(..) {
        assert_eq!(node.release_pollfd(seg), Ok(()), "release held pollfd");
    }
    for i in w.imports.all() {
        let r = node.import_unmap(i.h);
        assert!(r == Ok(()) || r == Err(SegNotMapped), "unmap: {r:?}");
        assert_eq!(
            node.import_disconnect(i.h),
            Ok(()),
            "disconnect live import"
        );
    }
    for e in w.exports.all() {
        assert_eq!(node.export_destroy(e.h), Ok(()), "destroy live export");
    }
    let ctrl = [0, 1].map(|i| node.get_controller(CTRL_NAMES[i]).unwrap());
    for l in w.locals.all() {
        assert_eq!(
            node.free_localmemory_handle(ctrl[l.ctrl], l.h),
            Ok(()),
            "free live local handle"
        );
    }
    assert_eq!(
        node.free_localmemory_handle(ctrl[1], w.tear.reader_local),
        Ok(())
    );
    for imp in [w.tear.writer, w.tear.reader, w.tear.shared] {
        assert_eq!(node.import_disconnect(imp), Ok(()));
    }
    assert_eq!(node.export_destroy(w.tear.seg), Ok(()));
    for c in w.ctrls.all() {
        assert_eq!(
            node.release_controller(c.h),
            Ok(()),
            "release held controller"
        );
    }
    for (i, h) in ctrl.into_iter().enumerate() {
        assert_eq!(node.release_controller(h), Ok(()));
        // That was the last reference: every get was matched by exactly one release.
        assert_eq!(
            node.get_controller_attr(h),
            Err(BadCtlrHndl),
            "controller {i} still referenced after all releases"
        );
    }
    assert_eq!(node.slots_in_use(), (0, 0, 0));
    assert_eq!(node.platform().pinned_pages(), 0);
}

#[test]
fn shared_handles_under_concurrent_churn() {
    with_watchdog("shared_handles_under_concurrent_churn", || {
        let seed = base_seed();
        eprintln!("stress: base seed {seed:#x} (set RSM_STRESS_SEED to choose it)");
        let w = World::new();
        let deadline = Instant::now() + BUDGET;
        let started = Instant::now();

        let (stats, ops) = thread::scope(|s| {
            let w = &w;
            let churn: Vec<_> = (0..CHURN_THREADS)
                .map(|t| {
                    let seed = seed ^ (t as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
                    s.spawn(move || {
                        let mut worker = Worker::new(w, seed);
                        let n = worker.run(deadline);
                        (worker.stats, n)
                    })
                })
                .collect();
            let writer = s.spawn(move || tear_writer(w, seed ^ 0x57, deadline));
            let reader = s.spawn(move || tear_reader(w, seed ^ 0x52, deadline));
            let mut stats = Stats::default();
            let mut ops = Vec::new();
            for h in churn.into_iter().chain([writer, reader]) {
                let (st, n) = h.join().unwrap();
                stats.merge(st);
                ops.push(n);
            }
            (stats, ops)
        });
        let elapsed = started.elapsed();

        // The pools account for every slot in use: nothing leaked, nothing freed twice.
        // (+1 local: the reader's handle; +1 export and +3 imports: the tearing segment.)
        assert_eq!(
            w.node.slots_in_use(),
            (w.locals.len() + 1, w.exports.len() + 1, w.imports.len() + 3),
            "slots in use vs. handles the pools hold"
        );

        eprintln!(
            "stress: {elapsed:?}; operations per thread (4 churn, writer, reader) {ops:?}; \
             live at the end: {} local, {} export, {} import handles, {} controller \
             references, {} poll descriptors",
            w.locals.len(),
            w.exports.len(),
            w.imports.len(),
            w.ctrls.len(),
            lock(&w.pollfds).len()
        );
        eprintln!("stress: outcomes per call:");
        stats.print();

        clean_up(&w);

        let missing: Vec<&str> = MUST_SUCCEED
            .iter()
            .copied()
            .filter(|&c| stats.get(c, "Ok") < MIN_OK)
            .collect();
        assert!(
            missing.is_empty(),
            "calls that succeeded fewer than {MIN_OK} times (the run is too thin): {missing:?}"
        );
        assert!(stats.get("tear words checked", "get64") >= 100);
        assert!(stats.get("tear words checked", "get") >= 100);
    });
}

/// Found by probing the races the stress test exercises (rarely hit there: the window is the
/// few microseconds a destroy waits for a transfer in flight). While `export_destroy` drains a
/// transfer, the export handle still accepts new users: `export_publish` succeeds again and
/// `get_pollfd` hands out a poll-descriptor reference — then the destroy completes with `Ok`
/// although that reference is held, and the reference can no longer be released
/// (`release_pollfd` → `RSMERR_BAD_SEG_HNDL`). rsm-core's own docs say destroy fails with
/// `RSMERR_POLLFD_IN_USE` while any poll descriptor is held (`Rsm::get_pollfd`,
/// `Rsm::export_destroy`); imports (`closing`) and local handles (`freeing`) refuse new users
/// while they are being torn down, exports do not.
#[test]
fn export_destroy_in_progress_hands_out_no_poll_descriptor() {
    with_watchdog("destroy_vs_pollfd", || {
        const LEN: usize = 1 << 20;
        const ROUNDS: usize = 20;
        let node: Rsm<HostPlatform> = Rsm::new(HostPlatform::new(), Config::default());
        let ctrl = node.get_controller(None).unwrap();
        let seg_buf = PinnedBuf::new(LEN).unwrap();
        let src = PinnedBuf::new(LEN).unwrap();
        let src_r = src.region();
        // 16 MiB per putv: the destroy below almost always finds a transfer in flight.
        let iov = [IoVec::<MemRegion>::va(&src_r, 0, 0, LEN); 16];
        for round in 0..ROUNDS {
            let seg = node
                .export_create(ctrl, seg_buf.region(), CreateFlags::empty())
                .unwrap();
            let id = node.export_publish(seg, 0, &[]).unwrap();
            let imp = node
                .import_connect(ctrl, node.node_id(), id, Permission::RDWR)
                .unwrap();
            let putting = AtomicBool::new(false);
            let destroyed = AtomicBool::new(false);
            let (destroy, pollfd) = thread::scope(|s| {
                s.spawn(|| loop {
                    putting.store(true, SeqCst);
                    let mut sg = ScatGath::new(imp, &iov);
                    if node.putv(&mut sg).is_err() {
                        break; // the destroy aborted the connection
                    }
                });
                while !putting.load(SeqCst) {
                    thread::yield_now();
                }
                let destroyer = s.spawn(|| {
                    let r = node.export_destroy(seg);
                    destroyed.store(true, SeqCst);
                    r
                });
                // While the destroy drains the transfer in flight: publish again, then ask
                // for a poll descriptor.
                let mut pollfd = None;
                while !destroyed.load(SeqCst) {
                    match node.export_publish(seg, 0, &[]) {
                        Err(SegAlreadyPublished) => continue, // the destroy has not begun
                        Ok(_) => {
                            pollfd = Some(node.get_pollfd(SegmentRef::Export(seg)));
                            break;
                        }
                        Err(_) => break, // refused: the handle takes no new users
                    }
                }
                (destroyer.join().unwrap(), pollfd)
            });
            let Some(pollfd) = pollfd else {
                // The window was missed (or publish was refused): clean up, try again.
                if destroy.is_err() {
                    assert_eq!(node.export_destroy(seg), Ok(()));
                }
                assert_eq!(node.import_disconnect(imp), Ok(()));
                continue;
            };
            if pollfd.is_ok() {
                let release = node.release_pollfd(SegmentRef::Export(seg));
                assert_eq!(
                    destroy,
                    Err(PollfdInUse),
                    "round {round}: get_pollfd handed out a reference while export_destroy was \
                     in progress, and the destroy then returned {destroy:?} although that \
                     reference was held (release_pollfd now returns {release:?})"
                );
                assert_eq!(release, Ok(()));
                assert_eq!(node.export_destroy(seg), Ok(()));
            } else if destroy.is_err() {
                assert_eq!(node.export_destroy(seg), Ok(()));
            }
            assert_eq!(node.import_disconnect(imp), Ok(()));
            break;
        }
        assert_eq!(node.release_controller(ctrl), Ok(()));
        assert_eq!(node.slots_in_use(), (0, 0, 0));
        assert_eq!(node.platform().pinned_pages(), 0);
    });
}
