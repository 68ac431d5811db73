//! virtio-net through `virtio-drivers`, as an [`rsm_hal::Link`].
//!
//! [`open`] finds the first virtio-net device (1af4:1041, `disable-legacy=on`) on PCI bus 0
//! and brings it up; [`VirtioLink::new`] posts every receive buffer. Buffers are statics of
//! [`FRAME_MAX`] bytes plus the virtio-net header: virtio-drivers negotiates neither the MTU
//! nor mergeable buffers, so the largest frame received is the size of the buffers posted.
//!
//! Transmit is non-blocking: the frame is copied into a free transmit slot and handed to the
//! device; finished slots are reclaimed on the next transmit or receive. With every slot in
//! flight, `transmit` waits for one to finish at most [`TX_STALL_US`] µs, then drops the frame
//! and counts it (the engine retransmits) — it never blocks for long.

use crate::clock;
use crate::dma::KernelHal;
use crate::pci::PortCam;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rsm_hal::{Error, ErrorKind};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;

/// Descriptors per virtqueue (receive buffers posted, transmit slots).
pub const QUEUE_SIZE: usize = 16;
/// The largest frame the link carries (destination MAC to the end of the payload):
/// a 9000-byte jumbo MTU plus the 14-byte Ethernet header.
pub const FRAME_MAX: usize = 9014;
/// Bytes of the virtio-net header in front of every frame (the modern header; room for it).
const HDR_MAX: usize = 12;
/// One buffer: header + frame.
const BUF: usize = HDR_MAX + FRAME_MAX;
/// How long `transmit` waits for a free slot before dropping the frame.
pub const TX_STALL_US: u64 = 2000;

/// The NIC type.
pub type Nic = VirtIONetRaw<KernelHal, PciTransport, QUEUE_SIZE>;

/// The link's buffers: statics, so that their addresses never change while the device
/// owns them.
struct Buffers {
    rx: UnsafeCell<[[u8; BUF]; QUEUE_SIZE]>,
    tx: UnsafeCell<[[u8; BUF]; QUEUE_SIZE]>,
    taken: AtomicBool,
}

// SAFETY: the buffers are reached only through the one `VirtioLink` that took them (the
// flag), which owns them from then on.
unsafe impl Sync for Buffers {}

static BUFFERS: Buffers = Buffers {
    rx: UnsafeCell::new([[0; BUF]; QUEUE_SIZE]),
    tx: UnsafeCell::new([[0; BUF]; QUEUE_SIZE]),
    taken: AtomicBool::new(false),
};

/// Find the first virtio-net device on bus 0 and initialise it.
pub fn open() -> Option<Nic> {
    let mut root = PciRoot::new(PortCam);
    let found = root
        .enumerate_bus(0)
        .find(|(_, info)| info.vendor_id == 0x1af4 && info.device_id == 0x1041);
    let (df, _) = found?;
    defmt::info!("rsm-board: virtio-net at {}", defmt::Display2Format(&df));
    let transport = match PciTransport::new::<KernelHal, _>(&mut root, df) {
        Ok(t) => t,
        Err(e) => {
            defmt::error!("rsm-board: virtio transport: {}", defmt::Debug2Format(&e));
            return None;
        }
    };
    match Nic::new(transport) {
        Ok(n) => Some(n),
        Err(e) => {
            defmt::error!("rsm-board: virtio-net init: {}", defmt::Debug2Format(&e));
            None
        }
    }
}

/// Why a link operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// A frame longer than the link carries (to send), or than the caller's buffer (received:
    /// dropped).
    TooLong,
    /// The device or the driver reported an error.
    Device(virtio_drivers::Error),
}

impl Error for LinkError {
    fn kind(&self) -> ErrorKind {
        match self {
            LinkError::TooLong => ErrorKind::OutOfRange,
            LinkError::Device(_) => ErrorKind::Other,
        }
    }
}

/// Counters of the link.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkStats {
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Frames dropped because every transmit slot stayed busy.
    pub tx_dropped: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// Received frames dropped as longer than the caller's buffer.
    pub rx_too_long: u64,
}

/// The counters of the image's one link (statics: a node keeps the link itself, the
/// application reads them through [`link_stats`]).
static TX_FRAMES: AtomicU64 = AtomicU64::new(0);
static TX_DROPPED: AtomicU64 = AtomicU64::new(0);
static RX_FRAMES: AtomicU64 = AtomicU64::new(0);
static RX_TOO_LONG: AtomicU64 = AtomicU64::new(0);

