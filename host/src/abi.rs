//! `host abi`: the hypercall ABI this host speaks, printed from
//! hypercall-abi's one declaration, and the generated parts of
//! docs/abi.md. A region of that document starts at a line containing
//! `abi:NAME:begin` and ends at one containing `abi:NAME:end`; everything
//! between is written by [`splice`] (`make abi-doc`) and checked by
//! [`check_doc`] (a test), so the document cannot drift from the crate.

use hypercall_abi::block::BlockLayout;
use hypercall_abi::note::{self, Entry};
use hypercall_abi::{ABI_VERSION, BASE_FINGERPRINT, FINGERPRINT, Hypercall};
use std::fmt::Write as _;

/// The text `host abi` prints.
pub fn table() -> String {
    let mut s = format!(
        "hypercall ABI v{ABI_VERSION}: {} hypercalls, fingerprint {FINGERPRINT:#018x} (base {BASE_FINGERPRINT:#018x})\n",
        Hypercall::COUNT
    );
    s.push_str("nr  name               port    instruction   carries                    block\n");
    for hc in Hypercall::ALL {
        let t = hc.transport();
        let block = hc
            .block()
            .map(|b| format!("{} ({} bytes)", b.name, b.size))
            .unwrap_or_default();
        let row = format!(
            "{:<3} {:<18} {:#06x}  {:<13} {:<26} {block}",
            hc.nr(),
            hc.name(),
            hc.port(),
            t.instruction(),
            t.carries()
        );
        s.push_str(row.trim_end());
        s.push('\n');
    }
    s
}

/// The C type of a block field's Rust type.
fn c_type(ty: &str) -> &str {
    match ty {
        "u8" => "uint8_t",
        "u16" => "uint16_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "i8" => "int8_t",
        "i16" => "int16_t",
        "i32" => "int32_t",
        "i64" => "int64_t",
        other => other,
    }
}

fn c_struct(b: &BlockLayout) -> String {
    let mut s = format!(
        "struct {} {{ /* size {}, align {} */\n",
        b.name, b.size, b.align
    );
    for f in b.fields {
        let decl = format!("    {:<9} {};", c_type(f.ty), f.name);
        let doc = f.doc.trim().replace("[`", "").replace("`]", "");
        let _ = writeln!(s, "{decl:<28}/* {}: {doc} */", f.offset);
    }
    s.push_str("};\n");
    s
}

/// Every block that a hypercall uses, once each, in table order.
fn blocks() -> Vec<&'static BlockLayout> {
    let mut v: Vec<&BlockLayout> = Vec::new();
    for hc in Hypercall::ALL {
        if let Some(b) = hc.block()
            && !v.iter().any(|x| x.name == b.name)
        {
            v.push(b);
        }
    }
    v
}

/// The assembly lines of `hc`'s entry and its block's field records.
fn asm_listing(hc: Hypercall) -> String {
    let e = Entry::of(hc);
    let name = e.name_str();
    let mut s = format!(
        "        .ascii \"{name}\"; .zero {}; .short {}, {:#x}; .byte {}, {}; .short {}; .long {:#x}\n",
        note::NAME_LEN - name.len(),
        e.nr,
        e.port,
        e.transport,
        e.fields,
        e.block_size,
        e.block_layout
    );
    for f in hc.block().map(|b| b.fields).unwrap_or_default() {
        let _ = writeln!(
            s,
            "        .ascii \"{}\"; .zero {}; .short {}, {}; .ascii \"{}\"; .zero {}",
            f.name,
            note::NAME_LEN - f.name.len(),
            f.offset,
            f.size,
            f.ty,
            note::TYPE_LEN - f.ty.len()
        );
    }
    s
}

/// The hypercalls docs/abi.md's assembly guest calls.
const ASM_CALLS: [Hypercall; 2] = [Hypercall::Print8bit, Hypercall::PrintStr];

