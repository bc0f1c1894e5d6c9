//! End to end through containerd's `ctr`: images the test builds with
//! strata and pushes to its own loopback registry are pulled with
//! `ctr images pull --snapshotter strata` and run with
//! `ctr run --snapshotter strata`; containerd's calls are counted in the
//! service's own log; `ctr snapshots usage` is held against strata's own
//! sizes and against what the filesystem says, on overlay over XFS and on
//! btrfs.
//!
//! Each test builds a [`World`]: a scratch filesystem holding the service's
//! root, the registry's storage and the data root the images are built in;
//! a sandbox directory holding the sockets (short paths), containerd's own
//! directories, runc's state and the FIFOs.

use crate::containerd::{Containerd, Options, Service, PLUGIN};
use crate::daemon::{poll, require, run, Out, Sandbox};
use crate::registry::{self, Registry};
use crate::Scratch;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use strata::digest::{ChainId, DiffId, Digest};
use strata::scratch::{FsKind, ScratchFs};

/// One test's containerd, service, registry and filesystems. Fields drop
/// in order: containerd (its shims, containers and mounts die with its
/// mount namespace), the service, the registry, the sandbox (what is left
/// in its cgroups, its directory), the scratch filesystem.
pub struct World {
    pub cd: Containerd,
    pub service: Service,
    pub registry: Registry,
    pub sandbox: Sandbox,
    pub scratch: Scratch,
    /// The strata data root the test's images are built and pushed from.
    images: PathBuf,
    runc_root: PathBuf,
    fifos: PathBuf,
}

impl World {
    /// Everything up, the service serving `driver` from a root on a fresh
    /// `kind` filesystem of `size` bytes; `None` (after saying why) when a
    /// tool is missing.
    pub fn start(test: &str, kind: FsKind, driver: &str, size: u64) -> Option<World> {
        let tools = ["containerd", "ctr", "containerd-shim-runc-v2", "runc", "unshare", "nsenter", "docker-registry"];
        if !require(test, &tools) {
            return None;
        }
        let scratch = Scratch { fs: Some(ScratchFs::new(kind, size).expect("scratch filesystem")) };
        let sandbox = Sandbox::new(test);
        let registry = Registry::start(&scratch.path().join("registry"), registry::Options::default());
        let (socket, log) = (sandbox.dir().join("strata.sock"), sandbox.dir().join("strata.log"));
        let service = Service::start(&scratch.path().join("service"), driver, &socket, &log);
        let cd = Containerd::start(&sandbox, &service.socket, Options::default());
        let (runc_root, fifos) = (sandbox.mkdir("runc"), sandbox.mkdir("fifo"));
        let images = scratch.path().join("images");
        Some(World { cd, service, registry, sandbox, scratch, images, runc_root, fifos })
    }

    /// `strata --root <images> ARGS…`, which must succeed; its output.
    #[track_caller]
    pub fn strata(&self, args: &[&str]) -> String {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(&self.images).args(["--storage-driver", "overlay"]).args(args);
        run(&mut c).ok().to_owned()
    }

    /// A path on the scratch filesystem for the test's own files.
    pub fn file(&self, name: &str) -> PathBuf {
        let dir = self.scratch.path().join("work");
        std::fs::create_dir_all(&dir).expect("work dir");
        dir.join(name)
    }

    /// The reference `name` has in the test's registry.
    pub fn reference(&self, name: &str) -> String {
        format!("{}/strata-test/{name}", self.registry.host())
    }

    /// Builds the busybox image (`daemon::image_archive`, one layer) with
    /// strata, pushes it as `name`; its reference and chain ID.
    pub fn push_base(&self, name: &str) -> (String, ChainId) {
        let archive = self.sandbox.image_archive();
        self.strata(&["load", "-i", archive.to_str().expect("utf-8 path")]);
        let reference = self.reference(name);
        self.strata(&["tag", crate::daemon::IMAGE_TAG, &reference]);
        self.strata(&["push", &reference]);
        (reference, ChainId::new(None, &busybox_diff_id()))
    }

