//! The seed story across processes: an exporter and its importers.
//!
//! The exporter (`rsm-node exporter`) creates and publishes three segments:
//! * [`SEG`] (4 MiB, read+write for every importer): one 64 KiB slot per node id, holding the
//!   importer's data, its round tag, and the exporter's reply and reply tag;
//! * [`SEG_RO`] (16 KiB of a known pattern, read-only for every importer);
//! * [`SEG_FIRST`] (4 KiB, published to the first importer only).
//!
//! With `--unpublish-after-entry K` it also publishes [`SEG_BULK`] (64 MiB) and unpublishes
//! it as soon as entry `K` of an importer's 16-entry putv has landed, then prints how many
//! entries were in memory (`UNPUBLISHED prefix=… untouched=…`).
//!
//! Each importer (`rsm-node importer`) checks the ACLs (read+write on the read-only segment →
//! `RSMERR_PERM_DENIED`; read works and reads the pattern; a put through it →
//! `RSMERR_PERM_DENIED`; the first-importer segment → connects for the first importer,
//! `RSMERR_SEG_NOT_PUBLISHED_TO_NODE` for the others), then runs rounds. A round: fill a local
//! memory handle of 3 pages + 100 bytes with a pattern of (node, round); within an open
//! barrier, putv it into its slot with a 16-entry vector — 15 data entries in a shuffled
//! order, alternately HANDLE and VA, then the round tag (a VA entry) — with
//! `RSM_IMPLICIT_SIGPOST`; close the barrier. The exporter, woken by the signal, checks the
//! data byte for byte, writes its complement as the reply, then the reply tag, and posts to
//! its importers. The importer waits for the post, reads the tag, getv's the reply with a
//! 16-entry mixed vector and checks it byte for byte. After the last round it writes the
//! finish tag and disconnects; the exporter exits once every importer finished (unless
//! `--stay`, then on `quit` or the end of its standard input).
//!
//! Every line printed starts with a word a test can match: `READY`, `ACL`, `ROUND`, `DONE`,
//! `SERVED`, `LOST`, `RECONNECTED`, `WAITING`, `BULK`, `UNPUBLISHED`, `FAIL`, `BYE`.

use crate::{usage, value};
use rsm_core::{
    AccessEntry, Barrier, BarrierType, ControllerHandle, CreateFlags, ExportHandle, ImportHandle,
    IoVec, Permission, RsmError, RsmResult, ScatGath, SegmentRef, SgFlags, SigpostFlags, PAGE_SIZE,
};
use rsm_host::{HostNode, HostRsm, MemRegion, NodeConfig, PinnedBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The story's segment: one [`SLOT`] per node id.
pub const SEG: u32 = 0x40_7000;
/// Read-only for every importer, filled with [`ro_pattern`].
pub const SEG_RO: u32 = 0x40_7001;
/// Published to the first importer only.
pub const SEG_FIRST: u32 = 0x40_7002;
/// The segment of the unpublish-mid-transfer case.
pub const SEG_BULK: u32 = 0x40_7003;

/// Bytes per node id in [`SEG`].
pub const SLOT: usize = 64 * 1024;
/// [`SEG`]'s length: a slot for every node id.
pub const SEG_LEN: usize = 64 * SLOT;
/// The importer's local buffer: 3 pages + 100 bytes, as the seed man page's story.
pub const LOCAL_LEN: usize = 3 * PAGE_SIZE + 100;
/// Offsets inside a slot.
const DATA_OFF: usize = 0;
const TAG_OFF: usize = 16 * 1024;
const REPLY_OFF: usize = 20 * 1024;
const REPLY_TAG_OFF: usize = 36 * 1024;
/// Length of [`SEG_RO`].
pub const RO_LEN: usize = 16 * 1024;
/// Entries of the bulk putv, and the bytes of each.
pub const BULK_ENTRIES: usize = 16;
/// Bytes of one bulk entry.
pub const BULK_ENTRY: usize = 4 << 20;
/// The tag an importer writes when it is finished.
const FIN: u64 = u64::MAX;

/// How long an importer tries before it gives up (connects, replies).
const PATIENCE: Duration = Duration::from_secs(20);

/// The data of node `node` in round `round`, byte `i`.
pub fn pattern(node: u32, round: u32, i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8
        ^ (node as u8).wrapping_mul(37)
        ^ round as u8
}

/// The contents of [`SEG_RO`].
pub fn ro_pattern(i: usize) -> u8 {
    (i * 7 + (i >> 9)) as u8 ^ 0x3c
}

/// The bulk data: never zero, so a landed byte shows.
pub fn bulk_pattern(i: usize) -> u8 {
    ((i * 13 + (i >> 12)) % 255) as u8 + 1
}

fn name(e: RsmError) -> &'static str {
    e.name()
}

