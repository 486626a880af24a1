//! A guest ready to run: its VM, loaded or restored, and what reports
//! need of its file.

use crate::loader::Plan;
use crate::vm::Vm;
use std::path::PathBuf;

/// A guest ready to run.
pub struct Prepared {
    /// Display name (the guest name or the path).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The checked plan.
    pub plan: Plan,
    /// The VM, loaded.
    pub vm: Vm,
    /// What was read of the file (`loader::read_needed`: no DWARF; the
    /// symbol table, which explains a crash).
    pub bytes: Vec<u8>,
    /// Whether the file's addresses are the ones the guest runs at (a
    /// long-mode ELF, not a mode section or a flat image).
    pub linked_here: bool,
    /// The file, mapped, when `linked_here`: a crash report reads its
    /// source lines from the DWARF (not read otherwise).
    pub file: Option<crate::loader::FileMap>,
}

impl Prepared {
    /// A prepared guest: its name, what `read_guest_file` gave, its plan
    /// and VM; `linked_here`: a long-mode ELF, whose DWARF a crash report
    /// reads through the file, mapped now.
    pub(super) fn new(
        name: String,
        (path, bytes, file): (PathBuf, Vec<u8>, std::fs::File),
        plan: Plan,
        vm: Vm,
        linked_here: bool,
    ) -> Prepared {
        Prepared {
            name,
            path,
            plan,
            vm,
            bytes,
            linked_here,
            file: linked_here
                .then(|| crate::loader::FileMap::new(file))
                .flatten(),
        }
    }
}
