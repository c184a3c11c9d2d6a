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
    use lockd_auth::bundle::{CaBundle, ClientBundle, ServerBundle};
    use lockd_auth::claims::Claims;
    use lockd_auth::issue::{new_ca, new_client, new_server, Validity};
    use rustls::RootCertStore;

    use super::*;

    /// How long the test certificates stay valid: far longer than any test
    /// runs, so expiry never decides an outcome here.
    const VALID_FOR: Duration = Duration::from_secs(24 * 60 * 60);

    /// A private CA for the TLS tests, issuing with `lockd_auth` exactly
    /// as `lockd auth` and `lockd --bootstrap` do, so the bench is tested
    /// against the certificates it will meet in use.
    pub(crate) struct TestCa {
        ca: CaBundle,
    }

    impl TestCa {
        /// A new CA called `name`.
        pub(crate) fn new(name: &str) -> TestCa {
            let ca = new_ca(name, &Validity::for_duration(VALID_FOR)).expect("CA");
            TestCa { ca }
        }

        /// The CA certificate, PEM: the piece to leave out, repeat or
        /// swap when a test builds a bundle by hand.
        pub(crate) fn pem(&self) -> &str {
            &self.ca.cert_pem
        }

        /// A server certificate for `host`, signed by this CA.
        pub(crate) fn server(&self, host: &str) -> ServerBundle {
            let validity = Validity::for_duration(VALID_FOR);
            new_server(&self.ca, "lockd-server", &[host.into()], &validity).expect("server certificate")
        }

        /// A client certificate for `cn`, signed by this CA. It claims
        /// every namespace for reading and writing, since lockd's servers
        /// authorise each request by the claims of the certificate.
        pub(crate) fn client(&self, cn: &str) -> ClientBundle {
            let mut claims = Claims::none();
            claims.parse_flag("ALL=rw").expect("claims");
            new_client(&self.ca, cn, &claims, &Validity::for_duration(VALID_FOR)).expect("client certificate")
        }

        /// A complete client bundle of this CA, as a file would hold it.
        pub(crate) fn client_bundle(&self) -> String {
            self.client("bench-client").to_pem()
        }

        /// Trust anchors holding only this CA, for a server that checks
        /// client certificates.
        pub(crate) fn roots(&self) -> RootCertStore {
            let mut roots = RootCertStore::empty();
            roots
                .add(self.ca.cert_der().expect("CA DER").into())
                .expect("CA as root");
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
        let client = ca.client("bench-client");
        let (cert, key) = (&client.cert_pem, &client.key_pem);
        for pem in [
            format!("{}{cert}{key}", ca.pem()),
            format!("{key}{cert}{}", ca.pem()),
            format!("{cert}{key}{}", ca.pem()),
        ] {
            let client = TlsClient::from_bundle_pem(pem.as_bytes()).expect("bundle");
            assert_eq!(client.server_name, ServerName::try_from("localhost").expect("name"));
        }
    }

    #[test]
    fn incomplete_or_wrong_bundles_are_explained() {
        let ca = TestCa::new("bench CA");
        let client = ca.client("bench-client");
        let (cert, key, ca_pem) = (&client.cert_pem, &client.key_pem, ca.pem());
        assert!(refusal(&format!("{cert}{key}")).contains("no CA certificate"));
        assert!(refusal(&format!("{ca_pem}{key}")).contains("no client certificate"));
        assert!(refusal(&format!("{ca_pem}{cert}")).contains("no private key"));
        let other = ca.client("second-client").cert_pem;
        assert!(refusal(&format!("{ca_pem}{cert}{other}{key}")).contains("2 non-CA certificates"));
        let server = ca.server("localhost");
        let (server_cert, server_key) = (&server.cert_pem, &server.key_pem);
        assert!(refusal(&format!("{ca_pem}{server_cert}{server_key}")).contains("server bundle"));
        // A key that belongs to another certificate.
        let stranger_key = ca.client("x").key_pem;
        assert!(refusal(&format!("{ca_pem}{cert}{stranger_key}")).contains("client identity"));
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
