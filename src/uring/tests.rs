//! Unit tests of both engines: parking on a tiny ring, short reads, error
//! isolation within a batch, the fallback switches, and the batch calls
//! checked against std.

use super::*;
use crate::scratch::Tmpfs;
use std::os::unix::ffi::OsStrExt;

/// A place to create files: a tmpfs as root (mass creation stays off the
/// host root), else a temporary directory.
enum Place {
    Tmpfs(Tmpfs),
    Temp(tempfile::TempDir),
}

impl Place {
    fn new() -> Place {
        if crate::sys::process::geteuid().is_root() {
            Place::Tmpfs(Tmpfs::new_in(&std::env::temp_dir(), 1 << 30).expect("mount tmpfs"))
        } else {
            eprintln!("not root: using a temporary directory instead of tmpfs");
            Place::Temp(tempfile::tempdir().unwrap())
        }
    }
    fn path(&self) -> &Path {
        match self {
            Place::Tmpfs(t) => t.path(),
            Place::Temp(t) => t.path(),
        }
    }
}

/// Both engines; io_uring must be available on the test machines, and a
/// test that cannot get it says so.
fn engines() -> Vec<IoEngine> {
    let mut out = vec![IoEngine::sync()];
    match IoEngine::with_kind(IoEngineKind::Uring) {
        Ok(e) => out.push(e),
        Err(e) => eprintln!("io_uring engine not tested: {e}"),
    }
    out
}

fn content(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| u8::try_from((i * 31 + j * 7) % 251).unwrap()).collect()
}

#[test]
fn a_full_submission_queue_parks_work() {
    let place = Place::new();
    let n = 1000;
    for i in 0..n {
        std::fs::write(place.path().join(format!("f{i}")), content(i, i % 50)).unwrap();
    }
    let dir = Dir::open(place.path()).unwrap();
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("f{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let mut engine = IoEngine::uring_with_entries(8).expect("io_uring with 8 entries");
    let got = engine.read_files(&dir, &refs);
    for (i, r) in got.into_iter().enumerate() {
        assert_eq!(r.unwrap(), content(i, i % 50), "f{i}");
    }
    let items: Vec<At<'_>> = refs.iter().map(|name| At { dir: &dir, name }).collect();
    let stats = engine.statx(&items);
    assert_eq!(stats.len(), n);
    for (i, s) in stats.into_iter().enumerate() {
        assert_eq!(s.unwrap().size, (i % 50) as u64);
    }
}

#[test]
fn files_larger_than_a_read_come_back_whole_in_order() {
    let place = Place::new();
    let len = 3 * CHUNK + 17;
    std::fs::write(place.path().join("big"), content(7, len)).unwrap();
    let dir = Dir::open(place.path()).unwrap();
    for mut engine in engines() {
        let mut offsets = Vec::new();
        let mut data = Vec::new();
        engine.read_files_with(&[At { dir: &dir, name: b"big" }], |_, piece| {
            let chunk = piece.unwrap();
            assert_eq!(chunk.offset, data.len() as u64);
            offsets.push((chunk.offset, chunk.eof));
            data.extend_from_slice(chunk.data);
        });
        assert_eq!(data, content(7, len), "{:?}", engine.kind());
        let (f, c) = (FIRST_READ as u64, CHUNK as u64);
        let want: Vec<(u64, bool)> = vec![(0, false), (f, false), (f + c, false), (f + 2 * c, true)];
        assert_eq!(offsets, want, "{:?}", engine.kind());
    }
}

#[test]
fn a_missing_file_fails_alone_and_is_named() {
    let place = Place::new();
    std::fs::write(place.path().join("a"), b"alpha").unwrap();
    std::fs::write(place.path().join("b"), b"").unwrap();
    std::fs::create_dir(place.path().join("d")).unwrap();
    let dir = Dir::open(place.path()).unwrap();
    for mut engine in engines() {
        let got = engine.read_files(&dir, &[b"a", b"missing", b"b", b"d"]);
        assert_eq!(got[0].as_ref().unwrap(), b"alpha");
        let err = got[1].as_ref().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(crate::sys::Errno::NOENT.raw_os_error()));
        assert!(err.to_string().contains("missing"), "{err}");
        assert_eq!(got[2].as_ref().unwrap(), b"");
        assert!(matches!(got[3], Err(UringError::NotAFile(_))), "{:?}", got[3]);
        let stats = engine.statx(&[At { dir: &dir, name: b"nope" }, At { dir: &dir, name: b"a" }]);
        assert!(stats[0].as_ref().unwrap_err().to_string().contains("nope"));
        assert_eq!(stats[1].as_ref().unwrap().size, 5);
    }
}

