//! A crash that explains itself: after an exception the guest had no
//! handler for (the host's IDT reports it), a triple fault, internal error
//! or failed entry, what state the CPU was in (mode, paging, the control
//! register bits), where RIP is (`hello::main+0x1c` from the guest ELF),
//! the instruction there (iced-x86), a stack overflow for what it is, the
//! call chain by frame pointers, how the faulting address, RIP and RSP
//! translate (the page walk of `host layout --translate`), and the last
//! exits before it.

use crate::inspect::Translation;
use crate::kvm::fault::Fault;
use crate::loader::{Lines, Symbols};
use crate::stats::ExitStats;
use crate::vm::Vm;
use crate::x86::Regs;
use crate::x86::exception;
use crate::x86::translate::{self, Paging};
use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
use kvm_bindings::kvm_sregs;
use serde::Serialize;
use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;

/// What `host run` adds to a crash report (`--json`: `"crash"`).
#[derive(Debug, Clone, Serialize)]
pub struct Crash {
    /// The CPU mode, from CR0.PE, EFER.LMA and CS.
    pub mode: String,
    /// The privilege level the CPU was at (CS.RPL): 0 kernel, 3 user.
    pub cpl: u8,
    /// Paging in effect.
    pub paging: String,
    /// The bits set in CR0, CR4 and EFER, by name.
    pub cr0: Vec<String>,
    /// CR4's bits.
    pub cr4: Vec<String>,
    /// EFER's bits.
    pub efer: Vec<String>,
    /// RIP as a symbol and offset, when the guest ELF has one for it.
    pub rip_symbol: Option<String>,
    /// The instruction at RIP, disassembled (AT&T syntax, as gdb and
    /// objdump print it), or why it could not be.
    pub instruction: String,
    /// Its bytes.
    pub bytes: String,
    /// How RIP translates (CS base + RIP).
    pub rip_walk: Translation,
    /// How RSP translates (SS base + RSP).
    pub rsp_walk: Translation,
    /// For a page fault: how the address in CR2 translates.
    pub fault_address_walk: Option<Translation>,
    /// A fault in a vCPU's stack guard: the stack overflowed.
    pub stack_overflow: Option<String>,
    /// The call chain by frame pointers (RBP), innermost first: each
    /// return address as a symbol and offset where the ELF names it.
    pub backtrace: Vec<String>,
    /// The last exits, oldest first; the last is the crash.
    pub last_exits: Vec<String>,
    /// The instructions around RIP (`super::disasm`).
    pub code: Vec<super::disasm::CodeLine>,
}

/// What names addresses in a crash report: the ELF's symbols and, where it
/// has DWARF, its source lines.
pub struct Names<'a> {
    /// Function symbols.
    pub symbols: &'a Symbols,
    /// Source lines.
    pub lines: Option<&'a Lines<'a>>,
}

impl Names<'_> {
    /// `function+0xoff at file:line` (what is known of it) for `addr`.
    pub fn name(&self, addr: u64) -> Option<String> {
        let line = self.lines.and_then(|l| l.at(addr));
        match (self.symbols.lookup(addr), line) {
            (Some(s), Some(l)) => Some(format!("{s} at {l}")),
            (Some(s), None) => Some(s),
            (None, Some(l)) => Some(format!("at {l}")),
            (None, None) => None,
        }
    }
}

/// Most lines a backtrace shows (a recursion is one line).
const MAX_FRAMES: usize = 32;
/// Most frame pointers followed (a hostile chain may ascend through all
/// of memory).
const MAX_STEPS: usize = 4096;

/// The frame-pointer chain from `rbp` (guests are built with frame
/// pointers): each frame holds the caller's RBP, then the return address.
/// Stops at a null, unreadable or non-ascending frame pointer.
fn backtrace(
    mem: &vm_memory::GuestMemoryMmap,
    p: &Paging,
    mut rbp: u64,
    names: &Names,
) -> Vec<String> {
    // each line and how many frames in a row it stands for (a recursion)
    let mut frames: Vec<(String, u32)> = Vec::new();
    for _ in 0..MAX_STEPS {
        if rbp == 0 {
            break;
        }
        let mut b = [0u8; 16];
        if translate::read_linear(mem, p, rbp, &mut b) < 16 {
            break;
        }
        let next = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let ret = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
        if ret == 0 {
            break;
        }
        // the call is the byte before its return address (a call to a
        // function that does not return may end its caller)
        let line = match names.name(ret - 1) {
            Some(s) => format!("{ret:#x} {s}"),
            None => format!("{ret:#x}"),
        };
        if let Some((last, n)) = frames.last_mut()
            && *last == line
        {
            *n += 1;
        } else if frames.len() < MAX_FRAMES {
            frames.push((line, 1));
        } else {
            break;
        }
        if next <= rbp {
            break;
        }
        rbp = next;
    }
    frames
        .into_iter()
        .map(|(line, n)| match n {
            1 => line,
            n => format!("{line} ({n} frames)"),
        })
        .collect()
}