/// The generated regions of docs/abi.md: (name, content).
pub fn regions() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    out.push(("host-abi", format!("```\n$ host abi\n{}```\n", table())));

    let mut t = String::from(
        "| nr | name | port | instruction | the I/O data carries | block | what it does |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for hc in Hypercall::ALL {
        let tr = hc.transport();
        let _ = writeln!(
            t,
            "| {} | `{}` | {:#x} | `{}` | {} | {} | {} |",
            hc.nr(),
            hc.name(),
            hc.port(),
            tr.instruction(),
            tr.carries(),
            hc.block().map_or("-".into(), |b| format!("`{}`", b.name)),
            hc.doc().trim().replace("[`", "`").replace("`]", "`")
        );
    }
    out.push(("hypercalls", t));

    let mut c = String::from("```c\n");
    for (i, b) in blocks().into_iter().enumerate() {
        if i > 0 {
            c.push('\n');
        }
        c.push_str(&c_struct(b));
    }
    c.push_str("```\n");
    out.push(("blocks", c));

    let n = Hypercall::COUNT;
    let mut nt = format!(
        "The descriptor is a 16-byte header, then one 32-byte entry per\n\
         hypercall the guest calls, each followed by one 32-byte record per\n\
         field of its argument block. A note listing all {n} hypercalls of this\n\
         ABI has `descsz` = {}; the assembly guest below lists the two it calls\n\
         (`descsz` = {}).\n\n\
         | offset | size | field | value |\n| --- | --- | --- | --- |\n\
         | 0 | 4 | namesz | 6 |\n| 4 | 4 | descsz | 16 + the entries and records that follow |\n| 8 | 4 | type | {} |\n\
         | 12 | 8 | name | `\"KVMWB\\0\"` + 2 bytes of padding |\n\
         | 20 | 4 | version | {ABI_VERSION} |\n\
         | 24 | 4 | flags | bit 0: run the 42 check at HLT; bit 1: runs on several vCPUs (`--vcpus`); bit 2: a test build (`cargo test`: RDX at entry is `TESTS_LIST` = u64::MAX, list the tests, or a test\'s index, run it; RAX 101 at HLT: it panicked); bit 3: give the vCPUs the host\'s CPU features (KVM\'s supported CPUID: the guest kernel, SMP guests, `entry!(main, cpuid)`); bit 4: interrupts from the user-space controller (`--irqchip user`); bit 5: KVM\'s in-kernel PIC, APICs and PIT (`--irqchip kernel`; [interrupts.md](interrupts.md)); other bits must be 0 |\n\
         | 28 | 4 | base fingerprint, low 32 bits | {:#010x} |\n\
         | 32 | 4 | base fingerprint, high 32 bits | {:#010x} |\n\
         | 36 | to the end | entries, each with its field records | below |\n\n\
         Each entry:\n\n\
         | offset | size | field |\n| --- | --- | --- |\n\
         | 0 | 20 | the hypercall's name, NUL-padded |\n| 20 | 2 | nr |\n| 22 | 2 | port |\n\
         | 24 | 1 | transport: 1 `out dx, al`, 2 `out dx, eax` (a value), 3 `in eax, dx`, 4 `out dx, eax` (a block's GPA) |\n\
         | 25 | 1 | how many field records follow (0: no block) |\n| 26 | 2 | the block's size (0: none) |\n\
         | 28 | 4 | the block's layout hash (0: none): size, alignment, and every field's name, type, offset and size |\n\n\
         Each field record:\n\n\
         | offset | size | field |\n| --- | --- | --- |\n\
         | 0 | 20 | the field's name, NUL-padded |\n| 20 | 2 | its offset in the block |\n\
         | 22 | 2 | its size |\n| 24 | 8 | its type (`u64`, `i32`, ...), NUL-padded |\n\n\
         This host's entries:\n\n| nr | name | port | transport | fields | block size | block layout |\n| --- | --- | --- | --- | --- | --- | --- |\n",
        note::full_desc_size(),
        16 + ASM_CALLS
            .iter()
            .map(|&h| note::listing_size(h))
            .sum::<usize>(),
        note::TYPE,
        BASE_FINGERPRINT as u32,
        (BASE_FINGERPRINT >> 32) as u32,
    );
    for hc in Hypercall::ALL {
        let e = Entry::of(hc);
        let _ = writeln!(
            nt,
            "| {} | {} | {:#x} | {} | {} | {} | {:#010x} |",
            e.nr,
            e.name_str(),
            e.port,
            e.transport,
            e.fields,
            e.block_size,
            e.block_layout
        );
    }
    out.push(("note", nt));

    let mut a = format!(
        "        .section .note.kvmwb.abi, \"a\", @note\n\
         \x20       .balign 4\n\
         \x20       .long 6, {}, 1             # namesz, descsz, type\n\
         \x20       .ascii \"KVMWB\\0\\0\\0\"        # name, padded to 4\n\
         \x20       .long {ABI_VERSION}, 1                  # version, flags: check 42\n\
         \x20       .long {:#010x}, {:#010x}  # base fingerprint, low and high words\n\
         \x20       # entries: name, nr, port, transport, field records, block size, block layout;\n\
         \x20       # each block field: name, offset, size, type\n",
        16 + ASM_CALLS
            .iter()
            .map(|&h| note::listing_size(h))
            .sum::<usize>(),
        BASE_FINGERPRINT as u32,
        (BASE_FINGERPRINT >> 32) as u32,
    );
    for hc in ASM_CALLS {
        a.push_str(&asm_listing(hc));
    }
    out.push(("asm-note", a));
    out
}

