//! [`Snapshotter`]: the contract's operations, implemented once over any
//! [`Driver`].
//!
//! Crash ordering (why metadata and bytes never disagree in a harmful way):
//! * create: bytes first, then metadata. The ID is reserved (`next_id`
//!   saved) first; a crash before the record is written leaves bytes
//!   under an ID no record names, which [`Snapshotter::cleanup`] removes.
//!
//! Locking: the metadata lock is held only to check and to change the
//! document, never across the driver's work (copying a parent's tree,
//! measuring a commit), so calls on one home run side by side. A create
//! holds `creating/<id>.lock` from reserving its ID until its record is
//! written, and cleanup leaves the bytes of an ID whose lock is held.
//! What was checked before the driver's work is checked again after it:
//! a key taken meanwhile, a parent removed meanwhile.
//! * remove: metadata first, then bytes. A crash in between leaves bytes no
//!   record points to; `cleanup` removes them.
//! * commit: the driver freezes the bytes, then the record flips from
//!   active to committed. A crash in between leaves an active record whose
//!   bytes are frozen; removing it works as for any active snapshot.

use super::meta::{Db, MetaStore, Record};
use super::{DiffSource, Driver, Info, Kind, SnapshotError, SnapshotKey, Usage, WriteTarget};
use crate::mount::Mount;
use crate::sys::lock::FileLock;
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
        let creating = home.join("creating");
        std::fs::create_dir_all(&creating).map_err(|e| crate::root::RootError::io(&creating, e))?;
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

    /// Checks that `key` is free and `parent` committed; returns the
    /// parent's ID and the IDs under it, nearest first.
    fn check_create(
        db: &Db,
        key: &SnapshotKey,
        parent: Option<&SnapshotKey>,
    ) -> Result<Vec<super::SnapshotId>, SnapshotError> {
        if db.snapshots.contains_key(key) {
            return Err(SnapshotError::AlreadyExists(key.clone()));
        }
        let Some(p) = parent else { return Ok(Vec::new()) };
        let rec = db.snapshots.get(p).ok_or_else(|| SnapshotError::NotFound(p.clone()))?;
        if rec.kind != Kind::Committed {
            return Err(SnapshotError::WrongKind { key: p.clone(), kind: rec.kind, expected: Kind::Committed });
        }
        let mut parents = vec![rec.id];
        parents.extend(db.parent_ids(p));
        Ok(parents)
    }

    fn creating_lock(&self, id: super::SnapshotId) -> PathBuf {
        self.home.join("creating").join(format!("{id}.lock"))
    }

    fn create(&self, key: &SnapshotKey, parent: Option<&SnapshotKey>, kind: Kind) -> Result<Vec<Mount>, SnapshotError> {
        // Reserve an ID, and hold its creating lock before the metadata
        // lock is released, so no cleanup takes the bytes for debris.
        let (id, parents, creating) = {
            let (lock, mut db) = self.meta.begin()?;
            let parents = Self::check_create(&db, key, parent)?;
            let id = super::SnapshotId(db.next_id.max(1));
            db.next_id = id.0 + 1;
            let path = self.creating_lock(id);
            let creating = FileLock::exclusive(&path).map_err(|e| crate::root::RootError::io(&path, e))?;
            self.meta.save(&lock, &db, false)?;
            (id, parents, creating)
        };
        let result = self.create_bytes(key, parent, kind, id, &parents);
        if result.is_err() {
            let _ = self.driver.remove(id);
        }
        let _ = std::fs::remove_file(creating.path());
        drop(creating);
        result
    }

    /// The driver's work of a create, then the record (checked again).
    fn create_bytes(
        &self,
        key: &SnapshotKey,
        parent: Option<&SnapshotKey>,
        kind: Kind,
        id: super::SnapshotId,
        parents: &[super::SnapshotId],
    ) -> Result<Vec<Mount>, SnapshotError> {
        let drv = |source| SnapshotError::Driver { key: key.clone(), source };
        self.driver.create(id, parents, kind).map_err(drv)?;
        let mounts = self.driver.mounts(id, parents, kind).map_err(drv)?;
        let (lock, mut db) = self.meta.begin()?;
        if Self::check_create(&db, key, parent)? != parents {
            // The parent was removed (and perhaps made again) meanwhile.
            return Err(SnapshotError::NotFound(parent.expect("only a parent can change").clone()));
        }
        db.snapshots.insert(key.clone(), Record { id, kind, parent: parent.cloned(), created: now(), usage: None });
        self.meta.save(&lock, &db, false)?;
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
        let (id, parents) = {
            let db = self.meta.read()?;
            if db.snapshots.contains_key(name) {
                return Err(SnapshotError::AlreadyExists(name.clone()));
            }
            let (rec, parents) = Self::expect_active(&db, key)?;
            (rec.id, parents)
        };
        // Freezing and measuring run without the metadata lock.
        let usage =
            self.driver.commit(id, &parents).map_err(|source| SnapshotError::Driver { key: key.clone(), source })?;
        let (lock, mut db) = self.meta.begin()?;
        if db.snapshots.contains_key(name) {
            return Err(SnapshotError::AlreadyExists(name.clone()));
        }
        if Self::expect_active(&db, key)?.0.id != id {
            // Removed and prepared again while this commit measured it.
            return Err(SnapshotError::NotFound(key.clone()));
        }
        let mut rec = db.snapshots.remove(key).expect("looked up above");
        rec.kind = Kind::Committed;
        rec.usage = Some(usage);
        rec.created = now();
        db.snapshots.insert(name.clone(), rec);
        self.meta.save(&lock, &db, true)?;
        Ok(())
    }

    /// Whether layers can be extracted without their parents
    /// ([`Driver::extracts_alone`]).
    pub fn extracts_alone(&self) -> bool {
        self.driver.extracts_alone()
    }

    /// Freezes active snapshot `key`, prepared without a parent, as
    /// committed snapshot `name` on top of committed `parent`: what
    /// [`commit`](Self::commit) of a snapshot prepared on `parent` would
    /// have made. Only for drivers whose snapshots hold their changes
    /// alone ([`Driver::extracts_alone`]); others refuse with
    /// [`DriverError::Unsupported`](super::DriverError::Unsupported).
    pub fn commit_onto(
        &self,
        name: &SnapshotKey,
        key: &SnapshotKey,
        parent: &SnapshotKey,
    ) -> Result<(), SnapshotError> {
        let drv = |source| SnapshotError::Driver { key: key.clone(), source };
        if !self.driver.extracts_alone() {
            return Err(drv(super::DriverError::Unsupported(format!(
                "the {} driver's snapshots need their parent's content; commit onto a parent needs one that does not",
                self.driver.name()
            ))));
        }
        let check = |db: &Db| -> Result<(super::SnapshotId, Vec<super::SnapshotId>), SnapshotError> {
            if db.snapshots.contains_key(name) {
                return Err(SnapshotError::AlreadyExists(name.clone()));
            }
            let (rec, _) = Self::expect_active(db, key)?;
            if let Some(p) = &rec.parent {
                return Err(SnapshotError::HasParent { key: key.clone(), parent: p.clone() });
            }
            // The parent as `prepare` would have checked it.
            let parents = Self::check_create(db, name, Some(parent))?;
            Ok((rec.id, parents))
        };
        let (id, parents) = check(&self.meta.read()?)?;
        let usage = self.driver.commit(id, &parents).map_err(drv)?;
        let (lock, mut db) = self.meta.begin()?;
        if check(&db)? != (id, parents) {
            // Removed and prepared again, or the parent replaced, meanwhile.
            return Err(SnapshotError::NotFound(key.clone()));
        }
        let mut rec = db.snapshots.remove(key).expect("looked up above");
        rec.kind = Kind::Committed;
        rec.parent = Some(parent.clone());
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
            // Bytes of a create still under way are not debris.
            let path = self.creating_lock(id);
            let Some(_creating) = FileLock::try_exclusive(&path).map_err(|e| crate::root::RootError::io(&path, e))?
            else {
                continue;
            };
            let _ = std::fs::remove_file(&path);
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
