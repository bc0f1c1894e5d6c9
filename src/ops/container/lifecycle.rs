//! Container operations over the stores: create, remove, stop, kill, wait,
//! sizes. (Starting lives in [`super::supervise`].)

use crate::container::records::{ContainerError, ContainerStore, EtcFiles};
use crate::container::validate;
use crate::container::{Config, ContainerId, LogConfig, MountKind, MountRequest, Resources, State, Status};
use crate::engine::Engine;
use crate::image::images::{Image, ImageError};
use crate::runtime;
use crate::snapshot::{SnapshotError, SnapshotKey};
use crate::sys::lock::FileLock;
use crate::sys::signal::Signal;
use crate::time::now;
use crate::volume::{VolumeError, VolumeStore};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("{0}")]
    Invalid(String),
    #[error("You cannot remove a running container {0}. Stop the container before attempting removal or force remove")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::ExecError),
    #[error(transparent)]
    Input(#[from] crate::container::validate::InvalidInput),
}

/// What `create`/`run` were asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    /// Command (replaces the image's CMD when non-empty).
    pub cmd: Vec<String>,
    pub entrypoint: Option<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub read_only: bool,
    pub network: Option<String>,
    /// `-v` specs: `name:/dst[:ro]`, `/host:/dst[:ro]`, `/dst`.
    pub volumes: Vec<String>,
    pub resources: Resources,
    /// `--privileged`, `--cap-add`, `--device`, `--security-opt`, `--ulimit`.
    pub security: super::security::SecurityRequest,
    pub log: LogConfig,
    pub auto_remove: bool,
    /// `--storage-opt overlay.volatile=…` (`None`: volatile when
    /// `auto_remove`); see [`super::volatile`].
    pub volatile: Option<bool>,
    pub init: bool,
    /// Leave out the image's `VOLUME`s (a build's `RUN` containers: their
    /// writes there are simply discarded, as Docker's builder does).
    pub skip_image_volumes: bool,
}

const ADJECTIVES: &[&str] = &[
    "admiring", "bold", "brave", "clever", "dreamy", "eager", "focused", "gallant", "happy", "jolly", "keen", "lucid",
    "modest", "nifty", "quirky", "serene", "stoic", "tender", "vibrant", "zealous",
];
const NAMES: &[&str] = &[
    "babbage", "curie", "dijkstra", "euler", "fermi", "gauss", "hopper", "hypatia", "kepler", "lamport", "lovelace",
    "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak", "yalow",
];

/// Docker-style `adjective_name`, taken from the ID's bytes; on a
/// collision the next bytes, and after 16 tries a numeric suffix, as
/// Docker's name generator retries.
fn random_name(id: &ContainerId, taken: &dyn Fn(&str) -> bool) -> String {
    let b = hex::decode(id.as_str()).unwrap_or_default();
    for pair in b.chunks(2).take(16) {
        let a = ADJECTIVES[usize::from(pair[0]) % ADJECTIVES.len()];
        let n = NAMES[usize::from(pair.get(1).copied().unwrap_or(0)) % NAMES.len()];
        let name = format!("{a}_{n}");
        if !taken(&name) {
            return name;
        }
    }
    format!("{}_{}", ADJECTIVES[usize::from(b[0]) % ADJECTIVES.len()], id.short())
}

/// Parses one `-v` spec.
pub fn parse_volume(spec: &str) -> Result<MountRequest, OpsError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = || OpsError::Invalid(format!("invalid volume specification: {spec:?}"));
    let (source, dest, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    if !dest.starts_with('/') || dest.split('/').any(|c| c == "..") {
        return Err(bad());
    }
    let rw = match mode {
        "" | "rw" => true,
        "ro" => false,
        _ => return Err(bad()),
    };
    Ok(match source {
        "" => MountRequest {
            kind: MountKind::Volume,
            source: crate::id::random_hex(),
            destination: dest.into(),
            rw,
            anonymous: true,
        },
        s if s.starts_with('/') => {
            MountRequest { kind: MountKind::Bind, source: s.into(), destination: dest.into(), rw, anonymous: false }
        }
        s => MountRequest { kind: MountKind::Volume, source: s.into(), destination: dest.into(), rw, anonymous: false },
    })
}

