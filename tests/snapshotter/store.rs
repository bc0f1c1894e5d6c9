//! The containerd semantics the conformance suite does not check, on the
//! store `strata snapshotter serve` runs on: containerd's key text never
//! reaching a path, the unpacker's `containerd.io/snapshot.ref`, the error
//! codes containerd acts on, labels, the namespace apart from strata's
//! images, crash debris, one server per home, concurrent calls.

use super::{require, Scratch};
use std::collections::BTreeMap;
use strata::proxy::{self, Code, Filters, ProxyError, Store, SNAPSHOT_REF_LABEL};
use strata::scratch::{FsKind, ScratchFs};
use strata::snapshot::{Kind, SnapshotKey};

fn scratch(what: &str) -> Option<Scratch> {
    if !require(rustix::process::geteuid().is_root(), what, "needs root (loop devices)") {
        return None;
    }
    Some(Scratch { fs: Some(ScratchFs::new(FsKind::Ext4, 1 << 30).expect("scratch filesystem")) })
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn code<T: std::fmt::Debug>(r: Result<T, ProxyError>) -> Code {
    r.expect_err("the call must be refused").code()
}

fn filter(f: &str) -> Filters {
    Filters::parse(&[f.to_owned()]).expect("filter parses")
}

/// Every file name under `dir`, recursively.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().expect("type").is_dir() {
            out.extend(names(&e.path()));
        }
    }
    out
}

#[test]
fn containerd_keys_are_stored_not_used_as_paths() {
    let Some(s) = scratch("proxy store keys") else { return };
    let root = s.path().join("root");
    let store = proxy::open(&root, "overlay").expect("open");
    let key = "default/5/extract-12 sha256:ab/../../escape";
    let name = "sha256:0123 /etc/passwd";
    store.create(Kind::Active, key, "", labels(&[])).expect("prepare");
    store.commit(name, key, labels(&[])).expect("commit");
    let info = store.stat(name).expect("stat");
    assert_eq!((info.name.as_str(), info.kind, info.parent.as_str()), (name, Kind::Committed, ""));
    let child = "k8s.io/7/extract-34\tline\nbreak";
    store.create(Kind::Active, child, name, labels(&[])).expect("prepare on a parent with odd text");
    assert_eq!(store.stat(child).expect("stat").parent, name);
    assert!(!s.path().join("escape").exists() && !root.join("escape").exists());
    for n in names(&root) {
        assert!(
            !n.contains("extract") && !n.contains("sha256") && !n.contains(' '),
            "a containerd key became a path: {n:?}"
        );
    }
    let listed: Vec<String> = store.list(&filter(&format!("parent=={name:?}"))).into_iter().map(|i| i.name).collect();
    assert_eq!(listed, vec![child.to_owned()]);
}

#[test]
fn snapshot_ref_of_a_committed_layer_answers_already_exists() {
    let Some(s) = scratch("proxy store snapshot.ref") else { return };
    let store = proxy::open(&s.path().join("root"), "overlay").expect("open");
    store.create(Kind::Active, "extract-1", "", labels(&[(SNAPSHOT_REF_LABEL, "sha256:layer")])).expect("prepare");
    // Not yet committed: a second unpack of the same layer may prepare.
    store.create(Kind::Active, "extract-2", "", labels(&[(SNAPSHOT_REF_LABEL, "sha256:layer")])).expect("prepare");
    store.commit("sha256:layer", "extract-1", labels(&[])).expect("commit");
    let e = store.create(Kind::Active, "extract-3", "", labels(&[(SNAPSHOT_REF_LABEL, "sha256:layer")]));
    assert_eq!(code(e), Code::AlreadyExists);
    assert_eq!(code(store.stat("extract-3")), Code::NotFound, "a refused prepare made a snapshot");
    assert_eq!(code(store.commit("sha256:layer", "extract-2", labels(&[]))), Code::AlreadyExists);
}