/// Options of the story roles.
struct Opts {
    importers: Vec<u32>,
    rounds: u32,
    exporter: u32,
    reconnect: bool,
    stay: bool,
    unpublish_after: Option<usize>,
    gap: Duration,
}

fn parse(args: Vec<String>) -> Opts {
    let mut o = Opts {
        importers: vec![2],
        rounds: 3,
        exporter: 1,
        reconnect: false,
        stay: false,
        unpublish_after: None,
        gap: Duration::from_millis(20),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--importers" => {
                let v: String = value("--importers", it.next());
                o.importers = v
                    .split(',')
                    .map(|n| value("--importers", Some(n.to_string())))
                    .collect();
                if o.importers.is_empty() || o.importers.iter().any(|&n| n == 0 || n >= 64) {
                    usage("--importers takes node ids 1..=63");
                }
            }
            "--rounds" => o.rounds = value("--rounds", it.next()),
            "--exporter" => o.exporter = value("--exporter", it.next()),
            "--reconnect" => o.reconnect = true,
            "--stay" => o.stay = true,
            "--round-gap-ms" => o.gap = Duration::from_millis(value("--round-gap-ms", it.next())),
            "--unpublish-after-entry" => {
                let k: usize = value("--unpublish-after-entry", it.next());
                if k >= BULK_ENTRIES - 1 {
                    usage("--unpublish-after-entry takes 0..=14");
                }
                o.unpublish_after = Some(k);
            }
            other => usage(&format!("unknown argument `{other}`")),
        }
    }
    o
}

/// Run a story role; returns the exit status.
pub fn main(role: &str, args: Vec<String>) -> i32 {
    let o = parse(args);
    let cfg = match NodeConfig::from_env() {
        Ok(c) => c,
        Err(e) => usage(&e.to_string()),
    };
    let node = match HostNode::start(cfg) {
        Ok(n) => n,
        Err(e) => {
            println!("FAIL cannot start the node: {e}");
            return 1;
        }
    };
    let r = match role {
        "exporter" => exporter(&node, &o),
        "importer" => importer(&node, &o),
        "waiter" => waiter(&node, &o),
        _ => bulk(&node, &o),
    };
    let ok = match r {
        Ok(()) => true,
        Err(why) => {
            println!("FAIL {why}");
            false
        }
    };
    let stats = node.rsm().net_stats();
    let _ = node.shutdown();
    println!(
        "BYE frames_sent={} frames_received={} retransmits={} malformed={}",
        stats.frames_sent, stats.frames_received, stats.retransmits, stats.malformed
    );
    i32::from(!ok)
}

type Story<T = ()> = Result<T, String>;

fn must<T>(what: &str, r: RsmResult<T>) -> Story<T> {
    r.map_err(|e| format!("{what}: {}", name(e)))
}

fn controller(rsm: &HostRsm) -> Story<ControllerHandle> {
    must(
        "get_controller rsmnet0",
        rsm.get_controller(Some("rsmnet0")),
    )
}

fn publish(
    rsm: &HostRsm,
    ctrl: ControllerHandle,
    mem: &PinnedBuf,
    id: u32,
    acl: &[AccessEntry],
) -> Story<ExportHandle> {
    let seg = must(
        "export_create",
        rsm.export_create(ctrl, mem.region(), CreateFlags::empty()),
    )?;
    must("export_publish", rsm.export_publish(seg, id, acl))?;
    Ok(seg)
}

/// What the standard input told the exporter.
const GO: u8 = 0;
const QUIT: u8 = 1;

