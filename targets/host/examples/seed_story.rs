//! The seed man page's story — `rsm_create_localmemory_handle(3RSM)` — on one node, on the real
//! host backend (`mlock` pinning), printed as a report.
//!
//! ```text
//! cargo run --release -p rsm-host --example seed_story      # or: cargo rsm demo
//! ```
//!
//! Get the `rsmnet0` and `loopback` controllers and show their attributes; export and publish a
//! 1 MiB segment; connect to it (same node); pin a local buffer of 3 pages + 100 bytes with
//! `create_localmemory_handle`; putv it into the segment with a 16-entry mixed HANDLE/VA vector
//! and getv it back; verify byte-exact; show the documented error codes for a few misuses;
//! measure an informal putv-vs-memcpy figure; free everything and prove nothing leaked.
//!
//! Every step prints one line with `OK` or `FAIL`; the process exits with status 1 if any
//! check failed.

use rsm_core::{
    Config, ControllerHandle, CreateFlags, IoVec, LocalMemHandle, Permission, Rsm, RsmError,
    RsmResult, ScatGath, SgFlags, PAGE_SIZE, RSM_DAS16, RSM_DAS32, RSM_DAS64, RSM_DAS8,
    RSM_USER_APP_ID_BASE,
};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};
use std::fmt::Display;
use std::hint::black_box;
use std::process;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The exported segment.
const SEG_LEN: usize = MIB;
/// The local buffer of the story: not a page multiple on purpose.
const LOCAL_LEN: usize = 3 * PAGE_SIZE + 100;
/// Width of the step column.
const COL: usize = 58;

/// Collects the outcome of every step and prints one aligned line per step.
struct Report {
    steps: usize,
    failed: usize,
}

impl Report {
    fn section(&self, title: &str) {
        println!("\n== {title} ==");
    }

    /// One step: `ok` decides OK/FAIL; `detail` goes to the right.
    fn step(&mut self, ok: bool, what: &str, detail: impl Display) -> bool {
        self.steps += 1;
        if !ok {
            self.failed += 1;
        }
        let mark = if ok { " OK " } else { "FAIL" };
        println!("  [{mark}] {what:<COL$} {detail}");
        ok
    }

    /// An informational line (no check).
    fn info(&self, what: &str, detail: impl Display) {
        println!("         {what:<COL$} {detail}");
    }

    /// A step whose call must succeed for the story to go on; stops the demo otherwise.
    fn must<T>(&mut self, what: &str, r: RsmResult<T>, detail: impl Fn(&T) -> String) -> T {
        match r {
            Ok(v) => {
                let d = detail(&v);
                self.step(true, what, d);
                v
            }
            Err(e) => {
                self.step(false, what, e);
                if matches!(e, RsmError::InsufficientMem) {
                    eprintln!(
                        "\nhint: pinning failed — raise the locked-memory limit (`ulimit -l`) \
                         or run with CAP_IPC_LOCK"
                    );
                }
                self.abort(&format!("`{what}` failed with {e}; cannot continue"));
            }
        }
    }

    /// An expected error: OK if `r` is exactly `Err(want)`.
    fn expect_err<T>(&mut self, what: &str, r: RsmResult<T>, want: RsmError) -> bool {
        let got = match &r {
            Ok(_) => "succeeded".to_owned(),
            Err(e) => format!("{} ({})", e.name(), e.code()),
        };
        self.step(r.err() == Some(want), what, format!("got {got}"))
    }

    fn abort(&self, msg: &str) -> ! {
        eprintln!("\nseed_story: FAILED: {msg}");
        process::exit(1);
    }
}

/// Position-dependent bytes, so a misplaced or missing byte shows.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

