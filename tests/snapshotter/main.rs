//! `strata snapshotter serve`, the containerd proxy snapshotter:
//! containerd's own conformance suite through containerd's proxy client
//! (`suite`), the containerd semantics the suite does not check, on the
//! store the service runs on (`store`), images pulled and run through
//! containerd's `ctr` (`ctr`), the service killed under containerd
//! (`faults`), the kubelet's CRI sequence (`cri`), and the systemd unit in
//! `tools/systemd`, verified and its command run (`unit`).
//!
//! Tier: root (loop filesystems, mounts). Without root or a tool a test
//! says why it skipped; `STRATA_TEST_STRICT` makes that a failure.

mod containerd;
mod cri;
mod cri_client;
mod ctr;
#[path = "../runtimes/daemon.rs"]
#[allow(dead_code)]
mod daemon;
mod faults;
#[path = "../registry/registry.rs"]
#[allow(dead_code)]
mod registry;
mod store;
mod suite;
mod unit;

use std::path::{Path, PathBuf};
use strata::scratch::ScratchFs;

/// Calls `attempt(n)` after the proxy service stopped, until a failure
/// names `socket` (at most five attempts, each of which must fail):
/// containerd keeps its gRPC connection to the proxy, so the first call
/// after the service died may fail on that connection ("connection closed:
/// unavailable"); the next ones dial the socket again and name it.
/// Returns every failure, the naming one last.
pub fn failures_until_one_names(socket: &str, mut attempt: impl FnMut(usize) -> String) -> Vec<String> {
    let mut errors = Vec::new();
    for n in 0..5 {
        let err = attempt(n);
        let named = err.contains(socket);
        errors.push(err);
        if named {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    errors
}

/// Whether the test can run here; prints why not (or panics in strict
/// mode, where a skip would hide a test that never ran).
pub fn require(ok: bool, what: &str, why: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("STRATA_TEST_STRICT").is_some() {
        panic!("{what}: {why}, and STRATA_TEST_STRICT forbids skipping");
    }
    eprintln!("skipped: {what}: {why}");
    false
}

/// A scratch filesystem that unmounts whatever a failed test left mounted
/// below it (deepest first) before it is unmounted and its loop device
/// released.
pub struct Scratch {
    pub fs: Option<ScratchFs>,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        self.fs.as_ref().expect("present until drop").path()
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes space, tab, newline and backslash as \ooo.
        .map(|p| p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\"))
        .filter(|p| p.starts_with(&prefix))
        .map(PathBuf::from)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(fs) = self.fs.take() {
            for m in mounts_below(fs.path()) {
                if strata::mount::unmount_all(&m).is_err() {
                    let _ = strata::sys::mount::unmount_path(&m, true);
                }
            }
            drop(fs);
        }
    }
}
