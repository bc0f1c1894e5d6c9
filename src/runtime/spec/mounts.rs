//! `mounts`: what is mounted over the root, in order.

use super::IdMapping;
use serde::{Deserialize, Serialize};

/// One entry of `mounts`, as `mount(2)` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Path in the container. Linux allows a relative one (deprecated),
    /// read as relative to `/`: see [`Mount::destination_path`].
    pub destination: String,
    /// Filesystem type; a dummy (often `none`) for bind mounts.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// A device, a dummy, or for bind mounts a path absolute or relative
    /// to the bundle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// fstab-style options (`ro`, `rbind`, `rprivate`, `size=64k`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// An ID-mapped mount (`mount_setattr(MOUNT_ATTR_IDMAP)`); given
    /// together with `gidMappings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
}

impl Mount {
    /// Whether this is a bind mount (`bind` or `rbind` in its options).
    pub fn is_bind(&self) -> bool {
        self.options.iter().any(|o| o == "bind" || o == "rbind")
    }

    /// The destination as an absolute path: a relative one is read as
    /// relative to `/`, as the spec says for Linux.
    pub fn destination_path(&self) -> String {
        if self.destination.starts_with('/') {
            self.destination.clone()
        } else {
            format!("/{}", self.destination)
        }
    }
}
