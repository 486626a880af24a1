//! `host run` and `host matrix` from parsed options to output: the text or
//! JSON report, and the files a run writes after it (`--html`, the matrix
//! pictures), each made before the run (the jailed thread cannot open one).

use super::out::*;
use super::patient;
use super::run_failure;
use host::run::{self, RunOptions};
use std::io::IsTerminal;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};

/// Makes the file `--html` (or another output) names, refusing one the
/// run reads (`inputs`): it would be emptied first.
pub fn create_output(flag: &str, path: &Path, inputs: &[&Path]) -> Result<std::fs::File, Failure> {
    if inputs.iter().any(|i| run::snapshot::same_file(path, i)) {
        return Err(usage(format!(
            "{flag} {} names a file this run reads or also writes: it would be emptied first; give another file",
            path.display()
        )));
    }
    std::fs::File::create(path).map_err(|e| {
        host_error(format!(
            "cannot create {}: {e}",
            host::diag::escape(&path.display().to_string())
        ))
    })
}

/// Writes the page to `f` and says where, in one line on standard error.
pub fn write_page(f: &mut std::fs::File, path: &Path, page: &str) -> Result<(), Failure> {
    let shown = host::diag::escape(&path.display().to_string()).into_owned();
    emit(f, page, &shown)?;
    stderr(&format!(
        "report: {} KiB written to {shown} (open it in a browser)\n",
        page.len().div_ceil(1024)
    ))
}

/// `host run`; `html`: `--html FILE`.
pub fn cmd_run(opts: &RunOptions, as_json: bool, html: Option<PathBuf>) -> Done {
    let mut page = match &html {
        Some(p) => {
            let mut inputs: Vec<&Path> = vec![Path::new(&opts.guest)];
            inputs.extend(opts.restore.as_deref());
            inputs.extend(opts.snapshot.as_deref());
            inputs.extend(opts.trace_out.as_deref());
            inputs.extend(opts.trace_file.as_deref());
            Some(create_output("--html", p, &inputs)?)
        }
        None => None,
    };
    let mut diag = std::io::stderr().lock();
    let mut captured = run::Capture::default();
    let (r, text) = if as_json {
        let r = run::run(opts, &mut captured, &mut diag).map_err(run_failure)?;
        json(&r.json(&captured))?;
        if captured.dropped > 0 {
            emit(
                &mut diag,
                &format!(
                    "host: --json keeps the first {} of guest output: {} more bytes were dropped\n",
                    host::size::human(run::JSON_OUTPUT_CAP as u64),
                    captured.dropped
                ),
                "standard error",
            )?;
        }
        let text = r.human();
        (r, text)
    } else {
        let stdout = std::io::stdout();
        let mut dropped = 0;
        let r = if stdout.is_terminal() {
            let mut w = std::io::LineWriter::new(stdout.lock());
            let mut tee = host::report::Tee::new(&mut w);
            let r = run::run(opts, &mut tee, &mut diag);
            (captured.bytes, captured.dropped) = (tee.kept, tee.dropped);
            r
        } else {
            // a pipe nobody reads must not outlast --timeout or Ctrl-C
            let deadline = opts.run.timeout.map(|t| std::time::Instant::now() + t);
            // SAFETY: dup only makes a second descriptor for our stdout.
            let fd = unsafe { libc::dup(1) };
            if fd < 0 {
                return Err(host_error("cannot duplicate standard output"));
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let file = unsafe { std::fs::File::from_raw_fd(fd) };
            let mut w = std::io::BufWriter::new(patient::Patient::new(file, deadline));
            let mut tee = host::report::Tee::new(&mut w);
            let r = run::run(opts, &mut tee, &mut diag);
            (captured.bytes, captured.dropped) = (tee.kept, tee.dropped);
            dropped = w.get_ref().dropped;
            r
        }
        .map_err(run_failure)?;
        let text = r.human();
        emit(&mut diag, &text, "standard error")?;
        if dropped > 0 {
            emit(
                &mut diag,
                &format!(
                    "host: {dropped} bytes of guest output were dropped: standard output took no more before the run was stopped\n"
                ),
                "standard error",
            )?;
        }
        (r, text)
    };
    if let (Some(f), Some(p)) = (&mut page, &html) {
        if captured.bytes.len() > host::report::HTML_OUTPUT_CAP {
            captured.dropped += (captured.bytes.len() - host::report::HTML_OUTPUT_CAP) as u64;
            captured.bytes.truncate(host::report::HTML_OUTPUT_CAP);
        }
        let doc = host::report::run_page(&r, r.json(&captured), r.layout.as_ref(), &text);
        write_page(f, p, &doc)?;
    }
    Ok(r.exit_code())
}

/// `host matrix`; `pictures`: `--timeline FILE.svg`, `--trace-out
/// FILE.json` and `--html FILE.html`.
pub fn cmd_matrix(
    opts: &host::matrix::MatrixOptions,
    as_json: bool,
    pictures: [Option<PathBuf>; 3],
) -> Done {
    use host::matrix::MatrixError;
    // an output may not be a file the run reads (a --vm, a snapshot among
    // them) or another output: it would be emptied first
    let mut files = Vec::new();
    for (i, (flag, out)) in ["--timeline", "--trace-out", "--html"]
        .iter()
        .zip(&pictures)
        .enumerate()
    {
        let Some(out) = out else {
            files.push(None);
            continue;
        };
        let mut inputs: Vec<&Path> = opts
            .vms
            .iter()
            .map(|v| Path::new(host::matrix::vm_name(v)))
            .collect();
        inputs.extend(pictures[..i].iter().flatten().map(PathBuf::as_path));
        inputs.extend(pictures[i + 1..].iter().flatten().map(PathBuf::as_path));
        files.push(Some(create_output(flag, out, &inputs)?));
    }
    let stdout = std::io::stdout();
    let r = host::matrix::run(
        opts,
        &mut std::io::BufWriter::with_capacity(1 << 16, stdout.lock()),
    )
    .map_err(|e| match e {
        MatrixError::Weights(_) => usage(e),
        MatrixError::Guest(e) => run_failure(e),
        MatrixError::Vm(host::vm::VmError::Config(_)) => usage(e),
        e => host_error(e),
    })?;
    for (i, (f, p)) in files.iter_mut().zip(&pictures).enumerate() {
        let (Some(f), Some(p)) = (f, p) else { continue };
        match i {
            0 => emit(f, &r.timeline_svg(), &p.display().to_string())?,
            1 => emit(f, &r.trace_json().to_string(), &p.display().to_string())?,
            _ => write_page(f, p, &host::report::matrix_page(&r))?,
        }
    }
    if as_json {
        json(&r)?;
    } else {
        stderr(&r.human())?;
    }
    Ok(r.exit_code())
}
