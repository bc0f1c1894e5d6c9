//! The supervisor: the process that starts a container, relays and logs
//! its output, forwards signals to it, waits for it, records its exit and
//! cleans up (cgroups, `--rm`).
//!
//! `run` without `-d` supervises in the foreground, attached to the
//! terminal. `run -d` and `start` fork a detached supervisor (double fork,
//! new session, stdio on /dev/null) that reports "started" or the start
//! error back through a pipe, then lives as long as the container — the
//! role conmon plays for podman, built into strata.
//!
//! The supervisor holds `supervisor.lock` for its whole life, so anyone can
//! tell a running container from one whose supervisor died, and `wait`
//! simply waits for the lock.
//!
//! The supervisor is the init's parent and keeps the pidfd `clone` gave
//! it: it waits (`waitid(P_PIDFD)`) and forwards signals
//! (`pidfd_send_signal`) through it, never by pid. The init dies with it
//! (`CreateOptions::kill_with_parent`: `PR_SET_PDEATHSIG(SIGKILL)`), so a
//! supervisor killed with SIGKILL leaves no container running
//! unsupervised; the next reader of its state records the exit
//! (`ContainerStore::get`).

use super::spec::Bind;
use super::volatile;
use crate::container::log::JsonLog;
use crate::container::records::ContainerStore;
use crate::container::{Config, ContainerId, MountKind, State, Status};
use crate::engine::Engine;
use crate::runtime::{self, Console, CreateOptions, ExecError, StartError};
use crate::snapshot::SnapshotKey;
use crate::sys::lock::FileLock;
use crate::sys::pipe::{pipe_with, PipeFlags};
use crate::sys::process::pidfd_send_signal;
use crate::sys::process::{fork_child, setsid};
use crate::sys::signal::{sigprocmask, sigwait, SigSet, SigmaskHow, Signal};
use crate::sys::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};
use crate::sys::term::{tcgetwinsize, tcsetwinsize};
use crate::time::now;
use crate::volume::VolumeStore;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// Signals an attached `run` forwards to the container (`--sig-proxy`).
const FORWARDED: &[Signal] =
    &[Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// How the supervisor relates to the user's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the foreground: output to our stdout/stderr, stdin relayed when
    /// the container is interactive.
    Attached,
    /// Detached: output only to the log.
    Detached,
}

/// The mounts a container needs besides its root: its /etc files and
/// volumes (creating named and anonymous volumes on first use).
pub fn binds(engine: &Engine, config: &Config) -> Result<Vec<Bind>, StartError> {
    let store = ContainerStore::new(&engine.root);
    let dir = store.dir(&config.id);
    let mut out: Vec<Bind> = ["hostname", "hosts", "resolv.conf"]
        .iter()
        .map(|f| Bind { source: dir.join(f), destination: format!("/etc/{f}"), readonly: false })
        .collect();
    let volumes = VolumeStore::new(&engine.root);
    for m in &config.mounts {
        let source = match m.kind {
            MountKind::Volume => {
                volumes.create(Some(&m.source)).map_err(StartError::from_error)?;
                volumes.data(&m.source)
            }
            MountKind::Bind => std::path::PathBuf::from(&m.source),
        };
        if !source.exists() {
            return Err(StartError::new(
                125,
                format!("invalid mount config: bind source path does not exist: {}", source.display()),
            ));
        }
        out.push(Bind { source, destination: m.destination.clone(), readonly: !m.rw });
    }
    Ok(out)
}

