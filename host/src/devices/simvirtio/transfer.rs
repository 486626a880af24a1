//! The device at work: TX drained, RX filled, the device table kept.

use super::device::{Phase, SimVirtio};
use super::memory::*;
use crate::diag::{HostError, host_line};
use hypercall_abi::simvirtio::{self as sv, QueueError};
use std::io::Write;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

impl SimVirtio {
    pub(super) fn table_remove(&self, mem: &GuestMemoryMmap) {
        let Some((count, a)) = table(mem) else {
            return;
        };
        let n = usize::from(count).min(a.len());
        let kept: Vec<u64> = a[..n]
            .iter()
            .copied()
            .filter(|&x| x != sv::MMIO_BASE)
            .collect();
        if kept.len() == n {
            return;
        }
        let mut b = [0u64; 10];
        b[..kept.len()].copy_from_slice(&kept);
        let _ = set_table(mem, kept.len() as u16, &b);
    }

    pub(super) fn table_add(&self, mem: &GuestMemoryMmap) -> Result<(), String> {
        let (count, mut a) = table(mem).ok_or("the device table is outside guest memory")?;
        let n = usize::from(count);
        if n > a.len() {
            return Err(format!(
                "the device table's count is {n}, more than its 10 entries"
            ));
        }
        if a[..n].contains(&sv::MMIO_BASE) {
            return Ok(());
        }
        if n == a.len() {
            return Err("the device table is full (10 devices)".into());
        }
        a[n] = sv::MMIO_BASE;
        set_table(mem, count + 1, &a)
    }

    /// Polling mode: drain TX now (on a timer tick or another exit).
    pub fn poll(
        &mut self,
        mem: &GuestMemoryMmap,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        if !self.polling {
            return Ok(());
        }
        self.stats.polls += 1;
        let before = self.mark();
        self.drain(mem, out, diag)?;
        self.signal(before)
    }

    /// `--ioeventfd`: `count` notify writes reached the device thread
    /// through KVM's eventfd (no exit): drain TX as a notify exit does.
    pub fn notified(
        &mut self,
        mem: &GuestMemoryMmap,
        count: u64,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        self.stats.notifies += count;
        let before = self.mark();
        self.drain(mem, out, diag)?;
        self.signal(before)
    }

    /// Takes every byte from TX and acts on it.
    pub(super) fn drain(
        &mut self,
        mem: &GuestMemoryMmap,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        if self.device_status & sv::DEVICE_ERROR != 0 {
            return Ok(());
        }
        let Some(mut tx) = queue(mem, sv::TX_CONTROL) else {
            return Ok(());
        };
        if let Some(h) = &mut self.history {
            h.sample(mem, &self.stats);
        }
        let r = self.drain_queue(mem, &mut tx, out, diag);
        if let Some(h) = &mut self.history {
            h.sample(mem, &self.stats);
        }
        r
    }

    fn drain_queue(
        &mut self,
        mem: &GuestMemoryMmap,
        tx: &mut sv::QueueControl,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        loop {
            let (slot, tail) = match sv::pop_slot(*tx) {
                Ok(s) => s,
                Err(QueueError::Empty | QueueError::Full) => break,
                Err(QueueError::Corrupt) => {
                    self.q_ctl[0] |= sv::CTL_ERROR;
                    return self.error(
                        out,
                        diag,
                        format_args!(
                            "TX queue indices are corrupt: head {} tail {} (queue length {})",
                            tx.head,
                            tx.tail,
                            sv::QUEUE_LEN
                        ),
                    );
                }
            };
            let b: u8 = rd(mem, sv::TX_BUFFER + u64::from(slot)).unwrap_or(0);
            tx.tail = tail;
            self.consumed += 1;
            let _ = mem.write_obj(tail, GuestAddress(sv::TX_CONTROL + 4));
            self.byte(mem, b, out, diag)?;
            if self.device_status & sv::DEVICE_ERROR != 0 {
                break;
            }
            // a command may have reset the queues
            if self.phase != Phase::Ready {
                match queue(mem, sv::TX_CONTROL) {
                    Some(t) => *tx = t,
                    None => break,
                }
            }
        }
        Ok(())
    }

