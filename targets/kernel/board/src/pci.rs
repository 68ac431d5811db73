//! PCI configuration space through the legacy port-I/O mechanism (0xCF8/0xCFC), which QEMU's
//! q35 machine provides; SeaBIOS has assigned the BARs already.

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use x86_64::instructions::port::Port;

/// Configuration access through ports 0xCF8 (address) and 0xCFC (data).
pub struct PortCam;

impl PortCam {
    fn select(df: DeviceFunction, offset: u8) {
        let addr = 0x8000_0000u32
            | u32::from(df.bus) << 16
            | u32::from(df.device) << 11
            | u32::from(df.function) << 8
            | u32::from(offset & 0xFC);
        // SAFETY: 0xCF8 is the PCI configuration address port of the PC platform; writing an
        // address there only selects the register the next 0xCFC access reaches.
        unsafe { Port::<u32>::new(0xCF8).write(addr) };
    }
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        Self::select(df, offset);
        // SAFETY: reads the configuration register selected just above (single core, no
        // interrupt handler touches PCI configuration space).
        unsafe { Port::<u32>::new(0xCFC).read() }
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        Self::select(df, offset);
        // SAFETY: as in `read_word`; the driver writes only the registers of its device.
        unsafe { Port::<u32>::new(0xCFC).write(data) };
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}