fn merge_env(image: &[String], user: &[String]) -> Vec<String> {
    let mut env: Vec<String> = image.to_vec();
    for e in user {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => match std::env::var(e) {
                Ok(v) => (e.clone(), v),
                Err(_) => continue,
            },
        };
        env.retain(|x| x.split_once('=').map(|(xk, _)| xk) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    env
}

fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // A loopback stub resolver (systemd-resolved) is unreachable from a
    // container's own network namespace.
    host.lines().filter(|l| !l.trim_start().starts_with("nameserver 127.")).map(|l| format!("{l}\n")).collect()
}

fn hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
    )
}

fn key(id: &ContainerId) -> SnapshotKey {
    SnapshotKey::new(id.as_str()).expect("container IDs are valid keys")
}

/// Creates a container: its writable layer on the image and its directory.
pub fn create(engine: &Engine, o: &CreateOptions) -> Result<ContainerId, OpsError> {
    let image_id = engine.images.resolve(&o.image)?;
    let image = engine.images.get(&image_id)?;
    let ic = image.config.config.clone().unwrap_or_default();
    let args = match &o.entrypoint {
        Some(ep) if ep.is_empty() => o.cmd.clone(),
        Some(ep) => std::iter::once(ep.clone()).chain(o.cmd.iter().cloned()).collect(),
        None => {
            let cmd = if o.cmd.is_empty() { ic.cmd.clone().unwrap_or_default() } else { o.cmd.clone() };
            ic.entrypoint.clone().unwrap_or_default().into_iter().chain(cmd).collect()
        }
    };
    if args.is_empty() {
        return Err(OpsError::Invalid("no command specified".into()));
    }
    let network = o.network.clone().unwrap_or_else(|| "none".into());
    if network != "none" && network != "host" {
        return Err(OpsError::Invalid(format!("network {network} not found (strata offers none and host)")));
    }
    if o.volatile == Some(true) && engine.snapshots.driver_name() != "overlay" {
        return Err(OpsError::Invalid(format!(
            "--storage-opt {}=true needs the overlay storage driver (this root uses {})",
            super::volatile::STORAGE_OPT,
            engine.snapshots.driver_name()
        )));
    }
    let security = super::security::resolve(&o.security)?;
    let name = o.name.as_deref().map(validate::container_name).transpose()?;
    if let Some(h) = &o.hostname {
        validate::hostname(h)?;
    }
    let origin = format!("image {}", o.image);
    for e in ic.env.iter().flatten() {
        validate::env_entry(e, Some(&origin))?;
    }
    for e in &o.env {
        validate::env_entry(e, None)?;
    }
    let id = ContainerId::generate();
    let mut mounts: Vec<MountRequest> = o.volumes.iter().map(|v| parse_volume(v)).collect::<Result<_, _>>()?;
    for dest in ic.volumes.iter().flat_map(|v| v.keys()).filter(|_| !o.skip_image_volumes) {
        if !mounts.iter().any(|m| &m.destination == dest) {
            mounts.push(parse_volume(dest)?);
        }
    }
    let hostname = o.hostname.clone().unwrap_or_else(|| id.short().to_owned());
    let store = ContainerStore::new(&engine.root);
    let names: Vec<String> = store.list()?.into_iter().map(|(c, _)| c.name).collect();
    let config = Config {
        id: id.clone(),
        name: name.map(str::to_owned).unwrap_or_else(|| random_name(&id, &|n| names.iter().any(|x| x == n))),
        created: now(),
        image: image_id.to_string(),
        image_name: o.image.clone(),
        args,
        env: merge_env(ic.env.as_deref().unwrap_or_default(), &o.env),
        working_dir: o.workdir.clone().or(ic.working_dir.clone()).unwrap_or_default(),
        user: o.user.clone().or(ic.user.clone()).unwrap_or_default(),
        hostname: hostname.clone(),
        tty: o.tty,
        open_stdin: o.interactive,
        read_only: o.read_only,
        network,
        mounts,
        resources: o.resources.clone(),
        security,
        log: o.log.clone(),
        auto_remove: o.auto_remove,
        volatile: o.volatile.unwrap_or(o.auto_remove),
        init: o.init,
        stop_signal: ic.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into()),
        driver: engine.snapshots.driver_name().to_owned(),
    };
    if names.contains(&config.name) {
        return Err(ContainerError::NameInUse(config.name.clone()).into());
    }
    let parent = image
        .top_chain()
        .map(|c| engine.layers().require(&c))
        .transpose()
        .map_err(|e| OpsError::Invalid(e.to_string()))?;
    engine.snapshots.prepare(&key(&id), parent.as_ref().map(|l| &l.snapshot))?;
    let result = (|| {
        populate_volumes(engine, &config)?;
        let etc = EtcFiles { hostname: hostname.clone(), hosts: hosts(&hostname), resolv_conf: resolv_conf() };
        store.create(&config, &etc)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = engine.snapshots.remove(&key(&id));
        return Err(e);
    }
    Ok(id)
}

