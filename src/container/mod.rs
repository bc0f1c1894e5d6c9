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

pub mod fs;
pub mod log;
pub mod ops;
pub mod store;
pub mod supervise;

pub use store::ContainerStore;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A container ID: 64 lower-case hex characters, shown as 12.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    /// A new random ID (from the kernel's CSPRNG, as Docker's).
    pub fn generate() -> ContainerId {
        let mut bytes = [0u8; 32];
        crate::sys::random::getrandom(&mut bytes).expect("getrandom");
        ContainerId(hex::encode(bytes))
    }

    /// Parses a full 64-hex ID.
    pub fn parse(s: &str) -> Option<ContainerId> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| ContainerId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character short form.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerId({})", self.short())
    }
}

/// A mount a container asks for besides its root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountRequest {
    /// `volume` (named or anonymous) or `bind` (a host path).
    #[serde(rename = "Type")]
    pub kind: String,
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

/// Resource limits (`--memory`, `--pids-limit`, `--cpus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    pub memory: Option<u64>,
    pub pids_limit: Option<i64>,
    pub nano_cpus: Option<u64>,
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
    pub log: LogConfig,
    pub auto_remove: bool,
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

/// RFC 3339 with nanoseconds, as Docker writes times.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_with_short_form() {
        let id = ContainerId::generate();
        assert_eq!(id.as_str().len(), 64);
        assert!(ContainerId::parse(id.as_str()).is_some());
        assert_eq!(id.short().len(), 12);
        assert_ne!(id, ContainerId::generate());
        assert!(ContainerId::parse("xyz").is_none());
    }
}
