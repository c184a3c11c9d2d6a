//! The lease actor: one per active `(namespace, key)`, owning everything
//! that happens to that key. Requests and replies are plain data.

mod actor;
mod rules;

use bytes::Bytes;
use ractor::RpcReplyPort;

use crate::api_error::ApiError;
use crate::txn::Decision;

pub(crate) use actor::{LeaseActor, LeaseArgs};
pub(crate) use rules::now_unix;

/// How long an acquire may wait for a held lease (`block_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// `-1`: answer `409 waiting` at once.
    NoWait,
    /// `0` or omitted: wait until the lease can be taken.
    Forever,
    /// Wait at most this long (`> 0` seconds, or the server's acquire-block
    /// for other negative values).
    For(std::time::Duration),
}

/// A validated acquire.
#[derive(Debug, Clone)]
pub struct AcquireReq {
    /// The key as the caller spelled it (echoed in the answer).
    pub key_display: String,
    /// Owner label (required, non-empty).
    pub owner: String,
    /// Lease lifetime in seconds, already defaulted and clamped.
    pub ttl_seconds: i64,
    /// How long to wait.
    pub block: Block,
    /// Fail with `already_exists` if the key was ever acquired.
    pub if_not_exists: bool,
    /// Caller-chosen transaction (explicit), or `None` to mint one.
    pub txn_id: Option<String>,
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireOk {
    /// The key as the caller spelled it.
    pub key: String,
    /// The new lease's id.
    pub lease_id: String,
    /// Its transaction.
    pub txn_id: String,
    /// Owner label.
    pub owner: String,
    /// Expiry, unix seconds.
    pub expires_at_unix: i64,
    /// Committed version of the key.
    pub version: i64,
    /// Committed state ETag, if any.
    pub state_etag: Option<String>,
    /// Fencing token of this lease.
    pub fencing_token: i64,
}

/// What a lease-guarded request proves about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseProof {
    /// `X-Lease-ID` / `lease_id`.
    pub lease_id: String,
    /// `X-Fencing-Token`.
    pub fencing_token: i64,
    /// `X-Txn-ID` / `txn_id`, if given.
    pub txn_id: Option<String>,
}

/// A document to stage, hashed before it reaches the actor so the actor
/// never spends time on large payloads.
#[derive(Debug, Clone)]
pub struct StagedDoc {
    /// Compacted JSON bytes.
    pub body: Bytes,
    /// Lowercase hex SHA-256 of `body`.
    pub etag: String,
}

impl StagedDoc {
    /// Hashes `body` into its ETag.
    pub fn new(body: Bytes) -> StagedDoc {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(&body);
        let etag = digest.iter().map(|b| format!("{b:02x}")).collect();
        StagedDoc { body, etag }
    }
}

/// A readable document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// The bytes.
    pub body: Bytes,
    /// Its ETag.
    pub etag: String,
    /// Version reported in `X-Key-Version`.
    pub version: i64,
    /// For lease reads, the lease's fencing token.
    pub fencing_token: Option<i64>,
}

/// Result of `/v1/update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOk {
    /// Staged version.
    pub new_version: i64,
    /// Staged ETag.
    pub new_state_etag: String,
    /// Size of the staged document.
    pub bytes: u64,
    /// Effective `query_hidden` (staged or committed).
    pub query_hidden: bool,
}

/// Result of `/v1/remove`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOk {
    /// Whether a remove was staged.
    pub removed: bool,
    /// Staged (or current) version.
    pub new_version: i64,
}

/// Result of `/v1/describe`: committed metadata, no payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DescribeOk {
    /// Holder's owner label, if leased.
    pub owner: Option<String>,
    /// Lease id, if leased.
    pub lease_id: Option<String>,
    /// Lease expiry, if leased.
    pub expires_at_unix: Option<i64>,
    /// Committed version.
    pub version: i64,
    /// Committed ETag.
    pub state_etag: Option<String>,
    /// Last change, unix seconds (0 if never).
    pub updated_at_unix: i64,
    /// Committed `query_hidden`.
    pub query_hidden: bool,
}

/// Result of `/v1/metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOk {
    /// Staged version.
    pub version: i64,
    /// The staged `query_hidden`.
    pub query_hidden: bool,
}

/// What the key's actor did with a release.
#[derive(Debug)]
pub(crate) enum Released {
    /// Done: an implicit transaction was committed or rolled back, or there
    /// was no such lease to release.
    Done,
    /// The lease belongs to this explicit transaction: the actor recorded
    /// its decision (the second field, maybe an earlier release's) and
    /// applied it here; the other participants still need it.
    Explicit(String, crate::txn::Decision),
}

/// Reply port of one request.
pub(crate) type Reply<T> = RpcReplyPort<Result<T, ApiError>>;

/// Everything a lease actor can be asked.
pub(crate) enum LeaseMsg {
    Acquire(AcquireReq, Reply<AcquireOk>),
    Keepalive {
        proof: LeaseProof,
        ttl_seconds: i64,
        reply: Reply<i64>,
    },
    Release {
        proof: LeaseProof,
        rollback: bool,
        reply: Reply<Released>,
    },
    /// Apply the recorded decision of an explicit transaction, if this
    /// key's lease belongs to it.
    Decide {
        txn_id: String,
        decision: Decision,
        reply: Reply<()>,
    },
    Get {
        proof: Option<LeaseProof>,
        reply: Reply<Option<Doc>>,
    },
    Update {
        proof: LeaseProof,
        doc: StagedDoc,
        if_version: Option<i64>,
        if_etag: Option<String>,
        reply: Reply<UpdateOk>,
    },
    Remove {
        proof: LeaseProof,
        if_version: Option<i64>,
        if_etag: Option<String>,
        reply: Reply<RemoveOk>,
    },
    Describe(Reply<DescribeOk>),
    Metadata {
        proof: LeaseProof,
        if_version: Option<i64>,
        query_hidden: bool,
        reply: Reply<MetadataOk>,
    },
    /// Wake the actor (after a restart, for a key with a persisted lease).
    Touch(Reply<()>),
    /// Timer: the lease with this id may have expired.
    Expire(String),
    /// Timer: a waiter's deadline passed.
    WaiterDeadline(u64),
}
