//! Image archives: reading `docker save` tars and OCI image layouts (as a
//! directory or a tar, "oci-archive"), and writing OCI archives.
//!
//! ```text
//! OCI image layout (dir or tar)        docker save (tar)
//! ├── oci-layout                       ├── manifest.json   [{Config, RepoTags, Layers}]
//! ├── index.json                       ├── <config-hex>.json
//! └── blobs/sha256/<hex>               ├── <layer-id>/layer.tar   (may be a symlink
//!     manifests, indexes, configs,     │    to another layer's layer.tar)
//!     layers — all by digest           └── repositories        (ignored)
//! ```
//!
//! Docker 25 and later write both at once (an OCI layout whose blobs
//! `manifest.json` points into); `manifest.json` is preferred then, as
//! `docker load` does.
//!
//! Reading returns a neutral [`ArchiveImage`] per image and touches nothing
//! of strata's store. A tar is scanned once to index its members' offsets,
//! and each layer is handed out as a [`BlobSource`] that reads the member in
//! place, so a multi-gigabyte archive is never copied. Small JSON documents
//! (index, manifests, configs) are read and verified against their
//! descriptors here; layers are not, because the caller hashes them while it
//! decompresses and applies them anyway.
//!
//! **Architecture Invariant:** paths inside an archive come from the
//! archive. Every one is resolved within the archive root: `..`, absolute
//! paths and symlinks leading outside are refused, never followed.

use crate::digest::{Digest, HashingReader};
use crate::image::compression::{self, Compression};
use crate::image::oci::{
    Descriptor, ImageConfig, Index, Manifest, OciError, OciLayout, Platform, ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME, OCI_LAYOUT_VERSION,
};
use crate::image::reference::Reference;
use crate::root::{IoError, IoResultExt};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const DOCKER_MANIFEST_FILE: &str = "manifest.json";
/// Largest JSON document read into memory; registries cap manifests at
/// 4 MiB and configs with long histories stay far below this.
const MAX_JSON: u64 = 16 << 20;
/// Deepest nesting of indexes followed (guards against cycles).
const MAX_INDEX_DEPTH: usize = 8;
/// Longest chain of links followed inside a tar.
const MAX_LINKS: usize = 16;

/// Errors from reading or writing an image archive. Reading errors name the
/// archive and the member (file) involved.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: {member}: {source}", archive.display())]
    MemberIo { archive: PathBuf, member: String, source: io::Error },
    #[error("{}: not an image archive: neither manifest.json (docker save) nor index.json (OCI image layout) found", archive.display())]
    UnknownFormat { archive: PathBuf },
    #[error("{}: compressed archives are not supported, decompress it first", archive.display())]
    Compressed { archive: PathBuf },
    #[error("{}: {member}: missing", archive.display())]
    Missing { archive: PathBuf, member: String },
    #[error("{}: {member:?}: path leads outside the archive", archive.display())]
    PathTraversal { archive: PathBuf, member: String },
    #[error("{}: {member}: links nested too deeply (a loop?)", archive.display())]
    LinkLoop { archive: PathBuf, member: String },
    #[error("{}: {member}: invalid JSON: {source}", archive.display())]
    Json { archive: PathBuf, member: String, source: serde_json::Error },
    #[error("{}: {member}: {source}", archive.display())]
    Document { archive: PathBuf, member: String, source: OciError },
    #[error("{}: {member}: {size} bytes is too large for a JSON document", archive.display())]
    TooLarge { archive: PathBuf, member: String, size: u64 },
    #[error("{}: {member}: size mismatch: descriptor says {expected} bytes, found {actual}", archive.display())]
    SizeMismatch { archive: PathBuf, member: String, expected: u64, actual: u64 },
    #[error("{}: {member}: digest mismatch: expected {expected}, found {actual}", archive.display())]
    DigestMismatch { archive: PathBuf, member: String, expected: Digest, actual: Digest },
    #[error("{}: oci-layout: unsupported imageLayoutVersion {version:?}", archive.display())]
    LayoutVersion { archive: PathBuf, version: String },
    #[error("{}: {member}: unsupported media type {media_type:?}", archive.display())]
    MediaType { archive: PathBuf, member: String, media_type: String },
    #[error("{}: {member}: no manifest for {wanted} (available: {available})", archive.display())]
    NoPlatform { archive: PathBuf, member: String, wanted: String, available: String },
    #[error("{}: {member}: indexes nested more than {MAX_INDEX_DEPTH} deep", archive.display())]
    IndexDepth { archive: PathBuf, member: String },
    #[error("{}: no images in the archive", archive.display())]
    NoImages { archive: PathBuf },

    #[error("image {image}: {source}")]
    OutDocument { image: String, source: OciError },
    #[error("image {image}: config is {actual} ({actual_size} bytes) but the manifest names {expected} ({expected_size} bytes)")]
    OutConfigMismatch { image: String, expected: Digest, expected_size: u64, actual: Digest, actual_size: u64 },
    #[error("blob {digest}: {source}")]
    BlobRead { digest: Digest, source: io::Error },
    #[error("blob {expected}: the blob source gave {actual_size} bytes with digest {actual}, expected {expected_size} bytes")]
    BlobMismatch { expected: Digest, expected_size: u64, actual: Digest, actual_size: u64 },
    #[error("writing archive: {0}")]
    Write(io::Error),
}

