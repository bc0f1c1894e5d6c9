//! The btrfs driver through the CLI: copy-on-write per extent shown by
//! `ps -s`, and a clear refusal of a data root that is not on btrfs.

use crate::common::{require_root, Env};
use crate::Host;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use strata::scratch::FsKind;

const GIB: u64 = 1 << 30;

/// Streams a tar holding `/big`, `GIB` bytes of `a` (real data: real
/// extents, not a hole), into `strata import - <tag>` on top of busybox.
fn import_gibibyte_image(env: &Env, tag: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(&env.root)
        .args(["--storage-driver", env.driver, "import", "--base", "busybox", "-", tag])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata import");
    let stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, stdin));
        let mut h = tar::Header::new_gnu();
        h.set_size(GIB);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, "big", std::io::repeat(b'a').take(GIB))?;
        b.into_inner()?.flush()
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().expect("stream the tar");
    assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// The SIZE column of `ps -s` for container `name`: (size, virtual size)
/// in bytes as Docker's units print them (`4.1kB (virtual 1.07GB)`).
fn ps_size(env: &Env, name: &str) -> (f64, f64) {
    let ps = env.ok(&["ps", "-s"]);
    let line = ps.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not in:\n{ps}"));
    let col = line.rsplit("   ").next().unwrap().trim();
    let (size, rest) = col.split_once(" (virtual ").unwrap_or_else(|| panic!("no virtual size in {col:?}"));
    let parse = |s: &str| -> f64 {
        let at = s.find(|c: char| c.is_ascii_alphabetic()).unwrap();
        let (n, unit) = s.split_at(at);
        let scale = match unit {
            "B" => 1.0,
            "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            other => panic!("unit {other:?} in {col:?}"),
        };
        n.parse::<f64>().unwrap() * scale
    };
    (parse(size), parse(rest.trim_end_matches(')')))
}

/// The figure: one byte written into a 1 GiB file the container
/// inherited from its image makes the container one extent bigger, not a
/// gibibyte (overlay's copy_up would copy the whole file).
#[test]
fn one_byte_into_an_inherited_gibibyte_is_one_extent() {
    let Some(host) = Host::new(FsKind::Btrfs, "btrfs") else { return };
    let env = &host.env;
    import_gibibyte_image(env, "big:1");
    env.ok(&["run", "-dit", "--name", "writer", "big:1", "sh"]);
    let (size, virt) = ps_size(env, "writer");
    assert_eq!(size, 0.0, "a fresh container holds nothing");
    assert!(virt >= GIB as f64, "the image's 1 GiB file is real extents: virtual {virt}");

    env.ok(&["exec", "writer", "sh", "-c", "printf Z | dd of=/big bs=1 seek=123456789 conv=notrunc 2>/dev/null"]);
    let got = env.ok(&["exec", "writer", "sh", "-c", "dd if=/big bs=1 skip=123456788 count=3 2>/dev/null"]);
    assert_eq!(got, "aZa", "the byte landed");
    let (size, virt_after) = ps_size(env, "writer");
    eprintln!("after a 1-byte write into a 1 GiB inherited file: size {size} B, virtual {virt_after} B");
    assert!(size > 0.0, "the write shows");
    assert!(size < (1 << 20) as f64, "one extent, not the file: {size} B");
    assert!(virt_after < virt + (1 << 20) as f64, "virtual size grows by the extent only");
}

/// A btrfs data root on another filesystem is refused up front, naming
/// the filesystem, before anything is written.
#[test]
fn btrfs_driver_refuses_a_root_not_on_btrfs() {
    let Some(()) = require_root("btrfs refusal test") else { return };
    let env = Env::new(FsKind::Ext4, "btrfs");
    let err = env.fails(&["images"]);
    assert!(err.contains("storage driver btrfs") && err.contains("extfs, not btrfs"), "unclear refusal: {err}");
    assert!(!env.root.join("btrfs/metadata.json").exists(), "nothing written");
}
