//! One gdb session, as vCPU 0's driver: gdbstub's state machine fed byte
//! by byte from gdb's socket, the guest run between stops on the vCPU's
//! own thread, and the run's end (halt, fault, detach, kill) reported both
//! to gdb and to the host as usual.

use super::clock::Clock;
use super::conn::{Conn, NoByte};
use super::debuggee::{Debuggee, Ran};
use super::error::GdbError;
use super::probe::Caps;
use super::regs::{ModeArch, X86_REAL};
use super::target::Guest;
use crate::diag::HostError;
use crate::signals::Timer;
use crate::vcpu::{Driver, ExitLoop, Stop, VcpuError};
use crate::x86::{CpuMode, Regs};
use gdbstub::common::Signal;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStub, GdbStubError, SingleThreadStopReason};
use gdbstub_arch::x86::{X86_64_SSE, X86_SSE};
use std::io::Write;

/// gdb's connection and what the stub needs to serve it.
pub struct Session {
    conn: Option<Conn>,
    fd: i32,
    mode: CpuMode,
    caps: Caps,
    layout: String,
    routing: Result<(), String>,
    /// How long the guest was stopped for gdb (after `drive`).
    stopped: std::time::Duration,
    /// `--record`: time travel from the first instruction, with this
    /// budget.
    pub record: Option<u64>,
}

impl Session {
    /// A session over `conn` for a guest in `mode`.
    pub fn new(conn: Conn, mode: CpuMode, caps: Caps, layout: String) -> Session {
        Session {
            fd: conn.fd(),
            conn: Some(conn),
            mode,
            caps,
            layout,
            routing: Ok(()),
            stopped: std::time::Duration::ZERO,
            record: None,
        }
    }
}

impl Driver for Session {
    fn stopped(&self) -> std::time::Duration {
        self.stopped
    }

    fn fd(&self) -> i32 {
        self.fd
    }

    fn prepare_thread(&mut self) {
        if let Some(c) = &mut self.conn {
            self.routing = c.route_to_this_thread().map_err(|e| e.to_string());
        }
    }

