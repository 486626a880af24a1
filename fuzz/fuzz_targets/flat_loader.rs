//! Flat images: length, address and memory size from the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let addr = u64::from_le_bytes(data[0..8].try_into().unwrap_or([0; 8]));
    let mem = (u64::from(data[8]) % 16 + 1) << 20;
    let len = data.len() - 9;
    if let Ok(p) = host::loader::plan_flat(len, addr, mem) {
        assert!(p.entry >= hypercall_abi::layout::IMAGE_MIN && p.end() <= mem);
    }
});
