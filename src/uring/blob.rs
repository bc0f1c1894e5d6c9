//! One big file streamed through io_uring: the content store's blob
//! writer and reader ([`crate::content`]), whose plain twins are a
//! `BufWriter<File>` and a `File`.
//!
//! ```text
//! writer:  caller ─► cur (BLOB_CHUNK) ─► WRITE@off ─┐   up to BLOB_DEPTH
//!                    free buffers ◄─── completion ◄─┘   in flight
//! reader:  READ@off, READ@off+CHUNK, … (BLOB_DEPTH ahead) ─► in order ─► caller
//! ```
//!
//! Each engine owns a small ring of its own (one blob, one owner). Errors
//! are sticky: the first failed write (say `ENOSPC`) is returned by the
//! next [`Write::write`] or by [`RingWriter::finish`], never lost; a short
//! write that makes no progress is `WriteZero`. Ops are handed to the
//! kernel when the owner waits for a completion ([`Ring::wait_next`]), so
//! a buffered write that the kernel completes inline gains nothing over
//! `write(2)`: the bench (`strata bench blob`) decides whether a store
//! uses this path.
//!
//! **Why it loses here** (measured, not yet profiled): buffered writes
//! and cached reads complete inline inside `io_uring_enter` on the owner's
//! thread, so nothing overlaps the hashing; the reader copies every byte
//! twice (page cache → ring buffer → caller) where `read(2)` copies once;
//! and pushed ops wait in the submission queue until the owner next
//! waits, so read-ahead comes in bursts. The kernel's own readahead
//! already keeps the disk busy for a sequential reader. Worth trying
//! next: `IOSQE_ASYNC` writes (io-wq copies while the owner hashes),
//! handing the ring's buffers to the hasher instead of copying, and
//! `sync_file_range` behind the writer so the commit's fsync has less
//! left to flush (that one would help the plain path as much).

use crate::sys::uring::{Op, Ring, RingError, SharedFd};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Bytes per write or read op.
pub const BLOB_CHUNK: usize = 1 << 20;
/// Ops in flight per blob.
pub const BLOB_DEPTH: usize = 4;

/// Submission queue entries of a blob ring.
const ENTRIES: u32 = 8;

fn ring_err(e: RingError) -> io::Error {
    io::Error::other(e.to_string())
}

/// A file written sequentially from offset 0 with up to [`BLOB_DEPTH`]
/// writes of [`BLOB_CHUNK`] bytes in flight.
pub struct RingWriter {
    ring: Ring<()>,
    fd: SharedFd,
    cur: Vec<u8>,
    free: Vec<Vec<u8>>,
    /// File offset of `cur`'s first byte.
    offset: u64,
    failed: Option<io::Error>,
}

impl std::fmt::Debug for RingWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingWriter").field("offset", &self.offset).field("in_flight", &self.ring.pending()).finish()
    }
}

impl RingWriter {
    /// Takes over `file` (opened for writing, empty).
    pub fn new(file: File) -> Result<RingWriter, RingError> {
        Ok(RingWriter {
            ring: Ring::new(ENTRIES)?,
            fd: Arc::new(file.into()),
            cur: Vec::with_capacity(BLOB_CHUNK),
            free: Vec::new(),
            offset: 0,
            failed: None,
        })
    }

    /// Reaps one completion, keeping the first error and the buffer.
    fn reap_one(&mut self) -> io::Result<bool> {
        let Some(c) = self.ring.wait_next().map_err(ring_err)? else { return Ok(false) };
        if let Op::Write { mut buf, done, .. } = c.op {
            let err = match c.result {
                Err(e) => Some(io::Error::from(e)),
                Ok(_) if done < buf.len() => Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(_) => None,
            };
            if self.failed.is_none() {
                self.failed = err;
            }
            buf.clear();
            self.free.push(buf);
        }
        Ok(true)
    }

    fn check(&mut self) -> io::Result<()> {
        match self.failed.take() {
            Some(e) => {
                // Keep failing: a writer that failed once never succeeds.
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Hands `cur` to the kernel, waiting for a free slot first.
    fn submit(&mut self) -> io::Result<()> {
        while self.ring.pending() >= BLOB_DEPTH {
            self.reap_one()?;
        }
        self.check()?;
        let next = self.free.pop().unwrap_or_else(|| Vec::with_capacity(BLOB_CHUNK));
        let buf = std::mem::replace(&mut self.cur, next);
        let len = buf.len() as u64;
        self.ring.push(Op::Write { fd: self.fd.clone(), buf, done: 0, offset: self.offset }, ());
        self.offset += len;
        Ok(())
    }

    /// Writes what is buffered, waits for every write and returns the
    /// file (for `fsync` and rename), or the first error.
    pub fn finish(mut self) -> io::Result<File> {
        if !self.cur.is_empty() {
            self.submit()?;
        }
        while self.reap_one()? {}
        self.check()?;
        let fd = Arc::try_unwrap(self.fd).map_err(|_| io::Error::other("blob fd still shared after the last write"))?;
        Ok(File::from(fd))
    }
}

impl Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        let n = buf.len().min(BLOB_CHUNK - self.cur.len());
        self.cur.extend_from_slice(&buf[..n]);
        if self.cur.len() == BLOB_CHUNK {
            self.submit()?;
        }
        Ok(n)
    }

    /// Buffered bytes stay until a chunk fills or [`RingWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.check()
    }
}

