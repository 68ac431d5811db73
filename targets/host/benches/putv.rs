//! # `putv` on one node against bare memcpy, in the same run
//!
//! **Measured:** [`Rsm::putv`] of a 16-entry scatter-gather vector through the `loopback`
//! controller: a local memory handle over a 1 MiB [`PinnedBuf`] is put into a 1 MiB
//! [`PinnedBuf`] that the same node exported, published and imported. Entry `k` moves `len`
//! bytes from local offset `k × 64 KiB` to remote offset `k × 64 KiB`, for `len` = 64 KiB,
//! 4 KiB and 64 B (groups `putv_16x64KiB`, `putv_16x4KiB`, `putv_16x64B`).
//!
//! **Limit:** the bench `memcpy` of each group: 16 bare `copy_from_slice` of the same lengths
//! at the same offsets between two page-aligned, pre-faulted 1 MiB buffers — the copies alone,
//! with no RSM layer (lengths are `black_box`ed, so both sides call the library memcpy).
//!
//! **Diagnostic:** the bench `hal_copy` of each group makes the very copies putv makes —
//! between the node's own buffers, through the HAL's [`Memory::copy`] — without the RSM layer,
//! so `putv − hal_copy` is the RSM layer's own cost and `hal_copy − memcpy` the copy path's.
//!
//! **Goals:** 16 × 64 KiB: putv throughput ≥ 0.95 × memcpy; 16 × 4 KiB: ≥ 0.8 × memcpy;
//! 16 × 64 B: putv time per call minus the 16 copies ≤ 250 ns.
//!
//! After each group, the medians criterion measured in this run are read back from
//! `target/criterion/<group>/<bench>/new/estimates.json` and a `RATIO` line is printed and
//! appended to `target/criterion/rsm-ratios.txt`. The verdict uses criterion's medians; the
//! line also shows an interleaved cross-check with its own verdict (short alternating batches
//! of both sides, so that both see the same load on a busy machine).
//!
//! **Run:** `cargo bench -p rsm-host --bench putv` (`-- 16x4KiB` runs one group).
//! `cargo test -p rsm-host --benches` runs each bench once as a smoke test, without ratios.

mod common;

use common::{batch_for, gbps, interleaved, verdict, Report, ROUNDS};
use criterion::{black_box, Criterion, Throughput};
use rsm_core::{
    ControllerHandle, CreateFlags, ExportHandle, ImportHandle, IoVec, LocalMemHandle, Permission,
    Rsm, ScatGath,
};
use rsm_hal::Memory;
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};

/// Entries per vector (RSM_MAX_SGIOREQS).
const ENTRIES: usize = 16;
/// Distance between consecutive entries, locally and remotely.
const STRIDE: usize = 64 * 1024;
/// Size of the local buffer and of the segment.
const BUF: usize = ENTRIES * STRIDE;
const PAGE: usize = 4096;

/// One node with a 1 MiB segment imported by itself and a 1 MiB local memory handle.
struct Node {
    rsm: Rsm<HostPlatform>,
    ctrl: ControllerHandle,
    seg: ExportHandle,
    imp: ImportHandle,
    local: LocalMemHandle,
    // Dropped after the handles were freed in `teardown`.
    seg_buf: PinnedBuf,
    local_buf: PinnedBuf,
}

impl Node {
    fn try_new(platform: HostPlatform) -> Result<Node, rsm_core::RsmError> {
        let seg_buf = PinnedBuf::new(BUF).expect("allocate the segment");
        let local_buf = PinnedBuf::new(BUF).expect("allocate the local buffer");
        // Touch every page, so neither side pays page faults (mlock faults them in too).
        seg_buf.fill(0);
        local_buf.fill(0x5a);
        let rsm = Rsm::new(platform, rsm_core::Config::default());
        let ctrl = rsm.get_controller(None)?;
        let seg = rsm.export_create(ctrl, seg_buf.region(), CreateFlags::empty())?;
        let id = rsm.export_publish(seg, 0, &[])?;
        let imp = rsm.import_connect(ctrl, rsm.node_id(), id, Permission::RDWR)?;
        let local = rsm.create_localmemory_handle(ctrl, local_buf.region())?;
        Ok(Node {
            rsm,
            ctrl,
            seg,
            imp,
            local,
            seg_buf,
            local_buf,
        })
    }

    /// With real `mlock` pinning if the memlock limit allows 2 MiB, else without.
    fn new() -> Node {
        Node::try_new(HostPlatform::new()).unwrap_or_else(|e| {
            eprintln!("note: mlock pinning failed ({e:?}); benchmarking without mlock");
            Node::try_new(HostPlatform::without_mlock()).expect("set up the node")
        })
    }

    fn iov(&self, len: usize) -> [IoVec<'static, MemRegion>; ENTRIES] {
        core::array::from_fn(|k| IoVec::handle(self.local, k * STRIDE, k * STRIDE, len))
    }

    fn teardown(self) {
        let r = &self.rsm;
        r.free_localmemory_handle(self.ctrl, self.local).unwrap();
        r.import_disconnect(self.imp).unwrap();
        r.export_destroy(self.seg).unwrap();
        r.release_controller(self.ctrl).unwrap();
        assert_eq!(r.slots_in_use(), (0, 0, 0));
    }
}

