//! Restarts, incarnations and unreachable peers on the simulated network (`proto` module
//! docs, "Peers, incarnations and unreachability").
//!
//! * The exporter restarts (a new instance with the next incarnation, its segment created
//!   again and published under the same id): the old import ends with `RSMERR_CONN_ABORTED`
//!   everywhere, the operation in flight fails with an exact residual, nothing of the old
//!   session reaches the new instance's memory, and a new connect works byte-exactly.
//! * The importer restarts: the exporter forgets its imports and jobs (no bell, disconnect
//!   or get data for them reaches the new instance), and a new connect works.
//! * A node powered off for good: the operation in flight fails with
//!   `RSMERR_REMOTE_NODE_UNREACHABLE` 5 s (simulated) after the last progress, not earlier; a
//!   connect to a node that never existed fails the same way after 5 s.
//!
//! The links have a 100 µs one-way delay, so that operations are in flight across rounds;
//! everything runs in simulated time, deterministically per seed.

use rsm_core::proto::UNREACHABLE_AFTER_NS;
use rsm_core::{
    Barrier, BarrierType, Completion, CreateFlags, ExportHandle, ImportHandle, IoVec, OpId,
    Permission, RsmError, RsmResult, ScatGath, SegmentRef, SigpostFlags,
};
use rsm_hal::fake::FakeRegion;
use rsm_hal::netsim::FaultConfig;
use rsm_hal::Instant;
use rsm_tests::assert_bytes;
use rsm_tests::net::Cluster;

const SEG: u32 = 0x40_0100;
const SEG_LEN: usize = 256 * 1024;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
/// Entries of the vectors in flight, and their length (several frames each).
const ENTRIES: usize = 16;
const ENTRY: usize = 8192;
/// Where entry `k` goes in the segment (not at the start: offsets are exercised too).
fn remote_off(k: usize) -> usize {
    64 + k * (ENTRY + 128)
}

fn faults() -> FaultConfig {
    FaultConfig {
        delay_ns: 100_000,
        ..FaultConfig::default()
    }
}

/// Put data: never zero, so that a written byte is always told from fresh memory.
fn data(tag: u8) -> Vec<u8> {
    (0..ENTRIES * ENTRY)
        .map(|i| 1 + ((i * 13 + usize::from(tag) * 7) % 251) as u8)
        .collect()
}

/// Create and publish `SEG` (open to every node) on `node`; returns its handle and memory.
fn export(c: &Cluster, node: u32) -> (ExportHandle, FakeRegion) {
    let n = c.node(node);
    let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
    let mem = n.platform().alloc(SEG_LEN);
    let seg = n
        .export_create(ctrl, mem.clone(), CreateFlags::empty())
        .unwrap();
    n.export_publish(seg, SEG, &[]).unwrap();
    (seg, mem)
}

fn start_connect(c: &Cluster, node: u32, target: u32) -> OpId {
    let n = c.node(node);
    let ctrl = n.get_controller(Some("rsmnet0")).unwrap();
    n.start_import_connect(ctrl, target, SEG, Permission::RDWR)
        .unwrap()
}

fn connect(c: &mut Cluster, node: u32, target: u32) -> RsmResult<ImportHandle> {
    let op = start_connect(c, node, target);
    let mut got = None;
    assert!(
        c.run_until(6 * SEC, |c| {
            got = c.node(node).take_connect(op);
            got.is_some()
        }),
        "connect of node {node} to node {target} did not complete"
    );
    got.unwrap()
}

fn wait(c: &mut Cluster, node: u32, op: OpId, limit_ns: u64) -> Completion {
    let mut got = None;
    assert!(
        c.run_until(limit_ns, |c| {
            got = c.node(node).take_completion(op);
            got.is_some()
        }),
        "node {node}: operation not complete within {limit_ns} ns"
    );
    got.unwrap()
}

/// The vector of `ENTRIES` entries between `local` and the segment.
fn vector(local: &FakeRegion) -> Vec<IoVec<'_, FakeRegion>> {
    (0..ENTRIES)
        .map(|k| IoVec::va(local, k * ENTRY, remote_off(k), ENTRY))
        .collect()
}

/// How many entries of `want` are complete, in order, in the segment memory `mem` of `node`.
fn entries_written(c: &Cluster, node: u32, mem: &FakeRegion, want: &[u8]) -> usize {
    let got = c.node(node).platform().read(mem, 0, SEG_LEN);
    (0..ENTRIES)
        .take_while(|&k| got[remote_off(k)..remote_off(k) + ENTRY] == want[k * ENTRY..][..ENTRY])
        .count()
}

/// The segment image after a full putv of `want` into zeroed memory.
fn image(want: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; SEG_LEN];
    for k in 0..ENTRIES {
        img[remote_off(k)..remote_off(k) + ENTRY].copy_from_slice(&want[k * ENTRY..][..ENTRY]);
    }
    img
}

