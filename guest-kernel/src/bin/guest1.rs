//! guest1 of the matrix (`host matrix`): in real mode, `out %ax, $0x10` then `inc %ax`, forever: one VM exit per iteration.
#![no_std]
#![no_main]

guest_rt::real_mode_only!("guest1");
guest_rt::real_loop!("inc", "0x10");
