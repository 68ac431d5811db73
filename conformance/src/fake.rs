//! The host harness (feature `fake`, needs `std`): [`FakeHarness`] runs every check of the
//! table over [`FakePlatform`] (all [`Needs`] supported).

use crate::{Fail, Harness, Needs, Side};
use rsm_hal::fake::{FakePlatform, FakeRegion};
use rsm_hal::Region;

/// The fake platform as a conformance harness: simulated clock, pin quota and counters,
/// `free` and real threads.
pub struct FakeHarness;

impl Harness for FakeHarness {
    type P = FakePlatform;

    fn supports(&self) -> Needs {
        Needs::all()
    }

    fn platform(&self) -> FakePlatform {
        FakePlatform::new()
    }

    fn alloc(&self, p: &FakePlatform, len: usize) -> Result<FakeRegion, Fail> {
        Ok(p.alloc(len))
    }

    fn raw(&self, addr: usize, len: usize) -> Result<FakeRegion, Fail> {
        Ok(FakeRegion::raw(addr, len))
    }

    fn write(&self, p: &FakePlatform, r: &FakeRegion, off: usize, data: &[u8]) -> Result<(), Fail> {
        if off.checked_add(data.len()).is_none_or(|end| end > r.len()) {
            return Err(Fail::new("harness write outside the region"));
        }
        p.write(r, off, data);
        Ok(())
    }

    fn read(
        &self,
        p: &FakePlatform,
        r: &FakeRegion,
        off: usize,
        out: &mut [u8],
    ) -> Result<(), Fail> {
        if off.checked_add(out.len()).is_none_or(|end| end > r.len()) {
            return Err(Fail::new("harness read outside the region"));
        }
        out.copy_from_slice(&p.read(r, off, out.len()));
        Ok(())
    }

    fn pinned_pages(&self, p: &FakePlatform) -> Option<usize> {
        Some(p.pinned_pages())
    }

    fn counters(&self, p: &FakePlatform) -> Option<(u64, u64)> {
        Some(p.counters())
    }

    fn set_pin_quota(&self, p: &FakePlatform, bytes: usize) -> bool {
        p.set_pin_quota(bytes);
        true
    }

    fn free(&self, p: &FakePlatform, r: &FakeRegion) -> bool {
        p.free(r);
        true
    }

    fn advance(&self, p: &FakePlatform, nanos: u64) {
        p.advance(nanos);
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn concurrently(&self, a: Side<'_>, b: Side<'_>) -> Result<(), Fail> {
        std::thread::scope(|s| {
            let other = s.spawn(b);
            let first = a();
            let second = match other.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            first.and(second)
        })
    }
}
