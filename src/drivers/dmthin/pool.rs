//! The thin pool: its configuration, creating it on loop devices over
//! sparse files (or adopting existing block devices or an existing pool),
//! thin device activation, pool messages and status parsing.
//!
//! Tables (Documentation/admin-guide/device-mapper/thin-provisioning.rst):
//!
//! ```text
//! pool: 0 <data sectors> thin-pool <metadata dev> <data dev> <block sectors> <low water mark> 1 error_if_no_space
//! thin: 0 <virtual sectors> thin <pool dev> <thin id>
//! ```
//!
//! `error_if_no_space` makes writes to a full pool fail at once instead of
//! queueing for 60 s (or forever), so a full pool is an error, not a hang.

use crate::snapshot::DriverError;
use crate::sys::dm::{Control, DevInfo, Sectors, Target};
use crate::sys::loopdev::LoopDevice;
use crate::sys::Errno;
use crate::units::parse_bytes;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// A thin device's ID inside its pool: 24 bits (`MAX_DEV_ID` in
/// drivers/md/dm-thin-metadata.h is `(1 << 24) - 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThinId(u32);

impl ThinId {
    pub const MAX: u32 = (1 << 24) - 1;
    pub fn new(id: u32) -> Option<ThinId> {
        (id <= Self::MAX).then_some(ThinId(id))
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for ThinId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The filesystem on the base device (and so on every snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseFs {
    Ext4,
    Xfs,
}

impl BaseFs {
    pub fn name(self) -> &'static str {
        match self {
            BaseFs::Ext4 => "ext4",
            BaseFs::Xfs => "xfs",
        }
    }
}

/// Pool settings: `<home>/dmthin.json` if present, then `STRATA_DMTHIN_*`
/// environment variables, then defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// An existing pool device to use instead of creating one.
    pub pool: Option<String>,
    /// Existing block devices for a new pool (instead of loop files).
    pub data_device: Option<PathBuf>,
    pub metadata_device: Option<PathBuf>,
    /// Sizes of the sparse loop files, in bytes.
    pub data_size: u64,
    pub metadata_size: u64,
    /// Pool block size in bytes (64 KiB .. 1 GiB, a multiple of 64 KiB).
    pub block_size: u64,
    /// Virtual size of every thin device, in bytes.
    pub base_size: u64,
    pub fs: BaseFs,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pool: None,
            data_device: None,
            metadata_device: None,
            data_size: 100 << 30,
            metadata_size: 1 << 30,
            block_size: 64 << 10,
            base_size: 10 << 30,
            fs: BaseFs::Ext4,
        }
    }
}

/// The size in environment variable `name`, if set; a value that is not a
/// size is an error naming the variable, never silently the default.
fn env_bytes(name: &str) -> Result<Option<u64>, DriverError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => parse_bytes(&v).map(Some).map_err(|_| {
            DriverError::Unsupported(format!("{name}={v:?} is not a size (bytes, or a number with K, M or G)"))
        }),
    }
}

impl Config {
    /// Reads `<home>/dmthin.json` (optional) and applies environment
    /// overrides: `STRATA_DMTHIN_POOL`, `STRATA_DMTHIN_DATA_DEVICE`,
    /// `STRATA_DMTHIN_METADATA_DEVICE`, `STRATA_DMTHIN_DATA_SIZE`,
    /// `STRATA_DMTHIN_METADATA_SIZE`, `STRATA_DMTHIN_BLOCK_SIZE`,
    /// `STRATA_DMTHIN_BASE_SIZE` (sizes accept K/M/G), `STRATA_DMTHIN_FS`
    /// (`ext4` or `xfs`).
    pub fn load(home: &Path) -> Result<Config, DriverError> {
        let file = home.join("dmthin.json");
        let mut cfg: Config = crate::root::read_json(&file)
            .map_err(|e| DriverError::Unsupported(format!("{}: {e}", file.display())))?
            .unwrap_or_default();
        if let Ok(p) = std::env::var("STRATA_DMTHIN_POOL") {
            cfg.pool = Some(p);
        }
        if let Some(p) = std::env::var_os("STRATA_DMTHIN_DATA_DEVICE") {
            cfg.data_device = Some(p.into());
        }
        if let Some(p) = std::env::var_os("STRATA_DMTHIN_METADATA_DEVICE") {
            cfg.metadata_device = Some(p.into());
        }
        let sizes: [(&str, &mut u64); 4] = [
            ("STRATA_DMTHIN_DATA_SIZE", &mut cfg.data_size),
            ("STRATA_DMTHIN_METADATA_SIZE", &mut cfg.metadata_size),
            ("STRATA_DMTHIN_BLOCK_SIZE", &mut cfg.block_size),
            ("STRATA_DMTHIN_BASE_SIZE", &mut cfg.base_size),
        ];
        for (name, slot) in sizes {
            if let Some(v) = env_bytes(name)? {
                *slot = v;
            }
        }
        match std::env::var("STRATA_DMTHIN_FS").as_deref() {
            Ok("xfs") => cfg.fs = BaseFs::Xfs,
            Ok("ext4") | Err(_) => {}
            Ok(other) => return Err(DriverError::Unsupported(format!("STRATA_DMTHIN_FS={other}: use ext4 or xfs"))),
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), DriverError> {
        let b = self.block_size;
        if !(64 << 10..=1 << 30).contains(&b) || b % (64 << 10) != 0 {
            return Err(DriverError::Unsupported(format!(
                "dm-thin block size {b} must be a multiple of 64 KiB between 64 KiB and 1 GiB"
            )));
        }
        if self.base_size < 64 << 20 {
            return Err(DriverError::Unsupported("dm-thin base size must be at least 64 MiB".into()));
        }
        Ok(())
    }

    pub fn block_sectors(&self) -> Sectors {
        Sectors::from_bytes(self.block_size)
    }
}

/// The pool target's status line: `<transaction id> <used meta>/<total
/// meta> <used data>/<total data> <held root> ro|rw|out_of_data_space …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub transaction_id: u64,
    pub metadata_used: u64,
    pub metadata_total: u64,
    pub data_used: u64,
    pub data_total: u64,
    /// `rw`, `ro` or `out_of_data_space` (or `Fail`).
    pub mode: String,
}