/// One image found in an archive.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The config, byte for byte; its digest is the image ID.
    pub config: Vec<u8>,
    /// The manifest, byte for byte, when the archive has one (OCI layouts;
    /// `docker save` has none).
    pub manifest: Option<Vec<u8>>,
    /// Layers, bottom first; as many as the config has `diff_ids`.
    pub layers: Vec<ArchiveLayer>,
    /// Names the archive gives the image, as written there
    /// (`busybox:latest`, `docker.io/library/busybox:latest`, or for an
    /// OCI layout without containerd's annotation possibly a bare tag).
    pub repo_tags: Vec<String>,
}

/// One layer blob in an archive.
#[derive(Debug, Clone)]
pub struct ArchiveLayer {
    /// The descriptor's media type; for `docker save` layers, which carry
    /// none, the OCI layer type matching the blob's magic bytes.
    pub media_type: String,
    /// The blob's digest when the archive states it (OCI descriptors, or
    /// `blobs/sha256/<hex>` paths). Not verified here.
    pub digest: Option<Digest>,
    /// The blob's size in bytes (checked against the descriptor).
    pub size: u64,
    pub source: BlobSource,
}

/// Where a blob's bytes are, readable without extracting the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// A whole file (in a layout directory).
    File(PathBuf),
    /// A member of a tar file: `size` bytes at `offset`.
    TarMember { archive: PathBuf, offset: u64, size: u64 },
}

impl BlobSource {
    /// Opens the blob for reading; the reader ends at the blob's end.
    pub fn open(&self) -> io::Result<io::Take<File>> {
        match self {
            BlobSource::File(path) => {
                let f = File::open(path)?;
                let len = f.metadata()?.len();
                Ok(f.take(len))
            }
            BlobSource::TarMember { archive, offset, size } => {
                let mut f = File::open(archive)?;
                f.seek(SeekFrom::Start(*offset))?;
                Ok(f.take(*size))
            }
        }
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        match self {
            BlobSource::File(path) => Ok(std::fs::metadata(path)?.len()),
            BlobSource::TarMember { size, .. } => Ok(*size),
        }
    }
}

/// Reads every image in an archive, choosing the host's platform
/// ([`Platform::host`]) from multi-platform indexes.
pub fn read_archive(path: &Path) -> Result<Vec<ArchiveImage>, ArchiveError> {
    read_archive_for(path, &Platform::host())
}

