//! The container directory store: create, look up (ID, name, unique ID
//! prefix), list, update state, remove.
//!
//! Every read of a container's state is reconciled with the kernel
//! ([`ContainerStore::get`]): a state that says `running` is believed only
//! while a supervisor holds `supervisor.lock`. Without one, the init is
//! looked for through the runtime's record (pid + start time, through a
//! verified pidfd): if it still lives, the container is reported running
//! (unsupervised: `kill`, `stop` and `rm -f` reach it through that pidfd);
//! if not, the container is recorded `exited` with code 137 and its
//! runtime state and cgroups are removed. 137 (128 + SIGKILL) because a
//! supervisor's init dies with it (`PR_SET_PDEATHSIG`): that is how it
//! ended unless it exited on its own in the instant before its supervisor
//! died, whose code is lost. Docker answers 137 for a SIGKILLed container
//! and 255 when it cannot know; strata knows the cause.

use super::{Config, ContainerId, State, Status};
use crate::root::{atomic_write_json_private_volatile, read_json, tighten_file, Root, RootError};
use crate::sys::lock::FileLock;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A container's directory: Docker's `containers/<id>` (its files are
/// bind-mounted into the container by root, so nobody else needs in).
pub const DIR_MODE: u32 = 0o710;
/// `config.json` and `state.json`: the config holds `-e` values.
pub const PRIVATE_MODE: u32 = 0o600;

/// The exit code recorded for a container whose supervisor died: 128 +
/// SIGKILL, the signal its init gets then (see the module doc).
pub const KILLED_WITH_SUPERVISOR: i32 = 137;

/// Errors of the container store.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("container name {0:?} is already in use")]
    NameInUse(String),
    #[error("multiple containers match {0:?}; use more characters of the ID")]
    Ambiguous(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed")]
    BadName(String),
    #[error(transparent)]
    Root(#[from] RootError),
}

/// `<root>/containers`.
#[derive(Debug, Clone)]
pub struct ContainerStore {
    root: Root,
    dir: PathBuf,
}

/// The files `create` writes beside the config.
#[derive(Debug, Clone)]
pub struct EtcFiles {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
}

impl ContainerStore {
    pub fn new(root: &Root) -> ContainerStore {
        ContainerStore { root: root.clone(), dir: root.containers() }
    }

    /// A container's directory.
    pub fn dir(&self, id: &ContainerId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// The lock a container's supervisor holds while it lives.
    pub fn supervisor_lock(&self, id: &ContainerId) -> PathBuf {
        self.dir(id).join("supervisor.lock")
    }

    /// The json-file log.
    pub fn log_path(&self, id: &ContainerId) -> PathBuf {
        self.dir(id).join(format!("{}-json.log", id.as_str()))
    }

    /// The empty directory the root filesystem is mounted on (inside the
    /// container's mount namespace only).
    pub fn rootfs_dir(&self, id: &ContainerId) -> PathBuf {
        self.dir(id).join("rootfs")
    }

    fn valid_name(name: &str) -> bool {
        let mut b = name.bytes();
        matches!(b.next(), Some(c) if c.is_ascii_alphanumeric())
            && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    }

    /// Creates the container's directory with config, state and /etc
    /// files, atomically (built in staging, renamed into place). Fails if
    /// the name is taken.
    pub fn create(&self, config: &Config, etc: &EtcFiles) -> Result<(), ContainerError> {
        if !Self::valid_name(&config.name) {
            return Err(ContainerError::BadName(config.name.clone()));
        }
        let _lock = self.root.lock(crate::root::LockName::Containers)?;
        if self.list()?.iter().any(|(c, _)| c.name == config.name) {
            return Err(ContainerError::NameInUse(config.name.clone()));
        }
        let staging = self.root.staging_dir("container")?;
        let p = staging.path();
        // Container state is not fsynced: it is small, rewritten often, and
        // reconciled after a crash (see `reconcile`); the directory still
        // appears whole or not at all.
        // The /etc files are bind-mounted into the container, where any
        // of its users reads them: 0644 (less the umask) as Docker's. The
        // config and state are root's alone.
        let write = |name: &str, bytes: &[u8], mode: u32| -> Result<(), RootError> {
            let path = p.join(name);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
                .map_err(|e| RootError::io(&path, e))
        };
        write("config.json", &serde_json::to_vec(config).expect("plain struct"), PRIVATE_MODE)?;
        write("state.json", &serde_json::to_vec(&State::created()).expect("plain struct"), PRIVATE_MODE)?;
        write("hostname", format!("{}\n", etc.hostname).as_bytes(), 0o644)?;
        write("hosts", etc.hosts.as_bytes(), 0o644)?;
        write("resolv.conf", etc.resolv_conf.as_bytes(), 0o644)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(DIR_MODE)).map_err(|e| RootError::io(p, e))?;
        std::fs::create_dir(p.join("rootfs")).map_err(|e| RootError::io(p.join("rootfs"), e))?;
        let dest = self.dir(&config.id);
        staging.persist_volatile(&dest).map_err(|e| RootError::io(&dest, e))?;
        Ok(())
    }

    /// Config and (reconciled) state of a container.
    pub fn get(&self, id: &ContainerId) -> Result<(Config, State), ContainerError> {
        let dir = self.dir(id);
        let config: Config =
            read_json(&dir.join("config.json"))?.ok_or_else(|| ContainerError::NotFound(id.to_string()))?;
        let state: State = read_json(&dir.join("state.json"))?.unwrap_or_else(State::created);
        Ok((config, self.reconcile(id, state)))
    }

    /// A state that says running while no supervisor holds the lock
    /// belongs to a supervisor that died (killed, host crash). Under the
    /// supervisor lock, so no supervisor starts meanwhile: an init still
    /// alive keeps the container `running` (unsupervised); else it is
    /// recorded exited (137, see the module doc), and its runtime state
    /// and cgroups are removed.
    fn reconcile(&self, id: &ContainerId, state: State) -> State {
        if state.status != Status::Running {
            return state;
        }
        let lock = self.supervisor_lock(id);
        // Held (a supervisor lives) or unopenable (being removed): as is.
        let Ok(Some(_guard)) = FileLock::try_exclusive(&lock) else {
            return state;
        };
        // The supervisor may have recorded the exit just before it let go.
        let mut state: State = match read_json(&self.dir(id).join("state.json")) {
            Ok(Some(s)) => s,
            _ => return state,
        };
        if state.status != Status::Running {
            return state;
        }
        let runtime = crate::runtime::Container::load(&self.root.runtime_state(), id.as_str());
        if let Ok(c) = &runtime {
            if c.init_alive() {
                state.error = Some("the supervisor exited; the container runs unsupervised".into());
                return state;
            }
            let _ = crate::runtime::delete(c, true);
        }
        state.status = Status::Exited;
        state.exit_code = Some(KILLED_WITH_SUPERVISOR);
        state.pid = None;
        state.supervisor_pid = None;
        state.finished_at = Some(crate::time::now());
        state.error = Some("the supervisor exited; the container was killed with it (SIGKILL)".into());
        let _ = self.set_state(id, &state);
        state
    }

    /// Whether a live supervisor watches the container.
    pub fn supervised(&self, id: &ContainerId) -> bool {
        let p = self.supervisor_lock(id);
        p.exists() && matches!(FileLock::try_exclusive(&p), Ok(None))
    }

    /// Replaces the container's state.
    pub fn set_state(&self, id: &ContainerId, state: &State) -> Result<(), ContainerError> {
        Ok(atomic_write_json_private_volatile(&self.dir(id).join("state.json"), state)?)
    }

    /// Gives every container's directory and private files their modes
    /// ([`DIR_MODE`], [`PRIVATE_MODE`], logs [`super::log::LOG_MODE`]),
    /// tightening what an older strata wrote world-readable.
    pub fn tighten(&self) -> Result<(), ContainerError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RootError::io(&self.dir, e).into()),
        };
        for id in rd.flatten().filter_map(|e| e.file_name().to_str().and_then(ContainerId::parse)) {
            let dir = self.dir(&id);
            crate::root::ensure_dir(&dir, DIR_MODE)?;
            tighten_file(&dir.join("config.json"), PRIVATE_MODE)?;
            tighten_file(&dir.join("state.json"), PRIVATE_MODE)?;
            for log in super::log::files(&self.log_path(&id)) {
                tighten_file(&log, super::log::LOG_MODE)?;
            }
        }
        Ok(())
    }

    /// Every container, in no particular order.
    pub fn list(&self) -> Result<Vec<(Config, State)>, ContainerError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RootError::io(&self.dir, e).into()),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            if let Some(id) = e.file_name().to_str().and_then(ContainerId::parse) {
                match self.get(&id) {
                    Ok(c) => out.push(c),
                    Err(ContainerError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Finds a container by full ID, name, or unique ID prefix.
    pub fn resolve(&self, name: &str) -> Result<ContainerId, ContainerError> {
        if let Some(id) = ContainerId::parse(name) {
            if self.dir(&id).join("config.json").exists() {
                return Ok(id);
            }
        }
        let all = self.list()?;
        if let Some((c, _)) = all.iter().find(|(c, _)| c.name == name) {
            return Ok(c.id.clone());
        }
        let matches: Vec<&Config> =
            all.iter().map(|(c, _)| c).filter(|c| !name.is_empty() && c.id.as_str().starts_with(name)).collect();
        match matches.len() {
            0 => Err(ContainerError::NotFound(name.to_owned())),
            1 => Ok(matches[0].id.clone()),
            _ => Err(ContainerError::Ambiguous(name.to_owned())),
        }
    }

    /// Deletes the container's directory (config, state, logs).
    pub fn remove(&self, id: &ContainerId) -> Result<(), ContainerError> {
        let dir = self.dir(id);
        // Move it out of sight first, so a crash mid-delete leaves no
        // half-container under its ID.
        let trash = self.root.staging_dir("container-rm")?;
        match std::fs::rename(&dir, trash.path().join("c")) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RootError::io(&dir, e).into()),
        }
    }

    /// The directory holding every container.
    pub fn base(&self) -> &Path {
        &self.dir
    }
}
