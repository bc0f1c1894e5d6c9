//! Layer apply: one pass over an OCI layer blob that hashes the compressed
//! stream, decompresses it, hashes the tar and extracts it into a
//! directory.
//!
//! ```text
//! blob ─▶ sha256 (compressed) ─▶ gzip/zstd/none ─▶ sha256 (diff ID) ─▶ tar ─▶ dir
//! ```
//!
//! **Security invariant:** nothing outside the target directory is ever
//! written, whatever the tar says. Every path is resolved by the kernel
//! with `openat2(RESOLVE_IN_ROOT)` relative to an fd of the directory, so
//! symlinks created by earlier entries (absolute or `../..`) resolve inside
//! it; the last component is then created with an `*at` call that never
//! follows a symlink (`O_EXCL|O_NOFOLLOW`, `mknodat`, `symlinkat`,
//! `linkat` without `AT_SYMLINK_FOLLOW`), replacing whatever was there.
//! Entry paths and hardlink targets whose `..` would climb above the root
//! are refused outright rather than clamped, as Docker does. The parallel
//! path keeps parent directory fds by path, but only for paths that
//! resolve with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (no symlink to
//! redirect them) and only until an entry at or above them removes or
//! replaces something; worker threads get such an fd and a single name,
//! never a path.
//!
//! Entry semantics follow Docker's `pkg/archive` `UnpackLayer`: missing
//! parents are created `0755`, a non-directory replaces whatever exists, an
//! existing directory stays when the entry is a directory (and takes the
//! entry's metadata), the root entry (`./`) is skipped, AUFS bookkeeping
//! (`.wh..wh.*` at the root) is skipped. Directory times are set last,
//! since creating children changes them. Whiteouts follow the OCI
//! image-spec: they apply only to lower layers, so an entry this same
//! layer created is never whited out, in either [`Whiteouts`] mode.
//!
//! ## Fast path and its twin
//!
//! By default the work is spread over threads ([`pipeline`]): the calling
//! thread reads and decompresses the blob into pooled 1 MiB chunks, one
//! hasher thread computes the blob's digest ([`blobhash`]), another the
//! diff ID, a driver thread parses
//! the tar ([`tarstream`], zero-copy) and performs every non-file
//! operation in entry order ([`applier`]), and [`ApplyOptions::workers`]
//! threads create the regular files. Ordering rules there keep the result
//! identical to [`sequential`], the single-threaded twin
//! (`ApplyOptions { workers: 0 }` or `STRATA_APPLY=sequential`), which a
//! differential test checks on random layers. The parallel tar reader
//! does not expand GNU sparse entries (no OCI writer emits them): it
//! refuses them, where the twin expands them.
//!
//! ## Durability
//!
//! Apply itself makes nothing durable: files are written into the page
//! cache without `fsync`. With [`ApplyOptions::sync`] (or a separate
//! [`sync_filesystem`] call before the layer is committed) one `syncfs(2)`
//! on the target's filesystem writes back everything at once: when it
//! returns, every entry of the layer — data, metadata, directory entries —
//! is on stable storage (along with anything else dirty on that
//! filesystem), and a writeback error anywhere on it is reported. A crash
//! before that leaves a partial tree, which is fine because the snapshot is
//! not committed until apply returns.

mod applier;
mod blobhash;
mod entry;
pub mod fuzz;
mod pipeline;
mod ringwriter;
mod sequential;
mod tarstream;
#[cfg(test)]
mod tests;

use crate::digest::{DiffId, Digest};
use crate::image::compression::Compression;
use crate::snapshot::Whiteouts;
use crate::sys::fs as sysfs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Read-side buffer sizes: the compressed input, the decompressed tar and
/// file data are all moved in 1 MiB chunks.
const BUF_SIZE: usize = 1 << 20;

/// File-writing threads of the parallel path when nothing says otherwise
/// (measured on a 2-core machine, see the `unpack` example).
pub const DEFAULT_WORKERS: usize = 2;

/// How to apply a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Threads creating regular files. `0` runs the sequential twin on the
    /// calling thread.
    pub workers: usize,
    /// Hash the uncompressed stream on a thread of its own rather than on
    /// the reading thread.
    pub hash_thread: bool,
    /// Hash the compressed blob on a thread of its own rather than on the
    /// thread that reads and decompresses it.
    pub blob_hash_thread: bool,
    /// `syncfs(2)` the target's filesystem before returning.
    pub sync: bool,
    /// How the parallel path's workers create regular files (the
    /// sequential twin always uses plain syscalls).
    pub io: ApplyIo,
}

/// The file writer of the parallel path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyIo {
    /// Plain syscalls: `openat`, `write`, `fstat`, `futimens`, `close` per
    /// file on each worker.
    Sync,
    /// io_uring: linked `OPENAT → WRITE → CLOSE → STATX` chains on
    /// fixed-file slots, many files in flight per worker ([`ringwriter`]).
    /// Falls back to [`ApplyIo::Sync`] where io_uring is unavailable.
    Uring,
}

