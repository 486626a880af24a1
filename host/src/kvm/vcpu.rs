//! One KVM vCPU: created with its CPUID, put in a CPU mode and at an entry,
//! given a signal mask, run, and read (registers, `kvm_run`).

use super::error::KvmError;
use super::fault::Fault;
use super::vm::VmObject;
use crate::diag::HostError;
use crate::stats::ExitReason;
use crate::trace::{Call, Tracer, record};
use crate::x86::gdt::{CODE_SELECTOR, DATA_SELECTOR};
use crate::x86::{CpuMode, Paging, Regs};
use kvm_bindings::{self as k, CpuId, kvm_regs, kvm_sregs};
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::os::fd::AsRawFd;

/// `_IOW(KVMIO, 0x8b, struct kvm_signal_mask)`; kvm-ioctls has no wrapper.
const KVM_SET_SIGNAL_MASK: libc::c_ulong = 0x4004_ae8b;

/// Whether a failed KVM_RUN was a kick (a signal: EINTR, or EAGAIN), which
/// the loop answers by looking at its stop requests, not an error.
pub fn is_kick(e: &kvm_ioctls::Error) -> bool {
    e.errno() == libc::EINTR || e.errno() == libc::EAGAIN
}

/// A vCPU.
pub struct Vcpu {
    fd: VcpuFd,
    run_size: usize,
}

impl Vcpu {
    /// Creates vCPU `id` of `vm`, in its reset state.
    pub fn create(vm: &VmObject, id: u32, trace: &mut Option<Tracer>) -> Result<Vcpu, KvmError> {
        let fd = vm
            .fd()
            .create_vcpu(u64::from(id))
            .map_err(KvmError::ioctl("KVM_CREATE_VCPU"))?;
        let mut v = Vcpu {
            fd,
            run_size: vm.run_size(),
        };
        if trace.is_some() {
            let vm_target = format!("vm {}", vm.fd().as_raw_fd());
            let run = v.kvm_run_addr();
            let (fd, size) = (v.fd.as_raw_fd(), v.run_size);
            record(trace, || {
                Call::ioctl(
                    vm_target,
                    "KVM_CREATE_VCPU",
                    format!("id {id}"),
                    fd.to_string(),
                    "create a vCPU in its reset state",
                )
            });
            record(trace, || {
                Call::syscall(
                    "mmap",
                    format!("{size:#x} bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu fd {fd}"),
                    format!("{run:#x}"),
                    "map the vCPU's kvm_run area (made by kvm-ioctls inside create_vcpu)",
                )
            });
        }
        Ok(v)
    }

    fn target(&self) -> String {
        format!("vcpu {}", self.fd.as_raw_fd())
    }

