//! [`Store`]: containerd's snapshot model (string keys and names, labels,
//! created/updated times) over one strata [`Snapshotter`].
//!
//! containerd's keys are arbitrary text (`default/5/extract-… sha256:…`,
//! absolute paths in its test suite), so they never reach a path or a
//! strata key as they are: each is stored in this module's own document,
//! `<home>/containerd.json`, and its snapshot lives under the strata key
//! `ctr-<sha256 of the containerd key>` ([`strata_key`]).
//!
//! Locking: the records are held in memory behind a mutex taken only to
//! check or change records (and to write the small document); the
//! snapshot contract's work (creating, copying, committing, measuring,
//! removing bytes) runs with the mutex released. A call is checked first,
//! then done by the snapshotter (which decides races on its own metadata
//! lock: two prepares of one key, a remove racing a child's prepare), then
//! recorded. [`Store::open`] and [`Store::cleanup`] reconcile the two
//! documents after a crash between those steps.

use super::filter::{Fields, Filters};
use super::ProxyError;
use crate::mount::Mount;
use crate::root::{atomic_write_json, atomic_write_json_volatile, read_json};
use crate::snapshot::{Kind, SnapshotError, SnapshotKey, Snapshotter, Usage};
use crate::sys::lock::FileLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

/// The label containerd's unpacker sets on Prepare: the name the layer
/// will be committed as. Present and committed means the layer is there.
pub const SNAPSHOT_REF_LABEL: &str = "containerd.io/snapshot.ref";

/// One snapshot as containerd sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    /// Empty for a snapshot without parent, as containerd writes it.
    pub parent: String,
    pub kind: Kind,
    pub labels: BTreeMap<String, String>,
    pub created: SystemTime,
    pub updated: SystemTime,
}

