//! Helpers shared by the API semantics tests (API.md §0.4, §0.5, §0.8, §2.1–§2.8).
#![allow(dead_code, unreachable_pub)]

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use lockd_actors::lease::{AcquireOk, LeaseProof};
use lockd_actors::{ApiError, LeaseConfig, MemBackend, Router};

/// The router every test talks to.
pub type Rt = Router<MemBackend>;

/// Owner label used by [`acquire`].
pub const OWNER: &str = "owner-a";

/// A fresh in-memory router with lockd's default settings.
pub fn router() -> Rt {
    Router::new(Arc::new(MemBackend::new()), LeaseConfig::default())
}

/// Wall clock in unix seconds, as the lease model counts it.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Acquires `key` in the default namespace, 30 s TTL, no waiting, implicit txn.
pub async fn acquire(r: &Rt, key: &str) -> AcquireOk {
    acquire_ttl(r, key, 30).await
}

/// Like [`acquire`] with a chosen TTL.
pub async fn acquire_ttl(r: &Rt, key: &str, ttl_seconds: i64) -> AcquireOk {
    let (ns, ok) = r
        .acquire("", key, OWNER, ttl_seconds, -1, false, None)
        .await
        .unwrap_or_else(|e| panic!("acquire {key}: {e:?}"));
    assert_eq!(ns, "default");
    ok
}

/// Full proof of a lease (id, token, txn).
pub fn proof(l: &AcquireOk) -> LeaseProof {
    LeaseProof {
        lease_id: l.lease_id.clone(),
        fencing_token: l.fencing_token,
        txn_id: Some(l.txn_id.clone()),
    }
}

/// A proof with arbitrary parts.
pub fn proof_of(lease_id: &str, fencing_token: i64, txn_id: Option<&str>) -> LeaseProof {
    LeaseProof {
        lease_id: lease_id.to_string(),
        fencing_token,
        txn_id: txn_id.map(str::to_string),
    }
}

/// A JSON body.
pub fn json(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Lowercase hex SHA-256, the ETag our backends give a document.
pub fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

/// Stages `doc` under a fresh lease and commits it; returns the new ETag.
pub async fn commit_doc(r: &Rt, key: &str, doc: &'static str) -> String {
    let l = acquire(r, key).await;
    let up = r
        .update("", key, proof(&l), json(doc), None, None)
        .await
        .expect("update");
    assert!(r.release("", key, proof(&l), false).await.expect("release"));
    up.new_state_etag
}

/// Public read: `(body, etag, version)`, `None` for a 204.
pub async fn public_get(r: &Rt, key: &str) -> Option<(String, String, i64)> {
    r.get("", key, None).await.expect("public get").map(|d| {
        assert_eq!(d.fencing_token, None, "public reads carry no fencing token");
        (String::from_utf8_lossy(&d.body).into_owned(), d.etag, d.version)
    })
}

/// Lease read: `(body, etag, version, fencing token)`, `None` for a 204.
pub async fn lease_get(r: &Rt, key: &str, l: &AcquireOk) -> Option<(String, String, i64, Option<i64>)> {
    r.get("", key, Some(proof(l))).await.expect("lease get").map(|d| {
        (
            String::from_utf8_lossy(&d.body).into_owned(),
            d.etag,
            d.version,
            d.fencing_token,
        )
    })
}

/// Asserts that `res` failed with `status`/`code` and returns the error.
#[track_caller]
pub fn expect_err<T: Debug>(res: Result<T, ApiError>, status: u16, code: &str) -> ApiError {
    match res {
        Ok(v) => panic!("expected {status} {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!((e.status, e.code), (status, code), "unexpected error: {e:?}");
            e
        }
    }
}

/// Asserts the committed version/ETag an error carries.
#[track_caller]
pub fn assert_current(e: &ApiError, version: i64, etag: &str) {
    assert_eq!(
        (e.current_version, e.current_etag.as_str()),
        (version, etag),
        "current_version/current_etag of {e:?}"
    );
}

/// A fresh xid (a valid explicit transaction id, or an unknown lease id).
pub fn xid() -> String {
    lockd_actors::ids::new_xid()
}
