//! The 64-bit GDT with a TSS, built with the `x86_64` crate, replacing the boot code's
//! minimal one: its interrupt stack table gives the double-fault handler a stack of its own,
//! so a kernel stack overflow (a page fault on the stack's guard page, which cannot push its
//! frame and escalates to a double fault) is logged instead of ending in a triple fault.

use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// The IST slot of the double-fault handler.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// Bytes of the double-fault stack.
const IST_STACK: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK]);

static mut DOUBLE_FAULT_STACK: Stack = Stack([0; IST_STACK]);
static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<GlobalDescriptorTable> = spin::Once::new();
static DONE: AtomicBool = AtomicBool::new(false);

/// Build and load the GDT and TSS, and reload the segment registers (once).
pub fn init() {
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let base = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK);
        tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST)] = base + IST_STACK as u64;
        tss
    });
    let mut code = None;
    let mut data = None;
    let mut task = None;
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        code = Some(gdt.append(Descriptor::kernel_code_segment()));
        data = Some(gdt.append(Descriptor::kernel_data_segment()));
        task = Some(gdt.append(Descriptor::tss_segment(tss)));
        gdt
    });
    gdt.load();
    let (Some(code), Some(data), Some(task)) = (code, data, task) else {
        return;
    };
    // SAFETY: the selectors index the GDT just loaded (a 64-bit code segment, a data
    // segment, the TSS); the double-fault stack is a static used only by that handler.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(task);
    }
}
