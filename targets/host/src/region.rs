//! Memory regions handed to the RSM layer, and the owned page-aligned buffer that makes them
//! safely.

use crate::error::HostError;
use crate::pages;
use crate::shared::{self, Span};
use core::fmt;
use core::ptr::NonNull;
use rsm_hal::{ErrorKind, Region, PAGE_SIZE};
use std::alloc::{self, Layout};
use std::sync::Arc;

/// A range of memory that the RSM layer may pin, read and write: implements
/// [`rsm_hal::Region`].
///
/// # Ownership
/// A region made from a [`PinnedBuf`] ([`PinnedBuf::region`], [`PinnedBuf::subregion`])
/// *shares ownership* of the buffer's memory: the memory is freed only when the buffer and
/// every region, sub-region and clone of one are gone. The RSM layer keeps a clone for every
/// export segment, local memory handle and pending transfer that names the memory, so dropping
/// the buffer early never leaves the RSM layer writing freed memory — the memory simply lives
/// until the last handle is freed or the last transfer completes. (Shared ownership rather than
/// a borrowing region because handles outlive any one call: the RSMAPI frees them by explicit
/// calls, in any order, from any thread.)
///
/// Two other constructors cover memory the program manages itself:
/// [`MemRegion::from_static`] (safe: it takes the only reference to memory that lives forever,
/// as a unikernel's static buffers do) and the `unsafe` [`MemRegion::from_raw_parts`] (a
/// pointer and a length, as a C program passes them).
///
/// # Access
/// The memory may be written by RSM transfers at any time, so [`MemRegion::read`],
/// [`MemRegion::write`] and [`MemRegion::to_vec`] copy with relaxed atomic accesses (never
/// creating references into it): a concurrent transfer is not a data race, and bytes read
/// while one writes the same range may mix old and new data. Order accesses with the RSMAPI's
/// barriers and signals, as a C program must.
///
/// ```
/// use rsm_host::{MemRegion, PinnedBuf};
///
/// let buf = PinnedBuf::new(4096)?;
/// let region: MemRegion = buf.subregion(100, 8).unwrap();
/// drop(buf); // the region keeps the memory alive
/// region.write(0, b"still ok")?;
/// assert_eq!(region.to_vec(), b"still ok");
/// # Ok::<(), rsm_host::HostError>(())
/// ```
#[derive(Clone)]
pub struct MemRegion {
    ptr: *mut u8,
    len: usize,
    /// The memory this region is part of, shared by all regions of it.
    origin: Arc<Origin>,
}

/// The memory a region is part of: its span (the grid of atomic accesses, see `shared`) and,
/// for a [`PinnedBuf`], the allocation, freed when the buffer and its last region are gone.
/// (One shared block keeps a region at three words: pointer, length and this.)
struct Origin {
    span: Span,
    alloc: Option<Alloc>,
}

/// A region's bytes without its ownership: what the accessors work on.
#[derive(Clone, Copy)]
struct Bytes {
    ptr: *mut u8,
    len: usize,
    span: Span,
}

// SAFETY: a MemRegion is an address, a length and a share of an `Origin` (Send + Sync). Whoever constructed it vouched that the memory is valid from any thread while the
// region lives (`from_raw_parts`), or the region keeps it alive (`PinnedBuf`) or it lives
// forever (`from_static`); every access through it is atomic (module `shared`), so accesses
// from several threads do not race.
unsafe impl Send for MemRegion {}
// SAFETY: as for Send: `&MemRegion` gives nothing but atomic access to the memory.
unsafe impl Sync for MemRegion {}

