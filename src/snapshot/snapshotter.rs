//! [`Snapshotter`]: the contract's operations, implemented once over any
//! [`Driver`].
//!
//! Crash ordering (why metadata and bytes never disagree in a harmful way):
//! * create: bytes first, then metadata. A crash in between leaves bytes
//!   under an ID the metadata never handed out (its `next_id` was not
//!   saved); the next create reuses the ID and the driver replaces the
//!   debris, and [`Snapshotter::cleanup`] removes it.
//! * remove: metadata first, then bytes. A crash in between leaves bytes no
//!   record points to; `cleanup` removes them.
//! * commit: the driver freezes the bytes, then the record flips from
//!   active to committed. A crash in between leaves an active record whose
//!   bytes are frozen; removing it works as for any active snapshot.

use super::meta::{Db, MetaStore, Record};
use super::{DiffSource, Driver, Info, Kind, SnapshotError, SnapshotKey, Usage, WriteTarget};
use crate::mount::Mount;
use crate::time::now;
use std::path::{Path, PathBuf};

/// Snapshots of one driver under one home directory.
pub struct Snapshotter {
    driver: Box<dyn Driver>,
    meta: MetaStore,
    home: PathBuf,
}

impl Snapshotter {
    /// Wraps `driver`, keeping metadata in `home` (the driver's own
    /// directory, `<root>/<driver>`).
    pub fn new(home: &Path, driver: Box<dyn Driver>) -> Result<Snapshotter, SnapshotError> {
        std::fs::create_dir_all(home).map_err(|e| crate::root::RootError::io(home, e))?;
        Ok(Snapshotter { driver, meta: MetaStore::new(home), home: home.to_owned() })
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// The descriptors the driver keeps open ([`Driver::descriptors`]).
    pub fn descriptors(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.driver.descriptors()
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn driver(&self) -> &dyn Driver {
        self.driver.as_ref()
    }

    /// Creates a writable snapshot `key` on top of committed `parent`.
    pub fn prepare(&self, key: &SnapshotKey, parent: Option<&SnapshotKey>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active)
    }

    /// Creates a read-only snapshot `key` of committed `parent`.
    pub fn view(&self, key: &SnapshotKey, parent: Option<&SnapshotKey>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::View)
    }

    fn create(&self, key: &SnapshotKey, parent: Option<&SnapshotKey>, kind: Kind) -> Result<Vec<Mount>, SnapshotError> {
        let (lock, mut db) = self.meta.begin()?;
        if db.snapshots.contains_key(key) {
            return Err(SnapshotError::AlreadyExists(key.clone()));
        }
        if let Some(p) = parent {
            let rec = db.snapshots.get(p).ok_or_else(|| SnapshotError::NotFound(p.clone()))?;
            if rec.kind != Kind::Committed {
                return Err(SnapshotError::WrongKind { key: p.clone(), kind: rec.kind, expected: Kind::Committed });
            }
        }
        let id = super::SnapshotId(db.next_id.max(1));
        db.next_id = id.0 + 1;
        db.snapshots.insert(key.clone(), Record { id, kind, parent: parent.cloned(), created: now(), usage: None });
        let parents = db.parent_ids(key);
        let drv = |source| SnapshotError::Driver { key: key.clone(), source };
        self.driver.create(id, &parents, kind).map_err(drv)?;
        let mounts = self.driver.mounts(id, &parents, kind).map_err(drv)?;
        if let Err(e) = self.meta.save(&lock, &db, false) {
            let _ = self.driver.remove(id);
            return Err(e.into());
        }
        Ok(mounts)
    }

    /// Mounts for an existing active or view snapshot (or a committed one,
    /// read-only).
    pub fn mounts(&self, key: &SnapshotKey) -> Result<Vec<Mount>, SnapshotError> {
        let db = self.meta.read()?;
        let (rec, parents) = Self::lookup(&db, key)?;
        self.driver
            .mounts(rec.id, &parents, rec.kind)
            .map_err(|source| SnapshotError::Driver { key: key.clone(), source })
    }

