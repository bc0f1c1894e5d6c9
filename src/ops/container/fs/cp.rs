//! `docker cp` both ways: which paths `SRC_PATH` and `DEST_PATH` name, and
//! what a copy keeps. The copying itself is [`super::tree`]'s.
//!
//! **Paths.** A container path is resolved inside the container's root by
//! the kernel (`openat2(RESOLVE_IN_ROOT)`): symlinks on the way, absolute
//! or `../..`, stay inside it. A host path is the user's own and resolves
//! as usual, up to `DEST_PATH` or `SRC_PATH`'s parent; below it nothing is
//! followed. Docker's rules for the two paths:
//!
//! * `SRC_PATH` a file: copied to `DEST_PATH` if that is a file or does
//!   not exist (its parent must; a `DEST_PATH` ending in `/` must be an
//!   existing directory), else into the directory `DEST_PATH` under its
//!   own name.
//! * `SRC_PATH` a directory: `DEST_PATH` missing is created with the
//!   source's contents; an existing directory gets the source directory
//!   under its own name, or only its contents when `SRC_PATH` ends in
//!   `/.`; an existing file is an error.
//! * A symlink at `SRC_PATH` is copied as a symlink, its text unchanged;
//!   with `-L` it is followed (inside the container's root on copy-out)
//!   and its target copied under the link's name.
//! * A directory is never replaced by a non-directory nor the reverse;
//!   another non-directory in the way is removed (never written through).
//!
//! **What is kept** (`docker cp`'s rules, stricter on the host):
//!
//! | | copy-in (to the container) | copy-out (to the host) |
//! |---|---|---|
//! | owner | root (0:0); the source's with `-a` | the user running strata; the source's with `-a` |
//! | permission bits | kept | kept, but setuid/setgid cleared unless `-a` |
//! | xattrs (`security.capability`, …) | only with `-a` | only with `-a` |
//! | symlinks | copied as symlinks | copied as symlinks |
//! | FIFOs | created | created (never opened) |
//! | device nodes | created | **skipped**, each named in [`CopyReport::skipped`]; a device as `SRC_PATH` itself is an error |
//! | sockets | skipped | skipped |
//! | `.wh.*` names | plain files | plain files |
//! | other filesystems below `SRC_PATH` | created empty, not entered | created empty, not entered |
//!
//! Times: each entry gets its source's mtime. Hard links are copied as
//! separate files.

use super::tree::{entry, Copier, Owner, Policy, Skipped, Source};
use super::{FsError, RootView};
use crate::container::ContainerId;
use crate::engine::Engine;
use crate::sys::fs::{self as sysfs, Kind, Mode, OFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Failures of `cp`; paths are as the user names them.
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error("{path}: {op}: {source}")]
    Entry { path: String, op: &'static str, source: io::Error },
    #[error("cannot overwrite non-directory {path} with directory")]
    DirOverNonDir { path: String },
    #[error("cannot overwrite directory {path} with non-directory")]
    NonDirOverDir { path: String },
    #[error("destination directory {path} does not exist")]
    NoDestDir { path: String },
    #[error("{path}: not a directory")]
    NotDir { path: String },
    #[error("invalid path {path:?}")]
    InvalidPath { path: String },
    #[error("{path}: is a {kind}; cp does not create device nodes on the host")]
    Device { path: String, kind: &'static str },
    #[error("{path}: is a socket, which cannot be copied")]
    Socket { path: String },
    #[error("{path}: changed while it was copied")]
    Changed { path: String },
}

/// `docker cp`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `-a`: keep owners, setuid/setgid bits and xattrs.
    pub archive: bool,
    /// `-L`: follow a symlink at `SRC_PATH`.
    pub follow_link: bool,
}

/// What a copy left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub skipped: Vec<Skipped>,
}

/// `SRC_PATH` taken apart.
struct SrcPath {
    /// The parent to resolve (`.` for none).
    parent: Vec<u8>,
    /// The last component; `None` for the root.
    leaf: Option<Vec<u8>>,
    /// Ends in `/.`: copy the directory's contents.
    contents: bool,
    /// Ends in `/`: must be a directory.
    dir: bool,
}

