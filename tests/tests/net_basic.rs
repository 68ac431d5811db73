//! The remote RSMAPI over a perfect simulated network: connect, putv/getv, put/get, events,
//! forced disconnect, topology — driven through the non-blocking layer.

use rsm_core::proto::UNREACHABLE_AFTER_NS;
use rsm_core::{
    CreateFlags, IoVec, OpId, Permission, RsmError, ScatGath, SegmentRef, SigpostFlags,
};
use rsm_hal::fake::FakeRegion;
use rsm_hal::netsim::FaultConfig;
use rsm_tests::net::Cluster;

const SEG: u32 = 0x40_0001;
const SEC: u64 = 1_000_000_000;

/// Node 1 exports a published 64 KiB segment; node 0 connects to it.
fn setup(c: &mut Cluster, perm: Permission) -> (rsm_core::ImportHandle, rsm_core::ExportHandle) {
    let ex = c.node(1);
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let mem = ex.platform().alloc(65536);
    let seg = ex.export_create(ctrl, mem, CreateFlags::empty()).unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
    let im = c.node(0);
    let ctrl0 = im.get_controller(Some("rsmnet0")).unwrap();
    let op = im.start_import_connect(ctrl0, 1, SEG, perm).unwrap();
    let mut got = None;
    assert!(c.run_until(5 * SEC, |c| {
        got = c.node(0).take_connect(op);
        got.is_some()
    }));
    (got.unwrap().unwrap(), seg)
}

/// A completion without error or residual.
const OK: rsm_core::Completion = rsm_core::Completion {
    result: Ok(()),
    residual: 0,
};

/// Sixteen 4 KiB entries, page `k` of `r` to page `k` of the segment.
fn pages16(r: &FakeRegion) -> Vec<IoVec<'_, FakeRegion>> {
    (0..16)
        .map(|k| IoVec::va(r, k * 4096, k * 4096, 4096))
        .collect()
}

fn wait_op(c: &mut Cluster, node: u32, op: rsm_core::OpId) -> rsm_core::Completion {
    let mut got = None;
    assert!(c.run_until(10 * SEC, |c| {
        got = c.node(node).take_completion(op);
        got.is_some()
    }));
    got.unwrap()
}

#[test]
fn connect_putv_getv_round_trip() {
    let mut c = Cluster::new(2, 1, FaultConfig::default());
    let (imp, _seg) = setup(&mut c, Permission::RDWR);
    let n0 = c.node(0);
    let ctrl = n0.get_controller(Some("rsmnet0")).unwrap();
    let src = n0.platform().alloc(3 * 4096);
    let data: Vec<u8> = (0..3 * 4096).map(|i| (i * 7 % 251) as u8).collect();
    n0.platform().write(&src, 0, &data);
    let lh = n0.create_localmemory_handle(ctrl, src).unwrap();
    let iov = [
        IoVec::handle(lh, 0, 100, 5000),
        IoVec::handle(lh, 5000, 20000, 1),
        IoVec::handle(lh, 5001, 30000, 0),
        IoVec::handle(lh, 5001, 40000, 7000),
    ];
    let sg = ScatGath::new(imp, &iov);
    let op = c.node(0).start_putv(&sg).unwrap();
    let done = wait_op(&mut c, 0, op);
    assert_eq!(done.result, Ok(()));
    assert_eq!(done.residual, 0);
    // Read it back into another buffer.
    let n0 = c.node(0);
    let dst = n0.platform().alloc(3 * 4096);
    let back = [
        IoVec::va(&dst, 0, 100, 5000),
        IoVec::va(&dst, 5000, 20000, 1),
        IoVec::va(&dst, 5001, 40000, 7000),
    ];
    let sg = ScatGath::new(imp, &back);
    let op = n0.start_getv(&sg).unwrap();
    let done = wait_op(&mut c, 0, op);
    assert_eq!(done, OK);
    let got = c.node(0).platform().read(&dst, 0, 12001);
    assert_eq!(got, data[..12001].to_vec());
    eprintln!("stats: {:?}", c.stats());
}

