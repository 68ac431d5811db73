//! The switch with real UDP links on 127.0.0.1: learning, forwarding, flooding, spoofing,
//! release and rebinding, faults, and the capture read back.

use rsm_hal::netsim::FaultConfig;
use rsm_hal::Link;
use rsm_host::{UdpLink, UdpLinkConfig, UdpPeers, DEFAULT_SOCKET_BUFFER};
use rsm_switch::{Switch, SwitchConfig};
use std::time::{Duration, Instant};

fn mac(id: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x52, 0x53, id]
}

fn link(id: u8, sw: &Switch) -> UdpLink {
    UdpLink::new(UdpLinkConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        mac: mac(id),
        peers: UdpPeers::Switch(sw.addr()),
        max_frame: 9014,
        socket_buffer: DEFAULT_SOCKET_BUFFER,
    })
    .unwrap()
}

fn frame(dst: [u8; 6], src: [u8; 6], tag: u8) -> Vec<u8> {
    let mut f = vec![tag; 100];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xB5]);
    f
}

/// The tags of every frame `l` receives within `ms` milliseconds.
fn drain(l: &mut UdpLink, ms: u64) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 9014];
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        match l.receive(&mut buf) {
            Ok(Some(n)) => got.push(buf[n - 1]),
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e:?}"),
        }
    }
    got
}

#[test]
fn learns_forwards_floods_and_drops_spoofed_frames() {
    let sw = Switch::start(SwitchConfig::default()).unwrap();
    let (mut a, mut b, mut c) = (link(1, &sw), link(2, &sw), link(3, &sw));
    // Each node says hello (broadcast): the switch learns the three ports.
    for (l, id) in [(&mut a, 1), (&mut b, 2), (&mut c, 3)] {
        l.transmit(&frame([0xff; 6], mac(id), 10 + id)).unwrap();
    }
    // A port is known once it sent: a's hello found nobody, b's reached a, c's both.
    assert_eq!(drain(&mut a, 100), [12, 13]);
    assert_eq!(drain(&mut b, 50), [13]);
    assert_eq!(drain(&mut c, 50), Vec::<u8>::new());
    // Unicast goes to one port only.
    a.transmit(&frame(mac(2), mac(1), 20)).unwrap();
    assert_eq!(drain(&mut b, 100), [20]);
    assert_eq!(drain(&mut c, 50), Vec::<u8>::new());
    // Another process sending with node 2's MAC is dropped; node 2 is unaffected.
    let mut spoofer = link(2, &sw);
    spoofer.transmit(&frame(mac(1), mac(2), 30)).unwrap();
    a.transmit(&frame(mac(2), mac(1), 31)).unwrap();
    assert_eq!(drain(&mut a, 100), Vec::<u8>::new());
    assert_eq!(drain(&mut b, 50), [31]);
    let st = sw.stats();
    let spoofed: u64 = st.ports.iter().map(|p| p.counters.spoofed).sum();
    assert_eq!(spoofed, 1);
    assert_eq!(st.port_of(mac(2)).unwrap().addr, b.local_addr().unwrap());
    // Node 2 restarts on a new port: once released, the new port is learned and served,
    // while a third process with node 2's MAC is still dropped.
    drop(b);
    sw.release(mac(2));
    let mut b2 = link(2, &sw);
    b2.transmit(&frame([0xff; 6], mac(2), 40)).unwrap();
    assert_eq!(drain(&mut a, 100), [40]);
    a.transmit(&frame(mac(2), mac(1), 41)).unwrap();
    assert_eq!(drain(&mut b2, 100), [41]);
    spoofer.transmit(&frame(mac(1), mac(2), 42)).unwrap();
    assert_eq!(drain(&mut a, 100), Vec::<u8>::new());
    let st = sw.stop();
    assert_eq!(st.port_of(mac(2)).unwrap().addr, b2.local_addr().unwrap());
    assert_eq!(st.ports.iter().map(|p| p.counters.spoofed).sum::<u64>(), 2);
}