impl MemRegion {
    /// A region over `len` bytes at `addr`.
    ///
    /// NULL and misaligned addresses are accepted here: the RSM layer rejects them with the
    /// error code the RSMAPI specifies (e.g. `RSMERR_BAD_ADDR`, `RSMERR_BAD_MEM_ALIGNMENT`).
    ///
    /// # Safety
    /// Unless `addr` is NULL (or `len` is 0):
    /// * the memory `[addr, addr+len)` must be valid for reads and writes of `len` bytes, from
    ///   any thread, for as long as this region or any clone or sub-region of it lives — the
    ///   RSM layer keeps clones in export segments, local memory handles and pending
    ///   transfers, so until the last of those is freed or completed;
    /// * while a transfer can run, the memory must not be accessed through Rust references
    ///   (`&[u8]`, `&mut [u8]`) or other non-atomic accesses from Rust: use this region's
    ///   accessors. (C code sharing the memory follows C's rules, as with any shared memory.)
    ///
    /// The C layer (`librsm`) is the one intended user; Rust code has [`PinnedBuf`] and
    /// [`MemRegion::from_static`].
    ///
    /// ```
    /// use rsm_host::MemRegion;
    ///
    /// let mem: &'static mut [u8] = Box::leak(vec![0u8; 64].into_boxed_slice());
    /// let ptr = mem.as_mut_ptr();
    /// // SAFETY: the leaked memory is valid forever, and only used through the region.
    /// let r = unsafe { MemRegion::from_raw_parts(ptr, 64) };
    /// r.write(0, b"abc")?;
    /// assert_eq!(&r.to_vec()[..3], b"abc");
    /// # Ok::<(), rsm_host::HostError>(())
    /// ```
    pub unsafe fn from_raw_parts(addr: *mut u8, len: usize) -> MemRegion {
        let lo = addr as usize;
        MemRegion::unowned(addr, len, lo.saturating_add(len))
    }

    /// A region that does not own its memory, spanning `ptr .. hi`.
    fn unowned(ptr: *mut u8, len: usize, hi: usize) -> MemRegion {
        MemRegion {
            ptr,
            len,
            origin: Arc::new(Origin {
                span: Span {
                    lo: ptr as usize,
                    hi,
                },
                alloc: None,
            }),
        }
    }

    /// A region over memory that lives for the rest of the program (a `static` buffer, or a
    /// leaked allocation) — the unikernel's way, with no heap. Safe: taking the only
    /// (`&'static mut`) reference to the memory means nothing else can touch it except through
    /// this region and its clones.
    ///
    /// Export segments and local memory handles need page-aligned memory
    /// (`RSMERR_BAD_MEM_ALIGNMENT` otherwise): align the static, e.g.
    /// `#[repr(align(4096))] struct Pages([u8; 8192]);`.
    ///
    /// ```
    /// use rsm_host::MemRegion;
    ///
    /// #[repr(align(4096))]
    /// struct Pages([u8; 8192]);
    /// let pages: &'static mut Pages = Box::leak(Box::new(Pages([0; 8192])));
    /// let r = MemRegion::from_static(&mut pages.0);
    /// assert_eq!(r.as_ptr() as usize % 4096, 0);
    /// ```
    ///
    /// Memory that does not live forever is refused at compile time (the first block compiles;
    /// the second, the same with a stack array, does not):
    /// ```
    /// use rsm_host::MemRegion;
    ///
    /// let mem: &'static mut [u8; 64] = Box::leak(Box::new([0u8; 64]));
    /// let r = MemRegion::from_static(mem);
    /// # drop(r);
    /// ```
    /// ```compile_fail,E0597
    /// use rsm_host::MemRegion;
    ///
    /// let mut local = [0u8; 64];
    /// let r = MemRegion::from_static(&mut local); // error: `local` does not live long enough
    /// # drop(r);
    /// ```
    pub fn from_static(mem: &'static mut [u8]) -> MemRegion {
        let ptr = mem.as_mut_ptr();
        MemRegion::unowned(ptr, mem.len(), ptr as usize + mem.len())
    }

