//! One `mounts` entry onto the root, as runc 1.1's `mountToRootfs` does
//! it: bind mounts (source on the host, relative to the bundle; a file
//! or directory target to match; a remount to apply flags a bind
//! ignores), `proc`/`sysfs` only on an ordinary directory, `tmpfs`
//! mounted writable (read-only comes in [`super::finalize`], after `/dev`
//! is populated) keeping the covered directory's mode, `cgroup` as the
//! host has it (below), anything else passed to the kernel as is; then
//! the propagation options and the recursive attributes
//! (`mount_setattr(AT_RECURSIVE)`). Every target is resolved under the
//! root ([`super::paths::open_target`]) and mounted through its
//! `/proc/self/fd/N`.
//!
//! `cgroup` on a cgroup v2 host mounts `cgroup2` (a bind of
//! `/sys/fs/cgroup` when the kernel refuses, as in a user namespace
//! without a cgroup namespace). On a v1 or hybrid host it is runc's
//! emulation: a tmpfs at the destination and, for each v1 hierarchy, a
//! bind of the container's own cgroup directory (or, with a cgroup
//! namespace, a fresh mount of the hierarchy), read-only when the entry
//! is, with symlinks for co-mounted controllers (`cpu -> cpu,cpuacct`).
//! As with runc 1.1 the tmpfs itself stays writable (it is private to the
//! container; the hierarchies in it are what `ro` protects).

use super::mountinfo;
use super::options::{parse, MountOptions};
use super::paths::{check_proc_mount, clean, container_path, open_target, Target};
use crate::runtime::spec::Mount as SpecMount;
use crate::sys::fs::{chmod, fd_path, fstat, lstat_at, open_path_in_root, symlink_at, Kind, Mode};
use crate::sys::mount::{mount, mount_change, mount_flags_of, mount_setattr, ms, MountFlags};
use crate::sys::statfs::{fs_magic, FsMagic};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the mounts are made into.
pub struct Ctx<'a> {
    /// The root directory (after it was bound onto itself).
    pub root: BorrowedFd<'a>,
    /// Its host path as the kernel prints it in this namespace.
    pub root_path: &'a Path,
    /// Relative bind sources are relative to this (runc: its cwd, the bundle).
    pub bundle: &'a Path,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
}

/// Why one entry failed.
#[derive(Debug)]
pub enum Failure {
    Io { step: String, source: io::Error },
    Refused(String),
}

fn at(step: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let step = step.into();
    move |source| Failure::Io { step, source }
}

/// Mounts one `mounts` entry.
pub fn mount_entry(ctx: &Ctx<'_>, m: &SpecMount) -> Result<(), Failure> {
    let opts = parse(&m.options);
    let dest = clean(&m.destination_path());
    if opts.tmpcopyup {
        return Err(Failure::Refused("the tmpcopyup option is not supported".into()));
    }
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(Failure::Refused("ID-mapped mounts are not supported".into()));
    }
    let kind = if opts.is_bind() { "bind" } else { m.kind.as_str() };
    match kind {
        "bind" => {
            let source =
                if Path::new(&m.source).is_absolute() { PathBuf::from(&m.source) } else { ctx.bundle.join(&m.source) };
            bind(ctx, &source, &dest, &opts)?;
        }
        "proc" | "sysfs" => special(ctx, kind, &m.source, &dest, &opts)?,
        "tmpfs" => tmpfs(ctx, &m.source, &dest, &opts)?,
        "cgroup" => cgroup(ctx, &m.source, &dest, &opts)?,
        _ => generic(ctx, kind, &m.source, &dest, &opts)?,
    }
    if let Some(attr) = &opts.recursive {
        let fd = reopen(ctx, &dest)?;
        mount_setattr(fd.as_fd(), true, attr).map_err(at("mount_setattr (recursive attributes)"))?;
    }
    Ok(())
}

fn reopen(ctx: &Ctx<'_>, dest: &str) -> Result<OwnedFd, Failure> {
    open_path_in_root(ctx.root, dest.trim_start_matches('/')).map_err(at("reopen target"))
}

