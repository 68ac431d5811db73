//! The host node runtime: an [`Rsm`] node of a Linux process, joined to a cluster over a
//! [`UdpLink`] and driven by one background thread.
//!
//! The driver thread sleeps in `poll` on the link's socket and on an eventfd (the
//! [`Kicker`], which [`rsm_hal::Wait::kick`] writes when an API call queues work for the
//! engine), at most until the engine's next deadline ([`Rsm::poll_timeout`]) — it never
//! spins. Blocking RSMAPI calls on other threads sleep in the platform's condition variable
//! until the driver completes them.
//!
//! # Configuration
//! From a [`NodeConfig`] value, or from the environment ([`NodeConfig::from_env`]):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `RSM_NODE_ID` | this node's id, 0..=63 | 0 |
//! | `RSM_LINK` | `udp:<bind addr>,switch=<addr>` or `udp:<bind addr>,peer=<id>@<addr>[,peer=…]` | none: the node is alone |
//! | `RSM_MAX_FRAME` | the largest frame, 60..=65 507 | 65 507 |
//! | `RSM_INCARNATION` | this boot's incarnation (nonzero, larger after every restart) | the time in µs |
//!
//! An unconfigured process is node 0 alone (only `loopback` segments are reachable; a
//! remote call fails as it would towards an unreachable node).
//!
//! # Shutting down
//! [`HostNode::shutdown`] (also run on drop) leaves the cluster cleanly ([`Rsm::net_leave`]):
//! importers of this node's segments are told at once, so their calls end with
//! `RSMERR_CONN_ABORTED` instead of `RSMERR_REMOTE_NODE_UNREACHABLE` five seconds later.

use crate::udp::{
    UdpLink, UdpLinkConfig, UdpPeers, UdpStats, DEFAULT_SOCKET_BUFFER, UDP_MAX_FRAME,
};
use crate::{HostError, HostPlatform};
use rsm_core::proto::NetConfig;
use rsm_core::{Config, Rsm};
use rsm_hal::{Clock, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The node type of the host runtime: default capacities, frames up to the UDP limit.
pub type HostRsm = Rsm<HostPlatform, 256, 64, 64, UDP_MAX_FRAME>;

/// An eventfd that wakes a driver thread sleeping in `poll` ([`rsm_hal::Wait::kick`]).
#[derive(Debug)]
pub struct Kicker {
    fd: OwnedFd,
}

impl Kicker {
    /// A new, unsignalled eventfd.
    ///
    /// # Errors
    /// `Other` (with `errno`) if the system has no eventfd to give.
    pub fn new() -> Result<Arc<Kicker>, HostError> {
        // SAFETY: `eventfd` takes no pointers; a negative result is an error, else a new
        // descriptor that nobody else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(HostError::from_errno(
                ErrorKind::Other,
                e.raw_os_error().unwrap_or(0),
            ));
        }
        // SAFETY: `fd` is a fresh descriptor owned by no one else (see above).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Kicker { fd }))
    }

    /// Signal the driver (never blocks: a full counter is already signalled).
    pub fn kick(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live `u64` to an eventfd this value owns.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Reset the signal (after waking).
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live `u64` from an eventfd this value owns;
        // non-blocking, so an unsignalled eventfd returns `EAGAIN` at once.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

impl AsRawFd for Kicker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sleep until `a` or `b` is readable or `timeout` passed.
fn wait_either(a: RawFd, b: RawFd, timeout: Duration) {
    let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
    let mut fds = [
        libc::pollfd {
            fd: a,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is an array of two live `pollfd`s and 2 is its length; the descriptors
    // are held open by the caller for the call.
    let _ = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
}

/// How a node joins its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSpec {
    /// No link: the node is alone.
    None,
    /// A UDP link bound to `bind`, to the switch or to direct peers.
    Udp {
        /// The local address (port 0 = ephemeral).
        bind: SocketAddr,
        /// Where frames go.
        peers: UdpPeers,
    },
}

/// The configuration of a [`HostNode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's id (0..=63).
    pub node_id: u32,
    /// Its link.
    pub link: LinkSpec,
    /// The largest frame (at most [`UDP_MAX_FRAME`]).
    pub max_frame: usize,
    /// This boot's incarnation (nonzero, larger after every restart).
    pub incarnation: u64,
}

/// A configuration the environment gave wrongly: which variable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.var, self.why)
    }
}

impl std::error::Error for ConfigError {}