    /// The first byte's address as a raw pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The sub-range `off..off+len` of this region, or `None` if it does not fit. The
    /// sub-region shares the ownership of the memory like a clone.
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
            origin: self.origin.clone(),
        })
    }

    /// How many owners share this region's memory: the [`PinnedBuf`] (while it lives) plus
    /// every region of it alive anywhere — including the clones the RSM layer holds for
    /// handles and pending transfers. 0 for memory the region does not own
    /// ([`MemRegion::from_static`], [`MemRegion::from_raw_parts`]).
    pub fn owners(&self) -> usize {
        match self.origin.alloc {
            Some(_) => Arc::strong_count(&self.origin),
            None => 0,
        }
    }

    /// The grid span of the memory (for the platform's atomic copies).
    pub(crate) fn span(&self) -> Span {
        self.origin.span
    }

    fn bytes(&self) -> Bytes {
        Bytes {
            ptr: self.ptr,
            len: self.len,
            span: self.origin.span,
        }
    }

    /// The address of `off` after checking that `n` bytes from there lie inside the region
    /// (`OutOfRange`) and that a non-empty access does not go through NULL (`BadAddress`).
    /// `None` for an empty access (nothing to do).
    pub(crate) fn target(&self, off: usize, n: usize) -> Result<Option<*mut u8>, HostError> {
        self.bytes().target(off, n)
    }

    /// Copy `out.len()` bytes from offset `off` into `out` (atomically, see the type's docs).
    /// [`ErrorKind::OutOfRange`] (and no copy) if the range leaves the region;
    /// [`ErrorKind::BadAddress`] for a NULL region.
    pub fn read(&self, off: usize, out: &mut [u8]) -> Result<(), HostError> {
        self.bytes().read(off, out)
    }

    /// Copy `data` into the region at offset `off` (atomically, see the type's docs; whole
    /// aligned 8-byte words with one store each). Errors as for [`MemRegion::read`].
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), HostError> {
        self.bytes().write(off, data)
    }

    /// A copy of the region's bytes (empty for a NULL region).
    pub fn to_vec(&self) -> Vec<u8> {
        self.bytes().to_vec()
    }
}

impl Bytes {
    /// See [`MemRegion::target`].
    fn target(&self, off: usize, n: usize) -> Result<Option<*mut u8>, HostError> {
        if off.checked_add(n).is_none_or(|e| e > self.len) {
            return Err(HostError::new(ErrorKind::OutOfRange));
        }
        if n == 0 {
            return Ok(None);
        }
        if self.ptr.is_null() {
            return Err(HostError::new(ErrorKind::BadAddress));
        }
        // `wrapping_add` computes the address without dereferencing; it is in bounds (checked).
        Ok(Some(self.ptr.wrapping_add(off)))
    }

    fn read(&self, off: usize, out: &mut [u8]) -> Result<(), HostError> {
        if let Some(at) = self.target(off, out.len())? {
            // SAFETY: the range lies inside the region (checked), which is valid for reads by
            // its construction (see the type's docs) and lies in its span; all accesses to the
            // memory are atomic on the span's grid.
            unsafe { shared::load(self.span, at, out) };
        }
        Ok(())
    }

    fn write(&self, off: usize, data: &[u8]) -> Result<(), HostError> {
        if let Some(at) = self.target(off, data.len())? {
            // SAFETY: as in `read`, for writes. `data` is an ordinary slice; should it alias
            // the region, the RSM memory is only ever accessed atomically, and `data` is read
            // before each store of the same bytes.
            unsafe { shared::store(self.span, at, data) };
        }
        Ok(())
    }

    fn to_vec(self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        if self.read(0, &mut v).is_err() {
            v.clear();
        }
        v
    }
}

impl fmt::Debug for MemRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemRegion")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("owning", &self.origin.alloc.is_some())
            .finish()
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

