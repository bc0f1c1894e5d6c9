//! The seed's walkthrough: five containers on one image share its layers,
//! each with a thin writable layer; `ps -s` shows size and virtual size;
//! removing one container removes its layer and nothing else.

use crate::Host;
use strata::scratch::FsKind;

fn five_containers(kind: FsKind, driver: &'static str) {
    let Some(host) = Host::new(kind, driver) else { return };
    let env = &host.env;
    let app = env.scratch("app.tar");
    crate::common::seed_app_tar(&app);
    env.ok(&["import", "--base", "busybox", app.to_str().unwrap(), "acme/my-base-image:1.0"]);
    env.ok(&["import", "--base", "acme/my-base-image:1.0", "--change", "CMD /app/hello.sh", "acme/my-final-image:1.0"]);
    assert_eq!(env.ok(&["run", "--rm", "acme/my-final-image:1.0"]), "hello world\n", "CMD runs");

    let mut ids = Vec::new();
    for i in 1..=5 {
        let id = env.ok(&["run", "-dit", "--name", &format!("my_container_{i}"), "acme/my-final-image:1.0", "sh"]);
        ids.push(id.trim().to_owned());
    }
    let ps = env.ok(&["ps"]);
    for i in 1..=5 {
        assert!(ps.contains(&format!("my_container_{i}")), "ps lists my_container_{i}:\n{ps}");
    }
    assert!(ps.lines().skip(1).all(|l| l.contains("Up ")), "all running:\n{ps}");

    // ps -s: every fresh container is 0B with the image's virtual size.
    let ps = env.ok(&["ps", "-s"]);
    let sizes: Vec<&str> = ps.lines().skip(1).map(|l| l.rsplit("   ").next().unwrap().trim()).collect();
    assert_eq!(sizes.len(), 5, "{ps}");
    if driver != "copy" {
        assert!(sizes.iter().all(|s| s.starts_with("0B (virtual ")), "fresh containers are 0B:\n{ps}");
    }
    assert!(sizes.windows(2).all(|w| w[0] == w[1]), "same virtual size for all:\n{ps}");

    // A write shows up in that container's size only.
    env.ok(&["exec", "my_container_1", "sh", "-c", "head -c 100000 /dev/zero > /big"]);
    let ps = env.ok(&["ps", "-s"]);
    let line1 = ps.lines().find(|l| l.contains("my_container_1")).unwrap();
    let line2 = ps.lines().find(|l| l.contains("my_container_2")).unwrap();
    if driver == "overlay" {
        assert!(line1.contains("100kB (virtual"), "my_container_1 holds its write: {line1}");
        assert!(line2.contains("0B (virtual"), "my_container_2 unchanged: {line2}");
    } else if driver == "btrfs" {
        // Exclusive extents: the 100000 bytes rounded up to 4 KiB blocks.
        assert!(line1.contains("102kB (virtual"), "my_container_1 holds its write: {line1}");
        assert!(line2.contains("0B (virtual"), "my_container_2 unchanged: {line2}");
    } else {
        // The copy driver's writable layer is a whole copy (as Docker's
        // vfs): its size is the image's plus the write.
        assert_ne!(line1.rsplit("   ").next(), line2.rsplit("   ").next(), "the write shows in one container only");
    }

    // The containers' directories stay tiny: the layers live with the driver.
    for id in &ids {
        let dir = env.root.join("containers").join(id);
        let usage = strata::uring::du::tree_usage(&dir).unwrap();
        assert!(usage.size < 64 * 1024, "{id}: container dir holds {} bytes", usage.size);
    }

    // rm of one container: its layer goes, the image and the others stay.
    let engine = env.engine();
    let key = strata::snapshot::SnapshotKey::new(ids[0].as_str()).unwrap();
    let info = engine.snapshots.stat(&key).unwrap();
    let upper = env.root.join(format!("{driver}/snapshots/{}", info.id));
    assert!(upper.exists());
    drop(engine);
    env.ok(&["rm", "-f", "my_container_1"]);
    assert!(!upper.exists(), "the writable layer is gone from disk");
    assert!(!env.root.join("containers").join(&ids[0]).exists());
    let ps = env.ok(&["ps"]);
    assert_eq!(ps.lines().count(), 5, "four containers still run:\n{ps}");
    assert!(env.ok(&["images"]).contains("acme/my-final-image"));
    assert_eq!(env.ok(&["exec", "my_container_2", "cat", "/app/hello.sh"]), crate::common::SEED_HELLO);
    // The image is in use: rmi refuses.
    assert!(env.fails(&["rmi", "acme/my-final-image:1.0"]).contains("in use by container"));
    let df = env.ok(&["system", "df"]);
    assert!(df.lines().any(|l| l.starts_with("Containers") && l.contains(" 4 ")), "{df}");
}

#[test]
fn seed_walkthrough_overlay() {
    five_containers(FsKind::Xfs, "overlay");
}

#[test]
fn seed_walkthrough_copy() {
    five_containers(FsKind::Xfs, "copy");
}

#[test]
fn seed_walkthrough_btrfs() {
    five_containers(FsKind::Btrfs, "btrfs");
}

#[test]
fn copy_on_write_is_per_container() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    env.ok(&["run", "-dit", "--name", "a", "busybox", "sh"]);
    env.ok(&["run", "-dit", "--name", "b", "busybox", "sh"]);
    env.ok(&["exec", "a", "sh", "-c", "echo changed > /etc/passwd"]);
    assert_eq!(env.ok(&["exec", "a", "cat", "/etc/passwd"]), "changed\n");
    assert!(env.ok(&["exec", "b", "cat", "/etc/passwd"]).starts_with("root:x:0:0"), "b sees the image's file");
    let mnt = std::path::PathBuf::from(env.ok(&["image", "mount", "busybox"]).trim());
    let image_file = std::fs::read_to_string(mnt.join("etc/passwd"));
    env.ok(&["image", "unmount", "busybox"]);
    assert!(image_file.unwrap().starts_with("root:x:0:0"), "the image is unchanged");
    // The changed file lives in a's writable layer only (copy_up).
    let engine = env.engine();
    let a_id = env.ok(&["inspect", "a"]);
    let v: serde_json::Value = serde_json::from_str(&a_id).unwrap();
    let id = v[0]["Id"].as_str().unwrap().to_owned();
    let info = engine.snapshots.stat(&strata::snapshot::SnapshotKey::new(id.as_str()).unwrap()).unwrap();
    let upper = env.root.join(format!("overlay/snapshots/{}/fs", info.id));
    assert_eq!(std::fs::read_to_string(upper.join("etc/passwd")).unwrap(), "changed\n");
    drop(engine);
    env.ok(&["rm", "-f", "a"]);
    assert!(!upper.exists(), "a's writable layer is removed with it");
}
