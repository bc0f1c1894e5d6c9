//! Hostile and malformed layers: refused with an error naming the entry,
//! or confined to the snapshot; either way nothing is written outside the
//! store, and a refused layer leaves no image, layer or staging debris.

use crate::common::*;
use std::path::Path;
use strata::scratch::FsKind;

/// Appends an entry with a raw name, bypassing the tar crate's path
/// checks (which refuse `..`).
fn raw_entry(b: &mut tar::Builder<std::fs::File>, kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn hostile_tar(path: &Path, build: impl FnOnce(&mut tar::Builder<std::fs::File>)) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    file(&mut b, "innocent", b"fine", 0o644);
    build(&mut b);
    b.finish().unwrap();
}

/// Appends the hostile entries; gets a directory outside the store.
type Build = Box<dyn Fn(&mut tar::Builder<std::fs::File>, &Path)>;

struct Case {
    name: &'static str,
    /// Text the error must contain (the entry's name), or None when the
    /// layer may instead be accepted with the write confined.
    error_names: Option<&'static str>,
    build: Build,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "dotdot entry",
            error_names: Some("../evil"),
            build: Box::new(|b, _| raw_entry(b, tar::EntryType::Regular, "../evil", None, b"x")),
        },
        Case {
            name: "nested dotdot entry",
            error_names: Some("a/../../evil"),
            build: Box::new(|b, _| raw_entry(b, tar::EntryType::Regular, "a/../../evil", None, b"x")),
        },
        Case {
            name: "hardlink to a host path",
            error_names: Some("passwd-link"),
            build: Box::new(|b, _| raw_entry(b, tar::EntryType::Link, "passwd-link", Some("/etc/passwd"), b"")),
        },
        Case {
            name: "hardlink outside the layer",
            error_names: Some("up-link"),
            build: Box::new(|b, _| raw_entry(b, tar::EntryType::Link, "up-link", Some("../../outside"), b"")),
        },
        Case {
            name: "write through an absolute symlink",
            error_names: None,
            build: Box::new(|b, outside| {
                raw_entry(b, tar::EntryType::Symlink, "link", Some(outside.to_str().unwrap()), b"");
                raw_entry(b, tar::EntryType::Regular, "link/pwned", None, b"x");
            }),
        },
        Case {
            name: "write through a relative symlink climbing out",
            error_names: None,
            build: Box::new(|b, _| {
                raw_entry(b, tar::EntryType::Symlink, "up", Some("../../../../../../../../.."), b"");
                raw_entry(b, tar::EntryType::Regular, "up/tmp/strata-pwned", None, b"x");
            }),
        },
    ]
}

fn hostile(driver: &'static str) {
    let Some(()) = require_root("hostile layers") else { return };
    let env = Env::new(FsKind::Ext4, driver);
    let outside = env.scratch("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let good = env.scratch("good.tar");
    one_file_tar(&good, "ok", b"ok");
    env.ok(&["import", good.to_str().unwrap(), "good:1"]);
    for case in cases() {
        let before = env.inventory();
        let tar_path = env.scratch("hostile.tar");
        hostile_tar(&tar_path, |b| (case.build)(b, &outside));
        let out = env.run(&["import", tar_path.to_str().unwrap(), "hostile:1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match case.error_names {
            Some(entry) => {
                assert!(!out.status.success(), "{}: must be refused", case.name);
                assert!(stderr.contains(entry), "{}: error names the entry {entry:?}: {stderr}", case.name);
                assert_eq!(env.inventory(), before, "{}: a refused layer leaves no debris", case.name);
            }
            None => {
                if out.status.success() {
                    env.ok(&["rmi", "hostile:1"]);
                }
                assert_eq!(env.inventory(), before, "{}: store back to its state", case.name);
            }
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{}: nothing written outside", case.name);
        assert!(!Path::new("/tmp/strata-pwned").exists(), "{}: nothing written to the host", case.name);
        assert!(!env.fs.path().join("evil").exists() && !env.root.join("evil").exists(), "{}", case.name);
    }
    // Malformed input: garbage and a truncated tar.
    let junk = env.scratch("junk.tar");
    std::fs::write(&junk, vec![0x5a; 10_000]).unwrap();
    let before = env.inventory();
    let err = env.fails(&["import", junk.to_str().unwrap(), "junk:1"]);
    assert!(err.to_lowercase().contains("tar") || err.contains("layer"), "garbage is reported: {err}");
    let truncated = env.scratch("trunc.tar");
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    let bytes = std::fs::read(&rootfs).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    env.fails(&["import", truncated.to_str().unwrap(), "trunc:1"]);
    assert_eq!(env.inventory(), before, "malformed layers leave no debris");
}

#[test]
fn hostile_layers_overlay() {
    hostile("overlay");
}

#[test]
fn hostile_layers_copy() {
    hostile("copy");
}
