//! `--trace-kvm`: every KVM ioctl the host makes, in order, with its key
//! arguments, result and purpose, then every exit. The VM records each call
//! where it makes it (each KVM object in `crate::kvm` records its own ioctls), so the trace is the
//! program's real sequence (a test checks it against strace).
//!
//! Text goes out line by line as it happens. Mermaid collects the set-up
//! calls and the exits grouped by kind, and writes one flowchart at the end.

use std::collections::BTreeMap;
use std::io::Write;

/// Calls kept for the Mermaid chart; later ones are written (text) but not
/// kept.
const MAX_CALLS: usize = 10_000;
/// Kinds of exit with a branch of their own in the chart; the rest share
/// one.
const MAX_KINDS: usize = 256;

/// How to print the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// One line per call and per exit.
    Text,
    /// A Mermaid flowchart, written when the run ends.
    Mermaid,
    /// Nothing written: the calls and exits are kept for `--html` and
    /// `--trace-out` (their sequence diagram and host track).
    Keep,
}

/// One host call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// An ioctl (true) or another system call the KVM flow needs (mmap, seccomp).
    pub ioctl: bool,
    /// `/dev/kvm`, `vm` or `vcpu` and the fd number, for ioctls.
    pub target: String,
    /// The request's name, e.g. `KVM_CREATE_VM`.
    pub name: &'static str,
    /// Key arguments.
    pub args: String,
    /// What it returned.
    pub ret: String,
    /// Why the host makes it.
    pub purpose: &'static str,
    /// Set-up, exit handling, or after the run.
    pub phase: Phase,
    /// When it was recorded (set by the tracer).
    pub at: Option<std::time::Instant>,
}

impl Call {
    /// An ioctl on `target` (`/dev/kvm 3`, `vm 4`, `vcpu 5`), made during set-up.
    pub fn ioctl(
        target: String,
        name: &'static str,
        args: String,
        ret: String,
        purpose: &'static str,
    ) -> Call {
        Call {
            ioctl: true,
            target,
            name,
            args,
            ret,
            purpose,
            phase: Phase::Setup,
            at: None,
        }
    }

    /// Another system call the KVM flow needs (open, mmap, seccomp, timers).
    pub fn syscall(name: &'static str, args: String, ret: String, purpose: &'static str) -> Call {
        Call {
            ioctl: false,
            target: String::new(),
            name,
            args,
            ret,
            purpose,
            phase: Phase::Setup,
            at: None,
        }
    }
}

/// Records the call `c` builds, when there is a trace (no formatting
/// otherwise).
pub fn record(trace: &mut Option<Tracer>, c: impl FnOnce() -> Call) {
    if let Some(t) = trace {
        t.call(c());
    }
}

/// When a call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the first KVM_RUN.
    Setup,
    /// While handling exits.
    Loop,
    /// After the last exit.
    End,
}

/// What a trace kept of a run.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// The calls (the first 10 000), in order.
    pub calls: Vec<Call>,
    /// The kinds of exit the loop handled, in first-seen order, with their
    /// counts (the exit that ended the run is `last_exit`).
    pub exits: Vec<(String, u64)>,
    /// The exit that ended the run.
    pub last_exit: Option<String>,
    /// KVM_RUN calls made.
    pub runs: u64,
    /// Calls past the first 10 000, not kept.
    pub dropped: u64,
}

/// The trace of one VM.
pub struct Tracer {
    format: TraceFormat,
    sink: Option<Box<dyn Write + Send>>,
    /// Where the sink writes, for errors.
    sink_name: String,
    /// The first write that failed (the guest goes on; the run reports it).
    error: Option<std::io::Error>,
    /// Lines written before a sink was attached.
    pending: Vec<String>,
    calls: Vec<Call>,
    /// Exits by kind, in first-seen order, for Mermaid.
    exits: Vec<(String, u64)>,
    exit_index: BTreeMap<String, usize>,
    /// The last exit (it ends the run: HLT or a fault).
    last_exit: Option<String>,
    n: u64,
    runs: u64,
    phase: Phase,
    /// Calls made while handling an exit that is recorded after them.
    deferred: Vec<Call>,
    /// Calls not kept (past MAX_CALLS).
    dropped: u64,
}