/// A file read sequentially with up to [`BLOB_DEPTH`] reads of
/// [`BLOB_CHUNK`] bytes ahead of the caller.
pub struct RingReader {
    ring: Ring<u64>,
    fd: SharedFd,
    /// Offset of the next read to push.
    ahead: u64,
    /// Finished reads by offset.
    ready: BTreeMap<u64, io::Result<Vec<u8>>>,
    /// The piece being handed out and how much of it was.
    cur: Vec<u8>,
    pos: usize,
    /// Offset of the piece the caller needs next.
    next: u64,
    eof: bool,
    free: Vec<Vec<u8>>,
}

impl std::fmt::Debug for RingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingReader").field("next", &self.next).field("eof", &self.eof).finish()
    }
}

impl RingReader {
    pub fn new(file: File) -> Result<RingReader, RingError> {
        let mut r = RingReader {
            ring: Ring::new(ENTRIES)?,
            fd: Arc::new(file.into()),
            ahead: 0,
            ready: BTreeMap::new(),
            cur: Vec::new(),
            pos: 0,
            next: 0,
            eof: false,
            free: Vec::new(),
        };
        r.top_up();
        Ok(r)
    }

    /// Keeps [`BLOB_DEPTH`] reads queued or finished ahead of the caller.
    fn top_up(&mut self) {
        while !self.eof && self.ring.pending() + self.ready.len() < BLOB_DEPTH {
            let buf = self.free.pop().unwrap_or_else(|| Vec::with_capacity(BLOB_CHUNK));
            self.ring.push(
                Op::Read { fd: self.fd.clone(), buf, offset: self.ahead, len: BLOB_CHUNK, fill: true },
                self.ahead,
            );
            self.ahead += BLOB_CHUNK as u64;
        }
    }

    /// The next piece in file order; empty at the end of the file.
    fn next_piece(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(got) = self.ready.remove(&self.next) {
                let data = got?;
                self.next += BLOB_CHUNK as u64;
                if data.len() < BLOB_CHUNK {
                    // Filled reads are short only at the end of the file.
                    self.eof = true;
                }
                self.top_up();
                return Ok(data);
            }
            if self.eof && self.ring.pending() == 0 {
                return Ok(Vec::new());
            }
            let c = self.ring.wait_next().map_err(ring_err)?.ok_or_else(|| io::Error::other("blob read lost"))?;
            if let Op::Read { buf, .. } = c.op {
                let got = match c.result {
                    Ok(_) => Ok(buf),
                    Err(e) => {
                        self.eof = true;
                        Err(io::Error::from(e))
                    }
                };
                self.ready.insert(c.tag, got);
            }
        }
    }
}

impl Read for RingReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            if self.eof && self.ready.is_empty() {
                return Ok(0);
            }
            let mut piece = self.next_piece()?;
            std::mem::swap(&mut piece, &mut self.cur);
            piece.clear();
            if piece.capacity() >= BLOB_CHUNK {
                self.free.push(piece);
            }
            self.pos = 0;
            if self.cur.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn data(size: usize, seed: u64) -> Vec<u8> {
        Rng::new(seed).bytes(size)
    }

    /// Sizes around chunk and depth boundaries, written in odd pieces and
    /// read back in odd pieces, equal the plain file's bytes.
    #[test]
    fn ring_writer_and_reader_round_trip_at_chunk_edges() {
        let dir = tempfile::tempdir().unwrap();
        for (k, size) in [0, 1, BLOB_CHUNK - 1, BLOB_CHUNK, BLOB_CHUNK + 1, BLOB_DEPTH * BLOB_CHUNK + 7, 9 << 20]
            .into_iter()
            .enumerate()
        {
            let want = data(size, k as u64);
            let p = dir.path().join(format!("f{k}"));
            let mut w = match RingWriter::new(File::create(&p).unwrap()) {
                Ok(w) => w,
                Err(e) => return crate::scratch::skip_test(&format!("io_uring blob path not tested: {e}")),
            };
            for piece in want.chunks(65_537) {
                w.write_all(piece).unwrap();
            }
            drop(w.finish().unwrap());
            assert!(std::fs::read(&p).unwrap() == want, "size {size}: written bytes differ");
            let mut r = RingReader::new(File::open(&p).unwrap()).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 100_003];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got == want, "size {size}: read bytes differ");
            assert_eq!(r.read(&mut buf).unwrap(), 0, "end of file stays the end");
        }
    }
}
