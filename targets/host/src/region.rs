//! Memory regions handed to the RSM layer, and the owned page-aligned buffer that makes them
//! safely.

use crate::error::HostError;
use crate::pages::{self, lock, GLOBAL};
use core::fmt;
use core::ptr::{self, NonNull};
use rsm_hal::{ErrorKind, Region, PAGE_SIZE};
use std::alloc::{self, Layout};

/// A range of process memory that the RSM layer may pin, read and write: a `(pointer, length)`
/// pair implementing [`rsm_hal::Region`].
///
/// Make one safely from a [`PinnedBuf`] ([`PinnedBuf::region`], [`PinnedBuf::subregion`]) or,
/// for memory the program manages itself (as a C program would pass a pointer), with the
/// `unsafe` [`MemRegion::from_raw_parts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: a MemRegion is only an address and a length. Whoever constructed it vouched (see
// `from_raw_parts`, or `PinnedBuf`, which is itself Send + Sync) that the memory is valid for
// reads and writes from any thread while handles made from it live; the backend accesses it
// only through `ptr::copy` with memmove semantics, as C threads share memory.
unsafe impl Send for MemRegion {}
// SAFETY: as for Send: `&MemRegion` gives access to nothing but the address and the length.
unsafe impl Sync for MemRegion {}

impl MemRegion {
    /// A region over `len` bytes at `addr`.
    ///
    /// NULL and misaligned addresses are accepted here: the RSM layer rejects them with the
    /// error code the RSMAPI specifies (e.g. `RSMERR_BAD_ADDR`, `RSMERR_BAD_MEM_ALIGNMENT`).
    ///
    /// # Safety
    /// Unless `addr` is NULL (or `len` is 0), the memory `[addr, addr+len)` must be valid for
    /// reads and writes of `len` bytes, from any thread, for as long as any RSM handle (export
    /// segment, local memory handle, pending transfer) made from this region or a copy of it
    /// lives. While a transfer can run, the caller must not hold Rust references (`&[u8]`,
    /// `&mut [u8]`) to that memory, because the RSM layer may write it at any time; read and
    /// write it through raw pointers or accessors that copy (as [`PinnedBuf`]'s do).
    pub unsafe fn from_raw_parts(addr: *mut u8, len: usize) -> MemRegion {
        MemRegion { ptr: addr, len }
    }

    /// The first byte's address as a raw pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The sub-range `off..off+len` of this region, or `None` if it does not fit.
    ///
    /// Safe: a sub-range of a region inherits the region's guarantee.
    pub fn subregion(&self, off: usize, len: usize) -> Option<MemRegion> {
        let end = off.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(MemRegion {
            // wrapping_add: no pointer arithmetic UB even for a NULL/invalid region.
            ptr: self.ptr.wrapping_add(off),
            len,
        })
    }
}

impl Region for MemRegion {
    fn addr(&self) -> usize {
        self.ptr as usize
    }
    fn len(&self) -> usize {
        self.len
    }
    fn slice(&self, off: usize, len: usize) -> Option<Self> {
        self.subregion(off, len)
    }
}

/// The alignment (and allocation granule) of a [`PinnedBuf`]: the larger of the RSM page size
/// and the system page size, so that a buffer never shares a page with other data.
fn buf_align() -> usize {
    PAGE_SIZE.max(pages::page_size())
}

