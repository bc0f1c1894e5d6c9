//! Placeholder: replaced by the layer-apply implementation.
use crate::digest::{DiffId, Digest};
pub use crate::image::compression::Compression;
use std::path::Path;
pub struct ApplyOutcome {
    pub diff_id: DiffId,
    pub compressed: Digest,
    pub compressed_size: u64,
    pub size: u64,
    pub content_size: u64,
    pub compression: Compression,
}
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("x")]
    X,
}
pub fn apply_layer<R: std::io::Read>(
    _blob: R,
    _dir: &Path,
    _w: crate::snapshot::Whiteouts,
) -> Result<ApplyOutcome, ApplyError> {
    unimplemented!()
}
