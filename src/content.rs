//! The content store: immutable blobs addressed by their sha256 digest
//! (layer blobs as received, manifests, configs), under
//! `<root>/content/blobs/sha256/<hex>`.
//!
//! Writers stream into a temporary file in `staging/`, hashing as they go;
//! [`BlobWriter::commit`] checks the digest and renames the file into place.
//! A blob is therefore either complete and verified under its final name or
//! absent.

use crate::digest::{Digest, HashingWriter};
use crate::root::{fsync_dir, Lease, LeaseName, Root, RootError};
use std::fs::File;
use std::io::{self, Write};
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
}

impl ContentStore {
    pub fn new(root: &Root) -> ContentStore {
        ContentStore { root: root.clone(), blobs: root.blobs(), staging: root.staging() }
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
        Ok(BlobWriter {
            _lease: lease,
            inner: Some(HashingWriter::new(io::BufWriter::with_capacity(1 << 20, f))),
            tmp,
            blobs: self.blobs.clone(),
        })
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

/// A blob being written; dropped without [`commit`](BlobWriter::commit),
/// its temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter {
    _lease: Lease,
    inner: Option<HashingWriter<io::BufWriter<File>>>,
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
        let file = buf.into_inner().map_err(|e| io_err(e.into_error()))?;
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
}
