//! A guest ELF's function symbols, for crash reports: an address as
//! `hello::main+0x1c` (Rust names demangled, without their hash).

use object::read::elf::{ElfFile64, ElfSymbol64, Sym as _};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Most functions kept (a hostile ELF cannot make the host allocate more).
const MAX_FUNCTIONS: usize = 1 << 16;
/// Most bytes of a symbol's name read (before demangling) and kept (after):
/// 65,536 functions naming one 1 MB string must not copy it each time. So
/// the table holds at most MAX_FUNCTIONS * (MAX_NAME + 24) bytes, ~17 MiB.
const MAX_NAME: usize = 240;

/// Function symbols sorted by address.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    funcs: Vec<(u64, u64, String)>,
}

/// A symbol's name as a crash report prints it: demangled (Rust names
/// without their hash), cut to [`MAX_NAME`] bytes (then "..."), control
/// characters escaped (a guest file's names reach the terminal). `raw`
/// is at most `MAX_NAME + 1` bytes: one more says it was longer.
fn readable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut name = format!("{:#}", rustc_demangle::demangle(&text));
    if name.len() > MAX_NAME {
        let mut cut = MAX_NAME;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str("...");
    }
    crate::diag::escape(&name).into_owned()
}

/// Symbol names read from the string table by hand, at most `max` bytes
/// each (up to the NUL): object's own lookup scans every name to its NUL,
/// and 65,536 symbols naming one 1 MB string would scan 64 GB.
struct Names<'a> {
    strings: &'a [u8],
    endian: Endianness,
}

impl<'a> Names<'a> {
    fn of(f: &ElfFile64<'a, Endianness>) -> Names<'a> {
        let strings = f
            .section_by_index(f.elf_symbol_table().string_section())
            .ok()
            .and_then(|s| s.data().ok())
            .unwrap_or_default();
        Names {
            strings,
            endian: f.endian(),
        }
    }

    /// The first `max` bytes of `s`'s name (all of it when shorter).
    fn get(&self, s: &ElfSymbol64<'a, '_, Endianness>, max: usize) -> Option<&'a [u8]> {
        let at = usize::try_from(s.elf_symbol().st_name(self.endian)).ok()?;
        let rest = self.strings.get(at..)?;
        let raw = &rest[..rest.len().min(max)];
        Some(&raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())])
    }
}

/// The address and size of the symbol named exactly `name` (each name is
/// read at most `name.len() + 1` bytes: see [`Names`]).
pub(super) fn find(f: &ElfFile64<Endianness>, name: &[u8]) -> Option<(u64, u64)> {
    let names = Names::of(f);
    f.symbols()
        .find(|s| names.get(s, name.len() + 1) == Some(name))
        .map(|s| (s.address(), s.size()))
}

impl Symbols {
    /// The function symbols of `bytes` (none if it is not an ELF with a
    /// symbol table).
    pub fn from_elf(bytes: &[u8]) -> Symbols {
        let Ok(f) = ElfFile64::<Endianness>::parse(bytes) else {
            return Symbols::default();
        };
        let names = Names::of(&f);
        let mut funcs: Vec<(u64, u64, String)> = f
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let raw = names.get(&s, MAX_NAME + 1)?;
                Some((s.address(), s.size(), readable(raw)))
            })
            .take(MAX_FUNCTIONS)
            .collect();
        funcs.sort();
        Symbols { funcs }
    }

    /// `name+0xoff` for `addr`: the function containing it (or, for a
    /// symbol without a size, the nearest one below it).
    pub fn lookup(&self, addr: u64) -> Option<String> {
        let i = self.funcs.partition_point(|&(a, _, _)| a <= addr);
        let (start, size, name) = self.funcs.get(i.checked_sub(1)?)?;
        let off = addr - start;
        if *size != 0 && off >= *size {
            return None;
        }
        Some(if off == 0 {
            name.clone()
        } else {
            format!("{name}+{off:#x}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Symbols;

    #[test]
    fn addresses_become_function_and_offset() {
        let elf = std::fs::read(crate::guests::resolve("crash").unwrap()).unwrap();
        let s = Symbols::from_elf(&elf);
        let (start, size, _) = s
            .funcs
            .iter()
            .find(|(_, _, n)| n == "crash::deep")
            .cloned()
            .expect("crash::deep");
        assert_eq!(s.lookup(start).as_deref(), Some("crash::deep"));
        assert_eq!(s.lookup(start + 2).as_deref(), Some("crash::deep+0x2"));
        assert_ne!(s.lookup(start + size).as_deref(), Some("crash::deep+0x0"));
        assert_eq!(s.lookup(0x10), None, "below every function");
        assert!(Symbols::from_elf(b"not an elf").lookup(0x100000).is_none());
        // a name is cut, and a terminal's control characters escaped
        let long = "x".repeat(1 << 20);
        let r = super::readable(&long.as_bytes()[..super::MAX_NAME + 1]);
        assert_eq!(r, format!("{}...", &long[..super::MAX_NAME]));
        let r = super::readable(&long.as_bytes()[..super::MAX_NAME]);
        assert_eq!(r, long[..super::MAX_NAME]);
        assert_eq!(
            super::readable(b"f\x1b[2J\r\nhost: x"),
            "f\\x1b[2J\\x0d\\x0ahost: x"
        );
    }
}
