//! Build sources: the build context (a directory on disk, read in place,
//! filtered by `.dockerignore`) or another stage's/image's root for
//! `COPY --from`. Resolves `COPY`/`ADD` source patterns, hashes what they
//! select (content, not times, for the cache), and writes it as a tar
//! stream that layer apply lays into the build snapshot.
//!
//! **Confinement.** Source paths are cleaned lexically and may not climb
//! out of the tree (`forbidden path outside the build context`). Symlinks
//! inside the selection are copied as symlinks; a source that is itself a
//! symlink is followed, but only within the tree, as if it were `/`.

use super::ignore::{clean, glob_match, has_glob, Ignore};
use super::BuildError;
use crate::digest::{Digest, Hasher};
use crate::root::{IoError, IoResultExt};
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A tree sources are taken from.
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
    ignore: Ignore,
    /// How errors name the tree ("build context", "stage builder").
    label: String,
}

/// One selected source: a cleaned path in the tree and what it is.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path relative to the tree root, `/`-separated, no `.`/`..`.
    pub rel: String,
    /// Host path (after following a top-level symlink within the tree).
    pub path: PathBuf,
    pub meta: Metadata,
}

/// One entry of what a source copies: its name under the destination.
struct Entry {
    name: String,
    path: PathBuf,
    meta: Metadata,
    /// Context-relative path (for `.dockerignore` and hashing).
    rel: String,
}

/// How copied entries are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attrs {
    /// `--chown`: uid, gid (else root).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: permission bits for every entry.
    pub mode: Option<u32>,
}