    fn lookup<'a>(db: &'a Db, key: &SnapshotKey) -> Result<(&'a Record, Vec<super::SnapshotId>), SnapshotError> {
        let rec = db.snapshots.get(key).ok_or_else(|| SnapshotError::NotFound(key.clone()))?;
        Ok((rec, db.parent_ids(key)))
    }

    fn expect_active<'a>(db: &'a Db, key: &SnapshotKey) -> Result<(&'a Record, Vec<super::SnapshotId>), SnapshotError> {
        let (rec, parents) = Self::lookup(db, key)?;
        if rec.kind != Kind::Active {
            return Err(SnapshotError::WrongKind { key: key.clone(), kind: rec.kind, expected: Kind::Active });
        }
        Ok((rec, parents))
    }

    /// Freezes active snapshot `key` as committed snapshot `name`.
    pub fn commit(&self, name: &SnapshotKey, key: &SnapshotKey) -> Result<(), SnapshotError> {
        let (lock, mut db) = self.meta.begin()?;
        if db.snapshots.contains_key(name) {
            return Err(SnapshotError::AlreadyExists(name.clone()));
        }
        let (rec, parents) = Self::expect_active(&db, key)?;
        let usage = self
            .driver
            .commit(rec.id, &parents)
            .map_err(|source| SnapshotError::Driver { key: key.clone(), source })?;
        let mut rec = db.snapshots.remove(key).expect("looked up above");
        rec.kind = Kind::Committed;
        rec.usage = Some(usage);
        rec.created = now();
        db.snapshots.insert(name.clone(), rec);
        self.meta.save(&lock, &db, true)?;
        Ok(())
    }

    /// Removes a snapshot with no children.
    pub fn remove(&self, key: &SnapshotKey) -> Result<(), SnapshotError> {
        let (lock, mut db) = self.meta.begin()?;
        let (rec, _) = Self::lookup(&db, key)?;
        let (id, durable) = (rec.id, rec.kind == Kind::Committed);
        let children = db.children(key);
        if children > 0 {
            return Err(SnapshotError::HasChildren { key: key.clone(), children });
        }
        db.snapshots.remove(key);
        self.meta.save(&lock, &db, durable)?;
        drop(lock);
        self.driver.remove(id).map_err(|source| SnapshotError::Driver { key: key.clone(), source })
    }

    /// Metadata of one snapshot.
    pub fn stat(&self, key: &SnapshotKey) -> Result<Info, SnapshotError> {
        self.meta.read()?.info(key).ok_or_else(|| SnapshotError::NotFound(key.clone()))
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &SnapshotKey) -> Result<bool, SnapshotError> {
        Ok(self.meta.read()?.snapshots.contains_key(key))
    }

    /// Space the snapshot uses on its own: recorded at commit for committed
    /// snapshots, measured now for active ones.
    pub fn usage(&self, key: &SnapshotKey) -> Result<Usage, SnapshotError> {
        let db = self.meta.read()?;
        let (rec, parents) = Self::lookup(&db, key)?;
        if let Some(u) = rec.usage {
            return Ok(u);
        }
        self.driver.usage(rec.id, &parents).map_err(|source| SnapshotError::Driver { key: key.clone(), source })
    }

    /// Calls `f` for every snapshot, in key order.
    pub fn walk(&self, mut f: impl FnMut(&Info)) -> Result<(), SnapshotError> {
        let db = self.meta.read()?;
        for key in db.snapshots.keys() {
            f(&db.info(key).expect("key from the same map"));
        }
        Ok(())
    }

    /// Where to write a layer into active snapshot `key`.
    pub fn write_target(&self, key: &SnapshotKey) -> Result<WriteTarget, SnapshotError> {
        let db = self.meta.read()?;
        let (rec, parents) = Self::expect_active(&db, key)?;
        self.driver.write_target(rec.id, &parents).map_err(|source| SnapshotError::Driver { key: key.clone(), source })
    }

    /// Where to read `key`'s changes against its parent.
    pub fn diff_source(&self, key: &SnapshotKey) -> Result<DiffSource, SnapshotError> {
        let db = self.meta.read()?;
        let (rec, parents) = Self::lookup(&db, key)?;
        self.driver.diff_source(rec.id, &parents).map_err(|source| SnapshotError::Driver { key: key.clone(), source })
    }

    /// Releases what [`Snapshotter::diff_source`] set up for `key` (see
    /// [`super::Driver::release`]); call it when the diff has been read.
    pub fn release(&self, key: &SnapshotKey) -> Result<(), SnapshotError> {
        let db = self.meta.read()?;
        let (rec, parents) = Self::lookup(&db, key)?;
        self.driver.release(rec.id, &parents).map_err(|source| SnapshotError::Driver { key: key.clone(), source })
    }

    /// Removes on-disk snapshots the metadata does not know (debris of a
    /// crash between the two writes of create or remove). Returns how many.
    pub fn cleanup(&self) -> Result<usize, SnapshotError> {
        let (lock, db) = self.meta.begin()?;
        let known: std::collections::HashSet<_> = db.snapshots.values().map(|r| r.id).collect();
        let on_disk = self
            .driver
            .list()
            .map_err(|source| SnapshotError::Driver { key: SnapshotKey::new("(cleanup)").expect("valid"), source })?;
        let mut n = 0;
        for id in on_disk.into_iter().filter(|id| !known.contains(id)) {
            self.driver.remove(id).map_err(|source| SnapshotError::Driver {
                key: SnapshotKey::new(format!("(orphan {id})")).expect("valid"),
                source,
            })?;
            n += 1;
        }
        drop(lock);
        Ok(n)
    }
}