fn names<I: Iterator<Item = (&'static str, T)>, T>(it: I) -> Vec<String> {
    it.map(|(n, _)| n.to_string()).collect()
}

/// The mode and the instruction width of a vCPU with special registers `s`.
fn mode(s: &kvm_sregs) -> (&'static str, u32) {
    let lma = EferFlags::from_bits_truncate(s.efer).contains(EferFlags::LONG_MODE_ACTIVE);
    match (s.cr0 & 1 != 0, lma, s.cs.l != 0, s.cs.db != 0) {
        (false, ..) => ("16-bit real mode (CR0.PE clear)", 16),
        (true, true, true, _) => ("64-bit long mode (EFER.LMA, CS.L)", 64),
        (true, true, false, db) => (
            "compatibility mode (EFER.LMA without CS.L)",
            if db { 32 } else { 16 },
        ),
        (true, false, _, true) => ("32-bit protected mode (CR0.PE, CS.D)", 32),
        (true, false, _, false) => ("16-bit protected mode (CR0.PE, CS.D clear)", 16),
    }
}

fn paging(s: &kvm_sregs) -> &'static str {
    let cr4 = Cr4Flags::from_bits_truncate(s.cr4);
    let lma = EferFlags::from_bits_truncate(s.efer).contains(EferFlags::LONG_MODE_ACTIVE);
    match (
        s.cr0 & (1 << 31) != 0,
        lma,
        cr4.contains(Cr4Flags::PHYSICAL_ADDRESS_EXTENSION),
    ) {
        (false, ..) => "off (CR0.PG clear): linear addresses are physical",
        (true, true, _) => "4-level (CR0.PG, EFER.LMA)",
        (true, false, true) => "PAE, 3-level (CR0.PG, CR4.PAE)",
        (true, false, false) => "32-bit, 2-level (CR0.PG)",
    }
}

