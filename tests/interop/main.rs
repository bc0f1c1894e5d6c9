//! Interoperability tier: strata's output checked by the reference tools
//! (skopeo, umoci, podman) and their output read by strata. A test whose
//! tool is missing prints why and returns; `tools/deps` installs them all.

mod oci_archive;
