//! OCI hooks: the commands of one lifecycle stage, run in order, each with
//! the container's state on stdin (runtime-spec `config.md`, "POSIX-platform
//! Hooks"; runc 1.1's behaviour).
//!
//! A hook is `execv(path, args)` with exactly `env` as its environment
//! (`args[0]` is `argv[0]`; no `args` means `argv` is just `path`; the
//! entries arrive sorted by name, a later duplicate winning, as
//! `std::process::Command` passes them). Its
//! stdin holds the state JSON then end-of-file; its stdout and stderr are
//! captured and quoted, tail first, in the error when it fails. With
//! `timeout` the hook is killed (`SIGKILL`) once that many seconds have
//! passed, and the stage fails. The first failing hook ends the stage.
//!
//! No threads: the state is written and the output read in one `poll`
//! loop that also waits for the hook's exit (a pidfd) and the deadline,
//! so [`run`] works the same in the runtime process and in a forked,
//! single-threaded child in the container's namespaces (where
//! `createContainer` and `startContainer` hooks run). The state goes
//! through a socket with `MSG_NOSIGNAL`, so a hook that exits without
//! reading it cannot kill the caller with `SIGPIPE`. The loop stops at the
//! hook's exit, not at end-of-file on its output, so a daemon the hook
//! left behind holding its stdout does not hang the runtime.

use crate::runtime::spec;
use crate::sys::event::{pidfd_open, poll, PollFd, PollFlags};
use crate::sys::socket::{send_nonblocking, socketpair_stream};
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A lifecycle stage with hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Deprecated: during `create`, in the runtime namespace, before
    /// `createRuntime`.
    Prestart,
    /// During `create`, in the runtime namespace, after the namespaces
    /// exist and before `pivot_root`.
    CreateRuntime,
    /// During `create`, in the container's namespaces, before `pivot_root`.
    CreateContainer,
    /// During `start`, in the container, before the user's process.
    StartContainer,
    /// After the user's process started, before `start` returns.
    Poststart,
    /// After the container is deleted, before `delete` returns.
    Poststop,
}

impl Stage {
    /// Every stage, in the order they come.
    pub const ALL: [Stage; 6] = [
        Stage::Prestart,
        Stage::CreateRuntime,
        Stage::CreateContainer,
        Stage::StartContainer,
        Stage::Poststart,
        Stage::Poststop,
    ];

