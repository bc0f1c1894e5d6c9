//! Security-tier tests (issue 14): a static probe ([`probe`], source in
//! `probe/probe.rs`) tries each escape for real inside a container and
//! reports what the kernel answered. Default containers must deny what
//! Docker's current defaults deny ([`defaults`]); each loosening flag must
//! loosen exactly what it names ([`flags`]); and podman + crun, with their
//! own defaults, are a floor strata must meet ([`podman`]).
//!
//! Tier: root (namespaces, mounts, cgroups). A test that cannot run here
//! says why and returns; under `STRATA_TEST_STRICT` it fails instead.
//! Each test has its own data root on a scratch filesystem, and removes
//! its containers when it ends, even when an assertion fails.

#[path = "../images/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../runtimes/daemon.rs"]
#[allow(dead_code)]
mod daemon;
mod defaults;
mod flags;
mod host_build;
mod host_cp;
mod host_crash;
mod host_input;
mod host_perms;
mod podman;
mod probe;

use common::{busybox_rootfs, require_root, Env};
use probe::Report;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;
use strata::scratch::FsKind;

/// The tag of the busybox image with the probe at `/probe`.
pub const IMAGE: &str = "strata-test/probe:latest";

/// A data root holding [`IMAGE`]; force-removes every container when
/// dropped.
pub struct Host {
    pub env: Env,
}

impl Host {
    pub fn new(test: &str) -> Option<Host> {
        require_root(test)?;
        let env = Env::new(FsKind::Ext4, "overlay");
        let rootfs = env.scratch("busybox.tar");
        busybox_rootfs(&rootfs);
        env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
        let ctx = env.scratch("ctx/Dockerfile");
        std::fs::write(&ctx, "FROM busybox:latest\nCOPY probe /probe\n").unwrap();
        let ctx = ctx.parent().unwrap();
        let bin = ctx.join("probe");
        std::fs::write(&bin, probe::binary()).unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        env.ok(&["build", "-t", IMAGE, ctx.to_str().unwrap()]);
        Some(Host { env })
    }

    /// `strata run --rm FLAGS IMAGE /probe ARGS`: the report, or why strata
    /// refused to run it (an unknown flag, say).
    pub fn try_probe(&self, flags: &[&str], args: &[&str]) -> Result<Report, String> {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(flags);
        all.push(IMAGE);
        all.push("/probe");
        all.extend_from_slice(args);
        let out = self.env.run(&all);
        parse(&format!("strata {}", all.join(" ")), &out)
    }

    /// [`Host::try_probe`] that must succeed.
    #[track_caller]
    pub fn probe(&self, flags: &[&str], args: &[&str]) -> Report {
        self.try_probe(flags, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The probe in a detached container that stays up after its report,
    /// so the host can read the container's `devices.list`; the report
    /// (from `strata logs`) and that list, one rule a line.
    pub fn held(&self, flags: &[&str], args: &[&str]) -> Result<(Report, String), String> {
        self.held_with(flags, args, |_| ())
    }

    /// [`Host::held`], calling `look` with the probe's host PID while the
    /// container still runs.
    pub fn held_with(&self, flags: &[&str], args: &[&str], look: impl FnOnce(u32)) -> Result<(Report, String), String> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let token = format!("hold={}-{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let name = token.replace('=', "-");
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(flags);
        all.extend_from_slice(&[IMAGE, "/probe", &token]);
        all.extend_from_slice(args);
        let out = self.env.run(&all);
        if !out.status.success() {
            return Err(format!("strata {} failed:\n{}", all.join(" "), String::from_utf8_lossy(&out.stderr)));
        }
        let report = daemon::poll(Duration::from_secs(20), || {
            let logs = self.env.run(&["logs", &name]);
            let text = String::from_utf8_lossy(&logs.stdout).into_owned();
            text.contains("end: ok").then_some(text)
        })
        .ok_or_else(|| format!("{name}: no report within 20 s"))?;
        let pid = pid_with_arg(&token).ok_or_else(|| format!("{name}: no process with {token} on the host"))?;
        let cgroup = daemon::cgroup_dir(pid, "devices");
        let list = std::fs::read_to_string(cgroup.join("devices.list"))
            .map_err(|e| format!("{}: {e}", cgroup.join("devices.list").display()))?;
        look(pid);
        let _ = self.env.run(&["rm", "-f", &name]);
        Ok((Report::parse(&report), list))
    }

    /// `strata run --rm IMAGE /probe ARGS` with descriptor 7 open on
    /// `/etc/hostname` in the caller, as `exec 7</etc/hostname` leaves it.
    pub fn probe_with_fd7(&self, args: &[&str]) -> Report {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec 7</etc/hostname; exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&self.env.root)
            .args(["--storage-driver", self.env.driver, "run", "--rm", IMAGE, "/probe"])
            .args(args);
        let out = cmd.output().expect("run sh");
        parse("strata run (with fd 7 open)", &out).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let ids = self.env.run(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.env.run(&["rm", "-f", "-v", id]);
        }
    }
}

fn parse(what: &str, out: &Output) -> Result<Report, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("end: ok") {
        return Err(format!(
            "{what} failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Report::parse(&stdout))
}

/// The host PID of the probe (`argv[0]` is `/probe`) run with `arg`: not
/// the supervisor or an init, whose command lines may hold it too.
fn pid_with_arg(arg: &str) -> Option<u32> {
    daemon::poll(Duration::from_secs(5), || {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let mut argv = cmdline.split(|b| *b == 0);
            (argv.next() == Some(b"/probe") && argv.any(|a| a == arg.as_bytes())).then_some(pid)
        })
    })
}

/// `major:minor` of the block device holding the host's root filesystem.
pub fn root_disk() -> String {
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/").unwrap());
    format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// A character device of the host the container does not get by default.
pub fn spare_char_device() -> Option<PathBuf> {
    ["/dev/fuse", "/dev/net/tun"].into_iter().map(PathBuf::from).find(|p| p.exists())
}
