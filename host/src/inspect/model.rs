//! What `host layout` reports: the data, shared by the text and JSON forms.

use crate::x86::CpuMode;
use crate::x86::Regs;
use serde::Serialize;

/// A guest-physical range and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Area {
    /// First GPA.
    #[serde(serialize_with = "crate::size::hex")]
    pub start: u64,
    /// End GPA (exclusive).
    #[serde(serialize_with = "crate::size::hex")]
    pub end: u64,
    /// What it holds.
    pub what: String,
    /// Host virtual address of `start` (None: no guest RAM behind it).
    #[serde(serialize_with = "crate::size::hex_opt")]
    pub hva: Option<u64>,
}

/// A segment register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seg {
    /// Selector.
    pub selector: u16,
    /// Base.
    #[serde(serialize_with = "crate::size::hex")]
    pub base: u64,
    /// Limit.
    pub limit: u32,
    /// Type field.
    pub type_: u8,
    /// L (64-bit code).
    pub l: u8,
    /// D/B (32-bit default size).
    pub db: u8,
}

impl From<&kvm_bindings::kvm_segment> for Seg {
    fn from(s: &kvm_bindings::kvm_segment) -> Seg {
        Seg {
            selector: s.selector,
            base: s.base,
            limit: s.limit,
            type_: s.type_,
            l: s.l,
            db: s.db,
        }
    }
}

/// The special registers the guest starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Special {
    /// CS.
    pub cs: Seg,
    /// DS.
    pub ds: Seg,
    /// SS.
    pub ss: Seg,
    /// CR0.
    #[serde(serialize_with = "crate::size::hex")]
    pub cr0: u64,
    /// CR3.
    #[serde(serialize_with = "crate::size::hex")]
    pub cr3: u64,
    /// CR4.
    #[serde(serialize_with = "crate::size::hex")]
    pub cr4: u64,
    /// EFER.
    #[serde(serialize_with = "crate::size::hex")]
    pub efer: u64,
    /// GDTR base.
    #[serde(serialize_with = "crate::size::hex")]
    pub gdt_base: u64,
    /// GDTR limit.
    pub gdt_limit: u16,
    /// The GDT's descriptors, read from guest memory (empty in real mode).
    pub gdt: Vec<u64>,
}

/// One present page-table entry (or a run of leaf entries that map
/// consecutive pages with the same flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Nesting depth (0: the top table).
    pub depth: usize,
    /// Table level name.
    pub level: &'static str,
    /// GPA of the table.
    #[serde(serialize_with = "crate::size::hex")]
    pub table: u64,
    /// First index.
    pub index: u64,
    /// GPA of the (first) entry.
    #[serde(serialize_with = "crate::size::hex")]
    pub at: u64,
    /// Number of entries in the run (1 for a table pointer).
    pub count: u64,
    /// The first entry's value.
    #[serde(serialize_with = "crate::size::hex")]
    pub value: u64,
    /// Flags, e.g. "P RW PS".
    pub flags: String,
    /// First GVA it maps.
    #[serde(serialize_with = "crate::size::hex")]
    pub gva: u64,
    /// Bytes it maps (the whole run).
    pub span: u64,
    /// The next table, for a pointer entry.
    #[serde(serialize_with = "crate::size::hex_opt")]
    pub next_table: Option<u64>,
    /// First GPA, for a page entry.
    #[serde(serialize_with = "crate::size::hex_opt")]
    pub page_gpa: Option<u64>,
    /// Page size, for a page entry.
    pub page_size: Option<u64>,
}

/// A step of `--translate`, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranslateStep {
    /// What this step read or computed.
    pub text: String,
}

/// A `--translate GVA` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The address asked for.
    #[serde(serialize_with = "crate::size::hex")]
    pub gva: u64,
    /// The steps.
    pub steps: Vec<TranslateStep>,
    /// The final GPA.
    #[serde(serialize_with = "crate::size::hex_opt")]
    pub gpa: Option<u64>,
    /// The final HVA.
    #[serde(serialize_with = "crate::size::hex_opt")]
    pub hva: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Everything `host layout` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// The CPU mode.
    pub mode: CpuMode,
    /// Guest memory size.
    pub mem_size: u64,
    /// HVA of GPA 0 (memory slot 0).
    #[serde(serialize_with = "crate::size::hex")]
    pub mem_hva: u64,
    /// The guest-physical map, sorted, free space included.
    pub areas: Vec<Area>,
    /// KVM_GET_VCPU_MMAP_SIZE.
    pub kvm_run_size: usize,
    /// Where the vCPU's kvm_run is mapped in this process.
    #[serde(serialize_with = "crate::size::hex")]
    pub kvm_run_hva: u64,
    /// Registers at the start.
    pub regs: Regs,
    /// Special registers at the start.
    pub sregs: Special,
    /// How addresses translate.
    pub paging: String,
    /// Page-table entries, depth first.
    pub tables: Vec<Entry>,
    /// Where the live control registers differ from what the host set.
    pub warnings: Vec<String>,
    /// `--translate`.
    pub translation: Option<Translation>,
    /// The interrupt controller and tables at the start.
    pub interrupts: super::irq::IrqView,
}
