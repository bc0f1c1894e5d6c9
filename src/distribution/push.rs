//! `push`: a local image to a registry, blobs as stored.
//!
//! The manifest, config and layer blobs are sent byte for byte as the
//! content store holds them (load, import, pull and save all keep them
//! so), so the pushed manifest's digest is the local one and a pull gives
//! it back. Each blob is first checked with `HEAD`; a missing one is
//! mounted from another repository of the same registry that a local tag
//! says has it (`POST …/uploads/?mount=&from=`), else uploaded: in one
//! `PUT` when small, else as `PATCH` chunks and a closing `PUT`.

use super::client::{Body, Client};
use super::progress::Progress;
use super::{auth, DistributionError, RegistryOptions};
use crate::digest::Digest;
use crate::engine::Engine;
use crate::image::oci::{Descriptor, OCI_MANIFEST};
use crate::image::reference::{Reference, DEFAULT_TAG};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub registry: RegistryOptions,
    /// Blobs uploaded at once (Docker's `max-concurrent-uploads` is 5).
    pub concurrency: usize,
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH`
    /// chunks of this size.
    pub chunk_size: u64,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions { registry: RegistryOptions::default(), concurrency: 3, chunk_size: 32 << 20 }
    }
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub tag: String,
    pub digest: Digest,
    pub size: usize,
    /// Blobs uploaded (not found on the registry, not mounted).
    pub uploaded: usize,
}

/// Where `location` gets a query parameter appended.
fn with_query(location: &str, query: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{query}")
}

fn location(resp: &ureq::Response) -> Result<String, DistributionError> {
    resp.header("location").map(str::to_owned).ok_or_else(|| DistributionError::Transport {
        method: "POST".into(),
        url: resp.get_url().to_owned(),
        detail: "upload response without a Location".into(),
    })
}

struct Uploader<'a> {
    engine: &'a Engine,
    client: &'a Client,
    progress: &'a Progress,
    chunk_size: u64,
    /// Other repositories on this registry holding a blob (from local tags).
    sources: &'a BTreeMap<Digest, Vec<String>>,
}

/// What happened to one blob.
enum Outcome {
    Exists,
    Mounted(String),
    Uploaded,
}

impl Uploader<'_> {
    fn exists(&self, d: &Digest) -> Result<bool, DistributionError> {
        match self.client.send("HEAD", &self.client.path(&format!("blobs/{d}")), &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(DistributionError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn blob(&self, desc: &Descriptor) -> Result<Outcome, DistributionError> {
        let d = &desc.digest;
        if self.exists(d)? {
            return Ok(Outcome::Exists);
        }
        let uploads = self.client.path("blobs/uploads/");
        // One mount attempt: a registry that cannot mount answers with a
        // fresh upload session (202), which the upload then uses.
        let mut session = None;
        if let Some(from) = self.sources.get(d).and_then(|s| s.first()) {
            let url = with_query(&uploads, &format!("mount={d}&from={}", auth::url_escape(from)));
            let resp = self.client.send("POST", &url, &[], Body::Empty)?;
            if resp.status() == 201 {
                return Ok(Outcome::Mounted(from.clone()));
            }
            session = Some(location(&resp)?);
        }
        let first = match session {
            Some(l) => l,
            None => location(&self.client.send("POST", &uploads, &[], Body::Empty)?)?,
        };
        // An upload that failed midway leaves its session in an unknown
        // state (a PATCH may have been half-written): start a fresh session
        // once rather than resend into the old one.
        match self.upload(d, first) {
            Err(e) if restartable(&e) => {
                let fresh = location(&self.client.send("POST", &uploads, &[], Body::Empty)?)?;
                self.upload(d, fresh)
            }
            r => r,
        }
    }

    /// Sends blob `d` into upload session `loc`: one `PUT`, or `PATCH`
    /// chunks and a closing `PUT`.
    fn upload(&self, d: &Digest, mut loc: String) -> Result<Outcome, DistributionError> {
        let path = self.engine.content.path(d);
        let size = self.engine.content.size(d)?;
        let id = d.short();
        let digest_q = format!("digest={}", auth::url_escape(&d.to_string()));
        let octets = ("Content-Type", "application/octet-stream");
        if size <= self.chunk_size {
            let body = Body::File { path: &path, offset: 0, len: size };
            self.client.send("PUT", &with_query(&loc, &digest_q), &[octets], body)?;
            return Ok(Outcome::Uploaded);
        }
        let mut offset = 0;
        while offset < size {
            let len = self.chunk_size.min(size - offset);
            let range = format!("{}-{}", offset, offset + len - 1);
            let body = Body::File { path: &path, offset, len };
            let resp = self.client.send("PATCH", &loc, &[octets, ("Content-Range", &range)], body)?;
            loc = location(&resp)?;
            offset += len;
            self.progress.bytes(id, "Pushing", offset, size);
        }
        self.client.send("PUT", &with_query(&loc, &digest_q), &[octets], Body::Empty)?;
        Ok(Outcome::Uploaded)
    }
}

/// Whether an upload error may be cured by a fresh session: the server
/// failed or the connection did (after `Client::send`'s own retries).
fn restartable(e: &DistributionError) -> bool {
    match e {
        DistributionError::Transport { .. } => true,
        DistributionError::Status { status, .. } => *status >= 500 || *status == 416,
        _ => false,
    }
}

/// For each blob of `engine`'s images tagged on `registry` in another
/// repository than `repository`: those repositories.
fn mount_sources(engine: &Engine, registry: &str, repository: &str) -> BTreeMap<Digest, Vec<String>> {
    let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    let Ok(tags) = engine.images.tags() else { return out };
    for (r, id) in tags {
        if r.domain() != registry || r.remote_path() == repository {
            continue;
        }
        let Ok(img) = engine.images.get(&id) else { continue };
        let Ok((_, m)) = engine.images.manifest(&img) else { continue };
        for l in m.layers.iter().chain(std::iter::once(&m.config)) {
            let repos = out.entry(l.digest.clone()).or_default();
            if !repos.contains(&r.remote_path()) {
                repos.push(r.remote_path());
            }
        }
    }
    out
}

/// Pushes the local image `reference` names to that registry.
pub fn push(
    engine: &Engine,
    reference: &Reference,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<Pushed, DistributionError> {
    let id = engine
        .images
        .resolve(&reference.to_string())
        .map_err(|_| DistributionError::NoSuchImage(reference.to_string()))?;
    let image = engine.images.get(&id)?;
    let (manifest_bytes, manifest) = engine.images.manifest(&image)?;
    let repo = reference.remote_path();
    let sources = mount_sources(engine, reference.domain(), &repo);
    let mut scopes = vec![auth::repository_scope(&repo, true)];
    for r in sources.values().flatten() {
        let s = auth::repository_scope(r, false);
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let client = Client::connect(reference.domain(), &repo, scopes, &opts.registry)?;
    let up = Uploader { engine, client: &client, progress, chunk_size: opts.chunk_size.max(1), sources: &sources };
    for l in &manifest.layers {
        progress.status(l.digest.short(), "Preparing");
    }
    let next = AtomicUsize::new(0);
    let uploaded = AtomicUsize::new(0);
    let error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.concurrency.max(1).min(manifest.layers.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(desc) = manifest.layers.get(k) else { break };
                if error.lock().expect("no panics while held").is_some() {
                    break;
                }
                let id = desc.digest.short();
                match up.blob(desc) {
                    Ok(Outcome::Exists) => progress.status(id, "Layer already exists"),
                    Ok(Outcome::Mounted(from)) => progress.status(id, &format!("Mounted from {from}")),
                    Ok(Outcome::Uploaded) => {
                        uploaded.fetch_add(1, Ordering::SeqCst);
                        progress.status(id, "Pushed");
                    }
                    Err(e) => {
                        error.lock().expect("no panics while held").get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("no panics while held") {
        return Err(e);
    }
    if let Outcome::Uploaded = up.blob(&manifest.config)? {
        uploaded.fetch_add(1, Ordering::SeqCst);
    }
    let tag = match (&reference.tag, &reference.digest) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => DEFAULT_TAG.to_owned(),
    };
    let media_type = manifest.media_type.clone().unwrap_or_else(|| OCI_MANIFEST.to_owned());
    let path = client.path(&format!("manifests/{tag}"));
    let resp = client.send("PUT", &path, &[("Content-Type", &media_type)], Body::Bytes(&manifest_bytes))?;
    let digest = Digest::of(&manifest_bytes);
    if let Some(theirs) = resp.header("docker-content-digest").and_then(|h| h.parse::<Digest>().ok()) {
        if theirs != digest {
            return Err(DistributionError::DigestMismatch {
                what: format!("pushed manifest {tag}"),
                expected: digest,
                actual: theirs,
            });
        }
    }
    Ok(Pushed { tag, digest, size: manifest_bytes.len(), uploaded: uploaded.into_inner() })
}
