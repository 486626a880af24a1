//! Setting up the kernel at ring 0 (GDT, TSS, IDT, SYSCALL MSRs, user
//! pages) and entering a user program at CPL3.

use core::cell::UnsafeCell;
use core::ptr::addr_of;
use x86_64::instructions::tables::load_tss;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::registers::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

const USER_STACK_SIZE: usize = 64 * 1024;

/// The user program's stack: in .bss, so user read-write.
#[repr(C, align(16))]
pub(super) struct UserStack([u8; USER_STACK_SIZE]);
pub(super) static mut USER_STACK: UserStack = UserStack([0; USER_STACK_SIZE]);

#[repr(C, align(4096))]
pub(super) struct Pt(PageTable);

/// A kernel global: one vCPU runs this kernel, and its globals are only
/// touched at ring 0 (boot, traps, system calls), never concurrently.
#[repr(transparent)]
pub(super) struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's comment: no two accesses ever overlap.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub(super) const fn new(v: T) -> Global<T> {
        Global(UnsafeCell::new(v))
    }

    pub(super) fn get(&self) -> *mut T {
        self.0.get()
    }
}

// The kernel's own structures, on kernel-only pages (`.kvmwb.kernel`).
#[unsafe(link_section = ".kvmwb.kernel")]
pub(super) static GDT: Global<GlobalDescriptorTable<8>> =
    Global::new(GlobalDescriptorTable::empty());
#[unsafe(link_section = ".kvmwb.kernel")]
pub(super) static TSS: Global<TaskStateSegment> = Global::new(TaskStateSegment::new());
#[unsafe(link_section = ".kvmwb.kernel")]
pub(super) static IDT: Global<InterruptDescriptorTable> =
    Global::new(InterruptDescriptorTable::new());
#[unsafe(link_section = ".kvmwb.kernel")]
pub(super) static LOW_PT: Global<Pt> = Global::new(Pt(PageTable::new()));
/// Kernel RSP saved by `run_user`; traps and syscalls from user mode run on
/// the stack below it. Read by the assembly below.
#[unsafe(link_section = ".kvmwb.kernel")]
#[unsafe(no_mangle)]
pub(super) static mut KVMWB_KERNEL_RSP: u64 = 0;
/// User RSP while a system call runs.
#[unsafe(link_section = ".kvmwb.kernel")]
#[unsafe(no_mangle)]
pub(super) static mut KVMWB_USER_RSP: u64 = 0;
/// System calls that went back to user mode by SYSRETQ (counted by the
/// SYSCALL entry just before it executes SYSRETQ).
#[unsafe(link_section = ".kvmwb.kernel")]
#[unsafe(no_mangle)]
pub(super) static mut KVMWB_SYSRETS: u64 = 0;
#[unsafe(link_section = ".kvmwb.kernel")]
pub(super) static BOOTED: Global<bool> = Global::new(false);

// Linker symbols (linker/guest.ld) and the assembly's entry points (entry.rs).
unsafe extern "C" {
    pub(super) static __user_start: u8;
    pub(super) static __user_text_end: u8;
    pub(super) static __user_end: u8;
    pub(super) static kvmwb_trap_stubs: u8;
    pub(super) fn kvmwb_syscall_entry();
    pub(super) fn kvmwb_int80_entry();
    pub(super) fn kvmwb_int81_entry();
    pub(super) fn kvmwb_run_user(entry: u64, rsp: u64, rflags: u64) -> i64;
    pub(super) fn kvmwb_end_user(status: i64) -> !;
    pub(super) fn kvmwb_timer_stub();
    pub(super) fn kvmwb_resume(frame: *const super::frame::TrapFrame) -> !;
}

/// The user-accessible range [start, end) and where its read-only part ends.
pub(super) fn user_range() -> (u64, u64, u64) {
    (
        addr_of!(__user_start) as u64,
        addr_of!(__user_text_end) as u64,
        addr_of!(__user_end) as u64,
    )
}

/// Whether [ptr, ptr+len) lies in the user program's memory.
pub(super) fn check_user(ptr: u64, len: u64) -> bool {
    let (start, _, end) = user_range();
    ptr >= start && ptr.checked_add(len).is_some_and(|e| e <= end)
}

/// User data and code selectors (without RPL): GDT entries 3 and 4.
pub(super) const UDATA: u16 = 0x18;
pub(super) const UCODE: u16 = 0x20;

/// The round-robin timer's vector in the kernel's IDT (tasks.rs).
pub const TIMER_VECTOR: u8 = 0x30;

/// Size of one trap stub in `kvmwb_trap_stubs` (see the assembly).
pub(super) const STUB_SIZE: u64 = 16;

