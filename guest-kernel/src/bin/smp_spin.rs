//! Every vCPU spins forever without an exit: only the host's watchdog
//! (`--timeout`, Ctrl-C, SIGTERM) ends this VM.
#![no_std]
#![no_main]

use guest_rt::Cpu;

guest_rt::smp_entry!(main);

fn main(_cpu: Cpu) -> u64 {
    loop {
        core::hint::spin_loop();
    }
}
