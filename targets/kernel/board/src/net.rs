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
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::PhysAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Descriptors per virtqueue (receive buffers posted, transmit slots).
pub const QUEUE_SIZE: usize = 64;
/// The largest frame the link carries (destination MAC to the end of the payload): what
/// QEMU's `-netdev dgram` passes in one UDP datagram (65 507 bytes). Nodes announce less
/// with `frame=` on the command line (1514, 9014, …).
pub const FRAME_MAX: usize = 65_507;
/// Bytes of the virtio-net header in front of every frame (the modern header; room for it).
const HDR_MAX: usize = 12;
/// One buffer: header + frame.
const BUF: usize = HDR_MAX + FRAME_MAX;
/// Bytes of the link's static receive and transmit buffers together.
pub const BUFFER_BYTES: usize = 2 * QUEUE_SIZE * BUF;
/// How long `transmit` waits for a free slot before dropping the frame.
pub const TX_STALL_US: u64 = 2000;

/// The NIC type.
pub type Nic = VirtIONetRaw<KernelHal, KickTransport, QUEUE_SIZE>;

/// The receive queue's index.
const QUEUE_RECEIVE: u16 = 0;
/// The transmit queue's index.
const QUEUE_TRANSMIT: u16 = 1;

/// The device's transport, kept here so that [`VirtioLink::kick`] can notify the device
/// while the driver owns a [`KickTransport`] handle (one NIC per image; one vCPU, and no
/// interrupt handler touches it).
static TRANSPORT: spin::Mutex<Option<PciTransport>> = spin::Mutex::new(None);
/// Hold queue notifications until [`VirtioLink::kick`] ([`VirtioLink::set_batching`]).
static HOLD_NOTIFY: AtomicBool = AtomicBool::new(false);
/// Per queue: the driver asked to notify it while notifications were held.
static TX_NOTIFY_HELD: AtomicBool = AtomicBool::new(false);
static RX_NOTIFY_HELD: AtomicBool = AtomicBool::new(false);
/// Per queue: notifications sent to the device (each an emulated MMIO exit under QEMU);
/// the receive queue's after buffers were posted again.
static TX_NOTIFIES: AtomicU64 = AtomicU64::new(0);
static RX_NOTIFIES: AtomicU64 = AtomicU64::new(0);

/// The (held, sent) flags and counter of a queue whose notifications can be held.
fn held_and_count(queue: u16) -> Option<(&'static AtomicBool, &'static AtomicU64)> {
    match queue {
        QUEUE_TRANSMIT => Some((&TX_NOTIFY_HELD, &TX_NOTIFIES)),
        QUEUE_RECEIVE => Some((&RX_NOTIFY_HELD, &RX_NOTIFIES)),
        _ => None,
    }
}

/// The PCI transport with queue notifications that can be held back and sent once per
/// burst: every notify is an MMIO write that QEMU handles in the vCPU thread under its big
/// lock, ~20 µs per frame under TCG when frames leave one at a time. virtio-drivers'
/// `transmit_begin` notifies whenever the device asks; this transport then only records it.
pub struct KickTransport(());

impl KickTransport {
    fn with<T>(&self, f: impl FnOnce(&mut PciTransport) -> T) -> T {
        let mut t = TRANSPORT.lock();
        match t.as_mut() {
            Some(t) => f(t),
            // Cannot happen: `open_at` stores the transport before it makes the only handle.
            None => panic!("virtio transport used before it was stored"),
        }
    }
}

impl Transport for KickTransport {
    fn device_type(&self) -> DeviceType {
        self.with(|t| t.device_type())
    }
    fn read_device_features(&mut self) -> u64 {
        self.with(|t| t.read_device_features())
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.with(|t| t.write_driver_features(driver_features))
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.with(|t| t.max_queue_size(queue))
    }
    fn notify(&mut self, queue: u16) {
        if let Some((held, count)) = held_and_count(queue) {
            if HOLD_NOTIFY.load(Ordering::Relaxed) {
                held.store(true, Ordering::Relaxed);
                return;
            }
            bump(count);
        }
        self.with(|t| t.notify(queue));
    }
    fn get_status(&self) -> DeviceStatus {
        self.with(|t| t.get_status())
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.with(|t| t.set_status(status))
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.with(|t| t.set_guest_page_size(guest_page_size))
    }
    fn requires_legacy_layout(&self) -> bool {
        self.with(|t| t.requires_legacy_layout())
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.with(|t| t.queue_set(queue, size, descriptors, driver_area, device_area))
    }
    fn queue_unset(&mut self, queue: u16) {
        self.with(|t| t.queue_unset(queue))
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.with(|t| t.queue_used(queue))
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.with(|t| t.ack_interrupt())
    }
    fn read_config_generation(&self) -> u32 {
        self.with(|t| t.read_config_generation())
    }
    fn read_config_space<T: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        self.with(|t| t.read_config_space(offset))
    }
    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> virtio_drivers::Result<()> {
        self.with(|t| t.write_config_space(offset, value))
    }
}

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
    open_at().map(|(nic, _)| nic)
}

