//! rustls configuration for `https://` endpoints.
//!
//! lockd deployments use a private CA (the server bootstraps one) and their
//! server certificates often do not name the address clients dial, so the
//! client trusts exactly the CA bundle it is given and checks that the
//! server's chain leads to it, but not the host name in the certificate.
//! The `ring` provider is chosen explicitly, so the configuration never
//! depends on a process-wide default provider.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::error::ClientError;

/// Builds the TLS configuration from a CA bundle and an optional client
/// identity (certificate chain, leaf first, plus its private key, in one
/// PEM). ALPN offers `h2` and `http/1.1`; callers that speak only one can
/// clone the configuration and change `alpn_protocols`.
pub fn client_config(ca_pem: &[u8], identity_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem, "CA bundle")? {
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("CA bundle: unusable certificate: {e}")))?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ClientError::Tls(format!("CA bundle: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(format!("TLS protocol versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HostAgnosticVerifier { inner }));
    let mut config = match identity_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let chain = parse_certs(pem, "client identity")?;
            let key = PrivateKeyDer::from_pem_slice(pem)
                .map_err(|e| ClientError::Tls(format!("client identity: no usable private key in the PEM: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(format!("client identity: {e}")))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Builds the TLS configuration from a lockd client bundle (client
/// certificate, key and CA certificate, in any order): trusts the bundle's
/// CA and presents its certificate.
pub fn client_config_from_bundle(bundle_pem: &[u8]) -> Result<Arc<ClientConfig>, ClientError> {
    let text = String::from_utf8_lossy(bundle_pem);
    let bundle =
        lockd_auth::bundle::ClientBundle::parse(&text, "client bundle").map_err(|e| ClientError::Tls(e.to_string()))?;
    if !bundle.leaf.client_auth {
        return Err(ClientError::Tls(format!(
            "client bundle: the certificate of {} is not for client authentication (is this a server bundle?)",
            bundle.leaf.subject
        )));
    }
    let identity = format!("{}{}", bundle.cert_pem, bundle.key_pem);
    client_config(bundle.ca_certs_pem.as_bytes(), Some(identity.as_bytes()))
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Tls(format!("{what}: malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!(
            "{what}: no CERTIFICATE block found in the PEM"
        )));
    }
    Ok(certs)
}

/// Verifies the server's chain against the configured CA with webpki and
/// accepts a certificate that is valid except for its host name.
#[derive(Debug)]
struct HostAgnosticVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for HostAgnosticVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (signatures, validity, usage) before the
        // name, so a name error means everything else passed.
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_garbage_ca_is_rejected() {
        match client_config(b"", None) {
            Err(ClientError::Tls(msg)) => assert!(msg.contains("no CERTIFICATE"), "{msg}"),
            other => panic!("expected a TLS error, got {other:?}"),
        }
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(client_config(garbage, None), Err(ClientError::Tls(_))));
    }
}
