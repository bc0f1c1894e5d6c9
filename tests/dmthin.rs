//! dm-thin through the `strata` binary: the seed walkthrough with
//! `--storage-driver dmthin`, block-granular copy-on-write (1 byte written
//! into a 1 GiB image file costs one pool block), and crash safety (strata
//! killed at random points never leaves a thin device its metadata does not
//! know).
//!
//! Tier: root + device-mapper. Hosts without device-mapper skip these
//! (saying so) even under STRATA_TEST_STRICT; `tools/vmtest` runs them in a
//! VM with STRATA_VMTEST=1, where a skip is a failure.

#[path = "dmthin/commit_mounted.rs"]
mod commit_mounted;
#[path = "images/common.rs"]
#[allow(dead_code)]
mod common;

use common::{busybox_rootfs, Env};
use std::collections::HashSet;
use std::process::Command;
use strata::drivers::dmthin::{self, Dmthin};
use strata::scratch::{FsKind, ScratchFs};

/// A data root on its own scratch filesystem using dmthin with a small
/// base device; removes its containers and the pool when dropped.
struct DmHost {
    env: Env,
}

impl DmHost {
    fn new(scratch_bytes: u64) -> DmHost {
        DmHost::with_settings(scratch_bytes, None)
    }

    /// With `<root>/dmthin/dmthin.json` written first (the pool and base
    /// are made on first use, by the import below).
    fn with_settings(scratch_bytes: u64, settings: Option<&str>) -> DmHost {
        // Smaller than the defaults so mkfs of the base stays quick under
        // emulation; the CLI inherits these.
        std::env::set_var("STRATA_DMTHIN_BASE_SIZE", "2G");
        std::env::set_var("STRATA_DMTHIN_DATA_SIZE", "16G");
        std::env::set_var("STRATA_DMTHIN_METADATA_SIZE", "128M");
        let fs = ScratchFs::new(FsKind::Ext4, scratch_bytes).expect("scratch filesystem");
        let root = fs.path().join("root");
        if let Some(json) = settings {
            std::fs::create_dir_all(root.join("dmthin")).unwrap();
            std::fs::write(root.join("dmthin/dmthin.json"), json).unwrap();
        }
        let env = Env { fs, root, driver: "dmthin" };
        let rootfs = env.scratch("busybox.tar");
        busybox_rootfs(&rootfs);
        env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
        DmHost { env }
    }

    fn home(&self) -> std::path::PathBuf {
        self.env.root.join("dmthin")
    }

    /// Thin devices in the pool that are neither the base nor a snapshot
    /// the snapshot metadata records.
    fn unknown_thin_devices(&self) -> Vec<String> {
        let engine = self.env.engine();
        let mut known = HashSet::new();
        engine
            .snapshots
            .walk(|i| {
                known.insert(i.id);
            })
            .unwrap();
        drop(engine);
        let d = Dmthin::new(&self.home()).expect("dmthin driver");
        let mut out = Vec::new();
        for (thin, owner) in d.pool_thin_ids().expect("probe thin ids") {
            if d.is_base(thin).unwrap() {
                continue;
            }
            match owner {
                Some(id) if known.contains(&id) => {}
                other => out.push(format!("thin {thin} (snapshot {other:?})")),
            }
        }
        out
    }
}

