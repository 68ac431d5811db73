//! # rsm-board — the reusable board code of the rsm-rs unikernel
//!
//! Everything an image needs below the RSM application, for QEMU's `q35` PC with `-kernel`:
//!
//! * boot: a multiboot v1 header (a.out kludge), 32-bit entry, long mode with the first 4 GiB
//!   identity-mapped (2 MiB pages), a 64-bit GDT, a 1 MiB boot stack (`boot`);
//! * the `x86_64` crate's GDT with a TSS (a double-fault stack of its own, [`gdt`]) and
//!   paging ([`memory`]: page 0 and the page below the stack unmapped, as guards);
//! * an IDT whose every exception logs vector, error code, `rip`, `rsp`, `cr2` and exits with
//!   [`exit::FAIL`] instead of a triple fault ([`interrupts`]); a panic exits with
//!   [`exit::PANIC`];
//! * logging with `defmt` 1.x over COM1 ([`log`]), the kernel command line ([`Boot::arg`]);
//! * a TSC clock calibrated against the PIT at boot ([`clock`]);
//! * PCI configuration through ports 0xCF8/0xCFC ([`pci`]), the virtio-drivers `Hal` over an
//!   identity-mapped static DMA pool ([`dma`]), virtio-net as an [`rsm_hal::Link`]
//!   ([`net::VirtioLink`]);
//! * the [`rsm_hal::Platform`] of the image ([`platform::KernelPlatform`]): pinning that marks
//!   page frames in use and reports their physical addresses, copies with 8-byte word
//!   atomicity, the clock, an event-count wait, the software CRC-32C;
//! * exit through QEMU's `isa-debug-exit` ([`qemu_exit`]).
//!
//! An application is one function given to [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use rsm_board::{entry, exit, Boot};
//!
//! fn main(boot: &Boot) -> u32 {
//!     defmt::println!("hello from node {=str}", boot.arg("node").unwrap_or("?"));
//!     exit::PASS
//! }
//! entry!(main);
//! ```
//!
//! All `unsafe` of the image lives in this crate, each block with a `// SAFETY:` comment.

#![no_std]
#![warn(missing_docs)]

mod boot;
pub mod clock;
pub mod crc;
pub mod dma;
pub mod gdt;
pub mod interrupts;
pub mod irq;
pub mod log;
pub mod memory;
pub mod net;
pub mod pci;
pub mod platform;
pub mod prof;
pub mod statics;

use x86_64::instructions::port::Port;

pub use statics::StaticBuf;

/// The logging crate the board's logger serves (applications log with its macros).
pub use defmt;

/// Exit codes written to `isa-debug-exit` (QEMU exits with `(code << 1) | 1`).
pub mod exit {
    /// The scenario passed: QEMU exits with 33.
    pub const PASS: u32 = 0x10;
    /// A check failed: QEMU exits with 35.
    pub const FAIL: u32 = 0x11;
    /// A panic: QEMU exits with 37.
    pub const PANIC: u32 = 0x12;
}

/// The multiboot loader's magic in `eax`.
const MULTIBOOT_MAGIC: u32 = 0x2BAD_B002;

/// Leave QEMU with `code` (see [`exit`]).
pub fn qemu_exit(code: u32) -> ! {
    let mut port: Port<u32> = Port::new(0xf4);
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit device (the runner configures it); writing
    // it ends the virtual machine.
    unsafe { port.write(code) };
    loop {
        x86_64::instructions::hlt();
    }
}

/// What the loader told the image.
#[derive(Debug, Clone, Copy)]
pub struct Boot {
    /// The kernel command line (the kernel path first, then QEMU's `-append` text).
    pub cmdline: &'static str,
    /// The first byte above the RAM the loader reported (multiboot `mem_upper`).
    pub ram_end: usize,
}

impl Boot {
    /// The value of `key=value` on the command line.
    pub fn arg(&self, key: &str) -> Option<&'static str> {
        self.cmdline
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// [`Boot::arg`] parsed as a number; `default` when absent, `None` when malformed.
    pub fn num(&self, key: &str, default: u64) -> Option<u64> {
        match self.arg(key) {
            None => Some(default),
            Some(v) => v.parse().ok(),
        }
    }
}

/// Read the multiboot information: (command line, end of RAM).
fn multiboot_info(info: u32) -> (&'static [u8], usize) {
    if info == 0 {
        return (b"", 0);
    }
    let base = info as usize as *const u32;
    // SAFETY: the loader passes the physical address of its information structure, which
    // lies in the identity-mapped low memory; flags is its word 0, mem_upper word 2,
    // cmdline word 4.
    let (flags, upper, ptr) = unsafe {
        (
            base.read_volatile(),
            base.add(2).read_volatile(),
            base.add(4).read_volatile(),
        )
    };
    let ram_end = if flags & 1 != 0 {
        (1 << 20) + upper as usize * 1024
    } else {
        0
    };
    if flags & 4 == 0 || ptr == 0 {
        return (b"", ram_end);
    }
    let p = ptr as usize as *const u8;
    let mut n = 0;
    // SAFETY: a NUL-terminated string the loader placed in low memory (identity-mapped);
    // bounded at 4 KiB.
    while n < 4096 && unsafe { p.add(n).read_volatile() } != 0 {
        n += 1;
    }
    // SAFETY: `n` bytes from `p` were just read; the loader's memory is never reused here.
    (unsafe { core::slice::from_raw_parts(p, n) }, ram_end)
}

extern "Rust" {
    /// The application's entry, defined by [`entry!`].
    fn __rsm_board_app_main(boot: &Boot) -> u32;
}

/// Called by the boot code in long mode.
#[no_mangle]
extern "C" fn kernel_main(magic: u32, info: u32) -> ! {
    defmt::println!("rsm-board: long mode, magic {=u32:#x}", magic);
    if magic != MULTIBOOT_MAGIC {
        defmt::println!("rsm-board: not started by a multiboot loader");
        qemu_exit(exit::FAIL);
    }
    let (line, ram_end) = multiboot_info(info);
    let cmdline = core::str::from_utf8(line).unwrap_or("?");
    // `bare`: leave at once — the baseline of boot-time measurements (QEMU and the loader).
    if cmdline.split_ascii_whitespace().any(|w| w == "bare") {
        qemu_exit(exit::PASS);
    }
    gdt::init();
    interrupts::init();
    if let Err(e) = memory::init() {
        defmt::warn!(
            "rsm-board: no guard pages ({}): running on the boot map",
            defmt::Debug2Format(&e)
        );
    }
    defmt::println!(
        "rsm-board: cmdline `{=str}`, RAM up to {=usize:#x}",
        cmdline,
        ram_end
    );
    platform::set_ram_end(ram_end);
    let hz = clock::calibrate();
    defmt::println!("rsm-board: TSC {=u64} kHz", hz / 1000);
    irq::init();
    defmt::info!(
        "rsm-board: APIC timer {=u64} ticks/ms",
        irq::timer_ticks_per_ms()
    );
    let boot = Boot { cmdline, ram_end };
    // SAFETY: `entry!` defines this function with exactly this signature; an image without
    // it does not link.
    let code = unsafe { __rsm_board_app_main(&boot) };
    qemu_exit(code)
}

/// Define the application's entry point: `entry!(main)` with `fn main(&Boot) -> u32`
/// returning an [`exit`] code.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn __rsm_board_app_main(boot: &$crate::Boot) -> u32 {
            let main: fn(&$crate::Boot) -> u32 = $main;
            main(boot)
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    log::break_in();
    defmt::println!("rsm-board: PANIC {}", defmt::Display2Format(info));
    qemu_exit(exit::PANIC)
}
