//! Getting a vCPU out of KVM_RUN: timers and Ctrl-C, without losing a signal.
//!
//! The vCPU thread keeps the kick signal blocked. Through KVM_SET_SIGNAL_MASK
//! it tells KVM to unblock it only while the guest runs. So a kick that
//! arrives while the host is handling an exit stays pending, and the next
//! KVM_RUN returns EINTR at once instead of running a guest that may never
//! exit again. Kicks are always thread-directed (a timer with
//! SIGEV_THREAD_ID, or tgkill).
//!
//! SIGINT and SIGTERM are process-directed. A process-directed signal did not
//! interrupt KVM_RUN on kvm-pvm (measured: it stays in the shared pending
//! set), so they stay blocked in every thread. A forwarder thread `sigwait`s
//! for them, sets the interrupted flag and kicks every vCPU thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static VCPU_THREADS: std::sync::Mutex<Vec<libc::pid_t>> = std::sync::Mutex::new(Vec::new());
static FORWARDER: std::sync::Once = std::sync::Once::new();
/// This process's id, read once (a vCPU thread under seccomp may not call getpid).
static PID: std::sync::OnceLock<libc::pid_t> = std::sync::OnceLock::new();
/// Stack of the signal thread: it runs a sigwait loop and nothing else.
const SIGNAL_THREAD_STACK: usize = 64 * 1024;

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

extern "C" fn on_kick(_: libc::c_int) {}

fn set_of(sigs: &[libc::c_int]) -> libc::sigset_t {
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
    /// Other kicks (another timer, Ctrl-C forwarding).
    pub other: u32,
}

/// Like `consume_kicks`, and says which timer sent them: a signal from the
/// timer made with `Timer::tagged(tag)` counts in `ticks`.
pub fn take_kicks(tag: usize) -> Kicks {
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
        // SAFETY: for SI_TIMER the kernel filled the timer fields of the union.
        if si.si_code == libc::SI_TIMER && unsafe { si.si_value().sival_ptr } as usize == tag {
            // SAFETY: as above.
            let over = unsafe { si.si_overrun() }.max(0) as u32;
            k.ticks += 1 + over;
        } else {
            k.other += 1;
        }
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock the timers use).
pub fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes `t`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// This thread's id.
pub fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Kicks the threads `tids` of this process out of KVM_RUN (the kick
/// signal stays pending if a thread is not in KVM_RUN, so its next KVM_RUN
/// returns at once).
pub fn kick(tids: &[libc::pid_t]) {
    // The process id was read in `arm_thread`, before any seccomp filter.
    let pid = *PID.get_or_init(|| std::process::id() as libc::pid_t);
    for &tid in tids {
        // SAFETY: tgkill only sends a signal; a thread that has exited
        // gives ESRCH, which is harmless.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, kick_signal()) };
    }
}

/// Kicks every registered vCPU thread out of KVM_RUN.
pub fn kick_all() {
    let tids = VCPU_THREADS.lock().map(|v| v.clone()).unwrap_or_default();
    kick(&tids);
}

/// Blocks SIGINT/SIGTERM in this thread; once per process, installs the
/// kick handler and starts the thread that waits for SIGINT/SIGTERM.
/// Exit code after SIGINT/SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: i32 = 130;

/// Threads running a guest's exit loop right now.
static ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Held while a thread runs a guest: a SIGINT/SIGTERM then stops the guest
/// (the loop sees `interrupted()` and the run reports); with none held it
/// ends the process at once with [`INTERRUPTED_EXIT`].
pub struct Active(());

impl Active {
    /// This thread runs a guest from now until the value is dropped.
    pub fn enter() -> Active {
        ACTIVE.fetch_add(1, Ordering::AcqRel);
        Active(())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Blocks SIGINT/SIGTERM in the calling thread (and the threads it starts)
/// and starts the thread that turns them into kicks. Called first thing by
/// the CLI, so a signal at any moment of a run is handled, never the
/// default action.
pub fn init() -> Result<(), SignalError> {
    start_forwarder()
}

fn start_forwarder() -> Result<(), SignalError> {
    let stop = set_of(&[libc::SIGINT, libc::SIGTERM]);
    // SAFETY: changes only this thread's mask; threads created later inherit it.
    check("pthread_sigmask", unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut())
    })?;
    let mut result = Ok(());
    FORWARDER.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler does nothing, which
        // is async-signal-safe. No SA_RESTART: KVM_RUN must return EINTR.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut())
        };
        if let Err(e) = check("sigaction", rc) {
            result = Err(e);
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            // It only waits in sigwait: a fixed small stack, not the
            // RUST_MIN_STACK the vCPU threads take.
            .stack_size(SIGNAL_THREAD_STACK)
            .spawn(move || {
                loop {
                    let mut sig: libc::c_int = 0;
                    // SAFETY: `stop` is blocked in this thread (inherited);
                    // sigwait only writes `sig`.
                    if unsafe { libc::sigwait(&stop, &mut sig) } == 0 {
                        INTERRUPTED.store(true, Ordering::Relaxed);
                        if ACTIVE.load(Ordering::Acquire) == 0 {
                            // no guest runs: nothing to stop cleanly
                            // SAFETY: _exit ends the process at once.
                            unsafe { libc::_exit(INTERRUPTED_EXIT) };
                        }
                        kick_all();
                    }
                }
            });
        if let Err(e) = spawned {
            result = Err(SignalError {
                what: "spawning the signal thread",
                source: e,
            });
        }
    });
    result
}

/// Prepares the calling thread (a vCPU thread): the kick signal gets a
/// no-op handler and is blocked; SIGINT/SIGTERM go to the forwarder; the
/// thread is registered for `kick_all`. Returns the signal mask to give KVM
/// for the time inside KVM_RUN (the thread's, with the kick unblocked), as
/// the kernel's 64-bit sigset: `crate::kvm::Vcpu::set_signal_mask` takes it.
pub fn arm_thread() -> Result<u64, SignalError> {
    start_forwarder()?;
    PID.get_or_init(|| std::process::id() as libc::pid_t);
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
    unsafe { libc::sigdelset(&mut during, kick_signal()) };
    // The kernel's sigset is 64 bits; glibc's sigset_t starts with them.
    // SAFETY: sigset_t is at least 8 bytes; reading its first u64 is in bounds.
    let bits: u64 = unsafe { std::ptr::read_unaligned((&during as *const libc::sigset_t).cast()) };
    let tid = gettid();
    if let Ok(mut v) = VCPU_THREADS.lock()
        && !v.contains(&tid)
    {
        v.push(tid);
    }
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
        // SAFETY: gettid has no preconditions.
        sev.sigev_notify_thread_id = unsafe { libc::gettid() };
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
