//! The code around a crash's RIP, disassembled (`--json` `crash.code`, the
//! HTML report's autopsy). x86 cannot be decoded backwards, so the start
//! is found by trying each of the 48 bytes before RIP, furthest first, and
//! taking the first start whose instructions are all valid and land
//! exactly on RIP: the usual resynchronisation, right for code a compiler
//! laid out (and marked "(approximate)" where nothing lines up).

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
use serde::Serialize;

/// Bytes before RIP tried as a start.
const BACK: usize = 48;
/// Instructions kept before RIP, and from RIP on.
const BEFORE: usize = 8;
const AFTER: usize = 6;

/// One instruction of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeLine {
    /// Its linear address.
    #[serde(serialize_with = "crate::size::hex")]
    pub addr: u64,
    /// Its bytes, in hex.
    pub bytes: String,
    /// AT&T syntax, or "(bad)".
    pub text: String,
    /// The instruction at RIP.
    pub rip: bool,
}

fn decode(bits: u32, code: &[u8], ip: u64, max: usize) -> Vec<CodeLine> {
    let mut d = Decoder::with_ip(bits, code, ip, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut f = GasFormatter::new();
    while d.can_decode() && out.len() < max {
        let ins = d.decode();
        let off = (ins.ip() - ip) as usize;
        let len = ins.len().max(1).min(code.len() - off);
        let mut text = String::new();
        if ins.is_invalid() {
            text.push_str("(bad)");
        } else {
            f.format(&ins, &mut text);
        }
        let hex: Vec<String> = code[off..off + len]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(CodeLine {
            addr: ins.ip(),
            bytes: hex.join(" "),
            text,
            rip: false,
        });
    }
    out
}

/// The listing around `rip` of `bits`-bit code, from `code`: the bytes at
/// `rip - back` .. (`back` <= 48: what could be read before RIP).
pub fn around(bits: u32, code: &[u8], back: usize, rip: u64) -> Vec<CodeLine> {
    let back = back.min(code.len());
    let start = (1..=back.min(BACK)).rev().find(|&k| {
        let lines = decode(
            bits,
            &code[back - k..back],
            rip.wrapping_sub(k as u64),
            usize::MAX,
        );
        let whole = lines.iter().all(|l| l.text != "(bad)");
        let ends = lines
            .last()
            .is_some_and(|l| l.addr + (l.bytes.len() as u64 + 1) / 3 == rip);
        whole && ends
    });
    let mut before = match start {
        Some(k) => decode(
            bits,
            &code[back - k..back],
            rip.wrapping_sub(k as u64),
            usize::MAX,
        ),
        None => Vec::new(),
    };
    let cut = before.len().saturating_sub(BEFORE);
    before.drain(..cut);
    let mut after = decode(bits, &code[back..], rip, AFTER);
    if let Some(first) = after.first_mut() {
        first.rip = true;
    }
    before.extend(after);
    before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_instructions_before_rip() {
        // push rbp; mov rbp,rsp; nop; ud2; hlt
        let code = [0x55, 0x48, 0x89, 0xe5, 0x90, 0x0f, 0x0b, 0xf4];
        let l = around(64, &code, 5, 0x1005);
        let texts: Vec<&str> = l.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["push %rbp", "mov %rsp,%rbp", "nop", "ud2", "hlt"]);
        assert_eq!(l[3].addr, 0x1005);
        assert!(l[3].rip && !l[2].rip);
        assert_eq!(l[1].bytes, "48 89 e5");
    }

    #[test]
    fn nothing_before_rip_still_lists_from_rip() {
        let l = around(64, &[0x0f, 0x0b], 0, 0x2000);
        assert_eq!(l.len(), 1);
        assert!(l[0].rip);
    }
}
