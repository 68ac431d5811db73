//! The RSM demo: two image nodes over virtio-net through the runner's switch.
//!
//! * `role=exporter` (node 1 by default) creates a [`SEG_LEN`]-byte segment in static memory
//!   and publishes it as [`SEG_ID`] to node `peer` (read+write). Then, woken by the
//!   importer's signal, it checks every byte the importer put (the pattern of that round),
//!   writes the complement as the reply, then the reply tag, and posts back — until the
//!   importer's finish tag.
//! * `role=importer` connects (retrying while the exporter is not there yet), creates a
//!   local memory handle over a static buffer, and runs `rounds` rounds: round `r` fills
//!   the buffer with the round's pattern and `putv`s it with a vector of `1 + r % 16`
//!   entries — uneven pieces in a shuffled order, alternately `RSM_HANDLE_TYPE` and
//!   `RSM_VA_TYPE` —, puts the round tag and posts a signal; it waits for the reply tag
//!   (`intr_signal_wait` with a timeout), `getv`s the reply with as many mixed entries and
//!   checks every byte. Then it writes the finish tag, disconnects and leaves.
//!
//! Every call blocks on the one vCPU with no helper thread: the node drives its attached
//! virtio-net link while it waits (`Rsm::attach_link`).
//!
//! Both roles end with one `REPORT` line the runner parses: role, operations, bytes,
//! throughput, latency p50/p99 of putv and getv, errors by RSMERR name, residuals, frames.

use defmt::{println, Display2Format};
use rsm_board::net::{VirtioLink, FRAME_MAX};
use rsm_board::platform::{KernelPlatform, KernelRegion};
use rsm_board::statics::StaticCell;
use rsm_board::{clock, exit, Boot, StaticBuf};
use rsm_core::proto::NetConfig;
use rsm_core::{
    node_mac, AccessEntry, Barrier, BarrierType, Config, ControllerHandle, CreateFlags,
    ImportHandle, IoVec, LocalMemHandle, Permission, RsmError, RsmResult, ScatGath, SegmentRef,
    SigpostFlags,
};
use rsm_hal::{Clock, Link};

/// The node: 32 local memory handles, 8 exports, 8 imports, jumbo frames.
type Node = rsm_core::Rsm<KernelPlatform, 32, 8, 8, FRAME_MAX>;

/// The segment id the exporter publishes.
pub const SEG_ID: u32 = 0x40_8000;
/// The importer's buffer: 16 pages.
const LOCAL_LEN: usize = 64 * 1024;
/// Offsets in the segment.
const DATA_OFF: usize = 0;
const TAG_OFF: usize = LOCAL_LEN;
const REPLY_OFF: usize = 2 * LOCAL_LEN;
const REPLY_TAG_OFF: usize = 3 * LOCAL_LEN;
/// The segment: data, tag page, reply, reply tag page.
pub const SEG_LEN: usize = 4 * LOCAL_LEN;
/// The importer's finish tag.
const FIN: u64 = u64::MAX;
/// Bench tags around the putv loop: the exporter profiles what lies between them.
const PUTV_BEGIN: u64 = u64::MAX - 2;
const PUTV_END: u64 = u64::MAX - 1;
/// Most rounds a run may ask for (latency samples are kept per round).
const MAX_ROUNDS: usize = 256;
/// How long the importer keeps trying to connect, and waits for a reply (ms).
const PATIENCE_MS: u64 = 30_000;

/// The timeout of the importer's probe wait (see `WAITED`).
const WAIT_PROBE_MS: i32 = 300;

/// The node lives in a `static`, built on first use with the node id of the command line.
/// A `spin::Once` rather than `rsm_core::lazy::LazyRsm`: its initial value is all zero, so
/// the node's ~0.7 MB sit in `.bss` instead of the loaded image (LazyRsm's init function
/// pointer would put the whole static in `.data`).
static RSM: spin::Once<Node> = spin::Once::new();
/// The NIC, kept by the node.
static LINK: StaticCell<VirtioLink> = StaticCell::new();
static SEGMENT: StaticBuf<SEG_LEN> = StaticBuf::new();
static LOCAL: StaticBuf<LOCAL_LEN> = StaticBuf::new();
static TAG: StaticBuf<4096> = StaticBuf::new();
static BENCH_SEG: StaticBuf<{ BENCH_LEN + 4096 }> = StaticBuf::new();
static BENCH_LOCAL: StaticBuf<BENCH_LEN> = StaticBuf::new();