fn split_src(p: &[u8]) -> Result<SrcPath, CpError> {
    let invalid = || CpError::InvalidPath { path: String::from_utf8_lossy(p).into_owned() };
    let mut s = p;
    let contents = s == b"." || s.ends_with(b"/.");
    if contents {
        s = &s[..s.len() - 1];
    }
    let dir = s.ends_with(b"/");
    while s.len() > 1 && s.ends_with(b"/") {
        s = &s[..s.len() - 1];
    }
    if s.is_empty() && !contents {
        return Err(invalid());
    }
    let (parent, leaf) = match s.iter().rposition(|b| *b == b'/') {
        Some(i) => (&s[..i.max(1)], &s[i + 1..]),
        None => (&b"."[..], s),
    };
    if leaf == b".." || leaf == b"." {
        return Err(invalid());
    }
    let leaf = (!leaf.is_empty()).then(|| leaf.to_vec());
    Ok(SrcPath { parent: parent.to_vec(), contents: contents || leaf.is_none(), leaf, dir })
}

/// `path` relative to a root, for `RESOLVE_IN_ROOT` (`.` for the root).
fn in_root(path: &[u8]) -> Vec<u8> {
    let rel: &[u8] = match path.iter().position(|b| *b != b'/') {
        Some(i) => &path[i..],
        None => b".",
    };
    rel.to_vec()
}

/// Where the copy goes.
enum Dest {
    /// An existing directory: the source goes in under its own name (or
    /// only its contents).
    Into(OwnedFd),
    /// The entry `name` of this directory: created, or replacing a
    /// non-directory.
    As(OwnedFd, Vec<u8>),
}

fn top_checks(src: &Source, sp: &SrcPath, shown: &str, devices: bool) -> Result<(), CpError> {
    let kind = src.meta.kind;
    if (sp.dir || sp.contents) && kind != Kind::Dir {
        return Err(CpError::NotDir { path: shown.to_owned() });
    }
    match kind {
        Kind::CharDevice if !devices => Err(CpError::Device { path: shown.to_owned(), kind: "character device" }),
        Kind::BlockDevice if !devices => Err(CpError::Device { path: shown.to_owned(), kind: "block device" }),
        Kind::Socket => Err(CpError::Socket { path: shown.to_owned() }),
        _ => Ok(()),
    }
}

/// Runs the copy of the resolved `src` to `dest`.
fn run(
    policy: Policy,
    src: &Source,
    sp: &SrcPath,
    dest: Dest,
    src_shown: &str,
    dest_shown: &str,
) -> Result<CopyReport, CpError> {
    let mut copier = Copier::new(policy, src);
    match dest {
        Dest::Into(dir) if sp.contents => {
            let listed = crate::sys::fs_fd::open_dir_of(src.fd.as_fd()).map_err(entry(src_shown, "open directory"))?;
            copier.contents(src, listed.as_fd(), dir.as_fd(), dest_shown)?
        }
        Dest::Into(dir) => {
            let name = sp.leaf.as_deref().expect("a path without a last component copies contents");
            let shown = format!("{}/{}", dest_shown.trim_end_matches('/'), String::from_utf8_lossy(name));
            copier.copy(src, dir.as_fd(), name, &shown)?
        }
        Dest::As(parent, name) => copier.copy(src, parent.as_fd(), &name, dest_shown)?,
    }
    Ok(CopyReport { skipped: copier.skipped })
}

fn host_dir(path: &Path) -> Result<OwnedFd, CpError> {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    sysfs::open_dir(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CpError::NoDestDir { path: path.display().to_string() },
        _ => entry(&path.display().to_string(), "open directory")(e),
    })
}

/// The last component of a destination that is to be created or replaced.
fn dest_leaf(path: &[u8], shown: &str) -> Result<(Vec<u8>, Vec<u8>), CpError> {
    if path.ends_with(b"/") {
        return Err(CpError::NoDestDir { path: shown.to_owned() });
    }
    let (parent, leaf) = match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i.max(1)], &path[i + 1..]),
        None => (&b"."[..], path),
    };
    if leaf.is_empty() || leaf == b"." || leaf == b".." {
        return Err(CpError::InvalidPath { path: shown.to_owned() });
    }
    Ok((parent.to_vec(), leaf.to_vec()))
}

