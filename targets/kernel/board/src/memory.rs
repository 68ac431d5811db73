//! Paging with the `x86_64` crate, on top of the boot code's identity map (first 4 GiB in
//! 2 MiB pages): the 2 MiB pages holding the image are split into 4 KiB pages so that two
//! guard pages can be unmapped —
//!
//! * page 0: a null-pointer access faults (logged, failure exit) instead of reading the
//!   real-mode interrupt table;
//! * the page below the boot stack: a stack overflow faults instead of overwriting `.bss`
//!   (the double fault that follows runs on its own stack, see [`crate::gdt`]).
//!
//! Everything else stays identity-mapped (physical address = virtual address), which the
//! DMA HAL and the pin table rely on.

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// 2 MiB pages that can be split (the image and its `.bss` lie in the first 32 MiB).
const SPLITTABLE: usize = 16;

#[repr(C, align(4096))]
struct Tables([PageTable; SPLITTABLE]);

static mut TABLES: Tables = Tables([const { PageTable::new() }; SPLITTABLE]);

extern "C" {
    static boot_stack_guard: u8;
    static __bss_end: u8;
}

/// Why the paging set-up could not finish (logged by the caller; the image still runs on
/// the boot map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingError {
    /// The image reaches beyond the 2 MiB pages this module can split.
    ImageTooLarge,
    /// A page-table entry was not what the boot code set up.
    UnexpectedEntry,
}

/// The address of the stack's guard page.
pub fn stack_guard() -> usize {
    // Only the address of the linker-placed symbol is taken, never its contents.
    &raw const boot_stack_guard as usize
}

/// Split the image's 2 MiB pages and unmap page 0 and the stack guard page.
pub fn init() -> Result<(), PagingError> {
    // Only the symbol's address is taken.
    let end = &raw const __bss_end as usize;
    let huge = end.div_ceil(2 << 20);
    if huge > SPLITTABLE {
        return Err(PagingError::ImageTooLarge);
    }
    let (pml4_frame, _) = Cr3::read();
    let pml4_ptr = pml4_frame.start_address().as_u64() as *mut PageTable;
    // SAFETY: CR3 holds the boot code's PML4, identity-mapped; nothing else references the
    // page tables while this runs (one vCPU, interrupts off).
    let pml4 = unsafe { &mut *pml4_ptr };
    let pdpt_ptr = pml4[0].addr().as_u64() as *mut PageTable;
    // SAFETY: as above: the boot code's PDPT, identity-mapped.
    let pdpt = unsafe { &mut *pdpt_ptr };
    let pd_ptr = pdpt[0].addr().as_u64() as *mut PageTable;
    // SAFETY: as above: the PD of the first GiB.
    let pd = unsafe { &mut *pd_ptr };
    // The static tables are used only here, once (called once from boot).
    let tables_ptr = &raw mut TABLES;
    // SAFETY: (see above) the only reference to the static tables.
    let tables = unsafe { &mut *tables_ptr };
    let rw = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    for (i, pt) in tables.0.iter_mut().enumerate().take(huge) {
        if !pd[i].flags().contains(PageTableFlags::HUGE_PAGE) {
            return Err(PagingError::UnexpectedEntry);
        }
        let base = pd[i].addr().as_u64();
        for (k, e) in pt.iter_mut().enumerate() {
            e.set_addr(PhysAddr::new(base + (k as u64) * 4096), rw);
        }
        let frame =
            PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(pt as *mut PageTable as u64));
        pd[i].set_frame(frame, rw);
    }
    x86_64::instructions::tlb::flush_all();
    // SAFETY: the identity map is an offset mapping with offset 0; the tables are the live
    // ones, reached only through this mapper from here on.
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(0)) };
    for addr in [0, stack_guard()] {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(addr as u64));
        match mapper.unmap(page) {
            Ok((_, flush)) => flush.flush(),
            Err(_) => return Err(PagingError::UnexpectedEntry),
        }
    }
    Ok(())
}
