//! The clock: the TSC, calibrated once at boot against the PIT (channel 2, whose output
//! can be read back through port 0x61 without interrupts).
//!
//! Under QEMU TCG the guest TSC follows the host's, and the PIT follows QEMU's virtual
//! clock (host time), so the calibration measures the real rate over a 5 ms gate.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// The calibration gate, in PIT ticks (5 ms: boot time counts, and ±10 µs of emulation
/// jitter is 0.2 % of it — plenty for timeouts and rates).
const GATE_TICKS: u64 = PIT_HZ / 200;

/// TSC ticks per second (0 until [`calibrate`]).
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// The TSC at calibration: the clock's origin.
static TSC_ORIGIN: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick as a 32.32 fixed-point number.
static NS_PER_TICK_32: AtomicU64 = AtomicU64::new(1 << 32);

/// The raw time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads a counter; it has no memory effects (CR4.TSD is clear, so it is
    // allowed at ring 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measure the TSC rate against the PIT; returns TSC ticks per second. Falls back to
/// 1 GHz (and says so) if the PIT never reaches its terminal count.
pub fn calibrate() -> u64 {
    let mut ctl: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x61 (system control B), 0x43 (PIT command) and 0x42 (PIT channel 2)
    // of the PC platform; channel 2 drives only the (disabled) speaker, nothing else of the
    // image uses it.
    let hz = unsafe {
        // Gate on, speaker off.
        let v = ctl.read();
        ctl.write((v & !0x02) | 0x01);
        // Channel 2, low then high byte, mode 0 (interrupt on terminal count), binary.
        cmd.write(0b1011_0000);
        ch2.write((GATE_TICKS & 0xff) as u8);
        let start = rdtsc();
        ch2.write((GATE_TICKS >> 8) as u8);
        let mut spins: u64 = 0;
        // OUT2 (bit 5) goes high at the terminal count.
        while ctl.read() & 0x20 == 0 {
            spins += 1;
            if spins > 100_000_000 {
                break;
            }
        }
        let end = rdtsc();
        if spins > 100_000_000 || end <= start {
            defmt::warn!("rsm-board: PIT calibration failed, assuming a 1 GHz TSC");
            1_000_000_000
        } else {
            (end - start) * PIT_HZ / GATE_TICKS
        }
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK_32.store((1_000_000_000u64 << 32) / hz.max(1), Ordering::Relaxed);
    TSC_ORIGIN.store(rdtsc(), Ordering::Relaxed);
    hz
}

/// TSC ticks per second as calibrated (0 before [`calibrate`]).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since calibration.
pub fn now_ns() -> u64 {
    let ticks = rdtsc().saturating_sub(TSC_ORIGIN.load(Ordering::Relaxed));
    ((u128::from(ticks) * u128::from(NS_PER_TICK_32.load(Ordering::Relaxed))) >> 32) as u64
}

/// Busy-wait `us` microseconds.
pub fn delay_us(us: u64) {
    let end = now_ns().saturating_add(us.saturating_mul(1000));
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

/// CRC-32C with the SSE4.2 `crc32` instruction (8 bytes at a time), same convention as
/// [`rsm_hal::soft_crc32c_append`]; for the image's speed comparison (under TCG the
/// software tables are faster, so the platform does not use this). QEMU's `-cpu max`
/// provides SSE4.2.
pub fn crc32c_sse42(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = u64::from(!crc);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        // SAFETY: `crc32` is an SSE4.2 instruction; the runner starts QEMU with `-cpu max`,
        // which has it (a CPU without it would fault, and the fault is reported).
        unsafe {
            core::arch::asm!("crc32 {c}, {v}", c = inout(reg) c, v = in(reg) u64::from_le_bytes(b),
                options(pure, nomem, nostack));
        }
    }
    let mut c32 = c as u32;
    for &b in words.remainder() {
        // SAFETY: as above (the byte form of the instruction).
        unsafe {
            core::arch::asm!("crc32 {c:e}, {v}", c = inout(reg) c32, v = in(reg_byte) b,
                options(pure, nomem, nostack));
        }
    }
    !c32
}