/// Opens (creating) the target and applies runc's `/proc` rule to the
/// path as written, to where its parent resolved (before anything is
/// created there) and to where the target itself resolved.
fn checked_target(ctx: &Ctx<'_>, dest: &str, kind: Target, source_is_proc: bool) -> Result<OwnedFd, Failure> {
    let check = |path: &str| match check_proc_mount(path, source_is_proc) {
        Some(reason) => Err(Failure::Refused(reason)),
        None => Ok(()),
    };
    check(dest)?;
    let (parent, leaf) = dest.rsplit_once('/').unwrap_or(("", dest));
    let p = open_target(ctx.root, parent, Target::Dir).map_err(at("create mount point"))?;
    let resolved = container_path(ctx.root_path, p.as_fd()).map_err(at("resolve mount point"))?;
    check(&format!("{}/{leaf}", resolved.trim_end_matches('/')))?;
    let t = open_target(ctx.root, dest, kind).map_err(at("create mount point"))?;
    check(&container_path(ctx.root_path, t.as_fd()).map_err(at("resolve mount point"))?)?;
    Ok(t)
}

/// `mount(2)` onto `target`, then the propagation changes on the new mount.
fn mount_at(
    ctx: &Ctx<'_>,
    t: &OwnedFd,
    source: &str,
    fstype: &str,
    flags: MountFlags,
    opts: &MountOptions,
    dest: &str,
) -> Result<(), Failure> {
    let step = if fstype.is_empty() { format!("bind {source}") } else { format!("mount {fstype}") };
    mount(source, &fd_path(t.as_fd()), fstype, flags, &opts.data).map_err(at(step))?;
    if !opts.propagation.is_empty() {
        let fd = reopen(ctx, dest)?;
        for p in &opts.propagation {
            mount_change(fd_path(fd.as_fd()), *p).map_err(at("change propagation"))?;
        }
    }
    Ok(())
}

fn bind(ctx: &Ctx<'_>, source: &Path, dest: &str, opts: &MountOptions) -> Result<(), Failure> {
    let shown = source.display().to_string();
    let meta = std::fs::metadata(source).map_err(at(format!("stat bind source {shown}")))?;
    let is_proc = dest == "/proc" && fs_magic(source).map_err(at(format!("statfs {shown}")))? == FsMagic::PROC;
    let kind = if meta.is_dir() { Target::Dir } else { Target::File };
    let t = checked_target(ctx, dest, kind, is_proc)?;
    mount_at(ctx, &t, &shown, "", opts.flags, opts, dest)?;
    // A bind ignores every flag but MS_REC: apply the rest with a remount.
    if !(opts.flags - (MountFlags::BIND | MountFlags::REC | ms::REMOUNT)).is_empty() {
        let fd = reopen(ctx, dest)?;
        let target = fd_path(fd.as_fd());
        let flags = opts.flags | ms::REMOUNT;
        if let Err(e) = mount(&shown, &target, "", flags, "") {
            // In a user namespace the source's locked flags (ro, nosuid,
            // nodev, noexec) must be kept: retry with them.
            let locked = mount_flags_of(fd.as_fd()).map_err(at(format!("statfs {shown}")))?
                & (MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC);
            if flags.contains(locked) {
                return Err(at("remount bind")(e));
            }
            mount(&shown, &target, "", flags | locked, "").map_err(at("remount bind"))?;
        }
    }
    Ok(())
}

/// `proc` and `sysfs`: never through a symlink or onto a non-directory.
fn special(ctx: &Ctx<'_>, kind: &str, source: &str, dest: &str, opts: &MountOptions) -> Result<(), Failure> {
    let (parent, leaf) = dest.rsplit_once('/').unwrap_or(("", dest));
    if !leaf.is_empty() {
        let dir = open_target(ctx.root, parent, Target::Dir).map_err(at("create mount point"))?;
        match lstat_at(dir.as_fd(), leaf.as_bytes()) {
            Ok(meta) if meta.kind != Kind::Dir => {
                return Err(Failure::Refused(format!("filesystem {kind} must be mounted on ordinary directory")))
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at("lstat mount point")(e)),
            _ => {}
        }
    }
    let t = open_target(ctx.root, dest, Target::Dir).map_err(at("create mount point"))?;
    mount_at(ctx, &t, source, kind, opts.flags, opts, dest)
}