    fn drive(
        &mut self,
        lp: &mut ExitLoop<'_>,
        timeout: Option<&Timer>,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(Stop, Regs), VcpuError> {
        if let Err(e) = &self.routing {
            return Err(
                HostError::Debugger(format!("--gdb: cannot watch gdb's socket: {e}")).into(),
            );
        }
        let conn = self
            .conn
            .take()
            .ok_or(HostError::Internal("a gdb session driven twice"))?;
        let caps = self.caps.clone();
        let mut d = Debuggee::new(lp, caps, &self.layout);
        if let Some(budget) = self.record {
            d.record_budget = budget;
            d.record_allowed = true;
            d.record_on(budget)?;
        }
        match self.mode {
            CpuMode::Long => serve::<X86_64_SSE>(d, conn, timeout, out, diag, &mut self.stopped),
            CpuMode::Real => serve::<X86_REAL>(d, conn, timeout, out, diag, &mut self.stopped),
            CpuMode::Protected | CpuMode::Paged32 => {
                serve::<X86_SSE>(d, conn, timeout, out, diag, &mut self.stopped)
            }
        }
    }
}

fn stub_err(e: GdbStubError<VcpuError, std::io::Error>) -> VcpuError {
    if e.is_target_error() {
        if let Some(t) = e.into_target_error() {
            return t;
        }
        return HostError::Internal("a gdbstub target error without its value").into();
    }
    HostError::Debugger(format!("gdb connection: {e}")).into()
}

/// A stop reason with gdb's address width for `A`.
fn for_arch<A: ModeArch>(r: SingleThreadStopReason<u64>) -> SingleThreadStopReason<A::Usize> {
    use SingleThreadStopReason as R;
    match r {
        R::DoneStep => R::DoneStep,
        R::Exited(c) => R::Exited(c),
        R::Terminated(s) => R::Terminated(s),
        R::Signal(s) => R::Signal(s),
        R::SwBreak(()) => R::SwBreak(()),
        R::HwBreak(()) => R::HwBreak(()),
        R::Watch { tid, kind, addr } => R::Watch {
            tid,
            kind,
            addr: A::from_u64(addr),
        },
        R::ReplayLog { tid, pos } => R::ReplayLog { tid, pos },
        // the debuggee reports none of the others
        _ => R::Signal(Signal::SIGTRAP),
    }
}

/// What ended the session.
enum Left {
    /// gdb saw the run end (halt, or terminated).
    Ended,
    /// `detach`, gdb went away, or its bytes were not the remote protocol:
    /// the guest runs on by itself.
    Detached(String),
    /// `kill`.
    Killed,
    /// A stop request while gdb had the guest stopped.
    Stopped(Stop),
}

fn serve<A: ModeArch>(
    d: Debuggee<'_, '_>,
    conn: Conn,
    timeout: Option<&Timer>,
    out: &mut dyn Write,
    diag: &mut dyn Write,
    stopped: &mut std::time::Duration,
) -> Result<(Stop, Regs), VcpuError> {
    let mut clock = Clock::stopped(d.lp.deadline, timeout, d.lp.others);
    let r = serve_with::<A>(d, conn, &mut clock, out, diag);
    *stopped = clock.stopped_total();
    r
}

fn serve_with<A: ModeArch>(
    d: Debuggee<'_, '_>,
    conn: Conn,
    clock: &mut Clock<'_>,
    out: &mut dyn Write,
    diag: &mut dyn Write,
) -> Result<(Stop, Regs), VcpuError> {
    let mut g = Guest::<A>::new(d);
    let stub = GdbStub::new(conn);
    let mut sm = stub.run_state_machine(&mut g).map_err(stub_err)?;
    // A failed read or write on gdb's socket (gdb died, the network
    // went) is gdb going away, and bytes that are not the remote protocol
    // (a packet gdbstub cannot parse, an unexpected one, one too long) are
    // a client we cannot talk to: either way the guest runs on, as after
    // `detach`. Only the target's own errors (the VM's) end the run.
    macro_rules! next {
        ($e:expr) => {
            match $e {
                Ok(sm) => sm,
                // Ctrl-C (or another vCPU's end) while gdb was not reading
                Err(e) if !e.is_target_error() && g.d.stop_request().is_some() => {
                    break Left::Stopped(g.d.stop_request().unwrap_or(Stop::Interrupted))
                }
                Err(e) if e.is_connection_error() => {
                    break Left::Detached("the connection to gdb failed".into())
                }
                Err(e) if !e.is_target_error() => {
                    break Left::Detached(format!(
                        "the client's bytes are not the gdb remote protocol ({e})"
                    ))
                }
                Err(e) => return Err(stub_err(e)),
            }
        };
    }
    let left = loop {
        // `monitor snapshot` was answered: the run ends here, to be saved
        if g.d.save_now {
            break Left::Stopped(Stop::Snapshot);
        }
        sm = match sm {
            GdbStubStateMachine::Idle(mut s) => match s.borrow_conn().next_byte(true) {
                Ok(b) => next!(s.incoming_data(&mut g, b)),
                Err(NoByte::Gone(_)) => break Left::Detached("gdb closed the connection".into()),
                Err(NoByte::Kicked | NoByte::Empty) => match g.d.stop_request() {
                    Some(stop) => break Left::Stopped(stop),
                    None => GdbStubStateMachine::Idle(s),
                },
            },
            GdbStubStateMachine::Running(mut s) => match s.borrow_conn().next_byte(false) {
                Ok(b) => next!(s.incoming_data(&mut g, b)),
                Err(NoByte::Gone(_)) => break Left::Detached("gdb closed the connection".into()),
                Err(NoByte::Kicked | NoByte::Empty) => match g.d.run(clock, out, diag)? {
                    Ran::Stopped(r) => {
                        if g.d.ended.is_some() {
                            // the last reply: a client that does not read
                            // cannot hold the end of the run
                            s.borrow_conn().run_ended();
                        }
                        next!(s.report_stop(&mut g, for_arch::<A>(r)))
                    }
                    Ran::Input => GdbStubStateMachine::Running(s),
                },
            },
            GdbStubStateMachine::CtrlCInterrupt(s) => next!(
                s.interrupt_handled(&mut g, Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
            ),
            GdbStubStateMachine::Disconnected(s) => {
                break match s.get_reason() {
                    DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_) => {
                        Left::Ended
                    }
                    DisconnectReason::Disconnect => Left::Detached("gdb detached".into()),
                    DisconnectReason::Kill => Left::Killed,
                };
            }
        };
    };
    let d = &mut g.d;
    if let Some(end) = d.ended.take().or_else(|| d.dead.take()) {
        return Ok(end);
    }
    match left {
        Left::Ended => Err(HostError::Internal("gdb saw an end the run did not record").into()),
        Left::Stopped(Stop::Snapshot) => {
            // the saved memory holds the guest's bytes, not gdb's int3s
            for (addr, orig) in std::mem::take(&mut d.points.int3) {
                let _ = d.write(addr, &[orig]);
            }
            d.disarm()?;
            d.end_here(Stop::Snapshot)
        }
        Left::Stopped(stop) => d.end_here(stop),
        Left::Killed => d.end_here(Stop::Killed),
        Left::Detached(why) => {
            for (addr, orig) in std::mem::take(&mut d.points.int3) {
                let _ = d.write(addr, &[orig]);
            }
            d.points = Default::default();
            d.disarm()?;
            crate::diag::host_line(
                out,
                diag,
                format_args!("gdb: {why}; the guest runs on without the debugger"),
            )?;
            clock.start(d.lp);
            let r = d.lp.run(out, diag);
            clock.stop();
            r
        }
    }
}

impl From<GdbError> for HostError {
    fn from(e: GdbError) -> HostError {
        HostError::Debugger(e.to_string())
    }
}
