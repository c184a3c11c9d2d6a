//! `disk://` across a crash: the store is abandoned without a clean
//! shutdown (as after `kill -9`) and a new router opens what it left.

use std::sync::Arc;

use bytes::Bytes;
use lockd_actors::lease::LeaseProof;
use lockd_actors::{DiskBackend, LeaseConfig, MemBackend, Router};
use lockd_logstore::{LogStore, Options};

fn open(dir: &std::path::Path) -> Router<DiskBackend> {
    let store = Arc::new(LogStore::open(dir, Options::default()).expect("open store"));
    Router::new(Arc::new(DiskBackend::new(store, 1 << 20)), LeaseConfig::default())
}

/// Leaks the running store (no close, no checkpoint, threads left idle) and
/// returns a copy of its directory, as a restarted process would find it.
fn crash(router: Router<DiskBackend>, dir: &std::path::Path) -> tempfile::TempDir {
    std::mem::forget(router);
    let copy = tempfile::tempdir().expect("tempdir");
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).expect("copy");
        }
    }
    copy
}

fn proof(lease_id: &str, token: i64, txn: &str) -> LeaseProof {
    LeaseProof {
        lease_id: lease_id.into(),
        fencing_token: token,
        txn_id: Some(txn.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_state_survives_staged_state_stays_private_and_fencing_keeps_rising() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = open(dir.path());
    // "done": committed twice.
    let mut last_token = 0;
    for v in 1..=2 {
        let (_, ok) = router
            .acquire("jobs", "done", "w", 30, -1, false, None)
            .await
            .expect("acquire");
        last_token = ok.fencing_token;
        let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
        router
            .update(
                "jobs",
                "done",
                p.clone(),
                Bytes::from(format!(r#"{{"v":{v}}}"#)),
                None,
                None,
            )
            .await
            .expect("update");
        router.release("jobs", "done", p, false).await.expect("release");
    }
    // "open": holds a lease with a staged, uncommitted document.
    let (_, held) = router
        .acquire("jobs", "open", "w", 600, -1, false, None)
        .await
        .expect("acquire");
    let held_proof = proof(&held.lease_id, held.fencing_token, &held.txn_id);
    router
        .update(
            "jobs",
            "open",
            held_proof.clone(),
            Bytes::from_static(br#"{"draft":true}"#),
            None,
            None,
        )
        .await
        .expect("update");
    let copy = crash(router, dir.path());

    let router = open(copy.path());
    assert_eq!(router.sweep().await.expect("sweep"), 1, "one stored lease to wake");
    let doc = router
        .get("jobs", "done", None)
        .await
        .expect("get")
        .expect("committed doc");
    assert_eq!((&doc.body[..], doc.version), (&br#"{"v":2}"#[..], 2));
    assert_eq!(
        router.get("jobs", "open", None).await.expect("get"),
        None,
        "staged data never public"
    );
    // The holder carries on where it was: its staged write is still there.
    let mine = router
        .get("jobs", "open", Some(held_proof.clone()))
        .await
        .expect("lease get")
        .expect("staged");
    assert_eq!(&mine.body[..], br#"{"draft":true}"#);
    router
        .release("jobs", "open", held_proof, false)
        .await
        .expect("release commits");
    let doc = router
        .get("jobs", "open", None)
        .await
        .expect("get")
        .expect("now committed");
    assert_eq!((&doc.body[..], doc.version), (&br#"{"draft":true}"#[..], 1));
    // Fencing continues upward from wherever the crashed run got to.
    let (_, next) = router
        .acquire("jobs", "done", "w", 30, -1, false, None)
        .await
        .expect("acquire");
    assert!(
        next.fencing_token > last_token,
        "{} after {last_token}",
        next.fencing_token
    );
    // if_not_exists remembers keys across the crash.
    let err = router
        .acquire("jobs", "open", "w", 30, -1, true, None)
        .await
        .expect_err("exists");
    assert_eq!(err.code, "already_exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_never_repeats_after_a_crash_even_for_unwritten_grants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = open(dir.path());
    let mut max = 0;
    // More grants than one reservation block, so both durable and
    // unwritten grants happened before the crash.
    for _ in 0..300 {
        let (_, ok) = router
            .acquire("", "counter", "w", 30, -1, false, None)
            .await
            .expect("acquire");
        max = max.max(ok.fencing_token);
        let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
        router.release("", "counter", p, false).await.expect("release");
    }
    // Two leases held at the crash: one only granted (never written), one
    // that made a durable keepalive.
    let (_, fresh) = router
        .acquire("", "counter", "w", 30, -1, false, None)
        .await
        .expect("acquire");
    max = max.max(fresh.fencing_token);
    let (_, kept) = router
        .acquire("", "kept", "w", 30, -1, false, None)
        .await
        .expect("acquire");
    let kept_proof = proof(&kept.lease_id, kept.fencing_token, &kept.txn_id);
    router
        .keepalive("", "kept", kept_proof.clone(), 60)
        .await
        .expect("keepalive");
    let copy = crash(router, dir.path());

    let router = open(copy.path());
    assert_eq!(
        router.sweep().await.expect("sweep"),
        1,
        "only the written lease is stored"
    );
    // The unwritten lease is gone: its holder is told so, and the next
    // token is still above everything handed out before the crash.
    let fresh_proof = proof(&fresh.lease_id, fresh.fencing_token, &fresh.txn_id);
    let err = router
        .update("", "counter", fresh_proof, Bytes::from_static(b"{}"), None, None)
        .await
        .expect_err("lease lost");
    assert_eq!(err.code, "lease_required");
    let (_, after) = router
        .acquire("", "counter", "w", 30, -1, false, None)
        .await
        .expect("acquire");
    assert!(
        after.fencing_token > max,
        "token {} does not exceed {max}",
        after.fencing_token
    );
    // The written lease survived and its holder carries on.
    let err = router
        .acquire("", "kept", "w", 30, -1, false, None)
        .await
        .expect_err("still held");
    assert_eq!(err.code, "waiting");
    router
        .keepalive("", "kept", kept_proof.clone(), 30)
        .await
        .expect("keepalive after restart");
    router.release("", "kept", kept_proof, false).await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_found_after_a_restart_are_swept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = open(dir.path());
    // Two seconds: a 1 s lease may lapse before the update under load.
    let (_, ok) = router
        .acquire("", "stale", "w", 2, -1, false, None)
        .await
        .expect("acquire");
    let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
    router
        .update("", "stale", p, Bytes::from_static(b"{}"), None, None)
        .await
        .expect("update");
    let copy = crash(router, dir.path());
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let router = open(copy.path());
    assert_eq!(router.sweep().await.expect("sweep"), 1);
    let d = router.describe("", "stale").await.expect("describe");
    assert_eq!(
        (d.lease_id, d.version),
        (None, 0),
        "expired lease cleared, staging discarded"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(router.resident_actors(), 0);
    assert_eq!(
        router.backend().store().scan(b"d/", None, 10).expect("scan").len(),
        0,
        "staged doc deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_touched_once_leave_no_actor_behind() {
    let keys: usize = std::env::var("LOCKD_IDLE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let backend = Arc::new(MemBackend::new());
    let router = Router::new(Arc::clone(&backend), LeaseConfig::default());
    let workers = 64;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let mut peak = 0;
            for i in (w..keys).step_by(workers) {
                let key = format!("k{i}");
                let (_, ok) = router
                    .acquire("", &key, "w", 30, -1, false, None)
                    .await
                    .expect("acquire");
                peak = peak.max(router.resident_actors());
                let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
                router.release("", &key, p, false).await.expect("release");
            }
            peak
        }));
    }
    let mut peak = 0;
    for t in tasks {
        peak = peak.max(t.await.expect("worker"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(router.resident_actors(), 0, "every idle actor retired");
    assert!(
        peak <= workers * 2,
        "at most the keys in flight had actors: peak {peak}"
    );
    assert_eq!(router.describe("", "k0").await.expect("describe").version, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_documents_go_through_blob_files_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = open(dir.path());
    // 24 MiB of JSON: above the 1 MiB inline limit used here (and above the
    // logstore's own 16 MiB default), so it is stored as a blob file.
    let mut body = Vec::with_capacity(24 << 20);
    body.extend_from_slice(b"{\"blob\":\"");
    body.resize((24 << 20) - 2, b'z');
    body.extend_from_slice(b"\"}");
    let body = Bytes::from(body);
    let (_, ok) = router
        .acquire("", "big", "w", 60, -1, false, None)
        .await
        .expect("acquire");
    let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
    let staged = router
        .update("", "big", p.clone(), body.clone(), None, None)
        .await
        .expect("update");
    assert_eq!(staged.bytes, body.len() as u64);
    assert_eq!(
        router.get("", "big", None).await.expect("get"),
        None,
        "staged blob is private"
    );
    router.release("", "big", p, false).await.expect("commit");
    let blobs = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "blob"))
        })
        .count();
    assert_eq!(blobs, 1, "the document lives in one blob file");
    let copy = crash(router, dir.path());
    let router = open(copy.path());
    let doc = router.get("", "big", None).await.expect("get").expect("committed");
    assert_eq!(
        (doc.body.len(), doc.etag.as_str()),
        (body.len(), staged.new_state_etag.as_str())
    );
    assert!(doc.body == body, "bytes round-trip");
}
