//! Crashes and concurrency: a strata killed mid-import leaves nothing the
//! next command does not clean up, and parallel imports sharing a layer
//! store it once.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata::scratch::FsKind;

fn many_files_tar(path: &std::path::Path, n: usize) {
    let mut b = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()));
    let data = vec![b'x'; 2048];
    for d in 0..(n / 1000).max(1) {
        dir(&mut b, &format!("d{d}"), 0o755);
        for i in 0..1000.min(n) {
            file(&mut b, &format!("d{d}/f{i}"), &data, 0o644);
        }
    }
    b.finish().unwrap();
}

#[test]
fn killed_import_leaves_nothing_after_the_next_command() {
    let Some(()) = require_root("crash recovery") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    let big = env.scratch("big.tar");
    many_files_tar(&big, 40_000);
    env.ok(&["images"]);
    let clean = env.inventory();
    let meta = env.root.join("overlay/metadata.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&env.root)
        .args(["import", big.to_str().unwrap(), "big:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while the layer is being applied: once the extract snapshot
    // is recorded and some files are on disk.
    let start = Instant::now();
    loop {
        let recorded = std::fs::read_to_string(&meta).map(|m| m.contains("extract-")).unwrap_or(false);
        if recorded {
            std::thread::sleep(Duration::from_millis(150));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "import never started applying");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the import was killed before it finished");
    assert_ne!(env.inventory(), clean, "the killed import left state to recover");
    // Any next command recovers.
    env.ok(&["images"]);
    let files = |v: Vec<String>| v.into_iter().filter(|p| p != "overlay/metadata.json").collect::<Vec<_>>();
    assert_eq!(files(env.inventory()), files(clean), "recovery removed every trace of the killed import");
    let mut left = 0;
    env.engine().snapshots.walk(|_| left += 1).unwrap();
    assert_eq!(left, 0, "no snapshot record survives recovery");
    // And the import then works.
    env.ok(&["import", big.to_str().unwrap(), "big:1"]);
    assert_eq!(std::fs::read_dir(env.root.join("image/overlay/layerdb/sha256")).unwrap().count(), 1);
}

#[test]
fn parallel_imports_store_a_shared_layer_once() {
    let Some(()) = require_root("parallel imports") else { return };
    let env = Env::new(FsKind::Xfs, "overlay");
    let shared = env.scratch("shared.tar");
    many_files_tar(&shared, 3000);
    let mut tars = vec![shared.clone(), shared.clone(), shared.clone()];
    for i in 0..3 {
        let t = env.scratch(&format!("own{i}.tar"));
        one_file_tar(&t, "own", format!("layer {i}").as_bytes());
        tars.push(t);
    }
    env.ok(&["images"]);
    let children: Vec<_> = tars
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .arg("--root")
                .arg(&env.root)
                .args(["import", t.to_str().unwrap(), &format!("img:{i}")])
                .output_async()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "import {i}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let layers = std::fs::read_dir(env.root.join("image/overlay/layerdb/sha256")).unwrap().count();
    assert_eq!(layers, 4, "three imports of one tar share one layer");
    let engine = env.engine();
    let mut keys = Vec::new();
    engine.snapshots.walk(|i| keys.push((i.key.to_string(), i.kind))).unwrap();
    assert_eq!(keys.len(), 4, "one committed snapshot per layer, no extract debris: {keys:?}");
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 6);
    assert_eq!(std::fs::read_dir(env.root.join("staging")).unwrap().count(), 0);
}

trait SpawnOutput {
    fn output_async(&mut self) -> std::process::Child;
}
impl SpawnOutput for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}
