//! The peak resident memory of a whole process, measured without the
//! measuring process in it.
//!
//! `getrusage(RUSAGE_CHILDREN)` cannot give it: a child started with vfork
//! or fork runs on the parent's memory (or a copy) until it execs, and the
//! kernel counts that memory's high-water mark into the child's maxrss at
//! exec. So the child runs under ptrace, stops at its exit
//! (PTRACE_O_TRACEEXIT) with its memory still there, and its own VmHWM is
//! read from /proc/PID/status.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// VmHWM of a live process, in KiB.
pub(super) fn hwm_kib(pid: libc::pid_t) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Runs `exe args` to its end (output to /dev/null) and returns its peak
/// resident set in KiB and its exit code (-1: killed by a signal).
pub fn peak_rss_kib(exe: &Path, args: &[&OsStr]) -> std::io::Result<(u64, i32)> {
    let bad = |_| std::io::Error::other("a NUL byte in the command");
    let prog = CString::new(exe.as_os_str().as_bytes()).map_err(bad)?;
    let mut argv = vec![prog.clone()];
    for a in args {
        argv.push(CString::new(a.as_bytes()).map_err(bad)?);
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let null = c"/dev/null";
    // SAFETY: fork has no preconditions; the child below only makes
    // async-signal-safe calls on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork"));
    }
    if pid == 0 {
        // SAFETY: open, dup2, ptrace, execv and _exit are async-signal-safe;
        // `null`, `prog` and `ptrs` (NUL-terminated) outlive the calls.
        unsafe {
            let fd = libc::open(null.as_ptr(), libc::O_WRONLY);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::execv(prog.as_ptr(), ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    let mut st = 0;
    let mut hwm = 0;
    // SAFETY: waitpid only writes `st` (and the calls below: ptrace acts on
    // our own traced child `pid` only).
    let waited = unsafe { libc::waitpid(pid, &mut st, 0) };
    if waited < 0 || !libc::WIFSTOPPED(st) {
        return Err(err("waiting for the child's exec"));
    }
    let opts = libc::PTRACE_O_TRACEEXIT | libc::PTRACE_O_EXITKILL;
    // SAFETY: as above.
    unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts) };
    let mut sig = 0;
    loop {
        // SAFETY: as above.
        unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, sig) };
        // SAFETY: as above.
        if unsafe { libc::waitpid(pid, &mut st, 0) } < 0 {
            return Err(err("waitpid"));
        }
        if libc::WIFEXITED(st) {
            return Ok((hwm, libc::WEXITSTATUS(st)));
        }
        if libc::WIFSIGNALED(st) {
            return Ok((hwm, -1));
        }
        sig = 0;
        if st >> 8 == (libc::SIGTRAP | (libc::PTRACE_EVENT_EXIT << 8)) {
            hwm = hwm_kib(pid).unwrap_or(0);
        } else if libc::WIFSTOPPED(st) {
            // a signal for the child: hand it on
            sig = libc::WSTOPSIG(st);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The child's own peak and exit code come back; a shell that fills
    /// 8 MiB has a peak above 8 MiB, one that does nothing stays far below.
    #[test]
    fn measures_the_child_alone() {
        let sh = std::path::Path::new("/bin/sh");
        let (small, code) = super::peak_rss_kib(sh, &["-c".as_ref(), "exit 3".as_ref()]).unwrap();
        assert_eq!(code, 3);
        assert!(small > 0 && small < 8 * 1024, "{small} KiB");
        let fill = "x=$(head -c 8388608 /dev/zero | tr '\\0' a); echo ${#x}";
        let (big, code) = super::peak_rss_kib(sh, &["-c".as_ref(), fill.as_ref()]).unwrap();
        assert_eq!(code, 0);
        assert!(big > 8 * 1024, "{big} KiB");
    }
}
