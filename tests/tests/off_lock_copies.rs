//! No memory copy runs under the node's table lock (issue 9 §2): each copy below is stopped
//! by the fake platform's `CopyGate` until another thread's call on the *same* node — one
//! that takes the table lock — has returned. Were the copy made under the lock, that call
//! would spin until the gate's 2 s deadline, which the gate records as a failure.
//!
//! Covered: the same-node putv; a remote put applied at the exporter; a get answer read at
//! the exporter; a getv's data written at the importer; a putv's data read at the importer.

use rsm_core::{Completion, CreateFlags, ImportHandle, IoVec, OpId, Permission, Rsm, ScatGath};
use rsm_hal::fake::{CopyGate, FakePlatform};
use rsm_hal::netsim::FaultConfig;
use rsm_tests::net::{Node, Pumped};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEG: u32 = 0x40_0099;
const LEN: usize = 8192;

/// Stop the next copy of `node`'s platform, run `start` (which must lead to that copy, on
/// another thread), then — while the copy waits — make a call on `node` that takes its table
/// lock, and release the copy. Asserts the copy was stopped and never timed out.
fn with_stopped_copy<P>(gate: &CopyGate, node: &Rsm<P>, start: impl FnOnce())
where
    P: rsm_hal::Platform,
{
    gate.arm();
    start();
    assert!(
        gate.wait_entered(Duration::from_secs(10)),
        "the expected copy never ran"
    );
    let t = Instant::now();
    // Takes the table lock: returns at once only if the copy does not hold it.
    let _ = node.slots_in_use();
    let _ = node.poll_timeout();
    let took = t.elapsed();
    gate.release();
    assert!(!gate.timed_out(), "a copy ran under the table lock");
    assert!(took < CopyGate::DEADLINE, "the lock was held for {took:?}");
}

#[test]
fn same_node_putv_copies_outside_the_lock() {
    let node: Arc<Rsm<FakePlatform>> =
        Arc::new(Rsm::new(FakePlatform::new(), rsm_core::Config::DEFAULT));
    let ctrl = node.get_controller(None).unwrap();
    let mem = node.platform().alloc(LEN);
    let probe = mem.clone();
    let seg = node.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
    node.export_publish(seg, SEG, &[]).unwrap();
    let imp = node
        .import_connect(ctrl, node.node_id(), SEG, Permission::RDWR)
        .unwrap();
    let src = node.platform().alloc(LEN);
    node.platform().write(&src, 0, b"same node, no lock");
    let gate = CopyGate::new();
    node.platform().set_copy_gate(Some(gate.clone()));
    let mut worker = None;
    with_stopped_copy(&gate, &node, || {
        let (node, src) = (node.clone(), src.clone());
        worker = Some(std::thread::spawn(move || {
            let iov = [IoVec::va(&src, 0, 64, 18)];
            node.putv(&mut ScatGath::new(imp, &iov))
        }));
    });
    assert_eq!(worker.unwrap().join().unwrap(), Ok(()));
    assert_eq!(node.platform().read(&probe, 64, 18), b"same node, no lock");
}

/// Node 1 exports and publishes `LEN` bytes; node 0 connects. Returns the import and the
/// exported memory.
fn remote(c: &Pumped) -> (ImportHandle, rsm_hal::fake::FakeRegion) {
    let ex = c.node(1);
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let mem = ex.platform().alloc(LEN);
    ex.platform().write(&mem, 0, &[0x77; LEN]);
    let seg = ex
        .export_create(ctrl, mem.clone(), CreateFlags::empty())
        .unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
    let ctrl0 = c.node(0).get_controller(Some("rsmnet0")).unwrap();
    let imp = c
        .node(0)
        .import_connect(ctrl0, 1, SEG, Permission::RDWR)
        .unwrap();
    (imp, mem)
}

fn wait_op(node: &Node, op: OpId) -> Completion {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(c) = node.take_completion(op) {
            return c;
        }
        assert!(Instant::now() < end, "operation never completed");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn remote_put_and_get_copy_outside_the_lock_on_both_ends() {
    let c = Pumped::new(2, 21, FaultConfig::default());
    let (imp, seg_mem) = remote(&c);
    let (im, ex) = (c.node(0), c.node(1));
    let local = im.platform().alloc(LEN);
    im.platform().write(&local, 0, b"remote bytes");
    let (ex_gate, im_gate) = (CopyGate::new(), CopyGate::new());
    ex.platform().set_copy_gate(Some(ex_gate.clone()));
    im.platform().set_copy_gate(Some(im_gate.clone()));

    // A putv: the importer reads its memory into the frame (its gate), then the exporter
    // writes the fragment into the segment (its gate).
    let iov = [IoVec::va(&local, 0, 100, 12)];
    let sg = ScatGath::new(imp, &iov);
    let mut op = None;
    ex_gate.arm();
    with_stopped_copy(&im_gate, im, || op = Some(im.start_putv(&sg).unwrap()));
    assert!(
        ex_gate.wait_entered(Duration::from_secs(10)),
        "no write at the exporter"
    );
    let _ = ex.slots_in_use();
    ex_gate.release();
    assert!(
        !ex_gate.timed_out(),
        "the exporter wrote under its table lock"
    );
    assert_eq!(wait_op(im, op.unwrap()).result, Ok(()));
    assert_eq!(ex.platform().read(&seg_mem, 100, 12), b"remote bytes");

    // A getv: the exporter reads the answer into the frame (its gate), then the importer
    // writes it into its memory (its gate).
    let back = im.platform().alloc(LEN);
    let iov = [IoVec::va(&back, 0, 100, 12)];
    let sg = ScatGath::new(imp, &iov);
    let mut op = None;
    im_gate.arm();
    with_stopped_copy(&ex_gate, ex, || op = Some(im.start_getv(&sg).unwrap()));
    assert!(
        im_gate.wait_entered(Duration::from_secs(10)),
        "no write at the importer"
    );
    let _ = im.slots_in_use();
    im_gate.release();
    assert!(
        !im_gate.timed_out(),
        "the importer wrote under its table lock"
    );
    assert_eq!(wait_op(im, op.unwrap()).result, Ok(()));
    assert_eq!(im.platform().read(&back, 0, 12), b"remote bytes");
}