#[test]
fn put_get_bells_and_forced_disconnect() {
    let mut c = Cluster::new(2, 2, FaultConfig::default());
    let (imp, seg) = setup(&mut c, Permission::RDWR);
    let op = c.node(0).start_put(imp, 8, b"hello, remote").unwrap();
    assert_eq!(wait_op(&mut c, 0, op).result, Ok(()));
    let op = c.node(0).start_get(imp, 8, 13).unwrap();
    let mut buf = [0u8; 13];
    let mut got = None;
    assert!(c.run_until(SEC, |c| {
        got = c.node(0).take_get(op, &mut buf);
        got.is_some()
    }));
    assert_eq!(got.unwrap().result, Ok(()));
    assert_eq!(&buf, b"hello, remote");
    // Bells both ways, exact counts.
    // (Posts on a remote import are answered: start them, collect the answers.)
    let posts: Vec<OpId> = (0..3)
        .map(|_| {
            c.node(0)
                .start_intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty())
                .unwrap()
        })
        .collect();
    c.node(1)
        .intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty())
        .unwrap();
    c.run_for(SEC / 10);
    for op in posts {
        assert_eq!(
            c.node(0).take_completion(op).map(|d| d.result),
            Some(Ok(()))
        );
    }
    assert_eq!(c.node(1).export_pending_events(seg), Ok(3));
    for _ in 0..3 {
        c.node(1)
            .intr_signal_wait(SegmentRef::Export(seg), 0)
            .unwrap();
    }
    c.node(0)
        .intr_signal_wait(SegmentRef::Import(imp), 0)
        .unwrap();
    assert_eq!(
        c.node(0).intr_signal_wait(SegmentRef::Import(imp), 0),
        Err(RsmError::Timeout)
    );
    // Topology: each sees the other.
    assert_eq!(c.node(0).net_peers().as_slice(), &[1]);
    assert_eq!(c.node(1).net_peers().as_slice(), &[0]);
    // Forced disconnect.
    c.node(1).export_unpublish(seg).unwrap();
    c.run_for(SEC / 10);
    let op = c.node(0).start_put(imp, 0, b"x").unwrap();
    assert_eq!(wait_op(&mut c, 0, op).result, Err(RsmError::ConnAborted));
    c.node(0).import_disconnect(imp).unwrap();
    c.run_for(SEC / 10);
    assert_eq!(c.node(0).slots_in_use(), (0, 0, 0));
    eprintln!("stats: {:?}", c.stats());
}

/// Flow control: a receiver that takes at most 4 frames at a time (its queue) while the
/// sender may have 16 in flight, on a slow line — nothing is lost, the transfer completes
/// byte-exact, and the excess shows up as drops at the receiver's queue and retransmissions.
#[test]
fn fast_sender_does_not_overrun_a_small_receiver() {
    let faults = FaultConfig {
        max_queue: 4,
        rate_limit_bytes_per_sec: 10_000_000,
        ..FaultConfig::default()
    };
    let mut c = Cluster::new(2, 3, faults);
    let (imp, _seg) = setup(&mut c, Permission::RDWR);
    let n0 = c.node(0);
    let src = n0.platform().alloc(65536);
    let data: Vec<u8> = (0..65536).map(|i| (i * 31 % 256) as u8).collect();
    n0.platform().write(&src, 0, &data);
    let iov = pages16(&src);
    let sg = ScatGath::new(imp, &iov);
    let op = c.node(0).start_putv(&sg).unwrap();
    let done = wait_op(&mut c, 0, op);
    assert_eq!(done, OK);
    let dst = c.node(0).platform().alloc(65536);
    let back = pages16(&dst);
    let sg = ScatGath::new(imp, &back);
    let op = c.node(0).start_getv(&sg).unwrap();
    let done = wait_op(&mut c, 0, op);
    assert_eq!(done, OK);
    assert!(
        c.node(0).platform().read(&dst, 0, 65536) == data,
        "data differs"
    );
    let full = c.net.stats(rsm_tests::net::mac(1)).unwrap().queue_full
        + c.net.stats(rsm_tests::net::mac(0)).unwrap().queue_full;
    let s = c.stats();
    eprintln!("queue drops {full}, stats {s:?}");
    assert!(
        full > 0,
        "the receiver's queue never overflowed: the test tests nothing"
    );
    assert!(s.retransmits > 0);
}

/// Exact residual: the exporter unpublishes in the middle of a 16-entry putv. The entries it
/// acknowledged before are in its memory, the call fails with `RSMERR_CONN_ABORTED`, the
/// residual is 16 minus that prefix, and no entry after the failed one was written.
#[test]
fn unpublish_mid_vector_gives_the_exact_residual() {
    let mut c = Cluster::new(2, 4, FaultConfig::default());
    let ex = c.node(1);
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let mem = ex.platform().alloc(65536);
    let seg = ex
        .export_create(ctrl, mem.clone(), CreateFlags::empty())
        .unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
    let im = c.node(0);
    let ctrl0 = im.get_controller(Some("rsmnet0")).unwrap();
    let op = im
        .start_import_connect(ctrl0, 1, SEG, Permission::RDWR)
        .unwrap();
    let mut got = None;
    assert!(c.run_until(SEC, |c| {
        got = c.node(0).take_connect(op);
        got.is_some()
    }));
    let imp = got.unwrap().unwrap();
    let n0 = c.node(0);
    let src = n0.platform().alloc(65536);
    n0.platform().write(&src, 0, &[0xab; 65536]);
    let iov = pages16(&src);
    let sg = ScatGath::new(imp, &iov);
    let op = c.node(0).start_putv(&sg).unwrap();
    // Step until the exporter has three entries in memory, then unpublish.
    let written = |c: &Cluster| {
        let m = c.node(1).platform().read(&mem, 0, 65536);
        (0..16)
            .take_while(|k| m[k * 4096..(k + 1) * 4096].iter().all(|&b| b == 0xab))
            .count()
    };
    while written(&c) < 3 {
        assert!(c.round(), "the transfer stalled");
    }
    c.node(1).export_unpublish(seg).unwrap();
    let done = wait_op(&mut c, 0, op);
    assert_eq!(done.result, Err(RsmError::ConnAborted));
    let prefix = written(&c);
    assert_eq!(
        done.residual,
        16 - prefix as u64,
        "residual = count − written prefix"
    );
    let m = c.node(1).platform().read(&mem, 0, 65536);
    // The entry after the prefix may be partly written (it failed mid-way); none after it.
    let untouched = m[(prefix + 1).min(16) * 4096..].iter().all(|&b| b == 0);
    assert!(untouched, "an entry after the failed one was written");
}

