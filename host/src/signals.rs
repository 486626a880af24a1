//! Getting a vCPU out of KVM_RUN: timers and Ctrl-C, without losing a signal.
//!
//! The vCPU thread keeps the kick signal blocked. Through KVM_SET_SIGNAL_MASK
//! it tells KVM to unblock it only while the guest runs. So a kick that
//! arrives while the host is handling an exit stays pending, and the next
//! KVM_RUN returns EINTR at once instead of running a guest that may never
//! exit again. Kicks are always thread-directed (a timer with
//! SIGEV_THREAD_ID, or tgkill).
//!
//! SIGINT and SIGTERM get a handler in every thread, from the CLI's first
//! instructions: it sets the interrupted flag and kicks every thread that
//! runs a guest, or, when none does, ends the process with exit 130. The
//! handler only touches atomics and makes two kinds of system call (tgkill,
//! _exit), both async-signal-safe and both in the seccomp allowlist, so it
//! may run on any thread, a vCPU thread inside KVM_RUN included (KVM's mask
//! leaves SIGINT/SIGTERM unblocked, so KVM_RUN returns EINTR). There is no
//! signal thread: the process has only the threads its vCPUs need.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Set by a command that runs guests one after another (the test harness)
/// and reports itself: a SIGINT/SIGTERM between two guests then only sets
/// the flag instead of ending the process.
static REPORTS_INTERRUPTS: AtomicBool = AtomicBool::new(false);
/// Room for this many threads running guests at once (a process has at
/// most `layout::MAX_VCPUS` per VM; the matrix runs all its VMs on one).
const MAX_RUNNING: usize = 256;
/// Thread ids of the threads running a guest now (0: a free slot). A fixed
/// table of atomics, because the SIGINT/SIGTERM handler reads it.
static RUNNING: [AtomicI32; MAX_RUNNING] = [const { AtomicI32::new(0) }; MAX_RUNNING];
static HANDLERS: std::sync::Once = std::sync::Once::new();
/// This process's id, read at set-up (a vCPU thread under seccomp may not
/// call getpid, and the handler must not take a lock).
static PID: AtomicI32 = AtomicI32::new(0);

/// Why signal set-up failed.
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {source}")]
pub struct SignalError {
    what: &'static str,
    source: std::io::Error,
}

fn check(what: &'static str, rc: libc::c_int) -> Result<(), SignalError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(SignalError {
            what,
            source: std::io::Error::last_os_error(),
        })
    }
}

/// The signal timers send to kick a vCPU out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// From now on a SIGINT/SIGTERM while no guest runs only sets
/// [`interrupted`]: the caller checks it before each guest it starts and
/// ends with its own summary and [`INTERRUPTED_EXIT`].
pub fn report_interrupts() {
    REPORTS_INTERRUPTS.store(true, Ordering::Relaxed);
}

extern "C" fn on_kick(_: libc::c_int) {}

pub(crate) fn set_of(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Dequeues every pending kick of the calling thread. KVM_RUN returns EINTR
/// for a pending kick but leaves it queued (the thread's mask blocks it
/// again on the way out), so without this every later KVM_RUN on this
/// thread would return EINTR at once.
pub fn consume_kicks() {
    let set = set_of(&[kick_signal()]);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kick is blocked in this thread; sigtimedwait with a zero
    // timeout dequeues one pending instance or fails with EAGAIN.
    while unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) } >= 0 {}
}

/// What `take_kicks` dequeued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kicks {
    /// Expirations of the timer with the tag asked for (1 + its overrun
    /// count per signal: a periodic timer that fired while its signal was
    /// still pending counts every period).
    pub ticks: u32,
    /// Signals from the timer with the second tag.
    pub second: u32,
    /// Other kicks (another timer, the SIGINT/SIGTERM handler, a sibling vCPU).
    pub other: u32,
}

