//! Images: the OCI model, layer apply and diff, the layer and image stores.

pub mod apply;
pub mod compression;
pub mod diff;
pub mod layers;
