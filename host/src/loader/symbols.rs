//! A guest ELF's function symbols, for crash reports: an address as
//! `hello::main+0x1c` (Rust names demangled, without their hash).

use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSymbol, SymbolKind};

/// Most functions kept (a hostile ELF cannot make the host allocate more).
const MAX_FUNCTIONS: usize = 1 << 16;

/// Function symbols sorted by address.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    funcs: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// The function symbols of `bytes` (none if it is not an ELF with a
    /// symbol table).
    pub fn from_elf(bytes: &[u8]) -> Symbols {
        let Ok(f) = ElfFile64::<Endianness>::parse(bytes) else {
            return Symbols::default();
        };
        let mut funcs: Vec<(u64, u64, String)> = f
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((
                    s.address(),
                    s.size(),
                    format!("{:#}", rustc_demangle::demangle(name)),
                ))
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
    }
}
