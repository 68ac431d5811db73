//! CRC-32C by slicing with 16-bit symbols — four lookups per 8 bytes in four tables of
//! 65 536 entries (1 MiB in `.bss`, built once on first use), half the lookups of
//! slice-by-16; bit-for-bit CRC-32C (checked against [`rsm_hal::soft_crc32c_append`] by the
//! image's `crc` self-check).
//!
//! Kept for that self-check's comparison, not used by the platform: in a tight loop under
//! QEMU TCG it beats slice-by-16 (~680 against ~520 MB/s), but in the frame path, between
//! copies of other memory, its 1 MiB of tables misses the emulator's software TLB — one 64 KiB
//! pass measured 460 µs cold against 85 µs warm — and the bench measured slice-by-16 (16 KiB
//! of tables) faster there: putv 29–30 against 24 MB/s at 1514-byte frames, 147–155 against
//! 130 MB/s at 65 507 (`cargo rsm bench`, 2026-12-07).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, Ordering};

/// The reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;
const N: usize = 1 << 16;

struct Tables(UnsafeCell<[[u32; N]; 4]>);

// SAFETY: written once by the thread that moves STATE from EMPTY to BUILDING, read only
// after it published READY (one vCPU in practice; the states keep it sound anyway).
unsafe impl Sync for Tables {}

static TABLES: Tables = Tables(UnsafeCell::new([[0; N]; 4]));
static STATE: AtomicU8 = AtomicU8::new(EMPTY);
const EMPTY: u8 = 0;
const BUILDING: u8 = 1;
const READY: u8 = 2;

/// The byte-wise table entry for `i` (one byte shifted through the register).
const fn byte_entry(i: u32) -> u32 {
    let mut c = i;
    let mut k = 0;
    while k < 8 {
        c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        k += 1;
    }
    c
}

/// The tables, built on first use; `None` while another caller builds them.
fn tables() -> Option<&'static [[u32; N]; 4]> {
    match STATE.compare_exchange(EMPTY, BUILDING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: this caller won EMPTY → BUILDING: nobody else reads or writes the
            // tables until READY is published below.
            let t = unsafe { &mut *TABLES.0.get() };
            let mut t0 = [0u32; 256];
            for (i, e) in t0.iter_mut().enumerate() {
                *e = byte_entry(i as u32);
            }
            // Two bytes at once: c = (c >> 16) ^ V0[c & 0xffff].
            for (x, e) in t[0].iter_mut().enumerate() {
                let c = x as u32;
                let c = (c >> 8) ^ t0[(c & 0xff) as usize];
                *e = (c >> 8) ^ t0[(c & 0xff) as usize];
            }
            // Each further table shifts 16 more zero bits through.
            for k in 1..4 {
                let (done, rest) = t.split_at_mut(k);
                for (e, &v) in rest[0].iter_mut().zip(done[k - 1].iter()) {
                    *e = (v >> 16) ^ done[0][(v & 0xffff) as usize];
                }
            }
            STATE.store(READY, Ordering::Release);
        }
        Err(BUILDING) => return None,
        Err(_) => {}
    }
    // SAFETY: READY was published after the last write; the tables never change again.
    Some(unsafe { &*TABLES.0.get() })
}

/// CRC-32C of `bytes` appended to data whose CRC-32C is `crc` (the convention of
/// [`rsm_hal::Checksum::crc32c_append`]).
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    let Some(t) = tables() else {
        return rsm_hal::soft_crc32c_append(crc, bytes);
    };
    let mut c = !crc;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        c = t[3][(lo & 0xffff) as usize]
            ^ t[2][(lo >> 16) as usize]
            ^ t[1][(hi & 0xffff) as usize]
            ^ t[0][(hi >> 16) as usize];
    }
    for &b in words.remainder() {
        let c0 = (c ^ u32::from(b)) & 0xff;
        // A single byte: eight shifts through the polynomial.
        c = (c >> 8) ^ byte_entry(c0);
    }
    !c
}
