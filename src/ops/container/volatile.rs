//! Volatile writable layers: overlayfs' `volatile` mount option, which
//! drops every `fsync`/`syncfs` on the upper filesystem while mounted, so
//! the first write of a file (its copy_up) does not wait for the disk.
//! Podman mounts ephemeral containers this way; strata does it for `--rm`
//! containers and build-step containers by default, and for any container
//! asked with `--storage-opt overlay.volatile=true`.
//!
//! The price is that a host crash can leave the upper dir inconsistent:
//! files half written, metadata without data. The kernel leaves
//! `<workdir>/work/incompat/volatile` behind on every volatile mount and
//! refuses any later mount while it exists. strata records the boot ID
//! before each volatile mount (`volatile-boot` in the container's
//! directory), and before the layer is used again ([`settle`]):
//!
//! * marker present, same boot: nothing was lost (the page cache still
//!   holds every write); the upper is flushed with one `syncfs` and the
//!   marker removed, so it can be mounted again;
//! * marker present, another boot (or no record): the layer is discarded
//!   and made anew from the image, with a warning naming the container —
//!   never presented as intact.
//!
//! **Invariant:** no container layer whose marker survived a host restart
//! is mounted, diffed, committed or exported.

use super::lifecycle::OpsError;
use crate::container::{Config, ContainerStore};
use crate::engine::Engine;
pub use crate::mount::with_volatile;
use crate::mount::Mount;
use crate::snapshot::SnapshotKey;
use std::path::{Path, PathBuf};

/// The `--storage-opt` this module reads.
pub const STORAGE_OPT: &str = "overlay.volatile";

/// The `--storage-opt` values of `run`/`create`: whether the writable
/// layer is volatile (`None`: the default, volatile when `--rm`).
pub fn parse_storage_opts(opts: &[String]) -> Result<Option<bool>, OpsError> {
    let mut volatile = None;
    for opt in opts {
        let (k, v) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        if k != STORAGE_OPT {
            return Err(OpsError::Invalid(format!(
                "--storage-opt {opt}: unknown storage option {k:?} (strata knows {STORAGE_OPT}=true|false)"
            )));
        }
        volatile = Some(match v {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(OpsError::Invalid(format!("--storage-opt {opt}: {STORAGE_OPT} takes true or false")));
            }
        });
    }
    Ok(volatile)
}

/// What the kernel leaves in an overlay's work dir after a volatile
/// mount (`<workdir>/work/incompat/volatile`).
pub fn marker(mounts: &[Mount]) -> Option<PathBuf> {
    mounts
        .iter()
        .find_map(|m| (m.kind == "overlay").then(|| m.option("workdir")).flatten())
        .map(|w| Path::new(w).join("work/incompat/volatile"))
}

fn upper(mounts: &[Mount]) -> Option<PathBuf> {
    mounts.iter().find_map(|m| (m.kind == "overlay").then(|| m.option("upperdir")).flatten()).map(PathBuf::from)
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> Result<String, OpsError> {
    let p = "/proc/sys/kernel/random/boot_id";
    std::fs::read_to_string(p).map(|s| s.trim().to_owned()).map_err(|e| OpsError::Invalid(format!("reading {p}: {e}")))
}

fn record(engine: &Engine, config: &Config) -> PathBuf {
    ContainerStore::new(&engine.root).dir(&config.id).join("volatile-boot")
}

/// Records this boot before a volatile mount of `config`'s layer. No
/// fsync: a record lost in a crash reads as "another boot", the safe side.
pub fn record_boot(engine: &Engine, config: &Config) -> Result<(), OpsError> {
    let path = record(engine, config);
    std::fs::write(&path, boot_id()?).map_err(|e| OpsError::Invalid(format!("writing {}: {e}", path.display())))
}

/// What [`settle`] is preparing the layer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A mount (start, `cp`, `export`): the marker must go.
    Mount,
    /// Reading the upper dir directly (`diff`, `commit`): on the same boot
    /// nothing needs doing.
    Read,
}

/// Makes a stopped container's layer safe to use after a volatile mount
/// (see the module documentation). Returns a warning when the layer was
/// discarded because it did not survive a host restart.
pub fn settle(engine: &Engine, config: &Config, use_: Use) -> Result<Option<String>, OpsError> {
    let key = SnapshotKey::new(config.id.as_str()).expect("container IDs are valid keys");
    let mounts = engine.snapshots.mounts(&key)?;
    let Some(marker) = marker(&mounts) else { return Ok(None) };
    if std::fs::symlink_metadata(&marker).is_err() {
        return Ok(None);
    }
    let recorded = std::fs::read_to_string(record(engine, config)).ok().map(|s| s.trim().to_owned());
    if recorded.as_deref() == Some(boot_id()?.as_str()) {
        if use_ == Use::Mount {
            if let Some(upper) = upper(&mounts) {
                crate::sys::fs::syncfs_path(&upper)
                    .map_err(|e| OpsError::Invalid(format!("syncfs of {}: {e}", upper.display())))?;
            }
            remove_marker(&marker)?;
        }
        return Ok(None);
    }
    // Another boot: whatever the upper holds may be torn.
    let parent = engine.snapshots.stat(&key)?.parent;
    engine.snapshots.remove(&key)?;
    engine.snapshots.prepare(&key, parent.as_ref())?;
    let _ = std::fs::remove_file(record(engine, config));
    Ok(Some(format!(
        "container {}: its volatile writable layer did not survive a host restart and was reset to the image's \
         content (mounted with overlay.volatile; the data written before the restart is gone)",
        config.name
    )))
}

fn remove_marker(marker: &Path) -> Result<(), OpsError> {
    std::fs::remove_dir_all(marker).map_err(|e| OpsError::Invalid(format!("removing {}: {e}", marker.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn overlay(upper: bool) -> Mount {
        let mut options = vec!["lowerdir=/l".to_owned()];
        if upper {
            options.extend(["upperdir=/s/1/fs".to_owned(), "workdir=/s/1/work".to_owned()]);
        }
        options.push("index=off".into());
        Mount { kind: "overlay".into(), source: "overlay".into(), options }
    }

    #[test]
    fn storage_opts_parse_and_refuse_what_strata_does_not_know() {
        assert_eq!(parse_storage_opts(&[]).unwrap(), None);
        assert_eq!(parse_storage_opts(&["overlay.volatile=true".into()]).unwrap(), Some(true));
        assert_eq!(parse_storage_opts(&["overlay.volatile=false".into()]).unwrap(), Some(false));
        let e = parse_storage_opts(&["size=10G".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown storage option \"size\""), "{e}");
        let e = parse_storage_opts(&["overlay.volatile=maybe".into()]).unwrap_err().to_string();
        assert!(e.contains("takes true or false"), "{e}");
    }

    #[test]
    fn only_writable_overlays_become_volatile_and_the_marker_is_in_the_work_dir() {
        let m = with_volatile(vec![overlay(true)]);
        assert_eq!(m[0].options.iter().filter(|o| *o == "volatile").count(), 1);
        assert_eq!(with_volatile(m.clone()), m, "added once");
        assert!(!with_volatile(vec![overlay(false)])[0].options.contains(&"volatile".to_owned()));
        let bind = Mount::bind(Path::new("/s/2/fs"), false);
        assert_eq!(with_volatile(vec![bind.clone()]), vec![bind.clone()]);
        assert_eq!(marker(&m), Some(PathBuf::from("/s/1/work/work/incompat/volatile")));
        assert_eq!(marker(&[bind]), None);
    }
}
