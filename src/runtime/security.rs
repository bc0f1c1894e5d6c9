//! Privileges inside the container: Docker's default capability set,
//! `no_new_privs`, rlimits that are only ever lowered, and the user.

use crate::sys::capability::{
    self, capability_is_in_bounding_set, capset, clear_ambient_capability_set, remove_capability_from_bounding_set,
    CapSet, Capability, CapsHashSet,
};
use crate::sys::process::{getrlimit, setgid, setgroups, setrlimit, setuid, Resource, Rlimit};
use std::io;

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Drops every capability outside [`DEFAULT_CAPS`] from the bounding set
/// and sets the other sets to the defaults (effective ones only matter
/// for root; a non-root user loses them at `setuid`).
pub fn restrict_capabilities() -> io::Result<()> {
    let keep: CapsHashSet = DEFAULT_CAPS.iter().copied().collect();
    for cap in capability::all() {
        if !keep.contains(&cap) && capability_is_in_bounding_set(cap).unwrap_or(false) {
            remove_capability_from_bounding_set(cap)?;
        }
    }
    clear_ambient_capability_set()?;
    capset(CapSet::Inheritable, &keep)?;
    capset(CapSet::Effective, &keep)?;
    capset(CapSet::Permitted, &keep)
}

/// Lowers `resource` to `soft`/`hard`, never raising either above the
/// current hard limit (raising needs CAP_SYS_RESOURCE, which a container
/// must not rely on; podman fails here where strata must not).
pub fn lower_rlimit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let cur = getrlimit(resource);
    let cur_hard = cur.maximum.unwrap_or(u64::MAX);
    let hard = hard.min(cur_hard);
    let soft = soft.min(hard);
    setrlimit(resource, Rlimit { current: Some(soft), maximum: Some(hard) })
}

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves Docker's `-u user[:group]` (names or numbers) against the
/// container's `/etc/passwd` and `/etc/group` (contents passed in: pure).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry =
        passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.len() >= 7 && (f[0] == u || f[2] == u));
    let (uid, mut gid, name, home) = match (&entry, u.parse::<u32>()) {
        // Root needs no passwd entry (an image may have none, or have broken it).
        (None, Ok(0)) => (0, 0, String::new(), "/root".to_owned()),
        (Some(f), _) => (
            f[2].parse().map_err(|_| format!("bad uid in /etc/passwd for {u}"))?,
            f[3].parse().map_err(|_| format!("bad gid in /etc/passwd for {u}"))?,
            f[0].to_owned(),
            f[5].to_owned(),
        ),
        (None, Ok(n)) => (n, n, String::new(), "/".to_owned()),
        (None, Err(_)) => return Err(format!("unable to find user {u}: no matching entries in passwd file")),
    };
    let groups_file: Vec<Vec<&str>> =
        group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 4).collect();
    if let Some(g) = g {
        gid = match groups_file.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => f[2].parse().map_err(|_| format!("bad gid in /etc/group for {g}"))?,
            None => g.parse().map_err(|_| format!("unable to find group {g}: no matching entries in group file"))?,
        };
    }
    let mut groups: Vec<u32> = groups_file
        .iter()
        .filter(|f| !name.is_empty() && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .collect();
    groups.retain(|x| *x != gid);
    Ok(User { uid, gid, groups, home })
}

/// Switches to `user`: supplementary groups, gid, then uid (in that order:
/// after `setuid` the process may no longer change groups).
pub fn become_user(user: &User) -> io::Result<()> {
    setgroups(&user.groups)?;
    setgid(user.gid)?;
    setuid(user.uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app\n";

    #[test]
    fn resolves_names_numbers_and_groups() {
        assert_eq!(
            resolve_user("", PASSWD, GROUP).unwrap(),
            User { uid: 0, gid: 0, groups: vec![], home: "/root".into() }
        );
        let app = resolve_user("app", PASSWD, GROUP).unwrap();
        assert_eq!((app.uid, app.gid, app.groups.clone(), app.home.as_str()), (1000, 1000, vec![10], "/home/app"));
        assert_eq!(resolve_user("1000:wheel", PASSWD, GROUP).unwrap().gid, 10);
        assert_eq!(
            resolve_user("4242:4243", PASSWD, GROUP).unwrap(),
            User { uid: 4242, gid: 4243, groups: vec![], home: "/".into() }
        );
        assert!(resolve_user("nobody", PASSWD, GROUP).unwrap_err().contains("unable to find user nobody"));
        assert!(resolve_user("app:nogroup", PASSWD, GROUP).unwrap_err().contains("unable to find group"));
    }
}