/// A full putv + getv round trip through `imp` into the segment memory `mem` of node 1,
/// which must then hold exactly `image(data(tag))`.
fn round_trip(c: &mut Cluster, imp: ImportHandle, mem: &FakeRegion, tag: u8) {
    let want = data(tag);
    let n0 = c.node(0);
    let src = n0.platform().alloc(ENTRIES * ENTRY);
    n0.platform().write(&src, 0, &want);
    let iov = vector(&src);
    let op = n0.start_putv(&ScatGath::new(imp, &iov)).unwrap();
    assert_eq!(
        wait(c, 0, op, SEC),
        Completion {
            result: Ok(()),
            residual: 0
        }
    );
    let got = c.node(1).platform().read(mem, 0, SEG_LEN);
    assert_bytes(&got, &image(&want), "segment after the putv");
    let n0 = c.node(0);
    let dst = n0.platform().alloc(ENTRIES * ENTRY);
    let iov = vector(&dst);
    let op = n0.start_getv(&ScatGath::new(imp, &iov)).unwrap();
    assert_eq!(
        wait(c, 0, op, SEC),
        Completion {
            result: Ok(()),
            residual: 0
        }
    );
    let back = c.node(0).platform().read(&dst, 0, ENTRIES * ENTRY);
    assert_bytes(&back, &want, "getv after the putv");
}

#[test]
fn exporter_restart_aborts_the_old_import_and_a_new_connect_works() {
    let mut c = Cluster::new(2, 31, faults());
    let (_, mem) = export(&c, 1);
    let imp = connect(&mut c, 0, 1).unwrap();
    let mut bar = Barrier::default();
    c.node(0)
        .init_barrier(imp, BarrierType::SEGMENT, &mut bar)
        .unwrap();
    c.node(0).open_barrier(&mut bar).unwrap();

    // A putv in flight: some entries written and acknowledged, the rest not yet.
    let want = data(1);
    let n0 = c.node(0);
    let src = n0.platform().alloc(ENTRIES * ENTRY);
    n0.platform().write(&src, 0, &want);
    let iov = vector(&src);
    let op = n0.start_putv(&ScatGath::new(imp, &iov)).unwrap();
    assert!(c.run_until(SEC, |c| entries_written(c, 1, &mem, &want) >= 3));
    let acked = entries_written(&c, 1, &mem, &want);
    assert!(acked < ENTRIES, "the putv must still be in flight");
    assert!(c.node(0).take_completion(op).is_none());

    // Node 1 restarts: a new instance, the same segment id published again.
    let restarts = c.node(0).net_stats().restarts;
    c.boot(1);
    assert_eq!(c.node(1).net_incarnation(), 2);
    let (new_seg, new_mem) = export(&c, 1);
    let done = wait(&mut c, 0, op, SEC);
    assert_eq!(
        done,
        Completion {
            result: Err(RsmError::ConnAborted),
            residual: (ENTRIES - acked) as u64,
        },
        "the putv in flight: {acked} entries were written and acknowledged before the restart"
    );
    assert!(
        c.node(0).net_stats().restarts > restarts,
        "node 0 saw the restart"
    );

    // The old import is aborted, whatever is done with it.
    let n0 = c.node(0);
    assert_eq!(n0.put(imp, 0, b"stale"), Err(RsmError::ConnAborted));
    let mut buf = [0u8; 8];
    assert_eq!(n0.get(imp, 0, &mut buf), Err(RsmError::ConnAborted));
    let mut sg = ScatGath::new(imp, &iov);
    assert_eq!(n0.putv(&mut sg), Err(RsmError::ConnAborted));
    assert_eq!(sg.io_residual_count, ENTRIES as u64);
    let mut sg = ScatGath::new(imp, &iov);
    assert_eq!(n0.getv(&mut sg), Err(RsmError::ConnAborted));
    let op = n0.start_put(imp, 0, b"stale").unwrap();
    assert_eq!(
        n0.take_completion(op).map(|c| c.result),
        Some(Err(RsmError::ConnAborted))
    );
    assert_eq!(n0.close_barrier(&mut bar), Err(RsmError::ConnAborted));
    assert_eq!(
        n0.intr_signal_wait(SegmentRef::Import(imp), 0),
        Err(RsmError::ConnAborted)
    );
    assert_eq!(
        n0.intr_signal_post(SegmentRef::Import(imp), SigpostFlags::empty()),
        Err(RsmError::ConnAborted)
    );

    // Nothing of the old session reached the new instance.
    c.run_for(100 * MS);
    let fresh = c.node(1).platform().read(&new_mem, 0, SEG_LEN);
    assert_bytes(&fresh, &vec![0u8; SEG_LEN], "new instance's segment");
    assert_eq!(c.node(1).export_pending_events(new_seg), Ok(0));

    // A new connect to the new incarnation moves data byte-exactly.
    let imp2 = connect(&mut c, 0, 1).expect("connect to the new incarnation");
    round_trip(&mut c, imp2, &new_mem, 2);
    let op = c.node(0).start_put(imp2, 5, b"fresh").unwrap();
    assert_eq!(wait(&mut c, 0, op, SEC).result, Ok(()));
    assert_eq!(c.node(1).platform().read(&new_mem, 5, 5), b"fresh");
    c.node(0).import_disconnect(imp).unwrap();
}

