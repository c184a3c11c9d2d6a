//! Explicit transactions across a crash on `disk://`: a decision that was
//! made durable before the crash reaches every participant afterwards,
//! whether the fan-out had started or not, and an undecided transaction
//! carries on where it was.

mod txn_common;

use std::time::Duration;

use bytes::Bytes;
use lockd_actors::txn::{store_decision, Decision};
use lockd_actors::DiskBackend;
use lockd_actors::Router;
use txn_common::*;

/// Three participants of `txn` on disk, each staging a different kind of
/// change: a new document ("fresh"), a remove of a committed one ("gone")
/// and an attribute only ("attr"). Returns their leases in that order.
async fn three_participants(r: &Router<DiskBackend>, txn: &str) -> Vec<lockd_actors::lease::AcquireOk> {
    commit_doc(r, "gone", r#"{"g":0}"#).await;
    commit_doc(r, "attr", r#"{"a":0}"#).await;
    let fresh = join(r, "fresh", txn).await;
    let gone = join(r, "gone", txn).await;
    let attr = join(r, "attr", txn).await;
    stage(r, "fresh", &fresh, r#"{"f":1}"#).await;
    let rm = r.remove("", "gone", proof(&gone), None, None).await.expect("remove");
    assert!(rm.removed);
    r.metadata("", "attr", proof(&attr), None, true)
        .await
        .expect("metadata");
    vec![fresh, gone, attr]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_made_durable_before_a_crash_reaches_every_participant_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = disk(dir.path());
    let txn = new_txn();
    let leases = three_participants(&r, &txn).await;
    // The router's first step of a release, and then the crash before any
    // participant heard of it.
    store_decision(&**r.backend(), &txn, Decision::Commit)
        .await
        .expect("store");
    let copy = crash(r, dir.path());

    let r = disk(copy.path());
    assert_eq!(r.sweep().await.expect("sweep"), 3, "three stored leases to wake");
    assert_eq!(public(&r, "fresh").await.as_deref(), Some(r#"{"f":1}"#));
    assert_eq!(public(&r, "gone").await, None, "staged remove committed");
    assert_eq!(public(&r, "attr").await.as_deref(), Some(r#"{"a":0}"#));
    assert_eq!(described(&r, "fresh").await, (None, 1));
    assert_eq!(described(&r, "gone").await, (None, 2));
    let attr = r.describe("", "attr").await.expect("describe");
    assert_eq!((attr.lease_id, attr.version, attr.query_hidden), (None, 1, true));
    assert_eq!(disk_docs(&r), 2, "the removed document was deleted");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(r.resident_actors(), 0, "settled keys leave no actor behind");

    // The holders' own releases come too late and change nothing.
    for (key, l) in ["fresh", "gone", "attr"].into_iter().zip(&leases) {
        release(&r, key, l, true).await;
    }
    assert_eq!(public(&r, "fresh").await.as_deref(), Some(r#"{"f":1}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_made_durable_before_a_crash_is_applied_when_a_key_is_next_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = disk(dir.path());
    let txn = new_txn();
    let leases = three_participants(&r, &txn).await;
    store_decision(&**r.backend(), &txn, Decision::Rollback)
        .await
        .expect("store");
    let copy = crash(r, dir.path());

    // No sweep: each key settles itself on its first request.
    let r = disk(copy.path());
    let err = r
        .update("", "fresh", proof(&leases[0]), Bytes::from_static(b"{}"), None, None)
        .await
        .expect_err("decided");
    assert_eq!(err.code, "lease_required", "the decision cleared the lease");
    assert_eq!(public(&r, "fresh").await, None);
    assert_eq!(
        public(&r, "gone").await.as_deref(),
        Some(r#"{"g":0}"#),
        "remove discarded"
    );
    let attr = r.describe("", "attr").await.expect("describe");
    assert_eq!((attr.lease_id, attr.version, attr.query_hidden), (None, 1, false));
    let next = grab(&r, "gone", 30).await;
    assert!(next.fencing_token > leases[1].fencing_token);
    assert_eq!(disk_docs(&r), 2, "only the committed documents remain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_transaction_survives_a_crash_and_is_decided_as_a_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = disk(dir.path());
    let txn = new_txn();
    let leases = three_participants(&r, &txn).await;
    let copy = crash(r, dir.path());

    let r = disk(copy.path());
    assert_eq!(r.sweep().await.expect("sweep"), 3);
    // Nothing decided: the holders still see their staging.
    let mine = r
        .get("", "fresh", Some(proof(&leases[0])))
        .await
        .expect("lease get")
        .expect("staged");
    assert_eq!(&mine.body[..], br#"{"f":1}"#);
    assert_eq!(public(&r, "gone").await.as_deref(), Some(r#"{"g":0}"#));
    // The sweep re-listed the participants, so one release decides all.
    release(&r, "attr", &leases[2], false).await;
    assert_eq!(public(&r, "fresh").await.as_deref(), Some(r#"{"f":1}"#));
    assert_eq!(public(&r, "gone").await, None);
    assert_eq!(described(&r, "fresh").await.0, None);
    assert_eq!(described(&r, "gone").await, (None, 2));
}
