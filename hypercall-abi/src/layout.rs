//! Guest-physical memory map shared by the host and guests (long mode).

/// The "42 check": `hello` writes 42 here (and to RAX) before halting.
pub const CHECK_ADDR: u64 = 0x400;
/// The value the 42 check expects.
pub const CHECK_VALUE: u64 = 42;
/// The host's GDT.
pub const GDT: u64 = 0x1000;
/// The host result page: `num_exits_by_type` writes its string here.
pub const RESULT_PAGE: u64 = 0x2000;
/// First page table (PML4); PDPT follows, then one PD per GiB of memory.
pub const PAGE_TABLES: u64 = 0x3000;
/// End of the page-table area (room for PML4, PDPT and 4 PDs).
pub const PAGE_TABLES_END: u64 = 0x9000;
/// Long mode: the page table of the first 2 MiB (4 KiB pages), so that
/// the page below each vCPU's stack, its guard, can be left unmapped.
pub const LOW_PT: u64 = 0xB000;
/// Long mode: the host's IDT for guests that have none, its exception
/// stubs, one TSS and one exception stack per vCPU; 32-bit modes: the
/// host's IDT of 32 gates and its stubs (the host's x86/exception.rs lays
/// them out).
pub const HOST_IDT: u64 = 0xA000;
/// End of the host's exception area.
pub const HOST_IDT_END: u64 = 0xB000;
/// Real mode: the host's interrupt vector table is the CPU's, at 0 (256
/// entries of offset:segment, IDTR base 0); each entry leads to an 8-byte
/// stub of the host's here (`push dx; mov dx, PORT; out dx, al; hlt`), so
/// an exception, or an `int N` with no handler of the guest's, is reported
/// before it runs into memory that holds no code. A guest that writes its
/// own entry into the IVT replaces the host's.
pub const REAL_STUBS: u64 = 0x500;
/// End of the real-mode stubs (256 of 8 bytes).
pub const REAL_STUBS_END: u64 = 0xD00;
/// The port the host's exception stubs report on (the vector is where the
/// stub is: RIP), before an exception could become a triple fault.
pub const EXCEPTION_PORT: u16 = 0x5f0;
/// The port guest-rt's panic handler writes to after printing the panic
/// message: the host ends the run as a crash with a backtrace, without a
/// register dump.
pub const PANIC_PORT: u16 = 0x5f1;
/// Lowest address of the initial stack.
pub const STACK_BOTTOM: u64 = 0x10000;
/// Initial RSP: the stack grows down from here.
pub const STACK_TOP: u64 = 0x80000;
/// Everything below this belongs to the host's structures and the stack;
/// guest images (ELF segments, flat images) are loaded at or above it.
pub const IMAGE_MIN: u64 = STACK_TOP;
/// Where the guest linker script places guest programs.
pub const LOAD_BASE: u64 = 0x10_0000;
/// Largest guest memory (3 GiB): RAM stays below the 32-bit hole where
/// the host puts KVM's TSS pages (0xfffbd000), and pointers fit in 32 bits.
pub const MAX_MEM: u64 = 3 << 30;
/// Smallest guest memory: the host area plus 512 KiB for an image.
pub const MIN_MEM: u64 = 1 << 20;

/// Real mode: where the host loads a guest's `.kvmwb.real` code and
/// starts it (CS = DS = SS = 0, so IP = this address).
pub const REAL_LOAD: u64 = 0xA000;
/// Real mode: end of the room for 16-bit code.
pub const REAL_END: u64 = 0xF000;
/// Real mode: initial SP (the stack grows down inside the first 64 KiB).
pub const REAL_STACK_TOP: u64 = 0xFFF0;
/// 32-bit modes: where the host loads a guest's `.kvmwb.prot32` code and
/// starts it; ESP = STACK_TOP as in long mode.
pub const PROT32_LOAD: u64 = IMAGE_MIN;

/// The local APIC's registers (in-kernel controller, `--irqchip kernel`):
/// the host maps this 2 MiB page uncached in long mode, like the SIMVIRTIO
/// window; accesses go to KVM's APIC without an exit to user space.
pub const LAPIC: u64 = 0xFEE0_0000;
/// The IOAPIC's registers (in-kernel controller), mapped the same way.
pub const IOAPIC: u64 = 0xFEC0_0000;

/// Several vCPUs (`host run --vcpus N`): every vCPU starts at the ELF
/// entry with RDI = its id (0..N), RSI = N and its own stack, RSP =
/// `STACK_TOP - id * VCPU_STACK_SIZE`.
pub const VCPU_STACK_SIZE: u64 = 0x10000;
/// Most vCPUs a VM may have: the stacks share the stack area.
pub const MAX_VCPUS: u64 = (STACK_TOP - STACK_BOTTOM) / VCPU_STACK_SIZE;
