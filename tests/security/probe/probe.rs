//! The security probe: a static program run as a container's process that
//! tries each escape of issue 14 for real and prints one line per check,
//! `name: allowed | denied(ERRNO) | value`. It is compiled by the test
//! (`rustc -O -C target-feature=+crt-static`, std only) and declares the
//! few glibc functions it needs itself: no crates.
//!
//! A check that would change the probe itself when allowed (a new user
//! namespace, a personality, a keyring, a mount) runs in a forked child,
//! which reports through its exit status (0 allowed, else the errno), so
//! every later check still sees the container as it was started.
//!
//! Arguments: `disk=MAJ:MIN` (a host block device to mknod and open),
//! `open=PATH` (a device to open read-write), `hold…` (after the report,
//! sleep until killed, so the host can read the container's cgroups).

use std::ffi::CString;
use std::io::Write;

extern "C" {
    fn syscall(number: i64, ...) -> i64;
    fn ioctl(fd: i32, request: u64, ...) -> i32;
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
    fn close(fd: i32) -> i32;
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const MOUNT: i64 = 165;
    pub const UMOUNT2: i64 = 166;
    pub const PTRACE: i64 = 101;
    pub const PERSONALITY: i64 = 135;
    pub const ADD_KEY: i64 = 248;
    pub const KEYCTL: i64 = 250;
    pub const MKNODAT: i64 = 259;
    pub const UNSHARE: i64 = 272;
    pub const PERF_EVENT_OPEN: i64 = 298;
    pub const SETNS: i64 = 308;
    pub const BPF: i64 = 321;
    pub const USERFAULTFD: i64 = 323;
    pub const GETCWD: i64 = 79;
    pub const IO_URING_SETUP: i64 = 425;
    pub const CLONE3: i64 = 435;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const MOUNT: i64 = 40;
    pub const UMOUNT2: i64 = 39;
    pub const PTRACE: i64 = 117;
    pub const PERSONALITY: i64 = 92;
    pub const ADD_KEY: i64 = 217;
    pub const KEYCTL: i64 = 219;
    pub const MKNODAT: i64 = 33;
    pub const UNSHARE: i64 = 97;
    pub const PERF_EVENT_OPEN: i64 = 241;
    pub const SETNS: i64 = 268;
    pub const BPF: i64 = 280;
    pub const USERFAULTFD: i64 = 282;
    pub const GETCWD: i64 = 17;
    pub const IO_URING_SETUP: i64 = 425;
    pub const CLONE3: i64 = 435;
}

const CLONE_NEWNS: i64 = 0x0002_0000;
const CLONE_NEWUSER: i64 = 0x1000_0000;
const KEYCTL_JOIN_SESSION_KEYRING: i64 = 1;
const KEY_SPEC_PROCESS_KEYRING: i64 = -2;
const BPF_PROG_LOAD: i64 = 5;
const PTRACE_TRACEME: i64 = 0;
const MNT_DETACH: i64 = 2;
const AT_FDCWD: i64 = -100;
const S_IFBLK: i64 = 0o060_000;
const TIOCSTI: u64 = 0x5412;
const O_CLOEXEC: i64 = 0o2_000_000;
const UFFD_USER_MODE_ONLY: i64 = 1;
/// `READ_IMPLIES_EXEC`: a personality Docker's profile refuses.
const BAD_PERSONALITY: i64 = 0x0040_0000;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn name(e: i32) -> String {
    let n = match e {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        6 => "ENXIO",
        9 => "EBADF",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        19 => "ENODEV",
        7 => "E2BIG",
        22 => "EINVAL",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        30 => "EROFS",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        _ => return format!("E{e}"),
    };
    n.to_string()
}

fn outcome(ret: i64, err: i32) -> String {
    if ret >= 0 {
        "allowed".to_string()
    } else {
        format!("denied({})", name(err))
    }
}

