//! `/v1/describe` (API.md §2.7) and `/v1/metadata` (§2.8) through the router.

mod common;

use common::*;
use lockd_actors::lease::DescribeOk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_of_a_key_that_never_existed_is_version_zero_and_nothing_else() {
    let r = router();
    for (ns, key) in [("", "never"), ("other", "a/b/c"), ("", "/Never")] {
        let d = r.describe(ns, key).await.expect("describe");
        assert_eq!(d, DescribeOk::default());
        assert_eq!((d.version, d.updated_at_unix, d.query_hidden), (0, 0, false));
    }
    // Describing does not create the key.
    let (_, ok) = r
        .acquire("", "never", "o", 30, -1, true, None)
        .await
        .expect("if_not_exists");
    assert_eq!(ok.fencing_token, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_the_lease_holder_and_committed_state() {
    let r = router();
    let before = now_unix();
    let (_, l) = r.acquire("", "k", "alice", 60, -1, false, None).await.expect("acquire");
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(d.owner.as_deref(), Some("alice"));
    assert_eq!(d.lease_id.as_deref(), Some(l.lease_id.as_str()));
    assert_eq!(d.expires_at_unix, Some(l.expires_at_unix));
    assert!((before + 60..=now_unix() + 60).contains(&l.expires_at_unix));
    assert_eq!((d.version, d.state_etag.as_deref(), d.query_hidden), (0, None, false));
    assert!(
        (before..=now_unix()).contains(&d.updated_at_unix),
        "{}",
        d.updated_at_unix
    );
    let up = r
        .update("", "k", proof(&l), json(r#"{"x":true}"#), None, None)
        .await
        .expect("update");
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.owner, d.lease_id, d.expires_at_unix), (None, None, None));
    assert_eq!((d.version, d.state_etag), (1, Some(up.new_state_etag)));
    // Namespaces isolate: the same key elsewhere is untouched.
    assert_eq!(
        r.describe("elsewhere", "k").await.expect("describe"),
        DescribeOk::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_does_not_reflect_staged_changes() {
    let r = router();
    let e1 = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let committed = r.describe("", "k").await.expect("describe");
    let l = acquire(&r, "k").await;
    let check = |d: DescribeOk| {
        assert_eq!(
            (d.version, d.state_etag.as_deref(), d.query_hidden),
            (1, Some(e1.as_str()), false)
        );
        assert_eq!(d.lease_id.as_deref(), Some(l.lease_id.as_str()));
    };
    r.update("", "k", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("update");
    check(r.describe("", "k").await.expect("describe"));
    r.metadata("", "k", proof(&l), None, true).await.expect("metadata");
    check(r.describe("", "k").await.expect("describe"));
    r.remove("", "k", proof(&l), None, None).await.expect("remove");
    check(r.describe("", "k").await.expect("describe"));
    assert!(r.release("", "k", proof(&l), true).await.expect("rollback"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag, d.query_hidden),
        (1, committed.state_etag, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_stages_query_hidden_and_commit_applies_it_without_a_version_bump() {
    let r = router();
    let e1 = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    let m = r.metadata("", "k", proof(&l), None, true).await.expect("metadata");
    assert_eq!((m.version, m.query_hidden), (2, true), "staged version = committed + 1");
    // Staging again keeps the staged version.
    let m = r
        .metadata("", "k", proof(&l), Some(2), true)
        .await
        .expect("metadata again");
    assert_eq!((m.version, m.query_hidden), (2, true));
    assert!(
        !r.describe("", "k").await.expect("describe").query_hidden,
        "not before the commit"
    );
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert!(d.query_hidden, "effective after commit");
    // Kept quirk: a metadata-only commit leaves the version (and the document) alone.
    assert_eq!((d.version, d.state_etag.as_deref()), (1, Some(e1.as_str())));
    // Hidden keys stay readable, publicly and under a lease.
    assert_eq!(
        public_get(&r, "k").await,
        Some((r#"{"v":1}"#.to_string(), e1.clone(), 1))
    );
    let l = acquire(&r, "k").await;
    assert_eq!(l.version, 1);
    assert_eq!(lease_get(&r, "k", &l).await.map(|d| d.2), Some(1));
    // Unhide.
    let m = r.metadata("", "k", proof(&l), Some(1), false).await.expect("unhide");
    assert_eq!((m.version, m.query_hidden), (2, false));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.query_hidden), (1, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_on_a_key_without_state() {
    let r = router();
    let l = acquire(&r, "k").await;
    let m = r.metadata("", "k", proof(&l), Some(0), true).await.expect("metadata");
    assert_eq!((m.version, m.query_hidden), (1, true));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.state_etag, d.query_hidden), (0, None, true));
    assert_eq!(public_get(&r, "k").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_if_version_conflicts() {
    let r = router();
    let e1 = commit_doc(&r, "k", "[1]").await;
    let l = acquire(&r, "k").await;
    for stale in [0, 2, 7] {
        let e = expect_err(
            r.metadata("", "k", proof(&l), Some(stale), true).await,
            409,
            "version_conflict",
        );
        assert_eq!(e.detail, "state version mismatch");
        assert_current(&e, 1, &e1);
    }
    assert_eq!(
        r.metadata("", "k", proof(&l), Some(1), true).await.expect("ok").version,
        2
    );
    // Now this txn sees its staged version (the document is unchanged, so the committed ETag).
    let e = expect_err(
        r.metadata("", "k", proof(&l), Some(1), false).await,
        409,
        "version_conflict",
    );
    assert_current(&e, 2, &e1);
    // With a staged document the ETag is the staged one.
    let up = r
        .update("", "k", proof(&l), json("[2]"), Some(2), None)
        .await
        .expect("update");
    let e = expect_err(
        r.metadata("", "k", proof(&l), Some(1), false).await,
        409,
        "version_conflict",
    );
    assert_current(&e, 2, &up.new_state_etag);
    // The refusals staged nothing: still hidden when committed.
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.query_hidden), (2, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_update_share_the_staged_version_and_attribute() {
    let r = router();
    let e1 = commit_doc(&r, "k", "1").await;
    // Metadata first, then update: same staged version; update reports the staged attribute.
    let l = acquire(&r, "k").await;
    assert_eq!(
        r.metadata("", "k", proof(&l), None, true)
            .await
            .expect("metadata")
            .version,
        2
    );
    let up = r
        .update("", "k", proof(&l), json("2"), Some(2), None)
        .await
        .expect("update");
    assert_eq!((up.new_version, up.query_hidden), (2, true));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.query_hidden),
        (2, true),
        "document changed: version bumps"
    );
    assert_ne!(d.state_etag.as_deref(), Some(e1.as_str()));
    // Committed hidden: update reports it even without staging the attribute.
    let l = acquire(&r, "k").await;
    let up = r
        .update("", "k", proof(&l), json("3"), None, None)
        .await
        .expect("update");
    assert_eq!((up.new_version, up.query_hidden), (3, true));
    // Update first, then metadata: same staged version, and update reports the staged value.
    let m = r.metadata("", "k", proof(&l), Some(3), false).await.expect("metadata");
    assert_eq!((m.version, m.query_hidden), (3, false));
    let up = r
        .update("", "k", proof(&l), json("4"), Some(3), None)
        .await
        .expect("update");
    assert_eq!((up.new_version, up.query_hidden), (3, false));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.query_hidden), (3, false));
    assert_eq!(
        public_get(&r, "k").await.map(|d| (d.0, d.2)),
        Some(("4".to_string(), 3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_discards_staged_metadata() {
    let r = router();
    let l = acquire(&r, "k").await;
    r.metadata("", "k", proof(&l), None, true).await.expect("metadata");
    assert!(r.release("", "k", proof(&l), true).await.expect("rollback"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.query_hidden), (0, false));
    // And the next txn starts from the committed attribute again.
    let l = acquire(&r, "k").await;
    let up = r
        .update("", "k", proof(&l), json("{}"), None, None)
        .await
        .expect("update");
    assert_eq!((up.new_version, up.query_hidden), (1, false));
}
