//! Volatile writable layers (overlay's `volatile`): on by default for
//! `--rm`, opt-in with `--storage-opt overlay.volatile=true`, kept after a
//! clean stop on the same boot, and reset (never presented as intact)
//! when the kernel's marker survived a host restart. A restart cannot be
//! made here; it is stood in for by rewriting the boot ID strata recorded
//! before the mount, the one input that tells a restart apart.

use super::Host;
use std::path::{Path, PathBuf};
use strata::scratch::FsKind;

/// The line of `/proc/self/mountinfo` for the container's root, from
/// inside the container.
const ROOT_MOUNT: &str = "grep ' / / ' /proc/self/mountinfo";

fn files_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            files_named(&p, name, out);
        }
    }
}

/// The kernel's markers (`work/incompat/volatile`) under the data root.
fn markers(h: &Host) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files_named(&h.env.root.join("overlay"), "volatile", &mut out);
    out.retain(|p| p.parent().is_some_and(|d| d.ends_with("work/incompat")));
    out
}

#[test]
fn rm_containers_are_volatile_others_only_when_asked() {
    let Some(h) = Host::new(FsKind::Ext4, "overlay") else { return };
    let (code, out, err) = h.sh(&[], ROOT_MOUNT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fsync=volatile"), "a --rm container's root is volatile: {out}");
    let (_, out, _) = h.sh(&["--storage-opt", "overlay.volatile=false"], ROOT_MOUNT);
    assert!(out.contains(" overlay ") && !out.contains("volatile"), "opted out: {out}");

    let out = h.env.ok(&["run", "--name", "durable", "busybox", "sh", "-c", ROOT_MOUNT]);
    assert!(out.contains(" overlay ") && !out.contains("volatile"), "a kept container is durable: {out}");
    let out = h.env.ok(&[
        "run",
        "--name",
        "asked",
        "--storage-opt",
        "overlay.volatile=true",
        "busybox",
        "sh",
        "-c",
        ROOT_MOUNT,
    ]);
    assert!(out.contains("fsync=volatile"), "{out}");

    let before = h.env.ok(&["ps", "-aq"]);
    let err = h.env.fails(&["run", "--storage-opt", "size=10G", "busybox", "true"]);
    assert!(err.contains("unknown storage option \"size\""), "{err}");
    assert_eq!(h.env.ok(&["ps", "-aq"]), before, "a refused option creates no container");
}

#[test]
fn volatile_is_refused_on_drivers_without_it() {
    let Some(h) = Host::new(FsKind::Xfs, "copy") else { return };
    let err = h.env.fails(&["create", "--storage-opt", "overlay.volatile=true", "busybox", "true"]);
    assert!(err.contains("needs the overlay storage driver (this root uses copy)"), "{err}");
    // --rm on a driver without the option simply runs.
    let (code, _, err) = h.sh(&[], "true");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_volatile_layer_survives_a_clean_stop_and_is_reset_after_a_host_restart() {
    let Some(h) = Host::new(FsKind::Ext4, "overlay") else { return };
    let script = "cat /keep 2>/dev/null || echo missing; echo data > /keep";
    let run = ["run", "--name", "v", "--storage-opt", "overlay.volatile=true", "busybox", "sh", "-c", script];
    assert_eq!(h.env.ok(&run), "missing\n");
    // The kernel left its marker; a plain mount would now be refused.
    assert_eq!(markers(&h).len(), 1, "the kernel's marker after a volatile mount");

    // Same boot: flushed, the marker cleared, the data kept — through a
    // mount (cp) and through a restart.
    let copied = h.env.scratch("keep");
    h.env.ok(&["cp", "v:/keep", copied.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "data\n");
    assert!(markers(&h).is_empty(), "cp's mount settled the layer");
    let out = h.env.run(&["start", "v"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("WARNING"));
    h.env.ok(&["wait", "v"]);
    assert_eq!(h.env.ok(&["logs", "v"]), "missing\ndata\n", "the same boot keeps what was written");

    // Another boot: the record says a boot that is not this one.
    let mut records = Vec::new();
    files_named(&h.env.root.join("containers"), "volatile-boot", &mut records);
    assert_eq!(records.len(), 1, "one boot record");
    let own = std::fs::read_to_string(&records[0]).unwrap();
    assert_eq!(own.trim(), std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim());
    std::fs::write(&records[0], "00000000-0000-4000-8000-000000000000").unwrap();
    assert_eq!(markers(&h).len(), 1);
    // diff reads the upper in place: it must not list the torn layer's files.
    let out = h.env.run(&["diff", "v"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARNING: container v: its volatile writable layer did not survive a host restart"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("/keep"), "the reset layer has no /keep");
    assert!(markers(&h).is_empty(), "the reset layer has no marker");
    h.env.ok(&["start", "v"]);
    h.env.ok(&["wait", "v"]);
    assert_eq!(h.env.ok(&["logs", "v"]), "missing\ndata\nmissing\n", "the reset layer had no /keep");
}

#[test]
fn a_restart_seen_at_start_resets_the_layer_with_a_warning() {
    let Some(h) = Host::new(FsKind::Ext4, "overlay") else { return };
    let script = "cat /keep 2>/dev/null || echo missing; echo data > /keep";
    h.env.ok(&["run", "--name", "w", "--storage-opt", "overlay.volatile=true", "busybox", "sh", "-c", script]);
    let mut records = Vec::new();
    files_named(&h.env.root.join("containers"), "volatile-boot", &mut records);
    std::fs::remove_file(&records[0]).unwrap();
    // No record at all reads as another boot too. Detached start: the
    // warning comes back through the supervisor's report.
    let out = h.env.run(&["start", "w"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not survive a host restart"));
    h.env.ok(&["wait", "w"]);
    assert_eq!(h.env.ok(&["logs", "w"]), "missing\nmissing\n", "the second run found the layer reset");
}
