//! Fetching: manifests by tag or digest (following an index to one
//! platform), small blobs whole, and layer blobs as a resuming stream.

use super::client::{Body, Client};
use super::{DistributionError, MANIFEST_MAX};
use crate::digest::Digest;
use crate::image::oci::{
    Descriptor, Index, Manifest, Platform, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use std::io::{self, Read};

/// Every manifest type strata understands, for `Accept`.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";

/// Resends of a layer download that broke off before giving up.
const RESUMES: u32 = 5;

/// A platform manifest resolved from a reference.
#[derive(Debug)]
pub struct Resolved {
    /// Digest of what the reference named (an index for multi-platform
    /// images): what `docker pull` prints as `Digest:`.
    pub digest: Digest,
    /// The platform manifest, byte for byte, and its digest.
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest: Manifest,
}

/// Fetches one manifest document; checks it against `expected` when the
/// reference is a digest.
fn get_document(
    client: &Client,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<(Vec<u8>, Digest, String), DistributionError> {
    let path = client.path(&format!("manifests/{reference}"));
    let resp = match client.send("GET", &path, &[("Accept", ACCEPT)], Body::Empty) {
        Err(DistributionError::Status { status: 404, .. }) => {
            return Err(DistributionError::ManifestUnknown {
                reference: format!("{}/{}:{reference}", client.registry, client.repository),
            })
        }
        r => r?,
    };
    let content_type = resp.content_type().to_owned();
    let bytes = Client::read_limited(resp, "manifest", reference, MANIFEST_MAX)?;
    let digest = Digest::of(&bytes);
    if let Some(exp) = expected {
        if *exp != digest {
            return Err(DistributionError::DigestMismatch {
                what: format!("manifest {reference}"),
                expected: exp.clone(),
                actual: digest,
            });
        }
    }
    // OCI makes `mediaType` optional; fall back to Content-Type.
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| DistributionError::Oci {
        what: format!("manifest {reference}"),
        source: crate::image::oci::OciError::Json { what: "manifest", source: e },
    })?;
    let media_type = match probe.media_type {
        Some(m) => m,
        None if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        None if [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST].contains(&content_type.as_str()) => {
            content_type
        }
        None => OCI_MANIFEST.to_owned(),
    };
    Ok((bytes, digest, media_type))
}

/// Resolves `reference` (a tag or `sha256:…`) to the manifest for
/// `platform`, following an OCI index or Docker manifest list.
pub fn resolve(
    client: &Client,
    reference: &str,
    expected: Option<&Digest>,
    platform: &Platform,
) -> Result<Resolved, DistributionError> {
    let (bytes, digest, media_type) = get_document(client, reference, expected)?;
    let oci = |what: String| move |source| DistributionError::Oci { what, source };
    if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
        let index = Index::from_json(&bytes).map_err(oci(format!("index {digest}")))?;
        let Some(desc) = index.manifest_for(platform) else {
            return Err(DistributionError::NoPlatform {
                reference: reference.to_owned(),
                platform: platform.to_string(),
                available: index.platforms(),
            });
        };
        let (mbytes, mdigest, mtype) = get_document(client, &desc.digest.to_string(), Some(&desc.digest))?;
        if mtype != OCI_MANIFEST && mtype != DOCKER_MANIFEST {
            return Err(DistributionError::MediaType { what: "manifest", digest: mdigest, media_type: mtype });
        }
        let manifest = Manifest::from_json(&mbytes).map_err(oci(format!("manifest {mdigest}")))?;
        return Ok(Resolved { digest, manifest_bytes: mbytes, manifest_digest: mdigest, manifest });
    }
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(DistributionError::MediaType { what: "manifest", digest, media_type });
    }
    let manifest = Manifest::from_json(&bytes).map_err(oci(format!("manifest {digest}")))?;
    Ok(Resolved { digest: digest.clone(), manifest_bytes: bytes, manifest_digest: digest, manifest })
}

/// Fetches a small blob (a config) whole and verifies it.
pub fn small_blob(client: &Client, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, DistributionError> {
    if desc.size > limit {
        return Err(DistributionError::TooLarge { what: "blob", digest: desc.digest.to_string(), limit });
    }
    let resp = client.send("GET", &client.path(&format!("blobs/{}", desc.digest)), &[], Body::Empty)?;
    let bytes = Client::read_limited(resp, "blob", &desc.digest.to_string(), limit)?;
    let actual = Digest::of(&bytes);
    if actual != desc.digest {
        return Err(DistributionError::DigestMismatch {
            what: format!("blob {}", desc.digest),
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// A layer blob as a stream. When the connection drops or the body ends
/// before the descriptor's size, it re-requests the rest with `Range`
/// (or, if the registry ignores ranges, skips what was already read), so
/// the reader above — hashing and applying — sees one continuous stream.
/// Verifying the digest is the consumer's job (it hashes anyway).
pub struct BlobReader<'c> {
    client: &'c Client,
    digest: Digest,
    size: u64,
    pos: u64,
    inner: Option<Box<dyn Read + Send + Sync + 'static>>,
    resumes: u32,
}

impl<'c> BlobReader<'c> {
    pub fn new(client: &'c Client, desc: &Descriptor) -> BlobReader<'c> {
        BlobReader { client, digest: desc.digest.clone(), size: desc.size, pos: 0, inner: None, resumes: 0 }
    }

    fn open(&mut self) -> io::Result<()> {
        let path = self.client.path(&format!("blobs/{}", self.digest));
        let range = format!("bytes={}-", self.pos);
        let headers: &[(&str, &str)] = if self.pos > 0 { &[("Range", &range)] } else { &[] };
        let resp = self.client.send("GET", &path, headers, Body::Empty).map_err(io::Error::other)?;
        let partial = resp.status() == 206;
        let mut reader = resp.into_reader();
        if self.pos > 0 && !partial {
            // The registry sent the whole blob again: skip what we have.
            let skipped = io::copy(&mut (&mut reader).take(self.pos), &mut io::sink())?;
            if skipped < self.pos {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter on resend"));
            }
        }
        self.inner = Some(reader);
        Ok(())
    }

    fn broke_off(&mut self, why: io::Error) -> io::Result<()> {
        self.inner = None;
        if self.resumes >= RESUMES {
            return Err(io::Error::new(
                why.kind(),
                format!("blob {}: broke off {} times, last at byte {}: {why}", self.digest, self.resumes + 1, self.pos),
            ));
        }
        std::thread::sleep(self.client.backoff(self.resumes.min(self.client.retries())));
        self.resumes += 1;
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.inner.is_none() {
                if self.pos >= self.size {
                    return Ok(0);
                }
                self.open()?;
            }
            let inner = self.inner.as_mut().expect("opened above");
            match inner.read(buf) {
                Ok(0) if self.pos < self.size => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "response ended early");
                    self.broke_off(e)?;
                }
                Ok(n) => {
                    self.pos += n as u64;
                    if self.pos > self.size {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("blob {}: more than the {} bytes its descriptor says", self.digest, self.size),
                        ));
                    }
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::TimedOut
                    ) =>
                {
                    self.broke_off(e)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