/// The bench's segment id; its length is [`BENCH_LEN`] plus a tag page.
pub const BENCH_SEG_ID: u32 = 0x40_8001;
/// Bytes of one bench putv: 16 entries of 64 KiB.
const BENCH_LEN: usize = 1 << 20;
/// Most round-trip samples of a bench run.
const MAX_PINGS: usize = 2000;

/// The data of round `round`, byte `i`.
fn pattern(round: u32, i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ (round as u8).wrapping_mul(37) ^ 0x5a
}

/// Errors seen, by code (the runner prints them by RSMERR name).
struct Errors([(i32, u32); 16]);

impl Errors {
    const fn new() -> Self {
        Errors([(0, 0); 16])
    }
    fn count(&mut self, e: RsmError) {
        let code = e.code();
        if let Some(slot) = self.0.iter_mut().find(|(c, n)| *c == code || *n == 0) {
            slot.0 = code;
            slot.1 += 1;
        }
    }
    fn print(&self) -> ErrorsFmt<'_> {
        ErrorsFmt(self)
    }
}

struct ErrorsFmt<'a>(&'a Errors);

impl core::fmt::Display for ErrorsFmt<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut any = false;
        for &(code, n) in self.0 .0.iter().filter(|(_, n)| *n > 0) {
            let name = RsmError::from_code(code).map_or("?", RsmError::name);
            write!(f, "{}{name}:{n}", if any { "," } else { "" })?;
            any = true;
        }
        if !any {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// A failed step: what, and the error if it was an RSM call.
struct Fail(&'static str, Option<RsmError>);

fn must<T>(what: &'static str, errors: &mut Errors, r: RsmResult<T>) -> Result<T, Fail> {
    r.map_err(|e| {
        errors.count(e);
        Fail(what, Some(e))
    })
}

/// p50 and p99 of the first `n` samples (sorted in place), in µs.
pub(crate) fn percentiles(samples: &mut [u64]) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    samples.sort_unstable();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)] / 1000;
    (at(50), at(99))
}

/// Bring the node up: id, link, engine.
fn start(boot: &Boot, me: u8) -> Result<&'static Node, &'static str> {
    let config = Config {
        node_id: u32::from(me),
        ..Config::DEFAULT
    };
    let rsm = RSM.call_once(|| Node::new(KernelPlatform::new(), config));
    let m = Node::memory_use();
    println!(
        "MEMORY node={=usize} rsm_tables={=usize} engine={=usize} wire_records={=usize} \
         nic_buffers={=usize} dma_pool={=usize} pin_table={=usize}",
        m.total,
        m.tables,
        m.engine,
        m.wire_records,
        rsm_board::net::BUFFER_BYTES,
        rsm_board::dma::POOL_BYTES,
        rsm_board::platform::PIN_TABLE_BYTES
    );
    // `irq=off`: no NIC interrupt, waits poll (the bench's before-interrupts baseline).
    let link =
        VirtioLink::open_with(boot.arg("irq") != Some("off")).ok_or("no virtio-net device")?;
    if link.mac() != node_mac(u32::from(me)) {
        defmt::warn!(
            "rsm-kernel: NIC MAC {=[u8]:02x} is not node {=u8}'s {=[u8]:02x}",
            link.mac(),
            me,
            node_mac(u32::from(me))
        );
    }
    // One transmit notification per burst: `Rsm::drive` kicks the link after each.
    let mut link = link;
    link.set_batching(true);
    let link = LINK.put(link).map_err(|_| "link taken")?;
    let max_frame = boot
        .num("frame", FRAME_MAX as u64)
        .ok_or("bad frame=")?
        .min(FRAME_MAX as u64) as usize;
    // A new incarnation per boot: the command line's, else the TSC (nonzero, grows).
    let inc = boot.num("inc", clock::rdtsc() >> 8).ok_or("bad inc=")?;
    rsm.net_start(
        rsm.platform().now(),
        NetConfig {
            incarnation: inc.max(1),
            max_frame,
        },
    );
    rsm.attach_link(link);
    defmt::info!(
        "rsm-kernel: node {=u8} up, frame {=usize}, incarnation {=u64}",
        me,
        max_frame,
        inc
    );
    Ok(rsm)
}