/// The container's stdio: pipes, or a console socket on which the
/// container's init sends its pty master (as runc does).
struct Stdio {
    /// stdin, stdout, stderr for the init (pipes only).
    child: Option<[OwnedFd; 3]>,
    /// Read ends of stdout and stderr (pipes only; the master for a tty
    /// arrives after create).
    outputs: Vec<(&'static str, OwnedFd)>,
    /// Where to write the container's input, if interactive (pipes only).
    input: Option<OwnedFd>,
    /// Our end of the console socket (tty only), and the init's.
    console: Option<(OwnedFd, OwnedFd)>,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    pipe_with(PipeFlags::CLOEXEC)
}

fn stdio(config: &Config) -> std::io::Result<Stdio> {
    if config.tty {
        let pair = runtime::console::pair()?;
        return Ok(Stdio { child: None, outputs: Vec::new(), input: None, console: Some(pair) });
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin, input) = if config.open_stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (runtime::dev_null()?, None)
    };
    Ok(Stdio {
        child: Some([stdin, out_w, err_w]),
        outputs: vec![("stdout", out_r), ("stderr", err_r)],
        input,
        console: None,
    })
}

/// An executor failure as `run` reports it: a start failure keeps its
/// code (125/126/127), anything else is strata's own (125).
fn start_error(e: ExecError) -> StartError {
    match e {
        ExecError::Start(s) => s,
        other => StartError::from_error(other),
    }
}

/// Starts `id` detached: forks a supervisor daemon and returns once the
/// container runs (or failed to start).
pub fn start_detached(engine: &Engine, id: &ContainerId) -> Result<(), StartError> {
    let (r, w) = pipe().map_err(|e| StartError::caused(format!("pipe: {e}"), e))?;
    // The daemon keeps stdio, the report pipe and what the engine keeps
    // open; no lock or pipe end of ours lives on in it.
    let keep = engine.snapshots.descriptors();
    let pid = fork_child(&keep, Some(w), |w| {
        let _ = setsid();
        let _ = fork_child(&keep, w, |w| {
            if let Ok(null) = runtime::dev_null() {
                let _ = dup2_stdin(&null);
                let _ = dup2_stdout(&null);
                let _ = dup2_stderr(&null);
            }
            supervise(engine, id, Mode::Detached, w.map(std::fs::File::from))
        });
        0
    })
    .map_err(|e| StartError::caused(format!("fork: {e}"), e))?;
    let _ = runtime::wait(pid);
    let mut msg = String::new();
    std::fs::File::from(r)
        .read_to_string(&mut msg)
        .map_err(|e| StartError::caused(format!("read supervisor: {e}"), e))?;
    if let Some(rest) = msg.strip_prefix("ok") {
        rest.lines().filter(|l| !l.is_empty()).for_each(|w| eprintln!("WARNING: {w}"));
        return Ok(());
    }
    match msg.split_once('\t') {
        Some((code, m)) => Err(StartError::new(code.parse().unwrap_or(125), m)),
        None => Err(StartError::new(125, "the supervisor exited before starting the container")),
    }
}

/// Supervises the container from start to exit; returns its exit code
/// (or strata's own 125/126/127 when it could not start). `report`
/// receives `ok` once running, or `<code>\t<message>`.
pub fn supervise(engine: &Engine, id: &ContainerId, mode: Mode, mut report: Option<std::fs::File>) -> i32 {
    let mut say = |msg: String| {
        if let Some(mut r) = report.take() {
            let _ = r.write_all(msg.as_bytes());
        }
    };
    match run(engine, id, mode, &mut say) {
        Ok(code) => code,
        Err(e) => {
            say(format!("{}\t{}", e.code, e.message));
            if mode == Mode::Attached {
                eprintln!("Error: {}", e.message);
            }
            e.code
        }
    }
}