#[test]
fn refusals_carry_the_codes_containerd_checks() {
    let Some(s) = scratch("proxy store error codes") else { return };
    let store = proxy::open(&s.path().join("root"), "overlay").expect("open");
    store.create(Kind::Active, "a", "", labels(&[])).expect("prepare");
    assert_eq!(code(store.create(Kind::Active, "a", "", labels(&[]))), Code::AlreadyExists);
    assert_eq!(code(store.create(Kind::View, "a", "", labels(&[]))), Code::AlreadyExists);
    assert_eq!(code(store.create(Kind::Active, "b", "a", labels(&[]))), Code::InvalidArgument, "active parent");
    assert_eq!(code(store.create(Kind::Active, "b", "missing", labels(&[]))), Code::NotFound);
    assert_eq!(code(store.create(Kind::Active, "", "", labels(&[]))), Code::InvalidArgument);
    store.commit("c", "a", labels(&[])).expect("commit");
    assert_eq!(code(store.stat("a")), Code::NotFound, "the active key is gone after commit");
    assert_eq!(
        code(store.create(Kind::Active, "c", "", labels(&[]))),
        Code::AlreadyExists,
        "keys and names share one space"
    );
    store.create(Kind::View, "v", "c", labels(&[])).expect("view");
    assert_eq!(code(store.commit("v2", "v", labels(&[]))), Code::FailedPrecondition, "committing a view");
    assert_eq!(code(store.commit("x", "missing", labels(&[]))), Code::NotFound);
    assert_eq!(code(store.remove("c")), Code::FailedPrecondition, "removing a parent");
    assert_eq!(code(store.remove("missing")), Code::NotFound);
    assert_eq!(code(store.usage("missing")), Code::NotFound);
    assert_eq!(code(store.mounts("missing")), Code::NotFound);
    let mut info = store.stat("c").expect("stat");
    assert_eq!(code(store.update(info.clone(), &["parent".into()])), Code::InvalidArgument);
    info.name = "missing".into();
    assert_eq!(code(store.update(info, &[])), Code::NotFound);
    let bad: ProxyError = Filters::parse(&["labels.\"x".into()]).expect_err("bad filter").into();
    assert_eq!(bad.code(), Code::InvalidArgument);
    store.remove("v").expect("remove view");
    store.remove("c").expect("remove the parent once childless");
    assert!(store.list(&Filters::default()).is_empty());
}

#[test]
fn labels_round_trip_and_update_by_field_path() {
    let Some(s) = scratch("proxy store labels") else { return };
    let store = proxy::open(&s.path().join("root"), "overlay").expect("open");
    let given = [
        ("containerd.io/snapshot/ünïcode", "a=b,c \"q\""),
        ("containerd.io/gc.ref.snapshot.overlay", "x"),
        ("empty", ""),
    ];
    store.create(Kind::Active, "k", "", labels(&given)).expect("prepare");
    let info = store.stat("k").expect("stat");
    let want: BTreeMap<String, String> = labels(&given[..2]).into_iter().collect();
    assert_eq!(info.labels, want, "labels as given (an empty value is no label, as in containerd)");
    assert_eq!(info.created, info.updated);
    let mut change = info.clone();
    change.labels = labels(&[("new", "1"), ("containerd.io/gc.ref.snapshot.overlay", "y")]).into_iter().collect();
    let updated = store
        .update(change.clone(), &["labels.new".into(), "labels.containerd.io/snapshot/ünïcode".into()])
        .expect("update");
    let want: BTreeMap<String, String> =
        labels(&[("new", "1"), ("containerd.io/gc.ref.snapshot.overlay", "x")]).into_iter().collect();
    assert_eq!(updated.labels, want, "labels.<k> sets or deletes only that label");
    assert!(updated.updated > info.updated && updated.created == info.created);
    let replaced = store.update(change.clone(), &[]).expect("update all");
    assert_eq!(replaced.labels, change.labels);
    assert_eq!(store.list(&filter("labels.new==1")).len(), 1);
    assert_eq!(store.list(&filter("labels.new==2")).len(), 0);
    drop(store);
    let reopened = proxy::open(&s.path().join("root"), "overlay").expect("reopen");
    assert_eq!(reopened.stat("k").expect("stat").labels, change.labels, "labels are stored, not only held");
}