/// Docker copies the image's content at a volume's path into the volume
/// the first time an empty volume is mounted there.
fn populate_volumes(engine: &Engine, config: &Config) -> Result<(), OpsError> {
    let vols: Vec<&MountRequest> = config.mounts.iter().filter(|m| m.kind == MountKind::Volume).collect();
    if vols.is_empty() {
        return Ok(());
    }
    let store = VolumeStore::new(&engine.root);
    let mounts = engine.snapshots.mounts(&key(&config.id))?;
    let staging = engine.root.staging_dir("populate").map_err(|e| OpsError::Invalid(e.to_string()))?;
    // An active overlay snapshot must not be mounted twice at once; it is
    // not mounted yet, so a temporary mount here is its only one.
    let m = crate::mount::TempMount::new(&mounts, staging.path())
        .map_err(|e| OpsError::Invalid(format!("mount for volume copy: {e}")))?;
    let root = crate::sys::fs::open_dir(m.path()).map_err(|e| OpsError::Invalid(format!("volume copy: {e}")))?;
    for v in vols {
        store.create(Some(&v.source))?;
        // The image's path, resolved by the kernel inside the container's
        // root (a symlinked `/v -> /etc` is the image's /etc, as Docker
        // resolves it); no path of the image is walked on the host.
        let dest = v.destination.trim_start_matches('/');
        let src = match crate::sys::fs::open_dir_in_root(root.as_fd(), dest.as_bytes()) {
            Ok(fd) => fd,
            // Nothing there (or not a directory): nothing to copy.
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => continue,
            Err(e) => return Err(OpsError::Invalid(format!("volume copy from {}: {e}", v.destination))),
        };
        store.populate(&v.source, src.as_fd())?;
    }
    drop(root);
    m.unmount().map_err(|e| OpsError::Invalid(format!("unmount after volume copy: {e}")))?;
    Ok(())
}

/// Removes a stopped container's layer and directory (and its anonymous
/// volumes when `volumes`).
pub fn remove_files(engine: &Engine, config: &Config, volumes: bool) -> Result<(), OpsError> {
    let k = key(&config.id);
    if engine.snapshots.exists(&k)? {
        engine.snapshots.remove(&k)?;
    }
    ContainerStore::new(&engine.root).remove(&config.id)?;
    if volumes {
        let vs = VolumeStore::new(&engine.root);
        for m in config.mounts.iter().filter(|m| m.anonymous) {
            let _ = vs.remove(&m.source, &[]);
        }
    }
    Ok(())
}

/// Parses a signal name or number (`TERM`, `SIGKILL`, `9`).
pub fn parse_signal(s: &str) -> Result<Signal, OpsError> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| OpsError::Invalid(format!("invalid signal: {s}")));
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") { name } else { format!("SIG{name}") };
    Signal::from_str(&name).map_err(|_| OpsError::Invalid(format!("invalid signal: {s}")))
}

/// Sends `signal` to the container's PID 1, through a pidfd verified
/// against the runtime's record (pid + start time): a pid recycled since
/// the container's state was written is never signalled.
pub fn kill(engine: &Engine, id: &ContainerId, signal: Signal) -> Result<(), OpsError> {
    signal_init(engine, id, signal, false)
}

