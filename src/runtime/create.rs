//! `create`: from a bundle (or a spec handed over in-process) to a
//! container whose init waits on its exec fifo — the parent's side of
//! the protocol drawn in [`super::init`].

use super::container::{self, Container, Record};
use super::spec::{self, DeviceRule, DeviceRuleType, NamespaceType, Spec, Status};
use super::{cgroups, hooks, init, seccomp, ExecError, StartError};
use crate::mount::Mount;
use crate::sys::pipe::{pipe_with, PipeFlags};
use crate::sys::process::{CloneFlags, UnshareFlags};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where the container's pty master goes when `process.terminal`.
#[derive(Debug, Default)]
pub enum Console {
    /// No terminal (stdio inherited, or given).
    #[default]
    None,
    /// runc's `--console-socket`: a unix socket path to connect to.
    Path(PathBuf),
    /// A connected socket (strata's own containers: one end of a pair).
    Socket(OwnedFd),
}

/// How to create a container.
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub id: String,
    /// The bundle directory (absolute).
    pub bundle: PathBuf,
    /// The state root (`--root`).
    pub state_root: PathBuf,
    /// The spec: `None` reads `<bundle>/config.json`.
    pub spec: Option<Spec>,
    pub console: Console,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Descriptors 3 .. 3+N pass to the container as they are.
    pub preserve_fds: u32,
    // strata's own containers (not reachable from runc's command line):
    /// The storage driver's mounts, mounted at the root path inside the
    /// container's mount namespace (mounts as data; nothing on the host).
    pub driver_mounts: Vec<Mount>,
    /// stdin, stdout, stderr for the init instead of the caller's.
    pub stdio: Option<[OwnedFd; 3]>,
    /// A user name (`-u app:staff`) resolved inside the container, Docker's
    /// way; overrides `process.user` uid/gid.
    pub user_name: Option<String>,
    /// strata's `--init`: a reaping PID 1 that runs the process.
    pub tini: bool,
    /// The init dies (SIGKILL) with the thread that calls `create`
    /// (`PR_SET_PDEATHSIG`): for a supervisor that stays the container's
    /// parent, so killing it leaves no unsupervised container behind. Never
    /// for runc's `create`, which exits while the container lives.
    pub kill_with_parent: bool,
    /// A directory of compiled seccomp programs by digest
    /// ([`seccomp::Cache`]); `None` compiles the filter every time.
    pub seccomp_cache: Option<PathBuf>,
}

/// The state hooks see before the init runs the process.
pub fn creating_state(spec: &Spec, id: &str, bundle: &Path) -> spec::State {
    spec::State {
        oci_version: spec::VERSION.to_owned(),
        id: id.to_owned(),
        status: Status::Creating,
        pid: Some(std::process::id() as i32),
        bundle: bundle.display().to_string(),
        annotations: spec.annotations.clone(),
        extra: Default::default(),
    }
}

/// The state startContainer hooks see (from inside the init: our pid).
pub fn running_state(spec: &Spec, id: &str, bundle: &Path) -> spec::State {
    spec::State { status: Status::Running, ..creating_state(spec, id, bundle) }
}

/// What this build cannot do, refused by the field's name before anything
/// is set up.
pub fn check_supported(spec: &Spec) -> Result<(), ExecError> {
    let mut fields = spec.unsupported_fields();
    if let Some(p) = &spec.process {
        if !p.apparmor_profile.is_empty() {
            fields.push("process.apparmorProfile (AppArmor)".into());
        }
        if !p.selinux_label.is_empty() {
            fields.push("process.selinuxLabel (SELinux)".into());
        }
        if p.scheduler.is_some() {
            fields.push("process.scheduler".into());
        }
        if p.io_priority.is_some() {
            fields.push("process.ioPriority".into());
        }
        if p.exec_cpu_affinity.is_some() {
            fields.push("process.execCPUAffinity".into());
        }
    }
    if let Some(l) = &spec.linux {
        if !l.mount_label.is_empty() {
            fields.push("linux.mountLabel (SELinux)".into());
        }
        if l.intel_rdt.is_some() {
            fields.push("linux.intelRdt".into());
        }
        if !l.time_offsets.is_empty() {
            fields.push("linux.timeOffsets".into());
        }
        if l.namespace(NamespaceType::Time).is_some() {
            fields.push("linux.namespaces: time".into());
        }
        if l.personality.as_ref().is_some_and(|p| !p.flags.is_empty()) {
            fields.push("linux.personality.flags".into());
        }
        if l.seccomp.as_ref().is_some_and(|s| !s.listener_path.is_empty()) {
            fields.push("linux.seccomp.listenerPath".into());
        }
    }
    match fields.into_iter().next() {
        Some(f) => Err(ExecError::Unsupported(f)),
        None => Ok(()),
    }
}