/// Reads every image in an archive (a directory or a tar file), choosing
/// `platform` from multi-platform indexes.
pub fn read_archive_for(path: &Path, platform: &Platform) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let src = Source::open(path)?;
    let images = if src.exists(DOCKER_MANIFEST_FILE) {
        read_docker_save(&src)?
    } else if src.exists(INDEX_FILE) || src.exists(OCI_LAYOUT_FILE) {
        read_oci_layout(&src, platform)?
    } else {
        return Err(ArchiveError::UnknownFormat { archive: path.to_owned() });
    };
    if images.is_empty() {
        return Err(ArchiveError::NoImages { archive: path.to_owned() });
    }
    Ok(images)
}

/// Resolves a path taken from the archive to a normalized member name:
/// components joined by `/`, with `.` and empty components dropped. `..`
/// pops a component and may not climb above the root; `base` is the
/// directory a relative symlink target is relative to.
fn normalize(base: &[&str], path: &str) -> Option<String> {
    let mut out: Vec<&str> = if path.starts_with('/') { Vec::new() } else { base.to_vec() };
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out.join("/"))
    }
}

/// Checks a path named by `manifest.json`: relative, with no `..`.
fn safe_member(archive: &Path, name: &str) -> Result<String, ArchiveError> {
    let traversal = || ArchiveError::PathTraversal { archive: archive.to_owned(), member: name.to_owned() };
    if name.starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(traversal());
    }
    normalize(&[], name).ok_or_else(traversal)
}

/// A tar member as indexed by the scan.
#[derive(Debug, Clone)]
enum Member {
    File {
        offset: u64,
        size: u64,
    },
    /// A symlink; its target is relative to the member's directory.
    Symlink {
        target: String,
    },
    /// A hard link; its target is relative to the archive root.
    HardLink {
        target: String,
    },
}

/// The archive being read: a directory or an indexed tar.
struct Source {
    path: PathBuf,
    kind: SourceKind,
}

enum SourceKind {
    Dir { canonical: PathBuf },
    Tar { members: HashMap<String, Member> },
}

impl Source {
    fn open(path: &Path) -> Result<Source, ArchiveError> {
        let meta = std::fs::metadata(path).at(path)?;
        let kind = if meta.is_dir() {
            SourceKind::Dir { canonical: path.canonicalize().at(path)? }
        } else {
            SourceKind::Tar { members: index_tar(path)? }
        };
        Ok(Source { path: path.to_owned(), kind })
    }

    fn exists(&self, name: &str) -> bool {
        match &self.kind {
            SourceKind::Dir { canonical } => canonical.join(name).exists(),
            SourceKind::Tar { members } => members.contains_key(name),
        }
    }

    fn missing(&self, member: &str) -> ArchiveError {
        ArchiveError::Missing { archive: self.path.clone(), member: member.to_owned() }
    }

    fn traversal(&self, member: &str) -> ArchiveError {
        ArchiveError::PathTraversal { archive: self.path.clone(), member: member.to_owned() }
    }

    fn member_io(&self, member: &str, source: io::Error) -> ArchiveError {
        ArchiveError::MemberIo { archive: self.path.clone(), member: member.to_owned(), source }
    }

    /// Where a member's bytes are, following links within the archive.
    /// `name` must already be normalized.
    fn blob(&self, name: &str) -> Result<BlobSource, ArchiveError> {
        match &self.kind {
            SourceKind::Dir { canonical } => {
                let path = canonical.join(name);
                let real = match path.canonicalize() {
                    Ok(p) => p,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(self.missing(name)),
                    Err(e) => return Err(self.member_io(name, e)),
                };
                // A symlink in the directory may point anywhere.
                if !real.starts_with(canonical) {
                    return Err(self.traversal(name));
                }
                if !real.is_file() {
                    return Err(self.missing(name));
                }
                Ok(BlobSource::File(real))
            }
            SourceKind::Tar { members } => {
                let mut current = name.to_owned();
                for _ in 0..MAX_LINKS {
                    let member = members.get(&current).ok_or_else(|| self.missing(&current))?;
                    let next = match member {
                        Member::File { offset, size } => {
                            return Ok(BlobSource::TarMember {
                                archive: self.path.clone(),
                                offset: *offset,
                                size: *size,
                            })
                        }
                        Member::Symlink { target } => {
                            let dir: Vec<&str> = current.split('/').collect();
                            normalize(&dir[..dir.len() - 1], target)
                        }
                        Member::HardLink { target } => normalize(&[], target),
                    };
                    current = next.ok_or_else(|| self.traversal(&current))?;
                }
                Err(ArchiveError::LinkLoop { archive: self.path.clone(), member: name.to_owned() })
            }
        }
    }

