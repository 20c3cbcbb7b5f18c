//! Unix side of address lookup: `getaddrinfo(3)`, the resolver's error codes, and
//! the raw constants behind the portable types of [`crate::addr`].
//!
//! The only `unsafe` code of address lookup lives here: the calls to
//! `getaddrinfo`, `freeaddrinfo` and `gai_strerror`, the walk over the list the
//! resolver returns, and the copy of each `ai_addr` into a [`socket2::SockAddr`].

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem;
use std::os::unix::ffi::OsStrExt;
use std::ptr;

use libc::c_int;
use socket2::{SockAddr, SockAddrStorage};

use crate::error::{Error, ErrorKind, Result};

// Socket types.
pub(crate) const SOCK_STREAM: i32 = libc::SOCK_STREAM;
pub(crate) const SOCK_DGRAM: i32 = libc::SOCK_DGRAM;
pub(crate) const SOCK_RAW: i32 = libc::SOCK_RAW;

// Address families.
pub(crate) const AF_UNSPEC: i32 = libc::AF_UNSPEC;
pub(crate) const AF_INET: i32 = libc::AF_INET;
pub(crate) const AF_INET6: i32 = libc::AF_INET6;
pub(crate) const AF_UNIX: i32 = libc::AF_UNIX;

// Protocols.
pub(crate) const IPPROTO_IP: i32 = libc::IPPROTO_IP;
pub(crate) const IPPROTO_IPV6: i32 = libc::IPPROTO_IPV6;
pub(crate) const IPPROTO_TCP: i32 = libc::IPPROTO_TCP;
pub(crate) const IPPROTO_UDP: i32 = libc::IPPROTO_UDP;
pub(crate) const IPPROTO_RAW: i32 = libc::IPPROTO_RAW;
pub(crate) const IPPROTO_ICMP: i32 = libc::IPPROTO_ICMP;
pub(crate) const IPPROTO_IGMP: i32 = libc::IPPROTO_IGMP;
pub(crate) const IPPROTO_ICMPV6: i32 = libc::IPPROTO_ICMPV6;

// getaddrinfo flags.
pub(crate) const AI_PASSIVE: i32 = libc::AI_PASSIVE;
pub(crate) const AI_CANONNAME: i32 = libc::AI_CANONNAME;
pub(crate) const AI_NUMERICHOST: i32 = libc::AI_NUMERICHOST;
pub(crate) const AI_NUMERICSERV: i32 = libc::AI_NUMERICSERV;
pub(crate) const AI_ALL: i32 = libc::AI_ALL;
pub(crate) const AI_V4MAPPED: i32 = libc::AI_V4MAPPED;
pub(crate) const AI_ADDRCONFIG: i32 = libc::AI_ADDRCONFIG;

/// `EAI_NODATA` and `EAI_ADDRFAMILY`, which the `libc` crate does not define
/// everywhere (and which some resolvers no longer return): both mean the host has
/// no address (of the asked family), i.e. `host_not_found`.
#[cfg(any(target_os = "linux", target_os = "openbsd", target_os = "hurd"))]
const EAI_NO_ADDRESS: &[c_int] = &[-5, -9];
#[cfg(any(
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "solaris",
    target_os = "illumos",
))]
const EAI_NO_ADDRESS: &[c_int] = &[1, 7];
#[cfg(not(any(
    target_os = "linux",
    target_os = "openbsd",
    target_os = "hurd",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "solaris",
    target_os = "illumos",
)))]
const EAI_NO_ADDRESS: &[c_int] = &[];

/// The raw `hints` argument of `getaddrinfo` (0 = unspecified).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RawHints {
    pub(crate) socktype: i32,
    pub(crate) family: i32,
    pub(crate) protocol: i32,
    pub(crate) flags: i32,
}

/// One entry of a `getaddrinfo` result, copied out of the C list.
#[derive(Clone, Debug)]
pub(crate) struct RawAddrInfo {
    pub(crate) family: i32,
    pub(crate) socktype: i32,
    pub(crate) protocol: i32,
    pub(crate) canonname: Option<String>,
    pub(crate) addr: SockAddr,
}

/// Frees the list returned by a successful `getaddrinfo` when dropped.
struct AddrInfoList(*mut libc::addrinfo);

impl Drop for AddrInfoList {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer was returned by a successful getaddrinfo call, is
            // owned by this guard alone and is freed exactly once, here.
            unsafe { libc::freeaddrinfo(self.0) };
        }
    }
}

