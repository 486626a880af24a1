//! A small guest kernel that runs user programs at CPL3 (long mode, one
//! vCPU).
//!
//! [`boot`] sets up, at ring 0:
//! - a GDT with kernel code/data (0x08/0x10), user data/code (0x1b/0x23) and
//!   a TSS (0x28) whose RSP0 is the kernel stack for traps from user mode and
//!   whose I/O map is empty, so port I/O at CPL3 raises #GP;
//! - an IDT whose 32 exception vectors go to [`trap`];
//! - SYSCALL: EFER.SCE, STAR, LSTAR = the syscall entry, SFMASK = IF|TF|DF|AC;
//! - user pages: the host's identity map with the first 2 MiB split into
//!   4 KiB pages. The program image's code and read-only data are user
//!   read-only, its data and bss user read-write; everything else (the
//!   host's structures, the kernel stack, this kernel's own tables in
//!   `.kvmwb.kernel`, memory above 2 MiB) is kernel-only.
//!
//! [`run_user`] then enters a function at CPL3 and returns its exit status
//! when it calls `exit`, or when the kernel ends it for a fault (reported as
//! "user program: #GP at RIP ..., port I/O is not allowed in user mode").
//!
//! System calls (Linux numbering and convention: RAX = number, RDI, RSI, RDX
//! = arguments, RAX = result, negative errno on error) are in [`nr`].

use crate::hc;
use core::cell::UnsafeCell;
use core::ptr::addr_of;
use x86_64::instructions::tables::load_tss;
use x86_64::registers::control::{Cr2, Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::registers::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::paging::{PageTable, PageTableFlags as F};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::{PrivilegeLevel, VirtAddr};

/// System call numbers (Linux's where Linux has one).
pub mod nr {
    /// `write(fd, buf, len) -> bytes written`: fd 1 and 2 go to the host's
    /// stdout through `print_str`.
    pub const WRITE: u64 = 1;
    /// `exit(status) -> !`: ends the user program.
    pub const EXIT: u64 = 60;
    /// `host_cpuid() -> cpu`: the host CPU running this vCPU (the kernel
    /// makes the `host_cpuid` hypercall for the program).
    pub const HOST_CPUID: u64 = 436;
}

/// errno values returned (negated) by system calls.
pub mod errno {
    /// Bad file descriptor.
    pub const EBADF: i64 = 9;
    /// A pointer outside the program's memory.
    pub const EFAULT: i64 = 14;
    /// Unknown system call.
    pub const ENOSYS: i64 = 38;
}

/// Exit status of a program the kernel ended for a fault: 128 + vector,
/// as shells report a signal.
pub const FAULT_STATUS_BASE: i64 = 128;

const USER_STACK_SIZE: usize = 64 * 1024;

/// The user program's stack: in .bss, so user read-write.
#[repr(C, align(16))]
struct UserStack([u8; USER_STACK_SIZE]);
static mut USER_STACK: UserStack = UserStack([0; USER_STACK_SIZE]);

#[repr(C, align(4096))]
struct Pt(PageTable);

/// A kernel global: one vCPU runs this kernel, and its globals are only
/// touched at ring 0 (boot, traps, system calls), never concurrently.
#[repr(transparent)]
struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's comment: no two accesses ever overlap.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    const fn new(v: T) -> Global<T> {
        Global(UnsafeCell::new(v))
    }

    fn get(&self) -> *mut T {
        self.0.get()
    }
}

