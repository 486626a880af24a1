//! `host`: the command line. Parsing and printing only; the work is in the library.

use clap::{Args, Parser, Subcommand, ValueEnum};
use host::bench::{self, BenchOptions};
use host::config::{RunConfig, VmConfig};
use host::run::{self, RunOptions, code};
use host::trace::TraceFormat;
use host::{guests, size};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "host",
    version,
    about = "Run Rust guest programs in KVM virtual machines and watch every exit."
)]
struct Cli {
    /// Without a command: `run hello`.
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// 16-bit real mode, CS = DS = SS = 0 (the guest's .kvmwb.real code).
    Real,
    /// 32-bit protected mode, flat segments, no paging (.kvmwb.prot32).
    Protected,
    /// 32-bit paging: a 4 MiB PSE page, then 4 KiB tables (.kvmwb.prot32).
    Paged32,
    /// 64-bit long mode with identity-mapped 2 MiB pages.
    Long,
}

impl From<Mode> for host::x86::CpuMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Real => host::x86::CpuMode::Real,
            Mode::Protected => host::x86::CpuMode::Protected,
            Mode::Paged32 => host::x86::CpuMode::Paged32,
            Mode::Long => host::x86::CpuMode::Long,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum TraceArg {
    /// A line per call and per exit, as they happen.
    Text,
    /// A Mermaid flowchart of the whole run, written at the end.
    Mermaid,
}

/// What to load and how: shared by `run` and `layout`.
#[derive(Args)]
struct GuestArgs {
    /// A built guest's name (see `host list`) or the path of an ELF or flat file.
    #[arg(default_value = "hello")]
    guest: String,
    /// CPU mode the guest starts in.
    #[arg(long, value_enum, default_value = "long")]
    mode: Mode,
    /// Guest memory size, e.g. 2M, 512K, 1G (4 KiB multiple, 1 MiB to 3 GiB).
    #[arg(long, default_value = "2M", value_parser = size::parse_size)]
    mem: u64,
    /// Load GUEST as a flat binary at this guest-physical address and enter it there.
    #[arg(long, value_name = "ADDR", value_parser = size::parse_addr)]
    flat: Option<u64>,
    /// The KVM device.
    #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
    kvm_device: PathBuf,
}

impl GuestArgs {
    fn options(self, trace: Option<TraceFormat>) -> RunOptions {
        RunOptions {
            guest: self.guest,
            vm: VmConfig {
                mem_size: self.mem,
                kvm_path: self.kvm_device,
                mode: self.mode.into(),
                trace,
                vcpus: 1,
            },
            flat: self.flat,
            ..RunOptions::default()
        }
    }
}

/// `--weights 7:3` (a newtype: clap reads a bare Vec as repeated values).
#[derive(Clone)]
struct Weights(Vec<u32>);

fn parse_weights(s: &str) -> Result<Weights, String> {
    host::matrix::parse_weights(s).map(Weights)
}

