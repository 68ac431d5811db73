//! `scenario=conformance`: the single-node conformance table (`rsm-conformance`, the same
//! checks `cargo test` runs over the fake platform) over the image's own
//! [`KernelPlatform`], one check at a time.
//!
//! The harness allocates from a static arena, reset before every check; after every check
//! no frame may stay pinned (nodes unpin everything when dropped), and the pin limit a check
//! set is lifted. The image supports [`Needs::PIN_COUNT`] (the platform's global frame
//! counts: checks run one at a time) and [`Needs::PIN_QUOTA`] (its global pin limit); the
//! rest is excluded, each for a reason printed with it: one vCPU and no scheduler
//! (`THREADS`), no allocator to free memory under a handle (`FREE`), a real clock
//! (`SIM_CLOCK`).
//!
//! Output: a `FAILED` line per failing check, an `EXCLUDED` line per excluded check, then
//! `CONFORMANCE total= ran= passed= excluded= supports=`; the exit is a pass only if every
//! check that ran passed.

use defmt::println;
use rsm_board::platform::{
    pin_counters, pinned_frames, set_pin_limit, KernelPlatform, KernelRegion,
};
use rsm_board::{clock, exit, StaticBuf};
use rsm_conformance::{Fail, Harness, Needs, Side, Verdict};
use rsm_hal::Region;

/// Bytes of the arena the checks allocate from.
const ARENA: usize = 8 << 20;

/// Lowest address [`Harness::raw`] names outside RAM (the image runs with `-m` < 1 GiB).
const OUTSIDE_RAM: usize = 0x4000_0000;

static ARENA_MEM: StaticBuf<ARENA> = StaticBuf::new();

/// The image's harness: a bump allocator over the arena.
struct KernelHarness {
    base: usize,
    next: spin::Mutex<usize>,
}

impl KernelHarness {
    /// `true` if `addr..addr + len` lies inside the arena.
    fn in_arena(&self, addr: usize, len: usize) -> bool {
        addr >= self.base
            && addr
                .checked_add(len)
                .is_some_and(|end| end <= self.base + ARENA)
    }

    /// Start over at the arena's beginning.
    ///
    /// # Safety
    /// No region handed out by [`Harness::alloc`] or [`Harness::raw`] before may be alive
    /// (the next allocations reuse its bytes).
    unsafe fn reset(&self) {
        *self.next.lock() = 0;
    }
}

impl Harness for KernelHarness {
    type P = KernelPlatform;

    fn supports(&self) -> Needs {
        Needs::PIN_COUNT.union(Needs::PIN_QUOTA)
    }

    fn platform(&self) -> KernelPlatform {
        KernelPlatform::new()
    }

    fn alloc(&self, _p: &KernelPlatform, len: usize) -> Result<KernelRegion, Fail> {
        let mut next = self.next.lock();
        let off = *next;
        let Some((bytes, end)) = len
            .div_ceil(rsm_hal::PAGE_SIZE)
            .max(1)
            .checked_mul(rsm_hal::PAGE_SIZE)
            .and_then(|b| Some((b, off.checked_add(b)?)))
            .filter(|&(_, e)| e <= ARENA)
        else {
            return Err(Fail::new("conformance arena exhausted"));
        };
        *next = end;
        let addr = self.base + off;
        // SAFETY: `addr..addr + bytes` lies inside the arena — static memory
        // taken once and only ever reached through regions — and no live region names it
        // (the bump pointer only moves forward until `reset`, whose caller promises no
        // region from before is alive). Zeroed here, as `alloc` promises.
        unsafe {
            core::ptr::write_bytes(addr as *mut u8, 0, bytes);
            Ok(KernelRegion::from_raw_parts(addr as *mut u8, len))
        }
    }

    fn raw(&self, addr: usize, len: usize) -> Result<KernelRegion, Fail> {
        if addr == 0 || addr >= OUTSIDE_RAM || self.in_arena(addr, len) {
            // SAFETY: either the range lies inside the arena (static memory, valid for ever;
            // regions may alias), or it is NULL or outside RAM: the platform's pins and
            // copies refuse every byte of it (`BadAddress`), so nothing ever reads or writes
            // through it, and this harness's `read`/`write` refuse anything outside the
            // arena.
            Ok(unsafe { KernelRegion::from_raw_parts(addr as *mut u8, len) })
        } else {
            Err(Fail::new("the image cannot name this range").with(format_args!("{addr:#x}+{len}")))
        }
    }