    /// Reads a small document whole.
    fn read_small(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let blob = self.blob(name)?;
        let size = blob.size().map_err(|e| self.member_io(name, e))?;
        if size > MAX_JSON {
            return Err(ArchiveError::TooLarge { archive: self.path.clone(), member: name.to_owned(), size });
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        blob.open().and_then(|mut r| r.read_to_end(&mut buf)).map_err(|e| self.member_io(name, e))?;
        Ok(buf)
    }

    /// Reads a document a descriptor points at, checking size and digest.
    fn read_verified(&self, desc: &Descriptor) -> Result<(String, Vec<u8>), ArchiveError> {
        let name = blob_path(&desc.digest);
        if desc.size > MAX_JSON {
            return Err(ArchiveError::TooLarge { archive: self.path.clone(), member: name, size: desc.size });
        }
        let bytes = self.read_small(&name)?;
        self.check_size(&name, desc.size, bytes.len() as u64)?;
        self.check_digest(&name, &desc.digest, &bytes)?;
        Ok((name, bytes))
    }

    fn check_size(&self, member: &str, expected: u64, actual: u64) -> Result<(), ArchiveError> {
        if expected == actual {
            Ok(())
        } else {
            Err(ArchiveError::SizeMismatch { archive: self.path.clone(), member: member.to_owned(), expected, actual })
        }
    }

    fn check_digest(&self, member: &str, expected: &Digest, bytes: &[u8]) -> Result<(), ArchiveError> {
        let actual = Digest::of(bytes);
        if &actual == expected {
            Ok(())
        } else {
            Err(ArchiveError::DigestMismatch {
                archive: self.path.clone(),
                member: member.to_owned(),
                expected: expected.clone(),
                actual,
            })
        }
    }

    fn document(&self, member: &str, source: OciError) -> ArchiveError {
        ArchiveError::Document { archive: self.path.clone(), member: member.to_owned(), source }
    }
}

/// The path of a blob in an OCI layout.
fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", crate::digest::ALGORITHM, digest.hex())
}

/// Scans a tar once, recording where each member's data starts. Members
/// whose names climb out of the archive are left out: nothing can name
/// them safely.
fn index_tar(path: &Path) -> Result<HashMap<String, Member>, ArchiveError> {
    let mut file = File::open(path).at(path)?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).at(path)?;
    if compression::detect(&magic[..n]) != Compression::None {
        return Err(ArchiveError::Compressed { archive: path.to_owned() });
    }
    file.seek(SeekFrom::Start(0)).at(path)?;
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek().at(path)? {
        let entry = entry.at(path)?;
        let Ok(name) = std::str::from_utf8(&entry.path_bytes()).map(str::to_owned) else {
            continue;
        };
        if name.split('/').any(|c| c == "..") {
            continue;
        }
        let Some(name) = normalize(&[], &name) else {
            continue;
        };
        let link_target = || entry.link_name_bytes().and_then(|b| std::str::from_utf8(&b).ok().map(str::to_owned));
        let member = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                Member::File { offset: entry.raw_file_position(), size: entry.size() }
            }
            tar::EntryType::Symlink => match link_target() {
                Some(target) => Member::Symlink { target },
                None => continue,
            },
            tar::EntryType::Link => match link_target() {
                Some(target) => Member::HardLink { target },
                None => continue,
            },
            _ => continue,
        };
        // A later member of the same name replaces an earlier one, as when
        // the tar is extracted.
        members.insert(name, member);
    }
    Ok(members)
}

/// `manifest.json` of `docker save`: one entry per image.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The digest a `docker save` path encodes, if it is `blobs/sha256/<hex>`
/// or `<hex>.json`.
fn digest_in_path(member: &str) -> Option<Digest> {
    if let Some(hex) = member.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    Digest::from_hex(member.strip_suffix(".json")?).ok()
}