/// Calls `getaddrinfo(node, service, hints)` and copies the result out.
///
/// `node` is `None` for the wildcard (with `AI_PASSIVE` in the flags). `context`
/// describes what was looked up ("host 'x', port 80"); it is appended to the
/// resolver's message on error.
pub(crate) fn getaddrinfo(
    node: Option<&str>,
    service: &str,
    hints: &RawHints,
    context: &dyn Fn() -> String,
) -> Result<Vec<RawAddrInfo>> {
    let nul = |what: &str| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("{what} contains a NUL byte ({})", context()),
        )
    };
    let c_node = match node {
        Some(n) => Some(CString::new(n).map_err(|_| nul("host"))?),
        None => None,
    };
    let c_service = CString::new(service).map_err(|_| nul("port"))?;
    let c_hints = libc::addrinfo {
        ai_flags: hints.flags,
        ai_family: hints.family,
        ai_socktype: hints.socktype,
        ai_protocol: hints.protocol,
        ai_addrlen: 0,
        ai_addr: ptr::null_mut(),
        ai_canonname: ptr::null_mut(),
        ai_next: ptr::null_mut(),
    };
    let mut res: *mut libc::addrinfo = ptr::null_mut();
    // SAFETY: `c_node` (or null) and `c_service` are NUL-terminated strings that
    // outlive the call; `c_hints` is a fully initialized addrinfo whose pointer
    // fields are null, as getaddrinfo requires of hints; `res` is a valid
    // out-pointer, written only on success.
    let rc = unsafe {
        libc::getaddrinfo(
            c_node.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            c_service.as_ptr(),
            &c_hints,
            &mut res,
        )
    };
    if rc != 0 {
        // Read errno first: it only means something for EAI_SYSTEM.
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(gai_error(rc, errno, &context()));
    }
    let list = AddrInfoList(res);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list returned by the successful call
        // above, which stays allocated until `list` is dropped at the end of this
        // function; nothing writes to it meanwhile.
        let ai = unsafe { &*cur };
        let canonname = if ai.ai_canonname.is_null() {
            None
        } else {
            // SAFETY: a non-null ai_canonname is a NUL-terminated string owned by
            // the list, alive for as long as `ai`.
            let name = unsafe { CStr::from_ptr(ai.ai_canonname) };
            Some(name.to_string_lossy().into_owned())
        };
        // SAFETY: the resolver guarantees ai_addr points to ai_addrlen readable
        // bytes holding a sockaddr of family ai_family (or is null).
        if let Some(addr) = unsafe { sockaddr_from_raw(ai.ai_addr, ai.ai_addrlen) } {
            out.push(RawAddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                canonname,
                addr,
            });
        }
        cur = ai.ai_next;
    }
    drop(list);
    Ok(out)
}

