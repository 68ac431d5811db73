//! Tests of the simulated network (`rsm_hal::netsim`).

use rsm_hal::netsim::{FaultConfig, Network, SimLink, SimLinkError, DEFAULT_MAX_FRAME};
use rsm_hal::{Error, ErrorKind, Instant, Link};

const BCAST: [u8; 6] = [0xff; 6];

fn mac(id: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x52, 0x53, id]
}

/// A 60-byte frame from `src` to `dst` carrying `tag` (4 bytes, big-endian) after the header.
fn frame(dst: [u8; 6], src: [u8; 6], tag: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&tag.to_be_bytes());
    f
}

fn tag(f: &[u8]) -> u32 {
    u32::from_be_bytes(f[14..18].try_into().unwrap())
}

/// Every frame receivable now.
fn drain(link: &mut SimLink) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; DEFAULT_MAX_FRAME];
    while let Some(n) = link.receive(&mut buf).unwrap() {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Every frame that will ever arrive, with its arrival time, jumping the clock.
fn drain_all(net: &Network, link: &mut SimLink) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let now = net.now().0;
        out.extend(drain(link).into_iter().map(|f| (now, f)));
        if net.advance_to_next_event().is_none() {
            return out;
        }
    }
}

#[test]
fn lossless_in_order_at_the_right_time() {
    let net = Network::new(
        7,
        FaultConfig {
            delay_ns: 5_000,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    assert_eq!(a.mac(), mac(0));
    assert_eq!(a.max_frame(), DEFAULT_MAX_FRAME);
    for i in 0..100 {
        a.transmit(&frame(mac(1), mac(0), i)).unwrap();
        net.advance(100);
    }
    // The first frame was sent at t=0, so it arrives at 5 000 ns, not earlier.
    assert_eq!(net.now(), Instant(10_000));
    let mut got = Vec::new();
    let mut buf = [0u8; 1514];
    let net2 = Network::new(
        7,
        FaultConfig {
            delay_ns: 5_000,
            ..FaultConfig::default()
        },
    );
    // On a fresh network: check the exact arrival times.
    let mut a2 = net2.port(mac(0));
    let mut b2 = net2.port(mac(1));
    for i in 0..10u32 {
        a2.transmit(&frame(mac(1), mac(0), i)).unwrap();
        net2.advance(100);
    }
    assert_eq!(b2.receive(&mut buf).unwrap(), None);
    net2.advance_to(Instant(4_999));
    assert_eq!(b2.receive(&mut buf).unwrap(), None);
    let arrivals = drain_all(&net2, &mut b2);
    let times: Vec<u64> = arrivals.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, (0..10).map(|i| 5_000 + 100 * i).collect::<Vec<_>>());
    // And the first network: all 100, in order, unchanged.
    got.extend(drain_all(&net, &mut b).into_iter().map(|(_, f)| f));
    assert_eq!(got.len(), 100);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &frame(mac(1), mac(0), i as u32));
    }
    assert!(drain(&mut a).is_empty());
    let sa = a.stats();
    let sb = net.stats(mac(1)).unwrap();
    assert_eq!((sa.sent, sa.dropped, sa.sent_bytes), (100, 0, 6000));
    assert_eq!((sb.delivered, sb.delivered_bytes), (100, 6000));
    assert_eq!(net.pending(), 0);
    assert_eq!(net.next_event(), None);
}

