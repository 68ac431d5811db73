//! The per-node RSMAPI instance: tables, controllers and local memory handles.
//!
//! One [`Rsm`] per node owns every table and its platform; there is no hidden global state (the
//! C layer keeps one instance per process). All tables live in one [`spin::Mutex`]: every
//! operation takes it for a short, bounded table update and never across a copy or a wait, so
//! the calls are MT-Safe as the man pages promise and copies of different threads run in
//! parallel.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::error::{RsmError, RsmResult};
use crate::handle::{self, ControllerHandle, ExportHandle, ImportHandle, Kind, LocalMemHandle};
use crate::op::OpSlot;
use crate::table::Table;
use crate::types::{
    BarrierMode, ControllerAttr, CreateFlags, NodeId, Permission, SegmentId, MAXNAMELEN, PAGE_SIZE,
    RSM_DAS16, RSM_DAS32, RSM_DAS64, RSM_DAS8, RSM_USER_APP_ID_BASE,
};
use rsm_hal::{ErrorKind, Instant, Memory, Platform, Region};

/// Capacity of the table of non-blocking operations awaiting [`Rsm::take_completion`].
pub const MAX_PENDING_OPS: usize = 32;

/// Index of the `loopback` controller. Every node has two controllers (DESIGN §4a): `loopback`
/// (index 0, reaches only the local node) and the network controller `rsmnet0` (index 1).
pub(crate) const LOOPBACK: u8 = 0;

/// Node configuration, fixed at [`Rsm::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// This node's id (0..=63; spec §2.7). A node with no cluster configuration is node 0.
    pub node_id: NodeId,
    /// Largest export segment or local memory handle, in bytes; longer ones get
    /// `RSMERR_BAD_LENGTH` and `attr_max_export_segment_size` reports it. Default 1 TiB.
    pub max_segment_size: usize,
    /// The text of the segment-id configuration (`/etc/rsm/rsm.segmentid` format, see
    /// [`crate::segid`]) for [`Rsm::get_segmentid_range`]; `None` = no file
    /// (`RSMERR_BAD_CONF`). Default `None`.
    pub segid_conf: Option<&'static str>,
}

impl Config {
    /// The defaults (node 0, 1 TiB segments, no segment-id configuration), usable in a
    /// `const` or `static`: `Config { node_id: 3, ..Config::DEFAULT }`.
    pub const DEFAULT: Config = Config {
        node_id: 0,
        max_segment_size: 1 << 40,
        segid_conf: None,
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// A controller's state, packed in one atomic word so that checking a controller handle takes
/// no table lock: generation (high 32 bits) and reference count (low 32 bits).
pub(crate) struct Ctrl(AtomicU64);

impl Ctrl {
    const fn new() -> Self {
        Ctrl(AtomicU64::new(1 << 32))
    }
    fn unpack(v: u64) -> (u32, u32) {
        ((v >> 32) as u32, v as u32)
    }
    const fn pack(gen: u32, refs: u32) -> u64 {
        ((gen as u64) << 32) | refs as u64
    }
    /// Apply `f(gen, refs)` atomically; `f` returns the new pair or an error.
    fn update<T>(&self, mut f: impl FnMut(u32, u32) -> RsmResult<(u32, u32, T)>) -> RsmResult<T> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (gen, refs) = Self::unpack(cur);
            let (ngen, nrefs, out) = f(gen, refs)?;
            match self.0.compare_exchange_weak(
                cur,
                Self::pack(ngen, nrefs),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(out),
                Err(v) => cur = v,
            }
        }
    }
}

pub(crate) struct LocalMem<R, Pin> {
    pub(crate) ctrl: u8,
    pub(crate) region: R,
    pub(crate) pin: Pin,
    /// putv/getv entries using the handle right now.
    pub(crate) busy: u32,
    /// A free is waiting for `busy` to drain; the handle takes no new users.
    pub(crate) freeing: bool,
}

pub(crate) struct Publication {
    pub(crate) segid: SegmentId,
    /// Empty = every node may connect (spec §4.3).
    pub(crate) acl: crate::acl::Acl,
}

