//! Deep stacks: a 200-layer image (Docker stops at 128) mounts with the
//! overlay driver and every layer's file reads back through the mount.

use crate::common::*;
use strata::image::import::{import, ImportOptions};
use strata::scratch::FsKind;

#[test]
fn two_hundred_layer_image_mounts_and_reads() {
    let Some(()) = require_root("200-layer image") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    let engine = env.engine();
    let mut base = None;
    for i in 0..200 {
        let tar_path = env.scratch(&format!("l{i}.tar"));
        one_file_tar(&tar_path, &format!("layer-{i:03}"), format!("content of layer {i}\n").as_bytes());
        let mut f = std::fs::File::open(&tar_path).unwrap();
        let opts = ImportOptions { base: base.clone(), source: format!("l{i}.tar"), ..Default::default() };
        base = Some(import(&engine, Some(&mut f), &opts).expect("import layer"));
    }
    let id = base.unwrap();
    engine.images.tag(&id, &"deep:200".parse().unwrap()).unwrap();
    drop(engine);
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "deep:200"])).unwrap();
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 200);
    let mnt = std::path::PathBuf::from(env.ok(&["image", "mount", "deep:200"]).trim());
    let guard = scopeguard(&env);
    for i in 0..200 {
        let got = std::fs::read_to_string(mnt.join(format!("layer-{i:03}"))).unwrap();
        assert_eq!(got, format!("content of layer {i}\n"));
    }
    drop(guard);
    assert!(mounts_under(&env.root).is_empty());
    assert_eq!(env.ok(&["history", "-q", "deep:200"]).lines().count(), 200);
}

/// Unmounts the image even if an assertion fails.
struct Unmount<'a>(&'a Env);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["image", "unmount", "deep:200"]);
    }
}
fn scopeguard(env: &Env) -> Unmount<'_> {
    Unmount(env)
}
