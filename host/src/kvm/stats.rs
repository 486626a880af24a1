//! KVM's own counters of a VM and of each vCPU: the binary statistics
//! (KVM_GET_STATS_FD, Documentation/virt/kvm/api.rst 4.134). The fd is
//! opened before the run (the vCPU thread's seccomp filter then allows
//! `pread64` on it and nothing else), read at its end: a header, one
//! descriptor per counter (its name, type, unit, size and offset), then
//! the values. What is read is checked like any input; `parse` needs no
//! KVM.

use super::error::KvmError;
use serde::Serialize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// `_IO(KVMIO, 0xce)`.
const KVM_GET_STATS_FD: libc::c_ulong = 0xae_ce;
/// The most counters, and the longest name, a block may claim.
const MAX_DESC: u32 = 4096;
const MAX_NAME: u32 = 1024;
/// The most values one counter may hold (histograms).
const MAX_SIZE: u16 = 1024;

/// One counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KvmStat {
    /// KVM's name (`exits`, `io_exits`, `halt_exits`, ...).
    pub name: String,
    /// cumulative, instant, peak, linear_hist or log_hist.
    pub kind: &'static str,
    /// none, bytes, seconds, cycles or boolean.
    pub unit: &'static str,
    /// The value (several for a histogram).
    pub values: Vec<u64>,
}

/// The counters of one VM or vCPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct KvmStats {
    /// KVM's id string for it (`kvm-<pid>/vcpu-<n>`).
    pub id: String,
    /// Its counters, in KVM's order.
    pub stats: Vec<KvmStat>,
}

impl KvmStats {
    /// The counters that are not zero, as `name value` pairs (a
    /// histogram's values summed).
    pub fn nonzero(&self) -> String {
        let v: Vec<String> = self
            .stats
            .iter()
            .filter_map(|s| {
                let sum: u64 = s.values.iter().fold(0u64, |a, &b| a.saturating_add(b));
                (sum != 0).then(|| format!("{} {sum}", s.name))
            })
            .collect();
        match v.is_empty() {
            true => "(all zero)".into(),
            false => v.join(", "),
        }
    }

    /// The value of the single-valued counter `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.stats
            .iter()
            .find(|s| s.name == name && s.values.len() == 1)
            .map(|s| s.values[0])
    }
}

/// A VM's or vCPU's statistics fd.
#[derive(Debug)]
pub struct StatsFd(std::fs::File);

