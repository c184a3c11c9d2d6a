//! Wire conformance of the probes, routing (exact paths, Go's 404, methods,
//! namespaces), correlation ids and `/v1/acquire` against the real `lockd`
//! binary (API.md §0, §1, §2.1).
//!
//! Every test runs its scenario four times: over TCP and a Unix socket,
//! each with HTTP/1.1 and h2c. Keys carry the transport's tag so the runs
//! sharing a server never touch each other's keys.

mod http_support;

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use http_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_200_empty_and_unknown_paths_get_go_404() {
    let world = World::start(&[]);
    for c in world.clients() {
        for path in ["/healthz", "/readyz"] {
            for method in ["GET", "POST"] {
                let r = c.send(method, path, &[], "").await;
                assert_eq!(r.status.as_u16(), 200, "{} {method} {path}", c.tag());
                assert!(r.body.is_empty(), "{path} body: {:?}", r.text());
                assert_eq!(r.header("content-type"), None, "{path} has no content type");
                assert!(is_uuid_v7(r.header("x-correlation-id").unwrap_or("")), "{r:?}");
            }
        }
        for path in [
            "/v1/nope",
            "/v1/acquire/",
            "/v1/describe/",
            "/healthz/",
            "/",
            "/v1",
            "/v1/",
            "/V1/acquire",
            "/v1/Acquire",
        ] {
            let r = c.send("POST", path, &[], "{}").await;
            assert_eq!(r.status.as_u16(), 404, "{} {path}: {}", c.tag(), r.text());
            assert_eq!(r.text(), "404 page not found\n", "{path}");
            let ct = r.header("content-type").unwrap_or("");
            assert!(ct.starts_with("text/plain"), "{path}: content type {ct:?}");
            assert!(r.header("x-correlation-id").is_some(), "{path}: no correlation id");
        }
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlation_id_is_echoed_when_valid_and_generated_otherwise() {
    let world = World::start(&[]);
    for c in world.clients() {
        let tag = c.tag();
        let key = format!("corr-{tag}");
        let id = format!("trace {tag} ~!@#$%^&*()");
        let with_id = [("x-correlation-id", id.as_str())];

        // Echoed on a success that sets it (acquire: header and body) ...
        let body = json!({"key": key, "owner": "o", "block_seconds": -1});
        let r = post_json(&c, "/v1/acquire", &with_id, &body).await;
        let v = expect_json(&r);
        assert_eq!(r.header("x-correlation-id"), Some(id.as_str()));
        assert_eq!(text(&v, "correlation_id"), id);
        // ... on an error, on other successes, on probes and on 404s.
        let r = post_json(&c, "/v1/acquire", &with_id, &body).await;
        expect_error(&r, 409, "waiting");
        assert_eq!(r.header("x-correlation-id"), Some(id.as_str()));
        for (method, path) in [
            ("GET", format!("/v1/describe?key={key}")),
            ("GET", "/healthz".to_string()),
            ("GET", "/no/such/path".to_string()),
        ] {
            let r = c.send(method, &path, &with_id, "").await;
            assert_eq!(r.header("x-correlation-id"), Some(id.as_str()), "{tag} {path}");
        }

        // Surrounding blanks are trimmed; 128 characters is the maximum.
        let padded = format!("  padded-{tag}  ");
        let r = c.send("GET", "/healthz", &[("x-correlation-id", &padded)], "").await;
        assert_eq!(r.header("x-correlation-id"), Some(padded.trim()));
        let longest = "x".repeat(128);
        let r = c.send("GET", "/healthz", &[("x-correlation-id", &longest)], "").await;
        assert_eq!(r.header("x-correlation-id"), Some(longest.as_str()));

        // Too long, blank, a control character, non-ASCII, or absent: a fresh UUIDv7.
        let mut invalid: Vec<HeaderValue> = vec![
            HeaderValue::from_str(&"x".repeat(129)).expect("ascii"),
            HeaderValue::from_static("   "),
            HeaderValue::from_bytes(b"tab\there").expect("tab is a legal header byte"),
            HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text is a legal header byte"),
        ];
        invalid.push(HeaderValue::from_static(""));
        let mut generated = Vec::new();
        for value in invalid {
            for path in ["/healthz", "/v1/acquire"] {
                let mut h = HeaderMap::new();
                h.insert("x-correlation-id", value.clone());
                let r = c.send_map("POST", path, h, "").await;
                let got = r.header("x-correlation-id").unwrap_or("").to_string();
                assert!(is_uuid_v7(&got), "{tag} {path} {value:?} → {got:?}");
                generated.push(got);
            }
        }
        let r = c.send("POST", "/v1/acquire", &[], "").await;
        expect_error(&r, 400, "invalid_body");
        generated.push(r.header("x-correlation-id").unwrap_or("").to_string());
        assert!(generated.iter().all(|g| is_uuid_v7(g)), "{generated:?}");
        let unique: std::collections::BTreeSet<_> = generated.iter().collect();
        assert_eq!(unique.len(), generated.len(), "generated ids repeat: {generated:?}");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_answers_the_documented_fields_and_headers() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("acq-{}", c.tag());
        let before = now_unix();
        let r = acquire(
            &c,
            json!({"key": key, "owner": "alice", "ttl_seconds": 20, "block_seconds": -1}),
        )
        .await;
        let after = now_unix();
        let v = expect_json(&r);
        let obj = v.as_object().expect("object");
        let allowed = [
            "namespace",
            "lease_id",
            "txn_id",
            "key",
            "owner",
            "expires_at_unix",
            "version",
            "state_etag",
            "fencing_token",
            "correlation_id",
        ];
        for k in obj.keys() {
            assert!(allowed.contains(&k.as_str()), "unexpected field {k}: {v}");
        }
        assert_eq!(text(&v, "namespace"), "default");
        assert!(is_xid(text(&v, "lease_id")), "{v}");
        assert!(is_xid(text(&v, "txn_id")), "{v}");
        assert_ne!(v["lease_id"], v["txn_id"]);
        assert_eq!(text(&v, "key"), key);
        assert_eq!(text(&v, "owner"), "alice");
        let exp = int(&v, "expires_at_unix");
        assert!(
            (before + 19..=after + 20).contains(&exp),
            "expires {exp}, now {before}..{after}"
        );
        assert_eq!(int(&v, "version"), 0);
        assert!(obj.get("state_etag").is_none(), "no committed state yet: {v}");
        assert_eq!(int(&v, "fencing_token"), 1);
        assert_eq!(r.header("x-fencing-token"), Some("1"));
        assert_eq!(r.header("x-key-version"), Some("0"));
        assert_eq!(Some(text(&v, "correlation_id")), r.header("x-correlation-id"));

        // ttl ≤ 0 → default 30 s; above the 30 min maximum → clamped.
        for (ttl, want) in [(0, 30), (-5, 30), (1_000_000, 1800)] {
            let k = format!("{key}-ttl{ttl}");
            let now = now_unix();
            let v = expect_json(&acquire(&c, json!({"key": k, "owner": "o", "ttl_seconds": ttl})).await);
            let exp = int(&v, "expires_at_unix");
            assert!(
                (now + want - 1..=now_unix() + want).contains(&exp),
                "ttl {ttl}: expires {exp}"
            );
        }

        // With committed state, acquire reports its version and etag.
        let k = format!("{key}-state");
        let up = commit_doc(&c, &k, r#"{"v":1}"#).await;
        let r = acquire(&c, json!({"key": k, "owner": "o", "block_seconds": -1})).await;
        let v = expect_json(&r);
        assert_eq!(int(&v, "version"), 1);
        assert_eq!(v["state_etag"], up["new_state_etag"]);
        assert_eq!(int(&v, "fencing_token"), 2);
        assert_eq!(r.header("x-key-version"), Some("1"));
        assert_eq!(r.header("x-fencing-token"), Some("2"));
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_generates_a_uuidv7_key_or_takes_the_query_key() {
    let world = World::start(&[]);
    for c in world.clients() {
        let mut keys = Vec::new();
        for body in [
            json!({"owner": "o"}),
            json!({"owner": "o", "key": ""}),
            json!({"owner": "o", "key": "   "}),
        ] {
            let v = expect_json(&acquire(&c, body).await);
            let key = text(&v, "key").to_string();
            assert!(is_uuid_v7(&key), "{} generated key {key:?}", c.tag());
            assert_eq!(int(&v, "fencing_token"), 1);
            let d = describe(&c, &key).await;
            assert_eq!(d["lease_id"], v["lease_id"], "the generated key is the stored key");
            keys.push(key);
        }
        assert!(keys[0] != keys[1] && keys[1] != keys[2], "{keys:?}");

        let qkey = format!("from-query-{}", c.tag());
        let r = post_json(&c, &format!("/v1/acquire?key={qkey}"), &[], &json!({"owner": "o"})).await;
        assert_eq!(text(&expect_json(&r), "key"), qkey);
        let r = post_json(
            &c,
            &format!("/v1/acquire?key={qkey}-ignored"),
            &[],
            &json!({"owner": "o", "key": format!("{qkey}-body")}),
        )
        .await;
        assert_eq!(text(&expect_json(&r), "key"), format!("{qkey}-body"), "body key wins");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_echoes_the_callers_spelling_but_stores_lowercase() {
    let world = World::start(&[]);
    for c in world.clients() {
        let tag = c.tag();
        let spellings = [
            (format!("Orders-{tag}"), format!("Orders-{tag}")),
            (format!("/ORDERS-{tag}"), format!("ORDERS-{tag}")),
            (format!("default/oRDERS-{tag}"), format!("oRDERS-{tag}")),
        ];
        for (i, (sent, echoed)) in spellings.iter().enumerate() {
            let r = acquire(&c, json!({"key": sent, "owner": "o", "block_seconds": -1})).await;
            let v = expect_json(&r);
            assert_eq!(text(&v, "key"), echoed, "{tag}: sent {sent:?}");
            assert_eq!(
                int(&v, "fencing_token"),
                i as i64 + 1,
                "{sent:?} is the same stored key"
            );
            if i < spellings.len() - 1 {
                let lease = Lease::from_acquire(&format!("orders-{tag}"), &v);
                release_ok(&c, &lease, false).await;
            }
        }
        let d = describe(&c, &format!("orders-{tag}")).await;
        assert_eq!(text(&d, "owner"), "o", "lowercase describe sees the lease: {d}");
        let r = acquire(
            &c,
            json!({"key": format!("orders-{tag}"), "owner": "x", "block_seconds": -1}),
        )
        .await;
        expect_error(&r, 409, "waiting");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_not_exists_refuses_any_key_ever_acquired() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("ine-{}", c.tag());
        let body = json!({"key": key, "owner": "o", "if_not_exists": true, "block_seconds": 10});
        let first = expect_json(&acquire(&c, body.clone()).await);
        assert_eq!(int(&first, "fencing_token"), 1);
        // Refused at once, whatever block_seconds says.
        let started = Instant::now();
        let v = expect_error(&acquire(&c, body.clone()).await, 409, "already_exists");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "already_exists must not wait"
        );
        assert_eq!(text(&v, "detail"), "key already exists");
        let lease = Lease::from_acquire(&key, &first);
        release_ok(&c, &lease, false).await;
        // Released, nothing committed: the key still "exists".
        expect_error(&acquire(&c, body.clone()).await, 409, "already_exists");
        let again = expect_json(&acquire(&c, json!({"key": key, "owner": "o"})).await);
        assert_eq!(int(&again, "fencing_token"), 2);
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_on_a_held_key_without_waiting_is_409_waiting() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("held-{}", c.tag());
        let up = commit_doc(&c, &key, r#"{"held":true}"#).await;
        let holder = grab(&c, &key).await;
        for owner in ["bob", "tester"] {
            let r = acquire(&c, json!({"key": key, "owner": owner, "block_seconds": -1})).await;
            let v = expect_error(&r, 409, "waiting");
            assert_eq!(text(&v, "detail"), "lease already held");
            // ceil(seconds until the holder's 60 s lease expires), at least 1.
            let left = holder.expires_at_unix - now_unix();
            let retry = int(&v, "retry_after_seconds");
            assert!(
                (left - 1..=left + 1).contains(&retry),
                "retry_after_seconds {retry}, lease ends in {left}"
            );
            assert_eq!(int(&v, "current_version"), 1);
            assert_eq!(v["current_etag"], up["new_state_etag"]);
        }
        // A short wait that runs out is the same answer.
        let r = acquire(&c, json!({"key": key, "owner": "bob", "block_seconds": 1})).await;
        expect_error(&r, 409, "waiting");
        let d = describe(&c, &key).await;
        assert_eq!(
            d["lease_id"].as_str(),
            Some(holder.lease_id.as_str()),
            "holder unchanged"
        );
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_acquire_is_granted_when_the_holder_releases() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("block-{}", c.tag());
        let holder = grab(&c, &key).await;
        let waiter = {
            let c = c.clone();
            let key = key.clone();
            tokio::spawn(async move { acquire(&c, json!({"key": key, "owner": "bob", "block_seconds": 5})).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "the acquire must wait while the key is held");
        release_ok(&c, &holder, false).await;
        let r = waiter.await.expect("waiter task");
        let v = expect_json(&r);
        assert_eq!(text(&v, "owner"), "bob");
        assert_eq!(int(&v, "fencing_token"), 2);
        assert_eq!(describe(&c, &key).await["owner"], "bob");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_validates_owner_txn_key_and_namespace() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let key = format!("val-{}", c.tag());
        for body in [
            json!({"key": key}),
            json!({"key": key, "owner": ""}),
            json!({"key": key, "owner": "  "}),
        ] {
            expect_error(&acquire(&c, body).await, 400, "missing_owner");
        }
        let r = acquire(&c, json!({"key": key, "owner": "o", "txn_id": "not-an-xid"})).await;
        expect_error(&r, 400, "invalid_txn");
        let r = post_json(
            &c,
            "/v1/acquire",
            &[("x-txn-id", "ZZZ")],
            &json!({"key": key, "owner": "o"}),
        )
        .await;
        expect_error(&r, 400, "invalid_txn");
        expect_error(
            &acquire(&c, json!({"key": "a b", "owner": "o"})).await,
            400,
            "invalid_key",
        );
        let r = acquire(&c, json!({"namespace": "Bad NS", "key": key, "owner": "o"})).await;
        expect_error(&r, 400, "invalid_namespace");
        // With several problems, the first in lockd's order wins:
        // namespace → key → owner → txn.
        let r = acquire(&c, json!({"namespace": "Bad NS", "key": "a b", "txn_id": "zz"})).await;
        expect_error(&r, 400, "invalid_namespace");
        expect_error(
            &acquire(&c, json!({"key": "a b", "txn_id": "zz"})).await,
            400,
            "invalid_key",
        );
        expect_error(
            &acquire(&c, json!({"key": key, "txn_id": "zz"})).await,
            400,
            "missing_owner",
        );
        assert_eq!(describe(&c, &key).await["version"], 0);
        assert!(describe(&c, &key).await.get("owner").is_none(), "nothing was granted");

        // A caller txn id (body, else header) is joined as given.
        let body_txn = fake_xid(2 * i as u32);
        let v = expect_json(&acquire(&c, json!({"key": key, "owner": "o", "txn_id": body_txn})).await);
        assert_eq!(text(&v, "txn_id"), body_txn);
        let header_txn = fake_xid(2 * i as u32 + 1);
        let r = post_json(
            &c,
            "/v1/acquire",
            &[("x-txn-id", &header_txn)],
            &json!({"key": format!("{key}-h"), "owner": "o"}),
        )
        .await;
        assert_eq!(text(&expect_json(&r), "txn_id"), header_txn);
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_resolved_lowercase_and_isolate_keys() {
    let world = World::start(&[]);
    for c in world.clients() {
        let tag = c.tag();
        let ns = format!("Team-{tag}");
        let lower = ns.to_ascii_lowercase();
        let key = "shared-key";
        let v = expect_json(&acquire(&c, json!({"namespace": ns, "key": key, "owner": "team"})).await);
        assert_eq!(text(&v, "namespace"), lower);
        let r = c
            .send("GET", &format!("/v1/describe?namespace={ns}&key={key}"), &[], "")
            .await;
        let d = expect_json(&r);
        assert_eq!((text(&d, "namespace"), text(&d, "owner")), (lower.as_str(), "team"));
        // The same key elsewhere is another key with its own counter.
        let other = grab_in(&c, &format!("other-{tag}"), key).await;
        assert_eq!(other.token(), 1);
        let lease = Lease::from_acquire(key, &v);
        expect_json(&update(&c, &lease, r#"{"team":1}"#).await);
        release_ok(&c, &lease, false).await;
        let r = c
            .send(
                "POST",
                &format!("/v1/get?namespace={lower}&key={key}&public=1"),
                &[],
                "",
            )
            .await;
        assert_eq!(r.text(), r#"{"team":1}"#);
        let r = c
            .send(
                "POST",
                &format!("/v1/get?namespace=other-{tag}&key={key}&public=1"),
                &[],
                "",
            )
            .await;
        assert_eq!(r.status.as_u16(), 204, "other namespace has no state");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_are_not_enforced_on_lease_and_state_routes() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("method-{}", c.tag());
        for method in ["PUT", "GET", "DELETE"] {
            let body = json!({"key": format!("{key}-{method}"), "owner": "o"}).to_string();
            let r = c.send(method, "/v1/acquire", &[], body).await;
            expect_json(&r);
        }
        for method in ["POST", "DELETE"] {
            let r = c.send(method, &format!("/v1/describe?key={key}-PUT"), &[], "").await;
            assert_eq!(text(&expect_json(&r), "owner"), "o");
        }
    }
    world.finish();
}
