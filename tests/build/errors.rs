//! Bad Dockerfiles and hostile contexts: each failure names the file and
//! line, and the data root is exactly as it was (no layers, snapshots,
//! images or intermediate containers left behind).

use crate::Host;
use strata::scratch::FsKind;

/// Builds `text`, expects failure, checks the message and the inventory.
fn fails(h: &Host, text: &str, expect: &[&str]) -> String {
    let df = h.dockerfile("Dockerfile.bad", text);
    let before = h.env.inventory();
    let (ok, out, err) = h.build(&["-f", &df]);
    assert!(!ok, "{text:?} built:\n{out}");
    for e in expect {
        assert!(err.contains(e), "{text:?}: error lacks {e:?}:\n{err}");
    }
    assert_eq!(h.env.inventory(), before, "{text:?} left something behind:\n{err}");
    assert_eq!(h.env.ok(&["ps", "-aq"]), "", "no intermediate container left");
    err
}

#[test]
fn malformed_dockerfiles_name_the_line_and_leave_nothing() {
    let Some(h) = Host::new(FsKind::Ext4, "overlay") else { return };
    h.put("file.txt", "x\n", 0o644);
    std::fs::write(h.ctx.parent().unwrap().join("outside.txt"), "host secret\n").unwrap();
    fails(&h, "FROM busybox:latest\nCOPY file.txt /\nFROB x\n", &["Dockerfile.bad:3:1", "FROB"]);
    fails(&h, "FROM busybox:latest\nRUN <<EOF\necho never ends\n", &["Dockerfile.bad:2:", "unterminated heredoc"]);
    fails(&h, "FROM busybox:latest\nSHELL [\"/bin/sh\" \"-c\"]\n", &["Dockerfile.bad:2:", "SHELL"]);
    fails(&h, "# no base\nRUN echo hi\n", &["Dockerfile.bad:2:", "no FROM"]);
    fails(&h, "FROM busybox:latest\nCOPY ../outside.txt /x\n", &["Dockerfile.bad:2", "outside the build context"]);
    fails(&h, "FROM busybox:latest\nCOPY nothere.txt /x\n", &["Dockerfile.bad:2", "nothere.txt: file not found"]);
    fails(&h, "FROM nosuchimage:1\n", &["Dockerfile.bad:1", "nosuchimage:1 not found locally"]);
    fails(&h, "FROM busybox:latest\nADD http://example.com/x.tar /x\n", &["Dockerfile.bad:2", "no network"]);
    fails(&h, "FROM busybox:latest\nENV ${NOPE}=x\n", &["Dockerfile.bad:2", "invalid environment variable: =x"]);
    fails(&h, "FROM busybox:latest\nLABEL \"\"=x\n", &["Dockerfile.bad:2", "invalid label '': empty name"]);
    let err = fails(&h, "FROM busybox:latest\nRUN echo partial > /p && exit 3\n", &["Dockerfile.bad:2"]);
    assert!(err.contains("returned a non-zero code: 3"), "{err}");
    let out = h.env.run(&["build", "-f", &h.ctx.join("Dockerfile.bad").display().to_string(), h.ctx.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a failed build exits 1, as Docker's");
    // Nothing half-made is visible either: no build snapshot survives.
    let mounts = crate::common::mounts_under(&h.env.root);
    assert!(mounts.is_empty(), "{mounts:?}");
}

#[test]
fn context_symlinks_cannot_reach_the_host() {
    let Some(h) = Host::new(FsKind::Ext4, "overlay") else { return };
    let secret = h.ctx.parent().unwrap().join("host-secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    std::fs::create_dir_all(h.ctx.join("dir")).unwrap();
    std::os::unix::fs::symlink(&secret, h.ctx.join("dir/abs-link")).unwrap();
    std::os::unix::fs::symlink("../../host-secret", h.ctx.join("dir/rel-link")).unwrap();
    std::os::unix::fs::symlink(&secret, h.ctx.join("top-link")).unwrap();
    // Inside a directory, symlinks are copied as symlinks.
    let df = h.dockerfile("Dockerfile", "FROM busybox:latest\nCOPY dir/ /d/\n");
    h.built(&["-t", "links:1", "-f", &df]);
    let out = h.env.ok(&[
        "run",
        "--rm",
        "links:1",
        "sh",
        "-c",
        "readlink /d/abs-link; readlink /d/rel-link; cat /d/abs-link 2>&1; true",
    ]);
    assert!(out.starts_with(&format!("{}\n../../host-secret\n", secret.display())), "{out}");
    assert!(!out.contains("host secret"), "the host file's content never enters the image: {out}");
    // A source that is a symlink is followed only inside the context.
    let df = h.dockerfile("Dockerfile.top", "FROM busybox:latest\nCOPY top-link /x\n");
    let (ok, _, err) = h.build(&["-f", &df]);
    assert!(!ok && err.contains("top-link: file not found in build context"), "{err}");
}
