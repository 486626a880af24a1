//! Interrupts, the KVM API's fifth operation: the in-kernel controllers
//! and PIT of a VM (KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2), an irqfd to
//! raise an IRQ line from the host, and for a vCPU without them the
//! user-space path: KVM_INTERRUPT when `kvm_run` says the guest can take
//! one, and the interrupt window request when it cannot.

use super::error::KvmError;
use super::vcpu::Vcpu;
use super::vm::VmObject;
use crate::trace::{Call, Tracer, record};
use kvm_bindings as k;
use std::os::fd::AsRawFd;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// `_IOW(KVMIO, 0x86, struct kvm_interrupt)`; kvm-ioctls has no wrapper.
const KVM_INTERRUPT: libc::c_ulong = 0x4004_ae86;
/// `_IOW(KVMIO, 0x61, struct kvm_irq_level)`: set by the vCPU thread on
/// the VM's fd, so it is made here on the raw fd (the seccomp filter
/// allows it).
pub const KVM_IRQ_LINE: libc::c_ulong = 0x4008_ae61;

/// `_IOWR(KVMIO, 0x62, struct kvm_irqchip)`.
const KVM_GET_IRQCHIP: libc::c_ulong = 0xc208_ae62;
/// `_IOR(KVMIO, 0x9f, struct kvm_pit_state2)`.
const KVM_GET_PIT2: libc::c_ulong = 0x8070_ae9f;
const _: () = assert!(size_of::<k::kvm_irqchip>() == 0x208);
const _: () = assert!(size_of::<k::kvm_pit_state2>() == 0x70);

/// The in-kernel controllers of a VM, read with KVM_GET_IRQCHIP (PIC
/// master, PIC slave, IOAPIC) and KVM_GET_PIT2.
#[derive(Clone, Copy)]
pub struct ChipState {
    /// The two 8259s, master first.
    pub pic: [k::kvm_pic_state; 2],
    /// The IOAPIC.
    pub ioapic: k::kvm_ioapic_state,
    /// The 8254.
    pub pit: k::kvm_pit_state2,
}

impl ChipState {
    /// Reads the controllers of the VM whose fd is `vm` (it has them:
    /// KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 were called).
    pub fn read(vm: std::os::fd::BorrowedFd<'_>) -> Result<ChipState, KvmError> {
        let chip = |id: u32| -> Result<k::kvm_irqchip, KvmError> {
            let mut c = k::kvm_irqchip {
                chip_id: id,
                ..Default::default()
            };
            // SAFETY: KVM_GET_IRQCHIP reads chip_id from and writes one
            // `struct kvm_irqchip` to the pointer, which points at `c`,
            // alive for the call.
            let rc = unsafe { libc::ioctl(vm.as_raw_fd(), KVM_GET_IRQCHIP, &raw mut c) };
            if rc < 0 {
                return Err(KvmError::ioctl("KVM_GET_IRQCHIP")(kvm_ioctls::Error::last()));
            }
            Ok(c)
        };
        let (m, s, io) = (
            chip(k::KVM_IRQCHIP_PIC_MASTER)?,
            chip(k::KVM_IRQCHIP_PIC_SLAVE)?,
            chip(k::KVM_IRQCHIP_IOAPIC)?,
        );
        let mut pit = k::kvm_pit_state2::default();
        // SAFETY: KVM_GET_PIT2 writes one `struct kvm_pit_state2` to the
        // pointer, which points at `pit`, alive for the call.
        let rc = unsafe { libc::ioctl(vm.as_raw_fd(), KVM_GET_PIT2, &raw mut pit) };
        if rc < 0 {
            return Err(KvmError::ioctl("KVM_GET_PIT2")(kvm_ioctls::Error::last()));
        }
        // SAFETY: KVM filled the union member its chip_id names: the PIC
        // state for the two PICs, the IOAPIC state for the third.
        Ok(unsafe {
            ChipState {
                pic: [m.chip.pic, s.chip.pic],
                ioapic: io.chip.ioapic,
                pit,
            }
        })
    }
}

/// How the host raises an IRQ line of the in-kernel controller
/// (`--inject-every` with `--irqchip kernel`).
pub enum Raiser {
    /// An eventfd bound with KVM_IRQFD: a write raises the line (edge).
    Irqfd {
        /// The eventfd.
        fd: EventFd,
        /// The line.
        gsi: u32,
    },
    /// KVM_IRQ_LINE on the VM's fd: level 1, then 0.
    Line {
        /// The VM's fd (the VM outlives every vCPU thread).
        vm: std::os::fd::RawFd,
        /// The line.
        gsi: u32,
    },
}

