//! The shared snapshot metadata: one JSON document per driver home,
//! `<root>/<driver>/metadata.json`, read and replaced atomically under
//! `<root>/<driver>/metadata.lock`.
//!
//! A single document keeps walks and parent/child checks trivial and the
//! update atomic; it is a few hundred bytes per snapshot, so a host with ten
//! thousand snapshots rewrites about 2 MiB per change.

use super::{Info, Kind, SnapshotId, SnapshotKey, Usage};
use crate::root::{atomic_write_json, atomic_write_json_volatile, read_json, RootError};
use crate::sys::lock::FileLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub id: SnapshotId,
    pub kind: Kind,
    pub parent: Option<SnapshotKey>,
    pub created: String,
    /// Recorded at commit; committed snapshots never change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Db {
    pub next_id: u64,
    pub snapshots: BTreeMap<SnapshotKey, Record>,
}

impl Db {
    pub fn info(&self, key: &SnapshotKey) -> Option<Info> {
        self.snapshots.get(key).map(|r| Info {
            key: key.clone(),
            parent: r.parent.clone(),
            kind: r.kind,
            id: r.id,
            created: r.created.clone(),
        })
    }

    /// IDs of `key`'s ancestors, nearest first (not including `key`).
    pub fn parent_ids(&self, key: &SnapshotKey) -> Vec<SnapshotId> {
        let mut out = Vec::new();
        let mut cur = self.snapshots.get(key).and_then(|r| r.parent.clone());
        while let Some(p) = cur {
            match self.snapshots.get(&p) {
                Some(r) => {
                    out.push(r.id);
                    cur = r.parent.clone();
                }
                None => break,
            }
        }
        out
    }

    pub fn children(&self, key: &SnapshotKey) -> usize {
        self.snapshots.values().filter(|r| r.parent.as_ref() == Some(key)).count()
    }
}

/// Handle on one driver home's metadata document.
#[derive(Debug, Clone)]
pub(super) struct MetaStore {
    file: PathBuf,
    lock: PathBuf,
}

impl MetaStore {
    pub fn new(home: &Path) -> MetaStore {
        MetaStore { file: home.join("metadata.json"), lock: home.join("metadata.lock") }
    }

    /// Takes the exclusive lock and loads the document.
    pub fn begin(&self) -> Result<(FileLock, Db), RootError> {
        let lock = FileLock::exclusive(&self.lock).map_err(|e| RootError::io(&self.lock, e))?;
        Ok((lock, self.load()?))
    }

    /// Loads under a shared lock (a consistent snapshot for readers).
    pub fn read(&self) -> Result<Db, RootError> {
        let _l = FileLock::shared(&self.lock).map_err(|e| RootError::io(&self.lock, e))?;
        self.load()
    }

    fn load(&self) -> Result<Db, RootError> {
        Ok(read_json(&self.file)?.unwrap_or_default())
    }

    /// Writes the document; the caller still holds the lock from `begin`.
    /// `durable` changes (anything touching a committed snapshot) are
    /// fsynced; changes to active/view snapshots only are not, since a
    /// crash that loses one leaves either debris `cleanup` removes or a
    /// record whose bytes are gone, which `remove` tolerates.
    pub fn save(&self, _held: &FileLock, db: &Db, durable: bool) -> Result<(), RootError> {
        if durable {
            atomic_write_json(&self.file, db)
        } else {
            atomic_write_json_volatile(&self.file, db)
        }
    }
}
