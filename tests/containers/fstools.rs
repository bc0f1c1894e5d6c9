//! diff, commit, export and cp.

use crate::Host;
use strata::scratch::FsKind;

#[test]
fn diff_commit_export_and_cp() {
    fs_tools(FsKind::Ext4, "overlay");
}

#[test]
fn diff_commit_export_and_cp_btrfs() {
    fs_tools(FsKind::Btrfs, "btrfs");
}

fn fs_tools(kind: FsKind, driver: &'static str) {
    let Some(host) = Host::new(kind, driver) else { return };
    let env = &host.env;
    env.ok(&["run", "-dit", "--name", "c", "busybox", "sh"]);
    assert_eq!(env.ok(&["diff", "c"]), "", "a fresh container has no changes (runtime mount points hidden)");
    env.ok(&["exec", "c", "sh", "-c", "echo new > /newfile; echo extra >> /etc/passwd; rm /etc/group"]);
    assert_eq!(env.ok(&["diff", "c"]), "C /etc\nD /etc/group\nC /etc/passwd\nA /newfile\n");

    // commit: a new image whose top layer is the change, with history.
    let id = env.ok(&["commit", "-m", "snapshot of c", "c", "committed:1"]);
    assert!(id.trim().starts_with("sha256:"));
    assert_eq!(env.ok(&["run", "--rm", "committed:1", "cat", "/newfile"]), "new\n");
    assert_eq!(host.sh(&[], "test -e /etc/group && echo kept").1, "kept\n", "the base image is untouched");
    let out = env.run(&["run", "--rm", "committed:1", "cat", "/etc/group"]);
    assert_ne!(out.status.code(), Some(0), "the deletion was committed");
    let hist = env.ok(&["history", "--no-trunc", "committed:1"]);
    let top = hist.lines().nth(1).unwrap();
    assert!(top.contains("snapshot of c") && top.contains("   sh   "), "history names the command: {top}");
    let mnt = std::path::PathBuf::from(env.ok(&["image", "mount", "committed:1"]).trim());
    let leaked = mnt.join("etc/hosts").exists() || mnt.join("etc/resolv.conf").exists();
    env.ok(&["image", "unmount", "committed:1"]);
    assert!(!leaked, "the runtime's /etc mount points are not committed");

    // cp both ways; paths resolve inside the container.
    let host_file = env.scratch("to-container");
    std::fs::write(&host_file, "from host\n").unwrap();
    env.ok(&["cp", host_file.to_str().unwrap(), "c:/tmp/"]);
    assert_eq!(env.ok(&["exec", "c", "cat", "/tmp/to-container"]), "from host\n");
    let out_dir = env.scratch("from-container");
    env.ok(&["cp", "c:/etc", out_dir.to_str().unwrap()]);
    assert!(std::fs::read_to_string(out_dir.join("passwd")).unwrap().ends_with("extra\n"));
    env.ok(&["exec", "c", "ln", "-s", "/", "/tmp/escape"]);
    let secret = env.scratch("not-for-container");
    std::fs::write(&secret, "host only").unwrap();
    let through = format!("c:/tmp/escape{}", secret.display());
    let out = env.run(&["cp", &through, env.scratch("stolen").to_str().unwrap()]);
    assert!(!out.status.success(), "a symlink to / resolves inside the container, where that path does not exist");

    // export of the stopped container: the merged tree, without runtime placeholders.
    env.ok(&["stop", "-t", "0", "c"]);
    let tar_path = env.scratch("export.tar");
    env.ok(&["export", "-o", tar_path.to_str().unwrap(), "c"]);
    let mut names = Vec::new();
    for e in tar::Archive::new(std::fs::File::open(&tar_path).unwrap()).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.iter().any(|n| n == "bin/busybox") && names.iter().any(|n| n == "newfile"), "{names:?}");
    assert!(!names.iter().any(|n| n == "etc/group"), "deleted file not exported");
    assert!(!names.iter().any(|n| n == "etc/hosts"), "runtime placeholder not exported");
}