/// The allocation behind a [`PinnedBuf`], shared by the buffer and its regions; freed when the
/// last of them drops.
struct Alloc {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: Alloc owns its allocation (no thread-local state); the bytes are only accessed
// atomically (module `shared`) or through a unique `&mut` (`PinnedBuf::as_mut_slice`).
unsafe impl Send for Alloc {}
// SAFETY: as for Send: `&Alloc` exposes nothing but the pointer, used atomically.
unsafe impl Sync for Alloc {}

impl Drop for Alloc {
    fn drop(&mut self) {
        // SAFETY: `ptr` was returned by `alloc_zeroed(self.layout)` and is freed only here, when
        // the buffer and every region sharing it are gone.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// An owned, page-aligned, zero-initialised heap buffer for RSM export segments and local
/// memory handles.
///
/// The allocation is rounded up to whole pages (at least one), so the buffer shares no page
/// with other data. It is not locked by itself: a
/// [`HostPlatform`](crate::HostPlatform) `mlock`s its pages while an RSM handle pins them.
///
/// # Ownership
/// The buffer and every [`MemRegion`] made from it share the memory: dropping the buffer while
/// regions (or RSM handles or pending transfers made from them) live keeps the memory until
/// the last of them is gone, then frees it. Nothing the RSM layer holds can outlive the memory.
///
/// # Concurrent access
/// Once a region of the buffer is handed to the RSM layer, remote puts and local transfers may
/// write it at any time, concurrently with the application — like shared memory in C. The
/// accessors [`read`](PinnedBuf::read), [`write`](PinnedBuf::write), [`fill`](PinnedBuf::fill)
/// and [`to_vec`](PinnedBuf::to_vec) therefore take `&self` and copy with relaxed atomic
/// accesses, as the RSM layer's copies do: concurrent use is never a data race. Bytes read
/// while a transfer writes the same range may be a mix of old and new data; use the RSMAPI's
/// barriers and signals to order accesses, as a C program must.
///
/// A plain `&mut [u8]` of the bytes ([`PinnedBuf::as_mut_slice`]) exists only while no region
/// of the buffer does, and no region can be made while it is borrowed:
/// ```
/// let mut buf = rsm_host::PinnedBuf::new(16)?;
/// buf.as_mut_slice().unwrap()[0] = 7;
/// let r = buf.region();
/// assert!(buf.as_mut_slice().is_none()); // a region shares the memory now
/// drop(r);
/// assert_eq!(buf.as_mut_slice().unwrap()[0], 7);
/// # Ok::<(), rsm_host::HostError>(())
/// ```
///
/// # What is checked where
/// Dropping the buffer and then using a region of it, a handle made from one, or a pending
/// transfer over one *compiles and is safe* — the memory lives until the last of them is gone
/// (run-time tests: `tests/tests/ownership.rs`, under the fake platform's freed-memory
/// detector and here with [`MemRegion::owners`]). What would reach freed or racing memory does
/// not compile; each pair below is the same code, first without the misuse (compiles), then
/// with it (does not):
///
/// A region made while the plain slice is in use:
/// ```
/// let mut buf = rsm_host::PinnedBuf::new(16)?;
/// let bytes = buf.as_mut_slice().unwrap();
/// bytes[0] = 7;
/// let r = buf.region();
/// # drop(r);
/// # Ok::<(), rsm_host::HostError>(())
/// ```
/// ```compile_fail,E0502
/// let mut buf = rsm_host::PinnedBuf::new(16)?;
/// let bytes = buf.as_mut_slice().unwrap();
/// let r = buf.region(); // error: `buf` is borrowed mutably by `bytes`
/// bytes[0] = 7;
/// # drop(r);
/// # Ok::<(), rsm_host::HostError>(())
/// ```
/// The plain slice used after the buffer was dropped:
/// ```
/// let mut buf = rsm_host::PinnedBuf::new(16)?;
/// let bytes = buf.as_mut_slice().unwrap();
/// bytes[0] = 7;
/// drop(buf);
/// # Ok::<(), rsm_host::HostError>(())
/// ```
/// ```compile_fail,E0505
/// let mut buf = rsm_host::PinnedBuf::new(16)?;
/// let bytes = buf.as_mut_slice().unwrap();
/// drop(buf); // error: cannot move out of `buf` because it is borrowed
/// bytes[0] = 7;
/// # Ok::<(), rsm_host::HostError>(())
/// ```
/// A vector entry that outlives the region it names (the operation then takes its own clone
/// of the region, so the entry itself is only needed for the call):
/// ```
/// use rsm_core::IoVec;
/// let buf = rsm_host::PinnedBuf::new(16)?;
/// let r = buf.region();
/// let iov = [IoVec::va(&r, 0, 0, 8)];
/// # let _ = iov;
/// # Ok::<(), rsm_host::HostError>(())
/// ```
/// ```compile_fail,E0597
/// use rsm_core::IoVec;
/// let buf = rsm_host::PinnedBuf::new(16)?;
/// let iov = {
///     let r = buf.region();
///     [IoVec::va(&r, 0, 0, 8)] // error: `r` does not live long enough
/// };
/// # let _ = iov;
/// # Ok::<(), rsm_host::HostError>(())
/// ```
pub struct PinnedBuf {
    origin: Arc<Origin>,
    len: usize,
}

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
        let lo = ptr.as_ptr() as usize;
        Ok(PinnedBuf {
            origin: Arc::new(Origin {
                span: Span {
                    lo,
                    hi: lo + layout.size(),
                },
                alloc: Some(Alloc { ptr, layout }),
            }),
            len,
        })
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
        let span = self.origin.span;
        span.hi - span.lo
    }

