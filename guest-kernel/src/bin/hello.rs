//! The default guest: "Hello, world!" through print8bit, then the 42 check.
//! One program for every CPU mode: Rust in long mode, and position-independent
//! assembly for real mode (`.kvmwb.real`) and 32-bit protected mode with or
//! without paging (`.kvmwb.prot32`); `host run hello --mode M` picks one.
#![no_std]
#![no_main]

use guest_rt::abi::layout::{CHECK_ADDR, CHECK_VALUE};
use guest_rt::abi::{Hypercall, prot32_section, real_section};
use guest_rt::hc;

guest_rt::entry!(main, check_42);

fn main() -> u64 {
    for &b in b"Hello, world!\n" {
        hc::print8bit(b);
    }
    // SAFETY: CHECK_ADDR is identity-mapped guest RAM that the ABI reserves
    // for this check; nothing else lives there.
    unsafe { core::ptr::write_volatile(CHECK_ADDR as *mut u64, CHECK_VALUE) };
    CHECK_VALUE // left in RAX at `hlt`
}

// Real mode: print the message byte by byte, write 42, halt with AX = 42.
core::arch::global_asm!(
    concat!(".pushsection ", real_section!(), ", \"ax\""),
    ".code16",
    // list print8bit in the ABI note (a relocation, no bytes)
    ".reloc ., R_X86_64_NONE, {print8_entry}",
    "    call 7f",
    "7:  pop %si",
    "    add $(2f - 7b), %si",
    "    mov ${print8}, %dx",
    "3:  lodsb",
    "    test %al, %al",
    "    jz 4f",
    "    out %al, %dx",
    "    jmp 3b",
    "4:  movl ${value}, {check}",
    "    mov ${value}, %eax",
    "    hlt",
    "2:  .asciz \"Hello, world!\\n\"",
    ".code64",
    ".popsection",
    print8 = const Hypercall::Print8bit.port(),
    print8_entry = sym guest_rt::hc::raw::listing::print8bit,
    check = const CHECK_ADDR,
    value = const CHECK_VALUE,
    options(att_syntax),
);

// 32-bit protected mode (flat segments; paged or not): the message with
// print8bit, num_exits printed with print32bit, a line with print_str (its
// argument block filled in at run time: the code is position-independent),
// then 42.
core::arch::global_asm!(
    concat!(".pushsection ", prot32_section!(), ", \"ax\""),
    ".code32",
    // list the four hypercalls in the ABI note (relocations, no bytes)
    ".reloc ., R_X86_64_NONE, {print8_entry}",
    ".reloc ., R_X86_64_NONE, {num_exits_entry}",
    ".reloc ., R_X86_64_NONE, {print32_entry}",
    ".reloc ., R_X86_64_NONE, {print_str_entry}",
    "    call 7f",
    "7:  pop %ebx",
    "    lea (2f - 7b)(%ebx), %esi",
    "    mov ${print8}, %dx",
    "3:  lodsb",
    "    test %al, %al",
    "    jz 4f",
    "    out %al, %dx",
    "    jmp 3b",
    "4:  mov ${num_exits}, %dx",
    "    in %dx, %eax",
    "    mov ${print32}, %dx",
    "    out %eax, %dx",
    "    lea (6f - 7b)(%ebx), %edi",
    "    lea (5f - 7b)(%ebx), %eax",
    "    mov %eax, (%edi)",
    "    movl $0, 4(%edi)",
    "    mov %edi, %eax",
    "    mov ${print_str}, %dx",
    "    out %eax, %dx",
    "    movl ${value}, {check}",
    "    mov ${value}, %eax",
    "    hlt",
    "2:  .asciz \"Hello, world!\\n\"",
    "5:  .asciz \"print_str from 32-bit code\\n\"",
    "    .balign 8",
    "6:  .quad 0, 0",
    ".code64",
    ".popsection",
    print8 = const Hypercall::Print8bit.port(),
    num_exits = const Hypercall::NumExits.port(),
    print32 = const Hypercall::Print32bit.port(),
    print_str = const Hypercall::PrintStr.port(),
    print8_entry = sym guest_rt::hc::raw::listing::print8bit,
    num_exits_entry = sym guest_rt::hc::raw::listing::num_exits,
    print32_entry = sym guest_rt::hc::raw::listing::print32bit,
    print_str_entry = sym guest_rt::hc::raw::listing::print_str,
    check = const CHECK_ADDR,
    value = const CHECK_VALUE,
    options(att_syntax),
);
