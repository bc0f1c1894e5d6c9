//! Benchmark datasets: layer tars (plain, gzip, zstd) made once and cached,
//! and file trees made on the filesystem under test.
//!
//! ```text
//! <data dir>/                              --data, /var/tmp/strata-bench-data
//! ├── synthetic-v1-50000f-3x100MiB/        one directory per dataset
//! │   ├── layer.tar                        the layer, uncompressed
//! │   ├── layer.tar.gz                     gzip -6 of it
//! │   ├── layer.tar.zst                    zstd -3 of it
//! │   └── dataset.json                     written last: the cache marker
//! └── debian-bookworm-minbase-v1/          same files
//! ```
//!
//! A dataset directory is built under a `.tmp-` name and renamed into
//! place when complete, so a run interrupted half-way leaves nothing that
//! looks cached.
//!
//! The synthetic layer is streamed straight into its tar: no file tree is
//! ever created for it, so the root filesystem (which may be slow at mass
//! file creation) only receives three large files. Its content is
//! deterministic (seeded [`Rng`]) and semi-compressible ([`TextGen`]: zstd
//! -3 shrinks it about 2.6×, gzip -6 about 2.1×, like typical image
//! content). The Debian
//! rootfs is made by `debootstrap` on a scratch filesystem and tarred by
//! GNU tar from there.

use super::{BenchError, Options};
use crate::rng::Rng;
use crate::scratch::{FsKind, ScratchFs};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the synthetic generator's output changes, so cached datasets
/// are rebuilt. 2: content from [`crate::rng`]'s xorshift64* (1 was
/// SplitMix64).
const SYNTHETIC_VERSION: u32 = 2;
/// Bump when the Debian dataset's recipe changes.
const DEBIAN_VERSION: u32 = 1;
/// Every synthetic entry's mtime: 2023-11-14, fixed for reproducibility.
const MTIME: u64 = 1_700_000_000;
/// Files per leaf directory and leaf directories per parent in synthetic
/// trees.
const FILES_PER_DIR: usize = 100;
const DIRS_PER_PARENT: usize = 20;

/// Text-like content: words from a seeded vocabulary, chosen with a skew
/// towards frequent ones, with a random binary run now and then. Entropy
/// per byte is what makes it compress ~2.6× (zstd -3) rather than 10×
/// (repeats) or 1× (noise).
#[derive(Debug, Clone)]
pub struct TextGen {
    rng: Rng,
    words: Vec<Vec<u8>>,
}

impl TextGen {
    const WORDS: usize = 4096;

    pub fn new(seed: u64) -> TextGen {
        let mut rng = Rng::new(seed);
        let words = (0..Self::WORDS)
            .map(|_| {
                let len = rng.range_usize(2, 12);
                (0..len).map(|_| b'a' + u8::try_from(rng.range(0, 25)).unwrap_or(0)).collect()
            })
            .collect();
        TextGen { rng, words }
    }

    /// Fills `buf` completely.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() {
            let r = self.rng.next_u64();
            if r % 256 == 0 {
                // A binary run (think: an embedded blob) of 32..287 bytes.
                let n = (32 + usize::from(u8::try_from((r >> 8) & 0xff).unwrap_or(0))).min(buf.len() - i);
                let mut j = 0;
                while j < n {
                    let bytes = self.rng.next_u64().to_le_bytes();
                    let k = (n - j).min(8);
                    buf[i + j..i + j + k].copy_from_slice(&bytes[..k]);
                    j += k;
                }
                i += n;
                continue;
            }
            // The smaller of two uniform indices: frequent words dominate,
            // as in real text.
            let a = usize::try_from(r >> 16).unwrap_or(0) % Self::WORDS;
            let b = usize::try_from(r >> 40).unwrap_or(0) % Self::WORDS;
            let word = &self.words[a.min(b)];
            let n = word.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&word[..n]);
            i += n;
            if i < buf.len() {
                buf[i] = if r & 0xf == 0 { b'\n' } else { b' ' };
                i += 1;
            }
        }
    }
}

/// A reader of `left` bytes of [`TextGen`] content.
struct GenReader<'a> {
    gen: &'a mut TextGen,
    left: u64,
}

impl Read for GenReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        self.gen.fill(&mut buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// The shape of a synthetic layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntheticSpec {
    /// Small files, sized uniformly in `min_size..=max_size`.
    pub files: usize,
    pub min_size: u64,
    pub max_size: u64,
    /// Large files of `big_size` bytes each.
    pub big_files: usize,
    pub big_size: u64,
    pub seed: u64,
}

