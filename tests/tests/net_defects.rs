//! Regression tests for the correctness defects of issue 9 §5, each written to fail on the
//! code before its fix: entries of 4 GiB and more, a frame that can no longer be rendered,
//! post order of `RSM_SIGPOST_NO_ACCUMULATE`, every node id reachable, the heartbeat of idle
//! imports, and acknowledged bells.

use rsm_core::{CreateFlags, ImportHandle, IoVec, OpId, Permission, RsmError, ScatGath};
use rsm_hal::fake::FakeRegion;
use rsm_hal::netsim::FaultConfig;
use rsm_tests::net::Cluster;

const SEG: u32 = 0x40_0001;
const SEC: u64 = 1_000_000_000;
const GIB: usize = 1 << 30;

/// Node 1 exports `mem` as a published segment; node 0 connects to it (read+write).
fn connect(c: &mut Cluster, mem: FakeRegion) -> (ImportHandle, rsm_core::ExportHandle) {
    let ex = c.node(1);
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let seg = ex.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
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
    (got.unwrap().unwrap(), seg)
}

fn wait_op(c: &mut Cluster, node: u32, op: OpId, limit_ns: u64) -> Option<rsm_core::Completion> {
    let mut got = None;
    c.run_until(limit_ns, |c| {
        got = c.node(node).take_completion(op);
        got.is_some()
    });
    got
}

/// The wire carries an entry's length and fragment offsets in 32 bits: an entry of 4 GiB or
/// more on a remote segment is refused with `RSMERR_BAD_LENGTH` before anything is sent
/// (it used to be truncated to its low 32 bits). Entries just below the limit pass the
/// check; the channel stays usable.
#[test]
fn remote_entries_of_4_gib_or_more_are_refused_not_truncated() {
    let mut c = Cluster::new(2, 1, FaultConfig::default());
    // 5 GiB of exported address space with no memory behind it: nothing may touch it.
    let big = c.node(1).platform().reserve(5 * GIB);
    let (imp, _seg) = connect(&mut c, big);
    let local = c.node(0).platform().reserve(5 * GIB);
    let len = (4 * GIB) as u64;
    for (dir, l) in [
        ("put", len),
        ("put", len + 8),
        ("get", len),
        ("get", 4 * len),
    ] {
        let l = l.min(5 * GIB as u64) as usize;
        let iov = [
            IoVec::va(&local, 0, 0, 8),
            IoVec::va(&local, 0, 0, l),
            IoVec::va(&local, 0, 0, 8),
        ];
        let sg = ScatGath::new(imp, &iov);
        let op = if dir == "put" {
            c.node(0).start_putv(&sg)
        } else {
            c.node(0).start_getv(&sg)
        }
        .unwrap();
        let done = c.node(0).take_completion(op).expect("refused at once");
        assert_eq!(done.result, Err(RsmError::BadLength), "{dir} of {l} bytes");
        assert_eq!(done.residual, 3, "{dir}: nothing was started");
    }
    // The channel still works: a small put and get of real memory round-trip.
    let mem = c.node(0).platform().alloc(4096);
    c.node(0).platform().write(&mem, 0, b"still alive");
    let seg2 = {
        let ex = c.node(1);
        let m = ex.platform().alloc(4096);
        let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
        let s = ex.export_create(ctrl, m, CreateFlags::empty()).unwrap();
        ex.export_publish(s, SEG + 1, &[]).unwrap();
        s
    };
    let _ = seg2;
    let ctrl0 = c.node(0).get_controller(Some("rsmnet0")).unwrap();
    let op = c
        .node(0)
        .start_import_connect(ctrl0, 1, SEG + 1, Permission::RDWR)
        .unwrap();
    let mut got = None;
    assert!(c.run_until(5 * SEC, |c| {
        got = c.node(0).take_connect(op);
        got.is_some()
    }));
    let imp2 = got.unwrap().unwrap();
    let iov = [IoVec::va(&mem, 0, 0, 11)];
    let op = c.node(0).start_putv(&ScatGath::new(imp2, &iov)).unwrap();
    let done = wait_op(&mut c, 0, op, SEC).expect("completes");
    assert_eq!(done.result, Ok(()));
}

