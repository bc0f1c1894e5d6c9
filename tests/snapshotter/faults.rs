//! Faults through containerd: the service SIGKILLed while containerd
//! unpacks a layer into one of its snapshots, and again while containerd's
//! garbage collection removes what that unpack left; after each restart
//! containerd carries on, and in the end its garbage collection (Remove of
//! what it no longer names, then the proxy's Cleanup) leaves no snapshot
//! bytes in the service's driver home that no record names.
//!
//! Two kinds of debris, two cleaners:
//! * a snapshot the service records but containerd no longer names (the
//!   interrupted unpack: containerd dropped its own record when the Commit
//!   failed): containerd's garbage collection walks the service and
//!   removes it;
//! * bytes no record of the service names (a Remove interrupted after its
//!   record went, before its bytes did): only the service's Cleanup, which
//!   containerd calls at the end of each garbage collection, removes them.

use crate::containerd::PLUGIN;
use crate::ctr::World;
use crate::daemon::{poll, run, Out};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;
use strata::digest::ChainId;
use strata::scratch::FsKind;

/// The big layer: `big/0000` … `big/3199`, 64 KiB of seeded random bytes
/// each (200 MiB that no compression shrinks). Many files make containerd's
/// unpack and the service's removal of it long enough to kill into.
const FILES: usize = 3200;
const FILE_SIZE: usize = 64 << 10;
const SEED: u64 = 0x0057_4741_5441_3136;

/// Writes the big layer tar to `out`; the sha256 of all its files'
/// contents in name order (what `cat /big/* | sha256sum` prints).
fn big_layer(out: &Path) -> String {
    let mut rng = strata::rng::Rng::new(SEED);
    let mut contents = strata::digest::Hasher::new();
    let file = std::io::BufWriter::new(std::fs::File::create(out).expect("big layer tar"));
    let mut b = tar::Builder::new(file);
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "big/", std::io::empty()).expect("tar dir");
    for i in 0..FILES {
        let data = rng.bytes(FILE_SIZE);
        contents.update(&data);
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, format!("big/{i:04}"), data.as_slice()).expect("tar entry");
    }
    b.into_inner().expect("tar").flush().expect("flush");
    contents.finish().hex().to_owned()
}

/// The service's driver home as the filesystem and the records see it.
struct Census {
    /// Snapshot directories under `<home>/snapshots`.
    on_disk: BTreeSet<u64>,
    /// The snapshot contract's records: ID → strata key.
    recorded: BTreeMap<u64, String>,
}

impl Census {
    /// Reads the home (safe beside a running service: the contract's
    /// records are read under their shared lock).
    fn take(home: &Path) -> Census {
        let dir = home.join("snapshots");
        let on_disk = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").file_name().to_string_lossy().parse().expect("numeric snapshot dir"))
            .collect();
        let snapshots = strata::drivers::open_at(home, "overlay").expect("the home's records");
        let mut recorded = BTreeMap::new();
        snapshots.walk(|i| drop(recorded.insert(i.id.0, i.key.as_str().to_owned()))).expect("walk");
        Census { on_disk, recorded }
    }

    /// Directories no record names: the debris Cleanup removes.
    fn unrecorded(&self) -> Vec<u64> {
        self.on_disk.iter().filter(|id| !self.recorded.contains_key(id)).copied().collect()
    }

    fn id_of(&self, key: &str) -> Option<u64> {
        let key = strata::proxy::strata_key(key);
        self.recorded.iter().find(|(_, k)| **k == key.as_str()).map(|(id, _)| *id)
    }
}

/// containerd's keys the service was given (prepare keys, commit names),
/// by the strata key each is stored under.
fn service_keys(w: &World) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in w.service.calls("prepare").iter().chain(&w.service.calls("commit")) {
        // prepare "KEY" parent "PARENT" / commit "KEY" as "NAME"
        for quoted in line.split('"').skip(1).step_by(2).filter(|s| !s.is_empty()) {
            out.insert(strata::proxy::strata_key(quoted).as_str().to_owned(), quoted.to_owned());
        }
    }
    out
}

/// Records of the service whose snapshot containerd does not name: the
/// service's key is `<namespace>/<n>/<name>`, and containerd knows `name`.
fn unnamed(w: &World, census: &Census) -> Vec<String> {
    let keys = service_keys(w);
    let mut out = Vec::new();
    for key in census.recorded.values() {
        let backend = keys.get(key).unwrap_or_else(|| panic!("strata key {key} is no key containerd gave"));
        let name = backend.splitn(3, '/').nth(2).expect("<namespace>/<n>/<name>");
        if w.cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "info", name]).code != Some(0) {
            out.push(backend.clone());
        }
    }
    out
}

/// The first prepare of an extract snapshot for `chain` after `mark`.
fn extract_key(w: &World, mark: usize, chain: &ChainId) -> Option<String> {
    let needle = format!(" {chain}\" parent ");
    let line = w.calls_since(mark, "prepare").into_iter().find(|l| l.contains(&needle))?;
    Some(line.split('"').nth(1).expect("quoted key").to_owned())
}

fn file_count(dir: &Path) -> Option<usize> {
    Some(std::fs::read_dir(dir).ok()?.count())
}

