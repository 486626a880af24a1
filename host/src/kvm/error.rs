//! Why a KVM object could not be made or used.

/// The KVM API version this host speaks.
pub const KVM_API_VERSION: i32 = 12;

/// Why a KVM object could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open {path}: {hint}")]
    Open {
        /// The device path.
        path: String,
        /// What it means.
        hint: String,
    },
    /// Unexpected KVM API version.
    #[error("KVM API version is {0}, this host needs {KVM_API_VERSION}")]
    ApiVersion(i32),
    /// A KVM ioctl failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        /// The ioctl.
        what: &'static str,
        /// errno.
        source: kvm_ioctls::Error,
    },
    /// mmap of guest memory failed.
    #[error("cannot allocate {size} of guest memory: {why}", size = crate::size::human(*.0), why = .1)]
    Alloc(u64, String),
    /// Writing the host's structures or the image failed.
    #[error("cannot write guest memory: {0}")]
    Write(String),
    /// KVM took part of a call's values and refused the rest.
    #[error("{0} refused {1}")]
    Refused(&'static str, String),
    /// A request this host cannot form.
    #[error("{0}")]
    Internal(&'static str),
}

impl KvmError {
    /// Maps a failed ioctl `what` to this error.
    pub fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
        move |source| KvmError::Ioctl { what, source }
    }
}
