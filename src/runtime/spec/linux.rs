//! `linux`: namespaces, ID mappings, devices, cgroups, seccomp, paths.

use super::{is_false, is_zero, string_enum, Extra, Resources, Seccomp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `linux`, in the field order of the spec's Go types (so `to_json`
/// writes what runc writes).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// The user namespace's mappings, host to container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    /// `/proc/sys` keys in dotted form (`net.ipv4.ip_forward`) and values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Absolute (from the cgroup mount), relative (to the runtime's
    /// choice of parent), or systemd's `slice:prefix:name`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroups_path: String,
    /// Namespaces created (no `path`) or joined; a type left out is
    /// inherited from the runtime.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    /// Device nodes that must exist in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<RootfsPropagation>,
    /// Absolute container paths made unreadable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    /// Absolute container paths made read-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    /// SELinux context of the container's mounts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mount_label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<IntelRdt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<Personality>,
    /// Clock name (`monotonic`, `boottime`) to its offset in the time
    /// namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_offsets: BTreeMap<String, TimeOffset>,
    /// `linux` properties not in the spec (or from a newer one).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Linux {
    /// The entry for namespace type `kind`, if the spec names it.
    pub fn namespace(&self, kind: NamespaceType) -> Option<&Namespace> {
        self.namespaces.iter().find(|ns| ns.kind == kind)
    }
}

/// One entry of `linux.namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: NamespaceType,
    /// A namespace file to join (absolute, in the runtime's mount
    /// namespace); a new namespace when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

string_enum! {
    /// `linux.namespaces[].type`.
    NamespaceType, "namespace type" {
        Pid = "pid",
        Network = "network",
        Mount = "mount",
        Ipc = "ipc",
        Uts = "uts",
        User = "user",
        Cgroup = "cgroup",
        Time = "time",
    }
}

/// A range of IDs: `size` IDs from `hostID` on the host appear from
/// `containerID` on in the container (`user_namespaces(7)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

/// One clock's offset in `linux.timeOffsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeOffset {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub secs: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nanosecs: u32,
}

/// One entry of `linux.devices`: a node `mknod(2)` would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Absolute path in the container.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// REQUIRED unless `kind` is a FIFO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Permission bits (and, as Go's `os.FileMode`, possibly type bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

string_enum! {
    /// `linux.devices[].type`, as `mknod(1)` spells it.
    DeviceType, "device type" {
        /// Character device.
        Char = "c",
        /// Block device.
        Block = "b",
        /// Unbuffered character device (a character device to `mknod(2)`).
        Unbuffered = "u",
        /// FIFO.
        Fifo = "p",
    }
}

string_enum! {
    /// `linux.rootfsPropagation`: the spec's four values and the
    /// recursive forms runc also accepts.
    RootfsPropagation, "rootfs propagation" {
        Shared = "shared",
        Slave = "slave",
        Private = "private",
        Unbindable = "unbindable",
        RShared = "rshared",
        RSlave = "rslave",
        RPrivate = "rprivate",
        RUnbindable = "runbindable",
    }
}

/// `linux.personality` (`personality(2)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Personality {
    pub domain: PersonalityDomain,
    /// No flag is defined yet: an executor refuses any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

string_enum! {
    /// `linux.personality.domain`.
    PersonalityDomain, "personality domain" {
        Linux = "LINUX",
        /// `uname` reports a 32-bit machine.
        Linux32 = "LINUX32",
    }
}

/// `linux.intelRdt`: resctrl class of service and schemata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IntelRdt {
    #[serde(default, rename = "closID", skip_serializing_if = "String::is_empty")]
    pub clos_id: String,
    #[serde(default, rename = "l3CacheSchema", skip_serializing_if = "String::is_empty")]
    pub l3_cache_schema: String,
    #[serde(default, rename = "memBwSchema", skip_serializing_if = "String::is_empty")]
    pub mem_bw_schema: String,
    #[serde(default, rename = "enableCMT", skip_serializing_if = "is_false")]
    pub enable_cmt: bool,
    #[serde(default, rename = "enableMBM", skip_serializing_if = "is_false")]
    pub enable_mbm: bool,
}
