//! What KVM holds of a VM beyond its memory, read for a snapshot and
//! written back at a restore: each vCPU's registers, special registers,
//! FPU/SSE/AVX state (XSAVE) and XCR0, debug registers, pending events,
//! MP state, the MSRs a guest of ours can change and, with the in-kernel
//! controller, its local APIC; the VM's PICs, IOAPIC and PIT.
//!
//! Each KVM structure is kept as its bytes (`kvm_bindings` mirrors the
//! kernel's UAPI layout), with its size checked when read back; the
//! values are KVM's to judge at the restore: a set call KVM refuses is one
//! error naming it.

use super::error::KvmError;
use super::vcpu::Vcpu;
use super::vm::VmObject;
use crate::trace::{Call, Tracer, record};
use crate::wire::{Dec, Enc, WireError};
use kvm_bindings::{self as k, Msrs};

/// The MSRs a snapshot keeps: SYSCALL's (STAR, LSTAR, CSTAR, SFMASK),
/// KERNEL_GS_BASE, SYSENTER's three, PAT, the TSC and TSC_AUX. (EFER, FS
/// and GS bases are in the special registers.) The TSC-deadline MSR
/// follows with the local APIC.
pub const MSRS: [u32; 11] = [
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0102, // KERNEL_GS_BASE
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0x277,       // PAT
    0x10,        // TSC
    0xc000_0103, // TSC_AUX
];

/// IA32_TSC_DEADLINE (set after the local APIC, whose timer mode it needs).
pub const TSC_DEADLINE: u32 = 0x6e0;

/// Records one call of a save or restore in `--trace-kvm`.
fn rec(trace: &mut Option<Tracer>, target: &str, name: &'static str, purpose: &'static str) {
    record(trace, || {
        Call::ioctl(target.to_string(), name, String::new(), "0".into(), purpose)
    });
}

