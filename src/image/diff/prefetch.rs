//! Reading a directory's small files ahead, many at a time, so a layer
//! diff of a cold tree waits for the disk once per window instead of once
//! per file.
//!
//! The walk still writes entries one by one, in order. When it reaches a
//! small regular file it has not read yet, [`Window::fill`] takes that file
//! and the next candidates of the same directory (up to [`WINDOW_FILES`]
//! files and [`WINDOW_BYTES`] bytes), opens each exactly as the plain path
//! does ([`super::open_listed_file`]: `O_PATH`, type and inode checked on
//! the descriptor, then reopened, so a FIFO or device swapped in is never
//! opened for reading), and hands the descriptors to the I/O engine in one
//! batch ([`IoEngine::read_fds_with`]: io_uring keeps them all in flight).
//! Each file's bytes must add up to the size the walk listed, no more and
//! no less, or the entry is [`DiffError::Changed`], as on the plain path.
//!
//! Memory is bounded across the whole walk (a window may stay full while
//! the walk descends into a subdirectory): [`HELD_MAX`] bytes at most.
//! Only single-link files of at most [`FILE_MAX`] bytes are read ahead;
//! bigger files stream through the plain path, where the kernel's own
//! sequential readahead already keeps the disk busy.

use super::{lossy, open_listed_file, DiffError};
use crate::sys::fs::{Kind, Meta};
use crate::uring::{FdRead, IoEngine};
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// Largest file read ahead.
pub const FILE_MAX: u64 = 1 << 20;
/// Files per window.
pub const WINDOW_FILES: usize = 256;
/// Bytes per window.
pub const WINDOW_BYTES: u64 = 8 << 20;
/// Bytes held in all windows of a walk at once.
pub const HELD_MAX: u64 = 32 << 20;

/// Whether the walk would read this entry's bytes ahead (the caller also
/// requires that the entry is written at all).
pub fn candidate(meta: &Meta) -> bool {
    meta.kind == Kind::File && meta.size > 0 && meta.size <= FILE_MAX && meta.nlink == 1
}

/// The engine and the bytes held by every window of one walk.
pub struct Reader {
    engine: IoEngine,
    held: u64,
}

impl Reader {
    pub fn new(engine: IoEngine) -> Reader {
        Reader { engine, held: 0 }
    }
}

/// The files of one directory read ahead, by child index.
#[derive(Default)]
pub struct Window {
    ready: HashMap<usize, Result<Vec<u8>, DiffError>>,
}

impl Window {
    /// The bytes of child `index` if they were read ahead (once).
    pub fn take(&mut self, reader: &mut Reader, index: usize) -> Option<Result<Vec<u8>, DiffError>> {
        let got = self.ready.remove(&index)?;
        if let Ok(data) = &got {
            reader.held -= data.len() as u64;
        }
        Some(got)
    }

    /// The bytes of child `index`: from this window, or from a new one
    /// filled from `index` on (`entries` starts there); `None` when the
    /// walk's limit leaves no room, and the caller reads it the plain way.
    pub fn get(
        &mut self,
        reader: &mut Reader,
        dir: BorrowedFd<'_>,
        index: usize,
        entries: impl Iterator<Item = (usize, Vec<u8>, Vec<u8>, Meta)>,
    ) -> Option<Result<Vec<u8>, DiffError>> {
        if let Some(got) = self.take(reader, index) {
            return Some(got);
        }
        self.fill(reader, dir, entries);
        self.take(reader, index)
    }