fn boot_incarnation() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl NodeConfig {
    /// Node 0, alone.
    pub fn alone() -> NodeConfig {
        NodeConfig {
            node_id: 0,
            link: LinkSpec::None,
            max_frame: UDP_MAX_FRAME,
            incarnation: boot_incarnation(),
        }
    }

    /// Parse an `RSM_LINK` value (see the module docs).
    ///
    /// # Errors
    /// A description of what does not parse.
    pub fn parse_link(s: &str) -> Result<LinkSpec, String> {
        let rest = s
            .strip_prefix("udp:")
            .ok_or_else(|| format!("`{s}`: only `udp:` links are known"))?;
        let mut parts = rest.split(',');
        let bind: SocketAddr = parts
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|e| format!("bind address: {e}"))?;
        let mut switch = None;
        let mut peers = Vec::new();
        for p in parts {
            if let Some(a) = p.strip_prefix("switch=") {
                switch = Some(
                    a.parse()
                        .map_err(|e| format!("switch address `{a}`: {e}"))?,
                );
            } else if let Some(v) = p.strip_prefix("peer=") {
                let (id, a) = v
                    .split_once('@')
                    .ok_or_else(|| format!("peer `{v}`: expected <id>@<addr>"))?;
                let id: u32 = id.parse().map_err(|e| format!("peer id `{id}`: {e}"))?;
                let a: SocketAddr = a.parse().map_err(|e| format!("peer address `{a}`: {e}"))?;
                peers.push((id, a));
            } else {
                return Err(format!("`{p}`: expected switch=… or peer=…"));
            }
        }
        let peers = match (switch, peers.is_empty()) {
            (Some(a), true) => UdpPeers::Switch(a),
            (None, false) => UdpPeers::Direct(peers),
            (Some(_), false) => return Err("a switch or peers, not both".into()),
            (None, true) => return Err("no switch= and no peer=".into()),
        };
        Ok(LinkSpec::Udp { bind, peers })
    }

    /// The configuration from `RSM_NODE_ID`, `RSM_LINK`, `RSM_MAX_FRAME` and
    /// `RSM_INCARNATION` (module docs); unset variables take their defaults.
    ///
    /// # Errors
    /// A variable that is set but does not parse.
    pub fn from_env() -> Result<NodeConfig, ConfigError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`NodeConfig::from_env`] over any source of variables (for tests).
    ///
    /// # Errors
    /// As [`NodeConfig::from_env`].
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<NodeConfig, ConfigError> {
        let mut cfg = NodeConfig::alone();
        if let Some(v) = get("RSM_NODE_ID") {
            cfg.node_id = v
                .parse()
                .ok()
                .filter(|&n: &u32| n < 64)
                .ok_or_else(|| ConfigError {
                    var: "RSM_NODE_ID",
                    why: format!("`{v}` is not a node id 0..=63"),
                })?;
        }
        if let Some(v) = get("RSM_LINK") {
            cfg.link = Self::parse_link(&v).map_err(|why| ConfigError {
                var: "RSM_LINK",
                why,
            })?;
        }
        if let Some(v) = get("RSM_MAX_FRAME") {
            cfg.max_frame = v
                .parse()
                .ok()
                .filter(|n| (60..=UDP_MAX_FRAME).contains(n))
                .ok_or_else(|| ConfigError {
                    var: "RSM_MAX_FRAME",
                    why: format!("`{v}` is not a frame size 60..=65507"),
                })?;
        }
        if let Some(v) = get("RSM_INCARNATION") {
            cfg.incarnation =
                v.parse()
                    .ok()
                    .filter(|&n: &u64| n > 0)
                    .ok_or_else(|| ConfigError {
                        var: "RSM_INCARNATION",
                        why: format!("`{v}` is not a nonzero number"),
                    })?;
        }
        Ok(cfg)
    }
}

/// The MAC of node `id` (DESIGN §4a).
pub fn node_mac(id: u32) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x52, 0x53, id as u8]
}

/// The node's link, leaked while the node drives it ([`Rsm::attach_link`] keeps a
/// `&'static mut`); turned back into its box when the node stops.
struct Leaked(*mut UdpLink);

// SAFETY: the pointer is only dereferenced through the reference the node holds (under its
// link lock) and, once detached, by `HostNode::reclaim_link` alone; `UdpLink` is `Send`.
unsafe impl Send for Leaked {}
// SAFETY: `Leaked` offers no access through `&self`.
unsafe impl Sync for Leaked {}

