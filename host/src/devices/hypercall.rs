//! Hypercall dispatch: the access is checked against the row's transport,
//! then `hypercall_abi::serve` calls this host's typed handler for it (the
//! `Handlers` trait, one method per row of the table), so a hypercall
//! added to the ABI without a handler here, or with a handler taking
//! another block type, does not compile.
//!
//! Guests are hostile: every pointer is checked through vm-memory's
//! bounds-checked accessors. A bad argument is reported on the host's
//! diagnostic stream in one line, the guest gets an error status, and the
//! VM goes on.

use crate::diag::{HostError, host_line};
use crate::stats::{Dir, ExitStats};
use crate::x86::translate::{self, Paging};
use hypercall_abi::block::Block;
use hypercall_abi::serve::{Handlers, serve};
use hypercall_abi::{GvaToHvaArgs, HcStatus, Hypercall, MAX_STR_LEN, PrintStrArgs, layout};
use std::io::Write;
use std::mem::size_of;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// One port access, copied out of `kvm_run`.
#[derive(Debug, Clone, Copy)]
pub struct Io {
    /// Direction.
    pub dir: Dir,
    /// Access size in bytes (1, 2 or 4).
    pub size: usize,
    /// The value written (`out`), zero-extended.
    pub value: u32,
}

impl Io {
    /// An `out` of `data` (1, 2 or 4 bytes, little-endian; longer data is
    /// cut to its first 4 bytes).
    #[inline]
    pub fn out(data: &[u8]) -> Io {
        let mut v = [0u8; 4];
        let n = data.len().min(4);
        v[..n].copy_from_slice(&data[..n]);
        Io {
            dir: Dir::Out,
            size: data.len(),
            value: u32::from_le_bytes(v),
        }
    }

    /// An `in` of `size` bytes.
    #[inline]
    pub fn input(size: usize) -> Io {
        Io {
            dir: Dir::In,
            size,
            value: 0,
        }
    }
}

/// Bad hypercall arguments and accesses seen on one vCPU: all are counted;
/// an access of the wrong width or direction is reported once per
/// hypercall (a guest that repeats it cannot flood the host's output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestErrors {
    /// Errors so far.
    pub count: u64,
    /// Hypercalls (bit = number) whose misuse was reported already.
    misuse_reported: u64,
}

/// What a hypercall handler may use.
pub struct Env<'a> {
    /// Guest memory.
    pub mem: &'a GuestMemoryMmap,
    /// Exit counts so far (this exit included).
    pub stats: &'a ExitStats,
    /// The guest's output (stdout).
    pub out: &'a mut dyn Write,
    /// The host's diagnostics (stderr).
    pub diag: &'a mut dyn Write,
    /// Guest errors reported so far.
    pub guest_errors: &'a mut GuestErrors,
}

impl Env<'_> {
    /// Reports a guest error in one line, after the guest's output so far.
    fn guest_error(&mut self, hc: Hypercall, msg: std::fmt::Arguments) -> Result<(), HostError> {
        self.guest_errors.count += 1;
        host_line(
            self.out,
            self.diag,
            format_args!("guest error: {}: {msg}", hc.name()),
        )
    }
}

/// Serves one hypercall. `paging` is asked for the guest's control
/// registers only by hypercalls that walk page tables. Returns the value for
/// an `in` (all ones when there is none).
pub fn dispatch(
    hc: Hypercall,
    io: Io,
    env: &mut Env,
    paging: impl FnOnce() -> Result<Paging, HostError>,
) -> Result<u32, HostError> {
    if !hc.transport().accepts(io.dir == Dir::Out, io.size) {
        let dir = if io.dir == Dir::In { "in" } else { "out" };
        let bit = 1u64 << (hc.nr() % 64);
        if env.guest_errors.misuse_reported & bit != 0 {
            env.guest_errors.count += 1;
            return Ok(u32::MAX);
        }
        env.guest_errors.misuse_reported |= bit;
        env.guest_error(
            hc,
            format_args!(
                "port {:#x} takes `{}`, got a {}-byte {dir}: ignored",
                hc.port(),
                hc.transport().instruction(),
                io.size
            ),
        )?;
        return Ok(u32::MAX);
    }
    serve(
        &mut Served {
            env,
            paging: Some(paging),
        },
        hc,
        io.value,
    )
}