/// Fixed tables: connects to nodes that never answer fill the operation table (the peer
/// table has a slot for every node id and cannot fill), so the next connect fails with
/// `RSMERR_INSUFFICIENT_RESOURCES`; the silent nodes give their peer slots back when their
/// connects time out; an exporter answers `RSMERR_INSUFFICIENT_RESOURCES` to a peer that
/// holds its quota of importer records. Nothing panics, and the cluster keeps working.
#[test]
fn full_tables_give_resource_errors() {
    use rsm_core::proto::{MAX_IMPORTS_PER_PEER, MAX_PEERS};
    use rsm_core::MAX_PENDING_OPS;
    assert_eq!(MAX_PEERS, rsm_core::MAX_NODES as usize);
    let mut c = Cluster::new(3, 5, FaultConfig::default());
    let (first, _seg) = setup(&mut c, Permission::READ);
    let n0 = c.node(0);
    let ctrl = n0.get_controller(Some("rsmnet0")).unwrap();
    // Node 0 knows nodes 1 and 2; every operation slot goes to a node that does not exist.
    let mut ops = Vec::new();
    for k in 0..MAX_PENDING_OPS as u32 {
        ops.push(
            n0.start_import_connect(ctrl, 20 + k, SEG, Permission::READ)
                .unwrap(),
        );
    }
    assert_eq!(
        n0.start_import_connect(ctrl, 60, SEG, Permission::READ),
        Err(RsmError::InsufficientResources)
    );
    assert_eq!(
        n0.net_peers().len(),
        2,
        "silent nodes are not listed as peers"
    );
    let t0 = c.now();
    let mut results = Vec::new();
    assert!(c.run_until(7 * SEC, |c| {
        ops.retain(|&op| match c.node(0).take_connect(op) {
            Some(r) => {
                results.push(r);
                false
            }
            None => true,
        });
        ops.is_empty()
    }));
    assert!(c.now().nanos_since(t0) >= UNREACHABLE_AFTER_NS);
    assert!(results
        .iter()
        .all(|r| *r == Err(RsmError::RemoteNodeUnreachable)));
    // The slots came back: another unknown node can be tried, and node 1 still answers.
    let op = c
        .node(0)
        .start_import_connect(ctrl, 61, SEG, Permission::READ)
        .unwrap();
    let op1 = c
        .node(0)
        .start_import_connect(ctrl, 1, SEG, Permission::READ)
        .unwrap();
    let mut second = None;
    assert!(c.run_until(SEC, |c| {
        second = c.node(0).take_connect(op1);
        second.is_some()
    }));
    let second = second.unwrap().unwrap();
    assert_ne!(second, first);
    c.run_for(6 * SEC);
    assert_eq!(
        c.node(0).take_connect(op),
        Some(Err(RsmError::RemoteNodeUnreachable))
    );
    // Exporter records: node 0 and node 2 connect until each has its quota.
    let mut held = 2; // `first` and `second`
    let mut refused = 0;
    for round in 0..40 {
        for importer in [0u32, 2] {
            let n = c.node(importer);
            let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
            let op = n
                .start_import_connect(ctrl, 1, SEG, Permission::READ)
                .unwrap();
            let mut got = None;
            assert!(
                c.run_until(SEC, |c| {
                    got = c.node(importer).take_connect(op);
                    got.is_some()
                }),
                "round {round}"
            );
            match got.unwrap() {
                Ok(_) => held += 1,
                Err(e) => {
                    assert_eq!(e, RsmError::InsufficientResources);
                    refused += 1;
                }
            }
        }
    }
    // Each importer node gets its quota, no more.
    assert_eq!(held, 2 * MAX_IMPORTS_PER_PEER);
    assert_eq!(refused, 80 + 2 - 2 * MAX_IMPORTS_PER_PEER);
}

