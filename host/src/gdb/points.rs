//! Breakpoints and watchpoints as the stub keeps them, and the
//! KVM_SET_GUEST_DEBUG state they need: `int3` bytes planted in guest
//! memory where KVM stops at them, else addresses compared with RIP after
//! each single step; the four debug registers for hardware breakpoints and
//! watchpoints. Bounded: a hostile gdb cannot grow it.

use gdbstub::common::Signal;
use gdbstub::stub::SingleThreadStopReason;
use gdbstub::target::ext::breakpoints::WatchKind;
use kvm_bindings as k;

/// Most software breakpoints kept at once.
pub const MAX_POINTS: usize = 256;

/// What a debug register watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// An instruction fetch (a hardware breakpoint).
    Exec,
    /// A data access of `len` bytes.
    Watch(WatchKind, u64),
}

/// One of DR0..DR3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The linear address.
    pub addr: u64,
    /// What it watches.
    pub kind: SlotKind,
}

/// The breakpoints and watchpoints gdb set.
#[derive(Debug, Default)]
pub struct Points {
    /// Planted `int3`s: address and the byte they replaced.
    pub int3: Vec<(u64, u8)>,
    /// Breakpoints found by single-stepping and comparing RIP.
    pub stepped: Vec<u64>,
    /// DR0..DR3.
    pub slots: [Option<Slot>; 4],
    /// Write watchpoints found by single-stepping and comparing the
    /// value: address, length, value last seen.
    pub watched: Vec<(u64, u64, u64)>,
}

impl Points {
    /// Takes a free debug register for `slot`; false if all four are used.
    pub fn take_slot(&mut self, slot: Slot) -> bool {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(free) => {
                *free = Some(slot);
                true
            }
            None => false,
        }
    }

    /// Frees the debug register holding `slot`; false if none does.
    pub fn free_slot(&mut self, slot: Slot) -> bool {
        match self.slots.iter_mut().find(|s| **s == Some(slot)) {
            Some(s) => {
                *s = None;
                true
            }
            None => false,
        }
    }

    /// Whether RIP must be compared after every instruction.
    pub fn needs_stepping(&self) -> bool {
        !self.stepped.is_empty() || !self.watched.is_empty()
    }

    /// KVM_SET_GUEST_DEBUG's control and debug registers; `single_step`:
    /// stop after every instruction (gdb's step, or the RIP-compare
    /// breakpoints: [`Points::needs_stepping`]). Control 0 (debugging off)
    /// when nothing is set. [`Points::guest_debug_with`] says more.
    pub fn guest_debug(&self, single_step: bool) -> (u32, [u64; 8]) {
        self.guest_debug_with(single_step, false, None)
    }

    /// [`Points::guest_debug`], and: `block_irq`, no interrupt is taken
    /// while stepping (KVM_GUESTDBG_BLOCKIRQ: KVM forces TF on during a
    /// step, and an interrupt delivered then would save it in the
    /// handler's frame, so its IRETQ would raise a #DB in the guest);
    /// `extra`, an execute breakpoint at that address in a free debug
    /// register (where a `hlt` that is run plainly comes back), if any
    /// is free.
    pub fn guest_debug_with(
        &self,
        single_step: bool,
        block_irq: bool,
        extra: Option<u64>,
    ) -> (u32, [u64; 8]) {
        let mut dr = [0u64; 8];
        dr[7] = super::probe::DR7_BASE;
        let mut control = 0;
        for (i, s) in self.slots.iter().enumerate() {
            let Some(s) = s else { continue };
            dr[i] = s.addr;
            let (rw, len) = match s.kind {
                SlotKind::Exec => (0b00, 0b00),
                SlotKind::Watch(kind, len) => (
                    match kind {
                        WatchKind::Write => 0b01,
                        // x86 has no read-only watch: reads and writes
                        WatchKind::Read | WatchKind::ReadWrite => 0b11,
                    },
                    match len {
                        1 => 0b00,
                        2 => 0b01,
                        8 => 0b10,
                        _ => 0b11,
                    },
                ),
            };
            dr[7] |= 1 << (2 * i) | rw << (16 + 4 * i) | len << (18 + 4 * i);
            control |= k::KVM_GUESTDBG_USE_HW_BP;
        }
        if let (Some(at), Some(i)) = (extra, self.slots.iter().position(Option::is_none)) {
            dr[i] = at;
            dr[7] |= 1 << (2 * i);
            control |= k::KVM_GUESTDBG_USE_HW_BP;
        }
        if !self.int3.is_empty() {
            control |= k::KVM_GUESTDBG_USE_SW_BP;
        }
        if single_step {
            control |= k::KVM_GUESTDBG_SINGLESTEP;
            if block_irq {
                control |= k::KVM_GUESTDBG_BLOCKIRQ;
            }
        }
        if control != 0 {
            control |= k::KVM_GUESTDBG_ENABLE;
        }
        (control, dr)
    }

    /// What a debug exit (`exception` at linear `pc`, with `dr6`) means
    /// for gdb; `step`: gdb asked for one instruction. None: a step of
    /// the RIP-compare breakpoints that hit none (run on).
    pub fn classify(
        &self,
        step: bool,
        exception: u32,
        pc: u64,
        dr6: u64,
    ) -> Option<SingleThreadStopReason<u64>> {
        use SingleThreadStopReason as R;
        if exception == 3 {
            return Some(if self.int3.iter().any(|&(a, _)| a == pc) {
                R::SwBreak(())
            } else {
                // the guest's own int3
                R::Signal(Signal::SIGTRAP)
            });
        }
        if let Some(slot) = self.fired(dr6) {
            return Some(match slot.kind {
                SlotKind::Exec => R::HwBreak(()),
                SlotKind::Watch(kind, _) => R::Watch {
                    tid: (),
                    kind,
                    addr: slot.addr,
                },
            });
        }
        if step {
            return Some(R::DoneStep);
        }
        if self.stepped.contains(&pc) {
            return Some(R::SwBreak(()));
        }
        if self.needs_stepping() {
            return None;
        }
        // a debug exit nobody asked for (the guest's own #DB)
        Some(R::Signal(Signal::SIGTRAP))
    }

    /// The slot DR6 says fired (bits 0..=3), if it is one of ours.
    pub fn fired(&self, dr6: u64) -> Option<Slot> {
        (0..4)
            .filter(|i| dr6 & (1 << i) != 0)
            .find_map(|i| self.slots[i])
    }
}