impl StatsFd {
    /// KVM_GET_STATS_FD on the VM or vCPU whose fd is `of`.
    pub fn open(of: &impl AsRawFd) -> Result<StatsFd, KvmError> {
        // SAFETY: KVM_GET_STATS_FD on our own VM or vCPU fd takes no
        // argument and returns a new fd.
        let fd = unsafe { libc::ioctl(of.as_raw_fd(), KVM_GET_STATS_FD, 0) };
        if fd < 0 {
            return Err(KvmError::ioctl("KVM_GET_STATS_FD")(
                kvm_ioctls::Error::last(),
            ));
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(StatsFd(std::fs::File::from(unsafe {
            OwnedFd::from_raw_fd(fd)
        })))
    }

    /// The fd number (the seccomp filter allows `pread64` on it).
    pub fn raw(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// Reads every counter now.
    pub fn read(&self) -> Result<KvmStats, String> {
        let mut head = [0u8; 24];
        self.0
            .read_exact_at(&mut head, 0)
            .map_err(|e| format!("the header: {e}"))?;
        let w = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (name_size, num_desc, id_off, desc_off, data_off) = (w(4), w(8), w(12), w(16), w(20));
        if num_desc > MAX_DESC || name_size > MAX_NAME {
            return Err(format!(
                "{num_desc} counters with names of {name_size} bytes"
            ));
        }
        let mut id = vec![0u8; name_size as usize];
        self.0
            .read_exact_at(&mut id, u64::from(id_off))
            .map_err(|e| format!("the id: {e}"))?;
        let mut descs = vec![0u8; (num_desc * (16 + name_size)) as usize];
        self.0
            .read_exact_at(&mut descs, u64::from(desc_off))
            .map_err(|e| format!("the descriptors: {e}"))?;
        let data_len = data_size(&descs, name_size)?;
        let mut data = vec![0u8; data_len];
        self.0
            .read_exact_at(&mut data, u64::from(data_off))
            .map_err(|e| format!("the values: {e}"))?;
        parse(&id, &descs, name_size, &data)
    }
}

/// The descriptor `i` of a block: (flags, size, offset, name bytes).
fn desc(descs: &[u8], name_size: u32, i: usize) -> Option<(u32, u16, u32, &[u8])> {
    let len = 16 + name_size as usize;
    let d = descs.get(i * len..(i + 1) * len)?;
    let u32_at = |at: usize| u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    Some((
        u32_at(0),
        u16::from_le_bytes([d[6], d[7]]),
        u32_at(8),
        &d[16..],
    ))
}

/// The bytes the values of a descriptor block take.
fn data_size(descs: &[u8], name_size: u32) -> Result<usize, String> {
    let n = descs.len() / (16 + name_size as usize);
    (0..n).try_fold(0usize, |end, i| {
        let (_, size, offset, _) = desc(descs, name_size, i).ok_or("a short descriptor")?;
        if size > MAX_SIZE {
            return Err(format!("a counter of {size} values"));
        }
        Ok(end.max(offset as usize + 8 * usize::from(size)))
    })
}

/// The counters from a stats fd's id, descriptor block and values.
pub fn parse(id: &[u8], descs: &[u8], name_size: u32, data: &[u8]) -> Result<KvmStats, String> {
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let n = descs.len() / (16 + name_size as usize);
    let mut stats = Vec::with_capacity(n);
    for i in 0..n {
        let (flags, size, offset, name) = desc(descs, name_size, i).ok_or("a short descriptor")?;
        let at = offset as usize;
        let values = (0..usize::from(size))
            .map(|k| {
                data.get(at + 8 * k..at + 8 * k + 8)
                    .map(|v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])))
                    .ok_or_else(|| format!("counter {} past the values", text(name)))
            })
            .collect::<Result<Vec<u64>, String>>()?;
        stats.push(KvmStat {
            name: text(name),
            kind: match flags & 0xf {
                0 => "cumulative",
                1 => "instant",
                2 => "peak",
                3 => "linear_hist",
                4 => "log_hist",
                _ => "?",
            },
            unit: match (flags >> 4) & 0xf {
                0 => "none",
                1 => "bytes",
                2 => "seconds",
                3 => "cycles",
                4 => "boolean",
                _ => "?",
            },
            values,
        });
    }
    Ok(KvmStats {
        id: text(id),
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(names: &[(&str, u32, u16, u32)], name_size: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for &(name, flags, size, offset) in names {
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&0i16.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&offset.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(name_size as usize, 0);
            b.extend_from_slice(&n);
        }
        b
    }

    #[test]
    fn counters_are_read_from_their_descriptors_and_bad_ones_refused() {
        let d = block(&[("exits", 0, 1, 0), ("halt_wait_hist", 4, 2, 8)], 48);
        let data: Vec<u8> = [15u64, 3, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(data_size(&d, 48), Ok(24));
        let s = parse(b"kvm-1/vcpu-0\0", &d, 48, &data).unwrap();
        assert_eq!(s.id, "kvm-1/vcpu-0");
        assert_eq!(s.get("exits"), Some(15));
        assert_eq!(s.stats[1].kind, "log_hist");
        assert_eq!(s.stats[1].values, vec![3, 4]);
        // a value past the data, a short block, a huge counter
        assert!(parse(b"", &d, 48, &data[..16]).is_err());
        assert!(data_size(&block(&[("x", 0, 2000, 0)], 48), 48).is_err());
    }
}
