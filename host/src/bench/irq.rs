//! `host bench`'s interrupt figures, named and measured as
//! ../shared/bench-floor/irq_floor.c's: a real-mode guest waits in
//! `sti; hlt`, its handler for vector 0x25 does `out %al, $0x80` (and, with
//! the in-kernel PIC, an end of interrupt), and the host times from the
//! injection to that exit, through this host's own KVM objects:
//!
//! - `kvm_interrupt_rtt_us`: no in-kernel controller; at the HLT exit,
//!   `Vcpu::interrupt` (KVM_INTERRUPT), then `Vcpu::run`;
//! - `irq_line_rtt_us`: KVM_CREATE_IRQCHIP; another thread raises and
//!   lowers GSI 5 with `Raiser::Line` while the vCPU sleeps in KVM's HLT;
//! - `irqfd_rtt_us`: the same through `Raiser::Irqfd`.
//!
//! Each prints p50, p99 and mean over `n` injections `gap` apart.

use super::common::{BenchError, pct, vm_with};
use crate::config::IrqChip;
use crate::x86::CpuMode;
use hypercall_abi::layout;
use kvm_ioctls::VcpuExit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The handler's port, the vector and its line (IRQ 5 on a PIC at 0x20).
const IRQ_PORT: u16 = 0x80;
const VECTOR: u32 = 0x25;
const GSI: u32 = 5;
/// Injections before the timed ones.
const WARMUP: usize = 100;

/// The guest at `layout::REAL_LOAD`: IVT[0x25] = its handler; with `pic`,
/// it programs the PIC (vectors 0x20-0x27, only IRQ 5 unmasked); then
/// `sti; 1: hlt; jmp 1b`. The handler: `out %al, $0x80`, with `pic` an
/// end of interrupt, `iret`.
pub fn guest(pic: bool) -> Vec<u8> {
    let mut c = vec![
        0xfa, // cli
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0x8e, 0xd0, // mov ss, ax
        0xbc, 0x00, 0x80, // mov sp, 0x8000
    ];
    let ivt_at = c.len() + 4; // the handler's offset goes here
    c.extend_from_slice(&[0xc7, 0x06, 0x94, 0x00, 0, 0]); // mov word [0x94], handler
    c.extend_from_slice(&[0xc7, 0x06, 0x96, 0x00, 0, 0]); // mov word [0x96], 0
    if pic {
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xdf),
        ] {
            c.extend_from_slice(&[0xb0, v, 0xe6, port]); // mov al, v; out port, al
        }
    }
    c.extend_from_slice(&[0xfb, 0xf4, 0xeb, 0xfd]); // sti; 1: hlt; jmp 1b
    let handler = layout::REAL_LOAD as usize + c.len();
    c[ivt_at..ivt_at + 2].copy_from_slice(&(handler as u16).to_le_bytes());
    c.extend_from_slice(&[0xe6, IRQ_PORT as u8]); // out 0x80, al
    if pic {
        c.extend_from_slice(&[0xb0, 0x20, 0xe6, 0x20]); // EOI
    }
    c.push(0xcf); // iret
    c
}

fn is_irq_out(e: &VcpuExit<'_>) -> bool {
    matches!(e, VcpuExit::IoOut(IRQ_PORT, _))
}

fn report(out: &mut dyn std::io::Write, metric: &str, mut lat: Vec<f64>) -> Result<(), BenchError> {
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    writeln!(out, "{metric}_p50 {:.2} us", pct(&mut lat, 0.5))?;
    writeln!(out, "{metric}_p99 {:.2} us", pct(&mut lat, 0.99))?;
    writeln!(out, "{metric}_mean {mean:.2} us")?;
    out.flush()?;
    Ok(())
}

/// The three figures: `n` injections, `gap` apart.
pub fn run(
    out: &mut dyn std::io::Write,
    n: usize,
    gap: Duration,
    kvm_path: &std::path::Path,
) -> Result<(), BenchError> {
    report(out, "kvm_interrupt_rtt", kvm_interrupt(n, gap, kvm_path)?)?;
    report(out, "irq_line_rtt", irqchip(true, n, gap, kvm_path)?)?;
    report(out, "irqfd_rtt", irqchip(false, n, gap, kvm_path)?)?;
    for (metric, bound) in [("ioeventfd_pio_ns", true), ("userspace_pio_ns", false)] {
        writeln!(
            out,
            "{metric} {:.0} ns",
            notify_loop(bound, NOTIFY_LOOPS, kvm_path)?
        )?;
        out.flush()?;
    }
    Ok(())
}

