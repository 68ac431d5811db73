//! A simulated cluster for the wire-protocol tests: `N` nodes on one
//! [`rsm_hal::netsim::Network`], all driven by one thread through the non-blocking layer, in
//! simulated time — deterministic per seed.

use rsm_core::proto::{NetConfig, NetStats};
use rsm_core::{Config, Rsm};
use rsm_hal::fake::FakePlatform;
use rsm_hal::netsim::{FaultConfig, Network, SimLink, SimLinkError};
use rsm_hal::{Instant, Link};

/// A node of the simulated cluster.
pub type Node = Rsm<FakePlatform>;

/// Nodes on a simulated network.
pub struct Cluster {
    /// The network (clock, faults, statistics).
    pub net: Network,
    /// The nodes, by node id (`nodes[i]` is node `i`); `None` while "powered off".
    pub nodes: Vec<Option<Box<Node>>>,
    links: Vec<Counted>,
    boots: Vec<u64>,
    /// Per node: `Some(frames)` while frames arriving at the powered-off node are kept (see
    /// [`Cluster::capture`]).
    captured: Vec<Option<Vec<Vec<u8>>>>,
}

/// How a node drove its link ([`Cluster::link_counts`]): transmits and kicks
/// ([`Link::kick`]), and receptions in a row with no transmit between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Frames transmitted.
    pub transmits: u64,
    /// Kicks.
    pub kicks: u64,
    /// Frames transmitted since the last kick.
    pub unkicked: u64,
    /// Frames received since the last transmit (in the current `drive`).
    pub rx_run: u64,
    /// The longest such run.
    pub max_rx_run: u64,
    /// Frames received in the current `drive`.
    pub rx_this_drive: u64,
    /// The most frames received in one `drive`.
    pub max_rx_per_drive: u64,
}

/// A simulated link that counts how it is driven.
struct Counted {
    link: SimLink,
    counts: LinkCounts,
}

impl Counted {
    fn new(link: SimLink) -> Self {
        Counted {
            link,
            counts: LinkCounts::default(),
        }
    }
}

impl Link for Counted {
    type Error = SimLinkError;
    fn mac(&self) -> [u8; 6] {
        self.link.mac()
    }
    fn max_frame(&self) -> usize {
        self.link.max_frame()
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), SimLinkError> {
        let c = &mut self.counts;
        c.transmits += 1;
        c.unkicked += 1;
        c.rx_run = 0;
        self.link.transmit(frame)
    }
    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, SimLinkError> {
        let r = self.link.receive(buf);
        if let Ok(Some(_)) = r {
            let c = &mut self.counts;
            c.rx_run += 1;
            c.max_rx_run = c.max_rx_run.max(c.rx_run);
            c.rx_this_drive += 1;
        }
        r
    }
    fn kick(&mut self) {
        self.counts.kicks += 1;
        self.counts.unkicked = 0;
        self.link.kick();
    }
}

/// The MAC of node `id` (DESIGN §4a).
pub fn mac(id: u32) -> [u8; 6] {
    rsm_core::node_mac(id)
}

impl Cluster {
    /// `n` nodes (ids 0..n) on a network with `faults`, seeded with `seed`.
    pub fn new(n: u32, seed: u64, faults: FaultConfig) -> Self {
        let net = Network::new(seed, faults);
        let mut c = Cluster {
            nodes: Vec::new(),
            links: Vec::new(),
            boots: Vec::new(),
            captured: Vec::new(),
            net,
        };
        for id in 0..n {
            c.links.push(Counted::new(c.net.port(mac(id))));
            c.boots.push(0);
            c.captured.push(None);
            c.nodes.push(None);
            c.boot(id);
        }
        c
    }

    /// (Re)start node `id` with a fresh instance and the next incarnation.
    pub fn boot(&mut self, id: u32) {
        let i = id as usize;
        self.boots[i] += 1;
        let node = Box::new(Node::new(
            FakePlatform::new(),
            Config {
                node_id: id,
                ..Config::default()
            },
        ));
        node.net_start(
            self.net.now(),
            NetConfig {
                incarnation: self.boots[i],
                max_frame: self.links[i].max_frame(),
            },
        );
        // Frames that were queued for the old instance are not the new one's.
        let mut buf = [0u8; 2048];
        while let Ok(Some(_)) = self.links[i].receive(&mut buf) {}
        self.nodes[i] = Some(node);
    }

