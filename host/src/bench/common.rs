//! What the stages share: their error, a VM around a flat image, and
//! percentiles.

use crate::config::{IrqChip, RunConfig, VmConfig};
use crate::loader;
use crate::vm::{Vm, VmError};
use crate::x86::CpuMode;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// VM set-up or run failed.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// The figures could not be written.
    #[error("cannot write to standard output: {0}")]
    Output(#[from] std::io::Error),
    /// The benchmark's own image was refused.
    #[error("benchmark image: {0}")]
    Plan(#[from] crate::loader::LoadError),
    /// The guest did not halt.
    #[error("{0}: the benchmark guest did not halt")]
    NoHalt(&'static str),
    /// Spawning `host run hello` failed.
    #[error("cannot run {0}: {1}")]
    Spawn(String, std::io::Error),
    /// The matrix failed.
    #[error(transparent)]
    Matrix(#[from] crate::matrix::MatrixError),
    /// `host run hello` failed.
    #[error("`host run hello` exited with {0}")]
    Child(std::process::ExitStatus),
    /// The SIMVIRTIO guest could not run.
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    /// A KVM call of the interrupt figures failed, or the guest did not
    /// do what they time.
    #[error("interrupt figures: {0}")]
    Kvm(String),
}

/// A 2 MiB VM with `code` at the start of the mode's image area. These
/// images ask for nothing, so the VM gets no CPUID (as `host run` does for
/// a guest that does not ask); kvm_floor sets none either.
pub fn vm_with(
    code: &[u8],
    mode: CpuMode,
    irqchip: IrqChip,
    kvm_path: &std::path::Path,
) -> Result<Vm, BenchError> {
    let cfg = VmConfig {
        mem_size: 2 << 20,
        kvm_path: kvm_path.to_path_buf(),
        mode,
        cpuid: false,
        irqchip: Some(irqchip),
        ..Default::default()
    };
    let area = mode.image_area(cfg.mem_size);
    let plan = loader::plan_flat_in(code.len(), area.start, &area, cfg.mem_size)?;
    let mut vm = Vm::new(&cfg, RunConfig::default())?;
    vm.load(&plan, code)?;
    Ok(vm)
}

/// `mov ecx, n; 1: out PORT_PRINT8BIT, al; dec ecx; jnz 1b; hlt`: the
/// loop of kvm_floor's long_pio_exit_ns, through our print8bit handler.
pub fn pio_loop(n: u32) -> Vec<u8> {
    pio_loop_then(n, &[0xf4])
}

/// The same loop, then `end` instead of `hlt`.
pub fn pio_loop_then(n: u32, end: &[u8]) -> Vec<u8> {
    let mut c = vec![0xb9];
    c.extend_from_slice(&n.to_le_bytes());
    c.extend_from_slice(&[
        0xe6,
        hypercall_abi::PORT_PRINT8BIT as u8,
        0xff,
        0xc9,
        0x75,
        0xfa,
    ]);
    c.extend_from_slice(end);
    c
}

pub fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// The two medians of simvirtio_profile's line (`... notify->seen X us,
/// notify->rx handler Y us ...`).
pub fn profile_line(text: &str) -> Option<(u64, u64)> {
    let l = text.lines().find(|l| l.starts_with("profile ("))?;
    let num =
        |after: &str| -> Option<u64> { l.split(after).nth(1)?.split(' ').next()?.parse().ok() };
    Some((num("notify->seen ")?, num("notify->rx handler ")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pio_loop_encoding() {
        assert_eq!(
            super::pio_loop(3),
            [0xb9, 3, 0, 0, 0, 0xe6, 0xe9, 0xff, 0xc9, 0x75, 0xfa, 0xf4]
        );
        assert_eq!(super::pio_loop_then(3, &[0x0f, 0x0b])[11..], [0x0f, 0x0b]);
    }

    #[test]
    fn the_profile_line_parses() {
        let l = "x\nprofile (notify): notify->seen 190 us, notify->rx handler 102 us (medians of 64; TSC 2589 MHz)\n";
        assert_eq!(super::profile_line(l), Some((190, 102)));
        assert_eq!(super::profile_line("nothing"), None);
    }
}
