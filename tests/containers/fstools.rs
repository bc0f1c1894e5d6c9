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

/// `cp CONTAINER:SRC -` streams a tar to standard output, as Docker does:
/// a directory under its own name, `SRC/.` as its contents, a file alone,
/// symlinks as links (never followed); nothing is written on the host.
#[test]
fn cp_to_dash_streams_a_tar() {
    let Some(h) = super::Host::new(FsKind::Ext4, "overlay") else { return };
    h.env.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b && ln -s /etc/passwd /data/link",
    ]);
    let cwd = tempfile::tempdir().unwrap();
    let stream = |src: &str| -> Vec<(String, tar::EntryType, String)> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(&h.env.root)
            .args(["cp", src, "-"])
            .current_dir(cwd.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "cp {src} -: {}", String::from_utf8_lossy(&out.stderr));
        let mut a = tar::Archive::new(&out.stdout[..]);
        let mut v = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut text = String::new();
            if e.header().entry_type() == tar::EntryType::Symlink {
                text = e.link_name().unwrap().unwrap().display().to_string();
            } else {
                std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            }
            v.push((e.path().unwrap().display().to_string(), e.header().entry_type(), text));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    use tar::EntryType::{Directory, Regular, Symlink};
    let s = |x: &str| x.to_owned();
    assert_eq!(
        stream("src:/data"),
        vec![
            (s("data/"), Directory, s("")),
            (s("data/a"), Regular, s("a\n")),
            (s("data/link"), Symlink, s("/etc/passwd")),
            (s("data/sub/"), Directory, s("")),
            (s("data/sub/b"), Regular, s("b\n")),
        ]
    );
    assert_eq!(stream("src:/data/sub/b"), vec![(s("b"), Regular, s("b\n"))]);
    assert_eq!(stream("src:/data/link"), vec![(s("link"), Symlink, s("/etc/passwd"))], "the link is not followed");
    let contents: Vec<String> = stream("src:/data/.").into_iter().map(|e| e.0).collect();
    assert_eq!(contents, ["a", "link", "sub/", "sub/b"]);
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "cp to - wrote into the working directory: {left:?}");
}