pub(crate) struct Export<R, Pin> {
    pub(crate) ctrl: u8,
    pub(crate) region: R,
    pub(crate) pin: Pin,
    pub(crate) flags: CreateFlags,
    pub(crate) published: Option<Publication>,
    /// Bumped by unpublish and destroy: importers connected under an older epoch are
    /// force-disconnected and see `RSMERR_CONN_ABORTED` (spec §6.4).
    pub(crate) epoch: u32,
    /// Transfers into/out of this segment right now.
    pub(crate) busy: u32,
    /// A rebind is swapping the backing region: new transfers wait.
    pub(crate) quiesced: bool,
    /// Pending doorbell events (spec §6.5).
    pub(crate) events: u32,
    /// Poll descriptors handed out and not released (spec §4.9).
    pub(crate) pollfds: u32,
    /// A destroy is waiting for transfers to drain: the handle takes no new users (like
    /// `LocalMem::freeing` and `Import::closing`).
    pub(crate) dying: bool,
}

/// An explicit mapping of an import (spec §4.7): the window and its own pin, which keeps the
/// pages pinned even after the exporter destroyed or rebound the segment, until unmap.
pub(crate) struct Mapping<R, Pin> {
    pub(crate) region: R,
    pub(crate) pin: Pin,
    pub(crate) perm: Permission,
}

pub(crate) struct Import<R, Pin> {
    pub(crate) node: NodeId,
    pub(crate) segid: SegmentId,
    /// The exporting slot (same node): index, generation and the epoch at connect.
    pub(crate) export: (u16, u32),
    pub(crate) epoch: u32,
    pub(crate) perm: Permission,
    pub(crate) size: usize,
    pub(crate) busy: u32,
    pub(crate) closing: bool,
    /// Force-disconnected on its own (a rebind of a segment it had mapped), regardless of epoch.
    pub(crate) aborted: bool,
    /// Aborted because the exporting node was declared unreachable: calls on the import then
    /// fail with `RSMERR_REMOTE_NODE_UNREACHABLE` (the reason) rather than
    /// `RSMERR_CONN_ABORTED`, also a wait for its doorbell (our choice, see
    /// [`crate::Rsm::intr_signal_wait`]).
    pub(crate) unreachable: bool,
    /// Barrier mode for put/get (spec §4.8; new imports are implicit).
    pub(crate) mode: BarrierMode,
    /// Id of the barrier implicit-mode accesses use (the last one initialised), if any.
    pub(crate) barrier: Option<u32>,
    /// Pending doorbell events rung by the exporter (spec §6.5).
    pub(crate) events: u32,
    /// Poll descriptors handed out and not released (spec §4.9).
    pub(crate) pollfds: u32,
    /// The explicit mapping, if mapped.
    pub(crate) map: Option<Mapping<R, Pin>>,
    /// For a segment on another node: the connection's wire state (then `export` is unused).
    pub(crate) remote: Option<crate::proto::RemoteImport>,
}

impl<R, Pin> Import<R, Pin> {
    /// The error of a call on this import once its connection is gone.
    pub(crate) fn lost(&self) -> crate::RsmError {
        if self.unreachable {
            crate::RsmError::RemoteNodeUnreachable
        } else {
            crate::RsmError::ConnAborted
        }
    }

    /// A fresh connection to export slot `export` taken at `epoch`.
    pub(crate) fn new(
        node: NodeId,
        segid: SegmentId,
        export: (u16, u32),
        epoch: u32,
        perm: Permission,
        size: usize,
    ) -> Self {
        Import {
            node,
            segid,
            export,
            epoch,
            perm,
            size,
            busy: 0,
            closing: false,
            aborted: false,
            unreachable: false,
            mode: BarrierMode::Implicit,
            barrier: None,
            events: 0,
            pollfds: 0,
            map: None,
            remote: None,
        }
    }
}

impl<P: Memory, const L: usize, const E: usize, const I: usize, const F: usize>
    State<P, L, E, I, F>
{
    /// The live export an import is connected to, or `None` if the connection was aborted
    /// (the exporter unpublished, destroyed, or rebound a segment this import had mapped).
    pub(crate) fn connected_export(
        &self,
        im: &Import<P::Region, P::Pin>,
    ) -> Option<&Export<P::Region, P::Pin>> {
        if im.remote.is_some() || im.aborted {
            return None;
        }
        self.live_export(im.export, im.epoch)
    }

    /// Export slot `export` if it is still the segment a connection was made to: same epoch
    /// (not unpublished or destroyed since) and published. Same-node imports and the
    /// exporter's records of remote importers both hold such a (slot, epoch) pair.
    pub(crate) fn live_export(
        &self,
        export: (u16, u32),
        epoch: u32,
    ) -> Option<&Export<P::Region, P::Pin>> {
        let ex = self.exports.get(export.0, export.1)?;
        (ex.epoch == epoch && ex.published.is_some()).then_some(ex)
    }

    /// Whether an import's connection stands: for a same-node import, its export is live
    /// (see [`Self::connected_export`]); for a remote one, it is connected and was not
    /// force-disconnected, its exporter did not restart, and it was not declared unreachable.
    pub(crate) fn import_alive(&self, im: &Import<P::Region, P::Pin>) -> bool {
        match &im.remote {
            Some(r) => !im.aborted && r.state == crate::proto::RemoteState::Connected,
            None => self.connected_export(im).is_some(),
        }
    }
}