#[test]
fn configured_bindings_need_no_learning() {
    let sw = Switch::start(SwitchConfig {
        learn: false,
        ..SwitchConfig::default()
    })
    .unwrap();
    let (mut a, mut b) = (link(1, &sw), link(2, &sw));
    sw.bind_port(mac(1), a.local_addr().unwrap());
    sw.bind_port(mac(2), b.local_addr().unwrap());
    // No hello needed: the first frame is forwarded.
    a.transmit(&frame(mac(2), mac(1), 1)).unwrap();
    assert_eq!(drain(&mut b, 100), [1]);
    // A port nobody configured is not learned.
    let mut stranger = link(3, &sw);
    stranger.transmit(&frame(mac(1), mac(3), 2)).unwrap();
    assert_eq!(drain(&mut a, 100), Vec::<u8>::new());
    let st = sw.stop();
    assert_eq!(st.ports.iter().map(|p| p.counters.unbound).sum::<u64>(), 1);
}

#[test]
fn faults_apply_to_real_datagrams() {
    let sw = Switch::start(SwitchConfig {
        faults: FaultConfig {
            drop_pct: 50.0,
            delay_ns: 2_000_000,
            ..FaultConfig::default()
        },
        seed: 7,
        ..SwitchConfig::default()
    })
    .unwrap();
    let (mut a, mut b) = (link(1, &sw), link(2, &sw));
    sw.bind_port(mac(1), a.local_addr().unwrap());
    sw.bind_port(mac(2), b.local_addr().unwrap());
    for k in 0..200u8 {
        a.transmit(&frame(mac(2), mac(1), k)).unwrap();
    }
    let got = drain(&mut b, 300);
    let st = sw.stop();
    let dropped = st.port_of(mac(1)).unwrap().counters.faults.dropped;
    assert_eq!(
        got.len() as u64 + dropped,
        200,
        "every frame delivered or dropped"
    );
    assert!(
        (60..=140).contains(&dropped),
        "about half dropped: {dropped}"
    );
    // Delay keeps order here (no jitter): what arrives is in sending order.
    assert!(got.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn the_capture_holds_every_received_frame() {
    let path = std::env::temp_dir().join(format!("rsm-switch-test-{}.pcap", std::process::id()));
    let sw = Switch::start(SwitchConfig {
        pcap: Some(path.clone()),
        snaplen: 64,
        ..SwitchConfig::default()
    })
    .unwrap();
    let (mut a, mut b) = (link(1, &sw), link(2, &sw));
    for k in 0..10u8 {
        a.transmit(&frame([0xff; 6], mac(1), k)).unwrap();
        b.transmit(&frame(mac(1), mac(2), 100 + k)).unwrap();
    }
    drain(&mut a, 100);
    let st = sw.stop();
    // Read back by hand (the format of pcap(5), not our writer's code): the global header
    // (magic, version 2.4, snap length, link type 1 = Ethernet), then per record
    // (seconds, microseconds, captured length, original length) and the bytes.
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0xa1b2_c3d4, "little-endian microsecond pcap");
    assert_eq!(
        (u32_at(16), u32_at(20)),
        (65_507, 1),
        "largest frame, Ethernet"
    );
    let (mut at, mut n) = (24usize, 0u64);
    while at < bytes.len() {
        let (incl, orig) = (u32_at(at + 8) as usize, u32_at(at + 12));
        assert_eq!(
            (incl, orig),
            (64, 100),
            "cut to the snap length, original length kept"
        );
        let data = &bytes[at + 16..at + 16 + incl];
        assert_eq!(&data[12..14], &[0x88, 0xB5]);
        at += 16 + incl;
        n += 1;
    }
    assert_eq!(n, 20);
    assert_eq!(st.captured, 20);
    assert_eq!(st.rx_frames(), 20);
}
