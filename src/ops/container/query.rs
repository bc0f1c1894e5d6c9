//! What `ps` and `inspect` show of containers, as typed results: the
//! listing with sizes (`ps -s`: the writable layer, and the image's layers
//! from the layer store, never walked) and Docker's inspect document.

use super::lifecycle::sizes;
use crate::container::records::{ContainerError, ContainerStore};
use crate::container::{Config, MountKind, State, Status};
use crate::engine::Engine;
use crate::image::images::Image;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// One container in `ps`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub config: Config,
    pub state: State,
    /// With sizes asked for: (writable layer, virtual = that plus the
    /// image's layers).
    pub sizes: Option<(u64, u64)>,
}

/// Containers as `ps` lists them: running ones (all with `all`), newest
/// first, with sizes when `with_sizes`.
pub fn list(engine: &Engine, all: bool, with_sizes: bool) -> Result<Vec<Listed>, ContainerError> {
    let mut listed = ContainerStore::new(&engine.root).list()?;
    listed.retain(|(_, s)| all || s.status == Status::Running);
    listed.sort_by(|x, y| y.0.created.cmp(&x.0.created));
    let mut images: HashMap<String, Option<Image>> = HashMap::new();
    Ok(listed
        .into_iter()
        .map(|(config, state)| {
            let sizes = with_sizes.then(|| {
                let img = images
                    .entry(config.image.clone())
                    .or_insert_with(|| config.image.parse().ok().and_then(|id| engine.images.get(&id).ok()));
                sizes(engine, &config, img.as_ref())
            });
            Listed { config, state, sizes }
        })
        .collect())
}

/// `docker inspect`'s document for one container.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    pub id: String,
    pub created: String,
    pub path: Option<String>,
    pub args: Vec<String>,
    pub state: InspectState,
    pub image: String,
    pub resolv_conf_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub log_path: PathBuf,
    pub name: String,
    pub driver: String,
    pub host_config: HostConfig,
    pub mounts: Vec<InspectMount>,
    pub size_rw: u64,
    pub size_root_fs: u64,
    pub config: InspectConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    /// `created`, `running` or `exited`.
    pub status: Status,
    pub running: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    pub network_mode: String,
    pub readonly_rootfs: bool,
    pub auto_remove: bool,
    pub init: bool,
    pub memory: u64,
    pub pids_limit: Option<i64>,
    pub nano_cpus: u64,
    /// Memory plus swap; 0 when unset, -1 unlimited (Docker's).
    pub memory_swap: i64,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub devices: Vec<crate::container::DeviceMapping>,
    pub security_opt: Vec<String>,
    /// Every limit in force for the container's process.
    pub ulimits: Vec<crate::container::Ulimit>,
    pub log_config: LogConfig,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(rename = "Config")]
    pub config: LogOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogOptions {
    #[serde(rename = "max-size")]
    pub max_size: Option<String>,
    #[serde(rename = "max-file")]
    pub max_file: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMount {
    #[serde(rename = "Type")]
    pub kind: MountKind,
    /// The volume's name; empty for a bind.
    pub name: String,
    pub source: String,
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub hostname: String,
    pub user: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub image: String,
    pub working_dir: String,
    pub stop_signal: String,
}

/// The inspect document of a container.
pub fn inspect(engine: &Engine, config: &Config, state: &State) -> ContainerInspect {
    let image = config.image.parse().ok().and_then(|id| engine.images.get(&id).ok());
    let (size_rw, size_root_fs) = sizes(engine, config, image.as_ref());
    let store = ContainerStore::new(&engine.root);
    let dir = store.dir(&config.id);
    ContainerInspect {
        id: config.id.to_string(),
        created: config.created.clone(),
        path: config.args.first().cloned(),
        args: config.args.get(1..).unwrap_or_default().to_vec(),
        state: InspectState {
            status: state.status,
            running: state.status == Status::Running,
            pid: state.pid.unwrap_or(0),
            exit_code: state.exit_code.unwrap_or(0),
            error: state.error.clone().unwrap_or_default(),
            started_at: state.started_at.clone().unwrap_or_default(),
            finished_at: state.finished_at.clone().unwrap_or_default(),
        },
        image: config.image.clone(),
        resolv_conf_path: dir.join("resolv.conf"),
        hostname_path: dir.join("hostname"),
        hosts_path: dir.join("hosts"),
        log_path: store.log_path(&config.id),
        name: format!("/{}", config.name),
        driver: config.driver.clone(),
        host_config: HostConfig {
            network_mode: config.network.clone(),
            readonly_rootfs: config.read_only,
            auto_remove: config.auto_remove,
            init: config.init,
            memory: config.resources.memory.unwrap_or(0),
            pids_limit: config.resources.pids_limit,
            nano_cpus: config.resources.nano_cpus.unwrap_or(0),
            memory_swap: match (config.resources.memory_swap, config.resources.memory) {
                (Some(s), _) => s,
                (None, Some(m)) if m > 0 => i64::try_from(m).unwrap_or(i64::MAX).saturating_mul(2),
                _ => 0,
            },
            privileged: config.security.privileged,
            cap_add: config.security.cap_add.clone(),
            cap_drop: config.security.cap_drop.clone(),
            devices: config.security.devices.clone(),
            security_opt: security_opts(&config.security),
            ulimits: config.security.ulimits.clone(),
            log_config: LogConfig {
                kind: "json-file",
                config: LogOptions {
                    max_size: config.log.max_size.map(|v| v.to_string()),
                    max_file: config.log.max_file.to_string(),
                },
            },
        },
        mounts: config
            .mounts
            .iter()
            .map(|m| InspectMount {
                kind: m.kind,
                name: if m.kind == MountKind::Volume { m.source.clone() } else { String::new() },
                source: m.source.clone(),
                destination: m.destination.clone(),
                rw: m.rw,
            })
            .collect(),
        size_rw,
        size_root_fs,
        config: InspectConfig {
            hostname: config.hostname.clone(),
            user: config.user.clone(),
            tty: config.tty,
            open_stdin: config.open_stdin,
            env: config.env.clone(),
            cmd: config.args.clone(),
            image: config.image_name.clone(),
            working_dir: config.working_dir.clone(),
            stop_signal: config.stop_signal.clone(),
        },
    }
}

/// Docker's `SecurityOpt` strings for what the container runs under.
fn security_opts(s: &crate::container::Security) -> Vec<String> {
    use crate::container::SeccompChoice;
    let mut out = Vec::new();
    match &s.seccomp {
        SeccompChoice::Default => {}
        SeccompChoice::Unconfined => out.push("seccomp=unconfined".to_owned()),
        SeccompChoice::Profile(_) => out.push("seccomp=<profile>".to_owned()),
    }
    out.push(format!("no-new-privileges={}", s.no_new_privileges));
    out
}
