//! `host matrix`: several VMs, one vCPU each, all run by ONE host thread.
//!
//! The host regains the CPU only through a VM exit. With `Policy::OnExit`
//! every I/O (or MMIO) exit ends the running VM's turn. With
//! `Policy::Preempt` a periodic POSIX timer sends the kick signal to this
//! thread; the signal is blocked here and unblocked only inside KVM_RUN
//! (KVM_SET_SIGNAL_MASK), so it interrupts a guest that never exits
//! (KVM_RUN returns EINTR: the assignment's KVM_EXIT_INTR, reason 10), and
//! one that arrives while the host is handling an exit stays pending and
//! ends the next KVM_RUN at once: it is never lost. Turns are handed out by
//! smooth weighted round robin, so weights 7:3 give VM1 7 of every 10 turns,
//! interleaved (A A B A A B A B A A ...), not in blocks: the light VM never
//! waits more than two turns. Turns end when the VM has used its share of
//! CPU time (`fair`): shares hold in time on a busy host, not only in turns.

mod fair;
mod options;
mod report;
mod scheduler;
mod setup;
mod timeline;
mod wrr;

pub use fair::{Fair, Step};
pub use options::{MatrixError, MatrixOptions, Policy, parse_weights, weights_for};
pub use report::{MatrixReport, MatrixStop, Tick, Turn, VmReport, VmState};
pub use scheduler::run;
pub use setup::{rss_kib, vm_name};
pub use wrr::Wrr;
