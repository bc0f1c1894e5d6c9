//! Images: the OCI model, layer apply and diff, the layer and image stores,
//! and the operations that bring images in and out.

pub mod apply;
pub mod archive;
pub mod changes;
pub mod compression;
pub mod diff;
pub mod export;
pub mod import;
pub mod layers;
pub mod mount;
pub mod oci;
pub mod reference;
pub mod remove;
pub mod store;