/// Node 0 puts (`put`) or gets 64 KiB while one side (`shrink`) restarts its engine with the
/// smallest frame size: messages already in flight were cut for the larger frames and can no
/// longer be rendered. That fails the operation (`RSMERR_INSUFFICIENT_RESOURCES`) or lets it
/// finish — but within a second, never wedging the channel (it used to stall until the peer
/// was declared unreachable) — and the next vector of the same size round-trips.
fn shrink_frames_mid_transfer(put: bool, shrink: u32) {
    // 1 ms each way, so that frames are in flight when the frame size changes.
    let faults = FaultConfig {
        delay_ns: 1_000_000,
        ..FaultConfig::default()
    };
    let mut c = Cluster::new(2, 7, faults);
    let seg_mem = c.node(1).platform().alloc(65536);
    let (imp, _seg) = connect(&mut c, seg_mem.clone());
    let src = c.node(0).platform().alloc(65536);
    let data: Vec<u8> = (0..65536).map(|i| (i * 13 % 251) as u8).collect();
    c.node(0).platform().write(&src, 0, &data);
    c.node(1).platform().write(&seg_mem, 0, &data);
    let run = |c: &mut Cluster, shrink_now: bool| {
        let iov = [IoVec::va(&src, 0, 0, 65536)];
        let sg = ScatGath::new(imp, &iov);
        let op = if put {
            c.node(0).start_putv(&sg)
        } else {
            c.node(0).start_getv(&sg)
        }
        .unwrap();
        if shrink_now {
            // Lose 2 ms of frames, so that some cut for the large frames must go again.
            c.run_for(3_000_000);
            let faults = c.net.faults();
            c.net.set_faults(FaultConfig {
                drop_pct: 100.0,
                ..faults
            });
            c.run_for(2_000_000);
            c.net.set_faults(faults);
            let now = c.now();
            c.node(shrink).net_start(
                now,
                rsm_core::proto::NetConfig {
                    incarnation: 1,
                    max_frame: usize::from(rsm_core::wire::MIN_MAX_FRAME),
                },
            );
        }
        wait_op(c, 0, op, SEC)
    };
    let t0 = c.now();
    let first = run(&mut c, true).expect("the interrupted vector ends within 1 s");
    eprintln!(
        "first: {first:?} after {} ns; {:?}",
        c.now().nanos_since(t0),
        c.stats()
    );
    assert!(
        matches!(first.result, Ok(()) | Err(RsmError::InsufficientResources)),
        "{first:?}"
    );
    let again = run(&mut c, false).expect("the next vector completes within 1 s");
    assert_eq!(again.result, Ok(()));
    assert_eq!(again.residual, 0);
    let (a, b) = (
        c.node(0).platform().read(&src, 0, 65536),
        c.node(1).platform().read(&seg_mem, 0, 65536),
    );
    assert!(a == data && b == data, "both copies hold the data");
}

#[test]
fn smaller_frames_mid_put_at_the_importer_do_not_wedge_the_channel() {
    shrink_frames_mid_transfer(true, 0);
}

#[test]
fn smaller_frames_mid_get_at_the_exporter_do_not_wedge_the_channel() {
    shrink_frames_mid_transfer(false, 1);
}

