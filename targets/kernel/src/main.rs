//! rsm-kernel: the board code of the rsm-rs unikernel (issue 11, first step): boots under
//! QEMU with `-kernel` (multiboot), enters long mode, writes to COM1 and exits through
//! `isa-debug-exit`.

#![no_std]
#![no_main]

mod boot;

use core::fmt::Write;
use uart_16550::SerialPort;
use x86_64::instructions::port::Port;

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

fn serial() -> SerialPort {
    // SAFETY: 0x3F8 is COM1 on the PC platform QEMU emulates; this image is the only code
    // touching it.
    let mut s = unsafe { SerialPort::new(0x3F8) };
    s.init();
    s
}

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

/// The kernel command line from the multiboot information (flags bit 2), if any.
fn cmdline(info: u32) -> &'static [u8] {
    if info == 0 {
        return b"";
    }
    let base = info as usize as *const u32;
    // SAFETY: the loader passes the physical address of its information structure, which
    // lies in the identity-mapped first GiB; flags is its first word, cmdline its fifth.
    let (flags, ptr) = unsafe { (base.read_volatile(), base.add(4).read_volatile()) };
    if flags & 4 == 0 || ptr == 0 {
        return b"";
    }
    let p = ptr as usize as *const u8;
    let mut n = 0;
    // SAFETY: a NUL-terminated string the loader placed in low memory (identity-mapped);
    // bounded at 4 KiB.
    while n < 4096 && unsafe { p.add(n).read_volatile() } != 0 {
        n += 1;
    }
    // SAFETY: `n` bytes from `p` were just read; the loader's memory is never reused here.
    unsafe { core::slice::from_raw_parts(p, n) }
}

#[no_mangle]
extern "C" fn kernel_main(magic: u32, info: u32) -> ! {
    let mut s = serial();
    let _ = writeln!(s, "rsm-kernel: long mode, magic {:#x}", magic);
    if magic != MULTIBOOT_MAGIC {
        let _ = writeln!(s, "rsm-kernel: not started by a multiboot loader");
        qemu_exit(exit::FAIL);
    }
    let line = core::str::from_utf8(cmdline(info)).unwrap_or("?");
    let _ = writeln!(s, "rsm-kernel: cmdline `{line}`");
    let _ = writeln!(s, "rsm-kernel: ready");
    qemu_exit(exit::PASS)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut s = serial();
    let _ = writeln!(s, "rsm-kernel: PANIC {info}");
    qemu_exit(exit::PANIC)
}
