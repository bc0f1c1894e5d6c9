//! Exact container sizes: the pool blocks a thin device does not share with
//! its parent, read from the pool's metadata ([`super::metadata`]) under a
//! held metadata snapshot. The thin target's status only counts mapped
//! blocks, so an overwrite of a block still shared with the image (copied
//! by the pool) is invisible there; here it counts.

use super::pool::ThinId;
use super::{metadata, Dmthin, DmthinError};
use crate::root::IoResultExt;
use crate::sys::fs::Node;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

impl Dmthin {
    /// Bytes `thin` owns alone against `parent`. The caller holds the
    /// driver lock (one metadata snapshot per pool at a time).
    pub(super) fn exact_exclusive(&self, thin: ThinId, parent: ThinId) -> Result<u64, DmthinError> {
        let meta = self.open_metadata_device()?;
        // Commits the pool's metadata and freezes a copy of it for us. On
        // strata's own pool a snapshot still held can only be a killed
        // strata's, and is released; on an adopted pool it may be another
        // tool's (thin_ls), so the fallback size is used instead.
        if let Err(e) = self.message("reserve_metadata_snap") {
            if self.cfg.pool.is_some() {
                return Err(e);
            }
            let _ = self.message("release_metadata_snap");
            self.message("reserve_metadata_snap")?;
        }
        let counted = (|| {
            // Blocks cached from an earlier read may be stale: the pool
            // writes its metadata below the page cache.
            crate::sys::fs::fadvise(meta.as_fd(), 0, None, crate::sys::fs::Advice::DontNeed)?;
            let mut read = |block: u64| -> io::Result<Vec<u8>> {
                let mut b = vec![0u8; metadata::BLOCK];
                meta.read_exact_at(&mut b, block * metadata::BLOCK as u64)?;
                Ok(b)
            };
            metadata::exclusive_blocks(&mut read, u64::from(thin.get()), u64::from(parent.get()))
        })();
        let released = self.message("release_metadata_snap");
        let blocks = counted.at(self.metadata_path())?;
        released?;
        Ok(blocks * self.cfg.block_size)
    }

    fn metadata_path(&self) -> PathBuf {
        self.home.join("pool").join("metadata-device")
    }

    /// The pool's metadata device, from the pool's table (it may be a loop
    /// device, a given block device, or an existing pool's): opened through
    /// a node made for it, since udev may not have made one.
    fn open_metadata_device(&self) -> Result<std::fs::File, DmthinError> {
        let table = self.ctl.table(&self.pool).map_err(super::dm("table", &self.pool))?;
        let params = table.first().map(|t| t.params.clone()).unwrap_or_default();
        let (major, minor) = params
            .split_whitespace()
            .next()
            .and_then(|d| d.split_once(':'))
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| DmthinError::PoolStatus { pool: self.pool.clone(), status: params.clone() })?;
        let path = self.metadata_path();
        let dir = path.parent().expect("under the home");
        std::fs::create_dir_all(dir).at(dir)?;
        let _ = std::fs::remove_file(&path);
        let d = crate::sys::fs::open_dir(dir).at(dir)?;
        crate::sys::fs::mknod_at(std::os::fd::AsFd::as_fd(&d), b"metadata-device", Node::Block, 0o600, major, minor)
            .at(&path)?;
        let f = std::fs::File::open(&path).at(&path);
        let _ = std::fs::remove_file(&path);
        Ok(f?)
    }
}