/// A transmit buffer of exactly the configured frame size works (1514 bytes: a standard
/// Ethernet frame); a shorter one is an error, not silence, and loses nothing.
#[test]
fn poll_transmit_takes_a_frame_sized_buffer_and_refuses_a_shorter_one() {
    use rsm_core::proto::NetConfig;
    use rsm_hal::Instant;
    let node = rsm_tests::net::Node::new(
        rsm_hal::fake::FakePlatform::new(),
        rsm_core::Config {
            node_id: 3,
            ..rsm_core::Config::default()
        },
    );
    node.net_start(
        Instant(0),
        NetConfig {
            incarnation: 1,
            max_frame: 1514,
        },
    );
    let mut short = [0u8; 1000];
    assert_eq!(
        node.poll_transmit(Instant(0), &mut short),
        Err(RsmError::BadLength)
    );
    let mut buf = [0u8; 1514];
    let n = node
        .poll_transmit(Instant(0), &mut buf)
        .expect("a 1514-byte buffer is enough")
        .expect("the first hello is due");
    let (h, m) = rsm_core::wire::parse(&buf[..n]).expect("a valid frame");
    assert_eq!(h.src_node, 3);
    assert!(matches!(m, rsm_core::wire::Message::Hello(_)), "{m:?}");
    assert_eq!(node.poll_transmit(Instant(0), &mut buf), Ok(None));
}

/// Consume every pending event of `seg` on `node`; returns how many there were.
fn drain(c: &Cluster, node: u32, seg: rsm_core::SegmentRef) -> u32 {
    let mut n = 0;
    while c.node(node).intr_signal_wait(seg, 0).is_ok() {
        n += 1;
        assert!(n < 1000, "runaway events");
    }
    n
}

