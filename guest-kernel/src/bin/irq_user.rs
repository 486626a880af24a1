//! irq_user: interrupts from a user-space controller, in real mode
//! (`host run irq_user --mode real --inject-every 2ms`; its ABI note asks
//! for `--irqchip user`). It points IVT entry 0x20 at its handler and
//! sleeps in `sti; hlt` until 5 interrupts came: each HLT exits to the
//! host, which waits for the next tick and injects vector 0x20 with
//! KVM_INTERRUPT. Then `cli; hlt` ends the run (the 42 check passes).
#![no_std]
#![no_main]

use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::abi::note::{FLAG_CHECK_42, FLAG_IRQ_USER};
use guest_rt::abi::{Hypercall, real_section};

guest_rt::real_mode_only!("irq_user", FLAG_CHECK_42 | FLAG_IRQ_USER);

/// Where the count lives (free real-mode memory).
const COUNT: u16 = 0x8000;
/// Interrupts to wait for.
const WANT: u16 = 5;

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
    count = const COUNT,
    want = const WANT,
    check = const CHECK_ADDR,
    value = const CHECK_VALUE,
    options(att_syntax),
);
