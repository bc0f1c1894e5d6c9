//! Hashing a walk's bytes in walk order while the walk's small files are
//! read in batches: the build context digest ([`crate::build::context`]).
//!
//! The walker hands over, in order, header bytes ([`TreeHasher::update`])
//! and files it has already opened and checked ([`TreeHasher::file`]:
//! `openat(O_NOFOLLOW)` in the parent's descriptor, type checked on the
//! descriptor, so nothing here resolves a path the tree controls). With
//! an engine, files of at most [`FEED_FILE_MAX`] bytes are queued and read
//! [`FEED_FILES`] at a time ([`IoEngine::read_fds_with`]: io_uring keeps
//! them all in flight); the queue is then fed to the hasher in the order
//! it was built, so the digest is the one the plain path computes.
//! Without an engine (the twin) every file is read at once, 64 KiB at a
//! time, as the walk always did.
//!
//! **Same errors.** A file's read error surfaces at the next flush; a
//! walker that fails on a later entry calls [`TreeHasher::flush`] first,
//! and the first error in walk order wins, as on the plain path.

use super::{FdRead, IoEngine, UringError};
use crate::digest::{Digest, Hasher};
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

/// Largest file queued; bigger files stream through at once.
pub const FEED_FILE_MAX: u64 = 1 << 20;
/// Files per batch.
pub const FEED_FILES: usize = 256;
/// Bytes per batch (by the sizes the walk listed).
pub const FEED_BYTES: u64 = 8 << 20;

/// A file's read failed; `path` is the walk's name for it.
#[derive(Debug)]
pub struct FeedError {
    pub path: String,
    pub source: io::Error,
}

enum Piece {
    Bytes(Vec<u8>),
    /// Index into the batch.
    File(usize),
}

/// A sha256 of a walk, with file reads batched when given an engine.
pub struct TreeHasher<'e> {
    engine: Option<&'e mut IoEngine>,
    hasher: Hasher,
    queue: Vec<Piece>,
    files: Vec<(FdRead, String)>,
    bytes: u64,
    buf: Vec<u8>,
}

impl<'e> TreeHasher<'e> {
    /// `None`: the plain twin.
    pub fn new(engine: Option<&'e mut IoEngine>) -> TreeHasher<'e> {
        TreeHasher { engine, hasher: Hasher::new(), queue: Vec::new(), files: Vec::new(), bytes: 0, buf: Vec::new() }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        if self.queue.is_empty() {
            self.hasher.update(bytes);
        } else {
            self.queue.push(Piece::Bytes(bytes.to_vec()));
        }
    }

    /// Appends everything `file` holds, read to its end; `size` is what
    /// the walk listed (for batching only), `path` names it in errors.
    pub fn file(&mut self, file: File, size: u64, path: &str) -> Result<(), FeedError> {
        if self.engine.is_none() || size > FEED_FILE_MAX {
            self.flush()?;
            return self.stream(file, path);
        }
        if self.files.len() == FEED_FILES || self.bytes + size > FEED_BYTES {
            self.flush()?;
        }
        self.queue.push(Piece::File(self.files.len()));
        self.files.push((FdRead { fd: Arc::new(file.into()), path: path.into() }, path.to_owned()));
        self.bytes += size;
        Ok(())
    }

    /// Reads `file` into the hasher now, 64 KiB at a time.
    fn stream(&mut self, mut file: File, path: &str) -> Result<(), FeedError> {
        self.buf.resize(1 << 16, 0);
        loop {
            let n = file.read(&mut self.buf).map_err(|source| FeedError { path: path.to_owned(), source })?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&self.buf[..n]);
        }
    }

    /// Reads the queued files and feeds the queue to the hasher in order;
    /// the first failed file's error, after which the walk is abandoned.
    pub fn flush(&mut self) -> Result<(), FeedError> {
        let queue = std::mem::take(&mut self.queue);
        let files = std::mem::take(&mut self.files);
        self.bytes = 0;
        if queue.is_empty() {
            return Ok(());
        }
        let mut data: Vec<Result<Vec<u8>, UringError>> = files.iter().map(|_| Ok(Vec::new())).collect();
        if let Some(engine) = self.engine.as_deref_mut() {
            let items: Vec<FdRead> = files.iter().map(|(f, _)| f.clone()).collect();
            engine.read_fds_with(&items, |i, piece| match piece {
                Ok(chunk) => {
                    if let Ok(v) = &mut data[i] {
                        v.extend_from_slice(chunk.data);
                    }
                }
                Err(e) => data[i] = Err(e),
            });
        }
        let mut data = data.into_iter();
        for piece in queue {
            match piece {
                Piece::Bytes(b) => self.hasher.update(&b),
                Piece::File(i) => match data.next().expect("one result per queued file") {
                    Ok(v) => self.hasher.update(&v),
                    Err(e) => return Err(FeedError { path: files[i].1.clone(), source: io_error(e) }),
                },
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Digest, FeedError> {
        self.flush()?;
        Ok(self.hasher.finish())
    }
}

/// The plain path's error for a failed read.
fn io_error(e: UringError) -> io::Error {
    match e {
        UringError::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    }
}
