//! [`Driver`] for [`Dmthin`]: the snapshot contract on thin devices.

use super::pool::ThinId;
use super::state::{Device, Pending, State};
use super::{dm, Dmthin, DmthinError};
use crate::root::IoResultExt;
use crate::snapshot::{DiffSource, Driver, DriverError, Kind, SnapshotId, Usage, WriteTarget};
use crate::sys::dm::Sectors;

impl Dmthin {
    fn parent_mapped(st: &State, parents: &[SnapshotId]) -> Result<Option<u64>, DmthinError> {
        Ok(Self::device(st, parents.first().copied())?.mapped)
    }

    fn create_snapshot(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<(), DmthinError> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        self.check_pool()?;
        self.reap_retired(&mut st)?;
        // Debris of a crash before the snapshot metadata recorded this ID.
        self.destroy(&mut st, id)?;
        let origin = Self::device(&st, parents.first().copied())?.thin;
        let origin_name = parents.first().map_or_else(|| self.base_name(), |p| self.name(*p));
        let thin: ThinId = st.allocate().ok_or_else(|| DmthinError::ThinIdsExhausted(self.pool.clone()))?;
        st.devices.insert(id.0, Device { thin, mapped: None });
        let made = self.pool_change(&mut st, Pending::Create(thin), || {
            // thin-provisioning.rst: "If the origin is active, you must
            // suspend it before creating the snapshot".
            let active = self
                .ctl
                .dev_status(&origin_name)
                .map_err(dm("status", &origin_name))?
                .is_some_and(|i| i.has_table && !i.suspended);
            if active {
                self.ctl.suspend(&origin_name).map_err(dm("suspend", &origin_name))?;
            }
            let r = self.message(&format!("create_snap {thin} {origin}"));
            if active {
                self.ctl.resume(&origin_name).map_err(dm("resume", &origin_name))?;
            }
            r
        });
        if let Err(e) = made {
            st.devices.remove(&id.0);
            let _ = self.repair(&mut st);
            return Err(e);
        }
        Ok(())
    }

