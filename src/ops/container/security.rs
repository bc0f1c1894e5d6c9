//! Docker's security flags (`--privileged`, `--cap-add`, `--cap-drop`,
//! `--device`, `--security-opt`, `--ulimit`): parsed and checked at create
//! time into [`Security`], and turned into the OCI spec's capability sets,
//! devices, device rules and rlimits at start.
//!
//! Docker's semantics throughout: capability names with or without
//! `CAP_`, any case, and `ALL`; `--cap-drop ALL` starts from nothing and
//! `--cap-add` adds back; `--cap-add ALL` is every capability minus the
//! dropped ones. `--privileged` is every capability the kernel knows, every
//! host device, `a *:* rwm`, no seccomp and no masked or read-only paths.

use super::lifecycle::OpsError;
use crate::container::{DeviceMapping, SeccompChoice, Security, Ulimit};
use crate::runtime::spec::{self, DeviceRule, DeviceRuleType, DeviceType, RlimitType};
use crate::sys::capability::{self, Capability};
use crate::sys::process::Resource;
use std::path::Path;

/// What the command line asked for, unparsed.
#[derive(Debug, Clone, Default)]
pub struct SecurityRequest {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `HOST[:CONTAINER[:rwm]]`.
    pub devices: Vec<String>,
    /// `seccomp=unconfined|FILE`, `no-new-privileges[=true|false]`, …
    pub security_opt: Vec<String>,
    /// `name=soft[:hard]`.
    pub ulimits: Vec<String>,
}

fn invalid(msg: String) -> OpsError {
    OpsError::Invalid(msg)
}

/// Parses and checks every flag; the seccomp profile file is read (and
/// checked) now, as Docker does.
pub fn resolve(r: &SecurityRequest) -> Result<Security, OpsError> {
    let mut s = Security { privileged: r.privileged, ..Security::default() };
    s.cap_add = r.cap_add.iter().map(|c| cap_name("--cap-add", c)).collect::<Result<_, _>>()?;
    s.cap_drop = r.cap_drop.iter().map(|c| cap_name("--cap-drop", c)).collect::<Result<_, _>>()?;
    s.devices = r.devices.iter().map(|d| parse_device(d)).collect::<Result<_, _>>()?;
    for o in &r.security_opt {
        security_opt(o, &mut s)?;
    }
    let mut overrides = Vec::new();
    for u in &r.ulimits {
        let u = parse_ulimit(u)?;
        overrides.retain(|o: &Ulimit| o.name != u.name);
        overrides.push(u);
    }
    s.ulimits = inherited_ulimits(&overrides);
    Ok(s)
}

/// `chown`, `CAP_CHOWN`, `Cap_Chown` → `CAP_CHOWN`; `all` → `ALL`.
fn cap_name(flag: &str, name: &str) -> Result<String, OpsError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    full.parse::<Capability>().map_err(|_| invalid(format!("{flag}: unknown capability: {name:?}")))?;
    Ok(full)
}

/// Every capability this kernel knows (`cap_last_cap`) that we still hold
/// in our bounding set (as moby's `GetAllCapabilities`: a capability we
/// cannot have cannot be granted), by name.
fn kernel_caps() -> Vec<String> {
    let last = capability::last_cap().unwrap_or(u32::MAX);
    let mut caps: Vec<Capability> = capability::all()
        .into_iter()
        .filter(|c| u32::from(c.index()) <= last && capability::capability_is_in_bounding_set(*c).unwrap_or(false))
        .collect();
    caps.sort_by_key(|c| c.index());
    caps.iter().map(|c| c.to_string()).collect()
}

