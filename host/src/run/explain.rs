//! A crash that explains itself: after a triple fault, internal error or
//! failed entry, what state the CPU was in (mode, paging, the control
//! register bits), where RIP is (`hello::main+0x1c` from the guest ELF),
//! the instruction there (iced-x86), how RIP and RSP translate (the page
//! walk of `host layout --translate`), and the last exits before it.

use crate::inspect::Translation;
use crate::loader::Symbols;
use crate::stats::ExitStats;
use crate::vm::Vm;
use crate::x86::Regs;
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
    /// The last exits, oldest first; the last is the crash.
    pub last_exits: Vec<String>,
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

/// Explains the crash of vCPU `id` of `vm`, which stopped with `regs`.
/// `symbols`: the guest ELF's, when its addresses are the ones the guest
/// runs at (a long-mode ELF, not a mode section or a flat image).
pub fn explain(
    vm: &Vm,
    id: usize,
    regs: &Regs,
    stats: &ExitStats,
    symbols: &Symbols,
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
    Some(Crash {
        mode: mode_text.to_string(),
        cpl: (s.cs.selector & 3) as u8,
        paging: paging(&s).to_string(),
        cr0: names(Cr0Flags::from_bits_truncate(s.cr0).iter_names()),
        cr4: names(Cr4Flags::from_bits_truncate(s.cr4).iter_names()),
        efer: names(EferFlags::from_bits_truncate(s.efer).iter_names()),
        rip_symbol: symbols.lookup(rip),
        instruction,
        bytes,
        rip_walk: crate::inspect::explain(mem, &p, rip),
        rsp_walk: crate::inspect::explain(mem, &p, rsp),
        last_exits: stats.recent(),
    })
}

impl Crash {
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
        for (what, w) in [("RIP", &self.rip_walk), ("RSP", &self.rsp_walk)] {
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