/// `doc` with every generated region rewritten; an error names a region
/// whose begin or end line is missing.
pub fn splice(doc: &str) -> Result<String, String> {
    let mut text = doc.to_string();
    for (name, content) in regions() {
        let begin = format!("abi:{name}:begin");
        let end = format!("abi:{name}:end");
        let b = text
            .find(&begin)
            .ok_or_else(|| format!("no line with `{begin}`"))?;
        let b = text[b..]
            .find('\n')
            .map(|i| b + i + 1)
            .unwrap_or(text.len());
        let e = text[b..]
            .find(&end)
            .map(|i| b + i)
            .ok_or_else(|| format!("no line with `{end}` after `{begin}`"))?;
        let e = text[..e].rfind('\n').map(|i| i + 1).unwrap_or(b);
        text.replace_range(b..e, &content);
    }
    Ok(text)
}

/// Ok when `doc` (docs/abi.md) holds exactly what [`splice`] would write.
pub fn check_doc(doc: &str) -> Result<(), String> {
    match splice(doc) {
        Ok(s) if s == doc => Ok(()),
        Ok(_) => Err("docs/abi.md is stale: run `make abi-doc`".into()),
        Err(e) => Err(format!("docs/abi.md: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_rewrites_only_between_the_markers() {
        let mut doc = String::from("intro\n");
        for (name, _) in regions() {
            doc.push_str(&format!(
                "<!-- abi:{name}:begin -->\nold\n<!-- abi:{name}:end -->\n"
            ));
        }
        doc.push_str("outro\n");
        let s = splice(&doc).unwrap();
        assert!(s.starts_with("intro\n<!-- abi:host-abi:begin -->\n```\n$ host abi\n"));
        assert!(s.ends_with("<!-- abi:asm-note:end -->\noutro\n"));
        assert!(!s.contains("old"));
        assert_eq!(check_doc(&s), Ok(()));
        assert_eq!(
            check_doc(&doc),
            Err("docs/abi.md is stale: run `make abi-doc`".into())
        );
        assert!(
            splice("no markers")
                .unwrap_err()
                .contains("abi:host-abi:begin")
        );
    }

    #[test]
    fn c_structs_follow_the_layouts() {
        let c = c_struct(Hypercall::PrintStr.block().unwrap());
        assert!(c.starts_with("struct PrintStrArgs { /* size 16, align 8 */\n"));
        assert!(
            c.contains("    uint32_t  len;          /* 8: Out: bytes printed (NUL excluded). */"),
            "{c}"
        );
        assert!(c.contains("/* 12: Out: an HcStatus value. */"), "{c}");
    }
}
