//! Hypercall decoding: the input picks the hypercall, direction, width and
//! value, and fills guest memory (where argument blocks, strings and page
//! tables live). Never a panic; one diagnostic line per guest error.
#![no_main]
use host::stats::{Dir, ExitStats};
use host::devices::hypercall::{Env, GuestErrors, Io, dispatch};
use host::x86::translate::Paging;
use hypercall_abi::Hypercall;
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let mem_size = 1u64 << 20;
    let Ok(m) = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem_size as usize)]) else {
        return;
    };
    let hc = Hypercall::ALL[data[0] as usize % Hypercall::ALL.len()];
    let dir = if data[1] & 1 == 0 { Dir::Out } else { Dir::In };
    let size = [1, 2, 4][data[2] as usize % 3];
    let value = u32::from_le_bytes([data[3], data[4], data[5], data[6]]) % (mem_size as u32 + 256);
    // the rest of the input is guest memory from 0x1000 on (blocks, strings, tables)
    let _ = m.write_slice(
        &data[7..data.len().min(7 + 0x10_0000 - 0x1000)],
        GuestAddress(0x1000),
    );
    let stats = ExitStats::default();
    let (mut out, mut diag, mut errs) = (Vec::new(), Vec::new(), GuestErrors::default());
    let mut env = Env {
        mem: &m,
        stats: &stats,
        out: &mut out,
        diag: &mut diag,
        guest_errors: &mut errs,
    };
    let r = dispatch(hc, Io { dir, size, value }, &mut env, || {
        Ok(host::x86::CpuMode::Long.start_paging())
    });
    assert!(r.is_ok());
    assert_eq!(String::from_utf8_lossy(&diag).lines().count() as u64, errs.count);
});
