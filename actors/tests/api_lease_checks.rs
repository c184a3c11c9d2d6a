//! The lease validation order of API.md §0.8 for every lease-guarded operation, lazy expiry
//! (staging discarded), and the namespace/key validation of the non-acquire operations.

mod common;

use std::time::Duration;

use common::*;
use lockd_actors::lease::LeaseProof;
use lockd_actors::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keepalive,
    Update,
    Remove,
    Metadata,
    Get,
}

const ALL: [Op; 5] = [Op::Keepalive, Op::Update, Op::Remove, Op::Metadata, Op::Get];

async fn run(r: &Rt, key: &str, op: Op, p: LeaseProof) -> Result<(), ApiError> {
    match op {
        Op::Keepalive => r.keepalive("", key, p, 30).await.map(|_| ()),
        Op::Update => r.update("", key, p, json(r#"{"x":1}"#), None, None).await.map(|_| ()),
        Op::Remove => r.remove("", key, p, None, None).await.map(|_| ()),
        Op::Metadata => r.metadata("", key, p, None, true).await.map(|_| ()),
        Op::Get => r.get("", key, Some(p)).await.map(|_| ()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_in_the_documented_order_for_every_guarded_op() {
    let r = router();
    let committed = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let l = acquire(&r, "k").await;
    assert_eq!(l.fencing_token, 2);
    // Staged data must not leak into the errors: they carry the committed version and ETag.
    let staged = r
        .update("", "k", proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    assert_eq!(staged.new_version, 2);
    let (id, tok, txn) = (l.lease_id.as_str(), l.fencing_token, l.txn_id.as_str());
    let other_txn = xid();
    for op in ALL {
        // 1. Wrong lease id wins over everything else being wrong too.
        let e = expect_err(
            run(&r, "k", op, proof_of(&xid(), 99, None)).await,
            403,
            "lease_required",
        );
        assert_eq!(e.detail, "active lease required", "{op:?}");
        assert_current(&e, 1, &committed);
        // 3. Fencing: a newer and a stale token, with the txn missing as well.
        for bad in [tok + 1, tok - 1] {
            let e = expect_err(run(&r, "k", op, proof_of(id, bad, None)).await, 403, "fencing_mismatch");
            assert_eq!(e.detail, "fencing token mismatch", "{op:?}");
            assert_current(&e, 1, &committed);
        }
        if op == Op::Get {
            // Reads use the lease's own txn: none or a wrong one is fine.
            run(&r, "k", op, proof_of(id, tok, None))
                .await
                .expect("lease read without txn");
            run(&r, "k", op, proof_of(id, tok, Some(&other_txn)))
                .await
                .expect("lease read, other txn");
            continue;
        }
        // 4. Missing (or blank) txn.
        for missing in [None, Some("")] {
            let e = expect_err(run(&r, "k", op, proof_of(id, tok, missing)).await, 400, "missing_txn");
            assert_eq!(e.detail, "transaction id required", "{op:?}");
            assert_current(&e, 1, &committed);
        }
        // 5. Wrong txn.
        let e = expect_err(
            run(&r, "k", op, proof_of(id, tok, Some(&other_txn))).await,
            409,
            "txn_mismatch",
        );
        assert_current(&e, 1, &committed);
    }
    // None of the refusals touched the lease or the staged document.
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(
        (d.lease_id.as_deref(), d.expires_at_unix),
        (Some(id), Some(l.expires_at_unix))
    );
    assert_eq!((d.version, d.query_hidden), (1, false));
    let doc = lease_get(&r, "k", &l).await.expect("staged doc");
    assert_eq!(doc, (r#"{"v":2}"#.to_string(), staged.new_state_etag, 2, Some(2)));
    run(&r, "k", Op::Keepalive, proof_of(id, tok, Some(txn)))
        .await
        .expect("the real proof still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_ops_without_a_lease_answer_lease_required() {
    let r = router();
    let committed = commit_doc(&r, "k", "[1,2]").await;
    let released = acquire(&r, "released").await;
    assert!(r
        .release("", "released", proof(&released), false)
        .await
        .expect("release"));
    for op in ALL {
        // A key that never existed.
        let e = expect_err(
            run(&r, "never", op, proof_of(&xid(), 1, Some(&xid()))).await,
            403,
            "lease_required",
        );
        assert_current(&e, 0, "");
        // A key with committed state and no lease.
        let e = expect_err(
            run(&r, "k", op, proof_of(&xid(), 1, Some(&xid()))).await,
            403,
            "lease_required",
        );
        assert_current(&e, 1, &committed);
        // The exact proof of a lease that was released.
        let e = expect_err(run(&r, "released", op, proof(&released)).await, 403, "lease_required");
        assert_current(&e, 0, "");
    }
    // A stale holder whose key was re-acquired by someone else is refused by lease id.
    let a = acquire(&r, "k").await;
    assert!(r.release("", "k", proof(&a), false).await.expect("release"));
    let b = acquire(&r, "k").await;
    for op in ALL {
        let e = expect_err(run(&r, "k", op, proof(&a)).await, 403, "lease_required");
        assert_current(&e, 1, &committed);
    }
    assert_eq!(r.describe("", "k").await.expect("describe").lease_id, Some(b.lease_id));
    assert_eq!(r.describe("", "never").await.expect("describe"), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_acquire_ops_validate_namespace_and_key() {
    let r = router();
    let l = acquire(&r, "k").await;
    let p = || proof(&l);
    let bad_keys = ["", "  ", "a//b", "a b", "x/"];
    for key in bad_keys {
        expect_err(r.keepalive("", key, p(), 30).await, 400, "invalid_key");
        expect_err(r.release("", key, p(), false).await, 400, "invalid_key");
        expect_err(r.get("", key, None).await, 400, "invalid_key");
        expect_err(r.get("", key, Some(p())).await, 400, "invalid_key");
        expect_err(r.update("", key, p(), json("1"), None, None).await, 400, "invalid_key");
        expect_err(r.remove("", key, p(), None, None).await, 400, "invalid_key");
        expect_err(r.describe("", key).await, 400, "invalid_key");
        expect_err(r.metadata("", key, p(), None, true).await, 400, "invalid_key");
    }
    for ns in [".txns", "bad ns", "a/b"] {
        expect_err(r.keepalive(ns, "k", p(), 30).await, 400, "invalid_namespace");
        expect_err(r.release(ns, "k", p(), false).await, 400, "invalid_namespace");
        expect_err(r.get(ns, "k", None).await, 400, "invalid_namespace");
        expect_err(
            r.update(ns, "k", p(), json("1"), None, None).await,
            400,
            "invalid_namespace",
        );
        expect_err(r.remove(ns, "k", p(), None, None).await, 400, "invalid_namespace");
        expect_err(r.describe(ns, "k").await, 400, "invalid_namespace");
        expect_err(r.metadata(ns, "k", p(), None, true).await, 400, "invalid_namespace");
    }
    // Namespace and key are normalised the same way as on acquire (minus the prefix strip).
    r.keepalive(" DEFAULT ", "/K", p(), 30)
        .await
        .expect("normalised keepalive");
    r.update("Default", "K", p(), json("1"), None, None)
        .await
        .expect("normalised update");
    assert!(lease_get(&r, "k", &l).await.is_some());
    assert!(r.release("default", "/k", p(), false).await.expect("release"));
    assert_eq!(public_get(&r, "k").await.map(|d| d.0).as_deref(), Some("1"));
}

/// Acquires `key` with a 2 s lease (1–2 s of real lifetime, so staging right after the grant
/// cannot race the expiry) and stages `{"v":2}` over a committed `{"v":1}`.
async fn doomed(r: &Rt, key: &str) -> (lockd_actors::lease::AcquireOk, String) {
    let committed = commit_doc(r, key, r#"{"v":1}"#).await;
    let l = acquire_ttl(r, key, 2).await;
    r.update("", key, proof(&l), json(r#"{"v":2}"#), None, None)
        .await
        .expect("stage");
    r.metadata("", key, proof(&l), None, true)
        .await
        .expect("stage metadata");
    (l, committed)
}

/// After expiry the staged work is gone, the committed state is intact and the key can be
/// acquired again with the next fencing token.
async fn assert_expired_and_rolled_back(r: &Rt, key: &str, l: &lockd_actors::lease::AcquireOk, committed: &str) {
    assert_eq!(
        public_get(r, key).await,
        Some((r#"{"v":1}"#.to_string(), committed.to_string(), 1))
    );
    let d = r.describe("", key).await.expect("describe");
    assert_eq!(
        (d.version, d.state_etag.as_deref(), d.query_hidden),
        (1, Some(committed), false)
    );
    assert_eq!(d.lease_id, None, "expired lease is cleared");
    let next = acquire(r, key).await;
    assert_eq!((next.fencing_token, next.version), (l.fencing_token + 1, 1));
    assert_eq!(
        lease_get(r, key, &next).await,
        Some((
            r#"{"v":1}"#.to_string(),
            committed.to_string(),
            1,
            Some(next.fencing_token)
        )),
        "the new holder must not see the expired lease's staging"
    );
    assert!(r.release("", key, proof(&next), false).await.expect("release"));
    assert_eq!(
        r.describe("", key).await.expect("describe").version,
        1,
        "nothing left to commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_are_refused_and_their_staging_discarded() {
    let r = router();
    let keys = ["ka", "ku", "kr", "km", "kg", "kr2", "kacq"];
    let mut leases = Vec::new();
    for key in keys {
        leases.push(doomed(&r, key).await);
    }
    // A keepalive right away keeps that lease (and its staging) past the original expiry.
    let (kept, _) = doomed(&r, "kkeep").await;
    r.keepalive("", "kkeep", proof(&kept), 30).await.expect("keepalive");
    // A waiter parked on the last key is handed the lease once it expires.
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move { r.acquire("", "kacq", "w", 30, 10, false, None).await })
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let p = |i: usize| proof(&leases[i].0);
    let (ka, ku, kr, km, kg, rel) = tokio::join!(
        r.keepalive("", "ka", p(0), 30),
        r.update("", "ku", p(1), json("3"), None, None),
        r.remove("", "kr", p(2), None, None),
        r.metadata("", "km", p(3), None, false),
        r.get("", "kg", Some(p(4))),
        r.release("", "kr2", p(5), false),
    );
    for (key, e) in [
        ("ka", ka.map(|_| ())),
        ("ku", ku.map(|_| ())),
        ("kr", kr.map(|_| ())),
        ("km", km.map(|_| ())),
        ("kg", kg.map(|_| ())),
    ] {
        let e = e.expect_err(key);
        assert_eq!(e.status, 403, "{key}: {e:?}");
        // §0.8 check 2: the holder of an expired lease is told so; that
        // request clears the lease, so the next one is `lease_required`.
        assert_eq!(e.code, "lease_expired", "{key}: {e:?}");
        let committed = &leases[keys.iter().position(|k| *k == key).expect("key")].1;
        assert_current(&e, 1, committed);
    }
    assert!(rel.expect("release of an expired lease succeeds"), "released:true");
    let again = r
        .keepalive("", "ka", p(0), 30)
        .await
        .expect_err("cleared by the first refusal");
    assert_eq!(again.code, "lease_required");
    let (_, got) = waiter.await.expect("join").expect("the waiter gets the expired lease");
    assert_eq!((got.owner.as_str(), got.fencing_token, got.version), ("w", 3, 1));
    assert_eq!(
        lease_get(&r, "kacq", &got).await.map(|d| d.0).as_deref(),
        Some(r#"{"v":1}"#),
        "the waiter must not see the expired lease's staging"
    );
    let up = r
        .update("", "kkeep", proof(&kept), json("4"), None, None)
        .await
        .expect("kept alive");
    assert_eq!(up.new_version, 2, "still the same transaction");
    assert_eq!(
        lease_get(&r, "kkeep", &kept).await.map(|d| (d.0, d.3)),
        Some(("4".to_string(), Some(2)))
    );
    assert_eq!(
        r.describe("", "kkeep").await.expect("describe").lease_id,
        Some(kept.lease_id.clone())
    );
    for (i, key) in keys.iter().enumerate().take(6) {
        assert_expired_and_rolled_back(&r, key, &leases[i].0, &leases[i].1).await;
    }
}