fn read_docker_save(src: &Source) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let bytes = src.read_small(DOCKER_MANIFEST_FILE)?;
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
        archive: src.path.clone(),
        member: DOCKER_MANIFEST_FILE.to_owned(),
        source,
    })?;
    let mut images = Vec::with_capacity(entries.len());
    for entry in entries {
        let config_name = safe_member(&src.path, &entry.config)?;
        let config = src.read_small(&config_name)?;
        if let Some(expected) = digest_in_path(&config_name) {
            src.check_digest(&config_name, &expected, &config)?;
        }
        let parsed = ImageConfig::from_json(&config).map_err(|e| src.document(&config_name, e))?;
        if parsed.rootfs.diff_ids.len() != entry.layers.len() {
            let e = OciError::LayerCount { layers: entry.layers.len(), diff_ids: parsed.rootfs.diff_ids.len() };
            return Err(src.document(DOCKER_MANIFEST_FILE, e));
        }
        let mut layers = Vec::with_capacity(entry.layers.len());
        for layer in &entry.layers {
            let name = safe_member(&src.path, layer)?;
            let source = src.blob(&name)?;
            let size = source.size().map_err(|e| src.member_io(&name, e))?;
            let mut head = [0u8; 4];
            let n =
                source.open().and_then(|mut r| read_up_to(&mut r, &mut head)).map_err(|e| src.member_io(&name, e))?;
            layers.push(ArchiveLayer {
                media_type: compression::detect(&head[..n]).media_type().to_owned(),
                digest: name.strip_prefix("blobs/sha256/").and_then(|h| Digest::from_hex(h).ok()),
                size,
                source,
            });
        }
        images.push(ArchiveImage { config, manifest: None, layers, repo_tags: entry.repo_tags.unwrap_or_default() });
    }
    Ok(images)
}

/// Reads until `buf` is full or the reader ends.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_oci_layout(src: &Source, platform: &Platform) -> Result<Vec<ArchiveImage>, ArchiveError> {
    let layout = src.read_small(OCI_LAYOUT_FILE)?;
    let layout = OciLayout::from_json(&layout).map_err(|e| src.document(OCI_LAYOUT_FILE, e))?;
    if layout.image_layout_version != OCI_LAYOUT_VERSION {
        return Err(ArchiveError::LayoutVersion { archive: src.path.clone(), version: layout.image_layout_version });
    }
    let index = src.read_small(INDEX_FILE)?;
    let index = Index::from_json(&index).map_err(|e| src.document(INDEX_FILE, e))?;

    // A top-level index may list one image per platform directly (BuildKit
    // does); keep the wanted platform's when there is one.
    let any_match = index.manifests.iter().any(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(platform)));
    let mut images: Vec<ArchiveImage> = Vec::new();
    let mut seen: HashMap<Digest, usize> = HashMap::new();
    for desc in &index.manifests {
        if any_match && desc.platform.as_ref().is_some_and(|p| !p.satisfies(platform)) {
            continue;
        }
        let name = desc
            .annotation(ANNOTATION_CONTAINERD_NAME)
            .or_else(|| desc.annotation(ANNOTATION_REF_NAME))
            .map(str::to_owned);
        let (manifest_desc, manifest) = resolve_manifest(src, desc, platform, 0)?;
        // The same image under several names is one image with several tags.
        if let Some(&i) = seen.get(&manifest_desc.digest) {
            let tags = &mut images[i].repo_tags;
            if let Some(name) = name.filter(|n| !tags.contains(n)) {
                tags.push(name);
            }
            continue;
        }
        let mut image = read_oci_image(src, &manifest_desc, manifest)?;
        image.repo_tags.extend(name);
        seen.insert(manifest_desc.digest, images.len());
        images.push(image);
    }
    Ok(images)
}