pub(crate) struct State<P: Memory, const L: usize, const E: usize, const I: usize, const F: usize> {
    pub(crate) locals: Table<LocalMem<P::Region, P::Pin>, L>,
    pub(crate) exports: Table<Export<P::Region, P::Pin>, E>,
    pub(crate) imports: Table<Import<P::Region, P::Pin>, I>,
    pub(crate) ops: Table<OpSlot<P::Region>, MAX_PENDING_OPS>,
    /// Next candidate for an automatically assigned segment id (spec §9.15).
    pub(crate) next_auto_segid: u32,
    /// Callers sleeping in [`Rsm::wait_for`]; transfers wake them when they finish.
    pub(crate) waiters: u32,
    /// Next barrier id (barriers live in caller storage; the id ties one to its import).
    pub(crate) next_barrier_id: u32,
    /// The wire protocol engine of `rsmnet0` (DESIGN §4).
    pub(crate) net: crate::proto::Engine<F>,
    /// The node layer's records of the wire side (remote importers, get answers owed).
    pub(crate) remote: crate::proto::Serving,
    /// A put fragment checked and accounted for, to be written into the exported memory by
    /// [`Rsm::handle_frame`] after it released this lock (then its acknowledgement is queued).
    pub(crate) rx_write: Option<crate::proto::RxWrite<P::Region>>,
    /// The message being delivered is the frame [`Rsm::handle_frame`] holds (not one from
    /// the reorder buffer), so its data can be copied after the lock is released.
    pub(crate) rx_direct: bool,
    /// A get answer rendered without its data, to be read from the exported memory into the
    /// frame by [`Rsm::poll_transmit`] after it released this lock (then sealed).
    pub(crate) tx_read: Option<crate::proto::TxRead<P::Region>>,
    /// A get answer's fragment checked and counted, to be written into the importer's local
    /// memory by [`Rsm::handle_frame`] after it released this lock (then the operation may
    /// complete).
    pub(crate) rx_import: Option<crate::proto::ImportWrite<P::Region>>,
}

impl<P: Memory, const L: usize, const E: usize, const I: usize, const F: usize>
    State<P, L, E, I, F>
{
    /// A transfer outside the table lock is done with export `export`: drop its busy count,
    /// and if that drained an export someone waits on (a destroy, rebind or unpublish), have
    /// the sleepers woken.
    pub(crate) fn release_export(&mut self, export: (u16, u32)) {
        if let Some(ex) = self.exports.get_mut(export.0, export.1) {
            ex.busy = ex.busy.saturating_sub(1);
            let draining = ex.dying || ex.quiesced || ex.published.is_none();
            if ex.busy == 0 && draining && self.waiters > 0 {
                self.remote.wake = true;
            }
        }
    }
}

/// One node's RSMAPI: the handle tables and the platform they run on.
///
/// Capacities are chosen by the embedder: `L` local memory handles (default 256), `E` export
/// segments (default 64) and `I` import segments (default 64); at most 65536 each. When a table
/// is full, the call that needs a slot fails with `RSMERR_INSUFFICIENT_RESOURCES`.
///
/// `Rsm` is `Sync` when the platform and its region/pin types are: share it between threads by
/// reference (e.g. in an `Arc` or a `static`).
///
/// Generic parameters: the [`Platform`], then the capacities — `L` local memory handles, `E`
/// exports, `I` imports — and `F`, the largest frame in bytes ([`crate::proto::FRAME_BUF`] =
/// 1536 by default, at most [`crate::proto::MAX_FRAME_LIMIT`]; see there).
///
/// All state is inline (no heap). With the default capacities, on a 64-bit target, an `Rsm`
/// over a three-word region (the fake's and the host's) is 207 384 bytes (pinned by a test):
/// the RSM tables take 63 584 (local handles 14 360, exports 9 240 — each keeps its access
/// list as 66 bytes of decisions —, imports 8 216, the 32 operation slots 31 768), the wire
/// engine 132 944 (the 64 peers 120 328, mostly their windows of messages in flight; the
/// reorder frames 12 360) and the node's wire records 8 800 (remote importers of its
/// segments, get answers owed), plus the `F`-byte frame buffer `Rsm::drive` uses. Keep it in
/// a `static` ([`crate::LazyRsm`]) or a `Box`, not in a small stack frame;
/// [`Rsm::memory_use`] gives the parts for any capacities.
pub struct Rsm<
    P: Platform,
    const L: usize = 256,
    const E: usize = 64,
    const I: usize = 64,
    const F: usize = { crate::proto::FRAME_BUF },
