//! Plain data the SDK hands out and takes back: leases, lease references,
//! CAS conditions and state documents.

use bytes::Bytes;

use crate::wire::AcquireResponse;

/// A granted lease: the server's answer plus the fencing token to present
/// on every guarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The acquire answer as the server sent it.
    pub response: AcquireResponse,
    /// Fencing token from the `X-Fencing-Token` header (the body's field if
    /// the header is absent); storage writes must carry it to be accepted.
    pub fencing_token: i64,
}

impl Lease {
    /// The identifiers every lease-guarded call needs, detached from the
    /// rest of the answer so they can be stored or passed between processes.
    pub fn lease_ref(&self) -> LeaseRef {
        LeaseRef {
            namespace: self.response.namespace.clone(),
            key: self.response.key.clone(),
            lease_id: self.response.lease_id.clone(),
            txn_id: self.response.txn_id.clone(),
            fencing_token: self.fencing_token,
        }
    }
}

/// Identifies a held lease on the wire (the CLI rebuilds one from its
/// `LOCKD_CLIENT_*` variables, so every field is plain data).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRef {
    /// Namespace of the key; empty means the server's default namespace.
    pub namespace: String,
    /// The leased key.
    pub key: String,
    /// Lease id (`X-Lease-ID`).
    pub lease_id: String,
    /// Transaction id of the lease (`X-Txn-ID`).
    pub txn_id: String,
    /// Fencing token of the lease (`X-Fencing-Token`).
    pub fencing_token: i64,
}

/// Compare-and-set preconditions for writes: the write is refused with
/// `version_conflict` / `etag_mismatch` unless the state still matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Expected current version (`X-If-Version`).
    pub if_version: Option<i64>,
    /// Expected current state ETag (`X-If-State-ETag`).
    pub if_etag: Option<String>,
}

/// A state document as read by `get`, with what is needed for a later CAS write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDoc {
    /// The compacted JSON document.
    pub body: Bytes,
    /// ETag of this document (`ETag` header), for `Conditions::if_etag`.
    pub etag: String,
    /// Version of this document (`X-Key-Version`), for `Conditions::if_version`.
    pub version: i64,
    /// The lease's fencing token echoed by lease reads; `None` on public reads.
    pub fencing_token: Option<i64>,
}
