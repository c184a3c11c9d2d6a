//! Wire conformance of reading and writing state (`/v1/get`, `/v1/update`)
//! against the real `lockd` binary (API.md §0.8, §2.4, §2.5), including the
//! order in which update reports the first of several problems.
//!
//! Like `http_routes`, every scenario runs over TCP and a Unix socket, each
//! with HTTP/1.1 and h2c, on keys tagged with the transport.

mod http_support;

use http_support::*;
use serde_json::json;

/// SHA-256 of the exact bytes `{"a": 1}` (computed with `sha256sum`).
const DOC_SHA256: &str = "f9d86028c6e0d64e225186f96acb69338b2c59764df79162107f5c4bb34d1310";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_staged_data_to_the_holder_and_committed_data_to_the_public() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("get-{}", c.tag());
        let r = public_get(&c, &key).await;
        assert_eq!(r.status.as_u16(), 204, "never-existing key");
        assert!(r.body.is_empty() && r.header("etag").is_none() && r.header("x-key-version").is_none());

        let l1 = grab(&c, &key).await;
        assert_eq!(lease_get(&c, &l1).await.status.as_u16(), 204, "no state yet");
        let a = expect_json(&update(&c, &l1, r#"{ "doc" : "A" }"#).await);
        let r = lease_get(&c, &l1).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, r#"{"doc":"A"}"#.to_string()));
        assert_eq!(r.header("etag"), a["new_state_etag"].as_str());
        assert_eq!(r.header("x-key-version"), Some("1"));
        assert_eq!(r.header("x-fencing-token"), Some(l1.fencing.as_str()));
        assert_eq!(public_get(&c, &key).await.status.as_u16(), 204, "uncommitted");
        release_ok(&c, &l1, false).await;

        let r = public_get(&c, &key).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, r#"{"doc":"A"}"#.to_string()));
        assert_eq!(r.header("etag"), a["new_state_etag"].as_str());
        assert_eq!(r.header("x-key-version"), Some("1"));
        assert_eq!(r.header("x-fencing-token"), None, "public reads carry no token");

        // Another holder stages B: the public still sees A (API.md policy: fixed quirk).
        let l2 = grab(&c, &key).await;
        let b = expect_json(&update(&c, &l2, r#"{"doc":"B"}"#).await);
        for public in ["1", "true", "TRUE", "yes", "On"] {
            let r = c
                .send("POST", &format!("/v1/get?key={key}&public={public}"), &[], "")
                .await;
            assert_eq!(r.text(), r#"{"doc":"A"}"#, "public={public} must not see staged data");
            assert_eq!(r.header("etag"), a["new_state_etag"].as_str());
        }
        let r = lease_get(&c, &l2).await;
        assert_eq!(r.text(), r#"{"doc":"B"}"#);
        assert_eq!(r.header("etag"), b["new_state_etag"].as_str());
        // public=1 with a lease header is a lease read.
        let h = l2.headers();
        let r = c.send("POST", &format!("/v1/get?key={key}&public=1"), &h, "").await;
        assert_eq!(r.text(), r#"{"doc":"B"}"#);
        assert_eq!(r.header("x-fencing-token"), Some(l2.fencing.as_str()));
        // A staged remove: the holder sees nothing, the public still sees A.
        // X-Txn-ID is not needed on a lease read: the lease's own txn is used.
        let r = c
            .send(
                "POST",
                &format!("/v1/get?key={key}"),
                &h[..1].iter().chain(&h[2..]).copied().collect::<Vec<_>>(),
                "",
            )
            .await;
        assert_eq!(r.text(), r#"{"doc":"B"}"#, "lease read without X-Txn-ID");
        expect_json(&c.send("POST", &format!("/v1/remove?key={key}"), &h, "").await);
        let r = lease_get(&c, &l2).await;
        assert_eq!(r.status.as_u16(), 204);
        assert!(r.body.is_empty() && r.header("etag").is_none() && r.header("x-key-version").is_none());
        assert_eq!(public_get(&c, &key).await.text(), r#"{"doc":"A"}"#);
        release_ok(&c, &l2, true).await;
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_reports_missing_params_and_lease_errors() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("geterr-{}", c.tag());
        let lease = grab(&c, &key).await;
        let v = expect_error(
            &c.send("POST", "/v1/get?public=1", &[], "").await,
            400,
            "missing_params",
        );
        assert_eq!(text(&v, "detail"), "key query required");
        let fence = [("x-fencing-token", lease.fencing.as_str())];
        expect_error(&c.send("POST", "/v1/get", &fence, "").await, 400, "missing_params");
        let v = expect_error(
            &c.send("POST", &format!("/v1/get?key={key}"), &fence, "").await,
            400,
            "missing_params",
        );
        assert_eq!(text(&v, "detail"), "lease_id required (or use public=1)");
        // Non-public reads parse the fencing header before anything else.
        let r = c.send("POST", "/v1/get", &[], "").await;
        expect_error(&r, 400, "missing_fencing_token");
        let h = [("x-lease-id", lease.lease_id.as_str()), ("x-fencing-token", "x")];
        expect_error(
            &c.send("POST", &format!("/v1/get?key={key}"), &h, "").await,
            400,
            "invalid_fencing_token",
        );
        let h = [
            ("x-lease-id", "c5v9d0sl70b3m3q8ndg0"),
            ("x-fencing-token", lease.fencing.as_str()),
        ];
        expect_error(
            &c.send("POST", &format!("/v1/get?key={key}"), &h, "").await,
            403,
            "lease_required",
        );
        let stale = (lease.token() + 1).to_string();
        let h = [
            ("x-lease-id", lease.lease_id.as_str()),
            ("x-fencing-token", stale.as_str()),
        ];
        expect_error(
            &c.send("POST", &format!("/v1/get?key={key}"), &h, "").await,
            403,
            "fencing_mismatch",
        );
        release_ok(&c, &lease, false).await;
        expect_error(&lease_get(&c, &lease).await, 403, "lease_required");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_stages_a_compacted_document_whose_etag_survives_commit() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("upd-{}", c.tag());
        let lease = grab(&c, &key).await;
        let raw = " {\n  \"b\" : [ 1 , 2.50, -0 ] ,\t\"a\" : \"x y\\\" z\" , \"c\":{ } }\n";
        let compact = r#"{"b":[1,2.50,-0],"a":"x y\" z","c":{}}"#;
        let r = update(&c, &lease, raw).await;
        let v = expect_json(&r);
        assert_eq!(int(&v, "new_version"), 1);
        assert_eq!(int(&v, "bytes"), compact.len() as i64);
        assert_eq!(v["metadata"], json!({}));
        let etag1 = text(&v, "new_state_etag").to_string();
        assert!(!etag1.is_empty());
        assert_eq!(r.header("etag"), Some(etag1.as_str()), "raw, unquoted ETag");
        assert_eq!(r.header("x-key-version"), Some("1"));
        assert_eq!(lease_get(&c, &lease).await.text(), compact);

        // A second update in the same txn keeps the staged version.
        let v = expect_json(&update(&c, &lease, "[1, 2]").await);
        assert_eq!(int(&v, "new_version"), 1);
        let etag2 = text(&v, "new_state_etag").to_string();
        assert_ne!(etag1, etag2, "new document, new etag");
        release_ok(&c, &lease, false).await;

        let r = public_get(&c, &key).await;
        assert_eq!(r.text(), "[1,2]");
        assert_eq!(r.header("etag"), Some(etag2.as_str()), "commit keeps the staged etag");
        assert_eq!(r.header("x-key-version"), Some("1"));
        let d = describe(&c, &key).await;
        assert_eq!((int(&d, "version"), text(&d, "state_etag")), (1, etag2.as_str()));

        // Any JSON value is a document; the next txn bumps the version.
        let lease = grab(&c, &key).await;
        for (doc, stored) in [
            (" 42 ", "42"),
            ("\"s p\"", "\"s p\""),
            ("null", "null"),
            ("true", "true"),
        ] {
            let v = expect_json(&update(&c, &lease, doc).await);
            assert_eq!(
                (int(&v, "new_version"), int(&v, "bytes")),
                (2, stored.len() as i64),
                "{doc}"
            );
            assert_eq!(lease_get(&c, &lease).await.text(), stored);
        }
        release_ok(&c, &lease, false).await;
        assert_eq!(public_get(&c, &key).await.text(), "true");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_enforces_if_version_and_if_state_etag() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("cas-{}", c.tag());
        let e1 = text(&commit_doc(&c, &key, r#"{"v":1}"#).await, "new_state_etag").to_string();
        let lease = grab(&c, &key).await;

        let v = expect_error(
            &update_with(&c, &lease, r#"{"v":2}"#, &[("x-if-version", "5")]).await,
            409,
            "version_conflict",
        );
        assert_eq!(text(&v, "detail"), "state version mismatch");
        assert_eq!((int(&v, "current_version"), text(&v, "current_etag")), (1, e1.as_str()));
        expect_error(
            &update_with(&c, &lease, r#"{"v":2}"#, &[("x-if-version", "abc")]).await,
            400,
            "invalid_version",
        );
        let v = expect_error(
            &update_with(&c, &lease, r#"{"v":2}"#, &[("x-if-state-etag", "nope")]).await,
            409,
            "etag_mismatch",
        );
        assert_eq!((int(&v, "current_version"), text(&v, "current_etag")), (1, e1.as_str()));
        assert_eq!(
            lease_get(&c, &lease).await.text(),
            r#"{"v":1}"#,
            "failed CAS staged nothing"
        );

        // Matching preconditions (a quoted etag too) pass.
        let quoted = format!("\"{e1}\"");
        let h = [("x-if-version", "1"), ("x-if-state-etag", quoted.as_str())];
        let v = expect_json(&update_with(&c, &lease, r#"{"v":2}"#, &h).await);
        let e2 = text(&v, "new_state_etag").to_string();
        // Now this txn's view is the staged version 2 and etag e2.
        expect_error(
            &update_with(&c, &lease, r#"{"v":3}"#, &[("x-if-version", "1")]).await,
            409,
            "version_conflict",
        );
        expect_error(
            &update_with(&c, &lease, r#"{"v":3}"#, &[("x-if-state-etag", e1.as_str())]).await,
            409,
            "etag_mismatch",
        );
        let h = [("x-if-version", "2"), ("x-if-state-etag", e2.as_str())];
        expect_json(&update_with(&c, &lease, r#"{"v":3}"#, &h).await);
        release_ok(&c, &lease, true).await;
        assert_eq!(public_get(&c, &key).await.text(), r#"{"v":1}"#);
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_checks_expected_bytes_and_sha256_of_the_raw_body() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("sum-{}", c.tag());
        let lease = grab(&c, &key).await;
        let doc = r#"{"a": 1}"#;
        let upper = DOC_SHA256.to_ascii_uppercase();
        for good in [
            vec![("x-expected-bytes", "8")],
            vec![("x-expected-sha256", DOC_SHA256)],
            vec![("x-expected-sha256", upper.as_str()), ("x-expected-bytes", "8")],
        ] {
            let v = expect_json(&update_with(&c, &lease, doc, &good).await);
            assert_eq!(int(&v, "bytes"), 7, "raw 8 bytes, compacted 7");
        }
        let zeros = "0".repeat(64);
        let not_hex = "g".repeat(64);
        let cases = [
            (vec![("x-expected-bytes", "7")], 409, "expected_bytes_mismatch"),
            (
                vec![("x-expected-sha256", zeros.as_str())],
                409,
                "expected_sha256_mismatch",
            ),
            (vec![("x-expected-bytes", "-1")], 400, "invalid_expected_bytes"),
            (vec![("x-expected-bytes", "eight")], 400, "invalid_expected_bytes"),
            (vec![("x-expected-sha256", "abc")], 400, "invalid_expected_sha256"),
            (
                vec![("x-expected-sha256", not_hex.as_str())],
                400,
                "invalid_expected_sha256",
            ),
        ];
        for (headers, status, code) in &cases {
            let r = update_with(&c, &lease, r#"{"b": 2}"#, headers).await;
            expect_error(&r, *status, code);
        }
        assert_eq!(
            lease_get(&c, &lease).await.text(),
            r#"{"a":1}"#,
            "rejected uploads staged nothing"
        );
        release_ok(&c, &lease, true).await;
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_reports_missing_headers_and_lease_errors() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let key = format!("upderr-{}", c.tag());
        let lease = grab(&c, &key).await;
        let send = |path: String, headers: Vec<(&'static str, String)>| {
            let c = c.clone();
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                c.send("POST", &path, &h, r#"{"x":1}"#).await
            }
        };
        let all = || -> Vec<(&'static str, String)> {
            lease.headers().into_iter().map(|(n, v)| (n, v.to_string())).collect()
        };
        let without =
            |name: &str| -> Vec<(&'static str, String)> { all().into_iter().filter(|(n, _)| *n != name).collect() };
        let with = |name: &'static str, value: String| -> Vec<(&'static str, String)> {
            let mut h = without(name);
            h.push((name, value));
            h
        };
        let path = format!("/v1/update?key={key}");

        let v = expect_error(&send("/v1/update".into(), all()).await, 400, "missing_key");
        assert_eq!(text(&v, "detail"), "key query required");
        let v = expect_error(&send(path.clone(), without("x-lease-id")).await, 400, "missing_lease");
        assert_eq!(text(&v, "detail"), "X-Lease-ID required");
        let v = expect_error(&send(path.clone(), without("x-txn-id")).await, 400, "missing_txn");
        assert_eq!(text(&v, "detail"), "X-Txn-ID required");
        let r = send(path.clone(), without("x-fencing-token")).await;
        expect_error(&r, 400, "missing_fencing_token");
        let r = send(path.clone(), with("x-fencing-token", "1x".into())).await;
        expect_error(&r, 400, "invalid_fencing_token");
        let r = send(path.clone(), with("x-lease-id", fake_xid(500 + i as u32))).await;
        expect_error(&r, 403, "lease_required");
        let r = send(path.clone(), with("x-fencing-token", (lease.token() + 1).to_string())).await;
        expect_error(&r, 403, "fencing_mismatch");
        let r = send(path.clone(), with("x-txn-id", fake_xid(600 + i as u32))).await;
        expect_error(&r, 409, "txn_mismatch");
        let r = send(format!("/v1/update?key={key}-never"), all()).await;
        expect_error(&r, 403, "lease_required");
        assert_eq!(lease_get(&c, &lease).await.status.as_u16(), 204, "nothing staged");

        expect_json(&send(path.clone(), all()).await);
        release_ok(&c, &lease, false).await;
        expect_error(&send(path.clone(), all()).await, 403, "lease_required");
    }
    world.finish();
}

/// query, headers, body, expected status, expected code.
type OrderCase<'a> = (String, Vec<(&'a str, &'a str)>, &'static str, u16, &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_reports_the_first_problem_in_lockds_check_order() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let key = format!("order-{}", c.tag());
        let lease = grab(&c, &key).await;
        let other = fake_xid(1000 + i as u32);
        let lease_h = lease.headers();
        // Each case has two problems; the one lockd checks first must win.
        let cases: Vec<OrderCase<'_>> = vec![
            (
                format!("namespace=Bad%20NS&key={key}"),
                vec![],
                "{}",
                400,
                "invalid_namespace",
            ),
            ("key=a%20b".into(), vec![], "{}", 400, "invalid_key"),
            (
                format!("key={key}"),
                vec![("x-lease-id", "x")],
                "{}",
                400,
                "missing_txn",
            ),
            (
                format!("key={key}"),
                vec![
                    ("x-lease-id", "x"),
                    ("x-txn-id", "y"),
                    ("x-fencing-token", "z"),
                    ("x-if-version", "v"),
                ],
                "{}",
                400,
                "invalid_fencing_token",
            ),
            (
                format!("key={key}"),
                [lease_h.clone(), vec![("x-if-version", "v"), ("x-expected-bytes", "b")]].concat(),
                "{}",
                400,
                "invalid_version",
            ),
            (
                format!("key={key}"),
                [lease_h.clone(), vec![("x-expected-bytes", "b")]].concat(),
                "not json",
                400,
                "invalid_expected_bytes",
            ),
            // The body is judged before the lease ...
            (
                format!("key={key}"),
                vec![("x-lease-id", &other), ("x-txn-id", &other), ("x-fencing-token", "1")],
                "not json",
                400,
                "invalid_body",
            ),
            // ... and so are the upload checks.
            (
                format!("key={key}"),
                vec![
                    ("x-lease-id", &other),
                    ("x-txn-id", &other),
                    ("x-fencing-token", "1"),
                    ("x-expected-bytes", "5"),
                ],
                "{}",
                409,
                "expected_bytes_mismatch",
            ),
            // Lease checks: lease id, then fencing, then txn (API.md §0.8).
            (
                format!("key={key}"),
                vec![("x-lease-id", &other), ("x-txn-id", &other), ("x-fencing-token", "99")],
                "{}",
                403,
                "lease_required",
            ),
            (
                format!("key={key}"),
                vec![
                    ("x-lease-id", &lease.lease_id),
                    ("x-txn-id", &other),
                    ("x-fencing-token", "99"),
                ],
                "{}",
                403,
                "fencing_mismatch",
            ),
            (
                format!("key={key}"),
                [
                    lease_h.clone()[..2].to_vec(),
                    vec![("x-fencing-token", lease.fencing.as_str()), ("x-if-version", "9")],
                ]
                .concat()
                .into_iter()
                .map(|(n, v)| if n == "x-txn-id" { (n, other.as_str()) } else { (n, v) })
                .collect(),
                "{}",
                409,
                "txn_mismatch",
            ),
        ];
        for (query, headers, body, status, code) in cases {
            let r = c.send("POST", &format!("/v1/update?{query}"), &headers, body).await;
            assert_eq!(
                (r.status.as_u16(), r.error_code().as_deref()),
                (status, Some(code)),
                "{} update?{query} {headers:?}: {}",
                c.tag(),
                r.text()
            );
            expect_error(&r, status, code);
        }
        assert_eq!(lease_get(&c, &lease).await.status.as_u16(), 204, "nothing staged");
        release_ok(&c, &lease, false).await;
    }
    world.finish();
}
