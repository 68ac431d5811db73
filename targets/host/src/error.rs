//! The host backend's error type.

use core::fmt;
use rsm_hal::ErrorKind;

/// An error from the host backend: an [`ErrorKind`] and, when a system call failed, its `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostError {
    kind: ErrorKind,
    errno: Option<i32>,
}

impl HostError {
    /// An error of class `kind` that did not come from a system call.
    pub const fn new(kind: ErrorKind) -> HostError {
        HostError { kind, errno: None }
    }

    /// An error of class `kind` caused by a system call that failed with `errno`.
    pub const fn from_errno(kind: ErrorKind, errno: i32) -> HostError {
        HostError {
            kind,
            errno: Some(errno),
        }
    }

    /// The class of this error (the same as [`rsm_hal::Error::kind`]).
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The `errno` of the failed system call, if a system call failed.
    pub const fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl From<ErrorKind> for HostError {
    fn from(kind: ErrorKind) -> HostError {
        HostError::new(kind)
    }
}

impl rsm_hal::Error for HostError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::QuotaExceeded => "pinned-memory quota exceeded",
            ErrorKind::OutOfMemory => "out of memory or of lockable memory",
            ErrorKind::BadAddress => "bad address",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::OutOfRange => "offset or length outside the region",
            ErrorKind::Other => "host backend error",
        };
        f.write_str(what)?;
        if let Some(errno) = self.errno {
            write!(f, " ({})", std::io::Error::from_raw_os_error(errno))?;
        }
        Ok(())
    }
}

impl std::error::Error for HostError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_errno_and_display() {
        let e = HostError::from_errno(ErrorKind::PermissionDenied, libc::EPERM);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(rsm_hal::Error::kind(&e), ErrorKind::PermissionDenied);
        assert_eq!(e.errno(), Some(libc::EPERM));
        assert!(e.to_string().starts_with("permission denied ("));
        let q: HostError = ErrorKind::QuotaExceeded.into();
        assert_eq!(q.errno(), None);
        assert_eq!(q.to_string(), "pinned-memory quota exceeded");
    }
}
