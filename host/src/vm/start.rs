//! What guest memory holds before the first instruction, by CPU mode: the
//! GDT, the host's exception tables (IVT, 32-bit or 64-bit IDT) and the
//! page tables.

use crate::config::{IrqChip, VmConfig};
use crate::kvm::{KvmError, Vcpu, VmObject};
use crate::trace::Tracer;
use crate::x86::{CpuMode, exception, gdt, paging};
use hypercall_abi::layout;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Writes what a vCPU starting in `mode` needs in guest memory: the GDT,
/// the host's exception tables and, with paging, the host's page tables
/// (real mode: the IVT and its stubs only); with `apic`, the in-kernel
/// controller's pages are mapped too.
pub(super) fn write_start_tables(
    mem: &GuestMemoryMmap,
    mode: CpuMode,
    size: u64,
    vcpus: u64,
    apic: bool,
) -> Result<(), KvmError> {
    let werr = |e: paging::PagingError| KvmError::Write(e.to_string());
    let merr = |e: vm_memory::GuestMemoryError| KvmError::Write(e.to_string());
    if mode == CpuMode::Real {
        return exception::write_real_ivt(mem).map_err(merr);
    }
    for (i, d) in gdt::entries(mode == CpuMode::Long).iter().enumerate() {
        mem.write_obj(*d, GuestAddress(layout::GDT + 8 * i as u64))
            .map_err(|e| KvmError::Write(e.to_string()))?;
    }
    match mode {
        CpuMode::Long => {
            exception::write_host_idt(mem, vcpus).map_err(|e| KvmError::Write(e.to_string()))?;
            paging::build_identity_map(mem, size, vcpus, apic).map_err(werr)?
        }
        CpuMode::Paged32 => {
            exception::write_idt32(mem).map_err(merr)?;
            paging::build_paged32(mem, size).map_err(werr)?
        }
        CpuMode::Protected => {
            exception::write_idt32(mem).map_err(merr)?;
            Vec::new()
        }
        CpuMode::Real => Vec::new(),
    };
    Ok(())
}

/// The start state of a new VM: the mode's tables in memory, every
/// vCPU in the mode (vCPUs 1.. runnable with the in-kernel APICs).
pub(super) fn start_state(
    cfg: &VmConfig,
    vcpus: &[Vcpu],
    vm: &VmObject,
    irqchip: IrqChip,
    t: &mut Option<Tracer>,
) -> Result<(), KvmError> {
    let sregs = cfg.mode.start_sregs(&vcpus[0].reset_sregs(t)?);
    write_start_tables(
        vm.memory(),
        cfg.mode,
        cfg.mem_size,
        u64::from(cfg.vcpus),
        irqchip == IrqChip::Kernel,
    )?;
    // Every vCPU starts in the same mode with the same tables; in long
    // mode each has the host's IDT and a TSS of its own (its exception
    // stack), until the guest loads its own.
    for (id, vcpu) in (0..).zip(vcpus) {
        let mut s = sregs;
        match cfg.mode {
            CpuMode::Long => exception::use_host_idt(&mut s, id, u64::from(cfg.vcpus)),
            CpuMode::Protected | CpuMode::Paged32 => exception::use_idt32(&mut s),
            // the IVT at 0 is the reset state's IDTR (base 0, limit 0x3ff)
            CpuMode::Real => {}
        }
        vcpu.set_start_sregs(cfg.mode, &s, t)?;
        if id > 0 && irqchip == IrqChip::Kernel {
            vcpu.make_runnable(t)?;
        }
    }
    Ok(())
}