/// [`open`], with the device's PCI address.
fn open_at() -> Option<(Nic, DeviceFunction)> {
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
    *TRANSPORT.lock() = Some(transport);
    match Nic::new(KickTransport(())) {
        Ok(n) => Some((n, df)),
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
    /// Transmit-queue notifications sent to the device.
    pub tx_notifies: u64,
    /// Receive-queue notifications sent to the device (buffers posted again).
    pub rx_notifies: u64,
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
        tx_notifies: TX_NOTIFIES.load(Ordering::Relaxed),
        rx_notifies: RX_NOTIFIES.load(Ordering::Relaxed),
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

    /// Open the device, make a link of it and route its receive interrupt (MSI-X vector 0 →
    /// [`crate::irq::NET_VECTOR`]); if routing fails the link still works and waiting
    /// polls instead of halting (logged).
    pub fn open() -> Option<VirtioLink> {
        VirtioLink::open_with(true)
    }

    /// [`VirtioLink::open`], with the receive interrupt routed only if `interrupts`: without
    /// it every wait polls the device every [`crate::irq::POLL_US`] µs instead of halting
    /// (the bench's "before interrupts" baseline).
    pub fn open_with(interrupts: bool) -> Option<VirtioLink> {
        let (nic, df) = open_at()?;
        let mut link = VirtioLink::new(nic)?;
        if !interrupts {
            defmt::info!("rsm-board: NIC interrupt not routed (asked): polling");
            return Some(link);
        }
        match route_msix(df) {
            Ok(()) => {
                link.nic.enable_interrupts();
                crate::irq::set_net_routed(true);
                defmt::info!("rsm-board: virtio-net receive interrupt on MSI-X");
            }
            Err(why) => defmt::warn!("rsm-board: no NIC interrupt ({=str}): polling", why),
        }
        Some(link)
    }

    /// Hold queue notifications (`on`) until [`rsm_hal::Link::kick`] — one notify per burst
    /// instead of one per frame sent or receive buffer posted again; for users that kick
    /// after every burst, as `Rsm::drive` does. Off (the default), the device hears of every
    /// frame and buffer at once. Turning it off sends what is held.
    pub fn set_batching(&mut self, on: bool) {
        HOLD_NOTIFY.store(on, Ordering::Relaxed);
        if !on {
            self.kick_now();
        }
    }

    /// Send the notifications held since the last kick, if any.
    fn kick_now(&mut self) {
        for queue in [QUEUE_TRANSMIT, QUEUE_RECEIVE] {
            let Some((held, count)) = held_and_count(queue) else {
                continue;
            };
            if held.swap(false, Ordering::Relaxed) {
                bump(count);
                if let Some(t) = TRANSPORT.lock().as_mut() {
                    t.notify(queue);
                }
            }
        }
    }

    /// Wait (at most `timeout_us`) until the device has taken every queued frame; `true`
    /// if it did. Call before leaving QEMU: frames still queued when the image exits are lost.
    pub fn flush(&mut self, timeout_us: u64) -> bool {
        self.kick_now();
        let end = clock::now_ns() + timeout_us * 1000;
        loop {
            self.reclaim();
            if self.tx_busy.iter().all(Option::is_none) {
                return true;
            }
            if clock::now_ns() > end {
                return false;
            }
            core::hint::spin_loop();
        }
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
        crate::prof::timed(crate::prof::Part::Tx, || self.transmit_frame(frame))
    }

    fn receive(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
        crate::prof::timed(crate::prof::Part::Rx, || self.receive_frame(buf))
    }

    fn kick(&mut self) {
        crate::prof::timed(crate::prof::Part::Tx, || self.kick_now());
    }
}

impl VirtioLink {
    fn transmit_frame(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        if frame.len() > FRAME_MAX {
            return Err(LinkError::TooLong);
        }
        self.reclaim();
        let mut free = self.tx_busy.iter().position(Option::is_none);
        if free.is_none() {
            // Every slot is in flight: make sure the device knows about them.
            self.kick_now();
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

    fn receive_frame(&mut self, buf: &mut [u8]) -> Result<Option<usize>, LinkError> {
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

/// The address a memory BAR of `df` decodes (below 4 GiB, identity-mapped), if any.
fn bar_address(cam: &PortCam, df: DeviceFunction, bar: u8) -> Option<usize> {
    if bar > 5 {
        return None;
    }
    let off = 0x10 + 4 * bar;
    let lo = cam.read_word(df, off);
    if lo & 1 != 0 {
        return None; // an I/O BAR
    }
    let hi = if (lo >> 1) & 3 == 2 {
        cam.read_word(df, off + 4)
    } else {
        0
    };
    let addr = (u64::from(hi) << 32) | u64::from(lo & !0xF);
    (addr != 0 && addr < (1 << 32)).then_some(addr as usize)
}

/// Point the NIC's receive queue at MSI-X table entry 0 and that entry at this CPU's APIC
/// with [`crate::irq::NET_VECTOR`]; the transmit queue and configuration changes get no
/// vector (transmit slots are reclaimed lazily).
fn route_msix(df: DeviceFunction) -> Result<(), &'static str> {
    const NO_VECTOR: u16 = 0xFFFF;
    let mut cam = PortCam;
    if (cam.read_word(df, 0x04) >> 16) & 0x10 == 0 {
        return Err("no PCI capability list");
    }
    let (mut msix, mut common) = (None, None);
    let mut ptr = (cam.read_word(df, 0x34) & 0xFC) as u8;
    for _ in 0..48 {
        if ptr == 0 {
            break;
        }
        let w = cam.read_word(df, ptr);
        match w & 0xFF {
            0x11 => msix = Some(ptr),
            // virtio vendor capability, cfg_type 1 = common configuration.
            0x09 if (w >> 24) & 0xFF == 1 => {
                let bar = (cam.read_word(df, ptr + 4) & 0xFF) as u8;
                common = Some((bar, cam.read_word(df, ptr + 8) as usize));
            }
            _ => {}
        }
        ptr = ((w >> 8) & 0xFC) as u8;
    }
    // Memory decoding and bus mastering on: an MSI-X message is a memory write by the device.
    let cmd = cam.read_word(df, 0x04);
    cam.write_word(df, 0x04, (cmd & 0xFFFF) | 0x6);
    let cap = msix.ok_or("no MSI-X capability")?;
    let (cbar, coff) = common.ok_or("no virtio common configuration")?;
    let table = cam.read_word(df, cap + 4);
    let base = bar_address(&cam, df, (table & 7) as u8).ok_or("MSI-X table BAR")?;
    let entry = base + (table & !7) as usize;
    let common = bar_address(&cam, df, cbar).ok_or("common configuration BAR")? + coff;
    let (addr, data) = crate::irq::net_msi_message();
    // SAFETY: `entry` is MSI-X table entry 0 of this device (its capability's BAR and offset,
    // identity-mapped below 4 GiB): message address low/high, data, vector control.
    unsafe {
        let e = entry as *mut u32;
        e.write_volatile(addr as u32);
        e.add(1).write_volatile((addr >> 32) as u32);
        e.add(2).write_volatile(data);
        e.add(3).write_volatile(0); // unmasked
    }
    // Message control (the capability's upper half): enable, function not masked.
    let w = cam.read_word(df, cap);
    let control = (((w >> 16) as u16) | 0x8000) & !0x4000;
    cam.write_word(df, cap, (w & 0xFFFF) | (u32::from(control) << 16));
    // SAFETY: the device's virtio common configuration structure (its capability's BAR and
    // offset): msix_config at 0x10, queue_select at 0x16, queue_msix_vector at 0x1A.
    let vector = unsafe {
        let c = common as *mut u8;
        c.add(0x10).cast::<u16>().write_volatile(NO_VECTOR);
        c.add(0x16).cast::<u16>().write_volatile(1);
        c.add(0x1A).cast::<u16>().write_volatile(NO_VECTOR);
        c.add(0x16).cast::<u16>().write_volatile(0);
        c.add(0x1A).cast::<u16>().write_volatile(0);
        c.add(0x1A).cast::<u16>().read_volatile()
    };
    if vector != 0 {
        return Err("the device refused MSI-X vector 0 for its receive queue");
    }
    Ok(())
}