/// Removes a half-made container: kills the init, the cgroups, the state
/// directory.
struct Undo {
    dir: Option<PathBuf>,
    /// The init, our unreaped child: its pid and pidfd.
    init: Option<(i32, std::sync::Arc<OwnedFd>)>,
    cgroups: Option<cgroups::Manager>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some((pid, pidfd)) = &self.init {
            let _ = crate::sys::process::pidfd_send_signal(pidfd.as_fd(), crate::sys::signal::Signal::SIGKILL);
            let _ = super::wait(*pid);
        }
        if let Some(cg) = &self.cgroups {
            let _ = cg.destroy();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Creates the container; on return its init waits for `start`. The
/// caller must be single-threaded.
pub fn create(mut opts: CreateOptions) -> Result<Container, ExecError> {
    container::check_id(&opts.id)?;
    let spec = match opts.spec.take() {
        Some(s) => s,
        None => Spec::load(&opts.bundle)?,
    };
    spec.validate()?;
    check_supported(&spec)?;
    let process = spec
        .process
        .as_ref()
        .ok_or(ExecError::Invalid(spec::Invalid { field: "process".into(), problem: spec::Problem::Missing }))?;
    let linux = spec.linux.clone().unwrap_or_default();
    if linux.namespace(NamespaceType::Mount).is_none() {
        return Err(ExecError::Unsupported("linux.namespaces without \"mount\" (the rootfs needs one)".into()));
    }
    if process.terminal && matches!(opts.console, Console::None) {
        return Err(ExecError::Usage("process.terminal needs --console-socket (create detaches)".into()));
    }
    let root = spec.root.as_ref().map(|r| r.path.clone()).unwrap_or_default();
    let rootfs = opts.bundle.join(&root);
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|e| ExecError::io("root.path: resolve", &rootfs, e))?;
    if !rootfs.is_dir() {
        return Err(ExecError::Usage(format!("root.path {}: not a directory", rootfs.display())));
    }
    container::make_state_root(&opts.state_root)?;
    let dir = container::dir_of(&opts.state_root, &opts.id)?;
    match container::make_state_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(ExecError::Exists(opts.id.clone())),
        Err(e) => return Err(ExecError::io("create", &dir, e)),
    }
    let mut undo = Undo { dir: Some(dir.clone()), init: None, cgroups: None };
    // 0622 whatever the umask: the init opens it for writing after it
    // became the spec's user.
    let fifo = dir.join("exec.fifo");
    crate::sys::fs::mkfifo(&fifo, 0o622).map_err(|e| ExecError::io("mkfifo", &fifo, e))?;
    crate::sys::fs::chmod(&fifo, crate::sys::fs::Mode::from_raw_mode(0o622))
        .map_err(|e| ExecError::io("chmod", &fifo, e.into()))?;
    let state_dir = crate::sys::fs::open_dir(&dir).map_err(|e| ExecError::io("open", &dir, e))?;

