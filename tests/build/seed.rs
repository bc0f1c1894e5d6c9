//! The seed's walkthrough built for real: `Dockerfile.base` (busybox +
//! `COPY . /app`) and `Dockerfile` (+ `CMD /app/hello.sh`), history rows
//! shared with the same IDs and sizes, a rebuild entirely from the cache.

use crate::{built_id, Host};
use strata::scratch::FsKind;

fn seed(kind: FsKind, driver: &'static str) {
    let Some(h) = Host::new(kind, driver) else { return };
    h.put("hello.sh", "#!/bin/sh\necho \"Hello world\"\n", 0o755);
    let base = h.dockerfile("Dockerfile.base", "FROM busybox:latest\nCOPY . /app\n");
    let fin = h.dockerfile("Dockerfile", "FROM acme/my-base-image:1.0\nCMD /app/hello.sh\n");
    let out = h.built(&["-t", "acme/my-base-image:1.0", "-f", &base]);
    assert!(out.contains("Step 1/2 : FROM busybox:latest\n ---> "), "{out}");
    assert!(out.contains("Step 2/2 : COPY . /app\n ---> "), "{out}");
    assert!(out.contains("Successfully tagged acme/my-base-image:1.0"), "{out}");
    let base_id = built_id(&out);
    let out = h.built(&["-t", "acme/my-final-image:1.0", "-f", &fin]);
    assert!(out.contains(&format!("Step 1/2 : FROM acme/my-base-image:1.0\n ---> {base_id}\n")), "{out}");
    let final_id = built_id(&out);
    assert_eq!(h.env.ok(&["run", "--rm", "acme/my-final-image:1.0"]), "Hello world\n");

    // history: the final image's rows are the base image's rows (same IDs
    // and sizes) plus a 0B CMD row on top.
    let hb = h.env.ok(&["history", "acme/my-base-image:1.0"]);
    let hf = h.env.ok(&["history", "acme/my-final-image:1.0"]);
    let rows = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .map(|l| {
                l.split_whitespace().next().unwrap().to_owned()
                    + " "
                    + l.rsplit("   ").find(|s| !s.trim().is_empty()).unwrap_or("").trim()
            })
            .collect()
    };
    let (rb, rf) = (rows(&hb), rows(&hf));
    assert_eq!(rf.len(), rb.len() + 1, "one more row:\n{hb}\n{hf}");
    assert_eq!(&rf[1..], &rb[..], "the base image's rows are shared:\n{hb}\n{hf}");
    let top = hf.lines().nth(1).unwrap();
    assert!(top.starts_with(&final_id), "{top}");
    assert!(top.contains("/bin/sh -c #(nop)  CMD [\"/bin/sh\" \"-c\" \"/app…") && top.contains("0B"), "{top}");
    let copy = hb.lines().nth(1).unwrap();
    assert!(copy.starts_with(&base_id) && copy.contains("/bin/sh -c #(nop) COPY dir:"), "{copy}");
    // The context is hello.sh (30 bytes) plus the two Dockerfiles.
    let ctx_bytes: u64 = ["hello.sh", "Dockerfile", "Dockerfile.base"]
        .iter()
        .map(|f| std::fs::metadata(h.ctx.join(f)).unwrap().len())
        .sum();
    assert!(copy.contains(&format!("{ctx_bytes}B")), "COPY layer is the context's {ctx_bytes} bytes: {copy}");

    // A rebuild is all cache and ends at the same IDs.
    let again = h.built(&["-t", "acme/my-base-image:1.0", "-f", &base]);
    assert!(again.contains("Step 2/2 : COPY . /app\n ---> Using cache\n"), "{again}");
    assert_eq!(built_id(&again), base_id);
    let again = h.built(&["-t", "acme/my-final-image:1.0", "-f", &fin]);
    assert!(again.contains(" ---> Using cache\n"), "{again}");
    assert_eq!(built_id(&again), final_id);

    // Touching a file (a git checkout) keeps the cache: content, not mtimes.
    let f = filetime_touch(&h.ctx.join("hello.sh"));
    let again = h.built(&["-f", &base]);
    assert!(again.contains("Using cache"), "mtime {f} only: {again}");
    assert_eq!(built_id(&again), base_id);
    // Same size, different content: the cache is busted.
    h.put("hello.sh", "#!/bin/sh\necho \"Hello World\"\n", 0o755);
    let changed = h.built(&["-f", &base]);
    assert!(!changed.contains("Using cache"), "{changed}");
    assert_ne!(built_id(&changed), base_id);
    // --no-cache executes every step.
    h.put("hello.sh", "#!/bin/sh\necho \"Hello world\"\n", 0o755);
    let nc = h.built(&["--no-cache", "-f", &base]);
    assert!(!nc.contains("Using cache"), "{nc}");
    // -q prints only the image ID.
    let q = h.built(&["-q", "-f", &base]);
    assert_eq!(q.lines().count(), 1, "{q}");
    assert!(q.starts_with("sha256:"), "{q}");
}

/// Sets a file's mtime an hour back without changing its bytes.
fn filetime_touch(p: &std::path::Path) -> String {
    let st = std::process::Command::new("touch").arg("-d").arg("1 hour ago").arg(p).status().unwrap();
    assert!(st.success());
    format!("{:?}", std::fs::metadata(p).unwrap().modified().unwrap())
}

#[test]
fn seed_walkthrough_overlay() {
    seed(FsKind::Xfs, "overlay");
}

#[test]
fn seed_walkthrough_copy() {
    seed(FsKind::Ext4, "copy");
}

#[test]
fn seed_walkthrough_btrfs() {
    seed(FsKind::Btrfs, "btrfs");
}
