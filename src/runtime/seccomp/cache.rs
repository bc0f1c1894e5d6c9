//! Compiled programs kept by digest in a directory, so a container start
//! reads a file instead of running libseccomp.
//!
//! Two places hold them: a shared cache the caller names
//! (`CreateOptions::seccomp_cache`; strata's own containers have one,
//! strata-runc none, so its `--root` holds container directories only, as
//! runc's does), and each container's state directory, where `create`
//! leaves the program of its spec for `exec` (removed with the container).
//!
//! ```text
//! <cache dir>/                            (0700)
//!     <key>.bpf
//!     .<key>.<pid>.tmp                    being written
//!
//! <key> = sha256 of  "strata seccomp v1\n"
//!                    "libseccomp <major>.<minor>.<micro> api <level>\n"
//!                    "<native arch>\n"
//!                    the spec's linux.seccomp as JSON (serde's field order)
//!
//! <key>.bpf:  "strata seccomp v2\n"          magic, 18 bytes
//!             u32 LE  N                       instructions (1 ..= 4096)
//!             u32 LE  M                       bytes of names
//!             N × 8   struct sock_filter      host byte order
//!             M       unknown syscall names   each followed by '\n'
//!             32      sha256 of <key> (64 hex digits), then all the above
//! ```
//!
//! The key covers everything the program depends on: the spec, the
//! library that compiled it (its syscall tables and code generator), the
//! API level (which actions and flags this kernel and library accept) and
//! the architecture. An entry is written to a temporary name and renamed,
//! so a reader sees a whole file or none; a file that is short, too long,
//! or whose checksum does not match is not trusted but compiled again and
//! replaced. The checksum covers the key, so a whole, sound entry of
//! another spec (a stale or permissive program copied or renamed over
//! this one's name) fails it too: what is loaded is always the program
//! of the spec asked for, or a fresh compilation. Entries are not fsynced: a torn one fails its checksum and a
//! lost one is compiled again. A cache that cannot be written costs only
//! the compilation: the filter is returned all the same.

use super::{filter_flags, Filter, Origin, SeccompError};
use crate::digest::{Digest, Hasher};
use crate::runtime::spec;
use crate::sys::seccomp as sc;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const MAGIC: &[u8] = b"strata seccomp v2\n";
#[cfg(test)]
pub(super) const MAGIC_LEN: usize = MAGIC.len();
const CHECKSUM: usize = 32;

/// A directory of compiled programs.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir` (created, 0700, when a program is first stored).
    pub fn new(dir: &Path) -> Cache {
        Cache { dir: dir.to_owned() }
    }

    /// Where the program of `spec` is kept.
    pub fn path_of(&self, spec: &spec::Seccomp) -> PathBuf {
        self.entry(&key(spec))
    }

    fn entry(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{}.bpf", key.hex()))
    }

    /// The filter of `spec`: its cached program when there is a sound one,
    /// otherwise compiled by libseccomp (as [`super::compile`]) and stored.
    pub fn compile(&self, spec: &spec::Seccomp) -> Result<Filter, SeccompError> {
        let key = key(spec);
        if let Some((program, unknown)) = std::fs::read(self.entry(&key)).ok().as_deref().and_then(|b| decode(&key, b))
        {
            return Ok(Filter { program, flags: filter_flags(spec), unknown, origin: Origin::Cached });
        }
        let filter = super::compile(spec)?;
        let _ = self.keep(spec, &filter);
        Ok(filter)
    }

    /// Stores `filter`, compiled from `spec`, for the next
    /// [`Cache::compile`] of `spec` here.
    pub fn keep(&self, spec: &spec::Seccomp, filter: &Filter) -> std::io::Result<()> {
        let key = key(spec);
        self.store(&self.entry(&key), &encode(&key, &filter.program, &filter.unknown))
    }

    /// Stores `filter` of `spec` here as [`Cache::keep`] does, by a hard
    /// link to `from`'s entry when `filter` was read from it (one
    /// `link(2)` instead of writing the program again on every container
    /// start); the entry is still checked by [`Cache::compile`] when read.
    pub fn keep_from(&self, from: &Cache, spec: &spec::Seccomp, filter: &Filter) -> std::io::Result<()> {
        let key = key(spec);
        let (src, dst) = (from.entry(&key), self.entry(&key));
        if filter.origin == Origin::Cached && std::fs::hard_link(&src, &dst).is_ok() {
            return Ok(());
        }
        self.store(&dst, &encode(&key, &filter.program, &filter.unknown))
    }

    /// Writes `bytes` to `path` through a temporary file and a rename.
    fn store(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("entry");
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
        match written.and_then(|()| std::fs::rename(&tmp, path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// The cache key of `spec` on this host (see the module doc).
fn key(spec: &spec::Seccomp) -> Digest {
    static LIBRARY: OnceLock<String> = OnceLock::new();
    let library = LIBRARY.get_or_init(|| {
        let (major, minor, micro) = sc::version().unwrap_or((0, 0, 0));
        format!("libseccomp {major}.{minor}.{micro} api {}\n", sc::api_get())
    });
    let mut h = Hasher::new();
    h.update(MAGIC);
    h.update(library.as_bytes());
    h.update(std::env::consts::ARCH.as_bytes());
    h.update(b"\n");
    h.update(&serde_json::to_vec(spec).expect("a seccomp spec serializes"));
    h.finish()
}

/// A cache file's bytes for a program and its unknown names, under `key`.
fn encode(key: &Digest, program: &[sc::SockFilter], unknown: &[String]) -> Vec<u8> {
    let names: String = unknown.iter().map(|n| format!("{n}\n")).collect();
    let count = u32::try_from(program.len()).expect("at most BPF_MAXINSNS instructions");
    let names_len = u32::try_from(names.len()).expect("names fit in 4 GiB");
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + program.len() * sc::SockFilter::SIZE + names.len() + CHECKSUM);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&names_len.to_le_bytes());
    for insn in program {
        out.extend_from_slice(&insn.to_bytes());
    }
    out.extend_from_slice(names.as_bytes());
    let sum = checksum(key, &out);
    out.extend_from_slice(&sum);
    out
}

/// The program and unknown names in a cache file's bytes, or `None` for
/// anything but a whole, sound entry written under `key`.
fn decode(key: &Digest, bytes: &[u8]) -> Option<(Vec<sc::SockFilter>, Vec<String>)> {
    let body_len = bytes.len().checked_sub(CHECKSUM)?;
    let (body, sum) = bytes.split_at(body_len);
    if checksum(key, body)[..] != *sum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let word = |b: &[u8]| -> Option<usize> { usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok() };
    let count = word(rest.get(0..4)?)?;
    let names_len = word(rest.get(4..8)?)?;
    if count == 0 || count > sc::BPF_MAXINSNS {
        return None;
    }
    let program_len = count * sc::SockFilter::SIZE;
    if rest.len() != 8 + program_len + names_len {
        return None;
    }
    let program = sc::SockFilter::parse(&rest[8..8 + program_len])?;
    let names = std::str::from_utf8(&rest[8 + program_len..]).ok()?;
    Some((program, names.lines().map(str::to_owned).collect()))
}

/// The sha256 a cache file ends with: of its key, then its bytes.
fn checksum(key: &Digest, bytes: &[u8]) -> [u8; CHECKSUM] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(key.hex().as_bytes());
    h.update(bytes);
    h.finalize().into()
}