// The kernel's own structures, on kernel-only pages (`.kvmwb.kernel`).
#[unsafe(link_section = ".kvmwb.kernel")]
static GDT: Global<GlobalDescriptorTable<8>> = Global::new(GlobalDescriptorTable::empty());
#[unsafe(link_section = ".kvmwb.kernel")]
static TSS: Global<TaskStateSegment> = Global::new(TaskStateSegment::new());
#[unsafe(link_section = ".kvmwb.kernel")]
static IDT: Global<InterruptDescriptorTable> = Global::new(InterruptDescriptorTable::new());
#[unsafe(link_section = ".kvmwb.kernel")]
static LOW_PT: Global<Pt> = Global::new(Pt(PageTable::new()));
/// Kernel RSP saved by `run_user`; traps and syscalls from user mode run on
/// the stack below it. Read by the assembly below.
#[unsafe(link_section = ".kvmwb.kernel")]
#[unsafe(no_mangle)]
static mut KVMWB_KERNEL_RSP: u64 = 0;
/// User RSP while a system call runs.
#[unsafe(link_section = ".kvmwb.kernel")]
#[unsafe(no_mangle)]
static mut KVMWB_USER_RSP: u64 = 0;
#[unsafe(link_section = ".kvmwb.kernel")]
static BOOTED: Global<bool> = Global::new(false);

unsafe extern "C" {
    static __user_start: u8;
    static __user_text_end: u8;
    static __user_end: u8;
    static kvmwb_trap_stubs: u8;
    fn kvmwb_syscall_entry();
    fn kvmwb_int80_entry();
    fn kvmwb_int81_entry();
    fn kvmwb_run_user(entry: u64, rsp: u64) -> i64;
    fn kvmwb_end_user(status: i64) -> !;
}

/// The user-accessible range [start, end) and where its read-only part ends.
fn user_range() -> (u64, u64, u64) {
    (
        addr_of!(__user_start) as u64,
        addr_of!(__user_text_end) as u64,
        addr_of!(__user_end) as u64,
    )
}

/// User data and code selectors (without RPL): GDT entries 3 and 4.
const UDATA: u16 = 0x18;
const UCODE: u16 = 0x20;

/// Size of one trap stub in `kvmwb_trap_stubs` (see the assembly).
const STUB_SIZE: u64 = 16;

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
        idt.load_unsafe();

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
unsafe fn map_user_pages() {
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
        let base = F::PRESENT | F::ACCESSED | F::DIRTY;
        for (i, e) in pt.iter_mut().enumerate() {
            let a = i as u64 * 4096;
            let flags = if a >= start && a < text_end {
                base | F::USER_ACCESSIBLE
            } else if a >= text_end && a < end {
                base | F::WRITABLE | F::USER_ACCESSIBLE
            } else {
                base | F::WRITABLE
            };
            e.set_addr(x86_64::PhysAddr::new(a), flags);
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
    unsafe { kvmwb_run_user(user_start as *const () as u64, top - 8) }
}

static USER_MAIN: Global<Option<fn() -> i32>> = Global::new(None);

/// First user-mode code: calls the program's main, then `exit`.
extern "C" fn user_start() -> ! {
    // SAFETY: written by run_user before the switch to user mode; the page
    // is user-readable (.bss).
    let main = unsafe { *USER_MAIN.get() };
    let status = main.map_or(127, |m| m());
    crate::user::exit(status)
}

/// The privilege level the caller runs at (CS.RPL).
#[inline(always)]
pub fn cpl() -> u8 {
    CS::get_reg().rpl() as u8
}

fn check_user(ptr: u64, len: u64) -> bool {
    let (start, _, end) = user_range();
    ptr >= start && ptr.checked_add(len).is_some_and(|e| e <= end)
}

/// `write`: copies the user buffer in chunks into a kernel buffer and
/// prints each with one `print_str`.
fn sys_write(fd: u64, ptr: u64, len: u64) -> i64 {
    if fd != 1 && fd != 2 {
        return -errno::EBADF;
    }
    if !check_user(ptr, len) {
        return -errno::EFAULT;
    }
    // SAFETY: [ptr, ptr + len) lies in the user-accessible image (checked),
    // which is identity mapped and readable at ring 0.
    let bytes = unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) };
    let mut c = crate::Console::new();
    for &b in bytes {
        c.push(b);
    }
    c.flush();
    len as i64
}

