//! Large frames (issue 9 §3): the frame size is the node's build-time `F` (up to 65 535
//! bytes), the size in use is announced in the hello and each peer gets frames of the smaller
//! of both ends' sizes; a buffer shorter than the frame size is an error.

use rsm_core::proto::NetConfig;
use rsm_core::{Config, CreateFlags, IoVec, Permission, Rsm, RsmError, ScatGath};
use rsm_hal::fake::FakePlatform;
use rsm_hal::netsim::{FaultConfig, Network, SimLink};
use rsm_hal::{Instant, Link};

type Big = Rsm<FakePlatform, 256, 64, 64, 65535>;
type Small = Rsm<FakePlatform>;
const MIB: usize = 1 << 20;
const SEG: u32 = 0x40_5001;

/// A node of either size behind one trait, for the pump.
trait Node {
    fn drive_at(&self, link: &mut SimLink, now: Instant) -> bool;
    fn timeout(&self) -> Option<Instant>;
}
impl<const F: usize> Node for Rsm<FakePlatform, 256, 64, 64, F> {
    fn drive_at(&self, link: &mut SimLink, now: Instant) -> bool {
        self.drive(link, now)
    }
    fn timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

fn start<const F: usize>(n: &Rsm<FakePlatform, 256, 64, 64, F>, link: &SimLink, now: Instant) {
    n.net_start(
        now,
        NetConfig {
            incarnation: 1,
            max_frame: link.max_frame(),
        },
    );
}

/// Drive both nodes until `done()` or 10 s of simulated time.
fn run(
    net: &Network,
    nodes: [(&dyn Node, &mut SimLink); 2],
    mut done: impl FnMut() -> bool,
) -> bool {
    let [(a, la), (b, lb)] = nodes;
    let end = net.now().add_nanos(10_000_000_000);
    while net.now() < end {
        let now = net.now();
        while a.drive_at(la, now) | b.drive_at(lb, now) {}
        if done() {
            return true;
        }
        let mut next = end;
        for t in [net.next_event(), a.timeout(), b.timeout()]
            .into_iter()
            .flatten()
        {
            next = next.min(t);
        }
        net.advance_to(next.max(now.add_nanos(1_000)));
    }
    false
}

/// Node 1 (exporter, `ex`) and node 0 (importer, `im`): connect, putv 1 MiB, getv it back;
/// returns the frames node 0 sent during the putv and node 1 during the getv.
fn transfer<const A: usize, const B: usize>(
    im: &Rsm<FakePlatform, 256, 64, 64, A>,
    ex: &Rsm<FakePlatform, 256, 64, 64, B>,
    net: &Network,
    l0: &mut SimLink,
    l1: &mut SimLink,
) -> (u64, u64) {
    let ctrl = ex.get_controller(Some("rsmnet0")).unwrap();
    let mem = ex.platform().alloc(MIB);
    let seg = ex
        .export_create(ctrl, mem.clone(), CreateFlags::empty())
        .unwrap();
    ex.export_publish(seg, SEG, &[]).unwrap();
    assert!(run(net, [(im, l0), (ex, l1)], || im.net_peers().len() == 1));
    let c0 = im.get_controller(Some("rsmnet0")).unwrap();
    let op = im
        .start_import_connect(c0, 1, SEG, Permission::RDWR)
        .unwrap();
    let mut imp = None;
    assert!(run(net, [(im, l0), (ex, l1)], || {
        imp = im.take_connect(op);
        imp.is_some()
    }));
    let imp = imp.unwrap().unwrap();
    let src = im.platform().alloc(MIB);
    let data: Vec<u8> = (0..MIB).map(|i| (i * 31 % 253) as u8).collect();
    im.platform().write(&src, 0, &data);
    let iov: Vec<IoVec<'_, _>> = (0..4)
        .map(|k| IoVec::va(&src, k * MIB / 4, k * MIB / 4, MIB / 4))
        .collect();
    let before = im.net_stats().frames_sent;
    let op = im.start_putv(&ScatGath::new(imp, &iov)).unwrap();
    let mut done = None;
    assert!(run(net, [(im, l0), (ex, l1)], || {
        done = im.take_completion(op);
        done.is_some()
    }));
    assert_eq!(done.unwrap().result, Ok(()));
    let put_frames = im.net_stats().frames_sent - before;
    assert_eq!(ex.platform().read(&mem, 0, MIB), data, "exported memory");
    let dst = im.platform().alloc(MIB);
    let iov: Vec<IoVec<'_, _>> = (0..4)
        .map(|k| IoVec::va(&dst, k * MIB / 4, k * MIB / 4, MIB / 4))
        .collect();
    let before = ex.net_stats().frames_sent;
    let op = im.start_getv(&ScatGath::new(imp, &iov)).unwrap();
    let mut done = None;
    assert!(run(net, [(im, l0), (ex, l1)], || {
        done = im.take_completion(op);
        done.is_some()
    }));
    assert_eq!(done.unwrap().result, Ok(()));
    assert_eq!(im.platform().read(&dst, 0, MIB), data, "read back");
    (put_frames, ex.net_stats().frames_sent - before)
}

#[test]
fn a_mib_moves_in_65000_byte_frames() {
    let net = Network::new(51, FaultConfig::default());
    let (mut l0, mut l1) = (
        net.port_with_max_frame(rsm_core::node_mac(0), 65_000),
        net.port_with_max_frame(rsm_core::node_mac(1), 65_000),
    );
    let mk = |id| {
        Box::new(Big::new(
            FakePlatform::new(),
            Config {
                node_id: id,
                ..Config::DEFAULT
            },
        ))
    };
    let (im, ex) = (mk(0), mk(1));
    start(&*im, &l0, net.now());
    start(&*ex, &l1, net.now());
    let (put, get) = transfer(&*im, &*ex, &net, &mut l0, &mut l1);
    // 1 MiB in frames of ~64 900 data bytes: 17 data frames (plus a few control frames);
    // at 1514 bytes it takes about 720.
    assert!(put <= 30, "putv sent {put} frames");
    assert!(get <= 30, "getv answered in {get} frames");
    // A transmit buffer must hold the frame size in use.
    let mut short = vec![0u8; 9000];
    assert_eq!(
        im.poll_transmit(net.now(), &mut short),
        Err(RsmError::BadLength)
    );
}

#[test]
fn each_peer_gets_the_smaller_of_both_frame_sizes() {
    // A large-frame node (F = 65 535, link 65 000) and a standard one (1514): the big one
    // must send the small one frames of at most 1514 bytes, which it can receive.
    let net = Network::new(52, FaultConfig::default());
    let (mut l0, mut l1) = (
        net.port_with_max_frame(rsm_core::node_mac(0), 65_000),
        net.port_with_max_frame(rsm_core::node_mac(1), 1514),
    );
    let im = Box::new(Big::new(FakePlatform::new(), Config::DEFAULT));
    let ex = Box::new(Small::new(
        FakePlatform::new(),
        Config {
            node_id: 1,
            ..Config::DEFAULT
        },
    ));
    start(&*im, &l0, net.now());
    start(&*ex, &l1, net.now());
    let (put, get) = transfer(&*im, &*ex, &net, &mut l0, &mut l1);
    // ~1 460 data bytes per frame: at least 700 frames each way.
    assert!(
        put >= 700,
        "putv sent only {put} frames: larger than the peer takes?"
    );
    assert!(get >= 700, "getv answered in only {get} frames");
    assert_eq!(
        ex.net_stats().malformed,
        0,
        "every frame fitted the small node"
    );
    let small = net.stats(rsm_core::node_mac(1)).expect("port of node 1");
    assert_eq!(small.too_long, 0);
}