impl SyntheticSpec {
    /// The directory name, which encodes everything that shapes the bytes.
    pub fn name(&self) -> String {
        let big = if self.big_size % (1 << 20) == 0 {
            format!("{}MiB", self.big_size >> 20)
        } else {
            format!("{}KiB", self.big_size >> 10)
        };
        format!(
            "synthetic-v{SYNTHETIC_VERSION}-{}f-{}x{big}-{}-{}-s{}",
            self.files, self.big_files, self.min_size, self.max_size, self.seed
        )
    }

    /// Bytes of file content, to size filesystems with.
    pub fn content_bytes(&self) -> u64 {
        self.files as u64 * (self.min_size + self.max_size) / 2 + self.big_files as u64 * self.big_size
    }
}

/// Which layer to unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// Generated: many small files and a few big ones.
    Synthetic,
    /// `debootstrap --variant=minbase bookworm`: a real distribution's
    /// rootfs, with its mix of small files, symlinks and hardlinks.
    Debian,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Synthetic => "synthetic",
            DatasetKind::Debian => "debian",
        }
    }
}

/// A cached dataset: its layer in three compressions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub description: String,
    /// Regular files in the layer.
    pub files: u64,
    /// Bytes of the plain tar, the gzip and the zstd blob.
    pub tar_bytes: u64,
    pub gzip_bytes: u64,
    pub zstd_bytes: u64,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Dataset {
    pub fn plain(&self) -> PathBuf {
        self.dir.join("layer.tar")
    }
    pub fn gzip(&self) -> PathBuf {
        self.dir.join("layer.tar.gz")
    }
    pub fn zstd(&self) -> PathBuf {
        self.dir.join("layer.tar.zst")
    }

    /// Loads the dataset in `dir` if it is complete.
    fn load(dir: &Path) -> Option<Dataset> {
        let text = std::fs::read_to_string(dir.join("dataset.json")).ok()?;
        let mut d: Dataset = serde_json::from_str(&text).ok()?;
        d.dir = dir.to_owned();
        [d.plain(), d.gzip(), d.zstd()].iter().all(|p| p.is_file()).then_some(d)
    }
}

/// `BenchError::Io` for an operation on `path`.
pub(crate) fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BenchError + 'a {
    move |source| BenchError::Io { what, path: path.to_owned(), source }
}

