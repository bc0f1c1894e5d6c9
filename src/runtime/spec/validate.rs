//! The spec's own rules that need no kernel: required fields, absolute
//! paths, no duplicates, well-formed ID ranges, errno only where an
//! action returns one. What this kernel or this build can do is the
//! executor's question, not this one's.

use super::{IdMapping, NamespaceType, RlimitType, SeccompAction, Spec};
use std::collections::HashSet;

/// A rule of the spec that `field` breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// JSON path of the field (`linux.namespaces[3].type`).
    pub field: String,
    pub problem: Problem,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("is required")]
    Missing,
    #[error("is required unless type is \"p\"")]
    MissingDeviceNumber,
    #[error("{0:?} is not a SemVer version")]
    NotSemver(String),
    #[error("version {0:?} is not 1.x")]
    UnsupportedVersion(String),
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    #[error("needs at least one entry")]
    NoEntries,
    #[error("has an empty key")]
    EmptyKey,
    #[error("duplicate namespace type \"{0}\"")]
    DuplicateNamespace(NamespaceType),
    #[error("duplicate rlimit \"{0}\"")]
    DuplicateRlimit(RlimitType),
    #[error("must be greater than zero, not {0}")]
    NotPositive(i64),
    #[error("{what} {start} + size {size} goes past 4294967295")]
    RangeOverflow { what: &'static str, start: u32, size: u32 },
    #[error("{what} range overlaps {other}")]
    RangeOverlap { what: &'static str, other: String },
    #[error("given without {0}")]
    WithoutPair(&'static str),
    #[error("only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not {0}")]
    ErrnoWithoutErrnoAction(SeccompAction),
    #[error("{0} is not a syscall argument (0 to 5)")]
    ArgIndex(u32),
    #[error("unknown clock {0:?} (monotonic or boottime)")]
    UnknownClock(String),
    #[error("needs {0}")]
    NeedsOneOf(&'static str),
    #[error("{0:?} may contain only r, w and m")]
    DeviceAccess(String),
}

impl Spec {
    /// Checks the spec's MUSTs that need no kernel; the first broken one
    /// is the error (all of them: [`Spec::problems`]).
    pub fn validate(&self) -> Result<(), Invalid> {
        match self.problems().into_iter().next() {
            Some(invalid) => Err(invalid),
            None => Ok(()),
        }
    }

    /// Every broken rule, in document order.
    pub fn problems(&self) -> Vec<Invalid> {
        let mut out = Problems(Vec::new());
        self.check_top(&mut out);
        self.check_process(&mut out);
        self.check_mounts(&mut out);
        self.check_hooks(&mut out);
        self.check_linux(&mut out);
        out.0
    }

    fn check_top(&self, out: &mut Problems) {
        if self.oci_version.is_empty() {
            out.add("ociVersion", Problem::Missing);
        } else {
            match semver_major(&self.oci_version) {
                None => out.add("ociVersion", Problem::NotSemver(self.oci_version.clone())),
                Some(1) => {}
                Some(_) => out.add("ociVersion", Problem::UnsupportedVersion(self.oci_version.clone())),
            }
        }
        match &self.root {
            None => out.add("root", Problem::Missing),
            Some(root) if root.path.is_empty() => out.add("root.path", Problem::Missing),
            Some(_) => {}
        }
        if self.annotations.contains_key("") {
            out.add("annotations", Problem::EmptyKey);
        }
    }

    fn check_process(&self, out: &mut Problems) {
        let Some(process) = &self.process else { return };
        if process.cwd.is_empty() {
            out.add("process.cwd", Problem::Missing);
        } else {
            out.absolute("process.cwd", &process.cwd);
        }
        if process.args.is_empty() {
            out.add("process.args", Problem::NoEntries);
        }
        let mut seen = HashSet::new();
        for (i, rlimit) in process.rlimits.iter().enumerate() {
            if !seen.insert(rlimit.kind) {
                out.add(format!("process.rlimits[{i}].type"), Problem::DuplicateRlimit(rlimit.kind));
            }
        }
    }

    fn check_mounts(&self, out: &mut Problems) {
        for (i, mount) in self.mounts.iter().enumerate() {
            // Linux allows a relative destination (deprecated, read as
            // relative to "/"), so only its absence is an error here.
            if mount.destination.is_empty() {
                out.add(format!("mounts[{i}].destination"), Problem::Missing);
            }
            let base = format!("mounts[{i}]");
            out.mapping_pair(&base, &mount.uid_mappings, &mount.gid_mappings);
            out.mappings(&format!("{base}.uidMappings"), &mount.uid_mappings);
            out.mappings(&format!("{base}.gidMappings"), &mount.gid_mappings);
        }
    }

    fn check_hooks(&self, out: &mut Problems) {
        let Some(hooks) = &self.hooks else { return };
        for (name, list) in hooks.lists() {
            for (i, hook) in list.iter().enumerate() {
                if hook.path.is_empty() {
                    out.add(format!("hooks.{name}[{i}].path"), Problem::Missing);
                } else {
                    out.absolute(format!("hooks.{name}[{i}].path"), &hook.path);
                }
                if let Some(timeout) = hook.timeout.filter(|t| *t <= 0) {
                    out.add(format!("hooks.{name}[{i}].timeout"), Problem::NotPositive(timeout));
                }
            }
        }
    }

    fn check_linux(&self, out: &mut Problems) {
        let Some(linux) = &self.linux else { return };
        let mut seen = HashSet::new();
        for (i, ns) in linux.namespaces.iter().enumerate() {
            if !seen.insert(ns.kind) {
                out.add(format!("linux.namespaces[{i}].type"), Problem::DuplicateNamespace(ns.kind));
            }
            if !ns.path.is_empty() {
                out.absolute(format!("linux.namespaces[{i}].path"), &ns.path);
            }
        }
        out.mappings("linux.uidMappings", &linux.uid_mappings);
        out.mappings("linux.gidMappings", &linux.gid_mappings);
        for clock in linux.time_offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                out.add("linux.timeOffsets", Problem::UnknownClock(clock.clone()));
            }
        }
        for (i, device) in linux.devices.iter().enumerate() {
            out.absolute(format!("linux.devices[{i}].path"), &device.path);
            if device.kind != super::DeviceType::Fifo {
                if device.major.is_none() {
                    out.add(format!("linux.devices[{i}].major"), Problem::MissingDeviceNumber);
                }
                if device.minor.is_none() {
                    out.add(format!("linux.devices[{i}].minor"), Problem::MissingDeviceNumber);
                }
            }
        }
        if let Some(resources) = &linux.resources {
            for (i, rule) in resources.devices.iter().enumerate() {
                if !rule.access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                    out.add(format!("linux.resources.devices[{i}].access"), Problem::DeviceAccess(rule.access.clone()));
                }
            }
            if let Some(block_io) = &resources.block_io {
                for (i, device) in block_io.weight_device.iter().enumerate() {
                    if device.weight.is_none() && device.leaf_weight.is_none() {
                        out.add(
                            format!("linux.resources.blockIO.weightDevice[{i}]"),
                            Problem::NeedsOneOf("weight or leafWeight"),
                        );
                    }
                }
            }
            for (name, rdma) in &resources.rdma {
                if rdma.hca_handles.is_none() && rdma.hca_objects.is_none() {
                    out.add(format!("linux.resources.rdma.{name}"), Problem::NeedsOneOf("hcaHandles or hcaObjects"));
                }
            }
        }
        if let Some(seccomp) = &linux.seccomp {
            if seccomp.default_errno_ret.is_some() && !seccomp.default_action.takes_errno() {
                out.add("linux.seccomp.defaultErrnoRet", Problem::ErrnoWithoutErrnoAction(seccomp.default_action));
            }
            if !seccomp.listener_metadata.is_empty() && seccomp.listener_path.is_empty() {
                out.add("linux.seccomp.listenerMetadata", Problem::WithoutPair("listenerPath"));
            }
            for (i, syscall) in seccomp.syscalls.iter().enumerate() {
                if syscall.names.is_empty() {
                    out.add(format!("linux.seccomp.syscalls[{i}].names"), Problem::NoEntries);
                }
                if syscall.errno_ret.is_some() && !syscall.action.takes_errno() {
                    out.add(
                        format!("linux.seccomp.syscalls[{i}].errnoRet"),
                        Problem::ErrnoWithoutErrnoAction(syscall.action),
                    );
                }
                for (j, arg) in syscall.args.iter().enumerate() {
                    if arg.index > 5 {
                        out.add(format!("linux.seccomp.syscalls[{i}].args[{j}].index"), Problem::ArgIndex(arg.index));
                    }
                }
            }
        }
        for (i, path) in linux.masked_paths.iter().enumerate() {
            out.absolute(format!("linux.maskedPaths[{i}]"), path);
        }
        for (i, path) in linux.readonly_paths.iter().enumerate() {
            out.absolute(format!("linux.readonlyPaths[{i}]"), path);
        }
    }
}

