//! guest1_silent of the matrix (`host matrix`): in real mode, `inc %ax` forever, with no `out`: it never exits, only a timer can take the CPU back.
#![no_std]
#![no_main]

guest_rt::real_mode_only!("guest1_silent");
guest_rt::real_loop!("inc");
