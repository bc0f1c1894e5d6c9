//! save / load: strata's OCI archives read by skopeo, umoci and podman;
//! layouts and docker-archives written by skopeo loaded by strata; shared
//! layers stored once; identical IDs after a round trip.

use crate::common::*;
use std::process::Command;
use strata::scratch::FsKind;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// busybox:latest and acme/app:1.0 (busybox + one layer) in `env`.
fn two_images(env: &Env) {
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    let app = env.scratch("app.tar");
    one_file_tar(&app, "app.txt", b"app\n");
    env.ok(&[
        "import",
        "--base",
        "busybox",
        "--change",
        "CMD [\"/bin/cat\", \"/app.txt\"]",
        app.to_str().unwrap(),
        "acme/app:1.0",
    ]);
}

fn id_of(env: &Env, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", name])).unwrap();
    v[0]["Id"].as_str().unwrap().to_owned()
}

#[test]
fn save_load_round_trip_keeps_ids_and_shares_layers() {
    let Some(()) = require_root("save/load") else { return };
    let a = Env::new(FsKind::Ext4, "overlay");
    two_images(&a);
    let archive = a.scratch("both.tar");
    a.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:latest", "acme/app:1.0"]);

    let b = Env::new(FsKind::Xfs, "overlay");
    let out = b.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("Loaded image: busybox:latest") && out.contains("Loaded image: acme/app:1.0"), "{out}");
    for name in ["busybox:latest", "acme/app:1.0"] {
        assert_eq!(id_of(&a, name), id_of(&b, name), "{name}: same image ID after save/load");
    }
    // Shared base layer stored once: 2 distinct layers for the 2 images.
    let layerdb = b.root.join("image/overlay/layerdb/sha256");
    assert_eq!(std::fs::read_dir(&layerdb).unwrap().count(), 2);
    // Saving again from the loaded store reproduces the archive's manifests.
    let again = b.scratch("again.tar");
    b.ok(&["save", "-o", again.to_str().unwrap(), "acme/app:1.0"]);
    let m = |e: &Env, n: &str| {
        let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", n])).unwrap();
        v[0]["Metadata"]["Manifest"].as_str().unwrap().to_owned()
    };
    assert_eq!(m(&a, "acme/app:1.0"), m(&b, "acme/app:1.0"), "manifest digest survives save/load");
    // Loading the same archive twice changes nothing on disk.
    let before = b.inventory();
    b.ok(&["load", "-i", archive.to_str().unwrap()]);
    let after = b.inventory();
    let meta = |v: &Vec<String>| {
        v.iter().filter(|p| !p.contains("imagedb/metadata") && !p.contains("repositories")).cloned().collect::<Vec<_>>()
    };
    assert_eq!(meta(&before), meta(&after), "re-load stores nothing new");
}

#[test]
fn skopeo_and_umoci_read_strata_archives() {
    let Some(()) = require_root("skopeo/umoci interop") else { return };
    let Some(()) = require_tool("skopeo", "skopeo interop") else { return };
    let Some(()) = require_tool("umoci", "umoci interop") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    two_images(&env);
    let archive = env.scratch("app.tar.oci");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "acme/app:1.0"]);
    let inspect = sh(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", archive.display())));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{inspect}");
    let raw = sh(Command::new("skopeo")
        .args(["inspect", "--config", "--raw"])
        .arg(format!("oci-archive:{}", archive.display())));
    assert_eq!(format!("sha256:{}", strata::digest::Digest::of(raw.as_bytes()).hex()), id_of(&env, "acme/app:1.0"));

    // umoci reads the layout and unpacks the same files.
    let layout = env.scratch("layout");
    sh(Command::new("skopeo")
        .args(["copy", "--dest-oci-accept-uncompressed-layers"])
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("oci:{}:1.0", layout.display())));
    let bundle = env.scratch("bundle");
    sh(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:1.0", layout.display())).arg(&bundle));
    assert_eq!(std::fs::read_to_string(bundle.join("rootfs/app.txt")).unwrap(), "app\n");
    assert!(bundle.join("rootfs/bin/busybox").is_file());

    // And strata loads what skopeo wrote: the OCI layout directory and a docker-archive.
    let fresh = Env::new(FsKind::Ext4, "copy");
    let out = fresh.ok(&["load", "-i", layout.to_str().unwrap()]);
    let id = id_of(&env, "acme/app:1.0");
    assert_eq!(out.trim(), format!("Loaded image ID: {id}"), "a bare layout tag names no repository");
    assert_eq!(id_of(&fresh, &id), id);
    let docker_archive = env.scratch("docker.tar");
    sh(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci-archive:{}", archive.display()))
        .arg(format!("docker-archive:{}:acme/app:2.0", docker_archive.display())));
    let third = Env::new(FsKind::Ext4, "overlay");
    let out = third.ok(&["load", "-i", docker_archive.to_str().unwrap()]);
    assert!(out.contains("acme/app:2.0"), "{out}");
    let mnt = std::path::PathBuf::from(third.ok(&["image", "mount", "acme/app:2.0"]).trim());
    let content = std::fs::read_to_string(mnt.join("app.txt"));
    third.ok(&["image", "unmount", "acme/app:2.0"]);
    assert_eq!(content.unwrap(), "app\n");
}

#[test]
fn podman_loads_strata_archives() {
    let Some(()) = require_root("podman interop") else { return };
    let Some(()) = require_tool("podman", "podman interop") else { return };
    let env = Env::new(FsKind::Ext4, "overlay");
    two_images(&env);
    let archive = env.scratch("app.oci.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "acme/app:1.0"]);
    // podman refuses a runroot path longer than 50 characters.
    let store = tempfile::Builder::new().prefix("stp").tempdir_in("/tmp").unwrap();
    let (root, run) = (store.path().join("root"), store.path().join("run"));
    let out = sh(Command::new("podman")
        .arg("--root")
        .arg(&root)
        .arg("--runroot")
        .arg(&run)
        .args(["--storage-driver", "vfs", "load", "-i"])
        .arg(&archive));
    assert!(out.contains("acme/app:1.0"), "{out}");
    let ids = sh(Command::new("podman").arg("--root").arg(&root).arg("--runroot").arg(&run).args([
        "--storage-driver",
        "vfs",
        "images",
        "-q",
        "--no-trunc",
    ]));
    assert!(
        ids.contains(id_of(&env, "acme/app:1.0").trim_start_matches("sha256:")),
        "podman sees the same image ID: {ids}"
    );
    let _ = Command::new("podman")
        .arg("--root")
        .arg(&root)
        .arg("--runroot")
        .arg(&run)
        .args(["--storage-driver", "vfs", "system", "reset", "-f"])
        .output();
}
