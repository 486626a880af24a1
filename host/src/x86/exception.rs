//! CPU exceptions (vectors 0-31): their names, which push an error code,
//! what an error code says, and the host's tables for guests that have
//! none, in every mode: every vector leads to an 8-byte stub that saves
//! (R/E)DX and reports the exception to the host with an `out` to
//! `layout::EXCEPTION_PORT`. Long mode: an IDT whose gates switch to a
//! stack of their own (IST1 of a per-vCPU TSS), before the CPU could
//! escalate a fault to a double or triple fault. 32-bit modes: an IDT of
//! 32 gates (on the faulting stack). Real mode: the IVT at 0, all 256
//! vectors (an `int N` with no handler is reported too). Which stub the
//! `out` came from is the vector ([`vector_at`]); [`frame_at`] reads what
//! the CPU pushed.

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
        32.. => ("INT", "interrupt with no handler"),
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

/// 32-bit modes: the host's IDT (32 gates of 8 bytes), in the same area.
pub const IDT32: u64 = layout::HOST_IDT;
/// 32-bit modes: the stubs, right after that IDT.
pub const STUBS32: u64 = IDT32 + VECTORS * 8;
/// Real mode: vectors in the IVT (all of them).
pub const REAL_VECTORS: u64 = 256;

const _: () = assert!(STUBS32 + VECTORS * STUB_SIZE <= layout::HOST_IDT_END);
const _: () = assert!(layout::REAL_STUBS + REAL_VECTORS * STUB_SIZE == layout::REAL_STUBS_END);

/// Which stub table an exception came through: the CPU mode at the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubMode {
    /// 16-bit real mode: the IVT's stubs.
    Real,
    /// 32-bit protected mode, paged or not.
    Prot32,
    /// 64-bit long mode.
    Long,
}

impl StubMode {
    /// The mode the special registers say the vCPU is in.
    pub fn of(s: &kvm_sregs) -> StubMode {
        if s.cr0 & 1 == 0 {
            StubMode::Real
        } else if s.efer & (1 << 10) != 0 {
            StubMode::Long
        } else {
            StubMode::Prot32
        }
    }

    /// The linear address of `ip` in code segment `cs`.
    pub fn linear(self, cs_base: u64, ip: u64) -> u64 {
        match self {
            StubMode::Real => cs_base + (ip & 0xffff),
            StubMode::Prot32 => (cs_base + (ip & 0xffff_ffff)) & 0xffff_ffff,
            StubMode::Long => ip,
        }
    }
}

/// The 16-bit stub: `push dx; mov dx, PORT; out dx, al; hlt` and two nops.
pub fn stub16() -> [u8; STUB_SIZE as usize] {
    let p = layout::EXCEPTION_PORT.to_le_bytes();
    [0x52, 0xba, p[0], p[1], 0xee, 0xf4, 0x90, 0x90]
}

/// The 32-bit interrupt gate of `vector`: to its stub, code selector
/// `code`, DPL 0, present.
pub fn gate32(vector: u64, code: u16) -> [u8; 8] {
    let target = STUBS32 + vector * STUB_SIZE;
    let mut g = [0u8; 8];
    g[0..2].copy_from_slice(&(target as u16).to_le_bytes());
    g[2..4].copy_from_slice(&code.to_le_bytes());
    g[5] = 0x8e; // present, DPL 0, 32-bit interrupt gate
    g[6..8].copy_from_slice(&((target >> 16) as u16).to_le_bytes());
    g
}

/// Real mode: writes the IVT at 0 (vector v to `0000:REAL_STUBS + 8v`)
/// and the stubs.
pub fn write_real_ivt(mem: &GuestMemoryMmap) -> Result<(), GuestMemoryError> {
    let mut ivt = [0u8; (REAL_VECTORS * 4) as usize];
    let mut stubs = [0u8; (REAL_VECTORS * STUB_SIZE) as usize];
    for (v, (e, st)) in (0..).zip(ivt.chunks_exact_mut(4).zip(stubs.chunks_exact_mut(8))) {
        let off = (layout::REAL_STUBS + v * STUB_SIZE) as u16;
        e[0..2].copy_from_slice(&off.to_le_bytes());
        st.copy_from_slice(&stub16());
    }
    mem.write_slice(&ivt, GuestAddress(0))?;
    mem.write_slice(&stubs, GuestAddress(layout::REAL_STUBS))
}