/// The default [`ApplyIo`]: on loop XFS and ext4 the io_uring writer was
/// 1.04–1.14x slower on XFS and level on ext4 (idle `strata bench all
/// --quick --runs 5`, benches/results/2026-12-08-all-quick.json), and its
/// DEFER_TASKRUN and IOSQE_ASYNC variants level too
/// (2026-12-08-unpack-uring-{defer,async}-quick.json).
pub const DEFAULT_IO: ApplyIo = ApplyIo::Sync;

impl ApplyIo {
    /// `STRATA_APPLY_IO=uring|sync`, else [`DEFAULT_IO`].
    pub fn from_env() -> ApplyIo {
        match std::env::var("STRATA_APPLY_IO").as_deref() {
            Ok("uring") => ApplyIo::Uring,
            Ok("sync") => ApplyIo::Sync,
            _ => DEFAULT_IO,
        }
    }
}

impl Default for ApplyOptions {
    /// [`DEFAULT_WORKERS`], overridden by `STRATA_APPLY=sequential` (the
    /// twin) or `STRATA_APPLY_WORKERS=<n>`; no sync.
    fn default() -> ApplyOptions {
        let workers = match std::env::var("STRATA_APPLY").as_deref() {
            Ok("sequential") => 0,
            _ => std::env::var("STRATA_APPLY_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(DEFAULT_WORKERS),
        };
        let hash_thread = std::env::var("STRATA_APPLY_HASH_THREAD").map_or(true, |v| v != "0");
        let blob_hash_thread = std::env::var("STRATA_APPLY_BLOB_HASH_THREAD").map_or(true, |v| v != "0");
        ApplyOptions { workers, hash_thread, blob_hash_thread, sync: false, io: ApplyIo::from_env() }
    }
}

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// sha256 of the uncompressed tar stream, trailing padding included.
    pub diff_id: DiffId,
    /// sha256 of the blob as read.
    pub compressed: Digest,
    /// Bytes of the blob.
    pub compressed_size: u64,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
    /// Bytes of regular-file content in the layer (Docker's layer size).
    pub content_size: u64,
    pub compression: Compression,
}

/// Failures of layer apply. Entry variants carry the entry's path as it
/// appears in the tar.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("open target directory {path}: {source}")]
    Target { path: PathBuf, source: io::Error },
    #[error("read layer: {0}")]
    Read(#[source] io::Error),
    #[error("tar entry {path:?}: path escapes the layer root")]
    PathEscapes { path: String },
    #[error("tar entry {path:?}: hardlink target {target:?} is absolute")]
    AbsoluteLinkTarget { path: String, target: String },
    #[error("tar entry {path:?}: hardlink target {target:?} escapes the layer root")]
    LinkTargetEscapes { path: String, target: String },
    #[error("tar entry {path:?}: unsupported entry type {kind:?}")]
    UnsupportedType { path: String, kind: char },
    #[error("tar entry {path:?}: invalid {field}: {detail}")]
    InvalidHeader { path: String, field: &'static str, detail: String },
    #[error("sync filesystem of {path}: {source}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("tar entry {path:?}: {op}: {source}")]
    Entry { path: String, op: &'static str, source: io::Error },
}

/// Extracts the layer `blob` (plain, gzip or zstd tar) into `dir`, turning
/// whiteouts into `whiteouts`' representation, and returns its digests;
/// [`apply_layer_with`] the default [`ApplyOptions`].
pub fn apply_layer<R: Read>(blob: R, dir: &Path, whiteouts: Whiteouts) -> Result<ApplyOutcome, ApplyError> {
    apply_layer_with(blob, dir, whiteouts, &ApplyOptions::default())
}

/// Extracts the layer `blob` (plain, gzip or zstd tar) into `dir`, turning
/// whiteouts into `whiteouts`' representation, and returns its digests.
///
/// The stream is read to its very end, so `diff_id` is the digest of the
/// whole uncompressed stream and `compressed` that of the whole blob. On
/// error `dir` is left half-written (the caller discards the snapshot) but
/// nothing outside it has been touched.
pub fn apply_layer_with<R: Read>(
    blob: R,
    dir: &Path,
    whiteouts: Whiteouts,
    opts: &ApplyOptions,
) -> Result<ApplyOutcome, ApplyError> {
    let root = sysfs::open_dir(dir).map_err(|source| ApplyError::Target { path: dir.to_owned(), source })?;
    let outcome = if opts.workers == 0 {
        sequential::apply(blob, root, whiteouts)?
    } else {
        pipeline::apply(blob, root, whiteouts, opts)?
    };
    if opts.sync {
        sync_filesystem(dir)?;
    }
    Ok(outcome)
}

/// Makes everything written to the filesystem holding `dir` durable, with
/// one `syncfs(2)`: what a layer store calls after apply and before it
/// commits the layer.
pub fn sync_filesystem(dir: &Path) -> Result<(), ApplyError> {
    let fd = sysfs::open_dir(dir).map_err(|source| ApplyError::Target { path: dir.to_owned(), source })?;
    sysfs::syncfs(std::os::fd::AsFd::as_fd(&fd)).map_err(|source| ApplyError::Sync { path: dir.to_owned(), source })
}