fn exporter(node: &HostNode, o: &Opts) -> Story {
    let rsm = node.rsm();
    let ctrl = controller(rsm)?;
    let rdwr: Vec<AccessEntry> = o
        .importers
        .iter()
        .map(|&n| AccessEntry::new(n, 0o600))
        .collect();
    let ro_acl: Vec<AccessEntry> = o
        .importers
        .iter()
        .map(|&n| AccessEntry::new(n, 0o400))
        .collect();
    let main = PinnedBuf::new(SEG_LEN).map_err(|e| format!("segment memory: {e}"))?;
    let seg = publish(rsm, ctrl, &main, SEG, &rdwr)?;
    let ro = PinnedBuf::new(RO_LEN).map_err(|e| format!("segment memory: {e}"))?;
    let fill: Vec<u8> = (0..RO_LEN).map(ro_pattern).collect();
    ro.write(0, &fill).map_err(|e| e.to_string())?;
    publish(rsm, ctrl, &ro, SEG_RO, &ro_acl)?;
    let first = PinnedBuf::new(PAGE_SIZE).map_err(|e| format!("segment memory: {e}"))?;
    publish(rsm, ctrl, &first, SEG_FIRST, &rdwr[..1])?;
    let bulk = match o.unpublish_after {
        Some(_) => {
            let b = PinnedBuf::new(BULK_ENTRIES * BULK_ENTRY)
                .map_err(|e| format!("bulk memory: {e}"))?;
            let s = publish(rsm, ctrl, &b, SEG_BULK, &[])?;
            Some((b, s))
        }
        None => None,
    };
    println!(
        "READY node={} addr={} socket_buffers={:?}",
        rsm.node_id(),
        node.local_addr().map_or("-".into(), |a| a.to_string()),
        node.socket_buffers().unwrap_or_default()
    );

    let command = Arc::new(AtomicU8::new(GO));
    if o.stay {
        let c = command.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.trim() == "quit" => break,
                    Ok(_) => {}
                }
            }
            c.store(QUIT, Ordering::Relaxed);
        });
    }

    let mut done = vec![0u64; o.importers.len()];
    let mut bulk = bulk;
    let mut data = vec![0u8; LOCAL_LEN];
    loop {
        if command.load(Ordering::Relaxed) == QUIT {
            return Ok(());
        }
        if !o.stay && done.iter().all(|&d| d == FIN) {
            println!("SERVED importers={}", o.importers.len());
            return Ok(());
        }
        if let (Some((mem, s)), Some(k)) = (&bulk, o.unpublish_after) {
            // Poll for the last byte of entry k, then unpublish at once.
            let end = (k + 1) * BULK_ENTRY - 1;
            let mut b = [0u8; 1];
            mem.read(end, &mut b).map_err(|e| e.to_string())?;
            if b[0] == 0 {
                std::thread::sleep(Duration::from_micros(20));
                continue;
            }
            must("export_unpublish", rsm.export_unpublish(*s))?;
            // No write lands after the unpublish returned: count what is there.
            let mut entry = vec![0u8; BULK_ENTRY];
            let mut prefix = 0;
            let mut untouched = true;
            for e in 0..BULK_ENTRIES {
                mem.read(e * BULK_ENTRY, &mut entry)
                    .map_err(|e| e.to_string())?;
                let full = entry
                    .iter()
                    .enumerate()
                    .all(|(i, &v)| v == bulk_pattern(e * BULK_ENTRY + i));
                if full && prefix == e {
                    prefix += 1;
                } else if e > prefix && entry.iter().any(|&v| v != 0) {
                    untouched = false;
                }
            }
            println!("UNPUBLISHED prefix={prefix} untouched_after_next={untouched}");
            bulk = None;
            continue;
        }
        match rsm.intr_signal_wait(SegmentRef::Export(seg), 100) {
            Ok(()) | Err(RsmError::Timeout) => {}
            Err(e) => return Err(format!("intr_signal_wait: {}", name(e))),
        }
        for (k, &n) in o.importers.iter().enumerate() {
            let slot = n as usize * SLOT;
            let mut tag = [0u8; 8];
            main.read(slot + TAG_OFF, &mut tag)
                .map_err(|e| e.to_string())?;
            let tag = u64::from_le_bytes(tag);
            if tag == FIN && done[k] != FIN {
                done[k] = FIN;
                println!("FINISHED node={n}");
                continue;
            }
            if tag == 0 || tag == done[k] || done[k] == FIN {
                continue;
            }
            if tag < done[k] {
                // A restarted importer starts again at round 1.
                done[k] = 0;
            }
            let round = (tag - 1) as u32;
            main.read(slot + DATA_OFF, &mut data)
                .map_err(|e| e.to_string())?;
            let bad = (0..LOCAL_LEN)
                .filter(|&i| data[i] != pattern(n, round, i))
                .count();
            if bad != 0 {
                return Err(format!(
                    "node {n} round {round}: {bad} bytes differ in the exported segment"
                ));
            }
            let reply: Vec<u8> = data.iter().map(|b| !b).collect();
            main.write(slot + REPLY_OFF, &reply)
                .map_err(|e| e.to_string())?;
            main.write(slot + REPLY_TAG_OFF, &tag.to_le_bytes())
                .map_err(|e| e.to_string())?;
            must(
                "intr_signal_post",
                rsm.intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty()),
            )?;
            done[k] = tag;
            println!("ROUND node={n} round={round} verified={LOCAL_LEN}");
        }
    }
}

