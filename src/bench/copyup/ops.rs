//! The timed system calls and the cache states they start from.
//!
//! Each [`time`] call takes `Instant::now()` (vDSO `clock_gettime`,
//! tens of ns) right before the call(s) that trigger the copy_up and right
//! after them: nothing else is inside the window — no process start, no
//! path building, no `close(2)`. The same function runs inside peer
//! containers (`strata bench copy-up-probe`), so strata's and the peers'
//! numbers come from the same code.

use super::{Cache, CacheCheck, Op};
use crate::sys::fs::{self as sysfs, Gid, Mode, OFlags, Uid};
use crate::sys::mincore::{file_residency, Residency};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where `op` leaves its result beside `path` (rename target, new link).
pub fn side_path(path: &Path, op: Op) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(match op {
        Op::Rename => ".renamed",
        _ => ".link",
    });
    PathBuf::from(p)
}

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Runs `op` on `path` and returns the nanoseconds the call(s) took.
/// `Start` and `FullCopy` are not file operations and are refused.
pub fn time(op: Op, path: &Path) -> io::Result<u64> {
    let ro = OFlags::RDONLY | OFlags::CLOEXEC;
    let wo = OFlags::WRONLY | OFlags::CLOEXEC;
    let ns = match op {
        Op::Write | Op::SecondWrite => {
            let t = Instant::now();
            let fd = sysfs::open(path, wo, Mode::empty())?;
            sysfs::pwrite(fd.as_fd(), b"x", 0)?;
            let ns = nanos(t);
            drop(fd);
            ns
        }
        Op::Append => {
            let t = Instant::now();
            let fd = sysfs::open(path, wo | OFlags::APPEND, Mode::empty())?;
            sysfs::write(fd.as_fd(), b"x")?;
            let ns = nanos(t);
            drop(fd);
            ns
        }
        Op::Truncate => {
            let t = Instant::now();
            sysfs::truncate(path, 0)?;
            nanos(t)
        }
        Op::Chmod => {
            let t = Instant::now();
            sysfs::chmod(path, Mode::from_raw_mode(0o600))?;
            nanos(t)
        }
        Op::Chown => {
            let (uid, gid) = (Uid::from_raw(1000), Gid::from_raw(1000));
            let t = Instant::now();
            sysfs::chown(path, Some(uid), Some(gid))?;
            nanos(t)
        }
        Op::Rename => {
            let to = side_path(path, op);
            let t = Instant::now();
            sysfs::rename(path, &to)?;
            nanos(t)
        }
        Op::Link => {
            let to = side_path(path, op);
            let t = Instant::now();
            sysfs::link(path, &to)?;
            nanos(t)
        }
        Op::Lookup => {
            let t = Instant::now();
            sysfs::stat(path)?;
            let fd = sysfs::open(path, ro, Mode::empty())?;
            let ns = nanos(t);
            drop(fd);
            ns
        }
        Op::Start | Op::FullCopy => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    Ok(ns)
}

/// How many of `path`'s pages are in the page cache (opened read-only:
/// through overlayfs that is the lower file, and no copy_up).
pub fn residency(path: &Path) -> io::Result<Residency> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    file_residency(&f, len)
}

/// Reads all of `path` so its pages are cached.
fn read_all(path: &Path) -> io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Brings `path` to `cache` and returns the evidence: for `Warm` the file
/// is read; for `Cold` the filesystem at `fs` is synced and the file's
/// pages alone are dropped ([`crate::bench::cache::evict_file`], up to
/// three times while pages stay resident) — never the host's whole cache.
/// The backing file of a scratch filesystem is the caller's to check
/// (see `fixture::Bed::evict_backing`).
pub fn prepare(cache: Cache, fs: &Path, path: &Path) -> io::Result<Residency> {
    match cache {
        Cache::Warm => {
            read_all(path)?;
            residency(path)
        }
        Cache::Cold => {
            let mut r = Residency { resident: u64::MAX, pages: 0 };
            for _ in 0..3 {
                crate::sys::fs::syncfs_path(fs)?;
                r = crate::bench::cache::evict_file(path)?;
                if r.resident == 0 {
                    break;
                }
            }
            Ok(r)
        }
    }
}

/// Folds one sample's evidence into a record's.
/// `backing`: pages of the scratch filesystem's backing file resident in
/// the host's cache (cold samples), `direct_io`: whether its loop device
/// bypasses that cache.
pub fn fold_check(
    check: Option<CacheCheck>,
    r: Residency,
    backing: Option<u64>,
    direct_io: bool,
) -> Option<CacheCheck> {
    Some(match check {
        None => CacheCheck {
            file_pages: r.pages,
            resident_min: r.resident,
            resident_max: r.resident,
            backing_resident_max: backing,
            direct_io,
        },
        Some(c) => CacheCheck {
            file_pages: c.file_pages.max(r.pages),
            resident_min: c.resident_min.min(r.resident),
            resident_max: c.resident_max.max(r.resident),
            backing_resident_max: match (c.backing_resident_max, backing) {
                (Some(x), Some(y)) => Some(x.max(y)),
                (x, y) => x.or(y),
            },
            direct_io: c.direct_io && direct_io,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_operation_runs_and_changes_what_it_should() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        for op in [Op::Write, Op::Append, Op::Truncate, Op::Chmod, Op::Rename, Op::Link, Op::Lookup] {
            std::fs::write(&f, b"abc").unwrap();
            let _ = std::fs::remove_file(side_path(&f, Op::Link));
            time(op, &f).unwrap();
            let moved = op == Op::Rename;
            let now = if moved { side_path(&f, op) } else { f.clone() };
            let content = std::fs::read(&now).unwrap();
            match op {
                Op::Write => assert_eq!(content, b"xbc"),
                Op::Append => assert_eq!(content, b"abcx"),
                Op::Truncate => assert!(content.is_empty()),
                _ => assert_eq!(content, b"abc"),
            }
            if op == Op::Chmod {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
            }
            if op == Op::Link {
                assert!(side_path(&f, Op::Link).exists());
            }
            if moved {
                assert!(!f.exists());
                std::fs::rename(&now, &f).unwrap();
            }
        }
        assert!(time(Op::Start, &f).is_err());
    }

    #[test]
    fn checks_fold_to_extremes() {
        let a = fold_check(None, Residency { resident: 0, pages: 4 }, Some(0), true);
        let b = fold_check(a, Residency { resident: 2, pages: 4 }, Some(5), true);
        let want = CacheCheck {
            file_pages: 4,
            resident_min: 0,
            resident_max: 2,
            backing_resident_max: Some(5),
            direct_io: true,
        };
        assert_eq!(b, Some(want));
    }
}