/// Returns the dataset named `name` from the cache, or builds it with
/// `build` (which writes `layer.tar` into the directory it is given and
/// returns the file count and a description).
fn cached(
    opts: &Options,
    name: &str,
    build: impl FnOnce(&Path) -> Result<(u64, String), BenchError>,
) -> Result<Dataset, BenchError> {
    let dir = opts.data_dir.join(name);
    if let Some(d) = Dataset::load(&dir) {
        opts.progress(&format!("dataset {name}: cached in {}", dir.display()));
        return Ok(d);
    }
    std::fs::create_dir_all(&opts.data_dir).map_err(io_err("create data dir", &opts.data_dir))?;
    let tmp = opts.data_dir.join(format!(".tmp-{name}-{}", crate::root::unique_suffix()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| {
        std::fs::create_dir(&tmp).map_err(io_err("create", &tmp))?;
        opts.progress(&format!("dataset {name}: generating in {}", tmp.display()));
        let (files, description) = build(&tmp)?;
        let plain = tmp.join("layer.tar");
        opts.progress(&format!("dataset {name}: compressing (gzip -6, zstd -3)"));
        let (gz, zst) = (tmp.join("layer.tar.gz"), tmp.join("layer.tar.zst"));
        std::thread::scope(|s| {
            let g = s.spawn(|| compress_gzip(&plain, &gz));
            let z = compress_zstd(&plain, &zst);
            g.join().unwrap_or_else(|_| Err(io::Error::other("gzip thread panicked"))).map_err(io_err("gzip", &gz))?;
            z.map_err(io_err("zstd", &zst))
        })?;
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(io_err("stat", &tmp));
        let d = Dataset {
            name: name.to_owned(),
            description,
            files,
            tar_bytes: size(&plain)?,
            gzip_bytes: size(&gz)?,
            zstd_bytes: size(&zst)?,
            dir: dir.clone(),
        };
        let json = serde_json::to_vec_pretty(&d).map_err(|e| io_err("encode", &tmp)(e.into()))?;
        std::fs::write(tmp.join("dataset.json"), json).map_err(io_err("write dataset.json", &tmp))?;
        std::fs::rename(&tmp, &dir).map_err(io_err("rename into place", &dir))?;
        Ok(d)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn compress_gzip(src: &Path, dst: &Path) -> io::Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(src)?);
    let mut enc = flate2::write::GzEncoder::new(BufWriter::new(File::create(dst)?), flate2::Compression::new(6));
    io::copy(&mut input, &mut enc)?;
    enc.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()
}

fn compress_zstd(src: &Path, dst: &Path) -> io::Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, File::open(src)?);
    let mut enc = zstd::Encoder::new(BufWriter::new(File::create(dst)?), 3)?;
    io::copy(&mut input, &mut enc)?;
    enc.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// The path of small file `n` of a synthetic tree, and of its directory.
pub fn synthetic_path(n: usize) -> (String, String) {
    let leaf = n / FILES_PER_DIR;
    let dir = format!("data/{:03}/{:02}", leaf / DIRS_PER_PARENT, leaf % DIRS_PER_PARENT);
    (format!("{dir}/file-{n:06}.dat"), dir)
}

/// The synthetic layer for `spec`.
pub fn synthetic(opts: &Options, spec: &SyntheticSpec) -> Result<Dataset, BenchError> {
    let spec = *spec;
    cached(opts, &spec.name(), move |dir| {
        let path = dir.join("layer.tar");
        write_synthetic_tar(&spec, &path).map_err(io_err("write synthetic tar", &path))?;
        let description = format!(
            "{} files of {}-{} KiB in nested dirs + {} x {} MiB; text-like content, seed {}",
            spec.files,
            spec.min_size >> 10,
            spec.max_size >> 10,
            spec.big_files,
            spec.big_size >> 20,
            spec.seed
        );
        Ok(((spec.files + spec.big_files) as u64, description))
    })
}

fn dir_header(path: &str) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(format!("{path}/"))?;
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(0);
    h.set_cksum();
    Ok(h)
}

fn write_synthetic_tar(spec: &SyntheticSpec, path: &Path) -> io::Result<()> {
    let mut rng = Rng::new(spec.seed);
    let mut gen = TextGen::new(spec.seed ^ 0x5eed);
    let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(path)?));
    let file = |b: &mut tar::Builder<_>, path: &str, size: u64, mode: u32, gen: &mut TextGen| {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size);
        h.set_cksum();
        b.append(&h, GenReader { gen, left: size })
    };
    b.append(&dir_header("data")?, io::empty())?;
    let mut last_parent = String::new();
    let mut last_dir = String::new();
    for n in 0..spec.files {
        let (path, dir) = synthetic_path(n);
        let parent = dir.rsplit_once('/').map(|(p, _)| p.to_owned()).unwrap_or_default();
        if parent != last_parent {
            b.append(&dir_header(&parent)?, io::empty())?;
            last_parent = parent;
        }
        if dir != last_dir {
            b.append(&dir_header(&dir)?, io::empty())?;
            last_dir = dir;
        }
        let size = rng.range(spec.min_size, spec.max_size);
        let mode = if n % 10 == 0 { 0o755 } else { 0o644 };
        file(&mut b, &path, size, mode, &mut gen)?;
    }
    if spec.big_files > 0 {
        b.append(&dir_header("big")?, io::empty())?;
    }
    for i in 0..spec.big_files {
        file(&mut b, &format!("big/blob-{i}.bin"), spec.big_size, 0o644, &mut gen)?;
    }
    b.into_inner()?.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// The Debian bookworm minbase rootfs layer, or why it cannot be made
