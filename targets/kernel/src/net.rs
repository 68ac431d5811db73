//! virtio-net through `virtio-drivers`: find the device on PCI bus 0, bring it up, and the
//! `scenario=net` self-check (send a frame, receive one back).

use crate::hal::KernelHal;
use crate::pci::PortCam;
use crate::println;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::PciTransport;

/// Descriptors per virtqueue.
pub const QUEUE_SIZE: usize = 16;
/// Receive buffers: the largest frame plus the virtio-net header.
pub const RX_BUF: usize = 2048;
/// EtherType of the self-check's frames (IEEE local experimental 2).
const ETHERTYPE: u16 = 0x88B6;

/// The NIC.
pub type Nic = VirtIONetRaw<KernelHal, PciTransport, QUEUE_SIZE>;

/// Find the first virtio-net device (1af4:1041) on bus 0 and initialise it.
pub fn open() -> Option<Nic> {
    let mut root = PciRoot::new(PortCam);
    let found = root
        .enumerate_bus(0)
        .find(|(_, info)| info.vendor_id == 0x1af4 && info.device_id == 0x1041);
    let (df, _) = found?;
    println!("rsm-kernel: virtio-net at {df}");
    let transport = match PciTransport::new::<KernelHal, _>(&mut root, df) {
        Ok(t) => t,
        Err(e) => {
            println!("rsm-kernel: virtio transport: {e:?}");
            return None;
        }
    };
    match Nic::new(transport) {
        Ok(n) => Some(n),
        Err(e) => {
            println!("rsm-kernel: virtio-net init: {e:?}");
            None
        }
    }
}

/// Send one broadcast frame naming `node`, then wait (bounded) for one frame back.
pub fn self_check(node: &str) -> bool {
    let Some(mut nic) = open() else {
        println!("rsm-kernel: no virtio-net device");
        return false;
    };
    let mac = nic.mac_address();
    println!(
        "rsm-kernel: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    );
    let mut frame = [0u8; 64];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    let text = b"rsm-kernel hello node=";
    frame[14..14 + text.len()].copy_from_slice(text);
    let n = node.len().min(64 - 14 - text.len());
    frame[14 + text.len()..14 + text.len() + n].copy_from_slice(&node.as_bytes()[..n]);
    if let Err(e) = nic.send(&frame) {
        println!("rsm-kernel: send: {e:?}");
        return false;
    }
    println!("rsm-kernel: sent {} bytes", frame.len());
    let mut rx = [0u8; RX_BUF];
    // SAFETY: `rx` is not touched until `receive_complete` below (or never, if nothing
    // arrives: the image then exits, the buffer still posted).
    let token = match unsafe { nic.receive_begin(&mut rx) } {
        Ok(t) => t,
        Err(e) => {
            println!("rsm-kernel: receive_begin: {e:?}");
            return false;
        }
    };
    let mut spins: u64 = 0;
    while nic.poll_receive().is_none() {
        spins += 1;
        if spins > 500_000_000 {
            println!("rsm-kernel: nothing received");
            return false;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the same buffer and token as `receive_begin`.
    match unsafe { nic.receive_complete(token, &mut rx) } {
        Ok((hdr, len)) => {
            let f = &rx[hdr..hdr + len];
            let ours = len >= 14 && f[12..14] == ETHERTYPE.to_be_bytes() && f[..6] == mac;
            println!("rsm-kernel: received {len} bytes, addressed to us: {ours}");
            ours
        }
        Err(e) => {
            println!("rsm-kernel: receive_complete: {e:?}");
            false
        }
    }
}
