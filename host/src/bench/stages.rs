//! The stages of `host bench`, one figure family each.

use super::common::{BenchError, pct, pio_loop, vm_with};
use crate::config::{IrqChip, VmConfig};
use crate::run::{self, RunOptions};
use crate::vcpu::Stop;
use crate::x86::CpuMode;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Exits for the PIO round-trip figure.
    pub exits: u32,
    /// VM create/run/destroy cycles.
    pub vm_iters: usize,
    /// `host run hello` processes.
    pub process_iters: usize,
    /// Quanta of 10 ms for the preemption figures (0 to skip).
    pub preempt_quanta: u64,
    /// Runs of the 4 KiB SIMVIRTIO transfer per mode (0 to skip).
    pub simvirtio_runs: usize,
    /// VMs in one `host matrix` for the per-VM figures (0 to skip).
    pub matrix_vms: usize,
    /// Saves and restores per RAM size (0 to skip the snapshot figures).
    pub snapshot_runs: usize,
    /// VMs cloned from one snapshot (0 to skip that figure).
    pub snapshot_clones: usize,
    /// Interrupts per path for the *_rtt_us figures (0 to skip).
    pub irq_injections: usize,
    /// Time between two of them (the vCPU is asleep, not halt-polling).
    pub irq_gap: std::time::Duration,
    /// PIO exits of the time-travel figures (0 to skip).
    pub record_exits: u32,
    /// The KVM device.
    pub kvm_path: std::path::PathBuf,
}

