//! The device-mapper thin driver: every snapshot is a thin device in one
//! pool, a snapshot of its parent's (`create_snap`), so a write copies one
//! pool block (64 KiB by default), never a whole file.
//!
//! ```text
//! <root>/dmthin/
//! ├── metadata.json, metadata.lock   (shared snapshot metadata)
//! ├── dmthin.json                    optional pool settings (pool::Config)
//! ├── dmthin-state.json, dmthin.lock thin IDs by snapshot, transaction ID
//! ├── pool/{data,metadata}           sparse files behind the pool's loop
//! │                                  devices (when no devices are given)
//! └── mnt/<id>/                      mounts kept for diffs (released after)
//! ```
//!
//! Devices are named `strata-<12 hex of the home path's sha256>-<id>`
//! (`-pool`, `-base`, `-probe`), so several data roots share one kernel.
//! The base device is formatted once (ext4, or xfs); a snapshot without a
//! parent is a snapshot of the base. Active snapshots stay activated;
//! committed ones are deactivated and activated read-only when something
//! reads them. Mounts are returned as data (`/dev/mapper/<name>`, fs type).
//! Usage is the thin target's mapped sectors minus the parent's, recorded
//! when the parent was committed — what the kernel knows, no file walk.
//! A snapshot committed while mounted: see [`commit`]. Crash safety: see
//! [`state`].

pub mod pool;
mod state;

use crate::mount::Mount;
use crate::root::{IoError, IoResultExt, RootError};
use crate::snapshot::{DriverError, SnapshotId};
use crate::sys::dm::{Control, DevInfo, Sectors};
use crate::sys::lock::FileLock;
use pool::{BaseFs, Config, PoolStatus, ThinId};
use sha2::Digest as _;
use state::{Device, Pending, State};
use std::io;
use std::path::{Path, PathBuf};

/// Failures of the dm-thin driver.
#[derive(Debug, thiserror::Error)]
pub enum DmthinError {
    #[error("no device-mapper on this kernel (/dev/mapper/control: {0}); modprobe dm-thin-pool")]
    NoDeviceMapper(io::Error),
    #[error("device-mapper {op} on {device}: {source}")]
    Dm { op: &'static str, device: String, source: io::Error },
    #[error("thin pool {pool} is out of data space ({used}/{total} blocks used); writes fail until it grows")]
    PoolFull { pool: String, used: u64, total: u64 },
    #[error("thin pool {pool} is {mode}: its metadata needs repair (thin_check)")]
    PoolFailed { pool: String, mode: String },
    #[error("thin pool {pool}: unreadable status {status:?}")]
    PoolStatus { pool: String, status: String },
    #[error("snapshot {0} has no thin device")]
    NoDevice(SnapshotId),
    #[error("thin pool {0} has used all 2^24 thin IDs")]
    ThinIdsExhausted(String),
    #[error("{tool} on {device}: {detail}")]
    Mkfs { tool: &'static str, device: PathBuf, detail: String },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    State(#[from] RootError),
}

impl From<DmthinError> for DriverError {
    fn from(e: DmthinError) -> DriverError {
        DriverError::Backend(Box::new(e))
    }
}

fn dm(op: &'static str, device: &str) -> impl FnOnce(io::Error) -> DmthinError {
    let device = device.to_owned();
    move |source| DmthinError::Dm { op, device, source }
}

pub struct Dmthin {
    home: PathBuf,
    cfg: Config,
    prefix: String,
    pool: String,
    ctl: Control,
    /// This process's holds on kept mounts (see `kept`), by snapshot.
    held: std::sync::Mutex<std::collections::HashMap<u64, Vec<FileLock>>>,
}

impl std::fmt::Debug for Dmthin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dmthin").field("home", &self.home).field("pool", &self.pool).finish()
    }
}

impl Dmthin {
    /// Opens the driver at `home` with [`Config::load`]'s settings.
    pub fn new(home: &Path) -> Result<Dmthin, DriverError> {
        let cfg = Config::load(home)?;
        Dmthin::with_config(home, cfg)
    }

