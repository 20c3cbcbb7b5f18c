//! One error type for every fallible call, with a normalized, stable name.
//!
//! Every error carries three things:
//!
//! * a [`ErrorKind`], whose [`name`](ErrorKind::name) (`"timeout"`, `"closed"`,
//!   `"connection_refused"`, ...) is stable across platforms and releases, so
//!   programs can branch on it (the Lua binding returns it as `nil, err, code`);
//! * the OS code it came from (`errno`, or the `EAI_*` code of `getaddrinfo`), or 0
//!   when the error is the library's own (`timeout`, `closed`, `not_in_thread`);
//! * a human-readable message.
//!
//! Composite operations ([`Tcp::sendall`](crate::Tcp::sendall),
//! [`Tcp::recvall`](crate::Tcp::recvall)) also record how many bytes were done
//! before the error, in [`Error::done`].
//!
//! `EINTR` is retried inside the library and `EAGAIN` turns into a wait, so neither
//! ever reaches the user.
//!
//! # Examples
//!
//! ```
//! use sock::error::{Error, ErrorKind};
//!
//! // Branch on the normalized kind, never on the platform's errno or message.
//! fn worth_retrying(e: &Error) -> bool {
//!     matches!(e.kind(), ErrorKind::Timeout | ErrorKind::TryAgain)
//! }
//! assert!(worth_retrying(&Error::new(ErrorKind::Timeout)));
//! assert!(!worth_retrying(&Error::from_errno(libc::ECONNREFUSED)));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::io;

/// The result type of every fallible call in this crate.
///
/// # Examples
///
/// ```
/// use sock::{Error, ErrorKind};
///
/// fn port(n: i64) -> sock::Result<u16> {
///     u16::try_from(n).map_err(|_| Error::with_message(ErrorKind::InvalidArgument, "bad port"))
/// }
/// assert_eq!(port(8080), Ok(8080));
/// assert_eq!(port(-1).unwrap_err().name(), "invalid_argument");
/// ```
pub type Result<T> = std::result::Result<T, Error>;

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The normalized, platform-independent class of an [`Error`].
        ///
        /// The [`name`](ErrorKind::name) of each kind is part of the API contract:
        /// it never changes between releases.
        ///
        /// # Examples
        ///
        /// Connecting to a loopback port that is bound but not listening:
        ///
        /// ```
        /// use std::{cell::Cell, rc::Rc};
        /// use sock::{ErrorKind, Family, Tcp};
        ///
        /// let idle = Tcp::new(Family::Inet).unwrap();
        /// idle.bind(("127.0.0.1", 0)).unwrap();
        /// let addr = idle.local_addr().unwrap();
        /// let kind = Rc::new(Cell::new(None));
        /// let k = kind.clone();
        /// sock::newthread(async move {
        ///     let c = Tcp::new(Family::Inet)?;
        ///     k.set(c.connect(addr, Some(sock::clock() + 1.0)).await.err().map(|e| e.kind()));
        ///     sock::Result::Ok(())
        /// });
        /// sock::start().unwrap();
        /// assert_eq!(kind.get(), Some(ErrorKind::ConnectionRefused));
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            ///
            /// # Examples
            ///
            /// ```
            /// use sock::ErrorKind;
            ///
            /// assert_eq!(ErrorKind::ALL[0], ErrorKind::Timeout);
            /// let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
            /// assert!(names.contains(&"connection_refused"));
            /// ```
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// The stable name of this kind, e.g. `"connection_refused"`.
            ///
            /// # Examples
            ///
            /// ```
            /// use sock::ErrorKind;
            ///
            /// const NAME: &str = ErrorKind::ConnectionRefused.name(); // usable in consts
            /// assert_eq!(NAME, "connection_refused");
            /// assert_eq!(ErrorKind::Other.name(), "error");
            /// assert_eq!(ErrorKind::Eof.to_string(), "eof"); // `Display` prints the name
            /// ```
            pub const fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => $name,)*
                }
            }
        }
    };
}

