//! The IDT: every CPU exception (vectors 0–31) lands in one handler that logs the vector,
//! the error code and the faulting address and leaves QEMU with the failure code — never a
//! triple fault. Entry stubs are naked functions (stable Rust; no `x86-interrupt` ABI).
//!
//! The double fault runs on its own stack (the TSS's IST, [`crate::gdt`]): a stack overflow
//! hits the guard page below the boot stack ([`crate::memory`]), the page fault cannot push
//! its frame there and becomes a double fault, which is logged like any other exception.

use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// Vectors whose exception pushes an error code.
const fn has_error_code(v: u8) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

macro_rules! stubs {
    ($($name:ident = $v:literal),* $(,)?) => {
        $(
            #[unsafe(naked)]
            extern "C" fn $name() {
                core::arch::naked_asm!(
                    ".if {err} == 0",
                    "push 0",
                    ".endif",
                    "push {v}",
                    "jmp {common}",
                    err = const has_error_code($v) as u8,
                    v = const $v,
                    common = sym exception_entry,
                );
            }
        )*
        /// The stubs by vector.
        const STUBS: [extern "C" fn(); 32] = [$($name),*];
    };
}

stubs!(
    e0 = 0,
    e1 = 1,
    e2 = 2,
    e3 = 3,
    e4 = 4,
    e5 = 5,
    e6 = 6,
    e7 = 7,
    e8 = 8,
    e9 = 9,
    e10 = 10,
    e11 = 11,
    e12 = 12,
    e13 = 13,
    e14 = 14,
    e15 = 15,
    e16 = 16,
    e17 = 17,
    e18 = 18,
    e19 = 19,
    e20 = 20,
    e21 = 21,
    e22 = 22,
    e23 = 23,
    e24 = 24,
    e25 = 25,
    e26 = 26,
    e27 = 27,
    e28 = 28,
    e29 = 29,
    e30 = 30,
    e31 = 31,
);

/// Common entry: the stack holds vector, error code, then the CPU's frame (rip, cs, rflags,
/// rsp, ss). Pass a pointer to it to [`exception`], on an aligned stack.
#[unsafe(naked)]
extern "C" fn exception_entry() {
    core::arch::naked_asm!(
        "mov rdi, rsp",
        "and rsp, -16",
        "call {handler}",
        "ud2",
        handler = sym exception,
    );
}

/// Log the exception and leave QEMU with the failure code.
extern "C" fn exception(frame: *const u64) -> ! {
    // SAFETY: `exception_entry` passes the stack pointer after pushing the vector and the
    // error code over the CPU's five-word frame: seven readable words.
    let [vector, error, rip, _cs, _rflags, rsp, _ss] =
        core::array::from_fn(|i| unsafe { frame.add(i).read() });
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    crate::log::break_in();
    defmt::println!(
        "rsm-board: EXCEPTION {=u64} (error {=u64:#x}) at rip {=u64:#x}, rsp {=u64:#x}, cr2 {=u64:#x}",
        vector,
        error,
        rip,
        rsp,
        cr2
    );
    crate::qemu_exit(crate::exit::FAIL)
}

/// Build and load the IDT.
pub fn init() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        for (v, stub) in STUBS.iter().enumerate() {
            let addr = VirtAddr::new(*stub as usize as u64);
            // SAFETY: each stub is a naked entry that never returns (it ends in the failure
            // exit), so it is a valid handler for its vector with or without an error code;
            // the code selector is the boot GDT's 64-bit code segment, current when this runs.
            unsafe {
                match v {
                    0 => idt.divide_error.set_handler_addr(addr),
                    1 => idt.debug.set_handler_addr(addr),
                    2 => idt.non_maskable_interrupt.set_handler_addr(addr),
                    3 => idt.breakpoint.set_handler_addr(addr),
                    4 => idt.overflow.set_handler_addr(addr),
                    5 => idt.bound_range_exceeded.set_handler_addr(addr),
                    6 => idt.invalid_opcode.set_handler_addr(addr),
                    7 => idt.device_not_available.set_handler_addr(addr),
                    8 => idt
                        .double_fault
                        .set_handler_addr(addr)
                        .set_stack_index(crate::gdt::DOUBLE_FAULT_IST),
                    10 => idt.invalid_tss.set_handler_addr(addr),
                    11 => idt.segment_not_present.set_handler_addr(addr),
                    12 => idt.stack_segment_fault.set_handler_addr(addr),
                    13 => idt.general_protection_fault.set_handler_addr(addr),
                    14 => idt.page_fault.set_handler_addr(addr),
                    16 => idt.x87_floating_point.set_handler_addr(addr),
                    17 => idt.alignment_check.set_handler_addr(addr),
                    18 => idt.machine_check.set_handler_addr(addr),
                    19 => idt.simd_floating_point.set_handler_addr(addr),
                    20 => idt.virtualization.set_handler_addr(addr),
                    21 => idt.cp_protection_exception.set_handler_addr(addr),
                    28 => idt.hv_injection_exception.set_handler_addr(addr),
                    29 => idt.vmm_communication_exception.set_handler_addr(addr),
                    30 => idt.security_exception.set_handler_addr(addr),
                    _ => continue,
                };
            }
        }
        // SAFETY: the interrupt stubs save every caller-saved register, call a handler
        // that only sets a flag and ends the interrupt, and return with `iretq`.
        unsafe {
            for (v, stub) in [
                (
                    crate::irq::TIMER_VECTOR,
                    crate::irq::timer_entry as extern "C" fn(),
                ),
                (crate::irq::NET_VECTOR, crate::irq::net_entry),
                (crate::irq::SPURIOUS_VECTOR, crate::irq::spurious_entry),
            ] {
                idt[v].set_handler_addr(VirtAddr::new(stub as usize as u64));
            }
        }
        idt
    });
    idt.load();
}