/// Leave the network cleanly (bounded).
fn leave(rsm: &Node) {
    rsm.net_leave();
    let end = clock::now_ns() + 2_000_000_000;
    while !rsm.net_quiet() && clock::now_ns() < end {
        let _ = rsm.service(rsm.platform().now());
    }
}

fn frames_line(rsm: &Node) {
    let s = rsm.net_stats();
    let l = rsm_board::net::link_stats();
    let irqs = rsm_board::irq::counters();
    println!(
        "FRAMES sent={=u64} received={=u64} retransmits={=u64} malformed={=u64} \
         nic_tx={=u64} nic_tx_dropped={=u64} nic_rx={=u64} nic_rx_too_long={=u64} \
         nic_irqs={=u64} timer_irqs={=u64} halts={=u64} nic_tx_notifies={=u64} nic_rx_notifies={=u64}",
        s.frames_sent,
        s.frames_received,
        s.retransmits,
        s.malformed,
        l.tx_frames,
        l.tx_dropped,
        l.rx_frames,
        l.rx_too_long,
        irqs.0,
        irqs.1,
        irqs.2,
        l.tx_notifies,
        l.rx_notifies
    );
}

/// Run the demo role named on the command line.
pub fn run(boot: &Boot) -> u32 {
    let role = boot.arg("role").unwrap_or("?");
    let me = boot.num("node", 0).unwrap_or(0);
    let peer = boot.num("peer", 0).unwrap_or(0);
    if me == 0 || me > 63 || peer == 0 || peer > 63 || me == peer {
        println!("FAIL demo needs node=1..63 and peer=1..63 (another node)");
        return exit::FAIL;
    }
    let rsm = match start(boot, me as u8) {
        Ok(r) => r,
        Err(why) => {
            println!("FAIL {=str}", why);
            return exit::FAIL;
        }
    };
    let mut errors = Errors::new();
    let r = match role {
        "exporter" => exporter(rsm, peer as u32, &mut errors),
        "importer" => {
            let rounds = boot.num("rounds", 32).unwrap_or(0) as usize;
            if rounds == 0 || rounds > MAX_ROUNDS {
                println!("FAIL rounds= takes 1..={=usize}", MAX_ROUNDS);
                return exit::FAIL;
            }
            importer(rsm, peer as u32, rounds, &mut errors)
        }
        "bench-exporter" => bench_exporter(rsm, peer as u32, &mut errors),
        "bench" => bench(rsm, peer as u32, boot, &mut errors),
        _ => {
            println!("FAIL role= takes exporter, importer, bench-exporter or bench");
            return exit::FAIL;
        }
    };
    frames_line(rsm);
    match r {
        Ok(()) => {
            leave(rsm);
            exit::PASS
        }
        Err(Fail(what, e)) => {
            println!(
                "FAIL {=str}: {=str} errors={}",
                what,
                e.map_or("check failed", RsmError::name),
                Display2Format(&errors.print())
            );
            exit::FAIL
        }
    }
}

fn controller(rsm: &Node, errors: &mut Errors) -> Result<ControllerHandle, Fail> {
    must(
        "get_controller",
        errors,
        rsm.get_controller(Some("rsmnet0")),
    )
}

/// Export `mem` on rsmnet0 and publish it as `id`, read+write for node `peer` only.
fn publish(
    rsm: &Node,
    mem: &KernelRegion,
    id: u32,
    peer: u32,
    errors: &mut Errors,
) -> Result<rsm_core::ExportHandle, Fail> {
    let ctrl = controller(rsm, errors)?;
    let seg = must(
        "export_create",
        errors,
        rsm.export_create(ctrl, mem.clone(), CreateFlags::empty()),
    )?;
    must(
        "export_publish",
        errors,
        rsm.export_publish(seg, id, &[AccessEntry::new(peer, 0o600)]),
    )?;
    Ok(seg)
}

/// Wait (at most a second) for a signal on `seg`, then read the importer's tag word at `off`.
fn next_tag(
    rsm: &Node,
    seg: rsm_core::ExportHandle,
    mem: &KernelRegion,
    off: usize,
    errors: &mut Errors,
) -> Result<u64, Fail> {
    match rsm.intr_signal_wait(SegmentRef::Export(seg), 1000) {
        Ok(()) | Err(RsmError::Timeout) => {}
        Err(e) => return must("intr_signal_wait", errors, Err(e)),
    }
    let mut tag = [0u8; 8];
    mem.read(off, &mut tag)
        .map_err(|_| Fail("read tag", None))?;
    Ok(u64::from_le_bytes(tag))
}

