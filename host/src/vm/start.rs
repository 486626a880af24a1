//! What guest memory holds before the first instruction, by CPU mode: the
//! GDT, the host's exception tables (IVT, 32-bit or 64-bit IDT) and the
//! page tables.

use crate::kvm::KvmError;
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
