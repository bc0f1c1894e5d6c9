//! The OCI image model (image-spec v1.1) and Docker's v2 schema 2
//! equivalents, as typed serde structs.
//!
//! * [`Descriptor`] — a typed pointer to a blob: media type, digest, size.
//! * [`Manifest`] — one image for one platform: a config and its layers.
//! * [`Index`] — a list of manifests (multi-platform image, or the top of an
//!   OCI image layout). Docker's "manifest list" has the same shape.
//! * [`ImageConfig`] — the image config; its digest is the image ID.
//!
//! Parsing is pure: every `from_json` takes bytes and does no I/O, and checks
//! the invariants the spec states (`schemaVersion` 2, `rootfs.type` "layers",
//! valid digests, non-negative sizes) so a caller never holds a half-valid
//! value.
//!
//! **Architecture Invariant:** these types are *views* of JSON, not the JSON
//! itself. An image ID or manifest digest is the digest of the bytes as
//! stored, so whoever stores an image keeps the original bytes; re-serializing
//! a parsed value is only for documents strata creates. Fields Docker or OCI
//! may add later land in `extra` (flattened) and are written back, and
//! optional fields are skipped when absent, so what strata writes is minimal.

use crate::digest::{DiffId, Digest};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker image manifest, v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform), v2 schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// An uncompressed Docker layer (moby's `MediaTypeUncompressedLayer`;
/// skopeo writes it for v2s2 images whose layers it did not compress).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker "foreign" layer (Windows base layers, fetched from `urls`).
pub const DOCKER_FOREIGN_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// `imageLayoutVersion` of the `oci-layout` file this module reads and writes.
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// Annotation: the tag (or full reference) of a manifest in an image layout.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation containerd, Docker and BuildKit use for the full image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Errors from parsing or validating OCI and Docker image documents.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{what}: invalid JSON: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("{what}: schemaVersion is {found}, expected 2")]
    SchemaVersion { what: &'static str, found: u32 },
    #[error("{what}: mediaType {found:?} is not one of {expected:?}")]
    MediaType { what: &'static str, found: String, expected: &'static [&'static str] },
    #[error("image config: rootfs.type is {0:?}, expected \"layers\"")]
    RootfsType(String),
    #[error("image config: {field} is {time}, outside the years 0000-9999 an RFC 3339 time can hold")]
    TimeOutOfRange { field: String, time: String },
    #[error("manifest lists {layers} layers but the image config has {diff_ids} diff_ids")]
    LayerCount { layers: usize, diff_ids: usize },
}

type Annotations = BTreeMap<String, String>;

/// Sizes are `int64` in the spec; a negative one is rejected while parsing so
/// the rest of strata can hold a `u64`.
fn non_negative_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = i64::deserialize(d)?;
    u64::try_from(n).map_err(|_| serde::de::Error::custom(format!("descriptor size {n} is negative")))
}

/// Writes a time as Go's `time.RFC3339Nano` does (fraction without
/// trailing zeros, `Z` for UTC), so a config strata re-serializes keeps the
/// timestamps Docker and BuildKit wrote.
fn go_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => {
            let mut text = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let nanos = t.timestamp_subsec_nanos();
            if nanos != 0 {
                let frac = format!("{nanos:09}");
                text.push('.');
                text.push_str(frac.trim_end_matches('0'));
            }
            text.push('Z');
            s.serialize_str(&text)
        }
        None => s.serialize_none(),
    }
}