/// The story's vector: entry k moves `layout[k]` = (local offset, remote offset, length);
/// even entries name the local memory handle `h`, odd ones the virtual address `region`.
fn mixed_vector<'a>(
    layout: &[(usize, usize, usize)],
    h: LocalMemHandle,
    region: &'a MemRegion,
) -> Vec<IoVec<'a, MemRegion>> {
    layout
        .iter()
        .enumerate()
        .map(|(k, &(lo, ro, len))| {
            if k % 2 == 0 {
                IoVec::handle(h, lo, ro, len)
            } else {
                IoVec::va(region, lo, ro, len)
            }
        })
        .collect()
}

fn name(e: RsmError) -> String {
    format!("{} ({})", e.name(), e.code())
}

fn main() {
    let mut r = Report {
        steps: 0,
        failed: 0,
    };
    println!("rsm-rs seed story: rsm_create_localmemory_handle(3RSM) on the host backend");

    // ---------------------------------------------------------------------------------------
    r.section("1. Controllers");
    let node: Rsm<HostPlatform> = Rsm::new(HostPlatform::new(), Config::default());
    r.info(
        "node",
        format!(
            "id {}, host page size {} bytes, mlock pinning {}",
            node.node_id(),
            node.platform().page_size(),
            if node.platform().uses_mlock() {
                "on"
            } else {
                "off"
            }
        ),
    );
    let ctrl = r.must(
        "rsm_get_controller(\"rsmnet0\")",
        node.get_controller(Some("rsmnet0")),
        |h| format!("{h:?}"),
    );
    let lo = r.must(
        "rsm_get_controller(\"loopback\")",
        node.get_controller(Some("loopback")),
        |h| format!("{h:?}"),
    );
    let attr = r.must(
        "rsm_get_controller_attr(rsmnet0)",
        node.get_controller_attr(ctrl),
        |_| "RSM_SUCCESS".into(),
    );
    r.step(
        attr.attr_page_size == PAGE_SIZE,
        "  attr_page_size",
        format!("{} bytes", attr.attr_page_size),
    );
    let das: Vec<&str> = [
        (RSM_DAS8, "8"),
        (RSM_DAS16, "16"),
        (RSM_DAS32, "32"),
        (RSM_DAS64, "64"),
    ]
    .iter()
    .filter(|(bit, _)| attr.attr_direct_access_sizes & bit != 0)
    .map(|&(_, n)| n)
    .collect();
    r.info(
        "  attr_direct_access_sizes",
        format!(
            "{:#x} (bits: {})",
            attr.attr_direct_access_sizes,
            das.join("/")
        ),
    );
    r.info(
        "  attr_atomic_sizes",
        format!("{:#x}", attr.attr_atomic_sizes),
    );
    r.info(
        "  attr_max_export_segment_size",
        format!("{} GiB", attr.attr_max_export_segment_size >> 30),
    );
    r.info(
        "  attr_max_export_segments / attr_max_import_segments",
        format!(
            "{} / {}",
            attr.attr_max_export_segments, attr.attr_max_import_segments
        ),
    );
    let lo_attr = r.must(
        "rsm_get_controller_attr(loopback)",
        node.get_controller_attr(lo),
        |a| format!("page size {} (spec §9.5: not 8)", a.attr_page_size),
    );
    r.step(
        lo_attr.attr_page_size == PAGE_SIZE,
        "  loopback reports the same page size",
        lo_attr.attr_page_size,
    );

    // ---------------------------------------------------------------------------------------
    r.section("2. Export side");
    let seg_buf = match PinnedBuf::new(SEG_LEN) {
        Ok(b) => b,
        Err(e) => r.abort(&format!("cannot allocate the 1 MiB segment buffer: {e}")),
    };
    let seg = r.must(
        "rsm_memseg_export_create(rsmnet0, 1 MiB PinnedBuf)",
        node.export_create(ctrl, seg_buf.region(), CreateFlags::empty()),
        |h| format!("{h:?}"),
    );
    let pinned_seg = node.platform().pinned_bytes();
    r.step(
        pinned_seg == SEG_LEN,
        "  segment pages pinned (mlock)",
        format!("{} KiB", pinned_seg / KIB),
    );
    let segid = r.must(
        "rsm_memseg_export_publish(id 0 = automatic, no ACL)",
        node.export_publish(seg, 0, &[]),
        |id| format!("segment id {id:#010x}"),
    );
    r.step(
        segid >= RSM_USER_APP_ID_BASE,
        "  automatic id is in the system range",
        format!("{segid:#x} >= {RSM_USER_APP_ID_BASE:#x}"),
    );

    // ---------------------------------------------------------------------------------------
    r.section("3. Import side (same node)");
    let imp = r.must(
        "rsm_memseg_import_connect(rsmnet0, node 0, id, RDWR)",
        node.import_connect(ctrl, node.node_id(), segid, Permission::RDWR),
        |h| format!("{h:?}"),
    );
    let info = r.must("import_info", node.import_info(imp), |i| {
        format!("{} KiB, perm {:o}", i.size / KIB, i.perm.bits())
    });
    r.step(
        info.size == SEG_LEN && info.segment_id == segid,
        "  connected to the published segment",
        format!("id {:#x}", info.segment_id),
    );

    // ---------------------------------------------------------------------------------------
    r.section("4. Local memory handle (the seed man page)");
    let (src, dst) = match (PinnedBuf::new(LOCAL_LEN), PinnedBuf::new(LOCAL_LEN)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => r.abort("cannot allocate the local buffers"),
    };
    let data = pattern(0x5E, LOCAL_LEN);
    if src.write(0, &data).is_err() {
        r.abort("cannot fill the local buffer");
    }
    dst.fill(0);
    let before = node.platform().pinned_pages();
    let h_src = r.must(
        "rsm_create_localmemory_handle(3 pages + 100 bytes)",
        node.create_localmemory_handle(ctrl, src.region()),
        |h| format!("{h:?}"),
    );
    let pinned_now = node.platform().pinned_pages() - before;
    r.step(
        pinned_now == LOCAL_LEN.div_ceil(PAGE_SIZE),
        "  whole pages pinned for a non-page-multiple length",
        format!("{LOCAL_LEN} bytes -> {pinned_now} pages"),
    );
    let h_dst = r.must(
        "rsm_create_localmemory_handle(destination buffer)",
        node.create_localmemory_handle(ctrl, dst.region()),
        |h| format!("{h:?}"),
    );

    // ---------------------------------------------------------------------------------------
    r.section("5. putv / getv with a 16-entry mixed HANDLE/VA vector");
    let (src_r, dst_r) = (src.region(), dst.region());
    // Entry k moves piece k of the local buffer to a scattered, unaligned segment offset;
    // even entries use the handle, odd ones the virtual address.
    let piece = LOCAL_LEN / 16;
    let layout: Vec<(usize, usize, usize)> = (0..16)
        .map(|k| {
            let len = if k == 15 {
                LOCAL_LEN - 15 * piece
            } else {
                piece
            };
            (k * piece, k * (SEG_LEN / 16) + 13 * k + 1, len)
        })
        .collect();
    let put = mixed_vector(&layout, h_src, &src_r);
    r.info(
        "vector",
        format!(
            "16 entries: 8 RSM_HANDLE_TYPE + 8 RSM_VA_TYPE, {piece}..{} bytes each",
            LOCAL_LEN - 15 * piece
        ),
    );
    let mut sg = ScatGath::new(imp, &put);
    sg.io_residual_count = 99;
    let res = node.putv(&mut sg);
    r.step(
        res.is_ok(),
        "rsm_memseg_import_putv",
        format!(
            "{}, io_residual_count {}",
            res.map_or_else(name, |()| "RSM_SUCCESS".into()),
            sg.io_residual_count
        ),
    );
    r.step(
        sg.io_residual_count == 0 && sg.flags == SgFlags::empty(),
        "  residual 0, flags unchanged",
        sg.io_residual_count,
    );
    let seg_bytes = seg_buf.to_vec();
    let placed = layout
        .iter()
        .all(|&(lo, ro, len)| seg_bytes[ro..ro + len] == data[lo..lo + len]);
    r.step(placed, "  every piece is at its segment offset", "16 of 16");

    let get = mixed_vector(&layout, h_dst, &dst_r);
    let mut sg = ScatGath::new(imp, &get);
    sg.io_residual_count = 99;
    let res = node.getv(&mut sg);
    r.step(
        res.is_ok() && sg.io_residual_count == 0,
        "rsm_memseg_import_getv (into a second buffer)",
        format!(
            "{}, io_residual_count {}",
            res.map_or_else(name, |()| "RSM_SUCCESS".into()),
            sg.io_residual_count
        ),
    );
    let back = dst.to_vec();
    let first_diff = back.iter().zip(&data).position(|(a, b)| a != b);
    r.step(
        first_diff.is_none(),
        "  byte-exact round trip",
        match first_diff {
            None => format!("{LOCAL_LEN} of {LOCAL_LEN} bytes equal"),
            Some(i) => format!("first difference at byte {i}"),
        },
    );

    // ---------------------------------------------------------------------------------------
    r.section("6. Error cases (RSMERR name and code)");
    let unaligned = src.subregion(1, 100).unwrap_or_else(|| src_r.clone());
    r.expect_err(
        "create_localmemory_handle(unaligned address) -> 16",
        node.create_localmemory_handle(ctrl, unaligned),
        RsmError::BadAddr,
    );

    let snapshot = seg_buf.to_vec();
    let beyond = [
        IoVec::handle(h_src, 0, 0, 64),
        IoVec::va(&src_r, 64, 64, 64),
        IoVec::handle(h_src, 0, SEG_LEN - 10, 100),
    ];
    let mut sg = ScatGath::new(imp, &beyond);
    let res = node.putv(&mut sg);
    r.expect_err(
        "putv, entry 3 of 3 beyond the segment end -> 18",
        res,
        RsmError::BadOffset,
    );
    r.step(
        sg.io_residual_count == 3 && seg_buf.to_vec() == snapshot,
        "  residual = entries not done; nothing written",
        format!("io_residual_count {} of 3", sg.io_residual_count),
    );

    let past_handle = [IoVec::handle(h_src, LOCAL_LEN - 10, 0, 100)];
    let mut sg = ScatGath::new(imp, &past_handle);
    r.expect_err(
        &format!("putv, entry beyond the handle's {LOCAL_LEN} bytes -> 20"),
        node.putv(&mut sg),
        RsmError::BadLength,
    );

    let seventeen = [IoVec::handle(h_src, 0, 0, 1); 17];
    let mut sg = ScatGath::new(imp, &seventeen);
    r.expect_err(
        "putv with io_request_count 17 -> 14",
        node.putv(&mut sg),
        RsmError::BadSgio,
    );

    let temp = r.must(
        "create a handle to free twice",
        node.create_localmemory_handle(ctrl, dst.region()),
        |h| format!("{h:?}"),
    );
    r.must(
        "rsm_free_localmemory_handle (first)",
        node.free_localmemory_handle(ctrl, temp),
        |()| "RSM_SUCCESS".into(),
    );
    r.expect_err(
        "rsm_free_localmemory_handle (double free) -> 15",
        node.free_localmemory_handle(ctrl, temp),
        RsmError::BadLocalmemHndl,
    );
    let stale = [IoVec::<MemRegion>::handle(temp, 0, 0, 1)];
    let mut sg = ScatGath::new(imp, &stale);
    r.expect_err(
        "putv naming the freed handle -> 14",
        node.putv(&mut sg),
        RsmError::BadSgio,
    );

    // ---------------------------------------------------------------------------------------
    r.section("7. Throughput (informal demo figure, NOT a benchmark)");
    let big = match PinnedBuf::new(MIB) {
        Ok(b) => b,
        Err(e) => r.abort(&format!("cannot allocate the throughput buffer: {e}")),
    };
    let big_data = pattern(0x7B, MIB);
    if big.write(0, &big_data).is_err() {
        r.abort("cannot fill the throughput buffer");
    }
    let h_big = r.must(
        "create_localmemory_handle(1 MiB)",
        node.create_localmemory_handle(ctrl, big.region()),
        |h| format!("{h:?}"),
    );
    let chunk = 64 * KIB;
    let tput: Vec<IoVec<'_, MemRegion>> = (0..16)
        .map(|k| IoVec::handle(h_big, k * chunk, k * chunk, chunk))
        .collect();
    let window = Duration::from_millis(200);
    let (mut calls, mut failures) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < window {
        let mut sg = ScatGath::new(imp, &tput);
        if node.putv(&mut sg).is_err() {
            failures += 1;
        }
        calls += 1;
    }
    let putv_rate = (calls as f64 * MIB as f64) / start.elapsed().as_secs_f64();
    r.step(
        failures == 0 && seg_buf.to_vec() == big_data,
        "putv 16 x 64 KiB, repeated for ~200 ms",
        format!(
            "{calls} calls, {:.2} GiB/s",
            putv_rate / (1u64 << 30) as f64
        ),
    );
    let from = big_data.clone();
    let mut to = vec![0u8; MIB];
    let mut copies = 0u64;
    let start = Instant::now();
    while start.elapsed() < window {
        to.copy_from_slice(black_box(&from));
        black_box(&mut to);
        copies += 1;
    }
    let memcpy_rate = (copies as f64 * MIB as f64) / start.elapsed().as_secs_f64();
    r.info(
        "memcpy 1 MiB, repeated for ~200 ms",
        format!(
            "{copies} copies, {:.2} GiB/s",
            memcpy_rate / (1u64 << 30) as f64
        ),
    );
    r.info(
        "putv / memcpy",
        format!(
            "{:.0} % (one run, no warm-up; real numbers: cargo bench -p rsm-host)",
            100.0 * putv_rate / memcpy_rate
        ),
    );

    // ---------------------------------------------------------------------------------------
    r.section("8. Teardown");
    for (what, h) in [("src", h_src), ("dst", h_dst), ("1 MiB", h_big)] {
        r.must(
            &format!("rsm_free_localmemory_handle({what})"),
            node.free_localmemory_handle(ctrl, h),
            |()| "RSM_SUCCESS".into(),
        );
    }
    r.must(
        "rsm_memseg_import_disconnect",
        node.import_disconnect(imp),
        |()| "RSM_SUCCESS".into(),
    );
    r.must(
        "rsm_memseg_export_unpublish",
        node.export_unpublish(seg),
        |()| "RSM_SUCCESS".into(),
    );
    r.must(
        "rsm_memseg_export_destroy",
        node.export_destroy(seg),
        |()| "RSM_SUCCESS".into(),
    );
    for (what, c) in [("rsmnet0", ctrl), ("loopback", lo)] {
        release(&mut r, &node, what, c);
    }
    let slots = node.slots_in_use();
    r.step(
        slots == (0, 0, 0),
        "slots_in_use() (local handles, exports, imports)",
        format!("{slots:?}"),
    );
    let pinned = node.platform().pinned_bytes();
    r.step(pinned == 0, "pinned bytes", pinned);

    println!();
    if r.failed > 0 {
        r.abort(&format!("{} of {} checks failed", r.failed, r.steps));
    }
    println!("seed_story: all {} checks passed", r.steps);
}

fn release(r: &mut Report, node: &Rsm<HostPlatform>, what: &str, c: ControllerHandle) {
    r.must(
        &format!("rsm_release_controller({what})"),
        node.release_controller(c),
        |()| "RSM_SUCCESS".into(),
    );
}
