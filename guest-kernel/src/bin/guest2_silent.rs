//! guest2_silent of the matrix (`host matrix`): in real mode, `dec %ax` forever, with no `out`: it never exits, only a timer can take the CPU back.
#![no_std]
#![no_main]

guest_rt::real_mode_only!("guest2_silent");
guest_rt::real_loop!("dec");
