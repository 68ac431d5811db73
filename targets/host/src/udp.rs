//! The UDP link: one Ethernet frame per datagram, the encapsulation of QEMU's
//! `-netdev dgram` / `-netdev socket,udp=` — so a host node and a QEMU node exchange the
//! same frames through the same switch.
//!
//! A link either sends every frame to one address (the L2 switch, which forwards by
//! destination MAC) or, without a switch, straight to its peers: the destination MAC names
//! the node (DESIGN §4a: `52:54:00:52:53:<id>`), and a broadcast goes to every peer.
//!
//! The socket is non-blocking ([`rsm_hal::Link::receive`] never blocks); a driver sleeps on
//! [`UdpLink::as_raw_fd`] with `poll`. Socket buffers are enlarged at creation (as root
//! beyond `net.core.rmem_max` with `SO_RCVBUFFORCE`), and [`UdpLink::buffers`] reports the
//! sizes the kernel actually granted.

use crate::HostError;
use rsm_hal::ErrorKind;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// The largest UDP payload over IPv4 (65 535 − 8 − 20): the largest frame a UDP link carries.
pub const UDP_MAX_FRAME: usize = 65_507;

/// The socket buffer size a link asks for by default (each direction).
pub const DEFAULT_SOCKET_BUFFER: usize = 8 << 20;

/// Where a link's frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpPeers {
    /// Every frame to the L2 switch at this address.
    Switch(SocketAddr),
    /// Frames straight to the peer of the destination MAC's node id; a broadcast (or other
    /// group address) to every peer. Frames for a node not listed are dropped and counted.
    Direct(Vec<(u32, SocketAddr)>),
}

/// How to build a [`UdpLink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpLinkConfig {
    /// The local address to bind (port 0 = an ephemeral port).
    pub bind: SocketAddr,
    /// This interface's MAC address.
    pub mac: [u8; 6],
    /// Where frames go.
    pub peers: UdpPeers,
    /// The largest frame, at most [`UDP_MAX_FRAME`].
    pub max_frame: usize,
    /// Socket buffer size to ask for, each direction ([`DEFAULT_SOCKET_BUFFER`]).
    pub socket_buffer: usize,
}

/// Counters of a [`UdpLink`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Received datagrams longer than the caller's buffer (consumed and dropped).
    pub too_long: u64,
    /// Received datagrams shorter than an Ethernet header (dropped).
    pub runts: u64,
    /// Frames the kernel refused to queue (`ENOBUFS`/`EAGAIN`: a full send buffer); dropped
    /// like a full NIC queue drops them — the engine retransmits.
    pub send_dropped: u64,
    /// Frames for a node that is not a direct peer (dropped).
    pub no_route: u64,
}

/// An [`rsm_hal::Link`] over a UDP socket on the loopback or any IPv4 address.
#[derive(Debug)]
pub struct UdpLink {
    sock: UdpSocket,
    mac: [u8; 6],
    peers: UdpPeers,
    max_frame: usize,
    buffers: (usize, usize),
    stats: UdpStats,
}

fn io_error(e: &io::Error) -> HostError {
    HostError::from_errno(ErrorKind::Other, e.raw_os_error().unwrap_or(0))
}