/// (`Ok(Err(reason))`: no debootstrap, no network).
pub fn debian(opts: &Options) -> Result<Result<Dataset, String>, BenchError> {
    let name = format!("debian-bookworm-minbase-v{DEBIAN_VERSION}");
    if Dataset::load(&opts.data_dir.join(&name)).is_none() && !super::env::have_tool("debootstrap") {
        opts.progress("dataset debian: debootstrap missing; apt-get install -y debootstrap");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-q", "debootstrap"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok || !super::env::have_tool("debootstrap") {
            return Ok(Err("debootstrap is not installed and apt-get install debootstrap failed".into()));
        }
    }
    let result =
        cached(opts, &name, |dir| {
            // debootstrap creates thousands of files: on a scratch filesystem,
            // never on the data dir's.
            let fs = ScratchFs::new_in(&opts.scratch_dir, FsKind::Ext4, 4 << 30)
                .map_err(|source| BenchError::Scratch { kind: "ext4", dir: opts.scratch_dir.clone(), source })?;
            let rootfs = fs.path().join("rootfs");
            opts.progress("dataset debian: debootstrap --variant=minbase bookworm (downloads ~40 MB)");
            let out = Command::new("debootstrap")
                .args(["--variant=minbase", "bookworm"])
                .arg(&rootfs)
                .arg("http://deb.debian.org/debian")
                .output()
                .map_err(io_err("run debootstrap", &rootfs))?;
            if !out.status.success() {
                let log = String::from_utf8_lossy(&out.stdout);
                let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
                return Err(BenchError::Unavailable {
                    what: "debian dataset".into(),
                    reason: format!("debootstrap failed ({}): {last}", out.status),
                });
            }
            let tar = dir.join("layer.tar");
            super::run::pipeline(&[vec![
                "tar".into(),
                "--numeric-owner".into(),
                "-cf".into(),
                tar.clone().into(),
                "-C".into(),
                rootfs.clone().into(),
                ".".into(),
            ]])?;
            let files = count_files(&rootfs).map_err(io_err("count files", &rootfs))?;
            Ok((files, "debootstrap --variant=minbase bookworm (deb.debian.org)".to_owned()))
        });
    match result {
        Ok(d) => Ok(Ok(d)),
        Err(BenchError::Unavailable { reason, .. }) => Ok(Err(reason)),
        Err(e) => Err(e),
    }
}

fn count_files(dir: &Path) -> io::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            n += count_files(&entry.path())?;
        } else if ft.is_file() {
            n += 1;
        }
    }
    Ok(n)
}

/// The shape of a file tree for the copy and diff benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TreeSpec {
    pub files: usize,
    pub total_bytes: u64,
    pub seed: u64,
}

/// Writes a tree of `spec.files` files totalling about `spec.total_bytes`
/// under `root` (which must not exist), in the synthetic layout. Returns
/// the bytes written.
pub fn write_tree(spec: &TreeSpec, root: &Path) -> Result<u64, BenchError> {
    let mut rng = Rng::new(spec.seed);
    let mut gen = TextGen::new(spec.seed ^ 0x7ee);
    let avg = spec.total_bytes / spec.files.max(1) as u64;
    let (lo, hi) = (avg / 8, avg * 2 - avg / 8);
    let mut buf = Vec::new();
    let mut written = 0;
    std::fs::create_dir(root).map_err(io_err("mkdir", root))?;
    let mut last_dir = String::new();
    for n in 0..spec.files {
        let (path, dir) = synthetic_path(n);
        if dir != last_dir {
            let d = root.join(&dir);
            std::fs::create_dir_all(&d).map_err(io_err("mkdir", &d))?;
            last_dir = dir;
        }
        let size = usize::try_from(rng.range(lo, hi)).unwrap_or(0);
        buf.resize(size, 0);
        gen.fill(&mut buf);
        let p = root.join(&path);
        std::fs::write(&p, &buf).map_err(io_err("write", &p))?;
        written += size as u64;
    }
    Ok(written)
}

/// Fills `buf` with semi-compressible content from `seed`.
pub fn fill(seed: u64, buf: &mut [u8]) {
    TextGen::new(seed).fill(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_is_deterministic_and_semi_compressible() {
        let mut a = vec![0; 4 << 20];
        let mut b = vec![0; 4 << 20];
        fill(7, &mut a);
        fill(7, &mut b);
        assert_eq!(a, b);
        let z = zstd::encode_all(&a[..], 3).unwrap();
        let ratio = a.len() as f64 / z.len() as f64;
        assert!((2.0..3.5).contains(&ratio), "zstd -3 ratio {ratio:.2}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&a).unwrap();
        let ratio = a.len() as f64 / gz.finish().unwrap().len() as f64;
        assert!((1.8..3.5).contains(&ratio), "gzip -6 ratio {ratio:.2}");
    }

    #[test]
    fn synthetic_paths_nest() {
        assert_eq!(synthetic_path(0), ("data/000/00/file-000000.dat".into(), "data/000/00".into()));
        assert_eq!(synthetic_path(4321).1, "data/002/03");
    }
}
