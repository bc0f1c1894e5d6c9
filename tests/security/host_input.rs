//! Names and values from users and images are checked with Docker's rules
//! before anything is written: a refused `create` leaves the data root as
//! it was.

use super::common::{busybox_rootfs, require_root, Env};
use strata::image::changes::Change;
use strata::ops::image::import::{import, ImportOptions};
use strata::scratch::FsKind;

fn env_with_busybox(test: &str) -> Option<Env> {
    require_root(test)?;
    let env = Env::new(FsKind::Ext4, "overlay");
    let rootfs = env.scratch("busybox.tar");
    busybox_rootfs(&rootfs);
    env.ok(&["import", rootfs.to_str().unwrap(), "busybox:latest"]);
    Some(env)
}

#[test]
fn bad_names_hostnames_and_env_are_refused_with_dockers_words() {
    let Some(env) = env_with_busybox("bad_names_hostnames_and_env_are_refused_with_dockers_words") else { return };
    let before = env.inventory();
    let cases: &[(&[&str], &str)] = &[
        (&["--name", "a/b"], "Invalid container name (a/b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        (&["--name", "_x"], "Invalid container name (_x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        (&["--name", "web\nevil"], "Invalid container name (web\nevil)"),
        (&["--hostname", "h\n6.6.6.6 registry"], "invalid hostname format: h\n6.6.6.6 registry"),
        (&["--hostname", &"h".repeat(65)], "invalid hostname format"),
        (&["-e", "=x"], "invalid environment variable: =x"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend(["busybox:latest", "true"]);
        let err = env.fails(&args);
        assert!(err.contains(want), "strata {args:?}: {err}");
        assert_eq!(env.inventory(), before, "strata {args:?} left something behind");
    }
    // A good name still works, and a leading slash is Docker's optional one.
    env.ok(&["create", "--name", "/web.1_a-b", "--hostname", "web-1.example", "busybox:latest", "true"]);
    assert!(env.ok(&["ps", "-a"]).contains("web.1_a-b"));
    env.ok(&["rm", "web.1_a-b"]);
}

#[test]
fn an_image_env_without_a_key_is_refused_at_create() {
    let Some(env) = env_with_busybox("an_image_env_without_a_key_is_refused_at_create") else { return };
    // The Dockerfile parser refuses `ENV =x`; a crafted image config is
    // the only way in, so make one through the library.
    let engine = env.engine();
    let base = engine.images.resolve("busybox:latest").unwrap();
    let opts = ImportOptions {
        base: Some(base),
        changes: vec![Change::Env(vec![(String::new(), "x".into())])],
        source: "test".into(),
        ..Default::default()
    };
    let id = import(&engine, None, &opts).expect("import with a crafted change");
    let reference: strata::image::reference::Reference = "evil:env".parse().unwrap();
    engine.images.tag(&id, &reference).unwrap();
    drop(engine);
    let before = env.inventory();
    let err = env.fails(&["create", "evil:env", "true"]);
    assert!(err.contains("invalid environment variable: =x (from image evil:env)"), "{err}");
    assert_eq!(env.inventory(), before);
}