fn exporter(rsm: &Node, peer: u32, errors: &mut Errors) -> Result<(), Fail> {
    let mem = KernelRegion::from_static(SEGMENT.take().ok_or(Fail("segment memory", None))?);
    let seg = publish(rsm, &mem, SEG_ID, peer, errors)?;
    println!(
        "READY node={=u32} segment={=u32:#x} len={=usize}",
        rsm.node_id(),
        SEG_ID,
        SEG_LEN
    );
    // The exporter's clock runs from the first round it sees to the finish tag.
    let mut t0: Option<u64> = None;
    let (mut done, mut rounds, mut verified) = (0u64, 0u64, 0u64);
    let mut data = [0u8; 4096];
    let idle_limit = clock::now_ns() + PATIENCE_MS * 1_000_000;
    loop {
        let tag = next_tag(rsm, seg, &mem, TAG_OFF, errors)?;
        if tag == FIN {
            break;
        }
        if tag == 0 || tag == done {
            if done == 0 && clock::now_ns() > idle_limit {
                return Err(Fail("no importer came", None));
            }
            continue;
        }
        let round = (tag - 1) as u32;
        t0.get_or_insert_with(clock::now_ns);
        for page in 0..LOCAL_LEN / 4096 {
            mem.read(DATA_OFF + page * 4096, &mut data)
                .map_err(|_| Fail("read data", None))?;
            let bad = (0..4096)
                .filter(|&i| data[i] != pattern(round, page * 4096 + i))
                .count();
            if bad != 0 {
                println!(
                    "FAIL round {=u32}: {=usize} bytes of page {=usize} differ",
                    round, bad, page
                );
                return Err(Fail("putv data check", None));
            }
            for b in data.iter_mut() {
                *b = !*b;
            }
            mem.write(REPLY_OFF + page * 4096, &data)
                .map_err(|_| Fail("write reply", None))?;
        }
        verified += LOCAL_LEN as u64;
        mem.write(REPLY_TAG_OFF, &tag.to_le_bytes())
            .map_err(|_| Fail("write reply tag", None))?;
        must(
            "intr_signal_post",
            errors,
            rsm.intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty()),
        )?;
        done = tag;
        rounds += 1;
    }
    let us = t0.map_or(0, |t| (clock::now_ns() - t) / 1000);
    must("export_unpublish", errors, rsm.export_unpublish(seg))?;
    must("export_destroy", errors, rsm.export_destroy(seg))?;
    println!(
        "REPORT node={=u32} role=exporter ops={=u64} bytes={=u64} verified={=u64} \
         elapsed_us={=u64} throughput_kbs={=u64} errors={} residual=0",
        rsm.node_id(),
        rounds,
        2 * verified,
        verified,
        us,
        2 * verified * 1000 / us.max(1),
        Display2Format(&errors.print())
    );
    Ok(())
}

/// `n` uneven pieces of `len` bytes: (offset, length), each at least 1 byte.
fn cuts(len: usize, n: usize, out: &mut [(usize, usize); 16]) {
    let mut at = [0usize; 17];
    for (k, a) in at.iter_mut().enumerate().take(n) {
        *a = if k == 0 {
            0
        } else {
            k * len / n + (k * 37) % 61
        };
    }
    at[n] = len;
    for k in 0..n {
        out[k] = (at[k], at[k + 1] - at[k]);
    }
}

/// Connect, retrying while the exporter is not there yet.
fn connect(
    rsm: &Node,
    ctrl: ControllerHandle,
    peer: u32,
    id: u32,
    errors: &mut Errors,
) -> Result<ImportHandle, Fail> {
    let end = clock::now_ns() + PATIENCE_MS * 1_000_000;
    loop {
        match rsm.import_connect(ctrl, peer, id, Permission::RDWR) {
            Ok(h) => return Ok(h),
            Err(e @ (RsmError::SegNotPublished | RsmError::RemoteNodeUnreachable))
                if clock::now_ns() < end =>
            {
                errors.count(e);
                // Keep the link driven while waiting.
                let wake = clock::now_ns() + 50_000_000;
                while clock::now_ns() < wake {
                    let _ = rsm.service(rsm.platform().now());
                }
            }
            Err(e) => return must("import_connect", errors, Err(e)),
        }
    }
}

