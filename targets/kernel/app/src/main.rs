//! rsm-kernel: the rsm-rs unikernel application, on the board crate `rsm-board`.
//!
//! `scenario=` on the kernel command line picks what the image does:
//! * (none) — boot to ready and pass (the boot self-check);
//! * `fault` / `panic` — fault or panic on purpose: the board must log it and exit with the
//!   failure / panic code;
//! * `net` — virtio-net self-check: send a broadcast frame, receive one frame back;
//! * `crc` — time the software CRC-32C against the `crc32` instruction (TCG emulates it),
//!   and a 64 KiB memcpy;
//! * `demo` — the RSM demo, `role=exporter` or `role=importer`, and the bench's RSM side,
//!   `role=bench-exporter` / `role=bench` (see [`demo`]);
//! * `raw` — the bench's limit side: bare frames, `role=sink` / `role=source` (see [`raw`]);
//! * `conformance` — the single-node conformance table over the image's platform (see
//!   [`conformance`]).

#![no_std]
#![no_main]

mod conformance;
mod demo;
mod raw;

use defmt::println;
use rsm_board::net::VirtioLink;
use rsm_board::{clock, entry, exit, Boot};
use rsm_hal::Link;

/// EtherType of the self-check's frames (IEEE local experimental 2).
const ETHERTYPE: u16 = 0x88B6;

fn main(boot: &Boot) -> u32 {
    match boot.arg("scenario") {
        Some("fault") => fault(),
        Some("null") => null(),
        Some("logfault") => log_fault(),
        Some("overflow") => overflow(boot.num("depth", u64::MAX).unwrap_or(u64::MAX)),
        Some("panic") => panic!("requested by the command line"),
        Some("net") => net_check(boot.arg("node").unwrap_or("?")),
        Some("crc") => crc_speed(),
        Some("demo") => demo::run(boot),
        Some("raw") => raw::run(boot),
        Some("conformance") => conformance::run(),
        Some(other) => {
            println!("rsm-kernel: unknown scenario `{=str}`", other);
            exit::FAIL
        }
        None => {
            println!("rsm-kernel: ready");
            exit::PASS
        }
    }
}

entry!(main);

/// Read an unmapped address: the board's page-fault handler must end the run.
fn fault() -> u32 {
    let p = 0x4000_0000_0000usize as *const u64;
    // SAFETY: none — this reads an unmapped address on purpose, to check that the page
    // fault is logged and ends in the failure exit.
    let v = unsafe { p.read_volatile() };
    println!("rsm-kernel: read {=u64} from an unmapped address", v);
    exit::PASS
}

/// Read address 0: page 0 is unmapped (a guard), so this must fault.
fn null() -> u32 {
    let p = core::hint::black_box(0usize) as *const u64;
    // SAFETY: none — a null read on purpose, to check the null guard page.
    let v = unsafe { p.read_volatile() };
    println!("rsm-kernel: read {=u64} at address 0", v);
    exit::PASS
}

/// Fault in the middle of a log frame: the exception handler must still get its message
/// out (the logger is taken when it runs).
fn log_fault() -> u32 {
    struct Faulty;
    impl defmt::Format for Faulty {
        fn format(&self, f: defmt::Formatter<'_>) {
            defmt::write!(f, "half a frame, then ");
            let p = core::hint::black_box(0usize) as *const u64;
            // SAFETY: none — a null read on purpose, inside a log call.
            let v = unsafe { p.read_volatile() };
            defmt::write!(f, "{=u64}", v);
        }
    }
    println!("rsm-kernel: {}", Faulty);
    exit::PASS
}

/// Recurse until the stack overflows into its guard page (a double fault, logged).
fn overflow(depth: u64) -> u32 {
    #[inline(never)]
    fn down(n: u64) -> u64 {
        let mut pad = [0u8; 512];
        pad[0] = n as u8;
        let pad = core::hint::black_box(pad);
        if n == 0 {
            return u64::from(pad[0]);
        }
        down(n - 1) + u64::from(pad[7])
    }
    let r = down(depth);
    println!("rsm-kernel: recursion returned {=u64}", r);
    exit::PASS
}