#[test]
fn sigkill_during_an_unpack_then_pull_run_and_cleanup_leave_no_debris() {
    let Some(w) = World::start("ctr-fault", FsKind::Xfs, "overlay", 3 << 30) else { return };
    let mut w = w;
    let home = strata::proxy::home(&w.service.root, "overlay");
    let (base, base_chain) = w.push_base("base:1");
    let tar = w.file("big.tar");
    let contents = big_layer(&tar);
    let (big, big_chain) = w.push_layer(&base, &base_chain, &tar, "big:1");
    std::fs::remove_file(&tar).expect("remove the tar");

    // The base, pulled whole, is named by its image and outlives every
    // garbage collection below.
    w.pull(&base).ok();

    // 1. SIGKILL once containerd writes the big layer into the extract
    // snapshot the service prepared for it (not inside the Prepare: the
    // service logs a call before doing it).
    let mark = w.log_mark();
    let mut pull = w.cd.ctr(&["images", "pull", "--plain-http", "--snapshotter", PLUGIN, &big]);
    let pulling = std::thread::spawn(move || run(&mut pull));
    let extract = poll(Duration::from_secs(50), || extract_key(&w, mark, &big_chain));
    let extract = extract.unwrap_or_else(|| panic!("no prepare of the big layer:\n{}", w.service.log_text()));
    let writing = poll(Duration::from_secs(30), || {
        let id = Census::take(&home).id_of(&extract)?;
        let written = file_count(&home.join(format!("snapshots/{id}/fs/big"))).unwrap_or(0);
        (written > 0).then_some(written)
    });
    w.service.kill();
    let written = writing.expect("containerd did not write into the extract snapshot within 30 s");
    eprintln!("killed during the unpack: {written} of {FILES} files written");
    assert!(w.calls_since(mark, "commit").iter().all(|l| !l.contains(&big_chain.to_string())), "killed too late");
    assert!(written < FILES, "killed after the whole layer was written");
    let out: Out = pulling.join().expect("pull thread");
    let err = out.fails();
    // containerd says `connection refused` on the socket, or `connection
    // closed: unavailable` when its client saw the connection go.
    let commit = "failed to commit snapshot extract-";
    assert!(err.contains(commit) && err.contains(&big_chain.to_string()), "the big layer's Commit fails:\n{err}");

    // 2. Restarted, the service serves the next pull and run. The
    // interrupted unpack is the service's still, but containerd gave it
    // up: debris for containerd's garbage collection. (containerd asks
    // the service even to list snapshots, so this is seen only now.)
    w.service.restart();
    w.wait_reachable(&base_chain);
    let census = Census::take(&home);
    let leftover = census.id_of(&extract).expect("the extract snapshot is recorded");
    assert!(census.unrecorded().is_empty(), "{:?}", census.unrecorded());
    assert_eq!(unnamed(&w, &census), vec![extract.clone()], "the interrupted unpack, unnamed by containerd");
    w.pull(&big).ok();
    let script = "ls /big | wc -l; cat /big/* | sha256sum";
    let out = run(&mut w.ctr_run(&[], &big, "check", &["sh", "-c", script]));
    assert_eq!(out.ok(), format!("{FILES}\n{contents}  -\n"), "the big layer's files, all of them");

    // 3. Removing the container makes containerd collect garbage: it
    // removes the interrupted unpack's snapshot (record first, then
    // bytes). SIGKILL again once those bytes start to go.
    let leftover_dir = home.join("snapshots").join(leftover.to_string());
    let files = leftover_dir.join("fs/big");
    // containerd's applier finished writing through its own mount after
    // the first kill; only its Commit failed.
    let before = file_count(&files).unwrap_or(0);
    assert!(before > 0, "the interrupted unpack left no files in {}", files.display());
    let mark = w.log_mark();
    let mut rm = w.cd.ctr(&["containers", "rm", "check"]);
    let removing = std::thread::spawn(move || run(&mut rm));
    // A tight loop: the removal takes tens of milliseconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(leftover_dir.exists(), "the removal finished before the kill: no partial removal to show");
        if file_count(&files).is_none_or(|n| n < before) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "garbage collection did not remove {extract}");
    }
    w.service.kill();
    removing.join().expect("rm thread").ok();
    let census = Census::take(&home);
    assert_eq!(census.unrecorded(), vec![leftover], "bytes no record names, left by the interrupted remove");
    let quoted = format!("\"{extract}\"");
    assert!(w.calls_since(mark, "remove").iter().any(|l| l.contains(&quoted)), "containerd's Remove took the bytes");
    let left = file_count(&files).unwrap_or(0);
    eprintln!("killed during the removal: {left} of {before} files left in {}", leftover_dir.display());

    // A restart alone does not remove them: that is Cleanup's job.
    w.service.restart();
    w.wait_reachable(&base_chain);
    assert_eq!(Census::take(&home).unrecorded(), vec![leftover], "debris before Cleanup");

    // 4. The next garbage collection (after a removal) ends with the
    // proxy's Cleanup.
    let mark = w.log_mark();
    w.cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "prepare", "gc-trigger", ""]).ok();
    w.cd.ctr_out(&["snapshots", "--snapshotter", PLUGIN, "rm", "gc-trigger"]).ok();
    let clean = poll(Duration::from_secs(20), || {
        let census = Census::take(&home);
        census.unrecorded().is_empty().then_some(census)
    });
    let census = clean.unwrap_or_else(|| {
        let left = Census::take(&home).unrecorded();
        panic!("bytes no record names 20 s after containerd's GC: {left:?}\n{}", w.service.log_text())
    });
    // The service logs a Cleanup when it has returned.
    let by_cleanup = poll(Duration::from_secs(5), || {
        w.calls_since(mark, "cleanup").iter().any(|l| l == "strata-snapshotter: cleanup removed 1").then_some(())
    });
    assert!(
        by_cleanup.is_some(),
        "the proxy's Cleanup, called by containerd's GC, removed them: {:?}",
        w.calls_since(mark, "cleanup")
    );
    assert!(!leftover_dir.exists());
    assert_eq!(unnamed(&w, &census), Vec::<String>::new(), "records containerd does not name after its GC");
    let expected: BTreeSet<u64> = census.recorded.keys().copied().collect();
    assert_eq!(census.on_disk, expected);
}
