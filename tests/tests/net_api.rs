//! The blocking RSMAPI on segments of another node (spec §4.4–§4.9 over the wire), with a
//! pump thread driving a simulated network: connect and its exporter-side errors, every
//! put/get width, vectors, barriers, events in both directions, poll descriptors, map,
//! disconnect, topology.

use rsm_core::proto::UNREACHABLE_AFTER_NS;
use rsm_core::{
    AccessEntry, Barrier, BarrierType, CreateFlags, ExportHandle, ImportHandle, IoVec, MapAttr,
    Permission, PollFd, RsmError, ScatGath, SegmentRef, SgFlags, SigpostFlags, Topology,
    POLLRDNORM,
};
use rsm_hal::fake::FakeRegion;
use rsm_hal::netsim::FaultConfig;
use rsm_tests::net::Pumped;
use rsm_tests::with_watchdog;
use std::time::Duration;

const SEG: u32 = 0x40_2001;
const LEN: usize = 3 * 4096;

fn lossy() -> FaultConfig {
    FaultConfig {
        drop_pct: 5.0,
        duplicate_pct: 2.0,
        corrupt_pct: 1.0,
        reorder_pct: 5.0,
        reorder_window: 3,
        delay_ns: 100_000,
        ..FaultConfig::default()
    }
}

/// Node 1 exports a published segment with `acl`; returns it and its memory.
fn export(p: &Pumped, acl: &[AccessEntry]) -> (ExportHandle, FakeRegion) {
    let n = p.node(1);
    let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
    let mem = n.platform().alloc(LEN);
    let seg = n
        .export_create(ctrl, mem.clone(), CreateFlags::empty())
        .unwrap();
    n.export_publish(seg, SEG, acl).unwrap();
    (seg, mem)
}

fn connect(p: &Pumped, perm: Permission) -> Result<ImportHandle, RsmError> {
    let n = p.node(0);
    let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
    n.import_connect(ctrl, 1, SEG, perm)
}