/// An owned, page-aligned, zero-initialised heap buffer for RSM export segments and local
/// memory handles.
///
/// The allocation is rounded up to whole pages (at least one), so the buffer shares no page
/// with other data. It is not locked by itself: a
/// [`HostPlatform`](crate::HostPlatform) `mlock`s its pages while an RSM handle pins them.
///
/// # Concurrent access
/// Once a [`region`](PinnedBuf::region) of the buffer is handed to the RSM layer, remote puts
/// and local transfers may write it at any time, concurrently with the application — like
/// shared memory in C. The accessors therefore never create long-lived references into the
/// buffer: [`read`](PinnedBuf::read), [`write`](PinnedBuf::write), [`fill`](PinnedBuf::fill)
/// and [`to_vec`](PinnedBuf::to_vec) copy with `ptr::copy` (memmove semantics) and take `&self`.
/// Bytes read while a transfer writes the same range may be a mix of old and new data; use the
/// RSMAPI's barriers and signals to order accesses, as a C program must.
///
/// # Drop
/// Dropping frees the memory — unless some pages are still pinned by a platform (an RSM handle
/// over the buffer is still alive). Then the memory is leaked instead, so the RSM layer never
/// writes freed memory. Using a [`MemRegion`] of a dropped buffer to create new handles is a
/// bug that this check cannot catch: keep the buffer alive as long as its regions are in use.
pub struct PinnedBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: PinnedBuf owns its allocation (no thread-local state); moving it to another thread
// moves the ownership.
unsafe impl Send for PinnedBuf {}
// SAFETY: every `&self` access copies bytes with raw-pointer `ptr::copy`/`write_bytes` and
// creates no references into the buffer; concurrent accesses have the semantics of C shared
// memory (see the type's documentation), as do the RSM transfers that may run at any time.
unsafe impl Sync for PinnedBuf {}

impl PinnedBuf {
    /// A zeroed buffer of `len` bytes, page aligned, occupying whole pages (at least one).
    ///
    /// Fails with [`ErrorKind::OutOfMemory`] if the allocation fails or `len` is too large.
    pub fn new(len: usize) -> Result<PinnedBuf, HostError> {
        let align = buf_align();
        let oom = HostError::new(ErrorKind::OutOfMemory);
        let size = len.max(1).checked_next_multiple_of(align).ok_or(oom)?;
        let layout = Layout::from_size_align(size, align).map_err(|_| oom)?;
        // SAFETY: `layout` has a non-zero size (at least one page).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(oom)?;
        Ok(PinnedBuf { ptr, len, layout })
    }

    /// The usable length in bytes (as requested).
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the buffer has no usable bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The allocated size: `len()` rounded up to whole pages, at least one page.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// The first byte, for raw access (as in C). See the type's notes on concurrent access.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The first byte as a mutable raw pointer, for raw access (as in C). Writing through it
    /// races with RSM transfers exactly as [`PinnedBuf::write`] does.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// A region over the whole buffer (`len()` bytes), to hand to the RSM layer.
    pub fn region(&self) -> MemRegion {
        MemRegion {
            ptr: self.ptr.as_ptr(),
            len: self.len,
        }
    }

    /// A region over `off..off+len` of the buffer, or `None` if it does not fit in `len()`.
    pub fn subregion(&self, off: usize, len: usize) -> Option<MemRegion> {
        self.region().subregion(off, len)
    }

    /// Check that `off..off+n` lies inside the buffer.
    fn check(&self, off: usize, n: usize) -> Result<(), HostError> {
        match off.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(HostError::new(ErrorKind::OutOfRange)),
        }
    }

    /// Copy `out.len()` bytes from offset `off` into `out`; [`ErrorKind::OutOfRange`] (and no
    /// copy) if the range leaves the buffer.
    pub fn read(&self, off: usize, out: &mut [u8]) -> Result<(), HostError> {
        self.check(off, out.len())?;
        // SAFETY: `off + out.len() <= len <= capacity`, so the source lies in our allocation;
        // `out` is a distinct exclusive borrow, valid for `out.len()` bytes of writes.
        unsafe { ptr::copy(self.ptr.as_ptr().add(off), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copy `data` into the buffer at offset `off`; [`ErrorKind::OutOfRange`] (and no copy) if
    /// the range leaves the buffer.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), HostError> {
        self.check(off, data.len())?;
        // SAFETY: `off + data.len() <= len <= capacity`, so the destination lies in our
        // allocation, which is written only through raw pointers (no references exist into it);
        // `data` is valid for reads of `data.len()` bytes. ptr::copy tolerates overlap, should
        // `data` point into this buffer.
        unsafe { ptr::copy(data.as_ptr(), self.ptr.as_ptr().add(off), data.len()) };
        Ok(())
    }

    /// Set every one of the `len()` bytes to `byte`.
    pub fn fill(&self, byte: u8) {
        // SAFETY: the first `len <= capacity` bytes are in our allocation, and no references
        // exist into it.
        unsafe { ptr::write_bytes(self.ptr.as_ptr(), byte, self.len) };
    }

    /// A copy of the `len()` bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        // SAFETY: the first `len` bytes are in our allocation; `v` is a fresh vector of `len`.
        unsafe { ptr::copy(self.ptr.as_ptr(), v.as_mut_ptr(), self.len) };
        v
    }
}