impl Drop for DmHost {
    fn drop(&mut self) {
        let ids = self.env.run(&["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = self.env.run(&["rm", "-f", "-v", id]);
        }
        if let Err(e) = dmthin::shut_down(&self.home()) {
            eprintln!("dmthin teardown: {e}");
        }
    }
}

/// `ps -s`'s SIZE column for a container name.
fn size_of(ps: &str, name: &str) -> String {
    let line = ps.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not in:\n{ps}"));
    line.rsplit("   ").next().unwrap().trim().to_owned()
}

#[test]
fn dmthin_seed_walkthrough() {
    if !strata::scratch::device_mapper_for_tests("the dm-thin walkthrough") {
        return;
    }
    let host = DmHost::new(4 << 30);
    let env = &host.env;
    let app = env.scratch("app.tar");
    common::seed_app_tar(&app);
    env.ok(&["import", "--base", "busybox", app.to_str().unwrap(), "acme/my-base-image:1.0"]);
    env.ok(&["import", "--base", "acme/my-base-image:1.0", "--change", "CMD /app/hello.sh", "acme/my-final-image:1.0"]);
    assert_eq!(env.ok(&["run", "--rm", "acme/my-final-image:1.0"]), "hello world\n", "CMD runs");
    for i in 1..=5 {
        env.ok(&["run", "-dit", "--name", &format!("my_container_{i}"), "acme/my-final-image:1.0", "sh"]);
    }
    let ps = env.ok(&["ps", "-s"]);
    eprintln!("$ strata ps -s\n{ps}");
    assert_eq!(ps.lines().count(), 6, "five containers:\n{ps}");
    assert!(ps.lines().skip(1).all(|l| l.contains("Up ") && l.contains("(virtual ")), "{ps}");
    env.ok(&["exec", "my_container_1", "sh", "-c", "head -c 1000000 /dev/urandom > /big"]);
    let ps = env.ok(&["ps", "-s"]);
    eprintln!("$ strata ps -s   (after writing 1 MB in my_container_1)\n{ps}");
    assert!(size_of(&ps, "my_container_1").starts_with("1."), "1 MB (plus metadata blocks) in my_container_1:\n{ps}");
    assert_ne!(size_of(&ps, "my_container_1"), size_of(&ps, "my_container_2"), "{ps}");
    assert_eq!(env.ok(&["exec", "my_container_2", "cat", "/app/hello.sh"]), common::SEED_HELLO);
    let info = env.ok(&["info"]);
    eprintln!("$ strata info\n{info}");
    assert!(info.contains("Data Space Used") && info.contains("Metadata Space Used"), "{info}");

    let before = Dmthin::new(&host.home()).unwrap().pool_thin_ids().unwrap().len();
    env.ok(&["rm", "-f", "my_container_1"]);
    let after = Dmthin::new(&host.home()).unwrap().pool_thin_ids().unwrap().len();
    assert_eq!(after + 1, before, "rm deletes exactly the container's thin device");
    let ps = env.ok(&["ps"]);
    assert_eq!(ps.lines().count(), 5, "four containers still run:\n{ps}");
    assert!(host.unknown_thin_devices().is_empty());
}

/// The optional xfs base (`"fs": "xfs"` in dmthin.json): containers run on
/// it, their writes show in `ps -s`, `info` names it, and `rm` leaves no
/// thin device behind.
#[test]
fn dmthin_with_an_xfs_base() {
    if !strata::scratch::device_mapper_for_tests("the dm-thin xfs-base test") {
        return;
    }
    let host = DmHost::with_settings(4 << 30, Some(r#"{"fs": "xfs"}"#));
    let env = &host.env;
    let info = env.ok(&["info"]);
    assert!(info.lines().any(|l| l.contains("Backing Filesystem") && l.contains("xfs")), "{info}");
    env.ok(&["run", "-dit", "--name", "x1", "busybox", "sh"]);
    env.ok(&["run", "-dit", "--name", "x2", "busybox", "sh"]);
    env.ok(&["exec", "x1", "sh", "-c", "head -c 1000000 /dev/urandom > /big && sync"]);
    let ps = env.ok(&["ps", "-s"]);
    eprintln!("$ strata ps -s   (xfs base, 1 MB written in x1)\n{ps}");
    // A fresh container already owns the log blocks xfs rewrote when it
    // was mounted; the 1 MB written shows on top of that.
    let added = bytes_of(&size_of(&ps, "x1")).saturating_sub(bytes_of(&size_of(&ps, "x2")));
    assert!((950_000..1_300_000).contains(&added), "x1 = x2 + 1 MB (+ a few blocks):\n{ps}");
    assert_eq!(env.ok(&["exec", "x2", "sh", "-c", "test -e /big || echo absent"]), "absent\n");
    env.ok(&["rm", "-f", "x1", "x2"]);
    assert!(host.unknown_thin_devices().is_empty());
}

#[test]
fn dmthin_one_byte_into_a_gib_file_costs_one_block() {
    if !strata::scratch::device_mapper_for_tests("the dm-thin 1-byte copy-on-write test") {
        return;
    }
    let host = DmHost::new(8 << 30);
    let env = &host.env;
    let big = env.scratch("big.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&big).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(1 << 30);
        h.set_mode(0o644);
        h.set_cksum();
        // Non-zero content, so the file is really allocated in the layer.
        let data = std::io::Read::take(std::io::repeat(b'a'), 1 << 30);
        b.append_data(&mut h, "big", data).unwrap();
        b.finish().unwrap();
    }
    env.ok(&["import", "--base", "busybox", big.to_str().unwrap(), "big:1"]);
    for name in ["fresh", "append", "overwrite"] {
        env.ok(&["run", "-dit", "--name", name, "big:1", "sh"]);
    }
    // Appending 1 byte allocates one new filesystem block; overwriting
    // byte 0 in place makes the pool copy the one block holding it. The
    // filesystem's own inode and journal updates cost a few blocks more,
    // which the fresh container shows on its own (mount updates the
    // superblock).
    env.ok(&["exec", "append", "sh", "-c", "printf x >> /big"]);
    env.ok(&["exec", "overwrite", "sh", "-c", "printf y | dd of=/big bs=1 count=1 conv=notrunc"]);
    let ps = env.ok(&["ps", "-s"]);
    eprintln!("$ strata ps -s   (1 byte appended to / overwritten in a 1 GiB image file)\n{ps}");
    // In 64 KiB pool blocks, rounding off ps's three significant digits.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let blocks = |name: &str| (bytes_of(&size_of(&ps, name)) as f64 / 65536.0).round() as u64;
    let fresh = blocks("fresh");
    for name in ["append", "overwrite"] {
        let size = size_of(&ps, name);
        assert!(size.contains("(virtual 1.08GB"), "{name}: {size}");
        let b = blocks(name);
        assert!(b > fresh, "{name}: at least the one data block beyond a fresh container ({fresh} blocks): {size}");
        assert!(b <= fresh + 8, "{name}: a few pool blocks, not the 1 GiB file: {size}");
    }
    // The in-place overwrite copies the one block holding byte 0 (measured:
    // exactly one; the inode's mtime may cost a second once ext4
    // checkpoints its journal).
    assert!(blocks("overwrite") <= fresh + 2, "{ps}");
}

/// `ps -s`'s human size (`65.5kB (virtual …)`, Docker's decimal units) in
/// bytes, to the precision it is printed.
fn bytes_of(size: &str) -> u64 {
    let n = size.split_whitespace().next().unwrap();
    let split = n.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (num, unit) = n.split_at(split);
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other} in {size}"),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let b = (num.parse::<f64>().unwrap() * mult) as u64;
    b
}

/// strata is killed at random points of create/commit/rm; after each kill
/// the next command's start-up must leave no thin device that the snapshot
/// metadata does not know.
#[test]
fn dmthin_killed_strata_leaves_no_unknown_thin_device() {
    if !strata::scratch::device_mapper_for_tests("the dm-thin fault-injection test") {
        return;
    }
    let host = DmHost::new(4 << 30);
    let env = &host.env;
    let seed = std::env::var("STRATA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_d371);
    eprintln!("fault injection seed {seed} (STRATA_SEED replays it)");
    let mut rng = strata::rng::Rng::new(seed);
    let strata = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(&env.root).arg("--storage-driver").arg("dmthin").args(args);
        c
    };
    let rounds = 12;
    for round in 0..rounds {
        let name = format!("c{round}");
        let ops: [Vec<String>; 3] = [
            vec!["create".into(), "--name".into(), name.clone(), "busybox".into(), "true".into()],
            vec!["commit".into(), "keep".into(), format!("img{round}:1")],
            vec!["rm".into(), "-f".into(), format!("c{}", round.max(1) - 1)],
        ];
        if round == 0 {
            env.ok(&["create", "--name", "keep", "busybox", "true"]);
        }
        let op = rng.pick(&ops).clone();
        let delay = std::time::Duration::from_millis(rng.below(1500));
        let mut child = strata(&op.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("round {round}: {op:?} {} after {delay:?}", if killed { "killed" } else { "finished" });
        // The next start-up repairs.
        env.ok(&["ps", "-a"]);
        let unknown = host.unknown_thin_devices();
        assert!(unknown.is_empty(), "round {round} ({op:?}): thin devices unknown to strata: {unknown:?}");
        // A diff's kept mounts that the killed strata held are gone too.
        let kept = host.home().join("mnt");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = mountinfo.lines().filter(|l| l.contains(kept.to_str().unwrap())).collect();
        assert!(left.is_empty(), "round {round} ({op:?}): kept mounts left behind: {left:?}");
    }
    // Still usable afterwards.
    env.ok(&["run", "--rm", "busybox", "true"]);
}

/// Kept mounts (a diff's view of a snapshot) are unmounted by the next
/// start-up when no live process holds them — a strata killed mid-diff —
/// and left alone while one does.
#[test]
fn dmthin_sweeps_kept_mounts_nobody_holds() {
    if !strata::scratch::device_mapper_for_tests("the dm-thin kept-mount sweep") {
        return;
    }
    let host = DmHost::new(2 << 30);
    let env = &host.env;
    let mnt = host.home().join("mnt");
    let mounted = |dir: &std::path::Path| strata::sys::mount::is_mount_point(dir).unwrap_or(false);
    // Two stale kept mounts (tmpfs stands in for a snapshot's filesystem).
    let (stale, held) = (mnt.join("900001"), mnt.join("900002"));
    for dir in [&stale, &held] {
        std::fs::create_dir_all(dir).unwrap();
        let m = strata::mount::Mount { kind: "tmpfs".into(), source: "tmpfs".into(), options: vec![] };
        m.mount(dir).unwrap();
    }
    // This test process stands in for a live strata using the second one.
    let hold = strata::sys::lock::FileLock::shared(&mnt.join("900002.lock")).unwrap();
    env.ok(&["ps", "-a"]);
    let (stale_after, held_after) = (mounted(&stale), mounted(&held));
    drop(hold);
    env.ok(&["ps", "-a"]);
    let held_last = mounted(&held);
    for dir in [&stale, &held] {
        let _ = strata::mount::unmount_all(dir);
    }
    assert!(!stale_after, "a kept mount nobody holds is unmounted at start-up");
    assert!(held_after, "a kept mount a live process holds stays");
    assert!(!held_last, "and goes once the holder is gone");
}

/// A full pool is an error, not a hang: `error_if_no_space` fails the
/// writes at once, and committing the layer says the pool is out of space.
#[test]
fn dmthin_full_pool_fails_with_a_clear_error() {
    use std::io::Write;
    use strata::snapshot::{SnapshotKey, Snapshotter};
    if !strata::scratch::device_mapper_for_tests("the dm-thin full-pool test") {
        return;
    }
    let fs = ScratchFs::new(FsKind::Ext4, 2 << 30).expect("scratch filesystem");
    let home = fs.path().join("home");
    struct Teardown(std::path::PathBuf);
    impl Drop for Teardown {
        fn drop(&mut self) {
            let _ = strata::mount::unmount_all(&self.0.join("..").join("mnt"));
            if let Err(e) = dmthin::shut_down(&self.0) {
                eprintln!("dmthin teardown: {e}");
            }
        }
    }
    std::fs::create_dir_all(&home).unwrap();
    let _teardown = Teardown(home.clone());
    // 128 MiB of pool under a 1 GiB filesystem.
    let cfg = dmthin::pool::Config {
        data_size: 128 << 20,
        metadata_size: 16 << 20,
        base_size: 1 << 30,
        ..Default::default()
    };
    let sn = Snapshotter::new(&home, Box::new(Dmthin::with_config(&home, cfg).expect("dmthin driver"))).unwrap();
    let key = SnapshotKey::new("fill").unwrap();
    let mounts = sn.prepare(&key, None).unwrap();
    let mnt = fs.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = strata::mount::TempMount::new(&mounts, &mnt).unwrap();
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(mnt.join("fill"))?;
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..256 {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    })();
    eprintln!("writing 256 MiB into a 128 MiB pool: {written:?}");
    assert!(written.is_err(), "the write must fail, not succeed or hang");
    m.unmount().unwrap();
    let err = sn.commit(&SnapshotKey::new("full").unwrap(), &key).expect_err("commit on a full pool");
    eprintln!("commit: {err}");
    assert!(err.to_string().contains("out of data space"), "{err}");
    let info: Vec<_> = sn.driver().status();
    eprintln!("{info:?}");
    assert!(info.iter().any(|(k, v)| k == "Pool Mode" && v == "out_of_data_space"), "{info:?}");
}
