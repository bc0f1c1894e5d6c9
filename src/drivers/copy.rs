//! The copy driver (placeholder until implemented).
use crate::snapshot::DriverError;
use std::path::Path;
#[derive(Debug)]
pub struct Copy;
impl Copy {
    pub fn new(_home: &Path) -> Result<Copy, DriverError> {
        Err(DriverError::Unsupported("copy driver not built yet".into()))
    }
}
impl crate::snapshot::Driver for Copy {
    fn name(&self) -> &'static str { "copy" }
    fn create(&self, _: crate::snapshot::SnapshotId, _: &[crate::snapshot::SnapshotId], _: crate::snapshot::Kind) -> Result<(), DriverError> { unimplemented!() }
    fn mounts(&self, _: crate::snapshot::SnapshotId, _: &[crate::snapshot::SnapshotId], _: crate::snapshot::Kind) -> Result<Vec<crate::mount::Mount>, DriverError> { unimplemented!() }
    fn commit(&self, _: crate::snapshot::SnapshotId, _: &[crate::snapshot::SnapshotId]) -> Result<crate::snapshot::Usage, DriverError> { unimplemented!() }
    fn remove(&self, _: crate::snapshot::SnapshotId) -> Result<(), DriverError> { unimplemented!() }
    fn usage(&self, _: crate::snapshot::SnapshotId, _: &[crate::snapshot::SnapshotId]) -> Result<crate::snapshot::Usage, DriverError> { unimplemented!() }
    fn write_target(&self, _: crate::snapshot::SnapshotId, _: &[crate::snapshot::SnapshotId]) -> Result<crate::snapshot::WriteTarget, DriverError> { unimplemented!() }
    fn diff_source(&self, _: crate::snapshot::SnapshotId, _: &[crate::snapshot::SnapshotId]) -> Result<crate::snapshot::DiffSource, DriverError> { unimplemented!() }
    fn list(&self) -> Result<Vec<crate::snapshot::SnapshotId>, DriverError> { unimplemented!() }
    fn status(&self) -> Vec<(String, String)> { vec![] }
}
