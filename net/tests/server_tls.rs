//! TLS on the server: ALPN picks HTTP/2 or HTTP/1.1, both serve the API,
//! and a plain-HTTP client on the TLS port gets nowhere.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use support::{start_tls, TestCa, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn connect(
    server: &TestServer,
    ca: &TestCa,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let roots = ca.roots();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("handshake")
}

fn describe_request() -> http::Request<Empty<Bytes>> {
    http::Request::builder()
        .method("GET")
        .uri("http://localhost/v1/describe?key=k1")
        .body(Empty::new())
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_negotiates_h2_and_http1_over_tls() {
    let ca = TestCa::new("server-tls-test");
    let server = start_tls(&ca, &["localhost"], None).await;

    let tls = connect(&server, &ca, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let resp = send.send_request(describe_request()).await.expect("h2 request");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        &body[..],
        b"{\"namespace\":\"default\",\"key\":\"k1\",\"version\":0,\"metadata\":{}}\n"
    );

    let tls = connect(&server, &ca, b"http/1.1").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let resp = send.send_request(describe_request()).await.expect("h1 request");
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(resp.status(), 200);

    let mut plain = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/1.1 200"),
        "plain HTTP must not be served on a TLS port"
    );
}
