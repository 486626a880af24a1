//! spin_real: in real mode, `jmp .` forever: the guest of the C floor's
//! preemption figures (kvm_floor's intr_preempt), so `host bench` measures
//! the VMM's preemption path with the same guest. It never exits; only a
//! timer takes the CPU back (`host matrix --vm spin_real --vm spin_real`).
#![no_std]
#![no_main]

guest_rt::real_mode_only!("spin_real");

core::arch::global_asm!(
    concat!(".pushsection ", guest_rt::abi::real_section!(), ", \"ax\""),
    ".code16",
    "1:  jmp 1b",
    ".code64",
    ".popsection",
    options(att_syntax),
);