impl PoolStatus {
    pub fn parse(s: &str) -> Option<PoolStatus> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.first() == Some(&"Fail") {
            return Some(PoolStatus {
                transaction_id: 0,
                metadata_used: 0,
                metadata_total: 0,
                data_used: 0,
                data_total: 0,
                mode: "Fail".into(),
            });
        }
        let pair = |s: &str| -> Option<(u64, u64)> {
            let (a, b) = s.split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        let (metadata_used, metadata_total) = pair(f.get(1)?)?;
        let (data_used, data_total) = pair(f.get(2)?)?;
        Some(PoolStatus {
            transaction_id: f.first()?.parse().ok()?,
            metadata_used,
            metadata_total,
            data_used,
            data_total,
            mode: (*f.get(4)?).to_owned(),
        })
    }
}

/// `<nr mapped sectors> <highest mapped sector>` of a thin target ("-"
/// for the highest when nothing is mapped).
pub fn parse_thin_mapped(s: &str) -> Option<Sectors> {
    s.split_whitespace().next()?.parse().ok().map(Sectors)
}

/// A device's size from `/sys/dev/block/<major>:<minor>/size` (sectors).
pub fn device_sectors(major: u32, minor: u32) -> io::Result<Sectors> {
    let p = format!("/sys/dev/block/{major}:{minor}/size");
    let s = std::fs::read_to_string(&p)?;
    s.trim().parse().map(Sectors).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{p}: {s:?}")))
}

fn block_dev(path: &Path) -> io::Result<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(path)?;
    if !md.file_type().is_block_device() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a block device", path.display())));
    }
    Ok((crate::sys::fs::major(md.rdev()), crate::sys::fs::minor(md.rdev())))
}

/// Creates the pool device `name` on the configured block devices or on
/// loop devices over `<dir>/data` and `<dir>/metadata` (sparse files made
/// on first use). The loop devices use autoclear, so they go away with the
/// pool.
pub fn create_pool(ctl: &Control, name: &str, cfg: &Config, dir: &Path) -> io::Result<DevInfo> {
    let mut loops = Vec::new();
    let (meta, data) = match (&cfg.metadata_device, &cfg.data_device) {
        (Some(m), Some(d)) => (block_dev(m)?, block_dev(d)?),
        (None, None) => {
            std::fs::create_dir_all(dir)?;
            let mut attach = |file: &str, size: u64| -> io::Result<(u32, u32)> {
                let p = dir.join(file);
                let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p)?;
                if f.metadata()?.len() == 0 {
                    f.set_len(size)?;
                }
                drop(f);
                let dev = LoopDevice::attach(&p)?;
                let n = dev.number();
                loops.push(dev);
                Ok((7, n))
            };
            let meta = attach("metadata", cfg.metadata_size)?;
            (meta, attach("data", cfg.data_size)?)
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "dm-thin: give both a data and a metadata device, or neither",
            ))
        }
    };
    let data_sectors = device_sectors(data.0, data.1)?;
    let block = cfg.block_sectors();
    let length = Sectors(data_sectors.0 / block.0 * block.0);
    let params = format!(
        "{}:{} {}:{} {} {} 1 error_if_no_space",
        meta.0, meta.1, data.0, data.1, block.0, LOW_WATER_MARK_BLOCKS
    );
    let table = [Target { start: Sectors(0), length, kind: "thin-pool".into(), params }];
    ctl.dev_create(name)?;
    let r = ctl.table_load(name, &table, false).and_then(|()| ctl.resume(name));
    if r.is_err() {
        let _ = ctl.dev_remove(name);
    }
    // Dropping the LoopDevices now only marks them autoclear: the pool
    // holds them open, and the kernel detaches them when it goes.
    drop(loops);
    r
}

