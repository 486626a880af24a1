//! The command line's words: subcommands, flags and their values (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use host::config::VmConfig;
use host::run::RunOptions;
use host::size;
use host::trace::TraceFormat;
use std::path::PathBuf;

pub use super::irq::*;

#[derive(Parser)]
#[command(
    name = "host",
    version,
    about = "Run Rust guest programs in KVM virtual machines and watch every exit."
)]
pub struct Cli {
    /// Without a command: `run hello`.
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum Mode {
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

#[derive(Clone, Copy, ValueEnum, Debug, PartialEq)]
pub enum TraceArg {
    /// A line per call and per exit, as they happen.
    Text,
    /// A Mermaid flowchart of the whole run, written at the end.
    Mermaid,
}

/// `--mem`'s default for `run` and `layout`.
pub const DEFAULT_MEM: &str = "2M";
/// `--kvm-device`'s default.
pub const DEFAULT_KVM: &str = "/dev/kvm";
/// `--poll-interval`'s default.
pub const DEFAULT_POLL: &str = "1ms";

/// What to load and how: shared by `run` and `layout`.
#[derive(Args, Debug, PartialEq)]
pub struct GuestArgs {
    /// A built guest's name (see `host list`) or the path of an ELF or flat
    /// file (default: hello).
    pub guest: Option<String>,
    /// CPU mode the guest starts in.
    #[arg(long, value_enum, default_value = "long")]
    pub mode: Mode,
    /// Guest memory size, e.g. 2M, 512K, 1G (4 KiB multiple, 1 MiB to 3 GiB).
    #[arg(long, default_value = DEFAULT_MEM, value_parser = size::parse_size)]
    pub mem: u64,
    /// Load GUEST as a flat binary at this guest-physical address and enter it there.
    #[arg(long, value_name = "ADDR", value_parser = size::parse_addr)]
    pub flat: Option<u64>,
    /// The KVM device.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KVM)]
    pub kvm_device: PathBuf,
    /// The interrupt controller (default: what the guest's ABI note asks for, else none).
    #[arg(long, value_enum)]
    pub irqchip: Option<IrqChipArg>,
}

impl GuestArgs {
    /// The run options these arguments give; `--flat` needs a file.
    pub fn options(self, trace: Option<TraceFormat>) -> Result<RunOptions, String> {
        if self.flat.is_some() && self.guest.is_none() {
            return Err(
                "--flat loads a raw binary: name the file, e.g. host run ./guest.bin --flat 0x100000"
                    .into(),
            );
        }
        Ok(RunOptions {
            guest: self.guest.unwrap_or_else(|| RunOptions::default().guest),
            vm: VmConfig {
                mem_size: self.mem,
                kvm_path: self.kvm_device,
                mode: self.mode.into(),
                trace,
                vcpus: 1,
                // run::prepare keeps it only for a guest that asks
                cpuid: true,
                irqchip: self.irqchip.map(Into::into),
            },
            flat: self.flat,
            ..RunOptions::default()
        })
    }
}

/// `--weights 7:3` (a newtype: clap reads a bare Vec as repeated values).
#[derive(Clone)]
pub struct Weights(pub Vec<u32>);

pub fn parse_weights(s: &str) -> Result<Weights, String> {
    host::matrix::parse_weights(s).map(Weights)
}

#[derive(Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Switch VMs at every I/O exit (a VM that never exits keeps the CPU).
    OnExit,
    /// Switch VMs when the quantum timer fires; exits do not switch.
    Preempt,
}

// `host run`'s flags (and `host` alone: `host run hello`). A plain comment:
// clap would take a doc comment for the subcommand's about text.
#[derive(Args, Debug, PartialEq)]
pub struct RunArgs {
    #[command(flatten)]
    pub g: GuestArgs,
    /// Check 42 at 0x400 and in RAX at HLT even if the guest did not ask for it.
    #[arg(long)]
    pub check_42: bool,
    /// Print one JSON object (guest output included) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop the guest after this long (e.g. 500ms, 2s); exit code 5.
    #[arg(long, value_name = "DURATION", value_parser = size::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Do not run the vCPU thread under the seccomp filter (for debugging).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Print every KVM ioctl the host makes (arguments, result, purpose), then every exit;
    /// `=mermaid` writes the same sequence as a Mermaid flowchart at the end.
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = "text", require_equals = true)]
    pub trace_kvm: Option<TraceArg>,
    /// Pin vCPU threads to host CPUs, one per vCPU: --pin 1, --vcpus 2 --pin 0,1 (host_cpuid then stays fixed).
    #[arg(long, value_name = "CPU[,CPU...]", value_delimiter = ',')]
    pub pin: Vec<usize>,
    /// SIMVIRTIO polling mode: the driver does not notify; the host drains TX at every exit and on a timer.
    #[arg(long)]
    pub polling: bool,
    /// SIMVIRTIO ioeventfd mode: the driver's notify writes wake a device thread in the kernel (KVM_IOEVENTFD), with no exit.
    #[arg(long, conflicts_with = "polling")]
    pub ioeventfd: bool,
    /// With --polling: the timer's period.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_POLL, value_parser = size::parse_duration, requires = "polling")]
    pub poll_interval: std::time::Duration,
    /// Exit profiling: the exit table gets the host's handling time per reason, port and MMIO address (total and mean).
    #[arg(long)]
    pub stats: bool,
    /// Number of vCPUs, each on its own host thread (long mode; the guest must use guest_rt::smp_entry!).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub vcpus: u32,
    /// Write the --trace-kvm output to FILE instead of standard error.
    #[arg(long, value_name = "FILE", requires = "trace_kvm")]
    pub trace_file: Option<PathBuf>,
    /// Stop before the first instruction and wait for gdb on ADDR (HOST:PORT, :PORT,
    /// or a Unix socket path; default 127.0.0.1:1234). Put it after GUEST.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:1234")]
    pub gdb: Option<String>,
    /// Interrupt the guest every PERIOD: vector N (default 0x20) with --irqchip user,
    /// on vCPU VCPU (default 0), IRQ line N through an irqfd with --irqchip kernel
    /// (e.g. 10ms, 1ms:0x30, 2ms:0x20@1).
    #[arg(long, value_name = "PERIOD[:N][@VCPU]", value_parser = parse_inject)]
    pub inject_every: Option<host::config::Inject>,
    /// How --inject-every raises the IRQ line with --irqchip kernel: an irqfd (an
    /// eventfd write, default) or the KVM_IRQ_LINE ioctl (raise, then lower).
    #[arg(
        long,
        value_name = "HOW",
        value_enum,
        default_value = "irqfd",
        requires = "inject_every"
    )]
    pub raise_with: RaiseWith,
    /// Save the VM to FILE where --snapshot-at says, and stop there (docs/snapshots.md).
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Where --snapshot saves: exits:N (after exit N), call (at the guest's
    /// snapshot hypercall; the default), stop (at Ctrl-C or --timeout).
    #[arg(long, value_name = "POINT", value_parser = host::config::SnapAt::parse, requires = "snapshot")]
    pub snapshot_at: Option<host::config::SnapAt>,
    /// Write the run as Chrome trace-event JSON to FILE (ui.perfetto.dev, chrome://tracing):
    /// a track per vCPU with its KVM_RUN and exit-handling slices.
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,
    /// KVM's own counters of the VM and each vCPU (KVM_GET_STATS_FD) beside the exit table.
    #[arg(long)]
    pub kvm_stats: bool,
    /// With --gdb: record the run for time travel (reverse-stepi, reverse-continue, ...):
    /// checkpoints every 64 exits and re-execution (docs/debugging.md).
    #[arg(long, requires = "gdb")]
    pub record: bool,
    /// The most memory --record's checkpoints take (default 256M); the oldest go first.
    #[arg(long, value_name = "SIZE", value_parser = size::parse_size, requires = "record")]
    pub record_budget: Option<u64>,
    /// Write the run as one self-contained HTML page to FILE: the VM at a glance, its
    /// memory map, page tables, exits over time, the KVM calls, the crash (docs/report.md).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Continue the VM saved in FILE (by --snapshot) instead of starting GUEST; GUEST,
    /// if given, must be the guest it was saved from.
    #[arg(long, value_name = "FILE")]
    pub restore: Option<PathBuf>,
    /// The guest's arguments, after `--` (`host run primes -- 100 7`): the guest
    /// reads them with guest_rt::args() (docs/abi.md, "Arguments").
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run a guest until it halts or crashes; print its output, then the exit table.
    Run(RunArgs),
    /// Cargo's runner for the guest target (.cargo/config.toml): `cargo run -p guest-kernel
    /// --bin NAME -- [FLAGS]` is `host run ELF [FLAGS]`; a test build (`cargo test`) runs each
    /// of its tests in a VM of its own and prints libtest's lines.
    CargoRunner {
        /// The ELF cargo built.
        elf: String,
        /// `host run` flags, or for a test build libtest's filters, --exact and --list.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
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
        /// Also write the layout as one self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
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
        /// Write the turns as Chrome trace-event JSON (ui.perfetto.dev): a track per VM.
        #[arg(long, value_name = "FILE.json")]
        trace_out: Option<PathBuf>,
        /// Write the run as one self-contained HTML page: the timeline, shares against targets.
        #[arg(long, value_name = "FILE.html")]
        html: Option<PathBuf>,
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
    /// Print the hypercall ABI this host speaks: version, fingerprint, ports,
    /// transports, argument blocks.
    Abi {
        /// Print the generated parts of docs/abi.md (Markdown) instead.
        #[arg(long)]
        markdown: bool,
        /// Rewrite the generated parts of FILE (docs/abi.md) from this host's ABI.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["markdown", "check_doc"])]
        update_doc: Option<PathBuf>,
        /// Exit 1 with one line if FILE's generated parts differ from this host's ABI.
        #[arg(long, value_name = "FILE", conflicts_with = "markdown")]
        check_doc: Option<PathBuf>,
    },
    /// Measure exit round trips, VM creation and `host run hello` (build with --release).
    Bench {
        /// Exits for long_pio_exit_ns (0 to skip).
        #[arg(long, default_value_t = 200_000)]
        exits: u32,
        /// VM create/run/destroy cycles for vm_create_us.
        #[arg(long, default_value_t = 200)]
        vm_iters: usize,
        /// `host run hello` processes for run_hello_process_ms (0 to skip).
        #[arg(long, default_value_t = 20)]
        process_iters: usize,
        /// 10 ms quanta for intr_preempt_latency_us / intr_preempt_quantum_err_us, and turns of 7:3 for matrix_share_7_3_err_pp / matrix_share_7_3_loaded_err_pp (the latter with a busy loop on every CPU; 0 to skip).
        #[arg(long, default_value_t = 100)]
        preempt_quanta: u64,
        /// Runs per mode of the 4 KiB SIMVIRTIO transfer for simvirtio_tx_* (0 to skip).
        #[arg(long, default_value_t = 3)]
        simvirtio_runs: usize,
        /// VMs in one matrix for matrix_vm_setup_us / matrix_rss_kib_per_vm (0 to skip).
        #[arg(long, default_value_t = 1000)]
        matrix_vms: usize,
        /// Saves and restores per RAM size for snapshot_save_us_* / snapshot_restore_us_* (0 to skip).
        #[arg(long, default_value_t = 5)]
        snapshot_runs: usize,
        /// VMs cloned from one snapshot for snapshot_clone_rss_kib_per_vm (0 to skip).
        #[arg(long, default_value_t = 1000)]
        snapshot_clones: usize,
        /// Interrupts per path for kvm_interrupt_rtt_us, irq_line_rtt_us, irqfd_rtt_us (0 to skip).
        #[arg(long, default_value_t = 2000)]
        irq_injections: usize,
        /// Time between two of them, as irq_floor's GAP_US.
        #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = size::parse_duration)]
        irq_gap: std::time::Duration,
        /// PIO exits of the guest for record_run_ratio, reverse_stepi_ms, record_mem_mib (0 to skip).
        #[arg(long, default_value_t = 100_000)]
        record_exits: u32,
        /// The KVM device.
        #[arg(long, value_name = "PATH", default_value = "/dev/kvm")]
        kvm_device: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain parser gives exactly what clap gives, and leaves the rest
    /// to clap: its defaults cannot drift from the flags' defaults.
    #[test]
    fn plain_run_is_what_clap_parses() {
        let os = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let plain = RunArgs::plain(&os(&["run", "hello"])).expect("plain");
        assert_eq!(Some(plain), RunArgs::clap(&["run", "hello"]));
        for name in ["smp", "./g.bin", "help", "x y", "ünï"] {
            assert_eq!(
                RunArgs::plain(&os(&["run", name])),
                RunArgs::clap(&["run", name])
            );
        }
        assert_eq!(RunArgs::plain(&os(&["run"])), RunArgs::clap(&["run"]));
        assert_eq!(RunArgs::plain(&os(&[])), RunArgs::clap(&["run"]));
        for args in [
            &["run", "hello", "--json"][..],
            &["run", "--json"],
            &["run", "-h"],
            &["run", "--help"],
            &["run", "-"],
            &["run", ""],
            &["run", "hello", "extra"],
            &["layout", "hello"],
            &["list"],
            &["--version"],
        ] {
            assert_eq!(RunArgs::plain(&os(args)), None, "{args:?}");
        }
    }
}