impl Tracer {
    /// A tracer that buffers until `attach`.
    pub fn new(format: TraceFormat) -> Tracer {
        Tracer {
            format,
            sink: None,
            sink_name: String::new(),
            error: None,
            pending: Vec::new(),
            calls: Vec::new(),
            exits: Vec::new(),
            exit_index: BTreeMap::new(),
            last_exit: None,
            n: 0,
            runs: 0,
            phase: Phase::Setup,
            deferred: Vec::new(),
            dropped: 0,
        }
    }

    /// Where lines go from now on (`name` says where, for errors); what
    /// was buffered goes first.
    pub fn attach(&mut self, mut sink: Box<dyn Write + Send>, name: &str) -> std::io::Result<()> {
        self.sink_name = name.to_string();
        for l in self.pending.drain(..) {
            sink.write_all(l.as_bytes())?;
        }
        sink.flush()?;
        self.sink = Some(sink);
        Ok(())
    }

    /// Where the trace goes.
    pub fn sink_name(&self) -> &str {
        &self.sink_name
    }

    /// Whether a sink is attached.
    pub fn attached(&self) -> bool {
        self.sink.is_some()
    }

    fn line(&mut self, l: String) {
        if self.format != TraceFormat::Text {
            return;
        }
        match &mut self.sink {
            // A trace that cannot be written must not stop the guest: the
            // first error is kept and `finish` reports it.
            Some(s) => {
                if self.error.is_none()
                    && let Err(e) = s.write_all(l.as_bytes())
                {
                    self.error = Some(e);
                }
            }
            None => self.pending.push(l),
        }
    }

    /// Records a call (its phase is the tracer's).
    pub fn call(&mut self, mut c: Call) {
        c.phase = self.phase;
        c.at = Some(std::time::Instant::now());
        self.n += 1;
        let what = if c.ioctl {
            format!("ioctl({}, {}{}{})", c.target, c.name, sep(&c.args), c.args)
        } else {
            format!("{}({})", c.name, c.args)
        };
        let l = format!("kvm {:>4}  {what} = {}  # {}\n", self.n, c.ret, c.purpose);
        self.line(l);
        // bounded: a guest that loops over a hypercall that makes a call
        // (gva_to_hva reads the special registers) cannot grow the trace
        if self.calls.len() < MAX_CALLS {
            self.calls.push(c);
        } else {
            self.dropped += 1;
        }
    }

    /// Records a call made while handling the exit that `exit` will record
    /// next (the exit is recorded once handled; its calls follow it).
    pub fn defer(&mut self, c: Call) {
        self.deferred.push(c);
    }

    /// Records a KVM_RUN that returned with an exit, described by `exit`
    /// (the kind, e.g. `KVM_EXIT_IO out port 0xe9 (print8bit)`) and `detail`
    /// (this exit's own values). `last`: the run ends with it.
    pub fn exit(&mut self, fd: i32, kind: String, detail: &str, last: bool) {
        self.n += 1;
        self.runs += 1;
        self.phase = if last { Phase::End } else { Phase::Loop };
        let l = format!(
            "kvm {:>4}  ioctl(vcpu {fd}, KVM_RUN) = 0 -> {kind}{}{detail}\n",
            self.n,
            sep(detail)
        );
        self.line(l);
        for c in std::mem::take(&mut self.deferred) {
            self.call(c);
        }
        if last {
            self.last_exit = Some(kind);
            return;
        }
        self.count(kind);
    }

    /// Records a KVM_RUN that returned -1 with `errno` (EINTR: a signal,
    /// the assignment's KVM_EXIT_INTR).
    pub fn exit_errno(&mut self, fd: i32, errno: i32) {
        let name = match errno {
            libc::EINTR => "EINTR (a signal: KVM_EXIT_INTR)",
            _ => "EAGAIN",
        };
        self.n += 1;
        self.runs += 1;
        self.phase = Phase::Loop;
        let l = format!("kvm {:>4}  ioctl(vcpu {fd}, KVM_RUN) = -1 {name}\n", self.n);
        self.line(l);
        let kind = format!("KVM_RUN = -1 {name}");
        self.count(kind);
    }

