//! Helpers shared by the `http_*` wire tests: starting servers, the lease
//! dance (acquire → update → release) as plain HTTP, and the assertions every
//! answer gets (status, error code, envelope shape, catalogue status).
//!
//! Each test binary compiles this module separately and uses a different
//! subset of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub(crate) mod raw;

use std::time::{SystemTime, UNIX_EPOCH};

use lockd_actors::api_error::CATALOGUE;
use lockd_tests::server::{exited_cleanly, observed_errors, Client, LockdServer, Proto, Reply};
use serde_json::{json, Value};

/// A TCP server and a Unix-socket server, each reached over HTTP/1.1 and
/// h2c: the four transports every route test runs on.
pub(crate) struct World {
    /// Server on 127.0.0.1:<ephemeral>.
    pub(crate) tcp: LockdServer,
    /// Server on a Unix socket.
    pub(crate) unix: LockdServer,
}

impl World {
    /// Starts both servers (with `extra` flags).
    pub(crate) fn start(extra: &[&str]) -> World {
        World {
            tcp: LockdServer::start_tcp(extra),
            unix: LockdServer::start_unix(extra),
        }
    }

    /// One client per transport × HTTP version.
    pub(crate) fn clients(&self) -> Vec<Client> {
        vec![
            self.tcp.client(Proto::Http1),
            self.tcp.client(Proto::H2c),
            self.unix.client(Proto::Http1),
            self.unix.client(Proto::H2c),
        ]
    }

    /// Checks both servers are alive and never panicked, that every error
    /// seen had lockd's status, then stops them with SIGTERM (exit 0).
    pub(crate) fn finish(self) {
        finish_server(self.tcp);
        finish_server(self.unix);
    }
}

/// [`World::finish`] for a single server.
pub(crate) fn finish_server(mut server: LockdServer) {
    server.assert_healthy();
    assert_catalogue();
    let status = server.stop();
    assert!(
        exited_cleanly(&status),
        "SIGTERM should end lockd with exit 0, got {status:?}; stderr:\n{}",
        server.stderr()
    );
    let log = server.stderr();
    assert!(!log.contains("panicked"), "lockd logged a panic:\n{log}");
}

/// Every (code, status) pair observed so far is one lockd uses (API.md §8).
pub(crate) fn assert_catalogue() {
    for (code, status) in observed_errors() {
        assert!(
            CATALOGUE.iter().any(|(c, s)| *c == code && *s == status),
            "server answered {status} {code:?}, which is not in lockd's catalogue"
        );
    }
}

/// Asserts `r` is a JSON error envelope with this status and code, and
/// returns the envelope. Also checks the envelope's invariants: JSON
/// content type, trailing newline, a correlation id, omitted zero fields,
/// and `Retry-After` exactly when `retry_after_seconds` is set.
pub(crate) fn expect_error(r: &Reply, status: u16, code: &str) -> Value {
    let v = r.json();
    assert_eq!(
        (r.status.as_u16(), v["error"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got {} {}",
        r.status,
        r.text()
    );
    assert!(
        CATALOGUE.iter().any(|(c, s)| *c == code && *s == status),
        "test expects {status} {code}, which lockd's catalogue does not list"
    );
    check_json_framing(r);
    assert!(
        r.header("x-correlation-id").is_some(),
        "error without X-Correlation-Id: {r:?}"
    );
    let obj = v.as_object().expect("the envelope is an object");
    for (field, zero) in [
        ("detail", json!("")),
        ("current_etag", json!("")),
        ("current_version", json!(0)),
        ("retry_after_seconds", json!(0)),
        ("leader_endpoint", json!("")),
    ] {
        assert_ne!(obj.get(field), Some(&zero), "{field} must be omitted when empty: {v}");
    }
    let allowed = [
        "error",
        "detail",
        "leader_endpoint",
        "current_version",
        "current_etag",
        "retry_after_seconds",
    ];
    for k in obj.keys() {
        assert!(allowed.contains(&k.as_str()), "unexpected envelope field {k:?}: {v}");
    }
    match v.get("retry_after_seconds").and_then(Value::as_i64) {
        Some(secs) => assert_eq!(r.header("retry-after"), Some(secs.to_string().as_str()), "{v}"),
        None => assert_eq!(
            r.header("retry-after"),
            None,
            "Retry-After without retry_after_seconds: {v}"
        ),
    }
    v
}

/// Asserts a `200` JSON answer and returns its body.
pub(crate) fn expect_json(r: &Reply) -> Value {
    assert_eq!(r.status.as_u16(), 200, "expected 200, got {} {}", r.status, r.text());
    check_json_framing(r);
    r.json()
}

fn check_json_framing(r: &Reply) {
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "content type {ct:?} for {}",
        r.text()
    );
    assert!(
        r.body.ends_with(b"\n"),
        "JSON answers end with a newline: {:?}",
        r.text()
    );
}

/// An `i64` field of a JSON body.
pub(crate) fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {v}"))
}

/// A string field of a JSON body.
pub(crate) fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