/// Follows a descriptor through nested indexes to one image manifest.
fn resolve_manifest(
    src: &Source,
    desc: &Descriptor,
    platform: &Platform,
    depth: usize,
) -> Result<(Descriptor, Vec<u8>), ArchiveError> {
    let (name, bytes) = src.read_verified(desc)?;
    if Manifest::MEDIA_TYPES.contains(&desc.media_type.as_str()) {
        return Ok((desc.clone(), bytes));
    }
    if !Index::MEDIA_TYPES.contains(&desc.media_type.as_str()) {
        return Err(ArchiveError::MediaType {
            archive: src.path.clone(),
            member: name,
            media_type: desc.media_type.clone(),
        });
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(ArchiveError::IndexDepth { archive: src.path.clone(), member: name });
    }
    let index = Index::from_json(&bytes).map_err(|e| src.document(&name, e))?;
    let chosen = index.manifest_for(platform).ok_or_else(|| ArchiveError::NoPlatform {
        archive: src.path.clone(),
        member: name.clone(),
        wanted: platform.to_string(),
        available: index.platforms(),
    })?;
    resolve_manifest(src, chosen, platform, depth + 1)
}

fn read_oci_image(src: &Source, desc: &Descriptor, manifest_bytes: Vec<u8>) -> Result<ArchiveImage, ArchiveError> {
    let manifest_name = blob_path(&desc.digest);
    let manifest = Manifest::from_json(&manifest_bytes).map_err(|e| src.document(&manifest_name, e))?;
    let (config_name, config) = src.read_verified(&manifest.config)?;
    let parsed = ImageConfig::from_json(&config).map_err(|e| src.document(&config_name, e))?;
    manifest.validate_config(&parsed).map_err(|e| src.document(&manifest_name, e))?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for layer in &manifest.layers {
        let name = blob_path(&layer.digest);
        let source = src.blob(&name)?;
        let size = source.size().map_err(|e| src.member_io(&name, e))?;
        src.check_size(&name, layer.size, size)?;
        layers.push(ArchiveLayer {
            media_type: layer.media_type.clone(),
            digest: Some(layer.digest.clone()),
            size,
            source,
        });
    }
    Ok(ArchiveImage { config, manifest: Some(manifest_bytes), layers, repo_tags: Vec::new() })
}

/// One image to write into an OCI archive.
#[derive(Debug, Clone)]
pub struct OutImage {
    /// The name to record in `index.json`; `None` writes the image
    /// unnamed.
    pub name: Option<Reference>,
    /// The manifest, byte for byte (see [`Manifest::new`] to build one).
    pub manifest: Vec<u8>,
    /// The config, byte for byte; must match the manifest's config
    /// descriptor.
    pub config: Vec<u8>,
}

impl OutImage {
    fn label(&self) -> String {
        match &self.name {
            Some(n) => n.to_string(),
            None => format!("{}", Digest::of(&self.config)),
        }
    }
}

/// Opens layer blobs by digest for [`write_oci_archive`]; strata's content
/// store implements it, and so does any
/// `Fn(&Digest) -> io::Result<Box<dyn Read>>`.
pub trait BlobOpener {
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>>;
}

impl<F> BlobOpener for F
where
    F: Fn(&Digest) -> io::Result<Box<dyn Read>>,
{
    fn open_blob(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        self(digest)
    }
}

