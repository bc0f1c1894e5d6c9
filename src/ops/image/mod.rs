//! Image operations over the engine's stores: bringing images in
//! ([`import`]: `import`, `load`), out ([`export`]: `save`), removing them
//! ([`remove`]: `rmi`), read-only views ([`mountpoint`]: `image mount`) and
//! what `images`, `history` and `inspect` show ([`query`]).

pub mod export;
pub mod import;
pub mod mountpoint;
pub mod query;
pub mod remove;
