//! Two host nodes over real UDP sockets on 127.0.0.1 (issue 10's link): the exporter is
//! driven by a thread, the importer makes blocking calls that drive its own attached link.
//! Connect, putv and getv of mixed VA entries at 9014-byte frames, byte-exact.

use rsm_core::proto::NetConfig;
use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, ScatGath};
use rsm_hal::{Clock, Link};
use rsm_host::{HostPlatform, PinnedBuf, UdpLink, UdpLinkConfig, UdpPeers, DEFAULT_SOCKET_BUFFER};
use rsm_tests::with_watchdog;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Node = Rsm<HostPlatform, 256, 64, 64, 9014>;
const SEG: u32 = 0x40_5001;
const LEN: usize = 1 << 20;

fn mac(id: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x52, 0x53, id]
}

fn node(id: u32) -> Arc<Node> {
    let n = Arc::new(Node::new(
        HostPlatform::without_mlock(),
        Config {
            node_id: id,
            ..Config::default()
        },
    ));
    let now = n.platform().now();
    n.net_start(
        now,
        NetConfig {
            incarnation: 1,
            max_frame: 9014,
        },
    );
    n
}

fn link(id: u8) -> UdpLink {
    UdpLink::new(UdpLinkConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        mac: mac(id),
        peers: UdpPeers::Direct(Vec::new()),
        max_frame: 9014,
        socket_buffer: DEFAULT_SOCKET_BUFFER,
    })
    .unwrap()
}

#[test]
fn putv_and_getv_between_two_nodes_over_udp() {
    with_watchdog("two nodes over UDP", Duration::from_secs(60), || {
        let (exp, imp) = (node(1), node(2));
        let (mut la, mut lb) = (link(1), link(2));
        la.set_peers(UdpPeers::Direct(vec![(2, lb.local_addr().unwrap())]));
        lb.set_peers(UdpPeers::Direct(vec![(1, la.local_addr().unwrap())]));
        assert_eq!(la.max_frame(), 9014);
        // The importer drives its own link while it waits; the exporter has a driver thread.
        imp.attach_link(Box::leak(Box::new(lb)));
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let (exp, stop) = (exp.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = exp.platform().now();
                    if !exp.drive(&mut la, now) {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                la.stats()
            })
        };

        let seg_mem = PinnedBuf::new(LEN).unwrap();
        let ctrl = exp.get_controller(Some("rsmnet0")).unwrap();
        let seg = exp
            .export_create(ctrl, seg_mem.region(), CreateFlags::empty())
            .unwrap();
        exp.export_publish(seg, SEG, &[]).unwrap();

        let c = imp.get_controller(Some("rsmnet0")).unwrap();
        let h = imp.import_connect(c, 1, SEG, Permission::RDWR).unwrap();
        let mut src = PinnedBuf::new(LEN).unwrap();
        let pattern: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        src.as_mut_slice().unwrap().copy_from_slice(&pattern);
        let (s, dst) = (src.region(), PinnedBuf::new(LEN).unwrap());
        // 16 entries of 64 KiB, in a shuffled order of offsets, odd sizes at the ends.
        let put: Vec<IoVec<'_, _>> = (0..16)
            .map(|k| {
                let off = ((k * 5) % 16) * 65536;
                IoVec::va(&s, off, off, 65536 - (k % 3) * 7)
            })
            .collect();
        imp.putv(&mut ScatGath::new(h, &put)).unwrap();
        let mut want = vec![0u8; LEN];
        for k in 0..16 {
            let off = ((k * 5) % 16) * 65536;
            let n = 65536 - (k % 3) * 7;
            want[off..off + n].copy_from_slice(&pattern[off..off + n]);
        }
        let mut got = vec![0u8; LEN];
        seg_mem.read(0, &mut got).unwrap();
        assert!(got == want, "exported memory after putv");

        let d = dst.region();
        let get: Vec<IoVec<'_, _>> = (0..16)
            .map(|k| IoVec::va(&d, k * 65536, k * 65536, 65536))
            .collect();
        imp.getv(&mut ScatGath::new(h, &get)).unwrap();
        dst.read(0, &mut got).unwrap();
        assert!(got == want, "local memory after getv");

        imp.import_disconnect(h).unwrap();
        stop.store(true, Ordering::Relaxed);
        let stats = driver.join().unwrap();
        // Large frames were used: 2 MiB moved in far fewer than 2 MiB / 1514 frames.
        assert!(stats.sent > 100 && stats.sent < 600, "{stats:?}");
        assert!(stats.received > 100, "{stats:?}");
    });
}
