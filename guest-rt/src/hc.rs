//! Typed hypercall wrappers: one port-I/O instruction (one VM exit) each.
//! Ports, layouts and status codes come from `hypercall-abi`.

use core::ffi::CStr;
use hypercall_abi::{GvaToHvaArgs, HcStatus, Hypercall, PrintStrArgs};

#[inline(always)]
fn out8(port: u16, v: u8) {
    // SAFETY: port I/O only causes a VM exit to the host; no guest memory is touched.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

#[inline(always)]
fn out32(port: u16, v: u32) {
    // SAFETY: as in `out8`. The host may write guest memory through a block
    // pointer in `v`, so this is not `nomem`.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags))
    }
}

#[inline(always)]
fn in32(port: u16) -> u32 {
    let v: u32;
    // SAFETY: port I/O only causes a VM exit; the host answers in EAX (and
    // may write the result page, hence not `nomem`).
    unsafe {
        core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags))
    }
    v
}

/// The guest-physical address of a guest object. Guests run identity-mapped
/// below 4 GiB, so the pointer value is the address.
#[inline(always)]
fn gpa<T>(p: *const T) -> u32 {
    p as usize as u32
}

fn status(raw: i32) -> Result<(), HcStatus> {
    match HcStatus::from_raw(raw) {
        Some(HcStatus::Ok) => Ok(()),
        Some(e) => Err(e),
        None => Err(HcStatus::BadPointer),
    }
}

/// One wrapper per hypercall, generated from the ABI's one declaration
/// (`hypercall_abi::hypercalls!`), typed by its transport: `Out8` takes a
/// `u8`, `Out32` a `u32`, `In32` returns a `u32`, `OutBlock(T)` takes
/// `&mut T` (the host writes the results into it during the exit). A call
/// with the wrong argument type does not compile.
pub mod raw {
    use super::{gpa, in32, out8, out32};
    use hypercall_abi::Hypercall;

    macro_rules! raw_wrappers {
        ($( $(#[doc = $doc:literal])* $nr:literal $v:ident $name:ident = $port:literal : $t:ident $(($b:ty))? ; )*) => {
            $( raw_wrappers!(@one [$($doc)*] $v $name $t $(($b))?); )*

            /// Each hypercall's entry in the ABI note, in a section of its
            /// own that the linker keeps only when a wrapper that is linked
            /// names it ([`listed!`](crate::listed)); linker/guest.ld
            /// gathers the ones kept into `.note.kvmwb.abi`.
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub mod listing {
                use hypercall_abi::Hypercall;
                use hypercall_abi::note::{Listing, field_count};
                $(
                    #[unsafe(link_section = concat!(".kvmwb.abi.hc.", stringify!($name)))]
                    pub static $name: Listing<{ field_count(Hypercall::$v) }> =
                        Listing::of(Hypercall::$v);
                )*
            }
        };
        (@one [$($doc:literal)*] $v:ident $name:ident Out8) => {
            $(#[doc = $doc])*
            #[inline(always)]
            pub fn $name(v: u8) {
                crate::listed!($name);
                out8(const { Hypercall::$v.port() }, v)
            }
        };
        (@one [$($doc:literal)*] $v:ident $name:ident Out32) => {
            $(#[doc = $doc])*
            #[inline(always)]
            pub fn $name(v: u32) {
                crate::listed!($name);
                out32(const { Hypercall::$v.port() }, v)
            }
        };
        (@one [$($doc:literal)*] $v:ident $name:ident In32) => {
            $(#[doc = $doc])*
            #[inline(always)]
            pub fn $name() -> u32 {
                crate::listed!($name);
                in32(const { Hypercall::$v.port() })
            }
        };
        (@one [$($doc:literal)*] $v:ident $name:ident OutBlock($b:ty)) => {
            $(#[doc = $doc])*
            #[inline(always)]
            pub fn $name(block: &mut $b) {
                crate::listed!($name);
                out32(const { Hypercall::$v.port() }, gpa(block as *mut $b))
            }
        };
    }

    hypercall_abi::hypercalls!(raw_wrappers);
}

/// Lists hypercall `name` in the program's ABI note (guest-rt's wrappers
/// do this; code that executes the port instruction itself, in `asm!`,
/// uses it too): a relocation that emits no instruction and no byte, only
/// keeps `name`'s entry from the linker's garbage collection. In
/// `global_asm!` write `".reloc ., R_X86_64_NONE, {e}"` with
/// `e = sym guest_rt::hc::raw::listing::NAME` instead.
#[macro_export]
macro_rules! listed {
    ($name:ident) => {
        // SAFETY: the directive emits no instruction: only a relocation
        // of type NONE, which the linker reads and never applies.
        unsafe {
            ::core::arch::asm!(
                ".reloc ., R_X86_64_NONE, {e}",
                e = sym $crate::hc::raw::listing::$name,
                options(nomem, nostack, preserves_flags)
            )
        }
    };
}

pub use raw::{host_cpuid, num_exits, print8bit, print32bit};

/// `print_str` on a guest-physical address: returns the bytes printed.
/// For programs that need to pass an arbitrary (even bad) address.
pub fn print_str_at(addr: u64) -> Result<u32, HcStatus> {
    let mut args = PrintStrArgs {
        addr,
        len: 0,
        status: HcStatus::BadPointer as i32,
    };
    raw::print_str(&mut args);
    status(args.status).map(|()| args.len)
}

/// `print_str`: the host prints `s` as is. Returns the bytes printed.
pub fn print_str(s: &CStr) -> Result<u32, HcStatus> {
    print_str_at(s.as_ptr() as usize as u64)
}

/// `num_exits_by_type`: guest-physical address of the NUL-terminated
/// "IO in: x\nIO out: y\n" the host wrote into its result page.
pub fn num_exits_by_type() -> u64 {
    u64::from(raw::num_exits_by_type())
}

/// `gva_to_hva`: the host virtual address behind `gva`, or
/// `Err(HcStatus::InvalidGva)` (the host prints "Invalid GVA").
pub fn gva_to_hva(gva: u64) -> Result<u64, HcStatus> {
    let mut args = GvaToHvaArgs {
        gva,
        hva: 0,
        status: HcStatus::BadPointer as i32,
        reserved: 0,
    };
    raw::gva_to_hva(&mut args);
    status(args.status).map(|()| args.hva)
}

/// `gva_to_hva` with the argument block at an arbitrary guest-physical
/// address, for programs that test the host's checks. Results, if the block
/// is inside guest memory, are in the block.
pub fn gva_to_hva_raw(block: u32) {
    crate::listed!(gva_to_hva);
    out32(const { Hypercall::GvaToHva.port() }, block);
}

/// "My set-up is done": with `host run --snapshot FILE` (`--snapshot-at
/// call`, the default) the host saves the VM right after this call, and
/// `host run --restore FILE` continues from its return; `tag` is yours
/// (the host shows it in nothing but `--trace-kvm`). Without
/// `--snapshot` it is one exit and nothing more.
pub fn snapshot(tag: u32) {
    raw::snapshot(tag)
}