    /// Power node `id` off (its frames are no longer received or sent).
    pub fn power_off(&mut self, id: u32) {
        self.nodes[id as usize] = None;
    }

    /// Transmit a raw `frame` from node `id`'s port, as if that node had sent it (whether it
    /// is powered on or not): for hostile-peer tests that hand-craft frames. The network
    /// routes it by its destination MAC; nothing checks its source MAC.
    pub fn inject(&mut self, id: u32, frame: &[u8]) -> Result<(), SimLinkError> {
        self.links[id as usize].transmit(frame)
    }

    /// While `on`, frames that arrive at node `id` while it is powered off are kept for
    /// [`Cluster::take_captured`] instead of being dropped (turning it off drops those kept).
    pub fn capture(&mut self, id: u32, on: bool) {
        self.captured[id as usize] = on.then(Vec::new);
    }

    /// The frames kept for node `id` since the last call (see [`Cluster::capture`]), in
    /// order of arrival.
    pub fn take_captured(&mut self, id: u32) -> Vec<Vec<u8>> {
        self.captured[id as usize]
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Node `id` (panics if powered off: a test bug).
    pub fn node(&self, id: u32) -> &Node {
        self.nodes[id as usize]
            .as_deref()
            .expect("node is powered on")
    }

    /// What node `id`'s link saw of how the node drove it.
    pub fn link_counts(&self, id: u32) -> LinkCounts {
        self.links[id as usize].counts
    }

    /// One round: every node receives what arrived and sends what it has. Returns whether
    /// any frame moved.
    pub fn round(&mut self) -> bool {
        let now = self.net.now();
        let mut moved = false;
        for ((node, link), cap) in self
            .nodes
            .iter()
            .zip(self.links.iter_mut())
            .zip(self.captured.iter_mut())
        {
            match node {
                Some(n) => {
                    link.counts.rx_this_drive = 0;
                    link.counts.rx_run = 0;
                    moved |= n.drive(link, now);
                    let c = &mut link.counts;
                    c.max_rx_per_drive = c.max_rx_per_drive.max(c.rx_this_drive);
                }
                None => {
                    let mut buf = [0u8; 2048];
                    while let Ok(Some(len)) = link.receive(&mut buf) {
                        if let Some(frames) = cap.as_mut() {
                            frames.push(buf[..len].to_vec());
                        }
                    }
                }
            }
        }
        moved
    }

    /// Run rounds, advancing simulated time to the next network event or node timer when
    /// nothing moves, until `done()` or until `limit_ns` of simulated time passed. Returns
    /// whether `done()` became true.
    pub fn run_until(&mut self, limit_ns: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.net.now().add_nanos(limit_ns);
        loop {
            while self.round() {}
            if done(self) {
                return true;
            }
            let now = self.net.now();
            if now >= end {
                return false;
            }
            let mut next = end;
            if let Some(t) = self.net.next_event() {
                next = next.min(t);
            }
            for n in self.nodes.iter().flatten() {
                if let Some(t) = n.poll_timeout() {
                    next = next.min(t);
                }
            }
            // Always make progress: at least 1 µs.
            let next = next.max(now.add_nanos(1_000));
            self.net.advance_to(next);
        }
    }

    /// Run for `ns` of simulated time.
    pub fn run_for(&mut self, ns: u64) {
        self.run_until(ns, |_| false);
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The sum of every powered-on node's engine counters.
    pub fn stats(&self) -> NetStats {
        let mut t = NetStats::default();
        for n in self.nodes.iter().flatten() {
            t += n.net_stats();
        }
        t
    }
}

/// Nodes on a simulated network driven by a background pump thread, for the blocking API:
/// the pump moves frames and advances simulated time (by at most 1 ms per idle turn, so
/// timeouts pass quickly but in order) until the value is dropped.
pub struct Pumped {
    /// The nodes, by node id.
    pub nodes: Vec<std::sync::Arc<Node>>,
    /// The network.
    pub net: Network,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Per node: powered off (the pump no longer drives it; frames to it are dropped).
    off: std::sync::Arc<Vec<std::sync::atomic::AtomicBool>>,
    pump: Option<std::thread::JoinHandle<()>>,
}

impl Pumped {
    /// `n` nodes (ids 0..n) with networking started, and the pump running.
    pub fn new(n: u32, seed: u64, faults: FaultConfig) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let net = Network::new(seed, faults);
        let mut nodes = Vec::new();
        let mut links = Vec::new();
        for id in 0..n {
            let link = net.port(mac(id));
            let node = Arc::new(Node::new(
                FakePlatform::new(),
                Config {
                    node_id: id,
                    ..Config::default()
                },
            ));
            node.net_start(
                net.now(),
                NetConfig {
                    incarnation: 1,
                    max_frame: link.max_frame(),
                },
            );
            nodes.push(node);
            links.push(link);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let off: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        let pump = {
            let (nodes, net, stop, off) = (nodes.clone(), net.clone(), stop.clone(), off.clone());
            std::thread::Builder::new()
                .name("netsim-pump".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let now = net.now();
                        let mut moved = false;
                        for ((node, link), off) in
                            nodes.iter().zip(links.iter_mut()).zip(off.iter())
                        {
                            if off.load(Ordering::Relaxed) {
                                let mut buf = [0u8; 2048];
                                while let Ok(Some(_)) = link.receive(&mut buf) {}
                            } else {
                                moved |= node.drive(link, now);
                            }
                        }
                        if !moved {
                            let mut next = now.add_nanos(1_000_000);
                            if let Some(t) = net.next_event() {
                                next = next.min(t);
                            }
                            for (node, _) in nodes
                                .iter()
                                .zip(off.iter())
                                .filter(|(_, off)| !off.load(Ordering::Relaxed))
                            {
                                if let Some(t) = node.poll_timeout() {
                                    next = next.min(t);
                                }
                            }
                            net.advance_to(next.max(now.add_nanos(1_000)));
                            std::thread::sleep(std::time::Duration::from_micros(50));
                        }
                    }
                })
                .expect("spawn the pump")
        };
        // Let the hellos go round.
        let end = net.now().add_nanos(50_000_000);
        while net.now() < end {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Pumped {
            nodes,
            net,
            stop,
            off,
            pump: Some(pump),
        }
    }

    /// Power node `id` off: from now on the pump neither drives it nor delivers frames to
    /// it (they are dropped), as if it had crashed. Its `Rsm` stays usable by the test, but
    /// nothing it queues leaves the node.
    pub fn power_off(&self, id: u32) {
        self.off[id as usize].store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Node `id`.
    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }
}

impl Drop for Pumped {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
    }
}

