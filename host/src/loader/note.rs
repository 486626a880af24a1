//! The guest's ABI note (`hypercall_abi::note`): found among the ELF's
//! notes, decoded with every size checked, and compared with this host's
//! ABI hypercall by hypercall. A guest built before an additive change (a
//! new hypercall) lists fewer hypercalls and still runs; one that differs
//! is refused with one line naming the first hypercall that differs.

use super::error::LoadError;
use hypercall_abi::note::{self, Entry, Header};
use hypercall_abi::{ABI_VERSION, BASE_FINGERPRINT, Hypercall};

/// Most entries a note may list.
const MAX_ENTRIES: usize = 1024;

/// A guest's ABI note, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNote {
    /// Version, flags, base fingerprint, entry count.
    pub header: Header,
    /// The hypercalls the guest was built against.
    pub entries: Vec<Entry>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Finds the KVMWB note among the notes in `data` and decodes it. A note of
/// another version is reported as such before its size is looked at.
pub fn parse_note(data: &[u8]) -> Result<GuestNote, LoadError> {
    let mut at = 0usize;
    while at < data.len() {
        let hdr = |o| u32_at(data, at + o).ok_or(LoadError::BadAbiNote("truncated note header"));
        let (namesz, descsz, ntype) = (hdr(0)? as usize, hdr(4)? as usize, hdr(8)?);
        let name_at = at + 12;
        let desc_at = name_at
            .checked_add(namesz.next_multiple_of(4))
            .ok_or(LoadError::BadAbiNote("name size overflows"))?;
        let next = desc_at
            .checked_add(descsz.next_multiple_of(4))
            .ok_or(LoadError::BadAbiNote("descriptor size overflows"))?;
        let name = data
            .get(name_at..name_at + namesz)
            .ok_or(LoadError::BadAbiNote("name runs past the section"))?;
        let desc = data
            .get(desc_at..desc_at + descsz)
            .ok_or(LoadError::BadAbiNote("descriptor runs past the section"))?;
        if name == note::NAME && ntype == note::TYPE {
            return decode(desc);
        }
        at = next;
    }
    Err(LoadError::NoAbiNote)
}

fn decode(desc: &[u8]) -> Result<GuestNote, LoadError> {
    let version = u32_at(desc, 0).ok_or(LoadError::BadAbiNote("descriptor too short"))?;
    if version != ABI_VERSION {
        return Err(LoadError::AbiVersion(version));
    }
    let w = |o| u32_at(desc, o).ok_or(LoadError::BadAbiNote("descriptor too short"));
    let header = Header {
        version,
        flags: w(4)?,
        base_lo: w(8)?,
        base_hi: w(12)?,
        count: w(16)?,
    };
    let count = header.count as usize;
    if count > MAX_ENTRIES || desc.len() != note::desc_size(count) {
        return Err(LoadError::BadAbiNote(
            "descriptor size does not match its hypercall count",
        ));
    }
    let entries = desc[note::desc_size(0)..]
        .chunks_exact(core::mem::size_of::<Entry>())
        .map(|e| Entry {
            name: e[..note::NAME_LEN]
                .try_into()
                .unwrap_or([0; note::NAME_LEN]),
            nr: u16_at(e, 20),
            port: u16_at(e, 22),
            transport: e[24],
            reserved: e[25],
            block_size: u16_at(e, 26),
            block_layout: u32::from_le_bytes([e[28], e[29], e[30], e[31]]),
        })
        .collect();
    Ok(GuestNote { header, entries })
}

/// Checks a guest's note against this host's ABI; returns its flags.
pub fn check(n: &GuestNote) -> Result<u32, LoadError> {
    let unknown = n.header.flags & !note::FLAGS_KNOWN;
    if unknown != 0 {
        return Err(LoadError::AbiFlags(unknown));
    }
    if n.header.base() != BASE_FINGERPRINT {
        return Err(LoadError::AbiBase(n.header.base()));
    }
    for g in &n.entries {
        if let Some(why) = differs(g) {
            return Err(LoadError::AbiHypercall(why));
        }
    }
    Ok(n.header.flags)
}

