//! TLS for the server: rustls with the `ring` provider, ALPN `h2` and
//! `http/1.1`, so HTTP/2 is negotiated on TLS connections as lockd does.
//!
//! This module only turns PEM material into a rustls configuration; where
//! that material comes from (bundles, bootstrap, client-certificate
//! verification) is the caller's business.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::NetError;

/// Builds a server configuration from a PEM certificate chain (leaf first)
/// and its PEM private key. `client_roots`, when given, makes the server
/// require client certificates that chain to one of those CAs (mTLS).
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_roots: Option<rustls::RootCertStore>,
) -> Result<Arc<rustls::ServerConfig>, NetError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| NetError::Tls(format!("reading certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(NetError::Tls("no certificate found in the PEM data".to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| NetError::Tls(format!("reading private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| NetError::Tls(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| NetError::Tls(format!("certificate and key do not form a usable pair: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