impl Fields for Info {
    fn field(&self, path: &[String]) -> Option<String> {
        match path.first()?.as_str() {
            "name" => Some(self.name.clone()),
            "parent" => Some(self.parent.clone()),
            "kind" => Some(self.kind.to_string()),
            "labels" if !self.labels.is_empty() => self.labels.get(&path[1..].join(".")).cloned(),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Records {
    snapshots: BTreeMap<String, Info>,
}

/// containerd's snapshots of one driver home.
pub struct Store {
    snapshots: Snapshotter,
    records: Mutex<Records>,
    file: PathBuf,
    /// Held for the store's life: one server per home.
    _owner: FileLock,
}

/// The strata key a containerd key or name is stored under.
pub fn strata_key(name: &str) -> SnapshotKey {
    SnapshotKey::new(format!("ctr-{}", hex::encode(Sha256::digest(name.as_bytes()))))
        .expect("64 hex digits are a valid key")
}

/// Labels as containerd stores them: an empty value is no label.
fn labels(given: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    given.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

impl Store {
    /// Opens the records beside `snapshots`' metadata, refusing a home
    /// another server holds, and reconciles them with the snapshotter.
    pub fn open(snapshots: Snapshotter) -> Result<Store, ProxyError> {
        let lock = snapshots.home().join("containerd.lock");
        let owner = FileLock::try_exclusive(&lock)
            .map_err(|e| ProxyError::Io(crate::root::IoError::new(&lock, e)))?
            .ok_or_else(|| ProxyError::Busy(snapshots.home().to_owned()))?;
        let file = snapshots.home().join("containerd.json");
        let records = read_json(&file)?.unwrap_or_default();
        let store = Store { snapshots, records: Mutex::new(records), file, _owner: owner };
        store.reconcile()?;
        Ok(store)
    }

    pub fn snapshotter(&self) -> &Snapshotter {
        &self.snapshots
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock leaves records that are still
        // whole (every change is a single map operation).
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, records: &Records, durable: bool) -> Result<(), ProxyError> {
        if durable {
            atomic_write_json(&self.file, records)?;
        } else {
            atomic_write_json_volatile(&self.file, records)?;
        }
        Ok(())
    }

    /// Makes a writable (`Kind::Active`) or read-only (`Kind::View`)
    /// snapshot `key` on `parent` (empty: none).
    pub fn create(
        &self,
        kind: Kind,
        key: &str,
        parent: &str,
        given: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<Mount>, ProxyError> {
        let labels = labels(given);
        if key.is_empty() {
            return Err(ProxyError::InvalidArgument("snapshot key is empty".into()));
        }
        {
            let records = self.records();
            if records.snapshots.contains_key(key) {
                return Err(ProxyError::AlreadyExists(key.into()));
            }
            if let Some(target) = labels.get(SNAPSHOT_REF_LABEL) {
                if records.snapshots.get(target).is_some_and(|i| i.kind == Kind::Committed) {
                    return Err(ProxyError::AlreadyExists(target.clone()));
                }
            }
            if !parent.is_empty() {
                let p = records.snapshots.get(parent).ok_or_else(|| ProxyError::NotFound(parent.into()))?;
                if p.kind != Kind::Committed {
                    return Err(ProxyError::InvalidArgument(format!("parent {parent:?} is {}, not committed", p.kind)));
                }
            }
        }
        let skey = strata_key(key);
        let sparent = (!parent.is_empty()).then(|| strata_key(parent));
        let made = match kind {
            Kind::View => self.snapshots.view(&skey, sparent.as_ref()),
            _ => self.snapshots.prepare(&skey, sparent.as_ref()),
        };
        let mounts = made.map_err(|e| ProxyError::from_snapshot(key, e))?;
        let now = SystemTime::now();
        let info = Info { name: key.into(), parent: parent.into(), kind, labels, created: now, updated: now };
        let mut records = self.records();
        records.snapshots.insert(key.into(), info);
        if let Err(e) = self.save(&records, false) {
            records.snapshots.remove(key);
            drop(records);
            let _ = self.snapshots.remove(&skey);
            return Err(e);
        }
        Ok(mounts)
    }

    /// Commits active snapshot `key` as `name` with `given` labels.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        given: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ProxyError> {
        if name.is_empty() {
            return Err(ProxyError::InvalidArgument("snapshot name is empty".into()));
        }
        let parent = {
            let records = self.records();
            if records.snapshots.contains_key(name) {
                return Err(ProxyError::AlreadyExists(name.into()));
            }
            let active = records.snapshots.get(key).ok_or_else(|| ProxyError::NotFound(key.into()))?;
            if active.kind != Kind::Active {
                return Err(ProxyError::FailedPrecondition(format!("snapshot {key:?} is {}, not active", active.kind)));
            }
            active.parent.clone()
        };
        self.snapshots.commit(&strata_key(name), &strata_key(key)).map_err(|e| ProxyError::from_snapshot(key, e))?;
        let now = SystemTime::now();
        let info = Info {
            name: name.into(),
            parent,
            kind: Kind::Committed,
            labels: labels(given),
            created: now,
            updated: now,
        };
        let mut records = self.records();
        records.snapshots.remove(key);
        records.snapshots.insert(name.into(), info);
        self.save(&records, true)
    }

    /// Removes a snapshot nothing is built on.
    pub fn remove(&self, key: &str) -> Result<(), ProxyError> {
        {
            let records = self.records();
            let info = records.snapshots.get(key).ok_or_else(|| ProxyError::NotFound(key.into()))?;
            let children = records.snapshots.values().filter(|i| i.parent == key).count();
            if children > 0 {
                return Err(ProxyError::FailedPrecondition(format!(
                    "cannot remove {} snapshot {key:?}: it has {children} child snapshot(s)",
                    info.kind
                )));
            }
        }
        match self.snapshots.remove(&strata_key(key)) {
            Ok(()) | Err(SnapshotError::NotFound(_)) => {}
            Err(e) => return Err(ProxyError::from_snapshot(key, e)),
        }
        let mut records = self.records();
        let durable = records.snapshots.remove(key).is_some_and(|i| i.kind == Kind::Committed);
        self.save(&records, durable)
    }

    pub fn stat(&self, key: &str) -> Result<Info, ProxyError> {
        self.records().snapshots.get(key).cloned().ok_or_else(|| ProxyError::NotFound(key.into()))
    }

    /// containerd's Update: only labels change. No field paths replace
    /// all labels; `labels` replaces them, `labels.<k>` sets or (absent
    /// or empty in `info`) deletes one.
    pub fn update(&self, info: Info, paths: &[String]) -> Result<Info, ProxyError> {
        let mut records = self.records();
        let current = records.snapshots.get_mut(&info.name).ok_or_else(|| ProxyError::NotFound(info.name.clone()))?;
        let mut updated = current.labels.clone();
        if paths.is_empty() {
            updated = labels(info.labels);
        } else {
            for path in paths {
                if path == "labels" {
                    updated = labels(info.labels.clone());
                } else if let Some(k) = path.strip_prefix("labels.") {
                    match info.labels.get(k).filter(|v| !v.is_empty()) {
                        Some(v) => updated.insert(k.into(), v.clone()),
                        None => updated.remove(k),
                    };
                } else {
                    return Err(ProxyError::InvalidArgument(format!(
                        "cannot update field {path:?} of snapshot {:?}: only labels change",
                        info.name
                    )));
                }
            }
        }
        current.labels = updated;
        current.updated = SystemTime::now();
        let out = current.clone();
        let durable = out.kind == Kind::Committed;
        self.save(&records, durable)?;
        Ok(out)
    }

    /// Space `key` holds on its own (the snapshot contract's usage: the
    /// driver's fastest exact source, recorded at commit).
    pub fn usage(&self, key: &str) -> Result<Usage, ProxyError> {
        self.stat(key)?;
        self.snapshots.usage(&strata_key(key)).map_err(|e| ProxyError::from_snapshot(key, e))
    }

    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, ProxyError> {
        self.stat(key)?;
        self.snapshots.mounts(&strata_key(key)).map_err(|e| ProxyError::from_snapshot(key, e))
    }

    /// Every snapshot a filter admits, in name order.
    pub fn list(&self, filters: &Filters) -> Vec<Info> {
        self.records().snapshots.values().filter(|i| filters.matches(*i)).cloned().collect()
    }

    /// Removes what no record names: records whose snapshot is gone,
    /// strata snapshots no record names, and bytes no snapshot owns.
    /// Returns how many of each it removed.
    pub fn cleanup(&self) -> Result<usize, ProxyError> {
        let n = self.reconcile()?;
        Ok(n + self.snapshots.cleanup().map_err(|e| ProxyError::from_snapshot("(cleanup)", e))?)
    }

    fn reconcile(&self) -> Result<usize, ProxyError> {
        let mut present = BTreeMap::new();
        self.snapshots
            .walk(|i| {
                present.insert(i.key.clone(), i.parent.is_some());
            })
            .map_err(|e| ProxyError::from_snapshot("(walk)", e))?;
        let mut removed = 0;
        {
            let mut records = self.records();
            let before = records.snapshots.len();
            records.snapshots.retain(|name, _| present.contains_key(&strata_key(name)));
            if records.snapshots.len() != before {
                removed += before - records.snapshots.len();
                self.save(&records, true)?;
            }
            let named: std::collections::HashSet<SnapshotKey> =
                records.snapshots.keys().map(|n| strata_key(n)).collect();
            present.retain(|k, _| k.as_str().starts_with("ctr-") && !named.contains(k));
        }
        // Unrecorded strata snapshots (a crash after the snapshotter made
        // one and before it was recorded): children first.
        let mut orphans: Vec<SnapshotKey> = present.into_keys().collect();
        while !orphans.is_empty() {
            let before = orphans.len();
            orphans.retain(|k| match self.snapshots.remove(k) {
                Ok(()) => {
                    removed += 1;
                    false
                }
                Err(_) => true,
            });
            if orphans.len() == before {
                break;
            }
        }
        Ok(removed)
    }

    /// The home the records and snapshots live in.
    pub fn home(&self) -> &Path {
        self.snapshots.home()
    }
}