/// 32-bit modes: writes the host's IDT and its stubs.
pub fn write_idt32(mem: &GuestMemoryMmap) -> Result<(), GuestMemoryError> {
    let mut block = [0u8; (VECTORS * (8 + STUB_SIZE)) as usize];
    let (gates, stubs) = block.split_at_mut((VECTORS * 8) as usize);
    for (v, (g, st)) in (0..).zip(gates.chunks_exact_mut(8).zip(stubs.chunks_exact_mut(8))) {
        g.copy_from_slice(&gate32(v, super::gdt::CODE_SELECTOR));
        st.copy_from_slice(&stub());
    }
    mem.write_slice(&block, GuestAddress(IDT32))
}

/// The start registers of a 32-bit mode with the host's IDT.
pub fn use_idt32(s: &mut kvm_sregs) {
    s.idt.base = IDT32;
    s.idt.limit = (VECTORS * 8 - 1) as u16;
}

/// What the CPU pushed for an exception, and the stub's saved (R/E)DX:
/// the registers of the moment it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The error code, for the vectors that push one (not in real mode).
    pub error_code: Option<u64>,
    /// The faulting (or next) instruction.
    pub ip: u64,
    /// Its code segment selector (real mode: the segment).
    pub cs: u16,
    /// The flags.
    pub flags: u64,
    /// The stack pointer before the exception.
    pub sp: u64,
    /// (R/E)DX before the stub saved it.
    pub dx: u64,
    /// An `int N` instruction raised it (no error code was pushed, and
    /// `ip` is that instruction's: the CPU's frame had the next one).
    pub software: bool,
}

/// Reads the frame at stack address `sp` (linear) of an exception
/// `vector` taken in `mode` through the host's stub; `word(at, bytes)`
/// reads guest memory, and `int_before(ip, cs)` says whether the two bytes
/// before `ip` in segment `cs` are `int vector` (a software interrupt
/// pushes no error code and leaves the next instruction in the frame).
/// None if part of it cannot be read.
pub fn frame_at(
    mode: StubMode,
    vector: u8,
    sp: u64,
    word: impl Fn(u64, usize) -> Option<u64>,
    int_before: impl Fn(u64, u16) -> bool,
) -> Option<Frame> {
    let w: u64 = match mode {
        StubMode::Real => 2,
        StubMode::Prot32 => 4,
        StubMode::Long => 8,
    };
    let read = |at: u64| word(at, w as usize);
    let dx = read(sp)?;
    // the CPU pushes an error code for some exceptions, never in real mode
    // and never for `int N`
    let mut code = mode != StubMode::Real && vector < 32 && has_error_code(vector);
    let plain = sp + w;
    let (ip0, cs0) = (read(plain)?, read(plain + w)? as u16);
    let software = int_before(ip0, cs0);
    if software {
        code = false;
    }
    let error_code = if code { Some(read(plain)?) } else { None };
    let at = plain + w * u64::from(code);
    let ip = read(at)?;
    let cs = read(at + w)? as u16;
    let flags = read(at + 2 * w)?;
    let sp = match mode {
        // no stack switch at CPL 0: the frame sat on the guest's stack
        StubMode::Real | StubMode::Prot32 => at + 3 * w,
        // IST1: the CPU pushed the old RSP (and SS)
        StubMode::Long => read(at + 24)?,
    };
    Some(Frame {
        error_code,
        ip: if software { ip.wrapping_sub(2) } else { ip },
        cs,
        flags,
        sp,
        dx,
        software,
    })
}

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

