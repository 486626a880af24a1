//! `host`: the command line. Parsing and printing only; the work is in the library.
// an allocation that fails is reported in one line (host::diag::on_alloc_error)
#![feature(alloc_error_hook)]

use clap::Parser;
use host::bench::{self, BenchOptions};
use host::config::RunConfig;
use host::guests;
use host::run::{self, RunOptions, code};
use host::trace::TraceFormat;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

mod abi_cmd;
mod args;
mod irq;
mod out;
mod patient;
mod plain;
mod run_cmd;

use abi_cmd::cmd_abi;
use args::*;
use out::*;
use run_cmd::{cmd_matrix, cmd_run, create_output, write_page};

/// The exit code of a `host run`/`layout` error: bad values on the command
/// line are usage errors (2), the rest host errors (1).
fn run_failure(e: run::RunError) -> Failure {
    use host::vm::VmError;
    match e {
        run::RunError::Usage(_) | run::RunError::Vm(VmError::Config(_)) => usage(e),
        e => host_error(e),
    }
}

fn main() -> ExitCode {
    host::diag::install_panic_hook();
    std::alloc::set_alloc_error_hook(host::diag::on_alloc_error);
    // before any thread exists: see seccomp::one_arena
    host::seccomp::one_arena();
    // SIGINT/SIGTERM from the first instant: a handler that stops the
    // running guests (or exits 130 when none runs), so a run always ends
    // with its summary and exit 130, on one vCPU or several.
    if let Err(e) = host::signals::init() {
        let _ = writeln!(std::io::stderr(), "host: error: {e}");
        return ExitCode::from(code::HOST_ERROR as u8);
    }
    let cli = quick_parse().unwrap_or_else(Cli::parse);
    let code = match dispatch(cli) {
        Ok(c) => c,
        Err(f) => {
            // if standard error is closed too, the exit code is all there is
            let _ = writeln!(std::io::stderr(), "host: error: {}", f.msg);
            f.code
        }
    };
    ExitCode::from(code as u8)
}

/// `host run ...` and `host` alone without the whole CLI's parser (issue
/// 19: clap builds every subcommand with its help texts before it parses;
/// that was a third of the page faults of `host run hello`). A plain
/// `host run NAME` needs no clap at all (`RunArgs::plain`); other `run`
/// arguments are parsed by the run subcommand's own clap parser. Anything
/// else, and any error or help request, returns None and goes to the
/// whole CLI's parser, which parses and reports it exactly as before.
fn quick_parse() -> Option<Cli> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let run = match RunArgs::plain(&args) {
        Some(plain) => plain,
        None if args.first()? == "run" => RunArgs::clap(&args)?,
        None => return None,
    };
    Some(Cli {
        cmd: Some(Cmd::Run(run)),
    })
}