/// Writes `images` as an OCI image layout in a tar (an "oci-archive"):
/// `oci-layout`, `blobs/sha256/<hex>` for each layer, config and manifest
/// (each blob once, in image order, layers bottom first), then
/// `index.json` naming each image with `org.opencontainers.image.ref.name`
/// (the tag) and `io.containerd.image.name` (the full name). Headers carry
/// no times or owners, so equal input gives equal bytes.
///
/// Every layer is hashed as it is copied and must match its descriptor. On
/// error the output holds a partial archive, so write to a temporary file
/// and rename it into place on success. Returns the writer.
pub fn write_oci_archive<W: Write>(out: W, images: &[OutImage], blobs: &dyn BlobOpener) -> Result<W, ArchiveError> {
    // Check every document before writing a byte.
    let mut manifests = Vec::with_capacity(images.len());
    for image in images {
        let doc = |source| ArchiveError::OutDocument { image: image.label(), source };
        let manifest = Manifest::from_json(&image.manifest).map_err(doc)?;
        let config = ImageConfig::from_json(&image.config).map_err(doc)?;
        manifest.validate_config(&config).map_err(doc)?;
        let actual = Digest::of(&image.config);
        let actual_size = image.config.len() as u64;
        if actual != manifest.config.digest || actual_size != manifest.config.size {
            return Err(ArchiveError::OutConfigMismatch {
                image: image.label(),
                expected: manifest.config.digest.clone(),
                expected_size: manifest.config.size,
                actual,
                actual_size,
            });
        }
        manifests.push(manifest);
    }

    let mut tar = tar::Builder::new(out);
    let layout = format!(r#"{{"imageLayoutVersion":"{OCI_LAYOUT_VERSION}"}}"#);
    append_bytes(&mut tar, OCI_LAYOUT_FILE, layout.as_bytes())?;
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;

    let mut written: HashSet<Digest> = HashSet::new();
    let mut index_entries = Vec::with_capacity(images.len());
    for (image, manifest) in images.iter().zip(&manifests) {
        for layer in &manifest.layers {
            if written.insert(layer.digest.clone()) {
                append_blob(&mut tar, layer, blobs)?;
            }
        }
        if written.insert(manifest.config.digest.clone()) {
            append_bytes(&mut tar, &blob_path(&manifest.config.digest), &image.config)?;
        }
        let mut desc = Descriptor::of_bytes(manifest.descriptor_media_type(), &image.manifest);
        if written.insert(desc.digest.clone()) {
            append_bytes(&mut tar, &blob_path(&desc.digest), &image.manifest)?;
        }
        if let Some(name) = &image.name {
            let mut annotations = std::collections::BTreeMap::new();
            annotations.insert(ANNOTATION_CONTAINERD_NAME.to_owned(), name.full_name());
            if let Some(tag) = &name.tag {
                annotations.insert(ANNOTATION_REF_NAME.to_owned(), tag.clone());
            }
            desc.annotations = Some(annotations);
        }
        index_entries.push(desc);
    }
    append_bytes(&mut tar, INDEX_FILE, &Index::new(index_entries).to_bytes())?;
    tar.into_inner().map_err(ArchiveError::Write)
}

/// A tar header with no times, owners or names of owners.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<(), ArchiveError> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut h, path, io::empty()).map_err(ArchiveError::Write)
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
    let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
    tar.append_data(&mut h, path, bytes).map_err(ArchiveError::Write)
}

/// Copies one layer from the opener into the tar, checking its size and
/// digest on the way.
fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    desc: &Descriptor,
    blobs: &dyn BlobOpener,
) -> Result<(), ArchiveError> {
    let read_err = |source| ArchiveError::BlobRead { digest: desc.digest.clone(), source };
    let reader = blobs.open_blob(&desc.digest).map_err(read_err)?;
    let mut exact = ExactReader { inner: HashingReader::new(reader), remaining: desc.size };
    let mut h = header(tar::EntryType::Regular, 0o644, desc.size);
    // The tar header promises `desc.size` bytes; ExactReader fails the copy
    // rather than let a short blob corrupt the archive.
    match tar.append_data(&mut h, blob_path(&desc.digest), &mut exact) {
        Ok(()) => {}
        Err(e) if exact.remaining > 0 => return Err(read_err(e)),
        Err(e) => return Err(ArchiveError::Write(e)),
    }
    // A longer blob is wrong too; read one more byte to find out.
    let mut extra = [0u8; 1];
    let more = read_up_to(&mut exact.inner, &mut extra).map_err(read_err)?;
    let (actual, actual_size) = exact.inner.finish();
    if more > 0 || actual != desc.digest {
        return Err(ArchiveError::BlobMismatch {
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            actual_size,
        });
    }
    Ok(())
}

/// Yields exactly `remaining` bytes of `inner`, failing if it ends early.
struct ExactReader<R> {
    inner: HashingReader<R>,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob ended {} bytes early", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
