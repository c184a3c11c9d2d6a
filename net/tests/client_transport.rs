//! Endpoints and transports against the real server: failover, Unix
//! sockets, streamed uploads, and HTTPS with a private CA.

mod support;

use std::io::Write as _;

use lockd_net::client::{Client, ClientError, Conditions};
use serde_json::json;
use support::{acquire_req, start_tcp, start_tls, start_unix, TestCa};
use tokio::io::AsyncWriteExt;

fn dead_endpoint() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    drop(socket);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_a_dead_endpoint_and_remembers_the_live_one() {
    let server = start_tcp().await;
    let dead = dead_endpoint();
    let client = Client::new_with_endpoints(&[dead.as_str(), server.url.as_str()]).expect("client");
    assert_eq!(client.current_endpoint(), dead);
    let session = client
        .acquire_session(&acquire_req("failover", "o", 30))
        .await
        .expect("acquire via failover");
    assert_eq!(
        client.current_endpoint(),
        server.url,
        "the endpoint that answered is preferred from now on"
    );
    session.save(&json!({"ok": true})).await.expect("save");
    session.release().await.expect("release");
    assert!(client.get_public("", "failover").await.expect("get").is_some());

    let all_dead = Client::new_with_endpoints(&[dead_endpoint(), dead_endpoint()]).expect("client");
    assert!(matches!(all_dead.healthz().await, Err(ClientError::Transport(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_base_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lockd.sock");
    let server = start_unix(&path).await;
    assert!(server.url.starts_with("unix:///"), "{}", server.url);
    let client = Client::new(&server.url).expect("client");
    client.healthz().await.expect("healthz over the socket");
    let session = client
        .acquire_session(&acquire_req("sock", "o", 30))
        .await
        .expect("acquire");
    session.save(&json!({"via": "unix"})).await.expect("save");
    session.release().await.expect("release");
    let doc = client.get_public("", "sock").await.expect("get").expect("doc");
    assert_eq!(doc.body.as_ref(), br#"{"via":"unix"}"#);
    for _ in 0..20 {
        client.describe("", "sock").await.expect("pooled requests keep working");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_reader_streams_a_large_document() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let lease = client
        .acquire(&acquire_req("big", "o", 30))
        .await
        .expect("acquire")
        .lease_ref();

    let mut doc = Vec::new();
    write!(doc, "[").expect("write");
    for i in 0..60_000 {
        write!(
            doc,
            "{}{{\"i\":{i},\"pad\":\"abcdefghij\"}}",
            if i == 0 { "" } else { "," }
        )
        .expect("write");
    }
    write!(doc, "]").expect("write");
    let expected = doc.clone();
    let (mut tx, rx) = tokio::io::duplex(8 * 1024);
    let producer = tokio::spawn(async move {
        for chunk in doc.chunks(10_000) {
            tx.write_all(chunk).await.expect("feed the stream");
        }
    });
    let up = client
        .update_reader(&lease, rx, &Conditions::default())
        .await
        .expect("streamed update");
    producer.await.expect("producer");
    assert_eq!(up.bytes, expected.len() as u64);
    let read = client.get(&lease).await.expect("get").expect("doc");
    assert_eq!(read.body.len(), expected.len());
    assert!(
        read.body.as_ref() == expected.as_slice(),
        "the streamed document arrived intact"
    );
    client.release(&lease, true).await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upload_reader_is_an_io_error() {
    struct Broken;
    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("source vanished")))
        }
    }
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let lease = client
        .acquire(&acquire_req("broken", "o", 30))
        .await
        .expect("acquire")
        .lease_ref();
    let err = client
        .update_reader(&lease, Broken, &Conditions::default())
        .await
        .expect_err("reader fails");
    assert!(
        matches!(&err, ClientError::Io(e) if e.to_string().contains("source vanished")),
        "{err:?}"
    );
    client
        .release(&lease, true)
        .await
        .expect("the connection pool recovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_verifies_the_chain_but_not_the_host_name() {
    let ca = TestCa::new("lockd test CA");
    let server = start_tls(&ca, &["lockd.invalid"], None).await;
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let client = Client::builder()
        .endpoint(&server.url)
        .ca_pem(ca.pem.clone())
        .build()
        .expect("client");
    client
        .healthz()
        .await
        .expect("certificate for another name is accepted when it chains to the CA");
    let session = client
        .acquire_session(&acquire_req("tls", "o", 30))
        .await
        .expect("acquire over TLS");
    session.save(&json!({"secure": true})).await.expect("save");
    session.release().await.expect("release");

    let stranger = TestCa::new("some other CA");
    let untrusting = Client::builder()
        .endpoint(&server.url)
        .ca_pem(stranger.pem.clone())
        .build()
        .expect("client");
    let err = untrusting
        .healthz()
        .await
        .expect_err("a chain to another CA is refused");
    assert!(matches!(&err, ClientError::Tls(_)), "{err:?}");

    let no_ca = Client::new(&server.url).expect("client without CA");
    match no_ca.healthz().await {
        Err(ClientError::Tls(msg)) => assert!(msg.contains("no CA certificate"), "{msg}"),
        other => panic!("expected a TLS error naming the missing CA, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_presents_the_client_identity_for_mutual_tls() {
    let ca = TestCa::new("lockd test CA");
    let server = start_tls(&ca, &["localhost"], Some(&ca)).await;
    let (cert, key) = ca.issue(&["client"], true);
    let client = Client::builder()
        .endpoint(&server.url)
        .ca_pem(ca.pem.clone())
        .client_identity_pem(format!("{cert}{key}"))
        .build()
        .expect("client");
    client
        .describe("", "k")
        .await
        .expect("request with a client certificate");

    let anonymous = Client::builder()
        .endpoint(&server.url)
        .ca_pem(ca.pem.clone())
        .build()
        .expect("client");
    assert!(
        anonymous.describe("", "k").await.is_err(),
        "the server requires a client certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_file_is_read_at_build_time() {
    let ca = TestCa::new("file CA");
    let server = start_tls(&ca, &["localhost"], None).await;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(ca.pem.as_bytes()).expect("write CA");
    let client = Client::builder()
        .endpoint(&server.url)
        .ca_file(file.path())
        .build()
        .expect("client");
    client.readyz().await.expect("readyz over TLS with a CA file");
}
