//! The state of a container: what `state` prints and hooks read on stdin.

use super::{parse_json, string_enum, to_json_tabs, Extra, ParseError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The OCI state document (runtime.md, "State").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// REQUIRED on Linux while `created` or `running` (and `paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Absolute path of the bundle.
    pub bundle: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Properties beyond the spec's (runc adds `rootfs`, `created`,
    /// `owner`).
    #[serde(flatten)]
    pub extra: Extra,
}

string_enum! {
    /// `status`: the spec's four and runc's `paused`, which podman requires
    /// a runtime to report.
    Status, "container status" {
        Creating = "creating",
        Created = "created",
        Running = "running",
        Paused = "paused",
        Stopped = "stopped",
    }
}

impl State {
    /// Parses a state document.
    pub fn parse(bytes: &[u8]) -> Result<State, ParseError> {
        parse_json(bytes)
    }

    /// The document, tab-indented as runc prints it.
    pub fn to_json(&self) -> String {
        to_json_tabs(self)
    }
}
