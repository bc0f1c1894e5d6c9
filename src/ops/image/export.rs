//! `save`: images out as an OCI image layout tar ("oci-archive") that
//! skopeo, umoci and `podman load` read. Manifests, configs and layer blobs
//! are written byte for byte from the content store, so a saved image
//! keeps its manifest digest.

use crate::digest::{Digest, ImageId};
use crate::engine::Engine;
use crate::image::archive::{write_oci_archive, ArchiveError, OutImage};
use crate::image::images::ImageError;
use crate::image::reference::Reference;
use crate::root::RootError;
use std::io::{self, Read};
use std::path::Path;

/// Errors of `save`.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Root(#[from] RootError),
}

/// Writes `images` (each with the name to record, if any) to `out`
/// atomically: a temporary file beside it, renamed on success.
pub fn save(engine: &Engine, images: &[(ImageId, Option<Reference>)], out: &Path) -> Result<(), ExportError> {
    let mut list = Vec::new();
    for (id, name) in images {
        let img = engine.images.get(id)?;
        let (manifest, _) = engine.images.manifest(&img)?;
        let name = name.clone().or_else(|| engine.images.tags_of(id).ok().and_then(|t| t.into_iter().next()));
        list.push(OutImage { name, manifest, config: img.config_bytes });
    }
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        crate::root::unique_suffix()
    ));
    let result = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| RootError::io(&tmp, e))?;
        let content = engine.content.clone();
        let opener = move |d: &Digest| -> io::Result<Box<dyn Read>> {
            content
                .open(d)
                .map(|f| Box::new(io::BufReader::with_capacity(1 << 20, f)) as Box<dyn Read>)
                .map_err(io::Error::other)
        };
        let w = write_oci_archive(io::BufWriter::with_capacity(1 << 20, f), &list, &opener)?;
        let f = w.into_inner().map_err(|e| RootError::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(|e| RootError::io(&tmp, e))?;
        std::fs::rename(&tmp, out).map_err(|e| RootError::io(out, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