    pub(super) fn byte(
        &mut self,
        mem: &GuestMemoryMmap,
        b: u8,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        match (self.phase, b) {
            (Phase::Ready, _) => {
                self.stats.tx_bytes += 1;
                out.write_all(&[b])?;
                if b == b'\n' {
                    let n = self.line_len;
                    self.line_len = 0;
                    self.reply(mem, format!("ack {n}\n").as_bytes(), out, diag)?;
                } else {
                    // only the length is kept: no buffer the guest can fill
                    self.line_len += 1;
                }
            }
            (_, sv::CMD_RESET) => {
                self.reset(mem, false);
                self.phase = Phase::Reset;
            }
            (Phase::Reset, sv::CMD_CONFIG) if u16::from(self.driver_status) == sv::DRIVER_ACK => {
                match self.table_add(mem) {
                    Ok(()) => {
                        self.phase = Phase::Config;
                        self.device_status = sv::DEVICE_CONFIG;
                    }
                    Err(why) => {
                        self.error(out, diag, format_args!("cannot list the device: {why}"))?
                    }
                }
            }
            (Phase::Reset, sv::CMD_CONFIG) => {
                let st = self.driver_status;
                self.error(
                    out,
                    diag,
                    format_args!("'C' with driver status {st:#x}: set DRIVER_ACK first"),
                )?
            }
            (Phase::Start, sv::CMD_CONFIG) => self.error(
                out,
                diag,
                format_args!("'C' before 'R': the device must be reset first"),
            )?,
            (phase, b) => self.error(
                out,
                diag,
                format_args!(
                    "byte {b:#04x} in TX while the device is {} (data is accepted after DRIVER_OK)",
                    match phase {
                        Phase::Start => "waiting for 'R'",
                        Phase::Reset => "waiting for DRIVER_ACK and 'C'",
                        Phase::Config => "waiting for DRIVER_OK",
                        Phase::Ready => "ready",
                    }
                ),
            )?,
        }
        Ok(())
    }

    /// Puts `bytes` on RX (what does not fit is dropped and reported).
    pub(super) fn reply(
        &mut self,
        mem: &GuestMemoryMmap,
        bytes: &[u8],
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        let Some(mut rx) = queue(mem, sv::RX_CONTROL) else {
            return Ok(());
        };
        for &b in bytes {
            match sv::push_slot(rx) {
                Ok((slot, head)) => {
                    let _ = mem.write_obj(b, GuestAddress(sv::RX_BUFFER + u64::from(slot)));
                    rx.head = head;
                    self.stats.rx_bytes += 1;
                }
                Err(QueueError::Full) => {
                    return host_line(
                        out,
                        diag,
                        format_args!("simvirtio: RX queue full: reply dropped"),
                    );
                }
                Err(_) => {
                    self.q_ctl[1] |= sv::CTL_ERROR;
                    return self.error(
                        out,
                        diag,
                        format_args!(
                            "RX queue indices are corrupt: head {} tail {}",
                            rx.head, rx.tail
                        ),
                    );
                }
            }
        }
        // the head is published after the bytes
        let _ = mem.write_obj(rx.head, GuestAddress(sv::RX_CONTROL));
        self.q_ctl[1] |= sv::CTL_NOTIFY;
        Ok(())
    }

    /// At the end of the run: drain what is left (polling mode) and end a
    /// last line the guest did not end.
    pub fn finish(
        &mut self,
        mem: &GuestMemoryMmap,
        out: &mut dyn Write,
        diag: &mut dyn Write,
    ) -> Result<(), HostError> {
        self.poll(mem, out, diag)?;
        if self.line_len > 0 {
            out.write_all(b"\n")?;
            self.line_len = 0;
        }
        Ok(())
    }
}
