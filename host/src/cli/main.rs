//! `host`: the command line. Parsing and printing only; the work is in the library.

use clap::Parser;
use host::bench::{self, BenchOptions};
use host::config::{RunConfig, VmConfig};
use host::guests;
use host::run::{self, RunOptions, code};
use host::trace::TraceFormat;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod args;

use args::*;

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
    // Created before the run: the scheduler thread may not open files once under seccomp.
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

fn cmd_abi(markdown: bool, update: Option<PathBuf>, check: Option<PathBuf>) -> ExitCode {
    use host::abi;
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    if let Some(p) = update {
        let r = read(&p).and_then(|doc| abi::splice(&doc)).and_then(|new| {
            std::fs::write(&p, new).map_err(|e| format!("cannot write {}: {e}", p.display()))
        });
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    if let Some(p) = check {
        return match read(&p).and_then(|doc| abi::check_doc(&doc)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }
    if markdown {
        for (name, text) in abi::regions() {
            print!("<!-- abi:{name}:begin -->\n{text}<!-- abi:{name}:end -->\n");
        }
    } else {
        print!("{}", abi::table());
    }
    ExitCode::SUCCESS
}
