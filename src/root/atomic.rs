//! Atomic file replacement: write to a temporary name, `fsync`, `rename(2)`
//! over the final name, `fsync` the directory. Readers see the old content
//! or the new, never a mix; a crash leaves the old content and at worst a
//! `.tmp-*` file.

use super::{unique_suffix, RootError};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Atomically and durably replaces `path` with `bytes`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), RootError> {
    write_replace(path, bytes, true, 0o666)
}

/// Mode of a file only root may read (a container's config and state).
const PRIVATE: u32 = 0o600;

/// Atomically replaces `path` with `bytes`, without waiting for the disk:
/// readers see the old content or the new, and after a crash the file is
/// one of the two, but possibly the old one. For container state, which
/// is reconciled after a crash anyway; never for image or layer metadata.
pub fn atomic_write_volatile(path: &Path, bytes: &[u8]) -> Result<(), RootError> {
    write_replace(path, bytes, false, 0o666)
}

/// [`atomic_write_json`] without the fsyncs (see [`atomic_write_volatile`]).
pub fn atomic_write_json_volatile<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RootError> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| RootError::Corrupt { path: path.to_owned(), detail: e.to_string() })?;
    atomic_write_volatile(path, &bytes)
}

/// [`atomic_write_json_volatile`] of a file only root may read (mode
/// 0600 from its creation on, so no reader sees it looser).
pub fn atomic_write_json_private_volatile<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RootError> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| RootError::Corrupt { path: path.to_owned(), detail: e.to_string() })?;
    write_replace(path, &bytes, false, PRIVATE)
}

/// Writes `bytes` to a new temporary file made with `mode` (less the
/// umask) and renames it over `path`.
fn write_replace(path: &Path, bytes: &[u8], durable: bool, mode: u32) -> Result<(), RootError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| RootError::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{name}-{}", unique_suffix()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| RootError::io(path, e))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn atomic_write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), RootError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| RootError::Corrupt { path: path.to_owned(), detail: e.to_string() })?;
    atomic_write(path, &bytes)
}

/// Reads JSON from `path`; `Ok(None)` when the file does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RootError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RootError::Corrupt { path: path.to_owned(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RootError::io(path, e)),
    }
}

/// `fsync(2)` on a directory, making a rename in it durable.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_private_write_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        atomic_write_json_private_volatile(&p, &"secret").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