/// A platform for nodes with no driver thread (issue 9 §4): memory of a [`FakePlatform`],
/// the clock of the simulated network, and a [`Wait::wait`](rsm_hal::Wait::wait) that runs
/// the whole simulation one step — it services every node of its cluster (each drives its
/// attached link) and advances simulated time to the next frame or timer. So one thread can
/// make a blocking call on one node while the others answer (rsm-hal's rule 4: `wait` runs
/// with no lock of `rsm-core` held and may call non-blocking node methods).
pub struct SimPlatform {
    fake: FakePlatform,
    net: Network,
    nodes: std::sync::Arc<std::sync::Mutex<Vec<std::sync::Weak<SimNode>>>>,
}

/// A node of a [`Solo`] cluster.
pub type SimNode = Rsm<SimPlatform>;

impl std::ops::Deref for SimPlatform {
    type Target = FakePlatform;
    fn deref(&self) -> &FakePlatform {
        &self.fake
    }
}

impl rsm_hal::Memory for SimPlatform {
    type Region = rsm_hal::fake::FakeRegion;
    type Pin = <FakePlatform as rsm_hal::Memory>::Pin;
    type Error = <FakePlatform as rsm_hal::Memory>::Error;
    fn pin(&self, region: &Self::Region) -> Result<Self::Pin, Self::Error> {
        self.fake.pin(region)
    }
    fn unpin(&self, pin: Self::Pin) {
        self.fake.unpin(pin)
    }
    fn copy(
        &self,
        dst: &Self::Region,
        dst_off: usize,
        src: &Self::Region,
        src_off: usize,
        len: usize,
    ) -> Result<(), Self::Error> {
        rsm_hal::Memory::copy(&self.fake, dst, dst_off, src, src_off, len)
    }
    fn write(&self, dst: &Self::Region, dst_off: usize, src: &[u8]) -> Result<(), Self::Error> {
        rsm_hal::Memory::write(&self.fake, dst, dst_off, src)
    }
    fn read(&self, src: &Self::Region, src_off: usize, dst: &mut [u8]) -> Result<(), Self::Error> {
        rsm_hal::Memory::read(&self.fake, src, src_off, dst)
    }
}