/// The vector whose stub the linear address `at` lies in, in `mode`
/// (RIP at an `out` exit points into the stub).
pub fn vector_at(mode: StubMode, at: u64) -> Option<u8> {
    let (base, n) = match mode {
        StubMode::Real => (layout::REAL_STUBS, REAL_VECTORS),
        StubMode::Prot32 => (STUBS32, VECTORS),
        StubMode::Long => (STUBS, VECTORS),
    };
    let off = at.checked_sub(base)?;
    (off < n * STUB_SIZE).then_some((off / STUB_SIZE) as u8)
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

    /// A stack of `w`-byte slots holding `words` from address 0x1000.
    fn stack(w: usize, words: &[u64]) -> impl Fn(u64, usize) -> Option<u64> + '_ {
        move |at, size| {
            assert_eq!(size, w);
            words.get(((at - 0x1000) / w as u64) as usize).copied()
        }
    }

    #[test]
    fn frames_are_read_as_each_mode_pushes_them() {
        // real mode: DX, IP, CS, FLAGS; no error code even for #GP
        let f = frame_at(
            StubMode::Real,
            13,
            0x1000,
            stack(2, &[7, 0xa010, 0, 0x2]),
            |_, _| false,
        )
        .unwrap();
        assert_eq!(
            (f.dx, f.ip, f.cs, f.flags, f.sp, f.error_code),
            (7, 0xa010, 0, 2, 0x1008, None)
        );
        // 32-bit #GP: EDX, error code, EIP, CS, EFLAGS
        let f = frame_at(
            StubMode::Prot32,
            13,
            0x1000,
            stack(4, &[7, 0x18, 0x80010, 8, 0x202]),
            |_, _| false,
        )
        .unwrap();
        assert_eq!(
            (f.error_code, f.ip, f.cs, f.sp),
            (Some(0x18), 0x80010, 8, 0x1014)
        );
        // 32-bit #UD: no error code
        let f = frame_at(
            StubMode::Prot32,
            6,
            0x1000,
            stack(4, &[7, 0x80010, 8, 0x202]),
            |_, _| false,
        )
        .unwrap();
        assert_eq!((f.error_code, f.ip, f.sp), (None, 0x80010, 0x1010));
        // long mode #PF: RDX, code, RIP, CS, RFLAGS, RSP, SS
        let f = frame_at(
            StubMode::Long,
            14,
            0x1000,
            stack(8, &[7, 2, 0x100010, 8, 0x202, 0x7fff0, 0x10]),
            |_, _| false,
        )
        .unwrap();
        assert_eq!(
            (f.error_code, f.ip, f.sp, f.dx),
            (Some(2), 0x100010, 0x7fff0, 7)
        );
        // a frame past the readable stack
        assert_eq!(
            frame_at(StubMode::Long, 14, 0x1000, stack(8, &[7, 2]), |_, _| false),
            None
        );
        // `int 14` from software in 32-bit mode: no error code; RIP is the
        // `int` instruction's
        let f = frame_at(
            StubMode::Prot32,
            14,
            0x1000,
            stack(4, &[7, 0x80012, 8, 0x202]),
            |ip, _| ip == 0x80012,
        )
        .unwrap();
        assert_eq!(
            (f.software, f.error_code, f.ip, f.sp),
            (true, None, 0x80010, 0x1010)
        );
    }

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
        assert_eq!(
            vector_at(StubMode::Long, STUBS + 14 * STUB_SIZE + 7),
            Some(14)
        );
        assert_eq!(vector_at(StubMode::Long, STUBS - 1), None);
        assert_eq!(vector_at(StubMode::Long, STUBS + VECTORS * STUB_SIZE), None);
        assert_eq!(
            vector_at(StubMode::Prot32, STUBS32 + 6 * STUB_SIZE + 7),
            Some(6)
        );
        assert_eq!(vector_at(StubMode::Prot32, STUBS), None);
        assert_eq!(vector_at(StubMode::Real, 0x500 + 0x10 * 8 + 5), Some(0x10));
        assert_eq!(vector_at(StubMode::Real, 0xd00), None);
        let g = gate32(13, 0x08);
        let target = u64::from(u16::from_le_bytes([g[0], g[1]]))
            | (u64::from(u16::from_le_bytes([g[6], g[7]])) << 16);
        assert_eq!((target, g[5]), (STUBS32 + 13 * STUB_SIZE, 0x8e));
        assert_eq!(stub16()[..4], [0x52, 0xba, 0xf0, 0x05]);
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
