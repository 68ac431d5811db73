//! Memory ownership (issue 9 §1): memory named by an export segment, a local memory handle or a
//! pending transfer lives as long as they do, whatever the application drops — shown under the
//! fake platform's freed-memory detector (a copy into freed memory panics there) and on the
//! host with `MemRegion::owners`.
//!
//! The fake never reuses addresses, so its test helpers (`read`) can inspect an allocation
//! after the last owner dropped it; only the RSM layer's accesses are checked for liveness.

use rsm_core::{Completion, CreateFlags, IoVec, OpId, Permission, Rsm, ScatGath};
use rsm_hal::fake::{FakePlatform, FakeRegion};
use rsm_hal::netsim::FaultConfig;
use rsm_tests::net::Cluster;

const SEG: u32 = 0x40_0077;
const SEC: u64 = 1_000_000_000;
const LEN: usize = 3 * 4096;

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 251) as u8 ^ salt).collect()
}

/// Node 1 exports a published segment over memory it then drops; node 0 connects. Returns the
/// import, the export and an unowned view of the exported memory.
fn remote_setup(c: &mut Cluster) -> (rsm_core::ImportHandle, rsm_core::ExportHandle, FakeRegion) {
    let ex = c.node(1);
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let mem = ex.platform().alloc(LEN);
    ex.platform().write(&mem, 0, &pattern(LEN, 0x5A));
    let probe = mem.unowned();
    let seg = ex.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
    assert!(ex.platform().live(&probe), "the export keeps its memory");
    let ctrl0 = c.node(0).get_controller(Some("rsmnet0")).unwrap();
    let op = c
        .node(0)
        .start_import_connect(ctrl0, 1, SEG, Permission::RDWR)
        .unwrap();
    let mut got = None;
    assert!(c.run_until(5 * SEC, |c| {
        got = c.node(0).take_connect(op);
        got.is_some()
    }));
    (got.unwrap().unwrap(), seg, probe)
}

fn wait_op(c: &mut Cluster, node: u32, op: OpId) -> Completion {
    let mut got = None;
    assert!(c.run_until(10 * SEC, |c| {
        got = c.node(node).take_completion(op);
        got.is_some()
    }));
    got.unwrap()
}

/// A pending remote getv whose destination the application drops: the data lands in memory
/// the operation still owns (the detector stays silent), and the memory is freed once the
/// completion is taken.
#[test]
fn a_pending_remote_getv_keeps_its_dropped_destination_alive() {
    let mut c = Cluster::new(2, 9, FaultConfig::default());
    let (imp, _seg, _) = remote_setup(&mut c);
    let n0 = c.node(0);
    let dst = n0.platform().alloc(LEN);
    let probe = dst.unowned();
    let op = {
        let iov = [
            IoVec::va(&dst, 0, 0, 4096),
            IoVec::va(&dst, 4096, 8192, 4096),
            IoVec::va(&dst, 8192, 4096, 4096),
        ];
        n0.start_getv(&ScatGath::new(imp, &iov)).unwrap()
    };
    // The vector is gone, and the application's region with it: only the operation owns the
    // memory now.
    drop(dst);
    assert!(c.node(0).platform().live(&probe));
    let done = wait_op(&mut c, 0, op);
    assert_eq!(done.result, Ok(()));
    assert_eq!(done.residual, 0);
    let src = pattern(LEN, 0x5A);
    let got = c.node(0).platform().read(&probe, 0, LEN);
    assert_eq!(&got[..4096], &src[..4096]);
    assert_eq!(&got[4096..8192], &src[8192..]);
    assert_eq!(&got[8192..], &src[4096..8192]);
    // Completed and taken: the last owner is gone, the memory freed (no leak).
    assert!(!c.node(0).platform().live(&probe));
}

/// The detector is armed: memory freed at once (C's `free`) under a pending getv is caught
/// when the data arrives. (What safe Rust cannot do — it has no way to free memory a region
/// still owns — the fake's `free` does, to prove the check above can fail.)
#[test]
#[should_panic(expected = "freed memory")]
fn the_detector_catches_a_getv_into_memory_freed_underneath() {
    let mut c = Cluster::new(2, 10, FaultConfig::default());
    let (imp, _seg, _) = remote_setup(&mut c);
    let n0 = c.node(0);
    let dst = n0.platform().alloc(LEN);
    let iov = [IoVec::va(&dst, 0, 0, LEN)];
    let op = n0.start_getv(&ScatGath::new(imp, &iov)).unwrap();
    n0.platform().free(&dst);
    let _ = wait_op(&mut c, 0, op);
}

