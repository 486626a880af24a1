//! The guest's ABI note (`hypercall_abi::note`): found among the ELF's
//! notes, decoded with every size checked, and compared with this host's
//! ABI hypercall by hypercall. The note lists the hypercalls the guest
//! calls: one this host lacks, or one that differs, is refused with one
//! line naming it (and, for a block, the field that differs); one the
//! guest does not call is not looked at, so a guest built against a newer
//! hypercall-abi runs here when it only calls what this host has.

use super::error::LoadError;
use hypercall_abi::note::{self, Entry, FieldRec, Header};
use hypercall_abi::{ABI_VERSION, BASE_FINGERPRINT, Hypercall};
use std::mem::size_of;

/// Most entries a note may list.
const MAX_ENTRIES: usize = 1024;

/// A guest's ABI note, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNote {
    /// Version, flags, base fingerprint.
    pub header: Header,
    /// The hypercalls the guest calls.
    pub entries: Vec<Listed>,
}

/// One hypercall of a guest's note, with its block's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The entry.
    pub entry: Entry,
    /// The fields of its argument block, in order.
    pub fields: Vec<FieldRec>,
}

impl Listed {
    /// This host's listing of `hc`.
    pub fn of(hc: Hypercall) -> Listed {
        Listed {
            entry: Entry::of(hc),
            fields: hc
                .block()
                .map(|b| b.fields.iter().map(FieldRec::of).collect())
                .unwrap_or_default(),
        }
    }
}

/// The bytes of a whole note (ELF note header, name, descriptor) with
/// `flags` listing `hcs` as this host declares them: what linker/guest.ld
/// assembles for a guest that calls exactly `hcs`.
pub fn note_bytes(flags: u32, hcs: &[Hypercall]) -> Vec<u8> {
    let h = Header::new(flags);
    let mut desc = Vec::new();
    for w in [h.version, h.flags, h.base_lo, h.base_hi] {
        desc.extend_from_slice(&w.to_le_bytes());
    }
    for &hc in hcs {
        let l = Listed::of(hc);
        let e = l.entry;
        desc.extend_from_slice(&e.name);
        desc.extend_from_slice(&e.nr.to_le_bytes());
        desc.extend_from_slice(&e.port.to_le_bytes());
        desc.extend_from_slice(&[e.transport, e.fields]);
        desc.extend_from_slice(&e.block_size.to_le_bytes());
        desc.extend_from_slice(&e.block_layout.to_le_bytes());
        for f in &l.fields {
            desc.extend_from_slice(&f.name);
            desc.extend_from_slice(&f.offset.to_le_bytes());
            desc.extend_from_slice(&f.size.to_le_bytes());
            desc.extend_from_slice(&f.ty);
        }
    }
    let mut b = Vec::new();
    for w in [note::NAME.len() as u32, desc.len() as u32, note::TYPE] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(b"KVMWB\0\0\0");
    b.extend_from_slice(&desc);
    b
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
    };
    let mut rest = &desc[size_of::<Header>()..];
    let mut entries = Vec::new();
    while !rest.is_empty() {
        if entries.len() == MAX_ENTRIES {
            return Err(LoadError::BadAbiNote("more than 1024 hypercalls listed"));
        }
        let Some((e, after)) = rest.split_at_checked(size_of::<Entry>()) else {
            return Err(LoadError::BadAbiNote("an entry runs past the descriptor"));
        };
        let entry = Entry {
            name: e[..note::NAME_LEN]
                .try_into()
                .unwrap_or([0; note::NAME_LEN]),
            nr: u16_at(e, 20),
            port: u16_at(e, 22),
            transport: e[24],
            fields: e[25],
            block_size: u16_at(e, 26),
            block_layout: u32::from_le_bytes([e[28], e[29], e[30], e[31]]),
        };
        let len = usize::from(entry.fields) * size_of::<FieldRec>();
        let Some((f, after)) = after.split_at_checked(len) else {
            return Err(LoadError::BadAbiNote(
                "a block's fields run past the descriptor",
            ));
        };
        let fields = f
            .chunks_exact(size_of::<FieldRec>())
            .map(|r| FieldRec {
                name: r[..note::NAME_LEN]
                    .try_into()
                    .unwrap_or([0; note::NAME_LEN]),
                offset: u16_at(r, 20),
                size: u16_at(r, 22),
                ty: r[24..32].try_into().unwrap_or([0; note::TYPE_LEN]),
            })
            .collect();
        entries.push(Listed { entry, fields });
        rest = after;
    }
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

