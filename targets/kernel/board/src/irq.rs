//! Interrupts and sleeping: the local APIC's one-shot timer and the NIC's MSI-X message,
//! both of which only set a flag (DESIGN §3), and [`sleep_until`], which halts the vCPU
//! until one of them fires.
//!
//! Interrupts are enabled **only inside [`sleep_until`]** (`sti; hlt`, then `cli`): no handler
//! ever runs in the middle of other code, so nothing the handlers touch needs more than an
//! atomic flag, and no log call or lock can be interrupted. An interrupt that arrives while
//! interrupts are off stays pending in the APIC and is taken at the next `sti` — `sti; hlt`
//! is atomic in this respect (the interrupt window opens after `hlt` started), so a wake-up
//! is never lost between the last check and the halt.
//!
//! The legacy 8259 PICs are remapped to vectors 0x20..0x2f and masked; the APIC timer runs at
//! a rate calibrated against PIT channel 2 at boot (as the TSC, [`crate::clock`]).

use crate::clock;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// Vector of the APIC timer.
pub const TIMER_VECTOR: u8 = 0x30;
/// Vector of the NIC's MSI-X message.
pub const NET_VECTOR: u8 = 0x31;
/// The APIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xFF;

/// The local APIC's registers (xAPIC, identity-mapped by the boot code).
const LAPIC: usize = 0xFEE0_0000;
const LAPIC_EOI: usize = 0xB0;
const LAPIC_SVR: usize = 0xF0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_TIMER_INIT: usize = 0x380;
const LAPIC_TIMER_CUR: usize = 0x390;
const LAPIC_TIMER_DIV: usize = 0x3E0;
const IA32_APIC_BASE: u32 = 0x1B;

/// How long [`sleep_until`] spins instead of halting when no NIC interrupt is routed (µs).
pub const POLL_US: u64 = 20;

/// The longest single halt (bounded so a lost timer could never stall the node for long).
pub const MAX_SLEEP_NS: u64 = 100_000_000;

static NET_IRQ: AtomicBool = AtomicBool::new(false);
static READY: AtomicBool = AtomicBool::new(false);
/// The NIC's interrupt is routed (else waiting polls).
static NET_ROUTED: AtomicBool = AtomicBool::new(false);
/// APIC timer ticks per millisecond (divide by 1).
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
/// Counters for reports.
static NET_IRQS: AtomicU64 = AtomicU64::new(0);
static TIMER_IRQS: AtomicU64 = AtomicU64::new(0);
static HALTS: AtomicU64 = AtomicU64::new(0);
static HALTED_NS: AtomicU64 = AtomicU64::new(0);

fn lapic_read(off: usize) -> u32 {
    // SAFETY: the xAPIC register page at 0xFEE00000 is identity-mapped (first 4 GiB) and
    // `off` is one of the 16-byte-aligned register offsets above.
    unsafe { ((LAPIC + off) as *const u32).read_volatile() }
}

fn lapic_write(off: usize, v: u32) {
    // SAFETY: as in `lapic_read`.
    unsafe { ((LAPIC + off) as *mut u32).write_volatile(v) }
}