/// `docker cp CONTAINER:SRC_PATH DEST_PATH`: copies out of the container
/// (see the module docs for what is kept).
pub fn copy_out(
    engine: &Engine,
    id: &ContainerId,
    src: &str,
    dest: &Path,
    opts: CopyOptions,
) -> Result<CopyReport, FsError> {
    let view = RootView::open(engine, id)?;
    let root = view.open_root()?;
    let sp = split_src(src.as_bytes())?;
    let source = container_source(root.as_fd(), src, &sp, opts.follow_link)?;
    top_checks(&source, &sp, src, false)?;

    let shown = dest.display().to_string();
    let target = match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => Dest::Into(host_dir(dest)?),
        Ok(_) if source.meta.kind == Kind::Dir => return Err(CpError::DirOverNonDir { path: shown }.into()),
        Ok(_) => {
            // The user's own path, symlinks and all, as Docker resolves it.
            let real = std::fs::canonicalize(dest).map_err(entry(&shown, "resolve"))?;
            let (parent, leaf) = dest_leaf(real.as_os_str().as_bytes(), &shown)?;
            Dest::As(host_dir(Path::new(std::ffi::OsStr::from_bytes(&parent)))?, leaf)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (parent, leaf) = dest_leaf(dest.as_os_str().as_bytes(), &shown)?;
            Dest::As(host_dir(&PathBuf::from(std::ffi::OsStr::from_bytes(&parent)))?, leaf)
        }
        Err(e) => return Err(entry(&shown, "stat")(e).into()),
    };
    let policy = Policy {
        owner: if opts.archive { Owner::Source } else { Owner::Invoker },
        setid: opts.archive,
        devices: false,
        xattrs: opts.archive,
    };
    Ok(run(policy, &source, &sp, target, src, &shown)?)
}

/// `docker cp CONTAINER:SRC_PATH -`: a tar of SRC_PATH on `out` (a
/// directory under its own name with its subtree, `SRC/.` as its
/// contents), read from the container's root without following any
/// symlink the container planted (`-L` follows SRC_PATH itself, inside the
/// root). Owners, modes, xattrs and set-id bits are kept, as Docker's
/// archive keeps them: nothing is created on the host. `-L` is refused
/// here (a stream names the entry by SRC_PATH; follow the link yourself).
pub fn copy_out_tar(
    engine: &Engine,
    id: &ContainerId,
    src: &str,
    opts: CopyOptions,
    out: impl std::io::Write,
) -> Result<(), FsError> {
    if opts.follow_link {
        return Err(FsError::Invalid("cp -L to - (a tar stream) is not supported: name the link's target".into()));
    }
    let view = RootView::open(engine, id)?;
    let root = view.open_root()?;
    let sp = split_src(src.as_bytes())?;
    let open_dir = |rel: &[u8]| sysfs::open_dir_in_root(root.as_fd(), rel).map_err(entry(src, "open"));
    match &sp.leaf {
        // `SRC/.` or the root: what the directory holds.
        Some(leaf) if !sp.contents => {
            let parent = open_dir(&in_root(&sp.parent))?;
            if sp.dir && sysfs::lstat_at(parent.as_fd(), leaf).map_err(entry(src, "stat"))?.kind != Kind::Dir {
                return Err(CpError::NotDir { path: src.to_owned() }.into());
            }
            crate::image::diff::write_entry(parent.as_fd(), leaf, out)?;
        }
        _ => {
            crate::image::diff::write_contents(open_dir(&in_root(src.as_bytes()))?.as_fd(), out)?;
        }
    }
    Ok(())
}

