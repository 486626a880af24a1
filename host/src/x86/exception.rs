//! CPU exceptions (vectors 0-31): their names, which push an error code,
//! what an error code says, and the host's IDT for guests that have none
//! (long mode): every vector's gate leads to an 8-byte stub that saves RDX
//! and reports the exception to the host with an `out` to
//! `layout::EXCEPTION_PORT`, on a stack of its own (IST1 of a per-vCPU
//! TSS), before the CPU could escalate it to a double or triple fault.

use hypercall_abi::layout;
use kvm_bindings::{kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryError, GuestMemoryMmap};

/// The mnemonic and name of exception `vector`.
pub fn name(vector: u8) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        9 => ("CSO", "coprocessor segment overrun"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection fault"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point exception"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection exception"),
        28 => ("#HV", "hypervisor injection exception"),
        29 => ("#VC", "VMM communication exception"),
        30 => ("#SX", "security exception"),
        _ => ("#??", "reserved exception"),
    }
}

/// Whether the CPU pushes an error code for exception `vector`.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// What an error code says, in words: a page fault's bits, or the
/// selector a segment-related fault names.
pub fn explain_error_code(vector: u8, code: u64) -> String {
    if vector == 14 {
        let mut w = vec![
            if code & 1 != 0 {
                "protection violation"
            } else {
                "not present"
            },
            if code & 2 != 0 { "write" } else { "read" },
            if code & 4 != 0 { "user" } else { "kernel" },
        ];
        if code & 8 != 0 {
            w.push("reserved bit set");
        }
        if code & 16 != 0 {
            w.push("instruction fetch");
        }
        if code & 32 != 0 {
            w.push("protection key");
        }
        if code & 64 != 0 {
            w.push("shadow stack");
        }
        return w.join(", ");
    }
    if matches!(vector, 10..=13 | 17) {
        if code == 0 {
            return "no selector".into();
        }
        let table = match (code >> 1) & 3 {
            0 => "GDT",
            2 => "LDT",
            _ => "IDT",
        };
        let ext = if code & 1 != 0 {
            ", external event"
        } else {
            ""
        };
        return format!("{table} selector {:#x}{ext}", code & 0xfff8);
    }
    String::new()
}

/// Size of one stub (`push rdx; mov edx, PORT; out dx, al; hlt`).
pub const STUB_SIZE: u64 = 8;
/// Exceptions the host's IDT covers.
pub const VECTORS: u64 = 32;
/// The host's IDT (32 gates of 16 bytes).
pub const IDT: u64 = layout::HOST_IDT;
/// The stubs, right after the IDT.
pub const STUBS: u64 = IDT + VECTORS * 16;
/// One 104-byte TSS per vCPU (in 128-byte slots), after the stubs.
pub const TSS: u64 = STUBS + VECTORS * STUB_SIZE;
/// Each vCPU's exception stack (IST1), 256 bytes, after the TSSs; the
/// stub's frame takes 48 bytes.
pub const IST_STACKS: u64 = TSS + layout::MAX_VCPUS * 128;
/// Bytes of one exception stack.
pub const IST_SIZE: u64 = 256;
/// GDT index of vCPU 0's TSS descriptor (16 bytes: two entries each).
pub const TSS_GDT_INDEX: u64 = 3;

const _: () = assert!(IST_STACKS + layout::MAX_VCPUS * IST_SIZE <= layout::HOST_IDT_END);

/// The 8-byte stub of every vector: `push rdx; mov edx, PORT; out dx, al;
/// hlt` (the host reads the exception at the `out`; `hlt` is never run).
pub fn stub() -> [u8; STUB_SIZE as usize] {
    let p = u32::from(layout::EXCEPTION_PORT).to_le_bytes();
    [0x52, 0xba, p[0], p[1], p[2], p[3], 0xee, 0xf4]
}

/// The 64-bit interrupt gate of `vector`: to its stub, code selector
/// `code`, IST1, DPL 0, present.
pub fn gate(vector: u64, code: u16) -> [u8; 16] {
    let target = STUBS + vector * STUB_SIZE;
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(target as u16).to_le_bytes());
    g[2..4].copy_from_slice(&code.to_le_bytes());
    g[4] = 1; // IST1
    g[5] = 0x8e; // present, DPL 0, 64-bit interrupt gate
    g[6..8].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((target >> 32) as u32).to_le_bytes());
    g
}

/// vCPU `id`'s TSS: only IST1 set (its exception stack's top); no I/O
/// bitmap (iomap base past the limit).
pub fn tss(id: u64) -> [u8; 104] {
    let mut t = [0u8; 104];
    let top = IST_STACKS + (id + 1) * IST_SIZE;
    t[0x24..0x2c].copy_from_slice(&top.to_le_bytes());
    t[0x66..0x68].copy_from_slice(&104u16.to_le_bytes());
    t
}