/// Set a socket option of type `c_int`.
fn set_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: usize) -> bool {
    let v = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is an open socket (owned by the caller's `UdpSocket`); the option value is
    // a live `c_int` whose size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

/// Read a socket option of type `c_int`.
fn get_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> usize {
    let mut v: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket; `v` and `len` are live and `len` is `v`'s size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        usize::try_from(v).unwrap_or(0)
    } else {
        0
    }
}

/// Ask for `size` bytes of buffer in one direction: the privileged option first (root may
/// exceed the system maximum), else the plain one. Returns what the kernel reports.
fn enlarge(fd: RawFd, force: libc::c_int, plain: libc::c_int, size: usize) -> usize {
    if !set_int(fd, libc::SOL_SOCKET, force, size) {
        let _ = set_int(fd, libc::SOL_SOCKET, plain, size);
    }
    get_int(fd, libc::SOL_SOCKET, plain)
}

/// Enlarge both buffers of `sock` to `size` bytes each (as root beyond the system maximum);
/// returns the sizes the kernel reports, `(receive, send)`. For every UDP socket of the
/// cluster tools (links, the switch, raw baselines), so they all get the same buffers.
pub fn enlarge_socket_buffers(sock: &UdpSocket, size: usize) -> (usize, usize) {
    let fd = sock.as_raw_fd();
    let rcv = enlarge(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, size);
    let snd = enlarge(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, size);
    (rcv, snd)
}

/// Sleep until `fd` is readable or `timeout` passed (rounded up to a millisecond; at most
/// ~24 days); `true` if it is readable. For drivers and the switch, which sleep on their
/// socket instead of spinning.
pub fn wait_readable(fd: &impl AsRawFd, timeout: std::time::Duration) -> bool {
    let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one live `pollfd` (the count passed is 1) naming a descriptor the
    // caller holds open for the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    r > 0 && pfd.revents & libc::POLLIN != 0
}

impl UdpLink {
    /// Bind the socket and enlarge its buffers.
    ///
    /// # Errors
    /// `OutOfRange` for a `max_frame` below an Ethernet header or above [`UDP_MAX_FRAME`];
    /// `Other` (with `errno`) if the socket cannot be bound or made non-blocking.
    pub fn new(cfg: UdpLinkConfig) -> Result<UdpLink, HostError> {
        if !(14..=UDP_MAX_FRAME).contains(&cfg.max_frame) {
            return Err(HostError::new(ErrorKind::OutOfRange));
        }
        let sock = UdpSocket::bind(cfg.bind).map_err(|e| io_error(&e))?;
        sock.set_nonblocking(true).map_err(|e| io_error(&e))?;
        let (rcv, snd) = enlarge_socket_buffers(&sock, cfg.socket_buffer);
        Ok(UdpLink {
            sock,
            mac: cfg.mac,
            peers: cfg.peers,
            max_frame: cfg.max_frame,
            buffers: (rcv, snd),
            stats: UdpStats::default(),
        })
    }

    /// The address the socket is bound to (with the ephemeral port filled in).
    ///
    /// # Errors
    /// `Other` if the system cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr, HostError> {
        self.sock.local_addr().map_err(|e| io_error(&e))
    }

    /// The socket buffer sizes the kernel granted, `(receive, send)`, in bytes as it reports
    /// them (Linux reports twice the payload room it reserves, for its bookkeeping).
    pub fn buffers(&self) -> (usize, usize) {
        self.buffers
    }

    /// The counters.
    pub fn stats(&self) -> UdpStats {
        self.stats
    }

    /// Where frames go.
    pub fn peers(&self) -> &UdpPeers {
        &self.peers
    }

    /// Replace the direct peers or the switch address (a peer moved to a new port).
    pub fn set_peers(&mut self, peers: UdpPeers) {
        self.peers = peers;
    }

    fn send_to(&mut self, frame: &[u8], to: SocketAddr) -> Result<(), HostError> {
        match self.sock.send_to(frame, to) {
            Ok(_) => {
                self.stats.sent += 1;
                Ok(())
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(libc::ENOBUFS)
                    // Nobody listens there (yet): like a frame on a wire with no one on it.
                    || e.kind() == io::ErrorKind::ConnectionRefused =>
            {
                self.stats.send_dropped += 1;
                Ok(())
            }
            Err(e) => Err(io_error(&e)),
        }
    }
}

impl AsRawFd for UdpLink {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl rsm_hal::Link for UdpLink {
    type Error = HostError;

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), HostError> {
        if frame.len() > self.max_frame || frame.len() < 14 {
            return Err(HostError::new(ErrorKind::OutOfRange));
        }
        match &self.peers {
            UdpPeers::Switch(to) => {
                let to = *to;
                self.send_to(frame, to)
            }
            UdpPeers::Direct(list) => {
                let group = frame[0] & 1 != 0;
                let node =
                    (frame[..5] == [0x52, 0x54, 0x00, 0x52, 0x53]).then(|| u32::from(frame[5]));
                let targets: Vec<SocketAddr> = list
                    .iter()
                    .filter(|(id, _)| group || Some(*id) == node)
                    .map(|(_, a)| *a)
                    .collect();
                if targets.is_empty() && !group {
                    self.stats.no_route += 1;
                    return Ok(());
                }
                for to in targets {
                    self.send_to(frame, to)?;
                }
                Ok(())
            }
        }
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, HostError> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `MSG_TRUNC` makes the
            // kernel return the datagram's real length while writing at most `buf.len()`.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    // An earlier datagram to a closed port reported back: not ours to fail on.
                    io::ErrorKind::ConnectionRefused => continue,
                    _ => Err(io_error(&e)),
                };
            }
            let n = n as usize;
            if n > buf.len() {
                self.stats.too_long += 1;
                return Err(HostError::new(ErrorKind::OutOfRange));
            }
            if n < 14 {
                self.stats.runts += 1;
                continue;
            }
            self.stats.received += 1;
            return Ok(Some(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsm_hal::Link;
    use std::time::{Duration, Instant};

    fn mac(id: u8) -> [u8; 6] {
        [0x52, 0x54, 0x00, 0x52, 0x53, id]
    }

    fn link(id: u8, max_frame: usize) -> UdpLink {
        UdpLink::new(UdpLinkConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            mac: mac(id),
            peers: UdpPeers::Direct(Vec::new()),
            max_frame,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
        })
        .unwrap()
    }

    fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xB5]);
        for (i, b) in f[14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    /// Receive one frame within a second (bounded loop).
    fn recv(l: &mut UdpLink, buf: &mut [u8]) -> Result<Option<usize>, HostError> {
        let end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < end {
            match l.receive(buf) {
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                other => return other,
            }
        }
        Ok(None)
    }

    #[test]
    fn frames_go_to_the_peer_of_their_mac_and_broadcasts_to_all() {
        let (mut a, mut b, mut c) = (link(1, 9014), link(2, 9014), link(3, 9014));
        let peers = vec![(2, b.local_addr().unwrap()), (3, c.local_addr().unwrap())];
        a.set_peers(UdpPeers::Direct(peers));
        let mut buf = vec![0u8; 9014];
        let f = frame(mac(2), mac(1), 9014);
        a.transmit(&f).unwrap();
        assert_eq!(recv(&mut b, &mut buf).unwrap(), Some(9014));
        assert_eq!(buf, f);
        assert_eq!(
            c.receive(&mut buf).unwrap(),
            None,
            "unicast reaches only its node"
        );
        let bc = frame([0xff; 6], mac(1), 60);
        a.transmit(&bc).unwrap();
        assert_eq!(recv(&mut b, &mut buf).unwrap(), Some(60));
        assert_eq!(recv(&mut c, &mut buf).unwrap(), Some(60));
        // A node that is no peer: dropped and counted.
        a.transmit(&frame(mac(9), mac(1), 60)).unwrap();
        assert_eq!(a.stats().no_route, 1);
        assert_eq!(a.stats().sent, 3);
        assert_eq!(b.stats().received, 2);
    }

    #[test]
    fn frames_up_to_the_udp_limit_pass_and_longer_ones_are_refused() {
        let (mut a, mut b) = (link(1, UDP_MAX_FRAME), link(2, UDP_MAX_FRAME));
        a.set_peers(UdpPeers::Switch(b.local_addr().unwrap()));
        let mut buf = vec![0u8; UDP_MAX_FRAME];
        let f = frame(mac(2), mac(1), UDP_MAX_FRAME);
        a.transmit(&f).unwrap();
        assert_eq!(recv(&mut b, &mut buf).unwrap(), Some(UDP_MAX_FRAME));
        assert_eq!(buf, f);
        let too_long = vec![0u8; UDP_MAX_FRAME + 1];
        let e = a.transmit(&too_long).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert!(UdpLink::new(UdpLinkConfig {
            max_frame: UDP_MAX_FRAME + 1,
            ..UdpLinkConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                mac: mac(1),
                peers: UdpPeers::Direct(Vec::new()),
                max_frame: 0,
                socket_buffer: 0,
            }
        })
        .is_err());
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_consumed_and_reported() {
        let (mut a, mut b) = (link(1, 9014), link(2, 9014));
        a.set_peers(UdpPeers::Switch(b.local_addr().unwrap()));
        a.transmit(&frame(mac(2), mac(1), 3000)).unwrap();
        a.transmit(&frame(mac(2), mac(1), 100)).unwrap();
        let mut small = vec![0u8; 1514];
        let e = recv(&mut b, &mut small).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert_eq!(b.stats().too_long, 1);
        // The next frame is the next datagram, whole.
        assert_eq!(recv(&mut b, &mut small).unwrap(), Some(100));
    }

    #[test]
    fn socket_buffers_are_enlarged_and_reported() {
        let l = link(1, 1514);
        let (rcv, snd) = l.buffers();
        // SAFETY: `geteuid` has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // Root may exceed net.core.[rw]mem_max: the whole request is granted.
            assert!(
                rcv >= DEFAULT_SOCKET_BUFFER && snd >= DEFAULT_SOCKET_BUFFER,
                "{rcv} {snd}"
            );
        } else {
            assert!(rcv > 0 && snd > 0);
        }
    }
}
