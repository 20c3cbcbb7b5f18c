//! Read-ahead for byte streams: [`ReadBuffer`], the buffer behind the
//! buffered reads of [`Tcp`](crate::Tcp) (lines, delimiters, exact counts),
//! and the pool its memory comes from.
//!
//! A buffer holds memory only while it holds bytes: it takes a chunk
//! ([`CHUNK`] bytes) from its OS thread's pool when a read needs room, and
//! gives the chunk back once the program has taken every byte. So a
//! connection waiting for its next line holds no buffer. One loop runs per OS
//! thread, so the pool is the loop's. A line longer than a chunk (up to the
//! caller's maximum) grows the buffer out of the pool; such a buffer is freed,
//! not pooled, when it empties.
//!
//! Bytes read stay in the buffer until taken: an operation that fails (a
//! line over its maximum, a deadline) leaves them readable.

use std::cell::{Cell, RefCell};

use crate::error::{Error, ErrorKind};
use crate::step::Step;

/// The size of a pooled chunk.
pub const CHUNK: usize = 16 * 1024;

/// At most this many free chunks stay in a thread's pool (4 MiB); more are
/// freed.
const POOL_MAX: usize = 256;

struct Chunk {
    mem: Box<[u8]>,
    start: usize,
    end: usize,
}

thread_local! {
    // Boxed chunks: a buffer is one pointer (`Option<Box<Chunk>>`), which
    // every connection pays for, and a chunk moves in and out of the pool
    // without a copy.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Chunk>>> = const { RefCell::new(Vec::new()) };
    static IN_USE: Cell<usize> = const { Cell::new(0) };
}

fn take_chunk() -> Box<Chunk> {
    IN_USE.with(|n| n.set(n.get() + 1));
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| {
        Box::new(Chunk {
            mem: vec![0; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
        })
    })
}

fn give_chunk(mut c: Box<Chunk>) {
    IN_USE.with(|n| n.set(n.get().saturating_sub(1)));
    if c.mem.len() != CHUNK {
        return;
    }
    c.start = 0;
    c.end = 0;
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(c);
        }
    });
}

/// The read buffers of this OS thread: how many hold bytes now, and how many
/// free chunks wait in the pool.
///
/// ```
/// let (in_use, _pooled) = sock::read_buffers();
/// assert_eq!(in_use, 0);
/// ```
pub fn read_buffers() -> (usize, usize) {
    (IN_USE.with(Cell::get), POOL.with(|p| p.borrow().len()))
}

/// The end of a line: `\n`, or `\r\n` (both taken, kept or dropped together).
fn eol_len(line: &[u8]) -> usize {
    match line {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n'] => 1,
        _ => 0,
    }
}

/// The length of the record `rec` (a line or a record from `step_until`)
/// without its delimiter unless `keep`: for `\n`, a `\r\n` goes whole. A
/// last record without its delimiter is whole.
///
/// ```
/// use sock::op::record_len;
/// assert_eq!(record_len(b"abc\r\n", b"\n", false), 3);
/// assert_eq!(record_len(b"abc\r\n", b"\n", true), 5);
/// assert_eq!(record_len(b"a--", b"--", false), 1);
/// assert_eq!(record_len(b"tail", b"--", false), 4);
/// ```
pub fn record_len(rec: &[u8], delim: &[u8], keep: bool) -> usize {
    let cut = match (keep, delim) {
        (true, _) => 0,
        (false, b"\n") => eol_len(rec),
        (false, d) if rec.ends_with(d) => d.len(),
        _ => 0,
    };
    rec.len() - cut
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [] => Some(0),
        [b] => hay.iter().position(|x| x == b),
        _ => hay.windows(needle.len()).position(|w| w == needle),
    }
}

/// The `too_long` error of a line or a delimited record over its maximum.
fn too_long(max: usize) -> Error {
    Error::with_message(
        ErrorKind::MessageTooBig,
        format!("no end within {max} bytes (they stay readable)"),
    )
}