/// Runs `f` (a raw syscall returning -1 on error) in a forked child; the
/// child closes any descriptor the call returned and exits with its errno.
fn in_child(f: impl FnOnce() -> i64) -> String {
    // SAFETY: the probe is single-threaded; the child only makes raw
    // syscalls and exits without unwinding or running destructors.
    let pid = unsafe { fork() };
    if pid == 0 {
        let ret = f();
        let code = if ret < 0 { errno().clamp(1, 255) } else { 0 };
        // SAFETY: ends the child immediately.
        unsafe { _exit(code) }
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    if pid < 0 || unsafe { waitpid(pid, &mut status, 0) } != pid {
        return format!("probe-error({})", name(errno()));
    }
    if status & 0x7f != 0 {
        return format!("killed(signal {})", status & 0x7f);
    }
    match (status >> 8) & 0xff {
        0 => "allowed".to_string(),
        e => format!("denied({})", name(e)),
    }
}

/// A raw syscall in this process; a descriptor it returns is closed.
fn direct(f: impl FnOnce() -> i64) -> String {
    let ret = f();
    let err = errno();
    if ret >= 0 {
        // SAFETY: closing a descriptor the call just returned.
        unsafe { close(ret as i32) };
    }
    outcome(ret, err)
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in probe strings")
}

/// FNV-1a 64 of a file's content, for comparing with a host binary.
fn fnv(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn open_result(path: &str, write: bool) -> String {
    match std::fs::OpenOptions::new().read(!write).write(write).open(path) {
        Ok(_) => "allowed".to_string(),
        Err(e) => format!("denied({})", name(e.raw_os_error().unwrap_or(0))),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = Vec::<(String, String)>::new();
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));

    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["Seccomp", "NoNewPrivs", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = status.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).map(str::trim);
        put(key, v.unwrap_or("absent").to_string());
    }

    // Descriptors: everything open but the one listing the directory.
    let mut fds: Vec<u32> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        for e in rd.flatten() {
            let Some(n) = e.file_name().to_str().and_then(|s| s.parse().ok()) else { continue };
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
            if !(target.starts_with("/proc/") && target.ends_with("/fd")) {
                fds.push(n);
            }
        }
    }
    fds.sort();
    put("fds", fds.iter().map(u32::to_string).collect::<Vec<_>>().join(","));

    let nul = cstr("");
    let user_key = cstr("user");
    let desc = cstr("strata-probe");
    put("unshare-user", in_child(|| unsafe { syscall(nr::UNSHARE, CLONE_NEWUSER) }));
    put("unshare-mnt", in_child(|| unsafe { syscall(nr::UNSHARE, CLONE_NEWNS) }));
    put(
        "keyctl-join",
        in_child(|| unsafe { syscall(nr::KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, std::ptr::null::<u8>()) }),
    );
    put(
        "add-key",
        in_child(|| unsafe {
            syscall(nr::ADD_KEY, user_key.as_ptr(), desc.as_ptr(), nul.as_ptr(), 1i64, KEY_SPEC_PROCESS_KEYRING)
        }),
    );
    let mut uring_params = [0u8; 120];
    put("io-uring-setup", direct(|| unsafe { syscall(nr::IO_URING_SETUP, 1i64, uring_params.as_mut_ptr()) }));
    let mut bpf_attr = [0u8; 128];
    put("bpf-prog-load", direct(|| unsafe { syscall(nr::BPF, BPF_PROG_LOAD, bpf_attr.as_mut_ptr(), 128i64) }));
    // perf_event_attr: type SOFTWARE, size 128, config CPU_CLOCK,
    // exclude_kernel|exclude_hv (bits 5 and 6 of the flags word at 40).
    let mut perf = [0u8; 128];
    perf[0] = 1;
    perf[4] = 128;
    perf[40] = 0x60;
    put("perf-event-open", direct(|| unsafe { syscall(nr::PERF_EVENT_OPEN, perf.as_mut_ptr(), 0i64, -1i64, -1i64, 0i64) }));
    put("userfaultfd", direct(|| unsafe { syscall(nr::USERFAULTFD, O_CLOEXEC | UFFD_USER_MODE_ONLY) }));
    put("clone3", direct(|| unsafe { syscall(nr::CLONE3, std::ptr::null::<u8>(), 0i64) }));
    // On a directory of its own, unmounted again at once: the mount
    // namespace is shared with the parent (and with the host, were the
    // probe ever run there by mistake).
    let (tmpfs, target) = (cstr("tmpfs"), cstr("/tmp/.probe-mnt"));
    let _ = std::fs::create_dir_all("/tmp/.probe-mnt");
    put(
        "mount-tmpfs",
        in_child(|| unsafe {
            let ret = syscall(nr::MOUNT, tmpfs.as_ptr(), target.as_ptr(), tmpfs.as_ptr(), 0i64, 0i64);
            if ret == 0 {
                syscall(nr::UMOUNT2, target.as_ptr(), MNT_DETACH);
            }
            ret
        }),
    );
    let _ = std::fs::remove_dir("/tmp/.probe-mnt");
    put("ptrace-traceme", in_child(|| unsafe { syscall(nr::PTRACE, PTRACE_TRACEME, 0i64, 0i64, 0i64) }));
    put("personality-query", in_child(|| unsafe { syscall(nr::PERSONALITY, 0xffff_ffffi64) }));
    put("personality-bad", in_child(|| unsafe { syscall(nr::PERSONALITY, BAD_PERSONALITY) }));
    let ns = std::fs::File::open("/proc/self/ns/mnt");
    let ns_fd = ns.as_ref().map(|f| std::os::fd::AsRawFd::as_raw_fd(f) as i64).unwrap_or(-1);
    put("setns-mnt", in_child(|| unsafe { syscall(nr::SETNS, ns_fd, 0i64) }));
    drop(ns);
    let mut cwd = [0u8; 256];
    let ret = unsafe { syscall(nr::GETCWD, cwd.as_mut_ptr(), 256i64) };
    put("getcwd", outcome(ret, errno()));

    for arg in &args {
        if let Some(dev) = arg.strip_prefix("disk=") {
            let (maj, min) = dev.split_once(':').expect("disk=MAJ:MIN");
            let (maj, min): (i64, i64) = (maj.parse().unwrap(), min.parse().unwrap());
            // The kernel's new_encode_dev layout of dev_t.
            let dev = (min & 0xff) | (maj << 8) | ((min & !0xff) << 12);
            let node = cstr("/tmp/.probe-disk");
            let made = in_child(|| unsafe { syscall(nr::MKNODAT, AT_FDCWD, node.as_ptr(), S_IFBLK | 0o600, dev) });
            put("mknod-disk", made);
            put("open-disk", open_result("/tmp/.probe-disk", false));
            let _ = std::fs::remove_file("/tmp/.probe-disk");
        }
        if let Some(path) = arg.strip_prefix("open=") {
            put(&format!("open:{path}"), open_result(path, true));
        }
    }
    for dev in ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty"] {
        put(&format!("open:{dev}"), open_result(dev, false));
    }

    put("proc1-exe", std::fs::read_link("/proc/1/exe").map_or_else(|e| format!("denied({e})"), |p| p.display().to_string()));
    put("proc1-exe-write", open_result("/proc/1/exe", true));
    put(
        "proc1-exe-read",
        match std::fs::read("/proc/1/exe") {
            Ok(data) => format!("fnv={} size={}", fnv(&data), data.len()),
            Err(e) => format!("denied({})", name(e.raw_os_error().unwrap_or(0))),
        },
    );

    let c = b'#';
    // SAFETY: TIOCSTI reads one byte from a valid pointer.
    let ret = unsafe { ioctl(0, TIOCSTI, &c as *const u8) };
    put("tiocsti-stdin", outcome(i64::from(ret), errno()));

    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = limits.lines().find_map(|l| l.strip_prefix("Max open files")).unwrap_or("absent");
    put("rlimit-nofile", nofile.split_whitespace().take(2).collect::<Vec<_>>().join(":"));

    let masked = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/acpi", "/sys/firmware", "/proc/scsi"];
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let points: Vec<&str> = mountinfo.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    let hit: Vec<&str> = masked.iter().copied().filter(|m| points.contains(m)).collect();
    put("masked", hit.join(","));
    let devices = std::fs::read_to_string("/sys/fs/cgroup/devices/devices.list");
    put("devices-list", devices.map_or_else(|e| format!("unreadable({e})"), |d| d.trim().replace('\n', ";")));

    let mut stdout = std::io::stdout().lock();
    for (k, v) in &out {
        let _ = writeln!(stdout, "{k}: {v}");
    }
    let _ = writeln!(stdout, "end: ok");
    let _ = stdout.flush();
    drop(stdout);
    if args.iter().any(|a| a.starts_with("hold")) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
