//! The interrupt state of a vCPU and its VM, as `host layout` and gdb's
//! `monitor irq` show it: the IDT or IVT entries in use, the local APIC
//! (base and mode, timer, IRR/ISR), the PICs, the IOAPIC routing and the
//! PIT. Decoding only: the caller reads the registers (KVM_GET_SREGS,
//! KVM_GET_LAPIC, KVM_GET_IRQCHIP, KVM_GET_PIT2) and the table's memory.

use crate::config::IrqChip;
use crate::kvm::ChipState;
use crate::x86::translate::{Paging, read_linear};
use hypercall_abi::layout;
use serde::Serialize;
use vm_memory::GuestMemoryMmap;

/// Consecutive vectors whose handlers lie `stride` bytes apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateRun {
    /// First vector.
    pub first: u8,
    /// Last vector.
    pub last: u8,
    /// The first vector's handler (a linear address; real mode: seg:off
    /// as seg * 16 + off).
    #[serde(serialize_with = "crate::size::hex")]
    pub target: u64,
    /// Bytes between consecutive handlers (0: a single vector).
    pub stride: u64,
    /// Whose handlers: "the host's exception stubs", or empty.
    pub whose: &'static str,
}

/// The interrupt descriptor table (or real mode's vector table) in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// "IDT" or "IVT".
    pub kind: &'static str,
    /// IDTR base.
    #[serde(serialize_with = "crate::size::hex")]
    pub base: u64,
    /// IDTR limit.
    pub limit: u16,
    /// The present entries, grouped.
    pub runs: Vec<GateRun>,
}

/// The local APIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lapic {
    /// IA32_APIC_BASE.
    #[serde(serialize_with = "crate::size::hex")]
    pub apic_base: u64,
    /// "xAPIC", "x2APIC" or "disabled".
    pub mode: &'static str,
    /// APIC id.
    pub id: u32,
    /// Spurious vector register: software-enabled, and its vector.
    pub enabled: bool,
    /// The spurious vector.
    pub spurious: u8,
    /// Task priority.
    pub tpr: u32,
    /// Timer: vector, mode, masked, initial count, divide.
    pub timer_vector: u8,
    /// "one-shot", "periodic" or "TSC-deadline".
    pub timer_mode: &'static str,
    /// LVT timer mask bit.
    pub timer_masked: bool,
    /// Initial count.
    pub timer_initial: u32,
    /// Divide configuration as a divisor.
    pub timer_divide: u32,
    /// Requested vectors.
    pub irr: Vec<u8>,
    /// In-service vectors.
    pub isr: Vec<u8>,
}

/// One 8259.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pic {
    /// Vector of IRQ 0 (or 8).
    pub base: u8,
    /// Interrupt mask register.
    pub imr: u8,
    /// Requests.
    pub irr: u8,
    /// In service.
    pub isr: u8,
}

/// An IOAPIC pin that is not masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The pin (GSI).
    pub pin: u8,
    /// Its vector.
    pub vector: u8,
    /// Destination APIC id (physical) or set (logical).
    pub dest: u8,
    /// Level-triggered.
    pub level: bool,
}

/// Everything about interrupts one view shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IrqView {
    /// The controller.
    pub chip: IrqChip,
    /// The table in use (None: its memory could not be read).
    pub table: Option<Table>,
    /// In-kernel controller: the local APIC.
    pub lapic: Option<Lapic>,
    /// In-kernel controller: master and slave PIC.
    pub pic: Option<[Pic; 2]>,
    /// In-kernel controller: IOAPIC base and the pins not masked.
    pub ioapic: Option<(u64, Vec<Route>)>,
    /// In-kernel controller: PIT channel 0 mode and count.
    pub pit0: Option<(u8, u32)>,
}