/// Remap and mask the 8259 PICs, enable the local APIC and calibrate its timer.
pub fn init() {
    let mut pic1_cmd: Port<u8> = Port::new(0x20);
    let mut pic1_data: Port<u8> = Port::new(0x21);
    let mut pic2_cmd: Port<u8> = Port::new(0xA0);
    let mut pic2_data: Port<u8> = Port::new(0xA1);
    // SAFETY: the standard 8259 initialisation sequence on the PC's PIC ports: vectors
    // 0x20/0x28 (clear of the exceptions), cascade on IRQ 2, 8086 mode, then every line
    // masked — the image uses the APIC only.
    unsafe {
        pic1_cmd.write(0x11);
        pic2_cmd.write(0x11);
        pic1_data.write(0x20);
        pic2_data.write(0x28);
        pic1_data.write(4);
        pic2_data.write(2);
        pic1_data.write(1);
        pic2_data.write(1);
        pic1_data.write(0xFF);
        pic2_data.write(0xFF);
    }
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting bit 11 (global enable)
    // keeps the default base 0xFEE00000.
    unsafe {
        let v = base.read();
        base.write(v | (1 << 11));
    }
    lapic_write(LAPIC_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    lapic_write(LAPIC_TIMER_DIV, 0b1011); // divide by 1
                                          // Calibrate: count down from the maximum over 2 ms of the (already calibrated) TSC.
    lapic_write(LAPIC_LVT_TIMER, 1 << 16); // masked, one-shot
    lapic_write(LAPIC_TIMER_INIT, u32::MAX);
    let t0 = clock::now_ns();
    clock::delay_us(2_000);
    let left = lapic_read(LAPIC_TIMER_CUR);
    let ns = (clock::now_ns() - t0).max(1);
    lapic_write(LAPIC_TIMER_INIT, 0);
    let ticks = u64::from(u32::MAX - left);
    TICKS_PER_MS.store((ticks * 1_000_000 / ns).max(1), Ordering::Relaxed);
    lapic_write(LAPIC_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    READY.store(true, Ordering::Release);
}

/// APIC timer ticks per millisecond as calibrated (0 before [`init`]).
pub fn timer_ticks_per_ms() -> u64 {
    TICKS_PER_MS.load(Ordering::Relaxed)
}

/// Interrupt and halt counters: (NIC interrupts, timer interrupts, halts).
pub fn counters() -> (u64, u64, u64) {
    (
        NET_IRQS.load(Ordering::Relaxed),
        TIMER_IRQS.load(Ordering::Relaxed),
        HALTS.load(Ordering::Relaxed),
    )
}

/// Record whether the NIC's receive interrupt reaches [`NET_VECTOR`]; without it
/// [`sleep_until`] polls (spins 20 µs) instead of halting.
pub fn set_net_routed(routed: bool) {
    NET_ROUTED.store(routed, Ordering::Release);
}

/// Nanoseconds spent halted so far (the vCPU idle, waiting for an interrupt).
pub fn halted_ns() -> u64 {
    HALTED_NS.load(Ordering::Relaxed)
}

/// Take the NIC's "something arrived" flag (set by its interrupt).
pub fn take_net_irq() -> bool {
    NET_IRQ.swap(false, Ordering::AcqRel)
}

/// The value the NIC's MSI-X table entry carries: (address, data) for this CPU's APIC.
pub fn net_msi_message() -> (u64, u32) {
    (0xFEE0_0000, u32::from(NET_VECTOR))
}

/// Halt until an interrupt (the NIC's, or the timer armed for `deadline_ns` on
/// [`clock::now_ns`], at most [`MAX_SLEEP_NS`] away), or return at once if `stop()` holds
/// or the NIC's flag is set. Returns `true` if it halted. Before [`init`], or with no NIC
/// interrupt routed, it spins for [`POLL_US`] instead.
pub fn sleep_until(deadline_ns: u64, stop: impl Fn() -> bool) -> bool {
    if !READY.load(Ordering::Acquire) || !NET_ROUTED.load(Ordering::Acquire) {
        clock::delay_us(POLL_US);
        return false;
    }
    // Interrupts are off here (they are only ever on inside this function).
    if stop() || NET_IRQ.load(Ordering::Acquire) {
        return false;
    }
    let now = clock::now_ns();
    if now >= deadline_ns {
        return false;
    }
    let ns = (deadline_ns - now).min(MAX_SLEEP_NS);
    let ticks =
        (ns * TICKS_PER_MS.load(Ordering::Relaxed) / 1_000_000).clamp(1, u64::from(u32::MAX));
    lapic_write(LAPIC_TIMER_INIT, ticks as u32);
    HALTS.fetch_add(1, Ordering::Relaxed);
    let t0 = clock::now_ns();
    // `sti; hlt`: any interrupt pending or arriving wakes the halt; then interrupts go off.
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
    HALTED_NS.fetch_add(clock::now_ns().saturating_sub(t0), Ordering::Relaxed);
    lapic_write(LAPIC_TIMER_INIT, 0);
    true
}

/// The timer's handler (called from the stub): count + end of interrupt (its only job is
/// to end the halt).
extern "C" fn on_timer() {
    TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
    lapic_write(LAPIC_EOI, 0);
}

/// The NIC's handler (called from the stub): flag + end of interrupt. The NIC itself is not
/// touched: the waiting code polls its used ring.
extern "C" fn on_net() {
    NET_IRQ.store(true, Ordering::Release);
    NET_IRQS.fetch_add(1, Ordering::Relaxed);
    lapic_write(LAPIC_EOI, 0);
}

macro_rules! irq_stub {
    ($name:ident, $handler:path) => {
        /// An interrupt entry: saves the caller-saved registers, calls the handler, returns.
        #[unsafe(naked)]
        pub(crate) extern "C" fn $name() {
            core::arch::naked_asm!(
                "push rax", "push rcx", "push rdx", "push rsi", "push rdi",
                "push r8", "push r9", "push r10", "push r11",
                // 5 words pushed by the CPU + 9 here: the stack is 16-byte aligned.
                "cld",
                "call {h}",
                "pop r11", "pop r10", "pop r9", "pop r8",
                "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rax",
                "iretq",
                h = sym $handler,
            );
        }
    };
}

irq_stub!(timer_entry, on_timer);
irq_stub!(net_entry, on_net);

/// The spurious-vector entry: no end of interrupt for a spurious interrupt.
#[unsafe(naked)]
pub(crate) extern "C" fn spurious_entry() {
    core::arch::naked_asm!("iretq");
}