> {
    pub(crate) platform: P,
    /// The tag in every handle of this node (0 until first needed: see [`Rsm::instance`]).
    pub(crate) instance_tag: core::sync::atomic::AtomicU16,
    pub(crate) config: Config,
    /// `loopback` (index 0) and `rsmnet0` (index 1).
    pub(crate) ctrls: [Ctrl; 2],
    pub(crate) state: crate::lock::Lock<State<P, L, E, I, F>>,
    /// The link the node drives itself ([`Rsm::attach_link`]): from [`Rsm::service`] and from
    /// every blocking call while it waits. Locked only by whoever drives, never while the
    /// table lock is held by the same caller (order: link, then table).
    pub(crate) link: crate::lock::Lock<Option<&'static mut (dyn rsm_hal::AnyLink + Send)>>,
    /// Serialises [`Rsm::handle_frame`] calls (frames are applied one at a time, in order,
    /// also while a put's bytes are copied outside the table lock). API calls never take it.
    pub(crate) rx_lock: crate::lock::Lock<()>,
    /// The frame buffer [`Rsm::drive`] moves frames through: kept in the node so that a
    /// drive round does not zero `F` bytes of stack each time (64 KiB at the largest frame,
    /// ~100 µs under QEMU TCG). A driver that finds it taken uses a stack buffer.
    pub(crate) scratch: crate::lock::Lock<[u8; F]>,
}

/// Where a node's memory goes, in bytes ([`Rsm::memory_use`]). Everything is inline: a
/// `static` of the node type holds all of it, and nothing else is allocated later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    /// The whole node (`size_of::<Rsm<…>>()`).
    pub total: usize,
    /// The RSM tables: local memory handles, exports, imports, pending operations.
    pub tables: usize,
    /// The wire protocol engine: peers, their windows, the reorder frames.
    pub engine: usize,
    /// The node's records of the wire side: remote importers, get answers owed.
    pub wire_records: usize,
}

/// Map a HAL pinning error to the RSMERR code of spec §4.3 / §5.2.
pub(crate) fn pin_error(kind: ErrorKind) -> RsmError {
    match kind {
        ErrorKind::BadAddress => RsmError::BadAddr,
        ErrorKind::PermissionDenied => RsmError::PermDenied,
        ErrorKind::OutOfRange => RsmError::BadLength,
        ErrorKind::QuotaExceeded | ErrorKind::OutOfMemory | ErrorKind::Other => {
            RsmError::InsufficientMem
        }
    }
}

/// Parse a controller name into its index in [`CONTROLLERS`] (spec §4.1, §9.22):
/// `None` = loopback; `<type><unit>` with case-insensitive type and decimal unit (default 0);
/// loopback ignores the unit; anything else, and names of `MAXNAMELEN` bytes or more, are not
/// present.
pub(crate) fn parse_controller_name(name: Option<&str>) -> Option<u8> {
    let Some(name) = name else {
        return Some(LOOPBACK);
    };
    if name.len() >= MAXNAMELEN {
        return None;
    }
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (ty, unit) = name.split_at(name.len() - digits);
    if ty.eq_ignore_ascii_case("loopback") {
        // The unit is ignored for loopback, whatever its value (illumos parses it with atoi).
        return Some(LOOPBACK);
    }
    let unit: u32 = if unit.is_empty() {
        0
    } else {
        unit.parse().ok()?
    };
    (ty.eq_ignore_ascii_case("rsmnet") && unit == 0).then_some(1)
}