#[test]
fn sync_is_chosen_explicitly_and_by_environment() {
    let e = IoEngine::sync();
    assert_eq!(e.kind(), IoEngineKind::Sync);
    assert!(matches!(e.sync_reason(), Some(SyncReason::Requested)));
    let e = IoEngine::with_kind(IoEngineKind::Sync).unwrap();
    assert_eq!(e.kind(), IoEngineKind::Sync);
    // The only test that reads STRATA_IO.
    std::env::set_var("STRATA_IO", "sync");
    let e = IoEngine::new();
    std::env::remove_var("STRATA_IO");
    assert_eq!(e.kind(), IoEngineKind::Sync);
    assert_eq!(e.sync_reason().unwrap().to_string(), "STRATA_IO=sync");
    let e = IoEngine::new();
    match e.sync_reason() {
        None => assert_eq!(e.kind(), IoEngineKind::Uring),
        Some(reason) => eprintln!("io_uring unavailable here: {reason}"),
    }
}

#[test]
fn written_files_read_back_and_failures_return_their_buffers() {
    for mut engine in engines() {
        let place = Place::new();
        std::fs::write(place.path().join("taken"), b"old").unwrap();
        let dir = Dir::open(place.path()).unwrap();
        let files: Vec<NewFile> = (0..300)
            .map(|i| NewFile { name: format!("n{i}").into_bytes(), mode: 0o640, data: content(i, i * 37) })
            .chain([NewFile { name: b"taken".to_vec(), mode: 0o600, data: b"new".to_vec() }])
            .collect();
        let written = engine.write_files(&dir, files.clone());
        for (w, f) in written.iter().zip(&files) {
            assert_eq!(&w.file, f, "the buffer comes back");
        }
        let last = written.last().unwrap();
        assert_eq!(last.result.as_ref().unwrap_err().raw_os_error(), Some(crate::sys::Errno::EXIST.raw_os_error()));
        for (i, w) in written[..300].iter().enumerate() {
            w.result.as_ref().unwrap();
            let p = place.path().join(format!("n{i}"));
            assert_eq!(std::fs::read(&p).unwrap(), content(i, i * 37));
        }
        assert_eq!(std::fs::read(place.path().join("taken")).unwrap(), b"old");
    }
}

#[test]
fn copied_ranges_match_and_holes_stay_holes() {
    for mut engine in engines() {
        let place = Place::new();
        let mut jobs = Vec::new();
        for i in 0..20 {
            let src_path = place.path().join(format!("s{i}"));
            let data = content(i, 600_000 + i);
            std::fs::write(&src_path, &data).unwrap();
            let dst_path = place.path().join(format!("d{i}"));
            let dst = std::fs::File::create(&dst_path).unwrap();
            dst.set_len(data.len() as u64).unwrap();
            let src = std::fs::File::open(&src_path).unwrap();
            let segments = vec![(0, 1000), (5000, 5000), (300_000, data.len() as u64)];
            jobs.push(RangeCopy {
                path: dst_path,
                src: Arc::new(OwnedFd::from(src)),
                dst: Arc::new(OwnedFd::from(dst)),
                segments,
            });
        }
        let results = engine.copy_ranges(&jobs);
        for (i, (job, r)) in jobs.iter().zip(results).enumerate() {
            let want_len = 1000 + (600_000 + i as u64 - 300_000);
            assert_eq!(r.unwrap(), want_len);
            let got = std::fs::read(&job.path).unwrap();
            let src = content(i, 600_000 + i);
            assert_eq!(got[..1000], src[..1000]);
            assert!(got[1000..300_000].iter().all(|b| *b == 0));
            assert_eq!(got[300_000..], src[300_000..]);
        }
    }
}

