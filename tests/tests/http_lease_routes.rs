//! Wire conformance of `/v1/keepalive` and `/v1/release`, and of the
//! fencing token they must leave alone, against the real `lockd` binary
//! (API.md §0.8, §2.2, §2.3).
//!
//! Every test runs its scenario over TCP and a Unix socket, each with
//! HTTP/1.1 and h2c, on keys tagged with the transport.

mod http_support;

use http_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_token_grows_by_one_per_acquire_only() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("fence-{}", c.tag());
        let l1 = grab(&c, &key).await;
        assert_eq!(l1.token(), 1);
        let r = post_json(
            &c,
            "/v1/keepalive",
            &[("x-fencing-token", &l1.fencing)],
            &l1.body_with(json!({"ttl_seconds": 60})),
        )
        .await;
        expect_json(&r);
        assert_eq!(r.header("x-fencing-token"), Some("1"), "keepalive keeps the token");
        expect_json(&update(&c, &l1, r#"{"n":1}"#).await);
        release_ok(&c, &l1, false).await;
        for want in 2..=4 {
            let l = grab(&c, &key).await;
            assert_eq!(l.token(), want);
            release_ok(&c, &l, true).await;
        }
        let d = describe(&c, &key).await;
        assert!(d.get("fencing_token").is_none(), "describe exposes no token: {d}");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_sets_expiry_from_now() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("ka-{}", c.tag());
        let r = acquire(&c, json!({"key": key, "owner": "o", "ttl_seconds": 5})).await;
        let v = expect_json(&r);
        let lease = Lease::from_acquire(&key, &v);
        let fence = [("x-fencing-token", lease.fencing.as_str())];
        for (ttl, want) in [(600, 600), (0, 30), (100_000, 1800)] {
            let now = now_unix();
            let r = post_json(
                &c,
                "/v1/keepalive",
                &fence,
                &lease.body_with(json!({"ttl_seconds": ttl})),
            )
            .await;
            let v = expect_json(&r);
            assert_eq!(v.as_object().map(|o| o.len()), Some(1), "only expires_at_unix: {v}");
            let exp = int(&v, "expires_at_unix");
            assert!((now + want - 1..=now_unix() + want).contains(&exp), "ttl {ttl}: {exp}");
            assert_eq!(r.header("x-fencing-token"), Some(lease.fencing.as_str()));
            assert_eq!(int(&describe(&c, &key).await, "expires_at_unix"), exp);
        }
        // namespace/key from the query, txn id from the header.
        let r = post_json(
            &c,
            &format!("/v1/keepalive?namespace=default&key={key}"),
            &[("x-fencing-token", &lease.fencing), ("x-txn-id", &lease.txn_id)],
            &json!({"lease_id": lease.lease_id, "ttl_seconds": 60}),
        )
        .await;
        expect_json(&r);
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_reports_each_missing_or_wrong_part() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let key = format!("kaerr-{}", c.tag());
        let up = commit_doc(&c, &key, r#"{"k":1}"#).await;
        let lease = grab(&c, &key).await;
        let ka = |headers: Vec<(&'static str, String)>, body: String| {
            let c = c.clone();
            async move {
                let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                c.send("POST", "/v1/keepalive", &h, body).await
            }
        };
        let fence = || vec![("x-fencing-token", lease.fencing.clone())];
        let good = lease.body_with(json!({"ttl_seconds": 30}));

        // The fencing header is checked before the body is even read.
        let v = expect_error(&ka(vec![], "{{{".into()).await, 400, "missing_fencing_token");
        assert_eq!(text(&v, "detail"), "X-Fencing-Token header required");
        let bad = vec![("x-fencing-token", "abc".to_string())];
        expect_error(&ka(bad, "{{{".into()).await, 400, "invalid_fencing_token");

        let mut no_key = good.clone();
        no_key.as_object_mut().map(|o| o.remove("key"));
        expect_error(&ka(fence(), no_key.to_string()).await, 400, "missing_key");
        let mut no_lease = good.clone();
        no_lease.as_object_mut().map(|o| o.remove("lease_id"));
        let v = expect_error(&ka(fence(), no_lease.to_string()).await, 400, "missing_lease");
        assert_eq!(text(&v, "detail"), "lease_id required");

        let lease_err = |v: &serde_json::Value| {
            assert_eq!(int(v, "current_version"), 1, "{v}");
            assert_eq!(v["current_etag"], up["new_state_etag"], "{v}");
        };
        let mut no_txn = good.clone();
        no_txn.as_object_mut().map(|o| o.remove("txn_id"));
        lease_err(&expect_error(
            &ka(fence(), no_txn.to_string()).await,
            400,
            "missing_txn",
        ));
        let other_txn = lease.body_with(json!({"txn_id": fake_xid(100 + i as u32)}));
        lease_err(&expect_error(
            &ka(fence(), other_txn.to_string()).await,
            409,
            "txn_mismatch",
        ));
        let wrong_fence = vec![("x-fencing-token", (lease.token() + 1).to_string())];
        lease_err(&expect_error(
            &ka(wrong_fence, good.to_string()).await,
            403,
            "fencing_mismatch",
        ));
        let other_lease = lease.body_with(json!({"lease_id": fake_xid(200 + i as u32)}));
        let v = expect_error(&ka(fence(), other_lease.to_string()).await, 403, "lease_required");
        assert_eq!(text(&v, "detail"), "active lease required");
        lease_err(&v);

        // None of that touched the lease; after release it is gone.
        expect_json(&ka(fence(), good.to_string()).await);
        release_ok(&c, &lease, false).await;
        expect_error(&ka(fence(), good.to_string()).await, 403, "lease_required");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_commits_by_default_and_discards_on_rollback() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("rel-{}", c.tag());
        let l1 = grab(&c, &key).await;
        let a = expect_json(&update(&c, &l1, r#"{"doc":"A"}"#).await);
        assert_eq!(
            public_get(&c, &key).await.status.as_u16(),
            204,
            "staged data is not public"
        );
        release_ok(&c, &l1, false).await;
        let r = public_get(&c, &key).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, r#"{"doc":"A"}"#.to_string()));
        assert_eq!(r.header("etag"), a["new_state_etag"].as_str());

        let l2 = grab(&c, &key).await;
        expect_json(&update(&c, &l2, r#"{"doc":"B"}"#).await);
        release_ok(&c, &l2, true).await;
        let r = public_get(&c, &key).await;
        assert_eq!(r.text(), r#"{"doc":"A"}"#, "rollback discarded B");
        let d = describe(&c, &key).await;
        assert_eq!((int(&d, "version"), &d["state_etag"]), (1, &a["new_state_etag"]));
        assert!(d.get("owner").is_none(), "released: {d}");

        // Nothing staged: release just clears the lease, either way.
        for rollback in [false, true] {
            let l = grab(&c, &key).await;
            release_ok(&c, &l, rollback).await;
            assert_eq!(int(&describe(&c, &key).await, "version"), 1);
        }
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_idempotent_and_validates_its_input() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let key = format!("relidem-{}", c.tag());
        let xid = fake_xid(300 + i as u32);
        // Never-existing key, unknown lease: still released.
        let r = post_json(
            &c,
            "/v1/release",
            &[("x-fencing-token", "1")],
            &json!({"key": format!("{key}-never"), "lease_id": xid, "txn_id": xid}),
        )
        .await;
        assert_eq!(expect_json(&r), json!({"released": true}));

        let lease = grab(&c, &key).await;
        let fence = [("x-fencing-token", lease.fencing.as_str())];
        let v = expect_error(
            &c.send("POST", "/v1/release", &[], "{{{").await,
            400,
            "missing_fencing_token",
        );
        assert_eq!(text(&v, "detail"), "X-Fencing-Token header required");
        let r = c
            .send("POST", "/v1/release", &[("x-fencing-token", "1.5")], "{{{")
            .await;
        expect_error(&r, 400, "invalid_fencing_token");
        let mut body = lease.body_with(json!({}));
        body.as_object_mut().map(|o| o.remove("txn_id"));
        let v = expect_error(&post_json(&c, "/v1/release", &fence, &body).await, 400, "missing_txn");
        assert_eq!(text(&v, "detail"), "txn_id required");
        let mut body = lease.body_with(json!({}));
        body.as_object_mut().map(|o| o.remove("key"));
        expect_error(&post_json(&c, "/v1/release", &fence, &body).await, 400, "missing_key");
        let mut body = lease.body_with(json!({}));
        body.as_object_mut().map(|o| o.remove("lease_id"));
        expect_error(&post_json(&c, "/v1/release", &fence, &body).await, 400, "missing_lease");
        let body = lease.body_with(json!({"txn_id": fake_xid(400 + i as u32)}));
        expect_error(&post_json(&c, "/v1/release", &fence, &body).await, 409, "txn_mismatch");

        // A stale fencing token "releases" nothing but still says released.
        let stale = (lease.token() + 7).to_string();
        let r = post_json(
            &c,
            "/v1/release",
            &[("x-fencing-token", &stale)],
            &lease.body_with(json!({})),
        )
        .await;
        assert_eq!(expect_json(&r), json!({"released": true}));
        assert_eq!(
            describe(&c, &key).await["lease_id"].as_str(),
            Some(lease.lease_id.as_str())
        );

        // The real release, then the same release again.
        release_ok(&c, &lease, false).await;
        release_ok(&c, &lease, false).await;
        assert!(describe(&c, &key).await.get("lease_id").is_none());
    }
    world.finish();
}