    // Namespaces: pid and user come from clone; the rest the init
    // unshares or joins. A pid namespace to join is entered here: setns
    // of a pid namespace applies to our children only.
    let mut clone_flags = CloneFlags::empty();
    let mut unshare = UnshareFlags::empty();
    let mut join = Vec::new();
    let (mut new_net, mut new_user) = (false, false);
    for ns in &linux.namespaces {
        if !ns.path.is_empty() {
            let fd = crate::sys::fs::open(
                Path::new(&ns.path),
                crate::sys::fs::OFlags::RDONLY | crate::sys::fs::OFlags::CLOEXEC,
                crate::sys::fs::Mode::empty(),
            )
            .map_err(|e| ExecError::io(&format!("linux.namespaces ({}): open", ns.kind), Path::new(&ns.path), e))?;
            if ns.kind == NamespaceType::Pid {
                crate::sys::process::setns(&fd)
                    .map_err(|e| ExecError::io("linux.namespaces (pid): setns", Path::new(&ns.path), e))?;
            } else {
                join.push((ns.kind, fd));
            }
            continue;
        }
        match ns.kind {
            NamespaceType::Pid => clone_flags |= CloneFlags::CLONE_NEWPID,
            NamespaceType::User => {
                clone_flags |= CloneFlags::CLONE_NEWUSER;
                new_user = true;
            }
            NamespaceType::Network => {
                unshare |= UnshareFlags::NEWNET;
                new_net = true;
            }
            NamespaceType::Mount => unshare |= UnshareFlags::NEWNS,
            NamespaceType::Ipc => unshare |= UnshareFlags::NEWIPC,
            NamespaceType::Uts => unshare |= UnshareFlags::NEWUTS,
            NamespaceType::Cgroup => unshare |= UnshareFlags::NEWCGROUP,
            NamespaceType::Time => unreachable!("refused by check_supported"),
        }
    }
    let cg = cgroups::Manager::new(&linux.cgroups_path, &opts.id).map_err(StartError::from_error)?;
    cg.create().map_err(StartError::from_error)?;
    undo.cgroups = Some(cg.clone());
    let console = match std::mem::take(&mut opts.console) {
        Console::None => None,
        Console::Path(p) => {
            Some(super::console::connect(&p).map_err(|e| ExecError::io("connect to the console socket", &p, e))?)
        }
        Console::Socket(fd) => Some(fd),
    };
    // The driver's mounts are made here, detached, with our privileges
    // and outside the container's cgroup (its device rules would refuse
    // a dm-thin block device), and attached by the init in its own mount
    // namespace: nothing is ever mounted on the host, and a failed create
    // leaves nothing behind. Kernels without the new mount API mount in
    // the init instead.
    let detached = match crate::mount::detach_all(&opts.driver_mounts) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Vec::new(),
        Err(e) => return Err(ExecError::io("mount the container's rootfs", &rootfs, e)),
    };
    // Compiled here (or read from the cache), not in the init: the init
    // only loads the program. A copy stays in the state directory for exec.
    let filter = match &linux.seccomp {
        Some(s) => {
            let here = seccomp::Cache::new(&dir);
            let f = match &opts.seccomp_cache {
                Some(cache) => {
                    let shared = seccomp::Cache::new(cache);
                    let f = shared.compile(s).map_err(StartError::from_error)?;
                    let _ = here.keep_from(&shared, s, &f);
                    f
                }
                None => {
                    let f = seccomp::compile(s).map_err(StartError::from_error)?;
                    let _ = here.keep(s, &f);
                    f
                }
            };
            Some(f)
        }
        None => None,
    };
    let stdio = opts.stdio.take();
    let (to_init_r, to_init_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| ExecError::io("pipe", &dir, e))?;
    let (from_init_r, from_init_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| ExecError::io("pipe", &dir, e))?;
    let args = init::InitArgs {
        spec: &spec,
        rootfs: rootfs.clone(),
        opts: &opts,
        join,
        unshare,
        new_net,
        new_user,
        state_dir,
        console,
        detached,
        filter,
    };
    let mut child_ends = Some((to_init_r, from_init_w));
    let kill_with_parent = opts.kill_with_parent;
    let parent = std::process::id() as i32;
    // Born in its cgroup2 group (clone3, CLONE_INTO_CGROUP): no moment
    // outside its limits and one write fewer; v1 groups are joined below.
    let unified = cg.open_unified().map_err(StartError::from_error)?;
    let mut init_main = || {
        // First, so no moment passes in which our death leaves the init
        // behind; then check we were not already gone (the signal would
        // never come). Later credential changes clear the setting: the
        // init sets it again after them, before it says "ready" — and its
        // "ready" reaching us proves we were alive after that.
        if kill_with_parent
            && (crate::sys::process::set_parent_death_signal(crate::sys::signal::Signal::SIGKILL).is_err()
                || crate::sys::process::parent_pid().ok() != Some(parent))
        {
            return 125;
        }
        let _ = crate::sys::prctl::set_dumpable(false);
        let (r, w) = child_ends.take().expect("clone runs the child once");
        if let Some([i, o, e]) = &stdio {
            let ok = crate::sys::stdio::dup2_stdin(i).is_ok()
                && crate::sys::stdio::dup2_stdout(o).is_ok()
                && crate::sys::stdio::dup2_stderr(e).is_ok();
            if !ok {
                return 125;
            }
        }
        // Keep stdio, the preserved fds and our own; close the rest (the
        // parent's locks and pipes must not live on in the container).
        let mut keep: Vec<BorrowedFd<'_>> = vec![r.as_fd(), w.as_fd(), args.state_dir.as_fd()];
        keep.extend(args.join.iter().map(|(_, fd)| fd.as_fd()));
        keep.extend(args.console.iter().map(|fd| fd.as_fd()));
        keep.extend(args.detached.iter().map(crate::mount::Detached::as_fd));
        if close_except(&keep, args.opts.preserve_fds).is_err() {
            return 125;
        }
        let sync =
            init::Sync { from_parent: BufReader::new(std::fs::File::from(r)), to_parent: std::fs::File::from(w) };
        init::run(&args, sync)
    };
    let (cloned, born_in_group) = match unified
        .as_ref()
        .map(|g| crate::sys::clone3::clone3_into(clone_flags, Some(std::os::fd::AsFd::as_fd(g)), &mut init_main))
    {
        Some(Ok(c)) => (c, true),
        // No child was made: an older kernel, or a group that refuses the
        // process, which the write below reports in its own words.
        Some(Err(_)) | None => (
            crate::sys::process::clone_into(clone_flags, &mut init_main)
                .map_err(|e| ExecError::io("clone the init", &dir, e))?,
            false,
        ),
    };
    drop(unified);
    let pid = cloned.pid;
    let pidfd = std::sync::Arc::new(cloned.pidfd);
    undo.init = Some((pid, std::sync::Arc::clone(&pidfd)));
    drop(child_ends);
    drop(args);
    let mut to_init = std::fs::File::from(to_init_w);
    let mut from_init = BufReader::new(std::fs::File::from(from_init_r));

    if new_user {
        write_id_maps(pid, &linux)?;
    }
    if born_in_group { cg.add_pid_v1(pid) } else { cg.add_pid(pid) }.map_err(StartError::from_error)?;
    cg.apply(&cgroup_resources(&linux)).map_err(StartError::from_error)?;
    if let Some(adj) = process.oom_score_adj {
        let p = PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
        std::fs::write(&p, adj.to_string()).map_err(|e| ExecError::io("process.oomScoreAdj: write", &p, e))?;
    }
    let start_time = container::process_start_time(pid).unwrap_or(0);
    let record = Record {
        id: opts.id.clone(),
        pid,
        start_time,
        bundle: opts.bundle.clone(),
        rootfs,
        created: crate::time::now(),
        cgroups: cg.paths().clone(),
        config: spec.clone(),
    };
    let c = Container { dir: dir.clone(), record, pidfd: Some(pidfd) };
    let say =
        |to: &mut std::fs::File, m: &str| writeln!(to, "{m}").map_err(|e| ExecError::io("sync with the init", &dir, e));
    say(&mut to_init, "go")?;
    let hooks_spec = spec.hooks.clone().unwrap_or_default();
    loop {
        let mut line = String::new();
        from_init.read_line(&mut line).map_err(|e| ExecError::io("sync with the init", &dir, e))?;
        let line = line.trim_end();
        if line == "hooks" {
            let state = c.state_as(Status::Creating);
            hooks::run(hooks::Stage::Prestart, &hooks_spec.prestart, &state).map_err(StartError::from_error)?;
            hooks::run(hooks::Stage::CreateRuntime, &hooks_spec.create_runtime, &state)
                .map_err(StartError::from_error)?;
            say(&mut to_init, "cont")?;
        } else if line == "ready" {
            break;
        } else if let Some(rest) = line.strip_prefix("error ") {
            let (code, msg) = rest.split_once(' ').unwrap_or(("125", rest));
            return Err(StartError::new(code.parse().unwrap_or(125), msg.to_owned()).into());
        } else {
            // End of file: the init died without a word.
            let code = super::wait(pid).unwrap_or(125);
            undo.init = None;
            return Err(StartError::new(125, format!("the container's init exited ({code}) while being set up")).into());
        }
    }
    c.save()?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    undo.dir = None;
    undo.init = None;
    undo.cgroups = None;
    Ok(c)
}

