//! The cache dimension of a benchmark: the page-cache state a sample
//! starts from, brought about without disturbing the host, and the
//! `mincore(2)` evidence that it was.
//!
//! | state | how | proof |
//! |---|---|---|
//! | [`Cache::Warm`] | every file read first | all of each file's pages resident |
//! | [`Cache::Cold`], whole tree ([`prepare_tree`]) | [`ScratchFs::drop_cache`]: sync, unmount, `BLKFLSBUF`, `POSIX_FADV_DONTNEED` on the backing file, mount | no page of any file resident, no page of the backing file resident |
//! | [`Cache::Cold`], one file in use ([`evict_file`]) | `POSIX_FADV_DONTNEED` on the file (through overlayfs: its real file) | no page of the file resident |
//!
//! Nothing here writes `/proc/sys/vm/drop_caches`: only the scratch
//! filesystem's own pages go, so other work on the machine keeps its
//! cache (and the measurement is not flattered by everything else being
//! evicted too). The backing file is checked as well because a loop device
//! without direct I/O reads it through the host's page cache: a file cold
//! on the scratch filesystem could otherwise be served from memory.
//!
//! A suite uses it as: for each [`Cache`] in [`Cache::BOTH`], for each
//! sample, [`prepare_tree`] (or [`evict_file`]) outside the timed region,
//! then time the work; fold each [`Proof`] with [`Proof::fold`] and record
//! [`Proof::describe`] as a case fact.

use super::BenchError;
use crate::scratch::ScratchFs;
use crate::sys::mincore::{file_residency, Residency};
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Page-cache state of the data when the timed work starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cache {
    Warm,
    Cold,
}

impl Cache {
    /// Warm then cold: the order suites report them in.
    pub const BOTH: [Cache; 2] = [Cache::Warm, Cache::Cold];

    pub fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }
}

/// The evidence of a cache state over one or more samples: pages of the
/// measured files resident (fewest and most seen), and of the backing
/// file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub files: u64,
    pub file_pages: u64,
    pub resident_min: u64,
    pub resident_max: u64,
    /// Most pages of the scratch filesystem's backing file resident in
    /// the host's cache (`None`: not checked).
    pub backing_resident_max: Option<u64>,
    /// Whether the loop device did direct I/O.
    pub direct_io: bool,
}

impl Proof {
    /// Merges two samples' evidence.
    pub fn fold(a: Option<Proof>, b: Proof) -> Proof {
        match a {
            None => b,
            Some(a) => Proof {
                files: a.files.max(b.files),
                file_pages: a.file_pages.max(b.file_pages),
                resident_min: a.resident_min.min(b.resident_min),
                resident_max: a.resident_max.max(b.resident_max),
                backing_resident_max: match (a.backing_resident_max, b.backing_resident_max) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                },
                direct_io: a.direct_io && b.direct_io,
            },
        }
    }

    /// Whether the evidence shows `cache`: cold means no page of the files
    /// nor of the backing file resident; warm means every file page.
    pub fn shows(&self, cache: Cache) -> bool {
        match cache {
            Cache::Cold => self.resident_max == 0 && self.backing_resident_max.unwrap_or(0) == 0,
            Cache::Warm => self.resident_min == self.file_pages,
        }
    }

    /// `cold (mincore: 0–0 of 2500 pages in 10 files resident; backing file: 0 resident, direct I/O)`.
    pub fn describe(&self, cache: Cache) -> String {
        let backing = match self.backing_resident_max {
            Some(n) => format!("; backing file: at most {n} pages resident"),
            None => String::new(),
        };
        let dio = if self.direct_io { ", loop direct I/O" } else { "" };
        let verdict = if self.shows(cache) { "proven" } else { "NOT proven" };
        format!(
            "{} {verdict} (mincore: {}–{} of {} pages in {} files resident{backing}{dio})",
            cache.name(),
            self.resident_min,
            self.resident_max,
            self.file_pages,
            self.files
        )
    }
}