/// Connect, retrying while the exporter is not there yet (or restarting).
fn connect(
    rsm: &HostRsm,
    ctrl: ControllerHandle,
    o: &Opts,
    id: u32,
    perm: Permission,
) -> Story<ImportHandle> {
    let start = Instant::now();
    loop {
        match rsm.import_connect(ctrl, o.exporter, id, perm) {
            Ok(h) => return Ok(h),
            Err(RsmError::SegNotPublished | RsmError::RemoteNodeUnreachable)
                if start.elapsed() < PATIENCE =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("import_connect {id:#x}: {}", name(e))),
        }
    }
}

fn expect_err<T>(what: &str, r: RsmResult<T>, want: RsmError) -> Story {
    match r {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: {} instead of {}", name(e), name(want))),
        Ok(_) => Err(format!("{what}: succeeded instead of {}", name(want))),
    }
}

/// 16 entries over `len` bytes: entry k covers `[cut(k), cut(k + 1))` (uneven lengths).
fn cuts(len: usize) -> Vec<(usize, usize)> {
    let mut c: Vec<usize> = (0..16).map(|k| k * len / 16 + (k * 37) % 61).collect();
    c[0] = 0;
    c.push(len);
    c.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

fn acl_checks(rsm: &HostRsm, ctrl: ControllerHandle, o: &Opts, me: u32) -> Story {
    let h = connect(rsm, ctrl, o, SEG_RO, Permission::READ)?;
    let buf = PinnedBuf::new(RO_LEN).map_err(|e| e.to_string())?;
    let r = buf.region();
    let v: Vec<IoVec<'_, MemRegion>> = cuts(RO_LEN)
        .into_iter()
        .map(|(off, len)| IoVec::va(&r, off, off, len))
        .collect();
    must(
        "getv of the read-only segment",
        rsm.getv(&mut ScatGath::new(h, &v)),
    )?;
    let mut got = vec![0u8; RO_LEN];
    buf.read(0, &mut got).map_err(|e| e.to_string())?;
    let bad = (0..RO_LEN).filter(|&i| got[i] != ro_pattern(i)).count();
    if bad != 0 {
        return Err(format!("{bad} bytes of the read-only segment differ"));
    }
    expect_err(
        "putv through a read-only import",
        rsm.putv(&mut ScatGath::new(h, &v)),
        RsmError::PermDenied,
    )?;
    must("import_disconnect", rsm.import_disconnect(h))?;
    expect_err(
        "read+write connect to the read-only segment",
        rsm.import_connect(ctrl, o.exporter, SEG_RO, Permission::RDWR),
        RsmError::PermDenied,
    )?;
    let first = o.importers.first().copied().unwrap_or(2);
    match rsm.import_connect(ctrl, o.exporter, SEG_FIRST, Permission::RDWR) {
        Ok(h) if me == first => must("import_disconnect", rsm.import_disconnect(h))?,
        r if me == first => return Err(format!("first-importer segment: {:?}", r.err())),
        r => expect_err(
            "connect to a segment published to another node",
            r,
            RsmError::SegNotPublishedToNode,
        )?,
    }
    println!("ACL node={me} ok");
    Ok(())
}

/// Why a round did not finish.
enum Lost {
    /// The connection ended (the exporter left, unpublished, or became unreachable).
    Conn(RsmError),
    /// A check failed.
    Fail(String),
}

impl From<String> for Lost {
    fn from(s: String) -> Self {
        Lost::Fail(s)
    }
}

fn lost_or(what: &str, r: RsmResult<()>) -> Result<(), Lost> {
    match r {
        Ok(()) => Ok(()),
        Err(e @ (RsmError::ConnAborted | RsmError::RemoteNodeUnreachable)) => Err(Lost::Conn(e)),
        Err(e) => Err(Lost::Fail(format!("{what}: {}", name(e)))),
    }
}

struct Importer<'a> {
    rsm: &'a HostRsm,
    me: u32,
    h: ImportHandle,
    local: PinnedBuf,
    lh: rsm_core::LocalMemHandle,
    tag: PinnedBuf,
    barrier: Barrier,
}