/// The problems found so far.
struct Problems(Vec<Invalid>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, problem: Problem) {
        self.0.push(Invalid { field: field.into(), problem });
    }

    fn absolute(&mut self, field: impl Into<String>, path: &str) {
        if !path.starts_with('/') {
            self.add(field, Problem::NotAbsolute(path.to_string()));
        }
    }

    /// An ID-mapped mount gives both lists or neither.
    fn mapping_pair(&mut self, base: &str, uids: &[IdMapping], gids: &[IdMapping]) {
        if !uids.is_empty() && gids.is_empty() {
            self.add(format!("{base}.uidMappings"), Problem::WithoutPair("gidMappings"));
        }
        if uids.is_empty() && !gids.is_empty() {
            self.add(format!("{base}.gidMappings"), Problem::WithoutPair("uidMappings"));
        }
    }

    /// Each range non-empty, inside 32 bits, and disjoint from the others
    /// on both sides, as `user_namespaces(7)` requires of a map.
    fn mappings(&mut self, field: &str, mappings: &[IdMapping]) {
        for (i, m) in mappings.iter().enumerate() {
            let here = format!("{field}[{i}]");
            if m.size == 0 {
                self.add(format!("{here}.size"), Problem::NotPositive(0));
                continue;
            }
            let mut overflow = false;
            for (what, start) in [("containerID", m.container_id), ("hostID", m.host_id)] {
                if u64::from(start) + u64::from(m.size) > 1 << 32 {
                    self.add(here.clone(), Problem::RangeOverflow { what, start, size: m.size });
                    overflow = true;
                }
            }
            if overflow {
                continue;
            }
            for (j, other) in mappings[..i].iter().enumerate() {
                let other_field = format!("{field}[{j}]");
                if overlaps(m.container_id, m.size, other.container_id, other.size) {
                    self.add(here.clone(), Problem::RangeOverlap { what: "containerID", other: other_field.clone() });
                }
                if overlaps(m.host_id, m.size, other.host_id, other.size) {
                    self.add(here.clone(), Problem::RangeOverlap { what: "hostID", other: other_field });
                }
            }
        }
    }
}

fn overlaps(a: u32, a_size: u32, b: u32, b_size: u32) -> bool {
    let (a, a_end) = (u64::from(a), u64::from(a) + u64::from(a_size));
    let (b, b_end) = (u64::from(b), u64::from(b) + u64::from(b_size));
    a < b_end && b < a_end
}

/// The major version of a SemVer 2.0.0 string, or `None` if it is not
/// one (`MAJOR.MINOR.PATCH`, optional `-pre` and `+build`).
fn semver_major(version: &str) -> Option<u64> {
    let core =
        version.split_once('+').map_or(version, |(core, build)| if ident_list(build, false) { core } else { "" });
    let core = match core.split_once('-') {
        Some((core, pre)) if ident_list(pre, true) => core,
        Some(_) => return None,
        None => core,
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || !numbers.iter().all(|n| numeric(n)) {
        return None;
    }
    numbers[0].parse().ok()
}

/// A number without leading zeros.
fn numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// Dot-separated identifiers of `[0-9A-Za-z-]`; pre-release numeric ones
/// may not have leading zeros.
fn ident_list(s: &str, pre: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && (!pre || !id.bytes().all(|b| b.is_ascii_digit()) || numeric(id))
    })
}
