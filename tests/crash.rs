//! A crash explains itself: after the fault line and registers, `host run`
//! prints the CPU mode and privilege level, paging, the control register
//! bits by name, RIP as symbol+offset with the instruction there
//! (iced-x86), the page walks of RIP and RSP, and the last exits; `--json`
//! carries the same as `"crash"`. On the hostile cases.

mod common;

fn run(args: &[&str]) -> (i32, String) {
    let o = common::host(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn flat(tag: &str, code: &[u8]) -> String {
    common::temp_file(tag, code).display().to_string()
}

#[test]
fn a_crash_in_rust_code_names_the_exception_the_function_and_the_instruction() {
    let (code, err) = run(&["run", "crash"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("host: crash stopped: #UD invalid opcode (exception 6) at RIP 0x100"),
        "{err}"
    );
    assert!(err.contains("crash explained:\n"));
    assert!(err.contains(
        "  CPU mode: 64-bit long mode (EFER.LMA, CS.L), CPL 0 (kernel); paging: 4-level (CR0.PG, EFER.LMA)\n"
    ));
    assert!(err.contains("  CR0: PROTECTED_MODE_ENABLE | "), "{err}");
    assert!(err.contains("| PAGING\n"));
    assert!(err.contains("  EFER: LONG_MODE_ENABLE | LONG_MODE_ACTIVE\n"));
    assert!(
        err.contains("  instruction at RIP (crash::deep+0x"),
        "{err}"
    );
    assert!(err.contains("): ud2   [0f 0b]\n"));
    assert!(err.contains("  RIP: translate GVA 0x100"));
    assert!(err.contains("  RSP: translate GVA 0x7ff"));
    assert!(err.contains(
        "  the last 2 exits, oldest first:\n    KVM_EXIT_IO out port 0x503 (print_str)\n    KVM_EXIT_IO out port 0x5f0\n"
    ));
    // the call chain: deep recursed, called from main (in __guest_rt_main)
    assert!(
        err.contains("  backtrace (frame pointers), innermost first:\n    0x"),
        "{err}"
    );
    assert!(err.contains(" crash::deep+0x"), "{err}");
    assert!(err.contains(" __guest_rt_main+0x"), "{err}");
    assert!(err.contains("host: to look closer: `host run crash --gdb` stops at the crash"));

    let o = common::host(&["run", "crash", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let c = &v["crash"];
    assert_eq!(c["instruction"], "ud2");
    assert_eq!(c["bytes"], "0f 0b");
    assert_eq!(c["cpl"], 0);
    assert!(
        c["rip_symbol"]
            .as_str()
            .unwrap()
            .starts_with("crash::deep+0x")
    );
    assert!(c["rip_walk"]["gpa"].is_string());
    assert_eq!(c["last_exits"].as_array().unwrap().len(), 2);
    assert!(c["backtrace"].as_array().unwrap().len() >= 2);
    let f = &v["stop"]["fault"];
    assert_eq!(f["kind"], "exception", "{v}");
    assert_eq!(
        (f["vector"].as_u64(), f["mnemonic"].as_str()),
        (Some(6), Some("#UD"))
    );
    assert!(
        c["efer"]
            .as_array()
            .unwrap()
            .contains(&"LONG_MODE_ACTIVE".into())
    );
}

#[test]
fn a_jump_to_unmapped_memory_shows_the_walk_that_fails() {
    // movabs $0x4000000000, %rax; jmp *%rax (4 TiB: no page table maps it)
    let f = flat("jump", &[0x48, 0xb8, 0, 0, 0, 0, 0x40, 0, 0, 0, 0xff, 0xe0]);
    let (code, err) = run(&["run", "--flat", "0x100000", &f]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("at RIP 0x4000000000"), "{err}");
    assert!(
        err.contains("  instruction at RIP: (cannot read it: nothing maps RIP, see its walk)\n")
    );
    assert!(err.contains("  RIP: translate GVA 0x4000000000:"));
    assert!(
        err.contains("=> Invalid GVA: PDPT entry 256 of the table at 0x4000 is not present"),
        "{err}"
    );
    // a flat image has no symbols
    assert!(!err.contains("instruction at RIP ("));
}

#[test]
fn a_fault_in_the_guest_kernel_after_user_mode() {
    let o = common::host(&["run", "kernel_fault"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(out.contains("user: hello from CPL3\n"), "{out}");
    assert!(
        out.contains("kernel: #PF at RIP 0x"),
        "the guest kernel's own line: {out}"
    );
    // the kernel's IDT handed the fault to the host (ExceptionReport on the
    // exception port): the host's report, with the registers of the fault
    assert!(
        err.contains("host: kernel_fault stopped: #PF page fault (exception 14, error code 0x2: not present, write, kernel, address 0x40000000000 in CR2) at RIP 0x100"),
        "{err}"
    );
    assert!(err.contains("rax=0x0000040000000000"), "{err}");
    assert!(err.contains("CPL 0 (kernel)"));
    // user mode ran: the kernel turned SYSCALL on
    assert!(
        err.contains("  EFER: SYSTEM_CALL_EXTENSIONS | LONG_MODE_ENABLE | LONG_MODE_ACTIVE\n"),
        "{err}"
    );
    assert!(
        err.contains("  instruction at RIP (__guest_rt_main+0x"),
        "{err}"
    );
    assert!(err.contains("): movq $1,(%rax)"), "{err}");
    assert!(
        err.contains("  the faulting address (CR2): translate GVA 0x40000000000:"),
        "{err}"
    );
    assert!(!err.contains("KVM_EXIT_SHUTDOWN"), "{err}");
}

/// Real and 32-bit protected mode: the host's IVT (at 0, all 256 vectors)
/// and 32-bit IDT lead every exception to a stub that reports it, with
/// the registers of the moment; an `int N` with no handler is named as
/// one; a guest's own IVT entry replaces the host's.
#[test]
fn exceptions_in_real_and_protected_mode_are_named() {
    // real mode: mov dx, 0x1234; xor ax, ax; div ax -> #DE, DX restored
    let de = flat("de16", &[0xba, 0x34, 0x12, 0x31, 0xc0, 0xf7, 0xf0]);
    let (code, err) = run(&["run", "--mode", "real", "--flat", "0xa000", &de]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: #DE divide error (exception 0) at RIP 0xa005\n"),
        "{err}"
    );
    assert!(err.contains("rdx=0x0000000000001234"), "{err}");
    assert!(err.contains("rsp=0x000000000000fff0"), "{err}");
    assert!(
        err.contains("  instruction at RIP: div %ax   [f7 f0]\n"),
        "{err}"
    );
    assert!(err.contains("CPU mode: 16-bit real mode"), "{err}");
    // real mode: ud2, and int 0x10 (no BIOS here)
    let ud = flat("ud16", &[0x90, 0x0f, 0x0b]);
    let (code, err) = run(&["run", "--mode", "real", "--flat", "0xa000", &ud]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: #UD invalid opcode (exception 6) at RIP 0xa001\n"),
        "{err}"
    );
    let int = flat("int16", &[0x90, 0xcd, 0x10]);
    let (code, err) = run(&["run", "--mode", "real", "--flat", "0xa000", &int]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: `int 0x10` with no handler: vector 16's entry is still the host's at RIP 0xa001\n"),
        "{err}"
    );
    // a guest's own #DE handler in the IVT: mov word [0], 0xa010;
    // mov word [2], 0; xor ax, ax; div ax; at 0xa010: mov al, 'D';
    // out 0xe9, al; hlt
    let mut own = vec![
        0xc7, 0x06, 0x00, 0x00, 0x10, 0xa0, 0xc7, 0x06, 0x02, 0x00, 0x00, 0x00, 0x31, 0xc0, 0xf7,
        0xf0,
    ];
    own.extend_from_slice(&[0xb0, b'D', 0xe6, 0xe9, 0xf4]);
    let f = flat("own16", &own);
    let o = common::host(&["run", "--mode", "real", "--flat", "0xa000", &f]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "D");
    assert_eq!(o.status.code(), Some(0));

    // 32-bit protected mode: #DE, and #GP with its error code (a selector
    // past the GDT: mov ax, 0x28; mov ds, ax)
    let de = flat("de32", &[0x31, 0xc0, 0xf7, 0xf0]);
    let (code, err) = run(&["run", "--mode", "protected", "--flat", "0x80000", &de]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: #DE divide error (exception 0) at RIP 0x80002\n"),
        "{err}"
    );
    assert!(err.contains("rsp=0x0000000000080000"), "{err}");
    assert!(err.contains("CPU mode: 32-bit protected mode"), "{err}");
    let gp = flat("gp32", &[0x66, 0xb8, 0x28, 0x00, 0x8e, 0xd8]);
    let (code, err) = run(&["run", "--mode", "protected", "--flat", "0x80000", &gp]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: #GP general protection fault (exception 13, error code 0x28: GDT selector 0x28) at RIP 0x80004\n"),
        "{err}"
    );
    assert!(err.contains("  instruction at RIP: mov %eax,%ds"), "{err}");
}

#[test]
fn a_guest_that_turns_paging_off_under_itself() {
    // mov %cr0, %rax; btr $31, %eax; mov %rax, %cr0: clearing CR0.PG in
    // 64-bit mode is a #GP, which the host's IDT reports; CR0 still has PG
    let f = flat(
        "nopaging",
        &[
            0x0f, 0x20, 0xc0, 0x0f, 0xba, 0xf0, 0x1f, 0x0f, 0x22, 0xc0, 0xf4,
        ],
    );
    let (code, err) = run(&["run", "--flat", "0x100000", &f]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("at RIP 0x100007"), "{err}");
    assert!(
        err.contains("  instruction at RIP: mov %rax,%cr0   [0f 22 c0]\n"),
        "{err}"
    );
    assert!(err.contains("| PAGING\n"), "paging is still on");
    assert!(
        err.contains("stopped: #GP general protection fault (exception 13, error code 0x0: no selector) at RIP 0x100007"),
        "{err}"
    );
    assert!(err.contains("  the last 1 exits, oldest first:\n    KVM_EXIT_IO out port 0x5f0\n"));
}

/// The host's IDT says why a Rust guest crashed: the exception by name,
/// vector and error code, where, and the call chain (docs/guests.md).
#[test]
fn exceptions_are_named_with_their_error_codes_and_call_chains() {
    let (code, err) = run(&["run", "crash_div"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("host: crash_div stopped: #DE divide error (exception 0) at RIP 0x100"),
        "{err}"
    );
    assert!(
        err.contains(
            "  instruction at RIP (crash_div::divide+0xb at guest-kernel/src/bin/crash_div.rs:16): div %"
        ),
        "{err}"
    );
    assert!(err.contains(": div %"), "{err}");
    assert!(
        err.contains(" crash_div::average+0x1a at guest-kernel/src/bin/crash_div.rs:23\n"),
        "{err}"
    );

    let (code, err) = run(&["run", "crash_gp"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: #GP general protection fault (exception 13, error code 0x0: no selector) at RIP 0x100"),
        "{err}"
    );
    assert!(err.contains("movq $0x2A,(%rax)"), "{err}");
    assert!(err.contains("rax=0x8000000000000000"), "{err}");
}

/// A stack that overflows faults in the unmapped guard page below it and
/// is reported as a stack overflow, with the recursion as one line; the
/// fault's address (CR2) is walked.
#[test]
fn a_stack_overflow_is_reported_as_one() {
    let (code, err) = run(&["run", "crash_overflow"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("stopped: #PF page fault (exception 14, error code 0x2: not present, write, kernel, address 0x70"),
        "{err}"
    );
    assert!(
        err.contains("  stack overflow: 0x70") && err.contains(" is in the guard page below vCPU 0's stack (0x71000..0x80000, 60 KiB; the guard is 0x70000..0x71000)"),
        "{err}"
    );
    assert!(err.contains(" crash_overflow::deep+0x"), "{err}");
    assert!(err.contains(" frames)\n"), "a recursion is one line: {err}");
    assert!(
        err.contains("  the faulting address (CR2): translate GVA 0x70"),
        "{err}"
    );
    let o = common::host(&["run", "crash_overflow", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        v["crash"]["stack_overflow"]
            .as_str()
            .unwrap()
            .starts_with("stack overflow: ")
    );
    assert_eq!(v["stop"]["fault"]["mnemonic"], "#PF", "{v}");
    assert!(
        v["stop"]["fault"]["cr2"]
            .as_str()
            .unwrap()
            .starts_with("0x70")
    );
}

/// A panic is its message and the call chain, not a register dump.
#[test]
fn a_panic_is_its_message_and_its_call_chain() {
    let o = common::host(&["run", "crash_panic"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        out.contains("guest panic: index out of bounds: the len is 3 but the index is 7 at guest-kernel/src/bin/crash_panic.rs:12"),
        "{out}"
    );
    assert!(
        err.starts_with("host: crash_panic stopped: the guest panicked (its message is above)\n  backtrace (frame pointers), innermost first:\n"),
        "{err}"
    );
    // the function and, from the ELF's DWARF, the source line
    assert!(
        err.contains(" crash_panic::pick+0x23 at guest-kernel/src/bin/crash_panic.rs:12\n"),
        "{err}"
    );
    assert!(
        !err.contains("rax=") && !err.contains("crash explained"),
        "{err}"
    );
    assert!(
        err.contains("host: to look closer: `host run crash_panic --gdb`"),
        "{err}"
    );
}

/// `guest_rt::heap!` gives a guest Vec, String, format! and Box; what does
/// not fit is said in one line, and the allocation failure is a panic with
/// its backtrace. `host layout` names the heap's area.
#[test]
fn a_guest_heap_serves_vec_string_and_box_and_says_when_it_is_full() {
    let o = common::host(&["run", "heap_demo"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(out.starts_with(
        "the sum of the first 1000 squares is 332833500\n200 boxes, their last bytes add up to 19900\nguest heap: out of memory: 1048576 bytes asked (alignment 1), "
    ), "{out}");
    assert!(
        out.contains(" of 65536 bytes in use; guest_rt::heap!(SIZE) sets its size\n"),
        "{out}"
    );
    assert!(
        out.contains("guest panic: memory allocation of 1048576 bytes failed"),
        "{out}"
    );
    assert!(
        err.starts_with("host: heap_demo stopped: the guest panicked"),
        "{err}"
    );
    let o = common::host(&["layout", "heap_demo"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("; guest_rt::heap!: 64 KiB at 0x"), "{text}");
}
