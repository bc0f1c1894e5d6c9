//! What a runtime supports: the document `features` prints
//! (features.md). Every list means "unknown" when absent, not "none".

use super::{parse_json, to_json_tabs, ParseError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The features document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Oldest spec version accepted (`1.0.0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub oci_version_min: String,
    /// Newest spec version accepted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub oci_version_max: String,
    /// Hook names (`createRuntime`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Vec<String>>,
    /// Mount options understood (not filesystem-specific data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<FeaturesLinux>,
    /// Implementation details (`org.opencontainers.runc.version`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Annotations of `config.json` that may weaken isolation; one ending
    /// in `.` is a prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub potentially_unsafe_config_annotations: Option<Vec<String>>,
}

/// `linux` of the features document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeaturesLinux {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<FeaturesCgroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<FeaturesSeccomp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor: Option<FeaturesApparmor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<FeaturesSelinux>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<FeaturesIntelRdt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_extensions: Option<FeaturesMountExtensions>,
}

/// `linux.cgroup`: what is compiled in, not what the host has.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeaturesCgroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_user: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdma: Option<bool>,
}

/// `linux.seccomp`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeaturesSeccomp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operators: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archs: Option<Vec<String>>,
    /// Flags this build knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_flags: Option<Vec<String>>,
    /// Flags this kernel and libseccomp also support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_flags: Option<Vec<String>>,
}

/// `linux.apparmor`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeaturesApparmor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `linux.selinux`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeaturesSelinux {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `linux.intelRdt`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeaturesIntelRdt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `linux.mountExtensions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeaturesMountExtensions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<FeaturesIdMap>,
}

/// `linux.mountExtensions.idmap`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeaturesIdMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl Features {
    /// Parses a features document.
    pub fn parse(bytes: &[u8]) -> Result<Features, ParseError> {
        parse_json(bytes)
    }

    /// The document, tab-indented.
    pub fn to_json(&self) -> String {
        to_json_tabs(self)
    }
}