/// A page-aligned, pre-faulted heap buffer of `len` bytes (safe code: a page-aligned window
/// into a slightly larger vector), the memcpy side's equivalent of a [`PinnedBuf`].
struct Aligned {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, byte: u8) -> Aligned {
        let mut v = vec![byte; len + PAGE];
        // Write every page: a zeroed vector may still be unfaulted zero pages.
        v.fill(byte);
        let off = v.as_ptr().align_offset(PAGE);
        assert!(off < PAGE);
        Aligned { v, off, len }
    }
    fn slice(&self) -> &[u8] {
        &self.v[self.off..self.off + self.len]
    }
    fn slice_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// The limit: the same 16 copies with nothing around them.
fn copies(dst: &mut [u8], src: &[u8], len: usize) {
    for k in 0..ENTRIES {
        let o = k * STRIDE;
        dst[o..o + len].copy_from_slice(&src[o..o + len]);
    }
}

/// Medians (ns per call) of one group: criterion's, and the interleaved cross-check's.
struct Medians {
    putv: f64,
    memcpy: f64,
    hal_copy: f64,
    putv_il: f64,
    memcpy_il: f64,
}

/// Run the group `putv_16x<label>` (benches `putv` and `memcpy`); in bench mode, returns the
/// medians measured in this run.
fn group(
    c: &mut Criterion,
    report: Option<&Report>,
    node: &Node,
    label: &str,
    len: usize,
) -> Option<Medians> {
    let name = format!("putv_16x{label}");
    let iov = node.iov(len);
    // Allocated in the order of the node's buffers (destination first), so that the two sides
    // also agree in which of source and destination lies higher in memory.
    let mut dst = Aligned::new(BUF, 0);
    let src = Aligned::new(BUF, 0x5a);

    let mut putv = || {
        let mut sg = ScatGath::new(node.imp, black_box(&iov[..]));
        node.rsm.putv(black_box(&mut sg)).expect("putv");
        sg.io_residual_count
    };
    let mut memcpy = || {
        copies(
            black_box(dst.slice_mut()),
            black_box(src.slice()),
            black_box(len),
        )
    };

    // Diagnostic: the copies putv makes, between the node's own buffers, through the HAL
    // (`Memory::copy`), without the RSM layer.
    let (seg, local) = (node.seg_buf.region(), node.local_buf.region());
    let platform = node.rsm.platform();
    let hal_copy = || {
        for k in 0..ENTRIES {
            let o = k * STRIDE;
            platform
                .copy(black_box(&seg), o, black_box(&local), o, black_box(len))
                .expect("copy");
        }
    };

    let mut g = c.benchmark_group(&name);
    g.throughput(Throughput::Bytes((ENTRIES * len) as u64));
    g.bench_function("putv", |b| b.iter(&mut putv));
    g.bench_function("memcpy", |b| b.iter(&mut memcpy));
    g.bench_function("hal_copy", |b| b.iter(hal_copy));
    g.finish();

    let r = report?;
    let (p, m) = (r.median_ns(&name, "putv")?, r.median_ns(&name, "memcpy")?);
    let hal_copy = r.median_ns(&name, "hal_copy")?;
    let (putv_il, memcpy_il) = interleaved(ROUNDS, batch_for(p), putv, memcpy);
    Some(Medians {
        putv: p,
        memcpy: m,
        hal_copy,
        putv_il,
        memcpy_il,
    })
}

/// Print the throughput ratio of a group against its goal.
fn throughput_ratio(report: &Report, name: &str, len: usize, m: &Medians, goal: f64) {
    let bytes = ENTRIES * len;
    let ratio = m.memcpy / m.putv;
    let il = m.memcpy_il / m.putv_il;
    report.line(
        name,
        &format!(
            "putv {:.2} GB/s vs memcpy {:.2} GB/s = {ratio:.3}x (goal >= {goal}x) {} \
             [median per call: putv {:.0} ns, memcpy {:.0} ns, HAL copies alone {:.0} ns; \
             interleaved check: {il:.3}x {}]",
            gbps(bytes, m.putv),
            gbps(bytes, m.memcpy),
            verdict(ratio >= goal),
            m.putv,
            m.memcpy,
            m.hal_copy,
            verdict(il >= goal),
        ),
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let report = Report::new("putv");
    let r = report.as_ref();
    let node = Node::new();

    if let Some(m) = group(&mut c, r, &node, "64KiB", 64 * 1024) {
        throughput_ratio(r.unwrap(), "putv_16x64KiB", 64 * 1024, &m, 0.95);
    }
    if let Some(m) = group(&mut c, r, &node, "4KiB", 4096) {
        throughput_ratio(r.unwrap(), "putv_16x4KiB", 4096, &m, 0.8);
    }
    if let Some(m) = group(&mut c, r, &node, "64B", 64) {
        let overhead = m.putv - m.memcpy;
        let il = m.putv_il - m.memcpy_il;
        r.unwrap().line(
            "putv_16x64B",
            &format!(
                "putv {:.1} ns/call vs 16 memcpy {:.1} ns = overhead {overhead:.1} ns/call \
                 (goal <= 250 ns) {}; throughput {:.3}x of memcpy \
                 [HAL copies alone {:.1} ns; interleaved check: overhead {il:.1} ns {}]",
                m.putv,
                m.memcpy,
                verdict(overhead <= 250.0),
                m.memcpy / m.putv,
                m.hal_copy,
                verdict(il <= 250.0),
            ),
        );
    }

    node.teardown();
    c.final_summary();
}
