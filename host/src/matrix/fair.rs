//! Shares in time, not only in turns: each turn is charged the CPU time
//! the scheduler thread used during it, and the next turn of a VM that got
//! less than its turns were worth is longer (or shorter, if it got more).
//!
//! Why CPU time: a turn is one quantum of wall time, but on a busy host the
//! thread is not on a CPU for all of it, and how much of it the guest gets
//! is luck. The thread's CPU clock (CLOCK_THREAD_CPUTIME_ID) counts only
//! what the thread ran: the guest inside KVM_RUN and the host's work on
//! that VM's exits. The turn order stays smooth weighted round robin (7
//! turns of 10 for 7:3); what changes is when a turn ends.
//!
//! The rule: a VM is owed `turns_i * C / T - cpu_i`, where `C / T` is the
//! mean CPU time of all turns so far (so an overhead every turn pays alike
//! owes nobody anything). Its next turn's budget is one quantum plus what
//! it is owed, kept within [quantum/2, 3 quanta] so every turn is visible
//! and no VM waits long. At each quantum tick the turn ends if less than
//! 1/20 of a quantum of its budget is left; otherwise it goes on, and when
//! the rest is shorter than a quantum a second, one-shot timer fires when
//! it is used up (`Step::ContinueFor`). The quantum timer keeps its
//! schedule.

/// The accounting of every VM's turns.
#[derive(Debug, Clone)]
pub struct Fair {
    quantum: u64,
    cpu: Vec<u64>,
    turns: Vec<u64>,
}

/// What to do at a quantum tick inside a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The budget is (nearly) used: hand the CPU on.
    EndTurn,
    /// More than a quantum is left: run on to the next tick.
    Continue,
    /// Less than a quantum is left: run on, and end the turn (or look
    /// again) after this many ns.
    ContinueFor(u64),
}

impl Fair {
    /// Accounting for `vms` VMs at this quantum (ns).
    pub fn new(vms: usize, quantum_ns: u64) -> Fair {
        Fair {
            quantum: quantum_ns.max(1),
            cpu: vec![0; vms],
            turns: vec![0; vms],
        }
    }

    /// CPU time charged to VM `i` so far (ns).
    pub fn cpu_ns(&self, i: usize) -> u64 {
        self.cpu[i]
    }

    /// What VM `i` is owed (positive) or has had too much (negative), ns.
    pub fn owed(&self, i: usize) -> i64 {
        let turns: u64 = self.turns.iter().sum();
        if turns == 0 {
            return 0;
        }
        let total: u64 = self.cpu.iter().sum();
        let fair = self.turns[i] as f64 * total as f64 / turns as f64;
        (fair - self.cpu[i] as f64) as i64
    }

    /// The CPU time VM `i`'s next turn may use (ns).
    pub fn budget(&self, i: usize) -> u64 {
        let q = self.quantum as i64;
        (q + self.owed(i)).clamp(q / 2, 3 * q) as u64
    }

    /// Charges a finished turn of VM `i` that used `cpu_ns`.
    pub fn charge(&mut self, i: usize, cpu_ns: u64) {
        self.cpu[i] += cpu_ns;
        self.turns[i] += 1;
    }

    /// At a tick: a turn with this budget has used `used_ns`.
    pub fn step(&self, budget_ns: u64, used_ns: u64) -> Step {
        let left = budget_ns.saturating_sub(used_ns);
        if left <= self.quantum / 20 {
            Step::EndTurn
        } else if left < self.quantum {
            Step::ContinueFor(left)
        } else {
            Step::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::wrr::Wrr;

    const Q: u64 = 10_000_000;

    #[test]
    fn even_turns_owe_nothing_and_keep_a_quantum() {
        let mut f = Fair::new(2, Q);
        assert_eq!(f.budget(0), Q);
        // every turn pays the same overhead: nobody is owed anything
        for i in [0, 1, 0, 0] {
            f.charge(i, Q - 30_000);
        }
        assert_eq!(f.owed(0), 0);
        assert_eq!(f.budget(1), Q);
        // a tick that finds the budget used up (within 1/20) ends the turn
        assert_eq!(f.step(Q, Q - 30_000), Step::EndTurn);
        assert_eq!(f.step(Q, Q / 2), Step::ContinueFor(Q / 2));
        assert_eq!(f.step(2 * Q, Q / 2), Step::Continue);
    }

    #[test]
    fn a_short_turn_is_made_up_and_budgets_are_bounded() {
        let mut f = Fair::new(2, Q);
        f.charge(0, Q);
        f.charge(1, Q / 4); // the host took the CPU for most of B's turn
        assert!(f.owed(1) > 0 && f.owed(0) < 0);
        assert_eq!(f.owed(0) + f.owed(1), 0);
        assert!(f.budget(1) > Q && f.budget(0) < Q);
        // bounded: half a quantum at least, three at most
        let mut g = Fair::new(2, Q);
        g.charge(0, 100 * Q);
        g.charge(1, 0);
        assert_eq!((g.budget(0), g.budget(1)), (Q / 2, 3 * Q));
    }

    /// 100 turns of 7:3 where the thread gets a random 30..100 % of every
    /// tick's wall time: the CPU-time shares end within 0.5 points of 70/30,
    /// while the turns stay 70 and 30.
    #[test]
    fn shares_hold_in_time_when_the_cpu_comes_and_goes() {
        let mut f = Fair::new(2, Q);
        let mut wrr = Wrr::new(&[7, 3]);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut turns = [0u32; 2];
        for _ in 0..100 {
            let i = wrr.next(&[true, true]).unwrap();
            turns[i] += 1;
            let budget = f.budget(i);
            let (mut used, mut wall) = (0, Q);
            loop {
                used += wall * (30 + rnd() % 71) / 100;
                match f.step(budget, used) {
                    Step::EndTurn => break,
                    Step::Continue => wall = Q,
                    Step::ContinueFor(ns) => wall = ns,
                }
            }
            f.charge(i, used);
        }
        assert_eq!(turns, [70, 30]);
        let share = f.cpu_ns(0) as f64 / (f.cpu_ns(0) + f.cpu_ns(1)) as f64;
        assert!((share - 0.7).abs() < 0.005, "share {share}");
    }
}
