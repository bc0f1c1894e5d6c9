//! The compressed blob, read on the calling thread and hashed on a thread
//! of its own.
//!
//! ```text
//! blob ─ read 1 MiB chunks ─▶ BufRead for the decompressor (same thread)
//!                    └──Arc──▶ hasher thread: sha256 + count of the blob
//! ```
//!
//! On two cores the profile of a zstd layer had SHA-256 of the two
//! streams at half of apply's CPU, and the compressed one ran on the
//! thread that also decompresses, the one every other stage waits for.
//! Here that thread only reads; the hash of the same bytes runs beside it.
//! The chunks are shared, not copied; a bounded channel keeps at most
//! [`IN_FLIGHT`] of them waiting for the hasher, so a slow hasher slows
//! the reader instead of growing memory.

use crate::digest::{Digest, Hasher};
use std::io::{self, BufRead, Read};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes read from the blob at a time.
const CHUNK: usize = 1 << 20;
/// Chunks handed to the hasher and not yet hashed.
const IN_FLIGHT: usize = 4;

/// A buffered reader over `R` whose bytes are hashed on another thread.
pub(super) struct HashedBlob<R> {
    inner: R,
    chunk: Arc<Vec<u8>>,
    pos: usize,
    eof: bool,
    /// A read error after some bytes of a chunk: returned next time.
    pending: Option<io::Error>,
    tx: Option<SyncSender<Arc<Vec<u8>>>>,
    hasher: Option<JoinHandle<(Digest, u64)>>,
    /// Without a thread: the hash kept on the reading thread.
    inline: Option<(Hasher, u64)>,
}

impl<R: Read> HashedBlob<R> {
    /// Hashes on the reading thread (`threaded` false: the measured
    /// baseline) or starts the hasher thread.
    pub fn new(inner: R, threaded: bool) -> io::Result<HashedBlob<R>> {
        if !threaded {
            return Ok(HashedBlob {
                inner,
                chunk: Arc::new(Vec::new()),
                pos: 0,
                eof: false,
                pending: None,
                tx: None,
                hasher: None,
                inline: Some((Hasher::new(), 0)),
            });
        }
        let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(IN_FLIGHT);
        let hasher = std::thread::Builder::new().name("blob-sha256".into()).spawn(move || {
            let (mut h, mut n) = (Hasher::new(), 0u64);
            for c in rx {
                h.update(&c);
                n += c.len() as u64;
            }
            (h.finish(), n)
        })?;
        Ok(HashedBlob {
            inner,
            chunk: Arc::new(Vec::new()),
            pos: 0,
            eof: false,
            pending: None,
            tx: Some(tx),
            hasher: Some(hasher),
            inline: None,
        })
    }

    /// Reads the blob to its end and returns the digest and size of all of
    /// it.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        self.join()
    }

    fn join(&mut self) -> io::Result<(Digest, u64)> {
        self.tx = None;
        if let Some((h, n)) = self.inline.take() {
            return Ok((h.finish(), n));
        }
        let h = self.hasher.take().expect("joined once");
        Ok(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    }

    /// Reads the next chunk (as full as the source gives before its end)
    /// and hands it to the hasher.
    fn next_chunk(&mut self) -> io::Result<()> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        // The buffer is reused once the hasher is done with it.
        let mut buf = match Arc::try_unwrap(std::mem::take(&mut self.chunk)) {
            Ok(b) if b.capacity() >= CHUNK => b,
            _ => Vec::with_capacity(CHUNK),
        };
        buf.resize(CHUNK, 0);
        let mut n = 0;
        while n < CHUNK {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if n > 0 => {
                    // Hand on what was read; the error comes next.
                    self.pending = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        self.chunk = Arc::new(buf);
        self.pos = 0;
        if let Some((h, count)) = &mut self.inline {
            h.update(&self.chunk);
            *count += n as u64;
        }
        if n > 0 {
            if let Some(tx) = &self.tx {
                tx.send(self.chunk.clone()).map_err(|_| io::Error::other("blob hasher thread exited"))?;
            }
        }
        Ok(())
    }
}

impl<R> Drop for HashedBlob<R> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.hasher.take() {
            let _ = h.join();
        }
    }
}

impl<R: Read> BufRead for HashedBlob<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.chunk.len() && !self.eof {
            self.next_chunk()?;
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.chunk.len());
    }
}

impl<R: Read> Read for HashedBlob<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that returns short reads and one interruption.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        interrupted: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted && self.pos > 1000 {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(self.data.len() - self.pos).min(70_001);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn same_bytes_and_digest_as_the_inline_hash() {
        for (len, threaded) in [0usize, 1, 3, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345]
            .into_iter()
            .flat_map(|l| [(l, true), (l, false)])
        {
            let data: Vec<u8> = (0..len).map(|i| u8::try_from((i * 7 + i / 251) % 256).unwrap()).collect();
            let mut blob =
                HashedBlob::new(Trickle { data: data.clone(), pos: 0, interrupted: false }, threaded).unwrap();
            // Read part of it through BufRead, leave the rest to finish.
            let mut head = vec![0u8; len / 2];
            blob.read_exact(&mut head).unwrap();
            assert_eq!(head, data[..len / 2]);
            let (digest, n) = blob.finish().unwrap();
            let mut h = Hasher::new();
            h.update(&data);
            assert_eq!((digest, n), (h.finish(), len as u64), "length {len}, threaded {threaded}");
        }
    }
}