/// A node of this process and its driver thread (module docs).
pub struct HostNode {
    rsm: Arc<HostRsm>,
    kicker: Arc<Kicker>,
    stop: Arc<AtomicBool>,
    driver: Option<JoinHandle<()>>,
    link: Option<Leaked>,
    addr: Option<SocketAddr>,
    buffers: Option<(usize, usize)>,
    link_stats: Option<UdpStats>,
}

impl std::fmt::Debug for HostNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNode")
            .field("node_id", &self.rsm.node_id())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HostNode {
    /// Build the node, bind its link and start its driver thread (none without a link).
    /// Pinning uses `mlock`.
    ///
    /// # Errors
    /// The socket or the eventfd cannot be made.
    pub fn start(cfg: NodeConfig) -> Result<HostNode, HostError> {
        Self::start_on(cfg, HostPlatform::new())
    }

    /// [`HostNode::start`] on a given platform (e.g. [`HostPlatform::without_mlock`]).
    ///
    /// # Errors
    /// As [`HostNode::start`].
    pub fn start_on(cfg: NodeConfig, platform: HostPlatform) -> Result<HostNode, HostError> {
        let kicker = Kicker::new()?;
        let link = match &cfg.link {
            LinkSpec::None => None,
            LinkSpec::Udp { bind, peers } => Some(UdpLink::new(UdpLinkConfig {
                bind: *bind,
                mac: node_mac(cfg.node_id),
                peers: peers.clone(),
                max_frame: cfg.max_frame,
                socket_buffer: DEFAULT_SOCKET_BUFFER,
            })?),
        };
        let rsm = Arc::new(HostRsm::new(
            platform.with_kicker(kicker.clone()),
            Config {
                node_id: cfg.node_id,
                ..Config::default()
            },
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let mut node = HostNode {
            rsm,
            kicker,
            stop,
            driver: None,
            link: None,
            addr: None,
            buffers: None,
            link_stats: None,
        };
        let Some(link) = link else {
            return Ok(node);
        };
        node.addr = Some(link.local_addr()?);
        node.buffers = Some(link.buffers());
        let fd = link.as_raw_fd();
        let now = node.rsm.platform().now();
        node.rsm.net_start(
            now,
            NetConfig {
                incarnation: cfg.incarnation,
                max_frame: cfg.max_frame,
            },
        );
        // The node keeps the link: whoever waits drives it — a blocking caller as well as
        // the driver thread — so the frame that completes a call wakes its caller directly.
        let ptr: *mut UdpLink = Box::into_raw(Box::new(link));
        node.link = Some(Leaked(ptr));
        // SAFETY: `ptr` comes from `Box::into_raw` just above (valid, aligned, unique) and is
        // only dereferenced through the reference attached here; `reclaim_link` detaches
        // that reference before it turns the pointer back into the box.
        node.rsm.attach_link(unsafe { &mut *ptr });
        node.rsm.platform().set_link_fd(fd);
        let (r, k, s) = (node.rsm.clone(), node.kicker.clone(), node.stop.clone());
        let t = std::thread::Builder::new()
            .name(format!("rsm-node-{}", cfg.node_id))
            .spawn(move || drive(&r, fd, &k, &s))
            .map_err(|e| HostError::from_errno(ErrorKind::Other, e.raw_os_error().unwrap_or(0)))?;
        node.driver = Some(t);
        Ok(node)
    }

    /// The node: every RSMAPI call.
    pub fn rsm(&self) -> &HostRsm {
        &self.rsm
    }

    /// A shared handle on the node (e.g. for another thread).
    pub fn rsm_arc(&self) -> Arc<HostRsm> {
        self.rsm.clone()
    }

    /// The link's local address, if the node has a link.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The socket buffer sizes granted, `(receive, send)`, if the node has a link.
    pub fn socket_buffers(&self) -> Option<(usize, usize)> {
        self.buffers
    }

    /// Leave the cluster cleanly and stop the driver: importers of this node's segments are
    /// told (for at most `limit`, until [`Rsm::net_quiet`]). Returns the link's counters.
    pub fn shutdown_within(mut self, limit: Duration) -> Option<UdpStats> {
        self.stop_driver(limit);
        self.link_stats
    }

    /// [`HostNode::shutdown_within`] half a second.
    pub fn shutdown(self) -> Option<UdpStats> {
        self.shutdown_within(Duration::from_millis(500))
    }

    fn stop_driver(&mut self, limit: Duration) {
        let Some(t) = self.driver.take() else {
            return;
        };
        self.rsm.net_leave();
        let end = std::time::Instant::now() + limit;
        while !self.rsm.net_quiet() && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.kicker.kick();
        let _ = t.join();
        self.reclaim_link();
    }

    /// Take the link back from the node and close it; keep its counters.
    fn reclaim_link(&mut self) {
        let Some(Leaked(ptr)) = self.link.take() else {
            return;
        };
        // Waiters leave the socket before it closes.
        self.rsm.platform().set_link_fd(-1);
        // Taking it waits for a caller driving it right now; nobody can reach it afterwards.
        let _ = self.rsm.detach_link();
        // SAFETY: `ptr` came from `Box::into_raw` in `start_on`; the only reference made from it
        // was attached to the node and has just been detached (and dropped), so this is the
        // sole owner again.
        let link = unsafe { Box::from_raw(ptr) };
        self.link_stats = Some(link.stats());
    }
}

impl Drop for HostNode {
    fn drop(&mut self) {
        self.stop_driver(Duration::from_millis(500));
    }
}

/// The driver thread: drive the attached link and run the timers, then sleep on the socket
/// and the kicker until the engine's next deadline — unless a blocking caller watches the
/// socket: that caller drives the link, and this thread sleeps until it leaves (it kicks).
fn drive(rsm: &HostRsm, fd: RawFd, kicker: &Kicker, stop: &AtomicBool) {
    const MAX_SLEEP: Duration = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        kicker.drain();
        if rsm.platform().driver_may_skip_socket() {
            // A blocking caller watches the socket and drives the link (and the timers:
            // it sleeps no longer than the next one); competing with it for the link only
            // delays it. Sleep until it leaves (it kicks) or for at most MAX_SLEEP.
            rsm_hal_wait_one(kicker.as_raw_fd(), MAX_SLEEP);
            rsm.platform().driver_awake();
            continue;
        }
        let now = rsm.platform().now();
        let next = rsm.service(now);
        let after = rsm.platform().now();
        let sleep = next
            .map_or(MAX_SLEEP, |t| Duration::from_nanos(t.nanos_since(after)))
            .min(MAX_SLEEP);
        if !sleep.is_zero() {
            wait_either(fd, kicker.as_raw_fd(), sleep);
        }
    }
}

/// Sleep until `fd` is readable or `timeout` passed.
fn rsm_hal_wait_one(fd: RawFd, timeout: Duration) {
    wait_either(fd, fd, timeout);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_configures_a_node() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = NodeConfig::from_vars(vars(&[])).unwrap();
        assert_eq!((c.node_id, c.link.clone()), (0, LinkSpec::None));
        let c = NodeConfig::from_vars(vars(&[
            ("RSM_NODE_ID", "5"),
            ("RSM_LINK", "udp:127.0.0.1:0,switch=127.0.0.1:4000"),
            ("RSM_MAX_FRAME", "9014"),
            ("RSM_INCARNATION", "77"),
        ]))
        .unwrap();
        assert_eq!(c.node_id, 5);
        assert_eq!(c.max_frame, 9014);
        assert_eq!(c.incarnation, 77);
        assert_eq!(
            c.link,
            LinkSpec::Udp {
                bind: "127.0.0.1:0".parse().unwrap(),
                peers: UdpPeers::Switch("127.0.0.1:4000".parse().unwrap()),
            }
        );
        let c = NodeConfig::from_vars(vars(&[(
            "RSM_LINK",
            "udp:127.0.0.1:0,peer=1@127.0.0.1:4001,peer=2@127.0.0.1:4002",
        )]))
        .unwrap();
        assert!(
            matches!(c.link, LinkSpec::Udp { peers: UdpPeers::Direct(ref p), .. } if p.len() == 2)
        );
        for (k, v) in [
            ("RSM_NODE_ID", "64"),
            ("RSM_LINK", "tcp:1.2.3.4:5"),
            ("RSM_LINK", "udp:127.0.0.1:0"),
            ("RSM_MAX_FRAME", "70000"),
            ("RSM_INCARNATION", "0"),
        ] {
            let e = NodeConfig::from_vars(|q: &str| (q == k).then(|| v.to_string())).unwrap_err();
            assert_eq!(e.var, k);
        }
    }
}
