//! Pure rules of the lease model (API.md §0.8), kept apart from the actor
//! so they can be read and tested on their own.

use crate::api_error::ApiError;
use crate::meta::{KeyMeta, Lease};

use super::LeaseProof;

/// Seconds since the epoch: lease expiry is second-granular.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A lease counts as expired from the second it names (`<=`).
pub(crate) fn expired(lease: &Lease, now: i64) -> bool {
    lease.expires_at_unix <= now
}

/// Attaches the committed version and ETag, as every lease error does.
pub(crate) fn with_current(err: ApiError, meta: &KeyMeta) -> ApiError {
    err.with_current(meta.version, meta.state_etag.clone().unwrap_or_default())
}

/// Why a lease check failed, and whether the caller must clear an expired
/// lease (and discard its staging) before answering.
pub(crate) struct Refused {
    pub error: ApiError,
    pub clear_expired: bool,
}

/// The validation order every lease-guarded operation uses; the first
/// failing check wins. `check_txn` is false for reads, which use the
/// lease's own transaction.
pub(crate) fn check<'m>(
    meta: &'m KeyMeta,
    proof: &LeaseProof,
    now: i64,
    check_txn: bool,
) -> Result<&'m Lease, Refused> {
    let refuse = |error: ApiError, clear_expired: bool| Refused {
        error: with_current(error, meta),
        clear_expired,
    };
    let Some(lease) = meta.lease.as_ref().filter(|l| l.lease_id == proof.lease_id) else {
        return Err(refuse(ApiError::lease_required(), false));
    };
    if expired(lease, now) {
        return Err(refuse(ApiError::lease_expired(), true));
    }
    if lease.fencing_token != proof.fencing_token {
        return Err(refuse(ApiError::fencing_mismatch(), false));
    }
    if check_txn {
        match proof.txn_id.as_deref() {
            None | Some("") => return Err(refuse(ApiError::missing_txn(), false)),
            Some(t) if t != lease.txn_id => {
                return Err(refuse(
                    ApiError::txn_mismatch("transaction id does not match the lease"),
                    false,
                ))
            }
            Some(_) => {}
        }
    }
    Ok(lease)
}

/// `409 txn_mismatch` if another transaction has staged changes.
pub(crate) fn other_txn_staged(meta: &KeyMeta, txn: &str) -> Result<(), ApiError> {
    match &meta.staged {
        Some(s) if s.txn_id != txn => Err(with_current(
            ApiError::txn_mismatch("different transaction already staged"),
            meta,
        )),
        _ => Ok(()),
    }
}

/// Seconds a blocked caller should wait before retrying: until the
/// holder's expiry, at least one.
pub(crate) fn retry_after(meta: &KeyMeta, now: i64) -> i64 {
    meta.lease.as_ref().map_or(1, |l| (l.expires_at_unix - now).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leased() -> KeyMeta {
        KeyMeta {
            version: 4,
            state_etag: Some("etag".into()),
            lease: Some(Lease {
                lease_id: "L".into(),
                owner: "o".into(),
                expires_at_unix: 100,
                fencing_token: 7,
                txn_id: "T".into(),
                txn_explicit: false,
            }),
            ..KeyMeta::default()
        }
    }

    fn proof(lease: &str, fencing: i64, txn: Option<&str>) -> LeaseProof {
        LeaseProof {
            lease_id: lease.into(),
            fencing_token: fencing,
            txn_id: txn.map(str::to_string),
        }
    }

    fn code(meta: &KeyMeta, p: &LeaseProof, now: i64) -> &'static str {
        match check(meta, p, now, true) {
            Ok(_) => "ok",
            Err(r) => {
                assert_eq!((r.error.current_version, r.error.current_etag.as_str()), (4, "etag"));
                r.error.code
            }
        }
    }

    #[test]
    fn first_failing_check_wins_in_the_documented_order() {
        let m = leased();
        // Everything wrong at once: the lease id is checked first.
        assert_eq!(code(&m, &proof("X", 1, None), 200), "lease_required");
        assert_eq!(code(&m, &proof("L", 1, None), 100), "lease_expired");
        assert_eq!(code(&m, &proof("L", 1, None), 99), "fencing_mismatch");
        assert_eq!(code(&m, &proof("L", 7, None), 99), "missing_txn");
        assert_eq!(code(&m, &proof("L", 7, Some("U")), 99), "txn_mismatch");
        assert_eq!(code(&m, &proof("L", 7, Some("T")), 99), "ok");
        assert!(check(&m, &proof("L", 7, None), 99, false).is_ok(), "reads need no txn");
        assert!(check(&KeyMeta::default(), &proof("L", 7, None), 99, false).is_err());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(retry_after(&leased(), 90), 10);
        assert_eq!(retry_after(&leased(), 100), 1);
        assert_eq!(retry_after(&KeyMeta::default(), 0), 1);
    }
}
