//! The same Dockerfile and context built by strata and by `buildah bud`
//! (Debian's buildah, vfs storage, chroot isolation) yield identical
//! trees: names, types, contents, modes and owners.

use crate::common::require_tool;
use crate::{tree_listing, Host};
use std::process::Command;
use strata::scratch::FsKind;

const DOCKERFILE: &str = r#"FROM scratch AS files
COPY --chmod=600 config.ini /cfg/secret.ini

FROM scratch
COPY rootfs/ /
ENV APP=/opt/app
WORKDIR /opt/app
COPY --chown=1000:1000 src/ ./src/
COPY hello.sh /usr/local/bin/
COPY --chmod=640 config.ini /etc/app/
ADD files.tar.gz /srv/
RUN mkdir -p /data && echo hi > /data/greeting && chmod 600 /data/greeting && chown 65534:65534 /data/greeting && rm /bin/vi && ln -s /bin/busybox /bin/myapplet
COPY --from=0 /cfg/ /copied/
COPY --from=files /cfg/secret.ini /copied/again.ini
USER nobody
CMD ["hello.sh"]
"#;

/// Paths the two builders legitimately differ on: the runtime's mount
/// points for `RUN` (buildah leaves empty files or directories there).
const RUNTIME: &[&str] = &["etc/hosts", "etc/resolv.conf", "etc/hostname", "proc", "sys", "dev", "run"];

/// buildah with its own storage under `dir`, removed on drop.
struct Buildah {
    root: std::path::PathBuf,
    runroot: std::path::PathBuf,
    mounted: Vec<String>,
}

impl Buildah {
    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root").arg(&self.root).arg("--runroot").arg(&self.runroot).arg("--storage-driver").arg("vfs");
        c
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run buildah");
        assert!(out.status.success(), "buildah {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        for c in &self.mounted {
            let _ = self.cmd().args(["umount", c]).output();
            let _ = self.cmd().args(["rm", c]).output();
        }
        let _ = self.cmd().args(["rmi", "-a", "-f"]).output();
        // buildah keeps a few mounts of its own under the run root.
        let _ = Command::new("umount").arg("-R").arg(&self.runroot).output();
        let _ = std::fs::remove_dir_all(&self.runroot);
    }
}

#[test]
fn trees_match_buildah_bud() {
    let Some(h) = Host::new(FsKind::Xfs, "overlay") else { return };
    let Some(()) = require_tool("buildah", "strata vs buildah") else { return };
    let rootfs = h.ctx.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let bb = h.env.scratch("busybox.tar");
    let st = Command::new("tar").arg("-C").arg(&rootfs).arg("-xf").arg(&bb).status().unwrap();
    assert!(st.success());
    h.put("src/lib/a.txt", "alpha\n", 0o644);
    h.put("src/run.sh", "#!/bin/sh\necho run\n", 0o750);
    h.put("hello.sh", "#!/bin/sh\necho hello\n", 0o755);
    h.put("config.ini", "[app]\nx=1\n", 0o666);
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(h.ctx.join("files.tar.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        crate::common::dir(&mut b, "files", 0o755);
        crate::common::file(&mut b, "files/one.txt", b"one\n", 0o640);
        b.into_inner().unwrap().finish().unwrap();
    }
    let df = h.dockerfile("Dockerfile", DOCKERFILE);
    h.built(&["-t", "cmp:strata", "-f", &df]);

    let scratch = h.env.scratch("buildah");
    let mut b = Buildah {
        root: scratch.join("storage"),
        runroot: std::path::PathBuf::from(format!("/run/strata-bah-{}", std::process::id())),
        mounted: Vec::new(),
    };
    b.ok(&["bud", "--isolation", "chroot", "-f", &df, "-t", "cmp:buildah", h.ctx.to_str().unwrap()]);
    let ctr = b.ok(&["from", "cmp:buildah"]).trim().to_owned();
    b.mounted.push(ctr.clone());
    let theirs = std::path::PathBuf::from(b.ok(&["mount", &ctr]).trim());

    let ours = h.env.ok(&["image", "mount", "cmp:strata"]).trim().to_owned();
    let listing = tree_listing(std::path::Path::new(&ours), RUNTIME);
    h.env.ok(&["image", "unmount", "cmp:strata"]);
    let expected = tree_listing(&theirs, RUNTIME);
    let diff: Vec<String> = expected
        .iter()
        .filter(|l| !listing.contains(l))
        .map(|l| format!("buildah only: {l}"))
        .chain(listing.iter().filter(|l| !expected.contains(l)).map(|l| format!("strata only: {l}")))
        .collect();
    assert!(diff.is_empty(), "trees differ:\n{}", diff.join("\n"));
    assert!(listing.len() > 250, "a real tree was compared ({} entries)", listing.len());
}