/// Like `consume_kicks`, and says which timer sent them: a signal from the
/// timer made with `Timer::tagged(tag)` counts in `ticks`, one from
/// `Timer::tagged(second)` in `second`.
pub fn take_kicks(tag: usize, second: usize) -> Kicks {
    let set = set_of(&[kick_signal()]);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut k = Kicks::default();
    loop {
        // SAFETY: a zeroed siginfo_t is valid plain data for the kernel to fill.
        let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: the kick is blocked in this thread; sigtimedwait with a zero
        // timeout dequeues one pending instance into `si` or fails (EAGAIN).
        if unsafe { libc::sigtimedwait(&set, &mut si, &zero) } < 0 {
            return k;
        }
        // SAFETY: for SI_TIMER the kernel filled the timer fields of the
        // union (for other codes the value is only compared, never used).
        let from = unsafe { si.si_value().sival_ptr } as usize;
        if si.si_code == libc::SI_TIMER && from == tag {
            // SAFETY: as above.
            let over = unsafe { si.si_overrun() }.max(0) as u32;
            k.ticks += 1 + over;
        } else if si.si_code == libc::SI_TIMER && from == second {
            k.second += 1;
        } else {
            k.other += 1;
        }
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock the timers use).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), in ns: what it
/// ran, in the host or in a guest inside KVM_RUN, not the time it waited.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes `t`.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

thread_local! {
    /// This thread's id once asked (0: not yet).
    static TID: std::cell::Cell<libc::pid_t> = const { std::cell::Cell::new(0) };
}

/// This thread's id, asked of the kernel once per thread (`arm_thread`
/// asks before any seccomp filter, which does not allow gettid).
pub fn gettid() -> libc::pid_t {
    TID.with(|t| {
        if t.get() == 0 {
            // SAFETY: gettid has no preconditions.
            t.set(unsafe { libc::gettid() });
        }
        t.get()
    })
}

/// Kicks the threads `tids` of this process out of KVM_RUN (the kick
/// signal stays pending if a thread is not in KVM_RUN, so its next KVM_RUN
/// returns at once).
pub fn kick(tids: &[libc::pid_t]) {
    for &tid in tids {
        kick_one(tid);
    }
}

/// Async-signal-safe: an atomic load and one system call.
fn kick_one(tid: libc::pid_t) {
    // The process id was stored by `init`/`arm_thread`, before any seccomp
    // filter; a thread that has exited gives ESRCH, which is harmless.
    // SAFETY: tgkill only sends a signal to a thread of this process.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            PID.load(Ordering::Relaxed),
            tid,
            kick_signal(),
        )
    };
}

/// Exit code after SIGINT/SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: i32 = 130;

/// Held while a thread runs a guest: a SIGINT/SIGTERM then kicks this
/// thread and stops the guest (the loop sees `interrupted()` and the run
/// reports); with none held it ends the process at once with
/// [`INTERRUPTED_EXIT`].
pub struct Active {
    slot: usize,
}

impl Active {
    /// The calling thread runs a guest from now until the value is dropped.
    pub fn enter() -> Result<Active, SignalError> {
        let tid = gettid();
        for (slot, t) in RUNNING.iter().enumerate() {
            if t.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(Active { slot });
            }
        }
        Err(SignalError {
            what: "registering a thread that runs a guest",
            source: std::io::Error::other(format!(
                "more than {MAX_RUNNING} threads run guests at once"
            )),
        })
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        RUNNING[self.slot].store(0, Ordering::Release);
    }
}

/// The SIGINT/SIGTERM handler (async-signal-safe: atomics, tgkill, _exit).
extern "C" fn on_stop(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
    let mut running = false;
    for t in &RUNNING {
        let tid = t.load(Ordering::Acquire);
        if tid != 0 {
            running = true;
            kick_one(tid);
        }
    }
    if !running && !REPORTS_INTERRUPTS.load(Ordering::Relaxed) {
        // no guest runs: nothing to stop cleanly
        // SAFETY: _exit ends the process at once.
        unsafe { libc::_exit(INTERRUPTED_EXIT) };
    }
}

