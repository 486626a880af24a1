//! `host run`'s flags without clap's whole CLI: `host run NAME` parsed by
//! hand (clap's code never paged in, issue 19), and the run subcommand's
//! own parser.

use super::args::*;
use clap::Args as _;
use host::size;
use std::path::PathBuf;

impl RunArgs {
    /// `host`, `host run` and `host run NAME` (NAME a plain word): what
    /// clap gives for them, without running clap, so `host run hello`
    /// never pages clap's code in (issue 19: its resident memory).
    /// Anything else (a flag, a second word, a path starting with '-',
    /// bytes that are not UTF-8) is None: clap's to parse and explain.
    pub fn plain(args: &[std::ffi::OsString]) -> Option<RunArgs> {
        let guest = match args {
            [] => None,
            [run] if run == "run" => None,
            [run, name] if run == "run" => {
                let name = name.to_str()?;
                if name.is_empty() || name.starts_with('-') {
                    return None;
                }
                Some(name.to_string())
            }
            _ => return None,
        };
        Some(RunArgs {
            g: GuestArgs {
                guest,
                mode: Mode::Long,
                mem: size::parse_size(DEFAULT_MEM).ok()?,
                flat: None,
                kvm_device: PathBuf::from(DEFAULT_KVM),
                irqchip: None,
            },
            check_42: false,
            json: false,
            timeout: None,
            no_seccomp: false,
            trace_kvm: None,
            pin: Vec::new(),
            polling: false,
            ioeventfd: false,
            poll_interval: size::parse_duration(DEFAULT_POLL).ok()?,
            stats: false,
            vcpus: 1,
            trace_file: None,
            gdb: None,
            inject_every: None,
            raise_with: RaiseWith::Irqfd,
            snapshot: None,
            snapshot_at: None,
            restore: None,
            kvm_stats: false,
            trace_out: None,
            html: None,
            record: false,
            record_budget: None,
            args: Vec::new(),
        })
    }

    /// `run` and its arguments (`args[0]` is "run") parsed by the run
    /// subcommand's own clap parser, which builds only that command; None
    /// if they do not parse (the whole CLI's parser then says why).
    pub fn clap<A: Into<std::ffi::OsString> + Clone>(args: &[A]) -> Option<RunArgs> {
        use clap::FromArgMatches as _;
        let m = RunArgs::augment_args(clap::Command::new("run"))
            .try_get_matches_from(args.iter().cloned())
            .ok()?;
        RunArgs::from_arg_matches(&m).ok()
    }
}
