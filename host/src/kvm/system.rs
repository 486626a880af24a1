//! The KVM system: /dev/kvm opened, its API version checked, and what it
//! supports.

use super::error::{KVM_API_VERSION, KvmError};
use crate::trace::{Call, Tracer, record};
use kvm_bindings::CpuId;
use kvm_ioctls::Kvm;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::OnceLock;

/// /dev/kvm, open.
pub struct System {
    kvm: Kvm,
}

impl System {
    /// Opens `path` and checks the API version (12).
    pub fn open(path: &Path, trace: &mut Option<Tracer>) -> Result<System, KvmError> {
        use std::os::unix::ffi::OsStrExt;
        let shown = path.display().to_string();
        let cpath =
            std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| KvmError::Open {
                path: shown.clone(),
                hint: "the path contains a NUL byte".into(),
            })?;
        let kvm = Kvm::new_with_path(cpath).map_err(|e| KvmError::Open {
            path: shown.clone(),
            hint: match e.errno() {
                libc::ENOENT => "no such device: KVM is not available here (is the kvm module loaded, and virtualization enabled?)".into(),
                libc::EACCES | libc::EPERM => "permission denied: add your user to the 'kvm' group or run as root".into(),
                _ => e.to_string(),
            },
        })?;
        record(trace, || {
            Call::syscall(
                "open",
                format!("\"{shown}\", O_RDWR | O_CLOEXEC"),
                kvm.as_raw_fd().to_string(),
                "open the KVM device",
            )
        });
        let v = kvm.get_api_version();
        if v != KVM_API_VERSION {
            return Err(KvmError::ApiVersion(v));
        }
        let sys = System { kvm };
        record(trace, || {
            Call::ioctl(
                sys.target(),
                "KVM_GET_API_VERSION",
                String::new(),
                KVM_API_VERSION.to_string(),
                "check the API is the stable one (12)",
            )
        });
        Ok(sys)
    }

    /// `/dev/kvm <fd>`, as the trace names it.
    pub fn target(&self) -> String {
        format!("/dev/kvm {}", self.kvm.as_raw_fd())
    }

    /// The kvm-ioctls handle.
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// The CPUID leaves this KVM can give a guest. A property of the
    /// module: asked once per process (it costs ~300 µs here), and traced
    /// only when asked.
    pub fn supported_cpuid(&self, trace: &mut Option<Tracer>) -> Result<CpuId, KvmError> {
        static SUPPORTED: OnceLock<CpuId> = OnceLock::new();
        if let Some(c) = SUPPORTED.get() {
            return Ok(c.clone());
        }
        let c = self
            .kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        record(trace, || {
            Call::ioctl(
                self.target(),
                "KVM_GET_SUPPORTED_CPUID",
                format!("{} entries max", kvm_bindings::KVM_MAX_CPUID_ENTRIES),
                format!("0, {} entries", c.as_slice().len()),
                "the CPUID leaves this KVM can give a guest (asked once per process)",
            )
        });
        Ok(SUPPORTED.get_or_init(|| c).clone())
    }
}