#[test]
fn the_service_namespace_is_apart_from_strata_images() {
    let Some(s) = scratch("proxy store namespace") else { return };
    let root = s.path().join("root");
    let engine = strata::engine::Engine::open(&root, "overlay").expect("engine");
    let mine = SnapshotKey::new("strata-own").expect("key");
    engine.snapshots.prepare(&mine, None).expect("strata's own snapshot");
    let store = proxy::open(&root, "overlay").expect("open");
    assert_eq!(store.home(), root.join("containerd/overlay"));
    store.create(Kind::Active, "ctr", "", labels(&[])).expect("prepare");
    store.cleanup().expect("cleanup");
    assert!(engine.snapshots.exists(&mine).expect("exists"), "the service's cleanup removed strata's snapshot");
    engine.recover().expect("recover");
    assert!(store.stat("ctr").is_ok());
    assert!(
        store.snapshotter().exists(&proxy::strata_key("ctr")).expect("exists"),
        "strata's recovery removed the service's"
    );
    let mut seen = Vec::new();
    engine.snapshots.walk(|i| seen.push(i.key.to_string())).expect("walk");
    assert_eq!(seen, vec!["strata-own".to_owned()]);
}

#[test]
fn cleanup_removes_what_no_record_names() {
    let Some(s) = scratch("proxy store cleanup") else { return };
    let root = s.path().join("root");
    let store = proxy::open(&root, "overlay").expect("open");
    store.create(Kind::Active, "kept", "", labels(&[])).expect("prepare");
    store.create(Kind::Active, "lost-bytes", "", labels(&[])).expect("prepare");
    // A crash after the snapshotter made a snapshot, before it was recorded.
    let orphan = proxy::strata_key("never-recorded");
    store.snapshotter().prepare(&orphan, None).expect("orphan");
    // A record whose snapshot is gone (removed behind the store's back).
    store.snapshotter().remove(&proxy::strata_key("lost-bytes")).expect("remove");
    let n = store.cleanup().expect("cleanup");
    assert_eq!(n, 2);
    assert!(!store.snapshotter().exists(&orphan).expect("exists"));
    assert_eq!(code(store.stat("lost-bytes")), Code::NotFound);
    assert!(store.stat("kept").is_ok());
    let dirs = names(&root.join("containerd/overlay/snapshots"));
    assert_eq!(dirs.iter().filter(|n| n.parse::<u64>().is_ok()).count(), 1, "bytes on disk: {dirs:?}");
}

#[test]
fn one_server_per_home() {
    let Some(s) = scratch("proxy store owner lock") else { return };
    let root = s.path().join("root");
    let first = proxy::open(&root, "overlay").expect("open");
    let second = proxy::open(&root, "overlay").map(|_: Store| ());
    assert!(matches!(second, Err(ProxyError::Busy(_))), "{second:?}");
    drop(first);
    proxy::open(&root, "overlay").expect("free once the first is gone");
}

#[test]
fn concurrent_unpacks_on_one_store() {
    let Some(s) = scratch("proxy store concurrency") else { return };
    let store = proxy::open(&s.path().join("root"), "copy").expect("open");
    store.create(Kind::Active, "base-a", "", labels(&[])).expect("prepare");
    store.commit("base", "base-a", labels(&[])).expect("commit");
    std::thread::scope(|t| {
        for n in 0..8 {
            let store = &store;
            t.spawn(move || {
                for layer in 0..4 {
                    let key = format!("default/{n}/extract-{layer}");
                    let parent = if layer == 0 { "base".to_owned() } else { format!("layer-{n}-{}", layer - 1) };
                    store.create(Kind::Active, &key, &parent, labels(&[])).expect("prepare");
                    store.commit(&format!("layer-{n}-{layer}"), &key, labels(&[])).expect("commit");
                }
            });
        }
    });
    assert_eq!(store.list(&filter("kind==committed")).len(), 1 + 8 * 4);
    assert_eq!(store.list(&filter("parent==base")).len(), 8);
}