/// Ways a system call enters the kernel (indexes of [`syscall_entries`]).
/// SYSCALL, straight to LSTAR at ring 0.
pub const VIA_SYSCALL: u64 = 0;
/// `int 0x80` through its DPL-3 gate.
pub const VIA_INT80: u64 = 1;
/// SYSCALL that stayed at CPL3, forwarded by the entry through `int 0x81`.
pub const VIA_FORWARD: u64 = 2;
/// `int 0x80` that raised #UD (kvm-pvm), served by the #UD handler.
pub const VIA_INT80_UD: u64 = 3;
/// SYSCALL forwarded through `int 0x81` that raised #UD (kvm-pvm).
pub const VIA_FORWARD_UD: u64 = 4;

#[unsafe(link_section = ".kvmwb.kernel")]
static ENTRIES: Global<[u64; 5]> = Global::new([0; 5]);

/// System calls so far, by the way they entered (`VIA_*`).
pub fn syscall_entries() -> [u64; 5] {
    // SAFETY: one vCPU; read at ring 0 between user programs.
    unsafe { *ENTRIES.get() }
}

/// One line on how system calls entered, when any did not come straight
/// in through SYSCALL: on kvm-pvm SYSCALL stays at CPL3 and `int n` at
/// CPL3 raises #UD, so every call arrives through the #UD handler.
pub fn report_entries() {
    let e = syscall_entries();
    let total: u64 = e.iter().sum();
    if total == e[VIA_SYSCALL as usize] {
        return;
    }
    const WAYS: [&str; 5] = [
        "SYSCALL",
        "int 0x80",
        "SYSCALL forwarded to int 0x81 (SYSCALL stayed at CPL3)",
        "int 0x80 served from #UD (int n at CPL3 raised #UD)",
        "SYSCALL forwarded to int 0x81, served from #UD (SYSCALL stayed at CPL3, int n raised #UD)",
    ];
    crate::print!("kernel: {total} system calls:");
    let mut sep = " ";
    for (n, way) in e.iter().zip(WAYS) {
        if *n > 0 {
            crate::print!("{sep}{n} by {way}");
            sep = ", ";
        }
    }
    crate::println!();
}

/// Called by the syscall entries with the user's RAX, RDI, RSI, RDX and
/// the way in (`VIA_*`).
#[unsafe(no_mangle)]
extern "C" fn kvmwb_syscall(nr: u64, a1: u64, a2: u64, a3: u64, via: u64) -> i64 {
    // SAFETY: one vCPU, ring 0.
    unsafe { (*ENTRIES.get())[(via as usize).min(4)] += 1 };
    match nr {
        nr::WRITE => sys_write(a1, a2, a3),
        nr::EXIT => {
            // SAFETY: called from the syscall path, on the kernel stack below
            // KVMWB_KERNEL_RSP, which kvmwb_end_user returns to.
            unsafe { kvmwb_end_user(a1 as i32 as i64) }
        }
        nr::HOST_CPUID => i64::from(hc::host_cpuid()),
        _ => -errno::ENOSYS,
    }
}

/// What the CPU pushed for a trap, plus the vector and the registers the
/// stub saved (lowest address first).
#[repr(C)]
pub struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; 32] = [
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS", "#NP", "#SS",
    "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25",
    "#26", "#27", "#HV", "#VC", "#SX", "#31",
];

/// Why a #GP happened, from the instruction at RIP (user memory only).
fn gp_reason(rip: u64) -> &'static str {
    if !check_user(rip, 16) {
        return "general protection fault";
    }
    // SAFETY: 16 bytes at rip lie in the user image (checked above).
    let code = unsafe { core::slice::from_raw_parts(rip as *const u8, 16) };
    // Skip legacy prefixes and REX.
    let op = code
        .iter()
        .copied()
        .find(|b| {
            !matches!(
                b,
                0x66 | 0x67 | 0xf2 | 0xf3 | 0x2e | 0x3e | 0x26 | 0x36 | 0x64 | 0x65 | 0x40..=0x4f
            )
        })
        .unwrap_or(0);
    match op {
        0xe4..=0xe7 | 0xec..=0xef | 0x6c..=0x6f => "port I/O is not allowed in user mode",
        0xf4 => "hlt is not allowed in user mode",
        0xfa | 0xfb => "cli/sti are not allowed in user mode",
        0x0f => "privileged instruction",
        _ => "general protection fault",
    }
}