/// [`kill`], or with `all` every process of the container (thawing a
/// frozen one, so that SIGKILL lands).
fn signal_init(engine: &Engine, id: &ContainerId, signal: Signal, all: bool) -> Result<(), OpsError> {
    let (_, state) = ContainerStore::new(&engine.root).get(id)?;
    if state.status != Status::Running {
        return Err(OpsError::NotRunning(id.short().to_owned()));
    }
    let not_running = || OpsError::NotRunning(id.short().to_owned());
    let c = match runtime::Container::load(&engine.root.runtime_state(), id.as_str()) {
        Ok(c) => c,
        Err(runtime::ExecError::NotFound(_)) => return Err(not_running()),
        Err(e) => return Err(e.into()),
    };
    match runtime::kill(&c, signal, all) {
        Ok(()) => Ok(()),
        Err(runtime::ExecError::NotRunning(_)) => Err(not_running()),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the container has stopped and that is recorded (or
/// `timeout` passes); returns the final state. A supervised container is
/// waited for through its supervisor's lock; one running unsupervised
/// (its supervisor died, its init did not) through its init's verified
/// pidfd, after which reading the state records the exit.
pub fn wait(engine: &Engine, id: &ContainerId, timeout: Option<Duration>) -> Result<State, OpsError> {
    let store = ContainerStore::new(&engine.root);
    let start = Instant::now();
    loop {
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        if !store.supervised(id) {
            // The lock is free: the supervisor finished, never ran or died.
            let state = store.get(id)?.1;
            if state.status != Status::Running || left == Some(Duration::ZERO) {
                return Ok(state);
            }
            let init = runtime::Container::load(&engine.root.runtime_state(), id.as_str())
                .ok()
                .and_then(|c| c.init_pidfd().ok().flatten());
            if let Some(fd) = init {
                let chunk = left.map_or(Duration::from_millis(100), |l| l.min(Duration::from_millis(100)));
                let _ = runtime::container::wait_exit(fd.as_fd(), Some(chunk));
                continue;
            }
        } else if left == Some(Duration::ZERO) {
            return Ok(store.get(id)?.1);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Stops a running container: its stop signal, then SIGKILL after
/// `timeout`.
pub fn stop(engine: &Engine, id: &ContainerId, timeout: Duration) -> Result<State, OpsError> {
    let store = ContainerStore::new(&engine.root);
    let (config, state) = store.get(id)?;
    if state.status != Status::Running {
        return Ok(state);
    }
    let sig = parse_signal(&config.stop_signal).unwrap_or(Signal::SIGTERM);
    let _ = kill(engine, id, sig);
    let st = wait(engine, id, Some(timeout))?;
    if st.status != Status::Running {
        return Ok(st);
    }
    let _ = signal_init(engine, id, Signal::SIGKILL, true);
    wait(engine, id, None)
}

/// `rm [-f] [-v]`. The writable layer goes only once nothing can use it:
/// under the supervisor lock (so no supervisor starts meanwhile), with no
/// live init in the runtime's record.
pub fn remove(engine: &Engine, id: &ContainerId, force: bool, volumes: bool) -> Result<(), OpsError> {
    let store = ContainerStore::new(&engine.root);
    let (config, state) = store.get(id)?;
    if state.status == Status::Running {
        if !force {
            return Err(OpsError::Running(id.short().to_owned()));
        }
        let _ = signal_init(engine, id, Signal::SIGKILL, true);
        wait(engine, id, None)?;
    }
    // An --rm container's supervisor may have removed it meanwhile.
    if store.get(id).is_err() {
        return Ok(());
    }
    let _no_supervisor = match FileLock::try_exclusive(&store.supervisor_lock(id)) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Err(OpsError::Running(id.short().to_owned())),
        Err(_) if store.get(id).is_err() => return Ok(()),
        Err(e) => return Err(OpsError::Invalid(format!("supervisor lock of {}: {e}", id.short()))),
    };
    match runtime::Container::load(&engine.root.runtime_state(), id.as_str()) {
        Ok(c) if c.init_alive() => return Err(OpsError::Running(id.short().to_owned())),
        Ok(c) => runtime::delete(&c, true)?,
        Err(runtime::ExecError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    remove_files(engine, &config, volumes)
}

/// The seed's two sizes: the writable layer alone, and that plus the
/// image's read-only layers (from the layer store, never walked).
pub fn sizes(engine: &Engine, config: &Config, image: Option<&Image>) -> (u64, u64) {
    let size = engine.snapshots.usage(&key(&config.id)).map(|u| u.size).unwrap_or(0);
    let image_size: u64 = image
        .map(|img| img.chain_ids().iter().filter_map(|c| engine.layers().get(c).ok().flatten()).map(|l| l.size).sum())
        .unwrap_or(0);
    (size, size + image_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        let named = parse_volume("data:/var/lib/data:ro").unwrap();
        assert_eq!(
            (named.kind.as_str(), named.source.as_str(), named.destination.as_str(), named.rw),
            ("volume", "data", "/var/lib/data", false)
        );
        let bind = parse_volume("/srv:/srv").unwrap();
        assert_eq!((bind.kind.as_str(), bind.rw), ("bind", true));
        let anon = parse_volume("/cache").unwrap();
        assert!(anon.anonymous && anon.source.len() == 64);
        for bad in ["rel:path", "a:/b:rx", "/a:/b/../c", "a:b:c:d"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_merge_overrides_by_key() {
        let env = merge_env(&["PATH=/bin".into(), "A=1".into()], &["A=2".into(), "B=3".into()]);
        assert_eq!(env, vec!["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
