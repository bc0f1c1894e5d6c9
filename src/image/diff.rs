//! Placeholder: replaced by the layer-diff implementation.
use crate::digest::DiffId;
pub struct DiffOutcome {
    pub diff_id: DiffId,
    pub size: u64,
}
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("x")]
    X,
}
pub fn write_layer<W: std::io::Write>(_s: &crate::snapshot::DiffSource, _out: W) -> Result<DiffOutcome, DiffError> {
    unimplemented!()
}
