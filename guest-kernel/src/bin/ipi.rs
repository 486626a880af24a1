//! ipi: one vCPU wakes another with an inter-processor interrupt
//! (`host run ipi --vcpus 2`; `smp_entry!(main, check_42, irq_kernel)`
//! asks for KVM's in-kernel local APICs). vCPU 1 installs a handler on
//! vector 0x40 and sleeps in `sti; hlt`; vCPU 0 waits until it is about to
//! sleep, sends the IPI to APIC id 1 through its own local APIC's ICR, and
//! waits for vCPU 1's answer. Every further vCPU just returns.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use guest_rt::interrupts::{self, Frame, lapic};
use guest_rt::{Cpu, println};

guest_rt::smp_entry!(main, check_42, irq_kernel);

const VECTOR: u8 = 0x40;

/// vCPU 1: 1 = about to sleep, 2 = woken by the IPI.
static STATE: AtomicU32 = AtomicU32::new(0);
static WAKES: AtomicU32 = AtomicU32::new(0);

fn woken(_: &mut Frame) {
    WAKES.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn main(cpu: Cpu) -> u64 {
    match cpu.id {
        0 => {
            if cpu.count < 2 {
                println!("ipi needs two vCPUs: host run ipi --vcpus 2");
                return 1;
            }
            lapic::enable();
            while STATE.load(Ordering::Acquire) < 1 {
                core::hint::spin_loop();
            }
            println!(
                "vcpu 0 (APIC id {}): IPI vector {VECTOR:#x} to APIC id 1",
                lapic::id()
            );
            lapic::send_ipi(1, VECTOR);
            while STATE.load(Ordering::Acquire) < 2 {
                core::hint::spin_loop();
            }
            println!("vcpu 0: vcpu 1 answered");
            guest_rt::pass_check_42()
        }
        1 => {
            interrupts::set_handler(VECTOR, woken);
            lapic::enable();
            STATE.store(1, Ordering::Release);
            // sti; hlt until the IPI's handler has run
            while WAKES.load(Ordering::Relaxed) == 0 {
                interrupts::wait();
            }
            interrupts::disable();
            println!(
                "vcpu 1 (APIC id {}): woken from HLT by the IPI",
                lapic::id()
            );
            STATE.store(2, Ordering::Release);
            0
        }
        _ => 0,
    }
}