/// The container's capabilities (bounding = effective = permitted).
pub fn capabilities(s: &Security) -> Vec<String> {
    if s.privileged {
        return kernel_caps();
    }
    let has = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if has(&s.cap_add) {
        kernel_caps()
    } else if has(&s.cap_drop) {
        Vec::new()
    } else {
        super::spec::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if !has(&s.cap_add) {
        for c in &s.cap_add {
            if !caps.contains(c) {
                caps.push(c.clone());
            }
        }
    }
    if !has(&s.cap_drop) {
        caps.retain(|c| !s.cap_drop.contains(c));
    }
    caps
}

/// `HOST[:CONTAINER[:PERMISSIONS]]`; `HOST:rwm` is also accepted, as Docker.
pub fn parse_device(spec: &str) -> Result<DeviceMapping, OpsError> {
    let bad = |why: &str| invalid(format!("invalid --device {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(bad("expected HOST[:CONTAINER[:rwm]]")),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(bad("paths must be absolute"));
    }
    if !perms_ok(perms) {
        return Err(bad("permissions are some of r, w, m"));
    }
    Ok(DeviceMapping {
        path_on_host: host.to_owned(),
        path_in_container: container.to_owned(),
        cgroup_permissions: perms.to_owned(),
    })
}

fn security_opt(opt: &str, s: &mut Security) -> Result<(), OpsError> {
    let (key, value) = match opt.split_once(['=', ':']) {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    match (key, value) {
        ("no-new-privileges", None) => s.no_new_privileges = true,
        ("no-new-privileges", Some(v)) => {
            s.no_new_privileges =
                v.parse().map_err(|_| invalid(format!("invalid --security-opt {opt:?}: expected true or false")))?;
        }
        ("seccomp", Some("unconfined")) => s.seccomp = SeccompChoice::Unconfined,
        ("seccomp", Some(path)) => {
            let json = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("opening seccomp profile ({path}) failed: {e}")))?;
            super::seccomp::Profile::from_json(json.as_bytes())
                .map_err(|e| invalid(format!("seccomp profile ({path}): {e}")))?;
            s.seccomp = SeccompChoice::Profile(json);
        }
        // No LSM is enforced by strata: asking to turn one off is fine.
        ("apparmor", Some("unconfined")) | ("label", Some("disable")) => {}
        _ => {
            return Err(invalid(format!(
                "invalid --security-opt {opt:?} (strata supports seccomp=unconfined|FILE, no-new-privileges[=BOOL], apparmor=unconfined, label=disable)"
            )))
        }
    }
    Ok(())
}

/// Docker's ulimit names and the resource each is.
const ULIMITS: &[(&str, RlimitType, Resource)] = &[
    ("core", RlimitType::Core, Resource::Core),
    ("cpu", RlimitType::Cpu, Resource::Cpu),
    ("data", RlimitType::Data, Resource::Data),
    ("fsize", RlimitType::Fsize, Resource::Fsize),
    ("locks", RlimitType::Locks, Resource::Locks),
    ("memlock", RlimitType::Memlock, Resource::Memlock),
    ("msgqueue", RlimitType::Msgqueue, Resource::Msgqueue),
    ("nice", RlimitType::Nice, Resource::Nice),
    ("nofile", RlimitType::Nofile, Resource::Nofile),
    ("nproc", RlimitType::Nproc, Resource::Nproc),
    ("rss", RlimitType::Rss, Resource::Rss),
    ("rtprio", RlimitType::Rtprio, Resource::Rtprio),
    ("rttime", RlimitType::Rttime, Resource::Rttime),
    ("sigpending", RlimitType::Sigpending, Resource::Sigpending),
    ("stack", RlimitType::Stack, Resource::Stack),
];

/// `name=soft[:hard]`; `-1` or `unlimited` for no limit.
pub fn parse_ulimit(spec: &str) -> Result<Ulimit, OpsError> {
    let bad = |why: String| invalid(format!("invalid --ulimit {spec:?}: {why}"));
    let (name, values) = spec.split_once('=').ok_or_else(|| bad("expected name=soft[:hard]".into()))?;
    if !ULIMITS.iter().any(|(n, _, _)| *n == name) {
        let known: Vec<&str> = ULIMITS.iter().map(|(n, _, _)| *n).collect();
        return Err(bad(format!("unknown name {name:?} (one of {})", known.join(", "))));
    }
    let value = |v: &str| -> Result<u64, OpsError> {
        match v {
            "-1" | "unlimited" => Ok(u64::MAX),
            _ => v.parse().map_err(|_| bad(format!("{v:?} is not a number"))),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        return Err(bad(format!("soft limit {soft} is above the hard limit {hard}")));
    }
    Ok(Ulimit { name: name.to_owned(), soft, hard })
}

/// Every limit, the caller's with `overrides` applied.
fn inherited_ulimits(overrides: &[Ulimit]) -> Vec<Ulimit> {
    ULIMITS
        .iter()
        .map(|(name, _, resource)| {
            if let Some(o) = overrides.iter().find(|o| o.name == *name) {
                return o.clone();
            }
            let l = crate::sys::process::getrlimit(*resource);
            Ulimit {
                name: (*name).to_owned(),
                soft: l.current.unwrap_or(u64::MAX),
                hard: l.maximum.unwrap_or(u64::MAX),
            }
        })
        .collect()
}

/// `process.rlimits` for the recorded limits.
pub fn rlimits(s: &Security) -> Vec<spec::Rlimit> {
    s.ulimits
        .iter()
        .filter_map(|u| {
            let (_, kind, _) = ULIMITS.iter().find(|(n, _, _)| *n == u.name)?;
            Some(spec::Rlimit { kind: *kind, soft: u.soft, hard: u.hard })
        })
        .collect()
}

/// Docker's default device rules: deny everything, then the console
/// (runtime adds runc's defaults: null, zero, full, random, urandom, tty,
/// ptmx, pts, tun and `mknod` of any node).
fn default_rules() -> Vec<DeviceRule> {
    vec![
        DeviceRule { allow: false, kind: None, major: None, minor: None, access: "rwm".into() },
        DeviceRule {
            allow: true,
            kind: Some(DeviceRuleType::Char),
            major: Some(5),
            minor: Some(1),
            access: "rwm".into(),
        },
    ]
}

/// `linux.devices` and the device rules for the container.
pub fn devices(s: &Security) -> Result<(Vec<spec::Device>, Vec<DeviceRule>), OpsError> {
    let mut nodes = Vec::new();
    let mut rules = if s.privileged {
        for host in host_devices(Path::new("/dev"))? {
            let path = host.display().to_string();
            nodes.push(node(&host, &path)?.0);
        }
        vec![DeviceRule { allow: true, kind: None, major: None, minor: None, access: "rwm".into() }]
    } else {
        default_rules()
    };
    for d in &s.devices {
        let host = Path::new(&d.path_on_host);
        let (n, rule_kind) = node(host, &d.path_in_container)?;
        rules.push(DeviceRule {
            allow: true,
            kind: Some(rule_kind),
            major: n.major,
            minor: n.minor,
            access: d.cgroup_permissions.clone(),
        });
        nodes.retain(|x: &spec::Device| x.path != n.path);
        nodes.push(n);
    }
    Ok((nodes, rules))
}

/// The node `host` is, to be made at `path` in the container.
fn node(host: &Path, path: &str) -> Result<(spec::Device, DeviceRuleType), OpsError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(host)
        .map_err(|e| invalid(format!("error gathering device information while adding device {:?}: {e}", host)))?;
    let ft = md.file_type();
    let (kind, rule) = if ft.is_char_device() {
        (DeviceType::Char, DeviceRuleType::Char)
    } else if ft.is_block_device() {
        (DeviceType::Block, DeviceRuleType::Block)
    } else {
        return Err(invalid(format!("{} is not a device node", host.display())));
    };
    let rdev = md.rdev();
    let (major, minor) = (crate::sys::fs::major(rdev), crate::sys::fs::minor(rdev));
    Ok((
        spec::Device {
            path: path.to_owned(),
            kind,
            major: Some(i64::from(major)),
            minor: Some(i64::from(minor)),
            file_mode: Some(md.mode() & 0o7777),
            uid: Some(md.uid()),
            gid: Some(md.gid()),
        },
        rule,
    ))
}

/// Every device node under `/dev` but the container's own pts, shm and
/// mqueue, and the console (Docker's `--privileged` list).
fn host_devices(dir: &Path) -> Result<Vec<std::path::PathBuf>, OpsError> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| invalid(format!("read {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        let skip = ["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console"];
        if skip.iter().any(|s| path == Path::new(s)) {
            continue;
        }
        if ft.is_dir() {
            out.extend(host_devices(&path)?);
        } else if ft.is_char_device() || ft.is_block_device() {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut SecurityRequest)) -> Security {
        let mut r = SecurityRequest::default();
        f(&mut r);
        resolve(&r).unwrap()
    }

    #[test]
    fn caps_follow_docker() {
        let def = capabilities(&with(|_| {}));
        assert_eq!(def.len(), 14);
        let add = capabilities(&with(|r| r.cap_add = vec!["sys_admin".into()]));
        assert!(add.contains(&"CAP_SYS_ADMIN".to_string()) && add.len() == 15);
        let drop = capabilities(&with(|r| r.cap_drop = vec!["CAP_CHOWN".into()]));
        assert!(!drop.contains(&"CAP_CHOWN".to_string()) && drop.len() == 13);
        let none = capabilities(&with(|r| {
            r.cap_drop = vec!["all".into()];
            r.cap_add = vec!["NET_RAW".into()];
        }));
        assert_eq!(none, vec!["CAP_NET_RAW".to_string()]);
        let all = capabilities(&with(|r| {
            r.cap_add = vec!["ALL".into()];
            r.cap_drop = vec!["MKNOD".into()];
        }));
        assert!(all.len() > 30 && !all.contains(&"CAP_MKNOD".to_string()));
        let bad = resolve(&SecurityRequest { cap_add: vec!["FLY".into()], ..Default::default() }).unwrap_err();
        assert!(bad.to_string().contains("unknown capability"), "{bad}");
    }

    #[test]
    fn devices_parse_like_docker() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/fuse", "rwm"));
        let d = parse_device("/dev/fuse:r").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/fuse", "r"));
        let d = parse_device("/dev/fuse:/dev/f2:rw").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/f2", "rw"));
        assert!(parse_device("fuse").is_err());
        assert!(parse_device("/dev/fuse:/x:rwx").is_err());
        assert!(parse_device("/a:/b:r:w").is_err());
    }

    #[test]
    fn ulimits_parse_like_docker_and_inherit_the_rest() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, u64::MAX);
        for bad in ["nofile=2048:1024", "nofile", "files=1", "nofile=x"] {
            assert!(parse_ulimit(bad).is_err(), "{bad}");
        }
        let s = with(|r| r.ulimits = vec!["nofile=100:200".into()]);
        assert_eq!(s.ulimits.len(), ULIMITS.len());
        let stack = crate::sys::process::getrlimit(Resource::Stack);
        let got = s.ulimits.iter().find(|u| u.name == "stack").unwrap();
        assert_eq!(got.soft, stack.current.unwrap_or(u64::MAX));
        let rl = rlimits(&s);
        assert!(rl.contains(&spec::Rlimit { kind: RlimitType::Nofile, soft: 100, hard: 200 }));
    }

    #[test]
    fn security_opts() {
        assert!(with(|_| {}).no_new_privileges);
        assert!(!with(|r| r.security_opt = vec!["no-new-privileges=false".into()]).no_new_privileges);
        assert!(with(|r| r.security_opt = vec!["no-new-privileges:true".into()]).no_new_privileges);
        assert_eq!(with(|r| r.security_opt = vec!["seccomp=unconfined".into()]).seccomp, SeccompChoice::Unconfined);
        let e = resolve(&SecurityRequest { security_opt: vec!["seccomp=/no/such.json".into()], ..Default::default() })
            .unwrap_err();
        assert!(e.to_string().contains("/no/such.json"), "{e}");
        let e =
            resolve(&SecurityRequest { security_opt: vec!["apparmor=docker-default".into()], ..Default::default() })
                .unwrap_err();
        assert!(e.to_string().contains("apparmor=docker-default"), "{e}");
    }

    #[test]
    fn privileged_gets_every_device_and_all_rules() {
        let s = with(|r| r.privileged = true);
        let (nodes, rules) = devices(&s).unwrap();
        assert!(nodes.iter().any(|n| n.path == "/dev/null"), "{nodes:?}");
        assert!(!nodes.iter().any(|n| n.path.starts_with("/dev/pts/")));
        assert_eq!(rules, vec![DeviceRule { allow: true, kind: None, major: None, minor: None, access: "rwm".into() }]);
        let (nodes, rules) = devices(&with(|r| r.devices = vec!["/dev/null:/dev/n2:r".into()])).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!((nodes[0].major, nodes[0].minor), (Some(1), Some(3)));
        assert!(!rules[0].allow);
        assert_eq!(rules.last().unwrap().access, "r");
    }
}