    fn write(
        &self,
        _p: &KernelPlatform,
        r: &KernelRegion,
        off: usize,
        data: &[u8],
    ) -> Result<(), Fail> {
        if !self.in_arena(r.addr(), r.len()) {
            return Err(Fail::new("harness write outside the arena"));
        }
        r.write(off, data)
            .map_err(|e| Fail::new("harness write").with(format_args!("{e:?}")))
    }

    fn read(
        &self,
        _p: &KernelPlatform,
        r: &KernelRegion,
        off: usize,
        out: &mut [u8],
    ) -> Result<(), Fail> {
        if !self.in_arena(r.addr(), r.len()) {
            return Err(Fail::new("harness read outside the arena"));
        }
        r.read(off, out)
            .map_err(|e| Fail::new("harness read").with(format_args!("{e:?}")))
    }

    fn pinned_pages(&self, _p: &KernelPlatform) -> Option<usize> {
        Some(pinned_frames())
    }

    fn counters(&self, _p: &KernelPlatform) -> Option<(u64, u64)> {
        Some(pin_counters())
    }

    /// The image's limit is global ([`set_pin_limit`]): [`run`] lifts it after each check.
    fn set_pin_quota(&self, _p: &KernelPlatform, bytes: usize) -> bool {
        set_pin_limit(bytes);
        true
    }

    fn free(&self, _p: &KernelPlatform, _r: &KernelRegion) -> bool {
        false
    }

    fn advance(&self, _p: &KernelPlatform, nanos: u64) {
        clock::delay_us(nanos.div_ceil(1000));
    }

    fn sleep_ms(&self, ms: u64) {
        clock::delay_us(ms.saturating_mul(1000));
    }

    fn concurrently(&self, _a: Side<'_>, _b: Side<'_>) -> Result<(), Fail> {
        Err(Fail::new("the image has one vCPU and no threads"))
    }
}

/// Run the table; pass only if every check that ran passed and none leaked a pin.
pub fn run() -> u32 {
    let Some(mem) = ARENA_MEM.take() else {
        println!("FAIL conformance arena taken twice");
        return exit::FAIL;
    };
    let h = KernelHarness {
        base: mem.as_mut_ptr() as usize,
        next: spin::Mutex::new(0),
    };
    let started = clock::now_ns();
    let mut leaks = 0u32;
    let summary = rsm_conformance::run(&h, "", |c, v| {
        match v {
            Verdict::Excluded(missing) => {
                println!(
                    "EXCLUDED {=str} {=str} {=str}",
                    c.name,
                    missing.first_name(),
                    missing.reason()
                );
                return;
            }
            Verdict::Failed(f) => println!(
                "FAILED {=str}::{=str} {=str}:{=u32} {=str} {=str}",
                c.module,
                c.name,
                f.file,
                f.line,
                f.what,
                f.detail.as_str()
            ),
            Verdict::Passed => {}
        }
        let pinned = pinned_frames();
        if pinned != 0 {
            leaks += 1;
            println!(
                "FAILED {=str}::{=str} left {=usize} frames pinned",
                c.module, c.name, pinned
            );
        }
        set_pin_limit(usize::MAX);
        // SAFETY: the check has returned: every node, handle and region it made was a local
        // of it and is gone (checks are plain functions that keep nothing; the harness
        // keeps no region).
        unsafe { h.reset() };
    });
    let ms = (clock::now_ns() - started) / 1_000_000;
    println!(
        "CONFORMANCE total={=usize} ran={=usize} passed={=usize} excluded={=usize} supports={=u32} leaks={=u32} ms={=u64}",
        summary.total,
        summary.ran,
        summary.passed,
        summary.excluded,
        h.supports().bits(),
        leaks,
        ms
    );
    if summary.passed == summary.ran && leaks == 0 && summary.total > 0 {
        exit::PASS
    } else {
        exit::FAIL
    }
}