/// How the guest's entry `g` differs from this host's hypercall, if it does.
fn differs(g: &Entry) -> Option<String> {
    // the guest file's text: escaped before it reaches a terminal
    let name = crate::diag::escape(g.name_str());
    let Some(hc) = Hypercall::ALL.into_iter().find(|h| h.nr() == g.nr) else {
        return Some(format!(
            "hypercall {name} (nr {}): the guest was built to call it, this host does not have it",
            g.nr
        ));
    };
    let h = Entry::of(hc);
    if g.name != h.name {
        return Some(format!(
            "hypercall nr {}: the guest calls it {name}, this host {}",
            g.nr,
            hc.name()
        ));
    }
    if g.port != h.port {
        return Some(format!(
            "hypercall {name}: guest expects port {:#x}, host has port {:#x}",
            g.port, h.port
        ));
    }
    if g.transport != h.transport {
        let show = |t: Option<hypercall_abi::Transport>| match t {
            Some(t) => format!("`{}` ({})", t.instruction(), t.carries()),
            None => "an unknown transport".to_string(),
        };
        return Some(format!(
            "hypercall {name}: guest expects {}, host has {}",
            show(g.transport()),
            show(h.transport())
        ));
    }
    if g.block_size != h.block_size {
        return Some(format!(
            "hypercall {name}: guest expects port {:#x} block of {} bytes, host has {} bytes",
            g.port, g.block_size, h.block_size
        ));
    }
    if g.block_layout != h.block_layout {
        return Some(format!(
            "hypercall {name}: guest expects its {}-byte block laid out as {:#010x}, host's is {:#010x} (a field moved, was renamed or retyped)",
            g.block_size, g.block_layout, h.block_layout
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note_bytes(n: &note::Note) -> Vec<u8> {
        // SAFETY: Note is repr(C), 4-byte aligned, with no padding (sizes
        // asserted in hypercall-abi); viewing it as bytes is sound.
        unsafe {
            core::slice::from_raw_parts(
                (n as *const note::Note).cast::<u8>(),
                core::mem::size_of::<note::Note>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn this_hosts_note_parses_and_passes() {
        let bytes = note_bytes(&note::Note::new(note::FLAG_CHECK_42));
        let n = parse_note(&bytes).unwrap();
        assert_eq!(n.header.version, ABI_VERSION);
        assert_eq!(n.header.base(), BASE_FINGERPRINT);
        assert_eq!(n.entries.len(), Hypercall::COUNT);
        assert_eq!(check(&n), Ok(note::FLAG_CHECK_42));
        // another note first, then ours
        let mut two = vec![4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, b'G', b'N', b'U', 0];
        two.extend_from_slice(&bytes);
        assert_eq!(parse_note(&two).unwrap(), n);
        // truncations never panic
        for cut in 0..bytes.len() {
            assert!(parse_note(&bytes[..cut]).is_err());
        }
        // absurd sizes
        let mut huge = bytes.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_note(&huge).is_err());
    }

    fn host_note() -> GuestNote {
        parse_note(&note_bytes(&note::Note::new(0))).unwrap()
    }

    #[test]
    fn a_guest_with_fewer_hypercalls_runs() {
        let mut n = host_note();
        n.entries.truncate(3);
        assert_eq!(check(&n), Ok(0));
    }

    #[test]
    fn the_first_differing_hypercall_is_named() {
        let err = |f: &dyn Fn(&mut GuestNote)| {
            let mut n = host_note();
            f(&mut n);
            check(&n).unwrap_err().to_string()
        };
        assert_eq!(
            err(&|n| n.entries[3].block_size = 24),
            "the guest's hypercall ABI differs from this host's: hypercall print_str: guest expects port 0x503 block of 24 bytes, host has 16 bytes"
        );
        assert!(
            err(&|n| n.entries[5].port = 0x600)
                .ends_with("hypercall gva_to_hva: guest expects port 0x600, host has port 0x505")
        );
        assert!(err(&|n| n.entries[2].transport = 2).ends_with(
            "hypercall num_exits: guest expects `out dx, eax` (the value), host has `in eax, dx` (the result)"
        ));
        assert!(err(&|n| n.entries[3].block_layout ^= 1).contains("a field moved"));
        let mut extra = Entry::of(Hypercall::HostCpuid);
        extra.nr = 40;
        extra.name[..3].copy_from_slice(b"add");
        extra.name[3..].fill(0);
        assert!(err(&|n| n.entries.push(extra)).ends_with(
            "hypercall add (nr 40): the guest was built to call it, this host does not have it"
        ));
        // the name is the file's text: escaped
        let mut evil = extra;
        evil.name[..10].copy_from_slice(b"a\x1b[31m\r\nb\0");
        assert!(err(&|n| n.entries.push(evil)).ends_with(
            "hypercall a\\x1b[31m\\x0d\\x0ab (nr 40): the guest was built to call it, this host does not have it"
        ));
        assert!(err(&|n| n.header.base_lo ^= 1).contains("base fingerprint"));
        assert!(err(&|n| n.header.flags = 0x8000_0000).contains("0x80000000"));
    }

    #[test]
    fn an_old_note_names_its_version() {
        // a v1 note: 16-byte descriptor, version 1
        let mut b = vec![6, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(b"KVMWB\0\0\0");
        for w in [1u32, 1, 0x31cd_5fa9, 0xc032_dee0] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let e = parse_note(&b).unwrap_err().to_string();
        assert!(e.contains("version 1") && e.contains("version 2"), "{e}");
    }
}
