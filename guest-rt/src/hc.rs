//! Typed hypercall wrappers: one port-I/O instruction (one VM exit) each.
//! Ports, layouts and status codes come from `hypercall-abi`.

use core::ffi::CStr;
use core::ptr::addr_of_mut;
use hypercall_abi::{GvaToHvaArgs, HcStatus, Hypercall, PrintStrArgs};

#[inline(always)]
fn out8(port: u16, v: u8) {
    // SAFETY: port I/O only causes a VM exit to the host; no guest memory is touched.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

#[inline(always)]
fn out32(port: u16, v: u32) {
    // SAFETY: as in `out8`. The host may write guest memory through a block
    // pointer in `v`, so this is not `nomem`.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags))
    }
}

#[inline(always)]
fn in32(port: u16) -> u32 {
    let v: u32;
    // SAFETY: port I/O only causes a VM exit; the host answers in EAX (and
    // may write the result page, hence not `nomem`).
    unsafe {
        core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags))
    }
    v
}

/// The guest-physical address of a guest object. Guests run identity-mapped
/// below 4 GiB, so the pointer value is the address.
#[inline(always)]
fn gpa<T>(p: *const T) -> u32 {
    p as usize as u32
}

fn status(raw: i32) -> Result<(), HcStatus> {
    match HcStatus::from_raw(raw) {
        Some(HcStatus::Ok) => Ok(()),
        Some(e) => Err(e),
        None => Err(HcStatus::BadPointer),
    }
}

/// `print8bit`: one byte to the host's stdout.
pub fn print8bit(b: u8) {
    out8(Hypercall::Print8bit.port(), b)
}

/// `print32bit`: the host prints `v` in decimal and one "\n".
pub fn print32bit(v: u32) {
    out32(Hypercall::Print32bit.port(), v)
}

/// `host_cpuid`: the host CPU running this vCPU at the moment of the call.
pub fn host_cpuid() -> u32 {
    in32(Hypercall::HostCpuid.port())
}

/// `num_exits`: VM exits so far, this one included.
pub fn num_exits() -> u32 {
    in32(Hypercall::NumExits.port())
}

/// `print_str` on a guest-physical address: returns the bytes printed.
/// For programs that need to pass an arbitrary (even bad) address.
pub fn print_str_at(addr: u64) -> Result<u32, HcStatus> {
    let mut args = PrintStrArgs {
        addr,
        len: 0,
        status: HcStatus::BadPointer as i32,
    };
    out32(Hypercall::PrintStr.port(), gpa(addr_of_mut!(args)));
    // SAFETY: `args` is a live local; the host wrote it during the exit.
    let args = unsafe { core::ptr::read_volatile(&args) };
    status(args.status).map(|()| args.len)
}

/// `print_str`: the host prints `s` as is. Returns the bytes printed.
pub fn print_str(s: &CStr) -> Result<u32, HcStatus> {
    print_str_at(s.as_ptr() as usize as u64)
}

/// `num_exits_by_type`: guest-physical address of the NUL-terminated
/// "IO in: x\nIO out: y\n" the host wrote into its result page.
pub fn num_exits_by_type() -> u64 {
    u64::from(in32(Hypercall::NumExitsByType.port()))
}

/// `gva_to_hva`: the host virtual address behind `gva`, or
/// `Err(HcStatus::InvalidGva)` (the host prints "Invalid GVA").
pub fn gva_to_hva(gva: u64) -> Result<u64, HcStatus> {
    let mut args = GvaToHvaArgs {
        gva,
        hva: 0,
        status: HcStatus::BadPointer as i32,
        reserved: 0,
    };
    out32(Hypercall::GvaToHva.port(), gpa(addr_of_mut!(args)));
    // SAFETY: as in `print_str_at`.
    let args = unsafe { core::ptr::read_volatile(&args) };
    status(args.status).map(|()| args.hva)
}

/// `gva_to_hva` with the argument block at an arbitrary guest-physical
/// address, for programs that test the host's checks. Results, if the block
/// is inside guest memory, are in the block.
pub fn gva_to_hva_raw(block: u32) {
    out32(Hypercall::GvaToHva.port(), block);
}