    /// Opens the driver with explicit settings: activates (or creates) the
    /// pool, repairs what a crash left half done, makes the base device.
    pub fn with_config(home: &Path, cfg: Config) -> Result<Dmthin, DriverError> {
        cfg.validate()?;
        std::fs::create_dir_all(home).map_err(|e| DriverError::io(home, e))?;
        let ctl = Control::open().map_err(DmthinError::NoDeviceMapper)?;
        let canonical = home.canonicalize().map_err(|e| DriverError::io(home, e))?;
        let prefix = device_prefix(&canonical);
        let pool = cfg.pool.clone().unwrap_or_else(|| format!("{prefix}-pool"));
        let d = Dmthin { home: home.to_owned(), cfg, prefix, pool, ctl, held: Default::default() };
        let _lock = d.lock()?;
        d.sweep_kept()?;
        d.ensure_pool()?;
        let mut st = d.load()?;
        d.repair(&mut st)?;
        d.reap_retired(&mut st)?;
        d.ensure_base(&mut st)?;
        Ok(d)
    }

    fn lock(&self) -> Result<FileLock, DmthinError> {
        let p = self.home.join("dmthin.lock");
        Ok(FileLock::exclusive(&p).at(&p)?)
    }
    fn state_path(&self) -> PathBuf {
        self.home.join("dmthin-state.json")
    }
    fn load(&self) -> Result<State, DmthinError> {
        Ok(crate::root::read_json(&self.state_path())?.unwrap_or_default())
    }
    fn save(&self, st: &State) -> Result<(), DmthinError> {
        Ok(crate::root::atomic_write_json(&self.state_path(), st)?)
    }

    /// The pool's device-mapper name.
    pub fn pool_name(&self) -> &str {
        &self.pool
    }
    fn name(&self, id: SnapshotId) -> String {
        format!("{}-{id}", self.prefix)
    }
    fn base_name(&self) -> String {
        format!("{}-base", self.prefix)
    }
    fn kept(&self, id: SnapshotId) -> PathBuf {
        self.home.join("mnt").join(id.to_string())
    }

    fn ensure_pool(&self) -> Result<DevInfo, DmthinError> {
        match self.ctl.dev_status(&self.pool).map_err(dm("status", &self.pool))? {
            Some(i) if i.has_table => Ok(i),
            _ if self.cfg.pool.is_some() => Err(DmthinError::Dm {
                op: "open existing pool",
                device: self.pool.clone(),
                source: crate::sys::Errno::NXIO.into(),
            }),
            Some(_) => {
                // A pool device left without a table by a crash mid-create.
                self.ctl.dev_remove(&self.pool).map_err(dm("remove", &self.pool))?;
                self.create_pool()
            }
            None => self.create_pool(),
        }
    }

    fn create_pool(&self) -> Result<DevInfo, DmthinError> {
        let dir = self.home.join("pool");
        pool::create_pool(&self.ctl, &self.pool, &self.cfg, &dir).map_err(dm("create pool", &self.pool))
    }

    fn pool_info(&self) -> Result<DevInfo, DmthinError> {
        self.ctl.dev_status(&self.pool).map_err(dm("status", &self.pool))?.ok_or_else(|| DmthinError::Dm {
            op: "status",
            device: self.pool.clone(),
            source: crate::sys::Errno::NXIO.into(),
        })
    }

    /// The pool target's status.
    pub fn pool_status(&self) -> Result<PoolStatus, DmthinError> {
        let targets = self.ctl.table_status(&self.pool).map_err(dm("table status", &self.pool))?;
        let line = targets.first().map(|t| t.params.clone()).unwrap_or_default();
        PoolStatus::parse(&line).ok_or(DmthinError::PoolStatus { pool: self.pool.clone(), status: line })
    }

    /// Fails with a clear error when the pool cannot take writes.
    fn check_pool(&self) -> Result<PoolStatus, DmthinError> {
        let s = self.pool_status()?;
        match s.mode.as_str() {
            "rw" => Ok(s),
            "out_of_data_space" => {
                Err(DmthinError::PoolFull { pool: self.pool.clone(), used: s.data_used, total: s.data_total })
            }
            other => Err(DmthinError::PoolFailed { pool: self.pool.clone(), mode: other.to_owned() }),
        }
    }