/// The pool's low-water mark (a dm event fires below it; strata polls the
/// status instead, so any small value does).
const LOW_WATER_MARK_BLOCKS: u64 = 1024;

/// Activates thin device `thin` of pool `pool` as `name` (if not active
/// yet) with `virtual_size`, and makes `/dev/mapper/<name>` (udev may be
/// absent, as libdevmapper assumes too). Returns the node's path.
pub fn activate(
    ctl: &Control,
    name: &str,
    pool: DevInfo,
    thin: ThinId,
    size: Sectors,
    readonly: bool,
) -> io::Result<PathBuf> {
    let info = match ctl.dev_status(name)? {
        Some(i) if i.has_table && !i.suspended => i,
        Some(_) => ctl.resume(name)?,
        None => {
            ctl.dev_create(name)?;
            let params = format!("{}:{} {}", pool.major, pool.minor, thin);
            let table = [Target { start: Sectors(0), length: size, kind: "thin".into(), params }];
            match ctl.table_load(name, &table, readonly).and_then(|()| ctl.resume(name)) {
                Ok(i) => i,
                Err(e) => {
                    let _ = ctl.dev_remove(name);
                    return Err(e);
                }
            }
        }
    };
    ensure_node(name, info.major, info.minor)
}

fn ensure_node(name: &str, major: u32, minor: u32) -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let path = PathBuf::from("/dev/mapper").join(name);
    let want = crate::sys::fs::makedev(major, minor);
    for _ in 0..3 {
        match std::fs::metadata(&path) {
            Ok(md) if md.rdev() == want => return Ok(path),
            Ok(_) => std::fs::remove_file(&path).or_else(ignore_not_found)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dir = crate::sys::fs::open_dir(Path::new("/dev/mapper"))?;
                let r = crate::sys::fs::mknod_at(
                    std::os::fd::AsFd::as_fd(&dir),
                    name.as_bytes(),
                    crate::sys::fs::Node::Block,
                    0o600,
                    major,
                    minor,
                );
                match r {
                    // udev made it meanwhile: check it on the next round.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    other => other?,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

fn ignore_not_found(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Removes device `name` and its `/dev/mapper` node; succeeds when it is
/// not there. A device still open fails with `EBUSY` after a few retries
/// (udev's probes hold new devices open for a moment).
pub fn deactivate(ctl: &Control, name: &str) -> io::Result<()> {
    let mut tries = 0;
    loop {
        match ctl.dev_remove(name) {
            Ok(()) => break,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NXIO) => break,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::BUSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => return Err(e),
        }
    }
    remove_node(name)
}

/// Removes `/dev/mapper/<name>` (strata makes these nodes itself; no udev
/// is assumed), if there.
pub fn remove_node(name: &str) -> io::Result<()> {
    std::fs::remove_file(PathBuf::from("/dev/mapper").join(name)).or_else(ignore_not_found)
}

/// Whether thin ID `thin` exists in the pool: loading a thin table for it
/// fails when it does not. Uses (and removes) a scratch device `probe`.
pub fn thin_exists(ctl: &Control, probe: &str, pool: DevInfo, thin: ThinId) -> io::Result<bool> {
    if ctl.dev_status(probe)?.is_some() {
        ctl.dev_remove(probe)?;
    }
    ctl.dev_create(probe)?;
    let params = format!("{}:{} {}", pool.major, pool.minor, thin);
    let table = [Target { start: Sectors(0), length: Sectors(8), kind: "thin".into(), params }];
    let exists = ctl.table_load(probe, &table, true).is_ok();
    ctl.dev_remove(probe)?;
    Ok(exists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pool_status() {
        let s = PoolStatus::parse("7 220/262144 30/16384 - rw discard_passdown error_if_no_space - 1024").unwrap();
        assert_eq!((s.transaction_id, s.metadata_used, s.metadata_total), (7, 220, 262144));
        assert_eq!((s.data_used, s.data_total, s.mode.as_str()), (30, 16384, "rw"));
        assert_eq!(PoolStatus::parse("Fail").unwrap().mode, "Fail");
        assert!(PoolStatus::parse("garbage").is_none());
    }

    #[test]
    fn parses_thin_status() {
        assert_eq!(parse_thin_mapped("256 4095"), Some(Sectors(256)));
        assert_eq!(parse_thin_mapped("0 -"), Some(Sectors(0)));
        assert_eq!(parse_thin_mapped("Fail"), None);
    }

    #[test]
    fn thin_ids_are_24_bit() {
        assert!(ThinId::new(ThinId::MAX).is_some());
        assert!(ThinId::new(1 << 24).is_none());
    }
}