/// Every sequence of 1 to 6 posts, each accumulating or `RSM_SIGPOST_NO_ACCUMULATE`, gives the
/// target the same number of events through a same-node import as through a remote one — in
/// both directions (importer → exporter, exporter → importers). It used to differ: the remote
/// path sent every accumulating bell first, so NO_ACCUMULATE then normal on an exporter with
/// nothing pending gave 2 events on one node but 1 remotely.
#[test]
fn post_order_of_no_accumulate_is_kept_remotely() {
    use rsm_core::{SegmentRef, SigpostFlags};
    let mut c = Cluster::new(2, 3, FaultConfig::default());
    let mem = c.node(1).platform().alloc(4096);
    let (remote, seg) = connect(&mut c, mem);
    // Node 1's own import of the same segment: the same-node path.
    let ctrl1 = c.node(1).get_controller(Some("rsmnet0")).unwrap();
    let op = c
        .node(1)
        .start_import_connect(ctrl1, 1, SEG, Permission::RDWR)
        .unwrap();
    let local = c.node(1).take_connect(op).expect("at once").unwrap();
    let flag = |na: bool| {
        if na {
            SigpostFlags::NO_ACCUMULATE
        } else {
            SigpostFlags::empty()
        }
    };
    let mut cases = 0;
    for len in 1..=6u32 {
        for bits in 0..(1u32 << len) {
            let posts: Vec<bool> = (0..len).map(|k| bits >> k & 1 == 1).collect();
            // Importer → exporter.
            for &na in &posts {
                c.node(1)
                    .intr_signal_post(SegmentRef::Import(local), flag(na))
                    .unwrap();
            }
            let same = drain(&c, 1, SegmentRef::Export(seg));
            let ops: Vec<OpId> = posts
                .iter()
                .map(|&na| {
                    c.node(0)
                        .start_intr_signal_post(SegmentRef::Import(remote), flag(na))
                        .unwrap()
                })
                .collect();
            c.run_for(SEC / 100);
            for op in ops {
                let done = c.node(0).take_completion(op).expect("post answered");
                assert_eq!(done.result, Ok(()));
            }
            let far = drain(&c, 1, SegmentRef::Export(seg));
            assert_eq!(
                far, same,
                "importer -> exporter, posts {posts:?} (true = NA)"
            );
            // Exporter → importers: one post rings node 1's import and node 0's.
            for &na in &posts {
                c.node(1)
                    .intr_signal_post(SegmentRef::Export(seg), flag(na))
                    .unwrap();
            }
            c.run_for(SEC / 100);
            let same = drain(&c, 1, SegmentRef::Import(local));
            let far = drain(&c, 0, SegmentRef::Import(remote));
            assert_eq!(
                far, same,
                "exporter -> importer, posts {posts:?} (true = NA)"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 126);
}

/// Every node id is reachable at default capacity: in a 64-node cluster (every id 0..=63)
/// all 63 other nodes connect to one exporter at once, write their own 8 bytes with a put and
/// read them back with a get. With 16 peer slots it used to fail: the broadcast hellos alone
/// filled the exporter's table and the 17th node was unreachable for good.
#[test]
fn every_node_id_reaches_one_exporter_in_a_64_node_cluster() {
    const N: u32 = rsm_core::MAX_NODES;
    let mut c = Cluster::new(N, 9, FaultConfig::default());
    let mem = c.node(0).platform().alloc(4096);
    let ex = c.node(0);
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let seg = ex
        .export_create(ctrl, mem.clone(), CreateFlags::empty())
        .unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
    // Let every hello go round first (each node then knows all 63 others).
    c.run_for(2 * SEC);
    let mut pending: Vec<(u32, OpId)> = (1..N)
        .map(|k| {
            let n = c.node(k);
            let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
            (
                k,
                n.start_import_connect(ctrl, 0, SEG, Permission::RDWR)
                    .unwrap(),
            )
        })
        .collect();
    let mut imports = vec![None; N as usize];
    assert!(c.run_until(5 * SEC, |c| {
        pending.retain(|&(k, op)| match c.node(k).take_connect(op) {
            Some(r) => {
                imports[k as usize] = Some(r);
                false
            }
            None => true,
        });
        pending.is_empty()
    }));
    let imports: Vec<(u32, ImportHandle)> = (1..N)
        .map(|k| {
            let r = imports[k as usize].expect("connect finished");
            (k, r.unwrap_or_else(|e| panic!("node {k}: connect {e:?}")))
        })
        .collect();
    let bytes = |k: u32| (u64::from(k) * 0x0101_0101_0101_0101).to_le_bytes();
    let mut puts: Vec<(u32, OpId)> = imports
        .iter()
        .map(|&(k, imp)| {
            (
                k,
                c.node(k).start_put(imp, 8 * k as usize, &bytes(k)).unwrap(),
            )
        })
        .collect();
    assert!(c.run_until(5 * SEC, |c| {
        puts.retain(|&(k, op)| match c.node(k).take_completion(op) {
            Some(done) => {
                assert_eq!(done.result, Ok(()), "node {k}: put");
                false
            }
            None => true,
        });
        puts.is_empty()
    }));
    let m = c.node(0).platform().read(&mem, 0, 8 * N as usize);
    for k in 1..N {
        assert_eq!(
            m[8 * k as usize..][..8],
            bytes(k),
            "node {k}'s bytes at the exporter"
        );
    }
    let mut gets: Vec<(u32, OpId)> = imports
        .iter()
        .map(|&(k, imp)| (k, c.node(k).start_get(imp, 8 * k as usize, 8).unwrap()))
        .collect();
    assert!(c.run_until(5 * SEC, |c| {
        gets.retain(|&(k, op)| {
            let mut got = [0u8; 8];
            match c.node(k).take_get(op, &mut got) {
                Some(done) => {
                    assert_eq!(done.result, Ok(()), "node {k}: get");
                    assert_eq!(got, bytes(k), "node {k}: bytes read back");
                    false
                }
                None => true,
            }
        });
        gets.is_empty()
    }));
    for k in 0..N {
        assert_eq!(
            c.node(k).net_peers().len(),
            N as usize - 1,
            "node {k} knows every peer"
        );
    }
    assert_eq!(c.stats().rejected, 0);
}

/// An idle import (nothing in flight) notices that its exporter died: with the heartbeat,
/// 5 s of silence make the exporter unreachable, the import is aborted and a wait on it
/// with no timeout ends with `RSMERR_CONN_ABORTED` — within 5 s plus one heartbeat
/// interval (and some scheduling slack) of simulated time after the crash. Without the
/// heartbeat the wait blocked for ever.
#[test]
fn an_idle_import_notices_its_exporter_died_and_its_wait_ends() {
    use rsm_core::proto::{HEARTBEAT_INTERVAL_NS, UNREACHABLE_AFTER_NS};
    use rsm_core::SegmentRef;
    use rsm_tests::net::Pumped;
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    rsm_tests::with_watchdog(
        "idle import, dead exporter",
        Duration::from_secs(60),
        || {
            let p = Arc::new(Pumped::new(2, 21, FaultConfig::default()));
            let ex = p.node(1);
            let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
            let mem = ex.platform().alloc(4096);
            let seg = ex.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
            ex.export_publish(seg, SEG, &[]).unwrap();
            let n0 = p.node(0);
            let ctrl0 = n0.get_controller(Some("rsmnet0")).unwrap();
            let imp = n0.import_connect(ctrl0, 1, SEG, Permission::RDWR).unwrap();
            // Idle but alive for 2 s: no false alarm, no event.
            let idle_until = p.net.now().add_nanos(2 * SEC);
            while p.net.now() < idle_until {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert_eq!(n0.net_stats().unreachable, 0, "alive exporter");
            assert_eq!(
                n0.intr_signal_wait(SegmentRef::Import(imp), 0),
                Err(RsmError::Timeout)
            );
            let (tx, rx) = mpsc::channel();
            let waiter = {
                let p = Arc::clone(&p);
                std::thread::spawn(move || {
                    let r = p.node(0).intr_signal_wait(SegmentRef::Import(imp), -1);
                    let _ = tx.send((r, p.net.now()));
                })
            };
            // Let the waiter block, then crash the exporter.
            std::thread::sleep(Duration::from_millis(50));
            let crash = p.net.now();
            p.power_off(1);
            let (r, at) = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the wait on an import of a dead exporter ends");
            waiter.join().unwrap();
            assert_eq!(r, Err(RsmError::RemoteNodeUnreachable));
            let took = at.nanos_since(crash);
            assert!(
                took <= UNREACHABLE_AFTER_NS + HEARTBEAT_INTERVAL_NS + 200_000_000,
                "declared {took} ns after the crash"
            );
            assert_eq!(n0.net_stats().unreachable, 1);
            // The import stays aborted, for that reason.
            assert_eq!(
                n0.intr_signal_wait(SegmentRef::Import(imp), 0),
                Err(RsmError::RemoteNodeUnreachable)
            );
        },
    );
}

/// The heartbeat does not raise false alarms on a lossy link: an import idle for 60 s of
/// simulated time at 30 % frame loss keeps both nodes reachable, and a put then succeeds.
/// (Declaring after a count of lost heartbeats would fail here.)
#[test]
fn an_idle_import_on_a_lossy_link_stays_connected() {
    let faults = FaultConfig {
        drop_pct: 30.0,
        ..FaultConfig::default()
    };
    let mut c = Cluster::new(2, 22, faults);
    let mem = c.node(1).platform().alloc(4096);
    let (imp, _seg) = connect(&mut c, mem.clone());
    let sent_before = c.node(0).net_stats().frames_sent;
    c.run_for(60 * SEC);
    for k in 0..2 {
        assert_eq!(c.node(k).net_stats().unreachable, 0, "node {k}");
    }
    // Both sides sent heartbeats (about 4 per second each, plus the 1 s broadcast hello).
    let sent = c.node(0).net_stats().frames_sent - sent_before;
    assert!(
        (200..=400).contains(&sent),
        "{sent} frames from the importer in 60 s"
    );
    let op = c.node(0).start_put(imp, 8, b"heartbeat").unwrap();
    let done = wait_op(&mut c, 0, op, 10 * SEC).expect("put completes");
    assert_eq!(done.result, Ok(()));
    assert_eq!(&c.node(1).platform().read(&mem, 8, 9)[..], b"heartbeat");
}

/// A post on an import of a crashed exporter is acknowledged, so it reports the failure
/// (spec §4.9): `RSMERR_REMOTE_NODE_UNREACHABLE`, within 5 s plus one heartbeat interval
/// (and scheduling slack) of simulated time. It used to succeed at once: bells were
/// fire-and-forget.
#[test]
fn a_post_to_a_crashed_exporter_reports_unreachable() {
    use rsm_core::proto::{HEARTBEAT_INTERVAL_NS, UNREACHABLE_AFTER_NS};
    use rsm_core::{SegmentRef, SigpostFlags};
    use rsm_tests::net::Pumped;
    use std::time::Duration;

    rsm_tests::with_watchdog("post, dead exporter", Duration::from_secs(60), || {
        let p = Pumped::new(2, 23, FaultConfig::default());
        let ex = p.node(1);
        let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
        let mem = ex.platform().alloc(4096);
        let seg = ex.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
        ex.export_publish(seg, SEG, &[]).unwrap();
        let n0 = p.node(0);
        let ctrl0 = n0.get_controller(Some("rsmnet0")).unwrap();
        let imp = n0.import_connect(ctrl0, 1, SEG, Permission::RDWR).unwrap();
        // Alive: the post returns once the exporter rang the event.
        n0.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
            .unwrap();
        assert_eq!(ex.export_pending_events(seg), Ok(1));
        let crash = p.net.now();
        p.power_off(1);
        assert_eq!(
            n0.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty()),
            Err(RsmError::RemoteNodeUnreachable)
        );
        let took = p.net.now().nanos_since(crash);
        assert!(
            took <= UNREACHABLE_AFTER_NS + HEARTBEAT_INTERVAL_NS + 200_000_000,
            "failed {took} ns after the crash"
        );
        // The import is aborted now: later posts fail at once, with the reason.
        assert_eq!(
            n0.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::NO_ACCUMULATE),
            Err(RsmError::RemoteNodeUnreachable)
        );
    });
}

/// A post that reaches the exporter after it unpublished the segment reports
/// `RSMERR_CONN_ABORTED` (the exporter answers the bell with it, or its force-disconnect
/// notice arrives first). It used to succeed: the exporter dropped the bell silently.
#[test]
fn a_post_racing_an_unpublish_reports_conn_aborted() {
    use rsm_core::{SegmentRef, SigpostFlags};
    let mut c = Cluster::new(2, 24, FaultConfig::default());
    let mem = c.node(1).platform().alloc(4096);
    let (imp, seg) = connect(&mut c, mem);
    c.node(1).export_unpublish(seg).unwrap();
    let op = c
        .node(0)
        .start_intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
        .expect("the importer does not know yet");
    let done = wait_op(&mut c, 0, op, 2 * SEC).expect("post answered");
    assert_eq!(done.result, Err(RsmError::ConnAborted));
    assert_eq!(done.residual, 0);
    assert_eq!(c.node(1).export_pending_events(seg), Ok(0), "no event rang");
}

/// Spec §9.28 over the wire: a vector with an implicit sigpost completes only after the
/// exporter answered its bell, and a failed post replaces the vector's success (the data was
/// written; residual 0). Here the exporter unpublishes right after it applied the data —
/// its acknowledgements of the data are already on their way, its bell refusal (or its
/// force-disconnect notice) follows. The vector used to complete with success and its bell
/// was dropped silently.
#[test]
fn an_implicit_sigpost_failure_replaces_the_vector_success() {
    use rsm_core::SgFlags;
    let mut c = Cluster::new(2, 25, FaultConfig::default());
    let mem = c.node(1).platform().alloc(4096);
    let (imp, seg) = connect(&mut c, mem.clone());
    let local = c.node(0).platform().alloc(4096);
    c.node(0).platform().write(&local, 0, b"implicit sigpost");
    let lh = {
        let n0 = c.node(0);
        let ctrl = n0.get_controller(Some("rsmnet0")).unwrap();
        n0.create_localmemory_handle(ctrl, local).unwrap()
    };
    let iov = [IoVec::handle(lh, 0, 0, 8), IoVec::handle(lh, 8, 8, 8)];
    let mut sg = ScatGath::new(imp, &iov);
    sg.flags = SgFlags::IMPLICIT_SIGPOST;
    let op = c.node(0).start_putv(&sg).unwrap();
    // Drive frame by frame until the exporter has written both entries.
    let mut landed = false;
    for _ in 0..100 {
        c.round();
        if c.node(1).platform().read(&mem, 0, 16) == b"implicit sigpost" {
            landed = true;
            break;
        }
    }
    assert!(landed, "the data reached the exporter");
    c.node(1).export_unpublish(seg).unwrap();
    let done = wait_op(&mut c, 0, op, 2 * SEC).expect("putv completes");
    assert_eq!(done.result, Err(RsmError::ConnAborted));
    assert_eq!(done.residual, 0, "every entry was written");
    assert_eq!(c.node(1).export_pending_events(seg), Ok(0), "no event rang");
}

/// `start_intr_signal_post`, the non-blocking post: on a same-node segment it is done at
/// once; on a remote import it completes with the exporter's answer; a `NO_ACCUMULATE` post
/// behind a bell not yet sent completes at once without sending; with every operation slot
/// taken it fails with `RSMERR_INSUFFICIENT_RESOURCES` before ringing anything.
#[test]
fn start_intr_signal_post_completes_like_the_blocking_call() {
    use rsm_core::{SegmentRef, SigpostFlags, MAX_PENDING_OPS};
    let mut c = Cluster::new(2, 26, FaultConfig::default());
    let mem = c.node(1).platform().alloc(4096);
    let (imp, seg) = connect(&mut c, mem);
    let n1 = c.node(1);
    let local = n1
        .import_connect(
            n1.get_controller(Some("rsmnet0")).unwrap(),
            1,
            SEG,
            Permission::RDWR,
        )
        .unwrap();
    // Same node: done at once.
    let op = n1
        .start_intr_signal_post(SegmentRef::Import(local), SigpostFlags::empty())
        .unwrap();
    assert_eq!(n1.take_completion(op).map(|d| d.result), Some(Ok(())));
    assert_eq!(n1.export_pending_events(seg), Ok(1));
    // Remote: an accumulating post, then a no-accumulate one behind it (done at once).
    let n0 = c.node(0);
    let first = n0
        .start_intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
        .unwrap();
    let na = n0
        .start_intr_signal_post(SegmentRef::Import(imp), SigpostFlags::NO_ACCUMULATE)
        .unwrap();
    assert_eq!(n0.take_completion(na).map(|d| d.result), Some(Ok(())));
    assert_eq!(n0.take_completion(first), None, "waits for the answer");
    let done = wait_op(&mut c, 0, first, SEC).expect("answered");
    assert_eq!(done.result, Ok(()));
    assert_eq!(c.node(1).export_pending_events(seg), Ok(2));
    // A full operation table: refused before anything is rung, on both paths.
    let n1 = c.node(1);
    let held: Vec<OpId> = (0..MAX_PENDING_OPS)
        .map(|_| {
            n1.start_intr_signal_post(SegmentRef::Import(local), SigpostFlags::empty())
                .unwrap()
        })
        .collect();
    assert_eq!(
        n1.export_pending_events(seg),
        Ok(2 + MAX_PENDING_OPS as u32)
    );
    assert_eq!(
        n1.start_intr_signal_post(SegmentRef::Import(local), SigpostFlags::empty()),
        Err(RsmError::InsufficientResources)
    );
    assert_eq!(
        n1.export_pending_events(seg),
        Ok(2 + MAX_PENDING_OPS as u32)
    );
    let n0 = c.node(0);
    let mut held0: Vec<OpId> = (0..MAX_PENDING_OPS)
        .map(|_| n0.start_put(imp, 0, &[1]).unwrap())
        .collect();
    assert_eq!(
        n0.start_intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty()),
        Err(RsmError::InsufficientResources)
    );
    for op in held {
        assert!(c.node(1).take_completion(op).is_some());
    }
    assert!(c.run_until(SEC, |c| {
        held0.retain(|&op| c.node(0).take_completion(op).is_none());
        held0.is_empty()
    }));
    assert_eq!(
        c.node(1).export_pending_events(seg),
        Ok(2 + MAX_PENDING_OPS as u32)
    );
}