/// `out`s of the notification loop (irq_floor's default, and CX's limit).
const NOTIFY_LOOPS: u16 = 50_000;
/// The loop's port, and the port that says it is done.
const NOTE_PORT: u8 = 0x90;
const DONE_PORT: u16 = 0xf4;

/// ns per `out` of `mov cx, loops; 1: out NOTE_PORT, al; dec cx; jnz 1b;
/// out DONE_PORT, al; hlt`, from the first entry to the DONE exit, with
/// NOTE_PORT bound to an eventfd (`bound`) or not (an exit each).
fn notify_loop(bound: bool, loops: u16, kvm_path: &std::path::Path) -> Result<f64, BenchError> {
    let [lo, hi] = loops.to_le_bytes();
    let code = [
        0xb9,
        lo,
        hi, // mov cx, loops
        0xe6,
        NOTE_PORT, // 1: out NOTE_PORT, al
        0x49,      // dec cx
        0x75,
        0xfb, // jnz 1b
        0xe6,
        DONE_PORT as u8, // out DONE_PORT, al
        0xf4,            // hlt
    ];
    let mut vm = vm_with(&code, CpuMode::Real, IrqChip::None, kvm_path)?;
    let fd = match bound {
        true => Some(
            vm.vm_object()
                .ioeventfd_pio(u16::from(NOTE_PORT), &mut None)
                .map_err(|e| BenchError::Kvm(e.to_string()))?,
        ),
        false => None,
    };
    let vcpu = vm.vcpu_mut();
    let (t0, mut exits) = (Instant::now(), 0u64);
    loop {
        match vcpu.run() {
            Ok(VcpuExit::IoOut(DONE_PORT, _)) => break,
            Ok(VcpuExit::IoOut(p, _)) if p == u16::from(NOTE_PORT) => exits += 1,
            Err(e) if e.errno() == libc::EINTR => {}
            Ok(e) => {
                return Err(BenchError::Kvm(format!(
                    "unexpected exit {e:?} in the notification loop"
                )));
            }
            Err(e) => return Err(BenchError::Kvm(format!("KVM_RUN: {e}"))),
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / f64::from(loops);
    let counted = fd.map(|f| f.read().unwrap_or(0));
    match counted {
        Some(c) if c != u64::from(loops) => Err(BenchError::Kvm(format!(
            "the ioeventfd counted {c} notifications of {loops}"
        ))),
        None if exits != u64::from(loops) => Err(BenchError::Kvm(format!(
            "{exits} exits for {loops} notifications"
        ))),
        _ => Ok(ns),
    }
}

fn kvm_interrupt(
    n: usize,
    gap: Duration,
    kvm_path: &std::path::Path,
) -> Result<Vec<f64>, BenchError> {
    let mut vm = vm_with(&guest(false), CpuMode::Real, IrqChip::User, kvm_path)?;
    let vcpu = vm.vcpu_mut();
    let mut lat = Vec::with_capacity(n);
    let run_err = |e: kvm_ioctls::Error| BenchError::Kvm(format!("KVM_RUN: {e}"));
    while lat.len() < n + WARMUP {
        match vcpu.run() {
            Ok(VcpuExit::Hlt) => {}
            Ok(_) => continue,
            // a signal (none is expected here): enter again
            Err(e) if e.errno() == libc::EINTR => continue,
            Err(e) => return Err(run_err(e)),
        }
        std::thread::sleep(gap);
        let t0 = Instant::now();
        if !vcpu.can_take_interrupt() {
            return Err(BenchError::Kvm(
                "the guest cannot take an interrupt at its HLT".into(),
            ));
        }
        vcpu.interrupt(VECTOR, &mut None)
            .map_err(|e| BenchError::Kvm(e.to_string()))?;
        let arrived = is_irq_out(&vcpu.run().map_err(run_err)?);
        let us = t0.elapsed().as_secs_f64() * 1e6;
        if !arrived {
            return Err(BenchError::Kvm(
                "the injected interrupt did not reach the handler".into(),
            ));
        }
        lat.push(us);
    }
    Ok(lat.split_off(WARMUP))
}

fn irqchip(
    line: bool,
    n: usize,
    gap: Duration,
    kvm_path: &std::path::Path,
) -> Result<Vec<f64>, BenchError> {
    let mut vm = vm_with(&guest(true), CpuMode::Real, IrqChip::Kernel, kvm_path)?;
    let raiser = vm
        .vm_object()
        .raiser(GSI, line, &mut None)
        .map_err(|e| BenchError::Kvm(e.to_string()))?;
    let vcpu = vm.vcpu_mut();
    let t_base = Instant::now();
    let (seq, t_recv, stop) = (AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false));
    std::thread::scope(|s| {
        let h = s.spawn(|| -> Result<(), BenchError> {
            loop {
                match vcpu.run() {
                    Ok(e) if is_irq_out(&e) => {
                        t_recv.store(t_base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        seq.fetch_add(1, Ordering::Release);
                        if stop.load(Ordering::Acquire) {
                            return Ok(());
                        }
                    }
                    Ok(e) => return Err(BenchError::Kvm(format!("unexpected exit {e:?}"))),
                    Err(e) if e.errno() == libc::EINTR => {}
                    Err(e) => return Err(BenchError::Kvm(format!("KVM_RUN: {e}"))),
                }
            }
        });
        // the guest programs its PIC and halts
        std::thread::sleep(Duration::from_millis(20));
        let r = raise_all(&raiser, n, gap, (&seq, &t_recv, &stop), t_base, &h);
        if r.is_err() {
            // wake the vCPU once more so that its thread sees `stop`
            stop.store(true, Ordering::Release);
            let _ = raiser.raise(&mut None);
        }
        let joined = h
            .join()
            .map_err(|_| BenchError::Kvm("the vCPU thread panicked".into()));
        let lat = r?;
        joined??;
        Ok(lat)
    })
}

type Shared<'a> = (&'a AtomicU64, &'a AtomicU64, &'a AtomicBool);

/// Raises the line `n` (+ warm-up) times, `gap` apart; each time waits for
/// the handler's exit (seen by the vCPU thread `h`).
fn raise_all(
    raiser: &crate::kvm::Raiser,
    n: usize,
    gap: Duration,
    (seq, t_recv, stop): Shared<'_>,
    t_base: Instant,
    h: &std::thread::ScopedJoinHandle<'_, Result<(), BenchError>>,
) -> Result<Vec<f64>, BenchError> {
    {
        let mut lat = Vec::with_capacity(n);
        for i in 0..=n + WARMUP {
            if i == n + WARMUP {
                stop.store(true, Ordering::Release);
            }
            std::thread::sleep(gap);
            let before = seq.load(Ordering::Acquire);
            let t0 = t_base.elapsed().as_nanos() as u64;
            raiser
                .raise(&mut None)
                .map_err(|e| BenchError::Kvm(e.to_string()))?;
            let deadline = Instant::now() + Duration::from_secs(5);
            while seq.load(Ordering::Acquire) == before {
                if h.is_finished() || Instant::now() > deadline {
                    return Err(BenchError::Kvm(
                        "the raised line did not reach the handler".into(),
                    ));
                }
                std::hint::spin_loop();
            }
            if (WARMUP..n + WARMUP).contains(&i) {
                lat.push(t_recv.load(Ordering::Relaxed).saturating_sub(t0) as f64 / 1e3);
            }
        }
        Ok(lat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_is_where_the_ivt_says() {
        for pic in [false, true] {
            let c = guest(pic);
            let h = usize::from(u16::from_le_bytes([c[14], c[15]])) - layout::REAL_LOAD as usize;
            assert_eq!(&c[h..h + 2], &[0xe6, 0x80], "pic {pic}");
            assert_eq!(*c.last().unwrap(), 0xcf);
            assert_eq!(&c[h - 4..h], &[0xfb, 0xf4, 0xeb, 0xfd]);
        }
    }
}
