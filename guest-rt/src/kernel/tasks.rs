//! Preemptive round-robin: several user programs at once on the local APIC
//! timer (KVM's in-kernel controller: the program declares `irq_kernel`).
//!
//! Every program gets its own user stack and a saved context (a
//! [`TrapFrame`]). The timer interrupts user mode every quantum through
//! gate [`TIMER_VECTOR`] of the kernel's IDT; [`tick`] saves the
//! interrupted context and enters the next ready program's with
//! `kvmwb_resume` (its registers, then IRETQ). The kernel runs with
//! interrupts off (its gates are interrupt gates, SFMASK clears IF for
//! SYSCALL), so only user code is ever preempted. A program that exits or
//! faults ([`end`]) leaves the others running; when the last one ends,
//! `kvmwb_end_user` returns from [`run_round_robin`]'s `kvmwb_run_user`.

use super::boot::*;
use super::frame::TrapFrame;
use crate::interrupts::lapic;

pub use super::boot::TIMER_VECTOR;
/// Programs [`run_round_robin`] runs at once, at most.
pub const MAX_TASKS: usize = 4;
const TASK_STACK_SIZE: usize = 16 * 1024;
/// RFLAGS of a program: IF set (the timer may interrupt it), bit 1.
const USER_RFLAGS: u64 = 0x202;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Ready,
    Done,
}

#[derive(Clone, Copy)]
struct Task {
    state: State,
    ctx: TrapFrame,
    status: i64,
    slices: u64,
}

struct Sched {
    tasks: [Task; MAX_TASKS],
    n: usize,
    current: usize,
    active: bool,
    switches: u64,
}

const FREE: Task = Task {
    state: State::Free,
    ctx: TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    },
    status: 0,
    slices: 0,
};

/// The scheduler, on a kernel-only page.
#[unsafe(link_section = ".kvmwb.kernel")]
static SCHED: Global<Sched> = Global::new(Sched {
    tasks: [FREE; MAX_TASKS],
    n: 0,
    current: 0,
    active: false,
    switches: 0,
});

// User-readable (.bss): what the programs' first code reads, and the tick
// count they may watch. The kernel writes them at ring 0, with the
// programs stopped.
type Mains = [Option<fn() -> i32>; MAX_TASKS];
static TASK_MAINS: Global<Mains> = Global::new([None; MAX_TASKS]);
static CURRENT: Global<usize> = Global::new(0);
static TICKS: Global<u64> = Global::new(0);

#[repr(C, align(16))]
struct TaskStacks([[u8; TASK_STACK_SIZE]; MAX_TASKS]);
static mut TASK_STACKS: TaskStacks = TaskStacks([[0; TASK_STACK_SIZE]; MAX_TASKS]);

/// Timer interrupts so far: readable by the user programs (a program can
/// wait for the quanta to pass, and so be preempted, without a system
/// call).
pub fn ticks() -> u64 {
    // SAFETY: a u64 the kernel increments at ring 0; a torn read cannot
    // happen on x86-64 (aligned 8-byte loads are atomic).
    unsafe { core::ptr::read_volatile(TICKS.get()) }
}

/// What [`run_round_robin`] saw.
#[derive(Clone, Copy, Debug)]
pub struct RoundRobin {
    /// Each program's exit status (as `run_user`'s).
    pub status: [i64; MAX_TASKS],
    /// Quanta each program was interrupted at.
    pub slices: [u64; MAX_TASKS],
    /// Switches from one program to another (the timer's and exits').
    pub switches: u64,
    /// Timer interrupts.
    pub ticks: u64,
}

