//! A node in a `static`, built by the `const` constructor (issue 9 §6): no stack temporary
//! of its size (about 150 KB) ever exists, so it is used here from a thread with a 32 KiB
//! stack — what a unikernel or firmware gets.

use rsm_core::{
    Barrier, BarrierType, Config, CreateFlags, Permission, Rsm, SegmentRef, SigpostFlags,
};
use rsm_hal::fake::FakePlatform;

static NODE: Rsm<FakePlatform> = Rsm::new(
    FakePlatform::new(),
    Config {
        node_id: 5,
        ..Config::DEFAULT
    },
);

#[test]
fn a_static_node_from_the_const_constructor_works_on_a_32_kib_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(32 * 1024)
        .spawn(|| {
            let n = &NODE;
            assert_eq!(n.node_id(), 5);
            assert!(
                std::mem::size_of_val(n) > 100 * 1024,
                "a node far larger than the stack"
            );
            let ctrl = n.get_controller(None).unwrap();
            let mem = n.platform().alloc(8192);
            let seg = n.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
            let id = n.export_publish(seg, 0, &[]).unwrap();
            let imp = n.import_connect(ctrl, 5, id, Permission::RDWR).unwrap();
            let mut b = Barrier::default();
            n.init_barrier(imp, BarrierType::SEGMENT, &mut b).unwrap();
            n.open_barrier(&mut b).unwrap();
            n.put(imp, 100, b"static node").unwrap();
            let mut back = [0u8; 11];
            n.get(imp, 100, &mut back).unwrap();
            n.close_barrier(&mut b).unwrap();
            n.destroy_barrier(&mut b).unwrap();
            assert_eq!(&back, b"static node");
            n.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
                .unwrap();
            n.intr_signal_wait(SegmentRef::Export(seg), 0).unwrap();
            n.import_disconnect(imp).unwrap();
            n.export_unpublish(seg).unwrap();
            n.export_destroy(seg).unwrap();
            n.release_controller(ctrl).unwrap();
        })
        .unwrap();
    worker.join().expect("the node works on a 32 KiB stack");
}
