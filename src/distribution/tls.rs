//! TLS for registries: rustls with the system's roots plus the CAs in
//! `certs.d/<host[:port]>/*.crt` (Docker's convention).

use super::DistributionError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The client configuration for `registry`: the system's roots and every
/// `*.crt` under `certs_dir/<registry>/`, in name order.
pub(crate) fn config(registry: &str, certs_dir: &Path) -> Result<Arc<rustls::ClientConfig>, DistributionError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as Go's and Docker's
    // loaders do; a registry needing one of them fails its handshake.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let dir = certs_dir.join(registry);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names.iter().filter(|p| p.extension().is_some_and(|e| e == "crt")) {
            let bad = |detail: String| DistributionError::Certificates { path: p.clone(), detail };
            for cert in CertificateDer::pem_file_iter(p).map_err(|e| bad(e.to_string()))? {
                roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DistributionError::Certificates { path: dir.clone(), detail: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
