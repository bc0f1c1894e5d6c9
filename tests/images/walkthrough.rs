//! The seed's walkthrough with `import` standing in for `pull`: a base
//! image, `acme/my-base-image:1.0` (+ COPY . /app) and
//! `acme/my-final-image:1.0` (+ CMD), sharing layers on disk.

use crate::common::*;
use strata::scratch::FsKind;

fn walkthrough(kind: FsKind, driver: &'static str) {
    let Some(()) = require_root("seed walkthrough") else { return };
    let env = Env::new(kind, driver);
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let app = env.scratch("app.tar");
    seed_app_tar(&app);
    let base_id = env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    assert!(base_id.trim().starts_with("sha256:"), "import prints the image ID: {base_id}");
    env.ok(&["import", "--base", "busybox", app.to_str().unwrap(), "acme/my-base-image:1.0"]);
    env.ok(&["import", "--base", "acme/my-base-image:1.0", "--change", "CMD /app/hello.sh", "acme/my-final-image:1.0"]);

    let images = env.ok(&["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID") && lines[0].contains("SIZE"),
        "{images}"
    );
    for name in ["busybox", "acme/my-base-image", "acme/my-final-image"] {
        assert!(lines.iter().any(|l| l.starts_with(name)), "{name} listed:\n{images}");
    }

    // history: the final image's rows are the base image's rows plus a
    // 0B CMD row; the shared rows are identical, IMAGE IDs included.
    let base_hist = env.ok(&["history", "--no-trunc", "acme/my-base-image:1.0"]);
    let final_hist = env.ok(&["history", "--no-trunc", "acme/my-final-image:1.0"]);
    let base_rows: Vec<&str> = base_hist.lines().skip(1).collect();
    let final_rows: Vec<&str> = final_hist.lines().skip(1).collect();
    assert_eq!(final_rows.len(), base_rows.len() + 1, "{final_hist}");
    let cols = |r: &str| r.split("   ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    assert!(final_rows[0].contains(r#"CMD ["/bin/sh" "-c" "/app/hello.sh"]"#), "{final_hist}");
    assert_eq!(cols(final_rows[0])[3], "0B", "metadata-only row is 0B: {}", final_rows[0]);
    // CREATED is relative to now and may tick between the two calls; every
    // other column of the shared rows must be equal.
    for (b, f) in base_rows.iter().zip(&final_rows[1..]) {
        let (b, f) = (cols(b), cols(f));
        assert_eq!(b[0], f[0], "IMAGE column of a shared row");
        assert_eq!(b[2..], f[2..], "CREATED BY / SIZE / COMMENT of a shared row");
    }
    // The base image's own ID shows on its top row in the final image's history.
    let base = env.ok(&["inspect", "acme/my-base-image:1.0"]);
    let base_json: serde_json::Value = serde_json::from_str(&base).unwrap();
    let base_full = base_json[0]["Id"].as_str().unwrap().to_owned();
    assert!(final_rows[1].starts_with(&base_full), "base ID on the shared top row: {}", final_rows[1]);

    // Shared layers exist once: two layers, two committed snapshots.
    let fin: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "acme/my-final-image:1.0"])).unwrap();
    assert_eq!(fin[0]["RootFS"]["Layers"], base_json[0]["RootFS"]["Layers"]);
    let layerdb = env.root.join(format!("image/{driver}/layerdb/sha256"));
    assert_eq!(std::fs::read_dir(&layerdb).unwrap().count(), 2, "one layerdb entry per distinct layer");
    let engine = env.engine();
    let mut committed = 0;
    engine.snapshots.walk(|i| committed += usize::from(i.kind == strata::snapshot::Kind::Committed)).unwrap();
    assert_eq!(committed, 2, "one snapshot per distinct layer");

    // image mount shows the merged tree, read-only.
    let mnt = env.ok(&["image", "mount", "acme/my-final-image:1.0"]);
    let mnt = std::path::PathBuf::from(mnt.trim());
    assert_eq!(std::fs::read_to_string(mnt.join("app/hello.sh")).unwrap(), SEED_HELLO);
    assert!(mnt.join("bin/busybox").is_file());
    assert_eq!(std::fs::read_link(mnt.join("bin/sh")).unwrap().to_str(), Some("busybox"));
    let err = std::fs::write(mnt.join("app/new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "image mounts are read-only");
    assert!(env.fails(&["rmi", "acme/my-final-image:1.0"]).contains("image mount"), "rmi refuses a mounted image");
    env.ok(&["image", "unmount", "acme/my-final-image:1.0"]);
    assert!(mounts_under(&env.root).is_empty(), "unmount leaves nothing mounted");

    // rmi frees only what no other image uses.
    let out = env.ok(&["rmi", "acme/my-final-image:1.0"]);
    assert!(out.contains("Untagged: acme/my-final-image:1.0") && out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(std::fs::read_dir(&layerdb).unwrap().count(), 2, "layers still used by my-base-image stay");
    env.ok(&["rmi", "acme/my-base-image:1.0"]);
    assert_eq!(std::fs::read_dir(&layerdb).unwrap().count(), 1, "the app layer went with its last image");
    env.ok(&["image", "mount", "busybox"]);
    env.ok(&["image", "unmount", "busybox"]);
    env.ok(&["rmi", "busybox"]);
    assert_eq!(std::fs::read_dir(&layerdb).unwrap().count(), 0);
    let blobs = std::fs::read_dir(env.root.join("content/blobs/sha256")).unwrap().count();
    assert_eq!(blobs, 0, "no blob outlives the images that used it");
    let mut left = 0;
    env.engine().snapshots.walk(|_| left += 1).unwrap();
    assert_eq!(left, 0, "no snapshot outlives its layer");
}

#[test]
fn walkthrough_overlay_ext4() {
    walkthrough(FsKind::Ext4, "overlay");
}

#[test]
fn walkthrough_overlay_xfs() {
    walkthrough(FsKind::Xfs, "overlay");
}

#[test]
fn walkthrough_copy_xfs() {
    walkthrough(FsKind::Xfs, "copy");
}

#[test]
fn walkthrough_btrfs() {
    walkthrough(FsKind::Btrfs, "btrfs");
}

#[test]
fn rmi_with_several_tags_needs_force_and_untags_by_name() {
    let Some(()) = require_root("rmi tags") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    let t = env.scratch("one.tar");
    one_file_tar(&t, "hello", b"hi");
    env.ok(&["import", t.to_str().unwrap(), "a:1"]);
    env.ok(&["tag", "a:1", "b:2"]);
    let id = env.ok(&["images", "-q"]);
    assert_eq!(id.lines().count(), 1, "two tags, one image: {id}");
    assert!(env.fails(&["rmi", id.trim()]).contains("must be forced"));
    assert_eq!(env.ok(&["rmi", "b:2"]).trim(), "Untagged: b:2");
    let out = env.ok(&["rmi", "a:1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert!(env.fails(&["inspect", "a:1"]).contains("No such image"));
}

/// `rmi` leaves the layers an operation in progress claims (a pull that
/// found them present and is about to store an image on them) and frees
/// them once the claim is gone.
#[test]
fn rmi_keeps_layers_claimed_by_an_operation_in_progress() {
    let Some(()) = require_root("rmi vs claims") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    let tar = env.scratch("one.tar");
    one_file_tar(&tar, "one.txt", b"1\n");
    env.ok(&["import", tar.to_str().unwrap(), "one:1"]);
    let engine = env.engine();
    let chains = engine.images.get(&engine.images.resolve("one:1").unwrap()).unwrap().chain_ids();
    let claim = engine.layers().claim(&chains).unwrap();
    let out = env.ok(&["rmi", "one:1"]);
    assert!(out.contains("Untagged: one:1"), "{out}");
    assert!(!out.contains(&chains[0].to_string()), "a claimed layer is not deleted:\n{out}");
    assert!(engine.layers().get(&chains[0]).unwrap().is_some(), "claimed layer kept");
    drop(claim);
    engine.layers().remove(&chains[0]).unwrap();
}
