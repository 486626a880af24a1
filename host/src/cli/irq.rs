//! The command line's interrupt words: `--irqchip`, `--inject-every`,
//! `--raise-with`.

use clap::ValueEnum;
use host::size;

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum IrqChipArg {
    /// The host injects vectors with KVM_INTERRUPT (HLT exits to the host).
    User,
    /// KVM's in-kernel PIC, IOAPIC, local APICs and PIT (HLT sleeps in KVM).
    Kernel,
    /// No interrupt controller.
    None,
}

impl From<IrqChipArg> for host::config::IrqChip {
    fn from(a: IrqChipArg) -> Self {
        match a {
            IrqChipArg::User => host::config::IrqChip::User,
            IrqChipArg::Kernel => host::config::IrqChip::Kernel,
            IrqChipArg::None => host::config::IrqChip::None,
        }
    }
}

/// `--raise-with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RaiseWith {
    /// KVM_IRQFD: a write to an eventfd bound to the line.
    Irqfd,
    /// KVM_IRQ_LINE: a VM ioctl that sets the line's level.
    IrqLine,
}

/// `--inject-every PERIOD[:N][@VCPU]` (N decimal or 0x hex).
pub fn parse_inject(s: &str) -> Result<host::config::Inject, String> {
    let (s, vcpu) = match s.split_once('@') {
        Some((s, v)) => (
            s,
            v.parse::<u32>()
                .map_err(|_| format!("{v:?} after @ is not a vCPU number"))?,
        ),
        None => (s, 0),
    };
    let (p, n) = match s.split_once(':') {
        Some((p, n)) => {
            let v = match n.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => n.parse(),
            }
            .map_err(|_| format!("{n:?} is not a vector or IRQ number"))?;
            if v > 255 {
                return Err(format!("{n} is past 255, the last vector"));
            }
            (p, v)
        }
        None => (s, 0x20),
    };
    let period = size::parse_duration(p).map_err(|e| e.to_string())?;
    if period < host::config::MIN_PERIOD {
        return Err(format!(
            "{p} is shorter than the {:?} this host can serve",
            host::config::MIN_PERIOD
        ));
    }
    Ok(host::config::Inject {
        period,
        n,
        vcpu,
        irq_line_ioctl: false,
    })
}

/// `--inject-every` with how `--raise-with` says to raise its line.
pub fn inject_with(
    i: Option<host::config::Inject>,
    how: RaiseWith,
) -> Option<host::config::Inject> {
    i.map(|i| host::config::Inject {
        irq_line_ioctl: how == RaiseWith::IrqLine,
        ..i
    })
}
