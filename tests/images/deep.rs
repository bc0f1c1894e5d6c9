//! Deep stacks: a 200-layer image (Docker stops at 128) mounts with the
//! overlay driver and every layer's file reads back through the mount.

use crate::common::*;
use strata::ops::image::import::{import, ImportOptions};
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

/// The classic `mount(2)` fallback (kernels before 6.8 have no
/// `lowerdir+`) must also mount a 200-layer stack, whose option string is
/// far over the one-page limit: it rewrites the layer paths relative to
/// their common parent. The new API must be the one used by default.
#[test]
fn classic_mount_fallback_handles_deep_stacks() {
    use strata::sys::mount::{mount_classic, mount_fs, Api};
    let Some(()) = require_root("classic overlay mount") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    let base = env.scratch("a-rather-long-directory-name-to-push-the-options-past-one-page/snapshots");
    let mut lowers = Vec::new();
    for i in 0..200 {
        let d = base.join(format!("{i}/fs"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), i.to_string()).unwrap();
        lowers.push(d.display().to_string());
    }
    let options = vec![format!("lowerdir={}", lowers.join(":")), "ro".to_owned()];
    assert!(options[0].len() > 4096, "the test needs an option string over one page");
    for classic in [true, false] {
        let target = env.scratch(&format!("merged-{classic}"));
        std::fs::create_dir_all(&target).unwrap();
        if classic {
            mount_classic("overlay", "overlay", &options, &target).expect("classic mount with relative paths");
        } else {
            assert_eq!(
                mount_fs("overlay", "overlay", &options, &target).unwrap(),
                Api::New,
                "new mount API on this kernel"
            );
        }
        let read: Vec<String> =
            (0..200).map(|i| std::fs::read_to_string(target.join(format!("f{i}"))).unwrap_or_default()).collect();
        strata::mount::unmount_all(&target).unwrap();
        for (i, r) in read.iter().enumerate() {
            assert_eq!(r, &i.to_string(), "classic={classic}: layer {i} readable");
        }
    }
    assert_eq!(std::env::current_dir().unwrap(), std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), "cwd restored");
}