impl Raiser {
    /// Raises the line once.
    pub fn raise(&self, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        match self {
            Raiser::Irqfd { fd, .. } => fd
                .write(1)
                .map_err(|e| KvmError::Write(format!("irqfd: {e}"))),
            Raiser::Line { vm, gsi } => {
                for level in [1, 0] {
                    let l = k::kvm_irq_level {
                        __bindgen_anon_1: k::kvm_irq_level__bindgen_ty_1 { irq: *gsi },
                        level,
                    };
                    // SAFETY: KVM_IRQ_LINE reads one `struct kvm_irq_level`
                    // from the pointer, which points at `l`, alive for the
                    // call; `vm` is the VM's open fd.
                    let rc = unsafe { libc::ioctl(*vm, KVM_IRQ_LINE, &raw const l) };
                    if rc < 0 {
                        return Err(KvmError::ioctl("KVM_IRQ_LINE")(kvm_ioctls::Error::last()));
                    }
                    record(trace, || {
                        Call::ioctl(
                            format!("vm {vm}"),
                            "KVM_IRQ_LINE",
                            format!("irq {gsi}, level {level}"),
                            "0".into(),
                            if level == 1 {
                                "raise the IRQ line in the in-kernel controller"
                            } else {
                                "lower it again (an edge)"
                            },
                        )
                    });
                }
                Ok(())
            }
        }
    }

    /// What the exit table calls it.
    pub fn via(&self) -> crate::stats::IrqVia {
        match self {
            Raiser::Irqfd { .. } => crate::stats::IrqVia::Irqfd,
            Raiser::Line { .. } => crate::stats::IrqVia::IrqLine,
        }
    }
}
/// RFLAGS.IF.
const IF: u64 = 1 << 9;

impl VmObject {
    /// The in-kernel PIC, IOAPIC and local APICs, then the PIT (before any
    /// vCPU is created).
    pub fn create_irqchip(&self, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        let target = || format!("vm {}", self.fd().as_raw_fd());
        self.fd()
            .create_irq_chip()
            .map_err(KvmError::ioctl("KVM_CREATE_IRQCHIP"))?;
        record(trace, || {
            Call::ioctl(
                target(),
                "KVM_CREATE_IRQCHIP",
                String::new(),
                "0".into(),
                "in-kernel PIC, IOAPIC and local APICs: HLT now sleeps in the kernel",
            )
        });
        let pit = k::kvm_pit_config {
            flags: k::KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd()
            .create_pit2(pit)
            .map_err(KvmError::ioctl("KVM_CREATE_PIT2"))?;
        record(trace, || {
            Call::ioctl(
                target(),
                "KVM_CREATE_PIT2",
                "flags KVM_PIT_SPEAKER_DUMMY".into(),
                "0".into(),
                "in-kernel 8254 PIT on ports 0x40-0x43, wired to IRQ 0",
            )
        });
        Ok(())
    }

    /// How `--inject-every` raises line `gsi`: KVM_IRQ_LINE on this VM's
    /// fd with `ioctl`, else an irqfd.
    pub fn raiser(
        &self,
        gsi: u32,
        ioctl: bool,
        trace: &mut Option<Tracer>,
    ) -> Result<Raiser, KvmError> {
        Ok(match ioctl {
            true => Raiser::Line {
                vm: self.fd().as_raw_fd(),
                gsi,
            },
            false => Raiser::Irqfd {
                fd: self.irqfd(gsi, trace)?,
                gsi,
            },
        })
    }

    /// An eventfd bound to IRQ line `gsi` with KVM_IRQFD: a write to it
    /// raises the line in the in-kernel controller, without a vCPU ioctl.
    pub fn irqfd(&self, gsi: u32, trace: &mut Option<Tracer>) -> Result<EventFd, KvmError> {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| KvmError::Write(e.to_string()))?;
        self.fd()
            .register_irqfd(&fd, gsi)
            .map_err(KvmError::ioctl("KVM_IRQFD"))?;
        record(trace, || {
            Call::ioctl(
                format!("vm {}", self.fd().as_raw_fd()),
                "KVM_IRQFD",
                format!("eventfd {}, gsi {gsi}", fd.as_raw_fd()),
                "0".into(),
                "a write to the eventfd raises the IRQ line in the kernel",
            )
        });
        Ok(fd)
    }
}

impl Vcpu {
    /// Whether the guest can take an interrupt now (`kvm_run` after an
    /// exit: ready for injection, and RFLAGS.IF set).
    pub fn can_take_interrupt(&mut self) -> bool {
        let r = self.kvm_run();
        r.ready_for_interrupt_injection != 0 && r.if_flag != 0
    }

    /// Whether RFLAGS.IF was set at the last exit.
    pub fn interrupts_on(&mut self) -> bool {
        self.kvm_run().if_flag != 0
    }