/// Send one broadcast frame naming `node`, then wait (bounded) for one frame to our MAC.
fn net_check(node: &str) -> u32 {
    let Some(mut link) = VirtioLink::open() else {
        println!("rsm-kernel: no virtio-net device");
        return exit::FAIL;
    };
    let mac = link.mac();
    println!(
        "rsm-kernel: mac {=u8:02x}:{=u8:02x}:{=u8:02x}:{=u8:02x}:{=u8:02x}:{=u8:02x}",
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
    if let Err(e) = link.transmit(&frame) {
        println!("rsm-kernel: send: {}", defmt::Debug2Format(&e));
        return exit::FAIL;
    }
    println!("rsm-kernel: sent {=usize} bytes", frame.len());
    let mut rx = [0u8; rsm_board::net::FRAME_MAX];
    let end = clock::now_ns() + 10_000_000_000;
    while clock::now_ns() < end {
        match link.receive(&mut rx) {
            Ok(Some(len)) => {
                let ours = len >= 14 && rx[12..14] == ETHERTYPE.to_be_bytes() && rx[..6] == mac;
                println!(
                    "rsm-kernel: received {=usize} bytes, addressed to us: {=bool}",
                    len, ours
                );
                return if ours { exit::PASS } else { exit::FAIL };
            }
            Ok(None) => core::hint::spin_loop(),
            Err(e) => {
                println!("rsm-kernel: receive: {}", defmt::Debug2Format(&e));
                return exit::FAIL;
            }
        }
    }
    println!("rsm-kernel: nothing received");
    exit::FAIL
}

/// Time CRC-32C over a 9000-byte buffer: software slice-by-16 (the platform's choice) and
/// the SSE4.2 `crc32` instruction as TCG emulates it; check both agree.
fn crc_speed() -> u32 {
    static BUF: rsm_board::StaticBuf<9000> = rsm_board::StaticBuf::new();
    let Some(buf) = BUF.take() else {
        return exit::FAIL;
    };
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 31 + 7) as u8;
    }
    const ROUNDS: u64 = 200;
    let t0 = clock::now_ns();
    let mut soft = 0;
    for _ in 0..ROUNDS {
        soft = rsm_hal::soft_crc32c_append(0, buf);
    }
    let t1 = clock::now_ns();
    let mut hard = 0;
    for _ in 0..ROUNDS {
        hard = rsm_board::clock::crc32c_sse42(0, buf);
    }
    let t2 = clock::now_ns();
    let mut wide = rsm_board::crc::crc32c_append(0, buf); // builds the tables
    let t3 = clock::now_ns();
    for _ in 0..ROUNDS {
        wide = rsm_board::crc::crc32c_append(0, buf);
    }
    let t4 = clock::now_ns();
    // Appending works across uneven pieces too.
    let pieces =
        rsm_board::crc::crc32c_append(rsm_board::crc::crc32c_append(0, &buf[..1001]), &buf[1001..]);
    let mbps = |ns: u64| ROUNDS * 9000 * 1000 / ns.max(1);
    // A 64 KiB copy (the compiler's memcpy: `rep movs`, which TCG runs as a fast helper),
    // to compare with the CRC: the frame path's copies are cheap next to it.
    static SRC: rsm_board::StaticBuf<65536> = rsm_board::StaticBuf::new();
    static DST: rsm_board::StaticBuf<65536> = rsm_board::StaticBuf::new();
    let (Some(src), Some(dst)) = (SRC.take(), DST.take()) else {
        return exit::FAIL;
    };
    src.fill(0x5a);
    let c0 = clock::now_ns();
    for _ in 0..ROUNDS {
        dst.copy_from_slice(core::hint::black_box(&*src));
    }
    let c1 = clock::now_ns();
    // What a `rdtsc` costs (the profile times calls with two), and one 64 KiB pass of the
    // 16-bit-slicing CRC right after the copies above — its first pass pays for the
    // emulator's TLB misses over 1 MiB of tables, which is why the platform does not use it.
    let r0 = clock::now_ns();
    for _ in 0..10_000 {
        core::hint::black_box(clock::rdtsc());
    }
    let r1 = clock::now_ns();
    let mut pass = [0u64; 2];
    for slot in pass.iter_mut() {
        let a = clock::now_ns();
        core::hint::black_box(rsm_board::crc::crc32c_append(
            0,
            core::hint::black_box(&*src),
        ));
        *slot = (clock::now_ns() - a) / 1000;
    }
    println!(
        "TIMING rdtsc_ns={=u64} wide16_64k_first_us={=u64} wide16_64k_next_us={=u64}",
        (r1 - r0) / 10_000,
        pass[0],
        pass[1]
    );
    println!(
        "COPY memcpy_mbps={=u64} equal={=bool}",
        ROUNDS * 65536 * 1000 / (c1 - c0).max(1),
        src == dst
    );
    println!(
        "CRC soft_mbps={=u64} sse42_mbps={=u64} wide16_mbps={=u64} wide16_tables_us={=u64} agree={=bool}",
        mbps(t1 - t0),
        mbps(t2 - t1),
        mbps(t4 - t3),
        (t3 - t2) / 1000,
        soft == hard && soft == wide && soft == pieces
    );
    if soft == hard && soft == wide && soft == pieces {
        exit::PASS
    } else {
        exit::FAIL
    }
}
