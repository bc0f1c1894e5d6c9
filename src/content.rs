//! The content store: immutable blobs addressed by their sha256 digest
//! (layer blobs as received, manifests, configs), under
//! `<root>/content/blobs/sha256/<hex>`.
//!
//! Writers stream into a temporary file in `staging/`, hashing as they go;
//! [`BlobWriter::commit`] checks the digest and renames the file into place.
//! A blob is therefore either complete and verified under its final name or
//! absent.
//!
//! **Engines.** Blob bytes move through one of two paths, chosen per
//! store ([`ContentStore::with_io`]): plain `write(2)`/`read(2)` through a
//! 1 MiB `BufWriter` and a `File` ([`IoEngineKind::Sync`], the twin), or
//! io_uring with several 1 MiB writes or reads in flight beside the
//! hashing ([`crate::uring::blob`], [`IoEngineKind::Uring`]). Both give the
//! same digest, the same bytes and the same refusals; [`DEFAULT_BLOB_IO`]
//! is the one `strata bench blob` found faster.

use crate::digest::{Digest, HashingWriter};
use crate::root::{fsync_dir, Lease, LeaseName, Root, RootError};
use crate::uring::blob::{RingReader, RingWriter, BLOB_CHUNK};
use crate::uring::IoEngineKind;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error(transparent)]
    Root(#[from] RootError),
}

/// Handle on `<root>/content`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: Root,
    blobs: PathBuf,
    staging: PathBuf,
    io: IoEngineKind,
}

/// The engine blob writes and reads use unless told otherwise: plain
/// syscalls. io_uring did not win on loop XFS and ext4 (idle `strata bench
/// all --quick --runs 5`, 256 MiB, benches/results/2026-12-08-all-quick.json):
/// write+commit 0.87–1.06x (inside the noise), read+verify 1.14–1.19x
/// slower warm and 1.09–1.11x cold (inside the noise); see
/// [`crate::uring::blob`] for why.
pub const DEFAULT_BLOB_IO: IoEngineKind = IoEngineKind::Sync;

impl ContentStore {
    pub fn new(root: &Root) -> ContentStore {
        ContentStore { root: root.clone(), blobs: root.blobs(), staging: root.staging(), io: DEFAULT_BLOB_IO }
    }

    /// The same store moving blob bytes with `io` (io_uring falls back to
    /// plain syscalls per blob if the ring cannot be set up).
    pub fn with_io(mut self, io: IoEngineKind) -> ContentStore {
        self.io = io;
        self
    }

    /// The engine blob bytes move through.
    pub fn io(&self) -> IoEngineKind {
        self.io
    }

    /// Where blob `d` lives (whether or not it exists).
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.blobs.join(d.hex())
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// Opens a blob for reading.
    pub fn open(&self, d: &Digest) -> Result<File, ContentError> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(d.clone()),
            _ => RootError::io(self.path(d), e).into(),
        })
    }

    /// Opens a blob for streaming it in order (push, save, verify): with
    /// io_uring, reads run ahead of the caller.
    pub fn reader(&self, d: &Digest) -> Result<BlobReader, ContentError> {
        let f = self.open(d)?;
        Ok(match self.io {
            IoEngineKind::Uring => match RingReader::new(f.try_clone().map_err(|e| RootError::io(self.path(d), e))?) {
                Ok(r) => BlobReader::Ring(Box::new(r)),
                Err(_) => BlobReader::Plain(f),
            },
            IoEngineKind::Sync => BlobReader::Plain(f),
        })
    }

    /// Re-hashes a stored blob; its size, or
    /// [`ContentError::DigestMismatch`] if the bytes no longer match.
    pub fn verify(&self, d: &Digest) -> Result<u64, ContentError> {
        let mut r = crate::digest::HashingReader::new(self.reader(d)?);
        let mut buf = vec![0u8; BLOB_CHUNK];
        while r.read(&mut buf).map_err(|e| RootError::io(self.path(d), e))? > 0 {}
        let (actual, size) = r.finish();
        if actual != *d {
            return Err(ContentError::DigestMismatch { expected: d.clone(), actual });
        }
        Ok(size)
    }

    /// Reads a whole (small) blob.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ContentError> {
        std::fs::read(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(d.clone()),
            _ => RootError::io(self.path(d), e).into(),
        })
    }

    /// Size in bytes of a stored blob.
    pub fn size(&self, d: &Digest) -> Result<u64, ContentError> {
        std::fs::metadata(self.path(d)).map(|m| m.len()).map_err(|_| ContentError::NotFound(d.clone()))
    }

    /// Stores `bytes`, returning their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(|e| RootError::io(&w.tmp, e))?;
        w.commit(None)
    }

    /// A streaming writer for a new blob.
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        let name = format!("blob-{}", crate::root::unique_suffix());
        let lease = self.root.lease(LeaseName::Staging(&name))?;
        let tmp = self.staging.join(name);
        let f = File::create(&tmp).map_err(|e| RootError::io(&tmp, e))?;
        let sink = match self.io {
            IoEngineKind::Uring => match RingWriter::new(f.try_clone().map_err(|e| RootError::io(&tmp, e))?) {
                Ok(w) => Sink::Ring(Box::new(w)),
                Err(_) => Sink::Plain(io::BufWriter::with_capacity(BLOB_CHUNK, f)),
            },
            IoEngineKind::Sync => Sink::Plain(io::BufWriter::with_capacity(BLOB_CHUNK, f)),
        };
        Ok(BlobWriter { _lease: lease, inner: Some(HashingWriter::new(sink)), tmp, blobs: self.blobs.clone() })
    }

    /// Deletes a blob; absent blobs are fine.
    pub fn delete(&self, d: &Digest) -> Result<(), ContentError> {
        match std::fs::remove_file(self.path(d)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RootError::io(self.path(d), e).into()),
        }
    }

    /// Digests of every stored blob.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let rd = std::fs::read_dir(&self.blobs).map_err(|e| RootError::io(&self.blobs, e))?;
        Ok(rd.filter_map(|e| Digest::from_hex(e.ok()?.file_name().to_str()?).ok()).collect())
    }
}

