//! A guest ELF started by Linux hands itself to the host (guest_rt::launch):
//! no binfmt_misc entry, no root, no state outside the folder the ELF is in.
//! `cargo test --workspace` runs the guest crates' own tests that way (cargo
//! executes them directly); these tests start guest ELFs by hand: beside a
//! host, alone, with KVMWB_HOST, and as a user who is not root but is in
//! the group that owns /dev/kvm.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// No binfmt_misc entry may stand between Linux and the guest ELF: an old
/// `make guest-runner` registered one (`make test` removes it).
fn no_binfmt_entry() {
    assert!(
        !Path::new("/proc/sys/fs/binfmt_misc/kvmwb-guest").exists(),
        "a binfmt_misc entry kvmwb-guest would intercept guest ELFs: `make binfmt-clean` removes it"
    );
}

/// A copy of cargo's target layout in a fresh folder: the hello guest in
/// `T/x86_64-unknown-none/debug/` and, with `host`, the host in
/// `T/debug/`. Nothing of the clone is used once it is copied (the clone
/// could be deleted).
fn layout(tag: &str, host: bool) -> (PathBuf, PathBuf) {
    let t = common::temp_dir().join(tag);
    let g = t.join("x86_64-unknown-none/debug");
    std::fs::create_dir_all(&g).expect("make the target folders");
    let elf = g.join("hello");
    std::fs::copy(
        host::guests::resolve("hello").expect("hello is built"),
        &elf,
    )
    .expect("copy hello");
    if host {
        std::fs::create_dir_all(t.join("debug")).expect("make debug/");
        std::fs::copy(env!("CARGO_BIN_EXE_host"), t.join("debug/host")).expect("copy host");
    }
    // readable and enterable by a user who is not root
    for d in [
        common::temp_dir().to_path_buf(),
        t.clone(),
        t.join("x86_64-unknown-none"),
        g,
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (t, elf)
}

/// Runs `cmd` with only PATH and `env` in its environment (no CARGO: not
/// run by cargo).
///
/// The tests copy executables and run them at once; a fork in a parallel
/// test can hold a copy's write descriptor for a moment, and exec then
/// fails with ETXTBSY (errno 26): that is retried.
fn bare_with(cmd: &mut Command, env: &[(&str, &str)]) -> Output {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied());
    for _ in 0..50 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {}
            Ok(o) if String::from_utf8_lossy(&o.stderr).contains("execve failed with errno 26") => {
            }
            o => return o.expect("spawn"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cmd.output().expect("spawn")
}

fn bare(cmd: &mut Command) -> Output {
    bare_with(cmd, &[])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_guest_elf_run_by_linux_starts_the_host_beside_it() {
    no_binfmt_entry();
    let (t, elf) = layout("beside", true);
    let o = bare(&mut Command::new(&elf));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(text(&o.stdout), "Hello, world!\n");
    assert!(err.contains("halted after 15 exits"), "{err}");
    assert!(err.contains("check 42: pass"), "{err}");
    std::fs::remove_dir_all(t).expect("clean up");
}

#[test]
fn a_guest_elf_with_no_host_says_what_to_do_in_one_line() {
    no_binfmt_entry();
    let (t, elf) = layout("alone", false);
    let o = bare(&mut Command::new(&elf));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(127), "{err}");
    assert_eq!(o.stdout, b"");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("a guest program of the KVM workbench: it runs in a VM, not on Linux; no host was found beside it (build one: cargo build -p host)"),
        "{err}"
    );
    // KVMWB_HOST names the host to use; a wrong one is named
    let o = bare_with(
        &mut Command::new(&elf),
        &[("KVMWB_HOST", "/nonexistent/host")],
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(127), "{err}");
    assert!(
        err.contains("KVMWB_HOST=/nonexistent/host is not an executable host"),
        "{err}"
    );
    let o = bare_with(
        &mut Command::new(&elf),
        &[("KVMWB_HOST", env!("CARGO_BIN_EXE_host"))],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Hello, world!\n");
    std::fs::remove_dir_all(t).expect("clean up");
}

/// The guest's arguments reach the host after the ELF (`cargo run ...
/// -- ARGS`): here a `host run` flag, which the host parses.
#[test]
fn arguments_after_the_elf_reach_the_host() {
    let (t, elf) = layout("args", true);
    let o = bare(Command::new(&elf).arg("--json"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json output");
    assert_eq!(v["output"], "Hello, world!\n");
    std::fs::remove_dir_all(t).expect("clean up");
}

/// As a user who is not root and reaches /dev/kvm through its group, as
/// most users do. Root sets that up in a mount namespace of its own: a
/// copy of the /dev/kvm node owned by group `gid`, mode 0660, bound over
/// /dev/kvm there only; then `setpriv` drops to uid/gid 65534 with `gid`
/// as its one supplementary group. A user who is not root runs the ELF as
/// it is.
fn as_user_in_kvm_group(elf: &Path, with_group: bool) -> Output {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return bare(&mut Command::new(elf));
    }
    let dev = std::fs::metadata("/dev/kvm").expect("/dev/kvm");
    let rdev = dev.rdev();
    let (maj, min) = (libc::major(rdev), libc::minor(rdev));
    let gid = 36; // Debian's and Fedora's kvm group; only a number here
    let groups = if with_group {
        format!("{gid}")
    } else {
        "65534".into()
    };
    // the tmpfs's mount point lies beside the ELF, in the test's folder,
    // which the test removes (a mktemp -d in /tmp stayed behind)
    let mount_point = elf.with_file_name(format!("kvm-dev-{with_group}"));
    std::fs::create_dir_all(&mount_point).expect("mount point");
    let script = format!(
        "set -e; d=\"$1\"; mount -t tmpfs -o mode=0755 kvmwb-dev \"$d\"; \
         mknod -m 0660 \"$d/kvm\" c {maj} {min}; chgrp {gid} \"$d/kvm\"; \
         mount --bind \"$d/kvm\" /dev/kvm; \
         exec setpriv --reuid 65534 --regid 65534 --groups {groups} -- \"$0\""
    );
    bare(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(elf)
            .arg(&mount_point),
    )
}

#[test]
fn a_user_in_the_kvm_group_runs_guests_without_root() {
    no_binfmt_entry();
    let (t, elf) = layout("nonroot", true);
    let o = as_user_in_kvm_group(&elf, true);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(text(&o.stdout), "Hello, world!\n");
    assert!(err.contains("check 42: pass"), "{err}");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // and without the group: one line that says what is missing
        let o = as_user_in_kvm_group(&elf, false);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("/dev/kvm"), "{err}");
        assert!(err.contains("permission"), "{err}");
    }
    std::fs::remove_dir_all(t).expect("clean up");
}
