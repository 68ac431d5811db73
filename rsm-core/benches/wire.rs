//! Per-frame parse + validate cost of the wire format (CRC included), against the bare
//! CRC-32C over the same bytes as the floor it is compared with.

use core::hint::black_box;
use criterion::{criterion_group, Criterion, Throughput};
use rsm_core::wire::{self, Frame, HeaderRepr, Message, PutData, FLAG_ACK};
use std::time::Instant;

fn put_frame(payload: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..payload).map(|i| i as u8).collect();
    let f = Frame {
        header: HeaderRepr {
            flags: FLAG_ACK,
            src_node: 1,
            dst_node: 2,
            incarnation: 0x0123_4567_89ab_cdef,
            peer_incarnation: 0x0fed_cba9_8765_4321,
            seq: 100,
            ack: 99,
        },
        message: Message::PutData(PutData {
            import_id: 1,
            segment_id: 2,
            op_id: 3,
            entry: 0,
            remote_offset: 4096,
            frag_offset: 0,
            total_len: payload as u32,
            data: &data,
        }),
    };
    let mut buf = vec![0u8; f.buffer_len()];
    f.emit(&mut buf).unwrap();
    buf
}

const SIZES: [usize; 2] = [64, 1400];

fn bench(c: &mut Criterion) {
    for size in SIZES {
        let frame = put_frame(size);
        let mut g = c.benchmark_group(format!("wire/put_data_{size}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("parse+validate", |b| {
            b.iter(|| wire::parse(black_box(&frame[..])).unwrap().1.msg_type())
        });
        g.bench_function("bare_crc32c", |b| {
            b.iter(|| wire::crc32c(black_box(&frame[wire::ETHERNET_HEADER_LEN..])))
        });
        g.finish();
    }
}

/// A plain timing loop after criterion: ns per frame for both and their ratio, in one line
/// per size.
fn summary() {
    const N: u32 = 2_000_000;
    for size in SIZES {
        let frame = put_frame(size);
        let mut best = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..N {
                black_box(wire::parse(black_box(&frame[..])).unwrap().1.msg_type());
            }
            let parse = t.elapsed().as_nanos() as f64 / f64::from(N);
            let t = Instant::now();
            for _ in 0..N {
                black_box(wire::crc32c(black_box(&frame[wire::ETHERNET_HEADER_LEN..])));
            }
            let crc = t.elapsed().as_nanos() as f64 / f64::from(N);
            best = (best.0.min(parse), best.1.min(crc));
        }
        println!(
            "wire summary: put_data {size:>4} B payload ({} B frame): parse+validate {:.1} ns/frame, \
             bare CRC-32C {:.1} ns, ratio {:.2}",
            frame.len(),
            best.0,
            best.1,
            best.0 / best.1
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; under `cargo test` the criterion part runs each case
    // once and the timing loop is skipped.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
