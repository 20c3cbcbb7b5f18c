//! `errno` values to normalized [`ErrorKind`]s: the one table for Unix.

use crate::error::ErrorKind;

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
