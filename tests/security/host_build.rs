//! Issue 15, build sources and volumes: paths from an image or a build
//! context are resolved inside their root, never on the host.
//!
//! Each test builds its hostile image or context, points it at bait — a
//! directory the test made on the scratch filesystem, outside the data
//! root — and checks that the bait is unchanged, that nothing of it
//! reached the image or the volume, and that the image's (or context's)
//! own content did. The `/etc` variant only reads the host's `/etc/apt`
//! listing.

use crate::common::{busybox_rootfs, require_root, Env};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata::scratch::FsKind;

const BAIT: &str = "host secret\n";

/// A data root with busybox, a build context and bait outside the root;
/// removes every container (and its volumes) when dropped.
struct Fixture {
    env: Env,
    ctx: PathBuf,
    /// `<scratch>/bait`, holding `secret` and `sub/secret`.
    bait: PathBuf,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        require_root(test)?;
        let env = Env::new(FsKind::Ext4, "overlay");
        let rootfs = env.scratch("busybox.tar");
        busybox_rootfs(&rootfs);
        env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
        let ctx = env.scratch("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        let bait = env.scratch("bait");
        std::fs::create_dir_all(bait.join("sub")).unwrap();
        std::fs::write(bait.join("secret"), BAIT).unwrap();
        std::fs::write(bait.join("sub/secret"), BAIT).unwrap();
        Some(Fixture { env, ctx, bait })
    }

    fn bait_str(&self) -> &str {
        self.bait.to_str().unwrap()
    }

    fn dockerfile(&self, text: &str) {
        std::fs::write(self.ctx.join("Dockerfile"), text).unwrap();
    }

    /// `strata build -t TAG CTX`, killed after `limit`: (success, stderr).
    fn build(&self, tag: &str, limit: Duration) -> (bool, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&self.env.root)
            .args(["--storage-driver", self.env.driver, "build", "-q", "-t", tag])
            .arg(&self.ctx)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strata build");
        let guard = Kill(child.id());
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < limit, "strata build still running after {limit:?}: it hangs");
            std::thread::sleep(Duration::from_millis(50));
        };
        std::mem::forget(guard);
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        (status.success(), err)
    }

    fn built(&self, tag: &str) {
        let (ok, err) = self.build(tag, Duration::from_secs(120));
        assert!(ok, "build {tag} failed:\n{err}");
    }

    /// `cat PATH` in a container of `image`: its content, or `None`.
    fn cat(&self, image: &str, path: &str) -> Option<String> {
        let out = self.env.run(&["run", "--rm", image, "cat", path]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every volume's `_data` directory.
    fn volumes(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.env.root.join("volumes")) else { return Vec::new() };
        rd.flatten().map(|e| e.path().join("_data")).filter(|p| p.is_dir()).collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let ids = self.env.run(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.env.run(&["rm", "-f", "-v", id]);
        }
    }
}

/// Kills a process (a hanging build) when dropped, so the test fails
/// instead of hanging.
struct Kill(u32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-9", &self.0.to_string()]).status();
    }
}

/// Every entry below `dir` with its type and content (or link target),
/// for before/after checks.
fn listing(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", md.mode())
            } else if md.file_type().is_symlink() {
                format!("symlink {}", std::fs::read_link(&p).unwrap().display())
            } else {
                let data = std::fs::read(&p).unwrap();
                format!("file {:o} {}", md.mode(), strata::digest::Digest::of(&data))
            };
            out.insert(rel, what);
        }
    }
    out
}

#[test]
fn volume_through_an_absolute_symlink_copies_the_images_directory() {
    let Some(f) = Fixture::new("volume through a symlink") else { return };
    let before = listing(&f.bait);
    let b = f.bait_str();
    f.dockerfile(&format!(
        "FROM busybox:latest\nRUN mkdir -p {b}/sub && echo image > {b}/sub/own && ln -s {b} /v\nVOLUME /v/sub\n"
    ));
    f.built("hostile/volume:1");
    f.env.ok(&["create", "--name", "vol", "hostile/volume:1", "true"]);
    let vols = f.volumes();
    assert_eq!(vols.len(), 1, "one anonymous volume: {vols:?}");
    let data = &vols[0];
    assert!(!data.join("secret").exists(), "the host's bait was copied into the volume");
    assert_eq!(std::fs::read_to_string(data.join("own")).unwrap(), "image\n", "the image's own /v/sub content");
    assert_eq!(listing(&f.bait), before, "the bait changed");
}