/// Runs `mains` (1 to [`MAX_TASKS`]) as user programs at once, each with a
/// quantum of `quantum` local APIC timer counts (KVM's APIC timer counts at
/// 1 GHz: 1_000_000 is a millisecond), until every one has exited or
/// faulted. Boots the kernel first if needed. Needs the local APIC mapped:
/// the program declares `irq_kernel` (`entry!(main, cpuid, irq_kernel)`).
pub fn run_round_robin(mains: &[fn() -> i32], quantum: u32) -> RoundRobin {
    if mains.is_empty() || mains.len() > MAX_TASKS {
        panic!(
            "run_round_robin runs 1 to {MAX_TASKS} programs, not {}",
            mains.len()
        );
    }
    boot();
    // SAFETY: ring 0, interrupts off, no program runs: nothing else touches
    // the scheduler or the user-readable statics now.
    unsafe {
        let s = &mut *SCHED.get();
        let stacks = (&raw const TASK_STACKS) as u64;
        for (i, t) in s.tasks.iter_mut().enumerate() {
            *t = FREE;
            if let Some(m) = mains.get(i) {
                (*TASK_MAINS.get())[i] = Some(*m);
                let top = stacks + ((i + 1) * TASK_STACK_SIZE) as u64;
                t.state = State::Ready;
                t.ctx.rip = task_start as *const () as u64;
                t.ctx.cs = u64::from(UCODE | 3);
                t.ctx.rflags = USER_RFLAGS;
                t.ctx.rsp = top - 8;
                t.ctx.ss = u64::from(UDATA | 3);
            }
        }
        s.n = mains.len();
        s.current = 0;
        s.switches = 0;
        s.active = true;
        *CURRENT.get() = 0;
        *TICKS.get() = 0;
        lapic::enable();
        lapic::timer_periodic(TIMER_VECTOR, quantum);
        // program 0 first; back here when the last one has ended
        let first = s.tasks[0].ctx;
        kvmwb_run_user(first.rip, first.rsp, USER_RFLAGS);
        lapic::timer_stop();
        let s = &mut *SCHED.get();
        s.active = false;
        let mut r = RoundRobin {
            status: [0; MAX_TASKS],
            slices: [0; MAX_TASKS],
            switches: s.switches,
            ticks: *TICKS.get(),
        };
        for (i, t) in s.tasks.iter().enumerate().take(s.n) {
            r.status[i] = t.status;
            r.slices[i] = t.slices;
        }
        r
    }
}

/// A program's first code, at CPL3: its main, then `exit`.
extern "C" fn task_start() -> ! {
    // SAFETY: user-readable statics the kernel wrote before entering this
    // program (CURRENT is this program's index until it is preempted,
    // and this runs before its first system call).
    let main = unsafe { (*TASK_MAINS.get())[*CURRENT.get() % MAX_TASKS] };
    crate::user::exit(main.map_or(127, |m| m()))
}

/// The timer, from the trap stub: the end of interrupt, then the next
/// ready program, if any other, gets the CPU. Returns only when the
/// interrupted code goes on.
pub(super) fn tick(f: &mut TrapFrame) {
    lapic::eoi();
    // SAFETY: ring 0 with interrupts off: nothing else touches these now.
    unsafe {
        *TICKS.get() += 1;
        let s = &mut *SCHED.get();
        if !s.active || f.cs & 3 != 3 {
            return;
        }
        let cur = s.current;
        s.tasks[cur].slices += 1;
        match next_ready(s, cur) {
            Some(next) if next != cur => {
                s.tasks[cur].ctx = *f;
                switch_to(s, next)
            }
            _ => {}
        }
    }
}

/// The current program ended with `status` (exit, or a fault): the next
/// ready one runs, or, when none is left, `run_round_robin` (or
/// `run_user`) returns.
pub(super) fn end(status: i64) -> ! {
    // SAFETY: ring 0, interrupts off, on the kernel stack below
    // KVMWB_KERNEL_RSP (the syscall and trap paths), which kvmwb_end_user
    // returns to and kvmwb_resume leaves.
    unsafe {
        let s = &mut *SCHED.get();
        if !s.active {
            kvmwb_end_user(status)
        }
        let cur = s.current;
        s.tasks[cur].state = State::Done;
        s.tasks[cur].status = status;
        match next_ready(s, cur) {
            Some(next) => switch_to(s, next),
            None => kvmwb_end_user(0),
        }
    }
}

/// The first ready program after `cur` (round-robin), `cur` itself last.
fn next_ready(s: &Sched, cur: usize) -> Option<usize> {
    (1..=s.n)
        .map(|k| (cur + k) % s.n)
        .find(|&i| s.tasks[i].state == State::Ready)
}

/// Enters program `next`'s saved context.
///
/// # Safety
/// Ring 0 with interrupts off, on the kernel stack (left for good).
unsafe fn switch_to(s: &mut Sched, next: usize) -> ! {
    s.switches += 1;
    s.current = next;
    // SAFETY: the caller's contract; the context is a user one (CPL3
    // selectors, a user RIP and stack) that run_round_robin or tick saved.
    unsafe {
        *CURRENT.get() = next;
        kvmwb_resume(&raw const s.tasks[next].ctx)
    }
}
