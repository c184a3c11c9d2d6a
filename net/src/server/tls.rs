//! TLS for the server: rustls with the `ring` provider, ALPN `h2` and
//! `http/1.1`, so HTTP/2 is negotiated on TLS connections as lockd does.
//!
//! With client roots the server requires a client certificate that chains
//! to them (mTLS) and is not on the [`Denylist`]. The denylist is checked
//! at every handshake, and the set itself can be swapped while the server
//! runs (`lockd auth revoke` → bundle reload), so revocation needs no
//! restart. Where the PEM material comes from (bundles, bootstrap) is the
//! caller's business.

use std::sync::Arc;

use lockd_auth::cert::CertInfo;
use lockd_auth::denylist::Denylist;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::NetError;

/// A TLS server configuration plus the denylist its verifier consults.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub(crate) config: Arc<rustls::ServerConfig>,
    denylist: Arc<Denylist>,
    mtls: bool,
}

impl TlsSettings {
    /// The revoked client serials; replace its contents to revoke (or
    /// reinstate) certificates on a running server.
    pub fn denylist(&self) -> &Arc<Denylist> {
        &self.denylist
    }

    /// Whether clients must present a certificate (mTLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.mtls
    }
}

/// Builds the TLS settings from a PEM certificate chain (leaf first) and
/// its PEM private key. `client_roots`, when given, makes the server
/// require client certificates that chain to one of those CAs (mTLS); the
/// denylist starts empty.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_roots: Option<rustls::RootCertStore>,
) -> Result<TlsSettings, NetError> {
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
    let denylist = Arc::new(Denylist::default());
    let mtls = client_roots.is_some();
    let builder = match client_roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| NetError::Tls(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(Arc::new(DenylistVerifier {
                inner,
                denylist: Arc::clone(&denylist),
            }))
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| NetError::Tls(format!("certificate and key do not form a usable pair: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSettings {
        config: Arc::new(cfg),
        denylist,
        mtls,
    })
}

/// webpki's chain check, then the denylist.
#[derive(Debug)]
struct DenylistVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    denylist: Arc<Denylist>,
}

impl ClientCertVerifier for DenylistVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        if self.denylist.is_empty() {
            return Ok(verified);
        }
        let info = CertInfo::from_der(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.denylist.contains(&info.serial) {
            tracing::info!(serial = %info.serial, subject = %info.subject, "refused a revoked client certificate");
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