    /// Reads ahead the candidates among `entries` (child index, name, path,
    /// meta), which start at the file the walk needs now; stops at the
    /// window's limits or the walk's. Returns false if nothing could be
    /// taken (the caller reads that file the plain way).
    pub fn fill(
        &mut self,
        reader: &mut Reader,
        dir: BorrowedFd<'_>,
        entries: impl Iterator<Item = (usize, Vec<u8>, Vec<u8>, Meta)>,
    ) -> bool {
        let (mut files, mut bytes) = (Vec::new(), 0u64);
        for (index, name, path, meta) in entries {
            if files.len() == WINDOW_FILES
                || bytes + meta.size > WINDOW_BYTES
                || reader.held + bytes + meta.size > HELD_MAX
            {
                break;
            }
            bytes += meta.size;
            files.push((index, name, path, meta));
        }
        if files.is_empty() {
            return false;
        }
        let mut items = Vec::with_capacity(files.len());
        let mut slots = Vec::with_capacity(files.len());
        for (index, name, path, meta) in files {
            match open_listed_file(dir, &name, &path, &meta) {
                Ok(fd) => {
                    items.push(FdRead { fd: Arc::new(fd), path: lossy(&path).into() });
                    slots.push((index, path, meta.size));
                }
                Err(e) => {
                    self.ready.insert(index, Err(e));
                }
            }
        }
        let mut data: Vec<Result<Vec<u8>, DiffError>> =
            slots.iter().map(|&(_, _, size)| Ok(Vec::with_capacity(usize::try_from(size).unwrap_or(0)))).collect();
        reader.engine.read_fds_with(&items, |i, piece| {
            let (_, path, size) = &slots[i];
            match piece {
                Ok(chunk) => {
                    if let Ok(v) = &mut data[i] {
                        v.extend_from_slice(chunk.data);
                        // Grown past the listed size, or ended short of it.
                        if v.len() as u64 > *size || (chunk.eof && v.len() as u64 != *size) {
                            data[i] = Err(DiffError::Changed { path: lossy(path) });
                        }
                    }
                }
                Err(e) => {
                    let source = std::io::Error::other(e.to_string());
                    data[i] = Err(DiffError::Entry { path: lossy(path), op: "read", source });
                }
            }
        });
        for ((index, _, _), d) in slots.into_iter().zip(data) {
            if let Ok(v) = &d {
                reader.held += v.len() as u64;
            }
            self.ready.insert(index, d);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::scratch::Tmpfs;
    use crate::uring::IoEngineKind;
    use std::os::fd::AsFd;
    use std::path::Path;

    /// Every way of reading: the plain twin, read-ahead on the sync
    /// engine, read-ahead on io_uring (when the kernel has it).
    fn readers() -> Vec<(&'static str, Option<IoEngine>)> {
        let mut out = vec![("plain", None), ("sync", Some(IoEngine::sync()))];
        match IoEngine::with_kind(IoEngineKind::Uring) {
            Ok(e) => out.push(("uring", Some(e))),
            Err(e) => crate::scratch::skip_test(&format!("io_uring read-ahead not tested: {e}")),
        }
        out
    }

    /// A tree with more small files than a window holds, files at and
    /// around [`FILE_MAX`], empty files, hard links, symlinks, a FIFO,
    /// xattrs and nested directories, in random order of creation.
    fn random_tree(root: &Path, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut dirs = vec![root.to_owned()];
        let mut files = Vec::new();
        for n in 0..1200 {
            let parent = dirs[rng.index(dirs.len())].clone();
            let p = parent.join(format!("e{n}"));
            match rng.index(20) {
                0..=1 => {
                    std::fs::create_dir(&p).unwrap();
                    dirs.push(p);
                }
                2 if !files.is_empty() => {
                    let target: &std::path::PathBuf = &files[rng.index(files.len())];
                    std::fs::hard_link(target, &p).unwrap();
                }
                3 => std::os::unix::fs::symlink(format!("../x{n}"), &p).unwrap(),
                4 if n % 7 == 0 => crate::sys::fs::mkfifo(&p, 0o644).unwrap(),
                _ => {
                    let size = match rng.index(10) {
                        0 => 0,
                        1 => usize::try_from(FILE_MAX).unwrap() + rng.index(3) - 1,
                        2 => rng.range_usize(1 << 20, 3 << 20),
                        _ => rng.range_usize(1, 40 << 10),
                    };
                    let data: Vec<u8> = (0..size).map(|i| ((i as u64 * 131 + seed) % 251) as u8).collect();
                    std::fs::write(&p, data).unwrap();
                    if n % 5 == 0 {
                        crate::sys::xattr::lset(&p, &"user.k".into(), format!("v{n}").as_bytes()).unwrap();
                    }
                    files.push(p);
                }
            }
        }
    }

    #[test]
    fn read_ahead_writes_the_same_tar_as_the_plain_walk() {
        if !crate::sys::process::geteuid().is_root() {
            return crate::scratch::skip_test("needs root for tmpfs");
        }
        for seed in [1, 2, 3] {
            let place = Tmpfs::new(2 << 30).unwrap();
            random_tree(place.path(), seed);
            let mut want: Option<(Vec<u8>, super::super::DiffOutcome)> = None;
            for (name, reader) in readers() {
                let mut out = Vec::new();
                let outcome = super::super::write_tree_using(place.path(), &mut out, reader).unwrap();
                match &want {
                    None => want = Some((out, outcome)),
                    Some((bytes, o)) => {
                        assert_eq!(&outcome, o, "seed {seed}: {name} outcome");
                        assert!(bytes == &out, "seed {seed}: {name} wrote different bytes");
                    }
                }
            }
        }
    }

    /// A file whose length is not the one listed is `Changed`, never a
    /// short or long entry: both directions, on every engine.
    #[test]
    fn a_file_longer_or_shorter_than_listed_is_changed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![7u8; 5000]).unwrap();
        let fd = crate::sys::fs::open_dir(dir.path()).unwrap();
        let real = crate::sys::fs::lstat_at(fd.as_fd(), b"f").unwrap();
        for (_, engine) in readers() {
            let Some(engine) = engine else { continue };
            let mut reader = Reader::new(engine);
            for size in [4999, 5001] {
                let mut window = Window::default();
                let meta = Meta { size, ..real };
                assert!(window.fill(&mut reader, fd.as_fd(), [(0, b"f".to_vec(), b"f".to_vec(), meta)].into_iter()));
                match window.take(&mut reader, 0) {
                    Some(Err(DiffError::Changed { path })) => assert_eq!(path, "f"),
                    other => panic!("listed {size} bytes of 5000: {:?}", other.map(|r| r.map(|v| v.len()))),
                }
            }
            let mut window = Window::default();
            window.fill(&mut reader, fd.as_fd(), [(0, b"f".to_vec(), b"f".to_vec(), real)].into_iter());
            assert_eq!(window.take(&mut reader, 0).unwrap().unwrap(), vec![7u8; 5000]);
            assert_eq!(reader.held, 0, "taken bytes are no longer held");
        }
    }
}
