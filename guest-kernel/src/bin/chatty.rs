//! A hostile guest on any number of vCPUs that prints forever: each vCPU
//! prints 4 KiB lines with one `print_str` each, as fast as it can. The
//! host's memory must stay bounded (`--json` keeps a capped capture, the
//! vCPU threads' lines wait in a bounded queue) and `--timeout` must end it.
#![no_std]
#![no_main]

use guest_rt::{Cpu, hc};

guest_rt::smp_entry!(main);

/// One line: 4095 letters, a newline and the NUL.
static LINE: [u8; 4097] = {
    let mut l = [b'x'; 4097];
    l[4095] = b'\n';
    l[4096] = 0;
    l
};

fn main(_cpu: Cpu) -> u64 {
    let line = core::ffi::CStr::from_bytes_with_nul(&LINE).unwrap_or(c"x\n");
    loop {
        let _ = hc::print_str(line);
    }
}
