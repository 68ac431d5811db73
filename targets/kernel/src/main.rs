//! rsm-kernel: the board code of the rsm-rs unikernel (issue 11, first step): boots under
//! QEMU with `-kernel` (multiboot), enters long mode, writes to COM1 and exits through
//! `isa-debug-exit`.

#![no_std]
#![no_main]

mod boot;
mod hal;
mod interrupts;
mod net;
mod pci;

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

/// COM1, initialised once.
static SERIAL: spin::Once<spin::Mutex<SerialPort>> = spin::Once::new();

/// Write formatted text to COM1.
pub fn print(args: core::fmt::Arguments<'_>) {
    let port = SERIAL.call_once(|| {
        // SAFETY: 0x3F8 is COM1 on the PC platform QEMU emulates; this image is the only
        // code touching it, through this one value.
        let mut s = unsafe { SerialPort::new(0x3F8) };
        s.init();
        spin::Mutex::new(s)
    });
    // A panic or exception while the port is held: write anyway rather than deadlock.
    let mut guard = match port.try_lock() {
        Some(g) => g,
        None => {
            // SAFETY: as above; a second value for the same port only while the first
            // is stuck in an interrupted write.
            let mut s = unsafe { SerialPort::new(0x3F8) };
            let _ = s.write_fmt(args);
            return;
        }
    };
    let _ = guard.write_fmt(args);
}

/// `println!` to COM1.
#[macro_export]
macro_rules! println {
    ($($t:tt)*) => { $crate::print(format_args!("{}\n", format_args!($($t)*))) };
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
    println!("rsm-kernel: long mode, magic {magic:#x}");
    if magic != MULTIBOOT_MAGIC {
        println!("rsm-kernel: not started by a multiboot loader");
        qemu_exit(exit::FAIL);
    }
    interrupts::init();
    let line = core::str::from_utf8(cmdline(info)).unwrap_or("?");
    println!("rsm-kernel: cmdline `{line}`");
    match arg(line, "scenario") {
        // Self-checks of the board code: a fault and a panic must end in their exit codes.
        Some("fault") => {
            let p = 0x4000_0000_0000usize as *const u64;
            // SAFETY: none — this reads an unmapped address on purpose, to check that the
            // page fault is logged and ends in the failure exit.
            let v = unsafe { p.read_volatile() };
            println!("rsm-kernel: read {v} from an unmapped address");
            qemu_exit(exit::PASS)
        }
        Some("panic") => panic!("requested by the command line"),
        Some("net") => {
            let ok = net::self_check(arg(line, "node").unwrap_or("?"));
            qemu_exit(if ok { exit::PASS } else { exit::FAIL })
        }
        _ => {}
    }
    println!("rsm-kernel: ready");
    qemu_exit(exit::PASS)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("rsm-kernel: PANIC {info}");
    qemu_exit(exit::PANIC)
}

/// The value of `key=value` on the command line.
fn arg<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}