/// Read-ahead of a byte stream (see the [module docs](self)): the bytes
/// read from the stream and not yet taken, in pooled memory while there are
/// any. The steps take the stream's read as `read(buf, force) -> Step<n>` (0:
/// end of stream), so one buffer type serves TCP and TLS.
#[derive(Default)]
pub struct ReadBuffer {
    chunk: Option<Box<Chunk>>,
}

impl std::fmt::Debug for ReadBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBuffer")
            .field("buffered", &self.len())
            .finish()
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Some(c) = self.chunk.take() {
            give_chunk(c);
        }
    }
}

impl ReadBuffer {
    /// An empty buffer (no memory).
    pub fn new() -> ReadBuffer {
        ReadBuffer { chunk: None }
    }

    /// The bytes buffered.
    pub fn buffered(&self) -> &[u8] {
        match &self.chunk {
            Some(c) => &c.mem[c.start..c.end],
            None => &[],
        }
    }

    /// How many bytes are buffered.
    pub fn len(&self) -> usize {
        self.buffered().len()
    }

    /// Whether no byte is buffered (then the buffer holds no memory).
    pub fn is_empty(&self) -> bool {
        self.chunk.is_none()
    }

    /// Takes `n` buffered bytes (the first); the memory goes back to the
    /// pool once none is left.
    pub fn consume(&mut self, n: usize) {
        let Some(c) = &mut self.chunk else { return };
        c.start = (c.start + n).min(c.end);
        if c.start == c.end {
            give_chunk(self.chunk.take().expect("a chunk"));
        }
    }

    /// Copies buffered bytes into `dst` and takes them: how many.
    pub fn take_into(&mut self, dst: &mut [u8]) -> usize {
        let src = self.buffered();
        let n = src.len().min(dst.len());
        dst[..n].copy_from_slice(&src[..n]);
        self.consume(n);
        n
    }

    /// Reads once more from the stream into the buffer, which grows (out of
    /// the pool) up to `cap` bytes if it is full: the bytes read (0: end of
    /// stream), or `Wait`.
    pub fn step_fill(
        &mut self,
        cap: usize,
        force: bool,
        read: impl FnOnce(&mut [u8], bool) -> Step<usize>,
    ) -> Step<usize> {
        let mut c = self.chunk.take().unwrap_or_else(take_chunk);
        if c.end == c.mem.len() {
            // Full: move the bytes down, or grow.
            if c.start > 0 {
                c.mem.copy_within(c.start..c.end, 0);
                c.end -= c.start;
                c.start = 0;
            } else {
                let size = (c.mem.len() * 2).min(cap.max(c.mem.len() + 1));
                let mut mem = vec![0; size].into_boxed_slice();
                mem[..c.end].copy_from_slice(&c.mem[..c.end]);
                c.mem = mem;
            }
        }
        let step = read(&mut c.mem[c.end..], force);
        if let Step::Ready(Ok(n)) = step {
            c.end += n;
        }
        if c.start == c.end {
            give_chunk(c);
        } else {
            self.chunk = Some(c);
        }
        step
    }

    /// One more read for a step that needs more bytes: `None` to look at
    /// the buffer again, or the step's end: a wait, an error, or at the end
    /// of the stream what is buffered (`eof` if nothing).
    fn fill_more(
        &mut self,
        cap: usize,
        force: bool,
        read: impl FnOnce(&mut [u8], bool) -> Step<usize>,
    ) -> Option<Step<usize>> {
        match self.step_fill(cap, force, read) {
            Step::Ready(Ok(0)) => Some(match self.len() {
                0 => Step::Ready(Err(Error::new(ErrorKind::Eof))),
                n => Step::Ready(Ok(n)),
            }),
            Step::Ready(Ok(_)) => None,
            end => Some(end),
        }
    }

    /// One step of reading a line of at most `max` bytes (its end
    /// included): its length once the buffer holds it whole (the line is
    /// then `buffered()[..n]`, to take with [`consume`](Self::consume)).
    /// The end of the stream ends a last line without its end of line; at
    /// the end of the stream with nothing buffered, `eof`. Over `max`:
    /// `message_too_big`, the bytes left in the buffer.
    pub fn step_line(
        &mut self,
        max: usize,
        force: bool,
        read: impl FnMut(&mut [u8], bool) -> Step<usize>,
    ) -> Step<usize> {
        self.step_until(b"\n", max, force, read)
    }