/// A remote putv whose source (a local memory handle and a VA region) the application
/// dropped, into an export whose memory the exporter dropped: both sides' memory lives while
/// the RSM layer names it, and goes when the handles are freed.
#[test]
fn handles_keep_dropped_memory_on_both_sides_until_freed() {
    let mut c = Cluster::new(2, 11, FaultConfig::default());
    let (imp, seg, seg_probe) = remote_setup(&mut c);
    let n0 = c.node(0);
    let ctrl = n0.get_controller(Some("rsmnet0")).unwrap();
    let (a, b) = (n0.platform().alloc(LEN), n0.platform().alloc(LEN));
    n0.platform().write(&a, 0, &pattern(LEN, 1));
    n0.platform().write(&b, 0, &pattern(LEN, 2));
    let (a_probe, b_probe) = (a.unowned(), b.unowned());
    let lh = n0.create_localmemory_handle(ctrl, a).unwrap();
    let op = {
        let iov = [IoVec::handle(lh, 0, 0, 4096), IoVec::va(&b, 0, 4096, 8192)];
        n0.start_putv(&ScatGath::new(imp, &iov)).unwrap()
    };
    drop(b);
    assert!(n0.platform().live(&a_probe), "the local handle owns `a`");
    assert!(n0.platform().live(&b_probe), "the pending putv owns `b`");
    let done = wait_op(&mut c, 0, op);
    assert_eq!(
        done,
        Completion {
            result: Ok(()),
            residual: 0
        }
    );
    assert!(!c.node(0).platform().live(&b_probe), "freed after the putv");
    assert!(
        c.node(0).platform().live(&a_probe),
        "still named by the handle"
    );
    let seg_now = c.node(1).platform().read(&seg_probe, 0, LEN);
    assert_eq!(&seg_now[..4096], &pattern(LEN, 1)[..4096]);
    assert_eq!(&seg_now[4096..], &pattern(LEN, 2)[..8192]);
    c.node(0).free_localmemory_handle(ctrl, lh).unwrap();
    assert!(
        !c.node(0).platform().live(&a_probe),
        "freed with the handle"
    );
    // The export: disconnect, unpublish and destroy free the exporter's memory.
    c.node(0).import_disconnect(imp).unwrap();
    c.run_for(SEC / 10);
    c.node(1).export_unpublish(seg).unwrap();
    assert!(c.node(1).platform().live(&seg_probe));
    c.node(1).export_destroy(seg).unwrap();
    assert!(
        !c.node(1).platform().live(&seg_probe),
        "freed with the export"
    );
}

/// The same on one node: a same-node putv between memory that only handles own.
#[test]
fn same_node_transfers_through_dropped_memory() {
    let node: Box<Rsm<FakePlatform>> =
        Box::new(Rsm::new(FakePlatform::new(), rsm_core::Config::DEFAULT));
    let ctrl = node.get_controller(None).unwrap();
    let seg_mem = node.platform().alloc(LEN);
    let seg_probe = seg_mem.unowned();
    let seg = node
        .export_create(ctrl, seg_mem, CreateFlags::empty())
        .unwrap();
    node.export_publish(seg, SEG, &[]).unwrap();
    let imp = node
        .import_connect(ctrl, node.node_id(), SEG, Permission::RDWR)
        .unwrap();
    let src = node.platform().alloc(LEN);
    node.platform().write(&src, 0, &pattern(LEN, 3));
    let src_probe = src.unowned();
    let lh = node.create_localmemory_handle(ctrl, src).unwrap();
    let mut sg = ScatGath::new(imp, &[]);
    let iov = [IoVec::handle(lh, 0, 0, LEN)];
    sg.io_request_count = 1;
    sg.iovec = Some(&iov);
    node.putv(&mut sg).unwrap();
    assert_eq!(node.platform().read(&seg_probe, 0, LEN), pattern(LEN, 3));
    node.free_localmemory_handle(ctrl, lh).unwrap();
    assert!(!node.platform().live(&src_probe));
    node.import_disconnect(imp).unwrap();
    node.export_unpublish(seg).unwrap();
    node.export_destroy(seg).unwrap();
    assert!(!node.platform().live(&seg_probe));
}

/// On the host: dropping the `PinnedBuf`s under an export and a local memory handle leaves
/// the memory to the RSM layer (counted by `MemRegion::owners`), byte-exact, until freed.
#[test]
fn host_buffers_dropped_under_handles() {
    use rsm_host::{HostPlatform, PinnedBuf};
    let node: Box<Rsm<HostPlatform>> = Box::new(Rsm::new(
        HostPlatform::without_mlock(),
        rsm_core::Config::DEFAULT,
    ));
    let ctrl = node.get_controller(None).unwrap();
    let seg_buf = PinnedBuf::new(LEN).unwrap();
    let seg_probe = seg_buf.region();
    let seg = node
        .export_create(ctrl, seg_buf.region(), CreateFlags::empty())
        .unwrap();
    drop(seg_buf);
    assert_eq!(seg_probe.owners(), 2, "the probe and the export");
    node.export_publish(seg, SEG, &[]).unwrap();
    let imp = node
        .import_connect(ctrl, node.node_id(), SEG, Permission::RDWR)
        .unwrap();
    let src = PinnedBuf::new(LEN).unwrap();
    src.write(0, &pattern(LEN, 4)).unwrap();
    let src_probe = src.region();
    let lh = node.create_localmemory_handle(ctrl, src.region()).unwrap();
    let va = PinnedBuf::new(4096).unwrap();
    va.write(0, &pattern(4096, 5)).unwrap();
    let va_region = va.region();
    drop((src, va));
    assert_eq!(src_probe.owners(), 2, "the probe and the handle");
    let iov = [
        IoVec::handle(lh, 0, 0, 8192),
        IoVec::va(&va_region, 0, 8192, 4096),
    ];
    node.putv(&mut ScatGath::new(imp, &iov)).unwrap();
    assert_eq!(va_region.owners(), 1, "the transfer kept no share");
    let mut want = pattern(LEN, 4)[..8192].to_vec();
    want.extend_from_slice(&pattern(4096, 5));
    assert_eq!(seg_probe.to_vec(), want);
    node.free_localmemory_handle(ctrl, lh).unwrap();
    assert_eq!(src_probe.owners(), 1, "freed by the handle");
    node.import_disconnect(imp).unwrap();
    node.export_unpublish(seg).unwrap();
    node.export_destroy(seg).unwrap();
    assert_eq!(seg_probe.owners(), 1, "freed by the export");
}