fn dispatch(cli: Cli) -> Done {
    let Some(cmd) = cli.cmd.or_else(|| RunArgs::plain(&[]).map(Cmd::Run)) else {
        return Err(Failure {
            code: code::HOST_ERROR,
            msg: "the default `run` arguments do not parse".into(),
        });
    };
    match cmd {
        Cmd::Run(RunArgs {
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
            ioeventfd,
            poll_interval,
            stats,
            gdb,
            inject_every,
            raise_with,
            snapshot,
            snapshot_at,
            restore,
            kvm_stats,
            trace_out,
            html,
            record,
            record_budget,
            args,
        }) => {
            // the page and the trace file draw the KVM calls (with several
            // vCPUs or a device thread: the set-up calls on this thread)
            let keep = html.is_some() || trace_out.is_some();
            let trace = trace_kvm
                .map(|t| match t {
                    TraceArg::Text => TraceFormat::Text,
                    TraceArg::Mermaid => TraceFormat::Mermaid,
                })
                .or(keep.then_some(TraceFormat::Keep));
            // --restore without GUEST: the guest the snapshot names
            let no_guest = g.guest.is_none();
            let mut opts = RunOptions {
                run: RunConfig {
                    timeout,
                    seccomp: !no_seccomp,
                    // a replay must see the CPU the first run saw (host_cpuid)
                    pin: match record && pin.is_empty() && vcpus == 1 {
                        // SAFETY: sched_getcpu takes nothing and only reads.
                        true => vec![unsafe { libc::sched_getcpu() }.max(0) as usize],
                        false => pin,
                    },
                    polling: polling.then_some(poll_interval),
                    ioeventfd,
                    profile: stats,
                    check_42,
                    inject: inject_with(inject_every, raise_with),
                    snapshot_at: snapshot
                        .as_ref()
                        .map(|_| snapshot_at.unwrap_or(host::config::SnapAt::Call)),
                    kvm_stats,
                    timeline: trace_out.is_some() || html.is_some(),
                    record: record
                        .then(|| record_budget.unwrap_or(host::gdb::record::DEFAULT_BUDGET)),
                },
                html: html.is_some(),
                trace_out,
                snapshot,
                restore,
                trace_file,
                gdb,
                args,
                ..g.options(trace).map_err(usage)?
            };
            opts.vm.vcpus = vcpus;
            if opts.restore.is_some() && no_guest {
                opts.guest.clear();
            }
            cmd_run(&opts, json, html)
        }
        Cmd::Layout {
            g,
            translate,
            json: as_json,
            html,
        } => {
            let opts = g.options(None).map_err(usage)?;
            let mut page = match &html {
                Some(p) => Some(create_output("--html", p, &[Path::new(&opts.guest)])?),
                None => None,
            };
            let mut p = run::prepare(&opts).map_err(run_failure)?;
            let l = host::inspect::describe(&mut p.vm, &p.plan, translate).map_err(host_error)?;
            if let (Some(f), Some(path)) = (&mut page, &html) {
                write_page(f, path, &host::report::layout_page(&p.name, &l))?;
            }
            if as_json {
                json(&l)?;
            } else {
                stdout(&l.text())?;
            }
            Ok(code::OK)
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
            trace_out,
            html,
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
                record_turns: timeline.is_some() || trace_out.is_some() || html.is_some(),
                seccomp: !no_seccomp,
            };
            cmd_matrix(&opts, json, [timeline, trace_out, html])
        }
        Cmd::CargoRunner { elf, args } => cmd_cargo_runner(elf, args),
        Cmd::List => {
            let mut text = String::new();
            for (name, path) in guests::list() {
                let state = if !path.is_file() {
                    "  (missing: rebuild)".to_string()
                } else if guests::source_gone(&name) {
                    format!(
                        "  (stale: guest-kernel/src/bin/{}.rs is gone; `cargo clean` removes it)",
                        host::diag::escape(&name)
                    )
                } else {
                    String::new()
                };
                // file names in the build folder are the file system's text
                text.push_str(&format!(
                    "{:<16} {}{state}\n",
                    host::diag::escape(&name),
                    host::diag::escape(&path.to_string_lossy())
                ));
            }
            stdout(&text)?;
            Ok(code::OK)
        }
        Cmd::Abi {
            markdown,
            update_doc,
            check_doc,
        } => cmd_abi(markdown, update_doc, check_doc),
        Cmd::Bench {
            exits,
            vm_iters,
            process_iters,
            preempt_quanta,
            simvirtio_runs,
            matrix_vms,
            snapshot_runs,
            snapshot_clones,
            irq_injections,
            irq_gap,
            record_exits,
            kvm_device,
        } => {
            let o = BenchOptions {
                exits,
                vm_iters,
                process_iters,
                preempt_quanta,
                simvirtio_runs,
                matrix_vms,
                snapshot_runs,
                snapshot_clones,
                irq_injections,
                irq_gap,
                record_exits,
                kvm_path: kvm_device,
            };
            bench::run(&o, &mut std::io::stdout().lock()).map_err(host_error)?;
            Ok(code::OK)
        }
    }
}

fn cmd_cargo_runner(elf: String, args: Vec<String>) -> Done {
    // a test build says so in its ABI note; anything unreadable goes to
    // `host run`, which explains what is wrong with it
    let tests = run::read_guest(&elf, hypercall_abi::layout::MAX_MEM, true)
        .ok()
        .and_then(|(_, bytes)| host::loader::plan_elf(&bytes, hypercall_abi::layout::MAX_MEM).ok())
        .is_some_and(|p| p.flags & hypercall_abi::note::FLAG_TESTS != 0);
    if !tests {
        // `cargo run --bin primes -- 100 7`: words that do not start with
        // '-' are the guest's arguments; host flags come first, and `--`
        // then starts the guest's (`cargo run ... -- --json -- 100 7`)
        let guest_args_first = args.first().is_some_and(|a| !a.starts_with('-'));
        let argv = ["host", "run", elf.as_str()]
            .into_iter()
            .chain(guest_args_first.then_some("--"))
            .map(String::from)
            .chain(args);
        return dispatch(Cli::try_parse_from(argv).map_err(|e| {
            let _ = e.print();
            Failure {
                code: code::USAGE,
                msg: "cargo-runner: bad `host run` flags (see above)".into(),
            }
        })?);
    }
    let sel = run::harness::Selection::parse(&args).map_err(usage)?;
    let verdict =
        run::harness::run_tests(&elf, &sel, &mut std::io::stdout().lock()).map_err(run_failure)?;
    Ok(match verdict {
        run::harness::Verdict::Passed => code::OK,
        // libtest's code for failed tests
        run::harness::Verdict::Failed => 101,
        run::harness::Verdict::Interrupted => code::INTERRUPTED,
    })
}
