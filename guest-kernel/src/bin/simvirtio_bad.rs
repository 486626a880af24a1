//! A SIMVIRTIO driver that breaks the protocol on purpose, one case at a
//! time, resetting the device (DRIVER_RESET) after each. The host must
//! report each case in one line and show the guest an error status; the
//! device must still work at the end.
#![no_std]
#![no_main]

use guest_rt::abi::simvirtio::{self as sv, QueueControl, reg};
use guest_rt::println;
use guest_rt::simvirtio::{self, Device};

guest_rt::entry!(main);

fn report(dev: &Device, case: &str) {
    println!("guest: {case}: device status {:#x}", dev.status());
    dev.reset();
}

fn main() -> u64 {
    let Ok(dev) = Device::probe() else {
        println!("guest: no SIMVIRTIO device");
        return 1;
    };
    // 1. 'C' before 'R'
    let _ = dev.push(sv::CMD_CONFIG);
    report(&dev, "'C' before 'R'");
    // 2. DRIVER_OK before 'C'
    let _ = dev.push(sv::CMD_RESET);
    dev.set_driver_status(sv::DRIVER_ACK);
    dev.set_driver_status(sv::DRIVER_OK);
    report(&dev, "DRIVER_OK before 'C'");
    // 3. data before the device is ready
    let _ = dev.push(sv::CMD_RESET);
    let _ = dev.push(b'x');
    report(&dev, "data before DRIVER_OK");
    // 4. a queue selector that does not exist
    simvirtio::write8(reg::QUEUE_SELECTOR, 5);
    report(&dev, "queue selector 5");
    // 5. corrupt TX indices
    simvirtio::set_tx_control(QueueControl {
        head: 9999,
        tail: 0,
    });
    dev.notify();
    println!("guest: Q0 control {:#x}", simvirtio::read8(reg::Q0_CTL));
    report(&dev, "TX head 9999");
    // 6. an unknown driver status
    simvirtio::write8(reg::DRIVER_STATUS, 0x33);
    report(&dev, "driver status 0x33");
    // 7. a write to a read-only register: ignored, not an error
    simvirtio::write8(reg::MAGIC, 0);
    println!(
        "guest: magic still {:#x}, device status {:#x}",
        simvirtio_magic(),
        dev.status()
    );
    // after all that, the protocol works
    match dev.init().and_then(|()| dev.send(b"still works\n")) {
        Ok(()) => println!("guest: device ready again"),
        Err(e) => println!("guest: device broken: {e:?}"),
    }
    0
}

fn simvirtio_magic() -> u32 {
    let b = [0, 1, 2, 3].map(simvirtio::read8);
    u32::from_le_bytes(b)
}
