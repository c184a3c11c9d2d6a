//! Hostile and malformed input against the real `lockd` binary: broken
//! JSON, oversized and unfinished bodies, bad keys and namespaces, huge or
//! non-text headers, invalid state documents (API.md §0.5, §0.7, §9.15).
//!
//! Every bad request must get a 4xx with the documented code, change
//! nothing, and leave the server serving: after each one a fixture key (a
//! committed document plus a lease with a staged document) is checked to be
//! exactly as it was and `/healthz` to answer. Each test ends by checking the
//! process is alive, logged no panic, and exits 0 on SIGTERM.

mod http_support;

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use http_support::raw::send_unfinished;
use http_support::*;
use lockd_tests::server::{Client, LockdServer, Proto, Reply};
use serde_json::{json, Value};

/// Every server here runs with a 1 MiB body limit.
const JSON_MAX: usize = 1 << 20;

fn server() -> LockdServer {
    LockdServer::start_tcp(&["--json-max", "1MiB"])
}

/// A key with committed state and a live lease that staged a new document;
/// any request that wrongly takes effect changes one of the snapshots.
struct Fixture {
    lease: Lease,
    described: Value,
    staged: (String, Option<String>),
    public: String,
}

impl Fixture {
    async fn new(c: &Client) -> Fixture {
        commit_doc(c, "fixture", r#"{"fixture":"committed"}"#).await;
        let lease = grab(c, "fixture").await;
        expect_json(&update(c, &lease, r#"{"fixture":"staged"}"#).await);
        let (described, staged, public) = Self::snapshot(c, &lease).await;
        assert_eq!(staged.0, r#"{"fixture":"staged"}"#);
        assert_eq!(public, r#"{"fixture":"committed"}"#);
        Fixture {
            lease,
            described,
            staged,
            public,
        }
    }

    async fn snapshot(c: &Client, lease: &Lease) -> (Value, (String, Option<String>), String) {
        let described = describe(c, "fixture").await;
        let r = lease_get(c, lease).await;
        assert_eq!(r.status.as_u16(), 200, "lease read of the fixture: {r:?}");
        let staged = (r.text(), r.header("etag").map(str::to_string));
        (described, staged, public_get(c, "fixture").await.text())
    }

    /// Asserts the fixture is untouched and the server healthy after `what`.
    async fn unchanged(&self, c: &Client, what: &str) {
        healthy(c).await;
        let (described, staged, public) = Self::snapshot(c, &self.lease).await;
        assert_eq!(described, self.described, "after {what}: describe changed");
        assert_eq!(staged, self.staged, "after {what}: staged document changed");
        assert_eq!(public, self.public, "after {what}: committed document changed");
    }
}

/// Asserts a 4xx with `code`, then that the fixture is untouched.
async fn refused(fx: &Fixture, c: &Client, r: &Reply, status: u16, code: &str, what: &str) -> Value {
    assert_eq!(
        (r.status.as_u16(), r.error_code().as_deref()),
        (status, Some(code)),
        "{what}: {}",
        r.text()
    );
    let v = expect_error(r, status, code);
    fx.unchanged(c, what).await;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bodies_are_strict_json() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        let l = &fx.lease;
        let fence = [("x-fencing-token", l.fencing.as_str())];
        // Bodies that would be accepted as they are: if a broken variant
        // were taken for them, the fixture would change (keepalive moves
        // the expiry, release rolls back) or acquire would answer 409.
        let acquire_ok = json!({"key": "fixture", "owner": "intruder", "block_seconds": -1});
        let keepalive_ok = l.body_with(json!({}));
        let release_ok_body = l.body_with(json!({"rollback": true}));
        let open = |v: &Value| v.to_string().trim_end_matches('}').to_string();
        let with = |v: &Value, field: &str, value: Value| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert(field.to_string(), value);
            }
            v.to_string().into_bytes()
        };
        // lockd's decoder only takes objects: the fields in declaration
        // order as an array are not a request (and would act on the fixture).
        let positional = [
            json!(["default", "fixture", "intruder", 60, -1]),
            json!([l.ns, l.key, l.lease_id, 5, l.txn_id]),
            json!([l.ns, l.key, l.lease_id, l.txn_id, true]),
        ];
        for ((path, good, (field, value)), array) in [
            ("/v1/acquire", &acquire_ok, ("ttl_seconds", json!("x"))),
            ("/v1/keepalive", &keepalive_ok, ("ttl_seconds", json!(1.5))),
            ("/v1/release", &release_ok_body, ("rollback", json!("yes"))),
        ]
        .into_iter()
        .zip(positional)
        {
            let bodies: Vec<(&str, Vec<u8>)> = vec![
                ("empty", vec![]),
                ("whitespace", b" \n\t".to_vec()),
                ("malformed", b"{".to_vec()),
                ("single quotes", b"{'owner':'x'}".to_vec()),
                ("unknown field", format!("{},\"bogus\":1}}", open(good)).into_bytes()),
                ("trailing value", format!("{good}{{}}").into_bytes()),
                ("trailing junk", format!("{good} x").into_bytes()),
                ("empty array", b"[]".to_vec()),
                ("positional array", array.to_string().into_bytes()),
                ("string", b"\"owner\"".to_vec()),
                ("key of the wrong type", with(good, "key", json!(5))),
                ("field of the wrong type", with(good, field, value)),
                ("invalid utf-8", b"{\"owner\":\"\xff\xfe\"}".to_vec()),
                ("nul byte", b"{\"owner\":\"a\0b\"}".to_vec()),
            ];
            for (what, body) in bodies {
                let r = c.send("POST", path, &fence, body).await;
                let what = format!("{} {path} {what}", c.tag());
                let v = refused(&fx, &c, &r, 400, "invalid_body", &what).await;
                if what.ends_with("trailing value") {
                    assert!(text(&v, "detail").contains("trailing"), "{what}: {v}");
                }
            }
        }
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}

fn lease_head(path: &str, l: &Lease, framing: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-Lease-ID: {}\r\nX-Txn-ID: {}\r\nX-Fencing-Token: {}\r\n{framing}\r\n\r\n",
        l.lease_id, l.txn_id, l.fencing
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_with_content_length_is_refused_before_it_is_sent() {
    let srv = server();
    let c = srv.client(Proto::Http1);
    let fx = Fixture::new(&c).await;
    let announced = 2 * JSON_MAX;
    let framing = format!("Content-Length: {announced}");
    let first = [b"{\"pad\":\"".to_vec(), vec![b'a'; 64 * 1024]].concat();
    for path in ["/v1/acquire", "/v1/keepalive", "/v1/release", "/v1/update?key=fixture"] {
        let head = lease_head(path, &fx.lease, &framing);
        let (r, sent) = send_unfinished(srv.addr(), &head, first.clone(), Duration::from_secs(10)).await;
        assert!(
            sent < announced / 2,
            "{path}: the answer came while most of the body was unsent"
        );
        assert_eq!(r.status, 400, "{path}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"], "invalid_body", "{path}: {v}");
        assert!(text(&v, "detail").contains("too large"), "{path}: {v}");
        fx.unchanged(&c, path).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_body_is_refused_once_it_crosses_the_limit() {
    let srv = server();
    let c = srv.client(Proto::Http1);
    let fx = Fixture::new(&c).await;
    // 17 chunks of 64 KiB: past the limit, with no final chunk ever sent.
    let mut body = Vec::new();
    for i in 0..17 {
        let data = if i == 0 {
            [b"{\"pad\":\"".to_vec(), vec![b'a'; 64 * 1024 - 8]].concat()
        } else {
            vec![b'a'; 64 * 1024]
        };
        body.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    for path in ["/v1/acquire", "/v1/release", "/v1/update?key=fixture"] {
        let head = lease_head(path, &fx.lease, "Transfer-Encoding: chunked");
        let (r, _) = send_unfinished(srv.addr(), &head, body.clone(), Duration::from_secs(10)).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"], "invalid_body", "{path}: {v}");
        assert!(text(&v, "detail").contains("too large"), "{path}: {v}");
        fx.unchanged(&c, path).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_bound_bodies_but_documents_under_them_are_accepted() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        let key = format!("big-{}", c.tag());
        let lease = grab(&c, &key).await;
        // Just under the limit: accepted.
        let doc = format!("{{\"pad\":\"{}\"}}", "a".repeat(JSON_MAX - 100));
        let v = expect_json(&update(&c, &lease, &doc).await);
        assert_eq!(int(&v, "bytes"), doc.len() as i64);
        // Over it (sent complete, with Content-Length): refused.
        let doc = format!("{{\"pad\":\"{}\"}}", "a".repeat(JSON_MAX));
        let r = update(&c, &fx.lease, &doc).await;
        let v = refused(&fx, &c, &r, 400, "invalid_body", "2 MiB update").await;
        assert!(text(&v, "detail").contains("too large"), "{v}");
        // /v1/metadata takes at most 4 KiB.
        let big = format!("{{\"query_hidden\":true{}}}", " ".repeat(5000));
        let h = fx.lease.headers();
        let r = c.send("POST", "/v1/metadata?key=fixture", &h, big).await;
        refused(&fx, &c, &r, 400, "invalid_metadata", "5 KB metadata body").await;
        release_ok(&c, &lease, true).await;
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_keys_are_400_invalid_key_everywhere() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        let long = "k".repeat(129);
        let bad = [
            "a//b",
            "a/",
            "a b",
            "a\tb",
            "ключ",
            "a\\b",
            "a*b",
            long.as_str(),
            "a/%2e/../c d",
        ];
        for key in bad {
            let r = acquire(&c, json!({"key": key, "owner": "o", "block_seconds": -1})).await;
            let v = refused(&fx, &c, &r, 400, "invalid_key", &format!("acquire {key:?}")).await;
            if key == "a//b" {
                assert!(text(&v, "detail").contains("empty segment"), "{v}");
            }
            let q = enc(key);
            let h = fx.lease.headers();
            for (method, path) in [
                ("GET", format!("/v1/describe?key={q}")),
                ("POST", format!("/v1/get?key={q}&public=1")),
                ("POST", format!("/v1/update?key={q}")),
                ("POST", format!("/v1/remove?key={q}")),
                ("POST", format!("/v1/metadata?key={q}")),
            ] {
                let r = c.send(method, &path, &h, r#"{"query_hidden":true}"#).await;
                refused(&fx, &c, &r, 400, "invalid_key", &format!("{method} {path}")).await;
            }
            let body = fx.lease.body_with(json!({"key": key}));
            let r = post_json(&c, "/v1/keepalive", &[("x-fencing-token", &fx.lease.fencing)], &body).await;
            refused(&fx, &c, &r, 400, "invalid_key", &format!("keepalive {key:?}")).await;
        }
        // Legal oddities: blanks are trimmed, `.`/`..` segments are plain names.
        let tag = c.tag();
        for (sent, echoed) in [
            (format!("  Spaced-{tag}  "), format!("Spaced-{tag}")),
            (format!("{tag}/../b"), format!("{tag}/../b")),
            (format!("{tag}/./b"), format!("{tag}/./b")),
        ] {
            let v = expect_json(&acquire(&c, json!({"key": sent, "owner": "o"})).await);
            assert_eq!(text(&v, "key"), echoed);
            let l = Lease::from_acquire(&echoed.to_ascii_lowercase(), &v);
            release_ok(&c, &l, false).await;
        }
        // The longest legal key works.
        let longest = format!("{}-{}", c.tag(), "k".repeat(127 - c.tag().len()));
        assert_eq!(longest.len(), 128);
        let l = grab(&c, &longest).await;
        release_ok(&c, &l, false).await;
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_and_reserved_namespaces_are_400_invalid_namespace() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        let long = "n".repeat(129);
        let cases = [
            ("Bad NS", "allowed: lowercase letters, digits, '.', '_', '-'"),
            ("a/b", "allowed"),
            (long.as_str(), "value too long (max 128 characters)"),
            (".txns", r#"namespace ".txns" is reserved"#),
            (".TXN-Decisions", r#"namespace ".txn-decisions" is reserved"#),
            (".hidden", r#"namespace ".hidden" is reserved"#),
        ];
        for (ns, detail) in cases {
            let r = acquire(
                &c,
                json!({"namespace": ns, "key": "k", "owner": "o", "block_seconds": -1}),
            )
            .await;
            let v = refused(&fx, &c, &r, 400, "invalid_namespace", &format!("acquire ns {ns:?}")).await;
            assert!(text(&v, "detail").contains(detail), "ns {ns:?}: {v}");
            let q = enc(ns);
            let h = fx.lease.headers();
            for (method, path) in [
                ("GET", format!("/v1/describe?namespace={q}&key=fixture")),
                ("POST", format!("/v1/get?namespace={q}&key=fixture&public=1")),
                ("POST", format!("/v1/get?namespace={q}&key=fixture")),
                ("POST", format!("/v1/update?namespace={q}&key=fixture")),
                ("POST", format!("/v1/remove?namespace={q}&key=fixture")),
                ("POST", format!("/v1/metadata?namespace={q}&key=fixture")),
            ] {
                let r = c.send(method, &path, &h, r#"{"query_hidden":true}"#).await;
                let v = refused(&fx, &c, &r, 400, "invalid_namespace", &format!("{method} {path}")).await;
                assert!(text(&v, "detail").contains(detail), "{path}: {v}");
            }
            let body = fx.lease.body_with(json!({"namespace": ns}));
            let r = post_json(&c, "/v1/keepalive", &[("x-fencing-token", &fx.lease.fencing)], &body).await;
            refused(&fx, &c, &r, 400, "invalid_namespace", &format!("keepalive ns {ns:?}")).await;
        }
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_state_documents_are_400_invalid_body() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let docs: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("whitespace", b"  \n ".to_vec()),
            ("invalid utf-8 in a string", b"{\"a\":\"\xff\"}".to_vec()),
            ("invalid utf-8 outside strings", b"{\"a\":1}\xc3".to_vec()),
            ("not json", b"hello".to_vec()),
            ("xml", b"<doc/>".to_vec()),
            ("trailing value", b"{\"a\":1}{}".to_vec()),
            ("trailing junk", b"{\"a\":1} x".to_vec()),
            ("unterminated", b"{\"a\":[1,2".to_vec()),
            ("trailing comma", b"[1,]".to_vec()),
            ("leading zero", b"{\"a\":01}".to_vec()),
            ("NaN", b"{\"a\":NaN}".to_vec()),
            ("raw control char", b"\"a\x01b\"".to_vec()),
            ("100k-deep nesting", deep.into_bytes()),
        ];
        for (what, doc) in docs {
            let r = update_with(&c, &fx.lease, doc, &[]).await;
            refused(&fx, &c, &r, 400, "invalid_body", &format!("{} update {what}", c.tag())).await;
        }
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderately_deep_documents_are_valid_json() {
    let srv = server();
    let c = srv.client(Proto::Http1);
    let lease = grab(&c, "deep").await;
    // Go's encoding/json (lockd) accepts nesting up to 10 000 levels.
    for depth in [100, 500, 5000] {
        let doc = "[".repeat(depth) + &"]".repeat(depth);
        let r = update(&c, &lease, &doc).await;
        assert_eq!(r.status.as_u16(), 200, "depth {depth}: {}", r.text());
        assert_eq!(lease_get(&c, &lease).await.body.len(), 2 * depth);
    }
    release_ok(&c, &lease, false).await;
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_header_values_get_a_4xx_never_a_5xx() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        for size in [100 * 1024, 1024 * 1024] {
            let huge = "a".repeat(size);
            for (name, path) in [
                ("x-lease-id", "/v1/update?key=fixture"),
                ("x-lease-id", "/v1/get?key=fixture"),
                ("x-fencing-token", "/v1/keepalive"),
                ("x-correlation-id", "/v1/describe?key=fixture"),
                ("x-if-state-etag", "/v1/remove?key=fixture"),
            ] {
                let mut h = HeaderMap::new();
                for (n, v) in fx.lease.headers() {
                    h.insert(n, HeaderValue::from_str(v).expect("lease headers are text"));
                }
                h.insert(name, HeaderValue::from_str(&huge).expect("ascii"));
                let what = format!("{} {size}-byte {name} on {path}", c.tag());
                // The server may answer or drop the connection (a reset
                // HTTP/2 stream); it must not fail with a 5xx or die.
                if let Ok(r) = c.try_send_map("POST", path, h, r#"{"x":1}"#).await {
                    let s = r.status.as_u16();
                    if name == "x-correlation-id" && s == 200 {
                        let id = r.header("x-correlation-id").unwrap_or("");
                        assert!(
                            is_uuid_v7(id),
                            "{what}: oversized id must be replaced, got {} bytes",
                            id.len()
                        );
                    } else {
                        assert!((400..500).contains(&s), "{what}: {s} {}", r.text());
                    }
                }
                fx.unchanged(&c, &what).await;
            }
        }
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_that_are_not_numbers_or_text_are_refused() {
    let srv = server();
    for c in [srv.client(Proto::Http1), srv.client(Proto::H2c)] {
        let fx = Fixture::new(&c).await;
        let cases: Vec<(&str, &[u8], u16, &str)> = vec![
            ("x-fencing-token", b"\xff\xfe", 400, "invalid_fencing_token"),
            ("x-fencing-token", b"99999999999999999999", 400, "invalid_fencing_token"),
            ("x-fencing-token", b"0x10", 400, "invalid_fencing_token"),
            ("x-fencing-token", b"+-1", 400, "invalid_fencing_token"),
            ("x-if-version", b"1e3", 400, "invalid_version"),
            ("x-if-version", b"\xc3\xa9", 400, "invalid_version"),
            ("x-expected-bytes", b"1.0", 400, "invalid_expected_bytes"),
            (
                "x-expected-bytes",
                b"99999999999999999999999",
                400,
                "invalid_expected_bytes",
            ),
            ("x-lease-id", b"lease\xffid", 403, "lease_required"),
            ("x-txn-id", b"txn\xff", 409, "txn_mismatch"),
            ("x-if-state-etag", b"\"\xff\"", 409, "etag_mismatch"),
            ("x-lockd-meta-query-hidden", b"yes", 400, "invalid_metadata"),
        ];
        for (name, value, status, code) in cases {
            let mut h = HeaderMap::new();
            for (n, v) in fx.lease.headers() {
                h.insert(n, HeaderValue::from_str(v).expect("lease headers are text"));
            }
            h.insert(name, HeaderValue::from_bytes(value).expect("legal header bytes"));
            let r = c.send_map("POST", "/v1/update?key=fixture", h, r#"{"x":1}"#).await;
            let what = format!("{} update with {name}: {value:?}", c.tag());
            refused(&fx, &c, &r, status, code, &what).await;
        }
        release_ok(&c, &fx.lease, true).await;
    }
    finish_server(srv);
}
