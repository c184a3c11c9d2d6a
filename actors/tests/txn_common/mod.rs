//! Helpers for the explicit-transaction tests (API.md §2.3, §6.4), generic
//! over the backend so every scenario runs on `mem://` and `disk://`.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use lockd_actors::lease::{AcquireOk, LeaseProof};
use lockd_actors::{Backend, DiskBackend, LeaseConfig, MemBackend, Router};
use lockd_logstore::{LogStore, Options};

/// A fresh in-memory router.
pub fn mem() -> Router<MemBackend> {
    Router::new(Arc::new(MemBackend::new()), LeaseConfig::default())
}

/// A router over the logstore in `dir`.
pub fn disk(dir: &Path) -> Router<DiskBackend> {
    let store = Arc::new(LogStore::open(dir, Options::default()).expect("open store"));
    Router::new(Arc::new(DiskBackend::new(store, 1 << 20)), LeaseConfig::default())
}

/// Abandons the running store as `kill -9` would (no close, no
/// checkpoint) and returns a copy of its directory, as a restarted process
/// finds it. Everything acknowledged as durable is in the copy.
pub fn crash(router: Router<DiskBackend>, dir: &Path) -> tempfile::TempDir {
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

/// Documents of user keys on disk (decision records are not counted).
pub fn disk_docs(r: &Router<DiskBackend>) -> usize {
    let page = r.backend().store().scan(b"d/", None, 10_000).expect("scan");
    page.iter().filter(|e| !e.key.starts_with(b"d/.txn-decisions/")).count()
}

/// A fresh valid transaction id.
pub fn new_txn() -> String {
    lockd_actors::ids::new_xid()
}

/// Acquires `key` (default namespace, 30 s, no waiting) joining `txn`.
pub async fn join<B: Backend>(r: &Router<B>, key: &str, txn: &str) -> AcquireOk {
    join_ttl(r, key, txn, 30).await
}

/// Like [`join`] with a chosen TTL.
pub async fn join_ttl<B: Backend>(r: &Router<B>, key: &str, txn: &str, ttl: i64) -> AcquireOk {
    let (_, ok) = r
        .acquire("", key, "tx", ttl, -1, false, Some(txn))
        .await
        .unwrap_or_else(|e| panic!("join {key}: {e:?}"));
    assert_eq!(ok.txn_id, txn, "explicit txn kept");
    ok
}

/// Acquires `key` with an implicit transaction.
pub async fn grab<B: Backend>(r: &Router<B>, key: &str, ttl: i64) -> AcquireOk {
    let (_, ok) = r
        .acquire("", key, "solo", ttl, -1, false, None)
        .await
        .unwrap_or_else(|e| panic!("acquire {key}: {e:?}"));
    ok
}

/// The full proof of a lease.
pub fn proof(l: &AcquireOk) -> LeaseProof {
    LeaseProof {
        lease_id: l.lease_id.clone(),
        fencing_token: l.fencing_token,
        txn_id: Some(l.txn_id.clone()),
    }
}

/// Stages `body` on `key` under lease `l`.
pub async fn stage<B: Backend>(r: &Router<B>, key: &str, l: &AcquireOk, body: &'static str) {
    r.update("", key, proof(l), Bytes::from_static(body.as_bytes()), None, None)
        .await
        .unwrap_or_else(|e| panic!("update {key}: {e:?}"));
}

/// Releases `key`, which must answer `released: true`.
pub async fn release<B: Backend>(r: &Router<B>, key: &str, l: &AcquireOk, rollback: bool) {
    let ok = r
        .release("", key, proof(l), rollback)
        .await
        .unwrap_or_else(|e| panic!("release {key}: {e:?}"));
    assert!(ok, "release of {key} answers released:true");
}

/// Commits `body` to `key` with an implicit transaction.
pub async fn commit_doc<B: Backend>(r: &Router<B>, key: &str, body: &'static str) {
    let l = grab(r, key, 30).await;
    stage(r, key, &l, body).await;
    release(r, key, &l, false).await;
}

/// The public (committed) document, `None` for a 204.
pub async fn public<B: Backend>(r: &Router<B>, key: &str) -> Option<String> {
    r.get("", key, None)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .map(|d| String::from_utf8_lossy(&d.body).into_owned())
}

/// `(lease id, committed version)` as describe reports them.
pub async fn described<B: Backend>(r: &Router<B>, key: &str) -> (Option<String>, i64) {
    let d = r
        .describe("", key)
        .await
        .unwrap_or_else(|e| panic!("describe {key}: {e:?}"));
    (d.lease_id, d.version)
}