    /// Builds `base` + the layer tar at `layer` with strata, pushes it as
    /// `name`; its reference and the new top chain ID (`base_chain` +
    /// the tar's diff ID: strata stores an uncompressed tar as given).
    pub fn push_layer(&self, base: &str, base_chain: &ChainId, layer: &Path, name: &str) -> (String, ChainId) {
        let reference = self.reference(name);
        self.strata(&["import", "--base", base, layer.to_str().expect("utf-8 path"), &reference]);
        self.strata(&["push", &reference]);
        let diff = DiffId(Digest::of(&std::fs::read(layer).expect("layer tar")));
        (reference, ChainId::new(Some(base_chain), &diff))
    }

    /// `ctr images pull --plain-http --snapshotter strata REFERENCE`.
    pub fn pull(&self, reference: &str) -> Out {
        self.cd.ctr_out(&["images", "pull", "--plain-http", "--snapshotter", PLUGIN, reference])
    }

    /// `ctr run --snapshotter strata [FLAGS…] IMAGE ID ARGS…` with runc's
    /// state, the FIFOs and the container's cgroup under the sandbox.
    pub fn ctr_run(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Command {
        let mut c = self.cd.ctr(&["run", "--snapshotter", PLUGIN]);
        c.args(flags).arg("--runc-root").arg(&self.runc_root).arg("--fifo-dir").arg(&self.fifos);
        c.arg("--cgroup").arg(format!("/{}/{id}", self.sandbox.name)).arg(image).arg(id).args(args);
        c
    }

    /// Waits until containerd reaches the (re)started service again: its
    /// proxy client reconnects with a backoff of up to 3 s.
    pub fn wait_reachable(&self, committed: &ChainId) {
        let name = committed.to_string();
        let mut last = String::new();
        let reached = poll(Duration::from_secs(15), || {
            let out = self.cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "info", &name]);
            last = out.both();
            (out.code == Some(0)).then_some(())
        });
        assert!(reached.is_some(), "containerd did not reach the restarted service in 15 s:\n{last}");
    }

    /// How many lines the service has logged so far, to look only at
    /// what a step added ([`World::calls_since`]).
    pub fn log_mark(&self) -> usize {
        self.service.log_text().lines().count()
    }

    /// The service's log lines for `call` after `mark`.
    pub fn calls_since(&self, mark: usize, call: &str) -> Vec<String> {
        let prefix = format!("strata-snapshotter: {call} ");
        self.service.log_text().lines().skip(mark).filter(|l| l.starts_with(&prefix)).map(str::to_owned).collect()
    }
}

/// The diff ID of `daemon::image_archive()`'s one layer: its directory
/// name in the archive (`<hex>/layer.tar`), checked against its bytes.
fn busybox_diff_id() -> DiffId {
    let mut archive = tar::Archive::new(crate::daemon::image_archive());
    for entry in archive.entries().expect("archive") {
        let mut entry = entry.expect("archive entry");
        let path = entry.path().expect("entry path").to_string_lossy().into_owned();
        if let Some(hex) = path.strip_suffix("/layer.tar") {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("layer bytes");
            let digest = Digest::of(&bytes);
            assert_eq!(digest.hex(), hex, "the archive names its layer by its digest");
            return DiffId(digest);
        }
    }
    panic!("the busybox archive has no layer")
}

/// A layer tar holding one file, `path` with `data`.
pub fn one_file_layer(out: &Path, path: &str, data: &[u8]) {
    let mut b = tar::Builder::new(std::fs::File::create(out).expect("layer tar"));
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, path, data).expect("tar entry");
    b.finish().expect("tar");
}