/// How the guest's listing `g` differs from this host's hypercall, if it
/// does.
fn differs(g: &Listed) -> Option<String> {
    let e = &g.entry;
    // the guest file's text: escaped before it reaches a terminal
    let name = crate::diag::escape(e.name_str());
    let Some(hc) = Hypercall::ALL.into_iter().find(|h| h.nr() == e.nr) else {
        return Some(format!(
            "hypercall {name} (nr {}, port {:#x}): the guest calls it and this host does not have it (a host built from the guest's hypercall-abi has it)",
            e.nr, e.port
        ));
    };
    let h = Listed::of(hc);
    if e.name != h.entry.name {
        return Some(format!(
            "hypercall nr {}: the guest calls it {name}, this host {}",
            e.nr,
            hc.name()
        ));
    }
    if e.port != h.entry.port {
        return Some(format!(
            "hypercall {name}: guest expects port {:#x}, host has port {:#x}",
            e.port, h.entry.port
        ));
    }
    if e.transport != h.entry.transport {
        let show = |t: Option<hypercall_abi::Transport>| match t {
            Some(t) => format!("`{}` ({})", t.instruction(), t.carries()),
            None => "an unknown transport".to_string(),
        };
        return Some(format!(
            "hypercall {name}: guest expects {}, host has {}",
            show(e.transport()),
            show(h.entry.transport())
        ));
    }
    if let Some(why) = field_differs(&g.fields, &h.fields) {
        return Some(format!(
            "hypercall {name} (port {:#x}): its argument block differs: {why}",
            e.port
        ));
    }
    if e.block_size != h.entry.block_size {
        return Some(format!(
            "hypercall {name}: guest expects port {:#x} block of {} bytes, host has {} bytes",
            e.port, e.block_size, h.entry.block_size
        ));
    }
    if e.block_layout != h.entry.block_layout {
        return Some(format!(
            "hypercall {name}: guest expects its {}-byte block laid out as {:#010x}, host's is {:#010x} (its fields agree: the alignment differs)",
            e.block_size, e.block_layout, h.entry.block_layout
        ));
    }
    None
}

/// `u32 at offset 8` for a field record; `u32 (8 bytes) at offset 8` when
/// its size is not its type's.
fn placed(f: &FieldRec) -> String {
    let ty = f.ty_str();
    let natural = match ty {
        "u8" | "i8" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" => 4,
        "u64" | "i64" => 8,
        _ => 0,
    };
    let size = if natural == f.size {
        String::new()
    } else {
        format!(" ({} bytes)", f.size)
    };
    format!("{}{size} at offset {}", crate::diag::escape(ty), f.offset)
}