error_kinds! {
    /// The deadline (`expires`) passed before the operation completed.
    Timeout => "timeout",
    /// The socket was closed (by this program) before or during the operation.
    Closed => "closed",
    /// The peer closed the stream before all the requested bytes arrived.
    Eof => "eof",
    /// An I/O call was made outside a thread started with [`newthread`](crate::newthread).
    NotInThread => "not_in_thread",
    /// Another thread is already waiting to read on this socket (writers wait their turn instead).
    Busy => "busy",
    /// The event loop has no thread, timer or I/O left to wait for.
    Empty => "empty",
    /// Permission denied (`EACCES`, `EPERM`).
    AccessDenied => "access_denied",
    /// The local address is in use (`EADDRINUSE`).
    AddressAlreadyInUse => "address_already_in_use",
    /// The address is not local to this machine (`EADDRNOTAVAIL`).
    AddressNotAvailable => "address_not_available",
    /// The address family is not supported (`EAFNOSUPPORT`, `EAI_FAMILY`).
    AddressFamilyNotSupported => "address_family_not_supported",
    /// Nobody listens at the destination (`ECONNREFUSED`).
    ConnectionRefused => "connection_refused",
    /// The peer reset the connection (`ECONNRESET`).
    ConnectionReset => "connection_reset",
    /// The connection was aborted locally (`ECONNABORTED`).
    ConnectionAborted => "connection_aborted",
    /// Writing to a connection whose peer is gone or whose sending side was shut down (`EPIPE`).
    BrokenPipe => "broken_pipe",
    /// The socket is not connected (`ENOTCONN`).
    NotConnected => "not_connected",
    /// The socket is already connected (`EISCONN`).
    AlreadyConnected => "already_connected",
    /// A connect is already in progress on this socket (`EALREADY`).
    AlreadyInProgress => "already_in_progress",
    /// A datagram socket needs a destination (`EDESTADDRREQ`).
    DestinationRequired => "destination_required",
    /// The host cannot be reached (`EHOSTUNREACH`).
    HostUnreachable => "host_unreachable",
    /// The network cannot be reached (`ENETUNREACH`).
    NetworkUnreachable => "network_unreachable",
    /// The network dropped the connection (`ENETRESET`, `ENETDOWN`).
    NetworkDown => "network_down",
    /// The message is too large for the socket (`EMSGSIZE`).
    MessageTooBig => "message_too_big",
    /// The per-process or system-wide descriptor limit was hit (`EMFILE`, `ENFILE`).
    TooManyOpenFiles => "too_many_open_files",
    /// Out of buffer space or memory (`ENOBUFS`, `ENOMEM`, `EAI_MEMORY`).
    NoBufferSpace => "no_buffer_space",
    /// The operation or option is not supported here (`EOPNOTSUPP`, `ENOPROTOOPT`, ...).
    NotSupported => "not_supported",
    /// An argument is invalid (`EINVAL`, a bad option name or value, a bad address).
    InvalidArgument => "invalid_argument",
    /// The host name is not known (`EAI_NONAME`, `EAI_NODATA`).
    HostNotFound => "host_not_found",
    /// The name server failed temporarily; the lookup may succeed later (`EAI_AGAIN`).
    TryAgain => "try_again",
    /// The name server failed permanently (`EAI_FAIL`).
    LookupFailed => "lookup_failed",
    /// The service (port name) is not known for this socket type (`EAI_SERVICE`).
    ServiceNotFound => "service_not_found",
    /// No such file or directory: a Unix-domain socket path that does not
    /// exist (`ENOENT`).
    NotFound => "not_found",
    /// The TLS handshake failed (a protocol error, an alert from the peer,
    /// no common protocol version or cipher suite, a peer that is not TLS);
    /// the message says why.
    TlsHandshakeFailed => "tls_handshake_failed",
    /// The peer's certificate was refused (expired, unknown issuer, not for
    /// this host name, ...); the message gives the reason.
    CertificateInvalid => "certificate_invalid",
    /// A TLS protocol error after the handshake (a corrupt or unexpected
    /// record, an alert from the peer); the message says which.
    TlsError => "tls_error",
    /// Any other OS error; see [`Error::code`] and the message.
    Other => "error",
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error: a normalized [`ErrorKind`], the OS code and a message.
///
/// ```
/// let err = sock::Error::new(sock::ErrorKind::Timeout);
/// assert_eq!(err.name(), "timeout");
/// assert_eq!(err.code(), 0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    code: i32,
    message: Cow<'static, str>,
    done: usize,
}

