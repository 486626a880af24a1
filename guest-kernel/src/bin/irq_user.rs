//! irq_user: interrupts from the host's user-space controller, in every CPU
//! mode (`host run irq_user --mode M --inject-every 2ms`; its ABI note asks
//! for `--irqchip user`). Each mode's code points vector 0x20 at its handler
//! and sleeps in `sti; hlt` until 5 interrupts came: each HLT exits to the
//! host, which waits for the next tick and injects vector 0x20 with
//! KVM_INTERRUPT. Then `cli; hlt` ends the run (the 42 check passes).
//!
//! - real mode: IVT entry 0x20;
//! - protected and paged32: an IDT of 33 gates in the image (gates 0-31
//!   copied from the host's, which report exceptions), gate 0x20 added;
//! - long mode: `guest_rt::interrupts`; on several vCPUs (`--vcpus 2
//!   --inject-every 2ms@1`) every vCPU installs the handler and spins with
//!   interrupts on (a vCPU that halted with no tick to come for it would
//!   end), and vCPU 0 says which vCPU took them.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::abi::{Hypercall, prot32_section, real_section};
use guest_rt::interrupts::{self, Frame};
use guest_rt::{Cpu, print, println};

guest_rt::smp_entry!(main, check_42, irq_user);

/// Interrupts to wait for.
const WANT: u32 = 5;
const VECTOR: u8 = 0x20;
const MAX_CPUS: usize = 8;

static TOTAL: AtomicU32 = AtomicU32::new(0);
static BY_CPU: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

fn tick(_: &mut Frame) {
    // the initial APIC id the host puts in CPUID leaf 1 is the vCPU's id
    let id = core::arch::x86_64::__cpuid(1).ebx >> 24;
    BY_CPU[id as usize % MAX_CPUS].fetch_add(1, Ordering::Relaxed);
    TOTAL.fetch_add(1, Ordering::Relaxed);
}

fn main(cpu: Cpu) -> u64 {
    interrupts::set_handler(VECTOR, tick);
    if cpu.count == 1 {
        while TOTAL.load(Ordering::Relaxed) < WANT {
            interrupts::wait();
        }
    } else {
        interrupts::enable();
        while TOTAL.load(Ordering::Relaxed) < WANT {
            core::hint::spin_loop();
        }
    }
    interrupts::disable();
    if cpu.id != 0 {
        return 0;
    }
    println!("{WANT} interrupts: vector {VECTOR:#x}, injected by the host");
    if cpu.count > 1 {
        print!("taken by vCPU:");
        for (i, n) in BY_CPU.iter().take(cpu.count as usize).enumerate() {
            print!(" {i}={}", n.load(Ordering::Relaxed));
        }
        println!();
    }
    guest_rt::pass_check_42()
}

/// Where the real-mode count lives (free real-mode memory).
const REAL_COUNT: u16 = 0x8000;

core::arch::global_asm!(
    concat!(".pushsection ", real_section!(), ", \"ax\""),
    ".code16",
    ".reloc ., R_X86_64_NONE, {print8_entry}",
    "    cli",
    "    call 7f",
    "7:  pop %bx",
    // IVT[0x20] = 0000:handler
    "    lea (8f - 7b)(%bx), %ax",
    "    mov %ax, 0x80",
    "    movw $0, 0x82",
    "    movw $0, {count}",
    "    sti",
    "1:  hlt",
    "    cmpw ${want}, {count}",
    "    jb 1b",
    "    cli",
    "    lea (2f - 7b)(%bx), %si",
    "    mov ${print8}, %dx",
    "3:  lodsb",
    "    test %al, %al",
    "    jz 4f",
    "    out %al, %dx",
    "    jmp 3b",
    "4:  movl ${value}, {check}",
    "    mov ${value}, %eax",
    "    hlt",
    "8:  incw {count}",
    "    iret",
    "2:  .asciz \"5 interrupts: vector 0x20, injected by the host\\n\"",
    ".code64",
    ".popsection",
    print8 = const Hypercall::Print8bit.port(),
    print8_entry = sym guest_rt::hc::raw::listing::print8bit,
    count = const REAL_COUNT,
    want = const WANT,
    check = const CHECK_ADDR,
    value = const CHECK_VALUE,
    options(att_syntax),
);

// Protected mode, with or without paging: position-independent (EBX = the
// address of label 7). The IDT lives in the image (writable in both
// modes): gates 0-31 are copied from the IDT in use (the host's), gate
// 0x20 is a 32-bit interrupt gate to the handler at 8.
core::arch::global_asm!(
    concat!(".pushsection ", prot32_section!(), ", \"ax\""),
    ".code32",
    ".reloc ., R_X86_64_NONE, {print8_entry}",
    "    cli",
    "    cld",
    "    call 7f",
    "7:  pop %ebx",
    "    sub $8, %esp",
    "    sidt (%esp)",
    "    mov 2(%esp), %esi",
    "    add $8, %esp",
    "    lea (5f - 7b)(%ebx), %edi",
    "    mov $64, %ecx",
    "    rep movsl",
    // EDI = &gate[0x20]
    "    lea (8f - 7b)(%ebx), %eax",
    "    mov %ax, (%edi)",
    "    mov %cs, %dx",
    "    mov %dx, 2(%edi)",
    "    movw $0x8e00, 4(%edi)",
    "    shr $16, %eax",
    "    mov %ax, 6(%edi)",
    "    lea (6f - 7b)(%ebx), %esi",
    "    movw $(33 * 8 - 1), (%esi)",
    "    lea (5f - 7b)(%ebx), %eax",
    "    mov %eax, 2(%esi)",
    "    lidt (%esi)",
    "    movl $0, (9f - 7b)(%ebx)",
    "    sti",
    "1:  hlt",
    "    cmpl ${want}, (9f - 7b)(%ebx)",
    "    jb 1b",
    "    cli",
    "    lea (2f - 7b)(%ebx), %esi",
    "    mov ${print8}, %dx",
    "3:  lodsb",
    "    test %al, %al",
    "    jz 4f",
    "    out %al, %dx",
    "    jmp 3b",
    "4:  movl ${value}, {check}",
    "    mov ${value}, %eax",
    "    hlt",
    // the handler: count, return
    "8:  push %eax",
    "    call 10f",
    "10: pop %eax",
    "    incl (9f - 10b)(%eax)",
    "    pop %eax",
    "    iret",
    "2:  .asciz \"5 interrupts: vector 0x20, injected by the host\\n\"",
    "    .balign 8",
    "5:  .fill 33 * 8, 1, 0",
    "6:  .fill 8, 1, 0",
    "9:  .long 0",
    ".code64",
    ".popsection",
    print8 = const Hypercall::Print8bit.port(),
    print8_entry = sym guest_rt::hc::raw::listing::print8bit,
    want = const WANT,
    check = const CHECK_ADDR,
    value = const CHECK_VALUE,
    options(att_syntax),
);
