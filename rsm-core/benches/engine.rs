//! The wire engine end to end on one core: two nodes exchanging frames through in-memory
//! queues (no loss), a 1 MiB putv / getv (16 × 64 KiB) per iteration. Compared in the same
//! run with its limits: the platform's copy of the same bytes (memcpy through the fake
//! platform) and the wire format's parse + validate of the same number of frames.

use core::hint::black_box;
use rsm_core::proto::{NetConfig, FRAME_BUF};
use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, ScatGath};
use rsm_hal::fake::FakePlatform;
use rsm_hal::{Instant, Memory};
use std::time::Instant as WallClock;

type Node = Rsm<FakePlatform>;
const MIB: usize = 1 << 20;

/// Move frames between the two nodes until neither has anything to send; returns frames.
fn pump(a: &Node, b: &Node, now: Instant, buf: &mut [u8]) -> usize {
    let mut frames = 0;
    loop {
        let mut moved = false;
        while let Ok(Some(n)) = a.poll_transmit(now, buf) {
            b.handle_frame(now, &buf[..n]);
            frames += 1;
            moved = true;
        }
        while let Ok(Some(n)) = b.poll_transmit(now, buf) {
            a.handle_frame(now, &buf[..n]);
            frames += 1;
            moved = true;
        }
        if !moved {
            return frames;
        }
    }
}

fn main() {
    let mk = |id| {
        let n = Box::new(Node::new(
            FakePlatform::new(),
            Config {
                node_id: id,
                ..Config::default()
            },
        ));
        n.net_start(
            Instant(0),
            NetConfig {
                incarnation: 1,
                max_frame: 1514,
            },
        );
        n
    };
    let (imp_node, exp_node) = (mk(0), mk(1));
    let mut buf = vec![0u8; FRAME_BUF];
    let now = Instant(1);
    let ctrl = exp_node.get_controller(Some("rsmnet0")).unwrap();
    let seg_mem = exp_node.platform().alloc(MIB);
    let seg = exp_node
        .export_create(ctrl, seg_mem, CreateFlags::empty())
        .unwrap();
    exp_node.export_publish(seg, 0x40_0001, &[]).unwrap();
    pump(&imp_node, &exp_node, now, &mut buf);
    let c0 = imp_node.get_controller(Some("rsmnet0")).unwrap();
    let op = imp_node
        .start_import_connect(c0, 1, 0x40_0001, Permission::RDWR)
        .unwrap();
    pump(&imp_node, &exp_node, now, &mut buf);
    let imp = imp_node.take_connect(op).unwrap().unwrap();
    let src = imp_node.platform().alloc(MIB);
    let dst = imp_node.platform().alloc(MIB);
    imp_node.platform().write(&src, 0, &vec![0x5a; MIB]);
    let put: Vec<IoVec<'_, _>> = (0..16)
        .map(|k| IoVec::va(&src, k * 65536, k * 65536, 65536))
        .collect();
    let get: Vec<IoVec<'_, _>> = (0..16)
        .map(|k| IoVec::va(&dst, k * 65536, k * 65536, 65536))
        .collect();
    let run = |iov: &[IoVec<'_, _>], put: bool, buf: &mut [u8]| -> (f64, usize) {
        let sg = ScatGath::new(imp, iov);
        let t = WallClock::now();
        let op = if put {
            imp_node.start_putv(&sg).unwrap()
        } else {
            imp_node.start_getv(&sg).unwrap()
        };
        let frames = pump(&imp_node, &exp_node, now, buf);
        let Some(c) = imp_node.take_completion(op) else {
            panic!(
                "stalled: put={put} {:?} / {:?}",
                imp_node.net_stats(),
                exp_node.net_stats()
            );
        };
        assert_eq!(c.result, Ok(()));
        (t.elapsed().as_nanos() as f64, frames)
    };
    let mut best_put = (f64::MAX, 0);
    let mut best_get = (f64::MAX, 0);
    let mut best_copy = f64::MAX;
    // `cargo bench` passes `--bench`; under `cargo test` one round checks that it works.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        20
    } else {
        1
    };
    for _ in 0..rounds {
        let p = run(&put, true, &mut buf);
        if p.0 < best_put.0 {
            best_put = p;
        }
        let g = run(&get, false, &mut buf);
        if g.0 < best_get.0 {
            best_get = g;
        }
        let t = WallClock::now();
        black_box(imp_node.platform().copy(&dst, 0, &src, 0, MIB)).unwrap();
        best_copy = best_copy.min(t.elapsed().as_nanos() as f64);
    }
    assert!(imp_node
        .platform()
        .read(&dst, 0, MIB)
        .iter()
        .all(|&b| b == 0x5a));
    // The floor of the frame path: one CRC-32C to send and one to check, per full frame.
    let frame = vec![0x5au8; 1500];
    let mut best_crc = f64::MAX;
    for _ in 0..rounds {
        let t = WallClock::now();
        for _ in 0..1000 {
            black_box(rsm_core::wire::crc32c(black_box(&frame)));
        }
        best_crc = best_crc.min(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let gbs = |ns: f64| MIB as f64 / ns;
    for (name, (ns, frames)) in [("putv", best_put), ("getv", best_get)] {
        println!(
            "RATIO engine/{name} 1 MiB (16 x 64 KiB, {frames} frames both ways, 1514-B frames): \
             {:.3} GB/s vs platform copy {:.3} GB/s = {:.3}x; {:.0} ns per frame vs 2 CRC-32C \
             of a full frame {:.0} ns = {:.2}x of that floor",
            gbs(ns),
            gbs(best_copy),
            best_copy / ns,
            ns / frames as f64,
            2.0 * best_crc,
            ns / frames as f64 / (2.0 * best_crc)
        );
    }
}