impl fmt::Debug for PinnedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedBuf")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("capacity", &self.layout.size())
            .finish()
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        let shift = pages::page_shift();
        let addr = self.ptr.as_ptr() as usize;
        let first = addr >> shift;
        let end = (addr + self.layout.size()) >> shift;
        // Hold the process-wide table while freeing, so that no platform pins these pages
        // between the check and the free.
        let global = lock(&GLOBAL);
        if global.range(first..end).next().is_some() {
            // Still pinned by an RSM handle: leak rather than let the RSM layer write freed
            // memory.
            return;
        }
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` and is freed only here.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        drop(global);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_whole_pages() {
        for len in [0usize, 1, 100, 4095, 4096, 4097, 3 * 4096 + 5] {
            let b = PinnedBuf::new(len).unwrap();
            assert_eq!(b.as_ptr() as usize % 4096, 0, "len {len}");
            assert_eq!(b.len(), len);
            assert_eq!(b.is_empty(), len == 0);
            assert!(b.capacity() >= len.max(1));
            assert_eq!(b.capacity() % 4096, 0);
            assert!(b.to_vec().iter().all(|&x| x == 0));
            assert_eq!(b.region().len(), len);
            assert_eq!(b.region().addr(), b.as_ptr() as usize);
        }
    }

    #[test]
    fn huge_allocation_fails_cleanly() {
        let e = PinnedBuf::new(usize::MAX).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfMemory);
        let e = PinnedBuf::new(usize::MAX / 2).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfMemory);
    }

    #[test]
    fn accessors_and_bounds() {
        let b = PinnedBuf::new(16).unwrap();
        b.write(0, b"0123456789abcdef").unwrap();
        let mut out = [0u8; 4];
        b.read(12, &mut out).unwrap();
        assert_eq!(&out, b"cdef");
        // Out of range: nothing read or written.
        let mut out = [9u8; 4];
        assert_eq!(
            b.read(13, &mut out).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(out, [9; 4]);
        assert_eq!(
            b.write(15, b"xy").unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            b.write(usize::MAX, b"x").unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            b.read(usize::MAX, &mut out).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(b.to_vec(), b"0123456789abcdef");
        // Empty accesses at the end are fine.
        b.write(16, b"").unwrap();
        b.read(16, &mut []).unwrap();
        b.fill(0xAB);
        assert_eq!(b.to_vec(), vec![0xAB; 16]);
        // fill touches only len() bytes.
        let mut tail = [0u8; 1];
        // SAFETY: the capacity is a whole page, so byte 16 is in the allocation.
        unsafe { ptr::copy(b.as_ptr().add(16), tail.as_mut_ptr(), 1) };
        assert_eq!(tail, [0]);
    }

    #[test]
    fn subregions() {
        let b = PinnedBuf::new(100).unwrap();
        let r = b.subregion(10, 90).unwrap();
        assert_eq!(r.addr(), b.as_ptr() as usize + 10);
        assert_eq!(r.len(), 90);
        assert!(b.subregion(10, 91).is_none());
        assert!(b.subregion(usize::MAX, 2).is_none());
        assert_eq!(b.subregion(100, 0).map(|r| r.len()), Some(0));
        let rr = r.subregion(5, 5).unwrap();
        assert_eq!(rr.addr(), b.as_ptr() as usize + 15);
        assert!(r.subregion(86, 5).is_none());
        // Raw regions, even NULL ones, can be narrowed safely.
        // SAFETY: a NULL region is never dereferenced (the RSM layer rejects it).
        let null = unsafe { MemRegion::from_raw_parts(ptr::null_mut(), 64) };
        assert_eq!(null.addr(), 0);
        assert_eq!(null.subregion(8, 8).map(|r| r.addr()), Some(8));
    }
}
