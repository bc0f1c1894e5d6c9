//! OCI bundles for the probe: a busybox-static root filesystem (as
//! `tools/mkrootfs` lays it out) and a `config.json` written from the
//! spec types, starting from what `runc spec` writes.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use strata::runtime::spec::Spec;
use tempfile::TempDir;

/// The probe script every bundle carries at `/probe.sh`.
pub const PROBE_PATH: &str = "/probe.sh";

/// A bundle directory (`config.json`, `rootfs/`), removed on drop.
pub struct Bundle {
    /// Whatever the bundle's preparation made on the host (mounts):
    /// dropped before the directory is removed.
    pub guards: Vec<Box<dyn std::any::Any>>,
    dir: TempDir,
}

impl Bundle {
    /// A bundle with a fresh busybox root filesystem holding `probe` at
    /// [`PROBE_PATH`]; `prepare` may add files (and guards) to it. No
    /// `config.json` yet: see [`Bundle::write_spec`].
    pub fn new(probe: &str, prepare: &dyn Fn(&mut Bundle)) -> Bundle {
        let dir = tempfile::Builder::new().prefix("strata-oci-bundle.").tempdir().expect("bundle tempdir");
        // A user-namespaced container's root is a mapped uid that must be
        // able to walk to its root filesystem.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod bundle");
        let mut bundle = Bundle { guards: Vec::new(), dir };
        busybox_rootfs(&bundle.rootfs());
        std::fs::write(bundle.rootfs().join(PROBE_PATH.trim_start_matches('/')), probe).expect("write probe");
        prepare(&mut bundle);
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    /// Writes `config.json` from `spec`.
    pub fn write_spec(&self, spec: &Spec) {
        self.write_config(&spec.to_json());
    }

    /// Replaces `config.json` with `text` (for bundles the spec types
    /// cannot express: invalid JSON, unknown enum values).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.path().join("config.json"), text).expect("write config.json");
    }
}

/// `spec` as JSON with `edit` applied to the document (for values the
/// typed model refuses, such as an unknown namespace type).
pub fn edit_json(spec: &Spec, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&spec.to_json()).expect("spec JSON");
    edit(&mut value);
    serde_json::to_string_pretty(&value).expect("JSON")
}

/// `busybox --list`, once per test binary.
fn applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new(busybox()).arg("--list").output().expect("busybox --list");
        String::from_utf8_lossy(&out.stdout).lines().filter(|a| *a != "busybox").map(String::from).collect()
    })
}

fn busybox() -> &'static str {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static installed (tools/deps)")
}

/// `/bin/busybox` (a copy: a container with a writable root must not
/// reach the host's binary) with its applet links, `/etc/passwd` and
/// `/etc/group`, and the usual empty directories.
fn busybox_rootfs(root: &Path) {
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt", "usr/bin"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir rootfs");
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).expect("chmod /tmp");
    std::fs::copy(busybox(), root.join("bin/busybox")).expect("copy busybox");
    for applet in applets() {
        symlink("busybox", root.join("bin").join(applet)).expect("applet link");
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nprobe:x:1000:1000:probe:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("write passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\ntty:x:5:\nprobe:x:1000:\nextra:x:1001:\nnogroup:x:65534:\n")
        .expect("write group");
}