#[test]
fn tree_usage_and_hash_tree_agree_with_std() {
    let place = Place::new();
    let root = place.path().join("t");
    std::fs::create_dir(&root).unwrap();
    // 450 files of 0–20,000 bytes, 100 to a directory (`d0000/f00`…).
    let mut rng = crate::rng::Rng::new(3);
    for i in 0..450 {
        let dir = root.join(format!("d{:04}", i / 100));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{:02}", i % 100)), content(i, rng.index(20_001))).unwrap();
    }
    std::fs::write(root.join("big"), content(1, 2 * CHUNK + 5)).unwrap();
    std::fs::hard_link(root.join("big"), root.join("d0000/big-link")).unwrap();
    std::os::unix::fs::symlink("big", root.join("sym")).unwrap();
    let want_usage = super::du::tree_usage_simple(&root).unwrap();
    let mut want_hashes = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e.path().strip_prefix(&root).unwrap().to_owned();
                want_hashes.insert(rel, crate::digest::Digest::of(&std::fs::read(e.path()).unwrap()));
            }
        }
    }
    for mut engine in engines() {
        let usage = tree_usage(&mut engine, &root).unwrap();
        assert_eq!((usage.size, usage.inodes), (want_usage.size, want_usage.inodes), "{:?}", engine.kind());
        let hashes = hash_tree(&mut engine, &root).unwrap();
        assert_eq!(hashes, want_hashes, "{:?}", engine.kind());
    }
    assert!(want_hashes.keys().any(|k| k.as_os_str().as_bytes() == b"d0000/big-link"));
}

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

/// `read_fds_with` on open descriptors: every engine delivers each file's
/// bytes exactly, sizes across the first-read and chunk boundaries, more
/// files than the ring's depth, on a tiny ring too (parking); a directory
/// fd is `NotAFile` without stopping the rest.
#[test]
fn open_descriptors_read_back_whole_on_every_engine() {
    let place = Place::new();
    let sizes = [0, 1, FIRST_READ - 1, FIRST_READ, FIRST_READ + 1, CHUNK + FIRST_READ + 3, 3 * CHUNK];
    let n = 300;
    let mut want = Vec::new();
    let mut items = Vec::new();
    for i in 0..n {
        let p = place.path().join(format!("f{i}"));
        let data = content(i, sizes[i % sizes.len()]);
        std::fs::write(&p, &data).unwrap();
        want.push(Ok(data));
        items.push(FdRead { fd: Arc::new(std::fs::File::open(&p).unwrap().into()), path: p });
    }
    items.push(FdRead { fd: Arc::new(std::fs::File::open(place.path()).unwrap().into()), path: place.path().into() });
    want.push(Err(()));
    let mut all = engines();
    all.extend(IoEngine::uring_with_entries(8).ok());
    for mut engine in all {
        let mut got: Vec<Result<Vec<u8>, ()>> = items.iter().map(|_| Ok(Vec::new())).collect();
        let mut ends = vec![0; items.len()];
        engine.read_fds_with(&items, |i, piece| match piece {
            Ok(c) => {
                let v = got[i].as_mut().expect("no piece after an error");
                assert_eq!(c.offset, v.len() as u64, "pieces of a file arrive in order");
                v.extend_from_slice(c.data);
                ends[i] += usize::from(c.eof);
            }
            Err(e) => {
                assert!(matches!(e, UringError::NotAFile(_)), "{e}");
                got[i] = Err(());
                ends[i] += 1;
            }
        });
        assert!(got == want, "{:?}: contents differ", engine.kind());
        assert!(ends.iter().all(|&e| e == 1), "{:?}: one end per file: {ends:?}", engine.kind());
        // The caller's descriptors stay open.
        for item in &items[..3] {
            crate::sys::fs::fstat(item.fd.as_fd()).expect("still open");
        }
    }
}