impl Tree {
    /// The build context at `root`, with its `.dockerignore`.
    pub fn context(root: &Path) -> Result<Tree, BuildError> {
        let meta = std::fs::metadata(root).at(root)?;
        if !meta.is_dir() {
            return Err(BuildError::Context(format!("{}: the build context must be a directory", root.display())));
        }
        let ignore = match std::fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Ignore::parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(IoError::new(root.join(".dockerignore"), e).into()),
        };
        Ok(Tree { root: root.to_owned(), ignore, label: "build context".into() })
    }

    /// Another root filesystem (a stage's or an image's), no ignore file.
    pub fn rootfs(root: &Path, label: String) -> Tree {
        Tree { root: root.to_owned(), ignore: Ignore::default(), label }
    }

    fn not_found(&self, pattern: &str) -> BuildError {
        let why = if self.ignore.is_empty() { "" } else { " or excluded by .dockerignore" };
        BuildError::Context(format!("{pattern}: file not found in {}{why}", self.label))
    }

    /// Resolves one source pattern (a path or a glob) to the sources it
    /// names, in lexical order.
    pub fn sources(&self, pattern: &str) -> Result<Vec<Source>, BuildError> {
        let segs = clean(pattern)
            .ok_or_else(|| BuildError::Context(format!("{pattern}: forbidden path outside the {}", self.label)))?;
        let mut found: Vec<String> = vec![String::new()];
        for seg in &segs {
            let mut next = Vec::new();
            for base in &found {
                if has_glob(seg) {
                    let dir = self.root.join(base);
                    let Ok(rd) = std::fs::read_dir(&dir) else { continue };
                    let mut names: Vec<String> =
                        rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                    names.sort();
                    for n in names.into_iter().filter(|n| glob_match(seg, n)) {
                        next.push(join(base, &n));
                    }
                } else {
                    next.push(join(base, seg));
                }
            }
            found = next;
        }
        let mut out = Vec::new();
        for rel in found {
            if !rel.is_empty() && self.ignore.excluded(&rel) {
                continue;
            }
            let path = self.root.join(&rel);
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            let (path, meta) = if meta.file_type().is_symlink() { self.follow(&rel)? } else { (path, meta) };
            out.push(Source { rel, path, meta });
        }
        if out.is_empty() {
            return Err(self.not_found(pattern));
        }
        Ok(out)
    }

    /// Follows a symlink as if the tree were `/` (at most 40 hops).
    fn follow(&self, rel: &str) -> Result<(PathBuf, Metadata), BuildError> {
        let mut cur: Vec<String> = rel.split('/').map(str::to_owned).collect();
        for _ in 0..40 {
            let path = self.root.join(cur.join("/"));
            let meta = std::fs::symlink_metadata(&path).map_err(|_| self.not_found(rel))?;
            if !meta.file_type().is_symlink() {
                return Ok((path, meta));
            }
            let target = std::fs::read_link(&path).at(&path)?;
            let target = target.to_string_lossy();
            let base = if target.starts_with('/') { String::new() } else { cur[..cur.len() - 1].join("/") };
            // Inside the tree `..` at the top stays at the top, as at `/`.
            let joined = format!("{base}/{target}");
            let mut segs: Vec<String> = Vec::new();
            for s in joined.split('/') {
                match s {
                    "" | "." => {}
                    ".." => {
                        segs.pop();
                    }
                    s => segs.push(s.to_owned()),
                }
            }
            cur = segs;
        }
        Err(BuildError::Context(format!("{rel}: too many levels of symbolic links")))
    }

    /// Every entry a source copies, named as it will be under the
    /// destination: a directory's contents (not the directory itself), or
    /// the file under `leaf`.
    fn entries(&self, src: &Source, leaf: &str, out: &mut Vec<Entry>) -> Result<(), BuildError> {
        if !src.meta.is_dir() {
            out.push(Entry {
                name: leaf.to_owned(),
                path: src.path.clone(),
                meta: src.meta.clone(),
                rel: src.rel.clone(),
            });
            return Ok(());
        }
        let mut stack: Vec<(PathBuf, String, String)> = vec![(src.path.clone(), String::new(), src.rel.clone())];
        while let Some((dir, name, rel)) = stack.pop() {
            let mut children: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
                .at(&dir)?
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect();
            children.sort();
            let mut subdirs = Vec::new();
            for (child, path) in children {
                let child_rel = join(&rel, &child);
                let excluded = self.ignore.excluded(&child_rel);
                let meta = std::fs::symlink_metadata(&path).at(&path)?;
                let child_name = join(&name, &child);
                if meta.is_dir() {
                    // An excluded directory is still walked when an
                    // exception could re-include something below it.
                    if !excluded || self.ignore.may_reinclude_under(&child_rel) {
                        subdirs.push((path.clone(), child_name.clone(), child_rel.clone()));
                    }
                    if !excluded {
                        out.push(Entry { name: child_name, path, meta, rel: child_rel });
                    }
                } else if !excluded {
                    out.push(Entry { name: child_name, path, meta, rel: child_rel });
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    /// A digest of what `sources` select: names, types, permission bits,
    /// sizes, file contents and link targets — never times or owners, so
    /// a checkout that only touches mtimes keeps the cache.
    pub fn hash(&self, sources: &[Source]) -> Result<Digest, BuildError> {
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        for src in sources {
            let mut entries = Vec::new();
            self.entries(src, "", &mut entries)?;
            h.update(format!("source {} {}\n", src.rel, kind(&src.meta)).as_bytes());
            for e in entries {
                h.update(
                    format!("{}\0{}\0{:o}\0{}\0", e.rel, kind(&e.meta), e.meta.mode() & 0o7777, e.meta.len())
                        .as_bytes(),
                );
                if e.meta.file_type().is_symlink() {
                    let t = std::fs::read_link(&e.path).at(&e.path)?;
                    h.update(t.to_string_lossy().as_bytes());
                } else if e.meta.is_file() {
                    let mut f = std::fs::File::open(&e.path).at(&e.path)?;
                    loop {
                        let n = f.read(&mut buf).at(&e.path)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
                h.update(b"\n");
            }
        }
        Ok(h.finish())
    }

    /// Writes the selected entries as a tar: each source's entries under
    /// `names[i]` (`""` = straight into the destination directory).
    pub fn write_tar<W: Write>(&self, sources: &[(Source, String)], attrs: Attrs, out: W) -> Result<(), BuildError> {
        let mut b = tar::Builder::new(out);
        b.mode(tar::HeaderMode::Complete);
        for (src, leaf) in sources {
            let mut entries = Vec::new();
            self.entries(src, leaf, &mut entries)?;
            for e in entries {
                append(&mut b, &e, attrs)?;
            }
        }
        b.into_inner().map_err(|e| BuildError::Context(format!("writing copy stream: {e}")))?;
        Ok(())
    }
}

fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else {
        "special"
    }
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

fn append<W: Write>(b: &mut tar::Builder<W>, e: &Entry, attrs: Attrs) -> Result<(), BuildError> {
    let t = e.meta.file_type();
    let mut h = tar::Header::new_gnu();
    let (uid, gid) = attrs.owner.unwrap_or((0, 0));
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mode(attrs.mode.unwrap_or(e.meta.permissions().mode() & 0o7777));
    h.set_mtime(u64::try_from(e.meta.mtime()).unwrap_or(0));
    let err = |x: io::Error| BuildError::from(IoError::new(&e.path, x));
    if t.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        b.append_data(&mut h, format!("{}/", e.name), io::empty()).map_err(err)
    } else if t.is_symlink() {
        let target = std::fs::read_link(&e.path).map_err(err)?;
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, &e.name, &target).map_err(err)
    } else if t.is_file() {
        let f = std::fs::File::open(&e.path).map_err(err)?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(e.meta.len());
        b.append_data(&mut h, &e.name, f).map_err(err)
    } else {
        // Sockets, FIFOs and devices in a context are not copied (Docker
        // refuses devices; a socket cannot be copied at all).
        Ok(())
    }
}

/// A tar holding one file (a `COPY <<EOF` heredoc body).
pub fn heredoc_tar<W: Write>(name: &str, body: &str, attrs: Attrs, out: W) -> Result<(), BuildError> {
    let mut b = tar::Builder::new(out);
    let mut h = tar::Header::new_gnu();
    let (uid, gid) = attrs.owner.unwrap_or((0, 0));
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    h.set_mode(attrs.mode.unwrap_or(0o644));
    h.set_size(body.len() as u64);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    let err = |e: io::Error| BuildError::Context(format!("heredoc {name}: {e}"));
    b.append_data(&mut h, name, body.as_bytes()).map_err(err)?;
    b.into_inner().map_err(err)?;
    Ok(())
}
