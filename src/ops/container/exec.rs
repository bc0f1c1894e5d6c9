//! `exec`: a new process in a running container's namespaces and cgroups,
//! with the container's environment, working directory and user unless
//! the caller overrides them.
//!
//! The process never gets the caller's descriptors, Docker's way: it
//! runs in a session of its own, and
//! - with `tty`, its stdio is a pty made in the container's devpts
//!   (`process.terminal`; the master comes back over a socket pair) that
//!   we relay to our stdio ([`crate::runtime::tty`]): our window size
//!   passed on and followed, and, with `interactive`, our stdin in raw
//!   mode copied in;
//! - without, its stdout and stderr are pipes we copy to ours, and its
//!   stdin is a pipe fed from ours (`interactive`, closed at our end of
//!   file) or `/dev/null`;
//! - `detach` starts it with `/dev/null` for all three and returns.
//!
//! So nothing in the container can read our terminal or push input into
//! it (`TIOCSTI`): it only sees bytes we copy.

use crate::container::records::{ContainerError, ContainerStore};
use crate::container::{ContainerId, Status};
use crate::engine::Engine;
use crate::runtime::{console, tty, Console, Container, Executed, StartError};
use crate::sys::pipe::{pipe_with, PipeFlags};
use std::os::fd::OwnedFd;

/// What `exec` runs and how.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries that replace or add to the container's.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `-t`: a pty in the container, relayed to our stdio.
    pub tty: bool,
    /// `-i`: our stdin is copied to the process (else it reads
    /// `/dev/null`, or, with `tty`, a pty nobody writes to).
    pub interactive: bool,
    /// `-d`: start it and return; it keeps running in the container.
    pub detach: bool,
}