    /// [`step_line`](Self::step_line) for any delimiter `delim`: the length
    /// of the record with its delimiter.
    pub fn step_until(
        &mut self,
        delim: &[u8],
        max: usize,
        force: bool,
        mut read: impl FnMut(&mut [u8], bool) -> Step<usize>,
    ) -> Step<usize> {
        if delim.is_empty() {
            return Step::Ready(Err(Error::with_message(
                ErrorKind::InvalidArgument,
                "an empty delimiter",
            )));
        }
        let mut scanned = 0usize;
        loop {
            let have = self.buffered();
            // Only where a delimiter may begin that was not looked at yet.
            let from = scanned.saturating_sub(delim.len() - 1);
            if let Some(i) = find(&have[from..], delim) {
                let n = from + i + delim.len();
                if n > max {
                    return Step::Ready(Err(too_long(max)));
                }
                return Step::Ready(Ok(n));
            }
            scanned = have.len();
            if scanned >= max {
                return Step::Ready(Err(too_long(max)));
            }
            if let Some(end) = self.fill_more(max.saturating_add(delim.len()), force, &mut read) {
                return end;
            }
        }
    }

    /// One step of buffering at least `want` bytes (and at most `cap`, at
    /// least `want`): the bytes buffered once there are `want`; at the end of
    /// the stream, what there is (`eof` if nothing).
    pub fn step_fill_to(
        &mut self,
        want: usize,
        cap: usize,
        force: bool,
        mut read: impl FnMut(&mut [u8], bool) -> Step<usize>,
    ) -> Step<usize> {
        loop {
            let have = self.len();
            if have >= want.max(1) {
                return Step::Ready(Ok(have));
            }
            if let Some(end) = self.fill_more(cap.max(want), force, &mut read) {
                return end;
            }
        }
    }

    /// One step of reading what is there into `dst`: buffered bytes first;
    /// with none, one read straight into `dst` (no copy through the buffer).
    pub fn step_some(
        &mut self,
        dst: &mut [u8],
        force: bool,
        read: impl FnOnce(&mut [u8], bool) -> Step<usize>,
    ) -> Step<usize> {
        if !self.is_empty() {
            return Step::Ready(Ok(self.take_into(dst)));
        }
        read(dst, force)
    }

    /// Moves a line of length `n` (from [`step_line`](Self::step_line) or
    /// [`step_until`](Self::step_until) with `delim`) to `out`, with or
    /// without its end (`keep`), and takes it: the bytes appended.
    pub fn take_record(&mut self, n: usize, delim: &[u8], keep: bool, out: &mut Vec<u8>) -> usize {
        let rec = &self.buffered()[..n];
        let len = record_len(rec, delim, keep);
        out.extend_from_slice(&rec[..len]);
        self.consume(n);
        len
    }
}

/// A [`ReadBuffer`] in a `Cell`, as a socket keeps it: taken and put back
/// around each use, so a read that finds it empty pays two moves of a
/// pointer and no borrow flag.
#[derive(Default)]
pub(crate) struct ReadAhead(Cell<ReadBuffer>);

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with(|b| b.fmt(f))
    }
}

impl ReadAhead {
    /// Buffered bytes, if any, moved into `dst`.
    #[inline]
    pub(crate) fn take_into(&self, dst: &mut [u8]) -> Option<usize> {
        let mut b = self.0.take();
        if b.is_empty() {
            return None; // (the cell is empty, as it was)
        }
        let n = b.take_into(dst);
        self.0.set(b);
        Some(n)
    }

