//! Explicit transactions decided by one release (API.md §2.3, §6.4): the
//! decision covers every participant, the first decision wins, and
//! implicit transactions are untouched.

mod txn_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lockd_actors::txn::{recorded_decision, store_decision, Decision, DECISIONS_NAMESPACE};
use lockd_actors::{Backend, BackendError, LeaseConfig, MemBackend, MetaRecord, Rev, Router, WriteSet};
use txn_common::*;

/// Three participants stage; releasing one commits all three, clears every
/// lease (handing a waiting key to its waiter), and the late releases of
/// the others — even asking for a rollback — change nothing.
async fn commit_fans_out<B: Backend>(r: Router<B>) {
    commit_doc(&r, "c", r#"{"c":"old"}"#).await;
    let txn = new_txn();
    let a = join(&r, "a", &txn).await;
    let b = join(&r, "b", &txn).await;
    let c = join(&r, "c", &txn).await;
    stage(&r, "a", &a, r#"{"a":1}"#).await;
    stage(&r, "b", &b, r#"{"b":1}"#).await;
    stage(&r, "c", &c, r#"{"c":"new"}"#).await;
    assert_eq!(public(&r, "a").await, None, "staged data stays private");
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move { r.acquire("", "b", "next", 30, 10, false, None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;

    release(&r, "a", &a, false).await;
    for (key, body, version) in [
        ("a", r#"{"a":1}"#, 1),
        ("b", r#"{"b":1}"#, 1),
        ("c", r#"{"c":"new"}"#, 2),
    ] {
        assert_eq!(public(&r, key).await.as_deref(), Some(body), "{key} committed");
        assert_eq!(described(&r, key).await.1, version, "{key} version");
    }
    assert_eq!(described(&r, "a").await.0, None);
    assert_eq!(described(&r, "c").await.0, None, "participant lease cleared");
    let (_, next) = waiter
        .await
        .expect("join")
        .expect("the waiter gets b once the decision frees it");
    assert_eq!(next.fencing_token, b.fencing_token + 1);
    assert_eq!(described(&r, "b").await.0.as_deref(), Some(next.lease_id.as_str()));

    // The other holders learn their leases are gone.
    let late = r
        .update("", "c", proof(&c), Bytes::from_static(b"{}"), None, None)
        .await;
    assert_eq!(late.expect_err("lease gone").code, "lease_required");
    release(&r, "b", &b, true).await;
    release(&r, "c", &c, true).await;
    assert_eq!(
        public(&r, "c").await.as_deref(),
        Some(r#"{"c":"new"}"#),
        "late rollback ignored"
    );
    assert_eq!(
        recorded_decision(&**r.backend(), &txn).await.expect("read"),
        Some(Decision::Commit)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_fans_out_to_every_participant_mem() {
    commit_fans_out(mem()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_fans_out_to_every_participant_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = disk(dir.path());
    commit_fans_out(r.clone()).await;
    // The replaced document of "c" was deleted with the commit.
    assert_eq!(disk_docs(&r), 3, "one committed document per key, nothing staged left");
}

/// Releasing one participant with `rollback` discards every participant's
/// staging (a staged remove included); a later commit request changes
/// nothing.
async fn rollback_fans_out<B: Backend>(r: Router<B>) {
    commit_doc(&r, "kept", r#"{"v":"old"}"#).await;
    commit_doc(&r, "doomed", r#"{"v":"alive"}"#).await;
    let txn = new_txn();
    let a = join(&r, "a", &txn).await;
    let kept = join(&r, "kept", &txn).await;
    let doomed = join(&r, "doomed", &txn).await;
    stage(&r, "a", &a, r#"{"a":1}"#).await;
    stage(&r, "kept", &kept, r#"{"v":"new"}"#).await;
    let rm = r
        .remove("", "doomed", proof(&doomed), None, None)
        .await
        .expect("remove");
    assert!(rm.removed);

    release(&r, "kept", &kept, true).await;
    assert_eq!(public(&r, "a").await, None);
    assert_eq!(public(&r, "kept").await.as_deref(), Some(r#"{"v":"old"}"#));
    assert_eq!(public(&r, "doomed").await.as_deref(), Some(r#"{"v":"alive"}"#));
    for key in ["a", "kept", "doomed"] {
        let (lease, version) = described(&r, key).await;
        assert_eq!(lease, None, "{key}: lease cleared");
        assert_eq!(version, i64::from(key != "a"), "{key}: rollback keeps the version");
    }
    release(&r, "a", &a, false).await;
    release(&r, "doomed", &doomed, false).await;
    assert_eq!(
        public(&r, "a").await,
        None,
        "the recorded rollback wins over a late commit"
    );
    assert_eq!(public(&r, "doomed").await.as_deref(), Some(r#"{"v":"alive"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_fans_out_to_every_participant_mem() {
    let r = mem();
    rollback_fans_out(r.clone()).await;
    // Two committed documents and the decision record; staging is gone.
    assert_eq!(r.backend().doc_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_fans_out_to_every_participant_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = disk(dir.path());
    rollback_fans_out(r.clone()).await;
    assert_eq!(disk_docs(&r), 2, "staged documents deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_recorded_decision_wins_over_a_later_opposite_release() {
    let r = mem();
    let txn = new_txn();
    let a = join(&r, "a", &txn).await;
    let b = join(&r, "b", &txn).await;
    stage(&r, "a", &a, r#"{"a":1}"#).await;
    stage(&r, "b", &b, r#"{"b":1}"#).await;
    // A decision already on record (as a coordinator would have written
    // it) while both participants still hold their leases.
    store_decision(&**r.backend(), &txn, Decision::Rollback)
        .await
        .expect("store");
    release(&r, "a", &a, false).await;
    assert_eq!(public(&r, "a").await, None, "the recorded rollback wins");
    assert_eq!(public(&r, "b").await, None, "and is applied to every participant");
    assert_eq!(described(&r, "b").await.0, None);
    assert_eq!(
        recorded_decision(&**r.backend(), &txn).await.expect("read"),
        Some(Decision::Rollback)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opposite_releases_decide_every_participant_alike() {
    let r = mem();
    for round in 0..20 {
        let txn = new_txn();
        let (ka, kb) = (format!("a{round}"), format!("b{round}"));
        let a = join(&r, &ka, &txn).await;
        let b = join(&r, &kb, &txn).await;
        stage(&r, &ka, &a, r#"{"x":1}"#).await;
        stage(&r, &kb, &b, r#"{"x":1}"#).await;
        let (ra, rb) = (r.clone(), r.clone());
        let (ka2, kb2) = (ka.clone(), kb.clone());
        let one = tokio::spawn(async move { ra.release("", &ka2, proof(&a), false).await });
        let two = tokio::spawn(async move { rb.release("", &kb2, proof(&b), true).await });
        assert!(one.await.expect("join").expect("release"));
        assert!(two.await.expect("join").expect("release"));
        let decided = recorded_decision(&**r.backend(), &txn)
            .await
            .expect("read")
            .expect("decided");
        let want = (decided == Decision::Commit).then(|| r#"{"x":1}"#.to_string());
        assert_eq!(public(&r, &ka).await, want, "round {round}: {ka} follows {decided:?}");
        assert_eq!(public(&r, &kb).await, want, "round {round}: {kb} follows {decided:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_staged_nothing_keeps_its_lease_until_its_own_release() {
    let r = mem();
    commit_doc(&r, "idle", r#"{"i":0}"#).await;
    let txn = new_txn();
    let busy = join(&r, "busy", &txn).await;
    let idle = join(&r, "idle", &txn).await;
    stage(&r, "busy", &busy, r#"{"b":1}"#).await;
    release(&r, "busy", &busy, false).await;
    assert_eq!(
        described(&r, "idle").await,
        (Some(idle.lease_id.clone()), 1),
        "only keys that staged are decided (API.md §2.3)"
    );
    assert_eq!(public(&r, "busy").await.as_deref(), Some(r#"{"b":1}"#));
    // It may not stage into the transaction that is already decided.
    let late = r
        .update(
            "",
            "idle",
            proof(&idle),
            Bytes::from_static(b"{\"late\":1}"),
            None,
            None,
        )
        .await;
    assert_eq!(late.expect_err("decided").code, "txn_conflict");
    release(&r, "idle", &idle, true).await;
    assert_eq!(described(&r, "idle").await, (None, 1), "its own release ends it");
    assert_eq!(public(&r, "idle").await.as_deref(), Some(r#"{"i":0}"#));
    assert_eq!(
        public(&r, "busy").await.as_deref(),
        Some(r#"{"b":1}"#),
        "the first decision stands"
    );

    // Releasing the idle participant first still decides the transaction.
    let txn = new_txn();
    let busy = join(&r, "busy", &txn).await;
    let idle = join(&r, "idle", &txn).await;
    stage(&r, "busy", &busy, r#"{"b":2}"#).await;
    release(&r, "idle", &idle, false).await;
    assert_eq!(described(&r, "idle").await, (None, 1));
    assert_eq!(public(&r, "busy").await.as_deref(), Some(r#"{"b":2}"#));
    assert_eq!(described(&r, "busy").await, (None, 2));
    grab(&r, "idle", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_discards_undecided_staging_but_applies_a_recorded_commit() {
    let r = mem();
    let (decided, undecided) = (new_txn(), new_txn());
    let d = join_ttl(&r, "decided", &decided, 2).await;
    let u = join_ttl(&r, "undecided", &undecided, 2).await;
    stage(&r, "decided", &d, r#"{"d":1}"#).await;
    stage(&r, "undecided", &u, r#"{"u":1}"#).await;
    // Recorded behind the actors' backs: no fan-out reaches "decided".
    store_decision(&**r.backend(), &decided, Decision::Commit)
        .await
        .expect("store");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        public(&r, "decided").await.as_deref(),
        Some(r#"{"d":1}"#),
        "decision applied"
    );
    assert_eq!(public(&r, "undecided").await, None, "staging discarded as before");
    let err = r
        .update("", "undecided", proof(&u), Bytes::from_static(b"{}"), None, None)
        .await;
    assert_eq!(err.expect_err("expired").code, "lease_expired");
    assert_eq!(
        recorded_decision(&**r.backend(), &undecided).await.expect("read"),
        Some(Decision::Rollback),
        "an expiring participant decides its transaction"
    );
    assert_eq!(
        r.backend().doc_count(),
        3,
        "committed doc and two decision records only"
    );
}

/// A transaction is atomic even when one participant expires before the
/// others are released: the expiry records a rollback for the whole
/// transaction, and a later release asking to commit finds it and applies
/// it (the first decision wins, silently, as lockd does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_expiring_undecided_rolls_the_whole_transaction_back() {
    let r = mem();
    commit_doc(&r, "slow", r#"{"s":0}"#).await;
    let txn = new_txn();
    let short = join_ttl(&r, "short", &txn, 2).await;
    let slow = join_ttl(&r, "slow", &txn, 30).await;
    stage(&r, "short", &short, r#"{"a":1}"#).await;
    stage(&r, "slow", &slow, r#"{"s":1}"#).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        recorded_decision(&**r.backend(), &txn).await.expect("read"),
        Some(Decision::Rollback)
    );
    // The still-valid participant asks to commit; the recorded rollback wins.
    release(&r, "slow", &slow, false).await;
    assert_eq!(public(&r, "short").await, None);
    assert_eq!(
        public(&r, "slow").await.as_deref(),
        Some(r#"{"s":0}"#),
        "nothing half committed"
    );
    assert_eq!(described(&r, "slow").await, (None, 1));
}

/// Counts what reaches the decision namespace.
struct Counting {
    inner: MemBackend,
    decision_io: AtomicUsize,
}

impl Counting {
    fn note(&self, ns: &str) {
        if ns == DECISIONS_NAMESPACE {
            self.decision_io.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Backend for Counting {
    async fn load_meta(&self, ns: &str, key: &str) -> Result<Option<MetaRecord>, BackendError> {
        self.note(ns);
        self.inner.load_meta(ns, key).await
    }

    async fn read_doc(&self, ns: &str, key: &str, doc: &str) -> Result<Option<Bytes>, BackendError> {
        self.note(ns);
        self.inner.read_doc(ns, key, doc).await
    }

    async fn write(&self, ns: &str, key: &str, expect: Option<&Rev>, set: WriteSet) -> Result<Rev, BackendError> {
        self.note(ns);
        self.inner.write(ns, key, expect, set).await
    }

    async fn leased_keys(&self) -> Result<Vec<(String, String)>, BackendError> {
        self.inner.leased_keys().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_transactions_never_touch_the_decision_record() {
    let backend = Arc::new(Counting {
        inner: MemBackend::new(),
        decision_io: AtomicUsize::new(0),
    });
    let r = Router::new(Arc::clone(&backend), LeaseConfig::default());
    commit_doc(&r, "solo", r#"{"s":1}"#).await;
    let l = grab(&r, "solo", 30).await;
    stage(&r, "solo", &l, r#"{"s":2}"#).await;
    r.remove("", "solo", proof(&l), None, None).await.expect("remove");
    release(&r, "solo", &l, true).await;
    // An implicit lease that expires with staging is discarded without
    // looking for a decision.
    let l = grab(&r, "short", 2).await;
    stage(&r, "short", &l, r#"{"s":3}"#).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(public(&r, "short").await, None);
    assert_eq!(
        public(&r, "solo").await.as_deref(),
        Some(r#"{"s":1}"#),
        "commit then rollback"
    );
    assert_eq!(backend.decision_io.load(Ordering::SeqCst), 0);

    // The counter does see explicit transactions (read, then write).
    let l = join(&r, "multi", &new_txn()).await;
    release(&r, "multi", &l, false).await;
    assert_eq!(backend.decision_io.load(Ordering::SeqCst), 2);
}
