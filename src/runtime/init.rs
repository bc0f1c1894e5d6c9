//! The container's init: the child `create` clones, from its first
//! instruction to `execve` of the container's process.
//!
//! ```text
//! parent (create)                         init (PID 1 of a new PID ns)
//!   clone(NEWPID[|NEWUSER]) ───────────►   non-dumpable, close inherited fds
//!   uid/gid maps, cgroups, resources,      wait "go"
//!   oom_score_adj; send "go" ─────────►    setns joined namespaces, unshare new ones
//!                                          rootfs: mounts, devices
//!   ◄──────────────────── "hooks"          (runtime ns hooks)
//!   prestart, createRuntime; "cont" ──►    createContainer hooks, pivot_root
//!                                          console, hostname, sysctl, masks,
//!                                          keyring, rlimits, caps, user, seccomp
//!                                          (the program the parent compiled)
//!   ◄──────────────────── "ready"
//!   state.json, pid file; exit             open exec.fifo for writing (blocks)
//! start: read exec.fifo ─────────────►     startContainer hooks, execve
//! ```
//!
//! Failures before `"ready"` go to the parent as `error <code> <message>`;
//! after it, to the init's stderr (the parent is gone).

use super::spec::{NamespaceType, Spec};
use super::{hooks, process, rootfs, seccomp, StartError};
use crate::sys::process::{exit_immediately, setns, unshare_namespaces, UnshareFlags};
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// Everything the init needs, prepared by the parent before `clone`.
pub(super) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub opts: &'a super::create::CreateOptions,
    /// Namespace files to join, opened by the parent, by type.
    pub join: Vec<(NamespaceType, OwnedFd)>,
    /// Namespaces to create (besides pid and user, made by `clone`).
    pub unshare: UnshareFlags,
    /// Whether the init is in a new network namespace (bring `lo` up).
    pub new_net: bool,
    /// Whether the init is in a new user namespace.
    pub new_user: bool,
    /// The state directory (to open exec.fifo after pivot_root).
    pub state_dir: OwnedFd,
    /// The console socket, connected, when `process.terminal`.
    pub console: Option<OwnedFd>,
    /// The driver's mounts, made by the parent (empty: mount
    /// `opts.driver_mounts` here).
    pub detached: Vec<crate::mount::Detached>,
    /// `linux.seccomp`, compiled by the parent: the init only loads it.
    pub filter: Option<seccomp::Filter>,
}

/// The init's ends of the sync pipes.
pub(super) struct Sync {
    pub from_parent: BufReader<std::fs::File>,
    pub to_parent: std::fs::File,
}

impl Sync {
    fn send(&mut self, msg: &str) -> Result<(), StartError> {
        writeln!(self.to_parent, "{msg}").map_err(|e| StartError::caused(format!("sync with parent: {e}"), e))
    }

    fn expect(&mut self, want: &str) -> Result<(), StartError> {
        let mut line = String::new();
        self.from_parent.read_line(&mut line).map_err(|e| StartError::caused(format!("sync with parent: {e}"), e))?;
        if line.trim_end() == want {
            Ok(())
        } else if line.is_empty() {
            // The parent died or gave up: nothing to report to.
            exit_immediately(125)
        } else {
            Err(StartError::new(125, format!("sync with parent: expected {want:?}, got {:?}", line.trim_end())))
        }
    }
}