/// vCPU 0's interrupt state in `vm` now (the IDT or IVT in use and, with
/// the in-kernel controller, its local APIC and the VM's PICs, IOAPIC and
/// PIT).
pub fn of_vm(vm: &crate::vm::Vm) -> Result<IrqView, crate::kvm::KvmError> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let s = vm
        .vcpu()
        .sregs("interrupt state: IDTR, APIC base", &mut None)?;
    let (lapic, chips) = match vm.irqchip() {
        IrqChip::Kernel => (
            Some(vm.vcpu().lapic_regs()?),
            // SAFETY: the VM's fd stays open while `vm` lives, which
            // outlasts this borrow.
            Some(ChipState::read(unsafe {
                BorrowedFd::borrow_raw(vm.vm_object().fd().as_raw_fd())
            })?),
        ),
        _ => (None, None),
    };
    Ok(view(
        vm.irqchip(),
        &s,
        vm.memory(),
        lapic.as_ref(),
        chips.as_ref(),
    ))
}

/// The view of a vCPU with special registers `s`, guest memory `mem`,
/// and, with the in-kernel controller, its APIC page and the VM's chips.
pub fn view(
    chip: IrqChip,
    s: &kvm_bindings::kvm_sregs,
    mem: &GuestMemoryMmap,
    lapic_regs: Option<&[u8; 1024]>,
    chips: Option<&ChipState>,
) -> IrqView {
    IrqView {
        chip,
        table: table(s, mem),
        lapic: lapic_regs.map(|r| lapic(s.apic_base, r)),
        pic: chips.map(|c| {
            c.pic.map(|p| Pic {
                base: p.irq_base,
                imr: p.imr,
                irr: p.irr,
                isr: p.isr,
            })
        }),
        ioapic: chips.map(|c| (c.ioapic.base_address, routes(&c.ioapic))),
        pit0: chips.map(|c| (c.pit.channels[0].mode, c.pit.channels[0].count)),
    }
}

fn table(s: &kvm_bindings::kvm_sregs, mem: &GuestMemoryMmap) -> Option<Table> {
    let (base, limit) = (s.idt.base, s.idt.limit);
    let real = s.cr0 & 1 == 0;
    let long = s.efer & (1 << 10) != 0;
    let size: u64 = if real {
        4
    } else if long {
        16
    } else {
        8
    };
    let n = ((u64::from(limit) + 1) / size).min(256);
    let mut bytes = vec![0u8; (n * size) as usize];
    let p = Paging::from_sregs(s);
    if read_linear(mem, &p, base, &mut bytes) != bytes.len() {
        return None;
    }
    let gates = bytes.chunks(size as usize).map(|g| {
        let w = |i: usize| u64::from(u16::from_le_bytes([g[i], g[i + 1]]));
        match size {
            4 => Some(w(2) * 16 + w(0)),
            _ if g[5] & 0x80 == 0 => None,
            8 => Some(w(0) | w(6) << 16),
            _ => Some(
                w(0) | w(6) << 16 | u64::from(u32::from_le_bytes([g[8], g[9], g[10], g[11]])) << 32,
            ),
        }
    });
    let host = if real {
        layout::REAL_STUBS..layout::REAL_STUBS_END
    } else {
        layout::HOST_IDT..layout::HOST_IDT_END
    };
    Some(Table {
        kind: if real { "IVT" } else { "IDT" },
        base,
        limit,
        runs: runs(gates, &host),
    })
}

/// Groups present gates into runs of evenly spaced handlers.
fn runs(gates: impl Iterator<Item = Option<u64>>, host: &std::ops::Range<u64>) -> Vec<GateRun> {
    let mut out: Vec<GateRun> = Vec::new();
    for (v, t) in (0..=255u8).zip(gates) {
        let Some(t) = t else { continue };
        let whose = if host.contains(&t) {
            "the host's exception stubs"
        } else {
            ""
        };
        if let Some(r) = out.last_mut()
            && r.last.checked_add(1) == Some(v)
            && r.whose == whose
        {
            let next = r.target + r.stride * u64::from(v - r.first);
            // handlers a stub apart (at most 64 bytes) make a run
            if r.first == r.last && t > r.target && t - r.target <= 64 {
                r.stride = t - r.target;
                r.last = v;
                continue;
            }
            if r.stride > 0 && t == next {
                r.last = v;
                continue;
            }
        }
        out.push(GateRun {
            first: v,
            last: v,
            target: t,
            stride: 0,
            whose,
        });
    }
    out
}

