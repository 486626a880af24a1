//! Snapshot files (docs/snapshots.md): the input is written as a file and
//! read by `snapshot::open` (header, metadata, memory image checks); the
//! input also goes straight to the metadata decoder, and every part a
//! decoded metadata names goes to its own reader (vCPU state, controllers,
//! exit counts, the device). Never a panic; an error or a value.
#![no_main]
use host::devices::Serving;
use host::devices::simvirtio::SimVirtio;
use host::kvm::state::{ChipSnapshot, VcpuState};
use host::snapshot::Snapshot;
use host::stats::ExitStats;
use host::wire::Dec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Snapshot::decode(data) {
        for (v, st) in s.vcpus.iter().zip(&s.stats) {
            let _ = VcpuState::load(&mut Dec::new(v));
            let _ = ExitStats::load(&mut Dec::new(st));
        }
        if let Some(c) = &s.chips {
            let _ = ChipSnapshot::load(&mut Dec::new(c));
        }
        let _ = SimVirtio::new(Serving::Exits, None).load(&mut Dec::new(&s.device));
    }
    let path = std::env::temp_dir().join(format!("kvmwb-fuzz-{}.snap", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = host::snapshot::open(&path);
        let _ = std::fs::remove_file(&path);
    }
});