/// Explains the crash of vCPU `id` of `vm`, which stopped with `regs` and
/// `fault`. `symbols`: the guest ELF's, when its addresses are the ones
/// the guest runs at (a long-mode ELF, not a mode section or a flat image).
pub fn explain(
    vm: &Vm,
    id: usize,
    regs: &Regs,
    fault: &Fault,
    stats: &ExitStats,
    at: &Names,
) -> Option<Crash> {
    let s = vm
        .vcpu_by_id(id)?
        .sregs("crash report: the CPU state", &mut None)
        .ok()?;
    let (mode_text, bits) = mode(&s);
    let p = Paging::from_sregs(&s);
    let mem = vm.memory();
    let rip = s.cs.base.wrapping_add(regs.rip);
    let rsp = s.ss.base.wrapping_add(regs.rsp);
    let mut code = [0u8; 15];
    let n = translate::read_linear(mem, &p, rip, &mut code);
    let (instruction, bytes) = if n == 0 {
        (
            "(cannot read it: nothing maps RIP, see its walk)".to_string(),
            String::new(),
        )
    } else {
        let mut d = Decoder::with_ip(bits, &code[..n], rip, DecoderOptions::NONE);
        let ins = d.decode();
        let len = ins.len().clamp(1, n);
        let hex: Vec<String> = code[..len].iter().map(|b| format!("{b:02x}")).collect();
        let text = if ins.is_invalid() {
            format!("(not a valid {bits}-bit instruction)")
        } else {
            let mut t = String::new();
            GasFormatter::new().format(&ins, &mut t);
            t
        };
        (text, hex.join(" "))
    };
    // the code around RIP: up to 48 bytes before it (what can be read)
    let mut wide = [0u8; 48 + 64];
    let back = (1..=48u64)
        .rev()
        .find(|&k| {
            translate::read_linear(mem, &p, rip.wrapping_sub(k), &mut wide[..k as usize])
                == k as usize
        })
        .unwrap_or(0);
    let got = translate::read_linear(mem, &p, rip.wrapping_sub(back), &mut wide);
    let code = match got > back as usize {
        true => super::disasm::around(bits, &wide[..got], back as usize, rip),
        false => Vec::new(),
    };
    let cr2 = match fault {
        Fault::Exception { cr2, .. } => *cr2,
        _ => None,
    };
    let vcpus = vm.vcpu_count() as u64;
    let guard = cr2
        .and_then(|a| exception::in_stack_guard(a, vcpus).map(|v| (a, v)))
        .or_else(|| exception::in_stack_guard(rsp, vcpus).map(|v| (rsp, v)));
    let stack_overflow = guard.map(|(a, v)| {
        let g = exception::stack_guard(v);
        format!(
            "stack overflow: {a:#x} is in the guard page below vCPU {v}'s stack ({:#x}..{:#x}, {} KiB; the guard is {:#x}..{:#x}): too deep a recursion or too large a local",
            g.end,
            hypercall_abi::layout::STACK_TOP - v * hypercall_abi::layout::VCPU_STACK_SIZE,
            (hypercall_abi::layout::VCPU_STACK_SIZE - 0x1000) >> 10,
            g.start,
            g.end
        )
    });
    Some(Crash {
        mode: mode_text.to_string(),
        cpl: (s.cs.selector & 3) as u8,
        paging: paging(&s).to_string(),
        cr0: names(Cr0Flags::from_bits_truncate(s.cr0).iter_names()),
        cr4: names(Cr4Flags::from_bits_truncate(s.cr4).iter_names()),
        efer: names(EferFlags::from_bits_truncate(s.efer).iter_names()),
        rip_symbol: at.name(rip),
        instruction,
        bytes,
        rip_walk: crate::inspect::explain(mem, &p, rip),
        rsp_walk: crate::inspect::explain(mem, &p, rsp),
        fault_address_walk: cr2.map(|a| crate::inspect::explain(mem, &p, a)),
        stack_overflow,
        backtrace: match bits {
            64 => backtrace(mem, &p, regs.rbp, at),
            _ => Vec::new(),
        },
        last_exits: stats.recent(),
        code,
    })
}

impl Crash {
    /// The backtrace's lines (none when there is none).
    pub fn backtrace_text(&self) -> String {
        let mut o = String::new();
        if !self.backtrace.is_empty() {
            o.push_str("  backtrace (frame pointers), innermost first:\n");
            for f in &self.backtrace {
                o.push_str(&format!("    {f}\n"));
            }
        }
        o
    }

    /// The text `host run` prints after the fault line.
    pub fn text(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(" | ")
            }
        };
        let mut o = String::from("crash explained:\n");
        let ring = if self.cpl == 3 { "user" } else { "kernel" };
        o.push_str(&format!(
            "  CPU mode: {}, CPL {} ({ring}); paging: {}\n",
            self.mode, self.cpl, self.paging
        ));
        o.push_str(&format!(
            "  CR0: {}\n  CR4: {}\n  EFER: {}\n",
            list(&self.cr0),
            list(&self.cr4),
            list(&self.efer)
        ));
        let at = self
            .rip_symbol
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        let bytes = if self.bytes.is_empty() {
            String::new()
        } else {
            format!("   [{}]", self.bytes)
        };
        o.push_str(&format!(
            "  instruction at RIP{at}: {}{bytes}\n",
            self.instruction
        ));
        if let Some(s) = &self.stack_overflow {
            o.push_str(&format!("  {s}\n"));
        }
        o.push_str(&self.backtrace_text());
        let walks = [
            (
                "the faulting address (CR2)",
                self.fault_address_walk.as_ref(),
            ),
            ("RIP", Some(&self.rip_walk)),
            ("RSP", Some(&self.rsp_walk)),
        ];
        for (what, w) in walks {
            let Some(w) = w else { continue };
            o.push_str(&format!("  {what}: "));
            o.push_str(&w.text().replace('\n', "\n  "));
            o.truncate(o.trim_end().len());
            o.push('\n');
        }
        o.push_str(&format!(
            "  the last {} exits, oldest first:\n",
            self.last_exits.len()
        ));
        for e in &self.last_exits {
            o.push_str(&format!("    {e}\n"));
        }
        o
    }
}