#[test]
fn blocking_put_get_every_width_and_vectors() {
    with_watchdog("remote put/get", Duration::from_secs(60), || {
        let p = Pumped::new(2, 11, lossy());
        let (_seg, mem) = export(&p, &[]);
        let imp = connect(&p, Permission::RDWR).unwrap();
        let n0 = p.node(0);
        let mut b = Barrier::default();
        n0.init_barrier(imp, BarrierType::SEGMENT, &mut b).unwrap();
        n0.open_barrier(&mut b).unwrap();
        // Bytes, longer than one engine operation (512) and one frame.
        let big: Vec<u8> = (0..3000).map(|i| (i * 13 % 256) as u8).collect();
        n0.put(imp, 100, &big).unwrap();
        let mut back = vec![0u8; 3000];
        n0.get(imp, 100, &mut back).unwrap();
        assert_eq!(back, big);
        // Every width, at aligned offsets.
        n0.put8(imp, 4000, &[1, 2, 3]).unwrap();
        n0.put16(imp, 4010, &[0x1234, 0x5678]).unwrap();
        n0.put32(imp, 4020, &[0xdead_beef]).unwrap();
        let words: Vec<u64> = (0..200).map(|i| i * 0x0101_0101_0101).collect();
        n0.put64(imp, 4096, &words).unwrap();
        let (mut b8, mut b16, mut b32, mut b64) = ([0u8; 3], [0u16; 2], [0u32; 1], vec![0u64; 200]);
        n0.get8(imp, 4000, &mut b8).unwrap();
        n0.get16(imp, 4010, &mut b16).unwrap();
        n0.get32(imp, 4020, &mut b32).unwrap();
        n0.get64(imp, 4096, &mut b64).unwrap();
        assert_eq!((b8, b16, b32), ([1, 2, 3], [0x1234, 0x5678], [0xdead_beef]));
        assert_eq!(b64, words);
        // The exporter's memory holds exactly that.
        let raw = p.node(1).platform().read(&mem, 4096, 8);
        assert_eq!(raw, words[0].to_ne_bytes());
        // Checks before the wire: alignment, range, permission.
        assert_eq!(n0.put16(imp, 4011, &[1]), Err(RsmError::BadMemAlignment));
        assert_eq!(
            n0.put(imp, LEN as i64 - 1, &[1, 2]),
            Err(RsmError::BadOffset)
        );
        n0.close_barrier(&mut b).unwrap();
        // A vector with a local handle and a VA entry, with implicit sigpost.
        let ctrl = n0.get_controller(Some("rsmnet0")).unwrap();
        let src = n0.platform().alloc(8192);
        let data: Vec<u8> = (0..8192).map(|i| (i % 199) as u8).collect();
        n0.platform().write(&src, 0, &data);
        let lh = n0.create_localmemory_handle(ctrl, src.clone()).unwrap();
        let iov = [
            IoVec::handle(lh, 0, 0, 5000),
            IoVec::va(&src, 5000, 6000, 3000),
        ];
        let mut sg = ScatGath::new(imp, &iov);
        sg.flags = SgFlags::IMPLICIT_SIGPOST;
        n0.putv(&mut sg).unwrap();
        assert_eq!(sg.io_residual_count, 0);
        let got = p.node(1).platform().read(&mem, 0, 5000);
        assert_eq!(got, data[..5000]);
        // The implicit sigpost rings the exporter once.
        let seg = _seg;
        p.node(1)
            .intr_signal_wait(SegmentRef::Export(seg), -1)
            .unwrap();
        // A vector with a bad entry moves nothing: residual = count.
        let bad = [IoVec::handle(lh, 0, 0, 10), IoVec::handle(lh, 0, LEN, 1)];
        let mut sg = ScatGath::new(imp, &bad);
        assert_eq!(n0.putv(&mut sg), Err(RsmError::BadOffset));
        assert_eq!(sg.io_residual_count, 2);
        // Read it back with getv into another buffer.
        let dst = n0.platform().alloc(8192);
        let iov = [
            IoVec::va(&dst, 0, 0, 5000),
            IoVec::va(&dst, 5000, 6000, 3000),
        ];
        let mut sg = ScatGath::new(imp, &iov);
        n0.getv(&mut sg).unwrap();
        assert_eq!(n0.platform().read(&dst, 0, 8000), data[..8000]);
        n0.free_localmemory_handle(ctrl, lh).unwrap();
        n0.destroy_barrier(&mut b).unwrap();
        n0.import_disconnect(imp).unwrap();
        // The engine tells the exporter, then frees the slot.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while n0.slots_in_use() != (0, 0, 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "import slot not freed"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

#[test]
fn connect_errors_come_from_the_exporter() {
    with_watchdog("remote connect errors", Duration::from_secs(60), || {
        let p = Pumped::new(3, 12, lossy());
        // Node 0 may read only; node 2 is not in the list.
        let acl = [AccessEntry {
            ae_node: 0,
            ae_permission: 0o444,
        }];
        let (seg, _) = export(&p, &acl);
        assert_eq!(connect(&p, Permission::RDWR), Err(RsmError::PermDenied));
        let imp = connect(&p, Permission::READ).unwrap();
        assert_eq!(p.node(0).put(imp, 0, &[1]), Err(RsmError::PermDenied));
        let n2 = p.node(2);
        let c2 = n2.get_controller(Some("rsmnet0")).unwrap();
        assert_eq!(
            n2.import_connect(c2, 1, SEG, Permission::READ),
            Err(RsmError::SegNotPublishedToNode)
        );
        assert_eq!(
            n2.import_connect(c2, 1, SEG + 1, Permission::READ),
            Err(RsmError::SegNotPublished)
        );
        // Checks made before anything is sent.
        let n0 = p.node(0);
        let c0 = n0.get_controller(Some("rsmnet0")).unwrap();
        let lo = n0.get_controller(None).unwrap();
        assert_eq!(
            n0.import_connect(c0, 1, SEG, Permission::from_bits_retain(0o700)),
            Err(RsmError::PermDenied)
        );
        assert_eq!(
            n0.import_connect(lo, 1, SEG, Permission::READ),
            Err(RsmError::CtlrNotPresent)
        );
        assert_eq!(
            n0.import_connect(c0, 64, SEG, Permission::READ),
            Err(RsmError::RemoteNodeUnreachable)
        );
        // A node that never answers: unreachable after the 5 s reply wait (simulated).
        let t0 = p.net.now();
        assert_eq!(
            n0.import_connect(c0, 9, SEG, Permission::READ),
            Err(RsmError::RemoteNodeUnreachable)
        );
        let waited = p.net.now().nanos_since(t0);
        // The engine starts the wait at the time the driver last gave it, which is up to
        // one pump step (1 ms) behind the network's clock read here.
        assert!(
            (UNREACHABLE_AFTER_NS - 1_000_000..UNREACHABLE_AFTER_NS + 1_000_000_000)
                .contains(&waited),
            "gave up after {waited} ns"
        );
        // Remote segments cannot be mapped (no shared MMU across nodes).
        assert_eq!(
            n0.import_map(imp, MapAttr::None, Permission::READ, 0, 4096, None),
            Err(RsmError::MapFailed)
        );
        // Unpublish: the import is force-disconnected; a barrier opened before reports it.
        let mut b = Barrier::default();
        n0.init_barrier(imp, BarrierType::SEGMENT, &mut b).unwrap();
        n0.open_barrier(&mut b).unwrap();
        let mut buf = [0u8; 4];
        n0.get(imp, 0, &mut buf).unwrap();
        p.node(1).export_unpublish(seg).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while n0.get(imp, 0, &mut buf) != Err(RsmError::ConnAborted) {
            assert!(std::time::Instant::now() < deadline, "no forced disconnect");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(n0.close_barrier(&mut b), Err(RsmError::ConnAborted));
        assert_eq!(
            n0.intr_signal_wait(SegmentRef::Import(imp), 0),
            Err(RsmError::ConnAborted)
        );
        n0.destroy_barrier(&mut b).unwrap();
        n0.import_disconnect(imp).unwrap();
    });
}

#[test]
fn events_both_ways_with_blocking_waits_and_poll() {
    with_watchdog("remote events", Duration::from_secs(60), || {
        let p = Pumped::new(2, 13, lossy());
        let (seg, _) = export(&p, &[]);
        let imp = connect(&p, Permission::RDWR).unwrap();
        let nodes = p.nodes.clone();
        // A waiter on the exporter, blocked until the importer posts.
        let waiter = {
            let n1 = nodes[1].clone();
            std::thread::spawn(move || n1.intr_signal_wait(SegmentRef::Export(seg), -1))
        };
        std::thread::sleep(Duration::from_millis(20));
        p.node(0)
            .intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
            .unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        // Exporter → importer, seen through a poll descriptor.
        let n0 = p.node(0);
        let fd = n0.get_pollfd(SegmentRef::Import(imp)).unwrap();
        for _ in 0..2 {
            p.node(1)
                .intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty())
                .unwrap();
        }
        let mut fds = [PollFd { revents: 0, ..fd }];
        let ready = n0.intr_signal_wait_pollfd(&mut fds, -1, |_, _| 0).unwrap();
        assert_eq!(ready, 1);
        assert_ne!(fds[0].revents & POLLRDNORM, 0);
        // Two posts, two events: the poll consumed one, one is left (or still on its way),
        // and no third comes.
        n0.intr_signal_wait(SegmentRef::Import(imp), -1).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            n0.intr_signal_wait(SegmentRef::Import(imp), 0),
            Err(RsmError::Timeout),
            "exactly two events"
        );
        // No accumulate: three posts while one is pending leave one.
        for _ in 0..3 {
            p.node(1)
                .intr_signal_post(SegmentRef::Export(seg), SigpostFlags::NO_ACCUMULATE)
                .unwrap();
        }
        // (All three arrive before anyone waits.)
        std::thread::sleep(Duration::from_millis(300));
        n0.intr_signal_wait(SegmentRef::Import(imp), -1).unwrap();
        assert_eq!(
            n0.intr_signal_wait(SegmentRef::Import(imp), 0),
            Err(RsmError::Timeout)
        );
        n0.release_pollfd(SegmentRef::Import(imp)).unwrap();
        // Topology: each node lists the other on rsmnet0.
        let t: Topology = n0.get_interconnect_topology().unwrap();
        let remote: Vec<u32> = t.controllers[0]
            .remote
            .iter()
            .map(|r| r.remote_nodeid)
            .collect();
        assert_eq!(remote, vec![1]);
        n0.import_disconnect(imp).unwrap();
    });
}

/// MT-safety over the wire: four threads of the importer run blocking putv/getv/put/get on
/// their own ranges of one remote segment while the exporter's application reads its memory
/// and posts bells; every round trip is byte-exact and nothing deadlocks.
#[test]
fn threads_share_a_remote_segment() {
    with_watchdog("remote threads", Duration::from_secs(120), || {
        let p = Pumped::new(2, 14, lossy());
        let (seg, _) = export(&p, &[]);
        let imp = connect(&p, Permission::RDWR).unwrap();
        // put/get without a barrier: explicit mode.
        p.node(0)
            .set_mode(imp, rsm_core::RSM_BARRIER_MODE_EXPLICIT)
            .unwrap();
        let mut workers = Vec::new();
        for t in 0..4usize {
            let n0 = p.nodes[0].clone();
            workers.push(std::thread::spawn(move || {
                let base = t * 3072;
                let src = n0.platform().alloc(4096);
                let dst = n0.platform().alloc(4096);
                for round in 0..30u8 {
                    let data: Vec<u8> = (0..3072).map(|i| (i as u8) ^ round ^ t as u8).collect();
                    n0.platform().write(&src, 0, &data);
                    let iov = [
                        IoVec::va(&src, 0, base, 1000),
                        IoVec::va(&src, 1000, base + 1000, 2072),
                    ];
                    let mut sg = ScatGath::new(imp, &iov);
                    n0.putv(&mut sg).unwrap();
                    let back = [IoVec::va(&dst, 0, base, 3072)];
                    let mut sg = ScatGath::new(imp, &back);
                    n0.getv(&mut sg).unwrap();
                    assert_eq!(
                        n0.platform().read(&dst, 0, 3072),
                        data,
                        "thread {t} round {round}"
                    );
                    let mut small = [0u8; 16];
                    n0.put(imp, base as i64, &[round; 16]).unwrap();
                    n0.get(imp, base as i64, &mut small).unwrap();
                    assert_eq!(small, [round; 16]);
                }
            }));
        }
        for _ in 0..50 {
            p.node(1)
                .intr_signal_post(SegmentRef::Export(seg), SigpostFlags::NO_ACCUMULATE)
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        for w in workers {
            w.join().unwrap();
        }
        p.node(0).import_disconnect(imp).unwrap();
    });
}

/// Targeted wake-ups (issue 9 §4): in driver-thread mode an exporter thread blocked in
/// `intr_signal_wait(-1)` while a peer streams 64 MiB into its segment is woken only for
/// what it waits for — at most (bells + 2) times — not once per frame. Counted as calls of
/// the exporter platform's `wake`.
#[test]
fn a_waiting_exporter_is_not_woken_by_a_put_stream() {
    with_watchdog("wake-ups", Duration::from_secs(300), || {
        const MIB: usize = 1 << 20;
        const BELLS: u64 = 3;
        let p = std::sync::Arc::new(Pumped::new(2, 31, FaultConfig::default()));
        let n1 = p.node(1);
        let ctrl = n1.get_controller(Some("rsmnet0")).unwrap();
        let mem = n1.platform().alloc(MIB);
        let seg = n1.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
        n1.export_publish(seg, SEG, &[]).unwrap();
        let imp = connect(&p, Permission::RDWR).unwrap();
        let n0 = p.node(0);
        let local = n0.platform().alloc(MIB);
        let c0 = n0.get_controller(Some("rsmnet0")).unwrap();
        let lh = n0.create_localmemory_handle(c0, local).unwrap();
        let before = n1.platform().wakes();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..BELLS {
                    p.node(1)
                        .intr_signal_wait(SegmentRef::Export(seg), -1)
                        .unwrap();
                }
            })
        };
        for k in 0..64u64 {
            let iov = [IoVec::handle(lh, 0, 0, MIB)];
            let mut sg = ScatGath::new(imp, &iov);
            n0.putv(&mut sg).unwrap();
            if k % 30 == 29 || k == 63 {
                n0.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
                    .unwrap();
            }
        }
        waiter.join().unwrap();
        let wakes = n1.platform().wakes() - before;
        println!("exporter woken {wakes} times for {BELLS} bells (64 MiB streamed)");
        assert!(
            wakes <= BELLS + 2,
            "the exporter was woken {wakes} times for {BELLS} bells"
        );
    });
}