/// The host's handlers, one per hypercall of the table (`Handlers` is
/// generated from it): a handler for a new hypercall is missing, or takes
/// another block type than its row declares, and this does not compile.
struct Served<'e, 'a, P> {
    env: &'e mut Env<'a>,
    /// Asked once, by the one hypercall that walks page tables.
    paging: Option<P>,
}

impl<P: FnOnce() -> Result<Paging, HostError>> Handlers for Served<'_, '_, P> {
    type Error = HostError;

    /// Reads block `B` from guest memory at `gpa`, or reports in one line
    /// that it lies outside. `B`'s layout is its `abi_block!` declaration.
    fn read_block<B: Block>(&mut self, hc: Hypercall, gpa: u32) -> Result<Option<B>, HostError> {
        let at = GuestAddress(u64::from(gpa));
        let mut b = B::default();
        if self.env.mem.read_slice(b.as_bytes_mut(), at).is_err() {
            self.env.guest_error(
                hc,
                format_args!(
                    "argument block at {:#x} ({} bytes) is outside guest memory",
                    at.0,
                    size_of::<B>()
                ),
            )?;
            return Ok(None);
        }
        Ok(Some(b))
    }

    fn write_block<B: Block>(&mut self, gpa: u32, b: &B) -> Result<(), HostError> {
        // It was read from there, so it fits.
        let _ = self
            .env
            .mem
            .write_slice(b.as_bytes(), GuestAddress(u64::from(gpa)));
        Ok(())
    }

    fn print8bit(&mut self, byte: u8) -> Result<(), HostError> {
        Ok(self.env.out.write_all(&[byte])?)
    }

    fn print32bit(&mut self, value: u32) -> Result<(), HostError> {
        Ok(writeln!(self.env.out, "{value}")?)
    }

    fn num_exits(&mut self) -> Result<u32, HostError> {
        Ok(self.env.stats.total() as u32)
    }

    fn print_str(&mut self, b: &mut PrintStrArgs) -> Result<(), HostError> {
        (b.status, b.len) = match print_guest_str(self.env, b.addr)? {
            Ok(len) => (HcStatus::Ok as i32, len),
            Err(status) => (status as i32, 0),
        };
        Ok(())
    }

    fn num_exits_by_type(&mut self) -> Result<u32, HostError> {
        num_exits_by_type(self.env)
    }

    fn gva_to_hva(&mut self, b: &mut GvaToHvaArgs) -> Result<(), HostError> {
        let paging = match self.paging.take() {
            Some(p) => p()?,
            None => return Err(HostError::Internal("gva_to_hva served twice in one exit")),
        };
        (b.status, b.hva) = match translate::gva_to_hva(self.env.mem, &paging, b.gva) {
            Ok((_, hva)) => (HcStatus::Ok as i32, hva),
            Err(_) => {
                self.env.out.write_all(b"Invalid GVA\n")?;
                (HcStatus::InvalidGva as i32, 0)
            }
        };
        Ok(())
    }

    fn snapshot(&mut self, _tag: u32) -> Result<(), HostError> {
        // the exit loop stops here with `--snapshot-at call`; otherwise
        // the call is a counted exit and nothing more
        Ok(())
    }

    fn host_cpuid(&mut self) -> Result<u32, HostError> {
        // SAFETY: sched_getcpu has no preconditions (glibc reads it from
        // rseq or the vDSO, or makes the getcpu system call).
        let cpu = unsafe { libc::sched_getcpu() };
        Ok(u32::try_from(cpu).unwrap_or(u32::MAX))
    }
}

/// Where a guest string ends: `Ok(len)` or the status and reason it fails.
fn find_nul(mem: &GuestMemoryMmap, addr: u64) -> Result<u32, (HcStatus, String)> {
    let limit = u64::from(MAX_STR_LEN) + 1;
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < limit {
        let at = addr.checked_add(done).map(GuestAddress);
        let avail = at
            .filter(|&a| mem.address_in_range(a))
            .map(|a| mem.last_addr().0 - a.0 + 1)
            .unwrap_or(0);
        if avail == 0 {
            let why = if done == 0 {
                format!("string at {addr:#x} is outside guest memory")
            } else {
                format!("string at {addr:#x} runs past the end of guest memory without a NUL")
            };
            return Err((HcStatus::BadPointer, why));
        }
        let n = (chunk.len() as u64).min(avail).min(limit - done) as usize;
        let at = GuestAddress(addr + done);
        if mem.read_slice(&mut chunk[..n], at).is_err() {
            return Err((
                HcStatus::BadPointer,
                format!("string at {addr:#x} cannot be read"),
            ));
        }
        if let Some(i) = chunk[..n].iter().position(|&c| c == 0) {
            return Ok((done + i as u64) as u32);
        }
        done += n as u64;
    }
    Err((
        HcStatus::Unterminated,
        format!("string at {addr:#x} has no NUL within {MAX_STR_LEN} bytes"),
    ))
}

