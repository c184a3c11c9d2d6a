//! `/v1/update` (API.md §2.5) and `/v1/remove` (§2.6) through the router: staging, versions,
//! ETags and the CAS preconditions.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_stages_with_sha256_etag_size_and_version() {
    let r = router();
    let l = acquire(&r, "k").await;
    let body = r#"{"name":"x","n":[1,2,3]}"#;
    let up = r
        .update("", "k", proof(&l), json(body), None, None)
        .await
        .expect("update");
    assert_eq!(up.new_version, 1, "brand-new key: 0 + 1");
    assert_eq!(up.new_state_etag, sha256_hex(body.as_bytes()));
    assert_eq!(up.new_state_etag.len(), 64);
    assert_eq!((up.bytes, up.query_hidden), (body.len() as u64, false));
    // More updates in the same txn keep the staged version; the ETag follows the body.
    for doc in ["[]", "\"a string\"", "42", "null"] {
        let up = r
            .update("", "k", proof(&l), json(doc), None, None)
            .await
            .expect("update");
        assert_eq!((up.new_version, up.bytes), (1, doc.len() as u64));
        assert_eq!(up.new_state_etag, sha256_hex(doc.as_bytes()));
    }
    // Only the latest staged document is kept in storage.
    assert_eq!(r.backend().doc_count(), 1);
    // Committed state and the lease are untouched by staging.
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag, d.lease_id),
        (0, None, Some(l.lease_id.clone()))
    );
    assert_eq!(d.expires_at_unix, Some(l.expires_at_unix));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag),
        (1, Some(sha256_hex(b"null"))),
        "commit keeps the staged ETag"
    );
    // The next transaction stages committed + 1.
    let l = acquire(&r, "k").await;
    let up = r
        .update("", "k", proof(&l), json("{}"), None, None)
        .await
        .expect("update");
    assert_eq!(up.new_version, 2);
    // Same body, same ETag (content hash).
    assert_eq!(up.new_state_etag, sha256_hex(b"{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_if_version_is_compared_with_the_version_this_txn_sees() {
    let r = router();
    let e1 = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    for stale in [0, 2, -1] {
        let e = expect_err(
            r.update("", "k", proof(&l), json("1"), Some(stale), None).await,
            409,
            "version_conflict",
        );
        assert_eq!(e.detail, "state version mismatch");
        assert_current(&e, 1, &e1);
    }
    let up = r
        .update("", "k", proof(&l), json(r#"{"v":2}"#), Some(1), None)
        .await
        .expect("cas ok");
    assert_eq!(up.new_version, 2);
    // Now this txn sees its staged version and ETag.
    let e = expect_err(
        r.update("", "k", proof(&l), json("1"), Some(1), None).await,
        409,
        "version_conflict",
    );
    assert_current(&e, 2, &up.new_state_etag);
    let up3 = r
        .update("", "k", proof(&l), json(r#"{"v":3}"#), Some(2), None)
        .await
        .expect("cas ok");
    assert_eq!(up3.new_version, 2);
    // The conflicts staged nothing: the last successful update is what the holder reads.
    assert_eq!(lease_get(&r, "k", &l).await.map(|d| d.0).as_deref(), Some(r#"{"v":3}"#));
    // A brand-new key is at version 0.
    let n = acquire(&r, "new").await;
    let e = expect_err(
        r.update("", "new", proof(&n), json("1"), Some(1), None).await,
        409,
        "version_conflict",
    );
    assert_current(&e, 0, "");
    assert_eq!(
        r.update("", "new", proof(&n), json("1"), Some(0), None)
            .await
            .expect("v0")
            .new_version,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_if_etag_is_compared_with_quotes_trimmed() {
    let r = router();
    let e1 = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    for bad in ["nope", "", "\"\"", &e1[1..]] {
        let e = expect_err(
            r.update("", "k", proof(&l), json("1"), None, Some(bad.to_string()))
                .await,
            409,
            "etag_mismatch",
        );
        assert_eq!(e.detail, "current state etag does not match");
        assert_current(&e, 1, &e1);
    }
    // Quoted and unquoted forms of the committed ETag both match.
    let up = r
        .update("", "k", proof(&l), json("2"), None, Some(format!("\"{e1}\"")))
        .await
        .expect("quoted");
    // Now the staged ETag is the current one for this txn.
    let e = expect_err(
        r.update("", "k", proof(&l), json("3"), None, Some(e1.clone())).await,
        409,
        "etag_mismatch",
    );
    assert_current(&e, 2, &up.new_state_etag);
    r.update("", "k", proof(&l), json("3"), None, Some(up.new_state_etag.clone()))
        .await
        .expect("unquoted");
    // Both preconditions at once: If-Version is checked first.
    let e = expect_err(
        r.update("", "k", proof(&l), json("4"), Some(9), Some("bogus".into()))
            .await,
        409,
        "version_conflict",
    );
    assert_current(&e, 2, &sha256_hex(b"3"));
    // No committed state: the current ETag is empty, so only an empty (or `""`) precondition matches.
    let n = acquire(&r, "new").await;
    let e = expect_err(
        r.update("", "new", proof(&n), json("1"), None, Some("x".into())).await,
        409,
        "etag_mismatch",
    );
    assert_current(&e, 0, "");
    r.update("", "new", proof(&n), json("1"), None, Some("\"\"".into()))
        .await
        .expect("empty etag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_of_nothing_stages_nothing() {
    let r = router();
    let l = acquire(&r, "k").await;
    let rm = r.remove("", "k", proof(&l), None, None).await.expect("remove");
    assert_eq!((rm.removed, rm.new_version), (false, 0));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.state_etag), (0, None), "nothing was committed");
    // A key whose document was removed and committed at version 2.
    commit_doc(&r, "k", "1").await;
    let l = acquire(&r, "k").await;
    assert!(r.remove("", "k", proof(&l), None, None).await.expect("remove").removed);
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let l = acquire(&r, "k").await;
    let rm = r.remove("", "k", proof(&l), None, None).await.expect("remove");
    assert_eq!((rm.removed, rm.new_version), (false, 2));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    assert_eq!(r.describe("", "k").await.expect("describe").version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_stages_a_deletion_that_commit_applies() {
    let r = router();
    let backend = r.backend().clone();
    let e1 = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    let rm = r.remove("", "k", proof(&l), None, None).await.expect("remove");
    assert_eq!((rm.removed, rm.new_version), (true, 2));
    // Staged only: committed state, public read and the lease are unchanged; the holder sees 204.
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.state_etag.as_deref()), (1, Some(e1.as_str())));
    assert_eq!(
        d.lease_id.as_deref(),
        Some(l.lease_id.as_str()),
        "the lease remains held"
    );
    assert_eq!(public_get(&r, "k").await.map(|d| d.2), Some(1));
    assert_eq!(lease_get(&r, "k", &l).await, None);
    assert_eq!(backend.doc_count(), 1);
    // Commit: state deleted, ETag cleared, version = staged version.
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.state_etag, d.lease_id), (2, None, None));
    assert_eq!(public_get(&r, "k").await, None);
    assert_eq!(backend.doc_count(), 0, "the document is deleted from storage");
    let l = acquire(&r, "k").await;
    assert_eq!((l.version, l.state_etag), (2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_remove_in_a_txn_adds_one_to_the_staged_version() {
    let r = router();
    let backend = r.backend().clone();
    commit_doc(&r, "k", "1").await;
    let l = acquire(&r, "k").await;
    assert_eq!(
        r.update("", "k", proof(&l), json("2"), None, None)
            .await
            .expect("update")
            .new_version,
        2
    );
    assert_eq!(backend.doc_count(), 2);
    let rm = r.remove("", "k", proof(&l), None, None).await.expect("remove");
    assert_eq!((rm.removed, rm.new_version), (true, 3));
    assert_eq!(backend.doc_count(), 1, "the staged document is discarded");
    // The committed document still exists, so another remove stages again, one higher.
    let rm = r.remove("", "k", proof(&l), Some(3), None).await.expect("remove again");
    assert_eq!((rm.removed, rm.new_version), (true, 4));
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!((d.version, d.state_etag), (4, None));
    assert_eq!(backend.doc_count(), 0);

    // A new key: update then remove of the staged document.
    let l = acquire(&r, "new").await;
    r.update("", "new", proof(&l), json("[]"), None, None)
        .await
        .expect("update");
    let rm = r.remove("", "new", proof(&l), None, None).await.expect("remove");
    assert_eq!((rm.removed, rm.new_version), (true, 2));
    assert_eq!(lease_get(&r, "new", &l).await, None);
    assert_eq!(backend.doc_count(), 0);
    // Nothing left to remove now (no committed state, no staged document).
    let rm = r.remove("", "new", proof(&l), None, None).await.expect("remove again");
    assert_eq!((rm.removed, rm.new_version), (false, 2));
    assert!(r.release("", "new", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "new").await.expect("describe");
    assert_eq!((d.version, d.state_etag), (2, None));
    assert_eq!(public_get(&r, "new").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_enforces_if_version_and_if_etag() {
    let r = router();
    let e1 = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    // X-If-Version IS enforced (Fix policy).
    for stale in [0, 2, 5] {
        let e = expect_err(
            r.remove("", "k", proof(&l), Some(stale), None).await,
            409,
            "version_conflict",
        );
        assert_eq!(e.detail, "state version mismatch");
        assert_current(&e, 1, &e1);
    }
    for bad in ["bogus", "", "\"x\""] {
        let e = expect_err(
            r.remove("", "k", proof(&l), None, Some(bad.to_string())).await,
            409,
            "etag_mismatch",
        );
        assert_current(&e, 1, &e1);
    }
    // Refused removes staged nothing.
    assert_eq!(lease_get(&r, "k", &l).await.map(|d| d.2), Some(1));
    let rm = r
        .remove("", "k", proof(&l), Some(1), Some(format!("\"{e1}\"")))
        .await
        .expect("cas ok");
    assert_eq!((rm.removed, rm.new_version), (true, 2));
    // After the staged remove this txn sees version 2 and an empty ETag.
    let e = expect_err(
        r.remove("", "k", proof(&l), None, Some(e1.clone())).await,
        409,
        "etag_mismatch",
    );
    assert_current(&e, 2, "");
    let e = expect_err(
        r.remove("", "k", proof(&l), Some(1), None).await,
        409,
        "version_conflict",
    );
    assert_current(&e, 2, "");
    // Update after a staged remove: If-Version/If-ETag see the remove too.
    let up = r
        .update("", "k", proof(&l), json("5"), Some(2), Some(String::new()))
        .await
        .expect("cas ok");
    assert_eq!(up.new_version, 2);
}
