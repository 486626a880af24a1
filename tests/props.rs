//! Property-based tests (proptest) of everything that decodes untrusted
//! bytes: the ELF and flat loaders, the ABI note, page-table walks over
//! guest-controlled tables, and hypercall argument decoding. No input may
//! panic; whatever is accepted must satisfy the loader's promises.

mod common;

use host::devices::hypercall::{self, Env, GuestErrors, Io};
use host::loader::{self, Plan};
use host::stats::{Dir, ExitStats};
use host::x86::translate::{self, Paging};
use hypercall_abi::{Hypercall, layout};
use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: u64 = 2 << 20;

/// What every accepted plan promises.
fn check_plan(p: &Plan, mem: u64) {
    let mut prev_end = 0;
    for s in &p.segments {
        assert!(s.gpa >= layout::IMAGE_MIN, "segment below the image area");
        assert!(s.gpa + s.memsz <= mem, "segment past memory");
        assert!(s.gpa >= prev_end, "segments overlap or are unsorted");
        assert!((s.file.end - s.file.start) as u64 <= s.memsz);
        prev_end = s.gpa + s.memsz;
    }
    assert!(
        p.segments
            .iter()
            .any(|s| s.exec && s.range().contains(&p.entry))
    );
}

fn hello() -> &'static [u8] {
    static ELF: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ELF.get_or_init(|| common::guest_elf("hello"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_elf_loader(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(p) = loader::plan_elf(&bytes, MEM) {
            check_plan(&p, MEM);
        }
    }

    #[test]
    fn mutated_guest_elves_are_refused_or_safe(
        edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16),
        mem_mib in 1u64..8,
    ) {
        let mut elf = hello().to_vec();
        for (at, v) in edits {
            let i = at % elf.len();
            elf[i] = v;
        }
        let mem = mem_mib << 20;
        if let Ok(p) = loader::plan_elf(&elf, mem) {
            check_plan(&p, mem);
        }
    }

    #[test]
    fn flat_plans_stay_inside_memory(len in 0usize..(8 << 20), addr in any::<u64>(), mem_mib in 1u64..8) {
        let mem = mem_mib << 20;
        if let Ok(p) = loader::plan_flat(len, addr, mem) {
            check_plan(&p, mem);
        }
    }

    #[test]
    fn arbitrary_notes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = loader::parse_note(&bytes);
    }

    /// Random page tables (the guest writes them), random CR3 and GVA: the
    /// walk ends, and a success names memory that exists.
    #[test]
    fn walks_over_random_tables_end_inside_memory(
        entries in proptest::collection::vec((0u64..64, any::<u64>()), 0..64),
        cr3 in any::<u64>(),
        gva in any::<u64>(),
    ) {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
        for (slot, v) in entries {
            // entries spread over the first 64 pages
            m.write_obj(v, GuestAddress(slot * 4096 + (v % 512) * 8)).unwrap();
        }
        let p = Paging {
            cr3: cr3 % (MEM + 0x10_0000),
            ..host::x86::CpuMode::Long.start_paging()
        };
        if let Ok((w, hva)) = translate::gva_to_hva(&m, &p, gva) {
            prop_assert!(w.gpa < MEM);
            prop_assert!(hva != 0);
        }
    }

    /// Any hypercall, any width and direction, any value, over memory full
    /// of random bytes: no panic, and errors are reported as lines.
    #[test]
    fn hypercall_decoding_never_panics(
        nr in 0usize..Hypercall::ALL.len(),
        out in any::<bool>(),
        size in prop_oneof![Just(1usize), Just(2), Just(4)],
        value in prop_oneof![any::<u32>(), 0u32..(MEM as u32 + 64), (MEM as u32 - 64)..(MEM as u32 + 64)],
        fill in proptest::collection::vec((0u64..MEM, any::<u8>()), 0..256),
    ) {
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
        for (at, v) in fill {
            m.write_obj(v, GuestAddress(at)).unwrap();
        }
        let stats = ExitStats::default();
        let (mut o, mut d, mut errs) = (Vec::new(), Vec::new(), GuestErrors::default());
        let mut env = Env { mem: &m, stats: &stats, out: &mut o, diag: &mut d, guest_errors: &mut errs };
        let io = Io { dir: if out { Dir::Out } else { Dir::In }, size, value };
        let r = hypercall::dispatch(Hypercall::ALL[nr], io, &mut env, || {
            Ok(host::x86::CpuMode::Long.start_paging())
        });
        prop_assert!(r.is_ok());
        let diag = String::from_utf8_lossy(&d).into_owned();
        prop_assert_eq!(diag.lines().count() as u64, errs.count, "one line per guest error");
        prop_assert!(diag.lines().all(|l| l.starts_with("host: guest error: ")));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Exit statistics over many distinct ports and addresses: every exit
    /// is counted once, in a row or among the others; rows stay bounded;
    /// merging two vCPUs' statistics loses nothing.
    #[test]
    fn exit_statistics_count_everything_within_bounded_rows(
        exits in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..4096), 0..3000),
        split in 0usize..3000,
    ) {
        let mut all = ExitStats::default();
        let (mut a, mut b) = (ExitStats::default(), ExitStats::default());
        for (i, &(mmio, out, v)) in exits.iter().enumerate() {
            let dir = if out { Dir::Out } else { Dir::In };
            let part = if i < split { &mut a } else { &mut b };
            for s in [&mut all, part] {
                if mmio {
                    s.record_mmio(dir, 0xd000_1000 + 8 * v);
                } else {
                    s.record_io(dir, 0x1000 + v as u16);
                }
            }
        }
        let check = |s: &ExitStats| {
            let rows: u64 = s.ports().iter().map(|p| p.count).sum::<u64>()
                + s.mmio().iter().map(|m| m.count).sum::<u64>();
            let others = s.io_others().reads + s.io_others().writes
                + s.mmio_others().reads + s.mmio_others().writes;
            assert_eq!(rows + others, s.total());
            assert!(s.ports().len() <= 256 && s.mmio().len() <= 256);
        };
        check(&all);
        prop_assert_eq!(all.total(), exits.len() as u64);
        a.merge(&b);
        check(&a);
        prop_assert_eq!(a.total(), all.total());
        prop_assert_eq!(a.io_in() + a.io_out(), all.io_in() + all.io_out());
    }
}