    fn measure(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DmthinError> {
        let st = self.load()?;
        let dev = Self::device(&st, Some(id))?;
        let name = self.name(id);
        let live = match dev.mapped {
            Some(_) => None,
            None => self.ctl.dev_status(&name).map_err(dm("status", &name))?,
        };
        if live.is_some_and(|i| i.has_table && i.open_count > 0 && !i.readonly) {
            // Mounted (by a container, in its own namespace): its writes
            // may still sit in the page cache, and only written blocks are
            // mapped. Mounting the same device here shares its superblock;
            // syncfs flushes. A container mounted read-only refuses a
            // second, read-write mount (EBUSY) but has nothing dirty, so a
            // failed flush still measures correctly.
            let _unflushed = self.flush(&st, id);
        }
        // Exact when the pool's metadata can be read (it counts overwrites
        // of shared blocks too, and needs no active device).
        let parent_thin = Self::device(&st, parents.first().copied())?.thin;
        let exact = {
            let _lock = self.lock()?;
            self.exact_exclusive(dev.thin, parent_thin)
        };
        if let Ok(size) = exact {
            return Ok(Usage { size, inodes: 0 });
        }
        // Otherwise the mapped-block difference.
        let mapped = match (dev.mapped, live) {
            (Some(m), _) => Sectors(m),
            (None, Some(i)) if i.has_table => self.mapped(&name)?,
            // Not active (after a reboot): look without keeping it.
            (None, _) => {
                self.activate(&name, dev.thin, true)?;
                let m = self.mapped(&name);
                super::pool::deactivate(&self.ctl, &name).map_err(dm("remove", &name))?;
                m?
            }
        };
        let parent = Self::parent_mapped(&st, parents)?;
        Ok(Usage { size: State::exclusive_bytes(mapped, parent), inodes: 0 })
    }

    fn flush(&self, st: &State, id: SnapshotId) -> Result<(), DmthinError> {
        let _lock = self.lock()?;
        let dir = self.keep_mounted(st, id)?;
        let synced = crate::sys::fs::syncfs_path(&dir).at(&dir);
        self.release_kept(id)?;
        Ok(synced?)
    }

    fn mounts_of(&self, id: SnapshotId, kind: Kind) -> Result<Vec<crate::mount::Mount>, DmthinError> {
        let _lock = self.lock()?;
        let st = self.load()?;
        let readonly = kind != Kind::Active;
        let dev = self.activate(&self.name(id), Self::device(&st, Some(id))?.thin, readonly)?;
        Ok(vec![self.mount_of(&dev, readonly)])
    }

    fn trees(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<DiffSource, DmthinError> {
        let _lock = self.lock()?;
        let st = self.load()?;
        let upper = self.keep_mounted(&st, id)?;
        let lower = match parents.first() {
            Some(p) => Some(self.keep_mounted(&st, *p)?),
            None => None,
        };
        Ok(DiffSource::Trees { lower, upper })
    }

    fn release_trees(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<(), DmthinError> {
        let _lock = self.lock()?;
        for (i, p) in std::iter::once(id).chain(parents.first().copied()).enumerate() {
            self.release_kept(p)?;
            let name = self.name(p);
            // Committed and view devices go back to inactive; an active
            // snapshot's device stays for its container. Busy (someone else
            // reads it) is fine.
            if i > 0 || self.ctl.dev_status(&name).map_err(dm("status", &name))?.is_some_and(|d| d.readonly) {
                match super::pool::deactivate(&self.ctl, &name) {
                    Err(e) if crate::sys::Errno::from_io_error(&e) == Some(crate::sys::Errno::BUSY) => {}
                    other => other.map_err(dm("remove", &name))?,
                }
            }
        }
        Ok(())
    }
}

impl Driver for Dmthin {
    fn name(&self) -> &'static str {
        "dmthin"
    }

    /// The control device only: the locks on kept mounts are this
    /// process's holds, not a forked child's.
    fn descriptors(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        vec![std::os::fd::AsFd::as_fd(&self.ctl)]
    }

    fn create(&self, id: SnapshotId, parents: &[SnapshotId], _kind: Kind) -> Result<(), DriverError> {
        Ok(self.create_snapshot(id, parents)?)
    }

    fn mounts(
        &self,
        id: SnapshotId,
        _parents: &[SnapshotId],
        kind: Kind,
    ) -> Result<Vec<crate::mount::Mount>, DriverError> {
        Ok(self.mounts_of(id, kind)?)
    }

    fn commit(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DriverError> {
        Ok(self.commit_snapshot(id, parents)?)
    }

    fn remove(&self, id: SnapshotId) -> Result<(), DriverError> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        self.reap_retired(&mut st)?;
        Ok(self.destroy(&mut st, id)?)
    }

    fn usage(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DriverError> {
        Ok(self.measure(id, parents)?)
    }

    fn write_target(&self, id: SnapshotId, _parents: &[SnapshotId]) -> Result<WriteTarget, DriverError> {
        Ok(WriteTarget::Mounted(self.mounts_of(id, Kind::Active)?))
    }

    fn diff_source(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<DiffSource, DriverError> {
        Ok(self.trees(id, parents)?)
    }

    fn release(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<(), DriverError> {
        Ok(self.release_trees(id, parents)?)
    }

    fn list(&self) -> Result<Vec<SnapshotId>, DriverError> {
        Ok(self.load()?.devices.keys().map(|k| SnapshotId(*k)).collect())
    }

    fn status(&self) -> Vec<(String, String)> {
        let mut lines = vec![
            ("Pool Name".to_owned(), self.pool.clone()),
            ("Pool Blocksize".to_owned(), human(self.cfg.block_size)),
            ("Base Device Size".to_owned(), human(self.cfg.base_size)),
            ("Backing Filesystem".to_owned(), self.cfg.fs.name().to_owned()),
        ];
        if self.cfg.pool.is_none() && self.cfg.data_device.is_none() {
            let dir = self.home.join("pool");
            lines.push(("Data file".into(), dir.join("data").display().to_string()));
            lines.push(("Metadata file".into(), dir.join("metadata").display().to_string()));
        }
        match self.pool_status() {
            Ok(s) => {
                let block = self.cfg.block_size;
                let meta_block = 4096;
                lines.push(("Data Space Used".into(), human(s.data_used * block)));
                lines.push(("Data Space Total".into(), human(s.data_total * block)));
                lines.push(("Metadata Space Used".into(), human(s.metadata_used * meta_block)));
                lines.push(("Metadata Space Total".into(), human(s.metadata_total * meta_block)));
                lines.push(("Pool Mode".into(), s.mode));
                lines.push(("Transaction ID".into(), s.transaction_id.to_string()));
            }
            Err(e) => lines.push(("Pool Status".into(), format!("unavailable ({e})"))),
        }
        lines
    }
}

/// Sizes in decimal units with two decimals, as `docker info` prints
/// them for devicemapper (`65.54kB`, `10.74GB`).
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}
