//! The seccomp filter really stops a system call outside its list.

/// A child process installs the filter, makes an allowed call (write), then a
/// forbidden one (getpid): it must die with the filter's exit code and one
/// line on stderr, and never reach the code after the forbidden call.
#[test]
fn a_syscall_outside_the_list_is_stopped() {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes raw syscalls and exits; it never returns
    // into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: child: point stderr at the pipe, filter on, write, then getpid.
        unsafe {
            libc::dup2(fds[1], 2);
            if host::seccomp::apply(None).is_err() {
                libc::_exit(100);
            }
            let ok = b"allowed write\n";
            libc::write(2, ok.as_ptr().cast(), ok.len());
            libc::getpid(); // not on the list
            libc::_exit(0); // must not be reached
        }
    }
    // SAFETY: parent: close the write end, read what the child wrote, reap it.
    let (status, text) = unsafe {
        libc::close(fds[1]);
        let mut buf = vec![0u8; 4096];
        let mut got = 0;
        loop {
            let n = libc::read(fds[0], buf[got..].as_mut_ptr().cast(), buf.len() - got);
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        (status, String::from_utf8_lossy(&buf[..got]).into_owned())
    };
    assert!(libc::WIFEXITED(status), "child status {status:#x}: {text}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        host::seccomp::SECCOMP_EXIT,
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "allowed write\nhost: seccomp: the vCPU thread made a blocked system call (number {}): stopping\n",
            libc::SYS_getpid
        )
    );
}
