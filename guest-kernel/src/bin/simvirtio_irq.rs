//! simvirtio_irq: the SIMVIRTIO protocol with interrupts (`host run
//! simvirtio_irq --polling`; `entry!(main, check_42, irq_kernel)` asks for
//! KVM's in-kernel controller). The driver opts in (DRIVER_IRQ), the
//! program routes the device's IRQ line through the IOAPIC to vector 0x31,
//! whose handler reads the interrupt status, acknowledges it and sends the
//! local APIC its end of interrupt. After "Ana are mere" the driver sleeps
//! in `sti; hlt` until the host's answer arrives on RX: with `--polling`
//! the host drains TX on its 1 ms timer, so the answer comes while the
//! guest sleeps and the interrupt wakes it. In exit mode the answer is
//! already there when the driver looks.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use guest_rt::abi::simvirtio as sv;
use guest_rt::interrupts::{self, Frame, ioapic, lapic};
use guest_rt::println;
use guest_rt::simvirtio::{self, Device};

guest_rt::entry!(main, check_42, irq_kernel);

const VECTOR: u8 = 0x31;
static USED: AtomicU32 = AtomicU32::new(0);
static CONFIG: AtomicU32 = AtomicU32::new(0);

fn on_irq(_: &mut Frame) {
    let st = simvirtio::interrupt_status();
    simvirtio::ack(st);
    if st & sv::INT_USED != 0 {
        USED.fetch_add(1, Ordering::Relaxed);
    }
    if st & sv::INT_CONFIG != 0 {
        CONFIG.fetch_add(1, Ordering::Relaxed);
    }
    lapic::eoi();
}

fn main() -> u64 {
    let dev = match Device::probe() {
        Ok(d) => d,
        Err(e) => {
            println!("guest: no SIMVIRTIO device: {e:?}");
            return 1;
        }
    };
    let mode = if dev.polling() { "polling" } else { "exit" };
    let Some(dev) = dev.with_interrupts() else {
        println!("guest: the device has no interrupt line (run with --irqchip kernel)");
        return 1;
    };
    interrupts::set_handler(VECTOR, on_irq);
    // the line reaches the PICs too (wired to LINT0): only the IOAPIC here
    interrupts::pic_mask_all();
    lapic::enable();
    ioapic::route(dev.line(), VECTOR, lapic::id() as u8);
    interrupts::enable();
    println!(
        "guest: SIMVIRTIO device found, {mode} mode, IRQ line {} on vector {VECTOR:#x}",
        dev.line()
    );
    if let Err(e) = dev.init() {
        println!("guest: handshake failed: {e:?}");
        return 1;
    }
    if let Err(e) = dev.send(b"Ana are mere\n") {
        println!("guest: send failed: {e:?}");
        return 1;
    }
    let mut buf = [0u8; 64];
    let r = dev.recv_line(&mut buf);
    interrupts::disable();
    match r {
        Ok(n) => println!(
            "guest: rx: {}",
            core::str::from_utf8(&buf[..n]).unwrap_or("(not UTF-8)")
        ),
        Err(e) => {
            println!("guest: receive failed: {e:?}");
            return 1;
        }
    }
    let (used, config) = (USED.load(Ordering::Relaxed), CONFIG.load(Ordering::Relaxed));
    println!("guest: interrupts: {used} used buffer, {config} config change");
    if used == 0 || config == 0 {
        return 1;
    }
    guest_rt::pass_check_42()
}
