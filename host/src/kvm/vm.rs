//! The KVM VM: created, given its TSS area, its guest RAM and the memory
//! slot that maps it at GPA 0.

use super::error::KvmError;
use super::system::System;
use crate::trace::{Call, Tracer, record};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use std::os::fd::AsRawFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// Where KVM's three TSS pages go (needed by VMX without unrestricted guest):
/// above guest RAM, which ends at or below `layout::MAX_MEM`.
pub const TSS_ADDR: u64 = 0xfffb_d000;

/// A VM with its memory.
pub struct VmObject {
    // Field order is drop order: the VM fd before the memory it maps.
    fd: VmFd,
    mem: GuestMemoryMmap,
    /// Size of each vCPU's kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE).
    run_size: usize,
}

impl VmObject {
    /// Creates a VM with `size` bytes of RAM at GPA 0 and its TSS area.
    pub fn create(
        sys: &System,
        size: u64,
        trace: &mut Option<Tracer>,
    ) -> Result<VmObject, KvmError> {
        let fd = loop {
            match sys.kvm().create_vm() {
                Err(e) if e.errno() == libc::EINTR => continue,
                r => break r.map_err(KvmError::ioctl("KVM_CREATE_VM"))?,
            }
        };
        // kvm-ioctls asked KVM_GET_VCPU_MMAP_SIZE inside create_vm
        let run_size = fd.run_size();
        record(trace, || {
            Call::ioctl(
                sys.target(),
                "KVM_CREATE_VM",
                "type 0".into(),
                fd.as_raw_fd().to_string(),
                "create an empty VM: no memory, no vCPU",
            )
        });
        record(trace, || {
            Call::ioctl(
                sys.target(),
                "KVM_GET_VCPU_MMAP_SIZE",
                String::new(),
                run_size.to_string(),
                "size of the kvm_run area each vCPU shares with us (made by kvm-ioctls inside create_vm)",
            )
        });
        let target = || format!("vm {}", fd.as_raw_fd());
        fd.set_tss_address(TSS_ADDR as usize)
            .map_err(KvmError::ioctl("KVM_SET_TSS_ADDR"))?;
        record(trace, || {
            Call::ioctl(
                target(),
                "KVM_SET_TSS_ADDR",
                format!("{TSS_ADDR:#x}"),
                "0".into(),
                "3 pages above guest RAM for the TSS that Intel VMX needs",
            )
        });

        // vm-memory maps anonymous memory MAP_PRIVATE | MAP_NORESERVE.
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
            .map_err(|e| KvmError::Alloc(size, e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| KvmError::Alloc(size, e.to_string()))?;
        record(trace, || {
            Call::syscall(
                "mmap",
                format!(
                    "{size:#x} bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE"
                ),
                format!("{host:p}"),
                "allocate the guest's RAM in our address space",
            )
        });
        // No MADV_MERGEABLE: with KSM off (the usual default) it only
        // registers the process with KSM, a system call and ~12 µs per run
        // (issue 19), and a guest's touched pages are few.
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: size,
            userspace_addr: host as u64,
        };
        // SAFETY: the region is exactly the mapping owned by `mem`, which
        // outlives the VM fd (field order in `VmObject`: the fd drops first).
        unsafe { fd.set_user_memory_region(region) }
            .map_err(KvmError::ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        record(trace, || {
            Call::ioctl(
                target(),
                "KVM_SET_USER_MEMORY_REGION",
                format!("slot 0, GPA 0x0, size {size:#x}, HVA {host:p}"),
                "0".into(),
                "make that memory the guest's physical memory from GPA 0",
            )
        });
        Ok(VmObject { fd, mem, run_size })
    }

    /// Maps `len` bytes of `file` at `offset` over guest RAM at `gpa`,
    /// MAP_PRIVATE: pages come from the file when first touched, and the
    /// guest's writes stay in this process (a restore from a snapshot).
    /// Before any vCPU runs.
    pub fn map_file(
        &self,
        gpa: u64,
        len: u64,
        file: &std::fs::File,
        offset: u64,
    ) -> Result<(), KvmError> {
        let size = self.mem.iter().map(|r| r.len()).sum::<u64>();
        if gpa.checked_add(len).is_none_or(|end| end > size) {
            return Err(KvmError::Alloc(
                len,
                format!("{gpa:#x} + {len:#x} is outside guest RAM"),
            ));
        }
        let host = self
            .mem
            .get_host_address(GuestAddress(gpa))
            .map_err(|e| KvmError::Alloc(len, e.to_string()))?;
        // SAFETY: [host, host + len) lies inside guest RAM's mapping, owned
        // by `self.mem` (checked above); MAP_FIXED replaces those pages
        // with the file's, same protection and privacy, before any vCPU
        // ran and while no Rust reference into guest memory is alive (it
        // is only reached through vm-memory's volatile accessors). KVM's
        // memory slot follows the new pages (MMU notifiers).
        let p = unsafe {
            libc::mmap(
                host.cast(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                std::os::fd::AsRawFd::as_raw_fd(file),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(KvmError::Alloc(
                len,
                std::io::Error::last_os_error().to_string(),
            ));
        }
        Ok(())
    }

    /// The kvm-ioctls handle.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Guest memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Size of each vCPU's kvm_run mapping.
    pub fn run_size(&self) -> usize {
        self.run_size
    }
}