fn run(engine: &Engine, id: &ContainerId, mode: Mode, say: &mut dyn FnMut(String)) -> Result<i32, StartError> {
    let store = ContainerStore::new(&engine.root);
    let (config, _) = store.get(id).map_err(StartError::from_error)?;
    let _lock = FileLock::try_exclusive(&store.supervisor_lock(id))
        .map_err(|e| StartError::caused(format!("supervisor lock: {e}"), e))?
        .ok_or_else(|| StartError::new(125, format!("container {} is already running", id.short())))?;
    clear_previous_run(engine, id)?;
    let key = SnapshotKey::new(id.as_str()).expect("container IDs are valid keys");
    let mut warning = None;
    if config.volatile {
        warning = volatile::settle(engine, &config, volatile::Use::Mount).map_err(StartError::from_error)?;
        volatile::record_boot(engine, &config).map_err(StartError::from_error)?;
    }
    let mut mounts = engine.snapshots.mounts(&key).map_err(StartError::from_error)?;
    if config.volatile {
        mounts = volatile::with_volatile(mounts);
    }
    let binds = binds(engine, &config)?;
    let mut io = stdio(&config).map_err(|e| StartError::caused(format!("stdio: {e}"), e))?;
    // Block the forwarded signals before any thread exists, so the
    // forwarding thread receives them (the init unblocks its copy).
    let mut forwarded = SigSet::empty();
    FORWARDED.iter().for_each(|s| forwarded.add(*s));
    if mode == Mode::Attached {
        forwarded.add(Signal::SIGWINCH);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded));
    let rootfs = store.rootfs_dir(id);
    let spec = super::spec::oci_spec(&config, &rootfs, &binds).map_err(StartError::from_error)?;
    let (our_console, init_console) = match io.console.take() {
        Some((ours, theirs)) => (Some(ours), Console::Socket(theirs)),
        None => (None, Console::None),
    };
    let opts = CreateOptions {
        id: id.as_str().to_owned(),
        bundle: store.dir(id),
        state_root: engine.root.runtime_state(),
        spec: Some(spec),
        console: init_console,
        driver_mounts: mounts,
        stdio: io.child.take(),
        user_name: Some(config.user.clone()),
        tini: config.init,
        kill_with_parent: true,
        seccomp_cache: Some(engine.root.seccomp_cache()),
        ..CreateOptions::default()
    };
    let started = now();
    let created = runtime::create(opts).and_then(|c| match runtime::start(&c) {
        Ok(()) => Ok(c),
        Err(e) => {
            let _ = runtime::delete(&c, true);
            Err(e)
        }
    });
    let ctr = match created {
        Ok(c) => c,
        Err(e) => {
            let e = start_error(e);
            let state = State {
                status: Status::Exited,
                exit_code: Some(e.code),
                finished_at: Some(now()),
                error: Some(e.message.clone()),
                ..State::created()
            };
            let _ = store.set_state(id, &state);
            finish(engine, &config);
            return Err(e);
        }
    };
    let pid = ctr.record.pid;
    if let Some(sock) = &our_console {
        let master = runtime::console::recv_master(sock).map_err(|e| StartError::caused(format!("console: {e}"), e))?;
        if let Ok(ws) = tcgetwinsize(std::io::stdin()) {
            let _ = tcsetwinsize(&master, ws);
        }
        if config.open_stdin {
            io.input = Some(master.try_clone().map_err(|e| StartError::caused(format!("console: {e}"), e))?);
        }
        io.outputs.push(("stdout", master));
    }
    drop(our_console);
    let running = State {
        status: Status::Running,
        pid: Some(pid),
        supervisor_pid: Some(std::process::id() as i32),
        started_at: Some(started.clone()),
        ..State::created()
    };
    store.set_state(id, &running).map_err(StartError::from_error)?;
    // A warning rides on the report (detached) or goes to our stderr.
    match (&warning, mode) {
        (Some(w), Mode::Attached) => eprintln!("WARNING: {w}"),
        (Some(w), _) => say(format!("ok\n{w}")),
        (None, _) => say("ok".into()),
    }

    let log = JsonLog::open(&store.log_path(id), config.log.max_size, config.log.max_file)
        .map_err(|e| StartError::caused(format!("log: {e}"), e))?;
    let log = Arc::new(Mutex::new(log));
    let tty = config.tty;
    let raw = (mode == Mode::Attached && tty).then(runtime::tty::Raw::enter);
    // A dup of the pty master, to pass on terminal size changes.
    let resize_target = io.outputs.first().and_then(|(_, fd)| fd.try_clone().ok());
    let relays: Vec<_> = io
        .outputs
        .into_iter()
        .map(|(stream, fd)| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || relay_output(stream, fd, log, mode == Mode::Attached))
        })
        .collect();
    // Keep the input end open while detached (an interactive shell waits
    // for input rather than seeing end-of-file); relay ours when attached.
    let _held_input = match (mode, io.input) {
        (Mode::Attached, Some(fd)) => {
            std::thread::spawn(move || relay_input(fd, tty));
            None
        }
        (_, input) => input,
    };
    let winch_target = if tty { resize_target } else { None };
    let init = ctr.pidfd.clone().expect("create returns the init's pidfd");
    std::thread::spawn(move || forward_signals(forwarded, &init, winch_target));
    let code = ctr.wait_init().map_err(start_error)?;
    for r in relays {
        let _ = r.join();
    }
    drop(raw);
    if let Ok(mut l) = log.lock() {
        let _ = l.flush_partial();
    }
    if let Err(e) = runtime::delete(&ctr, true) {
        eprintln!("strata: removing the container's runtime state: {e}");
    }
    let exited = State {
        status: Status::Exited,
        exit_code: Some(code),
        started_at: Some(started),
        finished_at: Some(now()),
        ..State::created()
    };
    let _ = store.set_state(id, &exited);
    finish(engine, &config);
    Ok(code)
}

