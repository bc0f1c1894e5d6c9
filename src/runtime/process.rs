//! The OCI `process` applied to the calling process, in runc's order:
//! rlimits, then the bounding set, then the user (keeping the permitted
//! capabilities across `setuid`), then the other four capability sets,
//! `noNewPrivileges` and the umask. Used by the container's init and by
//! `exec`; both are single-threaded children about to `execve`.

use super::spec::{self, Capabilities, Rlimit, RlimitType};
use super::StartError;
use crate::sys::capability::{self, CapSet, Capability, CapsHashSet};
use crate::sys::process::{Resource, Rlimit as SysRlimit};
use std::ffi::CString;

/// Parses capability names (`CAP_CHOWN`); a name this build does not
/// know is an error naming the field, one the kernel lacks is skipped
/// (runc warns and goes on).
pub fn parse_caps(field: &str, names: &[String]) -> Result<CapsHashSet, StartError> {
    let last = capability::last_cap().unwrap_or(u32::MAX);
    let mut out = CapsHashSet::new();
    for (i, name) in names.iter().enumerate() {
        let cap: Capability =
            name.parse().map_err(|_| StartError::new(125, format!("{field}[{i}]: unknown capability {name:?}")))?;
        if u32::from(cap.index()) <= last {
            out.insert(cap);
        }
    }
    Ok(out)
}

/// The five sets, parsed.
#[derive(Debug, Clone, Default)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

impl CapSets {
    /// The spec's sets; an absent `capabilities` means none at all.
    pub fn from_spec(caps: Option<&Capabilities>) -> Result<CapSets, StartError> {
        let Some(c) = caps else { return Ok(CapSets::default()) };
        Ok(CapSets {
            bounding: parse_caps("process.capabilities.bounding", &c.bounding)?,
            effective: parse_caps("process.capabilities.effective", &c.effective)?,
            inheritable: parse_caps("process.capabilities.inheritable", &c.inheritable)?,
            permitted: parse_caps("process.capabilities.permitted", &c.permitted)?,
            ambient: parse_caps("process.capabilities.ambient", &c.ambient)?,
        })
    }

    /// Drops from the bounding set every capability the kernel knows
    /// (`cap_last_cap`, not this build's list) that the set does not keep.
    pub fn apply_bounding(&self) -> Result<(), StartError> {
        let last = capability::last_cap().map_err(io("read cap_last_cap"))?;
        let keep: Vec<u32> = self.bounding.iter().map(|c| u32::from(c.index())).collect();
        for index in (0..=last).filter(|i| !keep.contains(i)) {
            capability::drop_bounding_index(index).map_err(io("drop from the bounding set"))?;
        }
        Ok(())
    }

    /// Sets effective, permitted, inheritable and ambient (after the
    /// user switch).
    pub fn apply_rest(&self) -> Result<(), StartError> {
        // Inheritable while permitted is still whole (it may only grow
        // within the old permitted set), effective while it still fits,
        // then permitted shrinks to the spec's.
        capability::capset(CapSet::Inheritable, &self.inheritable).map_err(io("set inheritable capabilities"))?;
        capability::capset(CapSet::Effective, &self.effective).map_err(io("set effective capabilities"))?;
        capability::capset(CapSet::Permitted, &self.permitted).map_err(io("set permitted capabilities"))?;
        capability::clear_ambient_capability_set().map_err(io("clear ambient capabilities"))?;
        for cap in &self.ambient {
            // The kernel refuses ambient capabilities that are not both
            // permitted and inheritable; runc ignores those.
            if self.permitted.contains(cap) && self.inheritable.contains(cap) {
                capability::raise_ambient(*cap).map_err(io("raise ambient capability"))?;
            }
        }
        Ok(())
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> StartError {
    move |e| StartError::caused(format!("{what}: {e}"), e)
}

fn resource(kind: RlimitType) -> Resource {
    match kind {
        RlimitType::As => Resource::As,
        RlimitType::Core => Resource::Core,
        RlimitType::Cpu => Resource::Cpu,
        RlimitType::Data => Resource::Data,
        RlimitType::Fsize => Resource::Fsize,
        RlimitType::Locks => Resource::Locks,
        RlimitType::Memlock => Resource::Memlock,
        RlimitType::Msgqueue => Resource::Msgqueue,
        RlimitType::Nice => Resource::Nice,
        RlimitType::Nofile => Resource::Nofile,
        RlimitType::Nproc => Resource::Nproc,
        RlimitType::Rss => Resource::Rss,
        RlimitType::Rtprio => Resource::Rtprio,
        RlimitType::Rttime => Resource::Rttime,
        RlimitType::Sigpending => Resource::Sigpending,
        RlimitType::Stack => Resource::Stack,
    }
}

/// Sets every rlimit as given (the init still holds `CAP_SYS_RESOURCE`,
/// so raising is allowed, as with runc).
pub fn apply_rlimits(rlimits: &[Rlimit]) -> Result<(), StartError> {
    for (i, r) in rlimits.iter().enumerate() {
        let limit = |v: u64| (v != u64::MAX).then_some(v);
        crate::sys::process::setrlimit(resource(r.kind), SysRlimit { current: limit(r.soft), maximum: limit(r.hard) })
            .map_err(|e| StartError::caused(format!("process.rlimits[{i}] ({}): {e}", r.kind), e))?;
    }
    Ok(())
}

/// Switches to the spec's user, keeping the permitted capabilities so
/// that [`CapSets::apply_rest`] can set them afterwards.
pub fn become_user(user: &spec::User) -> Result<(), StartError> {
    crate::sys::prctl::set_keep_capabilities(true).map_err(io("keep capabilities"))?;
    crate::sys::process::setgroups(&user.additional_gids).map_err(io("setgroups"))?;
    crate::sys::prctl::setresgid(user.gid).map_err(io("setgid"))?;
    crate::sys::prctl::setresuid(user.uid).map_err(io("setuid"))?;
    crate::sys::prctl::set_keep_capabilities(false).map_err(io("clear keep capabilities"))?;
    if let Some(mask) = user.umask {
        crate::sys::prctl::umask(mask);
    }
    Ok(())
}

/// A spec's strings as C strings; one holding NUL is an error naming
/// the field.
pub fn cstrings(field: &str, v: &[String]) -> Result<Vec<CString>, StartError> {
    v.iter()
        .enumerate()
        .map(|(i, s)| CString::new(s.as_str()).map_err(|_| StartError::new(125, format!("{field}[{i}] contains NUL"))))
        .collect()
}
