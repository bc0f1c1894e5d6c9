//! Images: the OCI model, layer apply and diff, and the layer and image
//! stores. The operations that combine them with the engine (import, load,
//! save, rmi, image mount) are [`crate::ops::image`].
//!
//! Layer tars speak the OCI image-spec's whiteout vocabulary (`layer.md`,
//! "Whiteouts"): an empty file `.wh.<name>` deletes `<name>` from the
//! layers below, and `.wh..wh..opq` in a directory hides everything the
//! layers below put there. [`apply`] turns those into a driver's on-disk
//! form ([`crate::snapshot::Whiteouts`]); [`diff`] turns a driver's form
//! back into them.

pub mod apply;
pub mod archive;
pub mod changes;
pub mod compression;
pub mod diff;
pub mod fuzz;
pub mod images;
pub mod layers;
pub mod oci;
pub mod reference;

/// Prefix of a whiteout entry's file name.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// File name of the opaque-directory marker.
pub const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// Prefix of AUFS bookkeeping entries (`.wh..wh.plnk`, `.wh..wh.aufs`),
/// which old Docker layers carry at their root and appliers skip.
pub const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// overlayfs' opaque-directory xattr (kernel
/// `Documentation/filesystems/overlayfs.rst`, "whiteouts and opaque
/// directories"); its value is `y`.
pub const OVERLAY_OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
/// Prefix of every xattr overlayfs keeps for itself. Layer content never
/// carries these: in a tar they could forge overlay state (redirects,
/// metacopy) in an upper dir.
pub const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

#[cfg(test)]
mod tests;