/// A stored blob being read in order.
#[derive(Debug)]
pub enum BlobReader {
    Plain(File),
    Ring(Box<RingReader>),
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BlobReader::Plain(f) => f.read(buf),
            BlobReader::Ring(r) => r.read(buf),
        }
    }
}

/// Where a [`BlobWriter`]'s bytes go: the plain twin or the ring.
#[derive(Debug)]
enum Sink {
    Plain(io::BufWriter<File>),
    Ring(Box<RingWriter>),
}

impl Sink {
    /// Every byte written; the file, for `fsync` and rename.
    fn finish(self) -> io::Result<File> {
        match self {
            Sink::Plain(b) => b.into_inner().map_err(|e| e.into_error()),
            Sink::Ring(r) => (*r).finish(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(b) => b.write(buf),
            Sink::Ring(r) => r.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(b) => b.flush(),
            Sink::Ring(r) => r.flush(),
        }
    }
}

/// A blob being written; dropped without [`commit`](BlobWriter::commit),
/// its temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter {
    _lease: Lease,
    inner: Option<HashingWriter<Sink>>,
    tmp: PathBuf,
    blobs: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("writer live until commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("writer live until commit").flush()
    }
}

impl BlobWriter {
    /// Finishes the blob: verifies it against `expected` (when given),
    /// fsyncs and renames it into place. An existing blob with the same
    /// digest is kept (content addressing makes them identical).
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest, ContentError> {
        let (buf, digest, _) = self.inner.take().expect("commit once").finish();
        let io_err = |e: io::Error| ContentError::Root(RootError::io(&self.tmp, e));
        let file = buf.finish().map_err(io_err)?;
        if let Some(exp) = expected {
            if *exp != digest {
                return Err(ContentError::DigestMismatch { expected: exp.clone(), actual: digest });
            }
        }
        file.sync_all().map_err(io_err)?;
        let dest = self.blobs.join(digest.hex());
        std::fs::rename(&self.tmp, &dest).map_err(io_err)?;
        fsync_dir(&self.blobs).map_err(io_err)?;
        Ok(digest)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful commit the temporary name no longer exists;
        // after a failed one (digest mismatch, I/O error) it must go.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_and_mismatch() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let cs = ContentStore::new(&root);
        let dg = cs.put(b"hello").unwrap();
        assert_eq!(cs.read(&dg).unwrap(), b"hello");
        let mut w = cs.writer().unwrap();
        w.write_all(b"other").unwrap();
        assert!(matches!(w.commit(Some(&dg)), Err(ContentError::DigestMismatch { .. })));
        assert_eq!(std::fs::read_dir(root.staging()).unwrap().count(), 0, "no debris after a mismatch");
        assert_eq!(cs.list().unwrap(), vec![dg]);
    }

