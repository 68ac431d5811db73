//! Static memory handed out once: the image has no heap, so an application's buffers
//! (exported segments, local memory) are `static`s of this type.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// `N` page-aligned bytes in `.bss`, handed out once as `&'static mut [u8]`.
///
/// ```ignore
/// static SEG: StaticBuf<{ 1 << 20 }> = StaticBuf::new();
/// let mem: &'static mut [u8] = SEG.take().expect("taken once");
/// ```
#[repr(C, align(4096))]
pub struct StaticBuf<const N: usize> {
    bytes: UnsafeCell<[u8; N]>,
    taken: AtomicBool,
}

// SAFETY: the bytes are reached only through the one `&'static mut` that `take` hands out
// (the flag makes a second `take` fail), so sharing the static between threads is sound.
unsafe impl<const N: usize> Sync for StaticBuf<N> {}

impl<const N: usize> StaticBuf<N> {
    /// Zeroed bytes (in `.bss`: they cost no image size).
    pub const fn new() -> Self {
        StaticBuf {
            bytes: UnsafeCell::new([0; N]),
            taken: AtomicBool::new(false),
        }
    }

    /// The bytes, the first time; `None` after.
    #[allow(clippy::mut_from_ref)] // handed out once: the flag makes it unique
    pub fn take(&'static self) -> Option<&'static mut [u8]> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was false, so no other reference to the bytes exists, and none
        // will (it stays true); the static lives for ever.
        Some(unsafe { &mut *self.bytes.get() })
    }
}

impl<const N: usize> Default for StaticBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A value of type `T` put in a `static` at run time and handed out once as `&'static mut T`
/// (e.g. the NIC, which a node keeps: `Rsm::attach_link` wants `&'static mut`).
pub struct StaticCell<T> {
    value: UnsafeCell<core::mem::MaybeUninit<T>>,
    taken: AtomicBool,
}

// SAFETY: as for `StaticBuf`: the value is reached only through the one `&'static mut` that
// `put` returns; `T: Send` because that reference may be used on any thread.
unsafe impl<T: Send> Sync for StaticCell<T> {}

impl<T> StaticCell<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        StaticCell {
            value: UnsafeCell::new(core::mem::MaybeUninit::uninit()),
            taken: AtomicBool::new(false),
        }
    }

    /// Store `value` and return the only reference to it; `Err(value)` if the cell was
    /// filled before.
    #[allow(clippy::mut_from_ref)] // handed out once: the flag makes it unique
    pub fn put(&'static self, value: T) -> Result<&'static mut T, T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return Err(value);
        }
        // SAFETY: the flag was false: nobody else references the slot, and nobody will.
        let slot = unsafe { &mut *self.value.get() };
        Ok(slot.write(value))
    }
}

impl<T> Default for StaticCell<T> {
    fn default() -> Self {
        Self::new()
    }
}
