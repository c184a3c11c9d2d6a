//! Wire conformance of `/v1/remove`, `/v1/describe` and `/v1/metadata`
//! against the real `lockd` binary (API.md §0.8, §2.6–§2.8).
//!
//! Every test runs its scenario over TCP and a Unix socket, each with
//! HTTP/1.1 and h2c, on keys tagged with the transport.

mod http_support;

use http_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_stages_deletion_and_enforces_preconditions() {
    let world = World::start(&[]);
    for c in world.clients() {
        let tag = c.tag();
        // Nothing to remove.
        let empty = grab(&c, &format!("rm-empty-{tag}")).await;
        let h = empty.headers();
        let r = c.send("POST", &format!("/v1/remove?{}", empty.query()), &h, "").await;
        assert_eq!(expect_json(&r), json!({"removed": false}));
        assert_eq!(r.header("x-key-version"), Some("0"));
        release_ok(&c, &empty, false).await;

        let key = format!("rm-{tag}");
        let e1 = text(&commit_doc(&c, &key, r#"{"rm":1}"#).await, "new_state_etag").to_string();
        let lease = grab(&c, &key).await;
        let rm = |extra: Vec<(&'static str, String)>| {
            let c = c.clone();
            let lease = lease.clone();
            async move {
                let mut h = lease.headers();
                h.extend(extra.iter().map(|(n, v)| (*n, v.as_str())));
                c.send("POST", &format!("/v1/remove?{}", lease.query()), &h, "ignored body")
                    .await
            }
        };
        // X-If-Version is enforced on remove (API.md policy: fixed quirk).
        let v = expect_error(&rm(vec![("x-if-version", "7".into())]).await, 409, "version_conflict");
        assert_eq!((int(&v, "current_version"), text(&v, "current_etag")), (1, e1.as_str()));
        expect_error(&rm(vec![("x-if-version", "x".into())]).await, 400, "invalid_version");
        let v = expect_error(&rm(vec![("x-if-state-etag", "zzz".into())]).await, 409, "etag_mismatch");
        assert_eq!(int(&v, "current_version"), 1);
        assert_eq!(lease_get(&c, &lease).await.text(), r#"{"rm":1}"#, "nothing staged yet");

        let r = rm(vec![
            ("x-if-version", "1".into()),
            ("x-if-state-etag", format!("\"{e1}\"")),
        ])
        .await;
        assert_eq!(expect_json(&r), json!({"removed": true, "new_version": 2}));
        assert_eq!(r.header("x-key-version"), Some("2"));
        assert_eq!(
            lease_get(&c, &lease).await.status.as_u16(),
            204,
            "holder sees the removal"
        );
        assert_eq!(
            public_get(&c, &key).await.text(),
            r#"{"rm":1}"#,
            "public sees committed"
        );
        assert_eq!(int(&describe(&c, &key).await, "version"), 1, "describe shows committed");
        release_ok(&c, &lease, false).await;

        assert_eq!(public_get(&c, &key).await.status.as_u16(), 204);
        let d = describe(&c, &key).await;
        assert_eq!(int(&d, "version"), 2);
        assert!(d.get("state_etag").is_none(), "remove-commit clears the etag: {d}");
        let again = grab(&c, &key).await;
        assert_eq!(again.body["version"], 2);
        assert!(again.body.get("state_etag").is_none());
        let h = again.headers();
        let r = c.send("POST", &format!("/v1/remove?{}", again.query()), &h, "").await;
        assert_eq!(expect_json(&r), json!({"removed": false, "new_version": 2}));
        release_ok(&c, &again, false).await;
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_committed_metadata_and_the_holder() {
    let world = World::start(&[]);
    for c in world.clients() {
        let tag = c.tag();
        let never = format!("never-{tag}");
        let d = describe(&c, &never).await;
        assert_eq!(
            d,
            json!({"namespace": "default", "key": never, "version": 0, "metadata": {}})
        );
        let spelled = format!("Never-Spelled-{tag}");
        assert_eq!(describe(&c, &spelled).await["key"], spelled.as_str(), "key as given");

        let key = format!("desc-{tag}");
        let lease = grab(&c, &key).await;
        let d = describe(&c, &key).await;
        let allowed = [
            "namespace",
            "key",
            "owner",
            "lease_id",
            "expires_at_unix",
            "version",
            "state_etag",
            "updated_at_unix",
            "metadata",
        ];
        for k in d.as_object().expect("object").keys() {
            assert!(allowed.contains(&k.as_str()), "unexpected describe field {k}: {d}");
        }
        assert_eq!(text(&d, "owner"), "tester");
        assert_eq!(text(&d, "lease_id"), lease.lease_id);
        assert_eq!(int(&d, "expires_at_unix"), lease.expires_at_unix);
        assert_eq!(int(&d, "version"), 0);
        expect_json(&update(&c, &lease, r#"{"d":1}"#).await);
        assert!(
            describe(&c, &key).await.get("state_etag").is_none(),
            "staging is not described"
        );
        release_ok(&c, &lease, false).await;
        let d = describe(&c, &key).await;
        assert!(d.get("owner").is_none() && d.get("lease_id").is_none() && d.get("expires_at_unix").is_none());
        assert_eq!(int(&d, "version"), 1);
        assert!(!text(&d, "state_etag").is_empty());
        assert!(int(&d, "updated_at_unix") >= now_unix() - 60, "{d}");

        let v = expect_error(&c.send("GET", "/v1/describe", &[], "").await, 400, "missing_key");
        assert_eq!(text(&v, "detail"), "key query required");
        let r = c
            .send("GET", &format!("/v1/describe?namespace=elsewhere&key={key}"), &[], "")
            .await;
        assert_eq!(int(&expect_json(&r), "version"), 0, "other namespace");
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_stages_query_hidden_from_header_or_body() {
    let world = World::start(&[]);
    for c in world.clients() {
        let key = format!("meta-{}", c.tag());
        commit_doc(&c, &key, r#"{"m":1}"#).await;
        let lease = grab(&c, &key).await;
        let path = format!("/v1/metadata?{}", lease.query());
        let meta = |extra: Vec<(&'static str, &'static str)>, body: &'static str| {
            let c = c.clone();
            let lease = lease.clone();
            let path = path.clone();
            async move {
                let mut h = lease.headers();
                h.extend(extra);
                c.send("POST", &path, &h, body).await
            }
        };
        let shape = |hidden: bool| {
            let m = if hidden {
                json!({"query_hidden": true})
            } else {
                json!({})
            };
            json!({"namespace": "default", "key": key, "version": 2, "metadata": m})
        };

        let r = meta(vec![("x-lockd-meta-query-hidden", "true")], "").await;
        assert_eq!(expect_json(&r), shape(true));
        assert_eq!(r.header("x-key-version"), Some("2"));
        assert_eq!(
            expect_json(&meta(vec![], r#"{"query_hidden":false}"#).await),
            shape(false)
        );
        let r = meta(vec![("x-lockd-meta-query-hidden", "false")], r#"{"query_hidden":true}"#).await;
        assert_eq!(expect_json(&r), shape(false), "the header wins");
        assert_eq!(
            expect_json(&meta(vec![("x-lockd-meta-query-hidden", "T")], "").await),
            shape(true)
        );

        let v = expect_error(&meta(vec![], "").await, 400, "invalid_metadata");
        assert_eq!(text(&v, "detail"), "no metadata fields provided");
        expect_error(&meta(vec![], "{}").await, 400, "invalid_metadata");
        expect_error(
            &meta(vec![("x-lockd-meta-query-hidden", "maybe")], "").await,
            400,
            "invalid_metadata",
        );
        expect_error(
            &meta(vec![], r#"{"query_hidden":"yes"}"#).await,
            400,
            "invalid_metadata",
        );
        expect_error(&meta(vec![], r#"{"hidden":true}"#).await, 400, "invalid_metadata");
        expect_error(
            &meta(vec![], r#"{"query_hidden":true}{}"#).await,
            400,
            "invalid_metadata",
        );
        // Only a JSON object is a metadata body, not the fields as an array.
        expect_error(&meta(vec![], "[true]").await, 400, "invalid_metadata");
        let r = meta(vec![("x-if-version", "9"), ("x-lockd-meta-query-hidden", "1")], "").await;
        let v = expect_error(&r, 409, "version_conflict");
        assert_eq!(int(&v, "current_version"), 2, "this txn's staged version");
        let r = meta(vec![("x-if-version", "v"), ("x-lockd-meta-query-hidden", "1")], "").await;
        expect_error(&r, 400, "invalid_version");
        let r = meta(vec![("x-if-version", "2"), ("x-lockd-meta-query-hidden", "1")], "").await;
        assert_eq!(expect_json(&r), shape(true));

        let h = [
            ("x-txn-id", lease.txn_id.as_str()),
            ("x-fencing-token", lease.fencing.as_str()),
        ];
        let r = c.send("POST", &path, &h, r#"{"query_hidden":true}"#).await;
        expect_error(&r, 400, "missing_lease");
        let r = c
            .send("POST", "/v1/metadata", &lease.headers(), r#"{"query_hidden":true}"#)
            .await;
        expect_error(&r, 400, "missing_key");

        // Committed: describe shows it; a metadata-only commit keeps the version (API.md §0.8).
        release_ok(&c, &lease, false).await;
        let d = describe(&c, &key).await;
        assert_eq!(d["metadata"], json!({"query_hidden": true}));
        assert_eq!(int(&d, "version"), 1);
        assert_eq!(
            public_get(&c, &key).await.text(),
            r#"{"m":1}"#,
            "hidden keys stay readable"
        );
        let l2 = grab(&c, &key).await;
        let v = expect_json(&update(&c, &l2, r#"{"m":2}"#).await);
        assert_eq!(
            v["metadata"],
            json!({"query_hidden": true}),
            "update reports the attribute"
        );
        release_ok(&c, &l2, true).await;
    }
    world.finish();
}
