//! Docker's seccomp profile format (`--security-opt seccomp=PROFILE.json`)
//! as data, its resolution into the OCI `linux.seccomp` of one container,
//! and strata's default profile ([`docker_default`]).
//!
//! A profile is an OCI seccomp filter whose rules may carry conditions:
//! `includes` (every condition must hold) and `excludes` (any condition
//! that holds drops the rule) on the container's capabilities (its
//! bounding set), the host's architecture (Docker's names: `amd64`,
//! `arm64`, `x86`, `s390x`, …) and its kernel version (`minKernel`,
//! `"<kernel>.<major>"`). [`Profile::to_oci`] keeps the rules whose
//! conditions hold, as moby's `setupSeccomp` does, and picks from
//! `archMap` the native architecture and its compat ones.
//!
//! Parsing does no I/O ([`Profile::from_json`]); a field that does not
//! belong to the format is refused by its path (Docker ignores unknown
//! fields, which lets a misspelt `"defaultAction"` pass unnoticed), and
//! `defaultAction` is required (Docker takes `{}` as unconfined; strata
//! spells that `seccomp=unconfined`).

mod default;
#[cfg(test)]
mod tests;

pub use default::docker_default;

use crate::runtime::spec::{self, Arch, SeccompAction, SeccompArg, SeccompFlag};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

/// Why a profile could not be read or resolved.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("read seccomp profile {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Not JSON, or a field of the wrong type or name; `field` is its path
    /// (`syscalls[3].action`), empty for a syntax error.
    #[error("seccomp profile{}: {}{message} (line {line}, column {column})", origin_text(.origin), field_text(.field))]
    Parse { origin: Option<PathBuf>, field: String, message: String, line: usize, column: usize },
    /// Well-formed, but the profile contradicts itself.
    #[error("seccomp profile: {field}: {problem}")]
    Invalid { field: String, problem: String },
}

fn origin_text(origin: &Option<PathBuf>) -> String {
    origin.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default()
}

fn field_text(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// A Docker seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: SeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures given outright (not with `archMap`).
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Arch>,
    /// Per native architecture, the ones to add with it.
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<SeccompFlag>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listener_metadata: String,
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<Rule>,
}

impl Default for Profile {
    /// Everything denied with `EPERM`.
    fn default() -> Profile {
        Profile {
            default_action: SeccompAction::Errno,
            default_errno_ret: None,
            architectures: Vec::new(),
            arch_map: Vec::new(),
            flags: Vec::new(),
            listener_path: String::new(),
            listener_metadata: String::new(),
            syscalls: Vec::new(),
        }
    }
}

/// One entry of `archMap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub sub_architectures: Vec<Arch>,
}

/// One rule of `syscalls`, with its conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The old spelling of a one-name rule.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub action: SeccompAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Condition::is_empty")]
    pub includes: Condition,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Condition::is_empty")]
    pub excludes: Condition,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule {
            name: String::new(),
            names: Vec::new(),
            action: SeccompAction::Allow,
            errno_ret: None,
            args: Vec::new(),
            comment: String::new(),
            includes: Condition::default(),
            excludes: Condition::default(),
        }
    }
}

/// What `includes` or `excludes` looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// Capability names (`CAP_SYS_ADMIN`), against the bounding set.
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Docker's architecture names (`amd64`, `arm64`, `s390x`, …).
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<KernelVersion>,
}

impl Condition {
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// `"<kernel>.<major>"` (`"4.8"`), each at most 255, not `0.0`; `""` is
/// no condition. Ordered as versions are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub kernel: u32,
    pub major: u32,
}

impl KernelVersion {
    /// The version in `text` (`"4.8"`), or why it is not one.
    pub fn parse(text: &str) -> Result<KernelVersion, String> {
        let bad = || format!("invalid kernel version {text:?}, expected \"<kernel>.<major>\"");
        let (k, m) = text.split_once('.').ok_or_else(bad)?;
        let num = |s: &str| s.parse::<u8>().map(u32::from).map_err(|_| bad());
        let v = KernelVersion { kernel: num(k)?, major: num(m)? };
        if v == (KernelVersion { kernel: 0, major: 0 }) {
            return Err(format!("invalid kernel version {text:?}: cannot be 0.0"));
        }
        Ok(v)
    }

    /// The kernel and major revision of a release string
    /// (`6.18.0-1-amd64`, `3.12-rc5`): what `minKernel` is compared with.
    pub fn from_release(release: &str) -> Option<KernelVersion> {
        let mut parts = release.trim().splitn(3, |c: char| !c.is_ascii_digit());
        let kernel = parts.next()?.parse().ok()?;
        let major = parts.next()?.parse().ok()?;
        Some(KernelVersion { kernel, major })
    }
}

impl Serialize for KernelVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}.{}", self.kernel, self.major))
    }
}

