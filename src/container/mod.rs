//! Containers: an image plus a thin writable layer, and the state strata
//! keeps about each one.
//!
//! ```text
//! <root>/containers/<id>/           a few KiB per container (the seed's 32K)
//! ├── config.json                   what to run: image, command, env, mounts, limits
//! ├── state.json                    created | running | exited, pid, exit code, times
//! ├── hostname, hosts, resolv.conf  bind-mounted into the container's /etc
//! ├── <id>-json.log[.N]             json-file log, rotated
//! ├── rootfs/                       empty mount point, used only inside the
//! │                                 container's own mount namespace
//! └── supervisor.lock               held by the process supervising it
//! ```
//!
//! The writable layer is the snapshot keyed by the container ID in the
//! driver's store; nothing of it lives here. A container is daemonless,
//! like podman's: each command does its work and exits, and a running
//! container is watched by a small supervisor process of strata's own
//! ([`supervise`]) that owns its logs and records its exit.

pub mod log;
pub mod records;
pub mod validate;

pub use records::ContainerStore;

use serde::{Deserialize, Serialize};

pub use crate::id::ContainerId;

/// What a [`MountRequest`] mounts; recorded as Docker's `"volume"` /
/// `"bind"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named or anonymous volume under the data root.
    Volume,
    /// A host path.
    Bind,
}

impl MountKind {
    /// Docker's name: `volume` or `bind`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Volume => "volume",
            MountKind::Bind => "bind",
        }
    }
}

/// A mount a container asks for besides its root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountRequest {
    /// A volume (named or anonymous) or a bind of a host path.
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// Volume name or host path.
    pub source: String,
    /// Absolute path inside the container.
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// An anonymous volume (removed with `rm -v`).
    #[serde(default)]
    pub anonymous: bool,
}

/// Resource limits (`--memory`, `--memory-swap`, `--pids-limit`,
/// `--cpus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    pub memory: Option<u64>,
    /// Memory plus swap, Docker's `--memory-swap`; -1 is unlimited swap.
    /// Unset with `memory` set means twice `memory`, as Docker.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    pub pids_limit: Option<i64>,
    pub nano_cpus: Option<u64>,
}

/// A host device given to the container (`--device`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some of `r`, `w`, `m`.
    pub cgroup_permissions: String,
}

/// One resource limit (`--ulimit nofile=1024:2048`), Docker's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// Docker's name: `nofile`, `nproc`, `core`, …
    pub name: String,
    /// `u64::MAX` is unlimited.
    pub soft: u64,
    pub hard: u64,
}

/// Which seccomp profile a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompChoice {
    /// strata's default: Docker's default profile.
    #[default]
    Default,
    /// `--security-opt seccomp=unconfined`.
    Unconfined,
    /// `--security-opt seccomp=FILE`: the profile's JSON, read at create
    /// time (as Docker stores it), in Docker's format.
    Profile(String),
}

/// Docker's security flags, fixed at create time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Security {
    /// `--privileged`: every capability, every device, no seccomp, no
    /// masked or read-only paths.
    pub privileged: bool,
    /// `--cap-add`, `--cap-drop`: `CAP_` names (or `ALL`), upper case.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<DeviceMapping>,
    pub seccomp: SeccompChoice,
    /// `--security-opt no-new-privileges[=true|false]`; on by default.
    pub no_new_privileges: bool,
    /// Every limit in force for the container's process: the caller's
    /// at create time with `--ulimit` applied over them (Docker's
    /// containers inherit dockerd's).
    pub ulimits: Vec<Ulimit>,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            privileged: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            devices: Vec::new(),
            seccomp: SeccompChoice::Default,
            no_new_privileges: true,
            ulimits: Vec::new(),
        }
    }
}

/// json-file log options (`--log-opt max-size=…,max-file=…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    pub max_size: Option<u64>,
    pub max_file: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig { max_size: None, max_file: 1 }
    }
}

/// What a container runs and with what, fixed at create time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    pub id: ContainerId,
    pub name: String,
    pub created: String,
    /// The image ID (`sha256:…`); `rmi` looks for this field.
    pub image: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The full argv: entrypoint + command.
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub read_only: bool,
    /// `none` (own network namespace with loopback) or `host`.
    pub network: String,
    pub mounts: Vec<MountRequest>,
    pub resources: Resources,
    /// Absent in containers made before these flags existed: defaults.
    #[serde(default)]
    pub security: Security,
    pub log: LogConfig,
    pub auto_remove: bool,
    /// The writable layer is mounted with overlay's `volatile` (no fsync
    /// reaches the disk; see `ops::container::volatile`). Absent in
    /// containers made before the option existed: not volatile.
    #[serde(default)]
    pub volatile: bool,
    /// Run strata's init as PID 1 (reaps zombies, forwards signals).
    pub init: bool,
    pub stop_signal: String,
    /// The storage driver holding the writable layer.
    pub driver: String,
}

/// Lifecycle status, as `docker ps` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// Mutable state, rewritten atomically on every transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    /// Host PID of the container's PID 1 while running.
    pub pid: Option<i32>,
    /// Host PID of the supervisor while running.
    pub supervisor_pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Why the container failed to start, if it did.
    pub error: Option<String>,
}

impl State {
    pub fn created() -> State {
        State {
            status: Status::Created,
            pid: None,
            supervisor_pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            error: None,
        }
    }
}