#[test]
fn zero_delay_is_receivable_at_once() {
    let net = Network::new(1, FaultConfig::default());
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    a.transmit(&frame(mac(1), mac(0), 9)).unwrap();
    let got = drain(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(tag(&got[0]), 9);
    assert_eq!(net.now(), Instant(0));
}

#[test]
fn unicast_and_broadcast() {
    let net = Network::new(1, FaultConfig::default());
    let mut p: Vec<SimLink> = (0..4).map(|i| net.port(mac(i))).collect();
    p[0].transmit(&frame(mac(2), mac(0), 1)).unwrap();
    let counts: Vec<usize> = p.iter_mut().map(|l| drain(l).len()).collect();
    assert_eq!(counts, [0, 0, 1, 0]);
    p[1].transmit(&frame(BCAST, mac(1), 2)).unwrap();
    let counts: Vec<usize> = p.iter_mut().map(|l| drain(l).len()).collect();
    assert_eq!(counts, [1, 0, 1, 1]);
    // Unknown destination and self: nobody gets it, counted.
    p[0].transmit(&frame(mac(9), mac(0), 3)).unwrap();
    p[0].transmit(&frame(mac(0), mac(0), 4)).unwrap();
    let counts: Vec<usize> = p.iter_mut().map(|l| drain(l).len()).collect();
    assert_eq!(counts, [0, 0, 0, 0]);
    assert_eq!(p[0].stats().no_route, 2);
    assert_eq!(p[0].stats().sent, 3);
}

#[test]
fn drop_rate_within_bound() {
    let net = Network::new(
        42,
        FaultConfig {
            drop_pct: 10.0,
            max_queue: 0,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    for i in 0..10_000 {
        a.transmit(&frame(mac(1), mac(0), i)).unwrap();
    }
    let got = drain(&mut b);
    let dropped = a.stats().dropped;
    assert_eq!(got.len() as u64 + dropped, 10_000);
    assert!((800..=1200).contains(&dropped), "dropped {dropped}");
    // What arrives is in order.
    assert!(got.windows(2).all(|w| tag(&w[0]) < tag(&w[1])));
}

#[test]
fn duplicates_are_counted_and_delivered_twice() {
    let net = Network::new(
        3,
        FaultConfig {
            duplicate_pct: 30.0,
            max_queue: 0,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    for i in 0..1000 {
        a.transmit(&frame(mac(1), mac(0), i)).unwrap();
    }
    let got = drain(&mut b);
    let dup = a.stats().duplicated;
    assert!((200..=400).contains(&dup), "duplicated {dup}");
    assert_eq!(got.len() as u64, 1000 + dup);
    let mut per_tag = vec![0u32; 1000];
    for f in &got {
        per_tag[tag(f) as usize] += 1;
    }
    assert!(per_tag.iter().all(|&c| c == 1 || c == 2));
    assert_eq!(per_tag.iter().filter(|&&c| c == 2).count() as u64, dup);
    // A duplicate follows its original directly (no delay, no jitter).
    for w in got.windows(2) {
        assert!(tag(&w[1]) == tag(&w[0]) || tag(&w[1]) == tag(&w[0]) + 1);
    }
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let net = Network::new(
        11,
        FaultConfig {
            corrupt_pct: 50.0,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    let mut sent = Vec::new();
    for i in 0..500 {
        let mut f = frame(mac(1), mac(0), i);
        f[20..60]
            .iter_mut()
            .enumerate()
            .for_each(|(j, x)| *x = j as u8 ^ i as u8);
        a.transmit(&f).unwrap();
        sent.push(f);
    }
    let got = drain(&mut b);
    assert_eq!(got.len(), 500);
    let mut corrupted = 0;
    for (s, g) in sent.iter().zip(&got) {
        let bits: u32 = s.iter().zip(g).map(|(x, y)| (x ^ y).count_ones()).sum();
        assert!(bits <= 1);
        corrupted += bits;
    }
    assert_eq!(u64::from(corrupted), a.stats().corrupted);
    assert!((200..=300).contains(&corrupted), "corrupted {corrupted}");
}

#[test]
fn reorder_stays_within_the_window() {
    const W: u32 = 3;
    let net = Network::new(
        5,
        FaultConfig {
            reorder_pct: 20.0,
            reorder_window: W,
            max_queue: 0,
            delay_ns: 1_000,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    for i in 0..2000 {
        a.transmit(&frame(mac(1), mac(0), i)).unwrap();
        net.advance(10);
    }
    let got: Vec<u32> = drain_all(&net, &mut b)
        .iter()
        .map(|(_, f)| tag(f))
        .collect();
    // Nothing lost or duplicated.
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..2000).collect::<Vec<_>>());
    assert_ne!(got, sorted, "no reordering happened");
    assert!(a.stats().reordered > 0);
    // A frame is only overtaken by frames sent at most W after it.
    for (pos, &t) in got.iter().enumerate() {
        for &later in &got[pos + 1..] {
            assert!(later > t || t - later <= W, "{t} overtaken by {later}");
        }
    }
    // The tail: a held copy is released by its deadline even when the sender goes quiet.
    assert_eq!(net.pending(), 0);
}

#[test]
fn held_copy_is_released_at_the_timeout() {
    let net = Network::new(
        0,
        FaultConfig {
            reorder_pct: 100.0,
            reorder_window: 4,
            reorder_timeout_ns: 50_000,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    a.transmit(&frame(mac(1), mac(0), 1)).unwrap();
    assert!(drain(&mut b).is_empty());
    assert_eq!(net.advance_to_next_event(), Some(Instant(50_000)));
    assert_eq!(drain(&mut b).len(), 1);
}

fn run(seed: u64) -> Vec<(u64, Vec<u8>)> {
    let net = Network::new(
        seed,
        FaultConfig {
            drop_pct: 5.0,
            duplicate_pct: 5.0,
            corrupt_pct: 5.0,
            reorder_pct: 10.0,
            reorder_window: 4,
            delay_ns: 2_000,
            jitter_ns: 1_500,
            rate_limit_bytes_per_sec: 125_000_000,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    let mut c = net.port(mac(2));
    for i in 0..300 {
        let dst = match i % 3 {
            0 => mac(1),
            1 => mac(2),
            _ => BCAST,
        };
        a.transmit(&frame(dst, mac(0), i)).unwrap();
        net.advance(300);
    }
    let mut out = drain_all(&net, &mut b);
    out.extend(drain(&mut c).into_iter().map(|f| (0, f)));
    out
}

#[test]
fn same_seed_same_run_other_seed_differs() {
    let r1 = run(1234);
    assert_eq!(r1, run(1234));
    assert_ne!(r1, run(1235));
}

#[test]
fn rate_limit_spaces_deliveries() {
    // 1 000 000 bytes/s: a 100-byte frame occupies the line for 100 µs.
    let net = Network::new(
        9,
        FaultConfig {
            rate_limit_bytes_per_sec: 1_000_000,
            delay_ns: 1_000,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    let mut f = frame(mac(1), mac(0), 0);
    f.resize(100, 0);
    for _ in 0..5 {
        a.transmit(&f).unwrap(); // all at t = 0, back to back
    }
    let times: Vec<u64> = drain_all(&net, &mut b).iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [101_000, 201_000, 301_000, 401_000, 501_000]);
    // After the line went idle, a new frame starts at once.
    net.advance_to(Instant(1_000_000));
    a.transmit(&f).unwrap();
    assert_eq!(net.next_event(), Some(Instant(1_101_000)));
}

#[test]
fn oversize_and_undersize_transmit_rejected() {
    let net = Network::new(1, FaultConfig::default());
    let mut a = net.port_with_max_frame(mac(0), 128);
    let mut b = net.port(mac(1));
    assert_eq!(a.max_frame(), 128);
    let mut f = frame(mac(1), mac(0), 0);
    f.resize(129, 0);
    let e = a.transmit(&f).unwrap_err();
    assert_eq!(e, SimLinkError::FrameTooLong { len: 129, max: 128 });
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert_eq!(
        a.transmit(&f[..13]).unwrap_err(),
        SimLinkError::FrameTooShort { len: 13 }
    );
    f.truncate(128);
    a.transmit(&f).unwrap();
    assert_eq!(a.stats().sent, 1);
    assert_eq!(drain(&mut b).len(), 1);
}

#[test]
fn small_receive_buffer_reports_typed_error_and_discards() {
    let net = Network::new(1, FaultConfig::default());
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    a.transmit(&frame(mac(1), mac(0), 1)).unwrap();
    a.transmit(&frame(mac(1), mac(0), 2)).unwrap();
    let mut small = [0u8; 59];
    let e = b.receive(&mut small).unwrap_err();
    assert_eq!(e, SimLinkError::BufferTooSmall { len: 60, buf: 59 });
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert_eq!(b.stats().too_long, 1);
    // The first frame is gone; the second is next.
    let got = drain(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(tag(&got[0]), 2);
}

#[test]
fn queue_limit_drops_and_counts() {
    let net = Network::new(
        1,
        FaultConfig {
            max_queue: 4,
            ..FaultConfig::default()
        },
    );
    let mut a = net.port(mac(0));
    let mut b = net.port(mac(1));
    for i in 0..10 {
        a.transmit(&frame(mac(1), mac(0), i)).unwrap();
    }
    assert_eq!(drain(&mut b).len(), 4);
    assert_eq!(b.stats().queue_full, 6);
}

#[test]
fn clock_handle_follows_the_network() {
    use rsm_hal::Clock;
    let net = Network::new(1, FaultConfig::default());
    let clock = net.clock();
    net.advance(1234);
    assert_eq!(clock.now(), Instant(1234));
    net.advance_to(Instant(10)); // never backwards
    assert_eq!(net.now(), Instant(1234));
}

#[test]
#[should_panic(expected = "already has a port")]
fn duplicate_mac_panics() {
    let net = Network::new(1, FaultConfig::default());
    let _a = net.port(mac(0));
    let _b = net.port(mac(0));
}
