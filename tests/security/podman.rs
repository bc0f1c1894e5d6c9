//! The floor: the same probe under podman 4.3 + crun with their own
//! defaults (podman's seccomp profile, capabilities and device rules), on
//! podman's own storage, run root and configuration under a sandbox, in a
//! mount namespace held by a `sleep` (as tests/runtimes does), without a
//! network. Strata must deny everything podman denies, and also what
//! Docker's current profile denies and podman's allows.

use crate::daemon::{require, run, toml_str, Daemon, Sandbox};
use crate::probe::{side_by_side, Report};
use crate::{root_disk, Host, IMAGE};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Checks podman denies and strata may allow, with why.
const ALLOWANCES: &[(&str, &str)] = &[(
    "mknod-disk",
    "Docker's defaults keep CAP_MKNOD (podman drops it); the device cgroup denies opening the node (open-disk)",
)];

/// Checks Docker's current default profile denies whatever podman does:
/// `(check, outcome)`.
const DOCKER_DENIES: &[(&str, &str)] = &[
    ("keyctl-join", "denied(EPERM)"),
    ("add-key", "denied(EPERM)"),
    ("unshare-user", "denied(EPERM)"),
    ("unshare-mnt", "denied(EPERM)"),
    ("clone3", "denied(ENOSYS)"),
    ("io-uring-setup", "denied(EPERM)"),
];

struct Podman {
    holder: Daemon,
    sandbox: Sandbox,
    args: Vec<PathBuf>,
    env: Vec<(&'static str, PathBuf)>,
    crun: PathBuf,
}

impl Podman {
    fn start(test: &str) -> Option<Podman> {
        if !require(test, &["podman", "crun", "conmon", "unshare", "nsenter"]) {
            return None;
        }
        let crun = crate::daemon::which("crun").unwrap();
        let sandbox = Sandbox::new(test);
        let (root, runroot, tmp) = (sandbox.mkdir("root"), sandbox.mkdir("runroot"), sandbox.mkdir("tmp"));
        let conf = sandbox.dir().join("containers.conf");
        let net = sandbox.mkdir("net");
        // podman 4.3 raises RLIMIT_NOFILE and RLIMIT_NPROC to 1048576 by
        // default, which this host's root may not (no CAP_SYS_RESOURCE):
        // keep both at what this process has, as tests/runtimes does. The
        // only default changed, and not one the probe compares.
        let (nofile, nproc) = (hard_limit("Max open files"), hard_limit("Max processes").min(32768));
        std::fs::write(
            &conf,
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
                 [network]\nnetwork_config_dir = {}\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nlock_type = \"file\"\n",
                toml_str(&net)
            ),
        )
        .unwrap();
        let storage = sandbox.dir().join("storage.conf");
        std::fs::write(
            &storage,
            format!("[storage]\ndriver = \"vfs\"\nrunroot = {}\ngraphroot = {}\n", toml_str(&runroot), toml_str(&root)),
        )
        .unwrap();
        let registries = sandbox.dir().join("registries.conf");
        std::fs::write(&registries, "unqualified-search-registries = []\n").unwrap();
        let hide = ["/var/lib/containers", "/var/lib"].into_iter().map(Path::new).find(|p| p.is_dir()).unwrap();
        let holder = Daemon::spawn(
            "podman-namespace",
            Path::new("/bin/sleep"),
            &[OsStr::new("infinity")],
            &[hide, Path::new("/var/tmp")],
            sandbox.dir().join("holder.log"),
        );
        Some(Podman {
            holder,
            args: vec![root, runroot, tmp.clone()],
            env: vec![
                ("CONTAINERS_CONF", conf),
                ("CONTAINERS_STORAGE_CONF", storage),
                ("CONTAINERS_REGISTRIES_CONF", registries),
                ("TMPDIR", tmp),
            ],
            sandbox,
            crun,
        })
    }

    fn podman(&self, args: &[&str]) -> Command {
        let mut c = self.holder.enter("podman");
        c.envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--root")
            .arg(&self.args[0])
            .arg("--runroot")
            .arg(&self.args[1])
            .arg("--tmpdir")
            .arg(&self.args[2])
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(&self.crun)
            .args(args);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = run(&mut self.podman(&["rm", "--all", "--force", "--time", "0"]));
        if out.code != Some(0) {
            eprintln!("podman rm --all: {}", out.both());
        }
    }
}

fn hard_limit(name: &str) -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /proc/self/limits"));
    line[name.len()..].split_whitespace().nth(1).and_then(|h| h.parse().ok()).unwrap_or(1 << 20)
}

/// strata's default container denies at least what podman + crun's
/// defaults deny, and the Docker facts podman's profile does not enforce.
#[test]
fn strata_denies_what_podman_and_docker_deny() {
    // crun 1.8 refuses a hybrid layout whose cgroup2 mount has controllers
    // (this host's has hugetlb): the holder's namespace drops that mount,
    // as tests/runtimes does under this variable (no other test of this
    // binary starts a holder; strata does not read it).
    std::env::set_var("STRATA_TEST_UNMOUNT_CGROUP2", "1");
    let Some(p) = Podman::start("security-podman") else { return };
    let Some(host) = Host::new("security-podman") else { return };
    // In the sandbox: the holder's namespace hides /var/tmp, where the
    // scratch filesystem lives.
    let archive = p.sandbox.dir().join("probe.tar");
    host.env.ok(&["save", "-o", archive.to_str().unwrap(), IMAGE]);
    let loaded = run(p.podman(&["load", "-i"]).arg(&archive));
    let image = loaded
        .ok()
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: ").or_else(|| l.strip_prefix("Loaded image(s): ")))
        .unwrap_or_else(|| panic!("podman load named no image:\n{}", loaded.both()))
        .trim()
        .to_owned();
    let disk = format!("disk={}", root_disk());
    let out = run(p
        .podman(&["run", "--rm", "--network", "none", "--cgroup-parent"])
        .arg(format!("/{}", p.sandbox.name))
        .args([image.as_str(), "/probe", disk.as_str()]));
    let theirs = Report::parse(out.ok());
    let ours = host.probe(&[], &[&disk]);
    let table = side_by_side(("strata", &ours), ("podman+crun", &theirs));

    let mut missing = Vec::new();
    for (check, outcome) in &theirs.checks {
        let allowed_here = ours.checks.get(check).is_some_and(|o| o == "allowed");
        if outcome.starts_with("denied") && allowed_here && !ALLOWANCES.iter().any(|(c, _)| c == check) {
            missing.push(format!("{check}: podman {outcome}, strata allowed"));
        }
    }
    for (check, want) in DOCKER_DENIES {
        if ours.get(check) != *want {
            missing.push(format!("{check}: Docker's profile gives {want}, strata {}", ours.get(check)));
        }
    }
    assert!(missing.is_empty(), "strata is looser than its floor:\n{}\n\n{table}", missing.join("\n"));
    // The comparison means something only if podman's side really ran
    // confined: its seccomp filter is on and it denied something.
    assert_eq!(theirs.get("Seccomp"), "2", "podman ran without seccomp?\n{table}");
    assert!(theirs.denied("bpf-prog-load") && theirs.denied("mount-tmpfs"), "podman's report:\n{table}");
    eprintln!("{table}");
}
