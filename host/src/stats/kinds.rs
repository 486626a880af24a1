//! What the statistics count: exit reasons, directions, rows.

use serde::Serialize;

/// Why `KVM_RUN` returned, as the host counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// KVM_EXIT_IO.
    Io,
    /// KVM_EXIT_MMIO.
    Mmio,
    /// KVM_EXIT_HLT.
    Hlt,
    /// KVM_EXIT_SHUTDOWN (triple fault).
    Shutdown,
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry,
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError,
    /// KVM_RUN returned EINTR (the assignment's KVM_EXIT_INTR).
    Intr,
    /// KVM_EXIT_DEBUG: a single step or a breakpoint (`--gdb` only).
    Debug,
    /// KVM_EXIT_IRQ_WINDOW_OPEN: the guest can take the interrupt the
    /// host holds (user-space controller).
    IrqWindow,
    /// Anything else.
    Other,
}

impl ExitReason {
    /// All reasons, in table order.
    pub const ALL: [ExitReason; 10] = [
        ExitReason::Io,
        ExitReason::Mmio,
        ExitReason::Hlt,
        ExitReason::Shutdown,
        ExitReason::FailEntry,
        ExitReason::InternalError,
        ExitReason::Intr,
        ExitReason::Debug,
        ExitReason::IrqWindow,
        ExitReason::Other,
    ];

    /// The KVM_EXIT_* number (`kvm_run.exit_reason`).
    pub fn kvm_code(self) -> Option<u32> {
        use kvm_bindings as k;
        Some(match self {
            ExitReason::Io => k::KVM_EXIT_IO,
            ExitReason::Mmio => k::KVM_EXIT_MMIO,
            ExitReason::Hlt => k::KVM_EXIT_HLT,
            ExitReason::Shutdown => k::KVM_EXIT_SHUTDOWN,
            ExitReason::FailEntry => k::KVM_EXIT_FAIL_ENTRY,
            ExitReason::InternalError => k::KVM_EXIT_INTERNAL_ERROR,
            ExitReason::Intr => k::KVM_EXIT_INTR,
            ExitReason::Debug => k::KVM_EXIT_DEBUG,
            ExitReason::IrqWindow => k::KVM_EXIT_IRQ_WINDOW_OPEN,
            ExitReason::Other => return None,
        })
    }

    /// KVM's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Io => "KVM_EXIT_IO",
            ExitReason::Mmio => "KVM_EXIT_MMIO",
            ExitReason::Hlt => "KVM_EXIT_HLT",
            ExitReason::Shutdown => "KVM_EXIT_SHUTDOWN",
            ExitReason::FailEntry => "KVM_EXIT_FAIL_ENTRY",
            ExitReason::InternalError => "KVM_EXIT_INTERNAL_ERROR",
            ExitReason::Intr => "KVM_EXIT_INTR",
            ExitReason::Debug => "KVM_EXIT_DEBUG",
            ExitReason::IrqWindow => "KVM_EXIT_IRQ_WINDOW_OPEN",
            ExitReason::Other => "other",
        }
    }
}

/// Direction of an I/O or MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// Guest reads (`in`, MMIO read).
    In,
    /// Guest writes (`out`, MMIO write).
    Out,
}

impl Dir {
    pub(super) fn name(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }
}

/// Exits on one port in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortCount {
    /// in or out.
    pub dir: Dir,
    /// Port number.
    pub port: u16,
    /// The hypercall on that port, if any.
    pub hypercall: Option<&'static str>,
    /// Exits.
    pub count: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

/// Exits on one MMIO address in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrCount {
    /// Read (in) or write (out).
    pub dir: Dir,
    /// Guest-physical address.
    #[serde(serialize_with = "crate::size::hex")]
    pub addr: u64,
    /// The SIMVIRTIO register there (`sv.<register>`), if any.
    pub device: Option<&'static str>,
    /// Exits.
    pub count: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

/// Counts of one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// Reason.
    pub reason: ExitReason,
    /// KVM_EXIT_* name.
    pub name: &'static str,
    /// KVM_EXIT_* number.
    pub kvm_code: Option<u32>,
    /// Exits.
    pub count: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

/// What counting an I/O or MMIO exit found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first exit on this port or address (in this direction); its
    /// row (rows are numbered in the order they were first seen).
    First(usize),
    /// It has a row, and this is a later exit on it.
    Again,
    /// It has no row of its own ([`super::index::MAX_ROWS`] are taken): counted among the
    /// others; `first` for the first exit counted there.
    Others {
        /// The first exit counted among the others.
        first: bool,
    },
}

/// Exits on ports or addresses beyond the rows, by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Others {
    /// `in` / MMIO read exits.
    pub reads: u64,
    /// `out` / MMIO write exits.
    pub writes: u64,
    /// Host time handling them (`--stats`), ns.
    pub handling_ns: u64,
}

impl Others {
    pub(super) fn total(&self) -> u64 {
        self.reads + self.writes
    }
}
