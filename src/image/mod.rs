//! Images: the OCI model, layer apply and diff, the layer and image stores.

pub mod archive;
pub mod oci;
pub mod reference;