/// A typed reference to a blob (`descriptor.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    #[serde(deserialize_with = "non_negative_size")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// A descriptor with just the three required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: Map::new(),
        }
    }

    /// The descriptor of `bytes` under `media_type`.
    pub fn of_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// The platform an image runs on, with Go's `GOOS`/`GOARCH` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Platform {
    /// `os`/`architecture` with no variant.
    pub fn new(os: &str, architecture: &str) -> Platform {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: None,
            variant: None,
            extra: Map::new(),
        }
    }

    /// The platform strata was built for, in Go's naming (`x86_64` is
    /// `amd64`, `aarch64` is `arm64`, ...).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch)
    }

    /// Whether an image for `self` runs on `wanted`: os and architecture
    /// equal, and the variant too when both name one.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && match (&self.variant, &wanted.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, OciError> {
    serde_json::from_slice(bytes).map_err(|source| OciError::Json { what, source })
}

fn check_schema_version(what: &'static str, found: u32) -> Result<(), OciError> {
    if found == 2 {
        Ok(())
    } else {
        Err(OciError::SchemaVersion { what, found })
    }
}

fn check_media_type(
    what: &'static str,
    found: Option<&str>,
    expected: &'static [&'static str],
) -> Result<(), OciError> {
    match found {
        // OCI makes mediaType optional in manifests and indexes.
        None => Ok(()),
        Some(m) if expected.contains(&m) => Ok(()),
        Some(m) => Err(OciError::MediaType { what, found: m.to_owned(), expected }),
    }
}

/// Serializes a document strata built; these types hold only strings, maps
/// and numbers, so serialization cannot fail.
fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("image documents always serialize")
}

/// An image manifest (`manifest.md`), OCI or Docker v2 schema 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Manifest {
    /// The media types a manifest may declare.
    pub const MEDIA_TYPES: &'static [&'static str] = &[OCI_MANIFEST, DOCKER_MANIFEST];

    /// An OCI manifest for a config and its layers, bottom layer first.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
            extra: Map::new(),
        }
    }

    /// Parses and validates a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, OciError> {
        let m: Manifest = parse("manifest", bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// Checks what the spec requires of a manifest on its own.
    pub fn validate(&self) -> Result<(), OciError> {
        check_schema_version("manifest", self.schema_version)?;
        check_media_type("manifest", self.media_type.as_deref(), Self::MEDIA_TYPES)
    }

    /// Checks that the manifest and its config describe the same layers.
    pub fn validate_config(&self, config: &ImageConfig) -> Result<(), OciError> {
        if self.layers.len() != config.rootfs.diff_ids.len() {
            return Err(OciError::LayerCount { layers: self.layers.len(), diff_ids: config.rootfs.diff_ids.len() });
        }
        Ok(())
    }

    /// The manifest as compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// The media type to use in a descriptor pointing at this manifest.
    pub fn descriptor_media_type(&self) -> &str {
        self.media_type.as_deref().unwrap_or(OCI_MANIFEST)
    }
}

/// An image index (`image-index.md`) or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Index {
    /// The media types an index may declare.
    pub const MEDIA_TYPES: &'static [&'static str] = &[OCI_INDEX, DOCKER_MANIFEST_LIST];

    /// An OCI index over `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: None,
            extra: Map::new(),
        }
    }

    /// Parses and validates an index.
    pub fn from_json(bytes: &[u8]) -> Result<Index, OciError> {
        let i: Index = parse("index", bytes)?;
        i.validate()?;
        Ok(i)
    }

    /// Checks what the spec requires of an index.
    pub fn validate(&self) -> Result<(), OciError> {
        check_schema_version("index", self.schema_version)?;
        check_media_type("index", self.media_type.as_deref(), Self::MEDIA_TYPES)
    }

    /// The index as compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// The entry for `wanted`, the one platform choice `load` and `pull`
    /// share: among the entries whose platform [`Platform::satisfies`]
    /// `wanted`, the first with exactly the wanted variant, else the first;
    /// an index whose only entry names no platform is taken as is.
    pub fn manifest_for(&self, wanted: &Platform) -> Option<&Descriptor> {
        if let [only] = self.manifests.as_slice() {
            if only.platform.is_none() {
                return Some(only);
            }
        }
        let fits = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.satisfies(wanted));
        self.manifests
            .iter()
            .filter(fits)
            .find(|d| d.platform.as_ref().is_some_and(|p| p.variant == wanted.variant))
            .or_else(|| self.manifests.iter().find(fits))
    }

    /// The platforms the entries name, comma separated, for an error that
    /// says what was there instead.
    pub fn platforms(&self) -> String {
        let names: Vec<String> =
            self.manifests.iter().filter_map(|d| d.platform.as_ref().map(Platform::to_string)).collect();
        names.join(", ")
    }
}