/// The devices every container may use whatever its spec says (runc's
/// `AllowedDevices`): `mknod` of any node, `/dev/null`, `zero`, `full`,
/// `random`, `urandom`, `tty`, the pty multiplexer and slaves, `/dev/net/tun`.
const ALLOWED_DEVICES: &[(DeviceRuleType, Option<i64>, Option<i64>, &str)] = &[
    (DeviceRuleType::Char, None, None, "m"),
    (DeviceRuleType::Block, None, None, "m"),
    (DeviceRuleType::Char, Some(1), Some(3), "rwm"),
    (DeviceRuleType::Char, Some(1), Some(8), "rwm"),
    (DeviceRuleType::Char, Some(1), Some(7), "rwm"),
    (DeviceRuleType::Char, Some(5), Some(0), "rwm"),
    (DeviceRuleType::Char, Some(1), Some(5), "rwm"),
    (DeviceRuleType::Char, Some(1), Some(9), "rwm"),
    (DeviceRuleType::Char, Some(136), None, "rwm"),
    (DeviceRuleType::Char, Some(5), Some(2), "rwm"),
    (DeviceRuleType::Char, Some(10), Some(200), "rwm"),
];

/// `linux.resources` with runc's device rules: the spec's own, then the
/// default devices. A `linux.devices` node is created, but the cgroup
/// allows it only if a rule says so (runc 1.1).
pub fn cgroup_resources(linux: &spec::Linux) -> spec::Resources {
    let mut r = linux.resources.clone().unwrap_or_default();
    for (kind, major, minor, access) in ALLOWED_DEVICES {
        r.devices.push(DeviceRule {
            allow: true,
            kind: Some(*kind),
            major: *major,
            minor: *minor,
            access: access.to_string(),
        });
    }
    r
}

/// Closes every descriptor but stdio, 3 .. 3+preserve and `keep`.
fn close_except(keep: &[BorrowedFd<'_>], preserve: u32) -> std::io::Result<()> {
    crate::sys::process::close_inherited_from(3 + preserve, keep)
}

/// `/proc/<pid>/uid_map` and `gid_map` from the spec.
fn write_id_maps(pid: i32, linux: &spec::Linux) -> Result<(), ExecError> {
    let map = |m: &[spec::IdMapping]| {
        m.iter().map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size)).collect::<String>()
    };
    for (file, m) in [("uid_map", &linux.uid_mappings), ("gid_map", &linux.gid_mappings)] {
        let p = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&p, map(m)).map_err(|e| ExecError::io(&format!("linux.{file}: write"), &p, e))?;
    }
    Ok(())
}

/// The pid file, atomically (containerd reads it as soon as it exists).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), ExecError> {
    let tmp = path.with_extension("tmp-strata");
    std::fs::write(&tmp, pid.to_string()).map_err(|e| ExecError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ExecError::io("rename", path, e))
}