impl<'de> Deserialize<'de> for KernelVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        KernelVersion::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The host's kernel version, from `/proc/sys/kernel/osrelease`.
pub fn host_kernel() -> Result<(u32, u32), ProfileError> {
    let path = Path::new("/proc/sys/kernel/osrelease");
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read { path: path.into(), source })?;
    let v = KernelVersion::from_release(&text).ok_or_else(|| ProfileError::Invalid {
        field: path.display().to_string(),
        problem: format!("cannot read a kernel version in {:?}", text.trim()),
    })?;
    Ok((v.kernel, v.major))
}

/// This build's architecture, as Docker names it in `arches` and as
/// libseccomp names it in `archMap` (`None` where Docker has no name).
pub fn native_arch() -> Option<(&'static str, Arch)> {
    let little = cfg!(target_endian = "little");
    Some(match std::env::consts::ARCH {
        "x86_64" => ("amd64", Arch::X86_64),
        "x86" => ("x86", Arch::X86),
        "aarch64" => ("arm64", Arch::Aarch64),
        "arm" => ("arm", Arch::Arm),
        "riscv64" => ("riscv64", Arch::Riscv64),
        "s390x" => ("s390x", Arch::S390X),
        "loongarch64" => ("loongarch64", Arch::Loongarch64),
        "powerpc64" if little => ("ppc64le", Arch::Ppc64Le),
        "powerpc64" => ("ppc64", Arch::Ppc64),
        "powerpc" => ("ppc", Arch::Ppc),
        "mips64" if little => ("mipsel64", Arch::Mipsel64),
        "mips64" => ("mips64", Arch::Mips64),
        "mips" if little => ("mipsle", Arch::Mipsel),
        _ => return None,
    })
}

impl Profile {
    /// Parses a profile, naming the field at fault in errors.
    pub fn from_json(bytes: &[u8]) -> Result<Profile, ProfileError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parse_error = |path: String, e: serde_json::Error| {
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
            ProfileError::Parse { origin: None, field: path, message, line: e.line(), column: e.column() }
        };
        let profile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            parse_error(if path == "." { String::new() } else { path }, e.into_inner())
        })?;
        de.end().map_err(|e| parse_error(String::new(), e))?;
        Ok(profile)
    }

    /// Reads and parses the profile in `path` (`seccomp=FILE`).
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let bytes = std::fs::read(path).map_err(|source| ProfileError::Read { path: path.into(), source })?;
        Profile::from_json(&bytes).map_err(|e| match e {
            ProfileError::Parse { field, message, line, column, .. } => {
                ProfileError::Parse { origin: Some(path.into()), field, message, line, column }
            }
            other => other,
        })
    }

    /// The OCI filter of a container whose bounding set is `caps`
    /// (`CAP_*` names), on this architecture and a kernel `kernel`
    /// (`(major, minor)`, see [`host_kernel`]).
    pub fn to_oci(&self, caps: &[String], kernel: (u32, u32)) -> Result<spec::Seccomp, ProfileError> {
        let native = native_arch();
        self.resolve(caps, native, KernelVersion { kernel: kernel.0, major: kernel.1 })
    }

    /// [`Profile::to_oci`] for a given architecture (tests pick others).
    fn resolve(
        &self,
        caps: &[String],
        native: Option<(&str, Arch)>,
        kernel: KernelVersion,
    ) -> Result<spec::Seccomp, ProfileError> {
        let invalid = |field: String, problem: &str| ProfileError::Invalid { field, problem: problem.to_owned() };
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(invalid("archMap".into(), "give either architectures or archMap, not both"));
        }
        let mut architectures = self.architectures.clone();
        if let Some(entry) = native.and_then(|(_, arch)| self.arch_map.iter().find(|m| m.architecture == arch)) {
            architectures.push(entry.architecture);
            architectures.extend(entry.sub_architectures.iter().copied());
        }
        let arch_name = native.map(|(name, _)| name).unwrap_or("");
        let has_cap = |c: &String| caps.contains(c);
        let mut syscalls = Vec::new();
        for (i, rule) in self.syscalls.iter().enumerate() {
            let names = match (rule.name.is_empty(), rule.names.is_empty()) {
                (false, false) => return Err(invalid(format!("syscalls[{i}]"), "give either name or names, not both")),
                (false, true) => vec![rule.name.clone()],
                (true, false) => rule.names.clone(),
                (true, true) => return Err(invalid(format!("syscalls[{i}].names"), "no syscall named")),
            };
            let ex = &rule.excludes;
            let excluded = ex.arches.iter().any(|a| a == arch_name)
                || ex.caps.iter().any(has_cap)
                || ex.min_kernel.is_some_and(|min| kernel >= min);
            let inc = &rule.includes;
            let included = (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch_name))
                && inc.caps.iter().all(has_cap)
                && !inc.min_kernel.is_some_and(|min| kernel < min);
            if excluded || !included {
                continue;
            }
            syscalls.push(spec::Syscall {
                names,
                action: rule.action,
                errno_ret: rule.errno_ret,
                args: rule.args.clone(),
            });
        }
        Ok(spec::Seccomp {
            default_action: self.default_action,
            default_errno_ret: self.default_errno_ret,
            architectures,
            flags: self.flags.clone(),
            listener_path: self.listener_path.clone(),
            listener_metadata: self.listener_metadata.clone(),
            syscalls,
        })
    }
}