/// `{}` — the value type of Docker's `ExposedPorts` and `Volumes` sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The image config (`config.md`), a superset of OCI's and Docker's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "go_time")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    /// Docker adds `container`, `container_config`, `docker_version`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageConfig {
    /// A minimal config with no layers, for `os`/`architecture`.
    pub fn new(platform: &Platform) -> ImageConfig {
        ImageConfig {
            created: None,
            author: None,
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: platform.os_version.clone(),
            os_features: platform.os_features.clone(),
            variant: platform.variant.clone(),
            config: None,
            rootfs: RootFs { kind: RootFs::LAYERS.to_owned(), diff_ids: Vec::new(), extra: Map::new() },
            history: None,
            extra: Map::new(),
        }
    }

    /// The config strata starts an image from when it has no base
    /// (`FROM scratch`, `import` without `--base`): linux/amd64, an empty
    /// `config` and no history yet.
    pub fn scratch() -> ImageConfig {
        let mut c = ImageConfig::new(&Platform::new("linux", "amd64"));
        c.config = Some(ContainerConfig::default());
        c.history = Some(Vec::new());
        c
    }

    /// The execution defaults (`config`), created empty when absent.
    pub fn config_mut(&mut self) -> &mut ContainerConfig {
        self.config.get_or_insert_with(ContainerConfig::default)
    }

    /// Records one step: appends its history entry and, when it added a
    /// layer, the layer's diff ID; `created` becomes the step's time.
    pub fn push_step(&mut self, entry: History, diff_id: Option<DiffId>) {
        self.created = entry.created;
        self.rootfs.diff_ids.extend(diff_id);
        self.history.get_or_insert_with(Vec::new).push(entry);
    }

    /// Parses and validates an image config.
    pub fn from_json(bytes: &[u8]) -> Result<ImageConfig, OciError> {
        let c: ImageConfig = parse("image config", bytes)?;
        c.validate()?;
        Ok(c)
    }

    /// Checks what the spec requires of a config.
    pub fn validate(&self) -> Result<(), OciError> {
        if self.rootfs.kind != RootFs::LAYERS {
            return Err(OciError::RootfsType(self.rootfs.kind.clone()));
        }
        // A time zone can move a year-9999 time past 9999 in UTC, which
        // would be written back as `+10000-…`, a string nothing reads.
        let history = self.history.iter().flatten().enumerate();
        let times = std::iter::once(("created".to_owned(), self.created))
            .chain(history.map(|(i, h)| (format!("history[{i}].created"), h.created)));
        for (field, time) in times {
            if let Some(t) = time.filter(|t| !(0..=9999).contains(&t.year())) {
                return Err(OciError::TimeOutOfRange { field, time: t.to_rfc3339() });
            }
        }
        Ok(())
    }

    /// The config as compact JSON; its digest is the image ID.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: self.variant.clone(),
            extra: Map::new(),
        }
    }
}

/// The execution defaults of a container (`config.config`), with Docker's
/// capitalized keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker extension: seconds to wait after `StopSignal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Docker's container fields (`Hostname`, `AttachStdin`, `Tty`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Docker's `HEALTHCHECK`; durations are nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The layers of an image's root filesystem, bottom first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `"layers"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<DiffId>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl RootFs {
    /// The only `rootfs.type` the spec defines.
    pub const LAYERS: &'static str = "layers";
}