/// Fill `v` with `n` entries over the pieces of `LOCAL_LEN`, in a shuffled order,
/// alternately HANDLE and VA, at `base` in the segment.
fn vector<'a>(
    v: &mut [IoVec<'a, KernelRegion>; 16],
    n: usize,
    round: usize,
    lh: LocalMemHandle,
    local: &'a KernelRegion,
    base: usize,
) {
    let mut parts = [(0usize, 0usize); 16];
    cuts(LOCAL_LEN, n, &mut parts);
    // A permutation of the pieces: a step coprime with n (11 is prime; 13 when n = 11).
    let step = if n == 11 { 13 } else { 11 };
    for (j, slot) in v.iter_mut().enumerate().take(n) {
        let k = (j * step + round) % n;
        let (off, len) = parts[k];
        *slot = if j % 2 == 0 {
            IoVec::handle(lh, off, base + off, len)
        } else {
            IoVec::va(local, off, base + off, len)
        };
    }
}

/// Put `tag` (a round's, or [`FIN`]) into the exporter's tag word and ring its doorbell.
fn send_tag(
    rsm: &Node,
    h: ImportHandle,
    tagmem: &KernelRegion,
    off: usize,
    tag: u64,
    errors: &mut Errors,
) -> Result<(), Fail> {
    tagmem
        .write(0, &tag.to_le_bytes())
        .map_err(|_| Fail("tag", None))?;
    let tv = [IoVec::va(tagmem, 0, off, 8)];
    must("putv tag", errors, rsm.putv(&mut ScatGath::new(h, &tv)))?;
    must(
        "intr_signal_post",
        errors,
        rsm.intr_signal_post(SegmentRef::Import(h), SigpostFlags::empty()),
    )
}