    /// The first byte.
    fn base(&self) -> *mut u8 {
        // A buffer always has its allocation.
        self.origin
            .alloc
            .as_ref()
            .map_or(core::ptr::null_mut(), |a| a.ptr.as_ptr())
    }

    /// The first byte, for raw access (as in C). See the type's notes on concurrent access.
    pub fn as_ptr(&self) -> *const u8 {
        self.base()
    }

    /// The first byte as a mutable raw pointer, for raw access (as in C). Accesses through it
    /// must not race with RSM transfers (use the accessors while transfers may run).
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.base()
    }

    /// How many regions of this buffer are alive (the application's and the RSM layer's
    /// clones for handles and pending transfers); [`PinnedBuf::as_mut_slice`] needs 0.
    pub fn regions(&self) -> usize {
        Arc::strong_count(&self.origin) - 1
    }

    /// The bytes as a plain mutable slice — only while no region of the buffer exists (so no
    /// RSM handle or transfer can touch them): `None` otherwise.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        let alloc = Arc::get_mut(&mut self.origin)?.alloc.as_mut()?;
        // SAFETY: `get_mut` proved this buffer holds the only reference to the allocation (no
        // region, hence no RSM handle or transfer, shares it), and the returned borrow of
        // `self` keeps it so; the first `len <= capacity` bytes are allocated and initialised.
        Some(unsafe { core::slice::from_raw_parts_mut(alloc.ptr.as_ptr(), self.len) })
    }

    /// A region over the whole buffer (`len()` bytes), to hand to the RSM layer; it shares the
    /// ownership of the memory (see the type's docs).
    pub fn region(&self) -> MemRegion {
        MemRegion {
            ptr: self.base(),
            len: self.len,
            origin: self.origin.clone(),
        }
    }

    /// The buffer's bytes for the accessors: valid while `&self` is borrowed, and cheaper than
    /// [`PinnedBuf::region`] (no reference count to touch).
    fn view(&self) -> Bytes {
        Bytes {
            ptr: self.base(),
            len: self.len,
            span: self.origin.span,
        }
    }

    /// A region over `off..off+len` of the buffer, or `None` if it does not fit in `len()`.
    pub fn subregion(&self, off: usize, len: usize) -> Option<MemRegion> {
        self.region().subregion(off, len)
    }

    /// Copy `out.len()` bytes from offset `off` into `out`; [`ErrorKind::OutOfRange`] (and no
    /// copy) if the range leaves the buffer.
    pub fn read(&self, off: usize, out: &mut [u8]) -> Result<(), HostError> {
        self.view().read(off, out)
    }

    /// Copy `data` into the buffer at offset `off`; [`ErrorKind::OutOfRange`] (and no copy) if
    /// the range leaves the buffer.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), HostError> {
        self.view().write(off, data)
    }

    /// Set every one of the `len()` bytes to `byte`.
    pub fn fill(&self, byte: u8) {
        let r = self.view();
        let chunk = [byte; 4096];
        let mut off = 0;
        while off < self.len {
            let n = chunk.len().min(self.len - off);
            // In range by construction, so this cannot fail.
            let _ = r.write(off, &chunk[..n]);
            off += n;
        }
    }

    /// A copy of the `len()` bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.view().to_vec()
    }
}

impl fmt::Debug for PinnedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedBuf")
            .field("ptr", &self.base())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr;

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
        let whole = b.region();
        // SAFETY: the capacity is a whole page, so byte 16 is in the allocation, which `whole`
        // keeps alive; it is only accessed through regions.
        let page = unsafe { MemRegion::from_raw_parts(whole.as_ptr(), b.capacity()) };
        page.read(16, &mut tail).unwrap();
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