/// Rust side of every exception. From user mode: one report line, then the
/// program ends with status 128 + vector. From the kernel: a report, then a
/// deliberate triple fault, which the host reports as a crash.
#[unsafe(no_mangle)]
extern "C" fn kvmwb_trap(f: &mut TrapFrame) {
    let name = NAMES[(f.vector & 31) as usize];
    if f.cs & 3 == 3 && f.vector == 6 && check_user(f.rip, 2) {
        // kvm-pvm raises #UD for `int n` at CPL3 instead of using the
        // gate: serve `int 0x80` / `int 0x81` as the gate would have.
        // SAFETY: two bytes at RIP lie in the user image (checked).
        let op = unsafe { core::ptr::read(f.rip as *const [u8; 2]) };
        if op[0] == 0xcd && (op[1] == 0x80 || op[1] == 0x81) {
            let via = if op[1] == 0x80 {
                VIA_INT80_UD
            } else {
                VIA_FORWARD_UD
            };
            f.rax = kvmwb_syscall(f.rax, f.rdi, f.rsi, f.rdx, via) as u64;
            f.rip += 2;
            return;
        }
    }
    if f.cs & 3 == 3 {
        match f.vector {
            13 => crate::println!(
                "user program: #GP at RIP {:#x}, {}",
                f.rip,
                gp_reason(f.rip)
            ),
            14 => {
                let addr = Cr2::read_raw();
                let why = if f.error & 1 == 0 {
                    "not mapped"
                } else if f.error & 2 != 0 {
                    "write to a read-only or kernel page"
                } else {
                    "kernel page"
                };
                crate::println!(
                    "user program: #PF at RIP {:#x}, address {addr:#x}: {why}",
                    f.rip
                )
            }
            v => crate::println!(
                "user program: {name} (vector {v}) at RIP {:#x}, error code {:#x}",
                f.rip,
                f.error
            ),
        }
        // SAFETY: a trap from CPL3 runs on the stack below KVMWB_KERNEL_RSP
        // (TSS.RSP0), which kvmwb_end_user returns to.
        unsafe { kvmwb_end_user(FAULT_STATUS_BASE + f.vector as i64) }
    }
    crate::println!(
        "kernel: {name} at RIP {:#x}, error code {:#x}, RSP {:#x}: halting the VM with a triple fault",
        f.rip,
        f.error,
        f.rsp
    );
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: VirtAddr::zero(),
    };
    // SAFETY: an empty IDT turns the next exception into a triple fault,
    // which ends the VM: the intent here.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("ud2", options(noreturn))
    }
}