    /// The plain twin and, when the kernel has it, io_uring.
    fn engines() -> Vec<IoEngineKind> {
        match crate::uring::blob::RingWriter::new(tempfile::tempfile().unwrap()) {
            Ok(_) => vec![IoEngineKind::Sync, IoEngineKind::Uring],
            Err(e) => {
                crate::scratch::skip_test(&format!("io_uring blob path not tested: {e}"));
                vec![IoEngineKind::Sync]
            }
        }
    }

    fn staging_is_empty(root: &Root) -> bool {
        std::fs::read_dir(root.staging()).unwrap().count() == 0
    }

    /// Writes `data` in `piece`-sized writes and commits; the first error.
    fn store(cs: &ContentStore, data: &[u8], piece: usize, expected: Option<&Digest>) -> Result<Digest, ContentError> {
        let mut w = cs.writer()?;
        for p in data.chunks(piece.max(1)) {
            w.write_all(p).map_err(|e| RootError::io("write", e))?;
        }
        w.commit(expected)
    }

    /// Same digest, same stored bytes, same bytes read back and verified,
    /// same mismatch refusal (with no debris), on every engine, for sizes
    /// around the 1 MiB chunk and the depth of the ring.
    #[test]
    fn engines_store_and_read_the_same_blobs() {
        let mut rng = crate::rng::Rng::new(17);
        for size in [0, 5, BLOB_CHUNK - 3, BLOB_CHUNK, 4 * BLOB_CHUNK + 1, 11 << 20] {
            let data = rng.bytes(size);
            let piece = rng.range_usize(1, 3 << 20);
            let want = Digest::of(&data);
            for io in engines() {
                let d = tempfile::tempdir().unwrap();
                let root = Root::open(d.path()).unwrap();
                let cs = ContentStore::new(&root).with_io(io);
                let got = store(&cs, &data, piece, Some(&want)).unwrap();
                assert_eq!(got, want, "{io:?} size {size}");
                assert!(std::fs::read(cs.path(&got)).unwrap() == data, "{io:?} size {size}: stored bytes");
                let mut back = Vec::new();
                cs.reader(&got).unwrap().read_to_end(&mut back).unwrap();
                assert!(back == data, "{io:?} size {size}: read bytes");
                assert_eq!(cs.verify(&got).unwrap(), size as u64, "{io:?} size {size}");
                let wrong = Digest::of(b"not it");
                match store(&cs, &data, piece, Some(&wrong)) {
                    Err(ContentError::DigestMismatch { expected, actual }) => {
                        assert_eq!((expected, actual), (wrong, want.clone()), "{io:?}")
                    }
                    other => panic!("{io:?} size {size}: a wrong digest gave {other:?}"),
                }
                assert!(staging_is_empty(&root), "{io:?} size {size}: debris after a mismatch");
                // A stored blob whose bytes rot is refused by verify.
                if size > 0 {
                    let mut bad = data.clone();
                    bad[size / 2] ^= 1;
                    std::fs::write(cs.path(&got), &bad).unwrap();
                    match cs.verify(&got) {
                        Err(ContentError::DigestMismatch { actual, .. }) => assert_eq!(actual, Digest::of(&bad)),
                        other => panic!("{io:?} size {size}: a rotten blob verified as {other:?}"),
                    }
                }
            }
        }
    }

    /// A disk that fills up mid-blob fails the blob with `ENOSPC` on every
    /// engine and leaves nothing in staging or among the blobs.
    #[test]
    fn a_full_disk_fails_the_blob_without_debris() {
        if !crate::sys::process::geteuid().is_root() {
            return crate::scratch::skip_test("needs root for a tiny tmpfs");
        }
        let data = crate::rng::Rng::new(5).bytes(12 << 20);
        for io in engines() {
            let place = crate::scratch::Tmpfs::new(6 << 20).unwrap();
            let root = Root::open(place.path()).unwrap();
            let cs = ContentStore::new(&root).with_io(io);
            let err = store(&cs, &data, 256 << 10, None).expect_err("12 MiB fit in a 6 MiB tmpfs");
            let errno = match &err {
                ContentError::Root(RootError::Io(e)) => e.source.raw_os_error(),
                _ => None,
            };
            assert_eq!(errno, Some(28), "{io:?}: {err}");
            assert!(staging_is_empty(&root), "{io:?}: debris in staging after ENOSPC");
            assert!(cs.list().unwrap().is_empty(), "{io:?}: a blob after ENOSPC");
        }
    }
}
