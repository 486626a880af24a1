//! What drawing a run costs (`--html`, `--trace-out`): the PIO loop of
//! `long_pio_exit_ns` again with the timeline and the KVM calls kept, and
//! the page of that run made.

use super::common::BenchError;
use crate::config::{IrqChip, RunConfig, VmConfig};
use crate::trace::TraceFormat;
use crate::vcpu::Stop;
use crate::vm::Vm;
use crate::x86::CpuMode;
use std::io::Write;
use std::time::Instant;

/// `exits` exits of `code` (the PIO loop) recorded as `--html` records
/// them, then its page: `long_pio_exit_recorded_ns`,
/// `report_page_ms`, `report_page_kib`.
pub fn run(
    out: &mut dyn Write,
    code: &[u8],
    exits: u32,
    kvm_path: &std::path::Path,
) -> Result<(), BenchError> {
    let cfg = VmConfig {
        mem_size: 2 << 20,
        kvm_path: kvm_path.to_path_buf(),
        mode: CpuMode::Long,
        cpuid: false,
        irqchip: Some(IrqChip::None),
        trace: Some(TraceFormat::Keep),
        ..Default::default()
    };
    let area = cfg.mode.image_area(cfg.mem_size);
    let plan = crate::loader::plan_flat_in(code.len(), area.start, &area, cfg.mem_size)?;
    let run = RunConfig {
        timeline: true,
        ..RunConfig::default()
    };
    let mut vm = Vm::new(&cfg, run)?;
    vm.load(&plan, code)?;
    let outcome = vm.run(&mut std::io::sink(), &mut std::io::sink())?;
    if outcome.stop != Stop::Halted {
        return Err(BenchError::NoHalt("long_pio_exit_recorded_ns"));
    }
    let per_exit = outcome.elapsed.as_nanos() as f64 / f64::from(exits);
    writeln!(out, "long_pio_exit_recorded_ns {per_exit:.1} ns")?;
    let r = crate::run::Report {
        name: "pio_loop".into(),
        outcome,
        crash: None,
        layout: None,
    };
    let t0 = Instant::now();
    let page = crate::report::run_page(&r, r.json(&crate::run::Capture::default()), None, "");
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    writeln!(out, "report_page_ms {ms:.1} ms")?;
    writeln!(out, "report_page_kib {:.1} KiB", page.len() as f64 / 1024.0)?;
    out.flush()?;
    Ok(())
}
