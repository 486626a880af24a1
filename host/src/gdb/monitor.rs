//! gdb's `monitor` commands: the host's own views of the live VM.

use super::debuggee::Debuggee;
use crate::config::IrqChip;
use crate::kvm::ChipState;
use crate::trace::{TraceFormat, Tracer};
use crate::x86::translate::Paging;

/// What `monitor help` prints.
pub const HELP: &str = "\
monitor layout          the VM as the host set it up (host layout): memory map, GDT, page tables
monitor translate GVA   the page-table walk of GVA now, step by step
monitor exits           the exit table so far
monitor irq             interrupts now: the IDT/IVT in use, the local APIC (timer, IRR/ISR), PICs, IOAPIC, PIT
monitor trace on|off    the KVM call trace (--trace-kvm) to the host's standard error
monitor caps            what this KVM can do for gdb
monitor snapshot        save the VM as it is now to the file of --snapshot FILE, and end the run
monitor record on|off   time travel from here (as --record), or no more
monitor record          what the recording holds: checkpoints, where it starts, memory
";

/// Runs one `monitor` command; returns what gdb prints.
pub fn command(d: &mut Debuggee<'_, '_>, cmd: &str) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        [] | ["help"] => HELP.into(),
        ["layout"] => d.layout.to_string(),
        ["translate", gva] => translate(d, gva),
        ["exits"] => d.lp.stats.table(),
        ["irq"] => irq(d),
        ["caps"] => format!("{}\n", d.caps.summary()),
        ["snapshot"] => match d.lp.snapshot_at {
            Some(_) => {
                d.save_now = true;
                "snapshot: the VM is saved as it is now (without gdb's breakpoints) to the file of --snapshot, and the run ends: gdb loses the connection; `host run --restore FILE` continues it\n".into()
            }
            None => "monitor snapshot saves to the file --snapshot names: start with host run GUEST --gdb --snapshot FILE\n".into(),
        },
        ["record", "on"] => {
            if let Err(why) = d.can_record() {
                return format!("{why}\n");
            }
            match d.record_on(d.record_budget) {
                Ok(()) => format!("recording from here: reverse-stepi, reverse-continue and the other reverse commands go back as far as exit {}\n", d.lp.stats.guest_exits()),
                Err(e) => format!("cannot record: {e}\n"),
            }
        }
        ["record", "off"] => match d.record.take() {
            Some(_) => "recording off: its checkpoints are gone\n".into(),
            None => "not recording\n".into(),
        },
        ["record"] => match &d.record {
            Some(r) => r.summary(),
            None => "not recording (monitor record on, or host run --gdb --record)\n".into(),
        },
        ["trace", "on"] => trace_on(d),
        ["trace", "off"] => match d.lp.trace.take() {
            Some(mut t) => match t.finish() {
                Ok(()) => "KVM call trace off\n".into(),
                Err(e) => format!("the trace could not be written: {e}\n"),
            },
            None => "the KVM call trace was off\n".into(),
        },
        _ => format!("unknown monitor command '{cmd}'\n{HELP}"),
    }
}

fn translate(d: &Debuggee<'_, '_>, gva: &str) -> String {
    let Ok(gva) = crate::size::parse_addr(gva) else {
        return format!("'{gva}' is not an address (give e.g. 0x100000)\n");
    };
    match d
        .lp
        .vcpu
        .sregs("monitor translate: CR0/CR3/CR4/EFER now", &mut None)
    {
        Ok(s) => crate::inspect::explain(d.lp.mem, &Paging::from_sregs(&s), gva).text(),
        Err(e) => format!("cannot read the control registers: {e}\n"),
    }
}

fn irq(d: &Debuggee<'_, '_>) -> String {
    let chip = d.lp.irq.as_ref().map_or(IrqChip::None, |i| i.chip);
    let s = match d.lp.vcpu.sregs("monitor irq: IDTR, APIC base", &mut None) {
        Ok(s) => s,
        Err(e) => return format!("cannot read the special registers: {e}\n"),
    };
    let (mut lapic, mut chips) = (None, None);
    if chip == IrqChip::Kernel {
        match d.lp.vcpu.lapic_regs() {
            Ok(r) => lapic = Some(r),
            Err(e) => return format!("cannot read the local APIC: {e}\n"),
        }
        if let Some(fd) = d.lp.irq.as_ref().and_then(|i| i.vm_fd) {
            // SAFETY: the VM's fd stays open while its vCPUs run (the VM
            // outlives every vCPU thread and this debugger session).
            match ChipState::read(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }) {
                Ok(c) => chips = Some(c),
                Err(e) => return format!("cannot read the in-kernel controllers: {e}\n"),
            }
        }
    }
    crate::inspect::irq::view(chip, &s, d.lp.mem, lapic.as_ref(), chips.as_ref()).text()
}

fn trace_on(d: &mut Debuggee<'_, '_>) -> String {
    if d.lp.trace.is_some() {
        return "the KVM call trace is on already\n".into();
    }
    if d.lp.cancel.is_some() {
        // one trace for one vCPU: VmConfig refuses --trace-kvm with several
        return "the KVM call trace needs a VM with one vCPU\n".into();
    }
    let mut t = Tracer::new(TraceFormat::Text);
    match t.attach(Box::new(std::io::stderr()), "standard error") {
        Ok(()) => {
            *d.lp.trace = Some(t);
            "KVM call trace on: from the next resume, on the host's standard error\n".into()
        }
        Err(e) => format!("cannot start the trace: {e}\n"),
    }
}