    /// The stage's name in `hooks` (`createRuntime`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    /// This stage's list in `hooks`.
    pub fn hooks(self, hooks: &spec::Hooks) -> &[spec::Hook] {
        match self {
            Stage::Prestart => &hooks.prestart,
            Stage::CreateRuntime => &hooks.create_runtime,
            Stage::CreateContainer => &hooks.create_container,
            Stage::StartContainer => &hooks.start_container,
            Stage::Poststart => &hooks.poststart,
            Stage::Poststop => &hooks.poststop,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stage's hooks failed. Every variant names the stage, the hook's
/// position in its list and its path.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started (no such file, not executable, a NUL
    /// in an argument, …).
    #[error("{stage} hook #{index} {path}: start: {source}")]
    Start {
        stage: Stage,
        index: usize,
        path: String,
        #[source]
        source: io::Error,
    },
    /// An entry of `env` is not `NAME=value`.
    #[error("{stage} hook #{index} {path}: env entry {entry:?} is not NAME=value")]
    Env { stage: Stage, index: usize, path: String, entry: String },
    /// Waiting for the hook, feeding it or reading it failed.
    #[error("{stage} hook #{index} {path}: {step}: {source}")]
    Io {
        stage: Stage,
        index: usize,
        path: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    /// The hook exited non-zero or was killed by a signal. `status` reads
    /// `exit status 3` or `killed by signal 9`; `stdout` and `stderr` are
    /// the tails of what it wrote.
    #[error("{stage} hook #{index} {path}: {status}{}", output(stdout, stderr))]
    Failed { stage: Stage, index: usize, path: String, status: String, stdout: String, stderr: String },
    /// The hook ran past its `timeout` and was killed.
    #[error("{stage} hook #{index} {path}: timed out after {timeout}s, killed{}", output(stdout, stderr))]
    TimedOut { stage: Stage, index: usize, path: String, timeout: i64, stdout: String, stderr: String },
    /// The state could not be serialized.
    #[error("{stage} hooks: state to JSON: {source}")]
    State { stage: Stage, source: serde_json::Error },
}

fn output(stdout: &str, stderr: &str) -> String {
    let mut s = String::new();
    if !stdout.is_empty() {
        s.push_str(&format!(", stdout: {stdout}"));
    }
    if !stderr.is_empty() {
        s.push_str(&format!(", stderr: {stderr}"));
    }
    s
}

/// How much of a hook's stdout and stderr is kept: the last this many
/// bytes, the part that says why it failed.
const KEEP: usize = 4096;

/// Runs `hooks` of `stage` in order with `state` on each one's stdin;
/// stops at the first that fails (see the module doc).
pub fn run(stage: Stage, hooks: &[spec::Hook], state: &spec::State) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state).map_err(|source| HookError::State { stage, source })?;
    for (index, hook) in hooks.iter().enumerate() {
        run_one(stage, index, hook, &json)?;
    }
    Ok(())
}

fn run_one(stage: Stage, index: usize, hook: &spec::Hook, state: &[u8]) -> Result<(), HookError> {
    let path = || hook.path.clone();
    let io_err =
        |step: &'static str| move |source: io::Error| HookError::Io { stage, index, path: path(), step, source };
    let mut cmd = Command::new(&hook.path);
    if let Some((arg0, rest)) = hook.args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for entry in &hook.env {
        let Some((name, value)) = entry.split_once('=') else {
            return Err(HookError::Env { stage, index, path: path(), entry: entry.clone() });
        };
        cmd.env(name, value);
    }
    let (ours, theirs) = socketpair_stream().map_err(io_err("socketpair for stdin"))?;
    cmd.stdin(Stdio::from(theirs)).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Start { stage, index, path: path(), source })?;
    // `cmd` holds this process's copy of the hook's end of the socket:
    // closed, a hook that exits without reading makes sends fail at once
    // (EPIPE) instead of filling a buffer nobody reads.
    drop(cmd);
    let deadline = hook.timeout.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0).map(Duration::from_secs);
    let mut waiter = Waiter {
        stdin: Some(ours),
        unsent: state,
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        out: Vec::new(),
        err: Vec::new(),
    };
    let ended = waiter.wait(&child, deadline.map(|d| Instant::now() + d));
    let status = match ended {
        Ok(true) => child.wait().map_err(io_err("wait"))?,
        Ok(false) => {
            let _ = child.kill();
            let _ = child.wait();
            waiter.drain();
            return Err(HookError::TimedOut {
                stage,
                index,
                path: path(),
                timeout: hook.timeout.unwrap_or(0),
                stdout: tail(&waiter.out),
                stderr: tail(&waiter.err),
            });
        }
        Err((step, source)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Io { stage, index, path: path(), step, source });
        }
    };
    waiter.drain();
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{status}"),
    };
    Err(HookError::Failed { stage, index, path: path(), status, stdout: tail(&waiter.out), stderr: tail(&waiter.err) })
}

