//! Placeholder: replaced by the layer-apply implementation.
#[derive(Debug, Clone, Copy)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}
