//! The modes of the data root's directories and private files (drawn in
//! the layout of the module doc above), applied when they are created and
//! enforced on roots an older strata made with looser ones.

use super::RootError;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The data root itself: Docker's `/var/lib/docker`.
pub(super) const ROOT_MODE: u32 = 0o710;

/// A storage driver's home (`<root>/<driver>`): Docker's `overlay2`.
pub const DRIVER_HOME_MODE: u32 = 0o710;

/// The directories [`super::Root::open`] makes, parents before children.
pub(super) const LAYOUT: &[(&str, u32)] = &[
    ("locks", 0o700),
    ("content", 0o700),
    ("content/blobs", 0o700),
    ("content/blobs/sha256", 0o700),
    ("image", 0o700),
    ("containers", 0o710),
    ("volumes", 0o701),
    ("staging", 0o700),
    ("runtime", 0o700),
    ("seccomp", 0o700),
];

/// Makes directory `path` (its parent must exist) with exactly `mode`
/// whatever the umask, or, if it exists, removes the permission bits it
/// has beyond `mode` (a directory made 0755 by an older strata becomes
/// 0710; one an administrator made stricter stays so).
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), RootError> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => set_mode(path, mode),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(path, mode, true),
        Err(e) => Err(RootError::io(path, e)),
    }
}

/// Removes the permission bits file `path` has beyond `mode` (a missing
/// file is fine): for private files an older strata wrote world-readable.
pub fn tighten_file(path: &Path, mode: u32) -> Result<(), RootError> {
    tighten(path, mode, false)
}

fn tighten(path: &Path, mode: u32, dir: bool) -> Result<(), RootError> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if !dir && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RootError::io(path, e)),
    };
    if dir && !md.is_dir() {
        return Err(RootError::io(path, std::io::Error::other("not a directory")));
    }
    let current = md.permissions().mode() & 0o7777;
    if current & !mode != 0 {
        set_mode(path, current & mode)?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RootError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| RootError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_root_has_dockers_modes_and_an_old_one_is_tightened() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("root");
        let root = super::super::Root::open(&path).unwrap();
        assert_eq!(mode_of(&path), 0o710);
        for (sub, mode) in LAYOUT {
            assert_eq!(mode_of(&path.join(sub)), *mode, "{sub}");
        }
        // As an older strata left them.
        for p in [path.clone(), path.join("containers"), path.join("staging")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(path.join("locks"), std::fs::Permissions::from_mode(0o500)).unwrap();
        drop(root);
        super::super::Root::open(&path).unwrap();
        assert_eq!(mode_of(&path), 0o710);
        assert_eq!(mode_of(&path.join("containers")), 0o710);
        assert_eq!(mode_of(&path.join("staging")), 0o700);
        assert_eq!(mode_of(&path.join("locks")), 0o500, "a stricter mode is kept");
    }

    #[test]
    fn tighten_file_removes_bits_and_ignores_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.json");
        std::fs::write(&f, b"{}").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten_file(&f, 0o600).unwrap();
        assert_eq!(mode_of(&f), 0o600);
        tighten_file(&d.path().join("absent"), 0o600).unwrap();
    }
}