impl Error {
    /// An error of the library's own (code 0) with the kind's default message.
    ///
    /// # Examples
    ///
    /// ```
    /// use sock::{Error, ErrorKind};
    ///
    /// let e = Error::new(ErrorKind::Closed);
    /// assert_eq!(e.kind(), ErrorKind::Closed);
    /// assert_eq!(e.code(), 0);
    /// assert!(e.to_string().starts_with("closed: "));
    /// ```
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            kind,
            code: 0,
            message: Cow::Borrowed(default_message(kind)),
            done: 0,
        }
    }

    /// An error of the library's own with a specific message.
    ///
    /// # Examples
    ///
    /// ```
    /// use sock::{Error, ErrorKind};
    ///
    /// let e = Error::with_message(ErrorKind::InvalidArgument, "port out of range");
    /// assert_eq!(e.name(), "invalid_argument");
    /// assert_eq!(e.message(), "port out of range");
    /// assert_eq!(e.to_string(), "invalid_argument: port out of range");
    /// ```
    pub fn with_message(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            code: 0,
            message: message.into(),
            done: 0,
        }
    }

    /// An error with every field given (used for resolver errors).
    pub(crate) fn from_parts(kind: ErrorKind, code: i32, message: String) -> Self {
        Error {
            kind,
            code,
            message: Cow::Owned(message),
            done: 0,
        }
    }

    /// The normalized kind.
    ///
    /// # Examples
    ///
    /// An `accept` that nobody connects to gives up at its deadline:
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use sock::{ErrorKind, Family, Tcp};
    ///
    /// let server = Tcp::new(Family::Inet).unwrap();
    /// server.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let kind = Rc::new(Cell::new(None));
    /// let k = kind.clone();
    /// sock::newthread(async move {
    ///     let r = server.accept(Some(sock::clock() + 0.05)).await;
    ///     k.set(r.err().map(|e| e.kind()));
    /// });
    /// sock::start().unwrap();
    /// assert_eq!(kind.get(), Some(ErrorKind::Timeout));
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The normalized, stable name of the kind (`"timeout"`, `"closed"`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = sock::Error::from_errno(libc::ECONNRESET);
    /// assert_eq!(e.name(), "connection_reset");
    /// assert_eq!(e.name(), e.kind().name());
    /// ```
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The OS code (`errno`, or the `EAI_*` value for lookups), or 0 for the
    /// library's own errors.
    ///
    /// # Examples
    ///
    /// Binding to a loopback port that another socket listens on:
    ///
    /// ```
    /// use sock::{ErrorKind, Family, Tcp};
    ///
    /// let a = Tcp::new(Family::Inet).unwrap();
    /// a.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let b = Tcp::new(Family::Inet).unwrap();
    /// let err = b.bind(a.local_addr().unwrap()).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::AddressAlreadyInUse);
    /// assert_eq!(err.code(), libc::EADDRINUSE);
    /// assert_eq!(sock::Error::new(ErrorKind::Timeout).code(), 0);
    /// ```
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The human-readable message.
    ///
    /// # Examples
    ///
    /// ```
    /// use sock::{Error, ErrorKind};
    ///
    /// let e = Error::with_message(ErrorKind::Closed, "server went away");
    /// assert_eq!(e.message(), "server went away");
    /// // OS errors carry the OS's text; the code is kept apart, in `code()`.
    /// let os = Error::from_errno(libc::ECONNREFUSED);
    /// assert!(!os.message().is_empty() && !os.message().contains("os error"));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How many bytes a composite operation (`sendall`, `recvall`) completed
    /// before it failed; 0 for every other operation.
    ///
    /// # Examples
    ///
    /// The peer sends 2 bytes and closes, so a `recvall` of 8 bytes fails:
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use sock::{Family, Tcp};
    ///
    /// let server = Tcp::new(Family::Inet).unwrap();
    /// server.listen(None, ("127.0.0.1", 0)).unwrap();
    /// let addr = server.local_addr().unwrap();
    /// sock::newthread(async move { server.accept(None).await?.0.sendall(b"hi", None).await });
    /// let got = Rc::new(Cell::new(None));
    /// let g = got.clone();
    /// sock::newthread(async move {
    ///     let c = Tcp::new(Family::Inet)?;
    ///     c.connect(addr, Some(sock::clock() + 1.0)).await?;
    ///     let r = c.recvall(&mut [0u8; 8], Some(sock::clock() + 1.0)).await;
    ///     g.set(r.err().map(|e| (e.name(), e.done())));
    ///     sock::Result::Ok(())
    /// });
    /// sock::start().unwrap();
    /// assert_eq!(got.get(), Some(("eof", 2)));
    /// ```
    pub fn done(&self) -> usize {
        self.done
    }

    /// Returns the error with [`done`](Error::done) set (for operations of
    /// one's own that move bytes in several steps).
    ///
    /// ```
    /// let e = sock::Error::new(sock::ErrorKind::Timeout).with_done(7);
    /// assert_eq!((e.name(), e.done()), ("timeout", 7));
    /// ```
    pub fn with_done(mut self, done: usize) -> Self {
        self.done = done;
        self
    }
}