    fn count(&mut self, kind: String) {
        // bounded too: one branch per kind of exit, up to MAX_KINDS
        let kind = if self.exit_index.len() >= MAX_KINDS && !self.exit_index.contains_key(&kind) {
            "other kinds of exit".to_string()
        } else {
            kind
        };
        match self.exit_index.get(&kind) {
            Some(&i) => self.exits[i].1 += 1,
            None => {
                self.exit_index.insert(kind.clone(), self.exits.len());
                self.exits.push((kind, 1));
            }
        }
    }

    /// What the trace kept, for `--html` and `--trace-out`.
    pub fn kept(&self) -> Kept {
        Kept {
            calls: self.calls.clone(),
            exits: self.exits.clone(),
            last_exit: self.last_exit.clone(),
            runs: self.runs,
            dropped: self.dropped,
        }
    }

    /// Ends the trace: flushes text, or writes the Mermaid flowchart.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let chart = (self.format == TraceFormat::Mermaid).then(|| self.mermaid());
        if let Some(s) = &mut self.sink {
            if let Some(c) = chart {
                s.write_all(c.as_bytes())?;
            }
            s.flush()?;
        }
        Ok(())
    }

    /// The flowchart: set-up calls in order, then the run loop with one
    /// branch per kind of exit (with its count) and per call made while
    /// handling exits, then the exit that ended the run and what follows.
    pub fn mermaid(&self) -> String {
        let mut m = String::from("flowchart TD\n");
        let mut last = String::new();
        let node = |m: &mut String, id: String, label: String, last: &mut String| {
            m.push_str(&format!("  {id}[\"{}\"]\n", esc(&label)));
            if !last.is_empty() {
                m.push_str(&format!("  {last} --> {id}\n"));
            }
            *last = id;
        };
        let label = |c: &Call| {
            let call = if c.ioctl {
                c.name.to_string()
            } else {
                format!("{}()", c.name)
            };
            format!("{call}<br/>{}", c.purpose)
        };
        for (i, c) in self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.phase == Phase::Setup)
        {
            node(&mut m, format!("c{i}"), label(c), &mut last);
        }
        m.push_str(&format!("  run{{\"KVM_RUN<br/>{} calls\"}}\n", self.runs));
        if !last.is_empty() {
            m.push_str(&format!("  {last} --> run\n"));
        }
        for (i, (kind, count)) in self.exits.iter().enumerate() {
            m.push_str(&format!(
                "  x{i}[\"{}<br/>x {count}\"]\n  run --> x{i}\n  x{i} --> run\n",
                esc(kind)
            ));
        }
        for (i, (name, purpose, count)) in handlers(&self.calls).iter().enumerate() {
            m.push_str(&format!(
                "  h{i}[\"{name}<br/>{}<br/>x {count}\"]\n  run -.-> h{i}\n  h{i} -.-> run\n",
                esc(purpose)
            ));
        }
        last = "run".into();
        if let Some(k) = &self.last_exit {
            node(&mut m, "xend".into(), k.clone(), &mut last);
        }
        for (i, c) in self
            .calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.phase == Phase::End)
        {
            node(&mut m, format!("c{i}"), label(c), &mut last);
        }
        m.push_str(&format!("  done([\"done\"])\n  {last} --> done\n"));
        m
    }
}

/// The calls made while handling exits, one per request in first-seen
/// order: its name, purpose and how many times (the Mermaid chart's
/// branches, the `--html` diagram's).
pub fn handlers(calls: &[Call]) -> Vec<(&'static str, &'static str, u64)> {
    let mut handlers: Vec<(&'static str, &'static str, u64)> = Vec::new();
    for c in calls.iter().filter(|c| c.phase == Phase::Loop) {
        match handlers.iter_mut().find(|h| h.0 == c.name) {
            Some(h) => h.2 += 1,
            None => handlers.push((c.name, c.purpose, 1)),
        }
    }
    handlers
}

fn sep(s: &str) -> &'static str {
    if s.is_empty() { "" } else { ", " }
}

fn esc(s: &str) -> String {
    s.replace('"', "#quot;")
}