fn tmpfs(ctx: &Ctx<'_>, source: &str, dest: &str, opts: &MountOptions) -> Result<(), Failure> {
    let before = match open_path_in_root(ctx.root, dest.trim_start_matches('/')) {
        Ok(fd) => Some(fstat(fd.as_fd()).map_err(at("stat mount point"))?.mode),
        Err(_) => None,
    };
    let t = checked_target(ctx, dest, Target::Dir, false)?;
    // Read-only waits for finalize: /dev must be populated first.
    mount_at(ctx, &t, source, "tmpfs", opts.flags - MountFlags::RDONLY, opts, dest)?;
    let explicit_mode = opts.data.split(',').any(|o| o.starts_with("mode="));
    if let (Some(mode), false) = (before, explicit_mode) {
        let fd = reopen(ctx, dest)?;
        chmod(&fd_path(fd.as_fd()), Mode::from_raw_mode(mode)).map_err(|e| at("chmod mount point")(e.into()))?;
    }
    Ok(())
}

fn generic(ctx: &Ctx<'_>, kind: &str, source: &str, dest: &str, opts: &MountOptions) -> Result<(), Failure> {
    let t = checked_target(ctx, dest, Target::Dir, false)?;
    let mut flags = opts.flags;
    if dest == "/dev" {
        flags -= MountFlags::RDONLY;
    }
    mount_at(ctx, &t, source, kind, flags, opts, dest)
}

fn cgroup(ctx: &Ctx<'_>, source: &str, dest: &str, opts: &MountOptions) -> Result<(), Failure> {
    if fs_magic(Path::new("/sys/fs/cgroup")).ok() == Some(FsMagic::CGROUP2) {
        return match generic(ctx, "cgroup2", source, dest, opts) {
            Err(Failure::Io { source: e, .. })
                if matches!(e.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ResourceBusy) =>
            {
                let mut o = opts.clone();
                o.flags |= MountFlags::BIND | MountFlags::REC;
                o.data.clear();
                bind(ctx, Path::new("/sys/fs/cgroup"), dest, &o)
            }
            r => r,
        };
    }
    cgroup_v1(ctx, dest, opts)
}

/// `(controllers, path)` of each line of `/proc/self/cgroup`.
fn own_cgroups() -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect())
}

fn cgroup_v1(ctx: &Ctx<'_>, dest: &str, opts: &MountOptions) -> Result<(), Failure> {
    let base = MountOptions {
        flags: MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV,
        propagation: opts.propagation.clone(),
        data: "mode=755".into(),
        ..MountOptions::default()
    };
    tmpfs(ctx, "tmpfs", dest, &base)?;
    let own = own_cgroups().map_err(at("read /proc/self/cgroup"))?;
    let mounts = mountinfo::read().map_err(at("read /proc/self/mountinfo"))?;
    let mut merged = Vec::new();
    for mi in mounts.iter().filter(|m| m.fs_type == "cgroup") {
        let supers: Vec<&str> = mi.super_options.split(',').collect();
        let Some((_, path)) =
            own.iter().find(|(ctrls, _)| !ctrls.is_empty() && ctrls.split(',').any(|c| supers.contains(&c)))
        else {
            continue;
        };
        let name = Path::new(&mi.mount_point).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let sub = format!("{dest}/{name}");
        if ctx.cgroupns {
            let t = open_target(ctx.root, &sub, Target::Dir).map_err(at("create mount point"))?;
            let mut flags = base.flags;
            if opts.readonly() {
                flags |= MountFlags::RDONLY;
            }
            let (source, data) =
                if name == "systemd" { ("systemd", "name=systemd".to_owned()) } else { ("cgroup", name.clone()) };
            mount(source, &fd_path(t.as_fd()), "cgroup", flags, &data).map_err(at(format!("mount cgroup {data}")))?;
        } else {
            let rel = Path::new(path).strip_prefix(&mi.root).map_err(|_| {
                Failure::Refused(format!(
                    "own cgroup {path} is outside the {} hierarchy's root {}",
                    mi.mount_point, mi.root
                ))
            })?;
            let o = MountOptions {
                flags: opts.flags | MountFlags::BIND | MountFlags::REC,
                propagation: opts.propagation.clone(),
                ..MountOptions::default()
            };
            bind(ctx, &Path::new(&mi.mount_point).join(rel), &sub, &o)?;
        }
        if name.contains(',') {
            merged.push(name);
        }
    }
    let dir = open_target(ctx.root, dest, Target::Dir).map_err(at("reopen target"))?;
    for mc in &merged {
        for ss in mc.split(',') {
            match symlink_at(mc.as_bytes(), dir.as_fd(), ss.as_bytes()) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(at(format!("symlink {ss}"))(e)),
                _ => {}
            }
        }
    }
    Ok(())
}
