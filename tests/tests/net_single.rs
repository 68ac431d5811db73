//! Progress on one core (issue 9 §4): every blocking call of the API on segments of other
//! nodes, made from one thread with no driver thread. Each node drives its attached link
//! ([`rsm_core::Rsm::attach_link`]) while it waits, and the test platform's wait steps the
//! other nodes and the simulated clock ([`rsm_tests::net::SimPlatform`]). The same calls
//! with a driver thread are covered by `net_api.rs`.

use rsm_core::proto::UNREACHABLE_AFTER_NS;
use rsm_core::{
    Barrier, BarrierType, CreateFlags, IoVec, Permission, PollFd, RsmError, ScatGath, SegmentRef,
    SgFlags, SigpostFlags, POLLRDNORM,
};
use rsm_hal::netsim::FaultConfig;
use rsm_tests::net::Solo;
use rsm_tests::with_watchdog;
use std::time::Duration;

const SEG: u32 = 0x40_3001;
const LEN: usize = 3 * 4096;

fn lossy() -> FaultConfig {
    FaultConfig {
        drop_pct: 5.0,
        duplicate_pct: 2.0,
        reorder_pct: 5.0,
        reorder_window: 3,
        delay_ns: 100_000,
        ..FaultConfig::default()
    }
}

#[test]
fn every_blocking_call_progresses_on_one_thread() {
    with_watchdog("one thread, three nodes", Duration::from_secs(120), || {
        let c = Solo::new(3, 41, lossy());
        let (n0, n1, n2) = (c.node(0), c.node(1), c.node(2));
        let ctrl1 = n1.get_controller(Some("rsmnet0")).unwrap();
        let mem = n1.platform().alloc(LEN);
        let seg = n1
            .export_create(ctrl1, mem.clone(), CreateFlags::empty())
            .unwrap();
        n1.export_publish(seg, SEG, &[]).unwrap();
        // Connect (waits for the exporter's reply), from two nodes.
        let ctrl0 = n0.get_controller(Some("rsmnet0")).unwrap();
        let imp = n0.import_connect(ctrl0, 1, SEG, Permission::RDWR).unwrap();
        let ctrl2 = n2.get_controller(Some("rsmnet0")).unwrap();
        let imp2 = n2.import_connect(ctrl2, 1, SEG, Permission::READ).unwrap();
        // put/get of every width, inside a barrier.
        let mut b = Barrier::default();
        n0.init_barrier(imp, BarrierType::SEGMENT, &mut b).unwrap();
        n0.open_barrier(&mut b).unwrap();
        let big: Vec<u8> = (0..3000).map(|i| (i * 7 % 251) as u8).collect();
        n0.put(imp, 100, &big).unwrap();
        let mut back = vec![0u8; 3000];
        n0.get(imp, 100, &mut back).unwrap();
        assert_eq!(back, big);
        n0.put16(imp, 4010, &[0x1234, 0x5678]).unwrap();
        n0.put32(imp, 4020, &[0xdead_beef]).unwrap();
        n0.put64(imp, 4096, &[0x0102_0304_0506_0708]).unwrap();
        let (mut b16, mut b32, mut b64) = ([0u16; 2], [0u32; 1], [0u64; 1]);
        n0.get16(imp, 4010, &mut b16).unwrap();
        n0.get32(imp, 4020, &mut b32).unwrap();
        n0.get64(imp, 4096, &mut b64).unwrap();
        assert_eq!(
            (b16, b32, b64),
            ([0x1234, 0x5678], [0xdead_beef], [0x0102_0304_0506_0708])
        );
        n0.close_barrier(&mut b).unwrap();
        n0.destroy_barrier(&mut b).unwrap();
        // putv with an implicit sigpost (waits for the answer to its bell), then getv.
        let src = n0.platform().alloc(8192);
        let data: Vec<u8> = (0..8192).map(|i| (i % 197) as u8).collect();
        n0.platform().write(&src, 0, &data);
        let lh = n0.create_localmemory_handle(ctrl0, src.clone()).unwrap();
        let iov = [
            IoVec::handle(lh, 0, 0, 5000),
            IoVec::va(&src, 5000, 6000, 3000),
        ];
        let mut sg = ScatGath::new(imp, &iov);
        sg.flags = SgFlags::IMPLICIT_SIGPOST;
        n0.putv(&mut sg).unwrap();
        assert_eq!(sg.io_residual_count, 0);
        assert_eq!(n1.platform().read(&mem, 0, 5000), data[..5000]);
        assert_eq!(
            n1.export_pending_events(seg),
            Ok(1),
            "the bell was answered"
        );
        n1.intr_signal_wait(SegmentRef::Export(seg), 0).unwrap();
        let dst = n2.platform().alloc(8192);
        let iov = [
            IoVec::va(&dst, 0, 0, 5000),
            IoVec::va(&dst, 5000, 6000, 3000),
        ];
        let mut sg = ScatGath::new(imp2, &iov);
        n2.getv(&mut sg).unwrap();
        assert_eq!(n2.platform().read(&dst, 0, 8000), data[..8000]);
        // Posts both ways; a wait with no timeout that needs the others driven: the bell of
        // node 0 is only started, node 1's wait moves it.
        n0.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
            .unwrap();
        n1.intr_signal_wait(SegmentRef::Export(seg), -1).unwrap();
        let op = n0
            .start_intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
            .unwrap();
        n1.intr_signal_wait(SegmentRef::Export(seg), -1).unwrap();
        let done = n0.take_completion(op);
        // (The answer may still be on its way: drive until it is in.)
        let done = done.or_else(|| {
            c.run_for(100_000_000);
            n0.take_completion(op)
        });
        assert_eq!(done.map(|d| d.result), Some(Ok(())));
        n1.intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty())
            .unwrap();
        let fd = n2.get_pollfd(SegmentRef::Import(imp2)).unwrap();
        let mut fds = [PollFd { revents: 0, ..fd }];
        assert_eq!(n2.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0), Ok(1));
        assert_eq!(fds[0].revents & POLLRDNORM, POLLRDNORM);
        n2.release_pollfd(SegmentRef::Import(imp2)).unwrap();
        n0.intr_signal_wait(SegmentRef::Import(imp), -1).unwrap();
        // A wait with a timeout passes simulated time and gives up.
        let t0 = c.net.now();
        assert_eq!(
            n0.intr_signal_wait(SegmentRef::Import(imp), 300),
            Err(RsmError::Timeout)
        );
        assert!(c.net.now().nanos_since(t0) >= 300_000_000);
        // A connect to a node that never answers gives up after the 5 s reply wait.
        let t0 = c.net.now();
        assert_eq!(
            n0.import_connect(ctrl0, 9, SEG, Permission::READ),
            Err(RsmError::RemoteNodeUnreachable)
        );
        assert!(c.net.now().nanos_since(t0) >= UNREACHABLE_AFTER_NS - 1_000_000);
        // Disconnect, unpublish and destroy with remote importers.
        n0.free_localmemory_handle(ctrl0, lh).unwrap();
        n0.import_disconnect(imp).unwrap();
        n1.export_unpublish(seg).unwrap();
        assert_eq!(
            n2.intr_signal_post(SegmentRef::Import(imp2), SigpostFlags::empty()),
            Err(RsmError::ConnAborted)
        );
        n2.import_disconnect(imp2).unwrap();
        n1.export_destroy(seg).unwrap();
        assert_eq!(c.node(0).net_stats().rejected, 0);
    });
}
