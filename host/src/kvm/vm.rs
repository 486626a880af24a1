//! The KVM VM: created, given its TSS area, its guest RAM and the memory
//! slot that maps it at GPA 0.

use super::error::KvmError;
use super::system::System;
use crate::trace::{Call, Tracer, record};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use std::os::fd::AsRawFd;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestRegionMmap};

/// Where KVM's three TSS pages go (needed by VMX without unrestricted guest):
/// above guest RAM, which ends at or below `layout::MAX_MEM`.
pub const TSS_ADDR: u64 = 0xfffb_d000;

/// `size` bytes of `file` from `offset`, mapped MAP_PRIVATE as guest RAM.
fn image_memory(file: &std::fs::File, offset: u64, size: u64) -> Result<GuestMemoryMmap, KvmError> {
    let err = |e: String| KvmError::Alloc(size, e);
    let f = file.try_clone().map_err(|e| err(e.to_string()))?;
    let region = MmapRegionBuilder::new(size as usize)
        .with_file_offset(FileOffset::new(f, offset))
        .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
        .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let region = GuestRegionMmap::new(region, GuestAddress(0))
        .ok_or_else(|| err("the image wraps around the address space".into()))?;
    GuestMemoryMmap::from_regions(vec![region]).map_err(|e| err(e.to_string()))
}

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
        VmObject::create_with(sys, size, None, trace)
    }

    /// Like `create`; with `image` (a file and an offset in it) guest RAM
    /// is that file's `size` bytes there, mapped MAP_PRIVATE: its pages
    /// come from the file when first touched (shared with every other
    /// mapping of it, the page cache's), and the guest's writes stay in
    /// this process. A snapshot's memory image (`crate::snapshot`).
    pub fn create_with(
        sys: &System,
        size: u64,
        image: Option<(&std::fs::File, u64)>,
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
        let mem = match image {
            None => GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)])
                .map_err(|e| KvmError::Alloc(size, e.to_string()))?,
            Some((file, offset)) => image_memory(file, offset, size)?,
        };
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| KvmError::Alloc(size, e.to_string()))?;
        record(trace, || {
            Call::syscall(
                "mmap",
                match image {
                    None => format!(
                        "{size:#x} bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE"
                    ),
                    Some((f, off)) => format!(
                        "{size:#x} bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, snapshot fd {} at {off:#x}",
                        std::os::fd::AsRawFd::as_raw_fd(f)
                    ),
                },
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