/// Sets up the GDT, TSS, IDT, SYSCALL MSRs and user pages. Idempotent.
/// Runs at ring 0 on vCPU 0.
pub fn boot() {
    // SAFETY: one vCPU runs this kernel; the statics are touched only here
    // and by the trap/syscall paths, which cannot run before BOOTED.
    unsafe {
        if *BOOTED.get() {
            return;
        }
        let gdt = &mut *GDT.get();
        let kcode = gdt.append(Descriptor::kernel_code_segment());
        let kdata = gdt.append(Descriptor::kernel_data_segment());
        let udata = gdt.append(Descriptor::user_data_segment());
        let ucode = gdt.append(Descriptor::user_code_segment());
        // No I/O permission bitmap: iomap_base past the TSS limit.
        (*TSS.get()).iomap_base = size_of::<TaskStateSegment>() as u16;
        let tss = gdt.append(Descriptor::tss_segment_unchecked(TSS.get()));
        // The assembly below pushes these selectors as constants.
        if udata != SegmentSelector::new(UDATA >> 3, PrivilegeLevel::Ring3)
            || ucode != SegmentSelector::new(UCODE >> 3, PrivilegeLevel::Ring3)
        {
            panic!("GDT order differs from the user selectors the kernel uses");
        }
        gdt.load_unsafe();
        CS::set_reg(kcode);
        SS::set_reg(kdata);
        DS::set_reg(kdata);
        ES::set_reg(kdata);
        load_tss(tss);

        let idt = &mut *IDT.get();
        let stubs = addr_of!(kvmwb_trap_stubs) as u64;
        macro_rules! gate {
            ($($field:ident = $v:expr),* $(,)?) => {
                $(idt.$field.set_handler_addr(VirtAddr::new(stubs + $v * STUB_SIZE));)*
            };
        }
        gate!(
            divide_error = 0,
            debug = 1,
            non_maskable_interrupt = 2,
            breakpoint = 3,
            overflow = 4,
            bound_range_exceeded = 5,
            invalid_opcode = 6,
            device_not_available = 7,
            double_fault = 8,
            invalid_tss = 10,
            segment_not_present = 11,
            stack_segment_fault = 12,
            general_protection_fault = 13,
            page_fault = 14,
            x87_floating_point = 16,
            alignment_check = 17,
            machine_check = 18,
            simd_floating_point = 19,
            virtualization = 20,
            cp_protection_exception = 21,
            hv_injection_exception = 28,
            vmm_communication_exception = 29,
            security_exception = 30,
        );
        // System calls through `int 0x80` (DPL 3: user code may raise it),
        // and 0x81, where the SYSCALL entry forwards calls when SYSCALL did
        // not enter ring 0 (kvm-pvm; see the entry below).
        idt[0x80]
            .set_handler_addr(VirtAddr::new(kvmwb_int80_entry as *const () as u64))
            .set_privilege_level(PrivilegeLevel::Ring3);
        idt[0x81]
            .set_handler_addr(VirtAddr::new(kvmwb_int81_entry as *const () as u64))
            .set_privilege_level(PrivilegeLevel::Ring3);
        // The round-robin timer (tasks.rs), from the local APIC.
        idt[TIMER_VECTOR].set_handler_addr(VirtAddr::new(kvmwb_timer_stub as *const () as u64));
        idt.load_unsafe();

        // KVM refuses EFER.SCE unless the vCPU's CPUID has SYSCALL, which
        // the host gives only to a guest that asks (ABI note FLAG_CPUID)
        let ext = core::arch::x86_64::__cpuid(0x8000_0001);
        if ext.edx & (1 << 11) == 0 {
            panic!(
                "the guest kernel needs the host's CPU features (SYSCALL): declare main with guest_rt::entry!(main, cpuid), or use guest_rt::user_program!"
            );
        }
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
        if Star::write(ucode, udata, kcode, kdata).is_err() {
            panic!("GDT order does not suit SYSCALL/SYSRET");
        }
        LStar::write(VirtAddr::new(kvmwb_syscall_entry as *const () as u64));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::ALIGNMENT_CHECK,
        );
        map_user_pages();
        *BOOTED.get() = true;
    }
}