fn importer(rsm: &Node, peer: u32, rounds: usize, errors: &mut Errors) -> Result<(), Fail> {
    let ctrl = controller(rsm, errors)?;
    let local = KernelRegion::from_static(LOCAL.take().ok_or(Fail("local memory", None))?);
    let tagmem = KernelRegion::from_static(TAG.take().ok_or(Fail("tag memory", None))?);
    let t_connect = clock::now_ns();
    let h = connect(rsm, ctrl, peer, SEG_ID, errors)?;
    println!(
        "CONNECTED node={=u32} segment={=u32:#x} after_ms={=u64}",
        rsm.node_id(),
        SEG_ID,
        (clock::now_ns() - t_connect) / 1_000_000
    );
    // Implicit barrier mode (the default): puts and gets need an initialised barrier; the
    // data putv of each round runs inside an open barrier.
    let mut barrier = Barrier::default();
    must(
        "init_barrier",
        errors,
        rsm.init_barrier(h, BarrierType::SEGMENT, &mut barrier),
    )?;
    // A blocking wait with a timeout on the one vCPU: nobody posts yet, so it must end
    // with RSMERR_TIMEOUT after the timeout, the link driven meanwhile (heartbeats).
    let t = clock::now_ns();
    let waited = rsm.intr_signal_wait(SegmentRef::Import(h), WAIT_PROBE_MS);
    println!(
        "WAITED timeout_ms={=i32} took_ms={=u64} result={=str}",
        WAIT_PROBE_MS,
        (clock::now_ns() - t) / 1_000_000,
        waited.err().map_or("ok", RsmError::name)
    );
    let lh = must(
        "create_localmemory_handle",
        errors,
        rsm.create_localmemory_handle(ctrl, local.clone()),
    )?;
    let mut put_ns = [0u64; MAX_ROUNDS];
    let mut get_ns = [0u64; MAX_ROUNDS];
    let (mut bytes, mut busy_ns, mut residual, mut verified) = (0u64, 0u64, 0u64, 0u64);
    let t0 = clock::now_ns();
    let mut page = [0u8; 4096];
    for r in 0..rounds {
        let n = 1 + r % 16;
        let round = r as u32;
        for p in 0..LOCAL_LEN / 4096 {
            for (i, b) in page.iter_mut().enumerate() {
                *b = pattern(round, p * 4096 + i);
            }
            local
                .write(p * 4096, &page)
                .map_err(|_| Fail("fill local", None))?;
        }
        let mut v = [IoVec::handle(lh, 0, 0, 0); 16];
        vector(&mut v, n, r, lh, &local, DATA_OFF);
        let mut sg = ScatGath::new(h, &v[..n]);
        let t = clock::now_ns();
        must("open_barrier", errors, rsm.open_barrier(&mut barrier))?;
        let put = rsm.putv(&mut sg);
        let closed = rsm.close_barrier(&mut barrier);
        must("putv", errors, put)?;
        must("close_barrier", errors, closed)?;
        put_ns[r] = clock::now_ns() - t;
        busy_ns += put_ns[r];
        residual += sg.io_residual_count;
        bytes += LOCAL_LEN as u64;
        let tag = r as u64 + 1;
        send_tag(rsm, h, &tagmem, TAG_OFF, tag, errors)?;
        // Wait for the reply tag: a blocking signal wait with a timeout.
        let end = clock::now_ns() + PATIENCE_MS * 1_000_000;
        loop {
            let mut b = [0u8; 8];
            must(
                "get reply tag",
                errors,
                rsm.get(h, REPLY_TAG_OFF as i64, &mut b),
            )?;
            if u64::from_le_bytes(b) == tag {
                break;
            }
            if clock::now_ns() > end {
                return Err(Fail("no reply from the exporter", None));
            }
            match rsm.intr_signal_wait(SegmentRef::Import(h), 1000) {
                Ok(()) => {}
                Err(RsmError::Timeout) => errors.count(RsmError::Timeout),
                Err(e) => return must("intr_signal_wait", errors, Err(e)),
            }
        }
        for p in 0..LOCAL_LEN / 4096 {
            local
                .write(p * 4096, &[0u8; 4096])
                .map_err(|_| Fail("clear local", None))?;
        }
        vector(&mut v, n, r + 3, lh, &local, REPLY_OFF);
        let mut sg = ScatGath::new(h, &v[..n]);
        let t = clock::now_ns();
        must("getv", errors, rsm.getv(&mut sg))?;
        get_ns[r] = clock::now_ns() - t;
        busy_ns += get_ns[r];
        residual += sg.io_residual_count;
        bytes += LOCAL_LEN as u64;
        for p in 0..LOCAL_LEN / 4096 {
            local
                .read(p * 4096, &mut page)
                .map_err(|_| Fail("read local", None))?;
            let bad = (0..4096)
                .filter(|&i| page[i] != !pattern(round, p * 4096 + i))
                .count();
            if bad != 0 {
                println!(
                    "FAIL round {=usize}: {=usize} reply bytes of page {=usize} differ",
                    r, bad, p
                );
                return Err(Fail("getv data check", None));
            }
        }
        verified += LOCAL_LEN as u64;
        println!(
            "ROUND {=usize} entries={=usize} put_us={=u64} get_us={=u64}",
            r,
            n,
            put_ns[r] / 1000,
            get_ns[r] / 1000
        );
    }
    let elapsed = clock::now_ns() - t0;
    send_tag(rsm, h, &tagmem, TAG_OFF, FIN, errors)?;
    must("destroy_barrier", errors, rsm.destroy_barrier(&mut barrier))?;
    must("import_disconnect", errors, rsm.import_disconnect(h))?;
    must(
        "free_localmemory_handle",
        errors,
        rsm.free_localmemory_handle(ctrl, lh),
    )?;
    let (p50, p99) = percentiles(&mut put_ns[..rounds]);
    let (g50, g99) = percentiles(&mut get_ns[..rounds]);
    println!(
        "REPORT node={=u32} role=importer ops={=usize} bytes={=u64} verified={=u64} \
         elapsed_us={=u64} throughput_kbs={=u64} putv_p50_us={=u64} putv_p99_us={=u64} \
         getv_p50_us={=u64} getv_p99_us={=u64} errors={} residual={=u64}",
        rsm.node_id(),
        2 * rounds,
        bytes,
        verified,
        elapsed / 1000,
        bytes * 1_000_000 / busy_ns.max(1),
        p50,
        p99,
        g50,
        g99,
        Display2Format(&errors.print()),
        residual
    );
    Ok(())
}

/// A point in time for [`profile`]: (now, halted, per-part times, frames in, frames out).
type Mark = (u64, u64, [u64; 4], u64, u64);

