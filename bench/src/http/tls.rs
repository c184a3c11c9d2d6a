//! The mTLS side of the lockd driver: a rustls client configuration made
//! from a lockd client bundle, and the handshake that wraps a worker's TCP
//! connection in it.
//!
//! A lockd client bundle is a single PEM file with the CA certificate, the
//! client certificate and the client's private key, in no fixed order. The
//! bench trusts exactly the CA(s) found in it. It does not check the host
//! name: lockd's servers present a wildcard or loopback certificate that
//! rarely names the address the bench dials, and what the bench measures
//! is the cost of the encrypted, mutually authenticated channel, not
//! naming. The chain is still verified in full against the bundle's CA.
//!
//! The configuration is lockd-net's (the SDK's), so the bench measures the
//! same TLS set-up clients use. ALPN is narrowed to `http/1.1`: the driver
//! speaks HTTP/1.1 keep-alive, one connection per worker, exactly as on
//! plain TCP, so the two paths differ by TLS alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// Name sent in SNI. The server's certificate is not checked against it
/// (see the module documentation); lockd's own clients send the same.
const SNI_NAME: &str = "localhost";

/// How long a TLS handshake may take before the connection counts as
/// failed, so a server that never answers shows up as an error instead of
/// a worker stuck forever.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a worker needs to open mTLS connections to one lockd server: the
/// client configuration (shared by all its connections) and the SNI name.
#[derive(Clone)]
pub(crate) struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Reads a lockd client bundle from `path` (what `--tls-bundle` and a
    /// bootstrapped `client.pem` are), so a bad file is reported with its
    /// name before any server is measured.
    pub(crate) fn from_bundle_file(path: &Path) -> Result<TlsClient> {
        let pem = std::fs::read(path).map_err(|e| Error::io("read client bundle", path, e))?;
        TlsClient::from_bundle_pem(&pem).map_err(|e| Error::Invalid(format!("client bundle {}: {e}", path.display())))
    }

    /// Builds the client from the text of a lockd client bundle. Errors
    /// say what is missing or unusable in the bundle.
    pub(crate) fn from_bundle_pem(pem: &[u8]) -> std::result::Result<TlsClient, String> {
        // lockd-net's client configuration: the bundle's CA as the only
        // root and no host-name check, exactly what lockd's clients do.
        let shared = lockd_net::client::tls_config_from_bundle(pem).map_err(|e| e.to_string())?;
        let mut config = (*shared).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name =
            ServerName::try_from(SNI_NAME).map_err(|e| format!("SNI name {SNI_NAME:?} is not valid: {e}"))?;
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake over `tcp`, giving up after
    /// [`HANDSHAKE_TIMEOUT`]. The error text is what the worker reports.
    pub(crate) async fn handshake(&self, tcp: TcpStream) -> std::result::Result<TlsStream<TcpStream>, String> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(self.server_name.clone(), tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
            Err(_) => Err(format!("TLS handshake: no answer within {HANDSHAKE_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use rustls::RootCertStore;
    use rustls_pki_types::CertificateDer;

    use super::*;

    /// A private CA for tests, able to sign server and client certificates.
    pub(crate) struct TestCa {
        key: rcgen::KeyPair,
        params: rcgen::CertificateParams,
        /// The CA certificate, PEM.
        pub(crate) pem: String,
        der: CertificateDer<'static>,
    }

    impl TestCa {
        /// A new self-signed CA called `name`.
        pub(crate) fn new(name: &str) -> TestCa {
            let key = rcgen::KeyPair::generate().expect("CA key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key).expect("CA certificate");
            TestCa {
                pem: cert.pem(),
                der: cert.der().clone(),
                key,
                params,
            }
        }

        /// A certificate for `names` signed by this CA, for a server or a
        /// client: (certificate PEM, key PEM). A client certificate claims
        /// every namespace for reading and writing, as lockd's servers
        /// authorise requests by those claims.
        pub(crate) fn issue(&self, names: &[&str], client: bool) -> (String, String) {
            let key = rcgen::KeyPair::generate().expect("leaf key");
            let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
            let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
            params.extended_key_usages = vec![if client {
                rcgen::ExtendedKeyUsagePurpose::ClientAuth
            } else {
                rcgen::ExtendedKeyUsagePurpose::ServerAuth
            }];
            if client {
                use lockd_auth::claims::{ALL, CLAIM_PREFIX};
                let claim = format!("{CLAIM_PREFIX}{ALL}?perm=rw");
                let uri = rcgen::string::Ia5String::try_from(claim).expect("claim is ASCII");
                params.subject_alt_names.push(rcgen::SanType::URI(uri));
            }
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
            (cert.pem(), key.serialize_pem())
        }

        /// A client bundle of this CA: key first, then the client
        /// certificate, then the CA, to show the order does not matter.
        pub(crate) fn client_bundle(&self) -> String {
            let (cert, key) = self.issue(&["bench-client"], true);
            format!("{key}{cert}{}", self.pem)
        }

        /// Trust anchors holding only this CA, for a server that checks
        /// client certificates.
        pub(crate) fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots.add(self.der.clone()).expect("CA as root");
            roots
        }
    }

    fn refusal(pem: &str) -> String {
        match TlsClient::from_bundle_pem(pem.as_bytes()) {
            Ok(_) => panic!("bundle accepted:\n{pem}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_bundle_in_any_order_is_accepted() {
        let ca = TestCa::new("bench CA");
        let (cert, key) = ca.issue(&["bench-client"], true);
        for pem in [
            format!("{}{cert}{key}", ca.pem),
            format!("{key}{cert}{}", ca.pem),
            format!("{cert}{key}{}", ca.pem),
        ] {
            let client = TlsClient::from_bundle_pem(pem.as_bytes()).expect("bundle");
            assert_eq!(client.server_name, ServerName::try_from("localhost").expect("name"));
        }
    }

    #[test]
    fn incomplete_or_wrong_bundles_are_explained() {
        let ca = TestCa::new("bench CA");
        let (cert, key) = ca.issue(&["bench-client"], true);
        assert!(refusal(&format!("{cert}{key}")).contains("no CA certificate"));
        assert!(refusal(&format!("{}{key}", ca.pem)).contains("no client certificate"));
        assert!(refusal(&format!("{}{cert}", ca.pem)).contains("no private key"));
        let (other, _) = ca.issue(&["second-client"], true);
        assert!(refusal(&format!("{}{cert}{other}{key}", ca.pem)).contains("2 non-CA certificates"));
        let (server, server_key) = ca.issue(&["localhost"], false);
        assert!(refusal(&format!("{}{server}{server_key}", ca.pem)).contains("server bundle"));
        // A key that belongs to another certificate.
        let (_, stranger_key) = ca.issue(&["x"], true);
        assert!(refusal(&format!("{}{cert}{stranger_key}", ca.pem)).contains("client identity"));
        assert!(refusal("").contains("no CA certificate"));
        let garbage = "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n";
        assert!(refusal(garbage).contains("not valid base64"));
    }

    #[test]
    fn a_missing_bundle_file_names_the_file() {
        let err = TlsClient::from_bundle_file(Path::new("/nonexistent/client.pem")).expect_err("no such file");
        assert!(err.to_string().contains("/nonexistent/client.pem"), "{err}");
    }
}
