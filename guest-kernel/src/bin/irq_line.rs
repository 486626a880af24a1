//! irq_line: an IRQ line the host raises through an irqfd, in real mode
//! with KVM's in-kernel PIC (`host run irq_line --mode real --inject-every
//! 2ms:5`; its ABI note asks for `--irqchip kernel`). It points IVT entry
//! 0x25 at its handler, programs the PIC (vectors 0x20-0x27, only IRQ 5
//! unmasked: the C floor's irq_floor guest) and sleeps in `sti; hlt` until
//! 5 interrupts came; the handler counts and sends the end of interrupt.
//! Then `cli; hlt` (the 42 check passes).
#![no_std]
#![no_main]

use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::abi::note::{FLAG_CHECK_42, FLAG_IRQ_KERNEL};
use guest_rt::abi::{Hypercall, real_section};

guest_rt::real_mode_only!("irq_line", FLAG_CHECK_42 | FLAG_IRQ_KERNEL);

/// Where the count lives (free real-mode memory).
const COUNT: u16 = 0x8000;
/// Interrupts to wait for.
const TICKS: u16 = 5;

core::arch::global_asm!(
    concat!(".pushsection ", real_section!(), ", \"ax\""),
    ".code16",
    ".reloc ., R_X86_64_NONE, {print8_entry}",
    "    cli",
    "    call 7f",
    "7:  pop %bx",
    // IVT[0x25] = 0000:handler
    "    lea (8f - 7b)(%bx), %ax",
    "    mov %ax, 0x94",
    "    movw $0, 0x96",
    "    movw $0, {count}",
    // PIC: ICW1 (edge, ICW4), ICW2 vector base 0x20, ICW3, ICW4, mask
    "    mov $0x11, %al",
    "    out %al, $0x20",
    "    mov $0x20, %al",
    "    out %al, $0x21",
    "    mov $0x04, %al",
    "    out %al, $0x21",
    "    mov $0x01, %al",
    "    out %al, $0x21",
    "    mov $0xdf, %al",
    "    out %al, $0x21",
    "    sti",
    "1:  hlt",
    "    cmpw ${ticks}, {count}",
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
    // IRQ 5: count, end of interrupt to the PIC
    "8:  incw {count}",
    "    push %ax",
    "    mov $0x20, %al",
    "    out %al, $0x20",
    "    pop %ax",
    "    iret",
    "2:  .asciz \"5 interrupts: IRQ 5, vector 0x25, raised through an irqfd\\n\"",
    ".code64",
    ".popsection",
    print8 = const Hypercall::Print8bit.port(),
    print8_entry = sym guest_rt::hc::raw::listing::print8bit,
    count = const COUNT,
    ticks = const TICKS,
    check = const CHECK_ADDR,
    value = const CHECK_VALUE,
    options(att_syntax),
);