/// The two GDT entries of vCPU `id`'s TSS descriptor (64-bit available
/// TSS, limit 103).
pub fn tss_descriptor(id: u64) -> [u64; 2] {
    let base = TSS + id * 128;
    let limit = 103u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, type 9 (available 64-bit TSS)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// Where the host's stub for `vector` starts, if `rip` lies in a stub
/// (RIP at an `out` exit points into it).
pub fn vector_at(rip: u64) -> Option<u8> {
    let off = rip.checked_sub(STUBS)?;
    (off < VECTORS * STUB_SIZE).then_some((off / STUB_SIZE) as u8)
}

/// The guard page below vCPU `id`'s stack: not present in the host's page
/// tables, so a stack that overflows faults there instead of running into
/// the memory below it.
pub fn stack_guard(id: u64) -> std::ops::Range<u64> {
    let bottom = layout::STACK_TOP - (id + 1) * layout::VCPU_STACK_SIZE;
    bottom..bottom + 0x1000
}

/// Which of `vcpus` vCPUs' stack guard `addr` is in, if any.
pub fn in_stack_guard(addr: u64, vcpus: u64) -> Option<u64> {
    (0..vcpus).find(|&id| stack_guard(id).contains(&addr))
}

/// Writes the host's IDT, its stubs and `vcpus` TSSs into guest memory,
/// and each TSS's descriptor into the host's GDT (after its three entries).
pub fn write_host_idt(mem: &GuestMemoryMmap, vcpus: u64) -> Result<(), GuestMemoryError> {
    // the gates and the stubs are one block, written at once
    let mut block = [0u8; (VECTORS * (16 + STUB_SIZE)) as usize];
    let (gates, stubs) = block.split_at_mut((VECTORS * 16) as usize);
    let pairs = gates.chunks_exact_mut(16).zip(stubs.chunks_exact_mut(8));
    for (v, (g, s)) in (0..).zip(pairs) {
        g.copy_from_slice(&gate(v, super::gdt::CODE_SELECTOR));
        s.copy_from_slice(&stub());
    }
    mem.write_slice(&block, GuestAddress(IDT))?;
    for id in 0..vcpus {
        mem.write_slice(&tss(id), GuestAddress(TSS + id * 128))?;
        let at = layout::GDT + (TSS_GDT_INDEX + 2 * id) * 8;
        for (i, d) in tss_descriptor(id).iter().enumerate() {
            mem.write_obj(*d, GuestAddress(at + 8 * i as u64))?;
        }
    }
    Ok(())
}

/// vCPU `id`'s start registers with the host's IDT and its TSS (so IST1,
/// its exception stack, is there when an exception comes), and a GDT
/// limit that covers the TSS descriptors of `vcpus` vCPUs.
pub fn use_host_idt(s: &mut kvm_sregs, id: u64, vcpus: u64) {
    s.idt.base = IDT;
    s.idt.limit = (VECTORS * 16 - 1) as u16;
    s.gdt.limit = ((TSS_GDT_INDEX + 2 * vcpus) * 8 - 1) as u16;
    s.tr = kvm_segment {
        base: TSS + id * 128,
        limit: 103,
        selector: ((TSS_GDT_INDEX + 2 * id) * 8) as u16,
        type_: 11, // busy 64-bit TSS
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_error_codes_and_gates() {
        assert_eq!(name(14), ("#PF", "page fault"));
        assert_eq!(name(0).0, "#DE");
        assert!(has_error_code(13) && has_error_code(14) && !has_error_code(6));
        assert_eq!(explain_error_code(14, 0x2), "not present, write, kernel");
        assert_eq!(
            explain_error_code(14, 0x15),
            "protection violation, read, user, instruction fetch"
        );
        assert_eq!(explain_error_code(13, 0), "no selector");
        assert_eq!(explain_error_code(13, 0x12), "IDT selector 0x10");
        let g = gate(14, 0x08);
        let target = u64::from(u16::from_le_bytes([g[0], g[1]]))
            | (u64::from(u16::from_le_bytes([g[6], g[7]])) << 16);
        assert_eq!(target, STUBS + 14 * STUB_SIZE);
        assert_eq!((g[4], g[5]), (1, 0x8e));
        assert_eq!(vector_at(STUBS + 14 * STUB_SIZE + 7), Some(14));
        assert_eq!(vector_at(STUBS - 1), None);
        assert_eq!(vector_at(STUBS + VECTORS * STUB_SIZE), None);
        let [lo, hi] = tss_descriptor(1);
        let base = ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | (hi << 32);
        assert_eq!(base, TSS + 128);
        assert_eq!(stub()[6..], [0xee, 0xf4]);
        let t = tss(0);
        assert_eq!(
            u64::from_le_bytes(t[0x24..0x2c].try_into().unwrap()),
            IST_STACKS + IST_SIZE
        );
        let guard0 = layout::STACK_TOP - layout::VCPU_STACK_SIZE;
        assert_eq!(in_stack_guard(guard0 + 8, 1), Some(0));
        assert_eq!(in_stack_guard(guard0 - 8, 2), None);
        assert_eq!(in_stack_guard(guard0 - layout::VCPU_STACK_SIZE, 2), Some(1));
        assert_eq!(in_stack_guard(guard0 - layout::VCPU_STACK_SIZE, 1), None);
        assert_eq!(in_stack_guard(layout::STACK_TOP - 8, 7), None);
    }
}
