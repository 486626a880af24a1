//! Any bytes as a guest ELF: never a panic; an accepted plan stays inside
//! guest memory, above the host's area, without overlaps.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mem = 4 << 20;
    if let Ok(p) = host::loader::plan_elf(data, mem) {
        let mut end = 0;
        for s in &p.segments {
            assert!(s.gpa >= hypercall_abi::layout::IMAGE_MIN && s.gpa + s.memsz <= mem);
            assert!(s.gpa >= end);
            end = s.gpa + s.memsz;
        }
    }
});