    /// The features the guest sees, with vCPU `id`'s APIC id in `cpuid`.
    pub fn set_cpuid(
        &self,
        cpuid: &CpuId,
        id: u32,
        trace: &mut Option<Tracer>,
    ) -> Result<(), KvmError> {
        self.fd
            .set_cpuid2(cpuid)
            .map_err(KvmError::ioctl("KVM_SET_CPUID2"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_SET_CPUID2",
                format!("{} entries, APIC id {id}", cpuid.as_slice().len()),
                "0".into(),
                "the features the guest sees (SYSCALL, NX, ...) and this vCPU's APIC id",
            )
        });
        Ok(())
    }

    /// The reset state's special registers.
    pub fn reset_sregs(&self, trace: &mut Option<Tracer>) -> Result<kvm_sregs, KvmError> {
        self.get_sregs(
            trace,
            "read the reset state's segments and control registers",
            |s| format!("0, CS base {:#x} CR0 {:#x}", s.cs.base, s.cr0),
        )
    }

    /// KVM_GET_SREGS, recorded with what `shown` picks out of the result.
    fn get_sregs(
        &self,
        trace: &mut Option<Tracer>,
        purpose: &'static str,
        shown: impl FnOnce(&kvm_sregs) -> String,
    ) -> Result<kvm_sregs, KvmError> {
        let s = self
            .fd
            .get_sregs()
            .map_err(KvmError::ioctl("KVM_GET_SREGS"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_GET_SREGS",
                String::new(),
                shown(&s),
                purpose,
            )
        });
        Ok(s)
    }

    /// Sets `s`, the start state of `mode` (`CpuMode::start_sregs`).
    pub fn set_start_sregs(
        &self,
        mode: CpuMode,
        s: &kvm_sregs,
        trace: &mut Option<Tracer>,
    ) -> Result<(), KvmError> {
        self.fd
            .set_sregs(s)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        record(trace, || {
            let args = match mode {
                CpuMode::Real => "CS = DS = ES = FS = GS = SS = 0, base 0, CR0.PE clear".into(),
                _ => format!(
                    "CS {CODE_SELECTOR:#x} DS/SS {DATA_SELECTOR:#x}, GDT {:#x}, CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
                    s.gdt.base, s.cr0, s.cr3, s.cr4, s.efer
                ),
            };
            Call::ioctl(
                self.target(),
                "KVM_SET_SREGS",
                args,
                "0".into(),
                mode.start_purpose(),
            )
        });
        Ok(())
    }

    /// Points vCPU `id` of `n` at `rip` with stack `rsp`; RDI = id, RSI = n.
    pub fn set_entry(
        &self,
        rip: u64,
        rsp: u64,
        id: u64,
        n: u64,
        trace: &mut Option<Tracer>,
    ) -> Result<(), KvmError> {
        let regs = kvm_regs {
            rip,
            rsp,
            rdi: id,
            rsi: n,
            rflags: 0x2,
            ..Default::default()
        };
        self.fd
            .set_regs(&regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_SET_REGS",
                format!("RIP {rip:#x} RSP {rsp:#x} RDI {id} RSI {n} RFLAGS 0x2"),
                "0".into(),
                "point the vCPU at the guest's entry and its stack; RDI = vCPU id, RSI = vCPUs",
            )
        });
        Ok(())
    }

    /// The special registers, for `purpose` (a check or a report).
    pub fn sregs(
        &self,
        purpose: &'static str,
        trace: &mut Option<Tracer>,
    ) -> Result<kvm_sregs, KvmError> {
        self.get_sregs(trace, purpose, |s| {
            format!(
                "0, CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
                s.cr0, s.cr3, s.cr4, s.efer
            )
        })
    }

    /// The general-purpose registers the guest stopped with.
    pub fn regs(&self, trace: &mut Option<Tracer>) -> Result<Regs, KvmError> {
        let r = Regs::from(
            &self
                .fd
                .get_regs()
                .map_err(KvmError::ioctl("KVM_GET_REGS"))?,
        );
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_GET_REGS",
                String::new(),
                format!("0, RIP {:#x} RAX {:#x}", r.rip, r.rax),
                "read the registers the guest stopped with",
            )
        });
        Ok(r)
    }

    /// The registers as KVM has them (`--gdb` reads and writes them all).
    pub fn kvm_regs(&self) -> Result<kvm_regs, KvmError> {
        self.fd.get_regs().map_err(KvmError::ioctl("KVM_GET_REGS"))
    }

    /// The linear address of the next instruction: CS base + RIP.
    pub fn sregs_linear_rip(&self) -> Result<u64, KvmError> {
        let r = self.kvm_regs()?;
        let s = self
            .fd
            .get_sregs()
            .map_err(KvmError::ioctl("KVM_GET_SREGS"))?;
        Ok(s.cs.base.wrapping_add(r.rip))
    }

    /// KVM_SET_REGS (a debugger writing registers).
    pub fn set_kvm_regs(&self, r: &kvm_regs, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        self.fd
            .set_regs(r)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_SET_REGS",
                format!("RIP {:#x} RSP {:#x} RFLAGS {:#x}", r.rip, r.rsp, r.rflags),
                "0".into(),
                "the debugger wrote registers",
            )
        });
        Ok(())
    }

    /// KVM_SET_SREGS (a debugger writing segment registers).
    pub fn set_sregs(&self, s: &kvm_sregs, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        self.fd
            .set_sregs(s)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_SET_SREGS",
                format!("CS {:#x} SS {:#x}", s.cs.selector, s.ss.selector),
                "0".into(),
                "the debugger wrote segment registers",
            )
        });
        Ok(())
    }

    /// KVM_SET_GUEST_DEBUG: `control` is KVM_GUESTDBG_* bits; `debugreg`
    /// DR0..DR3 and DR7 (index 7) with KVM_GUESTDBG_USE_HW_BP.
    pub fn set_guest_debug(
        &self,
        control: u32,
        debugreg: [u64; 8],
        trace: &mut Option<Tracer>,
    ) -> Result<(), KvmError> {
        let dbg = k::kvm_guest_debug {
            control,
            pad: 0,
            arch: k::kvm_guest_debug_arch { debugreg },
        };
        self.fd
            .set_guest_debug(&dbg)
            .map_err(KvmError::ioctl("KVM_SET_GUEST_DEBUG"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_SET_GUEST_DEBUG",
                format!("control {control:#x}, DR7 {:#x}", debugreg[7]),
                "0".into(),
                "single-step and breakpoints for the debugger",
            )
        });
        Ok(())
    }

    /// The guest's translation registers while an exit is served (for
    /// `gva_to_hva`). Its trace record follows the exit's, which is
    /// recorded once the exit is answered.
    pub fn paging_now(&self, trace: &mut Option<Tracer>) -> Result<Paging, HostError> {
        let s = self.fd.get_sregs().map_err(|source| HostError::Kvm {
            what: "KVM_GET_SREGS",
            source,
        })?;
        if let Some(t) = trace {
            t.defer(Call::ioctl(
                self.target(),
                "KVM_GET_SREGS",
                String::new(),
                format!("0, CR3 {:#x}", s.cr3),
                "gva_to_hva: the guest's CR0/CR3/CR4/EFER for the walk",
            ));
        }
        Ok(Paging::from_sregs(&s))
    }

    /// KVM_SET_SIGNAL_MASK: `bits` (a kernel sigset,
    /// `crate::signals::arm_thread`) is the mask while the guest runs.
    pub fn set_signal_mask(&self, bits: u64, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        let arg: [u32; 3] = [8, bits as u32, (bits >> 32) as u32]; // struct kvm_signal_mask { u32 len; u8 sigset[8]; }
        // SAFETY: KVM_SET_SIGNAL_MASK reads `len` (8) and then 8 bytes of mask
        // from `arg`, which is 12 bytes long and lives across the call.
        let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), KVM_SET_SIGNAL_MASK, arg.as_ptr()) };
        if rc < 0 {
            return Err(KvmError::Ioctl {
                what: "KVM_SET_SIGNAL_MASK",
                source: kvm_ioctls::Error::last(),
            });
        }
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_SET_SIGNAL_MASK",
                format!(
                    "this thread's mask with signal {} unblocked",
                    crate::signals::kick_signal()
                ),
                "0".into(),
                "the kick signal is blocked in this thread except inside KVM_RUN",
            )
        });
        Ok(())
    }

    /// KVM_RUN.
    #[inline]
    pub fn run(&mut self) -> Result<VcpuExit<'_>, kvm_ioctls::Error> {
        self.fd.run()
    }

    /// The shared kvm_run area, to write a request into before KVM_RUN.
    pub(super) fn kvm_run_mut(&mut self) -> &mut k::kvm_run {
        self.fd.get_kvm_run()
    }

    /// The shared kvm_run area as the last exit left it.
    pub fn kvm_run(&mut self) -> &k::kvm_run {
        self.fd.get_kvm_run()
    }

    /// The fault that the last exit (one the host does not serve) was.
    pub fn fault(&mut self) -> (ExitReason, Fault) {
        Fault::from_run(self.kvm_run())
    }

    /// Host address of the kvm_run mapping.
    pub fn kvm_run_addr(&mut self) -> u64 {
        let p: *const k::kvm_run = self.fd.get_kvm_run();
        p as u64
    }

    /// Size of the kvm_run mapping.
    pub fn run_size(&self) -> usize {
        self.run_size
    }

    /// The vCPU's file descriptor number, as traces show it.
    pub fn fd_raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The kvm-ioctls handle.
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    /// The kvm-ioctls handle, to set kvm_run fields through.
    pub(super) fn fd_mut(&mut self) -> &mut VcpuFd {
        &mut self.fd
    }

    /// Records the exit in kvm_run (after the host answered it, so an `in`
    /// shows the value returned). `last`: the run ends with it.
    pub fn trace_exit(&mut self, trace: &mut Option<Tracer>, last: bool) {
        let Some(t) = trace else {
            return;
        };
        let fd = self.fd.as_raw_fd();
        let run_size = self.run_size;
        let run = self.fd.get_kvm_run();
        let (kind, detail) = super::exit_text::describe_exit(run, run_size);
        t.exit(fd, kind, &detail, last);
    }
}