#[test]
fn volume_through_a_symlink_to_etc_gets_no_host_etc() {
    let Some(f) = Fixture::new("volume through /v -> /etc") else { return };
    let host: Vec<String> = match std::fs::read_dir("/etc/apt") {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    if host.is_empty() {
        assert!(std::env::var_os("STRATA_TEST_STRICT").is_none(), "no /etc/apt on this host to test against");
        eprintln!("skipped: this host has no /etc/apt");
        return;
    }
    f.dockerfile(
        "FROM busybox:latest\nRUN mkdir -p /etc/apt && echo image > /etc/apt/own && ln -s /etc /v\nVOLUME /v/apt\n",
    );
    f.built("hostile/etc:1");
    f.env.ok(&["create", "--name", "etc", "hostile/etc:1", "true"]);
    let vols = f.volumes();
    assert_eq!(vols.len(), 1, "one anonymous volume: {vols:?}");
    let got: Vec<String> =
        std::fs::read_dir(&vols[0]).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(got, vec!["own".to_owned()], "the volume holds the image's /etc/apt, not the host's {host:?}");
}

#[test]
fn volume_directories_are_private_and_data_keeps_the_images_mode() {
    let Some(f) = Fixture::new("volume permissions") else { return };
    f.dockerfile("FROM busybox:latest\nRUN mkdir /data && echo x > /data/f && chown 1000:1000 /data && chmod 750 /data\nVOLUME /data\n");
    f.built("perm/volume:1");
    f.env.ok(&["create", "--name", "perm", "perm/volume:1", "true"]);
    f.env.ok(&["volume", "create", "named"]);
    let vols = f.volumes();
    assert_eq!(vols.len(), 2, "{vols:?}");
    for data in vols {
        let parent = std::fs::metadata(data.parent().unwrap()).unwrap();
        assert_eq!(parent.mode() & 0o7777, 0o700, "{}: volume directory mode", data.parent().unwrap().display());
        let md = std::fs::metadata(&data).unwrap();
        if data.join("f").exists() {
            assert_eq!(
                (md.mode() & 0o7777, md.uid(), md.gid()),
                (0o750, 1000, 1000),
                "populated _data is the image's /data"
            );
        } else {
            assert_eq!(md.permissions().mode() & 0o7777, 0o755, "an empty _data, as Docker's local driver makes it");
        }
    }
}

#[test]
fn copy_through_a_context_symlink_to_root_stays_in_the_context() {
    let Some(f) = Fixture::new("COPY through d -> /") else { return };
    let before = listing(&f.bait);
    std::os::unix::fs::symlink("/", f.ctx.join("d")).unwrap();
    // The context's own file at the bait's path: what `d/<bait>` means.
    let own = f.ctx.join(f.bait.strip_prefix("/").unwrap()).join("secret");
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::write(&own, "context own\n").unwrap();
    f.dockerfile(&format!("FROM busybox:latest\nCOPY d{}/secret /leak\n", f.bait_str()));
    f.built("hostile/root:1");
    assert_eq!(f.cat("hostile/root:1", "/leak").as_deref(), Some("context own\n"), "COPY read outside the context");
    // Without the context's copy, the path does not exist in the context.
    std::fs::remove_file(&own).unwrap();
    let (ok, err) = f.build("hostile/root:2", Duration::from_secs(120));
    assert!(!ok && err.contains("file not found in build context"), "expected not found, got ok={ok}:\n{err}");
    assert_eq!(listing(&f.bait), before, "the bait changed");
}

#[test]
fn copy_through_a_dotdot_symlink_stays_in_the_context() {
    let Some(f) = Fixture::new("COPY through d -> ../..") else { return };
    let before = listing(&f.bait);
    // ctx is <scratch>/work/ctx, bait <scratch>/work/bait: `d/work/bait`
    // is the bait on the host, and the context's own `work/bait` inside.
    std::os::unix::fs::symlink("../..", f.ctx.join("d")).unwrap();
    assert_eq!(f.ctx.join("d/work/bait/secret").canonicalize().unwrap(), f.bait.join("secret").canonicalize().unwrap());
    f.dockerfile("FROM busybox:latest\nCOPY d/work/bait/secret /leak\n");
    let (ok, err) = f.build("hostile/dotdot:1", Duration::from_secs(120));
    assert!(!ok && err.contains("file not found in build context"), "expected not found, got ok={ok}:\n{err}");
    std::fs::create_dir_all(f.ctx.join("work/bait")).unwrap();
    std::fs::write(f.ctx.join("work/bait/secret"), "context own\n").unwrap();
    f.built("hostile/dotdot:2");
    assert_eq!(f.cat("hostile/dotdot:2", "/leak").as_deref(), Some("context own\n"), "COPY read outside the context");
    assert_eq!(listing(&f.bait), before, "the bait changed");
}

#[test]
fn copy_through_an_absolute_symlink_stays_in_the_context() {
    let Some(f) = Fixture::new("COPY through d -> /abs/bait") else { return };
    let before = listing(&f.bait);
    std::os::unix::fs::symlink(&f.bait, f.ctx.join("d")).unwrap();
    std::fs::write(f.ctx.join("keep"), "context file\n").unwrap();
    // A whole directory through the link, and a file below it.
    f.dockerfile("FROM busybox:latest\nCOPY keep /keep\nCOPY d/sub/ /leakdir/\n");
    let (ok, err) = f.build("hostile/abs:1", Duration::from_secs(120));
    assert!(!ok && err.contains("file not found in build context"), "expected not found, got ok={ok}:\n{err}");
    f.dockerfile("FROM busybox:latest\nCOPY keep /keep\nCOPY d/secret /leak\n");
    let (ok, err) = f.build("hostile/abs:2", Duration::from_secs(120));
    assert!(!ok && err.contains("file not found in build context"), "expected not found, got ok={ok}:\n{err}");
    // The same link copied as part of the context is a symlink, not data.
    f.dockerfile("FROM busybox:latest\nCOPY . /ctx/\n");
    f.built("hostile/abs:3");
    assert_eq!(f.cat("hostile/abs:3", "/ctx/keep").as_deref(), Some("context file\n"));
    assert_eq!(f.cat("hostile/abs:3", "/ctx/d/secret"), None, "the symlink was followed on the host");
    assert_eq!(listing(&f.bait), before, "the bait changed");
}

#[test]
fn copy_from_an_image_symlink_stays_in_the_image() {
    let Some(f) = Fixture::new("COPY --from through an image symlink") else { return };
    let before = listing(&f.bait);
    let b = f.bait_str();
    f.dockerfile(&format!(
        "FROM busybox:latest AS evil\nRUN mkdir -p {b} && echo image own > {b}/secret && ln -s {b} /link\n\
         FROM busybox:latest\nCOPY --from=evil /link/secret /leak\nCOPY --from=evil /link/ /dir/\n"
    ));
    f.built("hostile/from:1");
    assert_eq!(f.cat("hostile/from:1", "/leak").as_deref(), Some("image own\n"), "COPY --from read the host");
    assert_eq!(f.cat("hostile/from:1", "/dir/secret").as_deref(), Some("image own\n"), "COPY --from read the host");
    assert_eq!(f.cat("hostile/from:1", "/dir/sub/secret"), None, "COPY --from walked the host's bait directory");
    // An image whose link points at a path it lacks: not found, not the host.
    f.dockerfile(&format!(
        "FROM busybox:latest AS evil\nRUN ln -s {b} /link\nFROM busybox:latest\nCOPY --from=evil /link/secret /leak\n"
    ));
    let (ok, err) = f.build("hostile/from:2", Duration::from_secs(120));
    assert!(!ok && err.contains("file not found"), "expected not found, got ok={ok}:\n{err}");
    assert_eq!(listing(&f.bait), before, "the bait changed");
}

#[test]
fn a_fifo_in_the_context_does_not_hang_the_build() {
    let Some(f) = Fixture::new("FIFO in the build context") else { return };
    let fifo = f.ctx.join("fifo");
    strata::sys::fs::mkfifo(&fifo, 0o644).unwrap();
    std::fs::write(f.ctx.join("file"), "context file\n").unwrap();
    f.dockerfile("FROM busybox:latest\nADD fifo /x\nCOPY . /ctx/\n");
    let (ok, err) = f.build("fifo/add:1", Duration::from_secs(60));
    assert!(ok, "build with a FIFO failed:\n{err}");
    assert_eq!(f.cat("fifo/add:1", "/ctx/file").as_deref(), Some("context file\n"));
    assert_eq!(f.cat("fifo/add:1", "/x"), None, "a FIFO is not copied as data");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the context's FIFO is left");
    // A FIFO as .dockerignore is refused at once, not read.
    strata::sys::fs::mkfifo(&f.ctx.join(".dockerignore"), 0o644).unwrap();
    let (ok, err) = f.build("fifo/ignore:1", Duration::from_secs(60));
    assert!(!ok && err.contains(".dockerignore is not a regular file"), "ok={ok}:\n{err}");
}