/// The image is strata's: pulled through the proxy (a prepare and a
/// commit of its chain in the service's log), run with its root on the
/// service's snapshot (the container sees an overlay whose upper dir is in
/// the service's driver home), and with the service stopped the same run
/// fails.
#[test]
fn ctr_pulls_and_runs_a_pushed_image_on_strata_snapshots() {
    let Some(w) = World::start("ctr-run", FsKind::Xfs, "overlay", 1 << 30) else { return };
    let mut w = w;
    let (image, chain) = w.push_base("base:1");
    let out = w.pull(&image);
    out.ok();
    let prepares = w.service.calls("prepare");
    assert_eq!(prepares.len(), 1, "one extract snapshot for one layer:\n{}", w.service.log_text());
    assert!(prepares[0].contains("extract-") && prepares[0].contains(&chain.to_string()), "{prepares:?}");
    let commits = w.service.calls("commit");
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert!(commits[0].ends_with(&format!("/{chain}\"")), "committed as the layer's chain ID: {commits:?}");

    let mark = w.log_mark();
    let script = "echo hello from strata; cat /proc/self/mountinfo";
    let out = run(&mut w.ctr_run(&["--rm"], &image, "hello", &["sh", "-c", script]));
    let stdout = out.ok();
    assert!(stdout.starts_with("hello from strata\n"), "{}", out.both());
    let home = strata::proxy::home(&w.service.root, "overlay");
    let root_mount = stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount in the container's mountinfo:\n{stdout}"));
    assert!(
        root_mount.contains(" - overlay ") && root_mount.contains(&format!("upperdir={}/", home.display())),
        "the container's root is not an overlay on the service's snapshot ({}):\n{root_mount}",
        home.display()
    );
    let prepares = w.calls_since(mark, "prepare");
    assert_eq!(prepares.len(), 1, "{prepares:?}");
    assert!(prepares[0].contains("/hello\" parent ") && prepares[0].ends_with(&format!("/{chain}\"")), "{prepares:?}");
    // --rm removes containerd's record; its garbage collection then
    // removes the service's snapshot, and calls Cleanup after it.
    let removed = poll(Duration::from_secs(10), || {
        w.calls_since(mark, "remove").iter().any(|l| l.ends_with("/hello\"")).then_some(())
    });
    assert!(removed.is_some(), "the container's snapshot was not removed:\n{}", w.service.log_text());

    w.service.stop();
    let errors = crate::failures_until_one_names("strata.sock", |n| {
        run(&mut w.ctr_run(&["--rm"], &image, &format!("after-stop-{n}"), &["true"])).fails()
    });
    assert!(
        errors.last().is_some_and(|e| e.contains("strata.sock")),
        "no failure names the service's socket: {errors:?}"
    );
}

/// A second image on the same base: containerd finds the shared chain by
/// Stat and makes no Prepare or Commit for it; only the new layer's
/// extract snapshot is prepared and committed.
#[test]
fn ctr_pull_of_a_second_image_skips_the_shared_chain() {
    let Some(w) = World::start("ctr-shared", FsKind::Xfs, "overlay", 1 << 30) else { return };
    let (base, base_chain) = w.push_base("base:1");
    w.pull(&base).ok();
    let layer = w.file("app.tar");
    one_file_layer(&layer, "app/hello.txt", b"hello from the second layer\n");
    let (app, app_chain) = w.push_layer(&base, &base_chain, &layer, "app:1");

    let mark = w.log_mark();
    w.pull(&app).ok();
    let (prepares, commits) = (w.calls_since(mark, "prepare"), w.calls_since(mark, "commit"));
    let log = w.service.log_text();
    assert_eq!(prepares.len(), 1, "only the new layer is prepared:\n{log}");
    assert_eq!(commits.len(), 1, "only the new layer is committed:\n{log}");
    assert!(
        prepares[0].contains("extract-")
            && prepares[0].contains(&format!(" {app_chain}\" parent "))
            && prepares[0].ends_with(&format!("/{base_chain}\"")),
        "the new layer's extract snapshot on the shared chain: {prepares:?}"
    );
    assert!(commits[0].ends_with(&format!("/{app_chain}\"")), "{commits:?}");
    // The shared chain appears only as the new layer's parent.
    let shared = base_chain.to_string();
    let key = prepares[0].split(" parent ").next().unwrap_or_default();
    assert!(
        !key.contains(&shared) && !commits[0].contains(&shared),
        "a call for the shared chain: {prepares:?} {commits:?}"
    );
    let out = run(&mut w.ctr_run(&["--rm"], &app, "app", &["cat", "/app/hello.txt"]));
    assert_eq!(out.ok(), "hello from the second layer\n");
}

