//! guest2 of the matrix (`host matrix`): in real mode, `out %ax, $0x11` then `dec %ax`, forever: one VM exit per iteration.
#![no_std]
#![no_main]

guest_rt::real_mode_only!("guest2");
guest_rt::real_loop!("dec", "0x11");
