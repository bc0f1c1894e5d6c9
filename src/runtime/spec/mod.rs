//! The OCI runtime specification as data: `config.json` ([`Spec`]), the
//! state a runtime reports ([`State`]) and what it supports
//! ([`Features`]).
//!
//! This follows runtime-spec **1.2.1** (`specs-go` and `config*.md`,
//! `runtime.md`, `features.md` of that tag) and accepts every `1.x`
//! bundle: Debian bookworm's runc 1.1.5 writes `"ociVersion":
//! "1.0.2-dev"`, and 1.1/1.2 only added fields. Names are the spec's
//! camelCase JSON names exactly; Go's `omitempty` is mirrored (empty
//! lists, empty strings, `false` and absent options are not written), so
//! a spec written by runc reads back and writes out unchanged.
//!
//! Unknown properties are tolerated, as the spec requires ("runtimes
//! MUST otherwise ignore them"), but not lost: at the top level and in
//! `linux` they are kept in `extra`, and the non-Linux sections
//! (`solaris`, `windows`, `vm`, `zos`) are kept as opaque JSON, so an
//! executor can refuse by name what it cannot do
//! ([`Spec::unsupported_fields`]). Values the spec enumerates (namespace
//! types, seccomp actions, operators, architectures and flags, rlimit
//! types, device types, …) are typed enums: an unknown one is a parse
//! error naming its JSON path, e.g. `linux.namespaces[2].type: unknown
//! namespace type "foo"`.
//!
//! Parsing ([`Spec::parse`]) and checking the spec's own rules that need
//! no kernel ([`Spec::validate`]) do no I/O; only [`Spec::load`] reads a
//! file. Nothing here imports from the rest of the crate.

mod defaults;
mod features;
mod hooks;
mod linux;
mod mounts;
mod process;
mod resources;
mod seccomp;
mod state;
mod validate;

#[cfg(test)]
mod tests;

pub use features::{
    Features, FeaturesApparmor, FeaturesCgroup, FeaturesIdMap, FeaturesIntelRdt, FeaturesLinux,
    FeaturesMountExtensions, FeaturesSeccomp, FeaturesSelinux,
};
pub use hooks::{Hook, Hooks};
pub use linux::{
    Device, DeviceType, IdMapping, IntelRdt, Linux, Namespace, NamespaceType, Personality, PersonalityDomain,
    RootfsPropagation, TimeOffset,
};
pub use mounts::Mount;
pub use process::{
    Capabilities, ConsoleSize, CpuAffinity, IoPriority, IoPriorityClass, Process, Rlimit, RlimitType, Scheduler,
    SchedulerFlag, SchedulerPolicy, User,
};
pub use resources::{
    BlockIo, Cpu, DeviceRule, DeviceRuleType, HugepageLimit, InterfacePriority, Memory, Network, Pids, Rdma, Resources,
    ThrottleDevice, WeightDevice,
};
pub use seccomp::{Arch, Seccomp, SeccompAction, SeccompArg, SeccompFlag, SeccompOp, Syscall};
pub use state::{State, Status};
pub use validate::{Invalid, Problem};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The runtime-spec version these types follow, and the `ociVersion`
/// strata writes.
pub const VERSION: &str = "1.2.1";

/// Properties this crate does not model, by name, with their JSON.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// `config.json`: everything a runtime needs to create a container from a
/// bundle.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The spec version the bundle complies with (SemVer, REQUIRED).
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    /// Mounted in this order, after `root`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
    /// Other platforms' sections, kept as they came so that a Linux
    /// runtime can refuse them by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solaris: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zos: Option<serde_json::Value>,
    /// Top-level properties not in the spec (or from a newer one).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `root`: the container's root filesystem on the host.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    /// Absolute, or relative to the bundle.
    pub path: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
}

impl Spec {
    /// Reads and parses `<bundle>/config.json` (not validated: see
    /// [`Spec::validate`]).
    pub fn load(bundle: &Path) -> Result<Spec, LoadError> {
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
        Spec::parse(&bytes).map_err(|source| LoadError::Parse { path, source })
    }

    /// Parses `config.json` bytes. Errors name the JSON path of the
    /// offending value.
    pub fn parse(bytes: &[u8]) -> Result<Spec, ParseError> {
        parse_json(bytes)
    }

    /// The spec as `config.json` text (runc's layout: tab-indented).
    pub fn to_json(&self) -> String {
        to_json_tabs(self)
    }

    /// Properties present in this spec that a Linux runtime built from
    /// these types does not know, as JSON paths (`"fooBar"`,
    /// `"linux.fooBar"`, `"windows"`): an executor refuses these by name
    /// rather than ignoring them silently.
    pub fn unsupported_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.extra.keys().cloned().collect();
        for (name, section) in
            [("solaris", &self.solaris), ("windows", &self.windows), ("vm", &self.vm), ("zos", &self.zos)]
        {
            if section.is_some() {
                fields.push(name.to_string());
            }
        }
        if let Some(linux) = &self.linux {
            fields.extend(linux.extra.keys().map(|k| format!("linux.{k}")));
        }
        fields
    }
}

/// A document that is not JSON, or JSON that does not fit the spec's
/// types.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (or cut short).
    #[error("invalid JSON at line {line} column {column}: {message}")]
    Syntax { line: usize, column: usize, message: String },
    /// A value of the wrong type, an unknown enumerated value, a missing
    /// required field. `path` is the JSON path (`linux.namespaces[2].type`),
    /// empty for the document itself.
    #[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Value { path: String, message: String, line: usize, column: usize },
}

/// [`Spec::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Parse { path: PathBuf, source: ParseError },
}

/// Parses one JSON document into `T`, tracking the JSON path for errors.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        json_error(if path == "." { String::new() } else { path }, err.into_inner())
    })?;
    de.end().map_err(|err| json_error(String::new(), err))?;
    Ok(value)
}

fn json_error(path: String, err: serde_json::Error) -> ParseError {
    let (line, column) = (err.line(), err.column());
    // serde_json appends the position to its message; it is kept in
    // fields of its own instead.
    let text = err.to_string();
    let message = text.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&text).to_string();
    if err.is_syntax() || err.is_eof() {
        ParseError::Syntax { line, column, message }
    } else {
        ParseError::Value { path, message, line, column }
    }
}

/// JSON indented with tabs, as runc and the spec's examples write it.
fn to_json_tabs<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser).expect("spec types serialize to JSON");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// An enum of the spec's fixed strings: serialized as the string,
/// parsed with an error naming the kind of value (`unknown namespace
/// type "foo"`).
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the spec's order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The spec's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(concat!("unknown ", $what, " {:?}"), other)),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
use string_enum;
