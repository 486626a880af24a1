//! The thread a vCPU runs on, set up the same way for one vCPU (the
//! calling thread) and for several (one thread each): the kick signal and
//! KVM's signal mask, the `--timeout` and `--polling` timers, pinning, and
//! last the seccomp filter, once everything the loop needs exists.

use super::outcome::VcpuError;
use crate::kvm::Vcpu;
use crate::signals::{self, Timer};
use crate::trace::{Call, Tracer, record};
use std::time::Duration;

/// What a vCPU thread needs before its first KVM_RUN.
#[derive(Debug, Clone, Default)]
pub struct ThreadSetup {
    /// Arm the kick signal and KVM_SET_SIGNAL_MASK (false: done already
    /// for this vCPU on this thread).
    pub arm: bool,
    /// `--timeout`: a timer that kicks this thread when it expires.
    pub timeout: Option<Duration>,
    /// `--polling`: a periodic timer so the loop drains TX even while the
    /// guest makes no exit (on one thread of the VM).
    pub poll: Option<Duration>,
    /// Pin this thread to that host CPU.
    pub pin: Option<usize>,
    /// Run under the seccomp filter from here on.
    pub seccomp: bool,
    /// A debugger drives this vCPU over this fd (`--gdb`): the filter
    /// allows what it needs (`crate::seccomp::DEBUGGER_IOCTLS`).
    pub debugger: Option<i32>,
    /// The run may stop for a snapshot (`--snapshot`): the filter allows
    /// what saving it needs (`crate::seccomp::SNAPSHOT_IOCTLS`).
    pub snapshot: bool,
    /// fds this thread may `pread64` at the run's end (`--kvm-stats`).
    pub reads: Vec<i32>,
}

/// The timers of one vCPU thread; dropping it disarms them and says the
/// thread no longer runs a guest.
pub struct Armed {
    timeout: Option<Timer>,
    _poll: Option<Timer>,
    _active: signals::Active,
}

impl ThreadSetup {
    /// Sets up the calling thread to run `vcpu`; `armed` runs once the
    /// thread can take a kick (before the timers, pinning and seccomp).
    pub fn apply(
        &self,
        vcpu: &Vcpu,
        trace: &mut Option<Tracer>,
        armed: impl FnOnce(),
    ) -> Result<Armed, VcpuError> {
        if self.arm {
            let mask = signals::arm_thread()?;
            vcpu.set_signal_mask(mask, trace)?;
        }
        armed();
        // from here a SIGINT/SIGTERM kicks this thread (gettid: before seccomp)
        let active = signals::Active::enter()?;
        let timeout = match self.timeout {
            Some(t) => {
                let tm = Timer::for_this_thread()?;
                tm.arm(t)?;
                record(trace, || {
                    Call::syscall(
                        "timer_create",
                        format!("CLOCK_MONOTONIC, SIGEV_THREAD_ID, fires in {t:?}"),
                        "0".into(),
                        "--timeout: a signal to this thread ends the next KVM_RUN",
                    )
                });
                Some(tm)
            }
            None => None,
        };
        let poll = match self.poll {
            Some(period) => {
                let t = Timer::for_this_thread()?;
                t.arm_periodic(signals::monotonic_ns() + period.as_nanos() as u64, period)?;
                Some(t)
            }
            None => None,
        };
        if let Some(cpu) = self.pin {
            pin_this_thread(cpu)?;
        }
        // Everything the loop needs exists now; from here on the thread may
        // only run the guest, read registers, write output and exit.
        if self.seccomp && crate::seccomp::apply_with(self.debugger, self.snapshot, &self.reads)? {
            record(trace, || {
                Call::syscall(
                    "seccomp",
                    "SECCOMP_SET_MODE_FILTER, allowlist of host/src/seccomp.rs".into(),
                    "0".into(),
                    "from here on this thread may only run the guest and report",
                )
            });
        }
        // Tests check that a panic here, under seccomp, is reported as a
        // panic (`host: internal error: ...`, exit 70). Debug builds only.
        #[cfg(debug_assertions)]
        if std::env::var_os("KVMWB_TEST_PANIC").is_some_and(|v| v == "vcpu") {
            panic!("injected by KVMWB_TEST_PANIC=vcpu");
        }
        Ok(Armed {
            timeout,
            _poll: poll,
            _active: active,
        })
    }
}

impl Armed {
    /// The `--timeout` timer, for a driver that stops the guest.
    pub fn timeout(&self) -> Option<&Timer> {
        self.timeout.as_ref()
    }
}

/// Pins the calling thread to one host CPU.
pub fn pin_this_thread(cpu: usize) -> Result<(), VcpuError> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as usize;
    if cpu >= n || cpu >= libc::CPU_SETSIZE as usize {
        return Err(VcpuError::Pin {
            cpu,
            why: format!("this host has CPUs 0..={}", n - 1),
        });
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes bit `cpu`
    // (< CPU_SETSIZE, checked above); sched_setaffinity(0) reads the set for
    // the calling thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(VcpuError::Pin {
            cpu,
            why: std::io::Error::last_os_error().to_string(),
        });
    }
    Ok(())
}