impl Importer<'_> {
    fn round(&mut self, round: u32) -> Result<(), Lost> {
        let (rsm, me, h) = (self.rsm, self.me, self.h);
        let slot = me as usize * SLOT;
        let data: Vec<u8> = (0..LOCAL_LEN).map(|i| pattern(me, round, i)).collect();
        self.local.write(0, &data).map_err(|e| e.to_string())?;
        let tag = u64::from(round) + 1;
        self.tag
            .write(0, &tag.to_le_bytes())
            .map_err(|e| e.to_string())?;
        let (l, t) = (self.local.region(), self.tag.region());
        // 15 data entries in a shuffled order, alternately HANDLE and VA, then the tag.
        let parts = cuts(LOCAL_LEN);
        let mut order: Vec<usize> = (0..15).map(|k| (k * 7 + round as usize) % 15).collect();
        order.dedup();
        let mut v: Vec<IoVec<'_, MemRegion>> = Vec::with_capacity(16);
        for (j, &k) in order.iter().enumerate() {
            let (off, len) = if k == 14 {
                // The last data entry takes the 15th and 16th pieces.
                (parts[14].0, parts[14].1 + parts[15].1)
            } else {
                parts[k]
            };
            v.push(if j % 2 == 0 {
                IoVec::handle(self.lh, off, slot + DATA_OFF + off, len)
            } else {
                IoVec::va(&l, off, slot + DATA_OFF + off, len)
            });
        }
        v.push(IoVec::va(&t, 0, slot + TAG_OFF, 8));
        let mut sg = ScatGath::new(h, &v);
        sg.flags = SgFlags::IMPLICIT_SIGPOST;
        lost_or("open_barrier", rsm.open_barrier(&mut self.barrier))?;
        let put = rsm.putv(&mut sg);
        let closed = rsm.close_barrier(&mut self.barrier);
        lost_or("putv", put)?;
        lost_or("close_barrier", closed)?;
        if sg.io_residual_count != 0 {
            return Err(Lost::Fail(format!(
                "putv residual {}",
                sg.io_residual_count
            )));
        }
        // Wait for the exporter's post and its reply tag.
        let start = Instant::now();
        loop {
            let mut b = [0u8; 8];
            lost_or(
                "get of the reply tag",
                rsm.get(h, (slot + REPLY_TAG_OFF) as i64, &mut b),
            )?;
            if u64::from_le_bytes(b) == tag {
                break;
            }
            if start.elapsed() > PATIENCE {
                return Err(Lost::Fail(format!("no reply to round {round}")));
            }
            match rsm.intr_signal_wait(SegmentRef::Import(h), 1000) {
                Ok(()) | Err(RsmError::Timeout) => {}
                Err(e) => lost_or("intr_signal_wait", Err(e))?,
            }
        }
        self.local
            .write(0, &vec![0u8; LOCAL_LEN])
            .map_err(|e| e.to_string())?;
        let v: Vec<IoVec<'_, MemRegion>> = parts
            .iter()
            .enumerate()
            .map(|(k, &(off, len))| {
                if k % 2 == 0 {
                    IoVec::handle(self.lh, off, slot + REPLY_OFF + off, len)
                } else {
                    IoVec::va(&l, off, slot + REPLY_OFF + off, len)
                }
            })
            .collect();
        lost_or("getv of the reply", rsm.getv(&mut ScatGath::new(h, &v)))?;
        let mut got = vec![0u8; LOCAL_LEN];
        self.local.read(0, &mut got).map_err(|e| e.to_string())?;
        let bad = (0..LOCAL_LEN).filter(|&i| got[i] != !data[i]).count();
        if bad != 0 {
            return Err(Lost::Fail(format!(
                "round {round}: {bad} reply bytes differ"
            )));
        }
        println!("ROUND node={me} round={round} put={LOCAL_LEN} got={LOCAL_LEN}");
        Ok(())
    }
}

fn open<'a>(rsm: &'a HostRsm, ctrl: ControllerHandle, o: &Opts, me: u32) -> Story<Importer<'a>> {
    let h = connect(rsm, ctrl, o, SEG, Permission::RDWR)?;
    let local = PinnedBuf::new(LOCAL_LEN).map_err(|e| e.to_string())?;
    let lh = must(
        "create_localmemory_handle",
        rsm.create_localmemory_handle(ctrl, local.region()),
    )?;
    let tag = PinnedBuf::new(PAGE_SIZE).map_err(|e| e.to_string())?;
    let mut barrier = Barrier::default();
    must(
        "init_barrier",
        rsm.init_barrier(h, BarrierType::SEGMENT, &mut barrier),
    )?;
    Ok(Importer {
        rsm,
        me,
        h,
        local,
        lh,
        tag,
        barrier,
    })
}