#[test]
fn exporter_restart_fails_a_getv_in_flight_with_an_exact_residual() {
    let mut c = Cluster::new(2, 32, faults());
    let (_, mem) = export(&c, 1);
    let want = data(3);
    c.node(1).platform().write(&mem, 0, &image(&want));
    let imp = connect(&mut c, 0, 1).unwrap();
    let n0 = c.node(0);
    let dst = n0.platform().alloc(ENTRIES * ENTRY);
    let iov = vector(&dst);
    let op = n0.start_getv(&ScatGath::new(imp, &iov)).unwrap();
    // Entries arrive in order; stop after a few.
    let received = |c: &Cluster| {
        let got = c.node(0).platform().read(&dst, 0, ENTRIES * ENTRY);
        (0..ENTRIES)
            .take_while(|&k| got[k * ENTRY..][..ENTRY] == want[k * ENTRY..][..ENTRY])
            .count()
    };
    assert!(c.run_until(SEC, |c| received(c) >= 4));
    assert!(c.node(0).take_completion(op).is_none());
    c.boot(1);
    let (_, new_mem) = export(&c, 1);
    let done = wait(&mut c, 0, op, SEC);
    let got = received(&c);
    assert!(got < ENTRIES);
    assert_eq!(
        done,
        Completion {
            result: Err(RsmError::ConnAborted),
            residual: (ENTRIES - got) as u64,
        },
        "{got} entries had arrived in full"
    );
    // Nothing lands in the buffer after the completion.
    let snapshot = c.node(0).platform().read(&dst, 0, ENTRIES * ENTRY);
    c.run_for(100 * MS);
    assert_bytes(
        &c.node(0).platform().read(&dst, 0, ENTRIES * ENTRY),
        &snapshot,
        "getv buffer after the abort",
    );
    let imp2 = connect(&mut c, 0, 1).unwrap();
    round_trip(&mut c, imp2, &new_mem, 4);
}

#[test]
fn importer_restart_is_forgotten_by_the_exporter() {
    let mut c = Cluster::new(2, 33, faults());
    let (seg, mem) = export(&c, 1);
    let imp = connect(&mut c, 0, 1).unwrap();
    round_trip(&mut c, imp, &mem, 5);
    // A getv in flight when node 0 restarts: node 1 is answering it.
    let n0 = c.node(0);
    let dst = n0.platform().alloc(ENTRIES * ENTRY);
    let iov = vector(&dst);
    let op = n0.start_getv(&ScatGath::new(imp, &iov)).unwrap();
    c.run_for(300_000);
    assert!(c.node(0).take_completion(op).is_none(), "still in flight");
    let restarts = c.node(1).net_stats().restarts;
    c.boot(0);
    assert!(c.run_until(SEC, |c| c.node(1).net_stats().restarts > restarts));
    // Frames node 1 sent before it learned of the restart are still arriving (and are
    // stale for the new node 0); after that, node 1 answers nothing more for the old import,
    // rings nothing for it, and a forced disconnect has nobody to tell: the new node 0
    // refuses nothing because it gets nothing.
    c.run_for(MS);
    let stale = c.node(0).net_stats().stale;
    let before = c.node(1).platform().read(&mem, 0, SEG_LEN);
    c.node(1)
        .intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty())
        .unwrap();
    c.run_for(SEC);
    let s0 = c.node(0).net_stats();
    assert_eq!(
        s0.rejected, 0,
        "node 1 sent something for the old import: {s0:?}"
    );
    assert_eq!(
        s0.stale, stale,
        "node 1 still sends the old session: {s0:?}"
    );
    assert_bytes(
        &c.node(1).platform().read(&mem, 0, SEG_LEN),
        &before,
        "segment after the importer's restart",
    );
    assert_eq!(c.node(1).export_pending_events(seg), Ok(0));

    // A new connect from the new node 0 works, and bells reach it exactly once.
    let imp2 = connect(&mut c, 0, 1).expect("connect from the new incarnation");
    round_trip(&mut c, imp2, &mem, 6);
    c.node(1)
        .intr_signal_post(SegmentRef::Export(seg), SigpostFlags::empty())
        .unwrap();
    c.run_for(10 * MS);
    let n0 = c.node(0);
    assert_eq!(n0.intr_signal_wait(SegmentRef::Import(imp2), 0), Ok(()));
    assert_eq!(
        n0.intr_signal_wait(SegmentRef::Import(imp2), 0),
        Err(RsmError::Timeout)
    );
    // A forced disconnect ends the new import (and only that: nothing else is refused).
    c.node(1).export_unpublish(seg).unwrap();
    c.run_for(10 * MS);
    let op = c.node(0).start_put(imp2, 0, b"late").unwrap();
    assert_eq!(wait(&mut c, 0, op, SEC).result, Err(RsmError::ConnAborted));
    assert_eq!(c.node(0).net_stats().rejected, 0);
    c.node(1).export_destroy(seg).unwrap();
}

