//! Container-tier integration tests: the seed's second half on real
//! namespaces, mounts and cgroups, through the `strata` binary with a data
//! root on a scratch filesystem. Every test removes its containers (and so
//! their supervisors) on the way out, even when an assertion fails.

mod btrfs;
#[path = "../images/common.rs"]
#[allow(dead_code)]
mod common;
mod exec;
mod fstools;
mod inside;
mod lifecycle;
mod liveness;
mod seed;
mod volatile;

use common::{busybox_rootfs, require_root, Env};
use strata::scratch::FsKind;

/// A data root with `busybox:latest` imported, that force-removes every
/// container when dropped.
pub struct Host {
    pub env: Env,
}

impl Host {
    pub fn new(kind: FsKind, driver: &'static str) -> Option<Host> {
        require_root("container tests")?;
        let env = Env::new(kind, driver);
        let rootfs = env.scratch("busybox.tar");
        busybox_rootfs(&rootfs);
        env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
        Some(Host { env })
    }

    /// `strata run --rm busybox sh -c <script>`: (exit code, stdout, stderr).
    pub fn sh(&self, extra: &[&str], script: &str) -> (i32, String, String) {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        let out = self.env.run(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
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
