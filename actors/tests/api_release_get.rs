//! `/v1/release` (API.md §2.3) and `/v1/get` (§2.4) through the router.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_idempotent_for_unknown_stale_or_missing_leases() {
    let r = router();
    // A key that never existed: released, and nothing is created.
    assert!(r
        .release("", "never", proof_of(&xid(), 1, Some(&xid())), false)
        .await
        .expect("release"));
    assert!(r
        .release("", "never", proof_of(&xid(), 0, None), true)
        .await
        .expect("release"));
    assert_eq!(r.describe("", "never").await.expect("describe"), Default::default());
    let (_, l) = r
        .acquire("", "never", "o", 30, -1, true, None)
        .await
        .expect("if_not_exists still works");
    assert_eq!(l.fencing_token, 1);

    let committed = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    let staged = r
        .update("", "k", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    // Unknown lease id and wrong fencing token (even with a wrong txn): 200, nothing changes.
    let bogus = [
        proof_of(&xid(), l.fencing_token, Some(&l.txn_id)),
        proof_of(&xid(), 7, Some(&xid())),
        proof_of(&l.lease_id, l.fencing_token + 1, Some(&l.txn_id)),
        proof_of(&l.lease_id, l.fencing_token - 1, Some(&xid())),
        proof_of(&l.lease_id, 0, None),
    ];
    for p in bogus {
        for rollback in [false, true] {
            assert!(r
                .release("", "k", p.clone(), rollback)
                .await
                .expect("idempotent release"));
        }
    }
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        d.lease_id.as_deref(),
        Some(l.lease_id.as_str()),
        "the lease is still held"
    );
    assert_eq!((d.version, d.state_etag.as_deref()), (1, Some(committed.as_str())));
    expect_err(r.acquire("", "k", "o", 30, -1, false, None).await, 409, "waiting");
    let mine = lease_get(&r, "k", &l).await.expect("staging intact");
    assert_eq!((mine.1, mine.2), (staged.new_state_etag.clone(), 2));

    // The real release commits; releasing again is still a success and changes nothing.
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    assert!(r.release("", "k", proof(&l), false).await.expect("second release"));
    assert!(r
        .release("", "k", proof(&l), true)
        .await
        .expect("third release, rollback"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag, d.lease_id),
        (2, Some(staged.new_state_etag), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_with_another_txn_is_txn_mismatch_and_keeps_everything() {
    let r = router();
    let committed = commit_doc(&r, "k", "[1]").await;
    let l = acquire(&r, "k").await;
    r.update("", "k", proof(&l), json("[2]"), None, None)
        .await
        .expect("stage");
    for rollback in [false, true] {
        let e = expect_err(
            r.release("", "k", proof_of(&l.lease_id, l.fencing_token, Some(&xid())), rollback)
                .await,
            409,
            "txn_mismatch",
        );
        assert_current(&e, 1, &committed);
    }
    assert_eq!(
        r.describe("", "k").await.expect("describe").lease_id.as_deref(),
        Some(l.lease_id.as_str())
    );
    assert_eq!(public_get(&r, "k").await.map(|d| d.0).as_deref(), Some("[1]"));
    assert_eq!(lease_get(&r, "k", &l).await.map(|d| d.0).as_deref(), Some("[2]"));
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    assert_eq!(
        public_get(&r, "k").await.map(|d| (d.0, d.2)),
        Some(("[2]".to_string(), 2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_promotes_the_staged_document() {
    let r = router();
    let backend = r.backend().clone();
    let before = now_unix();
    let l = acquire(&r, "k").await;
    let up = r
        .update("", "k", proof(&l), json(r#"{"a":1}"#), None, None)
        .await
        .expect("update");
    assert_eq!(public_get(&r, "k").await, None, "not published before the commit");
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag.as_deref()),
        (1, Some(up.new_state_etag.as_str()))
    );
    assert_eq!((d.owner, d.lease_id, d.expires_at_unix), (None, None, None));
    assert!(
        (before..=now_unix()).contains(&d.updated_at_unix),
        "{}",
        d.updated_at_unix
    );
    // Published: the public read shows it with the committed version and the same ETag.
    let want = (r#"{"a":1}"#.to_string(), up.new_state_etag.clone(), 1);
    assert_eq!(public_get(&r, "k").await, Some(want));

    // A second transaction: version 2, and the replaced document is gone from storage.
    let l = acquire(&r, "k").await;
    assert_eq!(
        (l.version, l.state_etag.as_deref()),
        (1, Some(up.new_state_etag.as_str()))
    );
    let up2 = r
        .update("", "k", proof(&l), json(r#"{"a":2}"#), None, None)
        .await
        .expect("update");
    assert_eq!(backend.doc_count(), 2, "committed + staged");
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    assert_eq!(backend.doc_count(), 1, "the replaced document is deleted");
    let want = (r#"{"a":2}"#.to_string(), up2.new_state_etag.clone(), 2);
    assert_eq!(public_get(&r, "k").await, Some(want));
    assert_eq!(r.describe("", "k").await.expect("describe").version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_discards_the_staged_document() {
    let r = router();
    let backend = r.backend().clone();
    let committed = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    r.update("", "k", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    r.metadata("", "k", proof(&l), None, true)
        .await
        .expect("stage metadata");
    assert_eq!(backend.doc_count(), 2);
    assert!(r.release("", "k", proof(&l), true).await.expect("rollback"));
    assert_eq!(backend.doc_count(), 1, "the staged document is deleted");
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag.as_deref(), d.query_hidden),
        (1, Some(committed.as_str()), false)
    );
    assert_eq!(d.lease_id, None);
    assert_eq!(
        public_get(&r, "k").await,
        Some((r#"{"v":1}"#.to_string(), committed.clone(), 1))
    );
    // A staged remove rolled back leaves the document too.
    let l = acquire(&r, "k").await;
    assert!(r.remove("", "k", proof(&l), None, None).await.expect("remove").removed);
    assert!(r.release("", "k", proof(&l), true).await.expect("rollback"));
    assert_eq!(
        public_get(&r, "k").await,
        Some((r#"{"v":1}"#.to_string(), committed, 1))
    );
    assert_eq!(r.describe("", "k").await.expect("describe").version, 1);
    // Rolling back the first transaction of a new key leaves version 0 and no state.
    let l = acquire(&r, "fresh").await;
    r.update("", "fresh", proof(&l), json("0"), None, None)
        .await
        .expect("stage");
    assert!(r.release("", "fresh", proof(&l), true).await.expect("rollback"));
    assert_eq!(public_get(&r, "fresh").await, None);
    let d = r.describe("", "fresh").await.expect("describe");
    assert_eq!((d.version, d.state_etag), (0, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_without_staging_just_frees_the_lease() {
    let r = router();
    for (i, rollback) in [false, true].into_iter().enumerate() {
        let l = acquire(&r, "k").await;
        assert_eq!(l.fencing_token, i as i64 + 1);
        assert!(r.release("", "k", proof(&l), rollback).await.expect("release"));
        let d = r.describe("", "k").await.expect("describe");
        assert_eq!((d.version, d.state_etag, d.lease_id), (0, None, None));
    }
    let committed = commit_doc(&r, "k", "\"s\"").await;
    let l = acquire(&r, "k").await;
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag.as_deref()),
        (1, Some(committed.as_str())),
        "no version bump"
    );
    assert_eq!(acquire(&r, "k").await.fencing_token, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_get_of_a_key_without_committed_state_is_none() {
    let r = router();
    assert_eq!(public_get(&r, "never").await, None);
    assert_eq!(
        r.describe("", "never").await.expect("describe"),
        Default::default(),
        "reads create nothing"
    );
    let l = acquire(&r, "k").await;
    assert_eq!(public_get(&r, "k").await, None, "leased, no state");
    assert_eq!(lease_get(&r, "k", &l).await, None, "lease read, no state");
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    assert_eq!(public_get(&r, "k").await, None);
    // Removed and committed.
    commit_doc(&r, "k", "{}").await;
    assert!(public_get(&r, "k").await.is_some());
    let l = acquire(&r, "k").await;
    r.remove("", "k", proof(&l), None, None).await.expect("remove");
    assert!(r.release("", "k", proof(&l), false).await.expect("commit"));
    assert_eq!(public_get(&r, "k").await, None);
    // Case and namespace: same key in another spelling, other namespace is empty.
    commit_doc(&r, "k", "{}").await;
    assert!(public_get(&r, "/K").await.is_some());
    assert_eq!(r.get("other", "k", None).await.expect("other ns"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_get_never_shows_staged_changes() {
    let r = router();
    let committed = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let want = Some((r#"{"v":1}"#.to_string(), committed.clone(), 1));
    let l = acquire(&r, "k").await;
    r.update("", "k", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    assert_eq!(public_get(&r, "k").await, want, "staged document hidden (Fix policy)");
    r.remove("", "k", proof(&l), None, None).await.expect("stage remove");
    assert_eq!(public_get(&r, "k").await, want, "staged remove hidden (Fix policy)");
    r.metadata("", "k", proof(&l), None, true)
        .await
        .expect("stage metadata");
    assert_eq!(public_get(&r, "k").await, want);
    // A new key whose only state is staged: nothing to read publicly.
    let n = acquire(&r, "new").await;
    r.update("", "new", proof(&n), json("[]"), None, None)
        .await
        .expect("stage");
    assert_eq!(public_get(&r, "new").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_get_reads_its_own_staged_state() {
    let r = router();
    let committed = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    assert_eq!(l.fencing_token, 2);
    // Nothing staged yet: committed document, committed version, the lease's token.
    let want = (r#"{"v":1}"#.to_string(), committed.clone(), 1, Some(2));
    assert_eq!(lease_get(&r, "k", &l).await, Some(want));
    // Staged document: read-your-writes with the staged ETag and version.
    let up = r
        .update("", "k", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    assert_eq!(up.new_state_etag, sha256_hex(br#"{"v":2}"#));
    let want = (r#"{"v":2}"#.to_string(), up.new_state_etag.clone(), 2, Some(2));
    assert_eq!(lease_get(&r, "k", &l).await, Some(want));
    // A lease read needs no txn id (the lease's own txn is used).
    let no_txn = r.get("", "k", Some(proof_of(&l.lease_id, 2, None))).await.expect("get");
    assert_eq!(no_txn.map(|d| d.version), Some(2));
    // Staged remove: the holder sees nothing.
    assert!(r.remove("", "k", proof(&l), None, None).await.expect("remove").removed);
    assert_eq!(lease_get(&r, "k", &l).await, None);
    // Stage a document again after the remove: visible again, version stays.
    let up = r
        .update("", "k", proof(&l), json(r#"{"v":4}"#), None, None)
        .await
        .expect("stage");
    assert_eq!(
        up.new_version, 3,
        "1 committed, +1 first mutation, +1 remove, update keeps it"
    );
    let want = (r#"{"v":4}"#.to_string(), up.new_state_etag, 3, Some(2));
    assert_eq!(lease_get(&r, "k", &l).await, Some(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_of_idle_keys_spawn_no_actor() {
    let r = router();
    let etag = commit_doc(&r, "idle", r#"{"v":1}"#).await;
    // The committing actor retires just after answering.
    for _ in 0..100 {
        if r.resident_actors() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(r.resident_actors(), 0);
    let got = public_get(&r, "idle").await.expect("committed state");
    assert_eq!(
        (got.0.as_str(), got.1.as_str(), got.2),
        (r#"{"v":1}"#, etag.as_str(), 1)
    );
    assert_eq!(public_get(&r, "never-written").await, None);
    assert_eq!(r.resident_actors(), 0, "reads of idle keys go straight to the backend");

    // A held key with staged changes still answers with committed state only.
    let l = acquire(&r, "idle").await;
    r.update("", "idle", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    let got = public_get(&r, "idle").await.expect("committed state");
    assert_eq!((got.0.as_str(), got.2), (r#"{"v":1}"#, 1));
    assert!(r.release("", "idle", proof(&l), false).await.expect("release"));
    let got = public_get(&r, "idle").await.expect("new state");
    assert_eq!((got.0.as_str(), got.2), (r#"{"v":2}"#, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_racing_commits_see_whole_documents() {
    let r = router();
    commit_doc(&r, "race", r#"{"n":0}"#).await;
    let writer = {
        let r = r.clone();
        tokio::spawn(async move {
            for n in 1..=200 {
                let l = acquire(&r, "race").await;
                let doc = bytes::Bytes::from(format!(r#"{{"n":{n}}}"#));
                r.update("", "race", proof(&l), doc, None, None).await.expect("stage");
                assert!(r.release("", "race", proof(&l), false).await.expect("commit"));
            }
        })
    };
    let mut last = -1i64;
    while !writer.is_finished() {
        // Every read is some committed document (never an error, never a
        // missing body), and reads never go back in time.
        let (body, _, version) = public_get(&r, "race").await.expect("committed state");
        assert!(version >= last, "version went from {last} to {version}");
        assert_eq!(body, format!(r#"{{"n":{}}}"#, version - 1));
        last = version;
    }
    writer.await.expect("writer");
}