/// One hook's plumbing while it runs.
struct Waiter<'a> {
    stdin: Option<OwnedFd>,
    unsent: &'a [u8],
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Waiter<'_> {
    /// Feeds stdin and collects output until the hook exits (true) or the
    /// deadline passes (false).
    fn wait(&mut self, child: &Child, deadline: Option<Instant>) -> Result<bool, (&'static str, io::Error)> {
        let pidfd = pidfd_open(i32::try_from(child.id()).unwrap_or(-1)).map_err(|e| ("pidfd_open", e))?;
        self.send();
        loop {
            let timeout = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(false),
                },
                None => None,
            };
            let ready = {
                let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
                let mut slots = [None; 3];
                if let Some(fd) = &self.stdin {
                    slots[0] = Some(fds.len());
                    fds.push(PollFd::new(fd, PollFlags::OUT));
                }
                if let Some(fd) = &self.stdout {
                    slots[1] = Some(fds.len());
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
                if let Some(fd) = &self.stderr {
                    slots[2] = Some(fds.len());
                    fds.push(PollFd::new(fd, PollFlags::IN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(("poll", e)),
                }
                let ready = |slot: Option<usize>| slot.is_some_and(|i| !fds[i].revents().is_empty());
                [!fds[0].revents().is_empty(), ready(slots[0]), ready(slots[1]), ready(slots[2])]
            };
            if ready[1] {
                self.send();
            }
            if ready[2] {
                read_some(&mut self.stdout, &mut self.out);
            }
            if ready[3] {
                read_some(&mut self.stderr, &mut self.err);
            }
            if ready[0] {
                return Ok(true);
            }
        }
    }

    /// Sends what the socket takes now; closes stdin when all is sent or
    /// the hook will not read more.
    fn send(&mut self) {
        let Some(fd) = &self.stdin else { return };
        while !self.unsent.is_empty() {
            match send_nonblocking(fd.as_fd(), self.unsent) {
                Ok(n) => self.unsent = &self.unsent[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // EPIPE and the like: the hook closed its stdin.
                Err(_) => break,
            }
        }
        self.stdin = None;
    }

    /// Reads what the hook wrote and is still buffered once it has exited
    /// (or was killed), without waiting for end-of-file: a process it left
    /// behind may hold the pipes open.
    fn drain(&mut self) {
        self.stdin = None;
        drain_pipe(&mut self.stdout, &mut self.out);
        drain_pipe(&mut self.stderr, &mut self.err);
    }
}

/// Reads what is buffered in `pipe` now (at most a pipe's worth).
fn drain_pipe<R: Read + AsFd>(pipe: &mut Option<R>, buf: &mut Vec<u8>) {
    for _ in 0..64 {
        let Some(p) = pipe.as_ref() else { return };
        let mut fds = [PollFd::new(p, PollFlags::IN)];
        if !matches!(poll(&mut fds, Some(Duration::ZERO)), Ok(1)) {
            return;
        }
        read_some(pipe, buf);
    }
}

/// One read from a pipe poll said was ready; end-of-file or an error
/// closes it.
fn read_some<R: Read>(pipe: &mut Option<R>, buf: &mut Vec<u8>) {
    let Some(p) = pipe else { return };
    let mut chunk = [0u8; 4096];
    match p.read(&mut chunk) {
        Ok(0) | Err(_) => *pipe = None,
        Ok(n) => keep_tail(buf, &chunk[..n]),
    }
}

fn keep_tail(buf: &mut Vec<u8>, more: &[u8]) {
    buf.extend_from_slice(more);
    if buf.len() > 2 * KEEP {
        buf.drain(..buf.len() - KEEP);
    }
}

/// The last [`KEEP`] bytes as text, trimmed.
fn tail(buf: &[u8]) -> String {
    let start = buf.len().saturating_sub(KEEP);
    String::from_utf8_lossy(&buf[start..]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::{Hook, State, Status};
    use std::path::Path;

    fn state() -> State {
        State {
            oci_version: "1.2.1".into(),
            id: "hooked".into(),
            status: Status::Creating,
            pid: Some(4242),
            bundle: "/bundles/hooked".into(),
            annotations: [("org.example.key".to_owned(), "value".to_owned())].into(),
            extra: Default::default(),
        }
    }

    fn sh(script: &str, env: &[String], timeout: Option<i64>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["my-hook".into(), "-c".into(), script.into()],
            env: env.to_vec(),
            timeout,
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn a_hook_gets_the_state_on_stdin_its_argv_and_exactly_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let env = vec![format!("D={d}"), "A=b c".to_owned(), "EMPTY=".to_owned()];
        let hook = sh(
            "cat > \"$D/state\"; tr '\\0' '\\n' < /proc/$$/environ > \"$D/env\"; tr '\\0' ' ' < /proc/$$/cmdline > \"$D/argv\"",
            &env,
            None,
        );
        run(Stage::CreateRuntime, &[hook], &state()).unwrap();
        let got = State::parse(read(&dir.path().join("state")).as_bytes()).unwrap();
        assert_eq!(got, state());
        let mut got_env: Vec<String> = read(&dir.path().join("env")).lines().map(str::to_owned).collect();
        got_env.sort();
        let mut want = env.clone();
        want.sort();
        assert_eq!(got_env, want);
        assert!(read(&dir.path().join("argv")).starts_with("my-hook -c "));
    }

    #[test]
    fn hooks_run_in_order_and_the_first_failure_stops_the_stage_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![format!("D={}", dir.path().display())];
        let hooks = [
            sh("echo first >> \"$D/log\"", &env, None),
            sh("echo second >> \"$D/log\"; echo some output; echo it broke >&2; exit 3", &env, None),
            sh("echo third >> \"$D/log\"", &env, None),
        ];
        let err = run(Stage::Poststart, &hooks, &state()).unwrap_err();
        assert_eq!(err.to_string(), "poststart hook #1 /bin/sh: exit status 3, stdout: some output, stderr: it broke");
        assert_eq!(read(&dir.path().join("log")), "first\nsecond\n");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let hook =
            Hook { path: "/bin/sleep".into(), args: vec!["sleep".into(), "100".into()], env: vec![], timeout: Some(1) };
        let start = Instant::now();
        let err = run(Stage::Prestart, &[hook], &state()).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, HookError::TimedOut { timeout: 1, .. }), "{err}");
        assert_eq!(err.to_string(), "prestart hook #0 /bin/sleep: timed out after 1s, killed");
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_state_larger_than_the_socket_buffer_arrives_whole_and_unread_stdin_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut big = state();
        big.annotations.insert("big".into(), "x".repeat(4 << 20));
        let json = serde_json::to_vec(&big).unwrap();
        let out = dir.path().join("state");
        let hooks = [
            sh("cat > \"$OUT\"", &[format!("OUT={}", out.display())], Some(30)),
            // Exits without reading: the runtime must not die of SIGPIPE
            // nor report an error.
            Hook { path: "/bin/true".into(), args: vec![], env: vec![], timeout: None },
        ];
        run(Stage::CreateContainer, &hooks, &big).unwrap();
        assert_eq!(std::fs::read(&out).unwrap().len(), json.len());
    }

    #[test]
    fn a_missing_hook_and_a_bad_env_entry_are_named() {
        let missing = Hook { path: "/no/such/hook".into(), ..Default::default() };
        let err = run(Stage::Poststop, &[missing], &state()).unwrap_err().to_string();
        assert!(err.starts_with("poststop hook #0 /no/such/hook: start: "), "{err}");
        let bad = Hook { path: "/bin/true".into(), env: vec!["NOEQUALS".into()], ..Default::default() };
        let err = run(Stage::StartContainer, &[bad], &state()).unwrap_err().to_string();
        assert_eq!(err, "startContainer hook #0 /bin/true: env entry \"NOEQUALS\" is not NAME=value");
    }

    #[test]
    fn stages_are_named_and_select_their_list() {
        let hooks = spec::Hooks {
            create_container: vec![Hook { path: "/x".into(), ..Default::default() }],
            ..Default::default()
        };
        let names: Vec<String> = Stage::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]);
        for (stage, (name, list)) in Stage::ALL.iter().zip(hooks.lists()) {
            assert_eq!(stage.as_str(), name);
            assert_eq!(stage.hooks(&hooks), list);
        }
        assert_eq!(Stage::CreateContainer.hooks(&hooks).len(), 1);
    }
}