/// Installs the SIGINT/SIGTERM handler and the kick signal's no-op
/// handler, once per process. Called first thing by the CLI, so a signal
/// at any moment of a run is handled, never the default action.
pub fn init() -> Result<(), SignalError> {
    let mut result = Ok(());
    HANDLERS.call_once(|| {
        PID.store(std::process::id() as libc::pid_t, Ordering::Relaxed);
        for (sig, handler, flags) in [
            // No SA_RESTART: KVM_RUN must return EINTR.
            (kick_signal(), on_kick as extern "C" fn(libc::c_int), 0),
            // SA_RESTART: a write of the report or a join goes on after it
            // (KVM_RUN and ppoll return EINTR all the same).
            (libc::SIGINT, on_stop, libc::SA_RESTART),
            (libc::SIGTERM, on_stop, libc::SA_RESTART),
        ] {
            // SAFETY: a zeroed sigaction is valid; both handlers are
            // async-signal-safe (see `on_kick`, `on_stop`).
            let rc = unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as *const () as libc::sighandler_t;
                sa.sa_flags = flags;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut())
            };
            if let Err(e) = check("sigaction", rc) {
                result = Err(e);
                return;
            }
        }
    });
    result
}

/// Prepares the calling thread (a vCPU thread): the handlers are
/// installed (`init`) and the kick signal is blocked. Returns the signal
/// mask to give KVM for the time inside KVM_RUN (the thread's, with the
/// kick, SIGINT and SIGTERM unblocked), as the kernel's 64-bit sigset:
/// `crate::kvm::Vcpu::set_signal_mask` takes it.
pub fn arm_thread() -> Result<u64, SignalError> {
    init()?;
    gettid();
    let set = set_of(&[kick_signal()]);
    // SAFETY: changes only this thread's signal mask; `old` receives the
    // previous mask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    check("pthread_sigmask", unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old)
    })?;
    let mut during = old;
    // SAFETY: sigdelset only writes the local set.
    unsafe {
        libc::sigdelset(&mut during, kick_signal());
        // a caller that blocks SIGINT/SIGTERM still gets Ctrl-C while the
        // guest runs
        libc::sigdelset(&mut during, libc::SIGINT);
        libc::sigdelset(&mut during, libc::SIGTERM);
    }
    // The kernel's sigset is 64 bits; glibc's sigset_t starts with them.
    // SAFETY: sigset_t is at least 8 bytes; reading its first u64 is in bounds.
    let bits: u64 = unsafe { std::ptr::read_unaligned((&during as *const libc::sigset_t).cast()) };
    Ok(bits)
}

/// A one-shot POSIX timer that sends the kick signal to one thread.
pub struct Timer {
    id: libc::timer_t,
}

impl Timer {
    /// A timer aimed at the calling thread.
    pub fn for_this_thread() -> Result<Timer, SignalError> {
        Timer::tagged(0)
    }

    /// A timer aimed at the calling thread whose signals carry `tag`
    /// (see `take_kicks`).
    pub fn tagged(tag: usize) -> Result<Timer, SignalError> {
        // SAFETY: a zeroed sigevent is valid plain data; we fill the fields
        // SIGEV_THREAD_ID reads.
        let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = kick_signal();
        sev.sigev_notify_thread_id = gettid();
        sev.sigev_value = libc::sigval {
            sival_ptr: tag as *mut libc::c_void,
        };
        let mut id: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `sev` and `id` are valid for the call; the timer is
        // deleted in Drop.
        check("timer_create", unsafe {
            libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id)
        })?;
        Ok(Timer { id })
    }

    /// Fires once after `d` (zero disarms).
    pub fn arm(&self, v: Duration) -> Result<(), SignalError> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: v.as_secs() as libc::time_t,
                tv_nsec: v.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `self.id` is a live timer; `spec` is valid for the call.
        check("timer_settime", unsafe {
            libc::timer_settime(self.id, 0, &spec, std::ptr::null_mut())
        })
    }
}

impl Timer {
    /// Fires first at `first_ns` (CLOCK_MONOTONIC, absolute), then every
    /// `period`. Absolute expiries do not drift: quantum k ends at
    /// `first_ns + k * period` however late each signal is handled.
    pub fn arm_periodic(&self, first_ns: u64, period: Duration) -> Result<(), SignalError> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: period.as_secs() as libc::time_t,
                tv_nsec: period.subsec_nanos() as libc::c_long,
            },
            it_value: libc::timespec {
                tv_sec: (first_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (first_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `self.id` is a live timer; `spec` is valid for the call.
        check("timer_settime", unsafe {
            libc::timer_settime(self.id, libc::TIMER_ABSTIME, &spec, std::ptr::null_mut())
        })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: `self.id` was created by timer_create and is deleted once.
        unsafe { libc::timer_delete(self.id) };
    }
}
