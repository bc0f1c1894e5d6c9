//! The driver's own record of its thin devices, `<home>/dmthin-state.json`,
//! and how it is kept in step with the pool.
//!
//! The pool's metadata holds a 64-bit transaction ID that only changes
//! through `set_transaction_id <old> <new>`. Every change to the pool's set
//! of thin devices is:
//!
//! 1. this file is replaced (durably) with the new device map, the
//!    transaction ID incremented and the operation recorded as `pending`;
//! 2. the pool message (`create_thin`, `create_snap`, `delete`);
//! 3. `set_transaction_id <old> <new>`.
//!
//! After a crash, a pool whose transaction ID is behind this file's shows
//! that step 2 may or may not have happened: [`State::repair`] finishes or
//! undoes the pending operation (a `delete` is sent again; a half-made base
//! device is deleted) and moves the pool's ID forward. Thin devices of
//! snapshots the snapshot metadata never recorded are then removed by
//! `Snapshotter::cleanup` through `Driver::list`. Thin IDs are handed out
//! by a counter that only grows, so `1..next_thin` bounds every ID the
//! pool can hold; [`super::Dmthin::pool_thin_ids`] probes that range.

use super::pool::ThinId;
use crate::sys::dm::Sectors;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One thin device strata made.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub thin: ThinId,
    /// Mapped sectors, recorded when the device was frozen (commit, or the
    /// base after mkfs); children's usage is counted from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<u64>,
}

/// A pool change that may not have completed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Pending {
    Create(ThinId),
    Delete(ThinId),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// The pool transaction ID this file corresponds to.
    pub transaction_id: u64,
    /// Next thin ID to hand out (never reused).
    pub next_thin: u32,
    /// The formatted base device every parentless snapshot starts from.
    pub base: Option<Device>,
    /// Thin devices by snapshot ID.
    pub devices: BTreeMap<u64, Device>,
    /// Thin devices of snapshots committed while mounted: the commit took
    /// a snapshot of the live device, and the old device, still mounted
    /// (its dm device renamed with [`State::retired_name`] and removed
    /// when the last mount goes), is deleted once its dm device is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<ThinId>,
    pub pending: Option<Pending>,
}

impl Default for State {
    fn default() -> State {
        State {
            transaction_id: 0,
            next_thin: 1,
            base: None,
            devices: BTreeMap::new(),
            retired: Vec::new(),
            pending: None,
        }
    }
}

impl State {
    /// Hands out the next thin ID.
    pub fn allocate(&mut self) -> Option<ThinId> {
        let id = ThinId::new(self.next_thin)?;
        self.next_thin += 1;
        Some(id)
    }

    /// Whether `thin` belongs to the base or a recorded snapshot, or is
    /// retired (deleted later).
    pub fn knows(&self, thin: ThinId) -> bool {
        self.base.is_some_and(|b| b.thin == thin)
            || self.devices.values().any(|d| d.thin == thin)
            || self.retired.contains(&thin)
    }

    /// The dm name a retired thin device's activation goes by, under the
    /// home's device prefix: never a snapshot's name, so the snapshot can
    /// be activated again while the retired device waits for its mounts.
    pub fn retired_name(prefix: &str, thin: ThinId) -> String {
        format!("{prefix}-retired-{thin}")
    }

    /// What must happen to bring the pool in line with this file, given the
    /// pool's transaction ID: thin IDs to delete (tolerating absence).
    pub fn repair(&self, pool_transaction: u64) -> Vec<ThinId> {
        match self.pending {
            // Interrupted (or completed without its transaction ID): delete
            // again; a missing device is fine.
            Some(Pending::Delete(t)) if pool_transaction != self.transaction_id => vec![t],
            // A creation nothing records (the base before its mkfs
            // finished, or a failed create): remove whatever exists.
            Some(Pending::Create(t)) if !self.knows(t) => vec![t],
            _ => Vec::new(),
        }
    }

    /// `thin`'s usage in bytes on top of `parent` (mapped sectors minus
    /// the parent's, never negative).
    pub fn exclusive_bytes(mapped: Sectors, parent: Option<u64>) -> u64 {
        Sectors(mapped.0.saturating_sub(parent.unwrap_or(0))).bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u32) -> ThinId {
        ThinId::new(n).unwrap()
    }

    #[test]
    fn repair_redoes_an_interrupted_delete_only_when_behind() {
        let s = State { transaction_id: 5, pending: Some(Pending::Delete(t(3))), ..State::default() };
        assert_eq!(s.repair(4), vec![t(3)]);
        assert!(s.repair(5).is_empty());
    }

    #[test]
    fn repair_removes_unrecorded_creations() {
        let mut s = State { transaction_id: 2, pending: Some(Pending::Create(t(1))), ..State::default() };
        assert_eq!(s.repair(1), vec![t(1)]);
        assert_eq!(s.repair(2), vec![t(1)]);
        s.devices.insert(7, Device { thin: t(1), mapped: None });
        assert!(s.repair(1).is_empty());
    }

    #[test]
    fn allocation_never_reuses() {
        let mut s = State::default();
        let a = s.allocate().unwrap();
        let b = s.allocate().unwrap();
        assert!(b > a);
        s.next_thin = ThinId::MAX + 1;
        assert!(s.allocate().is_none());
    }
}