/// Clears what an earlier supervisor of `id` that died left behind: the
/// runtime's record (whose init died with it) — or refuses when that init
/// still lives, a container running unsupervised. Called under the
/// supervisor lock.
fn clear_previous_run(engine: &Engine, id: &ContainerId) -> Result<(), StartError> {
    match runtime::Container::load(&engine.root.runtime_state(), id.as_str()) {
        Ok(old) if old.init_alive() => {
            Err(StartError::new(125, format!("container {} is already running (unsupervised)", id.short())))
        }
        Ok(old) => runtime::delete(&old, true).map_err(start_error),
        Err(ExecError::NotFound(_)) => Ok(()),
        Err(e) => Err(start_error(e)),
    }
}

/// `--rm`: the container goes with its exit, anonymous volumes included.
fn finish(engine: &Engine, config: &Config) {
    if config.auto_remove {
        let _ = super::lifecycle::remove_files(engine, config, true);
    }
}

fn relay_output(stream: &'static str, fd: OwnedFd, log: Arc<Mutex<JsonLog>>, attached: bool) {
    let mut src = std::fs::File::from(fd);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A pty master reads EIO once every slave is closed.
            Err(_) => break,
        };
        if let Ok(mut l) = log.lock() {
            let _ = l.write(stream, &buf[..n]);
        }
        if attached {
            let _ = if stream == "stderr" {
                std::io::stderr().write_all(&buf[..n]).and_then(|_| std::io::stderr().flush())
            } else {
                std::io::stdout().write_all(&buf[..n]).and_then(|_| std::io::stdout().flush())
            };
        }
    }
}

fn relay_input(fd: OwnedFd, tty: bool) {
    let mut dst = std::fs::File::from(fd);
    let mut buf = vec![0u8; 8192];
    let mut stdin = std::io::stdin();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if dst.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if tty {
        // End of input on a terminal session: send EOF (^D) to the line discipline.
        let _ = dst.write_all(&[4]);
    }
    // For pipes, dropping `dst` closes the container's stdin.
}

fn forward_signals(set: SigSet, init: &OwnedFd, pty_master: Option<OwnedFd>) {
    loop {
        match sigwait(&set) {
            Ok(Signal::SIGWINCH) => {
                if let (Some(m), Ok(ws)) = (&pty_master, tcgetwinsize(std::io::stdin())) {
                    let _ = tcsetwinsize(m, ws);
                }
            }
            Ok(sig) => {
                let _ = pidfd_send_signal(init.as_fd(), sig);
            }
            Err(_) => return,
        }
    }
}