    /// Asks KVM to exit (KVM_EXIT_IRQ_WINDOW_OPEN) as soon as the guest
    /// can take an interrupt; `false` withdraws the request.
    pub fn request_interrupt_window(&mut self, on: bool) {
        self.kvm_run_mut().request_interrupt_window = u8::from(on);
    }

    /// Injects `vector` (user-space controller: no in-kernel irqchip).
    pub fn interrupt(&self, vector: u32, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        let irq = k::kvm_interrupt { irq: vector };
        // SAFETY: KVM_INTERRUPT reads one `struct kvm_interrupt` from the
        // pointer, which points at `irq`, alive for the call.
        let rc = unsafe { libc::ioctl(self.fd_raw(), KVM_INTERRUPT, &raw const irq) };
        if rc < 0 {
            return Err(KvmError::ioctl("KVM_INTERRUPT")(kvm_ioctls::Error::last()));
        }
        record(trace, || {
            Call::ioctl(
                format!("vcpu {}", self.fd_raw()),
                "KVM_INTERRUPT",
                format!("vector {vector:#x}"),
                "0".into(),
                "inject the interrupt at the next entry",
            )
        });
        Ok(())
    }

    /// In-kernel controller: makes a vCPU other than the first runnable.
    /// With KVM's local APICs every vCPU but the bootstrap one starts
    /// waiting for INIT and SIPI (KVM_MP_STATE_UNINITIALIZED), and KVM_RUN
    /// would leave it asleep at its entry; the host starts every vCPU at the
    /// ELF entry (docs/abi.md), as without the controller.
    pub fn make_runnable(&self, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        let mp = k::kvm_mp_state {
            mp_state: k::KVM_MP_STATE_RUNNABLE,
        };
        self.fd()
            .set_mp_state(mp)
            .map_err(KvmError::ioctl("KVM_SET_MP_STATE"))?;
        record(trace, || {
            Call::ioctl(
                format!("vcpu {}", self.fd_raw()),
                "KVM_SET_MP_STATE",
                "RUNNABLE".into(),
                "0".into(),
                "start this application processor without INIT/SIPI",
            )
        });
        Ok(())
    }

    /// In-kernel controller: this vCPU's local APIC registers (the 1 KiB
    /// register page, KVM_GET_LAPIC).
    pub fn lapic_regs(&self) -> Result<[u8; 1024], KvmError> {
        let l = self
            .fd()
            .get_lapic()
            .map_err(KvmError::ioctl("KVM_GET_LAPIC"))?;
        Ok(l.regs.map(|b| b as u8))
    }

    /// In-kernel controller: the highest vector in service in this vCPU's
    /// local APIC (its ISR, KVM_GET_LAPIC), if any: the interrupt whose
    /// handler runs and has not sent its end of interrupt.
    pub fn in_service(&self) -> Result<Option<u8>, KvmError> {
        Ok(highest_in_service(&self.lapic_regs()?))
    }

    /// In-kernel controller: whether the vCPU is halted with interrupts
    /// off (KVM_GET_MP_STATE says HALTED and RFLAGS.IF is clear), which no
    /// interrupt but an NMI can end: the run's end, as a HLT exit is
    /// without the in-kernel controller.
    pub fn halted_for_good(&self) -> Result<bool, KvmError> {
        let mp = self
            .fd()
            .get_mp_state()
            .map_err(KvmError::ioctl("KVM_GET_MP_STATE"))?;
        if mp.mp_state != k::KVM_MP_STATE_HALTED {
            return Ok(false);
        }
        Ok(self.kvm_regs()?.rflags & IF == 0)
    }
}

/// The highest vector whose bit is set in a local APIC register page's ISR
/// (eight 32-bit words at 0x100, 0x110, ... 0x170).
pub fn highest_in_service(regs: &[u8]) -> Option<u8> {
    (0..8usize).rev().find_map(|i| {
        let at = 0x100 + 0x10 * i;
        let w = regs.get(at..at + 4)?;
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        (word != 0).then(|| (i as u32 * 32 + 31 - word.leading_zeros()) as u8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_isr_bit_is_the_vector_in_service() {
        let mut r = [0u8; 1024];
        assert_eq!(highest_in_service(&r), None);
        r[0x110] = 1; // vector 32
        assert_eq!(highest_in_service(&r), Some(0x20));
        r[0x130 + 2] = 1; // word 3, bit 16: vector 0x70
        assert_eq!(highest_in_service(&r), Some(0x70));
        r[0x170 + 3] = 0x80; // vector 255
        assert_eq!(highest_in_service(&r), Some(0xff));
    }
}