/// Errors before the process runs, and of the relay once it does.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("container {0} is not running")]
    NotRunning(String),
    /// `-it` with a stdin that is no terminal (Docker's refusal).
    #[error("the input device is not a tty")]
    NotATty,
    #[error("exec in container {id}: {what}: {source}")]
    Relay { id: String, what: &'static str, source: std::io::Error },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::ExecError),
    #[error(transparent)]
    Input(#[from] crate::container::validate::InvalidInput),
}

/// The container's environment with `overrides` applied: an override's
/// key replaces the container's entry, a new key is appended.
pub fn merged_env(container: &[String], overrides: &[String]) -> Vec<String> {
    let mut env = container.to_vec();
    for e in overrides {
        if let Some((k, _)) = e.split_once('=') {
            env.retain(|x| !x.starts_with(&format!("{k}=")));
            env.push(e.clone());
        }
    }
    env
}

/// Our ends of the process's stdio, kept while it runs.
enum Attach {
    Detached,
    /// The socket the pty master arrives on.
    Tty(OwnedFd),
    /// stdin's write end (`interactive`), stdout's and stderr's read ends.
    Pipes(Option<OwnedFd>, OwnedFd, OwnedFd),
}

/// Runs `options.args` in the running container `id` and returns its exit
/// code (0 at once with `detach`). Call it single-threaded: the process is
/// forked.
pub fn exec(engine: &Engine, id: &ContainerId, options: &ExecOptions) -> Result<i32, ExecError> {
    for e in &options.env {
        crate::container::validate::env_entry(e, None)?;
    }
    let (config, state) = ContainerStore::new(&engine.root).get(id)?;
    if state.status != Status::Running {
        return Err(ExecError::NotRunning(id.short().to_owned()));
    }
    let ctr = match Container::load(&engine.root.runtime_state(), id.as_str()) {
        Ok(c) => c,
        Err(crate::runtime::ExecError::NotFound(_)) => return Err(ExecError::NotRunning(id.short().to_owned())),
        Err(e) => return Err(e.into()),
    };
    let tty = options.tty && !options.detach;
    if tty && options.interactive && !crate::sys::term::isatty(std::io::stdin()) {
        return Err(ExecError::NotATty);
    }
    let relay_err = |what: &'static str| move |source| ExecError::Relay { id: id.short().to_owned(), what, source };
    let process = super::spec::process(
        &config,
        options.args.clone(),
        merged_env(&config.env, &options.env),
        options.workdir.clone().unwrap_or_else(|| config.working_dir.clone()),
        tty,
    );
    let mut opts = crate::runtime::ExecOptions {
        process,
        user_name: Some(options.user.clone().unwrap_or(config.user)),
        // Always: we wait ourselves, relaying meanwhile.
        detach: true,
        ..crate::runtime::ExecOptions::default()
    };
    let attach = if options.detach {
        let null = || crate::runtime::dev_null().map_err(relay_err("open /dev/null"));
        opts.stdio = Some([null()?, null()?, null()?]);
        Attach::Detached
    } else if tty {
        let (ours, theirs) = console::pair().map_err(relay_err("socketpair for the pty"))?;
        opts.console = Console::Socket(theirs);
        Attach::Tty(ours)
    } else {
        let pipe = || pipe_with(PipeFlags::CLOEXEC).map_err(relay_err("pipe"));
        let (stdin, input) = if options.interactive {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (crate::runtime::dev_null().map_err(relay_err("open /dev/null"))?, None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        opts.stdio = Some([stdin, out_w, err_w]);
        Attach::Pipes(input, out_r, err_r)
    };
    // `opts` (and with it the process's ends) is dropped when this returns.
    let started = crate::runtime::exec(&ctr, opts).map_err(|e| match e {
        crate::runtime::ExecError::Start(e) => ExecError::Start(e),
        e => ExecError::Runtime(e),
    });
    let pid = match started? {
        Executed::Running(pid) => pid,
        Executed::Exited(code) => return Ok(code),
    };
    let relayed = match attach {
        Attach::Detached => Ok(None),
        Attach::Tty(sock) => relay_tty(&sock, options.interactive).map(Some).map_err(relay_err("relay the pty")),
        Attach::Pipes(input, out, err) => Ok(Some(relay_pipes(input, out, err))),
    };
    let Relaying { output, raw } = match relayed {
        Ok(Some(relaying)) => relaying,
        Ok(None) => return Ok(0),
        // It runs with nobody on its stdio: end it rather than leave it.
        Err(e) => {
            let _ = crate::sys::signal::kill(pid, crate::sys::signal::Signal::SIGKILL);
            let _ = crate::runtime::wait(pid);
            return Err(e);
        }
    };
    let waited = crate::runtime::wait(pid).map_err(relay_err("wait for the process"));
    for t in output {
        let _ = t.join();
    }
    drop(raw);
    waited
}

/// What a relay leaves to wait for: the output threads, and our terminal
/// in raw mode until the end.
struct Relaying {
    output: Vec<std::thread::JoinHandle<()>>,
    raw: Option<tty::Raw>,
}

fn relay_tty(sock: &OwnedFd, interactive: bool) -> std::io::Result<Relaying> {
    // The process has exec'd, so the master is already in the socket.
    let master = console::recv_master(sock)?;
    // Before any relay thread starts, so they all have SIGWINCH blocked.
    tty::follow_size(&master)?;
    let raw = interactive.then(tty::Raw::enter);
    let output = tty::relay(master, interactive)?;
    Ok(Relaying { output: vec![output], raw })
}

fn relay_pipes(input: Option<OwnedFd>, out: OwnedFd, err: OwnedFd) -> Relaying {
    if let Some(w) = input {
        // Dropping the write end at our end of file closes its stdin.
        std::thread::spawn(move || {
            let _ = tty::pump(std::io::stdin(), std::fs::File::from(w));
        });
    }
    let output = vec![
        std::thread::spawn(move || {
            let _ = tty::pump(std::fs::File::from(out), std::io::stdout());
        }),
        std::thread::spawn(move || {
            let _ = tty::pump(std::fs::File::from(err), std::io::stderr());
        }),
    ];
    Relaying { output, raw: None }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exec_env_overrides_replace_by_key_and_append_new_keys() {
        let container = ["PATH=/bin".to_owned(), "A=1".to_owned()];
        let got = super::merged_env(&container, &["A=2".to_owned(), "B=3".to_owned(), "junk".to_owned()]);
        assert_eq!(got, ["PATH=/bin", "A=2", "B=3"]);
    }
}