fn default_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Timeout => "operation timed out",
        ErrorKind::Closed => "socket is closed",
        ErrorKind::Eof => "end of stream before all bytes were received",
        ErrorKind::NotInThread => "I/O called outside a sock thread (start one with newthread)",
        ErrorKind::Busy => "another thread is already waiting to read on this socket",
        ErrorKind::Empty => "the loop has nothing to wait for",
        _ => kind.name(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)?;
        if self.code != 0 {
            write!(f, " (code {})", self.code)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if let Some(code) = e.raw_os_error() {
            return Error::from_errno(code);
        }
        let kind = match e.kind() {
            io::ErrorKind::TimedOut => ErrorKind::Timeout,
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => ErrorKind::InvalidArgument,
            io::ErrorKind::UnexpectedEof => ErrorKind::Eof,
            io::ErrorKind::Unsupported => ErrorKind::NotSupported,
            _ => ErrorKind::Other,
        };
        Error::with_message(kind, e.to_string())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        if e.code != 0 && !matches!(e.kind, ErrorKind::HostNotFound | ErrorKind::TryAgain) {
            return io::Error::from_raw_os_error(e.code);
        }
        let kind = match e.kind {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::Eof => io::ErrorKind::UnexpectedEof,
            ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
            ErrorKind::NotSupported => io::ErrorKind::Unsupported,
            ErrorKind::Closed | ErrorKind::NotConnected => io::ErrorKind::NotConnected,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn errno_is_normalized() {
        let e = Error::from_errno(libc::ECONNREFUSED);
        assert_eq!(e.name(), "connection_refused");
        assert_eq!(e.code(), libc::ECONNREFUSED);
        assert!(!e.message().contains("os error"), "{}", e.message());
        assert_eq!(
            Error::from_errno(libc::EADDRINUSE).name(),
            "address_already_in_use"
        );
        assert_eq!(Error::from_errno(libc::EACCES).name(), "access_denied");
        assert_eq!(Error::from_errno(libc::EPERM).name(), "access_denied");
        assert_eq!(Error::from_errno(libc::EPIPE).name(), "broken_pipe");
        assert_eq!(Error::from_errno(libc::ENOENT).name(), "not_found");
        assert_eq!(Error::from_errno(libc::EDOM).name(), "error");
    }

    #[test]
    fn io_error_round_trip_keeps_the_code() {
        let e: Error = io::Error::from_raw_os_error(libc::ECONNRESET).into();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset);
        let back: io::Error = e.into();
        assert_eq!(back.raw_os_error(), Some(libc::ECONNRESET));
        let t: io::Error = Error::new(ErrorKind::Timeout).into();
        assert_eq!(t.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn display_has_name_message_and_code() {
        let e = Error::from_errno(libc::ECONNREFUSED);
        let s = e.to_string();
        assert!(s.starts_with("connection_refused: "), "{s}");
        assert!(
            s.ends_with(&format!("(code {})", libc::ECONNREFUSED)),
            "{s}"
        );
        assert_eq!(Error::new(ErrorKind::Closed).with_done(7).done(), 7);
    }
}