fn reg(r: &[u8; 1024], at: usize) -> u32 {
    u32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]])
}

fn vectors(r: &[u8; 1024], base: usize) -> Vec<u8> {
    (0..256usize)
        .filter(|v| reg(r, base + v / 32 * 0x10) >> (v % 32) & 1 != 0)
        .map(|v| v as u8)
        .collect()
}

fn lapic(apic_base: u64, r: &[u8; 1024]) -> Lapic {
    let lvt = reg(r, 0x320);
    let div = reg(r, 0x3e0);
    let code = (div & 3) | (div >> 1 & 4);
    Lapic {
        apic_base,
        mode: match (apic_base >> 10) & 3 {
            2 => "xAPIC",
            3 => "x2APIC",
            _ => "disabled",
        },
        id: reg(r, 0x20) >> 24,
        enabled: reg(r, 0xf0) & 0x100 != 0,
        spurious: reg(r, 0xf0) as u8,
        tpr: reg(r, 0x80),
        timer_vector: lvt as u8,
        timer_mode: match lvt >> 17 & 3 {
            0 => "one-shot",
            1 => "periodic",
            _ => "TSC-deadline",
        },
        timer_masked: lvt & 1 << 16 != 0,
        timer_initial: reg(r, 0x380),
        timer_divide: if code == 7 { 1 } else { 2 << code },
        irr: vectors(r, 0x200),
        isr: vectors(r, 0x100),
    }
}

fn routes(io: &kvm_bindings::kvm_ioapic_state) -> Vec<Route> {
    (0..24u8)
        .filter_map(|pin| {
            // SAFETY: every bit pattern of the union is a valid u64.
            let e = unsafe { io.redirtbl[usize::from(pin)].bits };
            (e & 1 << 16 == 0).then_some(Route {
                pin,
                vector: e as u8,
                dest: (e >> 56) as u8,
                level: e & 1 << 15 != 0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spaced_handlers_group_into_runs() {
        let host = 0xa000..0xb000;
        let mut gates: Vec<Option<u64>> = (0..32).map(|v| Some(0xa200 + 8 * v)).collect();
        gates.extend([None, Some(0x10_1000)]);
        gates.extend((34..256).map(|v| Some(0x20_0000 + 16 * v)));
        let r = runs(gates.into_iter(), &host);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!((r[0].first, r[0].last, r[0].stride), (0, 31, 8));
        assert_eq!(r[0].whose, "the host's exception stubs");
        assert_eq!((r[1].first, r[1].last, r[1].target), (33, 33, 0x10_1000));
        assert_eq!((r[2].first, r[2].last, r[2].stride), (34, 255, 16));
    }

    #[test]
    fn the_apic_page_decodes() {
        let mut r = [0u8; 1024];
        r[0x23] = 1; // id 1
        r[0xf0] = 0xff;
        r[0xf1] = 1; // enabled, spurious 0xff
        r[0x320..0x324].copy_from_slice(&(0x30u32 | 1 << 17).to_le_bytes());
        r[0x380..0x384].copy_from_slice(&2_000_000u32.to_le_bytes());
        r[0x3e0] = 0xb; // divide by 1
        r[0x112] = 1; // ISR vector 0x30
        let l = lapic(0xfee0_0900, &r);
        assert_eq!(
            (l.id, l.enabled, l.spurious, l.mode),
            (1, true, 0xff, "xAPIC")
        );
        assert_eq!(
            (l.timer_vector, l.timer_mode, l.timer_initial),
            (0x30, "periodic", 2_000_000)
        );
        assert_eq!(l.timer_divide, 1);
        assert_eq!(
            (l.isr.as_slice(), l.irr.as_slice()),
            (&[0x30u8][..], &[][..])
        );
    }
}