fn io_at(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BenchError {
    let path = path.to_owned();
    move |source| BenchError::Io { what, path, source }
}

/// Every regular file under `dir` (symlinks not followed).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BenchError> {
    for entry in std::fs::read_dir(dir).map_err(io_at("read dir", dir))? {
        let entry = entry.map_err(io_at("read dir", dir))?;
        let kind = entry.file_type().map_err(io_at("stat", &entry.path()))?;
        if kind.is_dir() {
            files_under(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn residency(path: &Path) -> io::Result<Residency> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    file_residency(&f, len)
}

fn read_all(path: &Path, buf: &mut [u8]) -> io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    while f.read(buf)? > 0 {}
    Ok(())
}

/// Brings every regular file under `tree` (on `fs`) to `cache` and
/// returns the proof. Cold empties `fs`'s caches with
/// [`ScratchFs::drop_cache`], so nothing may be open or mounted on it.
/// The proof's own `mincore` maps each file without reading it, but does
/// look it up: directories and inodes are cached again by the filesystem
/// (not by the host's cache of the backing file, dropped after the walk),
/// data is not.
pub fn prepare_tree(cache: Cache, fs: &mut ScratchFs, tree: &Path) -> Result<Proof, BenchError> {
    let mut backing = None;
    if cache == Cache::Cold {
        fs.drop_cache().map_err(io_at("drop the cache of", fs.path()))?;
    }
    let mut files = Vec::new();
    files_under(tree, &mut files)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut proof: Option<Proof> = None;
    for f in &files {
        if cache == Cache::Warm {
            read_all(f, &mut buf).map_err(io_at("read", f))?;
        }
        let r = residency(f).map_err(io_at("mincore", f))?;
        let one = Proof {
            files: 1,
            file_pages: r.pages,
            resident_min: r.resident,
            resident_max: r.resident,
            backing_resident_max: None,
            direct_io: false,
        };
        // Sum pages over files; min/max per file become whole-tree sums.
        proof = Some(match proof {
            None => one,
            Some(p) => Proof {
                files: p.files + 1,
                file_pages: p.file_pages + r.pages,
                resident_min: p.resident_min + r.resident,
                resident_max: p.resident_max + r.resident,
                ..p
            },
        });
    }
    if cache == Cache::Cold {
        // The walk above looked every file up, reading directories and
        // inodes through the loop device into the host's cache of the
        // backing file: drop those pages again (the filesystem keeps its
        // own inodes and dentries — metadata is warm, data is cold).
        let file = fs.backing_file().to_owned();
        evict_file(&file).map_err(io_at("fadvise(DONTNEED)", &file))?;
        backing = Some(fs.backing_residency().map_err(io_at("mincore", &file))?.resident);
    }
    let p = proof.unwrap_or(Proof {
        files: 0,
        file_pages: 0,
        resident_min: 0,
        resident_max: 0,
        backing_resident_max: None,
        direct_io: false,
    });
    Ok(Proof { backing_resident_max: backing, direct_io: fs.direct_io(), ..p })
}

/// Drops one file's pages from the page cache, for a file that stays in
/// use (under a mounted overlay, say): `POSIX_FADV_DONTNEED` on a
/// read-only descriptor — through overlayfs that is the lower file, and no
/// copy_up — then proves it with `mincore`. Dirty pages cannot be
/// dropped, so the filesystem should have been synced. See
/// posix_fadvise(2).
pub fn evict_file(path: &Path) -> io::Result<Residency> {
    let f = std::fs::File::open(path)?;
    crate::sys::fs::fadvise(f.as_fd(), 0, None, crate::sys::fs::Advice::DontNeed)?;
    let len = f.metadata()?.len();
    file_residency(&f, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_fold_and_read() {
        let cold = Proof {
            files: 2,
            file_pages: 8,
            resident_min: 0,
            resident_max: 0,
            backing_resident_max: Some(0),
            direct_io: true,
        };
        assert!(cold.shows(Cache::Cold));
        assert!(!cold.shows(Cache::Warm));
        let leaky = Proof { backing_resident_max: Some(3), direct_io: false, ..cold };
        let both = Proof::fold(Some(cold), leaky);
        assert!(!both.shows(Cache::Cold), "a backing file in the host cache is not cold");
        assert_eq!(both.backing_resident_max, Some(3));
        assert!(!both.direct_io);
        assert!(both.describe(Cache::Cold).starts_with("cold NOT proven"));
        let warm = Proof { resident_min: 8, resident_max: 8, backing_resident_max: None, ..cold };
        assert!(warm.shows(Cache::Warm));
    }

    #[test]
    fn evict_file_drops_a_clean_file() {
        if !crate::sys::process::geteuid().is_root() {
            crate::scratch::skip_test("needs root (loop devices and mounts)");
            return;
        }
        let fs = ScratchFs::new(crate::scratch::FsKind::Ext4, 64 << 20).unwrap();
        let f = fs.path().join("f");
        std::fs::write(&f, vec![1u8; 1 << 20]).unwrap();
        crate::sys::fs::syncfs_path(fs.path()).unwrap();
        assert!(residency(&f).unwrap().resident > 0);
        assert_eq!(evict_file(&f).unwrap().resident, 0);
    }

    #[test]
    fn prepare_tree_proves_both_states() {
        if !crate::sys::process::geteuid().is_root() {
            crate::scratch::skip_test("needs root (loop devices and mounts)");
            return;
        }
        let mut fs = ScratchFs::new(crate::scratch::FsKind::Ext4, 64 << 20).unwrap();
        let tree = fs.path().join("t");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("x"), vec![1u8; 100_000]).unwrap();
        std::fs::write(tree.join("a/b/y"), vec![2u8; 300_000]).unwrap();
        let cold = prepare_tree(Cache::Cold, &mut fs, &tree).unwrap();
        assert_eq!(cold.files, 2);
        assert!(cold.shows(Cache::Cold), "{}", cold.describe(Cache::Cold));
        let tree = fs.path().join("t");
        let warm = prepare_tree(Cache::Warm, &mut fs, &tree).unwrap();
        assert!(warm.shows(Cache::Warm), "{}", warm.describe(Cache::Warm));
        assert!(warm.file_pages > 0);
    }
}
