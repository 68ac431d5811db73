//! # Local memory handles: create + free, against their limits, in the same run
//!
//! **Measured:** one [`Rsm::create_localmemory_handle`] followed by one
//! [`Rsm::free_localmemory_handle`] (bench `create_free`) over a page-aligned [`PinnedBuf`]
//! region of 1 page and of 16 pages (64 KiB), on the `loopback` controller.
//!
//! * Groups `localmem_table_1p` / `localmem_table_16p`: the node runs on
//!   [`HostPlatform::without_mlock`] (the same per-page pin counting and process-wide page
//!   table, no system calls), so the pair measures the table work alone. **Goal:** ≤ 100 ns
//!   per create + free pair (absolute). Reported alongside: `pin_unpin`, the bare page-count
//!   work — [`Memory::pin`] + [`Memory::unpin`] of the same platform, without the RSM tables.
//! * Groups `localmem_mlock_1p` / `localmem_mlock_16p`: the node runs on [`HostPlatform::new`]
//!   (real `mlock`/`munlock`). **Limit:** bench `mlock_munlock`, a bare `libc::mlock` +
//!   `libc::munlock` of the same pages. **Goal:** create + free ≤ 1.1 × the bare pair.
//!
//! After each group, the medians criterion measured in this run are read back from
//! `target/criterion/<group>/<bench>/new/estimates.json` and a `RATIO` line is printed and
//! appended to `target/criterion/rsm-ratios.txt`. The verdict uses criterion's medians; the
//! line also shows an interleaved cross-check with its own verdict (short alternating batches
//! of both sides, so that both see the same load on a busy machine).
//!
//! **Run:** `cargo bench -p rsm-host --bench localmem` (`-- mlock_1p` runs one group).
//! `cargo test -p rsm-host --benches` runs each bench once as a smoke test, without ratios.

mod common;

use common::{batch_for, interleaved, verdict, Report, ROUNDS};
use criterion::{black_box, Criterion};
use rsm_core::{ControllerHandle, Rsm};
use rsm_hal::{Memory, Region};
use rsm_host::{HostPlatform, MemRegion, PinnedBuf};

const PAGE: usize = 4096;

/// A node and its loopback controller.
struct Node {
    rsm: Rsm<HostPlatform>,
    ctrl: ControllerHandle,
}

impl Node {
    fn new(platform: HostPlatform) -> Node {
        let rsm = Rsm::new(platform, rsm_core::Config::default());
        let ctrl = rsm.get_controller(None).expect("loopback controller");
        Node { rsm, ctrl }
    }

    /// One create + free pair.
    fn create_free(&self, region: MemRegion) {
        let h = self
            .rsm
            .create_localmemory_handle(self.ctrl, region)
            .expect("create_localmemory_handle");
        self.rsm
            .free_localmemory_handle(self.ctrl, black_box(h))
            .expect("free_localmemory_handle");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.rsm.release_controller(self.ctrl);
    }
}

/// The bare system-call pair: `mlock` then `munlock` of `region`.
fn mlock_munlock(region: &MemRegion) {
    let addr = region.as_ptr().cast::<libc::c_void>().cast_const();
    let len = region.len();
    // SAFETY: `region` lies inside a live PinnedBuf allocation (mapped memory). mlock only
    // changes the residency of the range; it neither reads nor writes it.
    let rc = unsafe { libc::mlock(addr, len) };
    assert_eq!(rc, 0, "mlock: {}", std::io::Error::last_os_error());
    // SAFETY: as above; munlock only changes residency. No RSM handle pins these pages
    // during this bench, so unlocking them takes nothing away from anyone.
    let rc = unsafe { libc::munlock(addr, len) };
    assert_eq!(rc, 0, "munlock: {}", std::io::Error::last_os_error());
}

fn table_group(c: &mut Criterion, report: Option<&Report>, buf: &PinnedBuf, pages: usize) {
    let name = format!("localmem_table_{pages}p");
    let region = buf.subregion(0, pages * PAGE).expect("region");
    let node = Node::new(HostPlatform::without_mlock());
    let platform = HostPlatform::without_mlock();

    let create_free = || node.create_free(black_box(region.clone()));
    let pin_unpin = || platform.unpin(platform.pin(black_box(&region)).expect("pin"));

    let mut g = c.benchmark_group(&name);
    g.bench_function("create_free", |b| b.iter(create_free));
    g.bench_function("pin_unpin", |b| b.iter(pin_unpin));
    g.finish();
    assert_eq!(node.rsm.slots_in_use(), (0, 0, 0));

    let Some(r) = report else { return };
    let (Some(pair), Some(pin)) = (
        r.median_ns(&name, "create_free"),
        r.median_ns(&name, "pin_unpin"),
    ) else {
        return;
    };
    let (pair_il, pin_il) = interleaved(ROUNDS, batch_for(pair), create_free, pin_unpin);
    r.line(
        &name,
        &format!(
            "create+free {pair:.1} ns/pair (goal <= 100 ns) {}; of which bare page counting \
             (pin+unpin without mlock) {pin:.1} ns, RSM tables + checks {:.1} ns \
             [interleaved check: {pair_il:.1} ns/pair {}, pin+unpin {pin_il:.1} ns]",
            verdict(pair <= 100.0),
            pair - pin,
            verdict(pair_il <= 100.0),
        ),
    );
}

fn mlock_group(c: &mut Criterion, report: Option<&Report>, buf: &PinnedBuf, pages: usize) {
    let name = format!("localmem_mlock_{pages}p");
    let region = buf.subregion(0, pages * PAGE).expect("region");
    let node = Node::new(HostPlatform::new());

    let create_free = || node.create_free(black_box(region.clone()));
    let bare = || mlock_munlock(black_box(&region));

    let mut g = c.benchmark_group(&name);
    g.bench_function("create_free", |b| b.iter(create_free));
    g.bench_function("mlock_munlock", |b| b.iter(bare));
    g.finish();
    assert_eq!(node.rsm.slots_in_use(), (0, 0, 0));

    let Some(r) = report else { return };
    let (Some(pair), Some(sys)) = (
        r.median_ns(&name, "create_free"),
        r.median_ns(&name, "mlock_munlock"),
    ) else {
        return;
    };
    let ratio = pair / sys;
    let (pair_il, sys_il) = interleaved(ROUNDS, batch_for(pair), create_free, bare);
    let il = pair_il / sys_il;
    r.line(
        &name,
        &format!(
            "create+free {pair:.1} ns vs bare mlock+munlock {sys:.1} ns = {ratio:.3}x \
             (goal <= 1.1x) {}; overhead {:.1} ns/pair [interleaved check: {il:.3}x {}]",
            verdict(ratio <= 1.1),
            pair - sys,
            verdict(il <= 1.1),
        ),
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let report = Report::new("localmem");
    let buf = PinnedBuf::new(16 * PAGE).expect("allocate 16 pages");
    buf.fill(1);

    for pages in [1, 16] {
        table_group(&mut c, report.as_ref(), &buf, pages);
    }
    for pages in [1, 16] {
        mlock_group(&mut c, report.as_ref(), &buf, pages);
    }

    c.final_summary();
}