/// The bytes of a KVM structure.
fn raw<T>(v: &T) -> &[u8] {
    // SAFETY: T is a kvm_bindings structure of integers and arrays of
    // them (repr(C)), filled entirely by a KVM_GET_* ioctl that copies the
    // kernel's structure of the same size (padding included), so every
    // byte is initialised; the slice borrows `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// A KVM structure from its bytes, if they are exactly its size.
fn from_raw<T>(what: &'static str, b: &[u8]) -> Result<T, WireError> {
    if b.len() != size_of::<T>() {
        return Err(WireError::Bad {
            what,
            value: b.len() as u64,
        });
    }
    // SAFETY: T is a kvm_bindings structure of integers and arrays of them
    // (unions of such too), for which every bit pattern is a value;
    // `b` holds exactly size_of::<T>() bytes, read unaligned.
    Ok(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

/// One vCPU's state.
pub struct VcpuState {
    /// General-purpose registers, RIP, RFLAGS.
    pub regs: k::kvm_regs,
    /// Segments, descriptor tables, control registers, EFER, APIC base.
    pub sregs: k::kvm_sregs,
    /// x87/SSE/AVX state (the 4 KiB legacy XSAVE area).
    pub xsave: Box<k::kvm_xsave>,
    /// XCR0.
    pub xcrs: k::kvm_xcrs,
    /// DR0-3, DR6, DR7.
    pub debugregs: k::kvm_debugregs,
    /// Pending exception, interrupt, NMI, SMI; interrupt shadow.
    pub events: k::kvm_vcpu_events,
    /// Runnable, halted, waiting for SIPI...
    pub mp_state: k::kvm_mp_state,
    /// (index, value) of the [`MSRS`] KVM has, then TSC_DEADLINE with a
    /// local APIC.
    pub msrs: Vec<(u32, u64)>,
    /// The in-kernel local APIC's register page.
    pub lapic: Option<k::kvm_lapic_state>,
}

fn msrs(list: &[(u32, u64)]) -> Result<Msrs, KvmError> {
    let entries: Vec<k::kvm_msr_entry> = list
        .iter()
        .map(|&(index, data)| k::kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    Msrs::from_entries(&entries).map_err(|_| KvmError::Internal("too many MSRs for one call"))
}

impl Vcpu {
    /// KVM_RUN with `immediate_exit` set: completes an I/O or MMIO read
    /// the last exit left in flight (its value goes into the register)
    /// without running guest code, as the KVM API asks before state is
    /// saved.
    pub fn complete_pending(&mut self, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        self.fd_mut().set_kvm_immediate_exit(1);
        let r = self.run().map(|_| ());
        self.fd_mut().set_kvm_immediate_exit(0);
        let target = format!("vcpu {}", self.fd_raw());
        rec(
            trace,
            &target,
            "KVM_RUN",
            "with immediate_exit = 1: finish the exit in flight, run no guest code (EINTR)",
        );
        match r {
            Err(e) if e.errno() != libc::EINTR => Err(KvmError::ioctl("KVM_RUN")(e)),
            _ => Ok(()),
        }
    }

    /// Reads the vCPU's state (after `complete_pending`); `lapic`: the
    /// VM has the in-kernel controller.
    pub fn save_state(
        &self,
        lapic: bool,
        trace: &mut Option<Tracer>,
    ) -> Result<VcpuState, KvmError> {
        let fd = self.fd();
        if trace.is_some() {
            let target = format!("vcpu {}", self.fd_raw());
            for name in [
                "KVM_GET_MSRS",
                "KVM_GET_REGS",
                "KVM_GET_SREGS",
                "KVM_GET_XSAVE",
                "KVM_GET_XCRS",
                "KVM_GET_DEBUGREGS",
                "KVM_GET_VCPU_EVENTS",
                "KVM_GET_MP_STATE",
            ] {
                rec(
                    trace,
                    &target,
                    name,
                    "read the vCPU's state for the snapshot",
                );
            }
            if lapic {
                rec(
                    trace,
                    &target,
                    "KVM_GET_LAPIC",
                    "read the vCPU's local APIC for the snapshot",
                );
            }
        }
        let mut want: Vec<(u32, u64)> = MSRS.iter().map(|&i| (i, 0)).collect();
        if lapic {
            want.push((TSC_DEADLINE, 0));
        }
        // KVM stops a KVM_GET_MSRS at the first index it does not have,
        // and which it has differs between KVMs: read from there on again,
        // past it (one call when the KVM has them all: --record saves
        // often, and each call costs)
        let mut got = Vec::with_capacity(want.len());
        let mut from = 0;
        while from < want.len() {
            let mut m = msrs(&want[from..])?;
            let n = fd.get_msrs(&mut m).unwrap_or(0).min(want.len() - from);
            got.extend(m.as_slice()[..n].iter().map(|e| (e.index, e.data)));
            from += n + 1;
        }
        Ok(VcpuState {
            regs: fd.get_regs().map_err(KvmError::ioctl("KVM_GET_REGS"))?,
            sregs: fd.get_sregs().map_err(KvmError::ioctl("KVM_GET_SREGS"))?,
            xsave: Box::new(fd.get_xsave().map_err(KvmError::ioctl("KVM_GET_XSAVE"))?),
            xcrs: fd.get_xcrs().map_err(KvmError::ioctl("KVM_GET_XCRS"))?,
            debugregs: fd
                .get_debug_regs()
                .map_err(KvmError::ioctl("KVM_GET_DEBUGREGS"))?,
            events: fd
                .get_vcpu_events()
                .map_err(KvmError::ioctl("KVM_GET_VCPU_EVENTS"))?,
            mp_state: fd
                .get_mp_state()
                .map_err(KvmError::ioctl("KVM_GET_MP_STATE"))?,
            msrs: got,
            lapic: match lapic {
                true => Some(fd.get_lapic().map_err(KvmError::ioctl("KVM_GET_LAPIC"))?),
                false => None,
            },
        })
    }

    /// Writes a saved state into this (new) vCPU, in the order KVM needs:
    /// special registers before the registers and the local APIC, the
    /// TSC-deadline MSR after the APIC, events last.
    pub fn restore_state(&self, s: &VcpuState, trace: &mut Option<Tracer>) -> Result<(), KvmError> {
        let fd = self.fd();
        if trace.is_some() {
            let target = format!("vcpu {}", self.fd_raw());
            let mut names = vec![
                "KVM_SET_SREGS",
                "KVM_SET_REGS",
                "KVM_SET_XSAVE",
                "KVM_SET_XCRS",
                "KVM_SET_DEBUGREGS",
            ];
            if s.lapic.is_some() {
                names.push("KVM_SET_LAPIC");
            }
            names.extend(["KVM_SET_MSRS", "KVM_SET_MP_STATE", "KVM_SET_VCPU_EVENTS"]);
            for name in names {
                rec(trace, &target, name, "put the snapshot's vCPU state back");
            }
        }
        fd.set_sregs(&s.sregs)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        fd.set_regs(&s.regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))?;
        // SAFETY: `s.xsave` is a whole `kvm_xsave` (4 KiB); this host never
        // enables KVM_CAP_XSAVE2, so KVM reads no more than that.
        unsafe { fd.set_xsave(&s.xsave) }.map_err(KvmError::ioctl("KVM_SET_XSAVE"))?;
        fd.set_xcrs(&s.xcrs)
            .map_err(KvmError::ioctl("KVM_SET_XCRS"))?;
        fd.set_debug_regs(&s.debugregs)
            .map_err(KvmError::ioctl("KVM_SET_DEBUGREGS"))?;
        if let Some(l) = &s.lapic {
            fd.set_lapic(l).map_err(KvmError::ioctl("KVM_SET_LAPIC"))?;
        }
        let m = msrs(&s.msrs)?;
        let n = fd.set_msrs(&m).map_err(KvmError::ioctl("KVM_SET_MSRS"))?;
        if n != s.msrs.len() {
            let (index, _) = s.msrs[n];
            return Err(KvmError::Refused("KVM_SET_MSRS", format!("MSR {index:#x}")));
        }
        fd.set_mp_state(s.mp_state)
            .map_err(KvmError::ioctl("KVM_SET_MP_STATE"))?;
        fd.set_vcpu_events(&s.events)
            .map_err(KvmError::ioctl("KVM_SET_VCPU_EVENTS"))?;
        Ok(())
    }
}

impl VcpuState {
    /// Appends the state to a snapshot's bytes.
    pub fn save(&self, e: &mut Enc) {
        e.bytes(raw(&self.regs));
        e.bytes(raw(&self.sregs));
        e.bytes(raw(&*self.xsave));
        e.bytes(raw(&self.xcrs));
        e.bytes(raw(&self.debugregs));
        e.bytes(raw(&self.events));
        e.u32(self.mp_state.mp_state);
        e.u64(self.msrs.len() as u64);
        for &(i, v) in &self.msrs {
            e.u32(i);
            e.u64(v);
        }
        match &self.lapic {
            Some(l) => {
                e.u8(1);
                e.bytes(raw(l));
            }
            None => e.u8(0),
        }
    }

    /// The state `save` wrote. MSR indices must be ones a snapshot keeps.
    pub fn load(d: &mut Dec) -> Result<VcpuState, WireError> {
        let regs = from_raw("registers", d.bytes("registers")?)?;
        let sregs = from_raw("special registers", d.bytes("special registers")?)?;
        let xsave = Box::new(from_raw("XSAVE area", d.bytes("XSAVE area")?)?);
        let xcrs = from_raw("XCRs", d.bytes("XCRs")?)?;
        let debugregs = from_raw("debug registers", d.bytes("debug registers")?)?;
        let events = from_raw("vCPU events", d.bytes("vCPU events")?)?;
        let mp_state = k::kvm_mp_state {
            mp_state: d.u32("MP state")?,
        };
        let n = d.count("MSRs", 12)?;
        if n > MSRS.len() as u64 + 1 {
            return Err(WireError::Bad {
                what: "number of MSRs",
                value: n,
            });
        }
        let mut msrs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let i = d.u32("MSR index")?;
            if !MSRS.contains(&i) && i != TSC_DEADLINE {
                return Err(WireError::Bad {
                    what: "MSR index",
                    value: u64::from(i),
                });
            }
            msrs.push((i, d.u64("MSR value")?));
        }
        let lapic = match d.bool("local APIC present")? {
            true => Some(from_raw("local APIC", d.bytes("local APIC")?)?),
            false => None,
        };
        Ok(VcpuState {
            regs,
            sregs,
            xsave,
            xcrs,
            debugregs,
            events,
            mp_state,
            msrs,
            lapic,
        })
    }
}

/// The VM's in-kernel controllers: PIC master, PIC slave, IOAPIC, PIT.
#[derive(Clone)]
pub struct ChipSnapshot {
    /// KVM_GET_IRQCHIP of chips 0, 1, 2.
    pub chips: [k::kvm_irqchip; 3],
    /// KVM_GET_PIT2.
    pub pit: k::kvm_pit_state2,
}

impl VmObject {
    /// Reads the in-kernel controllers (the VM has them).
    pub fn save_chips(&self, trace: &mut Option<Tracer>) -> Result<ChipSnapshot, KvmError> {
        let target = format!("vm {}", std::os::fd::AsRawFd::as_raw_fd(self.fd()));
        rec(
            trace,
            &target,
            "KVM_GET_IRQCHIP",
            "read the PICs and the IOAPIC (chips 0, 1, 2) for the snapshot",
        );
        rec(
            trace,
            &target,
            "KVM_GET_PIT2",
            "read the PIT for the snapshot",
        );
        let mut chips = [k::kvm_irqchip::default(); 3];
        for (id, c) in (0..).zip(&mut chips) {
            c.chip_id = id;
            self.fd()
                .get_irqchip(c)
                .map_err(KvmError::ioctl("KVM_GET_IRQCHIP"))?;
        }
        let pit = self
            .fd()
            .get_pit2()
            .map_err(KvmError::ioctl("KVM_GET_PIT2"))?;
        Ok(ChipSnapshot { chips, pit })
    }

    /// Writes saved controllers into this VM's (made by
    /// `create_irqchip`).
    pub fn restore_chips(
        &self,
        s: &ChipSnapshot,
        trace: &mut Option<Tracer>,
    ) -> Result<(), KvmError> {
        let target = format!("vm {}", std::os::fd::AsRawFd::as_raw_fd(self.fd()));
        rec(
            trace,
            &target,
            "KVM_SET_IRQCHIP",
            "put the snapshot's PICs and IOAPIC back (chips 0, 1, 2)",
        );
        rec(
            trace,
            &target,
            "KVM_SET_PIT2",
            "put the snapshot's PIT back",
        );
        for c in &s.chips {
            self.fd()
                .set_irqchip(c)
                .map_err(KvmError::ioctl("KVM_SET_IRQCHIP"))?;
        }
        self.fd()
            .set_pit2(&s.pit)
            .map_err(KvmError::ioctl("KVM_SET_PIT2"))
    }
}

impl ChipSnapshot {
    /// Appends the controllers to a snapshot's bytes.
    pub fn save(&self, e: &mut Enc) {
        for c in &self.chips {
            e.bytes(raw(c));
        }
        e.bytes(raw(&self.pit));
    }

    /// The controllers `save` wrote; chip ids must be 0, 1, 2 in order.
    pub fn load(d: &mut Dec) -> Result<ChipSnapshot, WireError> {
        let mut chips = [k::kvm_irqchip::default(); 3];
        for (id, c) in (0u32..).zip(&mut chips) {
            *c = from_raw("interrupt controller", d.bytes("interrupt controller")?)?;
            if c.chip_id != id {
                return Err(WireError::Bad {
                    what: "interrupt controller id",
                    value: u64::from(c.chip_id),
                });
            }
        }
        let pit = from_raw("PIT", d.bytes("PIT")?)?;
        Ok(ChipSnapshot { chips, pit })
    }
}
