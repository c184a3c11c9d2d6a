//! Starts the real lockd-rs server in-process (memory backend) for the
//! server and client SDK tests, on TCP, TLS or a Unix socket, and stops it on drop.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use lockd_actors::{LeaseConfig, MemBackend, Router};
use lockd_net::client::{Client, LeaseSession};
use lockd_net::server::{serve, tls, ListenSpec, Listener, ServerConfig, TcpFamily};
use lockd_net::wire::AcquireRequest;
use tokio::sync::oneshot;

/// A running server; dropping it asks the server to stop.
pub(crate) struct TestServer {
    /// Base URL to give the client.
    pub(crate) url: String,
    /// `ip:port` (or the socket path) for raw connections.
    pub(crate) addr: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(spec: ListenSpec, cfg: ServerConfig, scheme: &str) -> TestServer {
    let listener = Listener::bind(&spec).await.expect("bind the test server");
    let addr = listener.local_addr();
    let url = match spec {
        ListenSpec::Unix(path) => format!("unix://{}", path.display()),
        ListenSpec::Tcp { .. } => format!("{scheme}://{}", listener.local_addr()),
    };
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, cfg, async move {
        let _ = stopped.await;
    }));
    TestServer {
        url,
        addr,
        stop: Some(stop),
    }
}

fn loopback() -> ListenSpec {
    ListenSpec::Tcp {
        addr: "127.0.0.1:0".to_owned(),
        family: TcpFamily::V4,
    }
}

/// Plain HTTP on 127.0.0.1 with an ephemeral port.
pub(crate) async fn start_tcp() -> TestServer {
    start_tcp_with(ServerConfig::default()).await
}

/// Plain HTTP on 127.0.0.1 with an ephemeral port and the given settings.
pub(crate) async fn start_tcp_with(cfg: ServerConfig) -> TestServer {
    start(loopback(), cfg, "http").await
}

/// Plain HTTP on a Unix socket at `path`.
pub(crate) async fn start_unix(path: &Path) -> TestServer {
    start(ListenSpec::Unix(path.to_owned()), ServerConfig::default(), "http").await
}

/// A private CA able to sign server and client certificates.
pub(crate) struct TestCa {
    key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
    /// The CA certificate, PEM.
    pub(crate) pem: String,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCa {
    /// A fresh self-signed CA.
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

    /// A leaf certificate for `names`, returned as (certificate PEM, key
    /// PEM). A client certificate claims every namespace (`ALL=rw`): the
    /// server authorises mTLS requests by those claims.
    pub(crate) fn issue(&self, names: &[&str], client: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("params");
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        if client {
            let claim = rcgen::string::Ia5String::try_from("lockd://ns/ALL?perm=rw").expect("ASCII claim");
            params.subject_alt_names.push(rcgen::SanType::URI(claim));
        }
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A root store holding this CA, for the server's client-certificate check.
    pub(crate) fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("CA root");
        roots
    }
}

/// HTTPS on 127.0.0.1 with a certificate for `names` signed by `ca`;
/// with `client_ca`, clients must present a certificate from that CA.
pub(crate) async fn start_tls(ca: &TestCa, names: &[&str], client_ca: Option<&TestCa>) -> TestServer {
    let (cert, key) = ca.issue(names, false);
    let config = tls::server_config(cert.as_bytes(), key.as_bytes(), client_ca.map(TestCa::roots)).expect("server TLS");
    start(
        loopback(),
        ServerConfig {
            tls: Some(config),
            ..ServerConfig::default()
        },
        "https",
    )
    .await
}

/// An acquire request for `key` owned by `owner`, not waiting server-side.
pub(crate) fn acquire_req(key: &str, owner: &str, ttl_seconds: i64) -> AcquireRequest {
    AcquireRequest {
        key: Some(key.to_owned()),
        owner: Some(owner.to_owned()),
        ttl_seconds: Some(ttl_seconds),
        block_seconds: Some(-1),
        ..AcquireRequest::default()
    }
}

/// Acquires `key`, stages `doc` and commits it.
pub(crate) async fn commit_doc(client: &Client, key: &str, doc: &serde_json::Value) -> LeaseSession {
    let session = client
        .acquire_session(&acquire_req(key, "seeder", 30))
        .await
        .expect("seed acquire");
    session.save(doc).await.expect("seed save");
    session.release().await.expect("seed release");
    session
}