/// The init's body: never returns.
pub(super) fn run(args: &InitArgs<'_>, mut sync: Sync) -> ! {
    match setup(args, &mut sync) {
        Ok(never) => match never {},
        Err(e) => {
            // Before "ready" the parent reads this; after, nobody does,
            // and the message goes to stderr.
            let msg = e.message.replace('\n', " ");
            if sync.send(&format!("error {} {msg}", e.code)).is_err() {
                eprintln!("strata-runc init: {msg}");
            }
            exit_immediately(e.code)
        }
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StartError {
    move |e| StartError::caused(format!("{what}: {e}"), e)
}

fn setup(args: &InitArgs<'_>, sync: &mut Sync) -> Result<super::Never, StartError> {
    let spec = args.spec;
    let proc_ = spec.process.as_ref().ok_or_else(|| StartError::new(125, "process: is required"))?;
    super::reset_signals();
    sync.expect("go")?;
    if args.new_user {
        // Become the namespace's root (the parent wrote the maps): the
        // uid now, the gid after the other namespaces exist (runc's
        // order, so the IPC namespace's mqueue root has the same owner).
        crate::sys::prctl::setresuid(0).map_err(io("setresuid(0) in the user namespace"))?;
    }
    // Join first (a joined user namespace changes what may be unshared),
    // the mount namespace last: it changes what the other paths mean.
    let mut join: Vec<&(NamespaceType, OwnedFd)> = args.join.iter().collect();
    join.sort_by_key(|(t, _)| match t {
        NamespaceType::User => 0,
        NamespaceType::Mount => 2,
        _ => 1,
    });
    for (kind, fd) in join {
        setns(fd).map_err(|e| StartError::caused(format!("join {kind} namespace: {e}"), e))?;
    }
    unshare_namespaces(args.unshare).map_err(io("unshare namespaces"))?;
    if args.new_user {
        crate::sys::prctl::setresgid(0).map_err(io("setresgid(0) in the user namespace"))?;
    }
    crate::sys::process::setsid().map_err(io("setsid"))?;
    if args.new_net {
        crate::sys::process::interface_up("lo").map_err(io("bring up loopback"))?;
    }
    let filter = args.filter.as_ref();
    let plan = rootfs::RootfsPlan {
        spec,
        rootfs: args.rootfs.clone(),
        bundle: args.opts.bundle.clone(),
        driver_mounts: &args.opts.driver_mounts,
        detached: &args.detached,
        no_pivot: args.opts.no_pivot,
        console: None,
    };
    let hooks_spec = spec.hooks.clone().unwrap_or_default();
    let state = super::create::creating_state(spec, &args.opts.id, &args.opts.bundle);
    let mut before_pivot = || -> Result<(), rootfs::RootfsError> {
        let boxed = |e: StartError| rootfs::RootfsError::BeforePivot(Box::new(e));
        sync.send("hooks").map_err(boxed)?;
        sync.expect("cont").map_err(boxed)?;
        hooks::run(hooks::Stage::CreateContainer, &hooks_spec.create_container, &state)
            .map_err(|e| rootfs::RootfsError::BeforePivot(Box::new(e)))
    };
    rootfs::prepare(&plan, &mut before_pivot).map_err(StartError::from_error)?;
    if let Some(sock) = &args.console {
        let size = proc_.console_size.as_ref();
        let (master, slave) = super::console::new_pty_in_container(size).map_err(io("open a pty in the container"))?;
        rootfs::bind_console(&crate::sys::fs::fd_path(slave.as_fd())).map_err(StartError::from_error)?;
        crate::sys::stdio::dup2_stdin(&slave).map_err(io("dup2 the pty"))?;
        crate::sys::stdio::dup2_stdout(&slave).map_err(io("dup2 the pty"))?;
        crate::sys::stdio::dup2_stderr(&slave).map_err(io("dup2 the pty"))?;
        crate::sys::term::ioctl_tiocsctty(&slave).map_err(io("set the controlling terminal"))?;
        super::console::send_master(sock.as_fd(), master).map_err(io("send the pty to the console socket"))?;
    }
    if !spec.hostname.is_empty() {
        crate::sys::uts::sethostname(spec.hostname.as_bytes()).map_err(io("sethostname"))?;
    }
    if !spec.domainname.is_empty() {
        crate::sys::uts::setdomainname(spec.domainname.as_bytes()).map_err(io("setdomainname"))?;
    }
    if let Some(linux) = &spec.linux {
        rootfs::apply_sysctl(&linux.sysctl).map_err(StartError::from_error)?;
    }
    // A missing working directory is created (runc and Docker do),
    // before the root may turn read-only; chdir below reports failures.
    let cwd = if proc_.cwd.is_empty() { "/" } else { proc_.cwd.as_str() };
    let _ = std::fs::create_dir_all(cwd);
    rootfs::finalize(spec).map_err(StartError::from_error)?;
    if !args.opts.no_new_keyring {
        let name = CString::new(format!("_ses.{}", args.opts.id)).expect("IDs have no NUL");
        crate::sys::prctl::join_session_keyring(&name).map_err(io("join a new session keyring"))?;
    }
    if let Some(p) = spec.linux.as_ref().and_then(|l| l.personality.as_ref()) {
        let persona = match p.domain {
            super::spec::PersonalityDomain::Linux => crate::sys::prctl::PER_LINUX,
            super::spec::PersonalityDomain::Linux32 => crate::sys::prctl::PER_LINUX32,
        };
        crate::sys::prctl::personality(persona).map_err(io("personality"))?;
    }
    let resolved = resolve_user(args, proc_)?;
    let caps = process::CapSets::from_spec(proc_.capabilities.as_ref())?;
    process::apply_rlimits(&proc_.rlimits)?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before
    // the capabilities go (runc's order).
    if !proc_.no_new_privileges {
        if let Some(f) = filter {
            f.load().map_err(StartError::from_error)?;
        }
    }
    caps.apply_bounding()?;
    process::become_user(&resolved.user)?;
    if args.opts.kill_with_parent {
        // A change of uid or gid cleared the parent-death signal `create`
        // set at the clone; "ready" below tells the parent we re-armed it.
        crate::sys::process::set_parent_death_signal(crate::sys::signal::Signal::SIGKILL)
            .map_err(io("set the parent-death signal"))?;
    }
    caps.apply_rest()?;
    std::env::set_current_dir(cwd).map_err(|e| StartError::new(125, format!("process.cwd {cwd}: {e}")))?;
    if proc_.no_new_privileges {
        crate::sys::process::set_no_new_privs().map_err(io("no_new_privs"))?;
    }
    let env = resolved.env;
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(super::DEFAULT_PATH).to_owned();
    let exe = super::find_executable(proc_.args.first().map(String::as_str).unwrap_or(""), &path)?;
    let argv = process::cstrings("process.args", &proc_.args)?;
    let envp = process::cstrings("process.env", &env)?;
    sync.send("ready")?;
    // Wait for `start`: opening the fifo for writing blocks until it
    // opens it for reading. Through the state directory's descriptor:
    // that lookup ignores our new root.
    let fifo = crate::sys::fs::openat(
        args.state_dir.as_fd(),
        b"exec.fifo",
        crate::sys::fs::OFlags::WRONLY | crate::sys::fs::OFlags::CLOEXEC,
        crate::sys::fs::Mode::empty(),
    )
    .map_err(|e| StartError::new(125, format!("open exec.fifo: {e}")))?;
    crate::sys::fs::write(fifo.as_fd(), b"0").map_err(io("write exec.fifo"))?;
    drop(fifo);
    let running = super::create::running_state(spec, &args.opts.id, &args.opts.bundle);
    hooks::run(hooks::Stage::StartContainer, &hooks_spec.start_container, &running).map_err(StartError::from_error)?;
    if proc_.no_new_privileges {
        if let Some(f) = filter {
            f.load().map_err(StartError::from_error)?;
        }
    }
    // Nothing of ours crosses execve but stdio and the preserved fds.
    crate::sys::process::close_range_cloexec(3 + args.opts.preserve_fds).map_err(io("close descriptors"))?;
    if args.opts.tini {
        super::tini::run_as_init(&exe, &argv, &envp)
    } else {
        Err(super::exec_error(&proc_.args[0], crate::sys::process::execve(&exe, &argv, &envp)))
    }
}

/// The user and environment the process gets.
struct Resolved {
    user: super::spec::User,
    env: Vec<String>,
}

/// The spec's numeric user, or (strata's own containers) a name resolved
/// against the container's `/etc/passwd` and `/etc/group` as Docker does;
/// plus strata's default `PATH`/`HOME`/`TERM` for its own containers.
fn resolve_user(args: &InitArgs<'_>, proc_: &super::spec::Process) -> Result<Resolved, StartError> {
    let mut env = proc_.env.clone();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some(name) = &args.opts.user_name else {
        // runc's rule: HOME from the user's passwd entry, else "/".
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", home_of(&passwd, proc_.user.uid)));
        }
        return Ok(Resolved { user: proc_.user.clone(), env });
    };
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let u = super::security::resolve_user(name, &passwd, &group).map_err(|m| StartError::new(125, m))?;
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={}", super::DEFAULT_PATH));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    if proc_.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut additional = u.groups;
    additional.extend(proc_.user.additional_gids.iter().copied());
    let user = super::spec::User {
        uid: u.uid,
        gid: u.gid,
        umask: proc_.user.umask,
        additional_gids: additional,
        username: String::new(),
    };
    Ok(Resolved { user, env })
}

/// The home directory of `uid` in a passwd file, or "/".
pub(super) fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_owned())
}
