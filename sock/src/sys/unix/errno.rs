//! `errno` values to normalized [`ErrorKind`]s: the one table for Unix.

use std::io;

use crate::error::{Error, ErrorKind};

/// Classifies an `errno` value.
pub(crate) fn error_kind(code: i32) -> ErrorKind {
    match code {
        libc::EACCES | libc::EPERM => ErrorKind::AccessDenied,
        libc::EADDRINUSE => ErrorKind::AddressAlreadyInUse,
        libc::EADDRNOTAVAIL => ErrorKind::AddressNotAvailable,
        libc::EAFNOSUPPORT | libc::EPFNOSUPPORT => ErrorKind::AddressFamilyNotSupported,
        libc::ECONNREFUSED => ErrorKind::ConnectionRefused,
        libc::ECONNRESET => ErrorKind::ConnectionReset,
        libc::ECONNABORTED => ErrorKind::ConnectionAborted,
        libc::EPIPE => ErrorKind::BrokenPipe,
        libc::ENOTCONN => ErrorKind::NotConnected,
        libc::EISCONN => ErrorKind::AlreadyConnected,
        libc::EALREADY => ErrorKind::AlreadyInProgress,
        libc::EDESTADDRREQ => ErrorKind::DestinationRequired,
        libc::EHOSTUNREACH | libc::EHOSTDOWN => ErrorKind::HostUnreachable,
        libc::ENETUNREACH => ErrorKind::NetworkUnreachable,
        libc::ENETRESET | libc::ENETDOWN => ErrorKind::NetworkDown,
        libc::EMSGSIZE => ErrorKind::MessageTooBig,
        libc::EMFILE | libc::ENFILE => ErrorKind::TooManyOpenFiles,
        libc::ENOBUFS | libc::ENOMEM => ErrorKind::NoBufferSpace,
        libc::ETIMEDOUT => ErrorKind::Timeout,
        libc::EBADF => ErrorKind::Closed,
        libc::ENOENT => ErrorKind::NotFound,
        libc::EOPNOTSUPP
        | libc::ENOPROTOOPT
        | libc::EPROTONOSUPPORT
        | libc::ESOCKTNOSUPPORT
        | libc::ENOSYS
        | libc::EPROTOTYPE => ErrorKind::NotSupported,
        libc::EINVAL | libc::ENOTSOCK | libc::EFAULT => ErrorKind::InvalidArgument,
        _ => ErrorKind::Other,
    }
}

// The constructor lives beside the table it reads, so that the error type
// does not depend on the platform layer.
impl Error {
    /// An error from an OS `errno` value, classified and with the OS's message.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = sock::Error::from_errno(libc::EADDRINUSE);
    /// assert_eq!(e.kind(), sock::ErrorKind::AddressAlreadyInUse);
    /// assert_eq!(e.code(), libc::EADDRINUSE);
    /// assert!(!e.message().is_empty());
    /// ```
    pub fn from_errno(code: i32) -> Self {
        let kind = error_kind(code);
        let message = io::Error::from_raw_os_error(code).to_string();
        // std appends " (os error N)"; the code is kept apart, so drop it.
        let message = match message.rfind(" (os error ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        Error::from_parts(kind, code, message)
    }
}