/// Copies a C socket address into a [`SockAddr`]. Returns `None` for a null
/// pointer or a length that does not fit a `sockaddr_storage`.
///
/// # Safety
///
/// If `addr` is non-null it must point to `len` readable bytes that hold an
/// initialized socket address whose `sa_family` matches its contents.
unsafe fn sockaddr_from_raw(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<SockAddr> {
    let n = len as usize;
    if addr.is_null() || n > mem::size_of::<libc::sockaddr_storage>() {
        return None;
    }
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: sockaddr_storage is one of the sockaddr types of this platform, as
    // `view_as` requires.
    let dst: &mut libc::sockaddr_storage = unsafe { storage.view_as() };
    // SAFETY: the caller guarantees `addr` is readable for `n` bytes; `dst` is
    // writable for size_of::<sockaddr_storage>() >= n bytes; the two are distinct
    // objects, so they do not overlap.
    unsafe {
        ptr::copy_nonoverlapping(
            addr.cast::<u8>(),
            (dst as *mut libc::sockaddr_storage).cast::<u8>(),
            n,
        );
    }
    // SAFETY: the first `len` bytes of `storage` are a copy of a valid socket
    // address of that length (caller's guarantee) and the rest is zeroed, so the
    // family and length match the contents.
    Some(unsafe { SockAddr::new(storage, len) })
}

/// The resolver's text for an `EAI_*` code.
fn gai_message(code: c_int) -> String {
    // SAFETY: gai_strerror accepts any value and returns either null or a pointer
    // to a static, NUL-terminated string.
    let p = unsafe { libc::gai_strerror(code) };
    if p.is_null() {
        return format!("unknown resolver error {code}");
    }
    // SAFETY: `p` is non-null and points to a static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The normalized kind of an `EAI_*` code other than `EAI_SYSTEM`.
pub(crate) fn gai_error_kind(code: c_int) -> ErrorKind {
    match code {
        libc::EAI_NONAME => ErrorKind::HostNotFound,
        c if EAI_NO_ADDRESS.contains(&c) => ErrorKind::HostNotFound,
        libc::EAI_AGAIN => ErrorKind::TryAgain,
        libc::EAI_FAIL => ErrorKind::LookupFailed,
        libc::EAI_FAMILY => ErrorKind::AddressFamilyNotSupported,
        libc::EAI_SERVICE => ErrorKind::ServiceNotFound,
        libc::EAI_SOCKTYPE => ErrorKind::NotSupported,
        libc::EAI_BADFLAGS => ErrorKind::InvalidArgument,
        libc::EAI_MEMORY => ErrorKind::NoBufferSpace,
        _ => ErrorKind::Other,
    }
}

/// The error for a failed `getaddrinfo`: `code` is its return value, `errno` the
/// value of `errno` right after it, `context` what was looked up.
pub(crate) fn gai_error(code: c_int, errno: i32, context: &str) -> Error {
    if code == libc::EAI_SYSTEM && errno != 0 {
        let e = Error::from_errno(errno);
        return Error::from_parts(e.kind(), errno, format!("{} ({context})", e.message()));
    }
    Error::from_parts(
        gai_error_kind(code),
        code,
        format!("{} ({context})", gai_message(code)),
    )
}

/// A unix-domain socket address for `path`. A leading `@` names an address in
/// the Linux abstract namespace (elsewhere it is part of the path).
pub(crate) fn unix_sockaddr(path: &str) -> Result<SockAddr> {
    let invalid = |why: &str| {
        Error::with_message(
            ErrorKind::InvalidArgument,
            format!("invalid unix socket path '{path}': {why}"),
        )
    };
    if path.is_empty() {
        return Err(invalid("empty path"));
    }
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let bytes: Vec<u8> = match path.strip_prefix('@') {
        Some(name) => {
            let mut v = Vec::with_capacity(name.len() + 1);
            v.push(0);
            v.extend_from_slice(name.as_bytes());
            v
        }
        None => path.as_bytes().to_vec(),
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let bytes: Vec<u8> = path.as_bytes().to_vec();
    SockAddr::unix(OsStr::from_bytes(&bytes)).map_err(|e| invalid(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eai_codes_are_normalized() {
        assert_eq!(gai_error_kind(libc::EAI_NONAME), ErrorKind::HostNotFound);
        assert_eq!(gai_error_kind(libc::EAI_AGAIN), ErrorKind::TryAgain);
        assert_eq!(gai_error_kind(libc::EAI_FAIL), ErrorKind::LookupFailed);
        assert_eq!(
            gai_error_kind(libc::EAI_FAMILY),
            ErrorKind::AddressFamilyNotSupported
        );
        assert_eq!(
            gai_error_kind(libc::EAI_SERVICE),
            ErrorKind::ServiceNotFound
        );
        assert_eq!(gai_error_kind(libc::EAI_SOCKTYPE), ErrorKind::NotSupported);
        assert_eq!(
            gai_error_kind(libc::EAI_BADFLAGS),
            ErrorKind::InvalidArgument
        );
        assert_eq!(gai_error_kind(libc::EAI_MEMORY), ErrorKind::NoBufferSpace);
        for &c in EAI_NO_ADDRESS {
            assert_eq!(gai_error_kind(c), ErrorKind::HostNotFound);
        }
    }

    #[test]
    fn gai_error_has_code_text_and_context() {
        let e = gai_error(libc::EAI_NONAME, 0, "host 'x.invalid', port 80");
        assert_eq!(e.kind(), ErrorKind::HostNotFound);
        assert_eq!(e.code(), libc::EAI_NONAME);
        assert!(
            e.message().ends_with(" (host 'x.invalid', port 80)"),
            "{}",
            e.message()
        );
        assert!(
            e.message().starts_with(&gai_message(libc::EAI_NONAME)),
            "{}",
            e.message()
        );
    }

    #[test]
    fn eai_system_uses_errno() {
        let e = gai_error(libc::EAI_SYSTEM, libc::ENOMEM, "host 'h', port 1");
        assert_eq!(e.code(), libc::ENOMEM);
        assert_eq!(e.kind(), Error::from_errno(libc::ENOMEM).kind());
        assert!(
            e.message().ends_with("(host 'h', port 1)"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn unix_paths() {
        let a = unix_sockaddr("/tmp/x.sock").unwrap();
        assert_eq!(a.as_pathname().unwrap().to_str(), Some("/tmp/x.sock"));
        assert!(unix_sockaddr("").is_err());
        assert!(unix_sockaddr("a\0b").is_err());
        let long = "x".repeat(200);
        assert_eq!(
            unix_sockaddr(&long).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let a = unix_sockaddr("@name").unwrap();
            assert_eq!(a.as_abstract_namespace(), Some(&b"name"[..]));
        }
    }
}