// Entry and exit of user mode, the SYSCALL entry and the 32 trap stubs.
//
// kvmwb_run_user(entry, rsp): saves the callee-saved registers, stores the
// kernel RSP in KVMWB_KERNEL_RSP and TSS.RSP0, then IRETQ to entry at CPL3.
// kvmwb_end_user(status): back on that stack, restores and returns status
// from kvmwb_run_user.
core::arch::global_asm!(
    ".section .text.kvmwb_kernel, \"ax\"",
    ".global kvmwb_run_user",
    "kvmwb_run_user:",
    "    push rbx",
    "    push rbp",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    sub rsp, 8",
    "    mov [rip + KVMWB_KERNEL_RSP], rsp",
    "    mov [rip + {tss} + 4], rsp",
    "    push {udata}",
    "    push rsi",
    "    push 0x2",
    "    push {ucode}",
    "    push rdi",
    "    xor eax, eax",
    "    xor ebx, ebx",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    xor esi, esi",
    "    xor edi, edi",
    "    xor ebp, ebp",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    xor r12d, r12d",
    "    xor r13d, r13d",
    "    xor r14d, r14d",
    "    xor r15d, r15d",
    "    iretq",
    "",
    ".global kvmwb_end_user",
    "kvmwb_end_user:",
    "    mov rsp, [rip + KVMWB_KERNEL_RSP]",
    "    mov rax, rdi",
    "    add rsp, 8",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbp",
    "    pop rbx",
    "    ret",
    "",
    // SYSCALL: RCX = user RIP, R11 = user RFLAGS, IF cleared by SFMASK.
    // kvm-pvm jumps to LSTAR but leaves the CPU at CPL3 (measured: the
    // first kernel-stack write here raised #PF from user mode). So the
    // entry first looks at CS without touching memory; at CPL3 it forwards
    // the call through `int 0x81`, an interrupt gate (which does switch to
    // ring 0 there) and returns to RCX with RFLAGS from R11.
    ".global kvmwb_syscall_entry",
    "kvmwb_syscall_entry:",
    "    mov r8, cs",
    "    test r8b, 3",
    "    jnz 2f",
    "    mov [rip + KVMWB_USER_RSP], rsp",
    "    mov rsp, [rip + KVMWB_KERNEL_RSP]",
    "    push rcx",
    "    push r11",
    "    mov rcx, rdx",
    "    mov rdx, rsi",
    "    mov rsi, rdi",
    "    mov rdi, rax",
    "    mov r8d, {via_syscall}",
    "    call kvmwb_syscall",
    "    pop r11",
    "    pop rcx",
    // Do not hand kernel values back in the scratch registers.
    "    xor edi, edi",
    "    xor esi, esi",
    "    xor edx, edx",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    mov rsp, [rip + KVMWB_USER_RSP]",
    "    sysretq",
    "2:  int 0x81",
    "    push r11",
    "    popfq",
    "    jmp rcx",
    "",
    // int 0x80 / 0x81: on the TSS.RSP0 stack, 5 words pushed by the CPU.
    ".global kvmwb_int80_entry",
    "kvmwb_int80_entry:",
    "    mov r8d, {via_int80}",
    "    jmp 3f",
    ".global kvmwb_int81_entry",
    "kvmwb_int81_entry:",
    "    mov r8d, {via_forward}",
    "3:  mov rcx, rdx",
    "    mov rdx, rsi",
    "    mov rsi, rdi",
    "    mov rdi, rax",
    "    sub rsp, 8",
    "    call kvmwb_syscall",
    "    add rsp, 8",
    "    xor edi, edi",
    "    xor esi, esi",
    "    xor edx, edx",
    "    xor ecx, ecx",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    iretq",
    "",
    // Trap stubs: 16 bytes each (.balign), vector v at kvmwb_trap_stubs + 16 v.
    // Vectors without an error code push a 0 in its place.
    ".balign 16",
    ".global kvmwb_trap_stubs",
    "kvmwb_trap_stubs:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    .balign 16",
    "    .if (\\v == 8) || (\\v >= 10 && \\v <= 14) || (\\v == 17) || (\\v == 21) || (\\v == 29) || (\\v == 30)",
    "    .else",
    "    push 0",
    "    .endif",
    "    push \\v",
    "    jmp kvmwb_trap_common",
    ".endr",
    "",
    "kvmwb_trap_common:",
    "    push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov rdi, rsp",
    "    mov rbx, rsp",
    "    and rsp, -16",
    "    call kvmwb_trap",
    // Back only for a served `int 0x80`/`0x81`: return to the program.
    "    mov rsp, rbx",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rbp",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rbx",
    "    pop rax",
    "    add rsp, 16",
    "    iretq",
    tss = sym TSS,
    via_syscall = const VIA_SYSCALL,
    via_int80 = const VIA_INT80,
    via_forward = const VIA_FORWARD,
    udata = const UDATA | 3,
    ucode = const UCODE | 3,
);