/// Copies the NUL-terminated guest string at `addr` to the guest's output
/// (in chunks, straight from guest memory); `Ok(Err(status))` when the
/// string is bad, after one report line.
fn print_guest_str(env: &mut Env, addr: u64) -> Result<Result<u32, HcStatus>, HostError> {
    match find_nul(env.mem, addr) {
        Ok(len) => {
            let mut buf = [0u8; 512];
            let mut off = 0u64;
            while off < u64::from(len) {
                let n = (buf.len() as u64).min(u64::from(len) - off) as usize;
                if env
                    .mem
                    .read_slice(&mut buf[..n], GuestAddress(addr + off))
                    .is_err()
                {
                    break;
                }
                env.out.write_all(&buf[..n])?;
                off += n as u64;
            }
            Ok(Ok(len))
        }
        Err((status, why)) => {
            env.guest_error(Hypercall::PrintStr, format_args!("{why}"))?;
            Ok(Err(status))
        }
    }
}

fn num_exits_by_type(env: &mut Env) -> Result<u32, HostError> {
    let mut text = [0u8; 64];
    let mut cur = std::io::Cursor::new(&mut text[..]);
    // 2 x u64 in decimal plus the labels always fit in 63 bytes.
    let _ = write!(
        cur,
        "IO in: {}\nIO out: {}\n\0",
        env.stats.io_in(),
        env.stats.io_out()
    );
    let n = cur.position() as usize;
    // The result page is host-reserved guest RAM: always inside memory.
    let _ = env
        .mem
        .write_slice(&text[..n], GuestAddress(layout::RESULT_PAGE));
    Ok(layout::RESULT_PAGE as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::paging;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap()
    }

    fn call(
        m: &GuestMemoryMmap,
        stats: &ExitStats,
        hc: Hypercall,
        io: Io,
    ) -> (u32, String, String, u64) {
        let (mut out, mut diag, mut errs) = (Vec::new(), Vec::new(), GuestErrors::default());
        let mut env = Env {
            mem: m,
            stats,
            out: &mut out,
            diag: &mut diag,
            guest_errors: &mut errs,
        };
        let v = dispatch(hc, io, &mut env, || {
            Ok(crate::x86::CpuMode::Long.start_paging())
        })
        .unwrap();
        (
            v,
            String::from_utf8_lossy(&out).into(),
            String::from_utf8_lossy(&diag).into(),
            errs.count,
        )
    }

    fn out32(value: u32) -> Io {
        Io {
            dir: Dir::Out,
            size: 4,
            value,
        }
    }

    #[test]
    fn values_and_counts() {
        let m = mem();
        let mut s = ExitStats::default();
        s.record_io(Dir::Out, 0xe9);
        s.record_io(Dir::In, Hypercall::NumExits.port());
        let io8 = Io {
            dir: Dir::Out,
            size: 1,
            value: b'A' as u32,
        };
        assert_eq!(call(&m, &s, Hypercall::Print8bit, io8).1, "A");
        assert_eq!(
            call(&m, &s, Hypercall::Print32bit, out32(u32::MAX)).1,
            "4294967295\n"
        );
        let in32 = Io {
            dir: Dir::In,
            size: 4,
            value: 0,
        };
        assert_eq!(call(&m, &s, Hypercall::NumExits, in32).0, 2);
        let (p, ..) = call(&m, &s, Hypercall::NumExitsByType, in32);
        let mut text = [0u8; 20];
        m.read_slice(&mut text, GuestAddress(u64::from(p))).unwrap();
        assert_eq!(&text, b"IO in: 1\nIO out: 1\n\0");
        // wrong width: reported, ignored
        let (v, out, diag, errs) = call(&m, &s, Hypercall::NumExits, io8);
        assert_eq!((v, out.as_str(), errs), (u32::MAX, "", 1));
        assert_eq!(
            diag,
            "host: guest error: num_exits: port 0x502 takes `in eax, dx`, got a 1-byte out: ignored\n"
        );
    }

    fn str_block(m: &GuestMemoryMmap, addr: u64) -> u64 {
        let block = 0x9000;
        m.write_obj(addr, GuestAddress(block)).unwrap();
        m.write_obj(0xffff_ffffu64, GuestAddress(block + 8))
            .unwrap();
        block
    }

    fn status_len(m: &GuestMemoryMmap, block: u64) -> (i32, u32) {
        (
            m.read_obj(GuestAddress(block + 12)).unwrap(),
            m.read_obj(GuestAddress(block + 8)).unwrap(),
        )
    }

    #[test]
    fn print_str_good_and_bad() {
        let m = mem();
        let s = ExitStats::default();
        m.write_slice(b"hi there\n\0", GuestAddress(0x20_000))
            .unwrap();
        let b = str_block(&m, 0x20_000);
        let (_, out, diag, errs) = call(&m, &s, Hypercall::PrintStr, out32(b as u32));
        assert_eq!((out.as_str(), diag.as_str(), errs), ("hi there\n", "", 0));
        assert_eq!(status_len(&m, b), (0, 9));

        // outside memory
        let b = str_block(&m, 0xffff_0000);
        let (_, out, diag, _) = call(&m, &s, Hypercall::PrintStr, out32(b as u32));
        assert_eq!(out, "");
        assert_eq!(
            diag,
            "host: guest error: print_str: string at 0xffff0000 is outside guest memory\n"
        );
        assert_eq!(status_len(&m, b), (HcStatus::BadPointer as i32, 0));

        // straddling the end of memory
        let end = 2 << 20;
        m.write_slice(b"xyz", GuestAddress(end - 3)).unwrap();
        let b = str_block(&m, end - 3);
        let (_, _, diag, _) = call(&m, &s, Hypercall::PrintStr, out32(b as u32));
        assert!(
            diag.contains("runs past the end of guest memory without a NUL"),
            "{diag}"
        );
        assert_eq!(status_len(&m, b).0, HcStatus::BadPointer as i32);

        // no NUL within the limit
        m.write_slice(&[b'a'; 5000], GuestAddress(0x30_000))
            .unwrap();
        let b = str_block(&m, 0x30_000);
        let (_, out, diag, _) = call(&m, &s, Hypercall::PrintStr, out32(b as u32));
        assert_eq!(out, "");
        assert!(diag.contains("has no NUL within 4096 bytes"), "{diag}");
        assert_eq!(status_len(&m, b).0, HcStatus::Unterminated as i32);

        // exactly MAX_STR_LEN bytes is fine
        m.write_slice(&[0], GuestAddress(0x30_000 + u64::from(MAX_STR_LEN)))
            .unwrap();
        let (_, out, _, errs) = call(&m, &s, Hypercall::PrintStr, out32(b as u32));
        assert_eq!((out.len(), errs), (MAX_STR_LEN as usize, 0));

        // the block itself outside memory / straddling the end
        for block in [0xffff_fff0u32, (end - 8) as u32] {
            let (_, _, diag, errs) = call(&m, &s, Hypercall::PrintStr, out32(block));
            assert_eq!(errs, 1);
            assert!(diag.contains("argument block at"), "{diag}");
        }
    }

    #[test]
    fn gva_to_hva_valid_and_invalid() {
        let m = mem();
        paging::build_identity_map(&m, 2 << 20, 1, false).unwrap();
        let s = ExitStats::default();
        let block = 0x9000u64;
        for (gva, ok) in [
            (0x10_0123u64, true),
            (0xdead_0000_0000, false),
            (3 << 20, false),
        ] {
            m.write_obj(gva, GuestAddress(block)).unwrap();
            let (_, out, diag, _) = call(&m, &s, Hypercall::GvaToHva, out32(block as u32));
            let hva: u64 = m.read_obj(GuestAddress(block + 8)).unwrap();
            let status: i32 = m.read_obj(GuestAddress(block + 16)).unwrap();
            assert_eq!(diag, "");
            if ok {
                let base = m.get_host_address(GuestAddress(0)).unwrap() as u64;
                assert_eq!((hva, status, out.as_str()), (base + gva, 0, ""));
            } else {
                assert_eq!(
                    (hva, status, out.as_str()),
                    (0, HcStatus::InvalidGva as i32, "Invalid GVA\n")
                );
            }
        }
    }
}