/// The check order of putv/getv on a remote import is the same-node one (spec §4.6): handle,
/// vector header, connection, permission, then per entry io_type/handle, NULL VA, remote
/// range, local range — with two failing checks the earlier wins, and nothing is sent.
#[test]
fn remote_vector_check_order() {
    let mut c = Cluster::new(2, 6, FaultConfig::default());
    let (ro, seg) = setup(&mut c, Permission::READ);
    let n0 = c.node(0);
    let src = n0.platform().alloc(8192);
    let null = rsm_hal::fake::FakeRegion::raw(0, 16);
    let run = |c: &mut Cluster, sg: &ScatGath<'_, _>, put: bool| {
        let n = c.node(0);
        let op = if put {
            n.start_putv(sg)
        } else {
            n.start_getv(sg)
        }
        .unwrap();
        // Validation errors complete at once, without any frame.
        let sent = c.node(0).net_stats().frames_sent;
        let done = c.node(0).take_completion(op).expect("completes at once");
        assert_eq!(c.node(0).net_stats().frames_sent, sent);
        (done.result, done.residual)
    };
    let ok = [IoVec::va(&src, 0, 0, 10)];
    // 1. handle
    let sg = ScatGath::new(rsm_core::ImportHandle::NULL, &ok);
    assert_eq!(run(&mut c, &sg, true), (Err(RsmError::BadSegHndl), 1));
    // 2. header (count 0) before the permission a read-only import lacks for putv
    let mut sg = ScatGath::new(ro, &ok);
    sg.io_request_count = 0;
    assert_eq!(run(&mut c, &sg, true), (Err(RsmError::BadSgio), 0));
    // 4. permission before the entries
    let bad_range = [IoVec::va(&src, 0, 1 << 20, 10)];
    let sg = ScatGath::new(ro, &bad_range);
    assert_eq!(run(&mut c, &sg, true), (Err(RsmError::PermDenied), 1));
    // 5. per entry: NULL VA, then remote range before local range
    let sg_null = [IoVec::va(&null, 0, 0, 1)];
    let sg = ScatGath::new(ro, &sg_null);
    assert_eq!(run(&mut c, &sg, false), (Err(RsmError::BadAddr), 1));
    let both = [IoVec::va(&src, 8190, 1 << 20, 10)];
    let sg = ScatGath::new(ro, &both);
    assert_eq!(run(&mut c, &sg, false), (Err(RsmError::BadOffset), 1));
    let local = [IoVec::va(&src, 0, 0, 10), IoVec::va(&src, 8190, 0, 10)];
    let sg = ScatGath::new(ro, &local);
    assert_eq!(run(&mut c, &sg, false), (Err(RsmError::BadLength), 2));
    // 3. connection before permission and entries: after a forced disconnect.
    c.node(1).export_unpublish(seg).unwrap();
    c.run_for(SEC / 10);
    let sg = ScatGath::new(ro, &bad_range);
    assert_eq!(run(&mut c, &sg, true), (Err(RsmError::ConnAborted), 1));
    let mut sg = ScatGath::new(ro, &ok);
    sg.io_request_count = 17;
    assert_eq!(run(&mut c, &sg, false), (Err(RsmError::BadSgio), 17));
}

/// `Rsm::drive` and links that batch their notifications (issue 12): every burst of
/// transmitted frames is followed by one `Link::kick` (no frame is left unannounced after a
/// drive, and bursts share a kick), and a long burst of arrivals is acknowledged part-way —
/// never more than 4 frames taken in without the node transmitting what is due — so the
/// sender refills its window while the receiver works through the rest.
#[test]
fn drive_kicks_once_per_burst_and_acknowledges_mid_burst() {
    let mut c = Cluster::new(2, 3, FaultConfig::default());
    let (imp, _seg) = setup(&mut c, Permission::RDWR);
    let n0 = c.node(0);
    let src = n0.platform().alloc(65536);
    n0.platform().write(&src, 0, &vec![0x5a; 65536]);
    let iov = pages16(&src);
    let sg = ScatGath::new(imp, &iov);
    let op = c.node(0).start_putv(&sg).unwrap();
    assert_eq!(wait_op(&mut c, 0, op), OK);
    for id in [0, 1] {
        let k = c.link_counts(id);
        assert_eq!(k.unkicked, 0, "node {id}: frames left unannounced: {k:?}");
        assert!(k.kicks > 0 && k.kicks < k.transmits, "node {id}: {k:?}");
    }
    let rx = c.link_counts(1);
    assert!(
        rx.max_rx_per_drive >= 8,
        "the receiver took a long burst in one drive: {rx:?}"
    );
    assert!(rx.max_rx_run <= 4, "acknowledged part-way: {rx:?}");
}
