//! Issue 15, items 1–2: `cp`, `export` and `commit` against a hostile
//! container. Each test builds the container, runs the attack for real,
//! and checks the host (DEST's listing and checksums, a bait file in a
//! scratch directory) and the container's writable layer.
//!
//! The races run [`racer`] (source in `racer/racer.rs`, built static like
//! the probe) inside the container; a strata command that hangs is killed
//! after [`HANG`] and the test fails.

use crate::common::{busybox_rootfs, require_root, Env};
use crate::Host;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use strata::scratch::FsKind;

/// busybox with `/racer`.
const IMAGE: &str = "strata-test/racer:latest";
/// How long one strata command may take before it counts as hung.
const HANG: Duration = Duration::from_secs(30);

/// The racer, built once per test process with the rustc that builds the
/// tests (`+crt-static`, so it runs in busybox).
fn racer() -> &'static [u8] {
    static BIN: OnceLock<Vec<u8>> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/security/racer/racer.rs");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("racer");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(rustc)
            .args(["-O", "-C", "target-feature=+crt-static", "--edition", "2021", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run rustc");
        assert!(out.status.success(), "compiling {}:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
        std::fs::read(&bin).unwrap()
    })
}

/// A data root with busybox and [`IMAGE`]; [`Host`]'s `Drop` removes every
/// container.
fn host(test: &str) -> Option<Host> {
    require_root(test)?;
    let env = Env::new(FsKind::Ext4, "overlay");
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let ctx = env.scratch("racer-ctx/Dockerfile");
    std::fs::write(&ctx, "FROM busybox:latest\nCOPY racer /racer\n").unwrap();
    let bin = ctx.parent().unwrap().join("racer");
    std::fs::write(&bin, racer()).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.ok(&["build", "-t", IMAGE, ctx.parent().unwrap().to_str().unwrap()]);
    Some(Host { env })
}

/// Every entry under `root` (not followed): path → kind, mode, owner and
/// content checksum, link text or device number.
fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let t = m.file_type();
            let what = if t.is_dir() {
                stack.push(p.clone());
                "dir".to_owned()
            } else if t.is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if t.is_file() {
                format!("file {}", hex::encode(Sha256::digest(std::fs::read(&p).unwrap())))
            } else if t.is_fifo() {
                "fifo".to_owned()
            } else if t.is_char_device() || t.is_block_device() {
                format!("device {:x}", m.rdev())
            } else {
                "socket".to_owned()
            };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.insert(rel, format!("{what} {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()));
        }
    }
    out
}

/// The overlay upper directory of container `name`: its writable layer.
fn upper_dir(env: &Env, name: &str) -> PathBuf {
    let engine = env.engine();
    let id = strata::container::records::ContainerStore::new(&engine.root).resolve(name).unwrap();
    let key = strata::snapshot::SnapshotKey::new(id.as_str()).unwrap();
    let mounts = engine.snapshots.mounts(&key).unwrap();
    let upper = mounts.iter().flat_map(|m| m.options.iter()).find_map(|o| o.strip_prefix("upperdir=")).unwrap();
    PathBuf::from(upper)
}

/// A bait file outside the data root: its mode and checksum.
fn bait_state(p: &Path) -> (u32, String) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, hex::encode(Sha256::digest(std::fs::read(p).unwrap())))
}

