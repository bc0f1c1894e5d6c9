//! The build context digest on every I/O engine: the plain walk, batches
//! on the sync engine and batches on io_uring
//! ([`crate::uring::treehash`]) give the same digest or the same error.
//! (Here, not beside the engine code: `uring` sits below `build` in the
//! layer table.)

use super::context::Tree;
use crate::rng::Rng;
use crate::uring::treehash::FEED_FILE_MAX;
use crate::uring::IoEngine;
use crate::uring::IoEngineKind;
use std::path::Path;

/// Every way of hashing: the plain twin, batches on the sync engine,
/// batches on io_uring (when the kernel has it).
fn engines() -> Vec<(&'static str, Option<IoEngine>)> {
    let mut out = vec![("plain", None), ("sync", Some(IoEngine::sync()))];
    match IoEngine::with_kind(IoEngineKind::Uring) {
        Ok(e) => out.push(("uring", Some(e))),
        Err(e) => crate::scratch::skip_test(&format!("io_uring tree hash not tested: {e}")),
    }
    out
}

/// `tree.hash_using(tree.sources(pattern))` on every engine: the same
/// digest or the same error.
fn same_everywhere(tree: &Tree, pattern: &str) -> Result<String, String> {
    let mut want: Option<Result<String, String>> = None;
    for (name, mut engine) in engines() {
        let got = tree
            .sources(pattern)
            .and_then(|s| tree.hash_using(&s, engine.as_mut()))
            .map(|d| d.to_string())
            .map_err(|e| e.to_string());
        match &want {
            None => want = Some(got),
            Some(w) => assert_eq!(&got, w, "{pattern}: {name} differs from plain"),
        }
    }
    want.expect("the plain engine ran")
}

/// More files than a batch holds, files around [`FEED_FILE_MAX`],
/// empty files, nested directories, a FIFO, symlinks that point out
/// of the tree (absolute, `..`-laden) and a `.dockerignore` with an
/// exception.
fn random_tree(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut dirs = vec![root.to_owned()];
    let hostile = ["/", "../../..", "/etc/passwd", "d1/../../../x", "/proc/self/root"];
    for n in 0..700 {
        let parent = dirs[rng.index(dirs.len())].clone();
        let p = parent.join(format!("e{n}{}", ["", ".log", ".txt"][rng.index(3)]));
        match rng.index(24) {
            0..=1 => {
                std::fs::create_dir(&p).unwrap();
                dirs.push(p);
            }
            2..=3 => std::os::unix::fs::symlink(hostile[rng.index(hostile.len())], &p).unwrap(),
            4 if n % 5 == 0 => crate::sys::fs::mkfifo(&p, 0o644).unwrap(),
            _ => {
                let max = usize::try_from(FEED_FILE_MAX).unwrap();
                let size = match rng.index(12) {
                    0 => 0,
                    1 => max + rng.index(3) - 1,
                    2 => rng.range_usize(max, 3 * max),
                    _ => rng.range_usize(1, 30 << 10),
                };
                std::fs::write(&p, rng.bytes(size)).unwrap();
            }
        }
    }
    std::fs::write(root.join(".dockerignore"), "*.log\n!e1*.log\n**/*.txt\n").unwrap();
}

#[test]
fn batched_context_hash_matches_the_plain_walk() {
    if !crate::sys::process::geteuid().is_root() {
        return crate::scratch::skip_test("needs root for tmpfs");
    }
    for seed in [1, 2, 3] {
        let place = crate::scratch::Tmpfs::new(1 << 30).unwrap();
        random_tree(place.path(), seed);
        std::os::unix::fs::symlink("/", place.path().join("rootlink")).unwrap();
        let tree = Tree::context(place.path()).unwrap();
        for pattern in [".", "e1*", "rootlink", "rootlink/e2*", "../x", "missing"] {
            same_everywhere(&tree, pattern).ok();
        }
        assert!(same_everywhere(&tree, ".").is_ok(), "seed {seed}: the whole context hashes");
    }
}

/// A file that cannot be opened for reading (sysfs's write-only
/// attributes, `EACCES` even for root) after files already queued:
/// every engine reports the same file's error.
#[test]
fn a_read_error_is_the_same_on_every_engine() {
    if !crate::sys::process::geteuid().is_root() || !Path::new("/sys/bus/cpu/drivers_probe").exists() {
        return crate::scratch::skip_test("needs root and sysfs's write-only /sys/bus/cpu/drivers_probe");
    }
    let tree = Tree::rootfs(Path::new("/sys/bus/cpu"), "sysfs".into()).unwrap();
    let err = same_everywhere(&tree, ".").expect_err("a write-only sysfs file cannot be hashed");
    assert!(err.contains("os error 13"), "{err}");
}