/// The first field in which the guest's block (`g`) and the host's (`h`)
/// differ, in words.
fn field_differs(g: &[FieldRec], h: &[FieldRec]) -> Option<String> {
    for i in 0..g.len().max(h.len()) {
        match (g.get(i), h.get(i)) {
            (Some(gf), Some(hf)) if gf.name != hf.name => {
                return Some(format!(
                    "field {i} is `{}` ({}) in the guest, `{}` ({}) in this host",
                    crate::diag::escape(gf.name_str()),
                    placed(gf),
                    hf.name_str(),
                    placed(hf)
                ));
            }
            (Some(gf), Some(hf)) if gf != hf => {
                return Some(format!(
                    "field `{}` is {} in the guest, {} in this host",
                    hf.name_str(),
                    placed(gf),
                    placed(hf)
                ));
            }
            (Some(gf), None) => {
                return Some(format!(
                    "the guest's has field `{}` ({}), this host's has no such field",
                    crate::diag::escape(gf.name_str()),
                    placed(gf)
                ));
            }
            (None, Some(hf)) => {
                return Some(format!(
                    "this host's has field `{}` ({}), the guest's has no such field",
                    hf.name_str(),
                    placed(hf)
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_hosts_note_parses_and_passes() {
        let bytes = note_bytes(note::FLAG_CHECK_42, &Hypercall::ALL);
        assert_eq!(bytes.len(), 20 + note::full_desc_size());
        let n = parse_note(&bytes).unwrap();
        assert_eq!(n.header.version, ABI_VERSION);
        assert_eq!(n.header.base(), BASE_FINGERPRINT);
        assert_eq!(n.entries.len(), Hypercall::COUNT);
        assert_eq!(n.entries[3].fields.len(), 3);
        assert_eq!(check(&n), Ok(note::FLAG_CHECK_42));
        // another note first, then ours
        let mut two = vec![4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, b'G', b'N', b'U', 0];
        two.extend_from_slice(&bytes);
        assert_eq!(parse_note(&two).unwrap(), n);
        // a descriptor cut anywhere never panics; it parses only where a
        // listing ends (a shorter list), else it is refused
        let mut ends = vec![size_of::<Header>()];
        for hc in Hypercall::ALL {
            ends.push(ends[ends.len() - 1] + note::listing_size(hc));
        }
        for cut in 0..=note::full_desc_size() {
            let mut b = bytes[..20 + cut].to_vec();
            b[4..8].copy_from_slice(&(cut as u32).to_le_bytes());
            assert_eq!(parse_note(&b).is_ok(), ends.contains(&cut), "cut at {cut}");
        }
        for cut in 0..20 {
            assert!(parse_note(&bytes[..cut]).is_err());
        }
        // absurd sizes
        let mut huge = bytes.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_note(&huge).is_err());
    }

    fn host_note() -> GuestNote {
        parse_note(&note_bytes(0, &Hypercall::ALL)).unwrap()
    }

    #[test]
    fn a_guest_listing_fewer_hypercalls_runs() {
        let n = parse_note(&note_bytes(0, &[Hypercall::Print8bit, Hypercall::GvaToHva])).unwrap();
        assert_eq!(n.entries.len(), 2);
        assert_eq!(check(&n), Ok(0));
        let none = parse_note(&note_bytes(0, &[])).unwrap();
        assert_eq!(check(&none), Ok(0));
    }

    #[test]
    fn the_first_differing_hypercall_is_named() {
        let err = |f: &dyn Fn(&mut GuestNote)| {
            let mut n = host_note();
            f(&mut n);
            check(&n).unwrap_err().to_string()
        };
        assert_eq!(
            err(&|n| n.entries[3].entry.block_size = 24),
            "the guest's hypercall ABI differs from this host's: hypercall print_str: guest expects port 0x503 block of 24 bytes, host has 16 bytes"
        );
        assert!(
            err(&|n| n.entries[5].entry.port = 0x600)
                .ends_with("hypercall gva_to_hva: guest expects port 0x600, host has port 0x505")
        );
        assert!(err(&|n| n.entries[2].entry.transport = 2).ends_with(
            "hypercall num_exits: guest expects `out dx, eax` (the value), host has `in eax, dx` (the result)"
        ));
        assert!(
            err(&|n| n.entries[3].entry.block_layout ^= 1)
                .ends_with("(its fields agree: the alignment differs)")
        );
        let mut extra = Listed::of(Hypercall::HostCpuid);
        extra.entry.nr = 40;
        extra.entry.port = 0x528;
        extra.entry.name = [0; note::NAME_LEN];
        extra.entry.name[..3].copy_from_slice(b"mul");
        let add = |l: &Listed| {
            let l = l.clone();
            move |n: &mut GuestNote| n.entries.push(l.clone())
        };
        assert!(err(&add(&extra)).ends_with(
            "hypercall mul (nr 40, port 0x528): the guest calls it and this host does not have it (a host built from the guest's hypercall-abi has it)"
        ));
        // the name is the file's text: escaped
        let mut evil = extra.clone();
        evil.entry.name[..10].copy_from_slice(b"a\x1b[31m\r\nb\0");
        assert!(err(&add(&evil)).contains("hypercall a\\x1b[31m\\x0d\\x0ab (nr 40"));
        assert!(err(&|n| n.header.base_lo ^= 1).contains("base fingerprint"));
        assert!(err(&|n| n.header.flags = 0x8000_0000).contains("0x80000000"));
    }

    #[test]
    fn a_block_that_differs_names_its_field() {
        let err = |f: &dyn Fn(&mut Vec<FieldRec>)| {
            let mut n = host_note();
            f(&mut n.entries[5].fields);
            check(&n).unwrap_err().to_string()
        };
        let pre = "the guest's hypercall ABI differs from this host's: hypercall gva_to_hva (port 0x505): its argument block differs: ";
        // hva read as u32 (gva_to_hva's block: gva u64, hva u64, status i32, reserved u32)
        assert_eq!(
            err(&|f| {
                f[1].ty = *b"u32\0\0\0\0\0";
                f[1].size = 4;
            }),
            format!(
                "{pre}field `hva` is u32 at offset 8 in the guest, u64 at offset 8 in this host"
            )
        );
        assert_eq!(
            err(&|f| f[2].name[..6].copy_from_slice(b"state\0")),
            format!(
                "{pre}field 2 is `state` (i32 at offset 16) in the guest, `status` (i32 at offset 16) in this host"
            )
        );
        assert_eq!(
            err(&|f| {
                f.pop();
            }),
            format!(
                "{pre}this host's has field `reserved` (u32 at offset 20), the guest's has no such field"
            )
        );
        assert_eq!(
            err(&|f| {
                let mut x = f[3];
                x.offset = 24;
                x.name[..6].copy_from_slice(b"extra\0");
                f.push(x);
            }),
            format!(
                "{pre}the guest's has field `extra` (u32 at offset 24), this host's has no such field"
            )
        );
    }

    #[test]
    fn an_old_note_names_its_version() {
        // a v2 note: 20-byte descriptor header, no entries
        let mut b = vec![6, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(b"KVMWB\0\0\0");
        for w in [2u32, 1, 0x31cd_5fa9, 0xc032_dee0, 0] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let e = parse_note(&b).unwrap_err().to_string();
        assert!(e.contains("version 2") && e.contains("version 3"), "{e}");
    }
}