/// The profile counters now.
fn mark() -> Mark {
    let l = rsm_board::net::link_stats();
    (
        clock::now_ns(),
        rsm_board::irq::halted_ns(),
        rsm_board::prof::snapshot_us(),
        l.rx_frames,
        l.tx_frames,
    )
}

/// Print where the time since `m` went: halted, CRC, copies, NIC receive and transmit, and
/// the rest (engine and application), in µs, with the frames moved.
fn profile(phase: &str, m: Mark) {
    let (t0, h0, p0, rx0, tx0) = m;
    let (t1, h1, p1, rx1, tx1) = mark();
    let elapsed = (t1 - t0) / 1000;
    let halted = (h1 - h0) / 1000;
    let d: [u64; 4] = core::array::from_fn(|i| p1[i] - p0[i]);
    let other = elapsed.saturating_sub(halted + d.iter().sum::<u64>());
    println!(
        "PROFILE phase={=str} elapsed_us={=u64} halted_us={=u64} crc_us={=u64} copy_us={=u64} \
         nic_rx_us={=u64} nic_tx_us={=u64} other_us={=u64} frames_rx={=u64} frames_tx={=u64}",
        phase,
        elapsed,
        halted,
        d[0],
        d[1],
        d[2],
        d[3],
        other,
        rx1 - rx0,
        tx1 - tx0
    );
}

/// The bench's exporter: publish [`BENCH_SEG_ID`] to `peer`, serve until the finish tag,
/// then check that the segment holds the importer's pattern (every byte).
fn bench_exporter(rsm: &Node, peer: u32, errors: &mut Errors) -> Result<(), Fail> {
    let mem = KernelRegion::from_static(BENCH_SEG.take().ok_or(Fail("segment memory", None))?);
    let seg = publish(rsm, &mem, BENCH_SEG_ID, peer, errors)?;
    println!(
        "READY node={=u32} bench segment={=u32:#x}",
        rsm.node_id(),
        BENCH_SEG_ID
    );
    let end = clock::now_ns() + 600_000_000_000;
    // The loop's start, from the first time the begin tag is seen; profiled (once) at the
    // end tag, which stays in place until the finish tag replaces it.
    let mut begun = None;
    loop {
        match next_tag(rsm, seg, &mem, BENCH_LEN, errors)? {
            FIN => break,
            PUTV_BEGIN if begun.is_none() => begun = Some(mark()),
            PUTV_END => {
                if let Some(m) = begun.take() {
                    profile("putv", m);
                }
            }
            _ => {}
        }
        if clock::now_ns() > end {
            return Err(Fail("the bench never finished", None));
        }
    }
    let mut page = [0u8; 4096];
    for p in 0..BENCH_LEN / 4096 {
        mem.read(p * 4096, &mut page)
            .map_err(|_| Fail("read", None))?;
        if (0..4096).any(|i| page[i] != pattern(7, p * 4096 + i)) {
            println!("FAIL bench data differs in page {=usize}", p);
            return Err(Fail("bench data check", None));
        }
    }
    must("export_unpublish", errors, rsm.export_unpublish(seg))?;
    must("export_destroy", errors, rsm.export_destroy(seg))?;
    println!(
        "REPORT node={=u32} role=bench-exporter verified={=usize} errors={} residual=0",
        rsm.node_id(),
        BENCH_LEN,
        Display2Format(&errors.print())
    );
    Ok(())
}