/// The bytes a container wrote, as `ctr snapshots usage` reports them for
/// its writable snapshot: strata's own number (the store opened by the
/// library once the service is stopped, for the same key) and what the
/// filesystem says about the snapshot's directory.
fn usage_of_a_containers_writable_layer(test: &str, kind: FsKind, driver: &str) {
    const WRITTEN: u64 = 3 << 20;
    let Some(w) = World::start(test, kind, driver, 1 << 30) else { return };
    let mut w = w;
    let (image, _) = w.push_base("base:1");
    w.pull(&image).ok();
    let id = "writer";
    let script = format!("dd if=/dev/urandom of=/written bs=1M count={} 2>/dev/null && sync", WRITTEN >> 20);
    run(&mut w.ctr_run(&[], &image, id, &["sh", "-c", &script])).ok();

    let out = w.cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "usage", "-b", id]);
    let row: Vec<String> = out.ok().lines().nth(1).unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    assert_eq!(row.first().map(String::as_str), Some(id), "{}", out.both());
    let (size, inodes): (u64, u64) = (row[1].parse().expect("size"), row[2].parse().expect("inodes"));
    assert!(
        (WRITTEN..WRITTEN + (64 << 10)).contains(&size),
        "{size} bytes for a container that wrote {WRITTEN} bytes (and created nothing else of size)"
    );

    // Where the snapshot lives, from the mounts the service hands out.
    let mounts = w.cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "mounts", "/mnt", id]);
    let dir = snapshot_dir(mounts.ok());
    let observed = match kind {
        FsKind::Btrfs => btrfs_exclusive(&dir),
        _ => apparent_file_bytes(&dir),
    };
    assert_eq!(size, observed, "ctr's usage against the filesystem's view of {}", dir.display());
    let written = std::fs::metadata(dir.join("written")).expect("the container's file in its snapshot").len();
    assert_eq!(written, WRITTEN);

    w.service.stop();
    let store = strata::proxy::open(&w.service.root, driver).expect("the store, once the service let go of it");
    let all = strata::proxy::Filters::parse(&[] as &[String]).expect("no filters");
    let key = store.list(&all).into_iter().map(|i| i.name).find(|n| n.ends_with(&format!("/{id}")));
    let key = key.expect("the container's snapshot in the store");
    let own = store.usage(&key).expect("usage through the library");
    eprintln!("{test}: ctr usage {size} bytes, {inodes} inodes; filesystem {observed}; library {own:?}");
    assert_eq!(own.size, size, "the library's usage of {key:?} against ctr's");
    if driver == "overlay" {
        assert_eq!(own.inodes, inodes);
        assert_eq!(inodes, file_count(&dir), "inodes against find(1)");
    }
}

/// The snapshot's directory from `ctr snapshots mounts` (a shell command
/// line): overlay's `upperdir=`, or a bind mount's source.
fn snapshot_dir(mount_cmd: &str) -> PathBuf {
    let words: Vec<&str> = mount_cmd.split_whitespace().collect();
    if let Some(opts) = words.iter().position(|w| *w == "-o").and_then(|i| words.get(i + 1)) {
        if let Some(upper) = opts.split(',').find_map(|o| o.strip_prefix("upperdir=")) {
            return PathBuf::from(upper);
        }
    }
    // mount -t none SOURCE TARGET -o rbind,…
    match words.iter().position(|w| *w == "-t") {
        Some(i) if words.len() > i + 2 => PathBuf::from(words[i + 2]),
        _ => panic!("cannot find the snapshot in {mount_cmd:?}"),
    }
}

/// Apparent sizes of the non-directories under `dir`, summed by find(1).
fn apparent_file_bytes(dir: &Path) -> u64 {
    let mut c = Command::new("find");
    c.arg(dir).args(["!", "-type", "d", "-printf", "%s\\n"]);
    run(&mut c).ok().lines().map(|l| l.parse::<u64>().expect("find size")).sum()
}

/// Everything under `dir` (itself included), counted by find(1).
fn file_count(dir: &Path) -> u64 {
    run(Command::new("find").arg(dir)).ok().lines().count() as u64
}

/// The exclusive data bytes of a subvolume, by `btrfs filesystem du`.
fn btrfs_exclusive(dir: &Path) -> u64 {
    let out = run(Command::new("btrfs").args(["filesystem", "du", "-s", "--raw"]).arg(dir));
    let text = out.ok();
    // Total   Exclusive  Set shared  Filename
    let row = text.lines().nth(1).unwrap_or_else(|| panic!("btrfs filesystem du:\n{text}"));
    row.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{text}"))
}

#[test]
fn ctr_usage_of_a_writable_layer_matches_strata_on_overlay_over_xfs() {
    usage_of_a_containers_writable_layer("ctr-usage-xfs", FsKind::Xfs, "overlay");
}

#[test]
fn ctr_usage_of_a_writable_layer_matches_strata_on_btrfs() {
    usage_of_a_containers_writable_layer("ctr-usage-btrfs", FsKind::Btrfs, "btrfs");
}
