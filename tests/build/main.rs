//! Build-tier integration tests: `strata build` on real snapshots, mounts
//! and intermediate containers, with a data root on a scratch filesystem,
//! compared with the seed's output and with `buildah bud`.

mod buildah;
#[path = "../images/common.rs"]
#[allow(dead_code)]
mod common;
mod errors;
mod seed;
mod stages;

use common::{busybox_rootfs, require_root, Env};
use std::path::{Path, PathBuf};
use strata::scratch::FsKind;

/// A data root with `busybox:latest` imported and a build context
/// directory; removes every container when dropped.
pub struct Host {
    pub env: Env,
    pub ctx: PathBuf,
}

impl Host {
    pub fn new(kind: FsKind, driver: &'static str) -> Option<Host> {
        require_root("build tests")?;
        let env = Env::new(kind, driver);
        let rootfs = env.scratch("busybox.tar");
        busybox_rootfs(&rootfs);
        env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
        let ctx = env.scratch("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        Some(Host { env, ctx })
    }

    /// Writes a file in the context (creating parents).
    pub fn put(&self, rel: &str, data: &str, mode: u32) -> PathBuf {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        p
    }

    /// `strata build` with `args` on the context; (success, stdout, stderr).
    pub fn build(&self, args: &[&str]) -> (bool, String, String) {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        let ctx = self.ctx.to_str().unwrap().to_owned();
        all.push(&ctx);
        let out = self.env.run(&all);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A build that must succeed; returns stdout.
    pub fn built(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.build(args);
        assert!(ok, "strata build {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }

    pub fn dockerfile(&self, name: &str, text: &str) -> String {
        self.put(name, text, 0o644).to_str().unwrap().to_owned()
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

/// The image ID `Successfully built <id>` names.
pub fn built_id(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("Successfully built ")).expect("Successfully built line").trim().to_owned()
}

/// Every file of a tree with type, mode, owner and content digest, for
/// comparing trees built by different tools.
pub fn tree_listing(root: &Path, skip: &[&str]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if skip.iter().any(|s| rel == *s || rel.starts_with(&format!("{s}/"))) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".to_owned()
            } else if m.is_file() {
                strata::digest::Digest::of(&std::fs::read(&p).unwrap()).short().to_owned()
            } else {
                format!("special {:o}", m.mode() & 0o170000)
            };
            let mode = if m.file_type().is_symlink() { 0 } else { m.mode() & 0o7777 };
            out.push(format!("{rel} {mode:o} {}:{} {what}", m.uid(), m.gid()));
        }
    }
    out.sort();
    out
}