/// `SRC_PATH` in the container, resolved inside `root`.
fn container_source(root: BorrowedFd<'_>, shown: &str, sp: &SrcPath, follow: bool) -> Result<Source, CpError> {
    let rel = in_root(shown.as_bytes());
    match &sp.leaf {
        None => {
            let fd = sysfs::open_path_in_root(root, ".").map_err(entry(shown, "open"))?;
            Source::of(fd, shown)
        }
        Some(_) if follow => {
            let rel = String::from_utf8_lossy(&rel).into_owned();
            let fd = sysfs::open_path_in_root(root, &rel).map_err(entry(shown, "open"))?;
            Source::of(fd, shown)
        }
        Some(leaf) => {
            let parent = sysfs::open_dir_in_root(root, &in_root(&sp.parent)).map_err(entry(shown, "open parent"))?;
            Source::at(parent.as_fd(), leaf, shown)
        }
    }
}

/// `docker cp SRC_PATH CONTAINER:DEST_PATH`: copies into the container
/// (see the module docs for what is kept).
pub fn copy_in(
    engine: &Engine,
    id: &ContainerId,
    src: &Path,
    dest: &str,
    opts: CopyOptions,
) -> Result<CopyReport, FsError> {
    let view = RootView::open(engine, id)?;
    let root = view.open_root()?;
    let src_shown = src.display().to_string();
    let sp = split_src(src.as_os_str().as_bytes())?;
    let source = match &sp.leaf {
        Some(leaf) if !opts.follow_link => {
            let parent = host_dir(Path::new(std::ffi::OsStr::from_bytes(&sp.parent)))?;
            Source::at(parent.as_fd(), leaf, &src_shown)?
        }
        _ => {
            let fd = sysfs::open(src, OFlags::PATH, Mode::empty()).map_err(entry(&src_shown, "open"))?;
            Source::of(fd, &src_shown)?
        }
    };
    top_checks(&source, &sp, &src_shown, true)?;

    let rel = in_root(dest.as_bytes());
    let target = match sysfs::open_dir_in_root(root.as_fd(), &rel) {
        Ok(dir) => Dest::Into(dir),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            let (parent, leaf) = dest_leaf(&rel, dest)?;
            let parent = sysfs::open_dir_in_root(root.as_fd(), &parent).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => CpError::NoDestDir { path: dest.to_owned() },
                _ => entry(dest, "open parent")(e),
            })?;
            if source.meta.kind == Kind::Dir && sysfs::lstat_at(parent.as_fd(), &leaf).is_ok() {
                return Err(CpError::DirOverNonDir { path: dest.to_owned() }.into());
            }
            Dest::As(parent, leaf)
        }
        Err(e) => return Err(entry(dest, "open")(e).into()),
    };
    let policy = Policy {
        owner: if opts.archive { Owner::Source } else { Owner::Set(0, 0) },
        setid: true,
        devices: true,
        xattrs: opts.archive,
    };
    Ok(run(policy, &source, &sp, target, &src_shown, dest)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn src_paths_split_as_docker_reads_them() {
        let s = split_src(b"/a/b/.").unwrap();
        assert_eq!(
            (s.parent.as_slice(), s.leaf.as_deref(), s.contents, s.dir),
            (&b"/a"[..], Some(&b"b"[..]), true, true)
        );
        let s = split_src(b"/a/b/").unwrap();
        assert_eq!(
            (s.parent.as_slice(), s.leaf.as_deref(), s.contents, s.dir),
            (&b"/a"[..], Some(&b"b"[..]), false, true)
        );
        let s = split_src(b"/b").unwrap();
        assert_eq!((s.parent.as_slice(), s.leaf.as_deref(), s.contents), (&b"/"[..], Some(&b"b"[..]), false));
        let s = split_src(b"/").unwrap();
        assert_eq!((s.leaf.as_deref(), s.contents), (None, true));
        let s = split_src(b"rel").unwrap();
        assert_eq!((s.parent.as_slice(), s.leaf.as_deref()), (&b"."[..], Some(&b"rel"[..])));
        assert!(split_src(b"/a/..").is_err());
        assert!(split_src(b"").is_err());
        assert_eq!(in_root(b"//x/y"), b"x/y");
        assert_eq!(in_root(b"/"), b".");
        assert!(dest_leaf(b"/d/", "/d/").is_err());
        assert!(dest_leaf(b"/d/..", "/d/..").is_err());
        assert_eq!(dest_leaf(b"/x", "/x").unwrap(), (b"/".to_vec(), b"x".to_vec()));
    }
}