/// Whether a watchpoint of `len` bytes at `addr` fits a debug register
/// (1, 2, 4 or 8 bytes, aligned to its length).
pub fn watchable(addr: u64, len: u64) -> bool {
    matches!(len, 1 | 2 | 4 | 8) && addr.is_multiple_of(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_turns_debugging_off() {
        assert_eq!(Points::default().guest_debug(false).0, 0);
        let (c, dr) = Points::default().guest_debug_with(false, true, Some(0x1234));
        assert_eq!(c, k::KVM_GUESTDBG_ENABLE | k::KVM_GUESTDBG_USE_HW_BP);
        assert_eq!((dr[0], dr[7] & 3), (0x1234, 1));
        let (c, _) = Points::default().guest_debug_with(true, true, None);
        assert_eq!(
            c,
            k::KVM_GUESTDBG_ENABLE | k::KVM_GUESTDBG_SINGLESTEP | k::KVM_GUESTDBG_BLOCKIRQ
        );
        let (c, _) = Points::default().guest_debug(true);
        assert_eq!(c, k::KVM_GUESTDBG_ENABLE | k::KVM_GUESTDBG_SINGLESTEP);
    }

    #[test]
    fn dr7_encodes_each_slot() {
        let mut p = Points::default();
        assert!(p.take_slot(Slot {
            addr: 0x1000,
            kind: SlotKind::Exec
        }));
        assert!(p.take_slot(Slot {
            addr: 0x2000,
            kind: SlotKind::Watch(WatchKind::Write, 4)
        }));
        let (c, dr) = p.guest_debug(false);
        assert_eq!(c, k::KVM_GUESTDBG_ENABLE | k::KVM_GUESTDBG_USE_HW_BP);
        assert_eq!((dr[0], dr[1]), (0x1000, 0x2000));
        // L0, L1; slot 1: RW 01 (write), LEN 11 (4 bytes)
        assert_eq!(dr[7], 0x600 | 0b0101 | 0b1101 << 20);
        assert_eq!(p.fired(0b10).map(|s| s.addr), Some(0x2000));
        assert_eq!(p.fired(1 << 14), None);
    }

    #[test]
    fn four_slots_at_most() {
        let mut p = Points::default();
        let s = |a| Slot {
            addr: a,
            kind: SlotKind::Exec,
        };
        for a in 0..4 {
            assert!(p.take_slot(s(a)));
        }
        assert!(!p.take_slot(s(9)));
        assert!(p.free_slot(s(2)));
        assert!(!p.free_slot(s(2)));
        assert!(p.take_slot(s(9)));
    }

    #[test]
    fn debug_exits_become_gdb_stop_reasons() {
        use SingleThreadStopReason as R;
        let mut p = Points::default();
        p.int3.push((0x1000, 0x55));
        p.stepped.push(0x3000);
        assert!(p.take_slot(Slot {
            addr: 0x2000,
            kind: SlotKind::Exec
        }));
        assert!(p.take_slot(Slot {
            addr: 0x8000,
            kind: SlotKind::Watch(WatchKind::Write, 8)
        }));
        // an int3 the stub planted, and one of the guest's own
        assert_eq!(p.classify(false, 3, 0x1000, 0), Some(R::SwBreak(())));
        assert_eq!(
            p.classify(false, 3, 0x1004, 0),
            Some(R::Signal(Signal::SIGTRAP))
        );
        // DR0 fired: the execute slot; DR1: the watch
        assert_eq!(p.classify(false, 1, 0x2000, 0b01), Some(R::HwBreak(())));
        assert_eq!(
            p.classify(false, 1, 0x2100, 0b10),
            Some(R::Watch {
                tid: (),
                kind: WatchKind::Write,
                addr: 0x8000
            })
        );
        // gdb's stepi; then the RIP-compare breakpoint, hit or not yet
        assert_eq!(p.classify(true, 1, 0x2004, 1 << 14), Some(R::DoneStep));
        assert_eq!(p.classify(false, 1, 0x3000, 1 << 14), Some(R::SwBreak(())));
        assert_eq!(p.classify(false, 1, 0x2fff, 1 << 14), None);
        // nothing asked for a debug exit
        assert_eq!(
            Points::default().classify(false, 1, 0x10, 0),
            Some(R::Signal(Signal::SIGTRAP))
        );
    }

    #[test]
    fn watch_lengths_must_fit() {
        assert!(watchable(0x1000, 8));
        assert!(!watchable(0x1004, 8));
        assert!(!watchable(0x1000, 3));
        assert!(!watchable(0x1000, 16));
    }
}
