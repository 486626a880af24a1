//! A multi-vCPU guest where one vCPU crashes: vCPU 0 spins forever, the
//! last vCPU executes `ud2` with no IDT (a triple fault). The host must end
//! the whole VM: report the crash of that vCPU and stop the spinning one.
#![no_std]
#![no_main]

use guest_rt::{Cpu, println};

guest_rt::smp_entry!(main);

fn main(cpu: Cpu) -> u64 {
    if cpu.id + 1 == cpu.count && cpu.id != 0 {
        println!("vcpu {}: crashing", cpu.id);
        // SAFETY: raises #UD on purpose; without an IDT it becomes a triple fault.
        unsafe { core::arch::asm!("ud2", options(noreturn)) }
    }
    loop {
        core::hint::spin_loop();
    }
}
