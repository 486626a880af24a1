//! The words `--trace-kvm` uses for an exit, read from `kvm_run`.

use crate::stats::ExitReason;
use hypercall_abi::Hypercall;
use kvm_bindings as k;

/// The trace's words for the exit in `run` (a mapping of `run_size` bytes).
pub(super) fn describe_exit(run: &k::kvm_run, run_size: usize) -> (String, String) {
    match run.exit_reason {
        k::KVM_EXIT_IO => {
            // SAFETY: exit_reason is KVM_EXIT_IO, so `io` is the union
            // member the kernel filled.
            let io = unsafe { run.__bindgen_anon_1.io };
            let dir = if u32::from(io.direction) == k::KVM_EXIT_IO_OUT {
                "out"
            } else {
                "in"
            };
            let base = run as *const k::kvm_run as *const u8;
            let mut v = [0u8; 4];
            let n = usize::from(io.size).min(4);
            if (io.data_offset as usize) + n <= run_size {
                // SAFETY: data_offset + size lies inside the kvm_run
                // mapping of `run_size` bytes (checked just above).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        base.add(io.data_offset as usize),
                        v.as_mut_ptr(),
                        n,
                    )
                };
            }
            let hc = Hypercall::from_port(io.port)
                .map(|h| format!(" ({})", h.name()))
                .unwrap_or_default();
            (
                format!("exit 2 KVM_EXIT_IO {dir} port {:#x}{hc}", io.port),
                format!(
                    "size {}, data {:#x} at kvm_run + {:#x} (data_offset)",
                    io.size,
                    u32::from_le_bytes(v),
                    io.data_offset
                ),
            )
        }
        k::KVM_EXIT_MMIO => {
            // SAFETY: exit_reason is KVM_EXIT_MMIO: `mmio` is filled.
            let m = unsafe { run.__bindgen_anon_1.mmio };
            let dir = if m.is_write != 0 { "write" } else { "read" };
            (
                format!("exit 6 KVM_EXIT_MMIO {dir}"),
                format!("GPA {:#x}, {} bytes", m.phys_addr, m.len),
            )
        }
        r => {
            let name = ExitReason::ALL
                .iter()
                .find(|e| e.kvm_code() == Some(r))
                .map_or("(not handled)", |e| e.name());
            (format!("exit {r} {name}"), String::new())
        }
    }
}
