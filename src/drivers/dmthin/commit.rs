//! Committing an active snapshot, also while it is still mounted (containerd
//! allows that: a client may commit before it unmounts).
//!
//! Unmounted, the active device is removed and its thin device becomes the
//! committed one. Mounted, the device cannot be removed (`EBUSY`), and the
//! mount may still write, so the committed snapshot must not be that thin
//! device: the commit suspends the device — which freezes the mounted
//! filesystem, writing out its dirty data and journal — takes a thin
//! snapshot of it (`create_snap`) while suspended, and resumes. The new
//! thin device, a clean and never again written filesystem, is the
//! committed snapshot. The old one is *retired*: its dm device is renamed
//! (so the snapshot's name is free at once for read-only activations, and
//! a later activation can never pick up the old, writable device) and
//! removed with `DM_DEFERRED_REMOVE`, so it goes away when its last mount
//! does; the next driver call that finds it gone deletes the old thin
//! device from the pool.
//!
//! Crash windows: the state file records the new thin device before the
//! rename, so a crash between the two leaves the old, renamed-to-be device
//! under the snapshot's name until it is unmounted (the pool's data stays
//! consistent; the retired thin device is deleted once unused).

use super::pool::{self, ThinId};
use super::state::{Device, Pending, State};
use super::{dm, Dmthin, DmthinError};
use crate::snapshot::{SnapshotId, Usage};
use crate::sys::dm::{RemoveFlags, Sectors};
use crate::sys::Errno;

impl Dmthin {
    pub(super) fn commit_snapshot(&self, id: SnapshotId, parents: &[SnapshotId]) -> Result<Usage, DmthinError> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        self.reap_retired(&mut st)?;
        let dev = Self::device(&st, Some(id))?;
        self.unmount_kept(id)?;
        let name = self.name(id);
        let open = self.ctl.dev_status(&name).map_err(dm("status", &name))?.is_some_and(|i| i.open_count > 0);
        let (thin, mapped) = if open {
            self.commit_mounted(&mut st, id, dev.thin, &name)?
        } else {
            self.activate(&name, dev.thin, false)?;
            let mapped = self.mapped(&name)?;
            // A pool that ran out of space failed some of the layer's writes.
            self.check_pool()?;
            match pool::deactivate(&self.ctl, &name) {
                // Mounted meanwhile (by a container runtime).
                Err(e) if Errno::from_io_error(&e) == Some(Errno::BUSY) => {
                    self.commit_mounted(&mut st, id, dev.thin, &name)?
                }
                other => {
                    other.map_err(dm("remove", &name))?;
                    (dev.thin, mapped)
                }
            }
        };
        st.devices.insert(id.0, Device { thin, mapped: Some(mapped.0) });
        let parent = Self::device(&st, parents.first().copied())?.mapped;
        self.save(&st)?;
        Ok(Usage { size: State::exclusive_bytes(mapped, parent), inodes: 0 })
    }

    /// Commits `id`'s device `name` (thin `old`), which is open: snapshots
    /// it while suspended, records the snapshot as `id`'s device and retires
    /// `old` (see the module doc). Returns the new thin ID and its mapped
    /// sectors.
    fn commit_mounted(
        &self,
        st: &mut State,
        id: SnapshotId,
        old: ThinId,
        name: &str,
    ) -> Result<(ThinId, Sectors), DmthinError> {
        let thin = st.allocate().ok_or_else(|| DmthinError::ThinIdsExhausted(self.pool.clone()))?;
        let mut mapped = Sectors(0);
        // Not recorded as `id`'s device until the snapshot exists: a crash
        // before that deletes it again (State::repair) and `id` stays active.
        let made = self.pool_change(st, Pending::Create(thin), || {
            self.ctl.suspend(name).map_err(dm("suspend", name))?;
            let r = (|| {
                self.message(&format!("create_snap {thin} {old}"))?;
                mapped = self.mapped(name)?;
                self.check_pool().map(|_| ())
            })();
            self.ctl.resume(name).map_err(dm("resume", name))?;
            r
        });
        if let Err(e) = made {
            let _ = self.repair(st);
            return Err(e);
        }
        st.devices.insert(id.0, Device { thin, mapped: Some(mapped.0) });
        st.retired.push(old);
        self.save(st)?;
        let retired = State::retired_name(&self.prefix, old);
        self.ctl.dev_rename(name, &retired).map_err(dm("rename", name))?;
        pool::remove_node(name).map_err(dm("remove node", name))?;
        self.ctl.dev_remove_with(&retired, RemoveFlags::DEFERRED).map_err(dm("deferred remove", &retired))?;
        Ok((thin, mapped))
    }

    /// Deletes the retired thin devices whose dm device is gone (their last
    /// mount went). Called with the driver lock held.
    pub(super) fn reap_retired(&self, st: &mut State) -> Result<(), DmthinError> {
        for thin in st.retired.clone() {
            let name = State::retired_name(&self.prefix, thin);
            if self.ctl.dev_status(&name).map_err(dm("status", &name))?.is_some() {
                continue;
            }
            let _ = pool::remove_node(&name);
            let before = st.clone();
            st.retired.retain(|t| *t != thin);
            if self.pool_change(st, Pending::Delete(thin), || self.delete_thin(thin)).is_err() {
                // Still open through another device (a crash between a
                // commit's save and rename): next time. The pool's
                // transaction ID did not move.
                *st = before;
                self.save(st)?;
            }
        }
        Ok(())
    }
}