/// One step of an image's build history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "go_time")]
    pub created: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step changed only metadata and added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `oci-layout` file at the root of an image layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciLayout {
    pub image_layout_version: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OciLayout {
    /// Parses the `oci-layout` file.
    pub fn from_json(bytes: &[u8]) -> Result<OciLayout, OciError> {
        parse("oci-layout", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// A config as `docker inspect`-era Docker writes it: null fields,
    /// `container_config`, `docker_version` and an unknown top-level key.
    fn docker_config() -> String {
        format!(
            r#"{{"architecture":"amd64","config":{{"Hostname":"","User":"1000","ExposedPorts":{{"80/tcp":{{}}}},"Env":["PATH=/bin"],"Entrypoint":null,"Cmd":["sh"],"Volumes":{{"/data":{{}}}},"WorkingDir":"/w","Labels":{{"a":"b"}},"StopSignal":"SIGTERM","Healthcheck":{{"Test":["CMD","true"],"Interval":1000000000}},"OnBuild":null}},"container":"abc","container_config":{{"Cmd":["/bin/sh"]}},"created":"2023-05-19T20:19:28.034447469Z","docker_version":"20.10.23","history":[{{"created":"2023-05-19T20:19:27.9Z","created_by":"ADD file:x in /"}},{{"created":"2023-05-19T20:19:28Z","created_by":"CMD [\"sh\"]","empty_layer":true}}],"os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"x-future":{{"k":[1,2]}}}}"#,
            d('a')
        )
    }

    #[test]
    fn docker_config_parses_with_typed_fields() {
        let c = ImageConfig::from_json(docker_config().as_bytes()).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.user.as_deref(), Some("1000"));
        assert_eq!(cc.cmd.as_deref(), Some(&["sh".to_owned()][..]));
        assert_eq!(cc.entrypoint, None);
        assert!(cc.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(cc.volumes.as_ref().unwrap().contains_key("/data"));
        assert_eq!(cc.labels.as_ref().unwrap()["a"], "b");
        assert_eq!(cc.healthcheck.as_ref().unwrap().interval, Some(1_000_000_000));
        assert_eq!(cc.extra["Hostname"], "");
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        let h = c.history.as_ref().unwrap();
        assert!(!h[0].empty_layer && h[1].empty_layer);
        assert_eq!(c.extra["docker_version"], "20.10.23");
        assert_eq!(c.extra["x-future"]["k"][1], 2);
        assert_eq!(c.platform().to_string(), "linux/amd64");
    }

    #[test]
    fn config_round_trips_as_a_json_value() {
        // Unknown fields survive; only `null`s of typed optional fields and
        // `empty_layer: false` are dropped, which is the canonical form.
        let c = ImageConfig::from_json(docker_config().as_bytes()).unwrap();
        let again: Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        let mut orig: Value = serde_json::from_str(&docker_config()).unwrap();
        let cfg = orig["config"].as_object_mut().unwrap();
        cfg.remove("Entrypoint");
        cfg.remove("OnBuild");
        assert_eq!(again, orig);
        // And a second trip is byte-stable.
        let c2 = ImageConfig::from_json(&c.to_bytes()).unwrap();
        assert_eq!(c2.to_bytes(), c.to_bytes());
    }

    #[test]
    fn created_config_is_minimal() {
        let mut c = ImageConfig::new(&Platform::new("linux", "amd64"));
        c.rootfs.diff_ids.push(d('b').parse().unwrap());
        assert_eq!(
            String::from_utf8(c.to_bytes()).unwrap(),
            format!(
                r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
                d('b')
            )
        );
    }

    #[test]
    fn unknown_fields_survive_an_edit() {
        // What `import --base --change` and `commit` do to a foreign config:
        // edit the execution defaults, add a step, serialize.
        let mut c = ImageConfig::from_json(docker_config().as_bytes()).unwrap();
        c.config_mut().cmd = Some(vec!["true".to_owned()]);
        let entry = History { created_by: Some("step".to_owned()), ..History::default() };
        c.push_step(entry, Some(d('b').parse().unwrap()));
        let again: Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        assert_eq!(again["x-future"]["k"], serde_json::json!([1, 2]));
        assert_eq!(again["docker_version"], "20.10.23");
        assert_eq!(again["container_config"]["Cmd"][0], "/bin/sh");
        assert_eq!(again["config"]["Hostname"], "");
        assert_eq!(again["config"]["Cmd"][0], "true");
        assert_eq!(again["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(again["history"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn config_rejects_other_rootfs_type() {
        let bad = docker_config().replace(r#""type":"layers""#, r#""type":"tarsum""#);
        let err = ImageConfig::from_json(bad.as_bytes()).unwrap_err();
        assert!(matches!(err, OciError::RootfsType(ref t) if t == "tarsum"), "{err}");
    }

    #[test]
    fn config_rejects_bad_diff_id() {
        let bad = docker_config().replace(&d('a'), "sha256:XYZ");
        let err = ImageConfig::from_json(bad.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("image config: invalid JSON"), "{err}");
        assert!(err.contains("sha256:XYZ"), "{err}");
    }

    fn manifest_json(schema: u32, size: i64) -> String {
        format!(
            r#"{{"schemaVersion":{schema},"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":7}},"layers":[{{"mediaType":"{OCI_LAYER_TAR_GZIP}","digest":"{}","size":{size},"annotations":{{"k":"v"}}}}],"annotations":{{"org.example":"x"}},"x-extra":true}}"#,
            d('c'),
            d('e')
        )
    }

    #[test]
    fn manifest_round_trips_byte_for_byte() {
        let text = manifest_json(2, 42);
        let m = Manifest::from_json(text.as_bytes()).unwrap();
        assert_eq!(m.layers[0].size, 42);
        assert_eq!(m.layers[0].annotation("k"), Some("v"));
        assert_eq!(m.extra["x-extra"], true);
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), text);
    }

    #[test]
    fn manifest_rejects_schema_1_and_negative_sizes() {
        let err = Manifest::from_json(manifest_json(1, 1).as_bytes()).unwrap_err();
        assert!(matches!(err, OciError::SchemaVersion { found: 1, .. }), "{err}");
        let err = Manifest::from_json(manifest_json(2, -1).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("descriptor size -1 is negative"), "{err}");
    }

    #[test]
    fn manifest_rejects_wrong_media_type() {
        let text = manifest_json(2, 1).replacen(OCI_MANIFEST, OCI_INDEX, 1);
        let err = Manifest::from_json(text.as_bytes()).unwrap_err();
        assert!(matches!(err, OciError::MediaType { .. }), "{err}");
    }

    #[test]
    fn manifest_and_config_layer_counts_must_agree() {
        let m = Manifest::from_json(manifest_json(2, 1).as_bytes()).unwrap();
        let mut c = ImageConfig::new(&Platform::host());
        let err = m.validate_config(&c).unwrap_err();
        assert!(matches!(err, OciError::LayerCount { layers: 1, diff_ids: 0 }), "{err}");
        c.rootfs.diff_ids.push(d('f').parse().unwrap());
        m.validate_config(&c).unwrap();
    }

    #[test]
    fn new_manifest_serializes_canonically() {
        let config = Descriptor::of_bytes(OCI_CONFIG, b"{}");
        let layer = Descriptor::new(OCI_LAYER_TAR, d('1').parse().unwrap(), 3);
        let m = Manifest::new(config, vec![layer]);
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":2}},"layers":[{{"mediaType":"{OCI_LAYER_TAR}","digest":"{}","size":3}}]}}"#,
                Digest::of(b"{}"),
                d('1')
            )
        );
        assert_eq!(Manifest::from_json(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn docker_manifest_list_parses_as_index() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#,
            d('2')
        );
        let i = Index::from_json(text.as_bytes()).unwrap();
        let p = i.manifests[0].platform.as_ref().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!(p.satisfies(&Platform::new("linux", "arm")));
        assert!(!p.satisfies(&Platform::new("linux", "arm64")));
        assert_eq!(String::from_utf8(i.to_bytes()).unwrap(), text);
    }

    fn entry(c: char, platform: Option<Platform>) -> Descriptor {
        let mut desc = Descriptor::new(OCI_MANIFEST, d(c).parse().unwrap(), 1);
        desc.platform = platform;
        desc
    }

    fn with_variant(os: &str, arch: &str, variant: &str) -> Platform {
        let mut p = Platform::new(os, arch);
        p.variant = Some(variant.to_owned());
        p
    }

    fn chosen(index: &Index, wanted: &Platform) -> Option<Digest> {
        index.manifest_for(wanted).map(|desc| desc.digest.clone())
    }

    #[test]
    fn manifest_for_matches_os_and_architecture() {
        let index = Index::new(vec![
            entry('1', Some(Platform::new("linux", "arm64"))),
            entry('2', Some(Platform::new("windows", "amd64"))),
            entry('3', Some(Platform::new("linux", "amd64"))),
        ]);
        assert_eq!(chosen(&index, &Platform::new("linux", "amd64")), Some(d('3').parse().unwrap()));
        assert_eq!(chosen(&index, &Platform::new("linux", "arm64")), Some(d('1').parse().unwrap()));
    }

    #[test]
    fn manifest_for_prefers_the_exact_variant() {
        let index = Index::new(vec![
            entry('1', Some(with_variant("linux", "arm", "v6"))),
            entry('2', Some(with_variant("linux", "arm", "v7"))),
        ]);
        assert_eq!(chosen(&index, &with_variant("linux", "arm", "v7")), Some(d('2').parse().unwrap()));
        // No variant asked for: the first entry that fits.
        assert_eq!(chosen(&index, &Platform::new("linux", "arm")), Some(d('1').parse().unwrap()));
        // A variant nobody has: a variant-less entry that fits would do, these don't.
        assert_eq!(chosen(&index, &with_variant("linux", "arm", "v8")), None);
    }

    #[test]
    fn manifest_for_takes_the_first_match() {
        let index = Index::new(vec![
            entry('1', Some(Platform::new("linux", "arm64"))),
            entry('2', Some(Platform::new("linux", "amd64"))),
            entry('3', Some(Platform::new("linux", "amd64"))),
        ]);
        assert_eq!(chosen(&index, &Platform::new("linux", "amd64")), Some(d('2').parse().unwrap()));
    }

    #[test]
    fn manifest_for_missing_platform() {
        let index = Index::new(vec![
            entry('1', Some(Platform::new("linux", "arm64"))),
            entry('2', None),
            entry('3', Some(with_variant("linux", "arm", "v7"))),
        ]);
        assert_eq!(chosen(&index, &Platform::new("linux", "amd64")), None);
        assert_eq!(index.platforms(), "linux/arm64, linux/arm/v7");
        // A lone entry without a platform is the image, whatever is wanted.
        let single = Index::new(vec![entry('4', None)]);
        assert_eq!(chosen(&single, &Platform::new("linux", "amd64")), Some(d('4').parse().unwrap()));
        assert_eq!(chosen(&Index::new(Vec::new()), &Platform::new("linux", "amd64")), None);
    }

    #[test]
    fn truncated_documents_are_errors_not_panics() {
        let docs = [docker_config(), manifest_json(2, 1)];
        for doc in &docs {
            for end in 0..doc.len() {
                let bytes = &doc.as_bytes()[..end];
                assert!(ImageConfig::from_json(bytes).is_err());
                assert!(Manifest::from_json(bytes).is_err());
                assert!(Index::from_json(bytes).is_err());
            }
        }
    }
}
