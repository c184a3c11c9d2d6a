//! In-process smoke test of the server over a real TCP socket: one lease
//! cycle, raw HTTP/1.1, checking the exact wire shapes lockd clients read.

mod support;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn send(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn field<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &json[name]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_cycle_over_http() {
    let server = support::start_tcp().await;
    let addr = server.addr.clone();

    let r = send(&addr, "GET", "/healthz", &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = send(&addr, "GET", "/v1/acquire/", &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));

    let r = send(
        &addr,
        "POST",
        "/v1/acquire",
        &[("X-Correlation-Id", "c-1")],
        r#"{"key":"Orders","owner":"w1","ttl_seconds":30}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.ends_with("}\n"));
    let lease: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(field(&lease, "key"), "Orders");
    assert_eq!(field(&lease, "namespace"), "default");
    assert_eq!(field(&lease, "fencing_token"), 1);
    assert_eq!(field(&lease, "version"), 0);
    assert_eq!(field(&lease, "correlation_id"), "c-1");
    assert_eq!(r.header("x-fencing-token"), Some("1"));
    assert_eq!(r.header("x-key-version"), Some("0"));
    assert_eq!(r.header("x-correlation-id"), Some("c-1"));
    let lease_id = lease["lease_id"].as_str().expect("lease id").to_string();
    let txn_id = lease["txn_id"].as_str().expect("txn id").to_string();
    let guard = [
        ("X-Lease-ID", lease_id.as_str()),
        ("X-Txn-ID", txn_id.as_str()),
        ("X-Fencing-Token", "1"),
    ];

    let r = send(&addr, "POST", "/v1/update?key=orders", &guard, "{ \"n\" : 1 }").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let up: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(field(&up, "new_version"), 1);
    assert_eq!(field(&up, "bytes"), 7);
    assert_eq!(field(&up, "metadata"), &serde_json::json!({}));
    let etag = up["new_state_etag"].as_str().expect("etag").to_string();
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = send(&addr, "POST", "/v1/get?key=orders", &guard, "").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"n":1}"#));
    assert_eq!(r.header("x-key-version"), Some("1"));
    let r = send(&addr, "POST", "/v1/get?key=orders&public=1", &[], "").await;
    assert_eq!(r.status, 204, "staged state is not public");

    let body = format!(r#"{{"key":"orders","lease_id":"{lease_id}","txn_id":"{txn_id}"}}"#);
    let r = send(&addr, "POST", "/v1/release", &[("X-Fencing-Token", "1")], &body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"released\":true}\n"));
    let r = send(&addr, "POST", "/v1/get?key=orders&public=yes", &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"n":1}"#));
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = send(&addr, "GET", "/v1/describe?key=orders", &[], "").await;
    let d: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(
        d,
        serde_json::json!({"namespace":"default","key":"orders","version":1,"state_etag":etag,"updated_at_unix":d["updated_at_unix"],"metadata":{}})
    );

    let r = send(&addr, "POST", "/v1/acquire", &[], r#"{"owner":"w1","bogus":1}"#).await;
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with(r#"{"error":"invalid_body""#), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let server = support::start_tcp().await;
    let addr = server.addr.clone();

    let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let burst = "GET /v1/describe?key=p1 HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /v1/acquire HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\n{\"key\":\"p1\",\"owner\":\"o\"}\
                 GET /v1/describe?key=p1 HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /v1/get?key=p1&public=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    s.write_all(burst.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf8");
    let statuses: Vec<&str> = text
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.get(..3).unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["200", "200", "200", "204"], "{text}");
    let first = text.find("\"version\":0,\"metadata\"").expect("first describe");
    let held = text.find("\"owner\":\"o\"").expect("acquire answer");
    let second = text.rfind("\"lease_id\"").expect("second describe shows the lease");
    assert!(first < held && held < second, "answers out of order:\n{text}");
}

/// A body that stops arriving is refused after the idle limit instead of
/// holding its request (and its slot) forever; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_refused_after_the_idle_limit() {
    let server = support::start_tcp_with(lockd_net::server::ServerConfig {
        body_idle_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(&server.addr).await.expect("connect");
    let head = "POST /v1/acquire HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"key\":\"s\",";
    s.write_all(head.as_bytes()).await.expect("write");
    let mut raw = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut raw))
        .await
        .expect("answered without the rest of the body")
        .expect("read");
    let text = String::from_utf8_lossy(&raw[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains(r#""error":"invalid_body""#), "{text}");
    assert!(text.contains("nothing received for"), "{text}");

    let r = send(&server.addr, "GET", "/v1/describe?key=s", &[], "").await;
    assert_eq!(r.status, 200, "no lease was taken: {}", r.body);
    assert!(!r.body.contains("lease_id"), "{}", r.body);
}

/// With the shared body budget spent (8 bytes), a body past the uncounted
/// 64 KiB takes the spill path and is served exactly as an in-memory one.
/// The budget's accounting itself is unit-tested in `server::body`; this
/// checks the spilled path end to end (mapped spool file, in-place
/// compaction, read back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_shared_memory_budget_spill_and_still_work() {
    let server = support::start_tcp_with(lockd_net::server::ServerConfig {
        body_mem_budget: 8,
        ..Default::default()
    })
    .await;
    let r = send(&server.addr, "POST", "/v1/acquire", &[], r#"{"key":"b","owner":"o"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lease: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let lease_id = lease["lease_id"].as_str().expect("lease_id");
    let txn = lease["txn_id"].as_str().expect("txn_id");
    let token = lease["fencing_token"].to_string();
    // Past the 64 KiB every body keeps in memory uncounted.
    let filler = "a".repeat(100_000);
    let doc = format!(r#"{{"spilled": [1, 2, 3],   "to": "disk", "filler": "{filler}"}}"#);
    let r = send(
        &server.addr,
        "POST",
        "/v1/update?key=b",
        &[("X-Lease-ID", lease_id), ("X-Txn-ID", txn), ("X-Fencing-Token", &token)],
        &doc,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        &server.addr,
        "POST",
        "/v1/get?key=b",
        &[("X-Lease-ID", lease_id), ("X-Txn-ID", txn), ("X-Fencing-Token", &token)],
        "",
    )
    .await;
    let want = format!(r#"{{"spilled":[1,2,3],"to":"disk","filler":"{filler}"}}"#);
    assert!(
        r.body == want,
        "compacted in the mapped spool file: {} bytes",
        r.body.len()
    );
}