/// Seconds since the epoch.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// lockd's xid shape: 20 chars of lowercase base32hex.
pub(crate) fn is_xid(s: &str) -> bool {
    s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

/// A canonical lowercase UUIDv7 string.
pub(crate) fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// A syntactically valid xid no server minted (distinct per `n`).
pub(crate) fn fake_xid(n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut s = String::from("c5v9d0sl70b3m3q8");
    for shift in [10, 5, 0] {
        s.push(DIGITS[((n >> shift) & 31) as usize] as char);
    }
    s.push('0');
    s
}

/// Percent-encodes a query component.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// POSTs a JSON value.
pub(crate) async fn post_json(c: &Client, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let mut h = headers.to_vec();
    h.push(("content-type", "application/json"));
    c.send("POST", path, &h, body.to_string()).await
}

/// `POST /v1/acquire` with `body`.
pub(crate) async fn acquire(c: &Client, body: Value) -> Reply {
    post_json(c, "/v1/acquire", &[], &body).await
}

/// A granted lease, as the tests need it for follow-up requests.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// Namespace the server resolved.
    pub(crate) ns: String,
    /// Key as the test sent it.
    pub(crate) key: String,
    /// Lease id.
    pub(crate) lease_id: String,
    /// Txn id.
    pub(crate) txn_id: String,
    /// Fencing token, as a header value.
    pub(crate) fencing: String,
    /// Lease expiry.
    pub(crate) expires_at_unix: i64,
    /// The whole acquire answer.
    pub(crate) body: Value,
}

impl Lease {
    /// The lease an acquire answer granted; `key` is the key as the test
    /// will address it (acquire may echo another spelling).
    pub(crate) fn from_acquire(key: &str, v: &Value) -> Lease {
        Lease {
            ns: text(v, "namespace").to_string(),
            key: key.to_string(),
            lease_id: text(v, "lease_id").to_string(),
            txn_id: text(v, "txn_id").to_string(),
            fencing: int(v, "fencing_token").to_string(),
            expires_at_unix: int(v, "expires_at_unix"),
            body: v.clone(),
        }
    }

    /// The three lease headers of guarded requests.
    pub(crate) fn headers(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("x-lease-id", self.lease_id.as_str()),
            ("x-txn-id", self.txn_id.as_str()),
            ("x-fencing-token", self.fencing.as_str()),
        ]
    }

    /// Fencing token as a number.
    pub(crate) fn token(&self) -> i64 {
        self.fencing.parse().expect("fencing tokens are integers")
    }

    /// `?namespace=..&key=..` for the state routes.
    pub(crate) fn query(&self) -> String {
        format!("namespace={}&key={}", enc(&self.ns), enc(&self.key))
    }

    /// A keepalive/release body naming this lease.
    pub(crate) fn body_with(&self, extra: Value) -> Value {
        let mut v = json!({"namespace": self.ns, "key": self.key, "lease_id": self.lease_id, "txn_id": self.txn_id});
        if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in more {
                obj.insert(k.clone(), val.clone());
            }
        }
        v
    }
}

/// Acquires `key` in the default namespace without waiting; panics unless granted.
pub(crate) async fn grab(c: &Client, key: &str) -> Lease {
    grab_in(c, "", key).await
}

/// Acquires `key` in namespace `ns` without waiting; panics unless granted.
pub(crate) async fn grab_in(c: &Client, ns: &str, key: &str) -> Lease {
    let r = acquire(
        c,
        json!({"namespace": ns, "key": key, "owner": "tester", "ttl_seconds": 60, "block_seconds": -1}),
    )
    .await;
    Lease::from_acquire(key, &expect_json(&r))
}

/// `POST /v1/update` of `doc` under `lease`, with `extra` headers.
pub(crate) async fn update_with(
    c: &Client,
    lease: &Lease,
    doc: impl Into<bytes::Bytes>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut h = lease.headers();
    h.extend_from_slice(extra);
    c.send("POST", &format!("/v1/update?{}", lease.query()), &h, doc).await
}

/// `POST /v1/update` of `doc` under `lease`.
pub(crate) async fn update(c: &Client, lease: &Lease, doc: &str) -> Reply {
    update_with(c, lease, doc.to_string(), &[]).await
}

/// `POST /v1/release` (commit, or rollback).
pub(crate) async fn release(c: &Client, lease: &Lease, rollback: bool) -> Reply {
    let body = lease.body_with(json!({"rollback": rollback}));
    post_json(c, "/v1/release", &[("x-fencing-token", &lease.fencing)], &body).await
}

/// Releases and asserts `{"released":true}`.
pub(crate) async fn release_ok(c: &Client, lease: &Lease, rollback: bool) {
    let v = expect_json(&release(c, lease, rollback).await);
    assert_eq!(v, json!({"released": true}));
}

/// Commits `doc` to `key` (acquire, update, release); returns the update answer.
pub(crate) async fn commit_doc(c: &Client, key: &str, doc: &str) -> Value {
    let lease = grab(c, key).await;
    let v = expect_json(&update(c, &lease, doc).await);
    release_ok(c, &lease, false).await;
    v
}

/// `GET /v1/describe` of `key` in the default namespace.
pub(crate) async fn describe(c: &Client, key: &str) -> Value {
    expect_json(&c.send("GET", &format!("/v1/describe?key={}", enc(key)), &[], "").await)
}

/// Public read of `key` in the default namespace.
pub(crate) async fn public_get(c: &Client, key: &str) -> Reply {
    c.send("POST", &format!("/v1/get?key={}&public=1", enc(key)), &[], "")
        .await
}

/// Lease read of `lease.key`.
pub(crate) async fn lease_get(c: &Client, lease: &Lease) -> Reply {
    let h = lease.headers();
    c.send("POST", &format!("/v1/get?{}", lease.query()), &h, "").await
}

/// Asserts `/healthz` answers 200.
pub(crate) async fn healthy(c: &Client) {
    let r = c.send("GET", "/healthz", &[], "").await;
    assert_eq!(r.status.as_u16(), 200, "healthz: {r:?}");
}