/// The bench's importer: `ms=` of back-to-back 16 × 64 KiB putv (mixed HANDLE/VA), then
/// `pings=` 64-byte putv round trips, then `idle_ms=` connected and idle, then finish.
fn bench(rsm: &Node, peer: u32, boot: &Boot, errors: &mut Errors) -> Result<(), Fail> {
    let ms = boot.num("ms", 2000).unwrap_or(2000).max(10);
    let pings = boot.num("pings", 200).unwrap_or(200).min(MAX_PINGS as u64) as usize;
    let idle_ms = boot.num("idle_ms", 0).unwrap_or(0);
    let ctrl = controller(rsm, errors)?;
    let local = KernelRegion::from_static(BENCH_LOCAL.take().ok_or(Fail("local memory", None))?);
    let tagmem = KernelRegion::from_static(TAG.take().ok_or(Fail("tag memory", None))?);
    let mut page = [0u8; 4096];
    for p in 0..BENCH_LEN / 4096 {
        for (i, b) in page.iter_mut().enumerate() {
            *b = pattern(7, p * 4096 + i);
        }
        local
            .write(p * 4096, &page)
            .map_err(|_| Fail("fill", None))?;
    }
    let h = connect(rsm, ctrl, peer, BENCH_SEG_ID, errors)?;
    let lh = must(
        "create_localmemory_handle",
        errors,
        rsm.create_localmemory_handle(ctrl, local.clone()),
    )?;
    let piece = BENCH_LEN / 16;
    let mut v = [IoVec::handle(lh, 0, 0, 0); 16];
    for (k, e) in v.iter_mut().enumerate() {
        *e = if k % 2 == 0 {
            IoVec::handle(lh, k * piece, k * piece, piece)
        } else {
            IoVec::va(&local, k * piece, k * piece, piece)
        };
    }
    send_tag(rsm, h, &tagmem, BENCH_LEN, PUTV_BEGIN, errors)?;
    let halted0 = rsm_board::irq::halted_ns();
    let m = mark();
    let t0 = clock::now_ns();
    let stop = t0 + ms * 1_000_000;
    let (mut bytes, mut calls, mut residual) = (0u64, 0u64, 0u64);
    while clock::now_ns() < stop {
        let mut sg = ScatGath::new(h, &v);
        must("putv", errors, rsm.putv(&mut sg))?;
        residual += sg.io_residual_count;
        bytes += BENCH_LEN as u64;
        calls += 1;
    }
    let elapsed_us = (clock::now_ns() - t0) / 1000;
    let halted_pct = (rsm_board::irq::halted_ns() - halted0) / 10 / elapsed_us.max(1);
    profile("putv", m);
    send_tag(rsm, h, &tagmem, BENCH_LEN, PUTV_END, errors)?;
    let mut rtt = [0u64; MAX_PINGS];
    let one = [IoVec::va(&local, 0, 0, 64)];
    for slot in rtt.iter_mut().take(pings) {
        let mut sg = ScatGath::new(h, &one);
        let t = clock::now_ns();
        must("putv 64", errors, rsm.putv(&mut sg))?;
        *slot = clock::now_ns() - t;
    }
    let (p50, p99) = percentiles(&mut rtt[..pings]);
    let s = rsm.net_stats();
    println!(
        "BENCH putv_calls={=u64} bytes={=u64} elapsed_us={=u64} putv_kbs={=u64} pings={=usize} \
         rtt_p50_us={=u64} rtt_p99_us={=u64} retransmits={=u64} residual={=u64} \
         halted_pct={=u64}",
        calls,
        bytes,
        elapsed_us,
        bytes * 1000 / elapsed_us.max(1),
        pings,
        p50,
        p99,
        s.retransmits,
        residual,
        halted_pct
    );
    if idle_ms > 0 {
        println!("IDLE begin ms={=u64}", idle_ms);
        let end = clock::now_ns() + idle_ms * 1_000_000;
        while clock::now_ns() < end {
            let left = ((end - clock::now_ns()) / 1_000_000).clamp(1, 1000) as i32;
            match rsm.intr_signal_wait(SegmentRef::Import(h), left) {
                Ok(()) | Err(RsmError::Timeout) => {}
                Err(e) => return must("idle wait", errors, Err(e)),
            }
        }
        let (nic, timer, halts) = rsm_board::irq::counters();
        println!(
            "IDLE end nic_irqs={=u64} timer_irqs={=u64} halts={=u64}",
            nic, timer, halts
        );
    }
    send_tag(rsm, h, &tagmem, BENCH_LEN, FIN, errors)?;
    must("import_disconnect", errors, rsm.import_disconnect(h))?;
    must(
        "free_localmemory_handle",
        errors,
        rsm.free_localmemory_handle(ctrl, lh),
    )?;
    println!(
        "REPORT node={=u32} role=bench ops={=u64} bytes={=u64} throughput_kbs={=u64} \
         putv_p50_us={=u64} putv_p99_us={=u64} errors={} residual={=u64}",
        rsm.node_id(),
        calls + pings as u64,
        bytes,
        bytes * 1000 / elapsed_us.max(1),
        p50,
        p99,
        Display2Format(&errors.print()),
        residual
    );
    Ok(())
}