#[test]
fn powered_off_exporter_fails_the_op_in_flight_after_5_s() {
    let mut c = Cluster::new(2, 34, faults());
    let (_, mem) = export(&c, 1);
    let imp = connect(&mut c, 0, 1).unwrap();
    let want = data(7);
    let n0 = c.node(0);
    let src = n0.platform().alloc(ENTRIES * ENTRY);
    n0.platform().write(&src, 0, &want);
    let iov = vector(&src);
    let op = n0.start_putv(&ScatGath::new(imp, &iov)).unwrap();
    assert!(c.run_until(SEC, |c| entries_written(c, 1, &mem, &want) >= 2));
    let acked = entries_written(&c, 1, &mem, &want);
    assert!(acked < ENTRIES);
    let off = c.now();
    c.power_off(1);

    // Not before 5 s after the last progress (at most one round trip before the power-off)…
    let early = UNREACHABLE_AFTER_NS - 2 * MS;
    assert!(!c.run_until(early, |c| c.node(0).take_completion(op).is_some()));
    // … and not much later.
    let done = wait(&mut c, 0, op, 10 * MS);
    let at = c.now().nanos_since(off);
    assert!(
        (early..=UNREACHABLE_AFTER_NS + MS).contains(&at),
        "unreachable {at} ns after the power-off"
    );
    assert_eq!(
        done,
        Completion {
            result: Err(RsmError::RemoteNodeUnreachable),
            residual: (ENTRIES - acked) as u64,
        }
    );
    let s = c.node(0).net_stats();
    assert_eq!(s.unreachable, 1, "{s:?}");
    assert!(!c.node(0).net_peers().contains(&1));
    // The import is aborted afterwards, and calls say why.
    let op = c.node(0).start_put(imp, 0, b"x").unwrap();
    assert_eq!(
        c.node(0).take_completion(op).map(|c| c.result),
        Some(Err(RsmError::RemoteNodeUnreachable))
    );
    assert_eq!(
        c.node(0).intr_signal_wait(SegmentRef::Import(imp), 0),
        Err(RsmError::RemoteNodeUnreachable)
    );
}

#[test]
fn connect_to_a_node_that_never_existed_fails_after_5_s() {
    let mut c = Cluster::new(2, 35, faults());
    c.run_for(10 * MS);
    let t0 = c.now();
    let op = start_connect(&c, 0, 9);
    let early = UNREACHABLE_AFTER_NS - MS;
    assert!(!c.run_until(early, |c| c.node(0).take_connect(op).is_some()));
    let mut got = None;
    assert!(c.run_until(10 * MS, |c| {
        got = c.node(0).take_connect(op);
        got.is_some()
    }));
    let at = c.now().nanos_since(t0);
    assert!(
        (UNREACHABLE_AFTER_NS..=UNREACHABLE_AFTER_NS + MS).contains(&at),
        "failed {at} ns after the start"
    );
    assert_eq!(got.unwrap(), Err(RsmError::RemoteNodeUnreachable));
    assert_eq!(c.node(0).slots_in_use().2, 0, "no import left behind");
    // By contrast, a node that exists answers at once, even with a refusal.
    let t1: Instant = c.now();
    assert_eq!(connect(&mut c, 0, 1), Err(RsmError::SegNotPublished));
    assert!(c.now().nanos_since(t1) < 10 * MS);
}

#[test]
fn connect_in_flight_across_an_exporter_restart_reaches_the_new_incarnation() {
    let mut c = Cluster::new(2, 36, faults());
    export(&c, 1);
    c.run_for(10 * MS);
    let op = start_connect(&c, 0, 1);
    // The request is on the wire when node 1 restarts.
    c.run_for(50_000);
    assert!(c.node(0).take_connect(op).is_none());
    c.boot(1);
    let (_, new_mem) = export(&c, 1);
    let mut got = None;
    assert!(c.run_until(6 * SEC, |c| {
        got = c.node(0).take_connect(op);
        got.is_some()
    }));
    let imp = got
        .unwrap()
        .expect("the connect is retried with the new incarnation");
    round_trip(&mut c, imp, &new_mem, 8);
}