    /// Whether no byte is buffered.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        let b = self.0.take();
        let empty = b.is_empty();
        self.0.set(b);
        empty
    }

    /// Calls `f` with the buffer (`f` must not use this `ReadAhead`).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut ReadBuffer) -> R) -> R {
        let mut b = self.0.take();
        let r = f(&mut b);
        self.0.set(b);
        r
    }

    /// The buffer, moved out (this one left empty).
    pub(crate) fn take(&self) -> ReadAhead {
        ReadAhead(Cell::new(self.0.take()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream of `parts`, one per read (then `Wait` or the end).
    fn reader<'a>(
        parts: &'a RefCell<Vec<&'static [u8]>>,
        end: bool,
    ) -> impl FnMut(&mut [u8], bool) -> Step<usize> + 'a {
        move |buf: &mut [u8], _| {
            let mut p = parts.borrow_mut();
            match p.first_mut() {
                None if end => Step::Ready(Ok(0)),
                None => Step::Wait(crate::Direction::Read),
                Some(part) => {
                    let n = part.len().min(buf.len());
                    buf[..n].copy_from_slice(&part[..n]);
                    *part = &part[n..];
                    if part.is_empty() {
                        p.remove(0);
                    }
                    Step::Ready(Ok(n))
                }
            }
        }
    }

    #[test]
    fn lines_across_reads_and_the_pool() {
        let base = read_buffers().0;
        let parts = RefCell::new(vec![&b"ab"[..], b"c\r", b"\nde", b"f\n"]);
        let mut b = ReadBuffer::new();
        let mut out = Vec::new();
        let n = match b.step_line(100, false, reader(&parts, false)) {
            Step::Ready(Ok(n)) => n,
            s => panic!("{s:?}"),
        };
        assert_eq!(b.take_record(n, b"\n", false, &mut out), 3);
        assert_eq!(out, b"abc");
        assert_eq!(read_buffers().0, base + 1, "\"de\" is buffered");
        out.clear();
        let n = match b.step_line(100, false, reader(&parts, false)) {
            Step::Ready(Ok(n)) => n,
            s => panic!("{s:?}"),
        };
        b.take_record(n, b"\n", true, &mut out);
        assert_eq!(out, b"def\n");
        assert!(b.is_empty());
        assert_eq!(read_buffers().0, base, "the chunk went back");
        assert!(matches!(
            b.step_line(100, false, reader(&parts, false)),
            Step::Wait(_)
        ));
        assert!(b.is_empty(), "a wait holds no chunk");
    }

    #[test]
    fn a_line_over_the_maximum_stays_readable() {
        let parts = RefCell::new(vec![&b"abcdefgh"[..], b"ij\nk"]);
        let mut b = ReadBuffer::new();
        match b.step_line(5, false, reader(&parts, false)) {
            Step::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::MessageTooBig),
            s => panic!("{s:?}"),
        }
        assert_eq!(b.buffered(), b"abcdefgh");
        let mut dst = [0u8; 16];
        let n = match b.step_some(&mut dst, false, reader(&parts, false)) {
            Step::Ready(Ok(n)) => n,
            s => panic!("{s:?}"),
        };
        assert_eq!(&dst[..n], b"abcdefgh");
    }

    #[test]
    fn the_last_line_without_an_end_then_eof() {
        let parts = RefCell::new(vec![&b"x\nlast"[..]]);
        let mut b = ReadBuffer::new();
        let mut out = Vec::new();
        for want in [&b"x"[..], b"last"] {
            let n = match b.step_line(100, false, reader(&parts, true)) {
                Step::Ready(Ok(n)) => n,
                s => panic!("{s:?}"),
            };
            out.clear();
            b.take_record(n, b"\n", false, &mut out);
            assert_eq!(out, want);
        }
        match b.step_line(100, false, reader(&parts, true)) {
            Step::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Eof),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn long_lines_grow_the_buffer_and_delimiters_span_reads() {
        let big: &'static [u8] = Box::leak(vec![b'a'; 3 * CHUNK].into_boxed_slice());
        let parts = RefCell::new(vec![big, b"--", b"-|rest"]);
        let mut b = ReadBuffer::new();
        let n = match b.step_until(b"---|", 4 * CHUNK, false, reader(&parts, false)) {
            Step::Ready(Ok(n)) => n,
            s => panic!("{s:?}"),
        };
        assert_eq!(n, 3 * CHUNK + 4);
        let mut out = Vec::new();
        assert_eq!(b.take_record(n, b"---|", false, &mut out), 3 * CHUNK);
        assert_eq!(b.buffered(), b"rest");
    }
}
