//! Running our own binary from where nobody can write it: a process that
//! enters a container is reachable there through `/proc/<pid>/exe`, and a
//! container that opened the host's binary through it could overwrite it
//! (runc's CVE-2019-5736).
//!
//! First choice (runc 1.2 does the like with overlayfs): re-execute
//! through a detached read-only bind mount of the binary
//! (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_RDONLY)`):
//! the exe link then names a file on a read-only mount that is attached
//! nowhere, so opening it for writing fails with `EROFS`, and it costs
//! no copy. Fallback: a sealed memfd copy (runc 1.1's way), which costs
//! a copy of the binary per command.

#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStringExt;

/// Environment marker of a re-executed process (removed on arrival).
const MARKER: &str = "_STRATA_SEALED_EXE";

/// `struct mount_attr` of `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_RDONLY` of `<linux/mount.h>`.
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set: RDONLY})`: makes the
/// mount `fd` refers to read-only.
///
/// See mount_setattr(2).
fn mount_setattr_readonly(fd: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: the path is a valid empty C string, `attr` is a properly laid
    // out `struct mount_attr` that outlives the call, and its size is
    // passed; the kernel only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether `/proc/self/exe` cannot be opened for writing: it is on a
/// read-only mount (fstatvfs(3) `ST_RDONLY`), or a memfd with every write
/// seal.
fn running_protected() -> bool {
    let Ok(fd) = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    if rustix::fs::fstatvfs(&fd).is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)) {
        return true;
    }
    running_sealed()
}

/// Re-executes through a detached read-only bind mount of the binary.
fn reexec_readonly(argv: &[CString], envp: &[CString]) -> io::Result<()> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/proc/self/exe",
        rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    mount_setattr_readonly(&tree)?;
    let e = nix::unistd::execveat(&tree, c"", argv, envp, nix::fcntl::AtFlags::AT_EMPTY_PATH);
    Err(io::Error::other(format!("execveat of the read-only binary: {e:?}")))
}

/// Whether `/proc/self/exe` is a memfd with every write seal in place.
fn running_sealed() -> bool {
    let Ok(fd) = rustix::fs::open(
        "/proc/self/exe",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let need = rustix::fs::SealFlags::SEAL
        | rustix::fs::SealFlags::SHRINK
        | rustix::fs::SealFlags::GROW
        | rustix::fs::SealFlags::WRITE;
    rustix::fs::fcntl_get_seals(&fd).is_ok_and(|s| s.contains(need))
}

/// Re-executes this process (same arguments and environment) from a
/// read-only bind mount of `/proc/self/exe`, or failing that from a
/// sealed memfd copy, unless it already runs from one of them; returns
/// only in the re-executed process, or on failure.
///
/// open_tree(2), mount_setattr(2), execveat(2); memfd_create(2),
/// fcntl(2) `F_ADD_SEALS`, fexecve(3).
pub fn reexec_protected() -> io::Result<()> {
    reexec(false)
}

/// As [`reexec_protected`], but always from a sealed memfd copy: for a
/// process that becomes a container's PID 1 (`--init`), whose
/// `/proc/1/exe` must not be the host's binary at all, even read-only.
pub fn reexec_sealed_copy() -> io::Result<()> {
    reexec(true)
}

fn reexec(memfd_only: bool) -> io::Result<()> {
    if std::env::var_os(MARKER).is_some() {
        std::env::remove_var(MARKER);
        if (memfd_only && running_sealed()) || (!memfd_only && running_protected()) {
            return Ok(());
        }
        return Err(io::Error::other("the re-executed binary is still writable"));
    }
    let (argv, envp) = args_and_env()?;
    if memfd_only || reexec_readonly(&argv, &envp).is_err() {
        reexec_memfd(&argv, &envp)?;
    }
    Err(io::Error::other("re-execution returned"))
}

fn args_and_env() -> io::Result<(Vec<CString>, Vec<CString>)> {
    let cstr = |s: OsString| CString::new(s.into_vec()).map_err(|_| io::Error::other("argument holds NUL"));
    let argv: Vec<CString> = std::env::args_os().map(cstr).collect::<io::Result<_>>()?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstr(kv)
        })
        .collect::<io::Result<_>>()?;
    envp.push(CString::new(format!("{MARKER}=1")).expect("no NUL"));
    Ok((argv, envp))
}

fn reexec_memfd(argv: &[CString], envp: &[CString]) -> io::Result<()> {
    let memfd = rustix::fs::memfd_create(
        "strata-runc",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    let mut src = std::fs::File::open("/proc/self/exe")?;
    let len = src.metadata()?.len();
    let mut dst = std::fs::File::from(memfd);
    let mut off = 0u64;
    while off < len {
        let n = rustix::fs::sendfile(&dst, &src, None, usize::try_from(len - off).unwrap_or(usize::MAX))?;
        if n == 0 {
            break;
        }
        off += n as u64;
    }
    if off < len {
        io::copy(&mut src, &mut dst)?;
    }
    rustix::fs::fcntl_add_seals(
        &dst,
        rustix::fs::SealFlags::SEAL
            | rustix::fs::SealFlags::SHRINK
            | rustix::fs::SealFlags::GROW
            | rustix::fs::SealFlags::WRITE,
    )?;
    // The descriptor must survive until the kernel has read the binary:
    // fexecve with a close-on-exec memfd works for ELF executables.
    let e = nix::unistd::fexecve(&dst, argv, envp);
    Err(io::Error::other(format!("fexecve of the sealed copy: {e:?}")))
}