impl rsm_hal::Checksum for SimPlatform {}

impl rsm_hal::Clock for SimPlatform {
    fn now(&self) -> Instant {
        self.net.now()
    }
}

impl rsm_hal::Wait for SimPlatform {
    fn prepare_wait(&self) -> rsm_hal::WaitToken {
        self.fake.prepare_wait()
    }

    fn wait(&self, token: rsm_hal::WaitToken, deadline: Option<Instant>) {
        if self.fake.prepare_wait() != token {
            return;
        }
        let nodes: Vec<std::sync::Arc<SimNode>> = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        let now = self.net.now();
        let mut next = deadline.unwrap_or(now.add_nanos(1_000_000_000));
        for n in &nodes {
            if let Some(t) = n.service(now) {
                next = next.min(t);
            }
        }
        if self.fake.prepare_wait() != token {
            return;
        }
        if let Some(t) = self.net.next_event() {
            next = next.min(t);
        }
        // Always make progress: at least 1 µs.
        self.net.advance_to(next.max(now.add_nanos(1_000)));
    }

    fn wake(&self) {
        self.fake.wake()
    }
}

/// Nodes on a simulated network with no driver thread: each drives its own attached link
/// ([`Rsm::attach_link`]) whenever a blocking call waits ([`SimPlatform`]). Everything runs on
/// the caller's thread.
pub struct Solo {
    /// The network.
    pub net: Network,
    /// The nodes, by node id.
    pub nodes: Vec<std::sync::Arc<SimNode>>,
}

impl Solo {
    /// `n` nodes (ids 0..n) on a network with `faults`, networking started, links attached.
    pub fn new(n: u32, seed: u64, faults: FaultConfig) -> Self {
        use std::sync::{Arc, Mutex};
        let net = Network::new(seed, faults);
        let registry = Arc::new(Mutex::new(Vec::new()));
        let mut nodes = Vec::new();
        for id in 0..n {
            let platform = SimPlatform {
                fake: FakePlatform::new(),
                net: net.clone(),
                nodes: registry.clone(),
            };
            let node = Arc::new(SimNode::new(
                platform,
                Config {
                    node_id: id,
                    ..Config::default()
                },
            ));
            let link: &'static mut SimLink = Box::leak(Box::new(net.port(mac(id))));
            node.net_start(
                net.now(),
                NetConfig {
                    incarnation: 1,
                    max_frame: link.max_frame(),
                },
            );
            node.attach_link(link);
            registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Arc::downgrade(&node));
            nodes.push(node);
        }
        Solo { net, nodes }
    }

    /// Node `id`.
    pub fn node(&self, id: u32) -> &SimNode {
        &self.nodes[id as usize]
    }

    /// Drive every node (one thread) for `ns` of simulated time.
    pub fn run_for(&self, ns: u64) {
        let end = self.net.now().add_nanos(ns);
        while self.net.now() < end {
            let now = self.net.now();
            let mut next = end;
            for n in &self.nodes {
                if let Some(t) = n.service(now) {
                    next = next.min(t);
                }
            }
            if let Some(t) = self.net.next_event() {
                next = next.min(t);
            }
            self.net.advance_to(next.max(now.add_nanos(1_000)));
        }
    }
}