/// Splits the host's first 2 MiB page into 4 KiB pages with user access on
/// the program image only.
///
/// # Safety
/// Ring 0, identity-mapped memory, CR3 = the host's tables.
pub(super) unsafe fn map_user_pages() {
    let (start, text_end, end) = user_range();
    if end > 2 << 20 {
        panic!("the program image ends at {end:#x}, beyond the 2 MiB the kernel maps for users");
    }
    let (frame, _) = Cr3::read();
    // SAFETY: identity mapped; the host built PML4 -> PDPT -> PD at CR3
    // and nothing else refers to them while this runs.
    unsafe {
        let pml4 = &mut *(frame.start_address().as_u64() as *mut PageTable);
        let pdpt = &mut *(pml4[0].addr().as_u64() as *mut PageTable);
        let pd = &mut *(pdpt[0].addr().as_u64() as *mut PageTable);
        let pt = &mut (*LOW_PT.get()).0;
        for (i, e) in pt.iter_mut().enumerate() {
            let a = i as u64 * 4096;
            e.set_addr(
                x86_64::PhysAddr::new(a),
                page_flags(a, start, text_end, end),
            );
        }
        let table = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE;
        pd[0].set_addr(x86_64::PhysAddr::new(pt as *const PageTable as u64), table);
        let a = pdpt[0].addr();
        pdpt[0].set_addr(a, table);
        let a = pml4[0].addr();
        pml4[0].set_addr(a, table);
        // Reloading CR3 flushes the TLB.
        Cr3::write(frame, Cr3Flags::empty());
    }
}

/// The flags of the 4 KiB page at `a` in the first 2 MiB: the program's
/// code and read-only data [start, text_end) user read-only, its data and
/// bss [text_end, end) user read-write, everything else kernel-only.
pub(super) fn page_flags(a: u64, start: u64, text_end: u64, end: u64) -> F {
    let base = F::PRESENT | F::ACCESSED | F::DIRTY;
    if a >= start && a < text_end {
        base | F::USER_ACCESSIBLE
    } else if a >= text_end && a < end {
        base | F::WRITABLE | F::USER_ACCESSIBLE
    } else {
        base | F::WRITABLE
    }
}

/// Runs `main` at CPL3 on the user stack; returns its exit status (the
/// value given to `exit`, `main`'s return value, or 128 + vector when the
/// kernel ended it for a fault). Boots the kernel first if needed.
pub fn run_user(main: fn() -> i32) -> i64 {
    boot();
    // SAFETY: the program's main is stored where the CPL3 trampoline reads
    // it; one vCPU.
    unsafe { *USER_MAIN.get() = Some(main) };
    let top = (&raw const USER_STACK) as u64 + USER_STACK_SIZE as u64;
    // SAFETY: boot() set up everything the switch needs; kvmwb_run_user
    // saves the kernel's callee-saved registers and returns here on exit.
    unsafe { kvmwb_run_user(user_start as *const () as u64, top - 8, 0x2) }
}

pub(super) static USER_MAIN: Global<Option<fn() -> i32>> = Global::new(None);

/// First user-mode code: calls the program's main, then `exit`.
pub(super) extern "C" fn user_start() -> ! {
    // SAFETY: written by run_user before the switch to user mode; the page
    // is user-readable (.bss).
    let main = unsafe { *USER_MAIN.get() };
    let status = main.map_or(127, |m| m());
    crate::user::exit(status)
}

// Run in VMs: `cargo test -p guest-rt` (guest_rt::testing).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::test;

    #[test]
    fn user_pages_are_read_only_code_and_writable_data() {
        let (start, text, end) = (0x10_0000, 0x10_3000, 0x10_5000);
        let f = |a| page_flags(a, start, text, end);
        assert!(
            !f(0xf_f000).contains(F::USER_ACCESSIBLE),
            "below the image: kernel"
        );
        assert!(f(start).contains(F::USER_ACCESSIBLE));
        assert!(!f(start).contains(F::WRITABLE), "code is read-only");
        assert!(f(text).contains(F::USER_ACCESSIBLE | F::WRITABLE), "data");
        assert!(
            !f(end).contains(F::USER_ACCESSIBLE),
            "past the image: kernel"
        );
    }

    /// The page-table entry that maps `a` now, walked from CR3.
    fn entry_of(a: u64) -> F {
        let (frame, _) = Cr3::read();
        // SAFETY: identity-mapped tables; read only.
        unsafe {
            let pml4 = &*(frame.start_address().as_u64() as *const PageTable);
            let pdpt = &*(pml4[0].addr().as_u64() as *const PageTable);
            let pd = &*(pdpt[0].addr().as_u64() as *const PageTable);
            let pt = &*(pd[0].addr().as_u64() as *const PageTable);
            pt[(a >> 12) as usize & 511].flags()
        }
    }

    #[test]
    fn boot_maps_this_program_for_user_mode() {
        boot();
        let (start, text_end, end) = user_range();
        assert!(start < text_end && text_end <= end);
        let code = entry_of(start);
        assert!(code.contains(F::PRESENT | F::USER_ACCESSIBLE));
        assert!(!code.contains(F::WRITABLE));
        let data = entry_of(text_end);
        assert!(data.contains(F::USER_ACCESSIBLE | F::WRITABLE));
        // the host's page tables (GPA 0x3000) stay kernel-only
        assert!(!entry_of(0x3000).contains(F::USER_ACCESSIBLE));
    }
}
