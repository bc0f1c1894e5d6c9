//! strata's own run description (`RootfsSpec`: the driver's mounts,
//! `/etc` files and volumes, a read-only flag) turned into the OCI
//! spec's mounts and paths and built by [`super::prepare`] and
//! [`super::finalize`], with Docker's default pseudo filesystems and
//! masked and read-only paths.

use super::{finalize, prepare, RootfsError, RootfsPlan};
use crate::mount::Mount;
use crate::runtime::spec::{Linux, Mount as SpecMount, Root, Spec};
use std::path::PathBuf;

/// A bind mount into the container (volume, host path, /etc file).
#[derive(Debug, Clone)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
}

/// Files masked with `/dev/null` or an empty read-only tmpfs, as Docker's
/// default `MaskedPaths`.
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

/// Paths made read-only, as Docker's default `ReadonlyPaths`.
pub const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Everything the child needs to build the view.
#[derive(Debug, Clone)]
pub struct RootfsSpec {
    /// The driver's mounts for the writable layer.
    pub mounts: Vec<Mount>,
    /// Where to mount them (an empty directory).
    pub dir: PathBuf,
    /// /etc files and volumes.
    pub binds: Vec<Bind>,
    pub readonly: bool,
}

fn entry(destination: &str, kind: &str, source: &str, options: &[&str]) -> SpecMount {
    SpecMount {
        destination: destination.to_owned(),
        kind: kind.to_owned(),
        source: source.to_owned(),
        options: options.iter().map(|s| (*s).to_owned()).collect(),
        ..SpecMount::default()
    }
}

/// The OCI spec equivalent of `spec`: Docker's default mounts, then the
/// binds, Docker's masked and read-only paths.
pub fn oci_spec(spec: &RootfsSpec) -> Spec {
    let mut mounts = vec![
        entry("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        entry("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        entry("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        entry(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        entry("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        entry("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
    ];
    for b in &spec.binds {
        let options: &[&str] = if b.readonly { &["rbind", "ro", "nosuid"] } else { &["rbind"] };
        mounts.push(entry(&b.destination, "bind", &b.source.display().to_string(), options));
    }
    Spec {
        root: Some(Root { path: spec.dir.display().to_string(), readonly: spec.readonly }),
        mounts,
        linux: Some(Linux {
            masked_paths: MASKED.iter().map(|s| (*s).to_owned()).collect(),
            readonly_paths: READONLY.iter().map(|s| (*s).to_owned()).collect(),
            ..Linux::default()
        }),
        ..Spec::default()
    }
}

/// Builds the container's filesystem and makes it the process's root.
/// Must run in a fresh mount namespace (and PID namespace, for `/proc`).
pub fn enter(spec: &RootfsSpec) -> Result<(), RootfsError> {
    let oci = oci_spec(spec);
    let plan = RootfsPlan {
        spec: &oci,
        rootfs: spec.dir.clone(),
        bundle: spec.dir.clone(),
        driver_mounts: &spec.mounts,
        no_pivot: false,
        console: None,
    };
    prepare(&plan, &mut || Ok(()))?;
    finalize(&oci)
}