fn close(ctrl: ControllerHandle, mut im: Importer<'_>) {
    let rsm = im.rsm;
    let _ = rsm.destroy_barrier(&mut im.barrier);
    let _ = rsm.import_disconnect(im.h);
    let _ = rsm.free_localmemory_handle(ctrl, im.lh);
}

fn importer(node: &HostNode, o: &Opts) -> Story {
    let rsm = node.rsm();
    let me = rsm.node_id();
    let ctrl = controller(rsm)?;
    acl_checks(rsm, ctrl, o, me)?;
    let mut im = open(rsm, ctrl, o, me)?;
    if o.reconnect {
        // Rounds until the connection is lost, then connect again.
        let mut round = 0;
        let err = loop {
            match im.round(round) {
                Ok(()) => round += 1,
                Err(Lost::Conn(e)) => break e,
                Err(Lost::Fail(why)) => return Err(why),
            }
            std::thread::sleep(o.gap);
        };
        println!("LOST node={me} err={} after_rounds={round}", name(err));
        close(ctrl, im);
        im = open(rsm, ctrl, o, me)?;
        println!("RECONNECTED node={me}");
    }
    let mut moved = 0;
    for round in 0..o.rounds {
        match im.round(round) {
            Ok(()) => moved += 2 * LOCAL_LEN,
            Err(Lost::Conn(e)) => {
                println!("LOST node={me} err={} after_rounds={round}", name(e));
                return Err(format!("connection lost in round {round}"));
            }
            Err(Lost::Fail(why)) => return Err(why),
        }
    }
    let slot = me as usize * SLOT;
    // No post after it: the exporter may leave as soon as it sees the last finish tag (it
    // looks at least every 100 ms), and a post racing its exit would fail.
    must(
        "put of the finish tag",
        rsm.put(im.h, (slot + TAG_OFF) as i64, &FIN.to_le_bytes()),
    )?;
    println!("DONE node={me} rounds={} bytes={moved}", o.rounds);
    close(ctrl, im);
    Ok(())
}

fn waiter(node: &HostNode, o: &Opts) -> Story {
    let rsm = node.rsm();
    let ctrl = controller(rsm)?;
    let h = connect(rsm, ctrl, o, SEG, Permission::RDWR)?;
    println!("WAITING node={}", rsm.node_id());
    let mut events = 0u64;
    loop {
        match rsm.intr_signal_wait(SegmentRef::Import(h), -1) {
            Ok(()) => events += 1,
            Err(e) => {
                println!(
                    "LOST node={} err={} events={events}",
                    rsm.node_id(),
                    name(e)
                );
                let _ = rsm.import_disconnect(h);
                return Ok(());
            }
        }
    }
}

fn bulk(node: &HostNode, o: &Opts) -> Story {
    let rsm = node.rsm();
    let ctrl = controller(rsm)?;
    let h = connect(rsm, ctrl, o, SEG_BULK, Permission::RDWR)?;
    let len = BULK_ENTRIES * BULK_ENTRY;
    let mut src = PinnedBuf::new(len).map_err(|e| e.to_string())?;
    if let Some(s) = src.as_mut_slice() {
        for (i, b) in s.iter_mut().enumerate() {
            *b = bulk_pattern(i);
        }
    }
    let lh = must(
        "create_localmemory_handle",
        rsm.create_localmemory_handle(ctrl, src.region()),
    )?;
    let r = src.region();
    let v: Vec<IoVec<'_, MemRegion>> = (0..BULK_ENTRIES)
        .map(|k| {
            let off = k * BULK_ENTRY;
            if k % 2 == 0 {
                IoVec::handle(lh, off, off, BULK_ENTRY)
            } else {
                IoVec::va(&r, off, off, BULK_ENTRY)
            }
        })
        .collect();
    let mut sg = ScatGath::new(h, &v);
    let t = Instant::now();
    let res = rsm.putv(&mut sg);
    println!(
        "BULK node={} result={} residual={} ms={}",
        rsm.node_id(),
        res.err().map_or("OK", name),
        sg.io_residual_count,
        t.elapsed().as_millis()
    );
    let _ = rsm.import_disconnect(h);
    let _ = rsm.free_localmemory_handle(ctrl, lh);
    Ok(())
}
