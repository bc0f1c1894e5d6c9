//! Image operations over the engine's stores: bringing images in
//! ([`import`]: `import`, `load`), out ([`export`]: `save`), removing them
//! ([`remove`]: `rmi`) and read-only views ([`mountpoint`]: `image mount`).

pub mod export;
pub mod import;
pub mod mountpoint;
pub mod remove;