    fn message(&self, msg: &str) -> Result<(), DmthinError> {
        self.ctl.target_msg(&self.pool, Sectors(0), msg).map(|_| ()).map_err(|source| DmthinError::Dm {
            op: "message",
            device: format!("{} ({msg})", self.pool),
            source,
        })
    }

    /// `delete <thin>`; a device that does not exist (`ENODATA`) is fine.
    fn delete_thin(&self, thin: ThinId) -> Result<(), DmthinError> {
        match self.message(&format!("delete {thin}")) {
            Err(DmthinError::Dm { source, .. })
                if crate::sys::Errno::from_io_error(&source) == Some(crate::sys::Errno::NODATA) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// One change to the pool's thin devices, bracketed by the state file
    /// and the pool's transaction ID (see [`state`]).
    fn pool_change(
        &self,
        st: &mut State,
        pending: Pending,
        change: impl FnOnce() -> Result<(), DmthinError>,
    ) -> Result<(), DmthinError> {
        let old = st.transaction_id;
        st.transaction_id += 1;
        st.pending = Some(pending);
        self.save(st)?;
        change()?;
        self.message(&format!("set_transaction_id {old} {}", st.transaction_id))
    }

    /// Brings the pool in line with the state file after a crash or a
    /// failed change.
    fn repair(&self, st: &mut State) -> Result<(), DmthinError> {
        let pool_txn = self.pool_status()?.transaction_id;
        if pool_txn == st.transaction_id && st.repair(pool_txn).is_empty() {
            return Ok(());
        }
        for thin in st.repair(pool_txn) {
            self.delete_thin(thin)?;
        }
        st.pending = None;
        if pool_txn != st.transaction_id {
            self.message(&format!("set_transaction_id {pool_txn} {}", st.transaction_id))?;
        }
        self.save(st)
    }

    fn mkfs(&self, dev: &Path) -> Result<(), DmthinError> {
        let (tool, args): (&'static str, &[&str]) = match self.cfg.fs {
            // Inode tables and journal written now, in the base, so no
            // snapshot's first mount starts zeroing them (lazy init would
            // unshare blocks in every container).
            BaseFs::Ext4 => ("mkfs.ext4", &["-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"]),
            BaseFs::Xfs => ("mkfs.xfs", &["-q", "-f", "-K"]),
        };
        let out = std::process::Command::new(tool).args(args).arg(dev).output().map_err(|e| DmthinError::Mkfs {
            tool,
            device: dev.to_owned(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            let detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(DmthinError::Mkfs { tool, device: dev.to_owned(), detail });
        }
        Ok(())
    }

    fn mount_of(&self, dev: &Path, readonly: bool) -> Mount {
        let mut options = vec![if readonly { "ro" } else { "rw" }.to_owned()];
        if self.cfg.fs == BaseFs::Xfs {
            // Every snapshot carries the base's UUID.
            options.push("nouuid".into());
        }
        Mount { kind: self.cfg.fs.name().into(), source: dev.display().to_string(), options }
    }

    fn activate(&self, name: &str, thin: ThinId, readonly: bool) -> Result<PathBuf, DmthinError> {
        let size = Sectors::from_bytes(self.cfg.base_size);
        pool::activate(&self.ctl, name, self.pool_info()?, thin, size, readonly).map_err(dm("activate", name))
    }

    fn mapped(&self, name: &str) -> Result<Sectors, DmthinError> {
        let t = self.ctl.table_status(name).map_err(dm("table status", name))?;
        let line = t.first().map(|t| t.params.clone()).unwrap_or_default();
        pool::parse_thin_mapped(&line).ok_or(DmthinError::PoolStatus { pool: name.to_owned(), status: line })
    }

    /// Makes the base device once: a thin device with a fresh filesystem.
    fn ensure_base(&self, st: &mut State) -> Result<(), DmthinError> {
        if st.base.is_some() {
            return Ok(());
        }
        let thin = st.allocate().ok_or_else(|| DmthinError::ThinIdsExhausted(self.pool.clone()))?;
        self.pool_change(st, Pending::Create(thin), || self.message(&format!("create_thin {thin}")))?;
        let name = self.base_name();
        let dev = self.activate(&name, thin, false)?;
        let made = (|| {
            self.mkfs(&dev)?;
            if self.cfg.fs == BaseFs::Ext4 {
                // lost+found would show up in every layer's diff.
                let dir = self.home.join("mnt").join("base");
                std::fs::create_dir_all(&dir).at(&dir)?;
                let m = crate::mount::TempMount::new(&[self.mount_of(&dev, false)], &dir).at(&dir)?;
                let lf = dir.join("lost+found");
                std::fs::remove_dir(&lf).at(&lf)?;
                m.unmount().at(&dir)?;
            }
            self.mapped(&name)
        })();
        pool::deactivate(&self.ctl, &name).map_err(dm("remove", &name))?;
        let mapped = made?;
        st.base = Some(Device { thin, mapped: Some(mapped.0) });
        self.save(st)
    }

    /// The thin device of `id`, or of the base for `None`.
    fn device(st: &State, id: Option<SnapshotId>) -> Result<Device, DmthinError> {
        match id {
            Some(id) => st.devices.get(&id.0).copied().ok_or(DmthinError::NoDevice(id)),
            None => st.base.ok_or(DmthinError::NoDevice(SnapshotId(0))),
        }
    }

    /// Deactivates and deletes `id`'s thin device and forgets it.
    fn destroy(&self, st: &mut State, id: SnapshotId) -> Result<(), DmthinError> {
        let Some(dev) = st.devices.get(&id.0).copied() else { return Ok(()) };
        self.unmount_kept(id)?;
        let name = self.name(id);
        match pool::deactivate(&self.ctl, &name) {
            Err(e) if crate::sys::Errno::from_io_error(&e) == Some(crate::sys::Errno::BUSY) => {
                // Mounted where a killed strata left it (a layer apply's
                // staging mount): nothing live owns such a mount.
                self.unmount_stale(&name)?;
                pool::deactivate(&self.ctl, &name).map_err(dm("remove", &name))?;
            }
            other => other.map_err(dm("remove", &name))?,
        }
        st.devices.remove(&id.0);
        self.pool_change(st, Pending::Delete(dev.thin), || self.delete_thin(dev.thin))
    }

    /// Thin IDs that exist in the pool, probed over every ID strata ever
    /// handed out (`1..next_thin`): the independent check that no thin
    /// device outlives strata's records.
    pub fn pool_thin_ids(&self) -> Result<Vec<(ThinId, Option<SnapshotId>)>, DriverError> {
        let _lock = self.lock()?;
        let mut st = self.load()?;
        self.reap_retired(&mut st)?;
        let pool = self.pool_info()?;
        let probe = format!("{}-probe", self.prefix);
        let mut out = Vec::new();
        for n in 1..st.next_thin {
            let thin = ThinId::new(n).expect("below next_thin");
            if pool::thin_exists(&self.ctl, &probe, pool, thin).map_err(dm("probe", &probe))? {
                let owner = st.devices.iter().find(|(_, d)| d.thin == thin).map(|(id, _)| SnapshotId(*id));
                out.push((thin, owner));
            }
        }
        Ok(out)
    }

    /// Whether `thin` is the base device.
    pub fn is_base(&self, thin: ThinId) -> Result<bool, DriverError> {
        Ok(self.load()?.base.is_some_and(|b| b.thin == thin))
    }
}

/// `strata-<12 hex digits of sha256(home)>`: the names of one home's
/// devices start with it.
fn device_prefix(canonical_home: &Path) -> String {
    let hash = sha2::Sha256::digest(canonical_home.as_os_str().as_encoded_bytes());
    format!("strata-{}", &hex::encode(hash)[..12])
}

mod commit;
mod driver;
mod exclusive;
mod kept;
pub mod metadata;

pub use kept::shut_down;
