//! Mounts the driver keeps: a snapshot's filesystem mounted under
//! `<home>/mnt/<id>` while a diff reads it (released through
//! `Driver::release`), clearing mounts a killed strata left on a device,
//! and tearing a home's devices down.
//!
//! Several processes may keep the same snapshot mounted at once (two
//! commits of containers on one image diff against the same parent), so
//! each holder takes a shared `flock` on `mnt/<id>.lock` for as long as it
//! uses the mount, and whoever releases last (the exclusive lock is free)
//! unmounts. A holder that was killed holds nothing: the next open of the
//! driver unmounts what nobody holds.

use super::state::State;
use super::{device_prefix, dm, pool, Dmthin, DmthinError};
use crate::root::IoResultExt;
use crate::snapshot::SnapshotId;
use crate::sys::dm::Control;
use crate::sys::lock::FileLock;
use std::path::{Path, PathBuf};

impl Dmthin {
    /// Unmounts `id`'s kept mount whoever holds it (the snapshot is being
    /// committed or removed) and drops this process's holds.
    pub(super) fn unmount_kept(&self, id: SnapshotId) -> Result<(), DmthinError> {
        self.held.lock().expect("no panics while held").remove(&id.0);
        self.drop_kept(id)
    }

    /// Unmounts and removes `mnt/<id>`, if there.
    fn drop_kept(&self, id: SnapshotId) -> Result<(), DmthinError> {
        let dir = self.kept(id);
        if dir.exists() {
            crate::mount::unmount_all(&dir).at(&dir)?;
            let _ = std::fs::remove_dir(&dir);
        }
        Ok(())
    }

    fn kept_lock(&self, id: SnapshotId) -> PathBuf {
        self.home.join("mnt").join(format!("{id}.lock"))
    }

    /// Drops one of this process's holds on `id`'s kept mount and unmounts
    /// it when no process holds it any more.
    pub(super) fn release_kept(&self, id: SnapshotId) -> Result<(), DmthinError> {
        if let Some(holds) = self.held.lock().expect("no panics while held").get_mut(&id.0) {
            holds.pop();
        }
        let path = self.kept_lock(id);
        // Held through the unmount: a new holder waits, then mounts again.
        if let Some(_last) = FileLock::try_exclusive(&path).at(&path)? {
            self.drop_kept(id)?;
        }
        Ok(())
    }

    /// Unmounts kept mounts that no live process holds: those of a strata
    /// killed in the middle of a diff. Called with the driver lock held.
    pub(super) fn sweep_kept(&self) -> Result<(), DmthinError> {
        let Ok(rd) = std::fs::read_dir(self.home.join("mnt")) else { return Ok(()) };
        for e in rd.flatten() {
            let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else { continue };
            let id = SnapshotId(id);
            let path = self.kept_lock(id);
            if let Some(_free) = FileLock::try_exclusive(&path).at(&path)? {
                self.drop_kept(id)?;
            }
        }
        Ok(())
    }

    /// Mounts `id`'s filesystem at `mnt/<id>` (kept until released), read-
    /// only unless the device is active read-write.
    pub(super) fn keep_mounted(&self, st: &State, id: SnapshotId) -> Result<PathBuf, DmthinError> {
        let dir = self.kept(id);
        std::fs::create_dir_all(&dir).at(&dir)?;
        let path = self.kept_lock(id);
        let hold = FileLock::shared(&path).at(&path)?;
        if crate::sys::mount::is_mount_point(&dir).at(&dir)? {
            self.held.lock().expect("no panics while held").entry(id.0).or_default().push(hold);
            return Ok(dir);
        }
        let name = self.name(id);
        let readonly = match self.ctl.dev_status(&name).map_err(dm("status", &name))? {
            Some(i) if i.has_table => i.readonly,
            _ => true,
        };
        let dev = self.activate(&name, Self::device(st, Some(id))?.thin, readonly)?;
        crate::mount::mount_all(&[self.mount_of(&dev, readonly)], &dir).at(&dir)?;
        self.held.lock().expect("no panics while held").entry(id.0).or_default().push(hold);
        Ok(dir)
    }

    /// Detaches every mount of device `name` in this mount namespace
    /// (found by device number in /proc/self/mountinfo).
    pub(super) fn unmount_stale(&self, name: &str) -> Result<(), DmthinError> {
        let Some(info) = self.ctl.dev_status(name).map_err(dm("status", name))? else { return Ok(()) };
        let dev = format!("{}:{}", info.major, info.minor);
        let p = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(p).at(p)?;
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.get(2) == Some(&dev.as_str()) {
                if let Some(target) = f.get(4) {
                    let target = PathBuf::from(target.replace("\\040", " "));
                    crate::sys::mount::unmount_path(&target, true).at(&target)?;
                }
            }
        }
        Ok(())
    }
}

/// Unmounts the driver's kept mounts under `home` and removes every device
/// of that home: thin devices, then the pool strata made there (its loop
/// devices detach with it). Nothing is deleted from the pool; the next
/// open brings it back. For tests and `tools/vmtest` (strata itself leaves
/// the pool running). A home that was never opened is fine.
pub fn shut_down(home: &Path) -> Result<(), DmthinError> {
    let mnt = home.join("mnt");
    if let Ok(rd) = std::fs::read_dir(&mnt) {
        for e in rd.flatten() {
            crate::mount::unmount_all(&e.path()).at(e.path())?;
        }
    }
    let Ok(canonical) = home.canonicalize() else { return Ok(()) };
    let prefix = device_prefix(&canonical);
    let ctl = Control::open().map_err(DmthinError::NoDeviceMapper)?;
    let names = ctl.list_devices().map_err(dm("list", "(all)"))?;
    let pool = format!("{prefix}-pool");
    for n in names.iter().filter(|n| n.starts_with(&format!("{prefix}-")) && **n != pool) {
        pool::deactivate(&ctl, n).map_err(dm("remove", n))?;
    }
    if names.contains(&pool) {
        pool::deactivate(&ctl, &pool).map_err(dm("remove", &pool))?;
    }
    Ok(())
}
