//! Logging: `defmt` 1.x over COM1. Every log call (`defmt::info!`, `defmt::println!`, …)
//! becomes one rzCOBS-encoded frame on the serial port; the runner decodes them with
//! `defmt-decoder` and the image's ELF (which holds the format strings). Nothing else
//! writes to COM1 — plain text there would corrupt the frame stream.
//!
//! The logger serialises frames with a flag instead of a lock: the image has one vCPU and
//! exception handlers log too, so a log call that finds the flag taken (an exception inside a
//! log call) drops its frame rather than deadlock or interleave — except the panic and
//! exception handlers, which end the interrupted frame first ([`break_in`]).
//!
//! Timestamps are microseconds of the TSC clock since calibration.

use core::sync::atomic::{AtomicBool, Ordering};
use uart_16550::SerialPort;

/// The port and the frame encoder, used only between `acquire` and `release`.
struct State {
    port: Option<SerialPort>,
    encoder: defmt::Encoder,
}

/// `true` while a frame is being written.
static TAKEN: AtomicBool = AtomicBool::new(false);
/// This frame's writer dropped its frame (the flag was taken).
static DROPPING: AtomicBool = AtomicBool::new(false);

struct Cell(core::cell::UnsafeCell<State>);

// SAFETY: `State` is reached only by the one log call that set `TAKEN` (see `acquire`).
unsafe impl Sync for Cell {}

static STATE: Cell = Cell(core::cell::UnsafeCell::new(State {
    port: None,
    encoder: defmt::Encoder::new(),
}));

/// For the panic and exception handlers, which never return: if they interrupted a log
/// call in the middle of its frame, end that frame (a 0x00 delimiter — the decoder drops the
/// partial frame as malformed and resynchronises) and free the logger, so that their own
/// message gets out instead of being dropped.
pub(crate) fn break_in() {
    if TAKEN.load(Ordering::Acquire) {
        put(&mut state().port, &[0]);
        DROPPING.store(false, Ordering::Relaxed);
        TAKEN.store(false, Ordering::Release);
    }
}

#[defmt::global_logger]
struct Logger;

/// The state, for the holder of `TAKEN`.
fn state() -> &'static mut State {
    // SAFETY: called only between a successful `acquire` and its `release` (TAKEN held), so
    // this is the only live reference — or by `break_in`, from the panic and exception
    // handlers, which never return: the log call they interrupted never runs again.
    unsafe { &mut *STATE.0.get() }
}

fn put(port: &mut Option<SerialPort>, bytes: &[u8]) {
    let p = port.get_or_insert_with(|| {
        // SAFETY: 0x3F8 is COM1 on the PC platform QEMU emulates; only this logger uses it.
        let mut s = unsafe { SerialPort::new(0x3F8) };
        s.init();
        s
    });
    for &b in bytes {
        p.send_raw(b);
    }
}

// SAFETY: `acquire` / `release` bracket every frame and keep frames from interleaving (the
// flag), `write` is only called in between, as defmt requires.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            DROPPING.store(true, Ordering::Relaxed);
            return;
        }
        let s = state();
        let State { port, encoder } = s;
        encoder.start_frame(|b| put(port, b));
    }

    unsafe fn flush() {}

    unsafe fn release() {
        if DROPPING.swap(false, Ordering::Relaxed) {
            return;
        }
        let State { port, encoder } = state();
        encoder.end_frame(|b| put(port, b));
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        if DROPPING.load(Ordering::Relaxed) {
            return;
        }
        let State { port, encoder } = state();
        encoder.write(bytes, |b| put(port, b));
    }
}

defmt::timestamp!("{=u64:us}", crate::clock::now_ns() / 1000);
