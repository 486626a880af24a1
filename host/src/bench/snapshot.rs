//! The snapshot figures (docs/snapshots.md): saving `hello` after its
//! fifth exit and restoring it to its next exit, with 2 MiB and with
//! 1 GiB of guest RAM (the same pages touched: a restore must not grow
//! with RAM), and the memory of many VMs cloned from one snapshot.

use super::common::{BenchError, pct};
use crate::config::{RunConfig, SnapAt, VmConfig};
use crate::run::{self, RunOptions};
use crate::vcpu::Stop;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Removes the bench's snapshot files however the stage ends.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// One save and one restore of `hello` with `mem` bytes of RAM into
/// `path`; their times, µs.
fn save_and_restore(path: &Path, mem: u64, kvm: &Path) -> Result<(f64, f64), BenchError> {
    let opts = RunOptions {
        guest: "hello".into(),
        vm: VmConfig {
            mem_size: mem,
            kvm_path: kvm.to_path_buf(),
            ..Default::default()
        },
        run: RunConfig {
            snapshot_at: Some(SnapAt::Exits(5)),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut p = run::prepare(&opts)?;
    let outcome = p.vm.run(&mut std::io::sink(), &mut std::io::sink())?;
    if outcome.stop != Stop::Snapshot {
        return Err(BenchError::NoHalt("snapshot_save_us"));
    }
    let file = run::snapshot::create(path)?;
    let t = Instant::now();
    run::snapshot::save(&mut p, &file, path, &outcome, &[])?;
    let save = t.elapsed().as_nanos() as f64 / 1e3;
    drop((p, file));
    let restore_opts = RunOptions {
        guest: String::new(),
        vm: VmConfig {
            kvm_path: kvm.to_path_buf(),
            ..Default::default()
        },
        ..Default::default()
    };
    // from the file to the restored guest's next exit
    let t = Instant::now();
    let (mut p, _) = run::snapshot::prepare_restore(&restore_opts, path)?;
    let first = p.vm.vcpu_mut().run().is_ok();
    let restore = t.elapsed().as_nanos() as f64 / 1e3;
    if !first {
        return Err(BenchError::NoHalt("snapshot_restore_us"));
    }
    Ok((save, restore))
}

/// `snapshot_save_us_{2m,1g}`, `snapshot_restore_us_{2m,1g}` (medians of
/// `runs`), and with `clones` > 0 `snapshot_clone_rss_kib_per_vm`: that
/// many VMs cloned from the 2 MiB snapshot in one `host matrix`, the
/// resident memory they add per VM before they run.
pub fn run(out: &mut dyn Write, runs: usize, clones: usize, kvm: &Path) -> Result<(), BenchError> {
    let dir = std::env::temp_dir();
    let id = std::process::id();
    let files = Files(vec![
        dir.join(format!("kvmwb-bench-{id}-2m.snap")),
        dir.join(format!("kvmwb-bench-{id}-1g.snap")),
    ]);
    let mut restore_median = [0.0; 2];
    for (i, (tag, mem)) in [("2m", 2u64 << 20), ("1g", 1u64 << 30)]
        .into_iter()
        .enumerate()
    {
        let (mut saves, mut restores) = (Vec::new(), Vec::new());
        for _ in 0..runs.max(1) {
            let (s, r) = save_and_restore(&files.0[i], mem, kvm)?;
            saves.push(s);
            restores.push(r);
        }
        let (s, r) = (pct(&mut saves, 0.5), pct(&mut restores, 0.5));
        restore_median[i] = r;
        writeln!(out, "snapshot_save_us_{tag} {s:.1} us")?;
        writeln!(out, "snapshot_restore_us_{tag} {r:.1} us")?;
    }
    writeln!(
        out,
        "snapshot_restore_1g_over_2m {:.2} x",
        restore_median[1] / restore_median[0].max(f64::MIN_POSITIVE)
    )?;
    if clones > 0 {
        let before = crate::matrix::rss_kib();
        let m = crate::matrix::run(
            &crate::matrix::MatrixOptions {
                vms: vec![format!("{}:count={clones}", files.0[0].display())],
                quantum: std::time::Duration::from_millis(1),
                quanta: Some(clones as u64),
                kvm_path: kvm.to_path_buf(),
                events: false,
                ..Default::default()
            },
            &mut std::io::sink(),
        )?;
        let grown = m.rss_kib_after_setup.saturating_sub(before) as f64;
        writeln!(
            out,
            "snapshot_clone_rss_kib_per_vm {:.2} KiB",
            grown / clones as f64
        )?;
        writeln!(
            out,
            "snapshot_clone_setup_us {:.1} us",
            m.setup_ns as f64 / 1e3 / clones as f64
        )?;
    }
    Ok(())
}