#[derive(Clone, Copy, ValueEnum)]
enum PolicyArg {
    /// Switch VMs at every I/O exit (a VM that never exits keeps the CPU).
    OnExit,
    /// Switch VMs when the quantum timer fires; exits do not switch.
    Preempt,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a guest until it halts or crashes; print its output, then the exit table.
    Run {
        #[command(flatten)]
        g: GuestArgs,
        /// Check 42 at 0x400 and in RAX at HLT even if the guest did not ask for it.
        #[arg(long)]
        check_42: bool,
        /// Print one JSON object (guest output included) instead of text.
        #[arg(long)]
        json: bool,
        /// Stop the guest after this long (e.g. 500ms, 2s); exit code 5.
        #[arg(long, value_name = "DURATION", value_parser = size::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Do not run the vCPU thread under the seccomp filter (for debugging).
        #[arg(long)]
        no_seccomp: bool,
        /// Print every KVM ioctl the host makes (arguments, result, purpose), then every exit;
        /// `=mermaid` writes the same sequence as a Mermaid flowchart at the end.
        #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text", require_equals = true)]
        trace_kvm: Option<TraceArg>,
        /// Pin vCPU threads to host CPUs, one per vCPU: --pin 1, --vcpus 2 --pin 0,1 (host_cpuid then stays fixed).
        #[arg(long, value_name = "CPU[,CPU...]", value_delimiter = ',')]
        pin: Vec<usize>,
        /// SIMVIRTIO polling mode: the driver does not notify; the host drains TX at every exit and on a timer.
        #[arg(long)]
        polling: bool,
        /// With --polling: the timer's period.
        #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = size::parse_duration, requires = "polling")]
        poll_interval: std::time::Duration,
        /// Exit profiling: the exit table gets the host's handling time per reason, port and MMIO address (total and mean).
        #[arg(long)]
        stats: bool,
        /// Number of vCPUs, each on its own host thread (long mode; the guest must use guest_rt::smp_entry!).
        #[arg(long, value_name = "N", default_value_t = 1)]
        vcpus: u32,
        /// Write the --trace-kvm output to FILE instead of standard error.
        #[arg(long, value_name = "FILE", requires = "trace_kvm")]
        trace_file: Option<PathBuf>,
    },
    /// Set a guest's VM up (without running it) and show where everything is:
    /// guest-physical map with host addresses, kvm_run, start registers, page tables.
    Layout {
        #[command(flatten)]
        g: GuestArgs,
        /// Also walk this guest-virtual address step by step to its GPA and HVA.
        #[arg(long, value_name = "GVA", value_parser = size::parse_addr)]
        translate: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run several VMs (default guest1 and guest2, real mode) from one host
    /// thread under a scheduler: on-exit, or timer-preempted with weights.
    Matrix {
        /// A VM to run: a built guest (its real-mode code: guest1, guest2,
        /// guest1_silent, guest2_silent, ...) or a flat real-mode binary. Repeat
        /// for more VMs; default: guest1 and guest2.
        #[arg(long = "vm", value_name = "GUEST|FILE")]
        vms: Vec<String>,
        /// What ends a VM's turn: each I/O exit, or the quantum timer.
        #[arg(long, value_enum, default_value = "preempt")]
        policy: PolicyArg,
        /// Turns per VM out of every sum(weights), e.g. 7:3 or 2:1:1 (default:
        /// 7:3 for two VMs, equal otherwise).
        #[arg(long, value_name = "W:W[:W...]", value_parser = parse_weights)]
        weights: Option<Weights>,
        /// The time slice of the preempt policy, e.g. 1s, 10ms.
        #[arg(long, default_value = "1s", value_parser = size::parse_duration)]
        quantum: std::time::Duration,
        /// Stop after this long (Ctrl-C also stops, with the summary).
        #[arg(long, value_parser = size::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Stop after this many turns in all.
        #[arg(long, value_name = "N")]
        quanta: Option<u64>,
        /// Print only the summary, not the event lines.
        #[arg(long)]
        quiet: bool,
        /// Print the summary as JSON on stdout (no event lines).
        #[arg(long)]
        json: bool,
        /// Write an SVG picture of who ran when.
        #[arg(long, value_name = "FILE.svg")]
        timeline: Option<PathBuf>,
        /// Guest memory per VM.
        #[arg(long, default_value = "1M", value_parser = size::parse_size)]
        mem: u64,
        /// Do not run the scheduler thread under the seccomp filter.
        #[arg(long)]
        no_seccomp: bool,
        /// The KVM device.
        #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
        kvm_device: PathBuf,
    },
    /// List the guest programs built from guest-kernel/src/bin.
    List,
    /// Print the hypercall ABI this host speaks: version, fingerprint, ports.
    Abi,
    /// Measure exit round trips, VM creation and `host run hello` (build with --release).
    Bench {
        /// Exits for long_pio_exit_ns.
        #[arg(long, default_value_t = 200_000)]
        exits: u32,
        /// VM create/run/destroy cycles for vm_create_us.
        #[arg(long, default_value_t = 200)]
        vm_iters: usize,
        /// `host run hello` processes for run_hello_process_ms (0 to skip).
        #[arg(long, default_value_t = 20)]
        process_iters: usize,
        /// 10 ms quanta for intr_preempt_latency_us / intr_preempt_quantum_err_us (0 to skip).
        #[arg(long, default_value_t = 100)]
        preempt_quanta: u64,
        /// Runs per mode of the 4 KiB SIMVIRTIO transfer for simvirtio_tx_* (0 to skip).
        #[arg(long, default_value_t = 3)]
        simvirtio_runs: usize,
        /// The KVM device.
        #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
        kvm_device: PathBuf,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("host: error: {msg}");
    ExitCode::from(code::HOST_ERROR as u8)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cmd = cli.cmd.unwrap_or_else(|| Cmd::Run {
        g: GuestArgs {
            guest: RunOptions::default().guest,
            mode: Mode::Long,
            mem: VmConfig::default().mem_size,
            flat: None,
            kvm_device: VmConfig::default().kvm_path,
        },
        check_42: false,
        json: false,
        timeout: None,
        no_seccomp: false,
        trace_kvm: None,
        trace_file: None,
        pin: Vec::new(),
        vcpus: 1,
        polling: false,
        poll_interval: std::time::Duration::from_millis(1),
        stats: false,
    });
    match cmd {
        Cmd::Run {
            g,
            check_42,
            json,
            timeout,
            no_seccomp,
            trace_kvm,
            trace_file,
            pin,
            vcpus,
            polling,
            poll_interval,
            stats,
        } => {
            let trace = trace_kvm.map(|t| match t {
                TraceArg::Text => TraceFormat::Text,
                TraceArg::Mermaid => TraceFormat::Mermaid,
            });
            let mut opts = RunOptions {
                run: RunConfig {
                    timeout,
                    seccomp: !no_seccomp,
                    pin,
                    polling: polling.then_some(poll_interval),
                    profile: stats,
                    check_42,
                },
                trace_file,
                ..g.options(trace)
            };
            opts.vm.vcpus = vcpus;
            cmd_run(&opts, json)
        }
        Cmd::Layout { g, translate, json } => {
            let opts = g.options(None);
            let l = run::prepare(&opts)
                .map_err(|e| e.to_string())
                .and_then(|mut p| {
                    host::inspect::describe(&mut p.vm, &p.plan, translate)
                        .map_err(|e| e.to_string())
                });
            match l {
                Ok(l) if json => {
                    println!("{}", serde_json::to_string_pretty(&l).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(l) => {
                    print!("{}", l.text());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Matrix {
            vms,
            policy,
            weights,
            quantum,
            duration,
            quanta,
            quiet,
            json,
            timeline,
            mem,
            no_seccomp,
            kvm_device,
        } => {
            let defaults = host::matrix::MatrixOptions::default();
            let opts = host::matrix::MatrixOptions {
                vms: if vms.is_empty() { defaults.vms } else { vms },
                weights: weights.map(|w| w.0).unwrap_or_default(),
                policy: match policy {
                    PolicyArg::OnExit => host::matrix::Policy::OnExit,
                    PolicyArg::Preempt => host::matrix::Policy::Preempt,
                },
                quantum,
                duration,
                quanta,
                mem_size: mem,
                kvm_path: kvm_device,
                events: !quiet && !json,
                record_turns: timeline.is_some(),
                seccomp: !no_seccomp,
            };
            cmd_matrix(&opts, json, timeline)
        }
        Cmd::List => {
            let mut out = std::io::stdout().lock();
            for (name, path) in guests::list() {
                let state = if path.is_file() {
                    ""
                } else {
                    "  (missing: rebuild)"
                };
                let _ = writeln!(out, "{name:<16} {}{state}", path.display());
            }
            ExitCode::SUCCESS
        }
        Cmd::Abi => {
            print!("{}", abi_table());
            ExitCode::SUCCESS
        }
        Cmd::Bench {
            exits,
            vm_iters,
            process_iters,
            preempt_quanta,
            simvirtio_runs,
            kvm_device,
        } => {
            let o = BenchOptions {
                exits,
                vm_iters,
                process_iters,
                preempt_quanta,
                simvirtio_runs,
                kvm_path: kvm_device,
            };
            match bench::run(&o, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}

fn cmd_run(opts: &RunOptions, json: bool) -> ExitCode {
    let mut diag = std::io::stderr().lock();
    let result = if json {
        let mut captured = Vec::new();
        run::run(opts, &mut captured, &mut diag).inspect(|r| {
            let v = r.json(&captured);
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        })
    } else {
        let stdout = std::io::stdout();
        let r = if stdout.is_terminal() {
            run::run(
                opts,
                &mut std::io::LineWriter::new(stdout.lock()),
                &mut diag,
            )
        } else {
            run::run(opts, &mut std::io::BufWriter::new(stdout.lock()), &mut diag)
        };
        r.inspect(|r| {
            let _ = write!(diag, "{}", r.human());
        })
    };
    match result {
        Ok(r) => ExitCode::from(r.exit_code() as u8),
        Err(e) => fail(e),
    }
}

fn cmd_matrix(
    opts: &host::matrix::MatrixOptions,
    json: bool,
    timeline: Option<PathBuf>,
) -> ExitCode {
    // Created before the run: the scheduler thread may not open files once jailed.
    let mut svg = match &timeline {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some(f),
            Err(e) => return fail(format!("cannot create {}: {e}", p.display())),
        },
        None => None,
    };
    let stdout = std::io::stdout();
    let r = host::matrix::run(
        opts,
        &mut std::io::BufWriter::with_capacity(1 << 16, stdout.lock()),
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let (Some(f), Some(p)) = (&mut svg, &timeline)
        && let Err(e) = f.write_all(r.timeline_svg().as_bytes())
    {
        return fail(format!("cannot write {}: {e}", p.display()));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    } else {
        eprint!("{}", r.human());
    }
    ExitCode::from(r.exit_code() as u8)
}

fn abi_table() -> String {
    use hypercall_abi::{ABI_VERSION, FINGERPRINT, Hypercall, Transport};
    let mut s = format!("hypercall ABI v{ABI_VERSION}, fingerprint {FINGERPRINT:#018x}\n");
    s.push_str("nr  name               port    instruction   carries\n");
    for hc in Hypercall::ALL {
        let (insn, carries) = match hc.transport() {
            Transport::Out8 => ("out dx, al", "the byte"),
            Transport::Out32 => ("out dx, eax", "the value"),
            Transport::In32 => ("in eax, dx", "the result"),
            Transport::OutBlock => ("out dx, eax", "GPA of the argument block"),
        };
        s.push_str(&format!(
            "{:<3} {:<18} {:#06x}  {insn:<13} {carries}\n",
            hc.nr(),
            hc.name(),
            hc.port()
        ));
    }
    s
}
