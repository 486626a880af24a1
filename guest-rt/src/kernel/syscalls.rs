//! System calls: how each came in, and what each does.

use super::boot::*;
use crate::hc;
use crate::sys::{errno, nr};

/// `write`: copies the user buffer in chunks into a kernel buffer and
/// prints each with one `print_str`.
pub(super) fn sys_write(fd: u64, ptr: u64, len: u64) -> i64 {
    if fd != 1 && fd != 2 {
        return -errno::EBADF;
    }
    if !check_user(ptr, len) {
        return -errno::EFAULT;
    }
    // SAFETY: [ptr, ptr + len) lies in the user-accessible image (checked),
    // which is identity mapped and readable at ring 0.
    let bytes = unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) };
    let mut c = crate::Console::new();
    for &b in bytes {
        c.push(b);
    }
    c.flush();
    len as i64
}

/// Ways a system call enters the kernel (indexes of [`syscall_entries`]).
/// SYSCALL, straight to LSTAR at ring 0.
pub const VIA_SYSCALL: u64 = 0;
/// `int 0x80` through its DPL-3 gate.
pub const VIA_INT80: u64 = 1;
/// SYSCALL that stayed at CPL3, forwarded by the entry through `int 0x81`.
pub const VIA_FORWARD: u64 = 2;
/// `int 0x80` that raised #UD (kvm-pvm), served by the #UD handler.
pub const VIA_INT80_UD: u64 = 3;
/// SYSCALL forwarded through `int 0x81` that raised #UD (kvm-pvm).
pub const VIA_FORWARD_UD: u64 = 4;

#[unsafe(link_section = ".kvmwb.kernel")]
pub(super) static ENTRIES: Global<[u64; 5]> = Global::new([0; 5]);

/// System calls so far, by the way they entered (`VIA_*`).
pub fn syscall_entries() -> [u64; 5] {
    // SAFETY: one vCPU; read at ring 0 between user programs.
    unsafe { *ENTRIES.get() }
}

/// One line on how system calls entered, when any did not come straight
/// in through SYSCALL: on kvm-pvm SYSCALL stays at CPL3 and `int n` at
/// CPL3 raises #UD, so every call arrives through the #UD handler.
pub fn report_entries() {
    let e = syscall_entries();
    let total: u64 = e.iter().sum();
    if total == e[VIA_SYSCALL as usize] {
        // SAFETY: a kernel global, written only by the SYSCALL entry at
        // ring 0; read here at ring 0 between user programs.
        let sysrets = unsafe { core::ptr::read_volatile(&raw const KVMWB_SYSRETS) };
        if total > 0 {
            crate::println!(
                "kernel: {total} system calls, all by SYSCALL; {sysrets} went back by SYSRETQ (exit does not return)"
            );
        }
        return;
    }
    const WAYS: [&str; 5] = [
        "SYSCALL",
        "int 0x80",
        "SYSCALL forwarded to int 0x81 (SYSCALL stayed at CPL3)",
        "int 0x80 served from #UD (int n at CPL3 raised #UD)",
        "SYSCALL forwarded to int 0x81, served from #UD (SYSCALL stayed at CPL3, int n raised #UD)",
    ];
    crate::print!("kernel: {total} system calls:");
    let mut sep = " ";
    for (n, way) in e.iter().zip(WAYS) {
        if *n > 0 {
            crate::print!("{sep}{n} by {way}");
            sep = ", ";
        }
    }
    crate::println!();
}

/// Called by the syscall entries with the user's RAX, RDI, RSI, RDX and
/// the way in (`VIA_*`).
#[unsafe(no_mangle)]
pub(super) extern "C" fn kvmwb_syscall(nr: u64, a1: u64, a2: u64, a3: u64, via: u64) -> i64 {
    // SAFETY: one vCPU, ring 0.
    unsafe { (*ENTRIES.get())[(via as usize).min(4)] += 1 };
    match nr {
        nr::WRITE => sys_write(a1, a2, a3),
        // the syscall path runs on the kernel stack below KVMWB_KERNEL_RSP,
        // which tasks::end leaves
        nr::EXIT => super::tasks::end(a1 as i32 as i64),
        nr::HOST_CPUID => i64::from(hc::host_cpuid()),
        _ => -errno::ENOSYS,
    }
}

// Run in VMs: `cargo test -p guest-rt` (guest_rt::testing).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::test;

    #[test]
    fn user_pointers_are_checked_with_their_length() {
        let (start, _, end) = user_range();
        assert!(check_user(start, 0));
        assert!(check_user(start, end - start));
        assert!(
            !check_user(start, end - start + 1),
            "one byte past the image"
        );
        assert!(!check_user(start - 1, 1), "below the image");
        assert!(!check_user(end - 1, u64::MAX), "length overflows");
        assert!(!check_user(0x3000, 8), "the host's page tables");
    }

    #[test]
    fn write_refuses_bad_descriptors_and_kernel_pointers() {
        static TEXT: [u8; 3] = *b"ok\n";
        let p = TEXT.as_ptr() as u64;
        assert_eq!(sys_write(3, p, 3), -errno::EBADF);
        assert_eq!(sys_write(1, 0x3000, 8), -errno::EFAULT);
        assert_eq!(sys_write(1, p, u64::MAX), -errno::EFAULT);
        assert_eq!(sys_write(1, p, 3), 3);
    }
}