/// Runs strata, killing it (and failing the test) if it takes longer than
/// [`HANG`]: whether it succeeded, and its stderr.
fn run_bounded(env: &Env, args: &[&str]) -> (bool, String) {
    let err = env.scratch(&format!("stderr-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&env.root)
        .arg("--storage-driver")
        .arg(env.driver)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run strata");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata {args:?} hung for {HANG:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), std::fs::read_to_string(&err).unwrap_or_default())
}

/// Waits until `strata exec NAME test -e PATH` succeeds (the racer is up).
fn wait_for(env: &Env, name: &str, path: &str) {
    let start = Instant::now();
    while !env.run(&["exec", name, "test", "-e", path]).status.success() {
        assert!(start.elapsed() < Duration::from_secs(20), "{path} never appeared in {name}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cp_out_copies_whiteout_names_as_files_and_deletes_nothing() {
    let Some(h) = host("cp_out_copies_whiteout_names_as_files_and_deletes_nothing") else { return };
    let env = &h.env;
    env.ok(&[
        "run",
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "mkdir /out && echo gotcha > /out/.wh.victim && echo o > /out/.wh..wh..opq",
    ]);
    let dest = env.scratch("dest");
    std::fs::create_dir_all(dest.join("out")).unwrap();
    std::fs::write(dest.join("out/victim"), "bait").unwrap();
    std::fs::write(dest.join("out/keep"), "bait").unwrap();
    let before = listing(&dest);
    let layer = listing(&upper_dir(env, "c"));

    env.ok(&["cp", "c:/out", &format!("{}/", dest.display())]);
    let after = listing(&dest);
    assert_eq!(after["out/victim"], before["out/victim"], "a .wh. file in the container deleted a host file");
    assert_eq!(after["out/keep"], before["out/keep"], "an opaque marker emptied a host directory");
    assert_eq!(std::fs::read_to_string(dest.join("out/.wh.victim")).unwrap(), "gotcha\n");
    assert_eq!(std::fs::read_to_string(dest.join("out/.wh..wh..opq")).unwrap(), "o\n");
    assert_eq!(after.len(), before.len() + 2, "{after:#?}");
    assert_eq!(listing(&upper_dir(env, "c")), layer, "the container's layer changed");
}

#[test]
fn cp_in_copies_whiteout_names_as_files_and_deletes_nothing() {
    let Some(h) = host("cp_in_copies_whiteout_names_as_files_and_deletes_nothing") else { return };
    let env = &h.env;
    env.ok(&["run", "--name", "c", "busybox", "sh", "-c", "mkdir -p /dst/in && echo keep > /dst/in/victim"]);
    let src = env.scratch("src/in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join(".wh.victim"), "plain").unwrap();
    let before = listing(src.parent().unwrap());

    env.ok(&["cp", src.to_str().unwrap(), "c:/dst/"]);
    let upper = upper_dir(env, "c");
    assert_eq!(std::fs::read_to_string(upper.join("dst/in/victim")).unwrap(), "keep\n", "a .wh. file deleted victim");
    assert_eq!(std::fs::read_to_string(upper.join("dst/in/.wh.victim")).unwrap(), "plain");
    let owner = std::fs::metadata(upper.join("dst/in/.wh.victim")).unwrap();
    assert_eq!((owner.uid(), owner.gid()), (0, 0), "copy-in makes root the owner");
    assert_eq!(listing(src.parent().unwrap()), before, "the host source changed");
}

#[test]
fn cp_out_makes_no_device_nodes_or_setuid_files() {
    let Some(h) = host("cp_out_makes_no_device_nodes_or_setuid_files") else { return };
    let env = &h.env;
    let script = "mkdir /out && mknod /out/null c 1 3 && mknod /out/disk b 7 0 && cp /bin/busybox /out/suid \
                  && chmod 6755 /out/suid && mkfifo /out/fifo && echo x > /out/plain";
    env.ok(&["run", "--name", "c", "busybox", "sh", "-c", script]);
    let layer = listing(&upper_dir(env, "c"));
    assert!(layer["out/null"].starts_with("device"), "the container made its device node: {layer:#?}");

    let dest = env.scratch("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let out = env.run(&["cp", "c:/out", dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/out/null") && stderr.contains("/out/disk"), "skipped devices are named: {stderr}");
    let got = listing(&dest);
    assert!(!got.values().any(|v| v.starts_with("device")), "a device node was made on the host: {got:#?}");
    assert!(!got.contains_key("out/null") && !got.contains_key("out/disk"), "{got:#?}");
    let suid = std::fs::metadata(dest.join("out/suid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o755, "setuid/setgid bits survived copy-out");
    assert!(got["out/fifo"].starts_with("fifo"), "{got:#?}");
    assert_eq!(std::fs::read_to_string(dest.join("out/plain")).unwrap(), "x\n");

    // A device as SRC_PATH itself: refused, naming it; nothing written.
    let before = listing(&dest);
    let err = env.fails(&["cp", "c:/out/null", dest.join("null").to_str().unwrap()]);
    assert!(err.contains("/out/null") && err.contains("device"), "{err}");
    assert_eq!(listing(&dest), before);

    // -a is the user asking for the source's bits.
    let kept = env.scratch("archive");
    env.ok(&["cp", "-a", "c:/out/suid", kept.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&kept).unwrap().mode() & 0o7777, 0o6755);
    assert_eq!(listing(&upper_dir(env, "c")), layer, "the container's layer changed");
}

#[test]
fn cp_does_not_follow_container_symlinks_to_host_paths() {
    let Some(h) = host("cp_does_not_follow_container_symlinks_to_host_paths") else { return };
    let env = &h.env;
    let bait = env.scratch("bait");
    std::fs::create_dir_all(bait.join("target")).unwrap();
    std::fs::write(bait.join("secret"), "host secret").unwrap();
    let (secret, target) = (bait.join("secret"), bait.join("target"));
    let up = "../../../../../../../../..";
    let script = format!(
        "mkdir -p /out/dst && ln -s {s} /out/abs && ln -s {up}{s} /out/rel && ln -s {t} /out/absdir \
         && ln -s {up}{t} /out/reldir && ln -s {t} /out/dst/sub",
        s = secret.display(),
        t = target.display()
    );
    env.ok(&["run", "--name", "c", "busybox", "sh", "-c", &script]);
    let layer = listing(&upper_dir(env, "c"));
    let baits = listing(&bait);

    // Copy-out: symlinks are copied as symlinks, text unchanged.
    let dest = env.scratch("dest");
    std::fs::create_dir_all(&dest).unwrap();
    env.ok(&["cp", "c:/out", dest.to_str().unwrap()]);
    env.ok(&["cp", "c:/out/abs", dest.join("abs-alone").to_str().unwrap()]);
    env.ok(&["cp", "c:/out/rel", dest.join("rel-alone").to_str().unwrap()]);
    let got = listing(&dest);
    assert_eq!(got["out/abs"].split(' ').take(3).collect::<Vec<_>>(), ["link", "->", secret.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(dest.join("abs-alone")).unwrap(), secret);
    assert_eq!(std::fs::read_link(dest.join("rel-alone")).unwrap(), PathBuf::from(format!("{up}{}", secret.display())));
    assert!(!got.values().any(|v| v.contains(&hex::encode(Sha256::digest(b"host secret")))), "{got:#?}");

    // -L follows inside the container, where the host path does not exist.
    let before = listing(&dest);
    for src in ["c:/out/abs", "c:/out/rel"] {
        env.fails(&["cp", "-L", src, dest.join("followed").to_str().unwrap()]);
    }
    assert_eq!(listing(&dest), before, "a refused copy-out wrote to DEST");

    // Copy-in: a destination through those links stays in the container.
    let file = env.scratch("in/file");
    std::fs::write(&file, "from host").unwrap();
    let sub = env.scratch("in/sub/file");
    std::fs::write(&sub, "from host").unwrap();
    for dest in ["c:/out/absdir/", "c:/out/reldir/", "c:/out/absdir/x", "c:/out/reldir/x"] {
        let _ = env.run(&["cp", file.to_str().unwrap(), dest]);
    }
    let err = env.fails(&["cp", sub.parent().unwrap().to_str().unwrap(), "c:/out/dst/"]);
    assert!(err.contains("cannot overwrite non-directory"), "{err}");
    assert_eq!(listing(&bait), baits, "a container symlink led cp to the host");
    let now = listing(&upper_dir(env, "c"));
    assert_eq!(now.get("out/dst/sub"), layer.get("out/dst/sub"), "the refused copy changed the layer");
    assert!(now.keys().all(|k| !k.starts_with("out/dst/sub/")), "{now:#?}");
}

#[test]
fn cp_in_racing_a_symlink_swap_never_touches_a_host_file() {
    let Some(h) = host("cp_in_racing_a_symlink_swap_never_touches_a_host_file") else { return };
    let env = &h.env;
    let bait = env.scratch("bait/passwd");
    std::fs::write(&bait, "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::set_permissions(&bait, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = bait_state(&bait);
    // The host's source: a FIFO and a file under the names the container
    // keeps turning into symlinks to the bait.
    let src = env.scratch("src/d");
    std::fs::create_dir_all(&src).unwrap();
    strata::sys::fs::mkfifo(&src.join("f"), 0o666).unwrap();
    std::fs::set_permissions(src.join("f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::write(src.join("g"), "host data").unwrap();
    std::fs::set_permissions(src.join("g"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let sources = listing(src.parent().unwrap());

    env.ok(&["run", "-d", "--name", "c", IMAGE, "sh", "-c", "mkdir -p /in/d && sleep 1000"]);
    wait_for(env, "c", "/in/d");
    let target = bait.to_str().unwrap();
    env.ok(&["exec", "-d", "c", "/racer", "symlink", "/in/d", "f", target]);
    env.ok(&["exec", "-d", "c", "/racer", "symlink", "/in/d", "g", target]);
    let start = Instant::now();
    let mut tries = 0;
    while start.elapsed() < Duration::from_secs(15) && tries < 300 {
        let _ = run_bounded(env, &["cp", src.to_str().unwrap(), "c:/in/"]);
        let _ = run_bounded(env, &["cp", src.join("g").to_str().unwrap(), "c:/in/d/g"]);
        tries += 1;
        assert_eq!(bait_state(&bait), before, "the host bait changed after {tries} copies");
    }
    assert_eq!(listing(src.parent().unwrap()), sources, "the host source changed");
}

#[test]
fn a_fifo_swapped_in_does_not_hang_cp_export_or_commit() {
    let Some(h) = host("a_fifo_swapped_in_does_not_hang_cp_export_or_commit") else { return };
    let env = &h.env;
    env.ok(&["run", "-d", "--name", "c", IMAGE, "sh", "-c", "mkdir -p /race && mkfifo /fifo && sleep 1000"]);
    wait_for(env, "c", "/fifo");

    // A FIFO as SRC_PATH is copied as a FIFO, never opened.
    let dest = env.scratch("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let (ok, err) = run_bounded(env, &["cp", "c:/fifo", dest.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(listing(&dest)["fifo"].starts_with("fifo"));

    // Names that keep turning from files into FIFOs while the host reads.
    env.ok(&["exec", "-d", "c", "/racer", "fifo", "/race", "8"]);
    wait_for(env, "c", "/race/f7");
    let tar = env.scratch("export.tar");
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(20) && rounds < 40 {
        let out = env.scratch(&format!("race-{rounds}"));
        let _ = run_bounded(env, &["cp", "c:/race", out.to_str().unwrap()]);
        let _ = run_bounded(env, &["export", "-o", tar.to_str().unwrap(), "c"]);
        let _ = run_bounded(env, &["commit", "c"]);
        rounds += 1;
    }
    // Whatever each round answered, none hung; the copies hold no device
    // and each FIFO came out as a FIFO or a file, never as a read pipe.
    for r in 0..rounds {
        let got = listing(&env.scratch(&format!("race-{r}")));
        assert!(
            got.values().all(|v| v.starts_with("file") || v.starts_with("fifo") || v.starts_with("dir")),
            "{got:#?}"
        );
    }
}