/// Dropping a node releases every pin its handles still hold — local memory handles, exports
/// and explicit mappings — through [`rsm_hal::Memory::unpin`], as a Solaris process's exit
/// releases its RSM resources (the spec is silent; our choice). Regions the node kept are
/// dropped with it. Nothing is sent on the wire: peers learn of the node's absence by their
/// own timeouts (call [`Rsm::net_leave`] first for a clean goodbye).
impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize> Drop
    for Rsm<P, L, E, I, F>
{
    fn drop(&mut self) {
        let st = self.state.get_mut();
        for lm in st.locals.drain() {
            self.platform.unpin(lm.pin);
        }
        for ex in st.exports.drain() {
            self.platform.unpin(ex.pin);
        }
        for imp in st.imports.drain() {
            if let Some(m) = imp.map {
                self.platform.unpin(m.pin);
            }
        }
    }
}

impl<P: Platform, const L: usize, const E: usize, const I: usize, const F: usize>
    Rsm<P, L, E, I, F>
{
    /// Where this node type's memory goes, by part (the rest of `total` is locks, counters
    /// and the platform value).
    pub const fn memory_use() -> MemoryUse {
        use core::mem::size_of;
        MemoryUse {
            total: size_of::<Self>(),
            tables: size_of::<Table<LocalMem<P::Region, P::Pin>, L>>()
                + size_of::<Table<Export<P::Region, P::Pin>, E>>()
                + size_of::<Table<Import<P::Region, P::Pin>, I>>()
                + size_of::<Table<OpSlot<P::Region>, MAX_PENDING_OPS>>(),
            engine: size_of::<crate::proto::Engine<F>>(),
            wire_records: size_of::<crate::proto::Serving>(),
        }
    }

    /// A node with empty tables over `platform`.
    pub const fn new(platform: P, config: Config) -> Self {
        Rsm {
            platform,
            instance_tag: core::sync::atomic::AtomicU16::new(0),
            config,
            ctrls: [Ctrl::new(), Ctrl::new()],
            state: crate::lock::Lock::new(State {
                locals: Table::new(),
                exports: Table::new(),
                imports: Table::new(),
                ops: Table::new(),
                next_auto_segid: RSM_USER_APP_ID_BASE,
                waiters: 0,
                next_barrier_id: 1,
                net: crate::proto::Engine::new(config.node_id),
                remote: crate::proto::Serving::new(),
                rx_write: None,
                rx_direct: false,
                tx_read: None,
                rx_import: None,
            }),
            rx_lock: crate::lock::Lock::new(()),
            scratch: crate::lock::Lock::new([0; F]),
            link: crate::lock::Lock::new(None),
        }
    }

    /// The node's instance tag (in every handle it gives out, so that a handle of another
    /// node is refused): assigned on first use, so that [`Rsm::new`] can be `const`.
    pub(crate) fn instance(&self) -> u16 {
        use core::sync::atomic::Ordering;
        let t = self.instance_tag.load(Ordering::Relaxed);
        if t != 0 {
            return t;
        }
        let fresh = handle::next_instance();
        match self
            .instance_tag
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(won) => won,
        }
    }

    /// The platform this node runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Slots in use: (local memory handles, export segments, import segments). After every
    /// handle was freed this is (0, 0, 0) — tests use it to prove nothing leaks.
    pub fn slots_in_use(&self) -> (usize, usize, usize) {
        let st = self.state.lock();
        (st.locals.len(), st.exports.len(), st.imports.len())
    }

    /// The segment-id range reserved for application `appid` in the node's segment-id
    /// configuration ([`Config::segid_conf`]); the application may use ids
    /// `base .. base + length`.
    ///
    /// Errors: `RSMERR_BAD_CONF` when there is no configuration or the lines read are
    /// malformed; `RSMERR_BAD_APPID` when no line names `appid` (details in [`crate::segid`]).
    #[doc(alias = "rsm_get_segmentid_range")]
    pub fn get_segmentid_range(&self, appid: &str) -> RsmResult<crate::segid::SegidRange> {
        let conf = self.config.segid_conf.ok_or(RsmError::BadConf)?;
        crate::segid::lookup(conf, appid)
    }

    // ----- helpers shared by the modules -----

    /// Decode `raw` if it is a handle of this instance and `kind`.
    pub(crate) fn parts(&self, raw: u64, kind: Kind) -> Option<(u16, u32)> {
        let p = handle::decode(raw);
        (raw != 0 && p.instance == self.instance() && p.kind == kind as u8)
            .then_some((p.index, p.gen))
    }

    /// The controller index behind a live controller handle, else `RSMERR_BAD_CTLR_HNDL`.
    /// Takes no lock (the controller state is one atomic word).
    pub(crate) fn ctrl_index(&self, h: ControllerHandle) -> RsmResult<u8> {
        let (index, gen) = self
            .parts(h.into_raw(), Kind::Controller)
            .ok_or(RsmError::BadCtlrHndl)?;
        let c = self
            .ctrls
            .get(usize::from(index))
            .ok_or(RsmError::BadCtlrHndl)?;
        let (cgen, refs) = Ctrl::unpack(c.0.load(Ordering::Acquire));
        if cgen != gen || refs == 0 {
            return Err(RsmError::BadCtlrHndl);
        }
        Ok(index as u8)
    }

    pub(crate) fn export_handle(&self, index: u16, gen: u32) -> ExportHandle {
        ExportHandle::from_raw(handle::encode(self.instance(), Kind::Export, gen, index))
    }

    pub(crate) fn import_handle(&self, index: u16, gen: u32) -> ImportHandle {
        ImportHandle::from_raw(handle::encode(self.instance(), Kind::Import, gen, index))
    }

    /// Sleep (without holding the table lock) until `ready` returns `Some`, re-checking after
    /// every wake-up. `ready` runs with the lock held.
    pub(crate) fn wait_for<T>(
        &self,
        mut ready: impl FnMut(&mut State<P, L, E, I, F>) -> Option<T>,
    ) -> T {
        loop {
            if let Some(v) = self.wait_until(None, &mut ready) {
                return v;
            }
        }
    }

    /// Like [`Self::wait_for`], but give up at `deadline` (`None` = never) and return `None`.
    /// `ready` is always tried at least once, even with a deadline in the past.
    pub(crate) fn wait_until<T>(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut State<P, L, E, I, F>) -> Option<T>,
    ) -> Option<T> {
        // Fast path (the common case on putv/getv): ready at once, no wait token needed.
        if let Some(v) = ready(&mut self.state.lock()) {
            return Some(v);
        }
        let mut slept = false;
        loop {
            let token = self.platform.prepare_wait();
            // Waiting means driving (DESIGN §3): with an attached link, move its frames and
            // run the timers before sleeping, and sleep no longer than the next timer.
            let timer = self.service(self.platform.now());
            let out = {
                let mut st = self.state.lock();
                if let Some(v) = ready(&mut st) {
                    Some(Some(v))
                } else if deadline.is_some_and(|d| self.platform.now() >= d) {
                    Some(None)
                } else {
                    st.waiters += 1;
                    None
                }
            };
            if let Some(out) = out {
                if slept {
                    self.platform.wait_over();
                }
                return out;
            }
            slept = true;
            let until = match (deadline, timer) {
                (Some(d), Some(t)) => Some(d.min(t)),
                (d, None) => d,
                (None, t) => t,
            };
            self.platform.wait(token, until);
            self.state.lock().waiters -= 1;
        }
    }

    /// Wake sleepers in [`Rsm::wait_for`] if there are any (called after releasing the lock).
    pub(crate) fn wake_if(&self, waiters: bool) {
        if waiters {
            self.platform.wake();
        }
    }

    // ----- controllers (spec §4.1) -----

    /// Get a handle on controller `name` (`None` = `loopback`).
    ///
    /// Names are `<type><unit>`, matched case-insensitively; the unit defaults to 0 and is
    /// ignored for `loopback`. Every node has `loopback` and `rsmnet0`. Getting the same
    /// controller again returns the same handle and adds a reference.
    ///
    /// Errors: `RSMERR_CTLR_NOT_PRESENT` for any other name, including names of 256 bytes or
    /// more (spec §9.22).
    #[doc(alias = "rsm_get_controller")]
    pub fn get_controller(&self, name: Option<&str>) -> RsmResult<ControllerHandle> {
        let index = parse_controller_name(name).ok_or(RsmError::CtlrNotPresent)?;
        let gen = self.ctrls[usize::from(index)].update(|gen, refs| {
            let refs = refs.checked_add(1).ok_or(RsmError::InsufficientResources)?;
            Ok((gen, refs, gen))
        })?;
        Ok(ControllerHandle::from_raw(handle::encode(
            self.instance(),
            Kind::Controller,
            gen,
            u16::from(index),
        )))
    }

    /// The controller's attributes (spec §3.3). `attr_page_size` is 4096 for every controller,
    /// loopback included (spec §9.5); every direct access size is supported; no atomics.
    ///
    /// Errors: `RSMERR_BAD_CTLR_HNDL` for a NULL, released, stale or foreign handle.
    #[doc(alias = "rsm_get_controller_attr")]
    pub fn get_controller_attr(&self, ctrl: ControllerHandle) -> RsmResult<ControllerAttr> {
        self.ctrl_index(ctrl)?;
        let max = self.config.max_segment_size;
        Ok(ControllerAttr {
            attr_direct_access_sizes: RSM_DAS8 | RSM_DAS16 | RSM_DAS32 | RSM_DAS64,
            attr_atomic_sizes: 0,
            attr_page_size: PAGE_SIZE,
            attr_max_export_segment_size: max,
            attr_tot_export_segment_size: max.saturating_mul(E),
            attr_max_export_segments: E as u64,
            attr_max_import_map_size: max,
            attr_tot_import_map_size: max.saturating_mul(I),
            attr_max_import_segments: I as u64,
        })
    }

    /// Drop one reference to the controller.
    ///
    /// When the last reference goes, the handle becomes invalid (`RSMERR_BAD_CTLR_HNDL`), and a
    /// later [`Rsm::get_controller`] returns a new handle. Our choice for spec §9.22: segments
    /// and local memory handles created through the controller stay valid and keep working —
    /// the controller itself is part of the node — and may be freed with the new handle.
    ///
    /// Errors: `RSMERR_BAD_CTLR_HNDL` for a NULL, stale or already fully released handle.
    #[doc(alias = "rsm_release_controller")]
    pub fn release_controller(&self, ctrl: ControllerHandle) -> RsmResult<()> {
        let index = self.ctrl_index(ctrl)?;
        let (_, gen) = self
            .parts(ctrl.into_raw(), Kind::Controller)
            .ok_or(RsmError::BadCtlrHndl)?;
        self.ctrls[usize::from(index)].update(|cgen, refs| {
            // Re-checked inside the update: a concurrent release may have won.
            if cgen != gen || refs == 0 {
                return Err(RsmError::BadCtlrHndl);
            }
            if refs == 1 {
                let next = if cgen >= handle::GEN_MAX { 1 } else { cgen + 1 };
                Ok((next, 0, ()))
            } else {
                Ok((cgen, refs - 1, ()))
            }
        })
    }

    // ----- local memory handles (seed man page, spec §5.1, §9.6–§9.9) -----

    /// Pin `region` and return a local memory handle for `RSM_HANDLE_TYPE` iovec entries.
    ///
    /// Checks, in this order (spec §9.6; the first failing check wins):
    /// 1. NULL or not page-aligned address → `RSMERR_BAD_ADDR`;
    /// 2. invalid controller → `RSMERR_BAD_CTLR_HNDL`;
    /// 3. (C layer only: NULL out-pointer → `RSMERR_BAD_LOCALMEM_HNDL`);
    /// 4. length 0, or longer than `attr_max_export_segment_size` → `RSMERR_BAD_LENGTH`;
    /// 5. pinning fails or the pinned-memory quota is exceeded → `RSMERR_INSUFFICIENT_MEM`
    ///    (unmapped memory → `RSMERR_BAD_ADDR`);
    /// 6. the handle table is full → `RSMERR_INSUFFICIENT_RESOURCES`.
    ///
    /// The length need not be a page multiple: whole pages are pinned, but iovec entries are
    /// bounds-checked against the length asked for. Local handles are a table of their own and
    /// consume no segment id (spec §9.8); they count against the same pinned-memory budget as
    /// export segments.
    #[doc(alias = "rsm_create_localmemory_handle")]
    pub fn create_localmemory_handle(
        &self,
        ctrl: ControllerHandle,
        region: P::Region,
    ) -> RsmResult<LocalMemHandle> {
        if region.addr() == 0 || region.addr() % PAGE_SIZE != 0 {
            return Err(RsmError::BadAddr);
        }
        let ctrl = self.ctrl_index(ctrl)?;
        if region.len() == 0 || region.len() > self.config.max_segment_size {
            return Err(RsmError::BadLength);
        }
        let pin = self
            .platform
            .pin(&region)
            .map_err(|e| pin_error(rsm_hal::Error::kind(&e)))?;
        let slot = LocalMem {
            ctrl,
            region,
            pin,
            busy: 0,
            freeing: false,
        };
        let inserted = self.state.lock().locals.insert(slot);
        match inserted {
            Ok((index, gen)) => Ok(LocalMemHandle::from_raw(handle::encode(
                self.instance(),
                Kind::LocalMem,
                gen,
                index,
            ))),
            Err(slot) => {
                self.platform.unpin(slot.pin);
                Err(RsmError::InsufficientResources)
            }
        }
    }

    /// Unpin and free a local memory handle.
    ///
    /// Checks the controller (`RSMERR_BAD_CTLR_HNDL`), then the handle: NULL, unknown, stale,
    /// already freed (double free), being freed by another thread, or created through the
    /// other controller → `RSMERR_BAD_LOCALMEM_HNDL` (spec §9.7). If a putv/getv is using the
    /// handle, the free waits until it has finished (spec §9.9); meanwhile new putv/getv calls
    /// naming the handle fail with `RSMERR_BAD_SGIO`.
    #[doc(alias = "rsm_free_localmemory_handle")]
    pub fn free_localmemory_handle(
        &self,
        ctrl: ControllerHandle,
        handle: LocalMemHandle,
    ) -> RsmResult<()> {
        let ctrl = self.ctrl_index(ctrl)?;
        let (index, gen) = {
            let mut st = self.state.lock();
            let (index, gen) = self
                .parts(handle.into_raw(), Kind::LocalMem)
                .ok_or(RsmError::BadLocalmemHndl)?;
            let lm = st
                .locals
                .get_mut(index, gen)
                .ok_or(RsmError::BadLocalmemHndl)?;
            if lm.freeing || lm.ctrl != ctrl {
                return Err(RsmError::BadLocalmemHndl);
            }
            if lm.busy == 0 {
                let lm = st
                    .locals
                    .remove(index, gen)
                    .ok_or(RsmError::BadLocalmemHndl)?;
                drop(st);
                self.platform.unpin(lm.pin);
                return Ok(());
            }
            lm.freeing = true;
            (index, gen)
        };
        let lm = self.wait_for(|st| match st.locals.get(index, gen) {
            Some(lm) if lm.busy > 0 => None,
            _ => Some(st.locals.remove(index, gen)),
        });
        if let Some(lm) = lm {
            self.platform.unpin(lm.pin);
        }
        Ok(())
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use core::mem::size_of;
    use rsm_hal::fake::FakePlatform;

    type P = FakePlatform;
    type R = <P as Memory>::Region;
    type K = <P as Memory>::Pin;

    /// The memory of a node at default capacities, by part, pinned for 64-bit targets (the
    /// figures in [`Rsm`]'s docs and the README): a change of layout must update them.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn node_size_by_part_at_default_capacities() {
        // The fake's region is three words (address, length, a share of the memory's owner),
        // as the host's `MemRegion` is.
        assert_eq!(size_of::<R>(), 24);
        // A plan step's optional region costs no more than a region.
        assert_eq!(size_of::<Option<R>>(), 24);
        let locals = size_of::<Table<LocalMem<R, K>, 256>>();
        let exports = size_of::<Table<Export<R, K>, 64>>();
        let imports = size_of::<Table<Import<R, K>, 64>>();
        let ops = size_of::<Table<OpSlot<R>, MAX_PENDING_OPS>>();
        let (engine, serving, peers, reorder) = crate::proto::engine_sizes();
        std::println!(
            "Rsm {} = tables {} (locals {locals}, exports {exports}, imports {imports}, ops {ops}) \
             + engine {engine} (peers {peers}, reorder frames {reorder}) + wire records {serving}",
            size_of::<Rsm<P>>(),
            locals + exports + imports + ops
        );
        assert_eq!(
            (locals, exports, imports, ops),
            (14_360, 9_240, 8_216, 31_768)
        );
        // Issue 9 §6's goal for the tables at these capacities.
        assert!(locals + exports + imports + ops <= 64 * 1024);
        assert_eq!(
            (engine, serving, peers, reorder),
            (132_944, 8_800, 120_328, 12_360)
        );
        let m = Rsm::<P>::memory_use();
        assert_eq!(
            (m.total, m.tables, m.engine, m.wire_records),
            (
                size_of::<Rsm<P>>(),
                locals + exports + imports + ops,
                engine,
                serving
            )
        );
        // The rest: locks, counters and the three deferred copies (`rx_write`, `rx_import`,
        // `tx_read`).
        assert_eq!(size_of::<Rsm<P>>(), 207_384);
        // And the drive scratch frame (F bytes).
        assert!(
            size_of::<Rsm<P>>()
                <= locals
                    + exports
                    + imports
                    + ops
                    + engine
                    + serving
                    + 640
                    + crate::proto::FRAME_BUF
        );
    }
}
