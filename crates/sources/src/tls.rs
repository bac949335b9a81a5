//! TLS for the sources and the server, one way: rustls with the ring provider, certificate
//! authorities from the system and from PEM files named by the user.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result};

/// The crypto provider every fitlake TLS configuration uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM certificates in `path` (`option` names the setting in messages); an error if there
/// is none.
pub fn certificates(option: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |what: String| Error::Config(format!("{option} {}: {what}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<std::result::Result<Vec<_>, _>>();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(bad("holds no PEM certificate".into())),
        Err(e) => Err(bad(format!("{e:?}"))),
    }
}

/// The PEM private key in `path`.
pub fn private_key(option: &str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Config(format!("{option} {}: {e:?}", path.display())))
}

/// The certificate authorities of `path` (and, with `system`, the system's) as a root store.
pub fn roots(option: &str, path: Option<&Path>, system: bool) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if system {
        // Unreadable system certificates are skipped; a peer they would have verified then
        // fails its handshake, naming the certificate.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = path {
        for cert in certificates(option, path)? {
            roots.add(cert).map_err(|e| Error::Config(format!("{option} {}: {e}", path.display())))?;
        }
    }
    Ok(roots)
}

/// A client configuration that verifies servers against the system's authorities and
/// `ca_file`'s.
pub fn client_config(option: &str, ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots(option, ca_file, true)?)
        .with_no_client_auth())
}