/// A busy loop on every CPU of the machine, for as long as the value
/// lives (dropping it stops and joins the threads). `host bench` loads the
/// machine with it for matrix_share_7_3_loaded_err_pp; tests/matrix.rs too.
pub struct Busy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    /// Starts one spinning thread per CPU.
    pub fn start() -> Busy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (0..cpus)
            .filter_map(|_| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                    .ok()
            })
            .collect();
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs every benchmark, printing each line as soon as it is measured.
pub fn run(o: &BenchOptions, out: &mut dyn std::io::Write) -> Result<(), BenchError> {
    let w = |out: &mut dyn std::io::Write, m: &str, v: f64, unit: &str| {
        writeln!(out, "{m} {v:.1} {unit}").and_then(|()| out.flush())
    };
    writeln!(
        out,
        "# host bench: {} exits, {} VM cycles, {} processes",
        o.exits, o.vm_iters, o.process_iters
    )?;

    // (1) hypercall round trip: a print8bit exit, output discarded
    // (`--exits 0` skips it: the loop's counter would wrap to 2^32)
    if o.exits > 0 {
        let mut vm = vm_with(
            &pio_loop(o.exits),
            CpuMode::Long,
            IrqChip::None,
            &o.kvm_path,
        )?;
        let r = vm.run(&mut std::io::sink(), &mut std::io::sink())?;
        if r.stop != Stop::Halted {
            return Err(BenchError::NoHalt("long_pio_exit_ns"));
        }
        let per_exit = r.elapsed.as_nanos() as f64 / f64::from(o.exits);
        w(out, "long_pio_exit_ns", per_exit, "ns")?;
        // the same, recorded as --html and --trace-out record it, and its page
        super::report::run(out, &pio_loop(o.exits), o.exits, &o.kvm_path)?;
    }

    // (2) create VM + memory + vCPU + real mode, run to HLT, tear down:
    // kvm_floor's vm_create (a real-mode `hlt`)
    let n = o.vm_iters.max(1);
    let (mut tot, mut setup, mut first, mut down) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let t0 = Instant::now();
        let mut vm = vm_with(&[0xf4], CpuMode::Real, IrqChip::None, &o.kvm_path)?;
        let t1 = Instant::now();
        let r = vm.run(&mut std::io::sink(), &mut std::io::sink())?;
        if r.stop != Stop::Halted {
            return Err(BenchError::NoHalt("vm_create_us"));
        }
        let t2 = Instant::now();
        drop(vm);
        let t3 = Instant::now();
        let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
        tot.push(us(t0, t3));
        setup.push(us(t0, t1));
        first.push(us(t1, t2));
        down.push(us(t2, t3));
    }
    w(out, "vm_create_us", pct(&mut tot, 0.5), "us")?;
    w(out, "vm_create_us_p99", pct(&mut tot, 0.99), "us")?;
    w(out, "vm_create_setup_us", pct(&mut setup, 0.5), "us")?;
    w(out, "vm_create_first_run_us", pct(&mut first, 0.5), "us")?;
    w(out, "vm_create_teardown_us", pct(&mut down, 0.5), "us")?;

    // (3) whole process: `host run hello`, start to exit
    if o.process_iters > 0 {
        let exe = std::env::current_exe().map_err(|e| BenchError::Spawn("host".into(), e))?;
        // exactly `host run hello` unless another device is asked for
        let guest = RunOptions::default().guest;
        let mut args: Vec<&std::ffi::OsStr> = vec!["run".as_ref(), guest.as_ref()];
        if o.kvm_path != VmConfig::default().kvm_path {
            args.extend(["--kvm-device".as_ref(), o.kvm_path.as_os_str()]);
        }
        let mut ms = vec![];
        for _ in 0..o.process_iters {
            let t0 = Instant::now();
            let st = Command::new(&exe)
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| BenchError::Spawn(exe.display().to_string(), e))?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            if st.code() != Some(run::code::OK) {
                return Err(BenchError::Child(st));
            }
        }
        writeln!(out, "run_hello_process_ms {:.2} ms", pct(&mut ms, 0.5))?;
        // its peak resident set, measured apart (see `process`)
        let (kib, code) = super::peak_rss_kib(&exe, &args)
            .map_err(|e| BenchError::Spawn(exe.display().to_string(), e))?;
        if code != run::code::OK {
            return Err(BenchError::NoHalt("run_hello_process_maxrss_kib"));
        }
        writeln!(out, "run_hello_process_maxrss_kib {kib} KiB")?;
    }

    // (4) preemption, as bench-floor's intr_preempt: two VMs running its
    // guest, a real-mode `jmp .` (spin_real), under `host matrix --policy
    // preempt --quantum 10ms`; latency is timer expiry -> KVM_RUN returning
    // EINTR, quantum error is how far the time between two such returns is
    // from 10 ms. (kvm-pvm emulates ring-0 code: with guest1_silent's
    // two-instruction loop instead, tails were seen 2-5x longer.)
    if o.preempt_quanta > 1 {
        let period = std::time::Duration::from_millis(10);
        let m = crate::matrix::MatrixOptions {
            vms: vec!["spin_real".into(), "spin_real".into()],
            weights: vec![1, 1],
            quantum: period,
            quanta: Some(o.preempt_quanta),
            events: false,
            kvm_path: o.kvm_path.clone(),
            ..Default::default()
        };
        let r = crate::matrix::run(&m, &mut std::io::sink())?;
        let mut lat: Vec<f64> = r
            .ticks
            .iter()
            .map(|t| (t.returned_ns as f64 - t.expected_ns as f64) / 1e3)
            .collect();
        let mut qerr: Vec<f64> = r
            .ticks
            .windows(2)
            // a tick after a re-arm (a VM halted mid-turn) ends no quantum
            .filter(|w| w[1].missed == 0 && !w[1].rearmed)
            .map(|w| {
                ((w[1].returned_ns - w[0].returned_ns) as f64 - period.as_nanos() as f64).abs()
                    / 1e3
            })
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let w2 = |out: &mut dyn std::io::Write, m: &str, v: f64| writeln!(out, "{m} {v:.2} us");
        w2(out, "intr_preempt_latency_us_mean", mean(&lat))?;
        w2(out, "intr_preempt_latency_us_p50", pct(&mut lat, 0.5))?;
        w2(out, "intr_preempt_latency_us_p99", pct(&mut lat, 0.99))?;
        w2(out, "intr_preempt_quantum_err_us_mean", mean(&qerr))?;
        w2(out, "intr_preempt_quantum_err_us_p99", pct(&mut qerr, 0.99))?;
        let missed: u32 = r.ticks.iter().map(|t| t.missed).sum();
        writeln!(out, "intr_preempt_overruns {missed} count")?;
    }

    // (4b) shares in time: weights 7:3 at 10 ms quanta for the same number
    // of turns, on this machine as it is and with a busy loop on every
    // CPU: how far the first VM's share of guest CPU time is from 70 %
    if o.preempt_quanta >= 10 {
        for (metric, load) in [
            ("matrix_share_7_3_err_pp", false),
            ("matrix_share_7_3_loaded_err_pp", true),
        ] {
            let busy = load.then(Busy::start);
            let m = crate::matrix::MatrixOptions {
                vms: vec!["guest1_silent".into(), "guest2_silent".into()],
                weights: vec![7, 3],
                quantum: std::time::Duration::from_millis(10),
                quanta: Some(o.preempt_quanta),
                events: false,
                kvm_path: o.kvm_path.clone(),
                ..Default::default()
            };
            let r = crate::matrix::run(&m, &mut std::io::sink());
            drop(busy);
            let share = r?.vms[0].share;
            writeln!(out, "{metric} {:.2} pp", (share - 0.7).abs() * 100.0)?;
        }
    }

    // (5) SIMVIRTIO: the 4 KiB message of `simvirtio_bulk` through TX, in
    // exit mode (a notify per byte), polling mode (1 ms timer) and
    // ioeventfd mode (the notifies wake a device thread, no exit); with
    // the host's CPU time (all threads) per KiB
    for (mode, polling, ioeventfd) in [
        ("exit", None, false),
        ("polling", Some(std::time::Duration::from_millis(1)), false),
        ("ioeventfd", None, true),
    ] {
        if o.simvirtio_runs == 0 {
            break;
        }
        let (mut rate, mut per_kib, mut cpu) = (vec![], vec![], vec![]);
        for _ in 0..o.simvirtio_runs {
            let opts = RunOptions {
                guest: "simvirtio_bulk".into(),
                vm: VmConfig {
                    kvm_path: o.kvm_path.clone(),
                    ..Default::default()
                },
                run: crate::config::RunConfig {
                    polling,
                    ioeventfd,
                    ..Default::default()
                },
                ..Default::default()
            };
            let cpu0 = cpu_us();
            let r = run::run(&opts, &mut std::io::sink(), &mut std::io::sink())?;
            let cpu1 = cpu_us();
            let d = r.outcome.device;
            if r.outcome.stop != Stop::Halted || d.tx_bytes == 0 {
                return Err(BenchError::NoHalt("simvirtio_tx"));
            }
            rate.push(d.tx_bytes as f64 / r.outcome.elapsed.as_secs_f64());
            per_kib.push(r.outcome.stats.total() as f64 * 1024.0 / d.tx_bytes as f64);
            cpu.push((cpu1 - cpu0) * 1024.0 / d.tx_bytes as f64);
        }
        writeln!(
            out,
            "simvirtio_tx_{mode}_bytes_per_s {:.0} B/s",
            pct(&mut rate, 0.5)
        )?;
        writeln!(
            out,
            "simvirtio_tx_{mode}_exits_per_kib {:.1} exits",
            pct(&mut per_kib, 0.5)
        )?;
        writeln!(
            out,
            "simvirtio_tx_{mode}_host_cpu_us_per_kib {:.1} us",
            pct(&mut cpu, 0.5)
        )?;
        // the latencies, as the guest measures them in its TSC
        let opts = RunOptions {
            guest: "simvirtio_profile".into(),
            vm: VmConfig {
                kvm_path: o.kvm_path.clone(),
                ..Default::default()
            },
            run: crate::config::RunConfig {
                polling,
                ioeventfd,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut text = Vec::new();
        let r = run::run(&opts, &mut text, &mut std::io::sink())?;
        let text = String::from_utf8_lossy(&text);
        let (seen, rx) = super::common::profile_line(&text)
            .filter(|_| r.outcome.stop == Stop::Halted)
            .ok_or(BenchError::NoHalt("simvirtio_profile"))?;
        writeln!(out, "simvirtio_{mode}_notify_seen_us {seen} us")?;
        writeln!(out, "simvirtio_{mode}_notify_rx_irq_us {rx} us")?;
    }
    // (6) interrupts, as irq_floor: KVM_INTERRUPT, KVM_IRQ_LINE, irqfd
    if o.irq_injections > 0 {
        super::irq::run(out, o.irq_injections, o.irq_gap, &o.kvm_path)?;
    }

    // (7) snapshots: save and restore at two RAM sizes, clones' memory
    if o.snapshot_runs > 0 {
        super::snapshot::run(out, o.snapshot_runs, o.snapshot_clones, &o.kvm_path)?;
    }

    // (8) time travel: a recorded run under gdb, reverse-stepi with its
    // whole history behind it
    if o.record_exits > 0 {
        super::record::run(out, o.record_exits, &o.kvm_path)?;
    }

    // (last) many VMs in one process (issue 19): `host matrix` with
    // `matrix_vms` single-vCPU VMs of 2 MiB, one 1 ms turn each: set-up time
    // and resident memory per VM. Last, because tearing 1000 VMs down
    // keeps the kernel busy for a while and would slow the figures above.
    if o.matrix_vms > 0 {
        let before = crate::matrix::rss_kib();
        let m = crate::matrix::run(
            &crate::matrix::MatrixOptions {
                vms: vec!["guest1_silent".into(); o.matrix_vms],
                quantum: std::time::Duration::from_millis(1),
                quanta: Some(o.matrix_vms as u64),
                mem_size: 2 << 20,
                kvm_path: o.kvm_path.clone(),
                events: false,
                ..Default::default()
            },
            &mut std::io::sink(),
        )?;
        let n = o.matrix_vms as f64;
        w(out, "matrix_vm_setup_us", m.setup_ns as f64 / 1e3 / n, "us")?;
        let grown = m.rss_kib_after_setup.saturating_sub(before) as f64;
        writeln!(out, "matrix_rss_kib_per_vm {:.2} KiB", grown / n)?;
    }

    Ok(())
}

/// This process's CPU time so far (every thread, user and system), µs.
fn cpu_us() -> f64 {
    // SAFETY: a zeroed rusage is valid plain data for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage to the pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}
