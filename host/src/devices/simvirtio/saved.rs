//! The device's state in a snapshot: the protocol's phase, its registers,
//! the line being received and the counters. The queues themselves live in
//! guest memory, which the snapshot holds; how the host serves the device
//! (notify exits, polling, a device thread) and its IRQ eventfd belong to
//! the restoring process.

use super::device::{DeviceStats, Phase, SimVirtio};
use crate::wire::{Dec, Enc, WireError};

impl SimVirtio {
    /// Appends the device's state to a snapshot's bytes.
    pub fn save(&self, e: &mut Enc) {
        e.u8(match self.phase {
            Phase::Start => 0,
            Phase::Reset => 1,
            Phase::Config => 2,
            Phase::Ready => 3,
        });
        e.u8(self.device_status);
        e.u8(self.driver_status);
        e.u8(self.queue_selector);
        e.u8(self.q_ctl[0]);
        e.u8(self.q_ctl[1]);
        e.u64(self.line_len);
        e.u64(self.consumed);
        e.u8(self.int_status);
        e.u8(u8::from(self.irq_on));
        let s = &self.stats;
        for v in [
            s.tx_bytes,
            s.rx_bytes,
            s.notifies,
            s.polls,
            s.errors,
            s.interrupts,
        ] {
            e.u64(v);
        }
    }

    /// Takes the state `save` wrote (this device keeps how it is served).
    pub fn load(&mut self, d: &mut Dec) -> Result<(), WireError> {
        self.phase = match d.u8("SIMVIRTIO phase")? {
            0 => Phase::Start,
            1 => Phase::Reset,
            2 => Phase::Config,
            3 => Phase::Ready,
            v => {
                return Err(WireError::Bad {
                    what: "SIMVIRTIO phase",
                    value: u64::from(v),
                });
            }
        };
        self.device_status = d.u8("SIMVIRTIO device status")?;
        self.driver_status = d.u8("SIMVIRTIO driver status")?;
        self.queue_selector = d.u8("SIMVIRTIO queue selector")?;
        self.q_ctl = [d.u8("SIMVIRTIO Q0 control")?, d.u8("SIMVIRTIO Q1 control")?];
        self.line_len = d.u64("SIMVIRTIO line length")?;
        self.consumed = d.u64("SIMVIRTIO bytes taken")?;
        self.int_status = d.u8("SIMVIRTIO interrupt status")?;
        self.irq_on = d.bool("SIMVIRTIO interrupts on")?;
        let mut v = [0u64; 6];
        for x in &mut v {
            *x = d.u64("SIMVIRTIO counters")?;
        }
        self.stats = DeviceStats {
            tx_bytes: v[0],
            rx_bytes: v[1],
            notifies: v[2],
            polls: v[3],
            errors: v[4],
            interrupts: v[5],
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Serving;

    #[test]
    fn the_state_round_trips_and_bad_bytes_are_errors() {
        let mut a = SimVirtio::new(Serving::Exits, None);
        a.phase = Phase::Ready;
        a.device_status = 4;
        a.line_len = 7;
        a.stats.tx_bytes = 13;
        a.irq_on = true;
        let mut e = Enc::default();
        a.save(&mut e);
        let mut b = SimVirtio::new(Serving::Polling, None);
        let mut d = Dec::new(&e.buf);
        b.load(&mut d).unwrap();
        d.end().unwrap();
        assert_eq!(b.phase, Phase::Ready);
        assert_eq!((b.device_status, b.line_len, b.irq_on), (4, 7, true));
        assert_eq!(b.stats().tx_bytes, 13);
        assert!(b.polling, "how it is served stays the restorer's");
        let mut bad = e.buf.clone();
        bad[0] = 9;
        assert!(b.load(&mut Dec::new(&bad)).is_err());
        for n in 0..e.buf.len() {
            assert!(b.load(&mut Dec::new(&e.buf[..n])).is_err());
        }
    }
}
