//! The virtio-drivers [`Hal`] of the image: memory is identity-mapped (physical address =
//! virtual address), DMA buffers come from a static pool.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Pages of the DMA pool (virtqueues and their buffers).
const DMA_PAGES: usize = 256;
/// Bytes of the DMA pool.
pub const POOL_BYTES: usize = DMA_PAGES * PAGE_SIZE;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: the pool's bytes are only reached through the disjoint page ranges `dma_alloc`
// hands out (each once), by the driver and the device.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The image's [`Hal`].
pub struct KernelHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed, never-reused ranges of a static pool
// whose physical address is its virtual address (identity map); `mmio_phys_to_virt` and
// `share` return identity addresses of memory below 4 GiB, which the boot code maps.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let first = NEXT.fetch_add(pages, Ordering::Relaxed);
        if first + pages > DMA_PAGES {
            panic!("DMA pool exhausted ({DMA_PAGES} pages)");
        }
        let base = POOL.0.get().cast::<u8>();
        // SAFETY: `first * PAGE_SIZE` is within the pool (checked above).
        let p = unsafe { base.add(first * PAGE_SIZE) };
        (
            p as usize as PhysAddr,
            NonNull::new(p).unwrap_or(NonNull::dangling()),
        )
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // A bump pool: the image sets its queues up once and never frees them.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