/// The link's counters so far.
pub fn link_stats() -> LinkStats {
    LinkStats {
        tx_frames: TX_FRAMES.load(Ordering::Relaxed),
        tx_dropped: TX_DROPPED.load(Ordering::Relaxed),
        rx_frames: RX_FRAMES.load(Ordering::Relaxed),
        rx_too_long: RX_TOO_LONG.load(Ordering::Relaxed),
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// virtio-net as an [`rsm_hal::Link`].
pub struct VirtioLink {
    nic: Nic,
    rx: &'static mut [[u8; BUF]; QUEUE_SIZE],
    tx: &'static mut [[u8; BUF]; QUEUE_SIZE],
    /// The device's token for each posted receive buffer.
    rx_token: [Option<u16>; QUEUE_SIZE],
    /// Per transmit slot: the token and the length handed to the device while in flight.
    tx_busy: [Option<(u16, usize)>; QUEUE_SIZE],
}

impl VirtioLink {
    /// Take the static buffers and post every receive buffer. `None` if the buffers were
    /// taken before (one link per image) or the device refuses them.
    pub fn new(mut nic: Nic) -> Option<VirtioLink> {
        if BUFFERS.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was false, so these are the only references to the buffers; they
        // are statics, valid for ever.
        let (rx, tx) = unsafe { (&mut *BUFFERS.rx.get(), &mut *BUFFERS.tx.get()) };
        let mut rx_token = [None; QUEUE_SIZE];
        for (slot, buf) in rx_token.iter_mut().zip(rx.iter_mut()) {
            // SAFETY: the buffer is a static owned by this link; it is not touched again
            // until the device returns it (`receive_complete` with the same buffer).
            match unsafe { nic.receive_begin(buf) } {
                Ok(t) => *slot = Some(t),
                Err(e) => {
                    defmt::error!("rsm-board: receive_begin: {}", defmt::Debug2Format(&e));
                    return None;
                }
            }
        }
        Some(VirtioLink {
            nic,
            rx,
            tx,
            rx_token,
            tx_busy: [None; QUEUE_SIZE],
        })
    }

    /// Open the device and make a link of it.
    pub fn open() -> Option<VirtioLink> {
        VirtioLink::new(open()?)
    }

    /// The link's counters (see [`link_stats`]).
    pub fn stats(&self) -> LinkStats {
        link_stats()
    }

    /// Give finished transmit slots back.
    fn reclaim(&mut self) {
        while let Some(token) = self.nic.poll_transmit() {
            let Some(i) = self
                .tx_busy
                .iter()
                .position(|b| matches!(b, Some((t, _)) if *t == token))
            else {
                // Not ours (cannot happen): stop rather than spin.
                return;
            };
            let len = self.tx_busy[i].map_or(0, |(_, l)| l);
            // SAFETY: the same buffer (slot i, same length) that `transmit_begin` was given
            // with this token.
            let _ = unsafe { self.nic.transmit_complete(token, &self.tx[i][..len]) };
            self.tx_busy[i] = None;
        }
    }
}

impl rsm_hal::Link for VirtioLink {
    type Error = LinkError;

    fn mac(&self) -> [u8; 6] {
        self.nic.mac_address()
    }

    fn max_frame(&self) -> usize {
        FRAME_MAX
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if frame.len() > FRAME_MAX {
            return Err(LinkError::TooLong);
        }
        self.reclaim();
        let mut free = self.tx_busy.iter().position(Option::is_none);
        if free.is_none() {
            let end = clock::now_ns() + TX_STALL_US * 1000;
            while free.is_none() && clock::now_ns() < end {
                core::hint::spin_loop();
                self.reclaim();
                free = self.tx_busy.iter().position(Option::is_none);
            }
        }
        let Some(i) = free else {
            bump(&TX_DROPPED);
            return Ok(());
        };
        let hdr = self
            .nic
            .fill_buffer_header(&mut self.tx[i])
            .map_err(LinkError::Device)?;
        let len = hdr + frame.len();
        self.tx[i][hdr..len].copy_from_slice(frame);
        // SAFETY: slot i is not touched until its completion is reclaimed (`tx_busy`), and
        // `reclaim` passes the same buffer back.
        let token =
            unsafe { self.nic.transmit_begin(&self.tx[i][..len]) }.map_err(LinkError::Device)?;
        self.tx_busy[i] = Some((token, len));
        bump(&TX_FRAMES);
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
        let Some(token) = self.nic.poll_receive() else {
            return Ok(None);
        };
        let Some(i) = self.rx_token.iter().position(|t| *t == Some(token)) else {
            return Err(LinkError::Device(virtio_drivers::Error::WrongToken));
        };
        // SAFETY: buffer i is the one posted with this token.
        let done = unsafe { self.nic.receive_complete(token, &mut self.rx[i]) };
        let result = match done {
            Ok((hdr, len)) if len <= buf.len() => {
                buf[..len].copy_from_slice(&self.rx[i][hdr..hdr + len]);
                bump(&RX_FRAMES);
                Ok(Some(len))
            }
            Ok(_) => {
                bump(&RX_TOO_LONG);
                Err(LinkError::TooLong)
            }
            Err(e) => Err(LinkError::Device(e)),
        };
        // SAFETY: as in `new`: the buffer goes back to the device and is not touched until
        // it returns it.
        self.rx_token[i] = match unsafe { self.nic.receive_begin(&mut self.rx[i]) } {
            Ok(t) => Some(t),
            Err(e) => return Err(LinkError::Device(e)),
        };
        result
    }
}
