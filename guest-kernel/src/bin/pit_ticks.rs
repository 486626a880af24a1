//! pit_ticks: the classic PC, in real mode, with KVM's in-kernel PIC and
//! PIT (`host run pit_ticks --mode real`; its ABI note asks for
//! `--irqchip kernel`). It points IVT entry 8 at its handler, programs the
//! PIC (vectors 8-15, only IRQ 0 unmasked) and the PIT (channel 0, mode 2,
//! ~100 Hz), and sleeps in `sti; hlt` until 10 ticks came; the handler
//! counts and sends the PIC its end of interrupt. Then `cli; hlt`, which
//! the host notices although HLT no longer exits (the 42 check passes).
//! No port access here exits to the host but the message's `out 0xe9`.
#![no_std]
#![no_main]

use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::abi::note::{FLAG_CHECK_42, FLAG_IRQ_KERNEL};
use guest_rt::abi::{Hypercall, real_section};

guest_rt::real_mode_only!("pit_ticks", FLAG_CHECK_42 | FLAG_IRQ_KERNEL);

/// Where the tick count lives (free real-mode memory).
const COUNT: u16 = 0x8000;
/// Ticks to wait for.
const TICKS: u16 = 10;

core::arch::global_asm!(
    concat!(".pushsection ", real_section!(), ", \"ax\""),
    ".code16",
    ".reloc ., R_X86_64_NONE, {print8_entry}",
    "    cli",
    "    call 7f",
    "7:  pop %bx",
    // IVT[8] = 0000:handler
    "    lea (8f - 7b)(%bx), %ax",
    "    mov %ax, 0x20",
    "    movw $0, 0x22",
    "    movw $0, {count}",
    // PIC: ICW1 (edge, ICW4), ICW2 vector base 8, ICW3, ICW4 (8086), mask
    "    mov $0x11, %al",
    "    out %al, $0x20",
    "    mov $0x08, %al",
    "    out %al, $0x21",
    "    mov $0x04, %al",
    "    out %al, $0x21",
    "    mov $0x01, %al",
    "    out %al, $0x21",
    "    mov $0xfe, %al",
    "    out %al, $0x21",
    // PIT channel 0, lobyte/hibyte, mode 2, divisor 11932 (~100 Hz)
    "    mov $0x34, %al",
    "    out %al, $0x43",
    "    mov $0x9c, %al",
    "    out %al, $0x40",
    "    mov $0x2e, %al",
    "    out %al, $0x40",
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
    // IRQ 0: count, end of interrupt to the PIC
    "8:  incw {count}",
    "    push %ax",
    "    mov $0x20, %al",
    "    out %al, $0x20",
    "    pop %ax",
    "    iret",
    "2:  .asciz \"10 PIT ticks: IRQ 0, vector 8, through the in-kernel PIC\\n\"",
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
