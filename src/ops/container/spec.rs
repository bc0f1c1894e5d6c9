//! A strata container as an OCI runtime spec: what `run`, `create`,
//! `start` and `build`'s `RUN` hand to the executor — the same executor
//! `strata-runc` drives for containerd, Docker and podman.
//!
//! The spec carries everything the OCI spec can say (process, mounts,
//! namespaces, resources, capabilities, masked paths). What it cannot,
//! the executor takes as options beside it: the storage driver's mounts
//! (mounted inside the container's mount namespace, nothing on the host),
//! the user as a name resolved inside the image, and `--init`.

use super::lifecycle::OpsError;
use super::security;
use crate::container::{Config, SeccompChoice};
use crate::runtime::spec::{
    Capabilities, Cpu, DeviceRule, Linux, Memory, Mount, Namespace, NamespaceType, Pids, Process, Resources, Root, Spec,
};

/// A bind mount into the container (volume, host path, /etc file).
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: std::path::PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
}

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Docker's default `MaskedPaths`.
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default `ReadonlyPaths`.
pub const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// CFS period used for `--cpus` (Docker's default, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
        ..Mount::default()
    }
}

/// `caps` in the bounding, effective and permitted sets; none
/// inheritable or ambient (so `execve` of a file with inheritable file
/// capabilities gains nothing: the CVE-2022-24769 pattern).
fn capabilities(caps: Vec<String>) -> Capabilities {
    Capabilities {
        bounding: caps.clone(),
        effective: caps.clone(),
        permitted: caps,
        inheritable: Vec::new(),
        ambient: Vec::new(),
    }
}

/// The container's process as the spec describes it (the user is
/// resolved by name inside the image: see the module doc), with the
/// container's capabilities, no_new_privs and rlimits; `exec` runs its
/// processes with the same.
pub fn process(config: &Config, args: Vec<String>, env: Vec<String>, cwd: String, terminal: bool) -> Process {
    Process {
        terminal,
        args,
        env,
        cwd: if cwd.is_empty() { "/".into() } else { cwd },
        capabilities: Some(capabilities(security::capabilities(&config.security))),
        no_new_privileges: config.security.no_new_privileges,
        rlimits: security::rlimits(&config.security),
        ..Process::default()
    }
}

/// `linux.resources` for the container's limits and device rules.
fn resources(config: &Config, devices: Vec<DeviceRule>) -> Resources {
    let r = &config.resources;
    Resources {
        devices,
        memory: r.memory.filter(|&m| m != 0).map(|m| {
            let limit = i64::try_from(m).unwrap_or(i64::MAX);
            // Docker: no --memory-swap means as much swap as memory.
            let swap = r.memory_swap.unwrap_or_else(|| limit.saturating_mul(2));
            Memory { limit: Some(limit), swap: Some(swap), ..Memory::default() }
        }),
        pids: r.pids_limit.map(|p| Pids { limit: if p <= 0 { -1 } else { p } }),
        cpu: r.nano_cpus.map(|n| Cpu {
            quota: Some(i64::try_from(n.saturating_mul(CPU_PERIOD_US) / 1_000_000_000).unwrap_or(i64::MAX)),
            period: Some(CPU_PERIOD_US),
            ..Cpu::default()
        }),
        ..Resources::default()
    }
}

/// `linux.seccomp`: Docker's default profile, the user's, or none
/// (`seccomp=unconfined`, `--privileged`), resolved for the container's
/// capabilities (CAP_SYS_ADMIN lets mount, unshare, setns, clone3 through).
fn seccomp(config: &Config) -> Result<Option<crate::runtime::spec::Seccomp>, OpsError> {
    use super::seccomp::{docker_default, host_kernel, Profile};
    let profile = match &config.security.seccomp {
        _ if config.security.privileged => return Ok(None),
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::Default => docker_default(),
        SeccompChoice::Profile(json) => {
            Profile::from_json(json.as_bytes()).map_err(|e| OpsError::Invalid(format!("seccomp profile: {e}")))?
        }
    };
    let kernel = host_kernel().map_err(|e| OpsError::Invalid(format!("seccomp: {e}")))?;
    let caps = security::capabilities(&config.security);
    profile.to_oci(&caps, kernel).map(Some).map_err(|e| OpsError::Invalid(format!("seccomp profile: {e}")))
}

/// The whole spec: `binds` are the `/etc` files and volumes, `rootfs` the
/// empty directory the driver's mounts go on.
pub fn oci_spec(config: &Config, rootfs: &std::path::Path, binds: &[Bind]) -> Result<Spec, OpsError> {
    let privileged = config.security.privileged;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            if privileged { &["nosuid", "noexec", "nodev", "rw"] } else { &["nosuid", "noexec", "nodev", "ro"] },
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    ];
    for b in binds {
        let mut options = vec!["rbind", "rprivate"];
        if b.readonly {
            options.push("ro");
        }
        mounts.push(mount(&b.destination, "bind", &b.source.display().to_string(), &options));
    }
    let mut namespaces: Vec<Namespace> =
        [NamespaceType::Pid, NamespaceType::Ipc, NamespaceType::Uts, NamespaceType::Mount, NamespaceType::Cgroup]
            .into_iter()
            .map(|kind| Namespace { kind, path: String::new() })
            .collect();
    if config.network != "host" {
        namespaces.push(Namespace { kind: NamespaceType::Network, path: String::new() });
    }
    let (devices, rules) = security::devices(&config.security)?;
    let (masked, readonly) = if privileged { (&[][..], &[][..]) } else { (MASKED, READONLY) };
    Ok(Spec {
        oci_version: crate::runtime::spec::VERSION.into(),
        process: Some(process(config, config.args.clone(), config.env.clone(), config.working_dir.clone(), config.tty)),
        root: Some(Root { path: rootfs.display().to_string(), readonly: config.read_only }),
        hostname: config.hostname.clone(),
        mounts,
        linux: Some(Linux {
            namespaces,
            resources: Some(resources(config, rules)),
            devices,
            seccomp: seccomp(config)?,
            cgroups_path: format!("/strata/{}", config.id.as_str()),
            masked_paths: masked.iter().map(|p| p.to_string()).collect(),
            readonly_paths: readonly.iter().map(|p| p.to_string()).collect(),
            ..Linux::default()
        }),
        ..Spec::default()
    })
}
